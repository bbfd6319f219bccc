"""Health checks and resource cleanup with real processes and sockets."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from resurgo._procs import TreeKillReport, create_time
from resurgo.store import Store
from resurgo.supervise._cleanup import ResourceCleaner
from resurgo.supervise._health import ComponentHealth, HealthChecker, HealthState, HealthThresholds
from resurgo.supervise._jobstore import JobState, JobStore
from resurgo.supervise._process import OWNER_ENV, Liveness, ProcessManager

from ._helpers import alive, exists, sh


async def test_api_check_reachable_and_refused() -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    changes: list[tuple[str, HealthState]] = []
    hc = HealthChecker(endpoints=[f"http://127.0.0.1:{port}"], on_change=lambda n, o: changes.append((n.name, n.state)))
    try:
        snap = await hc.check_all()
        assert snap[f"api:http://127.0.0.1:{port}"].state is HealthState.HEALTHY
    finally:
        srv.close()
    snap = await hc.check_all()
    c = snap[f"api:http://127.0.0.1:{port}"]
    assert c.state is HealthState.UNHEALTHY and "cannot connect" in c.detail
    assert [s for _, s in changes] == [HealthState.HEALTHY, HealthState.UNHEALTHY]
    assert hc.overall is HealthState.UNHEALTHY
    bad = await hc.check_api("not a url")
    assert bad.state is HealthState.UNHEALTHY


def test_disk_thresholds(tmp_path: Path) -> None:
    ok = HealthChecker(disk_paths=[str(tmp_path)]).check_disk(str(tmp_path))
    assert ok.metrics["free_mb"] > 0
    full = HealthChecker(
        thresholds=HealthThresholds(disk_free_degraded_mb=1e12, disk_free_unhealthy_mb=1e11)
    ).check_disk(str(tmp_path))
    assert full.state is HealthState.UNHEALTHY
    assert HealthChecker().check_disk(str(tmp_path / "missing")).state is HealthState.UNHEALTHY
    with pytest.raises(ValueError):
        HealthThresholds(progress_degraded=0)


async def test_process_health_reports_tree_resources_and_silence(tmp_path: Path) -> None:
    pm = ProcessManager(claude="/bin/true", tmp_root=tmp_path / "t")
    a = await pm.start(
        sh("sleep 100 & sleep 100", tmp_path, liveness=Liveness(stall_timeout=0.4, tick=0.05, grace=0.5))
    )
    hc = HealthChecker(manager=pm)
    await asyncio.sleep(0.25)
    snap = await hc.check_all()
    c: ComponentHealth = snap[f"process:{a.pid}"]
    assert c.state is HealthState.DEGRADED and "no event" in c.detail  # silent for > half the stall timeout
    assert c.metrics["processes"] >= 3 and c.metrics["rss_mb"] > 0 and c.metrics["open_files"] > 0
    out = await a.wait()
    assert out.killed_by == "stall_watchdog"
    snap = await hc.check_all()
    assert f"process:{a.pid}" not in snap  # finished runs are forgotten, not unhealthy


async def test_a_process_that_ends_while_it_is_measured_fails_no_health_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tool's child exiting between two psutil reads is ordinary; the round must not fail on it.

    (``bench_supervisor.py`` logged "health check round failed" with ``NoSuchProcess``
    from the first ``cpu_percent`` of a process that had just exited.)
    """
    import psutil

    pm = ProcessManager(claude="/bin/true", tmp_root=tmp_path / "t")
    a = await pm.start(sh("sleep 100", tmp_path, liveness=Liveness(stall_timeout=30, tick=0.05, grace=0.5)))
    hc = HealthChecker(manager=pm)
    await asyncio.sleep(0.25)

    def gone(self: psutil.Process, interval: float | None = None) -> float:
        raise psutil.NoSuchProcess(self.pid)

    monkeypatch.setattr(psutil.Process, "cpu_percent", gone)
    try:
        snap = await hc.check_all()  # raised NoSuchProcess before
        assert f"process:{a.pid}" in snap
    finally:
        monkeypatch.undo()
        await a.stop("user", "test over")
        await a.wait()


