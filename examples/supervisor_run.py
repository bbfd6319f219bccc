"""Supervise real Claude Code runs from Python: typed events while they run, results at the end.

Run: python examples/supervisor_run.py

Without ANTHROPIC_API_KEY the real CLI talks to resurgo's bundled Messages-API
stand-in (resurgo.mockapi.MockServer) on loopback, and two things go wrong on
purpose: the API answers a burst of requests with 529 "overloaded", and the CLI
of one job is killed with SIGKILL while its Bash tool runs.  The supervisor
classifies each failure, waits, passes the endpoint's breaker and resumes the
session; the events below show it as it happens.  The CLI is found through
$RESURGO_CLAUDE, then PATH, then the repository's .tools/npm install.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
import time
from pathlib import Path

from resurgo.mockapi import Faults, MockServer
from resurgo.supervise import (
    AttemptStarted,
    BreakerStateChanged,
    CliEvent,
    FailureDetected,
    JobFinished,
    JobQueued,
    JobSpec,
    RecoveryPlanned,
    Restored,
    Supervisor,
    SupervisorConfig,
    SupervisorEvent,
    ToolStarted,
    Waiting,
)

REPO = Path(__file__).resolve().parents[1]


def find_cli() -> str:
    """$RESURGO_CLAUDE, then PATH (via the supervisor's own lookup), then this checkout's install."""
    from resurgo.supervise import ClaudeNotFoundError, find_claude

    try:
        return find_claude(None)
    except ClaudeNotFoundError:
        local = REPO / ".tools/npm/node_modules/.bin/claude"
        if local.exists():
            return str(local)
        raise


def describe(ev: SupervisorEvent, names: dict[str, str]) -> str | None:
    """One line per typed event worth reading (the raw stream-json CliEvents are left out)."""
    who = names.get(ev.job_id, ev.job_id[:8])
    match ev:
        case JobQueued():
            return f"{who}: queued"
        case AttemptStarted(n=n, kind=kind):
            return f"{who}: attempt {n} ({kind})"
        case ToolStarted(name=name, summary=summary):
            return f"{who}: tool {name}: {summary[:50]}"
        case FailureDetected(error=err, attempt=n):
            kind = err.type.value if err.type else "?"
            return f"{who}: attempt {n} failed: {kind}/{err.category}, retryable={err.retryable}"
        case RecoveryPlanned(strategy=st, wait_s=w):
            return f"{who}: recovery planned: {st}, wait {w:.1f}s"
        case Waiting(reason=reason):
            return f"{who}: waiting: {reason}"[:140]
        case BreakerStateChanged(breaker=b, from_state=f, to_state=t):
            return f"breaker {b}: {f} -> {t}"
        case Restored(recovery_s=s):
            return f"{who}: restored after {s:.1f}s"
        case JobFinished(result=r):
            return f"{who}: finished: {r.state.value}"
        case CliEvent():
            return None
    return None


async def kill_mid_tool(sup: Supervisor, name: str) -> None:
    """SIGKILL the CLI of job ``name`` once, shortly after its Bash tool started: a real crash."""
    async for ev in sup.events():
        rec = sup.jobs.get(ev.job_id) if isinstance(ev, ToolStarted) else None
        if rec is None or rec.name != name:
            continue
        await asyncio.sleep(0.5)
        for p in sup.jobs.open_processes():
            if p.job_id == ev.job_id:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
                    print(f"** fault: SIGKILL to the CLI of {name} (pid {p.pid}) in the middle of its tool")
                return


async def main(work: Path) -> None:
    srv: MockServer | None = None
    env = {
        "HOME": str(work),  # a throw-away home: never the real ~/.claude
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    if os.environ.get("ANTHROPIC_API_KEY"):
        specs = [JobSpec(p, cwd=str(work), name=f"job-{i}") for i, p in enumerate(
            ["Reply with the word: one", "Reply with the word: two", "Reply with the word: three"])]
    else:
        srv = MockServer(host="127.0.0.1", port=0).start()
        env.update(ANTHROPIC_BASE_URL=srv.url, ANTHROPIC_API_KEY="key-for-the-local-stand-in")
        # The stand-in's scripted model: [[bash: ...]] is a Bash tool call, [[text: ...]] the answer.
        specs = [
            JobSpec("Say hello. [[text: hello]]", cwd=str(work), name="hello"),
            JobSpec("Build it. [[bash: sleep 2; echo built]] [[text: built]]", cwd=str(work), name="crash-me"),
            JobSpec("Check it. [[bash: echo ok]] [[text: checked]]", cwd=str(work), name="check"),
        ]
        srv.set_faults(Faults(status=529, count=3))  # the next 3 API requests are "overloaded"
        print("** fault: the API answers the next 3 requests with 529 overloaded")

    config = SupervisorConfig(
        claude=find_cli(),
        store=work / "resurgo.db",
        env=env,
        claude_args=("--allowedTools", "Bash"),
        cli_max_retries=0,  # resurgo, not the CLI, handles every failure
        backoff_base=0.2,
        backoff_cap=1.0,
        stall_timeout=20.0,
        kill_grace=1.0,
    )
    started = time.monotonic()
    names: dict[str, str] = {}
    try:
        async with Supervisor(config=config) as sup:

            async def show_events() -> None:
                async for ev in sup.events():
                    if isinstance(ev, JobQueued) and ev.name:
                        names[ev.job_id] = ev.name
                    try:
                        line = describe(ev, names)
                    except Exception as e:  # a bug in printing must not hide the rest of the run
                        line = f"(cannot describe {type(ev).__name__}: {e!r})"
                    if line:
                        print(f"[{time.monotonic() - started:5.1f}s] {line}", flush=True)

            watcher = asyncio.create_task(show_events())
            killer = asyncio.create_task(kill_mid_tool(sup, "crash-me")) if srv is not None else None
            await asyncio.sleep(0)  # let both subscribe before the jobs are queued
            results = await asyncio.wait_for(sup.run_many(specs, concurrency=3), 60)
            for t in (watcher, killer):
                if t is not None:
                    t.cancel()
            await asyncio.gather(watcher, *([killer] if killer else []), return_exceptions=True)
    finally:
        if srv is not None:
            srv.stop()

    print()
    for r in results:
        print(f"{r.name}: {r.state.value} attempts={r.attempts} recoveries={r.recoveries} "
              f"exit_status={r.exit_status} answer={r.result_text!r}")
    print(f"all done in {time.monotonic() - started:.1f}s")
    if not all(r.ok for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="resurgo-example-") as tmp:
        asyncio.run(main(Path(tmp)))
