"""Retry budgets: exact bounds, expiry, fail-fast, and no overdraft under concurrency."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resurgo.clock import FakeClock
from resurgo.retrier import (
    Retrier,
    RetryBudget,
    RetryBudgetExhausted,
    RetryPolicy,
    budget_for,
    retry_info,
)

from ._helpers import Classified, classify, net

ZERO = RetryPolicy(max_attempts=1000, base_delay=0, max_delay=0, backoff_strategy="fixed")


def test_floor_allows_min_retries_per_sec_times_ttl(clock: FakeClock) -> None:
    b = RetryBudget(ratio=0.2, min_retries_per_sec=1, ttl=10, clock=clock)
    assert [b.try_withdraw() for _ in range(11)] == [True] * 10 + [False]
    assert b.stats().retries_refused == 1


def test_ratio_of_calls(clock: FakeClock) -> None:
    b = RetryBudget(ratio=0.2, min_retries_per_sec=0, ttl=10, clock=clock)
    assert not b.try_withdraw()
    for _ in range(50):
        b.deposit()
    assert b.available() == pytest.approx(10)
    assert sum(b.try_withdraw() for _ in range(20)) == 10


def test_deposits_and_withdrawals_expire_after_ttl(clock: FakeClock) -> None:
    b = RetryBudget(ratio=0.5, min_retries_per_sec=0, ttl=10, clock=clock)
    for _ in range(10):
        b.deposit()
    assert sum(b.try_withdraw() for _ in range(3)) == 3
    clock.advance(10.0)
    assert b.available() == 0 and not b.try_withdraw()
    b2 = RetryBudget(ratio=0.5, min_retries_per_sec=0.5, ttl=10, clock=clock)
    assert sum(b2.try_withdraw() for _ in range(10)) == 5  # floor used up ...
    clock.advance(10.0)
    assert sum(b2.try_withdraw() for _ in range(10)) == 5  # ... and back after ttl


def test_invalid_budget_settings() -> None:
    with pytest.raises(ValueError, match="ratio"):
        RetryBudget(ratio=-0.1)
    with pytest.raises(ValueError, match="min_retries_per_sec"):
        RetryBudget(min_retries_per_sec=float("inf"))
    with pytest.raises(ValueError, match="ttl"):
        RetryBudget(ttl=0.5)


def test_registry_shares_one_budget_per_dependency() -> None:
    name = f"dep-{uuid.uuid4()}"
    b = budget_for(name, ratio=0.1)
    assert budget_for(name) is b
    assert Retrier(dependency=name).budget is b
    assert Retrier(dependency=name, budget=None).budget is None
    assert Retrier().budget is None
    with pytest.raises(ValueError, match=r"already exists with ratio=0\.1"):
        budget_for(name, ratio=0.3)
    with pytest.raises(ValueError):
        budget_for("")


def test_exhausted_budget_fails_fast_with_distinct_error(clock: FakeClock) -> None:
    b = RetryBudget(ratio=0.1, min_retries_per_sec=0.1, ttl=10, clock=clock)  # one retry in reserve
    r = Retrier(policy=ZERO, clock=clock, classifier=classify, budget=b)
    calls = 0

    def always() -> None:
        nonlocal calls
        calls += 1
        raise net()

    with pytest.raises(RetryBudgetExhausted) as info:
        r.call(always)
    assert calls == 2  # the first attempt, one budgeted retry, then fail fast
    assert isinstance(info.value.__cause__, Classified)
    assert "retry budget is exhausted" in str(info.value)
    s = r.stats()
    assert s.budget_refusals == 1 and s.give_ups == {"budget_exhausted": 1}
    assert b.stats().retries_refused == 1
    assert retry_info(info.value.__cause__) is None  # the distinct error carries the info


@settings(max_examples=80, deadline=None)
@given(
    ratio=st.sampled_from([0.1, 0.2, 0.5, 1.0]),
    floor=st.sampled_from([0.0, 0.1, 1.0]),
    ops=st.lists(
        st.one_of(
            st.just("deposit"),
            st.just("withdraw"),
            st.integers(min_value=1, max_value=30).map(lambda q: q * 0.25),
        ),
        max_size=300,
    ),
)
def test_property_budget_never_exceeded(ratio: float, floor: float, ops: list[object]) -> None:
    """Every granted retry: retries in the last 0.9*ttl <= ratio * calls in the last ttl + floor*ttl."""
    clock = FakeClock(start=0.0)
    ttl = 10.0
    b = RetryBudget(ratio=ratio, min_retries_per_sec=floor, ttl=ttl, clock=clock)
    deposits: list[float] = []
    grants: list[float] = []
    for op in ops:
        now = clock.monotonic()
        if op == "deposit":
            b.deposit()
            deposits.append(now)
        elif op == "withdraw":
            if b.try_withdraw():
                grants.append(now)
                recent_grants = sum(1 for t in grants if t > now - 0.9 * ttl)
                recent_calls = sum(1 for t in deposits if t > now - ttl)
                assert recent_grants <= ratio * recent_calls + floor * ttl + 1e-9
        else:
            assert isinstance(op, float)
            clock.advance(op)


def _bound(b: RetryBudget) -> int:
    """Retries the budget can grant in one window from its deposits and reserve."""
    return (b.stats().deposits * b.deposit_amount + b.reserve) // b.withdraw_amount


def test_concurrent_threads_never_overdraw(clock: FakeClock) -> None:
    b = RetryBudget(ratio=0.2, min_retries_per_sec=1, ttl=10, clock=clock)
    r = Retrier(policy=ZERO, clock=clock, classifier=classify, budget=b)
    attempts = 0
    lock = threading.Lock()

    def fails_twice_then_ok() -> str:
        nonlocal attempts
        with lock:
            attempts += 1
            n = attempts
        if n % 3:
            raise net()
        return "ok"

    outcomes = {"ok": 0, "refused": 0}
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(300):
            try:
                r.call(fails_twice_then_ok)
                key = "ok"
            except RetryBudgetExhausted:
                key = "refused"
            with lock:
                outcomes[key] += 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    calls = 8 * 300
    retries = attempts - calls
    st_ = b.stats()
    assert st_.deposits == calls
    assert retries == st_.retries_allowed
    assert retries <= 0.2 * calls + 1 * 10
    # no lost or double-counted update: what was granted plus what is left is the supply
    assert retries + int(st_.available) == _bound(b)
    assert outcomes["refused"] > 0 and outcomes["ok"] + outcomes["refused"] == calls
    assert r.stats().calls == calls and r.stats().budget_refusals == outcomes["refused"]


async def test_concurrent_tasks_never_overdraw(clock: FakeClock) -> None:
    b = RetryBudget(ratio=0.2, min_retries_per_sec=1, ttl=10, clock=clock)
    r = Retrier(policy=ZERO.with_(base_delay=0.001, max_delay=0.001), clock=clock, classifier=classify, budget=b)
    attempts = 0

    async def always() -> None:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0)
        raise net()

    async def one() -> None:
        with pytest.raises(RetryBudgetExhausted):
            await r.call_async(always)

    await asyncio.gather(*(one() for _ in range(200)))
    retries = attempts - 200
    assert retries == b.stats().retries_allowed == _bound(b)
    assert retries <= 0.2 * 200 + 10
