"""Structured evidence on real library exceptions, the pattern-set prefilter, and descriptions.

Exceptions are built the way the libraries build them (a real httpx.Response behind an
anthropic/httpx error, a requests.Response, claude_agent_sdk's ResultError with the CLI's
result payload), so these tests break if a library moves the attributes we read.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import anthropic
import httpx
import pytest
import requests
from claude_agent_sdk import ProcessError, ResultError
from claude_agent_sdk.types import ResultMessage
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.classify._corpus import jsonl_rows

from resurgo.classifier import Classifier, ErrorClass, ErrorType, Strategy
from resurgo.classifier._describe import MAX_DESCRIPTION, duration
from resurgo.classifier._patterns import HAVE_RE2, PatternSet
from resurgo.classifier._rules import load_packs
from resurgo.clock import FakeClock

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
_REQ = httpx.Request("POST", "https://api.anthropic.com/v1/messages")


@pytest.fixture
def clf() -> Classifier:
    return Classifier(clock=FakeClock(wall_start=NOW))


def _result_error(status: int | None, *, subtype: str = "success", text: str = "API Error") -> ResultError:
    """What claude_agent_sdk raises after the CLI printed an error result and exited 1."""
    data: dict[str, Any] = {"type": "result", "subtype": subtype, "is_error": True, "result": text, "errors": []}
    if status is not None:
        data["api_error_status"] = status
    err = ResultError(f"Claude Code returned an error result: {text}", data=data, exit_code=1)
    err.__cause__ = ProcessError("Command failed with exit code 1", exit_code=1, stderr="Check stderr output")
    return err


# -- claude_agent_sdk ----------------------------------------------------------------------


def test_result_error_status_beats_message_text(clf: Classifier) -> None:
    v = clf.classify(_result_error(529, text="API Error: 529 overloaded"), record=False)
    assert (v.rule, v.type, v.retryable) == ("http.503", ErrorType.RESOURCE, True)
    assert v.confidence == pytest.approx(0.9)  # status tier, not the 0.7 of a message pattern
    assert v.description.startswith("HTTP 529 from the API")


def test_result_error_status_decides_even_against_misleading_text(clf: Classifier) -> None:
    v = clf.classify(_result_error(401, text="API Error: the server is overloaded"), record=False)
    assert (v.type, v.retryable, v.rule) == (ErrorType.AUTH, False, "http.401")


def test_result_error_subtype_is_a_cli_field(clf: Classifier) -> None:
    v = clf.classify(_result_error(None, subtype="error_max_turns", text="error_max_turns"), record=False)
    assert (v.rule, v.retryable, v.strategy) == ("cli.result.max_turns", False, Strategy.ABORT)
    assert "error_max_turns" in v.description


def test_result_error_without_detail_is_a_result_error_not_a_bare_exit(clf: Classifier) -> None:
    v = clf.classify(_result_error(None, subtype="error_during_execution", text="unknown error"), record=False)
    assert v.rule == "cli.exit.result_error"
    assert v.strategy is Strategy.RESUME_SESSION


def test_verdict_cache_keeps_statuses_apart(clf: Classifier) -> None:
    # same class and same text; only the structured status differs
    a = clf.classify(_result_error(429, text="API Error"), record=False)
    b = clf.classify(_result_error(401, text="API Error"), record=False)
    assert (a.type, b.type) == (ErrorType.RESOURCE, ErrorType.AUTH)


def test_process_error_exit_code_and_stderr(clf: Classifier) -> None:
    v = clf.classify(ProcessError("Command failed", exit_code=127, stderr="sh: claude: not found"), record=False)
    assert (v.type, v.retryable) == (ErrorType.PROCESS, False)
    assert v.description.startswith("the CLI exited with code 127")


def test_attached_result_object_is_read_like_a_result_event(clf: Classifier) -> None:
    class RunFailed(Exception):
        def __init__(self, result: ResultMessage) -> None:
            super().__init__("the agent run failed")
            self.result = result

    msg = ResultMessage(
        subtype="success",
        duration_ms=10,
        duration_api_ms=5,
        is_error=True,
        num_turns=1,
        session_id="s",
        api_error_status=503,
        result="API Error: 503 Service unavailable",
    )
    v = clf.classify(RunFailed(msg), record=False)
    assert (v.rule, v.type, v.retryable) == ("http.503", ErrorType.RESOURCE, True)


# -- HTTP libraries ------------------------------------------------------------------------


def test_anthropic_rate_limit_uses_status_and_retry_after_header(clf: Classifier) -> None:
    resp = httpx.Response(429, headers={"retry-after": "30"}, request=_REQ)
    err = anthropic.RateLimitError("Error code: 429", response=resp, body=None)
    v = clf.classify(err, record=False)
    assert (v.rule, v.retry_after) == ("http.429", 30.0)
    assert v.description.startswith("HTTP 429 from the API")
    assert v.description.endswith("retry in 30s (retry-after header)")


def test_httpx_status_error(clf: Classifier) -> None:
    resp = httpx.Response(503, headers={"Retry-After": "12"}, request=_REQ)
    err = httpx.HTTPStatusError("Server error '503 Service Unavailable'", request=_REQ, response=resp)
    v = clf.classify(err, record=False)
    assert (v.rule, v.retryable, v.retry_after) == ("http.503", True, 12.0)
    assert v.confidence == pytest.approx(0.9)


def test_requests_http_error(clf: Classifier) -> None:
    resp = requests.Response()
    resp.status_code = 401
    resp.url = "https://example.invalid/v1"
    err = requests.HTTPError("401 Client Error: Unauthorized", response=resp)
    v = clf.classify(err, record=False)
    assert (v.rule, v.type) == ("http.401", ErrorType.AUTH)
    assert v.description.startswith("HTTP 401 from the server")


def test_called_process_error_killed_by_signal(clf: Classifier) -> None:
    err = subprocess.CalledProcessError(-9, ["claude", "-p", "hi"], output=b"", stderr=b"")
    v = clf.classify(err, record=False)
    assert v.rule == "py.process.signal"
    assert v.description.startswith("the process was killed by SIGKILL (signal 9)")


@pytest.mark.parametrize("attr", ["status_code", "status", "http_status", "api_error_status"])
def test_status_attribute_names(clf: Classifier, attr: str) -> None:
    err = RuntimeError("something unhelpful")
    setattr(err, attr, 429)
    assert clf.classify(err, record=False).rule == "http.429"


def test_a_raising_attribute_does_not_break_classification(clf: Classifier) -> None:
    class Odd(Exception):
        @property
        def status_code(self) -> int:
            raise RuntimeError("boom")

    v = clf.classify(Odd("connection refused"), record=False)
    assert v.type is ErrorType.NETWORK


# -- the pattern-set prefilter -------------------------------------------------------------

_RULES = [r for r in load_packs() if r.matcher is not None]
_WORDS = sorted({w for r in _RULES for w in re.findall(r"[a-z]{4,}", r.matcher.pattern)})


def _pattern_set() -> PatternSet:
    ps = PatternSet()
    for i, r in enumerate(_RULES):
        assert r.matcher is not None
        assert ps.add(r.matcher, i)
    assert ps.compile()
    return ps


def test_re2_is_available() -> None:
    """google-re2 is a dependency: without it user rules lose their linear-time guarantee."""
    assert HAVE_RE2


def test_pattern_set_agrees_with_each_rule_on_the_corpus() -> None:
    ps = _pattern_set()
    texts = [str(row["observation"]) for row in jsonl_rows()]
    assert texts
    for text in texts:
        expected = {i for i, r in enumerate(_RULES) if r.matcher is not None and r.matcher.search(text)}
        assert ps.matching(text) == expected, text[:200]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*_WORDS, " ", ":", "API Error: 429", "ÄŁ", "\n", "(", '"type": "']), max_size=40))
def test_pattern_set_agrees_with_each_rule_on_generated_text(parts: list[str]) -> None:
    ps = _PS
    text = " ".join(parts)
    expected = {i for i, r in enumerate(_RULES) if r.matcher is not None and r.matcher.search(text)}
    assert ps.matching(text) == expected


_PS = _pattern_set() if HAVE_RE2 else None


# -- descriptions --------------------------------------------------------------------------


def test_signal_description_from_an_observation(clf: Classifier) -> None:
    v = clf.classify({"signal": 9, "events": [{"type": "system", "subtype": "init"}]}, record=False)
    assert v.description.startswith("the CLI was killed by SIGKILL (signal 9)")
    assert "resurgo did not send" in v.description


def test_reset_time_in_the_description() -> None:
    warsaw = ZoneInfo("Europe/Warsaw")
    now = datetime(2025, 7, 1, 13, 48, tzinfo=warsaw).timestamp()
    clf = Classifier(clock=FakeClock(wall_start=now))
    v = clf.classify("Claude usage limit reached. Your limit resets 3pm (Europe/Warsaw)", record=False)
    assert v.retry_after == pytest.approx(72 * 60)
    assert v.description.endswith("; resets at 15:00 Europe/Warsaw (in 1h 12m)")


def test_api_message_is_quoted_and_secrets_are_not(clf: Classifier) -> None:
    obs = {
        "http_status": 401,
        "message": 'API Error: 401 {"type":"error","error":{"type":"authentication_error",'
        '"message":"invalid x-api-key sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx"}}',
    }
    v = clf.classify(obs, record=False)
    assert v.description.startswith("HTTP 401 from the API: invalid x-api-key")
    assert "AbCdEfGh" not in v.description and "api03" not in v.description
    assert "<redacted>" in v.description


def test_exception_descriptions_are_short_and_redacted(clf: Classifier) -> None:
    err = ConnectionRefusedError(111, "Connection refused " + "x" * 5000 + " Bearer abc.def.ghi")
    v = clf.classify(err, record=False)
    assert v.description.startswith("ConnectionRefusedError [ECONNREFUSED]")
    assert len(v.description) <= MAX_DESCRIPTION

    class Weird(Exception):
        pass

    unknown = clf.classify(Weird("token sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx rejected?"), record=False)
    assert unknown.rule == "fallback"
    assert unknown.description.startswith("Weird: token ")
    assert "AbCdEfGh" not in unknown.description


def test_shipped_rules_have_readable_descriptions() -> None:
    bland = [
        r.id
        for r in load_packs()
        if r.verdict.type is not None and r.verdict.description == f"{r.verdict.type.value}: {r.verdict.category}"
    ]
    bland += [r.id for r in load_packs() if re.fullmatch(r"[a-z]+: [a-z ]+", r.verdict.description)]
    assert not bland


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.2, "0s"), (45, "45s"), (125, "2m 5s"), (12 * 60, "12m"), (4320, "1h 12m"), (7200, "2h"), (93600, "1d 2h")],
)
def test_duration_words(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_to_dict_matches_the_dataclass_fields(clf: Classifier) -> None:
    v = clf.classify(_result_error(529), record=False)
    expected = {k: (x.value if hasattr(x, "value") else x) for k, x in dataclasses.asdict(v).items()}
    expected.pop("evidence")
    assert v.to_dict() == {"error": True, **expected}
    assert list(v.to_dict())[1:] == [f.name for f in dataclasses.fields(ErrorClass) if f.name != "evidence"]
