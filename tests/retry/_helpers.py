"""Test helpers: exceptions that carry their own ErrorClass, so tests never depend
on the real classifier's rules and stay deterministic."""

from __future__ import annotations

from resurgo.classifier import ErrorClass, ErrorType, Severity


def ec(
    t: ErrorType | None = ErrorType.NETWORK,
    *,
    retryable: bool = True,
    retry_after: float | None = None,
) -> ErrorClass:
    return ErrorClass(
        type=t,
        severity=Severity.MEDIUM if t else None,
        category=t.value if t else "ok",
        description="test",
        retryable=retryable,
        retry_after=retry_after,
    )


class Classified(Exception):
    """An exception whose classification the test decides."""

    def __init__(self, error_class: ErrorClass, msg: str = "boom") -> None:
        super().__init__(msg)
        self.error_class = error_class


def classify(exc: BaseException) -> ErrorClass:
    if isinstance(exc, Classified):
        return exc.error_class
    return ec(ErrorType.INTERNAL, retryable=False)


def net(**kw: object) -> Classified:
    return Classified(ec(ErrorType.NETWORK, **kw))  # type: ignore[arg-type]
