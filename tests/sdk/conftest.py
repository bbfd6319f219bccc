"""Fixtures for the claude-agent-sdk integration: the real SDK driving the real CLI on the stand-in."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

pytest.importorskip("claude_agent_sdk", reason="the sdk extra (claude-agent-sdk) is not installed")

from claude_agent_sdk import ClaudeAgentOptions

from resurgo.mockapi import MockServer
from resurgo.retry import RetryPolicy

#: Real waits, but tiny: the tests check behaviour, not backoff lengths.
FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)


def _inside(p: psutil.Process, root: str) -> bool:
    try:
        cwd = p.cwd()
    except (psutil.Error, OSError):
        return False
    return cwd == root or cwd.startswith(root + os.sep)


def kill_leftovers(root: Path) -> list[int]:
    """End our child processes and anything running inside ``root`` (a killed CLI's orphaned Bash tool)."""
    me = psutil.Process()
    procs = {p.pid: p for p in me.children(recursive=True)}
    for p in psutil.process_iter():
        if p.pid != me.pid and _inside(p, str(root)):
            procs[p.pid] = p
    for p in procs.values():
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(list(procs.values()), timeout=5)
    return sorted(procs)


def cli_processes() -> list[psutil.Process]:
    """Running Claude Code CLIs started (through the SDK) by this test process."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            cmd = p.cmdline()
        except psutil.Error:
            continue
        if cmd and "claude" in Path(cmd[0]).name and "--output-format" in cmd:
            out.append(p)
    return out


def kill_cli() -> int:
    """SIGKILL the running CLI (a crash, as far as the SDK can tell); returns how many were killed."""
    procs = cli_processes()
    for p in procs:
        p.kill()
    return len(procs)


async def wait_for_tool(needle: str, root: Path, timeout: float = 5.0) -> bool:
    """Wait until a process whose command line contains ``needle`` runs inside ``root``."""
    import asyncio

    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        for p in psutil.process_iter():
            try:
                if needle in " ".join(p.cmdline()) and _inside(p, str(root)):
                    return True
            except psutil.Error:
                continue
        await asyncio.sleep(0.05)
    return False


def message_requests(srv: MockServer) -> list[object]:
    return [r for r in srv.requests if r.path == "/v1/messages"]


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "work"
    d.mkdir()
    try:
        yield d
    finally:
        kill_leftovers(tmp_path)


@pytest.fixture
def sdk_options(claude_bin: str, claude_env: dict[str, str], mock_api: MockServer, workdir: Path) -> ClaudeAgentOptions:
    """Options for the npm CLI 2.1.197 on the stand-in, in a temp HOME and work dir."""
    env = {**claude_env, "ANTHROPIC_BASE_URL": mock_api.url}
    return ClaudeAgentOptions(cli_path=claude_bin, env=env, cwd=str(workdir), allowed_tools=["Bash"])
