"""The request watch: limits learned from an endpoint's answers end a hung request early.

Pure parts run on a FakeClock; the last tests drive the REAL CLI against the
stand-in with a hang injected after the watch has learned the endpoint.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from resurgo.clock import FakeClock
from resurgo.mockapi import MockServer
from resurgo.supervise import Supervisor, SupervisorConfig
from resurgo.supervise._process import Liveness, LivenessMonitor
from resurgo.supervise._requests import PARTIAL_FLAG, RequestWatch, ResponseTimes, watch_args


def _learned(n: int = 8, first: float = 0.1, gap: float = 0.05, **kw: Any) -> ResponseTimes:
    kw = {"floor": 1.0, "gap_floor": 1.0, "min_samples": 8, **kw}
    t = ResponseTimes(**kw)
    for _ in range(n):
        t.first_answer(first)
        t.stream_gap(gap)
    return t


def test_no_limit_before_min_samples_then_factor_times_the_slowest_never_below_the_floor() -> None:
    t = ResponseTimes(factor=3.0, floor=1.0, min_samples=4)
    for v in (0.1, 0.2, 0.1):
        t.first_answer(v)
    assert t.first_answer_limit() is None  # a fresh supervisor knows nothing: it ends nothing
    t.first_answer(0.2)
    assert t.first_answer_limit() == 1.0  # 3 x 0.2 = 0.6 is under the floor
    t.first_answer(0.5)
    assert t.first_answer_limit() == pytest.approx(1.5)
    assert t.gap_limit() is None  # gaps are learned on their own


def test_the_slowest_answer_is_known_once_learned_and_scaled_per_job() -> None:
    """What hedging waits for: the slowest recent answer itself, unfloored, times the job's scale."""
    t = ResponseTimes(factor=3.0, floor=2.0, min_samples=2, window=4, recent=2)
    t.first_answer(0.3)
    assert t.slowest() is None and t.slowest(recent=True) is None  # not learned yet
    t.first_answer(0.2)
    assert t.slowest() == pytest.approx(0.3) and t.first_answer_limit() == pytest.approx(2.0)  # the limit floors
    t.first_answer(0.1)
    assert t.slowest(recent=True) == pytest.approx(0.2) and t.slowest() == pytest.approx(0.3)
    assert RequestWatch(t, scale=2.0).slowest(recent=True) == pytest.approx(0.4)


def test_the_window_forgets_old_slow_answers() -> None:
    t = ResponseTimes(factor=2.0, floor=0.1, min_samples=2, window=3)
    for v in (5.0, 0.2, 0.3):
        t.first_answer(v)
    assert t.first_answer_limit() == pytest.approx(10.0)
    t.first_answer(0.1)  # 5.0 leaves the window
    assert t.first_answer_limit() == pytest.approx(0.6)
    t.first_answer(float("nan"))  # garbage is ignored, not learned
    t.first_answer(-1.0)
    assert t.first_answer_limit() == pytest.approx(0.6)


