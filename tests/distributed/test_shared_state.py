"""Shared breakers, budgets and learned rules between independent workers (one Redis, several links)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from resurgo.breaker import CircuitBreaker, CircuitOpenError, CircuitState, CircuitThresholds
from resurgo.classifier import Classifier
from resurgo.clock import FakeClock
from resurgo.distributed import RedisBreakerSync, RedisLearning, RedisLink, RedisRetryBudget

from .conftest import RedisProcess

pytestmark = pytest.mark.redis


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


@pytest.fixture
def links(redis_url: str) -> Iterator[Callable[[str], RedisLink]]:
    made: list[RedisLink] = []

    def make(name: str) -> RedisLink:
        link = RedisLink(redis_url, name=name, prefix="t")
        made.append(link)
        return link

    yield make
    for link in made:
        link.close()


def _thresholds() -> CircuitThresholds:
    return CircuitThresholds(min_calls=4, failure_rate=0.5, sliding_window=30, wait_in_open=30)


def _fail() -> None:
    raise ConnectionError("upstream reset")


def test_local_opening_propagates_and_the_other_worker_rejects(links: Callable[[str], RedisLink]) -> None:
    la, lb = links("a"), links("b")
    sa, sb = RedisBreakerSync(la), RedisBreakerSync(lb)
    a = sa.attach(CircuitBreaker("api", thresholds=_thresholds()))
    b = sb.attach(CircuitBreaker("api", thresholds=_thresholds()))
    other = sb.attach(CircuitBreaker("other", thresholds=_thresholds()))
    assert lb.wait_subscribed()
    a.open(wait=20, reason="rate limited; resets in 20 s")
    assert wait_for(lambda: b.state is CircuitState.OPEN)
    with pytest.raises(CircuitOpenError) as ei:
        b.call(lambda: "never called")
    assert "shared" in ei.value.reason and "by a" in ei.value.reason
    assert 15 < (b.retry_after or 0) <= 20
    assert other.state is CircuitState.CLOSED  # another name is another breaker
    st = sb.shared_state("api")
    assert st is not None and st.state == "open" and st.origin == "a"
    # the echo of the applied opening did not bounce back as a second shared transition
    time.sleep(0.2)
    st2 = sb.shared_state("api")
    assert st2 is not None and st2.epoch == st.epoch


def test_failures_spread_over_workers_open_the_shared_breaker_exactly_once(
    links: Callable[[str], RedisLink],
) -> None:
    """Neither worker alone reaches min_calls; together they do, and one script opens the fleet's breaker."""
    syncs = [RedisBreakerSync(links(n)) for n in ("a", "b", "c")]
    brs = [s.attach(CircuitBreaker("api", thresholds=_thresholds())) for s in syncs]
    for s in syncs:
        assert s.link.wait_subscribed()
    seen: list[str] = []
    brs[2].add_listener(lambda ev: seen.append(getattr(ev, "reason", "")))
    for br in brs[:2]:
        for _ in range(3):
            with pytest.raises(ConnectionError):
                br.call(_fail)
    assert all(br.metrics().window.calls == 3 for br in brs[:2])  # below min_calls locally
    assert wait_for(lambda: all(br.state is CircuitState.OPEN for br in brs))
    st = syncs[0].shared_state("api")
    assert st is not None and st.state == "open" and st.epoch == 1 and "fleet" in st.reason
    assert st.total_calls == 6 and st.total_failures == 6
    with pytest.raises(CircuitOpenError):
        brs[2].call(lambda: None)


def test_probes_passing_close_the_fleet(links: Callable[[str], RedisLink]) -> None:
    syncs = [RedisBreakerSync(links(n)) for n in ("a", "b")]
    t = _thresholds().replace(wait_in_open=0.2, max_wait_in_open=0.2, half_open_max_calls=1)
    a, b = (s.attach(CircuitBreaker("api", thresholds=t)) for s in syncs)
    for s in syncs:
        assert s.link.wait_subscribed()
    a.open(wait=0.2)
    assert wait_for(lambda: b.state is CircuitState.OPEN)
    time.sleep(0.25)
    assert a.call(lambda: 1) == 1  # one probe, passes: a closes
    assert a.state is CircuitState.CLOSED
    assert wait_for(lambda: (syncs[1].shared_state("api") or syncs[0].shared_state("api")).state == "closed")  # type: ignore[union-attr]


def test_budget_shared_by_two_clients_is_never_exceeded(links: Callable[[str], RedisLink]) -> None:
    clock = FakeClock()
    kw = {"ratio": 0.2, "min_retries_per_sec": 0.5, "ttl": 10.0, "clock": clock}
    a = RedisRetryBudget(links("a"), "api", **kw)  # type: ignore[arg-type]
    b = RedisRetryBudget(links("b"), "api", **kw)  # type: ignore[arg-type]
    for _ in range(50):
        a.deposit()
        b.deposit()
    allowed = 0
    for i in range(100):
        allowed += (a if i % 2 else b).try_withdraw()
    # 20 % of 100 calls + a reserve of 0.5/s * 10 s, for the two together, exactly
    assert allowed == 20 + 5
    assert a.available() == pytest.approx(0.0) and b.available() == pytest.approx(0.0)
    clock.advance(11)  # everything expired: only the reserve is back
    assert a.available() == pytest.approx(5.0)


