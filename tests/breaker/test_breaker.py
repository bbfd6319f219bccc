"""Behaviour of one breaker, driven by a FakeClock and a pinned classifier."""

from __future__ import annotations

import pytest

from resurgo.breaker import (
    CallRejected,
    CircuitBreaker,
    CircuitEvent,
    CircuitOpenError,
    CircuitState,
    CircuitThresholds,
    Outcome,
    StateTransition,
    ThresholdExceeded,
    ThresholdsError,
)
from resurgo.clock import FakeClock

from ._helpers import AuthErr, BadRequest, NetErr, NotAnError, RateLimited, classifier

S = CircuitState


def ok() -> str:
    return "ok"


def boom() -> None:
    raise NetErr("connection reset")


def fail(b: CircuitBreaker, exc: BaseException | None = None) -> None:
    def f() -> None:
        raise exc if exc is not None else NetErr("down")

    with pytest.raises(type(exc) if exc is not None else NetErr):
        b.call(f)


def test_the_call_that_crosses_the_threshold_opens_and_the_next_is_rejected(make, clock) -> None:
    b = make()  # count window 10, min_calls 4, failure_rate 0.5, wait 30 s
    called: list[str] = []

    def dep(good: bool) -> str:
        called.append("x")
        if not good:
            raise NetErr("reset by peer")
        return "ok"

    assert b.call(dep, True) == "ok"
    assert b.call(dep, True) == "ok"
    with pytest.raises(NetErr):
        b.call(dep, False)
    assert b.state is S.CLOSED  # 3 calls < min_calls: no verdict yet
    with pytest.raises(NetErr):
        b.call(dep, False)  # 2 of 4 failed = 50 %: this very call opens it
    assert b.state is S.OPEN
    with pytest.raises(CircuitOpenError) as ei:
        b.call(dep, True)
    assert len(called) == 4  # the rejected call never reached the dependency
    assert ei.value.retry_after == pytest.approx(30.0)
    assert ei.value.state is S.OPEN and "failure_rate 50%" in ei.value.reason
    clock.advance(12)
    with pytest.raises(CircuitOpenError) as ei:
        b.call(dep, True)
    assert ei.value.retry_after == pytest.approx(18.0)
    assert b.metrics().rejected == 2


def test_rates_are_compared_exactly_at_the_threshold(make) -> None:
    # 3 failures of 10 at failure_rate 0.3 must open (0.3 * 10 != 3.0 in floating point)
    b = make(failure_rate=0.3, min_calls=10)
    for _ in range(7):
        b.call(ok)
    fail(b)
    fail(b)
    assert b.state is S.CLOSED
    fail(b)
    assert b.state is S.OPEN


def test_successes_dilute_failures_and_the_count_window_forgets(make) -> None:
    b = make(sliding_window=4, min_calls=4)
    fail(b)
    for _ in range(3):
        b.call(ok)  # 1 of 4
    fail(b)  # window: ok ok ok F -> 1 of 4 (the first failure fell out)
    assert b.state is S.CLOSED
    assert b.metrics().window.failures == 1


def test_time_window_forgets_old_failures(clock) -> None:
    t = CircuitThresholds(failure_rate=0.5, min_calls=4, sliding_window=10.0)
    b = CircuitBreaker("t", thresholds=t, clock=clock, classifier=classifier)
    for _ in range(3):
        fail(b)
    clock.advance(11)  # those three are out of the window now
    fail(b)
    b.call(ok)
    b.call(ok)
    b.call(ok)
    assert b.state is S.CLOSED  # 1 of 4, not 4 of 7
    fail(b)
    assert b.state is S.CLOSED  # 2 of 5 = 40 %
    fail(b)
    assert b.state is S.OPEN  # 3 of 6 = 50 %


def test_consecutive_failures_open_a_breaker_whose_rate_is_still_low(clock) -> None:
    """A minute of answers keeps a 60 s rate low when an outage begins; a run of failures does not."""
    t = CircuitThresholds(failure_rate=0.5, min_calls=4, sliding_window=60.0, consecutive_failures=4)
    b = CircuitBreaker("c", thresholds=t, clock=clock, classifier=classifier)
    for _ in range(40):
        b.call(ok)
    for _ in range(3):
        fail(b)
    b.call(ok)  # an answer in between ends the run
    for _ in range(3):
        fail(b)
    assert b.state is S.CLOSED  # 6 of 47 failed, never 4 in a row
    fail(b)
    assert b.state is S.OPEN
    assert "4 calls failed in a row" in b.history[-1].reason


