"""Optional behaviours layered on the core breaker, each usable on its own.

The core (``_breaker.CircuitBreaker``) is the call paths, the state holder and
listener delivery.  What follows does not touch the hot path and needs only a
narrow slice of the core -- the :class:`Core` protocol below -- so each piece
can be read, tested and reused (by another breaker implementation, say)
without the rest:

* :func:`load_adjusted` -- thresholds adapted to the caller's own load (a pure
  function of the baseline and the load);
* :func:`check_batch` -- the validation of a partial-failure batch (the state
  objects decide what a batch does: ``State.record_batch_locked``);
* :class:`Recovery` -- recovery actions and health probes that close an open
  breaker as soon as the dependency is back, instead of waiting for the timer.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from resurgo.breaker._config import CircuitThresholds, ThresholdsError
from resurgo.breaker._events import CircuitState
from resurgo.breaker._states import State, Transition
from resurgo.clock import Clock

__all__ = ["Core", "Recovery", "RecoveryReport", "check_batch", "load_adjusted"]

_OPEN_KINDS = frozenset({CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.FORCED_OPEN})


class Core(Protocol):
    """What the add-ons need from a breaker: its clock and one locked step.

    ``_step(decide, intervention=..., tick=...)`` takes the breaker's lock, applies
    any transition time alone has caused (unless ``tick`` is False), calls ``decide(state, now)`` on the
    current state and applies the :class:`Transition` it returns (an
    *intervention* makes results of calls admitted earlier stale), delivers the
    events, and returns the state before and after.
    """

    _clock: Clock

    def _step(
        self,
        decide: Callable[[State, float], Transition | None],
        *,
        intervention: bool = False,
        tick: bool = True,
    ) -> tuple[State, State]: ...


# ------------------------------------------------------------------ load-adjusted thresholds
def load_adjusted(baseline: CircuitThresholds, load: float) -> CircuitThresholds:
    """Thresholds for the caller's own load (0 = idle, 1 = at capacity).

    With ``s = clamp((load - 0.5) / 0.5, 0, 1)``: ``failure_rate`` and
    ``slow_call_rate`` are multiplied by ``1 - s/2``; ``wait_in_open`` (and
    ``max_wait_in_open`` if needed) by ``1 + s``.  Always from the baseline, so
    repeated adjustments never compound.
    """
    if isinstance(load, bool) or not isinstance(load, int | float) or not math.isfinite(load):
        raise ThresholdsError(f"load must be a finite number, got {load!r}")
    if load < 0:
        raise ThresholdsError(f"load must be >= 0, got {load!r}")
    b = baseline
    s = min(1.0, max(0.0, (float(load) - 0.5) / 0.5))
    wait = b.wait_in_open * (1.0 + s)
    return b.replace(
        failure_rate=b.failure_rate * (1.0 - s / 2.0),
        slow_call_rate=b.slow_call_rate * (1.0 - s / 2.0),
        wait_in_open=wait,
        max_wait_in_open=max(b.max_wait_in_open, wait),
    )


# ------------------------------------------------------------------ partial failures
def check_batch(success: int, failure: int) -> None:
    """A batch outcome is two non-negative integers (bools are refused: ``True`` is not a count)."""
    for name, v in (("success", success), ("failure", failure)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")


# ------------------------------------------------------------------ recovery
@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What one ``execute_recovery`` round did and concluded."""

    state_before: CircuitState
    state_after: CircuitState
    actions_run: int = 0
    probes_run: int = 0
    probes_passed: int = 0
    closed: bool = False
    errors: tuple[str, ...] = field(default=())
    note: str = ""


_Invoke = Callable[[bool, Callable[[], object]], Awaitable[object]]


def _current(st: State, now: float) -> Transition | None:
    return None


