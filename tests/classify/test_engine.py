"""Behaviour of the classification engine: precedence, retry_after, rules, learning, stats."""

from __future__ import annotations

import errno
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resurgo.classifier import (
    Classifier,
    ErrorType,
    Observation,
    ObservationError,
    Priority,
    RuleError,
    Strategy,
    classify,
    is_retryable,
    load_rules,
    normalise,
    priority,
    rules_from_toml,
    suggest_strategy,
)
from resurgo.classifier._patterns import PatternError, check_backtracking, compile_pattern
from resurgo.clock import FakeClock
from resurgo.store import Store

# 2023-11-14T22:13:20Z
NOW = 1_700_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall_start=NOW)


@pytest.fixture
def clf(clock: FakeClock) -> Classifier:
    return Classifier(clock=clock)


# -- precedence ---------------------------------------------------------------------


def test_killed_by_wins_over_everything(clf: Classifier) -> None:
    v = clf.classify({"killed_by": "stall_watchdog", "http_status": 401, "message": "Invalid API key"})
    assert v.type is ErrorType.TIMEOUT and v.retryable and v.rule == "killed_by.stall_watchdog"
    for who in ("shutdown", "user"):
        assert not clf.classify({"killed_by": who, "signal": 9, "exit_code": 137}).is_error


def test_specific_message_beats_status(clf: Classifier) -> None:
    v = clf.classify({"http_status": 400, "message": "Your credit balance is too low to access the Anthropic API."})
    assert (v.type, v.retryable, v.category) == (ErrorType.RESOURCE, False, "billing")
    v = clf.classify({"http_status": 400, "message": "This organization has been disabled."})
    assert v.type is ErrorType.AUTH


def test_status_beats_cli_fields_and_messages(clf: Classifier) -> None:
    obs = {
        "exit_code": 1,
        "events": [
            {"type": "assistant", "error": "invalid_request", "message": {"content": []}},
            {
                "type": "result",
                "subtype": "success",
                "is_error": True,
                "api_error_status": 529,
                "result": "API Error: Request timed out",
            },
        ],
    }
    v = clf.classify(obs)
    assert v.type is ErrorType.RESOURCE and v.rule == "http.503"


def test_status_table_matches_spec(clf: Classifier) -> None:
    want = {
        400: "validation",
        404: "validation",
        413: "validation",
        422: "validation",
        401: "auth",
        403: "auth",
        408: "timeout",
        504: "timeout",
        429: "resource",
        503: "resource",
        529: "resource",
        500: "internal",
        502: "network",
    }
    for status, t in want.items():
        assert clf.classify({"http_status": status}).type == t, status
    assert clf.classify({"http_status": 500}).retryable  # remote internal: retryable


def test_exception_mro_most_derived_rule_wins(clf: Classifier) -> None:
    import requests

    assert clf.classify(requests.exceptions.ConnectTimeout("x")).type is ErrorType.TIMEOUT
    assert clf.classify(requests.exceptions.ConnectionError("x")).type is ErrorType.NETWORK
    assert clf.classify(httpx.ConnectTimeout("x")).type is ErrorType.TIMEOUT


def test_exception_names_match_without_the_library(clf: Classifier) -> None:
    # a class merely *named* like the SDK's (no SDK installed in that process) is enough
    ns: dict[str, object] = {}
    exec("class CLINotFoundError(Exception): pass", ns)
    cls = ns["CLINotFoundError"]
    assert isinstance(cls, type)
    v = clf.classify(cls("claude not found"))
    assert v.type is ErrorType.PROCESS and not v.retryable
    assert clf.classify({"exception_type": "anthropic.RateLimitError"}).type is ErrorType.RESOURCE
    assert clf.classify({"exception_type": "aiohttp.ServerDisconnectedError"}).type is ErrorType.NETWORK