def test_without_consecutive_failures_the_same_run_does_not_open(clock) -> None:
    """The property breaks with the rule off (the default): the rate alone stays under 50 %."""
    t = CircuitThresholds(failure_rate=0.5, min_calls=4, sliding_window=60.0)
    b = CircuitBreaker("c", thresholds=t, clock=clock, classifier=classifier)
    for _ in range(40):
        b.call(ok)
    for _ in range(10):
        fail(b)
    assert b.state is S.CLOSED


def test_consecutive_failures_count_across_batches_and_reject_nonsense(clock) -> None:
    t = CircuitThresholds(failure_rate=0.9, min_calls=4, sliding_window=60.0, consecutive_failures=5)
    b = CircuitBreaker("c", thresholds=t, clock=clock, classifier=classifier)
    for _ in range(20):
        b.call(ok)
    b.handle_partial_failure(0, 3)
    assert b.state is S.CLOSED
    b.handle_partial_failure(0, 2)
    assert b.state is S.OPEN
    with pytest.raises(ThresholdsError, match="consecutive_failures"):
        CircuitThresholds(consecutive_failures=0)


def test_a_success_reaching_min_calls_can_open(make) -> None:
    b = make(min_calls=4)
    for _ in range(3):
        fail(b)
    b.call(ok)  # 3 of 4 failed; the verdict comes with the 4th call, whatever it was
    assert b.state is S.OPEN


def test_slow_calls_trip_on_slow_call_rate(make, clock) -> None:
    b = make(slow_call_rate=0.5, slow_call_duration=2.0, min_calls=2)

    def slow() -> str:
        clock.advance(3.0)
        return "late"

    assert b.call(slow) == "late"
    b.call(ok)
    assert b.state is S.OPEN
    assert b.history[-1].metrics.slow == 1
    assert "slow_call_rate" in b.history[-1].reason


def test_result_predicate_turns_a_return_value_into_a_failure(make) -> None:
    b = make(failure_result=lambda r: r == 503, min_calls=2)
    assert b.call(lambda: 503) == 503  # the caller still gets the value
    assert b.call(lambda: 200) == 200
    assert b.state is S.OPEN
    assert b.metrics().failures == 1


def test_validation_errors_and_non_errors_count_as_neither(make) -> None:
    b = make(min_calls=2)
    for _ in range(20):
        fail(b, BadRequest("prompt is too long"))
        fail(b, NotAnError("cancelled"))
    m = b.metrics()
    assert b.state is S.CLOSED
    assert (m.window.calls, m.failures, m.ignored) == (0, 0, 40)


def test_cancellation_and_keyboard_interrupt_are_never_failures(make) -> None:
    b = make(min_calls=1)

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        b.call(interrupted)
    assert b.state is S.CLOSED and b.metrics().ignored == 1


def test_ignore_types_bypass_the_classifier(clock) -> None:
    seen: list[BaseException] = []

    def spy(exc: BaseException):  # type: ignore[no-untyped-def]
        seen.append(exc)
        return classifier(exc)

    b = CircuitBreaker("i", clock=clock, classifier=spy, ignore=(KeyError,),
                       thresholds=CircuitThresholds(min_calls=1))
    with pytest.raises(KeyError):
        b.call(lambda: {}["x"])
    assert seen == [] and b.state is S.CLOSED


def test_auth_error_forces_open_until_operator_reset(make) -> None:
    b = make()
    fail(b, AuthErr("Invalid API key"))  # a single auth error is enough
    assert b.state is S.FORCED_OPEN
    with pytest.raises(CircuitOpenError) as ei:
        b.call(ok)
    assert ei.value.retry_after is None and "auth error" in ei.value.reason
    b.reset()
    assert b.state is S.CLOSED and b.call(ok) == "ok"


def test_auth_forced_open_closes_when_a_health_probe_succeeds(make, clock) -> None:
    b = make()
    healthy = {"now": False}
    b.add_health_probe(lambda: healthy["now"])
    fail(b, AuthErr("OAuth token has expired"))
    rep = b.execute_recovery()
    assert not rep.closed and b.state is S.FORCED_OPEN and rep.probes_run == 1
    clock.advance(10_000)  # no timer ever lets an auth failure through
    assert b.state is S.FORCED_OPEN
    healthy["now"] = True
    rep = b.execute_recovery()
    assert rep.closed and b.state is S.CLOSED


