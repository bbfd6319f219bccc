"""What a finished job leaves behind in a long-lived supervisor (issue 15, item 3).

A supervisor that runs thousands of jobs (``resurgo batch`` of a big file, a ``resurgo worker``
for weeks) must hold per-job state only while a job runs.  Measured here with a real no-op CLI
(a shell script printing ``init`` and ``result``): while a batch runs, how many job tasks and
job handles (each with the events it kept) are alive at once, and what the supervisor's maps
hold afterwards.  ``test_the_retention_check_fails_with_the_leak_back`` runs the same check on
the old ``run_many`` (one task per job, created up front, each kept until the batch ended),
which it must reject.
"""

from __future__ import annotations

import asyncio
import gc
import os
import stat
import tracemalloc
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from resurgo.supervise import JobSpec, Supervisor, SupervisorConfig
from resurgo.supervise import _supervisor as supmod
from resurgo.supervise._events import JobResult

NOOP_CLI = """#!/bin/sh
sid=""
while [ $# -gt 0 ]; do case "$1" in --session-id|--resume) sid="$2"; shift;; esac; shift; done
echo '{"type":"system","subtype":"init","session_id":"'$sid'","tools":[]}'
echo '{"type":"result","subtype":"success","is_error":false,"result":"ok","session_id":"'$sid'","num_turns":1}'
"""

CONCURRENCY = 8


def _noop_cli(tmp_path: Path) -> str:
    p = tmp_path / "claude"
    p.write_text(NOOP_CLI)
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return str(p)


class _Watch:
    """Counts live job handles and job tasks while a batch runs (sampled every few ms)."""

    def __init__(self) -> None:
        self.handles: weakref.WeakSet[Any] = weakref.WeakSet()
        self.max_handles = 0
        self.max_tasks = 0

    async def sample(self) -> None:
        while True:
            self.max_handles = max(self.max_handles, len(self.handles))
            jobs = [t for t in asyncio.all_tasks() if t.get_name().startswith("resurgo-job-")]
            self.max_tasks = max(self.max_tasks, len(jobs))
            await asyncio.sleep(0.005)


async def _batch(
    tmp_path: Path,
    url: str,
    n: int,
    monkeypatch: pytest.MonkeyPatch,
    run_many: Callable[..., Awaitable[list[JobResult]]] | None = None,
    trace: bool = True,
) -> tuple[_Watch, dict[str, int], float]:
    watch = _Watch()
    real_init = supmod.JobHandle.__init__

    def init(self: Any, *a: Any, **kw: Any) -> None:
        real_init(self, *a, **kw)
        watch.handles.add(self)

    monkeypatch.setattr(supmod.JobHandle, "__init__", init)
    cfg = SupervisorConfig(
        claude=_noop_cli(tmp_path),
        store=str(tmp_path / "s.db"),
        concurrency=CONCURRENCY,
        stall_timeout=20,
        env={"ANTHROPIC_BASE_URL": url},
    )
    async with Supervisor(config=cfg, environ={**os.environ, "HOME": str(tmp_path)}) as sup:
        go = run_many or Supervisor.run_many
        warm = await go(sup, [JobSpec(f"warm {i}", cwd=tmp_path) for i in range(20)])
        assert all(r.ok for r in warm)
        del warm
        gc.collect()
        if trace:
            tracemalloc.start()
            before = tracemalloc.take_snapshot()
        sampler = asyncio.ensure_future(watch.sample())
        try:
            results = await go(sup, [JobSpec(f"job {i}", cwd=tmp_path) for i in range(n)])
        finally:
            sampler.cancel()
        assert len(results) == n and all(r.ok for r in results)
        del results
        gc.collect()
        grown = 0
        if trace:
            after = tracemalloc.take_snapshot()
            tracemalloc.stop()
            grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
        maps = {
            "handles": len(sup._handles),
            "tasks": len(sup._tasks),
            "orchestrator runs": len(sup._orch._runs),
            "secrets": len(sup.jobs._secrets),
            "active attempts": len(sup.manager.active),
        }
    return watch, maps, grown / n


async def test_finished_jobs_leave_nothing_behind(
    tmp_path: Path, mock_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch, maps, _ = await _batch(tmp_path, mock_api.url, 200, monkeypatch, trace=False)
    # while the batch ran: only the running jobs had a task and a handle
    assert watch.max_tasks <= CONCURRENCY, watch.max_tasks
    assert watch.max_handles <= CONCURRENCY + 2, watch.max_handles
    # afterwards: nothing per job in the supervisor's maps
    assert maps == {"handles": 0, "tasks": 0, "orchestrator runs": 0, "secrets": 0, "active attempts": 0}


@pytest.mark.slow
async def test_memory_retained_per_finished_job_is_bounded(
    tmp_path: Path, mock_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tracemalloc over 300 jobs (slow: tracing slows the supervisor about 5x), results dropped."""
    _, _, per_job = await _batch(tmp_path, mock_api.url, 300, monkeypatch)
    assert per_job < 600, f"{per_job:.0f} bytes retained per finished job"


async def _old_run_many(self: Supervisor, specs: Any, *, concurrency: int | None = None) -> list[JobResult]:
    """``Supervisor.run_many`` before issue 15: a task per job up front, kept to the batch's end."""
    n = concurrency or self.config.concurrency
    await self.start()
    sem = asyncio.Semaphore(n)
    ids = [self._create(s) for s in specs]
    waits = [asyncio.ensure_future(self._launch(jid, sem=sem).result()) for jid in ids]
    return list(await asyncio.gather(*waits))


async def test_the_retention_check_fails_with_the_leak_back(
    tmp_path: Path, mock_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch, _maps, _per_job = await _batch(tmp_path, mock_api.url, 120, monkeypatch, run_many=_old_run_many, trace=False)
    # the old shape held every job's task and handle at once: the checks above reject it
    assert watch.max_tasks > CONCURRENCY and watch.max_handles > 100
