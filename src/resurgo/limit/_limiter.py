"""The adaptive limiter: a semaphore whose size an algorithm keeps adjusting.

Callers take a :class:`Lease` (a slot) and give it back with an outcome --
``success`` (with its latency), ``dropped`` (the dependency refused it:
429/529, "temporarily limiting", a timeout) or ``ignore`` (says nothing about
capacity: a validation error, a cancellation).  A lease may also report
samples while it is held (:meth:`Lease.sample`): one slot can stand for a long
session making many calls, as a supervised Claude Code run does, and each of
its calls is evidence.

Sync and asyncio callers share one limiter (state under one lock; waiters
are served first come, first served, whichever kind they are).  Time is
read from an injectable :class:`~resurgo.clock.Clock`, so waits, pauses and
latencies are tested on virtual time.  A pause (a usage limit that resets at
a known time) admits nothing until then and restarts the limit low, so the
dependency is approached again gradually instead of by the whole backlog.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import inspect
import logging
import math
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from resurgo.clock import SYSTEM_CLOCK, Clock
from resurgo.limit._algorithms import AIMD, LimitAlgorithm, LimitOptionsError, Sample, make_algorithm
from resurgo.limit._events import LimitChanged, LimitEvent, LimitExceededError, OverloadSignal, Paused, Rejected

log = logging.getLogger("resurgo.limit")

P = ParamSpec("P")
R = TypeVar("R")

Listener = Callable[[LimitEvent], None]

_UNSET: Any = object()


@dataclass(frozen=True, slots=True, kw_only=True)
class LimiterOptions:
    """How a limiter waits.

    ``max_wait``: seconds a caller waits for a slot before
    :class:`LimitExceededError` (None: as long as it takes; 0: never waits).
    ``is_overload(exc)``: does this exception mean the dependency is
    overloaded?  Default: the classifier's ``resource`` verdict (429, 529,
    "temporarily limiting", quota) or a ``TimeoutError``.
    """

    max_wait: float | None = None
    is_overload: Callable[[BaseException], bool] | None = None

    def __post_init__(self) -> None:
        if self.max_wait is not None and (
            isinstance(self.max_wait, bool)
            or not isinstance(self.max_wait, int | float)
            or not math.isfinite(self.max_wait)
            or self.max_wait < 0
        ):
            raise LimitOptionsError(f"max_wait must be a finite number >= 0 or None, got {self.max_wait!r}")
        if self.is_overload is not None and not callable(self.is_overload):
            raise LimitOptionsError("is_overload must be callable")


def default_is_overload(exc: BaseException) -> bool:
    """The classifier's judgement: a ``resource`` error (or a timeout) means the dependency is overloaded."""
    if isinstance(exc, TimeoutError):
        return True
    from resurgo.classifier import classify
    from resurgo.classifier._types import ErrorType

    try:
        return classify(exc).type is ErrorType.RESOURCE
    except Exception:  # a classifier failure must not turn into the caller's error
        return False


@dataclass(frozen=True, slots=True)
class LimiterSnapshot:
    """The limiter's state and counters at one moment."""

    name: str
    algorithm: str
    limit: int
    inflight: int
    waiting: int
    paused_until: float | None
    acquired: int
    rejected: int
    successes: int
    drops: int
    ignored: int
    overload_signals: int
    wait_seconds_total: float
    max_inflight: int