def test_operator_force_open_is_not_lifted_by_probes(make) -> None:
    b = make()
    b.add_health_probe(lambda: True)
    b.force_open("maintenance")
    rep = b.execute_recovery()
    assert not rep.closed and "operator" in rep.note and b.state is S.FORCED_OPEN


def test_rate_limit_with_reset_opens_until_the_reset(make, clock) -> None:
    b = make(wait_in_open=5.0)
    fail(b, RateLimited(retry_after=120.0))
    assert b.state is S.OPEN
    with pytest.raises(CircuitOpenError) as ei:
        b.call(ok)
    assert ei.value.retry_after == pytest.approx(120.0)  # the server's reset, not wait_in_open
    clock.advance(119.9)
    assert b.state is S.OPEN
    clock.advance(0.1)
    assert b.state is S.HALF_OPEN


def test_rate_limit_reset_is_capped_and_a_plain_429_is_a_failure(make) -> None:
    b = make(max_retry_after=60.0)
    fail(b, RateLimited(retry_after=10 * 3600.0))
    assert b.retry_after == pytest.approx(60.0)
    c = make(min_calls=2)
    fail(c, RateLimited(retry_after=None))
    assert c.state is S.CLOSED
    fail(c, RateLimited(retry_after=None))
    assert c.state is S.OPEN and c.retry_after == pytest.approx(30.0)


def test_open_until_a_wall_clock_timestamp(make, clock) -> None:
    b = make()
    b.open_until(clock.time() + 42.0, reason="usage limit resets at 5pm")
    assert b.state is S.OPEN and b.retry_after == pytest.approx(42.0)
    assert b.history[-1].open_for == pytest.approx(42.0)


def test_half_open_closes_after_its_probes_succeed(make, clock) -> None:
    b = make()
    b.open(wait=30)
    clock.advance(30)
    assert b.state is S.HALF_OPEN
    b.call(ok)
    assert b.state is S.HALF_OPEN  # verdict only after half_open_max_calls = 2 probes
    b.call(ok)
    assert b.state is S.CLOSED
    assert b.metrics().window.calls == 0  # a fresh window


def test_half_open_failure_reopens_with_a_longer_wait(make, clock) -> None:
    b = make(wait_in_open=10.0, wait_multiplier=2.0, max_wait_in_open=35.0)
    for _ in range(4):
        fail(b)
    assert b.retry_after == pytest.approx(10.0)
    waits = []
    for _ in range(4):
        clock.advance(b.retry_after or 0)
        assert b.state is S.HALF_OPEN
        b.call(ok)
        fail(b)  # 1 of 2 probes failed = 50 %: reopen
        assert b.state is S.OPEN
        waits.append(b.retry_after)
    assert waits == [20.0, 35.0, 35.0, 35.0]
    clock.advance(35)
    b.call(ok)
    b.call(ok)
    assert b.state is S.CLOSED
    for _ in range(4):
        fail(b)
    assert b.retry_after == pytest.approx(10.0)  # closing forgot the back-off


def test_half_open_opens_early_when_the_verdict_is_already_certain(make, clock) -> None:
    b = make(half_open_max_calls=4, failure_rate=0.5)
    b.open(wait=1)
    clock.advance(1)
    fail(b)
    assert b.state is S.HALF_OPEN
    fail(b)  # 2 of 4 failed: even two more successes leave 50 %
    assert b.state is S.OPEN


def test_half_open_closes_early_when_the_verdict_is_already_certain(make, clock) -> None:
    """Two successes of three probes at a 50% threshold: the third cannot change the verdict.

    Waiting for it held every caller back (the supervisor's probes are real requests: a
    chaos run stayed half-open 7.5 s for the third answer).  Its late outcome is stale.
    """
    b = make(half_open_max_calls=3, failure_rate=0.5)
    b.open(wait=1)
    clock.advance(1)
    third = b.acquire()
    b.call(ok)
    assert b.state is S.HALF_OPEN  # 1 of 3: two failures would still reach 66 %
    b.call(ok)
    assert b.state is S.CLOSED  # 2 of 3: even a failed third leaves 33 %
    assert third.on_error(ConnectionError("late")) is Outcome.STALE
    assert b.state is S.CLOSED


def test_half_open_waits_while_the_probes_out_could_still_reopen_it(make, clock) -> None:
    b = make(half_open_max_calls=3, failure_rate=0.5)
    b.open(wait=1)
    clock.advance(1)
    b.call(ok)
    fail(b)
    assert b.state is S.HALF_OPEN  # 1 of 2 failed: the third decides
    b.call(ok)
    assert b.state is S.CLOSED


