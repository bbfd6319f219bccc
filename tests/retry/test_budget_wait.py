"""``wait_time`` / ``count_refusal`` / ``record_bypass``: waiting on a budget without inflating its stats.

Regression: the supervisor polled ``try_withdraw()`` every 0.5 s while a
budget was empty, counting a refusal per poll (~120 per 60 s wait).
"""

from __future__ import annotations

import pytest

from resurgo.clock import FakeClock
from resurgo.retrier import RetryBudget


def test_wait_time_is_zero_when_a_retry_fits_and_counts_nothing(clock: FakeClock) -> None:
    b = RetryBudget(ratio=0.2, min_retries_per_sec=1, ttl=10, clock=clock)
    assert b.wait_time() == 0.0
    s = b.stats()
    assert (s.retries_allowed, s.retries_refused) == (0, 0)


def test_wait_time_is_when_the_oldest_withdrawal_expires(clock: FakeClock) -> None:
    b = RetryBudget(ratio=0.2, min_retries_per_sec=1, ttl=10, clock=clock)
    clock.advance(0.25)  # inside slot 0 (slots are 1 s wide)
    assert sum(b.try_withdraw() for _ in range(10)) == 10  # the floor is spent in slot 0
    clock.advance(3.0)
    wt = b.wait_time()
    # slot 0 expires at the boundary of slot 10: t = 10 s since the clock's origin slot
    start = int(clock.monotonic() // 1.0) - 3
    assert wt == pytest.approx((start + 10) * 1.0 - clock.monotonic())
    for _ in range(100):
        assert b.wait_time() == wt  # asking is free ...
    assert b.stats().retries_refused == 0  # ... and never counted
    assert wt is not None
    clock.advance(wt - 0.01)
    assert not b.try_withdraw(count_refusal=False)
    clock.advance(0.01)
    assert b.wait_time() == 0.0 and b.try_withdraw()
    assert b.stats().retries_refused == 0


def test_wait_time_accounts_for_deposits_expiring_too(clock: FakeClock) -> None:
    b = RetryBudget(ratio=0.5, min_retries_per_sec=0, ttl=10, clock=clock)
    b.deposit()
    b.deposit()  # 2 calls: one retry's worth
    clock.advance(2.0)
    assert b.try_withdraw()
    assert b.wait_time() is None  # no floor: once the deposits expire nothing is left


def test_no_floor_and_no_calls_means_never(clock: FakeClock) -> None:
    b = RetryBudget(ratio=0.0, min_retries_per_sec=0, ttl=10, clock=clock)
    assert b.wait_time() is None
    assert not b.try_withdraw()
    assert not b.try_withdraw(count_refusal=False)
    assert b.stats().retries_refused == 1


def test_bypasses_are_counted(clock: FakeClock) -> None:
    b = RetryBudget(ratio=0.0, min_retries_per_sec=0, ttl=10, clock=clock)
    b.record_bypass()
    b.record_bypass()
    assert b.stats().bypassed == 2