def test_the_hedge_limit_forgets_a_slow_phase_sooner_than_the_kill_limit() -> None:
    """The hedge follows the last ``recent`` answers; the kill limit keeps the whole window."""
    t = ResponseTimes(factor=3.0, floor=0.3, min_samples=2, window=10, recent=3)
    for v in (1.2, 0.1, 0.1):
        t.first_answer(v)
    assert t.first_answer_limit(recent=True) == t.first_answer_limit() == pytest.approx(3.6)
    t.first_answer(0.1)  # the slow answer leaves the recent window only
    assert t.first_answer_limit(recent=True) == pytest.approx(0.3)
    assert t.first_answer_limit() == pytest.approx(3.6)
    assert RequestWatch(t, scale=2.0).limit(recent=True) == pytest.approx(0.6)
    t2 = ResponseTimes(min_samples=1, window=10)
    t2.preload([1.2, 0.1, 0.1], [])
    assert t2.first_answer_limit(recent=True) == t2.first_answer_limit()  # loaded samples feed both


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"factor": 0.5}, "factor"), ({"floor": 0}, "floor"), ({"gap_floor": -1}, "gap_floor"),
     ({"min_samples": 0}, "min_samples"), ({"recent": 300}, "recent"), ({"recent": 2, "min_samples": 3}, "recent"),
     ({"window": 2, "min_samples": 3}, "window"), ({"factor": float("inf")}, "factor")],
)
def test_response_times_reject_nonsense(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ResponseTimes(**kw)


def test_watch_args_adds_the_flag_once_and_only_when_on() -> None:
    assert watch_args(["--allowedTools", "Bash"], enabled=True) == ("--allowedTools", "Bash", PARTIAL_FLAG)
    assert watch_args([PARTIAL_FLAG], enabled=True) == (PARTIAL_FLAG,)
    assert watch_args(["-x"], enabled=False) == ("-x",)


def _monitor(times: ResponseTimes, clock: FakeClock, scale: float = 1.0) -> LivenessMonitor:
    return LivenessMonitor(Liveness(stall_timeout=300, request=RequestWatch(times, scale=scale)), clock)


def test_an_unanswered_request_is_ended_at_its_learned_limit_not_at_the_stall_timeout() -> None:
    clock = FakeClock()
    m = _monitor(_learned(first=0.5), clock)  # limit 3 x 0.5 = 1.5 s
    m.request_sent()
    clock.advance(1.4)
    assert m.verdict() is None
    clock.advance(0.2)
    v = m.verdict()
    assert v is not None and v[0] == "stall_watchdog" and "has not answered" in v[1]
    assert m.request_killed


def test_an_answer_in_time_teaches_the_endpoint_and_is_never_ended() -> None:
    clock = FakeClock()
    times = _learned(first=0.5)
    m = _monitor(times, clock)
    m.request_sent()
    clock.advance(1.0)
    m.answer_event("message_start")
    assert m.answers == 1 and times.first_answer_limit() == pytest.approx(3.0)  # 1.0 is the slowest now
    for kind in ("content_block_start", "content_block_delta"):
        clock.advance(0.04)
        m.answer_event(kind)
    m.other_event("assistant")  # a content block is complete: the answer goes on
    clock.advance(0.04)
    m.answer_event("message_stop")
    clock.advance(100)  # the tool runs: no request is out, only the stall timeout applies
    assert m.verdict() is None and not m.request_killed


def test_an_answer_that_stops_mid_stream_is_ended_at_the_gap_limit() -> None:
    clock = FakeClock()
    m = _monitor(_learned(gap=0.2), clock)  # gap limit max(1.0, 0.6) = 1.0 s
    m.request_sent()
    clock.advance(0.1)
    m.answer_event("message_start")
    m.other_event("assistant")
    clock.advance(0.99)
    assert m.verdict() is None
    clock.advance(0.02)
    v = m.verdict()
    assert v is not None and "answer stopped" in v[1]


def test_a_server_side_tool_inside_the_answer_pauses_the_gap_watch() -> None:
    clock = FakeClock()
    m = _monitor(_learned(gap=0.2), clock)  # gap limit 1.0 s
    m.request_sent()
    m.answer_event("message_start")
    m.answer_event("content_block_start", pause=True)  # e.g. web search runs on the server
    clock.advance(30)
    assert m.verdict() is None
    m.answer_event("content_block_delta")  # the answer goes on: watched again
    clock.advance(1.01)
    v = m.verdict()
    assert v is not None and "answer stopped" in v[1]


def test_other_events_clear_the_request_a_retry_or_an_error_is_not_a_hang() -> None:
    clock = FakeClock()
    m = _monitor(_learned(), clock)
    m.request_sent()
    m.other_event("system")  # e.g. api_retry: the CLI handles it, then requests again
    clock.advance(50)
    assert m.verdict() is None


def test_nothing_is_ended_before_the_endpoint_is_learned_and_the_job_scale_stretches_the_limit() -> None:
    clock = FakeClock()
    m = _monitor(_learned(n=7), clock)
    m.request_sent()
    clock.advance(200)
    assert m.verdict() is None  # 7 < min_samples: only the stall timeout could end it
    m2 = _monitor(_learned(first=0.5), clock, scale=4.0)  # 1.5 s x 4
    m2.request_sent()
    clock.advance(5.9)
    assert m2.verdict() is None
    clock.advance(0.2)
    v = m2.verdict()
    assert v is not None and "x4 for this job" in v[1]


def test_the_defaults_wait_for_8_answers_and_floor_at_2_and_5_s() -> None:
    t = ResponseTimes()
    for _ in range(7):
        t.first_answer(0.01)
        t.stream_gap(0.01)
    assert t.first_answer_limit() is None  # 8 answers before anything is ended
    t.first_answer(0.01)
    t.stream_gap(0.01)
    assert (t.first_answer_limit(), t.gap_limit()) == (2.0, 5.0)



def test_config_validates_the_request_settings() -> None:
    from resurgo.supervise import ConfigError

    with pytest.raises(ConfigError, match="request_timeout_factor"):
        SupervisorConfig(request_timeout_factor=0.5)
    with pytest.raises(ConfigError, match="request_timeout_floor"):
        SupervisorConfig(request_timeout_floor=0)
    with pytest.raises(ConfigError, match="request_watch"):
        SupervisorConfig(request_watch="yes")  # type: ignore[arg-type]


# -- the real CLI -----------------------------------------------------------------------------------

STEPS = 21  # answers the watch learns from before the hang (min_samples is 20)


def _prompt() -> str:
    calls = " ".join(f"[[bash: echo step {k}]]" for k in range(1, STEPS + 1))
    return f"run these in order. {calls} [[text: all done]]"


def _cfg(tmp_path: Path, claude_bin: str, env: dict[str, str], **kw: Any) -> SupervisorConfig:
    base: dict[str, Any] = {
        "claude": claude_bin, "store": str(tmp_path / "store.db"), "env": env, "stall_timeout": 60.0,
        "kill_grace": 1.0, "backoff_base": 0.1, "backoff_cap": 1.0, "cli_max_retries": 0,
        "claude_args": ("--allowedTools", "Bash"), "health_interval": 1.0,
    }
    base.update(kw)
    return SupervisorConfig(**base)


@pytest.mark.integration
async def test_a_hang_after_the_endpoint_was_learned_is_ended_by_the_request_watch(
    claude_bin: str, claude_env: dict[str, str], mock_api: MockServer, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env = {**claude_env, "ANTHROPIC_BASE_URL": mock_api.url}  # the CLI's own request timeout: 10 minutes
    mock_api.set_faults(hang=True, nth=STEPS + 1)
    # the CLI-side watch (what runs when the relay cannot: a proxy in between); the relay's own
    # watch is tested below
    async with Supervisor(_cfg(tmp_path, claude_bin, env, relay=False)) as sup:
        t0 = time.monotonic()
        res = await asyncio.wait_for(sup.run(_prompt(), cwd=work), 50)
        took = time.monotonic() - t0
        assert res.ok and res.result_text == "all done", res
        attempts = sup.jobs.attempts(res.job_id)
        assert [a.killed_by for a in attempts] == ["stall_watchdog", None]
        err = attempts[0].error or {}
        assert err.get("type") == "timeout"
        assert "has not answered" in str(err.get("kill_reason"))
        # neither the 60 s stall timeout nor the CLI's 10-minute request timeout ended it
        assert took < 40
        # the answer events resurgo asked for are not in what it stored
        stored = sup.jobs.events(res.job_id)
        assert stored and not any(e.type == "stream_event" for e in stored)
        assert not any(e.subtype == "status" for e in stored)
    assert any(r.fault == "hang" for r in mock_api.requests)


@pytest.mark.integration
async def test_without_the_watch_the_same_hang_waits_for_the_stall_timeout(
    claude_bin: str, claude_env: dict[str, str], mock_api: MockServer, tmp_path: Path
) -> None:
    """The property breaks when the watch is off: the hang is only caught by the (here 6 s) stall timeout."""
    work = tmp_path / "work"
    work.mkdir()
    env = {**claude_env, "ANTHROPIC_BASE_URL": mock_api.url}
    mock_api.set_faults(hang=True, nth=STEPS + 1)
    async with Supervisor(_cfg(tmp_path, claude_bin, env, request_watch=False, stall_timeout=6.0, relay=False)) as sup:
        res = await asyncio.wait_for(sup.run(_prompt(), cwd=work), 50)
        assert res.ok, res
        assert "no event for" in str((sup.jobs.attempts(res.job_id)[0].error or {}).get("kill_reason"))


@pytest.mark.integration
async def test_through_the_relay_a_learned_hang_is_retried_without_restarting_the_cli(
    claude_bin: str, claude_env: dict[str, str], mock_api: MockServer, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env = {**claude_env, "ANTHROPIC_BASE_URL": mock_api.url}
    mock_api.set_faults(hang=True, nth=STEPS + 1)
    async with Supervisor(_cfg(tmp_path, claude_bin, env)) as sup:
        res = await asyncio.wait_for(sup.run(_prompt(), cwd=work), 50)
        assert res.ok and res.result_text == "all done", res
        attempts = sup.jobs.attempts(res.job_id)
        assert [a.killed_by for a in attempts] == [None]  # one CLI from start to end
        recs = sup.jobs.recoveries(res.job_id)
        assert [(r["strategy"], r["fault_kind"], r["error_type"], r["succeeded"]) for r in recs] == [
            ("relay_retry", "stall", "timeout", 1)]
        assert recs[0]["restored_at"] >= recs[0]["detected_at"]
        # the CLI ran without --include-partial-messages: nothing to drop
        assert not any(e.type == "stream_event" for e in sup.jobs.events(res.job_id))
        # the retry was paid from the relay's own (RPC-sized) budget, not the CLI restarts' one
        (ep,) = sup._orch.endpoints.values()
        assert ep.request_budget.stats().retries_allowed == 1
        assert ep.request_budget.min_retries_per_sec == 10.0
        assert ep.budget.stats().retries_allowed == 0
    assert [r.fault for r in mock_api.requests if r.path == "/v1/messages"].count("hang") == 1


@pytest.mark.integration
async def test_through_the_relay_without_the_watch_the_hang_waits_for_the_stall_timeout(
    claude_bin: str, claude_env: dict[str, str], mock_api: MockServer, tmp_path: Path
) -> None:
    """The property breaks with the watch off: the relay waits with the CLI, the stall timeout ends both."""
    work = tmp_path / "work"
    work.mkdir()
    env = {**claude_env, "ANTHROPIC_BASE_URL": mock_api.url}
    mock_api.set_faults(hang=True, nth=STEPS + 1)
    async with Supervisor(_cfg(tmp_path, claude_bin, env, request_watch=False, stall_timeout=6.0)) as sup:
        res = await asyncio.wait_for(sup.run(_prompt(), cwd=work), 50)
        assert res.ok, res
        attempts = sup.jobs.attempts(res.job_id)
        assert [a.killed_by for a in attempts] == ["stall_watchdog", None]
        assert "no event for" in str((attempts[0].error or {}).get("kill_reason"))
        assert not [r for r in sup.jobs.recoveries(res.job_id) if r["strategy"] == "relay_retry"]


@pytest.mark.integration
async def test_a_job_that_asks_for_partial_messages_keeps_them(
    claude_bin: str, claude_env: dict[str, str], mock_api: MockServer, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env = {**claude_env, "ANTHROPIC_BASE_URL": mock_api.url}
    async with Supervisor(_cfg(tmp_path, claude_bin, env, claude_args=("--allowedTools", "Bash", PARTIAL_FLAG))) as sup:
        res = await asyncio.wait_for(sup.run("say [[text: hello]]", cwd=work), 30)
        assert res.ok, res
        assert any(e.type == "stream_event" for e in sup.jobs.events(res.job_id))


def test_preloaded_samples_give_a_limit_at_once_and_age_out_like_seen_ones() -> None:
    t = ResponseTimes(factor=2.0, floor=0.1, min_samples=3, window=4)
    t.preload([0.5, 0.2, float("nan"), -1.0, 0.3], [0.4])
    assert t.first_answer_limit() == pytest.approx(1.0) and t.added == 0
    assert t.samples() == ([0.5, 0.2, 0.3], [0.4])
    t.first_answer(0.1)
    t.first_answer(0.1)  # 0.5 leaves the window of 4
    assert t.first_answer_limit() == pytest.approx(0.6) and t.added == 2
