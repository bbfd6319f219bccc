"""ResilientClient against the real SDK client and the real CLI on the API stand-in."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psutil
import pytest
from claude_agent_sdk import AssistantMessage, ClaudeAgentOptions, ResultMessage, ToolUseBlock
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

from resurgo.classifier import ErrorType
from resurgo.mockapi import Faults, MockServer
from resurgo.sdk import RecoveryEvent, ResilientClient, ResilientSDKError, StopReason

pytestmark = pytest.mark.integration


async def test_529_in_a_turn_is_sent_again_and_the_next_turn_continues(
    sdk_options: ClaudeAgentOptions, mock_api: MockServer
) -> None:
    events: list[RecoveryEvent] = []
    async with ResilientClient(sdk_options, policy=FAST, on_recovery=events.append) as client:
        mock_api.set_faults(Faults(status=529, count=1))
        await client.query("first [[text: one]]")
        first = [m async for m in client.receive_response()]
        await client.query("second [[text: two]]")
        second = [m async for m in client.receive_response()]
    r1, r2 = first[-1], second[-1]
    assert isinstance(r1, ResultMessage) and not r1.is_error and r1.result == "one"
    assert isinstance(r2, ResultMessage) and not r2.is_error and r2.result == "two"
    assert not [m for m in first if isinstance(m, ResultMessage) and m.is_error]
    assert len(events) == 1 and events[0].error_class.type is ErrorType.RESOURCE
    assert r1.session_id == r2.session_id == events[0].session_id
    assert {r.session_id for r in message_requests(mock_api)} == {r1.session_id}


async def test_cli_killed_mid_turn_reconnects_with_resume(
    sdk_options: ClaudeAgentOptions, mock_api: MockServer, workdir: Path
) -> None:
    secs = unique_sleep()
    events: list[RecoveryEvent] = []
    msgs: list[object] = []
    tools: list[psutil.Process] = []
    orphan_gone_at_recovery: list[bool] = []

    def on_recovery(ev: RecoveryEvent) -> None:
        events.append(ev)
        orphan_gone_at_recovery.append(gone(tools))

    async with ResilientClient(sdk_options, policy=FAST, on_recovery=on_recovery) as client:
        first_client = client.client
        await client.query(
            f"work [[bash: if [ -e once.flag ]; then echo again; else touch once.flag; sleep {secs}; fi]]"
            " [[text: finished]]"
        )
        killed = 0
        async for m in client.receive_response():
            msgs.append(m)
            if not killed and isinstance(m, AssistantMessage) and any(isinstance(b, ToolUseBlock) for b in m.content):
                tools = await wait_for_tool(f"sleep {secs}", workdir)
                markers = {run_marker(p) for p in tools}
                await asyncio.sleep(0.5)  # let the CLI flush its transcript (see test_query)
                killed = kill_cli()
        assert killed == 1 and tools and len(markers) == 1 and None not in markers
        # the killed CLI's orphaned tool was ended before the recovery began
        assert orphan_gone_at_recovery == [True] and find_tool(f"sleep {secs}", workdir) == []
        assert client.client is not first_client  # a new CLI process, resumed
        await client.query("again [[text: still here]]")
        after = [m async for m in client.receive_response()]
    assert marked_alive(next(iter(markers)) or "") == []
    final = msgs[-1]
    assert isinstance(final, ResultMessage) and not final.is_error and final.result == "finished"
    assert [(e.action, e.error_class.type) for e in events] == [("resume", ErrorType.PROCESS)]
    assert events[0].session_id == final.session_id
    last = after[-1]
    assert isinstance(last, ResultMessage) and not last.is_error and last.session_id == final.session_id
    assert {r.session_id for r in message_requests(mock_api)} == {final.session_id}


async def test_client_auth_failure_raises_at_once(sdk_options: ClaudeAgentOptions, mock_api: MockServer) -> None:
    mock_api.set_faults(Faults(status=401))
    async with ResilientClient(sdk_options, policy=FAST) as client:
        await client.query("hello")
        with pytest.raises(ResilientSDKError) as info:
            async for _ in client.receive_response():
                pass
    assert info.value.error_class.type is ErrorType.AUTH and info.value.reason is StopReason.NOT_RETRYABLE
    assert len(message_requests(mock_api)) == 1


async def test_disconnect_ends_what_a_tool_left_running(sdk_options: ClaudeAgentOptions, workdir: Path) -> None:
    """A Bash tool's background process outlives the turn and the CLI; disconnect() ends it."""
    secs = unique_sleep()
    async with ResilientClient(sdk_options, policy=FAST) as client:
        await client.query(f"bg [[bash: setsid sleep {secs} >/dev/null 2>&1 & echo started]] [[text: left one]]")
        msgs = [m async for m in client.receive_response()]
        daemon = find_tool(f"sleep {secs}", workdir)
        assert daemon  # it survived its tool call: the CLI does not end it
        token = run_marker(daemon[0])
        assert token is not None
    final = msgs[-1]
    assert isinstance(final, ResultMessage) and not final.is_error and final.result == "left one"
    assert gone(daemon) and marked_alive(token) == []
