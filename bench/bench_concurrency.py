"""Adaptive concurrency against a capacity-limited API: real CLI batches, fixed vs ``auto``.

The same batch of real Claude Code CLI jobs (each makes Bash tool calls, so
each job is several Messages requests) runs through the command a user runs,
``resurgo batch FILE --concurrency N``, against the API stand-in started as
``resurgo mock-api --max-inflight K --latency L``: at most K requests are
answered at once (one more is refused with 529 overloaded_error) and each
admitted request takes L seconds, so the API's capacity -- not this machine's
CPU -- is the bottleneck.  For each of the fixed settings (default 1, 2, 4, 8,
16, 32) and ``auto`` it reports the makespan (wall time of the command), the
API requests refused (529 + 429, counted by the stand-in), the CLI's own
retries (``api_retry`` events in the store), the supervisor's recoveries and
the jobs that succeeded.  The CLI retries by itself at most
``--cli-max-retries`` times (``[supervisor] cli_max_retries``; default 0 as in
the demo and chaos runs: resurgo owns the retries), then the supervisor
resumes the session.

Then a run with ``auto`` where the capacity halves mid-batch (K -> K/2 at
``--halve-at`` s, back at ``--restore-at`` s, through ``POST
/_resurgo/capacity``): how long refusals go on after the halving, and how
long the limit (from the store's ``concurrency_samples``) takes to climb back
to where it was once the capacity returns.

Goals (issue 16): auto's makespan within 10% of the best fixed setting; at
most a third of the refusals of the fixed setting at twice the capacity
(2K); refusals stop within 5 s of the halving; the limit climbs back within
30 s of the capacity's return.  Timing on a shared 2-core machine is noisy:
the ratios come from runs made one after another in the same process.

Results: ``bench/results/concurrency.json``.
Run: ``python bench/bench_concurrency.py [--jobs 32] [--capacity 4] [--latency 2]``
(``--quick`` for a smaller smoke run: 12 jobs, settings 2 and 8 and auto).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _claude() -> str:
    local = ROOT / ".tools/npm/node_modules/.bin/claude"
    env = os.environ.get("RESURGO_CLAUDE")
    if env:
        return env
    if local.exists():
        return str(local)
    from resurgo.supervise import find_claude

    return find_claude()


class StandIn:
    """``resurgo mock-api`` with a capacity model, in its own process (its CPU is not the supervisor's)."""

    def __init__(self, capacity: int, latency: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "resurgo", "mock-api", "--port", "0", "--max-inflight", str(capacity),
             "--latency", str(latency)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        self.url = line.split()[-1] if line else ""
        if not self.url.startswith("http"):
            self.close()
            raise RuntimeError(f"mock-api did not print its URL: {line!r}")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.loads(r.read())

    def post(self, path: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def write_batch(path: Path, n: int, steps: int, tag: str) -> None:
    with path.open("w") as f:
        for i in range(n):
            bash = " ".join(f"[[bash: echo {tag}-{i}-step{s}]]" for s in range(steps))
            f.write(json.dumps({"id": f"{tag}-{i}", "prompt": f"{bash} [[text: job {i} done]]",
                                "args": ["--allowedTools", "Bash"]}) + "\n")


def run_batch(tmp: Path, srv: StandIn, *, tag: str, jobs: int, steps: int, concurrency: str,
              max_concurrency: int, cli_max_retries: int, during: Any = None) -> dict[str, Any]:
    """One ``resurgo batch`` run in a fresh store and HOME; returns its measurements."""
    d = tmp / tag
    d.mkdir()
    home = d / "home"
    home.mkdir()
    batch = d / "jobs.jsonl"
    write_batch(batch, jobs, steps, tag)
    store = d / "store.db"
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(d / "xdg"),
        "ANTHROPIC_BASE_URL": srv.url,
        "ANTHROPIC_API_KEY": "bench",
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "RESURGO_CLAUDE": _claude(),
        "RESURGO_SUPERVISOR_CLI_MAX_RETRIES": str(cli_max_retries),
        "RESURGO_SUPERVISOR_MAX_RECOVERIES": "50",  # refusals are expected here: do not give jobs up for them
    }
    before = srv.get("/_resurgo/capacity")
    argv = [sys.executable, "-m", "resurgo", "batch", str(batch), "--concurrency", concurrency, "--store", str(store),
            "--quiet", "--json"]
    if concurrency == "auto":
        argv += ["--max-concurrency", str(max_concurrency)]
    t0 = time.time()
    proc = subprocess.Popen(argv, env=env, cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    extra: dict[str, Any] = {}
    if during is not None:
        extra = during(t0)
    _, err = proc.communicate(timeout=3600)
    t1 = time.time()
    after = srv.get("/_resurgo/capacity")
    refused = (after["refused_inflight"] - before["refused_inflight"]) + (
        after["refused_rate"] - before["refused_rate"]
    )
    admitted = after["admitted"] - before["admitted"]
    con = sqlite3.connect(store)
    try:
        retries = con.execute("SELECT COUNT(*) FROM events WHERE type='system' AND subtype='api_retry'").fetchone()[0]
        recoveries = con.execute("SELECT COUNT(*) FROM recoveries").fetchone()[0]
        states = dict(con.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())
        limits: list[tuple[float, int]] = []
        waits: list[float] = []
        with_table = con.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='concurrency_samples'").fetchone()
        if with_table:
            limits = [(ts - t0, lim) for ts, lim in con.execute(
                "SELECT ts, limit_value FROM concurrency_samples WHERE kind='limit' ORDER BY id")]
            waits = [v for (v,) in con.execute("SELECT value FROM concurrency_samples WHERE kind='wait'")]
    finally:
        con.close()
    res: dict[str, Any] = {
        "concurrency": concurrency,
        "exit_status": proc.returncode,
        "makespan_s": round(t1 - t0, 2),
        "requests_admitted": admitted,
        "requests_refused": refused,
        "cli_retries": retries,
        "recoveries": recoveries,
        "jobs_succeeded": states.get("succeeded", 0),
        "jobs": jobs,
        "max_inflight_seen_by_api": after["max_inflight_seen"],
    }
    if limits:
        vals = [v for _, v in limits]
        res["limit"] = {"max": max(vals), "final": vals[-1], "changes": len(vals) - 1,
                        "median": statistics.median(vals)}
        res["limit_series"] = [(round(t, 2), v) for t, v in limits]
        res["queue_wait_s"] = {"mean": round(statistics.mean(waits), 3) if waits else 0.0,
                               "max": round(max(waits), 3) if waits else 0.0}
    if proc.returncode != 0:
        res["stderr_tail"] = err[-800:]
    res.update(extra)
    return res


def halving(tmp: Path, srv: StandIn, args: argparse.Namespace) -> dict[str, Any]:
    k = args.capacity
    half = max(1, k // 2)
    marks: dict[str, float] = {}

    def during(t0: float) -> dict[str, Any]:
        time.sleep(max(0.0, t0 + args.halve_at - time.time()))
        srv.post("/_resurgo/capacity", {"max_inflight": half, "latency": args.latency})
        marks["halved"] = time.time() - t0
        time.sleep(max(0.0, t0 + args.restore_at - time.time()))
        srv.post("/_resurgo/capacity", {"max_inflight": k, "latency": args.latency})
        marks["restored"] = time.time() - t0
        return {}

    srv.get("/_resurgo/requests")
    t_start = time.time()
    res = run_batch(tmp, srv, tag="halving", jobs=args.halving_jobs, steps=args.steps, concurrency="auto",
                    max_concurrency=args.max_concurrency, cli_max_retries=args.cli_max_retries, during=during)
    reqs = srv.get("/_resurgo/requests")["requests"]
    refusals = sorted(r["time"] - t_start for r in reqs
                      if r["time"] >= t_start and r["status"] in (429, 529) and r["path"] == "/v1/messages")
    h, r = marks["halved"], marks["restored"]
    in_half = [t for t in refusals if h <= t < r]
    # "refusals stop": the first moment after the halving followed by 5 s without a refusal
    stop_at = None
    t = h
    for x in [*in_half, r]:
        if x - t >= 5.0:
            stop_at = t
            break
        t = max(t, x)
    series = res.get("limit_series", [])
    before = [v for ts, v in series if h - 15 <= ts < h] or [v for ts, v in series if ts < h]
    level = statistics.median(before) if before else None
    climb = None
    if level is not None:
        for ts, v in series:
            if ts >= r and v >= level:
                climb = round(ts - r, 2)
                break
    bins: dict[int, int] = {}
    for x in refusals:
        bins[int(x // 5) * 5] = bins.get(int(x // 5) * 5, 0) + 1
    low_in_half = min((v for ts, v in series if h <= ts < r), default=None)
    res.update({
        "capacity": k,
        "halved_to": half,
        "halved_at_s": round(h, 2),
        "restored_at_s": round(r, 2),
        "refusals_total": len(refusals),
        "refusals_while_halved": len(in_half),
        "refusals_stop_after_s": None if stop_at is None else round(stop_at - h, 2),
        "last_refusal_while_halved_s": round(in_half[-1] - h, 2) if in_half else None,
        "refusals_per_5s": dict(sorted(bins.items())),
        "limit_before_halving": level,
        "lowest_limit_while_halved": low_in_half,
        "limit_climbs_back_after_s": climb,
    })
    return res


def versions() -> dict[str, Any]:
    import resurgo

    cli = subprocess.run([_claude(), "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return {"python": platform.python_version(), "resurgo": getattr(resurgo, "__version__", "dev"),
            "claude_cli": cli, "platform": platform.platform(), "cpu_count": os.cpu_count()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=32)
    ap.add_argument("--steps", type=int, default=2, help="Bash tool calls per job (each job = steps+1 requests)")
    ap.add_argument("--capacity", type=int, default=4, help="K: requests the stand-in answers at once")
    ap.add_argument("--latency", type=float, default=2.0, help="seconds per admitted request")
    ap.add_argument("--fixed", default="1,2,4,8,16,32")
    ap.add_argument("--max-concurrency", type=int, default=32)
    ap.add_argument("--cli-max-retries", type=int, default=0)
    ap.add_argument("--halving-jobs", type=int, default=48)
    ap.add_argument("--halve-at", type=float, default=45.0)
    ap.add_argument("--restore-at", type=float, default=75.0)
    ap.add_argument("--skip-halving", action="store_true")
    ap.add_argument("--quick", action="store_true", help="12 jobs; fixed 2 and 8; auto; a short halving run")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "concurrency.json"))
    ap.add_argument("--keep", default=None, metavar="DIR", help="keep the batches' stores in DIR (for inspection)")
    args = ap.parse_args()
    if args.quick:
        args.jobs, args.fixed, args.halving_jobs, args.halve_at, args.restore_at = 12, "2,8", 24, 15.0, 35.0
    fixed = [int(x) for x in args.fixed.split(",") if x]
    out: dict[str, Any] = {"versions": versions(), "ts": time.time(), "argv": sys.argv[1:],
                           "setup": {"jobs": args.jobs, "steps": args.steps, "capacity": args.capacity,
                                     "latency_s": args.latency, "cli_max_retries": args.cli_max_retries,
                                     "max_concurrency": args.max_concurrency}}
    runs: list[dict[str, Any]] = []
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
    tmpdir: Any = (contextlib.nullcontext(tempfile.mkdtemp(prefix="resurgo-bench-conc-", dir=args.keep)) if args.keep
                   else tempfile.TemporaryDirectory(prefix="resurgo-bench-conc-"))
    with tmpdir as d:
        tmp = Path(d)
        srv = StandIn(args.capacity, args.latency)
        try:
            for setting in [*(str(n) for n in fixed), "auto"]:
                r = run_batch(tmp, srv, tag=f"c{setting}", jobs=args.jobs, steps=args.steps, concurrency=setting,
                              max_concurrency=args.max_concurrency, cli_max_retries=args.cli_max_retries)
                runs.append(r)
                lim = r.get("limit", {})
                print(f"concurrency {setting:>4}: makespan {r['makespan_s']:7.1f} s  refused {r['requests_refused']:4d}"
                      f"  cli retries {r['cli_retries']:4d}  recoveries {r['recoveries']:3d}  "
                      f"ok {r['jobs_succeeded']}/{r['jobs']}" + (f"  limit max {lim.get('max')} median "
                                                                 f"{lim.get('median')}" if lim else ""), flush=True)
            out["runs"] = [{k: v for k, v in r.items() if k != "limit_series"} for r in runs]
            out["auto_limit_series"] = runs[-1].get("limit_series", [])
            if not args.skip_halving:
                hv = halving(tmp, srv, args)
                out["halving"] = hv
                print(f"halving: K {hv['capacity']} -> {hv['halved_to']} at {hv['halved_at_s']} s, back at "
                      f"{hv['restored_at_s']} s; refusals while halved {hv['refusals_while_halved']}, stop after "
                      f"{hv['refusals_stop_after_s']} s (last at +{hv['last_refusal_while_halved_s']} s); limit "
                      f"{hv['limit_before_halving']} -> {hv['lowest_limit_while_halved']}, back after "
                      f"{hv['limit_climbs_back_after_s']} s; makespan {hv['makespan_s']} s", flush=True)
        finally:
            srv.close()
    auto = runs[-1]
    fixed_runs = [r for r in runs[:-1] if r["jobs_succeeded"] == r["jobs"]]
    goals: dict[str, Any] = {}
    if fixed_runs:
        best = min(fixed_runs, key=lambda r: r["makespan_s"])
        goals["best_fixed"] = best["concurrency"]
        goals["auto_vs_best_makespan_ratio"] = round(auto["makespan_s"] / best["makespan_s"], 3)
        goals["auto_within_10pct_of_best"] = goals["auto_vs_best_makespan_ratio"] <= 1.10
    twice = next((r for r in runs[:-1] if r["concurrency"] == str(2 * args.capacity)), None)
    if twice is not None:
        goals["refusals_auto_vs_fixed_2k"] = [auto["requests_refused"], twice["requests_refused"]]
        goals["auto_refusals_at_most_a_third_of_2k"] = auto["requests_refused"] * 3 <= twice["requests_refused"]
    if "halving" in out:
        hv = out["halving"]
        goals["refusals_stop_within_5s"] = hv["refusals_stop_after_s"] is not None and hv["refusals_stop_after_s"] <= 5
        goals["limit_back_within_30s"] = (hv["limit_climbs_back_after_s"] is not None
                                          and hv["limit_climbs_back_after_s"] <= 30)
    out["goals"] = goals
    print("goals:", json.dumps(goals))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
