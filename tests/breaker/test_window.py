"""The windows against brute-force models: same totals after any sequence."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from resurgo.breaker import CountWindow, TimeWindow


@given(size=st.integers(1, 12), codes=st.lists(st.integers(0, 3), max_size=80))
def test_count_window_matches_last_n(size: int, codes: list[int]) -> None:
    w = CountWindow(size)
    for i, c in enumerate(codes):
        bad = w.record(c)
        last = codes[max(0, i + 1 - size) : i + 1]
        assert w.calls == len(last)
        assert w.failures == sum(x & 1 for x in last)
        assert w.slow == sum(x >> 1 for x in last)
        assert w.slow_failures == sum(x == 3 for x in last)
        assert bad == w.failures + w.slow


@given(
    seconds=st.integers(1, 8),
    bucket=st.sampled_from([0.5, 1.0, 2.0]),
    steps=st.lists(
        st.tuples(st.floats(0, 5, allow_nan=False), st.integers(0, 3)), max_size=60
    ),
)
@settings(max_examples=300)
def test_time_window_matches_bucketed_model(
    seconds: int, bucket: float, steps: list[tuple[float, int]]
) -> None:
    if seconds < bucket:
        seconds = 2
    w = TimeWindow(float(seconds), bucket=bucket)
    n = w._n
    now = 1000.0
    log: list[tuple[int, int]] = []  # (bucket index, code)
    for dt, code in steps:
        now += dt
        w.record(code, now)
        log.append((int(now / bucket), code))
        head = int(now / bucket)
        live = [c for b, c in log if b > head - n]
        assert w.calls == len(live)
        assert w.failures == sum(c & 1 for c in live)
        assert w.slow == sum(c >> 1 for c in live)
    # reading after a long idle gap forgets everything
    snap = w.snapshot(now + seconds + bucket)
    assert (snap.calls, snap.failures, snap.slow) == (0, 0, 0)


def test_time_window_out_of_order_stamp_lands_in_the_newest_bucket() -> None:
    w = TimeWindow(3.0)
    w.record(0, 1005.2)
    w.record(1, 1004.9)  # read before the other thread's, recorded after it
    assert (w.calls, w.failures) == (2, 1)
    w.advance(1007.99)
    assert w.calls == 2
    w.advance(1008.0)  # bucket 1005 leaves a 3-second window
    assert (w.calls, w.failures) == (0, 0)


def test_time_window_memory_is_independent_of_call_rate() -> None:
    w = TimeWindow(10.0)
    for i in range(100_000):
        w.record(i % 2, 1000.0 + i * 0.0001)
    assert len(w._calls) == 10
    assert w.calls == 100_000 and w.failures == 50_000


def test_record_many_keeps_proportion_when_batch_exceeds_count_window() -> None:
    w = CountWindow(10)
    w.record_many(900, 100, 0.0)
    assert (w.calls, w.failures) == (10, 1)
    w.reset()
    w.record_many(1, 3, 0.0)
    assert (w.calls, w.failures) == (4, 3)
    t = TimeWindow(5.0)
    t.record_many(7, 3, 1000.0)
    assert (t.calls, t.failures) == (10, 3)
    assert math.isclose(t.snapshot(1000.0).failure_rate, 0.3)
    t.reset()
    assert t.calls == 0 and t.snapshot(1000.0).failure_rate == 0.0