def test_cause_chain_and_groups(clf: Classifier) -> None:
    try:
        try:
            raise ConnectionResetError("peer reset")
        except ConnectionResetError as e:
            raise RuntimeError("upload failed") from e
    except RuntimeError as outer:
        v = clf.classify(outer)
    assert v.type is ErrorType.NETWORK and "depth 1" in " ".join(v.evidence)
    g = ExceptionGroup("many", [ValueError("bad"), httpx.ReadTimeout("slow")])
    assert clf.classify(g).type is ErrorType.TIMEOUT
    # cycles do not hang
    a, b = RuntimeError("a"), RuntimeError("b")
    a.__cause__, b.__cause__ = b, a
    assert clf.classify(a).type is ErrorType.INTERNAL


def test_errno_is_more_specific_than_oserror(clf: Classifier) -> None:
    assert clf.classify(OSError(errno.ENOSPC, "No space left on device")).retryable is False
    v = clf.classify(OSError(errno.EMFILE, "Too many open files"))
    assert v.retryable and v.strategy is Strategy.CLEANUP_RESOURCES


def test_not_an_error_cases(clf: Classifier) -> None:
    ok = {"type": "result", "subtype": "success", "is_error": False, "result": "API Error: 500 fixed"}
    assert not clf.classify({"events": [ok], "exit_code": 0}).is_error
    assert not clf.classify({"exit_code": 0, "stderr": "warning: deprecated"}).is_error
    assert not clf.classify({}).is_error
    v = clf.classify({"exit_code": 0, "stderr": "x"})
    assert v.type is None and v.severity is None and v.to_dict()["error"] is False


def test_exit_code_rules(clf: Classifier) -> None:
    v = clf.classify({"exit_code": 127})
    assert v.type is ErrorType.PROCESS and not v.retryable
    v = clf.classify({"exit_code": 1, "stderr": "error: unknown option '--x'"})
    assert v.type is ErrorType.VALIDATION
    v = clf.classify({"exit_code": 1, "stderr": "something odd"})
    assert v.type is ErrorType.PROCESS and v.retryable
    v = clf.classify({"signal": 9})
    assert v.type is ErrorType.PROCESS and v.retryable


def test_fallback_is_low_confidence_internal(clf: Classifier) -> None:
    v = clf.classify({"message": "zorglub happened"})
    assert (v.type, v.retryable, v.rule) == (ErrorType.INTERNAL, False, "fallback")
    assert v.confidence < 0.5


def test_module_level_api() -> None:
    assert classify(TimeoutError()).type is ErrorType.TIMEOUT
    assert is_retryable(ConnectionRefusedError())
    assert not is_retryable(KeyError("x"))
    assert suggest_strategy({"http_status": 401}) is Strategy.ESCALATE
    assert priority({"http_status": 401}) is Priority.P0


def test_rejects_bad_inputs_clearly(clf: Classifier) -> None:
    with pytest.raises(ObservationError, match="exit_code"):
        clf.classify({"exit_code": "1"})
    with pytest.raises(TypeError, match="cannot classify"):
        clf.classify(42)


# -- retry_after --------------------------------------------------------------------


def test_retry_after_epoch_message(clf: Classifier) -> None:
    v = clf.classify({"message": f"Claude AI usage limit reached|{int(NOW) + 3600}"})
    assert v.retry_after == pytest.approx(3600)
    assert v.strategy is Strategy.WAIT_UNTIL


def test_retry_after_zoned_clock_time(clf: Classifier, clock: FakeClock) -> None:
    # NOW is 23:13:20 in Europe/Warsaw (CET): 3pm has passed, so it is tomorrow's 3pm
    v = clf.classify({"message": "Claude usage limit reached. Your limit will reset at 3pm (Europe/Warsaw)."})
    want = datetime(2023, 11, 15, 14, 0, tzinfo=UTC).timestamp() - NOW
    assert v.retry_after == pytest.approx(want)
    v = clf.classify({"message": "You've hit your session limit · resets 11:45pm (Europe/Warsaw)"})
    assert v.retry_after == pytest.approx(31 * 60 + 40)


