"""The fleet's adaptive limit in Redis: one limit for all workers, leases that die with their worker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.distributed.conftest import RedisProcess

from resurgo.clock import FakeClock
from resurgo.distributed._limit import RedisLimiter
from resurgo.distributed._link import RedisLink
from resurgo.limit import AIMDOptions, LimitChanged, LimitEvent, Paused

pytestmark = pytest.mark.redis


@pytest.fixture
def links(redis_url: str) -> Iterator[tuple[RedisLink, RedisLink]]:
    a = RedisLink(redis_url, prefix="t", name="worker-a")
    b = RedisLink(redis_url, prefix="t", name="worker-b")
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def opts(initial: int = 3) -> AIMDOptions:
    return AIMDOptions(initial_limit=initial, min_limit=1, max_limit=32, backoff_ratio=0.75,
                       congestion_avoidance=True, slow_start_backoff_ratio=0.5)


def test_the_limit_is_shared_not_multiplied_by_workers(links: tuple[RedisLink, RedisLink]) -> None:
    clock = FakeClock()
    a = RedisLimiter(links[0], "api", options=opts(3), clock=clock)
    b = RedisLimiter(links[1], "api", options=opts(3), clock=clock)
    got = [a.try_acquire(), b.try_acquire(), a.try_acquire()]
    assert all(x is not None for x in got)
    assert a.try_acquire() is None and b.try_acquire() is None  # 3 for the fleet, not 3 per worker
    got[0].ignore()  # type: ignore[union-attr]
    assert b.try_acquire() is not None


def test_gate_local_limiters_multiply_the_limit(links: tuple[RedisLink, RedisLink]) -> None:
    """What the shared limit prevents: two workers with limiters of their own admit twice the limit."""
    from resurgo.limit import AIMD, AdaptiveLimiter

    a = AdaptiveLimiter("api", algorithm=AIMD(opts(3)))
    b = AdaptiveLimiter("api", algorithm=AIMD(opts(3)))
    admitted = sum(1 for lim in (a, b) for _ in range(5) if lim.try_acquire() is not None)
    assert admitted == 6


def test_a_drop_seen_by_one_worker_cuts_the_fleet_limit(links: tuple[RedisLink, RedisLink]) -> None:
    clock = FakeClock()
    a = RedisLimiter(links[0], "api", options=opts(8), clock=clock)
    b = RedisLimiter(links[1], "api", options=opts(8), clock=clock)
    events: list[LimitEvent] = []
    a.add_listener(events.append)
    lease = a.try_acquire()
    assert lease is not None
    clock.advance(1)
    lease.dropped("529", started=clock.monotonic() - 0.5)
    assert a.limit == 4  # slow start ends: halved
    held = [b.try_acquire() for _ in range(6)]
    assert sum(x is not None for x in held) == 4
    assert any(isinstance(e, LimitChanged) and e.new == 4 for e in events)
    # a drop of a call sent before that cut does not cut again
    stale = held[0]
    assert stale is not None
    stale.dropped("529", started=clock.monotonic() - 5)
    assert b.limit == 4


def test_successes_grow_the_fleet_limit(links: tuple[RedisLink, RedisLink]) -> None:
    clock = FakeClock()
    a = RedisLimiter(links[0], "api", options=opts(2), clock=clock)
    b = RedisLimiter(links[1], "api", options=opts(2), clock=clock)
    x, y = a.try_acquire(), b.try_acquire()
    assert x is not None and y is not None
    x.sample(rtt=0.1)
    y.sample(rtt=0.1)
    assert b.limit == 4 and a.refresh() == 4  # a saw 3 after its own sample; the fleet is at 4


def test_slots_of_a_dead_worker_expire(links: tuple[RedisLink, RedisLink]) -> None:
    clock = FakeClock()
    dead = RedisLimiter(links[0], "api", options=opts(2), clock=clock, lease_ttl=5.0)
    alive = RedisLimiter(links[1], "api", options=opts(2), clock=clock, lease_ttl=5.0)
    assert dead.try_acquire() is not None and dead.try_acquire() is not None
    assert alive.try_acquire() is None
    clock.advance(6)  # the dead worker never renews
    assert alive.try_acquire() is not None


def test_renewed_slots_do_not_expire(links: tuple[RedisLink, RedisLink]) -> None:
    clock = FakeClock()
    a = RedisLimiter(links[0], "api", options=opts(1), clock=clock, lease_ttl=5.0)
    b = RedisLimiter(links[1], "api", options=opts(1), clock=clock, lease_ttl=5.0)
    assert a.try_acquire() is not None
    for _ in range(4):
        clock.advance(3)
        assert a.renew() == 1
    assert b.try_acquire() is None


async def test_a_pause_stops_every_worker_until_the_reset(links: tuple[RedisLink, RedisLink]) -> None:
    clock = FakeClock()
    a = RedisLimiter(links[0], "api", options=opts(4), clock=clock, poll=1.0)
    b = RedisLimiter(links[1], "api", options=opts(4), clock=clock, poll=1.0)
    events: list[LimitEvent] = []
    a.add_listener(events.append)
    t0 = clock.monotonic()
    a.pause(30, reason="usage limit")
    assert b.try_acquire() is None
    lease = await b.acquire_async()
    assert clock.monotonic() - t0 >= 30
    lease.ignore()
    assert any(isinstance(e, Paused) for e in events)


def test_redis_down_falls_back_to_a_local_limit(redis_proc: RedisProcess) -> None:
    link = RedisLink(redis_proc.url, prefix="t", name="w", socket_timeout=0.3)
    try:
        lim = RedisLimiter(link, "api", options=opts(2), clock=FakeClock())
        assert lim.try_acquire() is not None
        redis_proc.kill()
        local = [lim.try_acquire() for _ in range(3)]
        assert sum(x is not None for x in local) == 2  # the last known limit, decided locally
    finally:
        link.close()


def test_workers_with_concurrency_auto_share_one_redis_limit_per_endpoint(redis_url: str) -> None:
    from resurgo.distributed._fleet_worker import FleetWorker
    from resurgo.supervise import SupervisorConfig

    cfg = SupervisorConfig(concurrency="auto", max_concurrency=6)
    w1 = FleetWorker(redis_url, config=cfg, prefix="t", name="w1")
    w2 = FleetWorker(redis_url, config=cfg, prefix="t", name="w2")
    assert w1.concurrency == 6  # jobs taken from the queue at most; the fleet limit decides how many run
    assert w1._fleet_limiter("http://api") is None  # not connected yet: the supervisor makes a local one
    w1.link = RedisLink(redis_url, prefix="t", name="w1")
    w2.link = RedisLink(redis_url, prefix="t", name="w2")
    try:
        a, b = w1._fleet_limiter("http://api"), w2._fleet_limiter("http://api")
        assert isinstance(a, RedisLimiter) and a.options.max_limit == 6 and a.options.congestion_avoidance
        held = [x for x in (a.try_acquire(), b.try_acquire(), a.try_acquire(), b.try_acquire()) if x is not None]
        assert len(held) == 2  # the endpoint's initial limit, for both workers together
    finally:
        w1.link.close()
        w2.link.close()
