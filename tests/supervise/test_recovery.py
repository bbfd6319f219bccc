"""The recovery decision: which strategy fits which failure, and when to stop trying."""

from __future__ import annotations

import pytest

from resurgo.classifier import ErrorClass, ErrorType, Severity, Strategy
from resurgo.clock import FakeClock
from resurgo.supervise._recovery import (
    RecoveryContext,
    RecoveryPlanner,
    RestartIntensity,
    StrategyHistory,
)


def err(t: ErrorType, *, retryable: bool, retry_after: float | None = None, desc: str = "x",
        category: str = "", strategy: Strategy = Strategy.RETRY) -> ErrorClass:
    return ErrorClass(type=t, severity=Severity.HIGH, category=category, description=desc,
                      retryable=retryable, retry_after=retry_after, strategy=strategy)


def ctx(e: ErrorClass, **kw: object) -> RecoveryContext:
    base: dict[str, object] = {"job_id": "j1", "error": e, "session_id": "s1"}
    base.update(kw)
    return RecoveryContext(**base)  # type: ignore[arg-type]


def test_crash_with_transcript_resumes_the_session() -> None:
    plan = RecoveryPlanner().choose(ctx(err(ErrorType.PROCESS, retryable=True), has_transcript=True))
    assert (plan.strategy, plan.action, plan.give_up) == (Strategy.RESUME_SESSION, "resume", False)


def test_crash_before_any_transcript_restarts_with_the_original_prompt() -> None:
    plan = RecoveryPlanner().choose(ctx(err(ErrorType.PROCESS, retryable=True), has_transcript=False))
    assert (plan.strategy, plan.action) == (Strategy.RESTART_PROCESS, "start")


def test_auth_escalates_and_gives_up() -> None:
    plan = RecoveryPlanner().choose(ctx(err(ErrorType.AUTH, retryable=False), has_transcript=True))
    assert plan.strategy is Strategy.ESCALATE and plan.alert and plan.give_up


def test_validation_aborts() -> None:
    plan = RecoveryPlanner().choose(ctx(err(ErrorType.VALIDATION, retryable=False, desc="bad option")))
    assert plan.strategy is Strategy.ABORT and plan.give_up and "bad option" in plan.reason


def test_description_words_alone_do_not_make_a_session_broken() -> None:
    """A bad request whose message merely mentions 'context' is not a context overflow."""
    e = err(ErrorType.VALIDATION, retryable=False, desc="invalid request: context_management is not allowed",
            category="invalid_request", strategy=Strategy.ABORT)
    plan = RecoveryPlanner().choose(ctx(e, has_transcript=True))
    assert plan.strategy is Strategy.ABORT and plan.give_up


def test_rate_limit_with_reset_waits_and_is_not_a_crash() -> None:
    clock = FakeClock()
    intensity = RestartIntensity(max_restarts=1, period=60, clock=clock)
    intensity.record()  # already at the limit: a crash now would give up
    e = err(ErrorType.RESOURCE, retryable=True, retry_after=120.0)
    plan = RecoveryPlanner().choose(ctx(e, has_transcript=True), intensity)
    assert plan.strategy is Strategy.WAIT_UNTIL
    assert plan.server_wait and plan.wait_s == 120.0 and plan.action == "resume"
    assert not plan.give_up


def test_no_conversation_found_starts_fresh_once_then_gives_up() -> None:
    e = err(ErrorType.VALIDATION, retryable=False, desc="No conversation found with session ID: s1",
            category="session_not_found", strategy=Strategy.FORK_SESSION)
    planner = RecoveryPlanner()
    first = planner.choose(ctx(e, has_transcript=False, resume_failed=True))
    assert (first.strategy, first.action) == (Strategy.FORK_SESSION, "start")
    second = planner.choose(ctx(e, has_transcript=False, resume_failed=True, forked_once=True))
    assert second.give_up and second.strategy is Strategy.ABORT


def test_orphan_tool_use_forks_when_a_transcript_exists() -> None:
    e = err(ErrorType.VALIDATION, retryable=False, desc="tool_use ids were found without tool_result blocks",
            category="orphan_tool_use", strategy=Strategy.FORK_SESSION)
    plan = RecoveryPlanner().choose(ctx(e, has_transcript=True))
    assert (plan.strategy, plan.action) == (Strategy.FORK_SESSION, "fork")


def test_failover_used_when_resuming_keeps_failing() -> None:
    history = StrategyHistory()
    for _ in range(10):
        history.record(Strategy.RESUME_SESSION, ErrorType.RESOURCE, succeeded=False)
    e = err(ErrorType.RESOURCE, retryable=True)
    plan = RecoveryPlanner(history=history).choose(
        ctx(e, has_transcript=True, fallback_models=("claude-haiku",)))
    assert plan.strategy is Strategy.FAILOVER and plan.model == "claude-haiku"


def test_intensity_limit_gives_up_with_a_clear_reason_and_backs_off_before() -> None:
    clock = FakeClock()
    intensity = RestartIntensity(max_restarts=3, period=60, backoff_base=0.5, clock=clock)
    planner = RecoveryPlanner()
    c = ctx(err(ErrorType.PROCESS, retryable=True), has_transcript=True)
    waits = []
    for _ in range(3):
        plan = planner.choose(c, intensity)
        assert not plan.give_up
        waits.append(plan.wait_s)
        intensity.record()
    assert waits == [0.0, 0.5, 1.0]
    plan = planner.choose(c, intensity)
    assert plan.give_up and "3 recoveries within 60s" in plan.reason
    clock.advance(61)  # the window slides: the job may recover again
    assert not planner.choose(c, intensity).give_up


def test_backoff_never_shorter_than_server_retry_after() -> None:
    e = err(ErrorType.NETWORK, retryable=True, retry_after=7.0)
    plan = RecoveryPlanner().choose(ctx(e, has_transcript=True), RestartIntensity(clock=FakeClock()))
    assert plan.wait_s == 7.0


def test_history_learns_success_rates_and_times() -> None:
    h = StrategyHistory()
    assert h.success_rate(Strategy.RESUME_SESSION) == 1.0  # optimistic prior: untried gets tried
    h.record(Strategy.RESUME_SESSION, ErrorType.PROCESS, succeeded=True, duration_s=2.0)
    h.record(Strategy.RESUME_SESSION, ErrorType.PROCESS, succeeded=False, duration_s=4.0)
    assert h.success_rate(Strategy.RESUME_SESSION, ErrorType.PROCESS) == pytest.approx(2 / 3)
    assert h.estimated_time(Strategy.RESUME_SESSION, 9.0) == pytest.approx(0.8 * 2.0 + 0.2 * 4.0)
    h.load([{"strategy": "resume_session", "error_type": "process", "succeeded": 1,
             "detected_at": 10.0, "restored_at": 11.0}])
    assert h.success_rate(Strategy.RESUME_SESSION, ErrorType.PROCESS) == pytest.approx(3 / 4)


def test_intensity_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RestartIntensity(max_restarts=-1)