class _Waiter:
    __slots__ = ("event", "fut", "granted", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop
        self.fut: asyncio.Future[bool] | None = loop.create_future() if loop is not None else None
        self.event: threading.Event | None = None if loop is not None else threading.Event()
        self.granted = False

    def wake(self) -> None:
        if self.event is not None:
            self.event.set()
        elif self.loop is not None and self.fut is not None:
            fut = self.fut
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                self.loop.call_soon_threadsafe(_resolve, fut)


def _resolve(fut: asyncio.Future[bool]) -> None:
    if not fut.done():
        fut.set_result(True)


class Lease:
    """One slot.  Give it back exactly once: :meth:`success`, :meth:`dropped` or :meth:`ignore`.

    As a context manager (``with limiter.acquire() as lease``) it gives itself
    back on exit: success with the elapsed time as latency, dropped when the
    exception is an overload (see :class:`LimiterOptions`), ignored for any
    other exception.  Giving it back twice is a no-op.
    """

    __slots__ = ("_limiter", "done", "signalled", "started", "warming")

    def __init__(self, limiter: AdaptiveLimiter, started: float) -> None:
        self._limiter = limiter
        self.started = started
        self.done = False
        #: taken, but its first call has not been answered yet (see :meth:`warm_up`)
        self.warming = False
        #: this lease already reported an overload (its release then does not cut the limit again)
        self.signalled = False

    def elapsed(self) -> float:
        return self._limiter.clock.monotonic() - self.started

    def success(self, rtt: float | None = None) -> None:
        """The call succeeded; ``rtt`` defaults to the time since the slot was taken."""
        if not self.done:
            self.done = True
            self._limiter._release(self, dropped=False, rtt=self.elapsed() if rtt is None else rtt, reason="success")

    def dropped(self, reason: str = "dropped", *, started: float | None = None) -> None:
        """The dependency refused the call (or the caller gave up on it): a congestion signal.

        ``started``: when the refused call went out (monotonic; default: when
        the slot was taken), for a slot that stands for several calls.
        """
        if not self.done:
            self.done = True
            self._limiter._release(self, dropped=True, rtt=None, reason=reason, started=started)

    def ignore(self) -> None:
        """Give the slot back without a sample (the outcome says nothing about capacity)."""
        if not self.done:
            self.done = True
            self._limiter._release(self, dropped=None, rtt=None, reason="ignored")

    def warm_up(self) -> None:
        """Do not count this slot as in use until its first sample.

        For a slot that takes a while to reach the dependency (a CLI process
        starting before its first API call): until then it says nothing about
        the dependency's capacity, and counting it as in use would let the
        limit grow on evidence gathered at a lower one (slow start overshoots
        by everything admitted during the delay).
        """
        if not self.done and not self.warming:
            self._limiter._warm(self, True)

    def sample(
        self, *, rtt: float | None = None, dropped: bool = False, started: float | None = None, reason: str = "sample"
    ) -> None:
        """Report one call made while holding this slot, without giving it back.

        ``started``: when that call went out (monotonic; default: when the slot
        was taken) -- a refusal of a call sent before the latest cut does not
        cut again.
        """
        if self.done:
            return
        if dropped:
            self.signalled = True
        if self.warming:
            self._limiter._warm(self, False)
        self._limiter._sample(self.started if started is None else started, rtt=rtt, dropped=dropped, reason=reason)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self._limiter._exit(self, ev)

    async def __aenter__(self) -> Lease:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._limiter._exit(self, ev)


class AdaptiveLimiter:
    """A concurrency limit that adapts to the dependency (Netflix concurrency-limits, for Python).

    ``algorithm``: an algorithm object, or its name (``"aimd"``, ``"gradient"``,
    ``"vegas"``) with default options.  Use it as ``with limiter.acquire()
    as lease:``, ``async with limiter.slot() as lease:``, a decorator
    (``@limiter``, sync or async), or take and give back leases by hand.
    """

    def __init__(
        self,
        name: str = "limiter",
        *,
        algorithm: LimitAlgorithm | str = "aimd",
        options: LimiterOptions | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise LimitOptionsError("name must be a non-empty string")
        self.name = name
        self.algorithm: LimitAlgorithm = make_algorithm(algorithm) if isinstance(algorithm, str) else algorithm
        if not isinstance(self.algorithm, LimitAlgorithm):
            raise LimitOptionsError(f"algorithm must be a LimitAlgorithm or a name, got {algorithm!r}")
        self.options = options or LimiterOptions()
        if not isinstance(self.options, LimiterOptions):
            raise LimitOptionsError("options must be LimiterOptions")
        self.clock = clock or SYSTEM_CLOCK
        self._is_overload = self.options.is_overload or default_is_overload
        self._lock = threading.Lock()
        self._limit = self.algorithm.limit
        self._inflight = 0
        self._warming = 0
        #: when the limit was last cut for a drop (monotonic): older calls' drops do not cut again
        self._last_cut = -math.inf
        self._paused_until = -math.inf  # monotonic
        self._paused_wall: float | None = None
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._listeners: list[Listener] = []
        self._acquired = 0
        self._rejected = 0
        self._successes = 0
        self._drops = 0
        self._ignored = 0
        self._signals = 0
        self._wait_total = 0.0
        self._max_inflight = 0

    # -- reading ------------------------------------------------------------------------------------
    @property
    def limit(self) -> int:
        return self._limit

    @property
    def inflight(self) -> int:
        return self._inflight

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def paused_for(self) -> float:
        """Seconds until the current pause ends (0 when not paused)."""
        return max(0.0, self._paused_until - self.clock.monotonic())

    def snapshot(self) -> LimiterSnapshot:
        with self._lock:
            paused = self._paused_wall if self._paused_until > self.clock.monotonic() else None
            return LimiterSnapshot(
                name=self.name,
                algorithm=self.algorithm.name,
                limit=self._limit,
                inflight=self._inflight,
                waiting=len(self._waiters),
                paused_until=paused,
                acquired=self._acquired,
                rejected=self._rejected,
                successes=self._successes,
                drops=self._drops,
                ignored=self._ignored,
                overload_signals=self._signals,
                wait_seconds_total=self._wait_total,
                max_inflight=self._max_inflight,
            )

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event)`` for every :class:`LimitEvent` (after the lock is released)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def _emit(self, events: list[LimitEvent]) -> None:
        for ev in events:
            for fn in list(self._listeners):
                try:
                    fn(ev)
                except Exception:
                    log.exception("limiter %s: listener %r failed on %s", self.name, fn, type(ev).__name__)

    # -- taking slots -------------------------------------------------------------------------------
    def _take_locked(self, now: float) -> Lease | None:
        if now < self._paused_until or self._inflight >= self._limit:
            return None
        return self._grant_one_locked(now)

    def _grant_one_locked(self, now: float) -> Lease:
        self._inflight += 1
        self._acquired += 1
        if self._inflight > self._max_inflight:
            self._max_inflight = self._inflight
        return Lease(self, now)

    def _serve_locked(self, now: float) -> None:
        """Hand free slots to waiters, oldest first."""
        if now < self._paused_until:
            return
        while self._waiters and self._inflight < self._limit:
            w = self._waiters.popleft()
            self._inflight += 1
            self._acquired += 1
            self._max_inflight = max(self._max_inflight, self._inflight)
            w.granted = True
            w.wake()

    def try_acquire(self) -> Lease | None:
        """A slot now, or None (counted as a rejection) -- never waits."""
        now = self.clock.monotonic()
        with self._lock:
            lease = self._take_locked(now) if not self._waiters else None
            if lease is None:
                self._rejected += 1
        if lease is None:
            self._emit([Rejected(limiter=self.name, at=self.clock.time(), monotonic=now, waited=0.0)])
        return lease

    def _timeout(self, timeout: float | None) -> float | None:
        t = self.options.max_wait if timeout is _UNSET else timeout
        if t is not None and (not isinstance(t, int | float) or t < 0):
            raise ValueError(f"timeout must be >= 0 or None, got {t!r}")
        return t

    def _give_up(self, t0: float) -> LimitExceededError:
        now = self.clock.monotonic()
        waited = now - t0
        with self._lock:
            self._rejected += 1
            self._wait_total += waited
            err = LimitExceededError(self.name, limit=self._limit, inflight=self._inflight, waited=waited)
        self._emit([Rejected(limiter=self.name, at=self.clock.time(), monotonic=now, waited=waited)])
        return err

    def _granted(self, t0: float, w: _Waiter | None) -> Lease:
        now = self.clock.monotonic()
        with self._lock:
            self._wait_total += now - t0
            return Lease(self, now)

    def acquire(self, timeout: float | None = _UNSET) -> Lease:
        """A slot, waiting (blocking this thread) at most ``timeout`` s (default: ``options.max_wait``)."""
        limit_s = self._timeout(timeout)
        t0 = self.clock.monotonic()
        while True:
            now = self.clock.monotonic()
            left = None if limit_s is None else limit_s - (now - t0)
            with self._lock:
                paused = self._paused_until - now
                if paused <= 0 and not self._waiters and self._inflight < self._limit:
                    self._wait_total += now - t0
                    return self._grant_one_locked(now)
                w = None if paused > 0 or (left is not None and left <= 0) else _Waiter(None)
                if w is not None:
                    self._waiters.append(w)
            if left is not None and left <= 0:
                raise self._give_up(t0)
            if w is None:  # paused: sleep until it ends (or the wait is up), then look again
                self.clock.sleep(paused if left is None else min(paused, left))
                continue
            assert w.event is not None
            w.event.wait(left)
            with self._lock:
                if not w.granted:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(w)
            if w.granted:
                return self._granted(t0, w)

    async def acquire_async(self, timeout: float | None = _UNSET) -> Lease:
        """A slot, waiting at most ``timeout`` s (default ``options.max_wait``); cancellable."""
        limit_s = self._timeout(timeout)
        t0 = self.clock.monotonic()
        with self._lock:  # the fast path: a free slot, nobody queued, no pause
            if not self._waiters and self._inflight < self._limit and t0 >= self._paused_until:
                return self._grant_one_locked(t0)
        loop = asyncio.get_running_loop()
        while True:
            now = self.clock.monotonic()
            left = None if limit_s is None else limit_s - (now - t0)
            with self._lock:
                paused = self._paused_until - now
                if paused <= 0 and not self._waiters and self._inflight < self._limit:
                    self._wait_total += now - t0
                    return self._grant_one_locked(now)
                w = None if paused > 0 or (left is not None and left <= 0) else _Waiter(loop)
                if w is not None:
                    self._waiters.append(w)
            if left is not None and left <= 0:
                raise self._give_up(t0)
            if w is None:
                await self.clock.asleep(paused if left is None else min(paused, left))
                continue
            assert w.fut is not None
            timer: asyncio.Task[None] | None = None
            try:
                if left is None:
                    await asyncio.shield(w.fut)
                else:
                    timer = asyncio.ensure_future(self.clock.asleep(left))
                    waits: set[asyncio.Future[Any]] = {w.fut, timer}
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                self._abandon(w)
                raise
            finally:
                if timer is not None:
                    timer.cancel()
            self._abandon(w, keep=True)
            if w.granted:
                return self._granted(t0, w)

    def _abandon(self, w: _Waiter, *, keep: bool = False) -> None:
        """A waiter stops waiting: out of the queue, or, if a slot was already handed to it, that slot back."""
        events: list[LimitEvent] = []
        with self._lock:
            if w.granted:
                if keep:
                    return
                self._inflight -= 1
                self._serve_locked(self.clock.monotonic())
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(w)
        self._emit(events)

    @contextlib.asynccontextmanager
    async def slot(self, timeout: float | None = _UNSET) -> AsyncIterator[Lease]:
        """``async with limiter.slot() as lease:`` -- the lease is given back as :class:`Lease` describes."""
        lease = await self.acquire_async(timeout)
        async with lease:
            yield lease

    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate a function (sync or async): every call takes a slot and reports its outcome."""
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def awrapper(*a: P.args, **kw: P.kwargs) -> Any:
                lease = await self.acquire_async()
                async with lease:
                    return await fn(*a, **kw)

            return awrapper

        @functools.wraps(fn)
        def wrapper(*a: P.args, **kw: P.kwargs) -> Any:
            with self.acquire():
                return fn(*a, **kw)

        return wrapper

    # -- giving back, samples, signals --------------------------------------------------------------
    def _exit(self, lease: Lease, exc: BaseException | None) -> None:
        if lease.done:
            return
        if exc is None:
            lease.success()
        elif isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | GeneratorExit):
            lease.ignore()
        elif self._is_overload(exc):
            lease.dropped(f"{type(exc).__name__}: {exc}"[:200])
        else:
            lease.ignore()

    def _release(
        self, lease: Lease, *, dropped: bool | None, rtt: float | None, reason: str, started: float | None = None
    ) -> None:
        now = self.clock.monotonic()
        events: list[LimitEvent] = []
        with self._lock:
            if lease.warming:
                lease.warming = False
                self._warming -= 1
            inflight = self._inflight - self._warming
            self._inflight = max(0, self._inflight - 1)
            if dropped is None:
                self._ignored += 1
            else:
                if dropped:
                    self._drops += 1
                else:
                    self._successes += 1
                # a lease that already signalled overload has had its say
                if not (dropped and lease.signalled):
                    at = lease.started if started is None else started
                    self._update_locked(now, Sample(rtt, inflight, dropped), at, reason, events)
            self._serve_locked(now)
        self._emit(events)

    def _sample(self, started: float | None, *, rtt: float | None, dropped: bool, reason: str) -> None:
        now = self.clock.monotonic()
        events: list[LimitEvent] = []
        with self._lock:
            self._update_locked(now, Sample(rtt, self._inflight - self._warming, dropped),
                                now if started is None else started, reason, events)
            self._serve_locked(now)
        self._emit(events)

    def _warm(self, lease: Lease, on: bool) -> None:
        with self._lock:
            if lease.warming != on and not lease.done:
                lease.warming = on
                self._warming += 1 if on else -1

    def overload(self, reason: str = "overload", *, started: float | None = None) -> None:
        """An overload signal not tied to a lease (e.g. seen on a shared channel).

        ``started``: when the refused call went out (monotonic; default now,
        which always counts); a call sent before the latest cut does not cut again.
        """
        self._sample(started, rtt=None, dropped=True, reason=reason)

    def _update_locked(
        self, now: float, sample: Sample, started: float, reason: str, events: list[LimitEvent]
    ) -> None:
        old = self._limit
        if sample.dropped:
            wall = self.clock.time()
            self._signals += 1
            applied = started >= self._last_cut
            events.append(
                OverloadSignal(
                    limiter=self.name, at=wall, monotonic=now, kind="dropped", reason=reason, applied=applied
                )
            )
            if not applied:
                return
            self._last_cut = now
        new = self.algorithm.update(sample)
        self._limit = new
        if new != old:
            wall = self.clock.time()
            if new < old and not sample.dropped:
                self._signals += 1
                events.append(
                    OverloadSignal(
                        limiter=self.name, at=wall, monotonic=now, kind="latency", reason=reason, applied=True
                    )
                )
            events.append(
                LimitChanged(
                    limiter=self.name, at=wall, monotonic=now, old=old, new=new, inflight=self._inflight, reason=reason
                )
            )

    def pause(self, seconds: float, *, reason: str = "paused", resume_limit: int | None = None) -> None:
        """Admit nothing for ``seconds`` (calls in flight go on); afterwards start again from a low limit.

        ``resume_limit`` (default: the algorithm's initial limit, or the current
        one if lower) is where the limit restarts: the dependency is approached
        again step by step, not by everything that queued up meanwhile.  A
        pause ending later than the current one extends it; a shorter one is
        ignored.
        """
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
            raise ValueError(f"seconds must be a finite number, got {seconds!r}")
        now = self.clock.monotonic()
        events: list[LimitEvent] = []
        with self._lock:
            until = now + max(0.0, seconds)
            if until <= self._paused_until:
                return
            self._paused_until = until
            self._paused_wall = self.clock.time() + max(0.0, seconds)
            self._signals += 1
            self._last_cut = now  # calls sent before the pause have had their say
            old = self._limit
            target = resume_limit if resume_limit is not None else min(old, self.algorithm.options.initial_limit)
            self._limit = self.algorithm.reset(target)
            wall = self.clock.time()
            events.append(
                OverloadSignal(limiter=self.name, at=wall, monotonic=now, kind="paused", reason=reason, applied=True)
            )
            events.append(Paused(limiter=self.name, at=wall, monotonic=now, until=self._paused_wall, reason=reason))
            if self._limit != old:
                events.append(
                    LimitChanged(
                        limiter=self.name,
                        at=wall,
                        monotonic=now,
                        old=old,
                        new=self._limit,
                        inflight=self._inflight,
                        reason=reason,
                    )
                )
            waiters = list(self._waiters)
            self._waiters.clear()
        for w in waiters:  # they look again, see the pause and sleep until it ends
            w.wake()
        self._emit(events)

    def set_limit(self, limit: int, *, reason: str = "set") -> None:
        """Move the limit by hand (clamped to the algorithm's bounds); the algorithm goes on from there."""
        now = self.clock.monotonic()
        events: list[LimitEvent] = []
        with self._lock:
            old = self._limit
            self._limit = self.algorithm.reset(limit)
            if self._limit != old:
                events.append(
                    LimitChanged(
                        limiter=self.name,
                        at=self.clock.time(),
                        monotonic=now,
                        old=old,
                        new=self._limit,
                        inflight=self._inflight,
                        reason=reason,
                    )
                )
            self._serve_locked(now)
        self._emit(events)

    def __repr__(self) -> str:
        return f"AdaptiveLimiter({self.name!r}, {self.algorithm.name}, limit={self._limit}, inflight={self._inflight})"


def fixed_limiter(name: str, limit: int, *, clock: Clock | None = None) -> AdaptiveLimiter:
    """A limiter that never adapts (``min = max = limit``): a semaphore with the same events and counters."""
    from resurgo.limit._algorithms import AIMDOptions

    return AdaptiveLimiter(
        name,
        algorithm=AIMD(AIMDOptions(initial_limit=limit, min_limit=limit, max_limit=limit)),
        clock=clock,
    )


__all__ = ["AdaptiveLimiter", "Lease", "LimiterOptions", "LimiterSnapshot", "Listener", "default_is_overload",
           "fixed_limiter"]
