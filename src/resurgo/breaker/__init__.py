"""Circuit breakers: resilience4j's state machine, Polly's leases and manual control,
the taxonomy's judgement of what counts, and a group that fails over between backends.

Everything public is re-exported here and imported on first use (see ``resurgo._lazy``);
the modules behind it are private.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from resurgo import _lazy

if TYPE_CHECKING:
    from resurgo.breaker._addons import RecoveryReport
    from resurgo.breaker._breaker import (
        BreakerMetrics,
        CircuitBreaker,
        Classifier,
        Listener,
        Permit,
    )
    from resurgo.breaker._config import CircuitThresholds, ThresholdsError, WaitGenerator, WindowKind
    from resurgo.breaker._events import (
        CallRejected,
        CircuitEvent,
        CircuitOpenError,
        CircuitState,
        Outcome,
        StateTransition,
        ThresholdExceeded,
    )
    from resurgo.breaker._group import AllBackendsOpenError, Backend, BreakerGroup, GroupStrategy
    from resurgo.breaker._window import (
        CountWindow,
        SlidingWindow,
        TimeWindow,
        WindowSnapshot,
    )

_EXPORTS: dict[str, str] = {
    "AllBackendsOpenError": "resurgo.breaker._group",
    "Backend": "resurgo.breaker._group",
    "BreakerGroup": "resurgo.breaker._group",
    "BreakerMetrics": "resurgo.breaker._breaker",
    "CallRejected": "resurgo.breaker._events",
    "CircuitBreaker": "resurgo.breaker._breaker",
    "CircuitEvent": "resurgo.breaker._events",
    "CircuitOpenError": "resurgo.breaker._events",
    "CircuitState": "resurgo.breaker._events",
    "CircuitThresholds": "resurgo.breaker._config",
    "Classifier": "resurgo.breaker._breaker",
    "CountWindow": "resurgo.breaker._window",
    "GroupStrategy": "resurgo.breaker._group",
    "Listener": "resurgo.breaker._breaker",
    "Outcome": "resurgo.breaker._events",
    "Permit": "resurgo.breaker._breaker",
    "RecoveryReport": "resurgo.breaker._addons",
    "SlidingWindow": "resurgo.breaker._window",
    "StateTransition": "resurgo.breaker._events",
    "ThresholdExceeded": "resurgo.breaker._events",
    "ThresholdsError": "resurgo.breaker._config",
    "TimeWindow": "resurgo.breaker._window",
    "WaitGenerator": "resurgo.breaker._config",
    "WindowKind": "resurgo.breaker._config",
    "WindowSnapshot": "resurgo.breaker._window",
}

__all__ = [
    "AllBackendsOpenError",
    "Backend",
    "BreakerGroup",
    "BreakerMetrics",
    "CallRejected",
    "CircuitBreaker",
    "CircuitEvent",
    "CircuitOpenError",
    "CircuitState",
    "CircuitThresholds",
    "Classifier",
    "CountWindow",
    "GroupStrategy",
    "Listener",
    "Outcome",
    "Permit",
    "RecoveryReport",
    "SlidingWindow",
    "StateTransition",
    "ThresholdExceeded",
    "ThresholdsError",
    "TimeWindow",
    "WaitGenerator",
    "WindowKind",
    "WindowSnapshot",
]


def __getattr__(name: str) -> Any:
    return _lazy.load(__name__, _EXPORTS, name, globals())


def __dir__() -> list[str]:
    return sorted(__all__)
