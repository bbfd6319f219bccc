"""One small class per breaker state (resilience4j's state objects).

Each state object lives for exactly one *episode*: every transition creates a
fresh one.  That makes the object itself the epoch token: a call remembers the
state object that admitted it, and when it finishes its outcome is recorded only
if that object is still current.  An outcome from a call admitted while CLOSED
can therefore never be mistaken for a half-open probe's verdict.

**A state decides its own transitions.**  Every method that can end the episode
returns a :class:`Transition` (the next state object and the reason) or
``None``; the breaker applies it, records it and delivers the event.  States
never see the breaker: what they need -- the thresholds in force, the lifetime
counters, the wait in OPEN, the event queue -- comes through a
:class:`StateContext` the breaker owns.  So this module imports nothing from
``_breaker`` and a state can be read (and tested) on its own.

All methods ending in ``_locked`` run with the breaker's lock held and are
O(1) (or O(half_open_max_calls) for lease scans); they never call user code.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from resurgo.breaker._config import CircuitThresholds, WaitGenerator, WindowKind
from resurgo.breaker._events import CircuitEvent, CircuitState, ThresholdExceeded
from resurgo.breaker._window import CountWindow, SlidingWindow, TimeWindow, WindowSnapshot
from resurgo.clock import Clock

__all__ = [
    "ClosedState",
    "Counters",
    "DisabledState",
    "ForcedOpenState",
    "HalfOpenState",
    "MetricsOnlyState",
    "OpenState",
    "State",
    "StateContext",
    "Transition",
]

log = logging.getLogger("resurgo.breaker")

_EMPTY = WindowSnapshot(0, 0, 0)


def _no_record(code: int, now: float) -> int:
    return 0


class Counters:
    """The breaker's lifetime totals; states add what they fold or expire."""

    __slots__ = ("expired", "failure", "ignored", "rejected", "stale", "success")

    def __init__(self) -> None:
        self.success = 0
        self.failure = 0
        self.ignored = 0
        self.rejected = 0
        self.expired = 0
        self.stale = 0


class StateContext:
    """Everything a state may use, owned by one breaker (and nothing else of it).

    ``emit`` queues an event for delivery after the lock is released;
    ``thresholds`` is replaced by the breaker when they change, and states read
    it at decision time, so an adjustment applies to the running episode.
    """

    __slots__ = ("clock", "counts", "emit", "name", "thresholds", "wait_generator")

    def __init__(
        self,
        name: str,
        clock: Clock,
        thresholds: CircuitThresholds,
        wait_generator: WaitGenerator | None,
        emit: Callable[[CircuitEvent], None],
    ) -> None:
        self.name = name
        self.clock = clock
        self.thresholds = thresholds
        self.wait_generator = wait_generator
        self.emit = emit
        self.counts = Counters()

    def new_window(self) -> SlidingWindow:
        t = self.thresholds
        if t.window_kind is WindowKind.COUNT:
            return CountWindow(int(t.sliding_window))
        return TimeWindow(t.sliding_window, bucket=t.bucket_seconds)

    def open_wait(self, attempt: int) -> float:
        """Seconds in OPEN for the ``attempt``-th consecutive opening."""
        gen = self.wait_generator
        wait = gen(attempt) if gen is not None else self.thresholds.wait_for(attempt)
        if not (wait >= 0 and math.isfinite(wait)):
            log.error("breaker %r: wait generator returned %r; using wait_in_open", self.name, wait)
            wait = self.thresholds.wait_in_open
        return wait

    # The states every transition can lead to, built in one place.
    def closed(self, now: float) -> ClosedState:
        return ClosedState(self, now, self.new_window())

    def opened(self, now: float, attempt: int, reason: str, wait: float | None = None) -> OpenState:
        return OpenState(self, now, attempt, self.open_wait(attempt) if wait is None else wait, reason)


class Transition:
    """A state's decision: hand over to ``to`` because of ``reason``."""

    __slots__ = ("reason", "to")

    def __init__(self, to: State, reason: str) -> None:
        self.to = to
        self.reason = reason

    def __repr__(self) -> str:
        return f"Transition({self.to.kind.value}, {self.reason!r})"


