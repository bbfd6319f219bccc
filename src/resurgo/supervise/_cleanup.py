"""Resource cleanup: what a crashed supervisor (or a sloppy run) left behind is found and removed.

At start-up the store is reconciled with reality: jobs that were running under
a supervisor that no longer exists become ``interrupted`` (resumable, not
lost), its stored health rows are deleted, and the processes it had started are ended — matched by pid *and*
start time, so a pid reused by an unrelated program is never killed.  Because
the CLI starts its Bash tool in a session of its own, recorded process groups
are not enough: every process of a run carries ``RESURGO_SUPERVISOR`` in its
environment, and processes whose supervisor is dead are ended too.
Periodically the same sweep catches zombies and leaked temporary folders.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from resurgo._launch import OWNER_ENV
from resurgo._private_dir import private_dir_problems
from resurgo._procs import (
    create_time,
    end_tree,
    env_values,
    our_children,
    proc_ids,
    same_process,
)
from resurgo.clock import SYSTEM_CLOCK, Clock
from resurgo.supervise._health_store import remove_dead_health
from resurgo.supervise._jobstore import JobStore, owner_alive

if TYPE_CHECKING:
    from resurgo.supervise._process import ProcessManager

log = logging.getLogger("resurgo.supervise")


@dataclass(slots=True)
class CleanupReport:
    """What one cleanup pass did (for logs, metrics and tests)."""

    interrupted_jobs: list[str] = field(default_factory=list)
    ended_processes: list[int] = field(default_factory=list)
    stale_records: int = 0
    reaped: list[int] = field(default_factory=list)
    removed_tmp: list[str] = field(default_factory=list)
    left: list[int] = field(default_factory=list)
    stale_health: int = 0  # health rows of dead supervisors removed


def _owner_pid_alive(owner_pid: int, started_at: float) -> bool:
    """Is the recorded owner still the process that started the record?

    The schema keeps only the owner's pid; a live process with that pid that
    was created *after* the record cannot be the owner (the pid was reused).
    """
    try:
        p = psutil.Process(owner_pid)
        return p.create_time() <= started_at + 1.0 and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class ResourceCleaner:
    """Start-up reconciliation and periodic sweeps over the store, the process table and temp folders.

    ``manager`` (when given) tells which processes and temp folders belong to
    attempts running right now in this supervisor; they are never touched.
    ``tmp_max_age`` protects temp folders of attempts that are being set up.
    """

    def __init__(
        self,
        jobs: JobStore,
        *,
        manager: ProcessManager | None = None,
        tmp_root: str | os.PathLike[str] | None = None,
        grace: float = 3.0,
        tmp_max_age: float = 60.0,
        clock: Clock = SYSTEM_CLOCK,
        owner_alive: Callable[[str | None], bool] = owner_alive,
    ) -> None:
        self.jobs = jobs
        self.manager = manager
        self.tmp_root = Path(tmp_root) if tmp_root else (manager.tmp_root if manager is not None else None)
        self.grace = grace
        self.tmp_max_age = tmp_max_age
        self.clock = clock
        self._owner_alive = owner_alive

    async def startup(self) -> CleanupReport:
        """Reconcile after a (possible) crash: interrupt orphaned jobs, end their processes, sweep."""
        rep = CleanupReport()
        rep.interrupted_jobs = self.jobs.interrupt_orphaned_jobs(is_alive=self._owner_alive)
        for jid in rep.interrupted_jobs:
            log.warning("job %s was running under a supervisor that died; marked interrupted", jid)
        try:
            rep.stale_health = remove_dead_health(self.jobs.store, keep=self.jobs.owner, is_alive=self._owner_alive)
        except Exception:  # the health rows are a view; failing to tidy them must not stop recovery
            log.exception("could not remove the health rows of dead supervisors")
        await self._sweep(rep)
        return rep

    async def sweep(self) -> CleanupReport:
        """The periodic part: stray processes, zombies, leaked temp folders."""
        rep = CleanupReport()
        await self._sweep(rep)
        return rep

    async def run(self, interval: float = 60.0) -> None:
        """Sweep every ``interval`` seconds until cancelled."""
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("cleanup sweep failed")
            await self.clock.asleep(interval)

    # -- the parts -----------------------------------------------------------------------------
    async def _sweep(self, rep: CleanupReport) -> None:
        await self.end_recorded_processes(rep)
        await self.end_marked_strays(rep)
        rep.reaped += self.reap_zombies()
        rep.removed_tmp += self.remove_leaked_tmp()

    def _active_pids(self) -> set[int]:
        if self.manager is None:
            return set()
        return {a.pid for a in self.manager.active if a.pid is not None}

    async def end_recorded_processes(self, rep: CleanupReport) -> None:
        """End processes the store says are running whose owner is dead; close stale records.

        All of them at once: a supervisor killed while running N jobs leaves N
        CLIs, and ending them one after another (each given ``grace`` to exit)
        kept the restarted supervisor from resuming any job for up to N graces.
        """
        me = os.getpid()
        left_running = []
        for rec in self.jobs.open_processes():
            alive = same_process(rec.pid, rec.start_time)
            if alive and (rec.owner_pid == me or _owner_pid_alive(rec.owner_pid, rec.started_at)):
                continue  # a live supervisor's run (possibly another manager in this very process)
            if alive:
                log.warning("ending process %d left running by a dead supervisor (job %s)", rec.pid, rec.job_id)
                left_running.append(rec)
            else:
                rep.stale_records += 1
                self.jobs.process_ended(rec.pid, rec.start_time)
        reports = await asyncio.gather(*(
            end_tree(
                {rec.pid},
                extra={rec.pid: rec.start_time},  # rechecked by pid *and* start time while we wait
                leader=None,
                grace=self.grace,
                not_before=rec.start_time,
                sid_starts={rec.pid: rec.start_time},  # its group only while it still leads it
            )
            for rec in left_running
        ))
        for rec, report in zip(left_running, reports, strict=True):
            rep.ended_processes += [p for p in (*report.terminated, *report.killed) if p not in rep.ended_processes]
            rep.left += list(report.left)
            self.jobs.process_ended(rec.pid, rec.start_time)

    async def end_marked_strays(self, rep: CleanupReport) -> None:
        """End processes whose ``RESURGO_SUPERVISOR`` names a supervisor that is no longer alive."""
        cache: dict[str, bool] = {}
        strays: dict[int, float] = {}  # pid -> start time, so the grace loop never signals a reused pid
        for pid, owner in env_values(OWNER_ENV).items():
            if owner == self.jobs.owner:
                continue
            alive = cache.get(owner)
            if alive is None:
                alive = cache[owner] = self._owner_alive(owner)
            if not alive:
                ids = proc_ids(pid)
                ct = create_time(pid)
                if ids is not None and not ids.zombie and ct is not None:
                    strays[pid] = ct
        if not strays:
            return
        log.warning("ending %d process(es) left by dead supervisors: %s", len(strays), sorted(strays))
        report = await end_tree((), extra=strays, grace=self.grace)
        rep.ended_processes += [p for p in (*report.terminated, *report.killed) if p not in rep.ended_processes]
        rep.left += list(report.left)

    def reap_zombies(self) -> list[int]:
        """Reap zombie children of ours that nobody else waits for.

        Only orphans reparented to us by the subreaper qualify: a zombie that
        is not in our own process group (the children our host program starts
        without a new session are, and their owners will wait for them) and is
        not an attempt's CLI (asyncio's child watcher waits for those).
        """
        mypgid = os.getpgid(0)
        watched = self._active_pids()
        reaped: list[int] = []
        for ids in our_children():
            if not ids.zombie or ids.pid in watched or ids.pgid == mypgid:
                continue
            if self.manager is not None and ids.pid in self.manager.leaders:
                continue
            with contextlib.suppress(ChildProcessError):
                pid, _ = os.waitpid(ids.pid, os.WNOHANG)
                if pid:
                    reaped.append(pid)
        return reaped

    def remove_leaked_tmp(self) -> list[str]:
        """Remove per-attempt temp folders whose supervisor is gone (or that no running attempt uses)."""
        root = self.tmp_root
        if root is None or not root.is_dir() or private_dir_problems(root):
            return []  # (a root that is not ours: nothing in it is ours to remove)
        in_use = {a.tmpdir for a in self.manager.active} if self.manager is not None else set()
        in_use |= {a.tmpdir for a in self.manager.pending} if self.manager is not None else set()
        in_use |= getattr(self.manager, "standby_tmpdirs", set())
        now = self.clock.time()
        removed: list[str] = []
        for d in root.iterdir():
            if not d.name.startswith("att-") or not d.is_dir() or str(d) in in_use:
                continue
            try:
                owner_pid = int(d.name.split("-")[1])
                age = now - d.stat().st_mtime
            except (IndexError, ValueError, OSError):
                continue
            if owner_pid == os.getpid():
                stale = self.manager is not None and age >= self.tmp_max_age
            else:
                stale = not psutil.pid_exists(owner_pid) or age >= max(self.tmp_max_age, 24 * 3600)
            if stale:
                shutil.rmtree(d, ignore_errors=True)
                removed.append(str(d))
        return removed


__all__ = ["CleanupReport", "ResourceCleaner"]
