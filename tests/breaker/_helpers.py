"""Test helpers: a classifier keyed on exception types and compact thresholds.

The real classifier is injected in production; tests pin the verdicts so the
breaker's reactions are checked independently of the rule packs.
"""

from __future__ import annotations

from resurgo.breaker import CircuitThresholds
from resurgo.classifier import ErrorClass, ErrorType, Severity


class NetErr(Exception):
    """network: counts as a failure."""


class AuthErr(Exception):
    """auth: forces the breaker open."""


class BadRequest(Exception):
    """validation: counts as neither."""


class RateLimited(Exception):
    """resource with a reset time."""

    def __init__(self, retry_after: float | None) -> None:
        super().__init__(f"429, retry after {retry_after}")
        self.retry_after = retry_after


class NotAnError(Exception):
    """the classifier says: not an error (e.g. cancelled by resurgo)."""


def _ec(t: ErrorType, retry_after: float | None = None) -> ErrorClass:
    return ErrorClass(
        type=t, severity=Severity.HIGH, category=t.value, description=f"{t.value} error",
        retryable=t is not ErrorType.VALIDATION, retry_after=retry_after,
    )


def classifier(exc: BaseException) -> ErrorClass:
    if isinstance(exc, AuthErr):
        return _ec(ErrorType.AUTH)
    if isinstance(exc, BadRequest):
        return _ec(ErrorType.VALIDATION)
    if isinstance(exc, RateLimited):
        return _ec(ErrorType.RESOURCE, exc.retry_after)
    if isinstance(exc, NotAnError):
        return ErrorClass.not_an_error()
    if isinstance(exc, TimeoutError):
        return _ec(ErrorType.TIMEOUT)
    return _ec(ErrorType.NETWORK)


def count_thresholds(**kw: object) -> CircuitThresholds:
    base: dict[str, object] = dict(
        failure_rate=0.5, min_calls=4, sliding_window=10, window_kind="count",
        wait_in_open=30.0, half_open_max_calls=2, slow_call_duration=5.0,
        half_open_lease=10.0,
    )
    base.update(kw)
    return CircuitThresholds(**base)  # type: ignore[arg-type]