async def test_startup_ends_processes_of_a_dead_supervisor_and_interrupts_its_jobs(tmp_path: Path) -> None:
    jobs = JobStore(Store(tmp_path / "r.db"))
    # a "previous supervisor": a process that has already exited
    ghost = subprocess.Popen(["true"])
    ghost.wait()
    dead_owner = f"{socket.gethostname()}:{ghost.pid}:{int(time.time()) - 5}"
    job = jobs.create_job("x", cwd=tmp_path)
    jobs.set_state(job.id, JobState.RUNNING)
    jobs.store.execute("UPDATE jobs SET owner=? WHERE id=?", (dead_owner, job.id))
    # its CLI (own session) and a Bash-tool-like grandchild in yet another session, both still running
    env = {**os.environ, OWNER_ENV: dead_owner}
    cli = subprocess.Popen(["sleep", "100"], start_new_session=True, env=env)
    tool = subprocess.Popen(["setsid", "sleep", "100"], env=env)
    try:
        ct = create_time(cli.pid)
        assert ct is not None
        jobs.store.execute(
            "INSERT INTO processes(pid, start_time, pgid, job_id, owner_pid, started_at) VALUES(?,?,?,?,?,?)",
            (cli.pid, ct, cli.pid, job.id, ghost.pid, time.time() - 5),
        )
        # a stale record: same pid recorded with another start time must NOT be killed
        bystander = subprocess.Popen(["sleep", "100"])
        jobs.store.execute(
            "INSERT INTO processes(pid, start_time, pgid, job_id, owner_pid, started_at) VALUES(?,?,?,?,?,?)",
            (bystander.pid, 12345.0, bystander.pid, job.id, ghost.pid, time.time() - 5),
        )
        leaked = tmp_path / "tmp" / f"att-{ghost.pid}-abc"
        leaked.mkdir(parents=True)
        (leaked / "claude-0").write_text("x")
        cleaner = ResourceCleaner(jobs, tmp_root=tmp_path / "tmp", grace=1.0)
        rep = await cleaner.startup()
        assert rep.interrupted_jobs == [job.id]
        assert jobs.require(job.id).state is JobState.INTERRUPTED
        assert cli.wait(timeout=5) is not None and tool.wait(timeout=5) is not None
        assert cli.pid in rep.ended_processes
        assert rep.stale_records == 1 and alive(bystander.pid)
        assert jobs.open_processes() == []
        assert str(leaked) in rep.removed_tmp and not leaked.exists()
    finally:
        for p in (cli, tool):
            if p.poll() is None:
                p.kill()
                p.wait()
        bystander.kill()
        bystander.wait()


async def test_reap_zombies_reaps_reparented_orphans_but_not_our_own_children(tmp_path: Path) -> None:
    pm = ProcessManager(claude="/bin/true", tmp_root=tmp_path / "t")
    assert pm.subreaper
    # bash (in its own session) starts a short-lived grandchild and exits: the grandchild is reparented to us
    r, w = os.pipe()
    p = subprocess.Popen(["bash", "-c", "sleep 0.3 & echo $!"], stdout=w, start_new_session=True)
    os.close(w)
    p.wait()
    orphan = int(os.read(r, 100).decode())
    os.close(r)
    own = subprocess.Popen(["true"])  # our own child, same group: its Popen must get its status
    await asyncio.sleep(0.6)
    assert exists(orphan)  # a zombie, parented to us
    cleaner = ResourceCleaner(JobStore(Store(":memory:")), manager=pm)
    assert orphan in cleaner.reap_zombies()
    assert not exists(orphan)
    assert own.wait(timeout=2) == 0  # not stolen


async def test_a_dead_supervisors_clis_are_ended_all_at_once_not_one_grace_after_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A supervisor killed while running N jobs leaves N CLIs; each may take the whole grace to end.
    Ending them one after another kept the restarted supervisor from resuming any job for N graces:
    every one of them must be being ended at the same time."""
    from resurgo.supervise import _cleanup

    jobs = JobStore(Store(tmp_path / "r.db"))
    ghost = subprocess.Popen(["true"])
    ghost.wait()
    clis = [subprocess.Popen(["sleep", "100"], start_new_session=True) for _ in range(3)]
    in_flight: set[int] = set()
    most = 0
    release = asyncio.Event()

    async def fake_end_tree(sids: Any, *, extra: Any, **kw: Any) -> Any:
        nonlocal most
        (pid,) = sids
        in_flight.add(pid)
        most = max(most, len(in_flight))
        if len(in_flight) == len(clis):
            release.set()
        try:
            await asyncio.wait_for(release.wait(), 2.0)  # sequential calls would never get here together
        except TimeoutError:
            pass
        for p in clis:
            if p.pid == pid:
                p.kill()
                p.wait()
        in_flight.discard(pid)
        return TreeKillReport(killed=(pid,))

    monkeypatch.setattr(_cleanup, "end_tree", fake_end_tree)
    try:
        for p in clis:
            ct = create_time(p.pid)
            assert ct is not None
            jobs.store.execute(
                "INSERT INTO processes(pid, start_time, pgid, job_id, owner_pid, started_at) VALUES(?,?,?,?,?,?)",
                (p.pid, ct, p.pid, None, ghost.pid, time.time() - 5),
            )
        rep = _cleanup.CleanupReport()
        await ResourceCleaner(jobs, tmp_root=tmp_path / "tmp", grace=1.0).end_recorded_processes(rep)
        assert most == len(clis)
        assert sorted(rep.ended_processes) == sorted(p.pid for p in clis)
        assert jobs.open_processes() == []
    finally:
        for p in clis:
            if p.poll() is None:
                p.kill()
                p.wait()