def test_retry_after_local_time_without_zone(clf: Classifier, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        # NOW is 17:13:20 in New York: 3:45pm is past, 6:10pm is ahead
        v = clf.classify({"message": "You've hit your session limit · resets 6:10pm"})
        assert v.retry_after == pytest.approx((18 * 60 + 10 - (17 * 60 + 13)) * 60 - 20)
        v = clf.classify({"message": "You've hit your session limit · resets 3:45pm"})
        assert v.retry_after == pytest.approx(24 * 3600 - ((17 * 60 + 13) * 60 + 20 - (15 * 60 + 45) * 60))
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_retry_after_headers(clf: Classifier) -> None:
    assert clf.classify({"http_status": 429, "headers": {"Retry-After": "12"}}).retry_after == 12
    date = "Tue, 14 Nov 2023 22:14:00 GMT"  # 40 s after NOW
    assert clf.classify({"http_status": 503, "headers": {"retry-after": date}}).retry_after == pytest.approx(40)
    reset = datetime.fromtimestamp(NOW + 90, UTC).isoformat().replace("+00:00", "Z")
    h = {
        "anthropic-ratelimit-tokens-reset": reset,
        "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-requests-reset": datetime.fromtimestamp(NOW + 5, UTC).isoformat(),
    }
    assert clf.classify({"http_status": 429, "headers": h}).retry_after == pytest.approx(90)
    # precedence: a reset in the message beats the header
    v = clf.classify(
        {
            "http_status": 429,
            "headers": {"retry-after": "5"},
            "message": f"Claude AI usage limit reached|{int(NOW) + 600}",
        }
    )
    assert v.retry_after == pytest.approx(600)
    # non-retryable verdicts carry no retry_after
    assert clf.classify({"http_status": 401, "headers": {"retry-after": "5"}}).retry_after is None


def test_retry_after_rate_limit_event(clf: Classifier) -> None:
    obs = {
        "exit_code": 1,
        "events": [
            {"type": "rate_limit_event", "rate_limit_info": {"status": "rejected", "resetsAt": int(NOW) + 120}},
            {"type": "result", "subtype": "success", "is_error": True, "api_error_status": 429, "result": "limit"},
        ],
    }
    assert clf.classify(obs).retry_after == pytest.approx(120)


def test_retry_after_from_exception_headers(clf: Classifier) -> None:
    req = httpx.Request("GET", "http://x")
    resp = httpx.Response(429, headers={"retry-after": "33"}, request=req)
    err = httpx.HTTPStatusError("429", request=req, response=resp)
    v = clf.classify(err)
    assert v.type is ErrorType.RESOURCE and v.retry_after == 33
    # the cached verdict does not leak one response's header into another's
    resp2 = httpx.Response(429, headers={"retry-after": "3"}, request=req)
    assert clf.classify(httpx.HTTPStatusError("429", request=req, response=resp2)).retry_after == 3


# -- rules as data ------------------------------------------------------------------


def test_user_rules_from_toml(tmp_path: Path, clock: FakeClock) -> None:
    f = tmp_path / "rules.toml"
    f.write_text(
        '[[rule]]\nid = "acme.flaky"\nmessage = "ACME gateway hiccup"\ntype = "network"\nweight = 70\n'
        '[[rule]]\nid = "acme.quota"\ntier = "specific"\nmessage = "acme quota"\ntype = "resource"\n'
        "retryable = false\n"
    )
    c = Classifier.from_config(f, clock=clock)
    assert c.classify({"message": "ACME gateway hiccup #42"}).rule == "acme.flaky"
    assert c.classify({"http_status": 429, "message": "acme quota exceeded"}).retryable is False
    assert {r.id for r in load_rules(f)} == {"acme.flaky", "acme.quota"}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('[[rule]]\nid = "x"\nmessage = "(unclosed"\ntype = "network"\n', "rule 'x'.*bad regular expression"),
        ('[[rule]]\nid = "x"\nmessage = "a"\ntype = "nonsense"\n', "rule 'x'"),
        ('[[rule]]\nid = "x"\ntype = "network"\n', "rule 'x': has no condition"),
        ('[[rule]]\nid = "x"\nmesage = "a"\ntype = "network"\n', "unknown key"),
        ('[[rule]]\nmessage = "a"\ntype = "network"\n', "no 'id'"),
        (
            '[[rule]]\nid = "x"\nmessage = "a"\ntype = "network"\n'
            '[[rule]]\nid = "x"\nmessage = "b"\ntype = "network"\n',
            "defined twice",
        ),
        ("not toml [", "not valid TOML"),
    ],
)
def test_bad_rules_are_clear_errors(text: str, match: str) -> None:
    with pytest.raises(RuleError, match=match):
        rules_from_toml(text)


