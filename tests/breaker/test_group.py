"""BreakerGroup: failover, round-robin, weights, all-open."""

from __future__ import annotations

from collections import Counter
from typing import get_args

import pytest

import resurgo.breaker
from resurgo.breaker import (
    AllBackendsOpenError,
    BreakerGroup,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    GroupStrategy,
)
from resurgo.clock import FakeClock

from ._helpers import AuthErr, BadRequest, NetErr, classifier, count_thresholds

S = CircuitState


def group(clock: FakeClock, strategy: GroupStrategy = "priority", **kw: object) -> BreakerGroup[str]:
    return BreakerGroup(
        {"a": "http://a", "b": "http://b", "c": "http://c"},
        strategy=strategy,
        thresholds=count_thresholds(min_calls=1, **kw),
        clock=clock,
        classifier=classifier,
    )


def test_priority_fails_over_and_returns_when_the_primary_recovers(clock) -> None:
    g = group(clock, wait_in_open=10.0, half_open_max_calls=1)
    assert g.call(lambda t: t) == "http://a"
    down = {"http://a"}

    def req(target: str) -> str:
        if target in down:
            raise NetErr(target)
        return target

    with pytest.raises(NetErr):
        g.call(req)  # a fails and opens (min_calls 1)
    assert g["a"].breaker.state is S.OPEN
    assert g.call(req) == "http://b"  # failover without calling a
    assert g.pick().name == "b"
    down.clear()
    clock.advance(10.0)
    assert g.call(req) == "http://a"  # a's probe goes first once its wait is over
    assert g.states() == {"a": S.CLOSED, "b": S.CLOSED, "c": S.CLOSED}


def test_failover_on_error_tries_the_next_member_but_not_for_validation(clock) -> None:
    g = group(clock)
    tried: list[str] = []

    def req(target: str) -> str:
        tried.append(target)
        if target != "http://c":
            raise NetErr(target)
        return "done"

    assert g.call(req, failover_on_error=True) == "done"
    assert tried == ["http://a", "http://b", "http://c"]
    tried.clear()

    def invalid(target: str) -> str:
        tried.append(target)
        raise BadRequest("prompt is too long")

    with pytest.raises(BadRequest):
        g.call(invalid, failover_on_error=True)
    assert tried == ["http://c"]  # the same bad request would fail everywhere


def test_auth_error_takes_one_key_out(clock) -> None:
    g = BreakerGroup(
        {"key1": "sk-1", "key2": "sk-2"}, thresholds=count_thresholds(), clock=clock,
        classifier=classifier,
    )

    def req(key: str) -> str:
        if key == "sk-1":
            raise AuthErr("Invalid API key")
        return key

    assert g.call(req, failover_on_error=True) == "sk-2"
    assert g["key1"].breaker.state is S.FORCED_OPEN
    assert g.call(req) == "sk-2"


def test_all_open_raises_with_the_soonest_retry_after(clock) -> None:
    g = group(clock)
    g["a"].breaker.open(wait=50)
    g["b"].breaker.open(wait=20)
    g["c"].breaker.force_open()
    with pytest.raises(AllBackendsOpenError) as ei:
        g.call(lambda t: t)
    assert ei.value.retry_after == pytest.approx(20.0)
    assert set(ei.value.errors) == {"a", "b", "c"}
    assert isinstance(ei.value, CircuitOpenError)
    with pytest.raises(AllBackendsOpenError):
        g.pick()
    assert [m.name for m in g.order()] == ["b", "a", "c"]


def test_round_robin_spreads_over_closed_members_only(clock) -> None:
    g = group(clock, "round_robin")
    seen = Counter(g.call(lambda t: t) for _ in range(9))
    assert seen == {"http://a": 3, "http://b": 3, "http://c": 3}
    g["b"].breaker.open(wait=100)
    seen = Counter(g.call(lambda t: t) for _ in range(10))
    assert set(seen) == {"http://a", "http://c"} and abs(seen["http://a"] - seen["http://c"]) <= 1


def test_weighted_is_smooth_and_proportional(clock) -> None:
    g: BreakerGroup[str] = BreakerGroup(strategy="weighted", clock=clock, classifier=classifier)
    g.add("big", "B", weight=3)
    g.add("small", "s", weight=1)
    seq = "".join(g.call(lambda t: t) for _ in range(8))
    assert seq == "BBsBBBsB"  # nginx's smooth WRR: 3:1, interleaved


def test_membership_validation(clock) -> None:
    g = group(clock)
    with pytest.raises(ValueError, match="already"):
        g.add("a", "x")
    with pytest.raises(ValueError, match="weight"):
        g.add("d", "x", weight=0)
    with pytest.raises(ValueError, match="strategy"):
        BreakerGroup(strategy="random")  # type: ignore[arg-type]
    for name in get_args(GroupStrategy):  # every name the type allows is accepted
        assert BreakerGroup(strategy=name).strategy == name
    # the group's strategy is not confused with resurgo.classifier.Strategy (recovery strategies)
    assert not hasattr(resurgo.breaker, "Strategy")
    own = CircuitBreaker("mine", clock=clock, classifier=classifier)
    assert g.add("d", "http://d", breaker=own).breaker is own
    g.remove("d")
    with pytest.raises(KeyError):
        g.remove("d")
    assert len(g) == 3
    with pytest.raises(AllBackendsOpenError, match="no backends"):
        BreakerGroup().call(lambda t: t)


async def test_async_group_call_fails_over(clock) -> None:
    g = group(clock)
    g["a"].breaker.open(wait=5)

    async def req(target: str) -> str:
        if target == "http://b":
            raise NetErr("b down")
        return target

    assert await g.call_async(req, failover_on_error=True) == "http://c"
    member, permit = g.acquire()
    assert member.name == "c"
    permit.release()
