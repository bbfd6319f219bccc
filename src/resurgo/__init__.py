"""resurgo: make headless Claude Code runs finish anyway, and say clearly when they cannot.

The public surface is re-exported here and imported lazily, so ``import resurgo``
stays cheap (the ``classify`` command and short-lived scripts start fast) and
the general resilience library never drags in the Claude-specific supervisor.
"""

from __future__ import annotations

import importlib

# Not ``from typing import TYPE_CHECKING``: importing typing costs milliseconds, and
# ``resurgo run`` imports this package before it starts the CLI (resurgo._quick).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

# The packages behind the functions ``classify`` and ``retry``: named apart from them, so
# importing a package never replaces a function of the same name on this module.
_CLASSIFY_PKG = "resurgo.classifier"
_RETRY_PKG = "resurgo.retrier"

#: Sub-packages reachable as attributes without importing them first (``resurgo.breaker.X``).
_SUBPACKAGES = frozenset({"breaker", "clock", "store", _CLASSIFY_PKG[8:], _RETRY_PKG[8:]})

_EXPORTS: dict[str, str] = {
    # classify
    "classify": _CLASSIFY_PKG,
    "is_retryable": _CLASSIFY_PKG,
    "priority": _CLASSIFY_PKG,
    "suggest_strategy": _CLASSIFY_PKG,
    "Classifier": _CLASSIFY_PKG,
    "ErrorClass": _CLASSIFY_PKG,
    "ErrorType": _CLASSIFY_PKG,
    "Observation": _CLASSIFY_PKG,
    "Priority": _CLASSIFY_PKG,
    "Severity": _CLASSIFY_PKG,
    "Strategy": _CLASSIFY_PKG,
    # retry
    "retry": _RETRY_PKG,
    "Retrier": _RETRY_PKG,
    "RetryPolicy": _RETRY_PKG,
    "RetryBudget": _RETRY_PKG,
    "RetryError": _RETRY_PKG,
    "RetryBudgetExhausted": _RETRY_PKG,
    "set_testing": _RETRY_PKG,
    # breaker
    "CircuitBreaker": "resurgo.breaker",
    "CircuitThresholds": "resurgo.breaker",
    "CircuitState": "resurgo.breaker",
    "CircuitOpenError": "resurgo.breaker",
    "BreakerGroup": "resurgo.breaker",
    # adaptive concurrency
    "AdaptiveLimiter": "resurgo.limit",
    "LimitExceededError": "resurgo.limit",
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
    "AdaptiveLimiter",
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
    "LimitExceededError",
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
        if name in _SUBPACKAGES:
            return importlib.import_module(f"{__name__}.{name}")
        raise AttributeError(f"module 'resurgo' has no attribute {name!r}")
    module = importlib.import_module(mod)
    value = getattr(module, name)
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
    from resurgo.classifier import (
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
    from resurgo.limit import AdaptiveLimiter, LimitExceededError
    from resurgo.retrier import (
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
