"""The adaptive limiter: slots, outcomes, waits, pauses and events, on virtual time."""

from __future__ import annotations

import asyncio
import threading

import pytest

from resurgo.clock import FakeClock
from resurgo.limit import (
    AIMD,
    AdaptiveLimiter,
    AIMDOptions,
    LimitChanged,
    LimiterOptions,
    LimitEvent,
    LimitExceededError,
    LimitOptionsError,
    OverloadSignal,
    Paused,
    Rejected,
    fixed_limiter,
)


class Overloaded(Exception):
    """Looks like the API's 529 to the classifier."""

    status_code = 529

    def __init__(self) -> None:
        super().__init__("Overloaded")


def lim(initial: int = 4, *, clock: FakeClock | None = None, ratio: float = 0.5, **kw: object) -> AdaptiveLimiter:
    opts = AIMDOptions(initial_limit=initial, min_limit=1, max_limit=64, backoff_ratio=ratio)
    return AdaptiveLimiter("api", algorithm=AIMD(opts), clock=clock or FakeClock(), options=LimiterOptions(**kw))


def test_at_most_limit_slots_then_try_acquire_refuses() -> None:
    limiter = lim(2)
    a, b = limiter.try_acquire(), limiter.try_acquire()
    assert a is not None and b is not None
    assert limiter.try_acquire() is None
    assert limiter.snapshot().rejected == 1
    a.ignore()
    assert limiter.inflight == 1
    assert limiter.try_acquire() is not None


def test_success_in_use_grows_the_limit_and_reports_latency() -> None:
    clock = FakeClock()
    limiter = lim(2, clock=clock)
    events: list[LimitEvent] = []
    limiter.add_listener(events.append)
    a = limiter.acquire()
    limiter.acquire()
    clock.advance(0.3)
    a.success()
    assert limiter.limit == 3
    changed = [e for e in events if isinstance(e, LimitChanged)]
    assert changed and changed[-1].old == 2 and changed[-1].new == 3 and changed[-1].reason == "success"


def test_a_burst_of_drops_from_calls_sent_before_the_cut_cuts_once() -> None:
    clock = FakeClock()
    limiter = lim(8, clock=clock)
    events: list[LimitEvent] = []
    limiter.add_listener(events.append)
    leases = [limiter.acquire() for _ in range(8)]
    clock.advance(1)
    for lease in leases:
        lease.dropped("529")
    assert limiter.limit == 4  # one cut (x0.5), not 8 of them
    signals = [e for e in events if isinstance(e, OverloadSignal)]
    assert len(signals) == 8 and sum(s.applied for s in signals) == 1
    # a call sent after the cut is new evidence: it cuts again
    late = limiter.acquire()
    late.dropped("529")
    assert limiter.limit == 2


def test_gate_without_the_once_per_round_trip_rule_the_limit_collapses() -> None:
    """What the rule prevents: the same burst, reported as independent signals, cuts eight times."""
    limiter = lim(8)
    for _ in range(8):
        limiter.overload("529")  # no start time: every one counts
    assert limiter.limit == 1


def test_context_manager_classifies_exceptions() -> None:
    limiter = lim(4)
    with limiter.acquire():
        pass
    assert limiter.snapshot().successes == 1
    with pytest.raises(Overloaded), limiter.acquire():
        raise Overloaded
    assert limiter.snapshot().drops == 1 and limiter.limit < 5
    before = limiter.limit
    with pytest.raises(ValueError), limiter.acquire():
        raise ValueError("a bug of the caller says nothing about capacity")
    assert limiter.snapshot().ignored == 1 and limiter.limit == before
    assert limiter.inflight == 0


def test_decorator_sync_and_async() -> None:
    limiter = lim(4)

    @limiter
    def f(x: int) -> int:
        assert limiter.inflight == 1
        return x * 2

    @limiter
    async def g(x: int) -> int:
        assert limiter.inflight == 1
        return x + 1

    assert f(2) == 4
    assert asyncio.run(g(2)) == 3
    assert limiter.snapshot().acquired == 2 and limiter.inflight == 0


def test_lease_is_given_back_once() -> None:
    limiter = lim(4)
    lease = limiter.acquire()
    lease.success()
    lease.dropped()
    lease.ignore()
    s = limiter.snapshot()
    assert (s.successes, s.drops, s.ignored, s.inflight) == (1, 0, 0, 0)


def test_samples_while_holding_a_slot() -> None:
    clock = FakeClock()
    limiter = lim(2, clock=clock)
    lease = limiter.acquire()
    limiter.acquire()
    lease.sample(rtt=0.5)
    assert limiter.limit == 3 and limiter.inflight == 2
    t = clock.monotonic()
    clock.advance(1)
    lease.sample(dropped=True, started=t, reason="api_retry 529")
    assert limiter.limit == 1
    lease.dropped()  # the release of a lease that already signalled does not cut again
    assert limiter.limit == 1


