"""Standby CLIs: a CLI booted ahead for a running job, adopted by the next resume of its session.

A killed CLI's restart is mostly the CLI's own boot; a standby has booted
already and waits for its prompt on stdin.  These tests run the real CLI and
check the properties the feature rests on, each with a variant that breaks it:

* the standby outlives the CLI's 3 s stdin timeout (it is sent a first newline;
  without it the CLI gives up and the standby is found dead);
* it reads the session only once its prompt comes, so a turn written after it
  booted is the resumed turn's parent (nothing done meanwhile is lost);
* it is adopted only when command line, folder and environment are exactly the
  attempt's; anything else is ended and the attempt starts as usual;
* the supervisor keeps standbys only after it has resumed a session, adopts one
  for the next kill, and leaves no process behind; ``standby=0`` keeps none;
* standbys that keep dying unadopted are turned off;
* the chaos run's killer never spends a kill on a standby.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import resurgo._launch as launch
from resurgo.mockapi import MockServer
from resurgo.supervise import JobState, Supervisor, SupervisorConfig, ToolStarted
from resurgo.supervise._process import AttemptSpec, ProcessManager

pytestmark = pytest.mark.integration


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def _user_turns(home: str, session_id: str) -> list[dict[str, Any]]:
    """The user and assistant entries of a session's transcript, in file order."""
    files = list(Path(home, ".claude", "projects").glob(f"*/{session_id}.jsonl"))
    assert len(files) == 1, files
    out = []
    for line in files[0].read_text().splitlines():
        e = json.loads(line)
        if e.get("type") in ("user", "assistant"):
            out.append(e)
    return out


def _text(e: dict[str, Any]) -> str:
    c = e["message"]["content"]
    return c if isinstance(c, str) else " ".join(str(b.get("text", "")) for b in c if isinstance(b, dict))


async def _with_session(mgr: ProcessManager, cwd: Path, env: dict[str, str]) -> str:
    """A session with one finished turn (what a standby resumes); its id."""
    sid = str(uuid.uuid4())
    first = await mgr.run(AttemptSpec(prompt="one [[text: one]]", cwd=cwd, session_id=sid, env=env,
                                      inherit_env=False))
    assert first.result_ok
    return sid


@pytest.fixture
async def resumable(claude_bin: str, claude_env: dict[str, str], mock_api: MockServer,
                    tmp_path: Path) -> AsyncIterator[tuple[ProcessManager, str, dict[str, str]]]:
    """A manager, a session with one finished turn, and the environment that reaches the stand-in."""
    env = {**claude_env, "ANTHROPIC_BASE_URL": mock_api.url}
    mgr = ProcessManager(claude=claude_bin, subreaper=False)
    try:
        yield mgr, await _with_session(mgr, tmp_path, env), env
    finally:
        await mgr.shutdown()


@pytest.mark.cli_versions
@pytest.mark.parametrize("keepalive", [True, False], ids=["newline-sent", "broken-no-newline"])
async def test_a_standby_outlives_the_stdin_timeout_and_resumes_from_the_latest_turn(
    claude_bin: str, claude_env: dict[str, str], mock_api: MockServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, keepalive: bool,
) -> None:
    if not keepalive:
        monkeypatch.setattr(launch, "STANDBY_KEEPALIVE", b"")
    env = {**claude_env, "ANTHROPIC_BASE_URL": mock_api.url}
    mgr = ProcessManager(claude=claude_bin, subreaper=False)
    other = ProcessManager(claude=claude_bin, subreaper=False)  # writes a turn without touching the standby
    try:
        sid = await _with_session(mgr, tmp_path, env)
        resume = AttemptSpec(prompt="three [[text: three]]", cwd=tmp_path, mode="resume", session_id=sid, env=env,
                             inherit_env=False)
        t0 = time.monotonic()
        assert mgr.prepare_standby(resume)
        pid = mgr._standby[sid].pid
        middle = await other.run(AttemptSpec(prompt="two [[text: two]]", cwd=tmp_path, mode="resume",
                                             session_id=sid, env=env, inherit_env=False))
        assert middle.result_ok
        await asyncio.sleep(max(0.0, 3.6 - (time.monotonic() - t0)))  # past the CLI's 3 s stdin timeout
        out = await mgr.run(resume)
        assert out.result_ok and out.result is not None and out.result.get("result") == "three"
        turns = _user_turns(claude_env["HOME"], sid)
        three = next(e for e in turns if e["type"] == "user" and "three" in _text(e))
        parent = next(e for e in turns if e["uuid"] == three["parentUuid"])
        assert _text(parent) == "two"  # the turn written after the standby booted was not lost
        if keepalive:
            assert out.pid == pid and mgr.standby_stats["adopted"] == 1
        else:  # the CLI gave up on its silent stdin: found dead, the attempt started as usual
            assert out.pid != pid and mgr.standby_stats["adopted"] == 0 and mgr.standby_stats["died"] == 1
        assert _gone(pid) or out.pid == pid
    finally:
        await mgr.shutdown()
        await other.shutdown()


