"""Supervisor benchmarks with the real Claude Code CLI on the project's API stand-in.

Three measurements (issue 5's goals in brackets):

1. **Recovery time** -- a CLI is SIGKILLed while its Bash tool runs; recovery
   time is "failure detected -> first event of the resumed session", taken
   from the store (``recoveries.restored_at - detected_at - waited_s``), over
   ``--kills`` runs: median and p95 [median < 2 s apart from server waits].
   Also reported from the SIGKILL itself to the resumed session's first event
   (detection happens once the dead CLI's leftover tool processes are ended).
2. **Overhead** -- the same trivial prompt run bare (``claude -p ...`` via
   subprocess, reading its stream-json to the end) and supervised
   (``Supervisor.run``), interleaved, ``--runs`` each: ratio of median wall
   times [<= 1.05], and the supervisor's own CPU time per run (this process's
   user+sys, the stand-in runs in another process so it is not counted).
3. **Command** -- what a user types: ``resurgo run "hi"`` (the installed
   console script, its own process) against the bare ``claude -p "hi"
   --output-format stream-json --verbose``, paired and interleaved, wall and
   CPU time of each command [wall ratio <= 1.15]; also with the early start
   off, to show what starting the CLI before resurgo's imports buys.
4. **API fault** -- a job of three Bash steps whose second API request fails
   (500, a reset connection, a stream cut after two events), with the API relay
   on and off, paired and interleaved, ``--runs`` each: the job's wall time
   over a fault-free run of the same job (what one fault costs the user), and
   how many CLIs it took.  With the relay the request is asked again without
   the CLI seeing it; without it the CLI fails and is resumed.
5. **Memory** -- peak RSS of the supervisor process while ``--sessions``
   sessions run at once (prompts that make the stand-in wait, so the CLIs
   stay alive together); also the number of CLIs seen alive at once.

Results go to ``bench/results/supervisor.json``.
Run: ``python bench/bench_supervisor.py [--kills 10] [--runs 10] [--sessions 50]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from resurgo.store import Store
from resurgo.supervise import Supervisor, SupervisorConfig, ToolStarted, find_claude

ROOT = Path(__file__).resolve().parents[1]


def _claude() -> str:
    local = ROOT / ".tools/npm/node_modules/.bin/claude"
    return os.environ.get("RESURGO_CLAUDE") or (str(local) if local.exists() else find_claude())


def _pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (docs/metrics.md)."""
    s = sorted(values)
    k = max(1, -(-len(s) * p // 100))
    return s[int(k) - 1]


class StandIn:
    """The Messages API stand-in in its own process, so its CPU is not charged to the supervisor."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "resurgo", "mock-api", "--port", "0"],
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

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _env(home: Path, url: str) -> dict[str, str]:
    return {
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": "bench",
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }


def _config(tmp: Path, env: dict[str, str], **kw: Any) -> SupervisorConfig:
    base: dict[str, Any] = {
        "claude": _claude(),
        "store": str(tmp / "bench.db"),
        "env": env,
        "cli_max_retries": 0,
        "kill_grace": 1.0,
        "stall_timeout": 120.0,
        "claude_args": ("--allowedTools", "Bash"),
        "health_interval": 5.0,
    }
    base.update(kw)
    return SupervisorConfig(**base)


async def bench_recovery(tmp: Path, url: str, kills: int) -> dict[str, Any]:
    """A CLI SIGKILLed mid-tool, ``kills`` jobs in a row, with the default standby CLIs and without.

    The first kill of a supervisor finds no standby (none is kept before a
    session was resumed); each later job's CLI has one booted by the time it
    is killed, so the figures are the steady state of a supervisor that sees
    crashes.  ``standby_off`` is the same run with ``standby=0``: every restart
    boots a CLI.
    """
    on = await _bench_recovery(tmp, url, kills, "rec", standby=8)
    off = await _bench_recovery(tmp, url, kills, "rec-off", standby=0)
    return {**on, "standby_off": off}


async def _bench_recovery(tmp: Path, url: str, kills: int, tag: str, *, standby: int) -> dict[str, Any]:
    env = _env(tmp / f"home-{tag}", url)
    Path(env["HOME"]).mkdir()
    work = tmp / f"work-{tag}"
    work.mkdir()
    from_kill: list[float] = []
    async with Supervisor(_config(tmp, env, store=str(tmp / f"{tag}.db"), standby=standby)) as sup:
        for i in range(kills):
            h = sup.submit(f"run {i} [[bash: sleep 1; echo x]] [[text: ok]]", cwd=work)
            async for ev in h.events():
                if isinstance(ev, ToolStarted):
                    await asyncio.sleep(0.3)
                    pid = sup.manager.active[0].pid
                    assert pid is not None
                    t_kill = time.time()
                    os.kill(pid, signal.SIGKILL)
                    break
            res = await h.result()
            if not res.ok:
                raise RuntimeError(f"recovery run {i} did not succeed: {res.reason}")
            (row,) = sup.store.query("SELECT restored_at FROM recoveries WHERE job_id=?", (res.job_id,))
            from_kill.append(row["restored_at"] - t_kill)
        adopted = sup.manager.standby_stats["adopted"]
    st = Store(str(tmp / f"{tag}.db"))
    rows = st.query("SELECT detected_at, restored_at, waited_s FROM recoveries WHERE restored_at IS NOT NULL")
    st.close()
    vals = [max(0.0, r["restored_at"] - r["detected_at"] - r["waited_s"]) for r in rows]
    return {
        "kills": kills,
        "recoveries": len(vals),
        "median_s": round(statistics.median(vals), 3),
        "p95_s": round(_pct(vals, 95), 3),
        "max_s": round(max(vals), 3),
        # stricter: from the SIGKILL itself (includes noticing the exit and ending the orphaned tool)
        "kill_to_restored_median_s": round(statistics.median(from_kill), 3),
        "kill_to_restored_p95_s": round(_pct(from_kill, 95), 3),
        "standby": standby,
        "standby_adopted": adopted,
        "goal_median_s": 2.0,
    }


def _set_faults(url: str, faults: dict[str, Any] | None) -> None:
    import urllib.request

    body = json.dumps(faults or {}).encode()
    req = urllib.request.Request(url.rstrip("/") + "/_resurgo/faults", data=body, method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:  # the stand-in, on loopback
        r.read()


async def bench_api_fault(tmp: Path, url: str, runs: int) -> dict[str, Any]:
    env = _env(tmp / "home-fault", url)
    Path(env["HOME"]).mkdir()
    work = tmp / "work-fault"
    work.mkdir()
    prompt = "steps [[bash: echo one]] [[bash: echo two]] [[bash: echo three]] [[text: done]]"
    kinds = {"500": {"status": 500, "nth": 2}, "reset": {"reset": True, "nth": 2},
             "cut": {"cut_after": 2, "nth": 2}}
    out: dict[str, Any] = {"runs": runs, "prompt_steps": 3, "kinds": {}}
    async with Supervisor(_config(tmp, env, store=str(tmp / "fault-on.db"), backoff_base=0.1)) as on, \
            Supervisor(_config(tmp, env, store=str(tmp / "fault-off.db"), backoff_base=0.1, relay=False)) as off:
        async def timed(sup: Supervisor, faults: dict[str, Any] | None) -> tuple[float, int]:
            await asyncio.to_thread(_set_faults, url, faults)
            t0 = time.monotonic()
            res = await sup.run(prompt, cwd=work)
            took = time.monotonic() - t0
            await asyncio.to_thread(_set_faults, url, None)
            if not res.ok:
                raise RuntimeError(f"api-fault run did not succeed: {res.reason}")
            return took, res.attempts

        clean_on: list[float] = []
        clean_off: list[float] = []
        for _ in range(runs):
            clean_on.append((await timed(on, None))[0])
            clean_off.append((await timed(off, None))[0])
        for kind, faults in kinds.items():
            t_on: list[float] = []
            t_off: list[float] = []
            a_on: list[int] = []
            a_off: list[int] = []
            for _ in range(runs):
                x, n = await timed(on, faults)
                t_on.append(x)
                a_on.append(n)
                x, n = await timed(off, faults)
                t_off.append(x)
                a_off.append(n)
            base_on, base_off = statistics.median(clean_on), statistics.median(clean_off)
            out["kinds"][kind] = {
                "relay_median_s": round(statistics.median(t_on), 3),
                "no_relay_median_s": round(statistics.median(t_off), 3),
                "relay_cost_s": round(statistics.median(t_on) - base_on, 3),
                "no_relay_cost_s": round(statistics.median(t_off) - base_off, 3),
                "relay_clis": statistics.median(a_on),
                "no_relay_clis": statistics.median(a_off),
            }
        out["clean_relay_median_s"] = round(statistics.median(clean_on), 3)
        out["clean_no_relay_median_s"] = round(statistics.median(clean_off), 3)
    return out


def _bare(claude: str, env: dict[str, str], cwd: Path, prompt: str) -> float:
    argv = [claude, "-p", "--output-format", "stream-json", "--verbose", "--session-id", str(uuid.uuid4())]
    argv += ["--allowedTools", "Bash", "--", prompt]
    t0 = time.perf_counter()
    p = subprocess.run(
        argv, cwd=cwd, env={**os.environ, **env, "CLAUDE_CODE_MAX_RETRIES": "0"}, capture_output=True, check=False
    )
    dt = time.perf_counter() - t0
    if p.returncode != 0 or b'"type":"result"' not in p.stdout:
        raise RuntimeError(f"bare run failed: {p.stderr[-500:]!r}")
    return dt


async def bench_overhead(tmp: Path, url: str, runs: int) -> dict[str, Any]:
    env = _env(tmp / "home-ovh", url)
    Path(env["HOME"]).mkdir()
    work = tmp / "work-ovh"
    work.mkdir()
    claude = _claude()
    prompt = "say hi [[text: hi]]"
    bare: list[float] = []
    sup_t: list[float] = []
    cpu: list[float] = []
    async with Supervisor(_config(tmp, env, store=str(tmp / "ovh.db"))) as sup:
        await sup.run(prompt, cwd=work)  # warm-up: imports, classifier, store
        await asyncio.to_thread(_bare, claude, env, work, prompt)
        for _ in range(runs):
            bare.append(await asyncio.to_thread(_bare, claude, env, work, prompt))
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            t0 = time.perf_counter()
            res = await sup.run(prompt, cwd=work)
            sup_t.append(time.perf_counter() - t0)
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            cpu.append((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
            if not res.ok:
                raise RuntimeError(f"supervised run failed: {res.reason}")
    mb, ms = statistics.median(bare), statistics.median(sup_t)
    return {
        "runs": runs,
        "bare_median_s": round(mb, 3),
        "supervised_median_s": round(ms, 3),
        "wall_ratio": round(ms / mb, 3),
        "goal_wall_ratio": 1.05,
        "supervisor_cpu_per_run_s": round(statistics.median(cpu), 4),
        "bare_s": [round(x, 3) for x in bare],
        "supervised_s": [round(x, 3) for x in sup_t],
    }


def _timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, bytes]:
    """Wall time and the child's CPU time (user+sys) of one command, and its stdout."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({p.returncode}): {p.stderr[-500:]!r}")
    return dt, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), p.stdout


def _resurgo_command() -> list[str]:
    """The ``resurgo`` console script as installed (README set-up), else ``python -m resurgo``."""
    script = Path(sys.executable).parent / "resurgo"
    return [str(script)] if script.exists() else [sys.executable, "-m", "resurgo"]


def bench_command(tmp: Path, url: str, runs: int) -> dict[str, Any]:
    """What a user runs: ``resurgo run "hi"`` against the bare ``claude -p "hi" ...``, paired and interleaved.

    Also ``resurgo run`` with the early start off (RESURGO_EARLY_START=0), to show what it buys.
    Bytecode is compiled by a warm-up run first, as on any installed machine after the first call.
    """
    env = {**os.environ, **_env(tmp / "home-cmd", url), "CLAUDE_CODE_MAX_RETRIES": "0"}
    Path(env["HOME"]).mkdir()
    env.pop("RESURGO_EARLY_START", None)
    work = tmp / "work-cmd"
    work.mkdir()
    claude = _claude()
    bare_argv = [claude, "-p", "hi", "--output-format", "stream-json", "--verbose"]
    run_argv = [*_resurgo_command(), "--store", str(tmp / "cmd.db"), "run", "hi", "--claude", claude, "-q"]
    off_env = {**env, "RESURGO_EARLY_START": "0"}
    _timed(run_argv, env, work)
    _timed(bare_argv, env, work)
    rows: dict[str, list[tuple[float, float]]] = {"bare": [], "resurgo_run": [], "resurgo_run_no_early_start": []}
    for _ in range(runs):
        w, c, out = _timed(bare_argv, env, work)
        if b'"type":"result"' not in out:
            raise RuntimeError("bare run printed no result")
        rows["bare"].append((w, c))
        w, c, out = _timed(run_argv, env, work)
        rows["resurgo_run"].append((w, c))
        w, c, _ = _timed(run_argv, off_env, work)
        rows["resurgo_run_no_early_start"].append((w, c))
    med = {k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)) for k, v in rows.items()}
    pair = [r[0] / b[0] for r, b in zip(rows["resurgo_run"], rows["bare"], strict=True)]
    return {
        "runs": runs,
        "command": " ".join(Path(a).name if i == 0 else a for i, a in enumerate(run_argv)),
        "bare_median_wall_s": round(med["bare"][0], 3),
        "run_median_wall_s": round(med["resurgo_run"][0], 3),
        "run_no_early_start_median_wall_s": round(med["resurgo_run_no_early_start"][0], 3),
        "wall_ratio": round(med["resurgo_run"][0] / med["bare"][0], 3),
        "wall_ratio_paired_median": round(statistics.median(pair), 3),
        "wall_ratio_no_early_start": round(med["resurgo_run_no_early_start"][0] / med["bare"][0], 3),
        "bare_median_cpu_s": round(med["bare"][1], 3),
        "run_median_cpu_s": round(med["resurgo_run"][1], 3),
        "cpu_ratio": round(med["resurgo_run"][1] / med["bare"][1], 3),
        "goal_wall_ratio": 1.15,
        "samples": {k: [[round(w, 3), round(c, 3)] for w, c in v] for k, v in rows.items()},
    }


