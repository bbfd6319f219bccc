"""The runnable example, ``install()``, and the parts that need no CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import claude_agent_sdk
import pytest
from claude_agent_sdk import ClaudeAgentOptions, ResultError, ResultMessage
from tests.sdk.conftest import FAST, message_requests

from resurgo.classifier import ErrorType, Observation
from resurgo.mockapi import Faults, MockServer
from resurgo.retrier import Retrier, RetryPolicy
from resurgo.sdk import RecoveryEvent, endpoint_of, install, installed, uninstall
from resurgo.sdk._core import Settings
from resurgo.sdk._evidence import Evidence, classify_evidence

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_example_runs_against_the_stand_in(claude_bin: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")}
    env.update(RESURGO_CLAUDE=claude_bin, HOME=str(tmp_path))
    p = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "sdk_resilient_query.py")],
        env=env, capture_output=True, text=True, timeout=90, cwd=tmp_path,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Hello from a run that survived two 529s." in p.stdout
    assert "result: is_error=False" in p.stdout
    assert p.stdout.count("recovering: run") == 2


@pytest.mark.integration
async def test_install_makes_unchanged_sdk_code_resilient(
    sdk_options: ClaudeAgentOptions, mock_api: MockServer
) -> None:
    events: list[RecoveryEvent] = []
    original = claude_agent_sdk.query
    install(policy=FAST, on_recovery=events.append)
    try:
        assert installed() and claude_agent_sdk.query is not original
        mock_api.set_faults(Faults(status=529, count=1))
        # the user's code, untouched: it looks the function up on the SDK module
        msgs = [m async for m in claude_agent_sdk.query(prompt="hi [[text: patched]]", options=sdk_options)]
    finally:
        uninstall()
    assert claude_agent_sdk.query is original and not installed()
    final = msgs[-1]
    assert isinstance(final, ResultMessage) and not final.is_error and final.result == "patched"
    assert [e.action for e in events] == ["resume"]
    assert len(message_requests(mock_api)) == 2


def test_install_rejects_bad_keywords_before_patching() -> None:
    with pytest.raises(TypeError):
        install(polcy=FAST)
    assert not installed()


def test_endpoint_key_prefers_the_options_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://from-process:1/")
    assert endpoint_of({"ANTHROPIC_BASE_URL": "http://from-options:2/"}) == "http://from-options:2"
    assert endpoint_of({}) == "http://from-process:1"
    monkeypatch.delenv("ANTHROPIC_BASE_URL")
    assert endpoint_of(None) == "https://api.anthropic.com"


def _result(status: int | None, text: str, **kw: object) -> ResultMessage:
    return ResultMessage(
        subtype="success", duration_ms=1, duration_api_ms=1, is_error=True, num_turns=1, session_id="s",
        result=text, api_error_status=status, **kw,  # type: ignore[arg-type]
    )


def test_a_result_error_is_classified_by_its_status() -> None:
    ev = Evidence()
    ev.note(_result(529, "API Error: 529 Overloaded. This is a server-side issue"))
    ev.exception = ResultError("Claude Code returned an error result: ...", data={"is_error": True}, exit_code=1)
    ec = classify_evidence(ev, None)
    assert ec.type is ErrorType.RESOURCE and ec.retryable
    ev401 = Evidence(result=_result(401, "Invalid API key · Fix external API key"))
    assert classify_evidence(ev401, None).type is ErrorType.AUTH


def test_the_result_error_alone_is_enough() -> None:
    """The CLI refused before yielding a result (a refused resume): ResultError.data still carries it."""
    data = {
        "subtype": "error_during_execution",
        "is_error": True,
        "errors": ["No conversation found with session ID: x"],
    }
    ev = Evidence(exception=ResultError("Claude Code returned an error result", data=data, exit_code=1))
    assert ev.session_missing
    assert classify_evidence(ev, None).type is ErrorType.VALIDATION


def test_a_custom_classifier_sees_observations() -> None:
    seen: list[object] = []

    def clf(x: object) -> object:
        seen.append(x)
        from resurgo.classifier import classify

        return classify(x)

    classify_evidence(Evidence(result=_result(500, "API Error: 500")), clf)  # type: ignore[arg-type]
    assert isinstance(seen[0], Observation) and seen[0].result_event is not None


def test_settings_reject_conflicting_or_bad_arguments() -> None:
    kw: dict[str, object] = dict(
        policy=None, retrier=None, breaker=None, budget=None, classifier=None, store=None, clock=None,
        continuation_prompt="go on", on_recovery=None, on_give_up=None, stall_timeout=None,
    )
    opts = ClaudeAgentOptions()
    with pytest.raises(TypeError, match="either retrier"):
        Settings.resolve(opts, **{**kw, "retrier": Retrier(), "policy": RetryPolicy()})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stall_timeout"):
        Settings.resolve(opts, **{**kw, "stall_timeout": 0})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="options"):
        Settings.resolve({"cwd": "."}, **kw)  # type: ignore[arg-type]
