"""Soak: does a long-lived supervisor stay flat over thousands of jobs?  (issue 15, item 3)

A stand-in CLI that does nothing (a shell script printing ``init`` and ``result``) makes the
supervisor's own per-job cost the whole cost.  Two measurements, each in a fresh process:

1. **long-lived** -- one ``Supervisor`` runs ``--jobs`` jobs (default 10,000) in rounds of
   ``--round`` through ``run_many`` at ``--concurrency`` (default 32), results dropped, as a
   ``resurgo worker`` would: RSS and open file descriptors after each round; the goal is RSS
   flat within 10% from 1,000 jobs to the end, and fds flat.  Throughput in jobs/s.
2. **one batch** -- one ``run_many`` of ``--batch`` jobs (what ``resurgo batch FILE`` does),
   with the current ``run_many`` and with the one before issue 15 (a task per job created up
   front, every task and handle kept until the batch ended): peak RSS per job, same run.

The Messages-API stand-in (``resurgo mock-api``) runs in its own process so that health checks
have an endpoint.  The machine is shared: throughput is noisy; RSS is not.
Results: ``bench/results/soak.json``.  Run: ``python bench/bench_soak.py [--jobs 10000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import stat
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

NOOP_CLI = """#!/bin/sh
sid=""
while [ $# -gt 0 ]; do case "$1" in --session-id|--resume) sid="$2"; shift;; esac; shift; done
echo '{"type":"system","subtype":"init","session_id":"'$sid'","tools":[]}'
echo '{"type":"result","subtype":"success","is_error":false,"result":"ok","session_id":"'$sid'","num_turns":1}'
"""


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _old_run_many(self: Any, specs: Any, *, concurrency: int | None = None) -> list[Any]:
    """``Supervisor.run_many`` before issue 15 (the anchor of measurement 2)."""
    n = concurrency or self.config.concurrency
    await self.start()
    sem = asyncio.Semaphore(n)
    ids = [self._create(s) for s in specs]
    waits = [asyncio.ensure_future(self._launch(jid, sem=sem).result()) for jid in ids]
    return list(await asyncio.gather(*waits))


async def child(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    from resurgo.supervise import JobSpec, Supervisor, SupervisorConfig

    work = Path(args.dir)
    cfg = SupervisorConfig(
        claude=str(work / "claude"),
        store=str(work / f"{mode}.db"),
        concurrency=args.concurrency,
        stall_timeout=60,
        env={"ANTHROPIC_BASE_URL": args.url},
    )
    out: dict[str, Any] = {"mode": mode}
    async with Supervisor(config=cfg, environ={**os.environ, "HOME": str(work)}) as sup:
        if mode == "long":
            samples = []
            done = 0
            t0 = time.monotonic()
            while done < args.jobs:
                n = min(args.round, args.jobs - done)
                res = await sup.run_many([JobSpec(f"job {done + i}", cwd=str(work)) for i in range(n)])
                failed = sum(1 for r in res if not r.ok)
                del res
                done += n
                samples.append(
                    {
                        "jobs": done,
                        "rss_mb": round(_rss_mb(), 2),
                        "fds": _fds(),
                        "threads": len(os.listdir("/proc/self/task")),
                        "tasks": len(asyncio.all_tasks()),
                        "failed": failed,
                        "elapsed_s": round(time.monotonic() - t0, 1),
                    }
                )
                print(json.dumps(samples[-1]), file=sys.stderr, flush=True)
            out["samples"] = samples
            out["jobs_per_s"] = round(args.jobs / (time.monotonic() - t0), 1)
            out["maps_after"] = {
                "handles": len(sup._handles),
                "tasks": len(sup._tasks),
                "orchestrator_runs": len(sup._orch._runs),
                "active_attempts": len(sup.manager.active),
            }
        else:
            go = _old_run_many if mode == "batch_before" else type(sup).run_many
            warm = await go(sup, [JobSpec(f"warm {i}", cwd=str(work)) for i in range(32)])
            del warm
            base_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            base = _rss_mb()
            t0 = time.monotonic()
            res = await go(sup, [JobSpec(f"job {i}", cwd=str(work)) for i in range(args.batch)])
            dt = time.monotonic() - t0
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            out.update(
                {
                    "jobs": args.batch,
                    "failed": sum(1 for r in res if not r.ok),
                    "rss_before_mb": round(base, 1),
                    "peak_rss_mb": round(peak, 1),
                    "peak_growth_kb_per_job": round((peak - max(base, base_peak)) * 1024 / args.batch, 2),
                    "jobs_per_s": round(args.batch / dt, 1),
                }
            )
    return out


def _run_child(mode: str, args: argparse.Namespace, work: Path, url: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", mode, "--dir", str(work), "--url", url]
    cmd += ["--jobs", str(args.jobs), "--round", str(args.round), "--batch", str(args.batch)]
    cmd += ["--concurrency", str(args.concurrency)]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False, timeout=3600)
    if p.returncode != 0:
        raise RuntimeError(f"{mode} run failed with exit {p.returncode}")
    return dict(json.loads(p.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--round", type=int, default=250)
    ap.add_argument("--batch", type=int, default=2_000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--skip-batch", action="store_true", help="only the long-lived run")
    ap.add_argument("--out", default=str(ROOT / "bench/results/soak.json"))
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--dir", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--url", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(asyncio.run(child(args.child, args))))
        return 0

    mock = subprocess.Popen(
        [sys.executable, "-m", "resurgo", "mock-api", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert mock.stdout is not None
        url = mock.stdout.readline().strip().split()[-1]
        with tempfile.TemporaryDirectory(prefix="resurgo-soak-") as d:
            work = Path(d)
            cli = work / "claude"
            cli.write_text(NOOP_CLI)
            cli.chmod(cli.stat().st_mode | stat.S_IXUSR)
            res: dict[str, Any] = {
                "benchmark": "soak",
                "ts": time.time(),
                "versions": {"python": platform.python_version(), "resurgo": version("resurgo")},
                "machine": {"cpu_count": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)},
                "config": {"jobs": args.jobs, "round": args.round, "concurrency": args.concurrency},
                "goal": "RSS flat within 10% from 1,000 jobs to the end; open fds flat",
            }
            print(f"long-lived supervisor: {args.jobs} jobs at concurrency {args.concurrency} ...", flush=True)
            long = _run_child("long", args, work, url)
            s = long["samples"]
            at1k = next(x for x in s if x["jobs"] >= min(1000, args.jobs))
            end = s[-1]
            long["rss_at_1000_mb"] = at1k["rss_mb"]
            long["rss_at_end_mb"] = end["rss_mb"]
            long["rss_growth_1000_to_end"] = round(end["rss_mb"] / at1k["rss_mb"] - 1, 4)
            long["fds_at_1000"], long["fds_at_end"] = at1k["fds"], end["fds"]
            long["flat_within_10pct"] = long["rss_growth_1000_to_end"] <= 0.10
            long["fds_flat"] = end["fds"] <= at1k["fds"]
            long["failed"] = sum(x["failed"] for x in s)
            res["long_lived"] = long
            print(
                f"  RSS {at1k['rss_mb']} MB at {at1k['jobs']} jobs -> {end['rss_mb']} MB at {end['jobs']} "
                f"({long['rss_growth_1000_to_end']:+.1%}); fds {at1k['fds']} -> {end['fds']}; "
                f"{long['jobs_per_s']} jobs/s; failed {long['failed']}",
                flush=True,
            )
            if not args.skip_batch:
                print(f"one run_many of {args.batch} jobs, now and before ...", flush=True)
                after = _run_child("batch_after", args, work, url)
                before = _run_child("batch_before", args, work, url)
                res["one_batch"] = {"after": after, "before": before}
                print(
                    f"  peak RSS growth per job: after {after['peak_growth_kb_per_job']} KB "
                    f"(peak {after['peak_rss_mb']} MB), before {before['peak_growth_kb_per_job']} KB "
                    f"(peak {before['peak_rss_mb']} MB); jobs/s after {after['jobs_per_s']}, "
                    f"before {before['jobs_per_s']}",
                    flush=True,
                )
    finally:
        mock.terminate()
        mock.wait(10)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
