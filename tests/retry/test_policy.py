from __future__ import annotations

from pathlib import Path

import pytest

from resurgo.classifier import ErrorType
from resurgo.retrier import BackoffStrategy, PolicyError, RetryPolicy


def test_defaults_are_documented_values() -> None:
    p = RetryPolicy()
    assert (p.max_attempts, p.base_delay, p.max_delay) == (3, 0.5, 30.0)
    assert p.backoff_strategy is BackoffStrategy.FULL_JITTER
    assert p.retryable_errors == frozenset(ErrorType)
    assert p.max_elapsed is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 2.5}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"base_delay": -1}, "base_delay"),
        ({"max_delay": float("inf")}, "max_delay"),
        ({"base_delay": 5, "max_delay": 1}, "base_delay"),
        ({"max_elapsed": 0}, "max_elapsed"),
        ({"backoff_strategy": "fibonacci"}, "backoff_strategy"),
        ({"jitter": "yes"}, "jitter"),
        ({"retryable_errors": ["network", "weather"]}, "retryable_errors"),
        ({"retryable_errors": "network"}, "retryable_errors"),
        ({"overrides": {"resource": 3}}, "overrides"),
        ({"retry_on_result": 42}, "retry_on_result"),
    ],
)
def test_invalid_values_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(PolicyError, match=field):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_nested_overrides_are_rejected() -> None:
    inner = RetryPolicy(overrides={"network": RetryPolicy()})
    with pytest.raises(PolicyError, match="must not have overrides"):
        RetryPolicy(overrides={"resource": inner})


def test_strings_are_normalised() -> None:
    p = RetryPolicy(
        backoff_strategy="linear",
        retryable_errors=["network", ErrorType.TIMEOUT],
        base_delay="250ms",  # type: ignore[arg-type]
        max_elapsed="2m",  # type: ignore[arg-type]
        overrides={"resource": RetryPolicy(base_delay=5, max_delay=60)},
    )
    assert p.backoff_strategy is BackoffStrategy.LINEAR
    assert p.retryable_errors == {ErrorType.NETWORK, ErrorType.TIMEOUT}
    assert p.base_delay == 0.25 and p.max_elapsed == 120.0
    assert p.for_error(ErrorType.RESOURCE).base_delay == 5
    assert p.for_error(ErrorType.NETWORK) is p
    assert p.for_error(None) is p


def test_policy_is_immutable_and_with_revalidates() -> None:
    p = RetryPolicy()
    with pytest.raises(AttributeError):
        p.max_attempts = 9  # type: ignore[misc]
    assert p.with_(max_attempts=9).max_attempts == 9
    with pytest.raises(PolicyError):
        p.with_(max_attempts=-1)


TOML = """
[retry]
max_attempts = 5
base_delay = "200ms"
max_delay = 20
backoff_strategy = "decorrelated_jitter"
jitter = false
retryable_errors = ["network", "timeout", "resource"]
max_elapsed = "10m"

[retry.overrides.resource]
max_attempts = 8
base_delay = "5s"
max_delay = "5m"
backoff_strategy = "exponential"
"""


def test_from_toml_text_and_file(tmp_path: Path) -> None:
    p = RetryPolicy.from_toml(TOML)
    assert p.max_attempts == 5 and p.base_delay == pytest.approx(0.2)
    assert p.backoff_strategy is BackoffStrategy.DECORRELATED_JITTER
    assert p.max_elapsed == 600.0 and p.jitter is False
    r = p.for_error(ErrorType.RESOURCE)
    assert (r.max_attempts, r.base_delay, r.max_delay) == (8, 5.0, 300.0)
    f = tmp_path / "resurgo.toml"
    f.write_text(TOML)
    assert RetryPolicy.from_toml(f) == p


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"max_attempt": 3}, r"unknown key\(s\) max_attempt"),
        ({"base_delay": "soon"}, r"\[retry\]\.base_delay"),
        ({"overrides": {"weather": {}}}, "unknown error type 'weather'"),
        ({"overrides": {"resource": {"max_delay": -3}}}, r"retry\.overrides\.resource.*max_delay"),
        ({"retryable_errors": "network"}, "retryable_errors"),
    ],
)
def test_from_dict_errors_are_clear(table: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        RetryPolicy.from_dict(table)


def test_from_toml_missing_table_and_bad_toml() -> None:
    with pytest.raises(PolicyError, match=r"no \[resurgo.retry\] table"):
        RetryPolicy.from_toml("[other]\nx = 1\n", table="resurgo.retry")
    with pytest.raises(PolicyError, match="invalid TOML"):
        RetryPolicy.from_toml("[retry\n")