async def test_async_waiters_are_served_in_order_when_slots_free() -> None:
    limiter = lim(1)
    first = await limiter.acquire_async()
    order: list[int] = []

    async def waiter(i: int) -> None:
        lease = await limiter.acquire_async()
        order.append(i)
        lease.ignore()

    tasks = [asyncio.create_task(waiter(i)) for i in range(3)]
    await asyncio.sleep(0)
    assert limiter.waiting == 3
    first.ignore()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]
    assert limiter.inflight == 0


async def test_async_wait_times_out_on_the_injected_clock() -> None:
    clock = FakeClock()
    limiter = lim(1, clock=clock)
    await limiter.acquire_async()
    events: list[LimitEvent] = []
    limiter.add_listener(events.append)
    with pytest.raises(LimitExceededError) as ei:
        await limiter.acquire_async(timeout=2.0)
    assert ei.value.waited == pytest.approx(2.0)
    assert any(isinstance(e, Rejected) for e in events)
    assert limiter.waiting == 0


async def test_cancelled_waiter_leaves_the_queue_and_never_leaks_a_slot() -> None:
    limiter = lim(1)
    held = await limiter.acquire_async()
    t = asyncio.create_task(limiter.acquire_async())
    await asyncio.sleep(0)
    t.cancel()
    with pytest.raises(asyncio.CancelledError):
        await t
    assert limiter.waiting == 0
    held.ignore()
    assert limiter.inflight == 0


async def test_cancelled_after_the_grant_gives_the_slot_back() -> None:
    limiter = lim(1)
    held = await limiter.acquire_async()
    t = asyncio.create_task(limiter.acquire_async())
    await asyncio.sleep(0)
    held.ignore()  # the slot is handed to the waiter ...
    t.cancel()  # ... which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await t
    assert limiter.inflight == 0


def test_sync_waiter_is_woken_by_a_release_from_another_thread() -> None:
    limiter = AdaptiveLimiter("api", algorithm=AIMD(AIMDOptions(initial_limit=1)))
    held = limiter.acquire()
    got: list[bool] = []

    def worker() -> None:
        lease = limiter.acquire(timeout=10)
        got.append(True)
        lease.ignore()

    th = threading.Thread(target=worker)
    th.start()
    while limiter.waiting == 0:
        threading.Event().wait(0.001)
    held.ignore()
    th.join(5)
    assert got == [True] and limiter.inflight == 0


def test_sync_wait_zero_raises_at_once() -> None:
    limiter = lim(1, max_wait=0)
    limiter.acquire()
    with pytest.raises(LimitExceededError):
        limiter.acquire()


async def test_pause_admits_nothing_until_it_ends_then_restarts_low() -> None:
    clock = FakeClock()
    limiter = lim(4, clock=clock)
    limiter.set_limit(16)
    events: list[LimitEvent] = []
    limiter.add_listener(events.append)
    t0 = clock.monotonic()
    limiter.pause(300, reason="usage limit")
    assert limiter.limit == 4  # back to the initial limit, not the 16 it had reached
    assert limiter.try_acquire() is None
    lease = await limiter.acquire_async()  # sleeps on the virtual clock until the reset
    assert clock.monotonic() - t0 == pytest.approx(300)
    lease.ignore()
    paused = [e for e in events if isinstance(e, Paused)]
    assert paused and paused[0].reason == "usage limit"
    assert any(isinstance(e, OverloadSignal) and e.kind == "paused" for e in events)


async def test_pause_wakes_queued_waiters_who_then_wait_for_its_end() -> None:
    clock = FakeClock()
    limiter = lim(1, clock=clock)
    held = await limiter.acquire_async()
    t = asyncio.create_task(limiter.acquire_async())
    await asyncio.sleep(0)
    limiter.pause(60)
    held.ignore()
    lease = await t
    assert clock.monotonic() >= 1000 + 60
    lease.ignore()


def test_shorter_pause_does_not_shorten_a_longer_one() -> None:
    clock = FakeClock()
    limiter = lim(4, clock=clock)
    limiter.pause(100)
    limiter.pause(10)
    assert limiter.paused_for() == pytest.approx(100)


def test_listener_failure_does_not_reach_the_caller() -> None:
    limiter = lim(2)

    def bad(ev: LimitEvent) -> None:
        raise RuntimeError("boom")

    limiter.add_listener(bad)
    a = limiter.acquire()
    limiter.acquire()
    a.success()
    assert limiter.limit == 3


def test_fixed_limiter_never_moves() -> None:
    limiter = fixed_limiter("f", 3)
    leases = [limiter.acquire() for _ in range(3)]
    for lease in leases:
        lease.dropped()
    assert limiter.limit == 3


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(LimitOptionsError):
        LimiterOptions(max_wait=-1)
    with pytest.raises(LimitOptionsError):
        AdaptiveLimiter("")
    with pytest.raises(LimitOptionsError):
        AdaptiveLimiter("x", algorithm="nope")
    with pytest.raises(ValueError):
        lim(2).pause(float("inf"))


def test_default_overload_judgement_uses_the_classifier() -> None:
    from resurgo.limit import default_is_overload

    assert default_is_overload(Overloaded())
    assert default_is_overload(TimeoutError())
    assert not default_is_overload(ValueError("bad input"))
