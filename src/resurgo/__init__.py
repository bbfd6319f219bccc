"""resurgo: make headless Claude Code runs finish anyway, and say clearly when they cannot.

The public surface is re-exported here and imported lazily, so ``import resurgo``
stays cheap (the ``classify`` command and short-lived scripts start fast) and
the general resilience library never drags in the Claude-specific supervisor.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Where the classifier and the retrier live.  Today the packages share their names with the
# functions ``resurgo.classify`` and ``resurgo.retry``; scripts/rename_packages.py moves them to
# ``resurgo.classifier`` and ``resurgo.retrier`` (and deletes the transitional block below), after
# which a function and a package never compete for one attribute of this module.
_CLASSIFY_PKG = "resurgo.classify"
_RETRY_PKG = "resurgo.retry"

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
    # transitional: value = getattr(module, name)
    value = _callable(module) if name in _CALLABLE_SUBPACKAGES else getattr(module, name)
    globals()[name] = value
    return value


# --- BEGIN transitional: package and function share a name (removed by scripts/rename_packages.py)
class _CallableModule(types.ModuleType):
    """``resurgo.classify`` / ``resurgo.retry``: a sub-package that is also the function of its name.

    Importing a sub-package (any ``import resurgo.retry`` or ``from resurgo.retry
    import ...``, which the supervisor does) makes Python set the attribute
    ``resurgo.retry`` to the module, replacing the re-exported function, so
    ``resurgo.retry(max_attempts=5)`` would fail with "module is not callable"
    depending on import order.  Calling these two modules calls their function,
    so both spellings work whatever was imported first.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, self.__name__.rpartition(".")[2])(*args, **kwargs)


def _callable(module: types.ModuleType) -> types.ModuleType:
    if not isinstance(module, _CallableModule):
        module.__class__ = _CallableModule
    return module


#: Public names that are both a function and the sub-package defining it.
_CALLABLE_SUBPACKAGES = ("classify", "retry")


class _Package(types.ModuleType):
    """This package's module type: the import system's ``setattr(resurgo, "retry", module)``
    after a sub-package import makes that module callable (see :class:`_CallableModule`)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _CALLABLE_SUBPACKAGES and isinstance(value, types.ModuleType):
            value = _callable(value)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
for _name in _CALLABLE_SUBPACKAGES:  # imported before this module finished (unusual, but possible)
    if f"{__name__}.{_name}" in sys.modules:
        setattr(sys.modules[__name__], _name, sys.modules[f"{__name__}.{_name}"])
# --- END transitional


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
    from resurgo.limit import AdaptiveLimiter, LimitExceededError
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
