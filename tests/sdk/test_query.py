"""resurgo.sdk.query against the real claude-agent-sdk and the real CLI on the API stand-in."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import psutil
import pytest
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKError,
    ResultError,
    ResultMessage,
    SystemMessage,
    ToolUseBlock,
)
from tests.sdk.conftest import (
    FAST,
    find_tool,
    gone,
    kill_cli,
    marked_alive,
    message_requests,
    run_marker,
    unique_sleep,
    wait_for_tool,
)

from resurgo.breaker import CircuitBreaker, CircuitState, CircuitThresholds
from resurgo.classifier import ErrorType
from resurgo.mockapi import Faults, MockServer
from resurgo.retrier import RetryBudget, RetryPolicy
from resurgo.sdk import RecoveryEvent, ResilientSDKError, StopReason, query
from resurgo.store import Store

pytestmark = pytest.mark.integration


async def collect(**kw: object) -> list[object]:
    return [m async for m in query(**kw)]  # type: ignore[arg-type]


def uuids(msgs: list[object]) -> list[str]:
    return [u for m in msgs if isinstance(u := getattr(m, "uuid", None), str)]


async def test_529_burst_is_resumed_and_completes(
    sdk_options: ClaudeAgentOptions, mock_api: MockServer, tmp_path: Path
) -> None:
    mock_api.set_faults(Faults(status=529, count=2))
    events: list[RecoveryEvent] = []
    store = Store(tmp_path / "resurgo.db")
    msgs = await collect(
        prompt="say it [[text: all good]]", options=sdk_options, policy=FAST, on_recovery=events.append, store=store
    )

    results = [m for m in msgs if isinstance(m, ResultMessage)]
    assert len(results) == 1 and msgs[-1] is results[0]
    final = results[0]
    assert final.is_error is False and final.result == "all good"
    # the two failures were recovered, not shown: no error result, no synthetic error message
    assert not [m for m in msgs if isinstance(m, AssistantMessage) and m.error]
    assert len([m for m in msgs if isinstance(m, SystemMessage) and m.subtype == "init"]) == 1
    assert len(uuids(msgs)) == len(set(uuids(msgs)))
    # recovered by resuming the same session, twice, after classifying the 529 as resource
    assert [e.action for e in events] == ["resume", "resume"]
    assert {e.session_id for e in events} == {final.session_id}
    assert all(e.error_class.type is ErrorType.RESOURCE and e.error_class.retryable for e in events)
    reqs = message_requests(mock_api)
    assert len(reqs) == 3
    assert {r.session_id for r in reqs} == {final.session_id}
    assert [r.fault for r in reqs] == ["529", "529", None]

    job = store.query("SELECT * FROM jobs")
    assert len(job) == 1 and job[0]["state"] == "succeeded" and job[0]["name"] == "sdk.query"
    assert job[0]["session_id"] == final.session_id and job[0]["endpoint"] == mock_api.url
    jid = job[0]["id"]
    atts = store.query("SELECT kind, outcome FROM attempts WHERE job_id=? ORDER BY n", (jid,))
    assert [(a["kind"], a["outcome"]) for a in atts] == [
        ("start", "failed"), ("resume", "failed"), ("resume", "succeeded")
    ]
    errs = store.query("SELECT type, retryable FROM errors WHERE job_id=?", (jid,))
    assert [(e["type"], e["retryable"]) for e in errs] == [("resource", 1), ("resource", 1)]
    recs = store.query("SELECT strategy, succeeded, restored_at FROM recoveries WHERE job_id=? ORDER BY id", (jid,))
    assert [(r["strategy"], r["succeeded"]) for r in recs] == [("resume", 0), ("resume", 1)]
    assert all(r["restored_at"] is not None for r in recs)
    retries = store.query("SELECT attempts, succeeded FROM retries WHERE scope=?", (jid,))
    assert [(r["attempts"], r["succeeded"]) for r in retries] == [(3, 1)]
    store.close()


async def test_401_raises_auth_at_once(sdk_options: ClaudeAgentOptions, mock_api: MockServer) -> None:
    mock_api.set_faults(Faults(status=401))
    seen: list[object] = []
    gave_up: list[ResilientSDKError] = []
    with pytest.raises(ResilientSDKError) as info:
        async for m in query(prompt="hello", options=sdk_options, policy=FAST, on_give_up=gave_up.append):
            seen.append(m)
    err = info.value
    assert err.error_class.type is ErrorType.AUTH and not err.retryable
    assert err.reason is StopReason.NOT_RETRYABLE and err.attempts == 1
    assert isinstance(err, ClaudeSDKError)  # old `except ClaudeSDKError` handlers still catch it
    assert isinstance(err.__cause__, ResultError) and err.__cause__.api_error_status == 401
    assert gave_up == [err]
    # the SDK's contract on failure is kept: the error result is yielded, then the exception
    assert isinstance(seen[-1], ResultMessage) and seen[-1].is_error and seen[-1].api_error_status == 401
    assert len(message_requests(mock_api)) == 1


async def test_cli_killed_mid_tool_resumes_the_same_session(
    sdk_options: ClaudeAgentOptions, mock_api: MockServer, workdir: Path
) -> None:
    # The tool sleeps long only the first time; the resumed run re-runs it and finds the flag.
    # Killing the CLI leaves that first sleep orphaned (the Bash tool has its own session):
    # the library must end it before the next run starts, and nothing of the run may be left.
    secs = unique_sleep()
    events: list[RecoveryEvent] = []
    orphan_gone_at_recovery: list[bool] = []
    msgs: list[object] = []
    tools: list[psutil.Process] = []
    markers: set[str | None] = set()
    killed = 0

    def on_recovery(ev: RecoveryEvent) -> None:
        events.append(ev)
        orphan_gone_at_recovery.append(gone(tools))

    async for m in query(
        prompt=f"work [[bash: if [ -e once.flag ]; then echo again; else touch once.flag; sleep {secs}; fi]]"
        " [[text: finished]]",
        options=sdk_options,
        policy=FAST,
        on_recovery=on_recovery,
    ):
        msgs.append(m)
        if not killed and isinstance(m, AssistantMessage) and any(isinstance(b, ToolUseBlock) for b in m.content):
            tools = await wait_for_tool(f"sleep {secs}", workdir)  # the tool really runs: a crash mid-tool
            markers = {run_marker(p) for p in tools}
            # The CLI flushes its transcript about 0.1 s after an event (2.1.197); a kill before that
            # leaves nothing to resume, and the wrapper starts over instead (see test_fresh_start_...).
            await asyncio.sleep(0.5)
            killed = kill_cli()
    assert killed == 1 and tools
    assert len(markers) == 1 and None not in markers  # the tool inherited the run's marker through setsid
    # the orphaned tool was ended after the failed run, before the recovery started ...
    assert orphan_gone_at_recovery == [True]
    # ... and nothing of either run is alive now, before any fixture clean-up
    assert gone(tools) and find_tool(f"sleep {secs}", workdir) == []
    assert marked_alive(next(iter(markers)) or "") == []
    final = msgs[-1]
    assert isinstance(final, ResultMessage) and not final.is_error and final.result == "finished"
    assert len(events) == 1
    ev = events[0]
    assert ev.action == "resume" and ev.session_id == final.session_id
    assert ev.error_class.type is ErrorType.PROCESS
    assert getattr(ev.exception, "exit_code", None) == -9
    # every request of both CLI runs belongs to one session; the resumed run re-ran the Bash step
    reqs = message_requests(mock_api)
    assert {r.session_id for r in reqs} == {final.session_id}
    assert len(uuids(msgs)) == len(set(uuids(msgs)))
    assert len([m for m in msgs if isinstance(m, SystemMessage) and m.subtype == "init"]) == 1


async def test_stall_watchdog_abandons_a_hung_run_and_resumes(
    sdk_options: ClaudeAgentOptions, mock_api: MockServer
) -> None:
    # the CLI's own API timeout is the default (minutes): only the watchdog notices the hang
    mock_api.set_faults(Faults(hang=True, count=1))
    events: list[RecoveryEvent] = []
    msgs = await collect(
        prompt="hi [[text: after the hang]]", options=sdk_options, policy=FAST, stall_timeout=4.0,
        on_recovery=events.append,
    )
    final = msgs[-1]
    assert isinstance(final, ResultMessage) and not final.is_error and final.result == "after the hang"
    assert [(e.action, e.error_class.type, e.error_class.category) for e in events] == [
        ("resume", ErrorType.TIMEOUT, "stalled")
    ]
    assert [r.fault for r in message_requests(mock_api)] == ["hang", None]


async def test_open_breaker_rejects_without_starting_the_cli(
    sdk_options: ClaudeAgentOptions, mock_api: MockServer
) -> None:
    mock_api.set_faults(Faults(status=529))
    breaker = CircuitBreaker(
        "t", thresholds=CircuitThresholds(min_calls=2, sliding_window=2, window_kind="count", wait_in_open=30)
    )
    policy = dataclasses.replace(FAST, max_attempts=6)
    with pytest.raises(ResilientSDKError) as info:
        await collect(prompt="hi", options=sdk_options, policy=policy, breaker=breaker)
    err = info.value
    # two 529s opened the breaker; the third run was refused instead of started
    assert err.reason is StopReason.CIRCUIT_OPEN and err.attempts == 2
    assert breaker.state is CircuitState.OPEN
    assert err.retry_after is not None and 25 < err.retry_after <= 30
    assert len(message_requests(mock_api)) == 2

    with pytest.raises(ResilientSDKError) as again:
        await collect(prompt="hi", options=sdk_options, policy=policy, breaker=breaker)
    assert again.value.reason is StopReason.CIRCUIT_OPEN and again.value.attempts == 0
    assert again.value.error_class.category == "circuit_open" and again.value.retry_after is not None
    assert len(message_requests(mock_api)) == 2  # nothing was sent


async def test_retry_budget_stops_a_storm(sdk_options: ClaudeAgentOptions, mock_api: MockServer) -> None:
    mock_api.set_faults(Faults(status=529))
    # one retry per 10 s window plus 10 % of calls: three failing queries may retry once in total
    budget = RetryBudget(ratio=0.1, min_retries_per_sec=0.1, ttl=10)
    policy = dataclasses.replace(FAST, max_attempts=10)
    reasons = []
    for _ in range(3):
        with pytest.raises(ResilientSDKError) as info:
            await collect(prompt="hi", options=sdk_options, policy=policy, budget=budget, breaker=None)
        reasons.append((info.value.reason, info.value.attempts))
    assert reasons == [
        (StopReason.BUDGET_EXHAUSTED, 2),
        (StopReason.BUDGET_EXHAUSTED, 1),
        (StopReason.BUDGET_EXHAUSTED, 1),
    ]
    assert len(message_requests(mock_api)) == 4  # not 30
    assert budget.stats().retries_refused == 3


async def test_a_missing_session_given_by_the_caller_is_not_replaced(
    sdk_options: ClaudeAgentOptions, mock_api: MockServer
) -> None:
    """The caller asked for that conversation: silently starting a new one would lose its context."""
    opts = dataclasses.replace(sdk_options, resume="6f1c1c1c-1111-4111-8111-111111111111")
    with pytest.raises(ResilientSDKError) as info:
        await collect(prompt="hi", options=opts, policy=FAST)
    assert info.value.error_class.type is ErrorType.VALIDATION and info.value.attempts == 1
    assert message_requests(mock_api) == []


async def test_starts_over_when_the_transcript_to_resume_is_gone(
    sdk_options: ClaudeAgentOptions, claude_env: dict[str, str], mock_api: MockServer
) -> None:
    mock_api.set_faults(Faults(status=529, count=1))
    events: list[RecoveryEvent] = []

    def lose_transcripts(ev: RecoveryEvent) -> None:
        events.append(ev)
        for f in Path(claude_env["HOME"], ".claude", "projects").glob("*/*.jsonl"):
            f.unlink()

    msgs = await collect(prompt="hi [[text: fresh]]", options=sdk_options, policy=FAST, on_recovery=lose_transcripts)
    final = msgs[-1]
    assert isinstance(final, ResultMessage) and not final.is_error and final.result == "fresh"
    assert [(e.action, e.error_class.category) for e in events] == [
        ("resume", "overloaded"),
        ("restart", "session_missing"),
    ]
    assert events[0].session_id is not None and final.session_id != events[0].session_id
    assert len([m for m in msgs if isinstance(m, ResultMessage)]) == 1


async def test_bundled_cli_also_recovers(
    claude_env: dict[str, str], mock_api: MockServer, workdir: Path
) -> None:
    """The wheel's own CLI (cli_path unset), which is newer than the npm one."""
    mock_api.set_faults(Faults(status=529, count=1))
    opts = ClaudeAgentOptions(env={**claude_env, "ANTHROPIC_BASE_URL": mock_api.url}, cwd=str(workdir))
    events: list[RecoveryEvent] = []
    msgs = await collect(prompt="hi [[text: bundled ok]]", options=opts, policy=FAST, on_recovery=events.append)
    final = msgs[-1]
    assert isinstance(final, ResultMessage) and not final.is_error and final.result == "bundled ok"
    assert [e.action for e in events] == ["resume"]


async def test_default_policy_object_is_used_unchanged_by_a_retrier(
    sdk_options: ClaudeAgentOptions, mock_api: MockServer
) -> None:
    """A caller's own Retrier is used as is: its policy decides the attempts."""
    from resurgo.retrier import Retrier

    mock_api.set_faults(Faults(status=529))
    r = Retrier(policy=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02), budget=None)
    with pytest.raises(ResilientSDKError) as info:
        await collect(prompt="hi", options=sdk_options, retrier=r, breaker=None)
    assert info.value.reason is StopReason.ATTEMPTS_EXHAUSTED and info.value.attempts == 2
    assert info.value.error_class.type is ErrorType.RESOURCE
    assert r.stats().to_dict()["calls"] == 1
