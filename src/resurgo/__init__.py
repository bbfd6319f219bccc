"""resurgo: make headless Claude Code runs finish anyway, and say clearly when they cannot.

The public surface is re-exported here and imported lazily, so ``import resurgo``
stays cheap (the ``classify`` command and short-lived scripts start fast) and
the general resilience library never drags in the Claude-specific supervisor.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # classify
    "classify": "resurgo.classify",
    "is_retryable": "resurgo.classify",
    "priority": "resurgo.classify",
    "suggest_strategy": "resurgo.classify",
    "Classifier": "resurgo.classify",
    "ErrorClass": "resurgo.classify",
    "ErrorType": "resurgo.classify",
    "Observation": "resurgo.classify",
    "Priority": "resurgo.classify",
    "Severity": "resurgo.classify",
    "Strategy": "resurgo.classify",
    # retry
    "retry": "resurgo.retry",
    "Retrier": "resurgo.retry",
    "RetryPolicy": "resurgo.retry",
    "RetryBudget": "resurgo.retry",
    "RetryError": "resurgo.retry",
    "RetryBudgetExhausted": "resurgo.retry",
    "set_testing": "resurgo.retry",
    # breaker
    "CircuitBreaker": "resurgo.breaker",
    "CircuitThresholds": "resurgo.breaker",
    "CircuitState": "resurgo.breaker",
    "CircuitOpenError": "resurgo.breaker",
    "BreakerGroup": "resurgo.breaker",
    # time
    "Clock": "resurgo.clock",
    "FakeClock": "resurgo.clock",
    "SystemClock": "resurgo.clock",
    # store
    "Store": "resurgo.store",
    # supervision (Claude Code specific)
    "Supervisor": "resurgo.supervise",
    "JobResult": "resurgo.supervise",
}

__all__ = [
    "BreakerGroup",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "CircuitThresholds",
    "Classifier",
    "Clock",
    "ErrorClass",
    "ErrorType",
    "FakeClock",
    "JobResult",
    "Observation",
    "Priority",
    "Retrier",
    "RetryBudget",
    "RetryBudgetExhausted",
    "RetryError",
    "RetryPolicy",
    "Severity",
    "Store",
    "Strategy",
    "Supervisor",
    "SystemClock",
    "__version__",
    "classify",
    "is_retryable",
    "priority",
    "retry",
    "set_testing",
    "suggest_strategy",
]


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'resurgo' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from resurgo.breaker import (
        BreakerGroup,
        CircuitBreaker,
        CircuitOpenError,
        CircuitState,
        CircuitThresholds,
    )
    from resurgo.classify import (
        Classifier,
        ErrorClass,
        ErrorType,
        Observation,
        Priority,
        Severity,
        Strategy,
        classify,
        is_retryable,
        priority,
        suggest_strategy,
    )
    from resurgo.clock import Clock, FakeClock, SystemClock
    from resurgo.retry import (
        Retrier,
        RetryBudget,
        RetryBudgetExhausted,
        RetryError,
        RetryPolicy,
        retry,
        set_testing,
    )
    from resurgo.store import Store
    from resurgo.supervise import JobResult, Supervisor
