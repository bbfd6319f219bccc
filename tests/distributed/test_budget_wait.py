"""The fleet budget's ``wait_time``: same answer as the local budget, counting nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from resurgo.clock import FakeClock
from resurgo.distributed import RedisLink, RedisRetryBudget


@pytest.fixture
def link(redis_url: str) -> Iterator[RedisLink]:
    lk = RedisLink(redis_url, name="w", prefix="tw")
    try:
        yield lk
    finally:
        lk.close()


def test_redis_wait_time_matches_the_local_rule_and_counts_nothing(link: RedisLink) -> None:
    clock = FakeClock(wall_start=1_700_000_000.25)
    b = RedisRetryBudget(link, "api", ratio=0.2, min_retries_per_sec=1, ttl=10, clock=clock)
    try:
        assert b.wait_time() == 0.0
        assert sum(b.try_withdraw() for _ in range(12)) == 10  # the floor, spent in one slot
        assert b.stats().retries_refused == 2
        clock.advance(3.0)
        wt = b.wait_time()
        assert wt == pytest.approx(7.0 - 0.25)  # the slot of the withdrawals expires in 6.75 s
        assert b.stats().retries_refused == 2
        assert wt is not None
        clock.advance(wt - 0.01)
        assert not b.try_withdraw(count_refusal=False)
        clock.advance(0.01)
        assert b.wait_time() == 0.0 and b.try_withdraw()
        assert b.stats().retries_refused == 2
        b.record_bypass()
        assert b.stats().bypassed == 1
    finally:
        b.close()


def test_redis_wait_time_without_floor_or_calls_is_never(link: RedisLink) -> None:
    b = RedisRetryBudget(link, "none", ratio=0.0, min_retries_per_sec=0, ttl=10, clock=FakeClock())
    try:
        assert b.wait_time() is None
    finally:
        b.close()
