"""Circuit breakers: resilience4j's state machine, Polly's leases and manual control,
the taxonomy's judgement of what counts, and a group that fails over between backends.

Everything public is re-exported here; the modules behind it are private.
"""

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
