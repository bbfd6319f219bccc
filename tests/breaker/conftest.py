"""Fixtures: a FakeClock and a breaker factory wired to the pinned classifier."""

from __future__ import annotations

import pytest

from resurgo.breaker import CircuitBreaker
from resurgo.clock import FakeClock

from ._helpers import classifier, count_thresholds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make(clock: FakeClock):  # type: ignore[no-untyped-def]
    def _make(name: str = "b", **kw: object) -> CircuitBreaker:
        b_kw = {k: kw.pop(k) for k in list(kw) if k in (
            "failure_result", "ignore", "wait_generator", "listeners", "honour_retry_after",
            "history_limit",
        )}
        return CircuitBreaker(
            name, thresholds=count_thresholds(**kw), clock=clock, classifier=classifier,
            **b_kw,  # type: ignore[arg-type]
        )

    return _make
