from __future__ import annotations

import pytest

from resurgo.breaker import CircuitThresholds, ThresholdsError, WindowKind


def test_defaults_are_valid_and_documented_values() -> None:
    t = CircuitThresholds()
    assert (t.failure_rate, t.slow_call_rate, t.min_calls) == (0.5, 1.0, 10)
    assert t.window_kind is WindowKind.TIME
    assert t.window_size == 60


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        ({"failure_rate": 50}, "did you mean 0.5"),
        ({"failure_rate": 0}, "failure_rate is a fraction"),
        ({"slow_call_rate": -0.1}, "slow_call_rate"),
        ({"failure_rate": float("nan")}, "finite"),
        ({"failure_rate": "0.5"}, "must be a number"),
        ({"min_calls": 0}, "min_calls must be at least 1"),
        ({"min_calls": 2.5}, "min_calls must be an integer"),
        ({"half_open_max_calls": True}, "must be an integer"),
        ({"window_kind": "sliding"}, "window_kind must be"),
        ({"window_kind": "count", "sliding_window": 2.5}, "call count"),
        ({"window_kind": "count", "sliding_window": 0}, "at least 1 call"),
        ({"sliding_window": 0.5}, "at least one bucket"),
        ({"bucket_seconds": 0}, "bucket_seconds must be positive"),
        ({"slow_call_duration": 0}, "slow_call_duration must be positive"),
        ({"wait_in_open": -1}, "wait_in_open"),
        ({"wait_multiplier": 0.5}, "waits never shrink"),
        ({"wait_in_open": 100, "max_wait_in_open": 10}, "below wait_in_open"),
        ({"max_retry_after": 0}, "max_retry_after"),
    ],
)
def test_bad_values_are_rejected_with_a_message_naming_the_field(
    kw: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ThresholdsError, match=fragment):
        CircuitThresholds(**kw)  # type: ignore[arg-type]


def test_frozen() -> None:
    t = CircuitThresholds()
    with pytest.raises(AttributeError):
        t.failure_rate = 0.2  # type: ignore[misc]


def test_wait_generator_backs_off_and_caps() -> None:
    t = CircuitThresholds(wait_in_open=10, wait_multiplier=2, max_wait_in_open=50)
    assert [t.wait_for(a) for a in (0, 1, 2, 3, 4, 5, 10_000)] == [10, 10, 20, 40, 50, 50, 50]
    assert CircuitThresholds(wait_in_open=7).wait_for(9) == 7  # multiplier 1: constant


def test_from_dict_rejects_unknown_keys_so_typos_do_not_pass_silently() -> None:
    with pytest.raises(ThresholdsError, match=r"unknown threshold.*failure_ratio"):
        CircuitThresholds.from_dict({"failure_ratio": 0.3})
    with pytest.raises(ThresholdsError, match="table/mapping"):
        CircuitThresholds.from_dict([1, 2])  # type: ignore[arg-type]


def test_toml_round_trip() -> None:
    text = """
    [resilience.breaker]
    failure_rate = 0.25
    min_calls = 20
    sliding_window = 100
    window_kind = "count"
    wait_in_open = 5.0
    wait_multiplier = 2.0
    max_retry_after = 3600
    """
    t = CircuitThresholds.from_toml(text, table="resilience.breaker")
    assert t.failure_rate == 0.25 and t.window_kind is WindowKind.COUNT and t.window_size == 100
    assert CircuitThresholds.from_dict(t.to_dict()) == t
    with pytest.raises(ThresholdsError, match=r"no \[breaker\] table"):
        CircuitThresholds.from_toml("x = 1")
    with pytest.raises(ThresholdsError, match="invalid TOML"):
        CircuitThresholds.from_toml("[breaker\nx=")


def test_time_window_size_counts_buckets() -> None:
    t = CircuitThresholds(sliding_window=10, bucket_seconds=0.5)
    assert t.window_size == 20
    assert t.replace(bucket_seconds=3).window_size == 4  # ceil: never shorter than asked
