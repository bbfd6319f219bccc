"""The semantic tier: one test per vocabulary family, with wordings written for these tests.

None of these sentences is in tests/corpus/ (a test below checks that), so they test whether a
family generalises to a wording nobody wrote a rule for, not whether a string was memorised.
"""

from __future__ import annotations

import datetime as dt

import pytest
from tests.classify._corpus import correct, jsonl_rows, split_rows

from resurgo.classifier import Classifier
from resurgo.classifier._semantic import FAMILIES
from resurgo.clock import FakeClock
from resurgo.supervise import EXIT_FAILED, EXIT_INTERNAL, JobState, exit_status_for

# (wording, type, retryable, family the semantic tier must name — or None when an explicit rule may win)
CASES = [
    # credentials, without any status code
    ("Your OAuth session lapsed and could not be renewed", "auth", False, "credentials"),
    ("Token refresh failed for account ops@example.org", "auth", False, "credentials"),
    ("The access token lacks the user:inference scope required here", "auth", False, "credentials"),
    ("Neither an API key nor any other auth method is configured for this machine", "auth", False, "credentials"),
    ("apiKeyHelper script printed nothing and returned 2", "auth", False, "credentials"),
    ("This feature needs you to be signed in with a claude.ai account", "auth", False, "credentials"),
    ("The Acme Corp organization was suspended by an administrator", "auth", False, "org_policy"),
    # validation: sizes, models, policy, tools, print-mode flags
    ("The conversation has grown past what the model accepts; compaction could not shrink it", "validation", False,
     "context_size"),
    ("settings.local.json is 3 MB, over its size limit of 1 MB", "validation", False, "too_large"),
    ("Model 'claude-imaginary-7' is unknown or your key has no access to it", "validation", False, "model_access"),
    ("Your request was declined under the Usage Policy", "validation", False, "policy_refusal"),
    ("MCP tool mcp__jira__create_ticket does not exist in this session", "validation", False, "invalid_request"),
    ("--output-format stream-json requires --verbose when run with -p", "validation", False, "invalid_request"),
    ("No prompt given on the command line or on stdin", "validation", False, "invalid_request"),
    # process-exit wrappers
    ("Command failed with exit code 134", "process", True, "process_exit"),
    ("claude subprocess exited unexpectedly with status 9", "process", True, "process_exit"),
    ("Fatal error in message reader: stream ended", "process", True, "process_exit"),
    ("Claude Code is not installed on this host; npm install -g @anthropic-ai/claude-code", "process", False,
     "binary_missing"),
    ("helper exited with code 127", "process", False, "binary_missing"),
    # network in other words
    ("The socket to api.example.test was closed by the remote end", "network", True, "network"),
    ("Gave up after 5 attempts: reconnect to MCP server 'files' failed", "network", True, "network"),
    ("upstream reset the stream halfway through the reply", "network", True, None),
    # throttling and quota without a 429
    ("We are temporarily limiting requests from your workspace", "resource", True, "throttled"),
    ("Extended thinking needs usage credits, which are off for this account", "resource", False, "billing"),
    ("This capability is only available on a paid plan", "resource", False, "billing"),
    ("Stopped: maximum number of turns reached (12)", "resource", False, "turn_budget"),
    # remote internal
    ("Something went wrong on our side, please retry", "internal", True, "remote_internal"),
    # timeouts
    ("The tool host gave no response within 90 seconds", "timeout", True, "timeout"),
]


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier()


@pytest.mark.parametrize(("text", "typ", "retryable", "family"), CASES, ids=[c[0][:40] for c in CASES])
def test_family(clf: Classifier, text: str, typ: str, retryable: bool, family: str | None) -> None:
    v = clf.classify(text, record=False)
    assert (v.type.value if v.type else None, v.retryable) == (typ, retryable), v.evidence
    if family is not None:
        assert v.rule in (f"semantic.{family}",) or not v.rule.startswith("semantic."), v.rule
        if v.rule.startswith("semantic."):
            assert v.confidence < 0.7  # below every explicit message rule


def test_every_family_is_exercised() -> None:
    named = {c[3] for c in CASES if c[3]}
    assert named >= {f.name for f in FAMILIES} - {"quota_reset", "certificate"}


def test_wordings_are_not_copied_from_the_corpus() -> None:
    texts = " \n ".join(str(r["observation"]).lower() for r in jsonl_rows())
    for text, *_ in CASES:
        assert text.lower() not in texts


def test_semantic_verdicts_are_less_confident_than_explicit_rules(clf: Classifier) -> None:
    sem = clf.classify("Your OAuth session lapsed and could not be renewed", record=False)
    explicit = clf.classify("OAuth token has expired", record=False)
    assert sem.rule.startswith("semantic.") and not explicit.rule.startswith("semantic.")
    assert sem.confidence < explicit.confidence