def test_custom_wait_generator_gets_the_attempt(make, clock) -> None:
    attempts: list[int] = []

    def gen(attempt: int) -> float:
        attempts.append(attempt)
        return 7.0 * attempt

    b = make(wait_generator=gen)
    for _ in range(4):
        fail(b)
    clock.advance(7)
    fail(b)  # 1 of 2 probes failed: 50 % is certain, reopen at once
    assert attempts == [1, 2] and b.retry_after == pytest.approx(14.0)


def test_a_call_admitted_while_closed_is_not_a_probe(make, clock) -> None:
    b = make()
    p = b.acquire()  # admitted while CLOSED, still running
    b.open(wait=5)
    clock.advance(5)
    assert b.state is S.HALF_OPEN
    assert p.on_success() is Outcome.STALE  # it belongs to an older episode
    assert b.state is S.HALF_OPEN
    assert b.metrics().stale == 1


def test_events_history_and_listeners(make, clock) -> None:
    events: list[CircuitEvent] = []
    b = make(listeners=[events.append])
    for _ in range(4):
        fail(b)
    with pytest.raises(CircuitOpenError):
        b.call(ok)
    kinds = [type(e) for e in events]
    assert kinds == [ThresholdExceeded, StateTransition, CallRejected]
    tr = b.history[-1]
    assert (tr.from_state, tr.to_state, tr.attempt) == (S.CLOSED, S.OPEN, 1)
    assert (tr.metrics.calls, tr.metrics.failures) == (4, 4)
    assert tr.at == pytest.approx(clock.time())
    assert tr.to_dict()["to"] == "open"
    clock.advance(30)
    b.call(ok)
    b.call(ok)
    assert [(t.from_state, t.to_state) for t in b.history] == [
        (S.CLOSED, S.OPEN), (S.OPEN, S.HALF_OPEN), (S.HALF_OPEN, S.CLOSED),
    ]
    assert [e.to_state for e in events if isinstance(e, StateTransition)] == [
        S.OPEN, S.HALF_OPEN, S.CLOSED,
    ]


def test_listener_may_call_back_and_a_failing_listener_breaks_nothing(make, caplog) -> None:
    seen: list[CircuitState] = []
    b = make()

    def reentrant(ev: CircuitEvent) -> None:
        seen.append(b.state)  # takes the lock: would deadlock if listeners ran under it

    def broken(ev: CircuitEvent) -> None:
        raise RuntimeError("listener bug")

    b.add_listener(broken)
    b.add_listener(reentrant)
    for _ in range(4):
        fail(b)
    assert b.state is S.OPEN and seen == [S.OPEN, S.OPEN]
    assert "listener" in caplog.text
    b.remove_listener(reentrant)
    b.reset()
    assert seen == [S.OPEN, S.OPEN]


def test_metrics_only_records_and_reports_once_per_excursion(make) -> None:
    events: list[CircuitEvent] = []
    b = make(listeners=[events.append])
    b.metrics_only()
    for _ in range(10):
        fail(b)
    fail(b, AuthErr("bad key"))  # never forced open either
    fail(b, RateLimited(60.0))
    assert b.state is S.METRICS_ONLY
    exceeded = [e for e in events if isinstance(e, ThresholdExceeded)]
    assert len(exceeded) == 1 and exceeded[0].metric == "failure_rate"
    for _ in range(10):
        b.call(ok)  # back under: re-armed
    for _ in range(10):
        fail(b)
    assert len([e for e in events if isinstance(e, ThresholdExceeded)]) == 2


def test_disabled_lets_everything_through_and_records_nothing(make) -> None:
    b = make()
    b.disable()
    for _ in range(20):
        fail(b)
    assert b.state is S.DISABLED and b.metrics().failures == 0
    b.reset()
    assert b.state is S.CLOSED


def test_decorator_keeps_metadata_and_works_on_methods(make) -> None:
    b = make(min_calls=2)

    class Api:
        @b
        def get(self, x: int) -> int:
            """Fetch."""
            if x < 0:
                raise NetErr("bad")
            return x * 2

    api = Api()
    assert api.get(21) == 42
    assert Api.get.__doc__ == "Fetch." and Api.get.__name__ == "get"
    with pytest.raises(NetErr):
        api.get(-1)
    assert b.state is S.OPEN
    with pytest.raises(CircuitOpenError):
        api.get(1)


