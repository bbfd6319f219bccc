"""Ending a run's leftovers by its environment marker, without the CLI: plain processes stand in for tools."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator

import psutil
import pytest
from claude_agent_sdk import ClaudeAgentOptions
from tests.sdk.conftest import marked_alive

from resurgo.sdk import query
from resurgo.sdk._leftovers import RUN_ENV, end_leftovers, marked, new_token

#: a shell whose child escapes its session (as the CLI's Bash tool does), both ignoring SIGTERM
STUBBORN = "trap '' TERM; setsid sleep 60 & echo $!; wait"


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:  # the test's own starts; the orphans are the library's job
        if p.poll() is None:
            p.kill()
        p.wait(timeout=5)


def _start(cmd: str, token: str, procs: list[subprocess.Popen[str]]) -> tuple[int, int]:
    p = subprocess.Popen(
        ["/bin/sh", "-c", cmd],
        env={**os.environ, RUN_ENV: token},
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    procs.append(p)
    assert p.stdout is not None
    child = int(p.stdout.readline())
    return p.pid, child


async def test_marked_processes_and_escaped_children_are_ended_with_escalation(
    spawned: list[subprocess.Popen[str]],
) -> None:
    token, other = new_token(), new_token()
    shell, child = _start(STUBBORN, token, spawned)
    bystander, bystander_child = _start(STUBBORN, other, spawned)
    for _ in range(200):  # $! is printed at fork time, before the child's setsid() ran
        if os.getsid(child) == child:
            break
        await asyncio.sleep(0.01)
    assert os.getsid(child) == child != os.getsid(shell)  # the child left the shell's session

    report = await end_leftovers(token, grace=0.3)

    assert {shell, child} <= set(report.terminated)
    assert {shell, child} <= set(report.killed)  # both ignored SIGTERM: SIGKILL after the grace
    assert report.left == ()
    assert marked_alive(token) == []
    # another run's processes are not touched
    assert sorted(marked_alive(other)) == sorted([bystander, bystander_child])
    assert (await end_leftovers(other, grace=0.0)).left == ()
    assert marked_alive(other) == []


async def test_no_grace_means_leave_them_alone(spawned: list[subprocess.Popen[str]]) -> None:
    token = new_token()
    _, child = _start(STUBBORN, token, spawned)
    report = await end_leftovers(token, grace=None)
    assert report.terminated == () and psutil.pid_exists(child)
    assert (await end_leftovers(token, grace=0.0)).left == ()
    assert marked_alive(token) == []


def test_the_marker_goes_into_a_copy_of_the_options() -> None:
    opts = ClaudeAgentOptions(env={"A": "1"})
    m = marked(opts, "tok")
    assert m.env == {"A": "1", RUN_ENV: "tok"} and opts.env == {"A": "1"}


async def test_a_bad_grace_is_refused_before_anything_starts() -> None:
    with pytest.raises(ValueError, match="leftover_grace"):
        async for _ in query(prompt="hi", options=ClaudeAgentOptions(), leftover_grace=-1):
            pass
