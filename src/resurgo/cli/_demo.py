"""``resurgo demo``: see resurgo recover real Claude Code runs, on a fresh machine, in under two minutes.

Without ``ANTHROPIC_API_KEY`` the demo starts the bundled Messages-API
stand-in (:class:`resurgo.mockapi.MockServer`) on loopback and points the real
CLI at it, then makes things go wrong on purpose: a burst of 529 "overloaded"
answers, a response stream cut in the middle, and one CLI killed with SIGKILL
while its Bash tool runs.  Each recovery is printed as it happens (the same
progress view as ``resurgo batch``), then the figures the dashboard shows
(availability, recoveries, MTTR) computed from the store.  Nothing is mocked
on the CLI side: the failures are real HTTP faults and a real dead process.

With a real key it runs a tiny batch against the real API without faults.
The CLI runs with a throw-away HOME, so the demo never touches ``~/.claude``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from resurgo.cli._common import EXIT_USAGE, CliError, console, human_seconds

#: The whole demo is cut off after this many seconds (jobs left unfinished become interrupted).
DEMO_DEADLINE = 110.0

_MOCK_JOBS = [
    ("tidy", "Tidy the notes. [[bash: sleep 1; echo step 1]] [[bash: sleep 1; echo step 2]] [[text: notes tidied]]"),
    ("crash-me", "Build the report. [[bash: sleep 3; echo built]] [[text: report built]]"),
    ("summary", "Summarise the log. [[bash: sleep 1; echo step]] [[text: log summarised]]"),
    ("quick", "Say hello. [[text: hello]]"),
    ("check", "Check the links. [[bash: sleep 1; echo ok]] [[text: links checked]]"),
]
_REAL_JOBS = [
    ("hello", "Reply with exactly the word: hello"),
    ("sum", "What is 17 + 25? Reply with the number only."),
]


def find_demo_claude(cwd: Path | None = None) -> str | None:
    """The real CLI: ``$RESURGO_CLAUDE``, ``PATH``, then ``./.tools/npm/node_modules/.bin/claude``.

    The last place is where ``scripts/setup.sh`` installs it, looked up from the
    current folder and from the source checkout this package runs from.
    """
    env = os.environ.get("RESURGO_CLAUDE")
    if env:
        return env
    found = shutil.which("claude")
    if found:
        return found
    rel = Path(".tools/npm/node_modules/.bin/claude")
    for base in (cwd or Path.cwd(), Path(__file__).resolve().parents[3]):
        cand = base / rel
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    return None


async def _fault_plan(srv: Any, out: Any) -> None:
    """529 burst first; once it has been served, one cut stream; then a healthy API."""
    from resurgo.mockapi import Faults

    srv.set_faults(Faults(status=529, count=3))
    out.print("[bold]fault[/]: the API answers the next 3 requests with 529 overloaded")
    while srv.stats()["by_fault"].get("529", 0) < 3:
        await asyncio.sleep(0.1)
    srv.set_faults(Faults(cut_after=3, count=1))
    out.print("[bold]fault[/]: the next response stream will be cut mid-way")
    while srv.stats()["by_fault"].get("cut", 0) < 1:
        await asyncio.sleep(0.1)
    srv.clear_faults()


async def _crash_one(sup: Any, out: Any, name: str) -> None:
    """SIGKILL the CLI of job ``name`` while its Bash tool runs: a real crash to recover from."""
    from resurgo.supervise import ToolStarted

    async for ev in sup.events():
        if not isinstance(ev, ToolStarted):
            continue
        rec = sup.jobs.get(ev.job_id)
        if rec is None or rec.name != name:
            continue
        await asyncio.sleep(0.7)
        for p in sup.jobs.open_processes():
            if p.job_id == ev.job_id:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
                    out.print(f"[bold]fault[/]: SIGKILL to the CLI of {name} (pid {p.pid}) in the middle of its tool")
                return


@click.command("demo")
@click.option("--dir", "demo_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the demo keeps its store and work folder (default: ./.resurgo-demo, else a temp folder).")
@click.option("--claude", "claude", default=None,
              help="Claude Code CLI (default: $RESURGO_CLAUDE, PATH, ./.tools/npm/node_modules/.bin/claude).")
@click.option("--jobs", "n_jobs", type=click.IntRange(1, len(_MOCK_JOBS)), default=len(_MOCK_JOBS),
              show_default=True, help="How many demo jobs to run.")
@click.option("--no-crash", is_flag=True, help="Do not SIGKILL a CLI mid-tool.")
def demo_cmd(demo_dir: Path | None, claude: str | None, n_jobs: int, no_crash: bool) -> None:
    """Run a small supervised batch through the real Claude Code CLI, with failures injected.

    Without ANTHROPIC_API_KEY: against the bundled API stand-in, with a 529
    burst, a cut stream and a CLI killed mid-tool; each recovery is shown as it
    happens, then availability, recoveries and MTTR. With a key: a tiny real
    batch, no faults. Finishes within about two minutes.
    """
    from resurgo.cli._run import run_supervised
    from resurgo.mockapi import MockServer
    from resurgo.supervise import JobSpec

    out = console(stderr=True)
    claude = claude or find_demo_claude()
    if claude is None:
        raise CliError("the Claude Code CLI was not found (set RESURGO_CLAUDE, put `claude` on PATH, or run "
                       "scripts/setup.sh which installs it into ./.tools/npm)")
    base = _demo_folder(demo_dir)
    store_file = base / "resurgo.db"
    for suffix in ("", "-wal", "-shm"):  # the demo's own store: start from a clean slate each time
        with contextlib.suppress(FileNotFoundError):
            (base / f"resurgo.db{suffix}").unlink()
    work = base / "work"
    home = base / "home"
    work.mkdir(exist_ok=True)
    home.mkdir(exist_ok=True)
    real = bool(os.environ.get("ANTHROPIC_API_KEY"))
    env = {
        "HOME": str(home),
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    srv: Any = None
    if not real:
        srv = MockServer(host="127.0.0.1", port=0).start()
        env.update({"ANTHROPIC_BASE_URL": srv.url, "ANTHROPIC_API_KEY": "demo-key-for-the-local-stand-in"})
        jobs = _MOCK_JOBS[:n_jobs]
        out.print(f"[bold]resurgo demo[/]: no ANTHROPIC_API_KEY, so the real CLI talks to the bundled API stand-in "
                  f"at {srv.url}")
    else:
        jobs = _REAL_JOBS
        out.print("[bold]resurgo demo[/]: ANTHROPIC_API_KEY is set: a tiny real batch, no faults injected")
    out.print(f"CLI: {claude}\nstore: {store_file}\n")
    specs = [JobSpec(prompt, cwd=str(work), name=name, claude_args=("--allowedTools", "Bash")) for name, prompt in jobs]
    overrides = {
        "env": env,
        "cli_max_retries": 0,  # let resurgo, not the CLI, handle every failure: that is what the demo shows
        "backoff_base": 0.2,
        "backoff_cap": 2.0,
        "stall_timeout": 30.0,
        "kill_grace": 1.0,
        "concurrency": 3,
    }
    started = time.time()

    async def work_fn(sup: Any) -> Any:
        helpers = []
        if srv is not None:
            helpers.append(asyncio.create_task(_fault_plan(srv, out)))
            if not no_crash and any(n == "crash-me" for n, _ in jobs):
                helpers.append(asyncio.create_task(_crash_one(sup, out, "crash-me")))
        try:
            return await asyncio.wait_for(sup.run_many(specs, concurrency=3), DEMO_DEADLINE)
        finally:
            for h in helpers:
                h.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    def done(results: Any, progress: Any) -> int:
        _figures(store_file, results, started)
        return 0 if all(r.ok for r in results) else 1

    try:
        code = run_supervised(store_file, work_fn, total=len(specs), claude=claude, overrides=overrides, on_done=done)
    except TimeoutError:
        out.print(f"[red]the demo did not finish within {DEMO_DEADLINE:.0f} s[/]; "
                  f"see `resurgo jobs --store {store_file}`")
        code = 1
    finally:
        if srv is not None:
            srv.stop()
    raise SystemExit(code)


def _demo_folder(demo_dir: Path | None) -> Path:
    from resurgo._private_dir import ensure_private_dir

    cands = [demo_dir] if demo_dir is not None else [Path.cwd() / ".resurgo-demo"]
    if demo_dir is None:
        cands.append(Path(tempfile.gettempdir()) / f"resurgo-demo-{os.getuid()}")
    for c in cands:
        try:
            if c.parent == Path(tempfile.gettempdir()):
                ensure_private_dir(c)  # a predictable name in a shared folder: 0700 and ours, or refused
            else:
                c.mkdir(parents=True, exist_ok=True)
            probe = c / ".write-test"
            probe.write_text("")
            probe.unlink()
            return c.resolve()
        except OSError:
            continue
    raise CliError(f"cannot write to the demo folder {cands[0]}", EXIT_USAGE)


def _figures(store_file: Path, results: Any, started: float) -> None:
    """The headline numbers from the store (the same definitions as the dashboard's)."""
    from rich.table import Table

    from resurgo.observe import summary
    from resurgo.store import Store

    out = console()
    t = Table(title="demo jobs", title_justify="left")
    for col in ("job", "state", "attempts", "recoveries", "took", "answer"):
        t.add_column(col)
    for r in results:
        t.add_row(r.name or r.job_id[:8], r.state.value, str(r.attempts), str(r.recoveries),
                  human_seconds(r.duration_s), (r.result_text or r.reason or "")[:50])
    out.print(t)
    with Store(os.fspath(store_file)) as store:
        s = summary(store, start=started - 1, end=time.time() + 1)
        outcome = recovery_outcomes(store, start=started - 1)
    a, rec = s.availability, s.recoveries
    ok = sum(1 for r in results if r.ok)

    def pct(x: float | None) -> str:
        return f"{x * 100:.1f} %" if x is not None else "-"

    out.print(f"[bold]jobs[/]: {ok}/{len(results)} succeeded   "
              f"[bold]recoveries[/]: {rec.count} ({describe_recoveries(rec.succeeded, *outcome)})")
    out.print(f"[bold]availability[/]: {pct(a.job_ratio)} of jobs, {pct(a.time_ratio)} of run time   "
              f"[bold]MTTR[/]: {human_seconds(a.mttr_s)}   [bold]errors seen[/]: {s.errors.total}")
    # soft_wrap: never break these lines (a pipe or a log gets 80 columns): they are meant to be copied
    out.print(f"\nOpen the dashboard on this run: [bold]resurgo dashboard --store {store_file}[/]", soft_wrap=True)
    out.print(f"Inspect a job: resurgo show crash-me --store {store_file}", soft_wrap=True)


def recovery_outcomes(store: Any, *, start: float) -> tuple[int, int]:
    """``(interrupted, failed)`` among the recoveries that did not restore their job.

    A recovery that was itself hit by a second fault is followed by another
    recovery of the same job: it was interrupted and retried, not a failure a
    reader should worry about.  Only a failed recovery with nothing after it
    (the job gave up) is a failure.
    """
    rows = store.query(
        "SELECT r.id, EXISTS(SELECT 1 FROM recoveries l WHERE l.job_id = r.job_id AND l.id > r.id) AS retried"
        " FROM recoveries r WHERE r.succeeded = 0 AND r.detected_at >= ?",
        (start,),
    )
    interrupted = sum(1 for r in rows if r[1])
    return interrupted, len(rows) - interrupted


def describe_recoveries(restored: int, interrupted: int, failed: int) -> str:
    """The recoveries in words: "2 restored; 1 recovery was interrupted by a second fault and retried"."""
    parts = [f"{restored} restored"]
    if interrupted:
        parts.append(f"{interrupted} recover{'y was' if interrupted == 1 else 'ies were'} interrupted by a second "
                     "fault and retried")
    if failed:
        parts.append(f"{failed} failed")
    return "; ".join(parts)


__all__ = ["demo_cmd", "find_demo_claude"]