def test_catastrophic_patterns_rejected_or_linear() -> None:
    evil = "(a+)+$"
    # on RE2 it compiles and runs in linear time on hostile input
    p = compile_pattern(evil, rule_id="evil", use_re2=True)
    t0 = time.perf_counter()
    assert p.search("a" * 50_000 + "!") is None
    assert time.perf_counter() - t0 < 2.0
    # without RE2 the shape is refused, naming the rule
    for pat in (evil, "(a|aa)*b", r"(\w+)\1", ".*.*.*.*x"):
        with pytest.raises(PatternError, match="rule 'evil'"):
            compile_pattern(pat, rule_id="evil", use_re2=False)
    check_backtracking(r"api error: 5(29|03)", rule_id="ok")
    with pytest.raises(PatternError, match="linear-time engine"):
        compile_pattern(r"(a)\1", rule_id="backref", use_re2=True)


def test_packs_load_without_re2() -> None:
    c = Classifier(use_re2=False)
    assert c.classify({"message": "API Error: Request timed out."}).type is ErrorType.TIMEOUT


def test_huge_hostile_message_stays_fast(clf: Classifier) -> None:
    msg = ("a" * 1000 + " ") * 2000 + "ECONNRESET"
    t0 = time.perf_counter()
    v = clf.classify({"message": msg, "stderr": "x" * 5_000_000})
    assert time.perf_counter() - t0 < 5.0
    assert v.type is ErrorType.NETWORK  # the tail (where errors end up) is kept


# -- signatures, learning, statistics ------------------------------------------------


def test_signatures_strip_volatile_parts(clf: Classifier) -> None:
    a = clf.signature(
        {
            "message": "req_011CSSdA5fq timed out after 30s at /home/a/x.py 0xdeadbeef "
            "3f2a1b9c-1d2e-4f5a-8b6c-7d8e9f0a1b2c"
        }
    )
    b = clf.signature(
        {"message": "req_022XYZabc12 timed out after 31s at /srv/b/y.py 0xcafe 11111111-2222-4333-8444-555555555555"}
    )
    assert a == b
    assert "sk-ant" not in normalise("key sk-ant-api03-SECRETSECRET rejected")


def test_learning_transient_and_never_overriding(tmp_path: Path, clock: FakeClock) -> None:
    db = tmp_path / "r.db"
    store = Store(db)
    c = Classifier(clock=clock, store=store)
    flaky = RuntimeError("widget 17 wobbled")
    assert c.classify(flaky).rule == "fallback"
    for _ in range(3):
        c.record_outcome(RuntimeError("widget 99 wobbled"), True)
    v = c.classify(flaky)
    assert v.retryable and v.rule == "learned"
    # auth stays non-retryable however often retries "succeed"
    for _ in range(10):
        c.record_outcome({"http_status": 401, "message": "invalid x-api-key"}, True)
    assert not c.classify({"http_status": 401, "message": "invalid x-api-key"}).retryable
    assert [r.signature for r in c.learned_rules()] == [c.signature(flaky)]
    store.close()
    # persisted, and forgettable
    store2 = Store(db)
    c2 = Classifier(clock=clock, store=store2)
    assert c2.classify(flaky).rule == "learned"
    assert c2.forget(c2.signature(flaky)) == 1
    assert c2.classify(flaky).rule == "fallback"
    assert c2.forget("*") >= 1 and c2.outcomes() == []
    store2.close()


def test_learning_needs_ratio(clf: Classifier) -> None:
    sig = clf.signature({"message": "gizmo failed"})
    for ok in (True, True, True, False, False):
        clf.record_outcome(sig, ok)
    assert clf.learned_rules() == []


