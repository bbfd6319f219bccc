"""Behaviour of the retry engine with virtual time (FakeClock) and injected classifiers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resurgo.classifier import ErrorClass, ErrorType
from resurgo.clock import FakeClock
from resurgo.retrier import (
    GiveUpEvent,
    GiveUpReason,
    Retrier,
    RetryError,
    RetryEvent,
    RetryPolicy,
    retry,
    retry_info,
    set_testing,
)

from ._helpers import Classified, classify, ec, net

FIXED1 = RetryPolicy(max_attempts=4, base_delay=1, max_delay=10, backoff_strategy="fixed", jitter=False)


def failing(errors: list[BaseException], result: Any = "ok") -> Callable[[], Any]:
    """Raises the given errors in order, then returns ``result``; counts its calls."""
    calls = {"n": 0}

    def fn() -> Any:
        calls["n"] += 1
        if errors:
            raise errors.pop(0)
        return result

    fn.calls = calls  # type: ignore[attr-defined]
    return fn


def make(clock: FakeClock, policy: RetryPolicy = FIXED1, **kw: Any) -> Retrier:
    return Retrier(policy=policy, clock=clock, classifier=classify, **kw)


def test_retries_until_success_with_the_policy_schedule(clock: FakeClock) -> None:
    r = make(clock, FIXED1.with_(backoff_strategy="exponential"))
    fn = failing([net(), net(), net()])
    assert r.call(fn) == "ok"
    assert clock.sleeps == [1.0, 2.0, 4.0]
    s = r.stats()
    assert (s.calls, s.successes, s.retries, s.successes_after_retry) == (1, 1, 3, 1)
    assert dict(s.attempts_histogram) == {4: 1}
    assert s.time_slept == 7.0 and s.success_after_retry_rate == 1.0


def test_success_first_try_touches_nothing(clock: FakeClock) -> None:
    seen: list[BaseException] = []

    def spy(exc: BaseException) -> ErrorClass:
        seen.append(exc)
        return classify(exc)

    r = Retrier(policy=FIXED1, clock=clock, classifier=spy)
    for _ in range(5):
        assert r.call(lambda: 7) == 7
    assert seen == [] and clock.sleeps == []
    s = r.stats()
    assert (s.calls, s.first_try_successes, s.mean_attempts) == (5, 5, 1.0)
    assert s.success_after_retry_rate is None


def test_attempts_exhausted_raises_original_with_note(clock: FakeClock) -> None:
    r = make(clock)
    errors = [net() for _ in range(4)]
    last = errors[-1]
    fn = failing(errors)
    with pytest.raises(Classified) as info:
        r.call(fn)
    assert info.value is last
    assert fn.calls["n"] == 4  # type: ignore[attr-defined]
    note = info.value.__notes__[-1]
    assert "after 4 attempts" in note and "attempts exhausted" in note
    ri = retry_info(info.value)
    assert ri is not None and ri.reason is GiveUpReason.ATTEMPTS_EXHAUSTED and ri.attempts == 4
    assert r.stats().give_ups == {"attempts_exhausted": 1}


def test_raise_retry_error_mode(clock: FakeClock) -> None:
    r = make(clock, raise_retry_error=True)
    with pytest.raises(RetryError) as info:
        r.call(failing([net() for _ in range(4)]))
    assert info.value.reason is GiveUpReason.ATTEMPTS_EXHAUSTED
    assert isinstance(info.value.__cause__, Classified)
    assert info.value.last_exception is info.value.__cause__
    assert info.value.error_class is not None and info.value.error_class.type is ErrorType.NETWORK


def test_non_retryable_is_raised_at_once_untouched(clock: FakeClock) -> None:
    r = make(clock)
    err = Classified(ec(ErrorType.AUTH, retryable=False))
    fn = failing([err])
    with pytest.raises(Classified) as info:
        r.call(fn)
    assert info.value is err and fn.calls["n"] == 1  # type: ignore[attr-defined]
    assert not getattr(err, "__notes__", None)  # never retried: no retry note noise
    assert clock.sleeps == []
    assert r.stats().give_ups == {"not_retryable": 1}


def test_classifier_retryable_false_wins_over_type_filter(clock: FakeClock) -> None:
    # billing: resource, but not retryable
    r = make(clock)
    with pytest.raises(Classified):
        r.call(failing([Classified(ec(ErrorType.RESOURCE, retryable=False))]))
    assert clock.sleeps == []


def test_retryable_errors_filters(clock: FakeClock) -> None:
    r = make(clock, FIXED1.with_(retryable_errors=["timeout"]))
    fn = failing([net()])
    with pytest.raises(Classified):
        r.call(fn)
    assert fn.calls["n"] == 1  # type: ignore[attr-defined]
    ok = failing([Classified(ec(ErrorType.TIMEOUT))])
    assert r.call(ok) == "ok"


def test_on_exception_classes_force_retry_and_exclude_others(clock: FakeClock) -> None:
    r = make(clock, on=KeyError)  # the classifier calls KeyError non-retryable
    assert r.call(failing([KeyError("k")])) == "ok"
    fn = failing([net()])
    with pytest.raises(Classified):
        r.call(fn)
    assert fn.calls["n"] == 1  # type: ignore[attr-defined]


def test_on_error_types_narrow(clock: FakeClock) -> None:
    r = make(clock, on=["timeout"])
    with pytest.raises(Classified):
        r.call(failing([net()]))
    r2 = make(clock, on=lambda e: isinstance(e, ValueError))
    assert r2.call(failing([ValueError()])) == "ok"


def test_bad_on_is_a_clear_error(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="on="):
        make(clock, on=["weather"])
    with pytest.raises(TypeError, match="on="):
        make(clock, on=3)  # type: ignore[arg-type]


def test_retry_after_wins_over_backoff(clock: FakeClock) -> None:
    r = make(clock)
    assert r.call(failing([net(retry_after=7.5), net(retry_after=0.25)])) == "ok"
    assert clock.sleeps == [7.5, 1.0]  # never earlier than asked; backoff when it is longer


def test_retry_after_beyond_deadline_gives_up_at_once(clock: FakeClock) -> None:
    r = make(clock, FIXED1.with_(max_elapsed=60))
    err = Classified(ec(ErrorType.RESOURCE, retry_after=3600))
    with pytest.raises(Classified) as info:
        r.call(failing([err]))
    assert clock.sleeps == []
    ri = retry_info(info.value)
    assert ri is not None and ri.reason is GiveUpReason.RETRY_AFTER_BEYOND_DEADLINE
    assert "retry_after=3600.000s" in str(ri) and "beyond the deadline" in str(ri)
    assert r.stats().give_ups == {"retry_after_beyond_deadline": 1}


def test_deadline_stops_before_an_attempt_would_start_late(clock: FakeClock) -> None:
    r = make(clock, FIXED1.with_(max_attempts=100, base_delay=4, max_elapsed=10))
    fn = failing([net() for _ in range(100)])
    with pytest.raises(Classified) as info:
        r.call(fn)
    assert clock.sleeps == [4.0, 4.0]  # a third wait would end at 12 s > 10 s
    ri = retry_info(info.value)
    assert ri is not None and ri.reason is GiveUpReason.DEADLINE


def test_deadline_counts_time_spent_in_attempts(clock: FakeClock) -> None:
    r = make(clock, FIXED1.with_(max_attempts=100, base_delay=1, max_elapsed=10))

    def slow() -> None:
        clock.advance(4)
        raise net()

    with pytest.raises(Classified):
        r.call(slow)
    assert clock.sleeps == [1.0]  # 4 + 1 + 4 = 9, then 9 + 1 >= 10


def test_per_error_type_overrides(clock: FakeClock) -> None:
    p = FIXED1.with_(
        overrides={
            "resource": RetryPolicy(max_attempts=6, base_delay=30, max_delay=30, backoff_strategy="fixed", jitter=False)
        }
    )
    r = make(clock, p)
    overloaded = [Classified(ec(ErrorType.RESOURCE)) for _ in range(4)]
    assert r.call(failing([net(), *overloaded])) == "ok"  # 6 attempts: allowed for resource
    assert clock.sleeps == [1.0] + [30.0] * 4
    # the default policy would have stopped at 4 attempts
    with pytest.raises(Classified):
        make(clock, FIXED1).call(failing([Classified(ec(ErrorType.RESOURCE)) for _ in range(5)]))


def test_retry_on_result_returns_last_result_by_default(clock: FakeClock) -> None:
    results = iter([{"is_error": True}, {"is_error": True}, {"is_error": False}])
    r = make(clock, FIXED1.with_(retry_on_result=lambda res: res["is_error"]))
    assert r.call(lambda: next(results)) == {"is_error": False}
    assert clock.sleeps == [1.0, 1.0]
    always = make(clock, FIXED1.with_(retry_on_result=lambda res: res["is_error"]))
    assert always.call(lambda: {"is_error": True}) == {"is_error": True}
    assert always.stats().give_ups == {"attempts_exhausted": 1}
    strict = make(clock, FIXED1.with_(retry_on_result=lambda res: True), raise_retry_error=True)
    with pytest.raises(RetryError, match="rejected by retry_on_result") as info:
        strict.call(lambda: "bad")
    assert info.value.last_result == "bad"


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(3), GeneratorExit()])
def test_base_exceptions_are_never_retried(clock: FakeClock, exc: BaseException) -> None:
    r = make(clock, on=lambda e: True)
    fn = failing([exc])
    with pytest.raises(type(exc)):
        r.call(fn)
    assert fn.calls["n"] == 1  # type: ignore[attr-defined]


async def test_cancelled_error_is_never_retried(clock: FakeClock) -> None:
    r = make(clock, on=lambda e: True)
    calls = 0

    async def fn() -> None:
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await r.call_async(fn)
    assert calls == 1


def test_hooks_see_every_sleep_and_the_give_up(clock: FakeClock) -> None:
    sleeps: list[RetryEvent] = []
    give_ups: list[GiveUpEvent] = []

    def broken(ev: RetryEvent) -> None:
        raise RuntimeError("hook bug")

    r = make(clock, before_sleep=[sleeps.append, broken], on_give_up=[give_ups.append], name="api")
    with pytest.raises(Classified):
        r.call(failing([net(retry_after=2), net(), net(), net()]))
    assert [(e.attempt, e.delay) for e in sleeps] == [(1, 2.0), (2, 1.0), (3, 1.0)]
    assert all(e.name == "api" and e.error_class.type is ErrorType.NETWORK for e in sleeps)
    assert len(give_ups) == 1 and give_ups[0].reason is GiveUpReason.ATTEMPTS_EXHAUSTED
    assert give_ups[0].attempts == 4


def test_classifier_failure_does_not_mask_the_error(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    def bad(exc: BaseException) -> ErrorClass:
        raise RuntimeError("classifier bug")

    r = Retrier(policy=FIXED1, clock=clock, classifier=bad)
    err = ValueError("real problem")
    with caplog.at_level(logging.ERROR, "resurgo.retry"), pytest.raises(ValueError) as info:
        r.call(failing([err]))
    assert info.value is err
    assert "classifier failed" in caplog.text


def test_testing_mode_removes_waits_and_sets_attempts(clock: FakeClock) -> None:
    r = make(clock)
    with set_testing(True, attempts=2):
        fn = failing([net(), net(), net()])
        with pytest.raises(Classified):
            r.call(fn)
        assert fn.calls["n"] == 2  # type: ignore[attr-defined]
        assert r.call(failing([net(retry_after=100)])) == "ok"
    assert clock.sleeps == []
    with set_testing(True, attempts=10, cap=True):
        fn = failing([net() for _ in range(10)])
        with pytest.raises(Classified):
            r.call(fn)
        assert fn.calls["n"] == 4  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        set_testing(True, attempts=0)


def test_decorator_bare_and_configured(clock: FakeClock) -> None:
    @retry
    def plain(x: int) -> int:
        return x * 2

    assert plain(4) == 8 and plain.__name__ == "plain"
    errors = [net()]

    @retry(clock=clock, classifier=classify, max_attempts=2, base_delay=0.5, backoff_strategy="fixed", jitter=False)
    def flaky(x: int, *, y: int) -> int:
        if errors:
            raise errors.pop()
        return x + y

    assert flaky(1, y=2) == 3
    assert clock.sleeps == [0.5]
    assert flaky.retrier.stats().retries == 1  # type: ignore[attr-defined]
    assert flaky.retrier.name.endswith("flaky")  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="unknown keyword"):
        retry(max_attemps=3)


async def test_async_call_and_decorator(clock: FakeClock) -> None:
    errors = [net(), net(retry_after=3)]

    @retry(policy=FIXED1, clock=clock, classifier=classify)
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        if errors:
            raise errors.pop(0)
        return x

    assert await fetch(5) == 5
    assert clock.sleeps == [1.0, 3.0]
    r = make(clock)

    async def always() -> None:
        raise net()

    with pytest.raises(Classified) as info:
        await r.call_async(always)
    assert retry_info(info.value) is not None


def test_block_form_sync(clock: FakeClock) -> None:
    r = make(clock)
    errors = [net(), net()]
    seen = []
    for attempt in r:
        with attempt:
            seen.append(attempt.num)
            if errors:
                raise errors.pop()
    assert seen == [1, 2, 3] and clock.sleeps == [1.0, 1.0]
    assert dict(r.stats().attempts_histogram) == {3: 1}
    # give-up propagates the original exception out of the loop
    last = net()
    with pytest.raises(Classified) as info:
        for attempt in r:
            with attempt:
                raise last
    assert info.value is last and retry_info(last) is not None
    # a first-try success is one pass
    count = 0
    for attempt in r:
        with attempt:
            count += 1
    assert count == 1


async def test_block_form_async(clock: FakeClock) -> None:
    r = make(clock)
    errors = [net(retry_after=2)]
    n = 0
    async for attempt in r:
        with attempt:
            n += 1
            if errors:
                raise errors.pop()
    assert n == 2 and clock.sleeps == [2.0]


def test_block_form_non_retryable_propagates(clock: FakeClock) -> None:
    r = make(clock)
    with pytest.raises(Classified):
        for attempt in r:
            with attempt:
                raise Classified(ec(ErrorType.VALIDATION, retryable=False))
    assert r.stats().give_ups == {"not_retryable": 1}


def test_stats_aggregate(clock: FakeClock) -> None:
    r = make(clock)
    r.call(lambda: 1)
    r.call(failing([net()]))
    with pytest.raises(Classified):
        r.call(failing([net() for _ in range(4)]))
    with pytest.raises(Classified):
        r.call(failing([Classified(ec(ErrorType.AUTH, retryable=False))]))
    s = r.stats()
    assert s.calls == 4 and s.successes == 2 and s.failures == 2
    assert dict(s.attempts_histogram) == {1: 2, 2: 1, 4: 1}
    assert s.mean_attempts == pytest.approx(2.0)
    assert s.success_after_retry_rate == pytest.approx(0.5)
    assert s.give_ups == {"attempts_exhausted": 1, "not_retryable": 1}
    assert s.to_dict()["attempts_histogram"] == {"1": 2, "2": 1, "4": 1}


def test_fallback_classifier_when_none_available(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    import resurgo.retrier._retrier as mod

    monkeypatch.setattr(mod, "_classifier_cache", [])
    monkeypatch.setattr(mod.importlib, "import_module", lambda name: object())
    r = Retrier(policy=FIXED1, clock=clock)
    assert r.call(failing([ConnectionResetError(), TimeoutError()])) == "ok"
    with pytest.raises(KeyError):
        r.call(failing([KeyError("x")]))


@settings(max_examples=60, deadline=None)
@given(
    max_attempts=st.integers(min_value=1, max_value=8),
    failures=st.integers(min_value=0, max_value=12),
    strategy=st.sampled_from(
        ["fixed", "linear", "exponential", "full_jitter", "equal_jitter", "decorrelated_jitter", "adaptive"]
    ),
    retry_after=st.one_of(st.none(), st.floats(min_value=0, max_value=500)),
    max_delay=st.floats(min_value=0, max_value=50),
)
def test_property_attempts_bounded_and_waits_respect_retry_after(
    max_attempts: int, failures: int, strategy: str, retry_after: float | None, max_delay: float
) -> None:
    clock = FakeClock()
    p = RetryPolicy(
        max_attempts=max_attempts, base_delay=min(0.1, max_delay), max_delay=max_delay, backoff_strategy=strategy
    )
    waits: list[RetryEvent] = []
    r = Retrier(policy=p, clock=clock, classifier=classify, before_sleep=[waits.append])
    fn = failing([net(retry_after=retry_after) for _ in range(failures)])
    try:
        r.call(fn)
        succeeded = True
    except Classified:
        succeeded = False
    calls = fn.calls["n"]  # type: ignore[attr-defined]
    assert calls <= max_attempts
    assert succeeded == (failures < max_attempts)
    assert len(waits) == calls - 1  # zero waits are decided but not slept
    assert [d for d in clock.sleeps] == [e.delay for e in waits if e.delay > 0]
    for d in (e.delay for e in waits):
        if retry_after is not None:
            assert d >= retry_after
        else:
            assert 0.0 <= d <= max_delay


def test_adaptive_waits_grow_with_shared_load_and_shrink_on_recovery(clock: FakeClock) -> None:
    import uuid

    from resurgo.retrier import LoadTracker

    tracker = LoadTracker(alpha=0.5, half_life=60, clock=clock)
    p = RetryPolicy(max_attempts=2, base_delay=1, max_delay=100, backoff_strategy="adaptive", jitter=False)
    a = Retrier(policy=p, clock=clock, classifier=classify, load_tracker=tracker)
    b = Retrier(policy=p, clock=clock, classifier=classify, load_tracker=tracker)
    assert a.call(failing([net()])) == "ok"  # load 0.5 when the wait is computed
    first = clock.sleeps[-1]
    assert first == pytest.approx(1 + 3 * 0.5)
    for _ in range(3):
        with pytest.raises(Classified):
            a.call(failing([net(), net()]))
    assert b.call(failing([net()])) == "ok"  # b sees the load a caused
    high = clock.sleeps[-1]
    assert high > first
    for _ in range(20):
        b.call(lambda: 1)  # recovery: successes bring the load down
    assert b.call(failing([net()])) == "ok"
    assert clock.sleeps[-1] < high
    assert clock.sleeps[-1] == pytest.approx(first)  # back to the one-failure level
    dep = f"dep-{uuid.uuid4()}"
    assert Retrier(policy=p, dependency=dep).load_tracker is Retrier(policy=p, dependency=dep).load_tracker
    assert Retrier(dependency=dep).load_tracker is None  # non-adaptive policies do not track


def test_generator_functions_are_refused() -> None:
    def gen() -> Any:
        yield 1

    async def agen() -> Any:
        yield 1

    for f in (gen, agen):
        with pytest.raises(TypeError, match="generator function"):
            retry(f)