class State:
    """Base: reject nothing, record nothing, never move on.  Subclasses override what differs."""

    __slots__ = (
        "attempt", "ctx", "entered", "epoch", "fast", "ok_run", "ok_until", "records", "reject_until",
        "streak", "window", "wrecord",
    )
    kind: CircuitState = CircuitState.CLOSED
    #: Whether an auth error or a rate limit reported by a call this state admitted
    #: may open the breaker (False for METRICS_ONLY, which never opens).
    trips = False

    def __init__(self, ctx: StateContext, now: float, attempt: int = 0) -> None:
        self.ctx = ctx
        self.entered = now
        self.attempt = attempt
        #: The breaker's intervention epoch when this episode began; the breaker
        #: stamps it when it installs the state (see ``CircuitBreaker._trip_auth``).
        self.epoch = 0
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
        #: failed calls in a row, no success among them (``consecutive_failures``)
        self.streak = 0

    # ------------------------------------------------------------ admission
    def probes_may_close(self) -> bool:
        """Whether passing health probes may close the breaker from this state."""
        return False

    def acquire_locked(self, now: float) -> int:
        """A lease id (0: no lease needed) or -1 to reject."""
        return 0

    def holds_locked(self, lease: int) -> bool:
        """Is ``lease`` still a live permit of this episode?"""
        return True

    def release_locked(self, lease: int) -> None:
        """Give back a permit whose call counts as neither success nor failure."""

    def permits_call(self) -> bool:
        """Would a call be admitted now (taking no permit)?"""
        return True

    def admits_in(self, now: float) -> float | None:
        """Seconds until a call can be admitted: 0 now, None if unknown."""
        return 0.0

    # ------------------------------------------------------------ outcomes and time
    def record_locked(self, lease: int, code: int, now: float) -> Transition | None:
        """Record a finished call (the breaker checked ``holds_locked`` first)."""
        return None

    def record_batch_locked(self, successes: int, failures: int, now: float) -> Transition | None:
        """Record a batch outcome at once (``handle_partial_failure``)."""
        return None

    def tick_locked(self, now: float) -> Transition | None:
        """Apply time-driven transitions (wait elapsed, leases expired)."""
        return None

    def auth_error_locked(self, reason: str, now: float) -> Transition | None:
        """Credentials are bad: whether (and how) this state hands over."""
        return None

    def lengthens_open(self, until: float) -> bool:
        """Would a rate limit resetting at ``until`` keep this state open longer?"""
        return False

    def rate_limited_locked(self, wait: float, reason: str, now: float) -> Transition | None:
        """The server said when it takes calls again: open until then (if this state opens)."""
        return None

    def probes_passed_locked(self, reason: str, now: float) -> Transition | None:
        """Every health probe passed: close, if probes may close this state."""
        if not self.probes_may_close():
            return None
        return Transition(self.ctx.closed(now), reason)

    def reshape_locked(self) -> None:
        """The window's shape changed: start an empty window (recording states only)."""

    # ------------------------------------------------------------ reading
    def retry_after(self, now: float) -> float | None:
        return None

    def open_for(self, now: float) -> float | None:
        """Seconds this state stays open (for the transition event), None if not timed."""
        return None

    def fold_locked(self) -> None:
        """Move the batched successes into the window (O(1))."""
        k = self.ok_run
        if k:
            self.ok_run = 0
            self.streak = 0
            w = self.window
            assert w is not None
            w.add_clean_successes(k)
            self.ctx.counts.success += k

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

    def __init__(self, ctx: StateContext, now: float, window: SlidingWindow) -> None:
        super().__init__(ctx, now)
        self.fast = True
        self.records = True
        self.window = window
        self.wrecord = window.record

    def record_locked(self, lease: int, code: int, now: float) -> Transition | None:
        if self.ok_run:
            self.fold_locked()
        self.streak = self.streak + 1 if code & 1 else 0
        tr = self.evaluate_locked(now) if self.wrecord(code, now) else None
        self.ok_until = self.window.clean_until()  # type: ignore[union-attr]
        return tr

    def record_batch_locked(self, successes: int, failures: int, now: float) -> Transition | None:
        if not successes + failures:
            return None
        w = self.window
        assert w is not None
        self.fold_locked()
        # the order within a batch is unknown: a success among them ends the run of failures
        self.streak = failures if successes else self.streak + failures
        w.record_many(successes, failures, now)
        self.ok_until = w.clean_until()
        c = self.ctx.counts
        c.success += successes
        c.failure += failures
        return self.evaluate_locked(now)

    def evaluate_locked(self, now: float) -> Transition | None:
        """Judge the window against the thresholds."""
        return None

    def reshape_locked(self) -> None:
        self.fold_locked()
        w = self.ctx.new_window()
        self.window = w
        self.wrecord = w.record
        self.ok_until = -math.inf

    def exceeded(self) -> tuple[str, float, float] | None:
        """Which threshold the window is at or over, if any, once ``min_calls`` is reached.

        Rates are compared as ``count / calls >= threshold`` (a correctly
        rounded division) rather than ``count >= threshold * calls``: with
        0.3 * 10 == 3.0000000000000004 the latter would miss 3 failures in 10.
        """
        w = self.window
        assert w is not None
        self.fold_locked()
        t = self.ctx.thresholds
        cf = t.consecutive_failures
        if cf is not None and self.streak >= cf:
            return ("consecutive_failures", float(self.streak), float(cf))
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

    def _exceeded_event(self, hit: tuple[str, float, float], now: float) -> None:
        ctx = self.ctx
        ctx.emit(
            ThresholdExceeded(
                breaker=ctx.name, at=ctx.clock.time(), monotonic=now, metric=hit[0],
                value=hit[1], threshold=hit[2], metrics=self.snapshot(now),
            )
        )


