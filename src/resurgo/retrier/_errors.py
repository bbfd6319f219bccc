"""Why a retrier stopped, and the errors that say so.

By default a retrier that gives up re-raises the caller's *original* exception
(stamina semantics: code that catches ``httpx.ReadTimeout`` keeps working when a
retry decorator is added) and attaches a :class:`RetryError` describing the
give-up, both as a PEP 678 note (visible in every traceback) and as an attribute
readable with :func:`retry_info`.  Callers that prefer one exception type to
catch can ask for the :class:`RetryError` to be raised instead.

An exhausted retry budget is different: it is a decision about the *dependency*,
not about this call, so it always raises the distinct
:class:`RetryBudgetExhausted` (chained to the original exception) so callers and
dashboards can tell "we chose not to add load" from "the call kept failing".
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from resurgo.classifier._types import ErrorClass

_ATTR = "__resurgo_retry_error__"


class GiveUpReason(StrEnum):
    """Why a call stopped being retried; the keys of ``RetryStats.give_ups``."""

    NOT_RETRYABLE = "not_retryable"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    DEADLINE = "deadline"
    RETRY_AFTER_BEYOND_DEADLINE = "retry_after_beyond_deadline"
    BUDGET_EXHAUSTED = "budget_exhausted"
    CANCELLED = "cancelled"


_EXPLAIN: dict[GiveUpReason, str] = {
    GiveUpReason.NOT_RETRYABLE: "the error is not retryable",
    GiveUpReason.ATTEMPTS_EXHAUSTED: "attempts exhausted",
    GiveUpReason.DEADLINE: "the next attempt would start after the deadline",
    GiveUpReason.RETRY_AFTER_BEYOND_DEADLINE: ("the server asked to wait beyond the deadline, so waiting is pointless"),
    GiveUpReason.BUDGET_EXHAUSTED: "the dependency's retry budget is exhausted",
    GiveUpReason.CANCELLED: "the retrier was cancelled",
}


class RetryError(Exception):
    """A retried call gave up; carries everything needed to explain why.

    Attributes are plain data so the supervisor and the dashboard can report the
    give-up without parsing the message.
    """

    def __init__(
        self,
        *,
        reason: GiveUpReason,
        attempts: int,
        elapsed: float,
        name: str,
        error_class: ErrorClass | None = None,
        last_exception: BaseException | None = None,
        last_result: Any = None,
        detail: str = "",
    ) -> None:
        self.reason = reason
        self.attempts = attempts
        self.elapsed = elapsed
        self.name = name
        self.error_class = error_class
        self.last_exception = last_exception
        self.last_result = last_result
        self.detail = detail
        super().__init__(self._message())

    def _message(self) -> str:
        plural = "attempt" if self.attempts == 1 else "attempts"
        msg = (
            f"resurgo.retry gave up on {self.name!r} after {self.attempts} {plural}"
            f" in {self.elapsed:.3f} s: {_EXPLAIN[self.reason]}"
        )
        if self.detail:
            msg += f" ({self.detail})"
        if self.last_exception is not None:
            kind = self.error_class.type if self.error_class is not None else None
            label = f"{kind.value} " if kind is not None else ""
            msg += f"; last error: {label}{type(self.last_exception).__name__}"
        elif self.error_class is not None and self.error_class.category == "result":
            msg += "; last result was rejected by retry_on_result"
        return msg

    def __reduce__(self) -> tuple[Any, ...]:  # keyword-only __init__ needs help to pickle
        return (_rebuild, (type(self), self.__dict__.copy()))


def _rebuild(cls: type[RetryError], state: dict[str, Any]) -> RetryError:
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    Exception.__init__(obj, obj._message())
    return obj


class RetryBudgetExhausted(RetryError):
    """The dependency's retry budget refused a retry: fail fast instead of adding load."""


def retry_info(exc: BaseException) -> RetryError | None:
    """The :class:`RetryError` a retrier attached to ``exc`` when it gave up, if any."""
    info = getattr(exc, _ATTR, None)
    return info if isinstance(info, RetryError) else None


def attach(exc: BaseException, info: RetryError) -> None:
    """Record the give-up on the original exception without changing its type."""
    try:
        setattr(exc, _ATTR, info)
    except (AttributeError, TypeError):  # exotic exceptions with __slots__; the note still works
        pass
    exc.add_note(str(info))
