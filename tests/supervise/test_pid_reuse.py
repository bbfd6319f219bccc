"""Pids, session ids and group ids are matched with start times everywhere (issue 15, item 8)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import psutil
import pytest
from tests.cli._helpers import cli_env, resurgo

from resurgo._procs import TreeTracker, create_time, end_tree
from resurgo.store import Store
from resurgo.supervise._jobstore import JobState, JobStore


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    p = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        yield p
    finally:
        p.kill()
        p.wait()


def _alive(p: subprocess.Popen[bytes]) -> bool:
    return p.poll() is None


async def test_a_remembered_session_now_led_by_another_process_is_left_alone(
        sleeper: subprocess.Popen[bytes]) -> None:
    ct = create_time(sleeper.pid)
    assert ct is not None
    # we remember session <pid> from a leader that started 100 s before this one: the number was reused
    rep = await end_tree({sleeper.pid}, sid_starts={sleeper.pid: ct - 100}, grace=0.2, not_before=ct - 200)
    assert _alive(sleeper) and rep.terminated == () and rep.killed == ()
    # the same session, remembered with its leader's true start time, is ended
    rep = await end_tree({sleeper.pid}, sid_starts={sleeper.pid: ct}, grace=0.5, not_before=ct - 200)
    sleeper.wait(timeout=5)
    assert sleeper.pid in rep.terminated + rep.killed


async def test_extras_are_checked_by_start_time_in_every_pass(sleeper: subprocess.Popen[bytes]) -> None:
    ct = create_time(sleeper.pid)
    assert ct is not None
    rep = await end_tree((), extra={sleeper.pid: ct - 100}, grace=0.2)  # a pid recorded for another program
    assert _alive(sleeper) and rep.terminated == () and rep.killed == ()


def test_tree_tracker_remembers_start_times_of_sessions() -> None:
    p = subprocess.Popen(["sh", "-c", "setsid sleep 30 & wait"], start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(  # until the child has left for its own session
                c.pid == os.getsid(c.pid) for c in psutil.Process(p.pid).children()):
            time.sleep(0.02)
        t = TreeTracker(p.pid)
        t.sample()
        starts = t.sid_starts()
        assert t.sids and set(starts) == t.sids
        assert all(abs(create_time(s) - c) < 0.05 for s, c in starts.items())  # type: ignore[operator]
        assert t.alive_map() and all(create_time(pid) == c for pid, c in t.alive_map().items())
    finally:
        for c in psutil.Process(p.pid).children(recursive=True):
            c.kill()
        p.kill()
        p.wait()


async def test_the_cleaner_hands_end_tree_start_times(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      sleeper: subprocess.Popen[bytes]) -> None:
    """Both sweeps pass {pid: start time} (never bare pids), so their grace loops recheck identities."""
    from resurgo.supervise import _cleanup

    calls: list[dict[str, Any]] = []

    async def spy(sids: Any, **kw: Any) -> Any:
        calls.append(kw)
        return await real(sids, **kw)

    real = _cleanup.end_tree
    monkeypatch.setattr(_cleanup, "end_tree", spy)
    store = Store(tmp_path / "s.db")
    try:
        js = JobStore(store, owner="deadhost:1:1")
        ct = create_time(sleeper.pid)
        assert ct is not None
        js.record_process(pid=sleeper.pid, start_time=ct, pgid=sleeper.pid)
        store.execute("UPDATE processes SET owner_pid=? WHERE pid=?", (2**22 + 7, sleeper.pid))  # a dead owner
        cleaner = _cleanup.ResourceCleaner(JobStore(store), grace=0.5)
        await cleaner.end_recorded_processes(_cleanup.CleanupReport())
    finally:
        store.close()
    assert calls
    for kw in calls:
        assert isinstance(kw["extra"], Mapping) and kw["extra"] == {sleeper.pid: ct}
        assert kw["sid_starts"] == {sleeper.pid: ct}
    sleeper.wait(timeout=5)


@pytest.mark.integration
def test_cancel_signals_a_group_only_while_the_recorded_process_is_in_it(tmp_path: Path) -> None:
    victim = subprocess.Popen(["sleep", "60"], start_new_session=True)  # another program's process group
    job_proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        db = tmp_path / "s.db"
        store = Store(db)
        js = JobStore(store, owner="deadhost:1:1")
        rec = js.create_job("long", cwd=str(tmp_path), name="long")
        js.set_state(rec.id, JobState.RUNNING, claim=True)
        ct = create_time(job_proc.pid)
        assert ct is not None
        # recorded with a group id that is not (or no longer) its group: the victim's
        js.record_process(pid=job_proc.pid, start_time=ct, pgid=victim.pid, job_id=rec.id)
        store.close()
        r = resurgo(["cancel", rec.id, "--store", str(db)], cwd=tmp_path, env=cli_env(tmp_path))
        assert r.returncode == 0, r.stdout + r.stderr
        job_proc.wait(timeout=5)  # the recorded process itself got SIGTERM
        assert job_proc.returncode == -signal.SIGTERM
        time.sleep(0.2)
        assert victim.poll() is None, "the unrelated process group was signalled"
    finally:
        for p in (victim, job_proc):
            p.kill()
            p.wait()
