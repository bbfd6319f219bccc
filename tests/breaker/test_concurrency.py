"""Threads and asyncio: probe limits, expiring leases, no serialisation, one transition."""

from __future__ import annotations

import asyncio
import threading

import pytest

from resurgo.breaker import (
    CircuitBreaker,
    CircuitEvent,
    CircuitOpenError,
    CircuitState,
    CircuitThresholds,
    StateTransition,
)
from resurgo.clock import FakeClock

from ._helpers import NetErr, classifier, count_thresholds

S = CircuitState
WAIT = 5.0  # generous real-time bound for thread hand-offs; never reached when correct


def half_open(clock: FakeClock, **kw: object) -> CircuitBreaker:
    b = CircuitBreaker("h", thresholds=count_thresholds(**kw), clock=clock, classifier=classifier)
    b.open(wait=1)
    clock.advance(1)
    assert b.state is S.HALF_OPEN
    return b


def test_threads_half_open_admits_at_most_max_concurrent_probes(clock) -> None:
    b = half_open(clock, half_open_max_calls=3)
    gate = threading.Event()
    inside = threading.Semaphore(0)
    admitted: list[int] = []
    rejected: list[CircuitOpenError] = []
    lock = threading.Lock()

    def probe(i: int) -> int:
        with lock:
            admitted.append(i)
        inside.release()
        assert gate.wait(WAIT)
        return i

    def worker(i: int) -> None:
        try:
            b.call(probe, i)
        except CircuitOpenError as e:
            with lock:
                rejected.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for _ in range(3):
        assert inside.acquire(timeout=WAIT)
    deadline = threading.Event()
    for _ in range(int(WAIT * 100)):
        with lock:
            if len(rejected) == 7:
                break
        deadline.wait(0.01)
    with lock:
        assert len(admitted) == 3 and len(rejected) == 7
    assert all(e.state is S.HALF_OPEN and e.retry_after is None for e in rejected)
    gate.set()
    for t in threads:
        t.join(WAIT)
    assert b.state is S.CLOSED


def test_threads_a_hung_probe_lease_expires_and_does_not_wedge(clock) -> None:
    b = half_open(clock, half_open_max_calls=1, half_open_lease=10.0, wait_in_open=20.0)
    gate = threading.Event()
    entered = threading.Event()
    result: list[object] = []

    def hung() -> str:
        entered.set()
        assert gate.wait(WAIT)
        return "late"

    t = threading.Thread(target=lambda: result.append(b.call(hung)))
    t.start()
    assert entered.wait(WAIT)
    with pytest.raises(CircuitOpenError):
        b.call(lambda: "x")  # the only probe slot is taken
    clock.advance(10.0)  # the lease runs out
    # the next caller reclaims it: a hung probe counts as a slow failure -> OPEN again
    with pytest.raises(CircuitOpenError) as ei:
        b.call(lambda: "x")
    assert ei.value.state is S.OPEN and ei.value.retry_after == pytest.approx(20.0)
    assert b.metrics().expired_leases == 1
    assert "lease expired" in b.history[-1].reason
    gate.set()
    t.join(WAIT)
    assert result == ["late"]  # the caller still gets its value...
    assert b.state is S.OPEN  # ...but the late outcome changes nothing
    clock.advance(20.0)
    assert b.call(lambda: "y") == "y"
    assert b.state is S.CLOSED


def test_threads_calls_are_not_serialised(clock) -> None:
    n = 8
    b = CircuitBreaker("p", thresholds=count_thresholds(), clock=clock, classifier=classifier)
    barrier = threading.Barrier(n, timeout=WAIT)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            b.call(barrier.wait)  # needs all n calls inside at the same time
        except BaseException as e:  # pragma: no cover - only on failure
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT * 2)
    assert errors == [] and b.metrics().successes == n


def test_threads_hammer_loses_no_outcome() -> None:
    t = CircuitThresholds(window_kind="count", sliding_window=1_000_000, min_calls=1_000_000)
    b = CircuitBreaker("x", thresholds=t, classifier=classifier)
    per, n = 3000, 6

    def work(k: int) -> None:
        for i in range(per):
            if (i + k) % 3 == 0:
                try:
                    b.call(_raise)
                except NetErr:
                    pass
            else:
                b.call(int)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    m = b.metrics()
    assert m.successes + m.failures == per * n == m.window.calls
    assert m.failures == m.window.failures == per * n // 3
    assert m.state is S.CLOSED


def _raise() -> None:
    raise NetErr("x")


