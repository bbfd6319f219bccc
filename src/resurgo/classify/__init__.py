"""Classification: what went wrong, is it worth retrying, when, and what recovery fits."""

from resurgo.classify._types import (
    DEFAULT_RETRYABLE,
    DEFAULT_SEVERITY,
    DEFAULT_STRATEGY,
    ErrorClass,
    ErrorType,
    Observation,
    ObservationError,
    Priority,
    Severity,
    Strategy,
)

__all__ = [
    "DEFAULT_RETRYABLE",
    "DEFAULT_SEVERITY",
    "DEFAULT_STRATEGY",
    "ErrorClass",
    "ErrorType",
    "Observation",
    "ObservationError",
    "Priority",
    "Severity",
    "Strategy",
]
