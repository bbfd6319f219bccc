"""Adaptive concurrency limits: find how many calls a dependency takes at once, and keep to it.

Netflix's concurrency-limits and Envoy's adaptive concurrency filter for
Python, sync and asyncio: an :class:`AdaptiveLimiter` is a semaphore whose
size an algorithm (:class:`AIMD`, :class:`Gradient2`, :class:`Vegas`) moves
from what the calls report -- success with a latency, or dropped (the
classifier's ``resource`` verdicts: 429, 529, "temporarily limiting").  Part
of the general library: it never imports the supervisor.

    limiter = AdaptiveLimiter("api", algorithm=AIMD(AIMDOptions(initial_limit=4, max_limit=64)))

    with limiter.acquire() as lease:      # sync; or ``async with limiter.slot() as lease``
        call_api()                        # an overload exception reports a drop, anything else is ignored

    @limiter                              # sync or async functions
    async def call_api(): ...
"""

from resurgo.limit._algorithms import (
    AIMD,
    ALGORITHMS,
    AIMDOptions,
    Gradient2,
    GradientOptions,
    LimitAlgorithm,
    LimitOptionsError,
    Sample,
    Vegas,
    VegasOptions,
    make_algorithm,
)
from resurgo.limit._events import LimitChanged, LimitEvent, LimitExceededError, OverloadSignal, Paused, Rejected
from resurgo.limit._limiter import (
    AdaptiveLimiter,
    Lease,
    LimiterOptions,
    LimiterSnapshot,
    Listener,
    default_is_overload,
    fixed_limiter,
)

__all__ = [
    "AIMD",
    "ALGORITHMS",
    "AIMDOptions",
    "AdaptiveLimiter",
    "Gradient2",
    "GradientOptions",
    "Lease",
    "LimitAlgorithm",
    "LimitChanged",
    "LimitEvent",
    "LimitExceededError",
    "LimitOptionsError",
    "LimiterOptions",
    "LimiterSnapshot",
    "Listener",
    "OverloadSignal",
    "Paused",
    "Rejected",
    "Sample",
    "Vegas",
    "VegasOptions",
    "default_is_overload",
    "fixed_limiter",
    "make_algorithm",
]