def test_auth_text_in_a_synthetic_assistant_message(clf: Classifier) -> None:
    obs = {
        "exit_code": 1,
        "events": [
            {"type": "assistant", "message": {
                "model": "<synthetic>", "role": "assistant",
                "content": [{"type": "text", "text": "Your organisation's workspace has been deactivated."}]}},
            {"type": "result", "subtype": "success", "is_error": True, "result": "", "api_error_status": None},
        ],
    }
    v = clf.classify(obs, record=False)
    assert v.type is not None and v.type.value == "auth" and not v.retryable, v.evidence


def test_vocabulary_beats_the_generic_nonzero_exit(clf: Classifier) -> None:
    v = clf.classify({"exit_code": 1, "stderr": "Error: no credentials configured; sign in first"}, record=False)
    assert v.type is not None and v.type.value == "auth"
    # the gate: with nothing but the exit, it is a restartable process failure
    bare = clf.classify({"exit_code": 1, "stderr": "zz qq"}, record=False)
    assert bare.type is not None and bare.type.value == "process" and bare.retryable


def test_successful_runs_full_of_error_words_stay_non_errors(clf: Classifier) -> None:
    text = ("Fixed it: the OAuth token refresh failed because the socket was closed; the request was too large "
            "and the process exited with code 127, which we now handle.")
    ok_result = {"exit_code": 0, "stderr": "warning: connection reset, retrying",
                 "events": [{"type": "result", "subtype": "success", "is_error": False, "result": text}]}
    assert not clf.classify(ok_result, record=False).is_error
    assert not clf.classify({"exit_code": 0, "stderr": text}, record=False).is_error


def test_date_resets_give_retry_after() -> None:
    now = dt.datetime(2026, 12, 4, 10, 0, tzinfo=dt.UTC).timestamp()
    clf = Classifier(clock=FakeClock(wall_start=now))
    v = clf.classify("You've hit your limit · resets Feb 7, 11am (UTC)", record=False)
    want = dt.datetime(2027, 2, 7, 11, 0, tzinfo=dt.UTC).timestamp() - now
    assert v.retryable and v.retry_after == pytest.approx(want)
    v2 = clf.classify("weekly quota used up; resets on Dec 12 at 9:30pm (UTC)", record=False)
    assert v2.retry_after == pytest.approx(dt.datetime(2026, 12, 12, 21, 30, tzinfo=dt.UTC).timestamp() - now)
    # without a zone: the local time of this machine, as the CLI printed it
    v4 = clf.classify("You've hit your session limit · resets Jan 15, 8am", record=False)
    local = dt.datetime(2027, 1, 15, 8, 0).astimezone().timestamp()
    assert v4.retry_after == pytest.approx(local - now)
    # a date that passed yesterday means "now", not a year away
    v3 = clf.classify("usage limit reached, resets Dec 3, 11pm (UTC)", record=False)
    assert v3.retry_after == 0.0


def test_unclassified_failure_exits_1_not_6() -> None:
    v = Classifier().classify("zq frobnication wobbled", record=False)
    assert v.rule == "fallback"
    assert exit_status_for(JobState.FAILED, v) == EXIT_FAILED
    assert exit_status_for(JobState.FAILED, v, internal=True) == EXIT_INTERNAL  # resurgo's own bug stays 6


@pytest.mark.parametrize("half", ["dev", "heldout"])
def test_split_accuracy_and_false_positives(clf: Classifier, half: str) -> None:
    rows = split_rows(half)
    errors = [r for r in rows if r["expect"]["error"]]
    non = [r for r in rows if not r["expect"]["error"]]
    ok = sum(correct(clf.classify(r["observation"], record=False), r["expect"]) for r in errors)
    assert ok / len(errors) >= 0.88, f"{half}: {ok}/{len(errors)}"
    flagged = [r["id"] for r in non if clf.classify(r["observation"], record=False).is_error]
    assert not flagged


def test_family_patterns_are_linear_without_re2_too() -> None:
    """Every part passes the backtracking check, so the tier is safe on Python's re as well."""
    from resurgo.classifier._patterns import PatternError, compile_pattern

    for fam in FAMILIES:
        for p in fam.patterns:
            compile_pattern(p, rule_id=fam.name, use_re2=False)
    # the gate: an unbounded, nested shape is refused by the same check
    with pytest.raises(PatternError):
        compile_pattern(r"(?:\w+ )+token expired", rule_id="bad", use_re2=False)


def test_huge_hostile_text_is_bounded(clf: Classifier) -> None:
    from resurgo.classifier._semantic import SEMANTIC_TEXT, match

    text = "oauth " + "a " * 500_000 + "connection closed"
    hit = match(text)
    assert hit is not None and hit[0].name == "credentials"
    assert match("x" * (SEMANTIC_TEXT * 4)) is None