async def bench_memory(tmp: Path, url: str, sessions: int, sleep_s: float) -> dict[str, Any]:
    env = _env(tmp / "home-mem", url)
    Path(env["HOME"]).mkdir()
    work = tmp / "work-mem"
    work.mkdir()
    me = psutil.Process()
    rss0 = me.memory_info().rss
    peak = rss0
    alive_peak = 0
    async with Supervisor(_config(tmp, env, store=str(tmp / "mem.db"), concurrency=sessions)) as sup:
        task = asyncio.create_task(
            sup.run_many([f"s{i} [[sleep: {sleep_s}]] [[text: ok]]" for i in range(sessions)], concurrency=sessions)
        )
        while not task.done():
            peak = max(peak, me.memory_info().rss)
            alive_peak = max(alive_peak, len(sup.manager.active))
            await asyncio.sleep(0.2)
        results = task.result()
    ok = sum(r.ok for r in results)
    return {
        "sessions": sessions,
        "succeeded": ok,
        "cli_alive_at_once_peak": alive_peak,
        "supervisor_rss_before_mb": round(rss0 / 2**20, 1),
        "supervisor_rss_peak_mb": round(peak / 2**20, 1),
        "supervisor_rss_growth_mb": round((peak - rss0) / 2**20, 1),
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--sleep", type=float, default=20.0, help="seconds the stand-in waits in the memory run")
    ap.add_argument("--skip", action="append", default=[],
                    choices=["recovery", "overhead", "command", "api-fault", "memory"])
    args = ap.parse_args()
    out: dict[str, Any] = {"cpu_count": os.cpu_count(), "claude": _claude(), "ts": time.time()}
    with tempfile.TemporaryDirectory(prefix="resurgo-bench-") as d:
        tmp = Path(d)
        srv = StandIn()
        try:
            if "recovery" not in args.skip:
                out["recovery"] = await bench_recovery(tmp, srv.url, args.kills)
                r = out["recovery"]
                print(
                    f"recovery: median {r['median_s']} s, p95 {r['p95_s']} s over {r['recoveries']} kills "
                    f"(goal median < 2 s: ratio {r['median_s'] / 2.0:.2f}); from the SIGKILL itself: median "
                    f"{r['kill_to_restored_median_s']} s, p95 {r['kill_to_restored_p95_s']} s; "
                    f"{r['standby_adopted']} standby CLI(s) adopted; with standby=0: median "
                    f"{r['standby_off']['median_s']} s, from the SIGKILL "
                    f"{r['standby_off']['kill_to_restored_median_s']} s"
                )
            if "overhead" not in args.skip:
                out["overhead"] = await bench_overhead(tmp, srv.url, args.runs)
                o = out["overhead"]
                print(
                    f"overhead: supervised/bare wall = {o['wall_ratio']} (goal <= 1.05; bare {o['bare_median_s']} s,"
                    f" supervised {o['supervised_median_s']} s); supervisor CPU {o['supervisor_cpu_per_run_s']} s/run"
                )
            if "command" not in args.skip:
                out["command"] = await asyncio.to_thread(bench_command, tmp, srv.url, args.runs)
                c = out["command"]
                print(
                    f"command: `resurgo run hi` / bare `claude -p hi` wall = {c['wall_ratio']} (goal <= 1.15; paired "
                    f"median {c['wall_ratio_paired_median']}; bare {c['bare_median_wall_s']} s, resurgo run "
                    f"{c['run_median_wall_s']} s; without the early start {c['run_no_early_start_median_wall_s']} s ="
                    f" {c['wall_ratio_no_early_start']}x); CPU {c['run_median_cpu_s']} s vs {c['bare_median_cpu_s']} s"
                )
            if "api-fault" not in args.skip:
                out["api_fault"] = await bench_api_fault(tmp, srv.url, args.runs)
                f = out["api_fault"]
                print(f"api fault: fault-free job {f['clean_relay_median_s']} s (relay) / "
                      f"{f['clean_no_relay_median_s']} s (no relay)")
                for kind, k in f["kinds"].items():
                    print(f"  {kind}: one fault costs {k['relay_cost_s']} s with the relay ({k['relay_clis']} CLI), "
                          f"{k['no_relay_cost_s']} s without ({k['no_relay_clis']} CLIs)")
            if "memory" not in args.skip:
                out["memory"] = await bench_memory(tmp, srv.url, args.sessions, args.sleep)
                m = out["memory"]
                print(
                    f"memory: {m['sessions']} sessions ({m['cli_alive_at_once_peak']} CLIs alive at once, "
                    f"{m['succeeded']} succeeded): supervisor RSS peak {m['supervisor_rss_peak_mb']} MB "
                    f"(+{m['supervisor_rss_growth_mb']} MB)"
                )
        finally:
            srv.close()
    res_dir = ROOT / "bench" / "results"
    res_dir.mkdir(parents=True, exist_ok=True)
    (res_dir / "supervisor.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"written {res_dir / 'supervisor.json'}")


if __name__ == "__main__":
    asyncio.run(main())