def test_context_manager_records_and_nests(make) -> None:
    outer = make("outer", min_calls=1)
    inner = make("inner", min_calls=1)
    with outer, pytest.raises(NetErr), inner:
        raise NetErr("x")
    assert inner.state is S.OPEN and outer.state is S.CLOSED
    with pytest.raises(CircuitOpenError), inner:
        raise AssertionError("not reached")  # pragma: no cover


def test_permit_reports_once(make) -> None:
    b = make()
    p = b.acquire()
    assert p.state is S.CLOSED
    assert p.on_error(BadRequest("x")) is Outcome.IGNORED
    with pytest.raises(RuntimeError, match="already reported"):
        p.on_success()


def test_classifier_failure_counts_as_failure_and_keeps_the_callers_error(clock, caplog) -> None:
    def broken(exc: BaseException):  # type: ignore[no-untyped-def]
        raise RuntimeError("classifier bug")

    b = CircuitBreaker("c", clock=clock, classifier=broken,
                       thresholds=CircuitThresholds(min_calls=1))
    with pytest.raises(NetErr):
        b.call(boom)
    assert b.state is S.OPEN and "classifier failed" in caplog.text


def test_default_classifier_is_imported_at_the_first_failure(clock, monkeypatch) -> None:
    import resurgo.breaker._breaker as mod

    loads: list[int] = []

    def loader():  # type: ignore[no-untyped-def]
        loads.append(1)
        return classifier

    monkeypatch.setattr(mod, "_default_classifier", loader)
    b = CircuitBreaker("d", clock=clock, thresholds=CircuitThresholds(min_calls=1))
    b.call(ok)
    assert loads == []
    with pytest.raises(BadRequest):
        b.call(lambda: (_ for _ in ()).throw(BadRequest("x")))
    with pytest.raises(NetErr):
        b.call(boom)
    assert loads == [1] and b.state is S.OPEN


# ---------------------------------------------------------------- the seed's API
def test_set_thresholds_validates_and_applies(make) -> None:
    b = make(min_calls=10)
    with pytest.raises(ThresholdsError):
        b.set_thresholds({"failure_rate": 0.5})  # type: ignore[arg-type]
    for _ in range(3):
        fail(b)
    assert b.state is S.CLOSED
    b.set_thresholds(b.thresholds.replace(min_calls=4))
    fail(b)  # the kept window now holds 4 failures of 4
    assert b.state is S.OPEN
    b.reset()
    b.set_thresholds(b.thresholds.replace(sliding_window=3))  # new shape: empty window
    assert b.metrics().window.calls == 0


def test_adjust_thresholds_follows_the_documented_rule(make) -> None:
    b = make(failure_rate=0.6, slow_call_rate=0.8, wait_in_open=10.0, max_wait_in_open=15.0)
    base = b.thresholds
    assert b.adjust_thresholds(0.3) == base  # up to half load: unchanged
    t = b.adjust_thresholds(0.75)  # s = 0.5
    assert t.failure_rate == pytest.approx(0.45) and t.slow_call_rate == pytest.approx(0.6)
    assert t.wait_in_open == pytest.approx(15.0) and t.min_calls == base.min_calls
    full = b.adjust_thresholds(1.0)
    assert full.failure_rate == pytest.approx(0.3) and full.wait_in_open == pytest.approx(20.0)
    assert full.max_wait_in_open == pytest.approx(20.0)
    assert b.adjust_thresholds(7.0) == full  # clamped, and never compounding
    assert b.baseline_thresholds == base
    assert b.adjust_thresholds(0) == base
    for bad in (-0.1, float("nan"), float("inf"), "high"):
        with pytest.raises(ThresholdsError):
            b.adjust_thresholds(bad)  # type: ignore[arg-type]


def test_adjusted_thresholds_change_when_it_trips(make) -> None:
    b = make(failure_rate=0.5, min_calls=4, sliding_window=4)
    b.adjust_thresholds(1.0)  # now trips at 25 %
    fail(b)
    for _ in range(3):
        b.call(ok)
    assert b.state is S.OPEN


