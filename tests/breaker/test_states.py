"""The state objects on their own: each decides its transitions and returns them.

No breaker is built here -- a state needs only a StateContext -- which is the
point of the design (docs/architecture.md): the state machine can be read and
tested one state at a time.
"""

from __future__ import annotations

import pytest

from resurgo.breaker import CircuitEvent, CircuitState, ThresholdExceeded
from resurgo.breaker._states import (
    ClosedState,
    ForcedOpenState,
    HalfOpenState,
    MetricsOnlyState,
    OpenState,
    StateContext,
    Transition,
)
from resurgo.clock import FakeClock

from ._helpers import count_thresholds

S = CircuitState


def ctx(**kw: object) -> tuple[StateContext, list[CircuitEvent]]:
    events: list[CircuitEvent] = []
    return StateContext("s", FakeClock(), count_thresholds(**kw), None, events.append), events


def test_closed_returns_the_opening_it_decides_and_emits_the_crossing() -> None:
    c, events = ctx(min_calls=4, failure_rate=0.5, wait_in_open=30.0)
    st = c.closed(0.0)
    decisions = [st.record_locked(0, code, 1.0) for code in (0, 1, 0)]
    assert decisions == [None, None, None]
    tr = st.record_locked(0, 1, 2.0)  # 2 of 4 failed = 50 %
    assert isinstance(tr, Transition) and isinstance(tr.to, OpenState)
    assert tr.to.attempt == 1 and tr.to.retry_after(2.0) == pytest.approx(30.0)
    assert "failure_rate" in tr.reason
    assert [type(e) for e in events] == [ThresholdExceeded]
    assert st.kind is S.CLOSED  # the state does not install anything itself


def test_open_hands_over_to_half_open_exactly_at_its_deadline() -> None:
    c, _ = ctx(wait_in_open=10.0)
    st = c.opened(100.0, 1, "test")
    assert st.tick_locked(109.999) is None and not st.permits_call()
    tr = st.tick_locked(110.0)
    assert tr is not None and isinstance(tr.to, HalfOpenState) and tr.to.attempt == 1


def test_half_open_expired_lease_reopens_with_the_next_attempt() -> None:
    c, _ = ctx(half_open_max_calls=1, half_open_lease=5.0, wait_in_open=10.0, wait_multiplier=2.0)
    st = HalfOpenState(c, 0.0, 1)
    lease = st.acquire_locked(0.0)
    assert lease > 0 and st.acquire_locked(0.0) == -1  # one probe at a time
    assert st.tick_locked(4.9) is None
    tr = st.tick_locked(5.0)  # the probe never answered: a slow failure
    assert tr is not None and isinstance(tr.to, OpenState) and tr.to.attempt == 2
    assert c.counts.expired == 1
    assert not st.holds_locked(lease)  # its late outcome will be discarded


def test_auth_and_rate_limit_decisions_belong_to_the_state() -> None:
    c, _ = ctx()
    closed, metrics_only = c.closed(0.0), MetricsOnlyState(c, 0.0, c.new_window())
    auth = closed.auth_error_locked("auth error: bad key", 0.0)
    assert auth is not None and isinstance(auth.to, ForcedOpenState) and auth.to.probes_may_close()
    assert metrics_only.auth_error_locked("auth error", 0.0) is None  # never opens
    assert not metrics_only.trips and closed.trips
    rl = closed.rate_limited_locked(60.0, "rate limited", 0.0)
    assert rl is not None and rl.to.retry_after(0.0) == pytest.approx(60.0)
    opened = c.opened(0.0, 1, "x", 30.0)
    assert opened.rate_limited_locked(20.0, "shorter", 0.0) is None  # already open longer
    longer = opened.rate_limited_locked(90.0, "longer", 0.0)
    assert longer is not None and longer.to.retry_after(0.0) == pytest.approx(90.0)
    assert not ForcedOpenState(c, 0.0, "operator", False).probes_may_close()


def test_a_batch_in_closed_counts_and_may_open() -> None:
    c, _ = ctx(min_calls=4, failure_rate=0.5)
    st: ClosedState = c.closed(0.0)
    assert st.record_batch_locked(3, 0, 1.0) is None
    tr = st.record_batch_locked(1, 4, 1.0)
    assert tr is not None and tr.to.kind is S.OPEN
    assert (c.counts.success, c.counts.failure) == (4, 4)
