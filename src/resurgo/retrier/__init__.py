"""Adaptive retries with budgets, for sync and asyncio code.

Public surface (everything else is private)::

    @retry                                   # or @retry(policy=..., on=..., dependency=...)
    def fetch(): ...

    r = Retrier(policy=RetryPolicy(max_attempts=5), dependency="anthropic-api")
    r.call(fn, *args); await r.call_async(afn, *args)
    for attempt in r:
        with attempt:
            ...
    r.stats()

The classifier (``resurgo.classify``) decides what is retryable; a per-dependency
:class:`RetryBudget` stops retry storms; ``set_testing(True)`` removes waits.
Names are imported on first use (see ``resurgo._lazy``), so ``prometheus_client``
loads only if ``PrometheusHook`` is used and the configuration schema can read
``RetryPolicy`` without loading the regex engine behind the hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from resurgo import _lazy

if TYPE_CHECKING:
    from resurgo.retrier._backoff import (
        AdaptiveBackoff,
        BackoffCalculator,
        DecorrelatedJitterBackoff,
        EqualJitterBackoff,
        ExponentialBackoff,
        FixedBackoff,
        FullJitterBackoff,
        LinearBackoff,
        LoadTracker,
        load_tracker_for,
    )
    from resurgo.retrier._budget import BudgetStats, RetryBudget, budget_for
    from resurgo.retrier._decorator import retry
    from resurgo.retrier._errors import GiveUpReason, RetryBudgetExhausted, RetryError, retry_info
    from resurgo.retrier._events import GiveUpEvent, RetryEvent, RetryInstrument
    from resurgo.retrier._hooks import LoggingHook
    from resurgo.retrier._policy import BackoffStrategy, PolicyError, RetryPolicy
    from resurgo.retrier._prometheus import PrometheusHook
    from resurgo.retrier._retrier import RESULT_REJECTED, Attempt, Retrier
    from resurgo.retrier._stats import RetryStats
    from resurgo.retrier._testing import is_testing, set_testing

_EXPORTS: dict[str, str] = {
    "AdaptiveBackoff": "resurgo.retrier._backoff",
    "Attempt": "resurgo.retrier._retrier",
    "BackoffCalculator": "resurgo.retrier._backoff",
    "BackoffStrategy": "resurgo.retrier._policy",
    "BudgetStats": "resurgo.retrier._budget",
    "DecorrelatedJitterBackoff": "resurgo.retrier._backoff",
    "EqualJitterBackoff": "resurgo.retrier._backoff",
    "ExponentialBackoff": "resurgo.retrier._backoff",
    "FixedBackoff": "resurgo.retrier._backoff",
    "FullJitterBackoff": "resurgo.retrier._backoff",
    "GiveUpEvent": "resurgo.retrier._events",
    "GiveUpReason": "resurgo.retrier._errors",
    "LinearBackoff": "resurgo.retrier._backoff",
    "LoadTracker": "resurgo.retrier._backoff",
    "LoggingHook": "resurgo.retrier._hooks",
    "PolicyError": "resurgo.retrier._policy",
    "PrometheusHook": "resurgo.retrier._prometheus",
    "RESULT_REJECTED": "resurgo.retrier._retrier",
    "Retrier": "resurgo.retrier._retrier",
    "RetryBudget": "resurgo.retrier._budget",
    "RetryBudgetExhausted": "resurgo.retrier._errors",
    "RetryError": "resurgo.retrier._errors",
    "RetryEvent": "resurgo.retrier._events",
    "RetryInstrument": "resurgo.retrier._events",
    "RetryPolicy": "resurgo.retrier._policy",
    "RetryStats": "resurgo.retrier._stats",
    "budget_for": "resurgo.retrier._budget",
    "is_testing": "resurgo.retrier._testing",
    "load_tracker_for": "resurgo.retrier._backoff",
    "retry": "resurgo.retrier._decorator",
    "retry_info": "resurgo.retrier._errors",
    "set_testing": "resurgo.retrier._testing",
}

__all__ = [
    "RESULT_REJECTED",
    "AdaptiveBackoff",
    "Attempt",
    "BackoffCalculator",
    "BackoffStrategy",
    "BudgetStats",
    "DecorrelatedJitterBackoff",
    "EqualJitterBackoff",
    "ExponentialBackoff",
    "FixedBackoff",
    "FullJitterBackoff",
    "GiveUpEvent",
    "GiveUpReason",
    "LinearBackoff",
    "LoadTracker",
    "LoggingHook",
    "PolicyError",
    "PrometheusHook",
    "Retrier",
    "RetryBudget",
    "RetryBudgetExhausted",
    "RetryError",
    "RetryEvent",
    "RetryInstrument",
    "RetryPolicy",
    "RetryStats",
    "budget_for",
    "is_testing",
    "load_tracker_for",
    "retry",
    "retry_info",
    "set_testing",
]


def __getattr__(name: str) -> Any:
    return _lazy.load(__name__, _EXPORTS, name, globals())


def __dir__() -> list[str]:
    return sorted(__all__)