class ClosedState(_Recording):
    """Admit everything; open as soon as a recorded call puts a rate over its threshold."""

    __slots__ = ()
    kind = CircuitState.CLOSED
    trips = True

    def evaluate_locked(self, now: float) -> Transition | None:
        hit = self.exceeded()
        if hit is None:
            return None
        self._exceeded_event(hit, now)
        metric, value, threshold = hit
        calls = self.window.calls if self.window is not None else 0
        if metric == "consecutive_failures":
            reason = f"{value:g} calls failed in a row (limit {threshold:g})"
        else:
            reason = f"{metric} {value:.0%} >= {threshold:.0%} over {calls} calls"
        return Transition(self.ctx.opened(now, 1, reason), reason)

    def auth_error_locked(self, reason: str, now: float) -> Transition | None:
        return Transition(ForcedOpenState(self.ctx, now, reason, True), reason)

    def rate_limited_locked(self, wait: float, reason: str, now: float) -> Transition | None:
        return Transition(self.ctx.opened(now, max(1, self.attempt), reason, wait), reason)


class MetricsOnlyState(_Recording):
    """Record and report, never open (resilience4j's METRICS_ONLY).

    The threshold-exceeded event fires once per excursion: it re-arms when the
    rates fall back below their thresholds, so a dashboard sees each incident
    once instead of on every call.
    """

    __slots__ = ("armed",)
    kind = CircuitState.METRICS_ONLY

    def __init__(self, ctx: StateContext, now: float, window: SlidingWindow) -> None:
        super().__init__(ctx, now, window)
        self.armed = True

    def record_locked(self, lease: int, code: int, now: float) -> Transition | None:
        if self.ok_run:
            self.fold_locked()
        if self.wrecord(code, now) or not self.armed:
            self.evaluate_locked(now)
        self.ok_until = self.window.clean_until() if self.armed else -math.inf  # type: ignore[union-attr]
        return None

    def evaluate_locked(self, now: float) -> Transition | None:
        hit = self.exceeded()
        if hit is None:
            self.armed = True
        elif self.armed:
            self.armed = False
            self._exceeded_event(hit, now)
        return None


