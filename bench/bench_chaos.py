"""The long chaos run: the seed's targets and resurgo's higher bar, with the real Claude Code CLI.

Defaults (the profile of every saved run): 5 minutes of faults, 60 jobs of 8 Bash steps, concurrency 6, a
kill every ~3 s, a 20 % API fault rate, network faults, one burst, one 529 storm, and the supervisor itself
SIGKILLed and restarted twice (``--no-kill-supervisor`` to leave it alone).  Prints the report, a before/after
table of every figure against the previously saved result, and saves ``bench/results/chaos.json`` (the
report, the versions of resurgo, Python and the CLI, the machine's load, and the before/after table).

Exit status: 0 when the seed's targets AND resurgo's bar (0 lost jobs, 0 leaked processes and temp files,
automatic recovery >= 99 %, availability >= 99.9 %, job-level breaker reaction < 100 ms) are met, 1
otherwise; issue 14's recovery-speed goals are reported beside them.  There are no anchors to compare
against: no other library supervises the Claude Code CLI; the numbers are the result, and timings depend on
the machine's load (recorded with them).

Run: ``python bench/bench_chaos.py [--duration 300] [--jobs 60] [--concurrency 6] [--seed 1]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import resurgo
from resurgo.chaos import render_report
from resurgo.chaos._config import ChaosConfig, find_claude_cli
from resurgo.chaos._runner import ChaosRunner

HERE = Path(__file__).resolve().parent

#: (label, key in the report, unit) of every figure of the before/after table.
FIGURES: tuple[tuple[str, str, str], ...] = (
    ("availability (job success ratio)", "availability", "ratio"),
    ("availability (time)", "availability_time", "ratio"),
    ("availability (time) excl. imposed waits", "availability_time_excl_imposed", "ratio"),
    ("automatic recovery rate", "auto_recovery_rate", "ratio"),
    ("recovery p50", "recovery_p50", "s"),
    ("recovery p95", "recovery_p95", "s"),
    ("recovery max", "recovery_max", "s"),
    ("MTTR", "mttr", "s"),
    ("recovery excl. imposed waits p50", "recovery_excl_imposed_p50", "s"),
    ("recovery excl. imposed waits p95", "recovery_excl_imposed_p95", "s"),
    ("MTBF (job-s per failure)", "mtbf", "s"),
    ("breaker reaction max", "breaker_reaction_max", "s"),
    ("false positive rate", "false_positive_rate", "ratio"),
    ("classification accuracy", "classification_accuracy", "ratio"),
    ("incidents", "incidents", "n"),
    ("jobs lost", "jobs_lost", "n"),
    ("duration", "duration", "s"),
)

#: Where a figure's definition changed between the saved run and this code (so the rows are not misread).
DEFINITION_NOTES = {
    "breaker_reaction_max": "before: a probe inside the breaker's own listener; after: the first job call refused",
    "false_positive_rate": "before: any fault window + 8 s grace; after: per job and attempt, no grace",
    "auto_recovery_rate": "before: recoverable = the classifier's verdict; after: = the injected fault",
    "classification_accuracy": "before: network faults attributed by time; after: per job route",
}


def versions(claude: str) -> dict[str, str]:
    try:
        cli = subprocess.run([claude, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        cli = f"unknown ({e})"
    return {"resurgo": resurgo.__version__, "python": platform.python_version(), "claude_cli": cli,
            "platform": platform.platform()}


def load() -> dict[str, Any]:
    try:
        la = os.getloadavg()
    except OSError:
        la = (float("nan"),) * 3
    return {"cpu_count": os.cpu_count(), "loadavg_1_5_15": [round(x, 2) for x in la]}


def before_after(before: dict[str, Any] | None, after: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for label, key, unit in FIGURES:
        b = before.get(key) if before else None
        a = after.get(key)
        rows.append({"figure": label, "key": key, "unit": unit, "before": b, "after": a,
                     "note": DEFINITION_NOTES.get(key, "")})
    return rows


def _fmt(v: Any, unit: str) -> str:
    if v is None:
        return "n/a"
    if unit == "ratio":
        return f"{v * 100:.2f}%"
    if unit == "s":
        return f"{v:.3f} s"
    return str(v)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
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
    ap.add_argument("--keep", action="store_true", help="keep the run's folder (store, logs) for a look afterwards")
    ap.add_argument("--before", type=Path, default=None,
                    help="the earlier result to compare with (default: the file --out replaces)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="a supervisor setting for this run, e.g. --set relay=false (an A/B on the same seed)")
    a = ap.parse_args(argv)
    overrides: dict[str, Any] = {}
    for item in a.set:
        key, sep, val = item.partition("=")
        if not sep or not key:
            ap.error(f"--set wants KEY=JSON, got {item!r}")
        try:
            overrides[key] = json.loads(val)
        except ValueError:
            ap.error(f"--set {key}: the value must be JSON (true, 0.5, \"text\"), got {val!r}")
    cfg = ChaosConfig(
        duration=a.duration, jobs=a.jobs, concurrency=a.concurrency, kill_every=a.kill_every,
        fault_rate=a.fault_rate, steps=a.steps, seed=a.seed, kill_supervisor=not a.no_kill_supervisor,
        pressure=a.pressure, keep=a.keep, supervisor=overrides,
    )
    before_path = a.before or a.out
    before: dict[str, Any] | None = None
    if before_path.exists():
        d = json.loads(before_path.read_text(encoding="utf-8"))
        before = d.get("report", d)  # older files are the bare report
    console = Console()
    load_before = load()
    t0 = time.monotonic()
    report = ChaosRunner(cfg, progress=lambda s: console.print(s, highlight=False)).run()
    wall = time.monotonic() - t0
    rep = report.to_dict()
    table = before_after(before, rep)
    result = {
        "bench": "chaos",
        "ts": time.time(),
        "versions": versions(find_claude_cli(None)),
        "load_before": load_before,
        "load_after": load(),
        "wall_s": wall,
        "profile": {k: v for k, v in cfg.to_dict().items() if k not in ("workdir", "claude")},
        "before_after": table,
        "before_source": str(before_path) if before else None,
        "report": rep,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, a.out)
    console.print(render_report(report))
    t = Table(title="before (saved result) / after (this run)")
    for col in ("figure", "before", "after", "note"):
        t.add_column(col)
    for r in table:
        t.add_row(r["figure"], _fmt(r["before"], r["unit"]), _fmt(r["after"], r["unit"]), r["note"])
    console.print(t)
    att = report.attribution
    console.print(f"wall time {wall:.0f} s; load {load_before} -> {load()}")
    console.print(f"faults by cause: {json.dumps(att.get('causes'))}")
    console.print(f"classification (truth -> verdict): {json.dumps(att.get('confusion'))}")
    for line in report.check_lines():
        console.print(line, highlight=False, markup=False)
    for c in report.goal_checks():
        console.print(c.line() + " (goal)", highlight=False, markup=False)
    console.print(f"saved {a.out}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