class Recovery:
    """Recovery actions and health probes for one breaker.

    While the breaker is open (OPEN, HALF_OPEN, or FORCED_OPEN after an auth
    error), a round runs every action (refresh a token, restart a process),
    then every probe; if all probes pass, the state's own
    ``probes_passed_locked`` decides whether that closes it (an operator's
    ``force_open`` is never overridden).  Closing this way is an intervention:
    auth errors from calls admitted before it are stale.
    """

    __slots__ = ("actions", "probes")

    def __init__(self) -> None:
        self.actions: list[Callable[[], object]] = []
        self.probes: list[Callable[[], object]] = []

    def _start(self, core: Core) -> tuple[State, RecoveryReport | None]:
        st, _ = core._step(_current)
        if st.kind not in _OPEN_KINDS:
            return st, RecoveryReport(st.kind, st.kind, note="not open; nothing to recover")
        return st, None

    def _finish(
        self, core: Core, st: State, actions: int, probes: int, passed: int, errors: list[str]
    ) -> RecoveryReport:
        closed = False
        note = ""
        after = st
        if not st.probes_may_close() and st.kind is CircuitState.FORCED_OPEN:
            note = "forced open by an operator; only reset() closes it"
        elif probes == 0:
            note = "no health probes registered; the wait in open decides"
        elif passed == probes:
            reason = f"{probes} health probe(s) passed"
            holder: list[bool] = []

            def close(cur: State, now: float) -> Transition | None:
                tr = cur.probes_passed_locked(reason, now)
                holder.append(tr is not None)
                return tr

            _, after = core._step(close, intervention=True, tick=False)
            closed = bool(holder and holder[0])
        else:
            note = f"{probes - passed} of {probes} health probe(s) failed"
        if not closed:
            after = core._step(_current, tick=False)[1]
        return RecoveryReport(st.kind, after.kind, actions, probes, passed, closed, tuple(errors), note)

    async def _run(self, core: Core, st: State, invoke: _Invoke) -> RecoveryReport:
        """The procedure, written once for both drivers: ``invoke(is_probe, fn)`` calls
        ``fn`` and, for the async driver, awaits what it returns.  The sync driver's
        ``invoke`` never suspends, so it runs this coroutine with a single ``send``."""
        errors: list[str] = []
        actions = probes = passed = 0
        for fn in list(self.actions):
            actions += 1
            try:
                await invoke(False, fn)
            except Exception as e:
                errors.append(f"action {_name(fn)}: {type(e).__name__}: {e}")
        if st.probes_may_close():
            for fn in list(self.probes):
                probes += 1
                try:
                    r = await invoke(True, fn)
                    ok = r is None or bool(r)
                except Exception as e:  # asyncio.TimeoutError is an Exception
                    errors.append(f"probe {_name(fn)}: {type(e).__name__}: {e}")
                    ok = False
                passed += ok
        return self._finish(core, st, actions, probes, passed, errors)

    def run(self, core: Core) -> RecoveryReport:
        """One round, synchronously; async actions or probes are refused, not left un-awaited."""
        st, done = self._start(core)
        if done is not None:
            return done
        coro = self._run(core, st, _invoke_sync)
        try:
            coro.send(None)
        except StopIteration as end:
            report: RecoveryReport = end.value
            return report
        coro.close()  # unreachable: _invoke_sync never suspends
        raise RuntimeError("the synchronous recovery suspended")

    async def run_async(self, core: Core, *, probe_timeout: float | None = None) -> RecoveryReport:
        """One round for asyncio, with an optional per-probe timeout (a hung probe fails)."""
        st, done = self._start(core)
        if done is not None:
            return done

        async def invoke(probe: bool, fn: Callable[[], object]) -> object:
            r = fn()
            if inspect.isawaitable(r):
                return await (asyncio.wait_for(_as_coro(r), probe_timeout) if probe else r)
            return r

        return await self._run(core, st, invoke)

    async def until_closed(
        self, core: Core, *, interval: float, max_rounds: int | None, probe_timeout: float | None
    ) -> RecoveryReport:
        """Rounds every ``interval`` seconds (on the breaker's clock) until it is no
        longer open or ``max_rounds`` is spent."""
        if interval <= 0:
            raise ValueError("interval must be positive")
        rounds = 0
        while True:
            rep = await self.run_async(core, probe_timeout=probe_timeout)
            rounds += 1
            if rep.closed or rep.state_after not in _OPEN_KINDS:
                return rep
            if max_rounds is not None and rounds >= max_rounds:
                return rep
            await core._clock.asleep(interval)


def _name(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


async def _invoke_sync(probe: bool, fn: Callable[[], object]) -> object:
    """The sync driver's step: call ``fn``; an async one is closed and refused."""
    r = fn()
    if inspect.isawaitable(r):
        close = getattr(r, "close", None)
        if callable(close):
            close()
        raise TypeError(f"{fn!r} is async; use execute_recovery_async()")
    return r


async def _as_coro(aw: Awaitable[object]) -> object:
    return await aw