class OpenState(State):
    """Reject until ``deadline`` (monotonic); then the first caller moves to HALF_OPEN."""

    __slots__ = ("deadline", "why")
    kind = CircuitState.OPEN

    def probes_may_close(self) -> bool:
        return True

    def __init__(self, ctx: StateContext, now: float, attempt: int, wait: float, reason: str) -> None:
        super().__init__(ctx, now, attempt)
        self.deadline = now + wait
        self.reject_until = self.deadline
        self.why = reason

    def acquire_locked(self, now: float) -> int:
        return -1

    def permits_call(self) -> bool:
        return False

    def admits_in(self, now: float) -> float | None:
        return self.retry_after(now)

    def tick_locked(self, now: float) -> Transition | None:
        if now >= self.deadline:
            return Transition(HalfOpenState(self.ctx, now, self.attempt), "wait in open elapsed")
        return None

    def auth_error_locked(self, reason: str, now: float) -> Transition | None:
        return Transition(ForcedOpenState(self.ctx, now, reason, True), reason)

    def lengthens_open(self, until: float) -> bool:
        return until > self.deadline

    def rate_limited_locked(self, wait: float, reason: str, now: float) -> Transition | None:
        if now + wait <= self.deadline:
            return None
        return Transition(self.ctx.opened(now, max(1, self.attempt), reason, wait), reason)

    def retry_after(self, now: float) -> float | None:
        d = self.deadline - now
        return d if d > 0.0 else 0.0

    def open_for(self, now: float) -> float | None:
        return self.deadline - now

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
    failure (or slow-call) rate unavoidable, and closes as soon as the rates
    stay under their thresholds whatever the probes still out answer (at the
    latest when every probe has reported).
    """

    __slots__ = ("issued", "leases", "max", "next_expiry", "recorded", "seq")
    kind = CircuitState.HALF_OPEN
    trips = True

    def __init__(self, ctx: StateContext, now: float, attempt: int) -> None:
        super().__init__(ctx, now, attempt)
        self.records = True
        self.max = ctx.thresholds.half_open_max_calls
        self.window = CountWindow(self.max)
        self.leases: dict[int, float] = {}
        self.issued = 0
        self.recorded = 0
        self.seq = 0
        self.next_expiry = float("inf")

    def acquire_locked(self, now: float) -> int:
        # The breaker ticks (expiring leases) before asking, so no expiry check here.
        if self.issued >= self.max:
            return -1
        self.issued += 1
        self.seq += 1
        deadline = now + self.ctx.thresholds.half_open_lease
        self.leases[self.seq] = deadline
        if deadline < self.next_expiry:
            self.next_expiry = deadline
        return self.seq

    def holds_locked(self, lease: int) -> bool:
        return lease in self.leases

    def probes_may_close(self) -> bool:
        return True

    def permits_call(self) -> bool:
        return self.issued < self.max

    def admits_in(self, now: float) -> float | None:
        return 0.0 if self.issued < self.max else None

    def tick_locked(self, now: float) -> Transition | None:
        if now < self.next_expiry:
            return None
        expired = [k for k, d in self.leases.items() if d <= now]
        for k in expired:
            del self.leases[k]
        self.next_expiry = min(self.leases.values(), default=float("inf"))
        for _ in expired:
            self.ctx.counts.expired += 1
            tr = self._count(3, now, "probe lease expired")
            if tr is not None:
                return tr
        return None

    def record_locked(self, lease: int, code: int, now: float) -> Transition | None:
        d = self.leases.pop(lease)
        if d <= self.next_expiry:
            self.next_expiry = min(self.leases.values(), default=float("inf"))
        return self._count(code, now, "")

    def release_locked(self, lease: int) -> None:
        if self.leases.pop(lease, None) is not None:
            self.issued -= 1
            self.next_expiry = min(self.leases.values(), default=float("inf"))

    def record_batch_locked(self, successes: int, failures: int, now: float) -> Transition | None:
        """A batch outcome fills the remaining probe slots in proportion."""
        room = self.max - self.recorded
        total = successes + failures
        if room <= 0 or total <= 0:
            return None
        k = min(room, total)
        f = round(failures * k / total)
        for i in range(k):
            self.issued += 1
            tr = self._count(1 if i < f else 0, now, "batch outcome")
            if tr is not None:
                return tr
        return None

    def _count(self, code: int, now: float, why: str) -> Transition | None:
        w = self.window
        assert w is not None
        w.record(code, now)
        self.recorded += 1
        t = self.ctx.thresholds
        m = self.max
        # Pessimistic verdict: even if every remaining probe succeeds, the rate stays over.
        if w.failures / m >= t.failure_rate or w.slow / m >= t.slow_call_rate:
            reason = f"{why or 'probe failures'}: {w.failures} failed, {w.slow} slow of {m} probes"
            return Transition(self.ctx.opened(now, self.attempt + 1, reason), reason)
        if self.recorded >= m:
            return Transition(self.ctx.closed(now), f"{m} probes under the thresholds")
        # Optimistic verdict: even if every probe still out fails (and is slow), the rates stay
        # under: close now.  Waiting for the last probes' answers only held every caller back
        # (the supervisor's probes are real requests: a chaos run waited 7.5 s in half-open
        # for the third answer after two had already decided it).  Their late outcomes are stale.
        left = m - self.recorded
        if (w.failures + left) / m < t.failure_rate and (w.slow + left) / m < t.slow_call_rate:
            return Transition(self.ctx.closed(now), f"{self.recorded} of {m} probes under the thresholds "
                                                    "whatever the others answer")
        return None

    def auth_error_locked(self, reason: str, now: float) -> Transition | None:
        return Transition(ForcedOpenState(self.ctx, now, reason, True), reason)

    def rate_limited_locked(self, wait: float, reason: str, now: float) -> Transition | None:
        return Transition(self.ctx.opened(now, self.attempt + 1, reason, wait), reason)

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

    def __init__(self, ctx: StateContext, now: float, reason: str, probeable: bool) -> None:
        super().__init__(ctx, now)
        self.why = reason
        self.probeable = probeable
        self.reject_until = math.inf

    def probes_may_close(self) -> bool:
        return self.probeable

    def acquire_locked(self, now: float) -> int:
        return -1

    def permits_call(self) -> bool:
        return False

    def admits_in(self, now: float) -> float | None:
        return None

    @property
    def reason(self) -> str:
        return self.why


class DisabledState(State):
    """Admit everything, record nothing, emit nothing but the transition into it."""

    __slots__ = ()
    kind = CircuitState.DISABLED
