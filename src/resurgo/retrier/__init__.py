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
``PrometheusHook`` is imported lazily so ``prometheus_client`` loads only if used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
from resurgo.retrier._retrier import RESULT_REJECTED, Attempt, Retrier
from resurgo.retrier._stats import RetryStats
from resurgo.retrier._testing import is_testing, set_testing

if TYPE_CHECKING:
    from resurgo.retrier._prometheus import PrometheusHook

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
    if name == "PrometheusHook":
        from resurgo.retrier._prometheus import PrometheusHook

        return PrometheusHook
    raise AttributeError(f"module 'resurgo.retrier' has no attribute {name!r}")