async def test_a_standby_that_differs_is_ended_and_the_attempt_starts_as_usual(
    resumable: tuple[ProcessManager, str, dict[str, str]], tmp_path: Path
) -> None:
    mgr, sid, env = resumable
    base = AttemptSpec(prompt="[[text: two]]", cwd=tmp_path, mode="resume", session_id=sid,
                       env={**env, "RESURGO_TEST_MARK": "a"}, inherit_env=False)
    assert mgr.prepare_standby(base)
    pre = mgr._standby[sid]
    tmp = pre.tmpdir
    out = await mgr.run(AttemptSpec(prompt="[[text: two]]", cwd=tmp_path, mode="resume", session_id=sid,
                                    env={**env, "RESURGO_TEST_MARK": "b"}, inherit_env=False))
    assert out.result_ok and out.result is not None and out.result.get("result") == "two"
    assert out.pid != pre.pid and mgr.standby_stats["adopted"] == 0 and mgr.standby_stats["discarded"] == 1
    for _ in range(50):  # ended and reaped off the loop
        if _gone(pre.pid) and (tmp is None or not os.path.exists(tmp)):
            break
        await asyncio.sleep(0.1)
    assert _gone(pre.pid)
    assert tmp is not None and not os.path.exists(tmp)


async def test_standbys_that_keep_dying_unadopted_are_turned_off(
    resumable: tuple[ProcessManager, str, dict[str, str]], tmp_path: Path
) -> None:
    mgr, sid, env = resumable
    spec = AttemptSpec(prompt="[[text: again]]", cwd=tmp_path, mode="resume", session_id=sid, env=env,
                       inherit_env=False)
    for i in range(3):
        assert mgr.prepare_standby(spec), i
        pre = mgr._standby[sid]
        os.kill(pre.pid, signal.SIGKILL)  # what a CLI that does not wait on stdin amounts to
        pre.popen.wait(5)
        out = await mgr.run(spec)
        assert out.result_ok and out.pid != pre.pid
    assert mgr.standby_stats["died"] == 3 and mgr.standby_broken is not None
    assert not mgr.prepare_standby(spec) and mgr.standbys == 0


def _config(tmp_path: Path, claude_bin: str, env: dict[str, str], **kw: Any) -> SupervisorConfig:
    base: dict[str, Any] = {
        "claude": claude_bin, "store": str(tmp_path / "store.db"), "env": env, "stall_timeout": 20.0,
        "kill_grace": 1.0, "backoff_base": 0.1, "backoff_cap": 1.0, "cli_max_retries": 0,
        "claude_args": ("--allowedTools", "Bash"), "health_interval": 1.0,
    }
    base.update(kw)
    return SupervisorConfig(**base)