def test_threads_exactly_one_thread_performs_the_transition() -> None:
    events: list[CircuitEvent] = []
    t = CircuitThresholds(window_kind="count", sliding_window=50, min_calls=20, wait_in_open=60)
    b = CircuitBreaker("one", thresholds=t, classifier=classifier, listeners=[events.append])
    start = threading.Barrier(8, timeout=WAIT)

    def work() -> None:
        start.wait()
        for _ in range(50):
            try:
                b.call(_raise)
            except (NetErr, CircuitOpenError):
                pass

    threads = [threading.Thread(target=work) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    transitions = [e for e in events if isinstance(e, StateTransition)]
    assert [(e.from_state, e.to_state) for e in transitions] == [(S.CLOSED, S.OPEN)]
    assert len(b.history) == 1 and b.state is S.OPEN


# ---------------------------------------------------------------- asyncio
async def test_asyncio_half_open_limit_and_cancel_frees_the_slot(clock) -> None:
    b = half_open(clock, half_open_max_calls=2)
    gate = asyncio.Event()
    entered: list[int] = []

    async def probe(i: int) -> int:
        entered.append(i)
        await gate.wait()
        return i

    tasks = [asyncio.create_task(b.call_async(probe, i)) for i in range(6)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert entered == [0, 1]
    rejected = [t for t in tasks if t.done()]
    assert len(rejected) == 4
    assert all(isinstance(t.exception(), CircuitOpenError) for t in rejected)
    tasks[0].cancel()  # a cancelled probe is not a failure: its slot goes back
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]
    assert b.state is S.HALF_OPEN
    late = asyncio.create_task(b.call_async(probe, 99))
    await asyncio.sleep(0)
    assert entered == [0, 1, 99]
    gate.set()
    assert await tasks[1] == 1 and await late == 99
    assert b.state is S.CLOSED
    assert b.metrics().ignored == 1


async def test_asyncio_lease_expiry(clock) -> None:
    b = half_open(clock, half_open_max_calls=1, half_open_lease=3.0, wait_in_open=9.0)
    gate = asyncio.Event()

    async def hung() -> str:
        await gate.wait()
        return "late"

    task = asyncio.create_task(b.call_async(hung))
    await asyncio.sleep(0)
    clock.advance(3.0)
    assert b.state is S.OPEN  # reading the state reclaims the expired lease
    gate.set()
    assert await task == "late"
    assert b.state is S.OPEN and b.retry_after == pytest.approx(9.0)


async def test_asyncio_calls_are_not_serialised(clock) -> None:
    b = CircuitBreaker("a", thresholds=count_thresholds(), clock=clock, classifier=classifier)
    n = 10
    inside = 0
    all_in = asyncio.Event()

    async def work() -> None:
        nonlocal inside
        inside += 1
        if inside == n:
            all_in.set()
        await asyncio.wait_for(all_in.wait(), WAIT)

    await asyncio.gather(*(b.call_async(work) for _ in range(n)))
    assert b.metrics().successes == n


async def test_async_decorator_and_context_manager(clock) -> None:
    b = CircuitBreaker("d", thresholds=count_thresholds(min_calls=2), clock=clock,
                       classifier=classifier)

    @b
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        if x < 0:
            raise NetErr("down")
        return x

    assert await fetch(3) == 3
    assert fetch.__name__ == "fetch"
    async with b:
        await asyncio.sleep(0)
    with pytest.raises(NetErr):
        await fetch(-1)
    with pytest.raises(NetErr):
        async with b:
            raise NetErr("x")
    assert b.state is S.OPEN
    with pytest.raises(CircuitOpenError):
        await fetch(1)
    with pytest.raises(CircuitOpenError):
        async with b:
            pass  # pragma: no cover


async def test_async_context_manager_is_per_task(clock) -> None:
    """Interleaved ``async with`` blocks in different tasks each report their own outcome."""
    b = CircuitBreaker("t", thresholds=count_thresholds(min_calls=100), clock=clock,
                       classifier=classifier)
    step = asyncio.Event()

    async def good() -> None:
        async with b:
            await step.wait()

    async def bad() -> None:
        async with b:
            await asyncio.sleep(0)
            step.set()
            raise NetErr("x")

    res = await asyncio.gather(good(), bad(), return_exceptions=True)
    assert res[0] is None and isinstance(res[1], NetErr)
    m = b.metrics()
    assert (m.successes, m.failures) == (1, 1)


async def test_execute_recovery_async_with_probe_timeout(clock) -> None:
    b = CircuitBreaker("r", thresholds=count_thresholds(), clock=clock, classifier=classifier)
    state = {"up": False}

    async def probe() -> bool:
        if not state["up"]:
            await asyncio.sleep(10)  # hangs: the timeout must cut it short
        return True

    async def refresh() -> None:
        state["up"] = True

    b.add_health_probe(probe)
    b.open(wait=300)
    rep = await b.execute_recovery_async(probe_timeout=0.01)
    assert not rep.closed and "TimeoutError" in rep.errors[0]
    b.add_recovery_action(refresh)
    rep = await b.recover_until_closed(interval=1.0, max_rounds=3, probe_timeout=0.5)
    assert rep.closed and b.state is S.CLOSED


async def test_recover_until_closed_polls_on_the_breaker_clock(clock) -> None:
    b = CircuitBreaker("r", thresholds=count_thresholds(), clock=clock, classifier=classifier)
    calls = {"n": 0}

    def probe() -> bool:
        calls["n"] += 1
        return calls["n"] >= 3

    b.add_health_probe(probe)
    b.open(wait=3600)
    rep = await b.recover_until_closed(interval=2.0)
    assert rep.closed and calls["n"] == 3 and clock.sleeps == [2.0, 2.0]