def test_stats_windows_and_priority_spread(clf: Classifier, clock: FakeClock) -> None:
    assert clf.classify({"message": "API Error: Request timed out."}, job="j1").priority is Priority.P2
    clf.classify({"message": "API Error: Request timed out."}, job="j2")
    v = clf.classify({"message": "API Error: Request timed out."}, job="j3")
    assert v.priority is Priority.P1  # three jobs hit the same signature recently
    clf.classify({"http_status": 401})
    s = clf.stats(window=60)
    assert s.total == 4 and s.by_type == {"timeout": 3, "auth": 1}
    assert s.by_severity["critical"] == 1
    clock.advance(3600)
    assert clf.stats(window=60).total == 0
    assert clf.stats(window=7200).total == 4
    assert clf.classify({"message": "API Error: Request timed out."}, job="j4").priority is Priority.P2


# -- properties -----------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=20,
)
_events = st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["result", "assistant", "system", "rate_limit_event", "user", "x"])},
        optional={
            "is_error": st.booleans(),
            "api_error_status": st.none() | st.integers(0, 999),
            "subtype": st.sampled_from(["success", "api_retry", "error_max_turns", "init"]),
            "error": st.text(max_size=20) | _json,
            "result": _json,
            "errors": _json,
            "resetsAt": st.integers(-(10**12), 10**13) | st.floats(allow_nan=False),
            "error_status": st.integers(0, 999),
            "message": _json,
        },
    ),
    max_size=5,
)
observations = st.builds(
    Observation,
    message=st.none() | st.text(max_size=300),
    exception_type=st.none() | st.text(max_size=40),
    exit_code=st.none() | st.integers(-300, 300),
    signal=st.none() | st.integers(0, 64),
    killed_by=st.none() | st.sampled_from(["stall_watchdog", "deadline", "shutdown", "user", "other"]),
    http_status=st.none() | st.integers(0, 999),
    headers=st.dictionaries(
        st.sampled_from(
            ["retry-after", "anthropic-ratelimit-tokens-reset", "anthropic-ratelimit-tokens-remaining", "x"]
        ),
        st.text(max_size=30),
        max_size=3,
    ),
    stderr=st.none() | st.text(max_size=300),
    events=_events,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obs=observations)
def test_classify_never_raises_and_retry_after_never_negative(obs: Observation) -> None:
    c = _PROP_CLF
    v = c.classify(obs)
    assert v.retry_after is None or v.retry_after >= 0
    assert (v.type is None) == (v.severity is None)
    assert set(v.to_dict()) == {
        "error",
        "type",
        "severity",
        "category",
        "description",
        "retryable",
        "retry_after",
        "strategy",
        "priority",
        "rule",
        "confidence",
    }


_exc_types = st.sampled_from(
    [
        ValueError,
        KeyError,
        OSError,
        TimeoutError,
        ConnectionResetError,
        RuntimeError,
        MemoryError,
        FileNotFoundError,
        httpx.ReadTimeout,
        BaseException,
        KeyboardInterrupt,
    ]
)


@st.composite
def exceptions(draw: st.DrawFn) -> BaseException:
    cls = draw(_exc_types)
    args = draw(st.lists(st.text(max_size=30) | st.integers(), max_size=3))
    try:
        e = cls(*args)
    except TypeError:  # httpx exceptions require exactly one message
        e = cls(str(args))
    if draw(st.booleans()):
        e.__cause__ = draw(_exc_types)(draw(st.text(max_size=20)))  # all accept one message
    if draw(st.booleans()):
        e = BaseExceptionGroup("g", [e, draw(_exc_types)("member")])
    return e


class _HostileStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("boom")


@settings(max_examples=300, deadline=None)
@given(exc=exceptions())
def test_classify_never_raises_on_exceptions(exc: BaseException) -> None:
    v = _PROP_CLF.classify(exc)
    assert v.retry_after is None or v.retry_after >= 0


def test_hostile_str_does_not_break_classification(clf: Classifier) -> None:
    assert clf.classify(_HostileStr()).type is ErrorType.INTERNAL


_PROP_CLF = Classifier(clock=FakeClock(wall_start=NOW))
os.environ.setdefault("RESURGO_TEST", "1")
