"""Fixtures for the claude-agent-sdk integration: the real SDK driving the real CLI on the stand-in."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

# The sdk extra is part of the test set-up (scripts/setup.sh); without it these tests fail
# at import rather than skip, so a broken set-up cannot pass as green.
from claude_agent_sdk import ClaudeAgentOptions

from resurgo._procs import env_marked, proc_ids
from resurgo.mockapi import MockServer
from resurgo.retrier import RetryPolicy
from resurgo.sdk._leftovers import RUN_ENV

#: Real waits, but tiny: the tests check behaviour, not backoff lengths.
FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)


def _inside(p: psutil.Process, root: str) -> bool:
    try:
        cwd = p.cwd()
    except (psutil.Error, OSError):
        return False
    return cwd == root or cwd.startswith(root + os.sep)


def _living(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def leftovers(root: Path) -> list[psutil.Process]:
    """Living processes that are our children or run inside ``root`` (what a run could have left)."""
    me = psutil.Process()
    procs = {p.pid: p for p in me.children(recursive=True)}
    for p in psutil.process_iter():
        if p.pid != me.pid and _inside(p, str(root)):
            procs[p.pid] = p
    return [p for p in procs.values() if _living(p)]


def unique_sleep() -> str:
    """A ``sleep`` argument no other test's (or helper's) tool command can match."""
    return f"{random.randint(40, 90)}.{uuid.uuid4().int % 10**9:09d}"


def find_tool(needle: str, root: Path) -> list[psutil.Process]:
    """Living processes inside ``root`` whose command line contains ``needle``."""
    out = []
    for p in psutil.process_iter():
        try:
            if needle in " ".join(p.cmdline()) and _inside(p, str(root)) and _living(p):
                out.append(p)
        except psutil.Error:
            continue
    return out


def run_marker(p: psutil.Process) -> str | None:
    """The ``RESURGO_SDK_RUN`` value in a process's environment (the run that started it)."""
    try:
        return p.environ().get(RUN_ENV)
    except psutil.Error:
        return None


def marked_alive(token: str) -> list[int]:
    """Living (not zombie) processes still carrying the run's marker."""
    return [pid for pid in env_marked(RUN_ENV, token) if (ids := proc_ids(pid)) is not None and not ids.zombie]


def gone(procs: list[psutil.Process]) -> bool:
    """None of ``procs`` is alive any more (a reused pid is another process: psutil checks the start time)."""
    return not any(_living(p) for p in procs)


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


async def wait_for_tool(needle: str, root: Path, timeout: float = 5.0) -> list[psutil.Process]:
    """Wait until a process whose command line contains ``needle`` runs inside ``root``; all such processes."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if found := find_tool(needle, root):
            return found
        await asyncio.sleep(0.05)
    return []


def message_requests(srv: MockServer) -> list[object]:
    return [r for r in srv.requests if r.path == "/v1/messages"]


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """The CLI's working directory; the test fails if anything is still running in it afterwards.

    resurgo.sdk ends every process of its runs itself, so this is a check, not
    the clean-up: it only kills (and then fails the test) when the library
    left something behind, so that one failure does not leak into the next test.
    """
    d = tmp_path / "work"
    d.mkdir()
    yield d
    left = leftovers(tmp_path)
    if left:
        desc = []
        for p in left:
            with contextlib.suppress(psutil.Error):
                desc.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(left, timeout=5)
        pytest.fail(f"resurgo.sdk left {len(left)} process(es) running: {desc}")


@pytest.fixture
def sdk_options(claude_bin: str, claude_env: dict[str, str], mock_api: MockServer, workdir: Path) -> ClaudeAgentOptions:
    """Options for the npm CLI 2.1.197 on the stand-in, in a temp HOME and work dir."""
    env = {**claude_env, "ANTHROPIC_BASE_URL": mock_api.url}
    return ClaudeAgentOptions(cli_path=claude_bin, env=env, cwd=str(workdir), allowed_tools=["Bash"])
