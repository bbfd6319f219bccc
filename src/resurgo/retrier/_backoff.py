"""Backoff calculators: how long to wait before attempt ``n + 1``.

Each strategy is a small object with the seed's ``BackoffCalculator`` interface,
``calculate(attempt, base_delay, error)`` and ``adjust_for_load(delay, load)``,
built once per policy so the retry path does no dispatch on strings.  The
jittered formulas are those of the AWS Architecture Blog, "Exponential Backoff
And Jitter" (full jitter does the least total work under contention; no jitter
is the clear loser because synchronised clients retry in lock-step).

``attempt`` is the 1-based number of the attempt that just failed, so the first
wait of the exponential family is ``base_delay``.  Every calculator clamps its
result to ``[0, max_delay]``; a server-provided ``retry_after`` is applied by the
retrier afterwards and may exceed ``max_delay`` (the server wins).
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable
from typing import Protocol

from resurgo.classifier._types import ErrorClass
from resurgo.clock import SYSTEM_CLOCK, Clock

#: 2**100 seconds is already beyond any cap; stops ``2.0 ** n`` overflowing.
_MAX_EXPONENT = 100


class BackoffCalculator(Protocol):
    """The seed's interface; ``previous`` is the last delay (decorrelated jitter needs it)."""

    def calculate(self, attempt: int, base_delay: float, error: ErrorClass | None, previous: float = 0.0) -> float: ...

    def adjust_for_load(self, delay: float, load: float) -> float: ...


def _exp(base: float, attempt: int) -> float:
    return base * 2.0 ** min(max(attempt - 1, 0), _MAX_EXPONENT)


class _Base:
    """Shared clamping; ``adjust_for_load`` is the identity for non-adaptive strategies."""

    __slots__ = ("jitter", "max_delay", "rand")

    def __init__(self, max_delay: float, *, jitter: bool = False, rand: Callable[[], float] | None = None) -> None:
        self.max_delay = max_delay
        self.jitter = jitter
        self.rand = rand or random.random

    def _clamp(self, d: float) -> float:
        if self.jitter:  # "equal jitter" on a deterministic schedule: keep half, randomise half
            d = d / 2.0 + self.rand() * d / 2.0
        return 0.0 if d <= 0.0 else (self.max_delay if d > self.max_delay else d)

    def adjust_for_load(self, delay: float, load: float) -> float:
        return delay

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_delay={self.max_delay}, jitter={self.jitter})"


class FixedBackoff(_Base):
    """``base`` every time: for dependencies whose recovery time does not grow with failures."""

    __slots__ = ()

    def calculate(self, attempt: int, base_delay: float, error: ErrorClass | None, previous: float = 0.0) -> float:
        return self._clamp(base_delay)


class LinearBackoff(_Base):
    """``base * attempt`` (supervisord's 1, 2, 3 s restart schedule)."""

    __slots__ = ()

    def calculate(self, attempt: int, base_delay: float, error: ErrorClass | None, previous: float = 0.0) -> float:
        return self._clamp(base_delay * max(attempt, 1))


class ExponentialBackoff(_Base):
    """``min(cap, base * 2**(attempt-1))``, deterministic unless ``jitter``."""

    __slots__ = ()

    def calculate(self, attempt: int, base_delay: float, error: ErrorClass | None, previous: float = 0.0) -> float:
        return self._clamp(_exp(base_delay, attempt))


class FullJitterBackoff(_Base):
    """AWS full jitter: ``rand(0, min(cap, base * 2**(attempt-1)))``."""

    __slots__ = ()

    def calculate(self, attempt: int, base_delay: float, error: ErrorClass | None, previous: float = 0.0) -> float:
        v = min(self.max_delay, _exp(base_delay, attempt))
        return min(self.max_delay, max(0.0, self.rand() * v))


class EqualJitterBackoff(_Base):
    """AWS equal jitter: ``v/2 + rand(0, v/2)`` with ``v = min(cap, base * 2**(attempt-1))``."""

    __slots__ = ()

    def calculate(self, attempt: int, base_delay: float, error: ErrorClass | None, previous: float = 0.0) -> float:
        v = min(self.max_delay, _exp(base_delay, attempt))
        return min(self.max_delay, max(0.0, v / 2.0 + self.rand() * v / 2.0))


