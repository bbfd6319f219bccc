"""The SDK renders continuation prompts with the supervisor's convention and checks them up front."""

from __future__ import annotations

import pytest
from claude_agent_sdk import ClaudeAgentOptions

from resurgo._continuation import ContinuationError
from resurgo.classifier import ErrorClass, ErrorType, Severity
from resurgo.sdk._core import DEFAULT_CONTINUATION, Run, Settings

KW: dict[str, object] = dict(
    policy=None, retrier=None, breaker=None, budget=None, classifier=None, store=None, clock=None,
    on_recovery=None, on_give_up=None, stall_timeout=None,
)


def _settings(prompt: object) -> Settings:
    return Settings.resolve(ClaudeAgentOptions(), continuation_prompt=prompt, **KW)  # type: ignore[arg-type]


def test_unknown_placeholder_is_an_error_when_configured() -> None:
    with pytest.raises(ContinuationError, match=r"\{descripton\}"):
        _settings("resume: {descripton}")


def test_all_placeholders_and_literal_braces() -> None:
    s = _settings('{reason} / {description} / {category} / {type} / {"keep": true} / {{type}}')
    run = Run(s, ClaudeAgentOptions(), "the task", name="t")
    run.last_ec = ErrorClass(type=ErrorType.NETWORK, severity=Severity.MEDIUM, category="connection_reset",
                             description="connection reset by peer", retryable=True)
    assert run.continuation() == (
        'connection reset by peer / connection reset by peer / connection_reset / network / {"keep": true} / {type}')


def test_default_prompt_names_the_failure() -> None:
    run = Run(_settings(DEFAULT_CONTINUATION), ClaudeAgentOptions(), "the task", name="t")
    run.last_ec = ErrorClass(type=ErrorType.TIMEOUT, severity=Severity.LOW, category="stall",
                             description="no output for 120 s", retryable=True)
    assert "(no output for 120 s)" in run.continuation() and "{" not in run.continuation()
