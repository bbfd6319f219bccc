"""The circuit breaker: a coordinator over small state objects that decide for themselves.

``CircuitBreaker`` holds the current state object, runs the call paths, and
delivers events; it never asks which state it is in.  Each state object
(``_states``) returns the :class:`~resurgo.breaker._states.Transition` it
decides on, and the breaker installs it (``_transition_locked``).  Optional
behaviours -- load-adjusted thresholds, partial failures, recovery actions and
health probes -- live in ``_addons`` and reach the breaker through ``_step``.

Design notes (why it looks like this):

* **No serialised calls.**  The lock guards only O(1) bookkeeping — reading the
  state, taking a probe lease, adding an outcome to the window — and is never
  held while user code runs, so a slow dependency does not queue callers.
* **One lock acquire on the hot path.**  A CLOSED breaker admits a call by
  reading one attribute (``state.fast``); only recording the outcome takes the
  lock.  Thresholds are evaluated only while the window holds a failure or a
  slow call.
* **Exactly one thread performs each transition.**  Transitions happen under
  the lock and only from the state object that is still current; state objects
  are per-episode, so a late outcome from a previous episode is discarded.
* **Listeners run outside the lock, in state-machine order.**  Events queue
  under the lock; one thread at a time (holding a separate delivery lock)
  hands them out, looping until the queue is empty, so every listener sees
  CLOSED->OPEN before OPEN->HALF_OPEN even when two threads made the two
  transitions.  A thread that caused an event returns only after it was
  delivered.  Listeners may call back into the breaker (what they cause is
  delivered after the event in hand), but must not block on another thread
  that is itself making breaker transitions.  Only transitions, threshold
  crossings and rejections queue events: a CLOSED success never does.
* **Stale results never re-trip.**  A call's result counts only against the
  episode (state object) that admitted it.  A failure, a rate limit or an
  auth error from a call admitted before a transition, ``reset()`` or any
  other operator control is counted as STALE.  Two exceptions, both facts
  about the dependency rather than about the episode: an auth error still
  forces the breaker open after an automatic transition (the credential is
  bad whichever episode saw it) -- but never after an operator control or a
  recovery that closed the breaker, which is someone saying it was fixed;
  and a rate limit may lengthen an automatic OPEN to the server's reset time.
* **The classifier decides what counts** (``shared/spec/error-taxonomy.md``):
  validation errors and cancellations release their permit and count as
  neither; auth errors force the breaker open; a rate limit with a reset time
  opens it until that reset; everything else is a failure.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast, overload

from resurgo.breaker._addons import Recovery, RecoveryReport, check_batch, load_adjusted
from resurgo.breaker._config import CircuitThresholds, ThresholdsError, WaitGenerator
from resurgo.breaker._events import (
    CallRejected,
    CircuitEvent,
    CircuitOpenError,
    CircuitState,
    Outcome,
    StateTransition,
)
from resurgo.breaker._states import (
    DisabledState,
    ForcedOpenState,
    MetricsOnlyState,
    State,
    StateContext,
    Transition,
)
from resurgo.breaker._window import WindowSnapshot
from resurgo.classifier._types import ErrorClass, ErrorType
from resurgo.clock import SYSTEM_CLOCK, Clock, SystemClock

if TYPE_CHECKING:
    from collections.abc import Coroutine

__all__ = ["BreakerMetrics", "CircuitBreaker", "Listener", "Permit", "RecoveryReport"]

log = logging.getLogger("resurgo.breaker")

P = ParamSpec("P")
R = TypeVar("R")

Listener = Callable[[CircuitEvent], object]
Classifier = Callable[[BaseException], ErrorClass]


def _default_classifier() -> Classifier:
    """Import the classifier lazily: most breakers never see a failure, and importing
    the rule engine costs start-up time the hot path should not pay."""
    import importlib

    mod = importlib.import_module("resurgo.classifier")
    return cast(Classifier, mod.classify)


@dataclass(frozen=True, slots=True)
class BreakerMetrics:
    """A consistent snapshot of a breaker (taken under its lock).

    ``window`` is the current state's sliding window (the half-open probe
    window while HALF_OPEN); the counters are lifetime totals.
    """

    name: str
    state: CircuitState
    window: WindowSnapshot
    successes: int
    failures: int
    ignored: int
    rejected: int
    expired_leases: int
    stale: int
    attempt: int
    retry_after: float | None
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "state": self.state.value,
            "window": self.window.to_dict(),
            "successes": self.successes,
            "failures": self.failures,
            "ignored": self.ignored,
            "rejected": self.rejected,
            "expired_leases": self.expired_leases,
            "stale": self.stale,
            "attempt": self.attempt,
            "retry_after": self.retry_after,
            "reason": self.reason,
        }


class Permit:
    """The right to make one call; report its end exactly once.

    The low-level API (resilience4j's ``tryAcquirePermission`` / ``onSuccess``
    / ``onError`` / ``releasePermission``) for code that cannot be wrapped in
    a function, such as a streamed response whose failure shows up later.
    """

    __slots__ = ("_b", "_done", "_lease", "_st", "_t0")

    def __init__(self, breaker: CircuitBreaker, st: State, lease: int, t0: float) -> None:
        self._b = breaker
        self._st = st
        self._lease = lease
        self._t0 = t0
        self._done = False

    @property
    def state(self) -> CircuitState:
        """The state that admitted the call (HALF_OPEN for a probe)."""
        return self._st.kind

    def _finish(self) -> None:
        if self._done:
            raise RuntimeError("this permit was already reported")
        self._done = True

    def on_success(self, result: object = None, *, check_result: bool = False) -> Outcome:
        """The call returned; ``check_result`` runs the breaker's ``failure_result`` on it."""
        self._finish()
        b = self._b
        return b._on_result(self._st, self._lease, result, self._t0, b._mono(), check_result)

    def on_error(self, exc: BaseException) -> Outcome:
        """The call raised ``exc``; returns how the breaker judged it."""
        self._finish()
        return self._b._on_exception(self._st, self._lease, exc, self._t0)

    def release(self) -> None:
        """The call did not happen or does not count: give the permit back."""
        self._finish()
        self._b._release(self._st, self._lease)


