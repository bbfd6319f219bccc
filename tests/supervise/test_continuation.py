"""One continuation-prompt convention for the supervisor and the SDK (resurgo._continuation)."""

from __future__ import annotations

import pytest

from resurgo._continuation import ContinuationError, check_continuation, render_continuation
from resurgo.classifier import ErrorClass, ErrorType, Severity
from resurgo.supervise import SupervisorConfig
from resurgo.supervise._session import DEFAULT_CONTINUATION, SessionManager

EC = ErrorClass(type=ErrorType.RESOURCE, severity=Severity.MEDIUM, category="rate_limit",
                description="429 rate limited", retryable=True)


def test_every_placeholder_is_filled_and_other_braces_stay_literal() -> None:
    t = 'why={reason} d={description} c={category} t={type} json={"a": 1} {{reason}} { reason } {}'
    out = render_continuation(t, reason="killed by the stall watchdog", error=EC)
    assert out == ('why=killed by the stall watchdog d=429 rate limited c=rate_limit t=resource '
                   'json={"a": 1} {reason} { reason } {}')


def test_missing_values_fall_back_to_each_other() -> None:
    t = "{reason}|{description}|{category}|{type}"
    assert render_continuation(t, reason="exit status 1") == "exit status 1|exit status 1|unknown|unknown"
    assert render_continuation(t, error=EC) == "429 rate limited|429 rate limited|rate_limit|resource"
    assert render_continuation(t) == "unknown reason|unknown reason|unknown|unknown"


def test_unknown_placeholders_are_rejected_with_every_name() -> None:
    with pytest.raises(ContinuationError, match=r"\{catgory\}, \{reson\}.*known: \{reason\}"):
        check_continuation("{reson} and {catgory} but {{literal}} is fine")
    assert check_continuation("{{literal}} {reason}") == "{{literal}} {reason}"


def test_supervisor_config_and_session_manager_check_at_configuration_time() -> None:
    with pytest.raises(ValueError, match=r"continuation_prompt: unknown placeholder\(s\) \{why\}"):
        SupervisorConfig(continuation_prompt="resume ({why})")
    with pytest.raises(ContinuationError, match=r"\{why\}"):
        SessionManager(continuation="resume ({why})")
    cfg = SupervisorConfig(continuation_prompt="go on after {category} ({type}): {description}")
    sm = SessionManager(continuation=cfg.continuation_prompt)
    assert sm.continuation_prompt("ended by the stall watchdog") == (
        "go on after unknown (unknown): ended by the stall watchdog")
    assert sm.continuation_prompt("exit status 1", error=EC) == "go on after rate_limit (resource): 429 rate limited"


def test_default_prompt_renders_the_reason() -> None:
    out = SessionManager().continuation_prompt("the process was killed by signal 9")
    assert out == DEFAULT_CONTINUATION.replace("{reason}", "the process was killed by signal 9")
    assert "{" not in out
