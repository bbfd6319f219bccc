"""One small class per breaker state (resilience4j's state objects).

Each state object lives for exactly one *episode*: every transition creates a
fresh one.  That makes the object itself the epoch token: a call remembers the
state object that admitted it, and when it finishes its outcome is recorded only
if that object is still current.  An outcome from a call admitted while CLOSED
can therefore never be mistaken for a half-open probe's verdict.

All methods ending in ``_locked`` run with the breaker's lock held and are
O(1) (or O(half_open_max_calls) for lease scans); they never call user code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from resurgo.breaker._events import CircuitState, ThresholdExceeded
from resurgo.breaker._window import CountWindow, SlidingWindow, WindowSnapshot

if TYPE_CHECKING:
    from resurgo.breaker._breaker import CircuitBreaker

__all__ = [
    "ClosedState",
    "DisabledState",
    "ForcedOpenState",
    "HalfOpenState",
    "MetricsOnlyState",
    "OpenState",
    "State",
]

_EMPTY = WindowSnapshot(0, 0, 0)


def _no_record(code: int, now: float) -> int:
    return 0


class State:
    """Base: reject nothing, record nothing.  Subclasses override what differs."""

    __slots__ = (
        "attempt", "b", "entered", "epoch", "fast", "ok_run", "ok_until", "records", "reject_until",
        "window", "wrecord",
    )
    kind: CircuitState = CircuitState.CLOSED

    def __init__(self, breaker: CircuitBreaker, now: float, attempt: int = 0) -> None:
        self.b = breaker
        self.entered = now
        self.attempt = attempt
        #: The breaker's intervention epoch when this episode began (see ``_trip_auth``).
        self.epoch = breaker._epoch
        #: True when admission needs no bookkeeping at all (CLOSED, METRICS_ONLY):
        #: the breaker's hot path checks this flag and skips ``acquire_locked``.
        self.fast = False
        #: False when outcomes are not recorded at all (DISABLED, the open states):
        #: failures then need not even be classified.
        self.records = False
        #: Calls arriving before this monotonic time are rejected without taking the
        #: lock (the open states' fast rejection); -inf: never.
        self.reject_until = -math.inf
        self.window: SlidingWindow | None = None
        #: The window's bound ``record`` (saves two attribute lookups on the hot path).
        self.wrecord: Callable[[int, float], int] = _no_record
        #: The hot path's success counter: while the window is clean and the clock
        #: is before ``ok_until``, a plain success is just ``ok_run += 1`` (under the
        #: lock); the run is folded into the window before anything reads it.
        self.ok_run = 0
        self.ok_until = -math.inf

    def acquire_locked(self, now: float) -> int:
        """A lease id (0: no lease needed) or -1 to reject."""
        return 0

    def record_locked(self, lease: int, code: int, now: float) -> bool:
        """Record a finished call; False when the outcome no longer counts."""
        return False

    def evaluate_locked(self, now: float) -> None:
        """Judge the window against the thresholds (recording states only)."""

    def release_locked(self, lease: int) -> None:
        """Give back a permit whose call counts as neither success nor failure."""

    def tick_locked(self, now: float) -> None:
        """Apply time-driven transitions (wait elapsed, leases expired)."""

    def retry_after(self, now: float) -> float | None:
        return None

    def fold_locked(self) -> None:
        """Move the batched successes into the window (O(1))."""
        k = self.ok_run
        if k:
            self.ok_run = 0
            w = self.window
            assert w is not None
            w.add_clean_successes(k)
            self.b._n_success += k

    def snapshot(self, now: float) -> WindowSnapshot:
        w = self.window
        if w is None:
            return _EMPTY
        self.fold_locked()
        return w.snapshot(now)

    @property
    def reason(self) -> str:
        return ""


class _Recording(State):
    """Shared by CLOSED and METRICS_ONLY: a sliding window judged against the thresholds."""

    __slots__ = ()

    def __init__(self, breaker: CircuitBreaker, now: float, window: SlidingWindow) -> None:
        super().__init__(breaker, now)
        self.fast = True
        self.records = True
        self.window = window
        self.wrecord = window.record

    def record_locked(self, lease: int, code: int, now: float) -> bool:
        if self.ok_run:
            self.fold_locked()
        if self.wrecord(code, now):
            self.evaluate_locked(now)
        self.ok_until = self.window.clean_until()  # type: ignore[union-attr]
        return True

    def exceeded(self) -> tuple[str, float, float] | None:
        """Which threshold the window is at or over, if any, once ``min_calls`` is reached.

        Rates are compared as ``count / calls >= threshold`` (a correctly
        rounded division) rather than ``count >= threshold * calls``: with
        0.3 * 10 == 3.0000000000000004 the latter would miss 3 failures in 10.
        """
        w = self.window
        assert w is not None
        self.fold_locked()
        t = self.b._thresholds
        c = w.calls
        if c < t.min_calls or c <= 0:
            return None
        fr = w.failures / c
        if fr >= t.failure_rate:
            return ("failure_rate", fr, t.failure_rate)
        sr = w.slow / c
        if sr >= t.slow_call_rate:
            return ("slow_call_rate", sr, t.slow_call_rate)
        return None


class ClosedState(_Recording):
    """Admit everything; open as soon as a recorded call puts a rate over its threshold."""

    __slots__ = ()
    kind = CircuitState.CLOSED

    def evaluate_locked(self, now: float) -> None:
        hit = self.exceeded()
        if hit is None:
            return
        metric, value, threshold = hit
        b = self.b
        b._emit_locked(
            ThresholdExceeded(
                breaker=b.name, at=b._clock.time(), monotonic=now, metric=metric,
                value=value, threshold=threshold, metrics=self.snapshot(now),
            )
        )
        calls = self.window.calls if self.window is not None else 0
        b._open_locked(
            self, f"{metric} {value:.0%} >= {threshold:.0%} over {calls} calls", now, attempt=1
        )


class MetricsOnlyState(_Recording):
    """Record and report, never open (resilience4j's METRICS_ONLY).

    The threshold-exceeded event fires once per excursion: it re-arms when the
    rates fall back below their thresholds, so a dashboard sees each incident
    once instead of on every call.
    """

    __slots__ = ("armed",)
    kind = CircuitState.METRICS_ONLY

    def __init__(self, breaker: CircuitBreaker, now: float, window: SlidingWindow) -> None:
        super().__init__(breaker, now, window)
        self.armed = True

    def record_locked(self, lease: int, code: int, now: float) -> bool:
        if self.ok_run:
            self.fold_locked()
        if self.wrecord(code, now) or not self.armed:
            self.evaluate_locked(now)
        self.ok_until = self.window.clean_until() if self.armed else -math.inf  # type: ignore[union-attr]
        return True

    def evaluate_locked(self, now: float) -> None:
        hit = self.exceeded()
        if hit is None:
            self.armed = True
            return
        if self.armed:
            self.armed = False
            b = self.b
            b._emit_locked(
                ThresholdExceeded(
                    breaker=b.name, at=b._clock.time(), monotonic=now, metric=hit[0],
                    value=hit[1], threshold=hit[2], metrics=self.snapshot(now),
                )
            )


class OpenState(State):
    """Reject until ``deadline`` (monotonic); then the first caller moves to HALF_OPEN."""

    __slots__ = ("deadline", "why")
    kind = CircuitState.OPEN

    def __init__(
        self, breaker: CircuitBreaker, now: float, attempt: int, wait: float, reason: str
    ) -> None:
        super().__init__(breaker, now, attempt)
        self.deadline = now + wait
        self.reject_until = self.deadline
        self.why = reason

    def acquire_locked(self, now: float) -> int:
        return -1

    def tick_locked(self, now: float) -> None:
        if now >= self.deadline:
            self.b._transition_locked(
                self, HalfOpenState(self.b, now, self.attempt), "wait in open elapsed", now
            )

    def retry_after(self, now: float) -> float | None:
        d = self.deadline - now
        return d if d > 0.0 else 0.0

    @property
    def reason(self) -> str:
        return self.why


class HalfOpenState(State):
    """Admit at most ``half_open_max_calls`` probes, each on an expiring lease.

    A lease that outlives ``half_open_lease`` is reclaimed the next time anyone
    asks for a permit (or reads the state) and counted as a slow failure — the
    dependency did not answer in time — so a hung probe delays the verdict by
    at most one lease instead of wedging the breaker.  Its late outcome, if it
    ever arrives, is discarded.

    The breaker opens again as soon as the failures already recorded make the
    failure (or slow-call) rate unavoidable, and closes once every probe has
    reported and the rates are under their thresholds.
    """

    __slots__ = ("issued", "leases", "max", "next_expiry", "recorded", "seq")
    kind = CircuitState.HALF_OPEN

    def __init__(self, breaker: CircuitBreaker, now: float, attempt: int) -> None:
        super().__init__(breaker, now, attempt)
        self.records = True
        self.max = breaker._thresholds.half_open_max_calls
        self.window = CountWindow(self.max)
        self.leases: dict[int, float] = {}
        self.issued = 0
        self.recorded = 0
        self.seq = 0
        self.next_expiry = float("inf")

    def acquire_locked(self, now: float) -> int:
        if now >= self.next_expiry:
            self._expire(now)
            if self.b._state is not self:
                return -2  # the expiry produced a verdict; the caller retries on the new state
        if self.issued >= self.max:
            return -1
        self.issued += 1
        self.seq += 1
        deadline = now + self.b._thresholds.half_open_lease
        self.leases[self.seq] = deadline
        if deadline < self.next_expiry:
            self.next_expiry = deadline
        return self.seq

    def tick_locked(self, now: float) -> None:
        if now >= self.next_expiry:
            self._expire(now)

    def _expire(self, now: float) -> None:
        expired = [k for k, d in self.leases.items() if d <= now]
        for k in expired:
            del self.leases[k]
        self.next_expiry = min(self.leases.values(), default=float("inf"))
        for _ in expired:
            if self.b._state is not self:
                return
            self.b._n_expired += 1
            self._count(3, now, "probe lease expired")

    def record_locked(self, lease: int, code: int, now: float) -> bool:
        d = self.leases.pop(lease, None)
        if d is None:
            return False  # lease expired and already counted, or not a probe of this episode
        if d <= self.next_expiry:
            self.next_expiry = min(self.leases.values(), default=float("inf"))
        self._count(code, now, "")
        return True

    def release_locked(self, lease: int) -> None:
        if self.leases.pop(lease, None) is not None:
            self.issued -= 1
            self.next_expiry = min(self.leases.values(), default=float("inf"))

    def record_batch_locked(self, successes: int, failures: int, now: float) -> None:
        """A batch outcome fills the remaining probe slots in proportion."""
        room = self.max - self.recorded
        total = successes + failures
        if room <= 0 or total <= 0:
            return
        k = min(room, total)
        f = round(failures * k / total)
        for i in range(k):
            if self.b._state is not self:
                return
            self.issued += 1
            self._count(1 if i < f else 0, now, "batch outcome")

    def _count(self, code: int, now: float, why: str) -> None:
        w = self.window
        assert w is not None
        w.record(code, now)
        self.recorded += 1
        t = self.b._thresholds
        m = self.max
        # Pessimistic verdict: even if every remaining probe succeeds, the rate stays over.
        if w.failures / m >= t.failure_rate or w.slow / m >= t.slow_call_rate:
            what = why or "probe failures"
            self.b._open_locked(
                self,
                f"{what}: {w.failures} failed, {w.slow} slow of {m} probes",
                now,
                attempt=self.attempt + 1,
            )
        elif self.recorded >= m:
            self.b._close_locked(self, f"{m} probes under the thresholds", now)

    def retry_after(self, now: float) -> float | None:
        return None

    @property
    def reason(self) -> str:
        return "probing"


class ForcedOpenState(State):
    """Reject everything until an operator resets the breaker.

    ``probeable`` marks an auth-triggered forced-open: a successful health
    probe run by ``execute_recovery`` may close it, since a refreshed
    credential is evidence enough; an operator's ``force_open`` is not
    overridden by probes.
    """

    __slots__ = ("probeable", "why")
    kind = CircuitState.FORCED_OPEN

    def __init__(self, breaker: CircuitBreaker, now: float, reason: str, probeable: bool) -> None:
        super().__init__(breaker, now)
        self.why = reason
        self.probeable = probeable
        self.reject_until = math.inf

    def acquire_locked(self, now: float) -> int:
        return -1

    @property
    def reason(self) -> str:
        return self.why


class DisabledState(State):
    """Admit everything, record nothing, emit nothing but the transition into it."""

    __slots__ = ()
    kind = CircuitState.DISABLED