def test_handle_partial_failure_records_a_batch(make, clock) -> None:
    b = make(min_calls=10, sliding_window=100)
    assert b.handle_partial_failure(success=8, failure=2) is S.CLOSED
    assert b.metrics().window.calls == 10
    assert b.handle_partial_failure(success=2, failure=8) is S.OPEN  # 10 of 20
    assert b.handle_partial_failure(5, 5) is S.OPEN  # not recorded while open
    clock.advance(30)
    assert b.handle_partial_failure(success=2, failure=0) is S.CLOSED  # fills both probes
    with pytest.raises(ValueError, match="non-negative"):
        b.handle_partial_failure(-1, 0)


def test_execute_recovery_closes_before_the_timer(make, clock) -> None:
    b = make(wait_in_open=300.0)
    order: list[str] = []
    b.add_recovery_action(lambda: order.append("restart"))
    b.add_health_probe(lambda: order.append("probe") or True)
    assert b.execute_recovery().note.startswith("not open")
    for _ in range(4):
        fail(b)
    clock.advance(1)
    rep = b.execute_recovery()
    assert order == ["restart", "probe"]
    assert rep.closed and rep.state_before is S.OPEN and rep.state_after is S.CLOSED
    assert b.history[-1].reason == "1 health probe(s) passed"


def test_execute_recovery_failing_probe_keeps_it_open_and_reports(make) -> None:
    b = make()

    def probe() -> bool:
        raise ConnectionError("still down")

    b.add_recovery_action(lambda: 1 / 0)
    b.add_health_probe(probe)
    b.open()
    rep = b.execute_recovery()
    assert not rep.closed and b.state is S.OPEN
    assert any("ZeroDivisionError" in e for e in rep.errors)
    assert any("still down" in e for e in rep.errors)


def test_execute_recovery_without_probes_leaves_it_to_the_timer(make) -> None:
    b = make()
    b.open()
    rep = b.execute_recovery()
    assert not rep.closed and "no health probes" in rep.note


def test_sync_execute_recovery_refuses_async_probes(make) -> None:
    b = make()

    async def probe() -> bool:
        return True

    b.add_health_probe(probe)
    b.open()
    rep = b.execute_recovery()
    assert not rep.closed and "execute_recovery_async" in rep.errors[0]


def test_repr_and_error_text(make) -> None:
    b = make("api")
    b.open(wait=3)
    assert repr(b) == "CircuitBreaker('api', state=open)"
    with pytest.raises(CircuitOpenError) as ei:
        b.call(ok)
    assert str(ei.value) == "circuit 'api' is open (opened by operator); retry in 3 s"
    assert FakeClock  # the fixture clock type is what drives these tests


def test_batched_fast_successes_land_in_the_right_time_buckets(clock) -> None:
    """The hot path defers plain successes; folding must keep them in their bucket."""
    t = CircuitThresholds(failure_rate=0.5, min_calls=4, sliding_window=3.0)
    b = CircuitBreaker("tb", thresholds=t, clock=clock, classifier=classifier)
    for _ in range(5):
        b.call(ok)  # bucket 1000
    clock.advance(1.0)
    for _ in range(3):
        b.call(ok)  # bucket 1001
    assert b.metrics().window.calls == 8
    clock.advance(2.0)  # bucket 1000 leaves the 3-second window
    assert b.metrics().window.calls == 3
    assert b.metrics().successes == 8
    fail(b)
    fail(b)
    fail(b)
    assert b.state is S.OPEN  # 3 of 6 = 50 %, counting the batched successes
    assert b.history[-1].metrics.calls == 6


@pytest.mark.parametrize("path", ["call", "decorator", "async", "acquire"])
def test_the_probe_is_admitted_the_instant_the_open_wait_ends(make, clock, path: str) -> None:
    """Issue 14: no extra delay between the end of OPEN and the first probe.

    Nothing reads the state in between (a read would itself move OPEN to
    HALF_OPEN and hide a call path whose fast rejection outlives the wait)."""
    import asyncio

    b = make()
    b.open(wait=30)
    seen: list[str] = []

    def probe() -> str:
        seen.append("probe")
        return "ok"

    async def aprobe() -> str:
        return probe()

    def attempt() -> None:
        if path == "call":
            b.call(probe)
        elif path == "decorator":
            b(probe)()
        elif path == "async":
            asyncio.run(b.call_async(aprobe))
        else:
            b.acquire().on_success(probe())

    clock.advance(30 - 1e-6)
    with pytest.raises(CircuitOpenError):
        attempt()
    assert seen == []
    clock.advance(1e-6)  # exactly the deadline
    attempt()
    assert seen == ["probe"]
    assert [(t.from_state, t.to_state) for t in b.history][-1] == (S.OPEN, S.HALF_OPEN)