@pytest.mark.parametrize("standby", [8, 0], ids=["standby-on", "broken-standby-off"])
async def test_after_a_resume_the_next_kill_is_resumed_by_a_standby(
    claude_bin: str, claude_env: dict[str, str], mock_api: MockServer, tmp_path: Path, standby: int
) -> None:
    """Calm weather keeps no standby; once a session was resumed, the job's next kill adopts one."""
    work = tmp_path / "work"
    work.mkdir()
    env = {**claude_env, "ANTHROPIC_BASE_URL": mock_api.url}
    async with Supervisor(_config(tmp_path, claude_bin, env, standby=standby)) as sup:
        h = sup.submit("steps [[bash: sleep 1; echo one]] [[bash: sleep 1; echo two]] "
                       "[[bash: sleep 1; echo three]] [[text: all done]]", cwd=work)
        kills: list[int] = []
        standby_pids: list[int] = []
        seen_before_first_kill: list[int] = []

        async def watch() -> None:
            async for ev in h.events():
                if not isinstance(ev, ToolStarted) or len(kills) >= 2:
                    continue
                if kills:  # the second kill: give the standby the time to be started
                    for _ in range(40 if standby else 0):
                        if sup.manager.standbys:
                            break
                        await asyncio.sleep(0.1)
                    standby_pids.extend(p.pid for p in sup.manager._standby.values())
                else:
                    seen_before_first_kill.append(sup.manager.standby_stats["started"])
                await asyncio.sleep(0.3)
                active = sup.manager.active
                if active and active[0].pid is not None:
                    kills.append(active[0].pid)
                    os.kill(active[0].pid, signal.SIGKILL)

        watcher = asyncio.create_task(watch())
        res = await asyncio.wait_for(h.result(), 90)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        assert len(kills) == 2, kills
        assert res.ok and res.state is JobState.SUCCEEDED and res.result_text == "all done", res
        attempts = sup.jobs.attempts(res.job_id)
        assert [a.kind for a in attempts] == ["start", "resume", "resume"]
        assert seen_before_first_kill == [0]  # no resume yet: no standby (calm weather costs nothing)
        if standby:
            assert len(standby_pids) == 1 and attempts[2].pid == standby_pids[0]
            assert sup.manager.standby_stats["adopted"] == 1
        else:
            assert standby_pids == [] and sup.manager.standby_stats["started"] == 0
        assert attempts[0].session_id == attempts[2].session_id == res.session_id
    # the supervisor is gone: so is every CLI it started, standbys included
    await asyncio.sleep(0.2)
    for pid in (*kills, *standby_pids):
        assert _gone(pid)
    left = [p for p in psutil.process_iter(["pid", "cwd"]) if (p.info["cwd"] or "").startswith(str(work))]
    assert left == []


def test_the_chaos_killer_aims_at_recorded_attempts_only(tmp_path: Path) -> None:
    """A standby is the supervisor's child too, but it runs no job: a kill meant for a run must not hit it."""
    from resurgo.chaos._runner import ChaosRunner
    from resurgo.store import Store
    from resurgo.supervise._jobstore import JobStore

    worker = subprocess.Popen(["bash", "-c", "sleep 30 & sleep 30 & wait"], start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        kids: list[int] = []
        while time.monotonic() < deadline and len(kids) < 2:
            kids = sorted(p.pid for p in psutil.Process(worker.pid).children())
            time.sleep(0.02)
        assert len(kids) == 2
        store = Store(str(tmp_path / "store.db"))
        try:
            JobStore(store).record_process(pid=kids[0], start_time=psutil.Process(kids[0]).create_time(),
                                           pgid=None)
        finally:
            store.close()
        runner = ChaosRunner()
        runner.root = tmp_path
        runner._worker = worker
        assert runner._cli_pids() == [kids[0]]  # the unrecorded child (a standby) is not a target
        (tmp_path / "store.db").unlink()
        for suffix in ("-wal", "-shm"):
            Path(str(tmp_path / "store.db") + suffix).unlink(missing_ok=True)
        assert sorted(runner._cli_pids()) == kids  # no store to tell runs apart: every child, as before
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(5)


def test_the_chaos_killer_filter_reads_the_store_read_only(tmp_path: Path) -> None:
    """The runner's query never creates or writes a store (it reads the supervisor's, which may be busy)."""
    from resurgo.chaos._runner import ChaosRunner

    runner = ChaosRunner()
    runner.root = tmp_path
    assert runner._attempt_pids() is None
    assert not (tmp_path / "store.db").exists()
    con = sqlite3.connect(tmp_path / "store.db")
    con.execute("CREATE TABLE processes (pid INTEGER, ended_at REAL)")
    con.execute("INSERT INTO processes VALUES (11, NULL), (12, 5.0)")
    con.commit()
    con.close()
    assert runner._attempt_pids() == {11}