class DecorrelatedJitterBackoff(_Base):
    """AWS decorrelated jitter: ``min(cap, rand(base, previous * 3))``, ``previous`` starts at base."""

    __slots__ = ()

    def calculate(self, attempt: int, base_delay: float, error: ErrorClass | None, previous: float = 0.0) -> float:
        prev = previous if previous > 0.0 else base_delay
        hi = max(base_delay, prev * 3.0)
        return min(self.max_delay, max(0.0, base_delay + self.rand() * (hi - base_delay)))


class AdaptiveBackoff(_Base):
    """Equal-jitter exponential backoff, stretched by the dependency's observed failure rate.

    The rule (documented because operators need to predict it):
    ``delay = min(cap, schedule(attempt) * (1 + gain * load))`` where ``load`` is
    the :class:`LoadTracker`'s failure-rate EWMA in ``[0, 1]``.  With the default
    gain of 3 a dependency failing every call waits 4x the normal schedule; as
    successes come back (or as time passes without calls) ``load`` decays and the
    delay shrinks back to the plain schedule.  Load is shared by every retrier of
    the dependency, so one caller's failures slow all callers down: that is the
    point, a struggling dependency is spared the combined retry traffic.
    """

    __slots__ = ("gain",)

    def __init__(
        self,
        max_delay: float,
        *,
        gain: float = 3.0,
        jitter: bool = True,
        rand: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(max_delay, jitter=jitter, rand=rand)
        self.gain = gain

    def calculate(self, attempt: int, base_delay: float, error: ErrorClass | None, previous: float = 0.0) -> float:
        return self._clamp(_exp(base_delay, attempt))

    def adjust_for_load(self, delay: float, load: float) -> float:
        load = 0.0 if load <= 0.0 else (1.0 if load >= 1.0 else load)
        d = delay * (1.0 + self.gain * load)
        return 0.0 if d <= 0.0 else (self.max_delay if d > self.max_delay else d)


class LoadTracker:
    """Failure-rate EWMA of one dependency, shared by all its retriers.

    Each attempt outcome moves the rate: ``rate += alpha * (x - rate)`` with
    ``x = 1`` for a failure, ``0`` for a success.  When read, the rate also decays
    with idle time, halving every ``half_life`` seconds without outcomes, so a
    dependency that everyone stopped calling (because everyone is backing off)
    is seen as recovering rather than frozen at its worst.  Thread-safe; the lock
    is held for a few arithmetic operations only, so it is also safe to call from
    asyncio code.
    """

    __slots__ = ("_last", "_lock", "_rate", "alpha", "clock", "half_life")

    def __init__(self, *, alpha: float = 0.2, half_life: float = 30.0, clock: Clock | None = None) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
        if not half_life > 0.0:
            raise ValueError(f"half_life must be > 0 seconds, got {half_life!r}")
        self.alpha = alpha
        self.half_life = half_life
        self.clock = clock or SYSTEM_CLOCK
        self._rate = 0.0
        self._last = self.clock.monotonic()
        self._lock = threading.Lock()

    def _decayed(self, now: float) -> float:
        idle = now - self._last
        if idle <= 0.0:
            return self._rate
        return self._rate * math.exp2(-idle / self.half_life)

    def record(self, failed: bool) -> None:
        now = self.clock.monotonic()
        with self._lock:
            r = self._decayed(now)
            self._rate = r + self.alpha * ((1.0 if failed else 0.0) - r)
            self._last = now

    def load(self) -> float:
        """Current failure rate in ``[0, 1]``."""
        now = self.clock.monotonic()
        with self._lock:
            return self._decayed(now)

    def __repr__(self) -> str:
        return f"LoadTracker(load={self.load():.3f}, alpha={self.alpha}, half_life={self.half_life})"


_trackers: dict[str, LoadTracker] = {}
_trackers_lock = threading.Lock()


def load_tracker_for(dependency: str) -> LoadTracker:
    """The process-wide :class:`LoadTracker` of ``dependency`` (created on first use)."""
    with _trackers_lock:
        t = _trackers.get(dependency)
        if t is None:
            t = _trackers[dependency] = LoadTracker()
        return t