_Stack = tuple[Permit, "_Stack | None"]


class CircuitBreaker:
    """A circuit breaker for sync and asyncio code, thread-safe without serialising calls.

    Use it as a decorator (``@breaker``), a context manager (``with breaker:``
    / ``async with breaker:``), through ``call`` / ``call_async``, or through
    ``acquire()`` permits.  Rejected calls raise :class:`CircuitOpenError`
    without calling through.

    Keyword arguments (all optional):

    thresholds:
        :class:`CircuitThresholds` (default: its defaults).
    clock:
        A :class:`resurgo.clock.Clock`; tests pass a ``FakeClock``.
    classifier:
        ``exc -> ErrorClass``; defaults to :func:`resurgo.classifier.classify`,
        imported at the first failure.  A classifier that raises is logged and
        the failure is counted as a plain failure, never lost.
    failure_result:
        ``result -> bool``; True turns a returned value into a failure (an
        HTTP response object with status 503, say).
    ignore:
        Exception types that count as neither success nor failure, without
        asking the classifier.  Non-``Exception`` ``BaseException``s
        (cancellation, ``KeyboardInterrupt``) are always ignored.
    wait_generator:
        ``attempt -> seconds`` in OPEN; defaults to ``thresholds.wait_for``.
    honour_retry_after:
        Open until a rate limit's reset when the error says when (default True).
    history_limit:
        Transitions kept in ``history`` (default 256).
    listeners:
        Callables receiving every :class:`CircuitEvent`.
    """

    def __init__(
        self,
        name: str = "breaker",
        *,
        thresholds: CircuitThresholds | None = None,
        clock: Clock | None = None,
        classifier: Classifier | None = None,
        failure_result: Callable[[Any], bool] | None = None,
        ignore: tuple[type[BaseException], ...] = (),
        wait_generator: WaitGenerator | None = None,
        honour_retry_after: bool = True,
        history_limit: int = 256,
        listeners: Iterable[Listener] = (),
    ) -> None:
        if thresholds is None:
            thresholds = CircuitThresholds()
        elif not isinstance(thresholds, CircuitThresholds):
            raise TypeError(f"thresholds must be CircuitThresholds, got {type(thresholds).__name__}")
        if history_limit < 0:
            raise ValueError("history_limit must be >= 0")
        self.name = name
        self._clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        # The system clock's bound method adds a Python frame to every reading;
        # time.monotonic is the same clock without it.
        self._mono: Callable[[], float] = (
            time.monotonic if type(self._clock) is SystemClock else self._clock.monotonic
        )
        self._lock = threading.Lock()
        self._classifier = classifier
        self._failure_result = failure_result
        self._ignore = tuple(ignore)
        self._honour_retry_after = honour_retry_after
        self._baseline = thresholds
        self._thresholds = thresholds
        self._slow_s = thresholds.slow_call_duration
        # One comparison on the hot path: a call faster than this needs no more
        # thought (-1 when a result predicate must look at every result).
        self._fast_limit = self._slow_s if failure_result is None else -1.0
        self._history: deque[StateTransition] = deque(maxlen=history_limit)
        self._listeners: tuple[Listener, ...] = tuple(listeners)
        self._pending: list[CircuitEvent] = []
        # Held by the one thread handing out events (see ``_drain``); _deliverer is its id.
        self._deliver_lock = threading.Lock()
        self._deliverer = 0
        # Bumped by every deliberate intervention (operator controls, a recovery that
        # closed the breaker); a state remembers the value it was created under, so a
        # late auth error can tell whether someone has fixed things since its call began.
        self._epoch = 0
        self._recovery = Recovery()
        self._cv: ContextVar[_Stack | None] = ContextVar(f"resurgo.breaker.{name}", default=None)
        # What the state objects may use (thresholds, counters, the event queue), and no more.
        self._ctx = StateContext(name, self._clock, thresholds, wait_generator, self._emit_locked)
        self._counts = self._ctx.counts
        self._state: State = self._ctx.closed(self._mono())

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self._state.kind.value})"

    # ================================================================== hot path
    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``fn`` through the breaker; raises :class:`CircuitOpenError` when rejected."""
        # The body is repeated in the decorator's wrapper (``_sync_wrapper``): one
        # Python frame less per call is a fifth of the breaker's overhead.
        st = self._state
        if st.fast:
            mono = self._mono
            t0 = mono()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                self._on_exception(st, 0, exc, t0)
                raise
            t1 = mono()
            if t1 - t0 < self._fast_limit:
                with self._lock:
                    if t1 < st.ok_until and self._state is st:
                        st.ok_run += 1
                        return result
                self._record(st, 0, 0, t1)
                return result
            self._on_result(st, 0, result, t0, t1, True)
            return result
        if st.reject_until > -math.inf:
            now = self._mono()
            if now < st.reject_until:
                raise self._reject(st, now)
        st, lease = self._acquire_slow()
        t0 = self._mono()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._on_exception(st, lease, exc, t0)
            raise
        self._on_result(st, lease, result, t0, self._mono(), True)
        return result

    def _sync_wrapper(self, fn: Callable[P, R]) -> Callable[P, R]:
        mono = self._mono
        lock = self._lock
        on_exception = self._on_exception
        on_result = self._on_result
        acquire_slow = self._acquire_slow
        reject = self._reject
        record = self._record
        ninf = -math.inf

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            st = self._state
            if st.fast:
                t0 = mono()
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    on_exception(st, 0, exc, t0)
                    raise
                t1 = mono()
                if t1 - t0 < self._fast_limit:
                    with lock:
                        if t1 < st.ok_until and self._state is st:
                            st.ok_run += 1
                            return result
                    record(st, 0, 0, t1)
                    return result
                on_result(st, 0, result, t0, t1, True)
                return result
            if st.reject_until > ninf:
                now = mono()
                if now < st.reject_until:
                    raise reject(st, now)
            st, lease = acquire_slow()
            t0 = mono()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                on_exception(st, lease, exc, t0)
                raise
            on_result(st, lease, result, t0, mono(), True)
            return result

        return wrapper

    async def call_async(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``fn(*args, **kwargs)`` through the breaker.

        Cancellation releases the permit (a cancelled probe frees its slot) and
        is never counted as a failure.
        """
        st = self._state
        lease = 0
        if not st.fast:
            if st.reject_until > -math.inf:
                now = self._mono()
                if now < st.reject_until:
                    raise self._reject(st, now)
            st, lease = self._acquire_slow()
        mono = self._mono
        t0 = mono()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._on_exception(st, lease, exc, t0)
            raise
        t1 = mono()
        if lease == 0 and t1 - t0 < self._fast_limit:
            with self._lock:
                if t1 < st.ok_until and self._state is st:
                    st.ok_run += 1
                    return result
        self._on_result(st, lease, result, t0, t1, True)
        return result

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate a function or coroutine function (detected with ``inspect``)."""
        if inspect.iscoroutinefunction(fn):
            return self._async_wrapper(fn)
        return self._sync_wrapper(fn)

    def _async_wrapper(
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]:
        # call_async's body again: an extra coroutine frame per call costs more than
        # the breaker's own bookkeeping.
        mono = self._mono
        lock = self._lock
        on_exception = self._on_exception
        on_result = self._on_result
        acquire_slow = self._acquire_slow
        reject = self._reject
        ninf = -math.inf

        @functools.wraps(fn)
        async def awrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            st = self._state
            lease = 0
            if not st.fast:
                if st.reject_until > ninf:
                    now = mono()
                    if now < st.reject_until:
                        raise reject(st, now)
                st, lease = acquire_slow()
            t0 = mono()
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                on_exception(st, lease, exc, t0)
                raise
            t1 = mono()
            if lease == 0 and t1 - t0 < self._fast_limit:
                with lock:
                    if t1 < st.ok_until and self._state is st:
                        st.ok_run += 1
                        return result
            on_result(st, lease, result, t0, t1, True)
            return result

        return awrapper

    # ================================================================== permits
    def acquire(self) -> Permit:
        """Take a permit or raise :class:`CircuitOpenError`; report it with the permit."""
        st = self._state
        lease = 0
        if not st.fast:
            st, lease = self._acquire_slow()
        return Permit(self, st, lease, self._mono())

    def is_call_permitted(self) -> bool:
        """Would a call be admitted now?  Takes no permit (so the answer can go stale)."""
        now = self._mono()
        with self._lock:
            ok = self._tick_locked(now).permits_call()
        if self._pending:
            self._drain()
        return ok

    def __enter__(self) -> Permit:
        p = self.acquire()
        self._cv.set((p, self._cv.get()))
        return p

    def __exit__(
        self,
        et: type[BaseException] | None,
        ev: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        top = self._cv.get()
        if top is None:  # pragma: no cover - only by misuse of __exit__
            raise RuntimeError("CircuitBreaker.__exit__ without a matching __enter__")
        p, rest = top
        self._cv.set(rest)
        if ev is None:
            p.on_success()
        else:
            p.on_error(ev)

    async def __aenter__(self) -> Permit:
        return self.__enter__()

    async def __aexit__(
        self,
        et: type[BaseException] | None,
        ev: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(et, ev, tb)

    # ================================================================== bookkeeping
    def _tick_locked(self, now: float) -> State:
        for _ in range(4):  # OPEN -> HALF_OPEN -> (expired leases) -> OPEN at most
            st = self._state
            tr = st.tick_locked(now)
            if tr is None:
                return st
            self._transition_locked(st, tr, now)
        return self._state

    def _step(
        self,
        decide: Callable[[State, float], Transition | None],
        *,
        intervention: bool = False,
        tick: bool = True,
    ) -> tuple[State, State]:
        """One locked step for the add-ons (``_addons.Core``): let the current state
        decide, apply its transition, deliver the events; returns (before, after)."""
        now = self._mono()
        with self._lock:
            st = self._tick_locked(now) if tick else self._state
            tr = decide(st, now)
            if tr is not None:
                if intervention:
                    self._epoch += 1  # results of calls admitted before this are stale
                self._transition_locked(st, tr, now)
            after = self._state
        if self._pending:
            self._drain()
        return st, after

    def _rejected_locked(self, st: State, now: float) -> None:
        self._counts.rejected += 1
        if self._listeners:
            self._pending.append(
                CallRejected(
                    breaker=self.name, at=self._clock.time(), monotonic=now,
                    state=st.kind, retry_after=st.retry_after(now),
                )
            )

    def _reject(self, st: State, now: float) -> CircuitOpenError:
        """Count a rejection by an open state without going through ``_acquire_slow``.

        ``_rejected_locked`` inlined: this is the open breaker's hot path."""
        with self._lock:
            self._counts.rejected += 1
            if self._listeners:
                self._pending.append(
                    CallRejected(
                        breaker=self.name, at=self._clock.time(), monotonic=now,
                        state=st.kind, retry_after=st.retry_after(now),
                    )
                )
        if self._pending:
            self._drain()
        return CircuitOpenError(self.name, st.kind, st.retry_after(now), st.reason)

    def _acquire_slow(self) -> tuple[State, int]:
        now = self._mono()
        with self._lock:
            st = self._tick_locked(now)
            lease = st.acquire_locked(now)
            if lease < 0:
                self._rejected_locked(st, now)
        if self._pending:
            self._drain()
        if lease < 0:
            raise CircuitOpenError(self.name, st.kind, st.retry_after(now), st.reason)
        return st, lease

    def _on_result(
        self, st: State, lease: int, result: object, t0: float, t1: float, check: bool
    ) -> Outcome:
        code = 2 if t1 - t0 >= self._slow_s else 0
        pred = self._failure_result
        if check and pred is not None:
            try:
                bad = pred(result)
            except BaseException:
                self._release(st, lease)
                raise
            if bad:
                code |= 1
        return self._record(st, lease, code, t1)

    def _record(self, st: State, lease: int, code: int, now: float) -> Outcome:
        if not st.records:
            return Outcome.FAILURE if code & 1 else Outcome.SUCCESS
        with self._lock:
            if self._state is st and st.holds_locked(lease):
                tr = st.record_locked(lease, code, now)
                if code & 1:
                    self._counts.failure += 1
                    outcome = Outcome.FAILURE
                else:
                    self._counts.success += 1
                    outcome = Outcome.SUCCESS
                if tr is not None:
                    self._transition_locked(st, tr, now)
            else:
                self._counts.stale += 1
                outcome = Outcome.STALE
        if self._pending:
            self._drain()
        return outcome

    def _release(self, st: State, lease: int) -> None:
        if lease:
            with self._lock:
                if self._state is st:
                    st.release_locked(lease)

    def _classify(self, exc: BaseException) -> ErrorClass | None:
        clf = self._classifier
        try:
            if clf is None:
                clf = self._classifier = _default_classifier()
            return clf(exc)
        except Exception:  # the breaker must never lose the caller's exception
            log.exception("breaker %r: classifier failed; counting the error as a failure",
                          self.name)
            return None

    def _on_exception(self, st: State, lease: int, exc: BaseException, t0: float) -> Outcome:
        t1 = self._mono()
        if not st.records:
            return Outcome.FAILURE
        if not isinstance(exc, Exception) or (self._ignore and isinstance(exc, self._ignore)):
            return self._ignored(st, lease)
        ec = self._classify(exc)
        code = 3 if t1 - t0 >= self._slow_s else 1
        if ec is None:
            return self._record(st, lease, code, t1)
        t = ec.type
        if t is None or t is ErrorType.VALIDATION:
            return self._ignored(st, lease)
        if t is ErrorType.AUTH and st.trips:
            return self._trip_auth(st, ec, t1)
        if t is ErrorType.RESOURCE and ec.retry_after is not None and self._honour_retry_after and st.trips:
            return self._trip_rate_limit(st, lease, ec, t1)
        return self._record(st, lease, code, t1)

    def _ignored(self, st: State, lease: int) -> Outcome:
        with self._lock:
            self._counts.ignored += 1
            if lease and self._state is st:
                st.release_locked(lease)
        return Outcome.IGNORED

    def _trip_auth(self, st: State, ec: ErrorClass, now: float) -> Outcome:
        """Credentials are bad: every further call would fail the same way, so stop
        sending until someone fixes them (operator reset) or a health probe passes.

        The credential is bad whichever episode the call began in, so an automatic
        transition since admission does not make the error stale; an operator
        control or a recovery that closed the breaker since then does (someone
        said it was fixed, and this call predates the fix).  Whether the current
        state hands over is its own decision (``auth_error_locked``)."""
        with self._lock:
            if st.epoch != self._epoch:
                self._counts.stale += 1
                return Outcome.STALE
            self._counts.failure += 1
            cur = self._state
            desc = ec.description or ec.category or "authentication failed"
            tr = cur.auth_error_locked(f"auth error: {desc}", now)
            if tr is not None:
                self._transition_locked(cur, tr, now)
        if self._pending:
            self._drain()
        return Outcome.FORCED_OPEN

    def _trip_rate_limit(self, st: State, lease: int, ec: ErrorClass, now: float) -> Outcome:
        """The server said when it will take calls again; waiting less only earns more 429s.

        Only a call of the current episode (its probe lease still live) opens the
        breaker; an older one is STALE -- except that it may lengthen an OPEN the
        breaker entered on its own to the server's reset time."""
        assert ec.retry_after is not None
        wait = max(0.0, float(ec.retry_after))
        cap = self._ctx.thresholds.max_retry_after
        if cap is not None:
            wait = min(wait, cap)
        with self._lock:
            cur = self._state
            fresh = cur is st and st.holds_locked(lease)
            if not fresh and not (st.epoch == self._epoch and cur.lengthens_open(now + wait)):
                self._counts.stale += 1
                return Outcome.STALE
            self._counts.failure += 1
            tr = cur.rate_limited_locked(wait, f"rate limited; resets in {wait:.3g} s", now)
            if tr is not None:
                self._transition_locked(cur, tr, now)
        if self._pending:
            self._drain()
        return Outcome.RATE_LIMITED

    # ================================================================== transitions
    def _transition_locked(self, frm: State, tr: Transition, now: float) -> bool:
        """Install the state ``frm`` decided on, if ``frm`` is still current."""
        if self._state is not frm:
            return False
        new = tr.to
        new.epoch = self._epoch
        self._state = new
        ev = StateTransition(
            breaker=self.name, at=self._clock.time(), monotonic=now,
            from_state=frm.kind, to_state=new.kind, reason=tr.reason,
            metrics=frm.snapshot(now), attempt=new.attempt, open_for=new.open_for(now),
        )
        self._history.append(ev)
        if self._listeners:
            self._pending.append(ev)
        return True

    def _emit_locked(self, ev: CircuitEvent) -> None:
        if self._listeners:
            self._pending.append(ev)

    def _drain(self) -> None:
        """Deliver the queued events, oldest first, to every listener.

        Only the holder of ``_deliver_lock`` takes events off the queue, and it
        keeps going until the queue is empty, so two threads that made
        consecutive transitions cannot deliver them in the wrong order.  A
        listener calling back into the breaker re-enters here on the delivering
        thread; it returns at once and the loop below delivers what it caused.
        """
        me = threading.get_ident()
        if self._deliverer == me:
            return
        with self._deliver_lock:
            self._deliverer = me
            try:
                while True:
                    with self._lock:
                        events, self._pending = self._pending, []
                    if not events:
                        return
                    listeners = self._listeners
                    for ev in events:
                        for fn in listeners:
                            try:
                                fn(ev)
                            except Exception:
                                log.exception("breaker %r: listener %r failed", self.name, fn)
            finally:
                self._deliverer = 0

    def _manual(self, make: Callable[[State, float], State], reason: str) -> None:
        """An operator control: an intervention that always moves to ``make(current, now)``."""
        self._step(lambda st, now: Transition(make(st, now), reason), intervention=True, tick=False)

    # ================================================================== operator controls
    def reset(self, reason: str = "reset") -> None:
        """Back to CLOSED with an empty window and the wait back-off forgotten."""
        self._manual(lambda st, now: self._ctx.closed(now), reason)

    def force_open(self, reason: str = "forced open by operator") -> None:
        """Reject everything until ``reset()`` (health probes will not close it)."""
        self._manual(lambda st, now: ForcedOpenState(self._ctx, now, reason, False), reason)

    def disable(self, reason: str = "disabled") -> None:
        """Let everything through and record nothing (until ``reset()``)."""
        self._manual(lambda st, now: DisabledState(self._ctx, now), reason)

    def metrics_only(self, reason: str = "metrics only") -> None:
        """Record and report threshold crossings but never open (until ``reset()``)."""
        self._manual(lambda st, now: MetricsOnlyState(self._ctx, now, self._ctx.new_window()), reason)

    def open(self, *, wait: float | None = None, reason: str = "opened by operator") -> None:
        """Open now for ``wait`` seconds (default: the wait generator's next wait)."""
        if wait is not None and not (wait >= 0 and math.isfinite(wait)):
            raise ValueError(f"wait must be a finite number >= 0, got {wait!r}")
        self._manual(lambda st, now: self._ctx.opened(now, st.attempt + 1, reason, wait), reason)

    def open_until(self, timestamp: float, *, reason: str = "opened until a reset time") -> None:
        """Open until the wall-clock ``timestamp`` (epoch seconds), e.g. a 429 reset."""
        if not math.isfinite(timestamp):
            raise ValueError(f"timestamp must be finite, got {timestamp!r}")
        self.open(wait=max(0.0, timestamp - self._clock.time()), reason=reason)

    # ================================================================== inspection
    @property
    def state(self) -> CircuitState:
        """The current state, after applying any transition time alone has caused."""
        now = self._mono()
        with self._lock:
            kind = self._tick_locked(now).kind
        if self._pending:
            self._drain()
        return kind

    @property
    def retry_after(self) -> float | None:
        """Seconds until a call can be admitted: 0 when it can now, None if unknown."""
        now = self._mono()
        with self._lock:
            ra = self._tick_locked(now).admits_in(now)
        if self._pending:
            self._drain()
        return ra

    @property
    def thresholds(self) -> CircuitThresholds:
        """The thresholds in force (after ``adjust_thresholds``)."""
        return self._ctx.thresholds

    @property
    def baseline_thresholds(self) -> CircuitThresholds:
        """The thresholds last given to ``set_thresholds`` (what load adjustments start from)."""
        return self._baseline

    @property
    def history(self) -> tuple[StateTransition, ...]:
        """Past transitions, oldest first (at most ``history_limit``)."""
        with self._lock:
            return tuple(self._history)

    def metrics(self) -> BreakerMetrics:
        now = self._mono()
        with self._lock:
            st = self._tick_locked(now)
            st.fold_locked()  # batched successes count before the counters are read
            c = self._counts
            m = BreakerMetrics(
                name=self.name, state=st.kind, window=st.snapshot(now),
                successes=c.success, failures=c.failure, ignored=c.ignored,
                rejected=c.rejected, expired_leases=c.expired, stale=c.stale,
                attempt=st.attempt, retry_after=st.retry_after(now), reason=st.reason,
            )
        if self._pending:
            self._drain()
        return m

    # ================================================================== listeners
    def add_listener(self, fn: Listener) -> Listener:
        """Register ``fn(event)``; returns ``fn`` so it works as a decorator."""
        with self._lock:
            self._listeners = (*self._listeners, fn)
        return fn

    def remove_listener(self, fn: Listener) -> None:
        with self._lock:
            self._listeners = tuple(x for x in self._listeners if x is not fn)

    # ================================================================== thresholds
    def set_thresholds(self, thresholds: CircuitThresholds) -> None:
        """Replace the thresholds (and the load-adjustment baseline).

        A new window shape (kind, size or bucket) starts an empty window,
        since outcomes recorded under another shape cannot be re-bucketed.
        """
        if not isinstance(thresholds, CircuitThresholds):
            raise ThresholdsError(
                f"set_thresholds needs CircuitThresholds, got {type(thresholds).__name__}"
            )
        with self._lock:
            self._baseline = thresholds
        self._apply(thresholds)

    def _apply(self, t: CircuitThresholds) -> None:
        with self._lock:
            old = self._ctx.thresholds
            self._ctx.thresholds = t
            self._slow_s = t.slow_call_duration
            self._fast_limit = self._slow_s if self._failure_result is None else -1.0
            if (old.window_kind, old.window_size, old.bucket_seconds) != (
                t.window_kind, t.window_size, t.bucket_seconds
            ):
                self._state.reshape_locked()

    # ================================================================== optional behaviours (_addons)
    def adjust_thresholds(self, load: float) -> CircuitThresholds:
        """Adapt to the caller's own load (0 = idle, 1 = at capacity) and return the result.

        The rule, always applied to the *baseline* (so repeated calls never
        compound): with ``s = clamp((load - 0.5) / 0.5, 0, 1)``

        * ``failure_rate`` and ``slow_call_rate`` are multiplied by ``1 - s/2``;
        * ``wait_in_open`` (and ``max_wait_in_open`` if needed) by ``1 + s``.

        So up to half load nothing changes, and at full load or beyond the
        breaker trips at half the failure rate and waits twice as long.  Why:
        when we are saturated, every call to a failing dependency spends
        capacity that healthy work needs, so it pays to shed earlier and leave
        the dependency alone longer.  ``min_calls`` and the window stay as they
        are, so the breaker still needs the same evidence.
        """
        t = load_adjusted(self._baseline, load)
        self._apply(t)
        return t

    def handle_partial_failure(self, success: int, failure: int) -> CircuitState:
        """Record a batch outcome (``success`` calls worked, ``failure`` failed) at once.

        For batched requests whose parts succeed or fail independently: the
        window takes them as that many calls (a count window keeps the last
        ``size`` in proportion) and the thresholds are checked once.  In
        HALF_OPEN the batch fills the remaining probe slots in proportion; in
        the open states and DISABLED it is not recorded.  Returns the state.
        """
        check_batch(success, failure)
        _, after = self._step(lambda st, now: st.record_batch_locked(success, failure, now))
        return after.kind

    def add_recovery_action(self, fn: Callable[[], object]) -> Callable[[], object]:
        """Register an action ``execute_recovery`` runs while open (refresh a token,
        restart a process).  Sync or async; returns ``fn`` (decorator-friendly)."""
        self._recovery.actions.append(fn)
        return fn

    def add_health_probe(self, fn: Callable[[], object]) -> Callable[[], object]:
        """Register an active health check: truthy (or returning without raising
        ``None``) means the dependency is back.  Sync or async."""
        self._recovery.probes.append(fn)
        return fn

    def execute_recovery(self) -> RecoveryReport:
        """While open, run the recovery actions, then the health probes; close at once
        if every probe passes, instead of waiting for the timer.

        Async actions or probes are rejected here (use ``execute_recovery_async``)
        rather than silently left un-awaited.
        """
        return self._recovery.run(self)

    async def execute_recovery_async(self, *, probe_timeout: float | None = None) -> RecoveryReport:
        """``execute_recovery`` for asyncio: awaits async actions and probes, with an
        optional per-probe timeout (a probe that hangs counts as failed)."""
        return await self._recovery.run_async(self, probe_timeout=probe_timeout)

    async def recover_until_closed(
        self, *, interval: float = 1.0, max_rounds: int | None = None,
        probe_timeout: float | None = None,
    ) -> RecoveryReport:
        """Run ``execute_recovery_async`` every ``interval`` seconds (on the breaker's
        clock) until the breaker is no longer open, or ``max_rounds`` is spent."""
        return await self._recovery.until_closed(
            self, interval=interval, max_rounds=max_rounds, probe_timeout=probe_timeout
        )
