"""Limit algorithms, sample by sample (pure state machines, no time involved)."""

from __future__ import annotations

import pytest

from resurgo.limit import (
    AIMD,
    AIMDOptions,
    Gradient2,
    GradientOptions,
    LimitOptionsError,
    Sample,
    Vegas,
    VegasOptions,
    make_algorithm,
)


def ok(rtt: float, inflight: int) -> Sample:
    return Sample(rtt, inflight, False)


DROP = Sample(None, 10, True)


def test_aimd_grows_by_the_increase_only_while_the_limit_is_in_use() -> None:
    a = AIMD(AIMDOptions(initial_limit=10, max_limit=100, increase=1.0))
    assert a.update(ok(0.1, 5)) == 11  # half in flight: in use
    assert a.update(ok(0.1, 2)) == 11  # an idle limit does not grow on credit
    assert a.update(ok(0.1, 11)) == 12


def test_aimd_cuts_multiplicatively_on_a_drop_and_on_a_timeout_but_not_below_min() -> None:
    a = AIMD(AIMDOptions(initial_limit=20, min_limit=2, backoff_ratio=0.5, timeout=1.0))
    assert a.update(DROP) == 10
    assert a.update(ok(2.0, 10)) == 5  # slower than the timeout counts as a drop
    for _ in range(10):
        a.update(DROP)
    assert a.limit == 2


def test_aimd_never_exceeds_max() -> None:
    a = AIMD(AIMDOptions(initial_limit=4, max_limit=6))
    for _ in range(50):
        a.update(ok(0.1, 100))
    assert a.limit == 6


def test_gradient_grows_while_latency_is_steady_and_shrinks_when_it_rises() -> None:
    g = Gradient2(GradientOptions(initial_limit=10, max_limit=1000, smoothing=1.0))
    for _ in range(20):
        g.update(ok(0.1, g.limit))
    grown = g.limit
    assert grown > 10
    for _ in range(20):
        g.update(ok(1.0, g.limit))  # latency 10x the long-term average: queueing
    assert g.limit < grown


def test_gradient_ignores_latency_when_the_limit_is_not_in_use() -> None:
    g = Gradient2(GradientOptions(initial_limit=10, smoothing=1.0))
    for _ in range(20):
        g.update(ok(0.1, 1))
    assert g.limit == 10


def test_gradient_and_vegas_cut_on_drops() -> None:
    g = Gradient2(GradientOptions(initial_limit=20, backoff_ratio=0.5))
    v = Vegas(VegasOptions(initial_limit=20, backoff_ratio=0.5))
    assert g.update(DROP) == 10
    assert v.update(DROP) == 10


def test_vegas_grows_with_no_queue_and_shrinks_with_a_long_one() -> None:
    v = Vegas(VegasOptions(initial_limit=20, max_limit=1000))
    v.update(ok(0.1, 20))  # the first sample sets rtt_noload
    v.update(ok(0.1, 20))
    assert v.limit > 20
    big = v.limit
    for _ in range(30):
        v.update(ok(1.0, v.limit))  # rtt 10x the unloaded one: a queue of ~90% of the limit
    assert v.limit < big


def test_reset_clamps_to_bounds() -> None:
    a = AIMD(AIMDOptions(initial_limit=5, min_limit=2, max_limit=8))
    assert a.reset(100) == 8
    assert a.reset(0) == 2


@pytest.mark.parametrize(
    ("cls", "kw", "word"),
    [
        (AIMDOptions, {"backoff_ratio": 1.0}, "backoff_ratio"),
        (AIMDOptions, {"backoff_ratio": 0}, "backoff_ratio"),
        (AIMDOptions, {"increase": -1}, "increase"),
        (AIMDOptions, {"timeout": 0}, "timeout"),
        (AIMDOptions, {"min_limit": 0}, "min_limit"),
        (AIMDOptions, {"min_limit": 5, "max_limit": 4, "initial_limit": 4}, "max_limit"),
        (AIMDOptions, {"initial_limit": 500}, "initial_limit"),
        (AIMDOptions, {"initial_limit": True}, "initial_limit"),
        (GradientOptions, {"tolerance": 0.5}, "tolerance"),
        (GradientOptions, {"smoothing": 0}, "smoothing"),
        (GradientOptions, {"long_window": 0}, "long_window"),
        (VegasOptions, {"probe_every": 0}, "probe_every"),
        (VegasOptions, {"smoothing": float("nan")}, "smoothing"),
    ],
)
def test_options_are_validated_with_the_field_named(cls: type, kw: dict[str, object], word: str) -> None:
    with pytest.raises(LimitOptionsError, match=word):
        cls(**kw)


def test_options_replace_validates_and_rejects_unknown_fields() -> None:
    o = AIMDOptions()
    assert o.replace(max_limit=50).max_limit == 50
    with pytest.raises(LimitOptionsError, match="unknown"):
        o.replace(bogus=1)
    with pytest.raises(LimitOptionsError):
        o.replace(backoff_ratio=2.0)


def test_make_algorithm_by_name() -> None:
    assert make_algorithm("aimd", initial_limit=3).limit == 3
    assert make_algorithm("gradient").name == "gradient"
    assert make_algorithm("vegas").name == "vegas"
    with pytest.raises(LimitOptionsError, match="unknown limit algorithm"):
        make_algorithm("cubic")


def test_aimd_congestion_avoidance_slow_start_then_one_step_per_round() -> None:
    a = AIMD(AIMDOptions(initial_limit=2, max_limit=100, backoff_ratio=0.5, congestion_avoidance=True))
    for _ in range(6):
        a.update(ok(0.1, a.limit))
    assert a.limit == 8  # slow start: +1 per sample
    a.update(DROP)
    assert a.limit == 4 and a.avoiding
    for _ in range(4):
        a.update(ok(0.1, a.limit))
    assert a.limit == 4  # 4 samples at limit 4.x: less than +1
    for _ in range(4):
        a.update(ok(0.1, a.limit))
    assert a.limit == 5  # about +1 per limit's worth of samples
    a.reset(2)
    assert not a.avoiding


def test_gate_without_congestion_avoidance_growth_stays_one_per_sample() -> None:
    a = AIMD(AIMDOptions(initial_limit=8, max_limit=100, backoff_ratio=0.5))
    a.update(DROP)
    for _ in range(8):
        a.update(ok(0.1, a.limit))
    assert a.limit == 12  # probes past the edge again within one round


def test_aimd_first_cut_after_slow_start_uses_its_own_ratio() -> None:
    a = AIMD(AIMDOptions(initial_limit=16, backoff_ratio=0.75, congestion_avoidance=True, slow_start_backoff_ratio=0.5))
    assert a.update(DROP) == 8
    assert a.update(DROP) == 6
