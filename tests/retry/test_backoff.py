from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resurgo.clock import FakeClock
from resurgo.retrier import (
    AdaptiveBackoff,
    BackoffStrategy,
    DecorrelatedJitterBackoff,
    EqualJitterBackoff,
    ExponentialBackoff,
    FixedBackoff,
    FullJitterBackoff,
    LinearBackoff,
    LoadTracker,
    RetryPolicy,
)


def test_deterministic_schedules() -> None:
    assert [FixedBackoff(10).calculate(n, 1.0, None) for n in (1, 2, 3)] == [1.0, 1.0, 1.0]
    assert [LinearBackoff(10).calculate(n, 1.0, None) for n in (1, 2, 3)] == [1.0, 2.0, 3.0]
    exp = ExponentialBackoff(10)
    assert [exp.calculate(n, 1.0, None) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 10]
    assert exp.calculate(10_000, 1.0, None) == 10  # no overflow on absurd attempt numbers


def test_jitter_formulas_at_the_random_extremes() -> None:
    lo, hi = (lambda: 0.0), (lambda: 0.999999)
    assert FullJitterBackoff(100, rand=lo).calculate(3, 1.0, None) == 0.0
    assert FullJitterBackoff(100, rand=hi).calculate(3, 1.0, None) == pytest.approx(4.0, rel=1e-5)
    assert EqualJitterBackoff(100, rand=lo).calculate(3, 1.0, None) == 2.0
    assert EqualJitterBackoff(100, rand=hi).calculate(3, 1.0, None) == pytest.approx(4.0, rel=1e-5)
    # decorrelated: rand(base, previous * 3), previous starting at base
    assert DecorrelatedJitterBackoff(100, rand=lo).calculate(1, 1.0, None) == 1.0
    d = DecorrelatedJitterBackoff(100, rand=hi).calculate(2, 1.0, None, previous=5.0)
    assert d == pytest.approx(15.0, rel=1e-5)
    # jitter flag on a deterministic schedule keeps the upper half
    assert ExponentialBackoff(100, jitter=True, rand=lo).calculate(3, 1.0, None) == 2.0


@given(
    strategy=st.sampled_from(list(BackoffStrategy)),
    jitter=st.booleans(),
    attempt=st.integers(min_value=1, max_value=10_000),
    base=st.floats(min_value=0, max_value=100),
    extra=st.floats(min_value=0, max_value=1000),
    previous=st.floats(min_value=0, max_value=1e6),
    load=st.floats(min_value=-1, max_value=2),
)
def test_delays_always_within_zero_and_max_delay(
    strategy: BackoffStrategy,
    jitter: bool,
    attempt: int,
    base: float,
    extra: float,
    previous: float,
    load: float,
) -> None:
    p = RetryPolicy(backoff_strategy=strategy, jitter=jitter, base_delay=base, max_delay=base + extra)
    d = p.calculator.calculate(attempt, p.base_delay, None, previous)
    assert 0.0 <= d <= p.max_delay
    assert 0.0 <= p.calculator.adjust_for_load(d, load) <= p.max_delay


def test_adaptive_grows_with_load_and_only_adaptive_does() -> None:
    a = AdaptiveBackoff(100, gain=3.0)
    assert a.adjust_for_load(2.0, 0.0) == 2.0
    assert a.adjust_for_load(2.0, 0.5) == 5.0
    assert a.adjust_for_load(2.0, 1.0) == 8.0
    assert a.adjust_for_load(50.0, 1.0) == 100.0  # still capped
    assert ExponentialBackoff(100).adjust_for_load(2.0, 1.0) == 2.0


def test_load_tracker_rises_with_failures_and_recovers() -> None:
    clock = FakeClock()
    t = LoadTracker(alpha=0.5, half_life=10.0, clock=clock)
    assert t.load() == 0.0
    t.record(True)
    t.record(True)
    assert t.load() == pytest.approx(0.75)
    t.record(False)
    assert t.load() == pytest.approx(0.375)
    # idle time decays it: halves every half_life
    clock.advance(10.0)
    assert t.load() == pytest.approx(0.1875)
    clock.advance(100.0)
    assert t.load() < 0.001


def test_load_tracker_validates() -> None:
    with pytest.raises(ValueError, match="alpha"):
        LoadTracker(alpha=0)
    with pytest.raises(ValueError, match="half_life"):
        LoadTracker(half_life=0)
