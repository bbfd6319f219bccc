"""The long chaos run: the seed's targets and resurgo's higher bar, with the real Claude Code CLI.

Defaults: 5 minutes of faults, 60 jobs of 8 Bash steps (the batch lasts about as long), concurrency 6, a kill
every ~3 s, a 20 % API fault rate, network faults, one burst, one 529 storm,
and the supervisor itself SIGKILLed and restarted twice (``--no-kill-supervisor``
to leave it alone).  Prints the report and saves ``bench/results/chaos.json``.

Exit status: 0 when the seed's targets AND resurgo's bar (0 lost jobs, 0 leaked
processes and temp files, automatic recovery >= 99 %, availability >= 99.9 %)
are met, 1 otherwise.  There are no anchors to compare against here: no other
library supervises the Claude Code CLI; the numbers are the result.

Run: ``python bench/bench_chaos.py [--duration 300] [--jobs 60] [--concurrency 6] [--seed 1]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rich.console import Console

from resurgo.chaos import render_report
from resurgo.chaos._runner import ChaosConfig, ChaosRunner

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=300.0)
    ap.add_argument("--jobs", type=int, default=60)
    ap.add_argument("--concurrency", type=int, default=6)
    ap.add_argument("--kill-every", type=float, default=3.0)
    ap.add_argument("--fault-rate", type=float, default=0.2)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-kill-supervisor", action="store_true")
    ap.add_argument("--pressure", action="store_true", help="add CPU/memory pressure for a quarter of the run")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "chaos.json")
    a = ap.parse_args(argv)
    cfg = ChaosConfig(
        duration=a.duration, jobs=a.jobs, concurrency=a.concurrency, kill_every=a.kill_every,
        fault_rate=a.fault_rate, steps=a.steps, seed=a.seed, kill_supervisor=not a.no_kill_supervisor,
        pressure=a.pressure,
    )
    console = Console()
    t0 = time.monotonic()
    report = ChaosRunner(cfg, progress=lambda s: console.print(s, highlight=False)).run()
    wall = time.monotonic() - t0
    report.save(a.out)
    console.print(render_report(report))
    att = report.attribution
    console.print(f"wall time {wall:.0f} s; faults by cause: {json.dumps(att.get('causes'))}")
    console.print(f"classification (truth -> verdict): {json.dumps(att.get('confusion'))}")
    console.print(f"breaker, crossing -> first rejected job call: {json.dumps(att.get('breaker_job_reaction'))}")
    for line in report.check_lines():
        console.print(line, highlight=False, markup=False)
    console.print(f"saved {a.out}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