def test_budget_under_concurrent_workers_keeps_the_invariant(links: Callable[[str], RedisLink]) -> None:
    buds = [RedisRetryBudget(links(f"w{i}"), "api", ratio=0.1, min_retries_per_sec=0.2, ttl=10) for i in range(3)]
    allowed = [0, 0, 0]
    deposits = 0
    lock = threading.Lock()

    def work(i: int) -> None:
        nonlocal deposits
        for k in range(300):
            buds[i].deposit()
            with lock:
                deposits += 1
            if k % 3 == 0 and buds[i].try_withdraw():
                allowed[i] += 1

    ts = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sum(allowed) <= 0.1 * deposits + 0.2 * 10
    assert sum(allowed) >= 0.1 * deposits * 0.5  # and it does allow retries, not just refuse


def test_learned_rule_is_visible_on_another_classifier(links: Callable[[str], RedisLink]) -> None:
    ca, cb = Classifier(), Classifier()
    la, lb = RedisLearning(links("a"), ca), RedisLearning(links("b"), cb)
    err = RuntimeError("frobnicator hiccup 7f3a on shard 12")  # nothing in the packs knows it
    # both classify first: their packs compile on the first question, and a compile in the middle
    # of the records below would let the fleet's counts arrive before the local check
    assert ca.classify(err, record=False).rule == "fallback" == cb.classify(err, record=False).rule
    ca.record_outcome(err, True)
    ca.record_outcome(err, True)
    cb.record_outcome(err, True)  # neither alone has min_successes=3
    assert not ca.learned_rules() and not cb.learned_rules()
    assert wait_for(lambda: len(cb.learned_rules()) == 1 and len(ca.learned_rules()) == 1)
    assert cb.classify(err, record=False).rule != "fallback"
    sig = cb.learned_rules()[0].signature
    assert cb.learned_rules()[0].successes == 3 and ca.learned_rules()[0].successes == 3
    # forgetting is fleet-wide
    la.forget(sig)
    assert wait_for(lambda: not cb.learned_rules())
    assert ca.classify(err, record=False).rule == "fallback"
    lb.close()


def test_explicit_rule_never_becomes_learned_through_the_fleet(links: Callable[[str], RedisLink]) -> None:
    ca, cb = Classifier(), Classifier()
    RedisLearning(links("a"), ca)
    lb = RedisLearning(links("b"), cb)
    err = {"http_status": 401, "message": "invalid x-api-key"}
    for _ in range(5):
        ca.record_outcome(err, True)
    assert wait_for(lambda: any(o.successes == 5 for o in cb.outcomes()))
    lb.sync()
    assert not cb.learned_rules()


def test_redis_killed_and_restarted_state_converges(
    redis_proc: RedisProcess, links: Callable[[str], RedisLink]
) -> None:
    la, lb = links("a"), links("b")
    sa, sb = RedisBreakerSync(la), RedisBreakerSync(lb)
    ca, cb = Classifier(), Classifier()
    RedisLearning(la, ca)
    RedisLearning(lb, cb)
    ba, bb = RedisRetryBudget(la, "api", min_retries_per_sec=0.1), RedisRetryBudget(lb, "api", min_retries_per_sec=0.1)
    a = sa.attach(CircuitBreaker("api", thresholds=_thresholds()))
    b = sb.attach(CircuitBreaker("api", thresholds=_thresholds()))
    redis_proc.kill()
    # everything keeps working on local state; no Redis error escapes
    for _ in range(20):
        ba.deposit()
        assert a.call(lambda: 1) == 1
    assert ba.try_withdraw() is True
    assert ba.local_decisions >= 1
    err = RuntimeError("frobnicator hiccup 9e1b on shard 3")
    for _ in range(3):
        ca.record_outcome(err, True)
    assert len(ca.learned_rules()) == 1  # learned locally at once
    a.open(wait=20, reason="rate limited while redis was down")
    assert wait_for(lambda: not la.up)
    assert b.state is CircuitState.CLOSED  # no way to tell b yet
    redis_proc.start()  # comes back empty (no persistence)
    assert wait_for(lambda: la.up and lb.up, timeout=10)
    assert wait_for(lambda: b.state is CircuitState.OPEN, timeout=10)
    assert wait_for(lambda: len(cb.learned_rules()) == 1, timeout=10)
    st = sb.shared_state("api")
    assert st is not None and st.state == "open"
    assert bb.available() < 0.1 * 10 + 20 * 0.2  # a's buffered deposits and retry reached the fleet's bucket
    assert bb.available() > 0
