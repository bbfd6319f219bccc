"""What the SDK wrappers raise when they stop, and what their hooks receive.

One exception type for every give-up, so callers need a single ``except``;
it subclasses the SDK's own ``ClaudeSDKError`` so code written against the
plain SDK (``except ClaudeSDKError``) keeps catching it after the switch.  The
original failure is always chained (``__cause__``), never swallowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from claude_agent_sdk import ClaudeSDKError

from resurgo.classifier import ErrorClass


class StopReason(StrEnum):
    """Why a resilient query or client gave up (the keys of ``SDKStats.give_ups``)."""

    NOT_RETRYABLE = "not_retryable"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    DEADLINE = "deadline"
    RETRY_AFTER_BEYOND_DEADLINE = "retry_after_beyond_deadline"
    BUDGET_EXHAUSTED = "budget_exhausted"
    CIRCUIT_OPEN = "circuit_open"
    CANCELLED = "cancelled"
    PROMPT_NOT_REPLAYABLE = "prompt_not_replayable"


class ResilientSDKError(ClaudeSDKError):
    """A resilient SDK call gave up.

    Attributes (plain data, so dashboards and callers need not parse the text):

    - ``error_class``: the classifier's verdict on the last failure (for a
      rejected call, the breaker's view: ``resource``/``circuit_open``).
    - ``reason``: a :class:`StopReason`.
    - ``attempts``: CLI runs started, the first included (0 when the breaker
      rejected the call before any run).
    - ``session_id``: the newest session id seen, for a later manual resume.
    - ``retry_after``: seconds until trying again makes sense, when known
      (the breaker's remaining open time, or the server's reset time).
    - ``result``: the last ``ResultMessage`` with ``is_error`` (if the run got
      that far), exactly as the SDK parsed it.
    """

    def __init__(
        self,
        message: str,
        *,
        error_class: ErrorClass,
        reason: StopReason,
        attempts: int,
        session_id: str | None = None,
        retry_after: float | None = None,
        result: Any = None,
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.reason = reason
        self.attempts = attempts
        self.session_id = session_id
        self.retry_after = retry_after
        self.result = result

    @property
    def retryable(self) -> bool:
        """Would a later call have a chance (the failure itself is transient)?"""
        return self.error_class.retryable


class SDKAttemptError(Exception):
    """One CLI run failed; raised inside the retry loop, never to the caller.

    Shaped so that any classifier makes sense of it: the message is the CLI's
    own error text, ``status_code`` the API status the CLI reported, and the SDK
    exception (if any) is the ``__cause__``.  ``error_class`` carries the verdict
    the wrapper already computed from the richer evidence (result event,
    synthetic assistant error, rate-limit event), which the wrapper's own
    retrier and breakers use directly.
    """

    def __init__(
        self,
        message: str,
        *,
        error_class: ErrorClass,
        status_code: int | None = None,
        exit_code: int | None = None,
        result: Any = None,
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.status_code = status_code
        self.exit_code = exit_code
        self.result = result


@dataclass(frozen=True, slots=True)
class RecoveryEvent:
    """A recovery is starting: given to ``on_recovery`` hooks (and written to the store).

    ``action`` is ``"resume"`` (the CLI is restarted with ``resume=session_id``),
    ``"restart"`` (a new session with the original prompt) or ``"resend"`` (the
    client's CLI is still alive; the turn is sent again on the same connection).
    ``attempt`` is the number of the run about to start; ``waited`` the seconds
    spent backing off since the failure (0 under ``set_testing``).
    """

    endpoint: str
    attempt: int
    action: str
    session_id: str | None
    error_class: ErrorClass
    exception: BaseException | None
    waited: float


__all__ = ["RecoveryEvent", "ResilientSDKError", "SDKAttemptError", "StopReason"]
