"""``resurgo status|jobs|show|cleanup|resume|cancel``: looking at and acting on stored jobs.

The read-only commands only read the SQLite store (WAL lets them run while a
supervisor writes), so they are safe to run at any time, from any shell, and
work after a supervisor crashed — which is exactly when people need them.
Everything shown passes through redaction: prompts and events may quote keys.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import click

from resurgo.cli._common import (
    EXIT_OK,
    STATE_STYLE,
    ago,
    clock_time,
    console,
    fail,
    human_seconds,
    json_option,
    open_store,
    print_json,
    resolve_job,
    store_option,
    store_path,
)

_STATES = ("pending", "running", "recovering", "waiting", "succeeded", "failed", "cancelled", "interrupted")
_ACTIVE = ("running", "recovering", "waiting")


def _r(text: Any) -> str:
    """Redacted and escaped for rich markup: a prompt containing ``[red]`` must print as typed."""
    from rich.markup import escape

    from resurgo.observe import redact

    return escape(redact(str(text))) if text is not None else ""


def _red(text: str) -> str:
    from resurgo.observe import redact

    return redact(text)


def _short(text: str | None, n: int = 80) -> str:
    if not text:
        return ""
    one = " ".join(str(text).split())
    return one if len(one) <= n else one[: n - 1] + "…"


def _load_json(s: str | None) -> Any:
    if s is None:
        return None
    try:
        return json.loads(s)
    except ValueError:
        return s


def _tool_summary(block: dict[str, Any]) -> str:
    inp = block.get("input") if isinstance(block.get("input"), dict) else {}
    assert isinstance(inp, dict)
    for k in ("command", "file_path", "path", "pattern", "url", "description", "prompt"):
        if isinstance(inp.get(k), str):
            return _short(inp[k], 60)
    return ""


def phase(store: Any, job_id: str, state: str) -> str:
    """What an active job is doing now, from its newest events: the last tool, or why it waits."""
    rows = store.query(
        "SELECT source, type, subtype, data_json, ts FROM events WHERE job_id=? ORDER BY id DESC LIMIT 200",
        (job_id,),
    )
    for r in rows:
        data = _load_json(r["data_json"])
        if not isinstance(data, dict):
            continue
        if r["source"] == "supervisor" and state in ("waiting", "recovering"):
            until = data.get("until_ts")
            why = data.get("reason") or data.get("action") or r["type"]
            if state == "waiting" and isinstance(until, int | float):
                return _red(f"waiting until {clock_time(until)} ({_short(str(why), 60)})")
            return _red(f"{state}: {_short(str(why), 70)}")
        if r["source"] == "cli" and r["type"] == "assistant":
            msg = data.get("message") if isinstance(data.get("message"), dict) else {}
            assert isinstance(msg, dict)
            for block in reversed(msg.get("content") or []):
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    return _red(f"working: {block.get('name')} {_tool_summary(block)}".strip())
    return "starting" if state == "running" else state


# -- status ------------------------------------------------------------------------------------
@click.command("status")
@store_option
@json_option
def status_cmd(store_opt: Path | None, as_json: bool) -> None:
    """Counts of jobs per state, what the active jobs are doing, breaker states and live supervisors' health."""
    from resurgo.supervise._health_store import read_health
    from resurgo.supervise._jobstore import owner_alive

    path = store_path(store_opt)
    if not path.exists():
        if as_json:
            print_json({"store": str(path), "exists": False, "counts": {}, "active": [], "breakers": [],
                        "health": []})
        else:
            click.echo(f"no runs yet: the store {path} does not exist")
        return
    store = open_store(path)
    try:
        counts = {s: 0 for s in _STATES}
        for r in store.query("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
            counts[str(r[0])] = int(r[1])
        active = []
        for r in store.query(
            f"SELECT id, name, state, attempts, recoveries, started_at, owner FROM jobs "
            f"WHERE state IN ({','.join('?' * len(_ACTIVE))}) ORDER BY created_at",
            _ACTIVE,
        ):
            active.append({
                "id": r["id"], "name": r["name"], "state": r["state"], "attempts": r["attempts"],
                "recoveries": r["recoveries"], "started_at": r["started_at"],
                "phase": phase(store, r["id"], r["state"]),
                "owner_alive": owner_alive(r["owner"]),
            })
        breakers = [
            dict(b) for b in store.query(
                "SELECT breaker, to_state AS state, ts, reason FROM breaker_transitions t WHERE id = "
                "(SELECT MAX(id) FROM breaker_transitions WHERE breaker = t.breaker) ORDER BY breaker"
            )
        ]
        now = time.time()
        health = [h.to_dict(now) for h in read_health(store, is_alive=owner_alive)]
    finally:
        store.close()
    if as_json:
        print_json({"store": str(path), "exists": True, "counts": counts, "active": active, "breakers": breakers,
                    "health": health})
        return
    from rich.table import Table

    out = console()
    out.print(f"[bold]store[/]: {path}")
    total = sum(counts.values())
    parts = [f"[{STATE_STYLE.get(s, '')}]{s} {n}[/]" for s, n in counts.items() if n]
    out.print(f"[bold]jobs[/]: {total}" + ("  (" + ", ".join(parts) + ")" if parts else ""))
    if active:
        t = Table(title="active jobs", title_justify="left")
        for col in ("job", "name", "state", "attempts", "recoveries", "running for", "phase"):
            t.add_column(col)
        for a in active:
            note = "" if a["owner_alive"] else " [red](its supervisor is gone: `resurgo cleanup`)[/]"
            t.add_row(a["id"][:12], _r(a["name"] or ""), f"[{STATE_STYLE[a['state']]}]{a['state']}[/]",
                      str(a["attempts"]), str(a["recoveries"]),
                      human_seconds(time.time() - a["started_at"]) if a["started_at"] else "-",
                      _r(_short(a["phase"], 60)) + note)
        out.print(t)
    if breakers:
        t = Table(title="breakers", title_justify="left")
        for col in ("endpoint", "state", "since", "reason"):
            t.add_column(col)
        for b in breakers:
            style = {"closed": "green", "open": "red", "half_open": "yellow"}.get(str(b["state"]), "")
            t.add_row(_r(b["breaker"]), f"[{style}]{b['state']}[/]", ago(b["ts"]), _short(_r(b["reason"]), 60))
        out.print(t)
    else:
        out.print("breakers: none recorded (every endpoint closed)")
    if health:
        owners = sorted({h["owner"] for h in health})
        t = Table(title="health", title_justify="left")
        cols = (["supervisor"] if len(owners) > 1 else []) + ["component", "state", "detail", "checked"]
        for col in cols:
            t.add_column(col)
        for h in health:
            row = [_r(h["owner"])] if len(owners) > 1 else []
            row += [_r(h["component"]), f"[{HEALTH_STYLE.get(h['state'], '')}]{_r(h['state'])}[/]",
                    _r(_short(h["detail"], 60)), ago(h["ts"])]
            t.add_row(*row)
        out.print(t)
    else:
        out.print("health: no live supervisor is reporting")


HEALTH_STYLE = {"healthy": "green", "degraded": "yellow", "unhealthy": "bold red"}


# -- jobs --------------------------------------------------------------------------------------
@click.command("jobs")
@click.option("--state", "states", multiple=True, type=click.Choice(_STATES),
              help="Only jobs in this state (repeatable).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1), help="Newest N jobs.")
@store_option
@json_option
def jobs_cmd(states: tuple[str, ...], limit: int, store_opt: Path | None, as_json: bool) -> None:
    """List jobs, newest first."""
    path = store_path(store_opt)
    if not path.exists():
        if as_json:
            print_json([])
        else:
            click.echo(f"no runs yet: the store {path} does not exist")
        return
    store = open_store(path)
    try:
        sql = ("SELECT id, batch_id, name, idem_key, model, endpoint, state, session_id, attempts, recoveries,"
               " created_at, started_at, finished_at, updated_at, reason, prompt FROM jobs")
        params: list[Any] = []
        if states:
            sql += f" WHERE state IN ({','.join('?' * len(states))})"
            params += list(states)
        sql += " ORDER BY created_at DESC, id LIMIT ?"
        params.append(limit)
        rows = [dict(r) for r in store.query(sql, params)]
    finally:
        store.close()
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("no jobs" + (f" in state {', '.join(states)}" if states else ""))
        return
    from rich.table import Table

    t = Table()
    for col in ("job", "name / prompt", "state", "att", "rec", "created", "took", "reason"):
        t.add_column(col, no_wrap=col in ("job", "state"))
    for r in rows:
        took = (r["finished_at"] or time.time()) - r["started_at"] if r["started_at"] else None
        t.add_row(
            r["id"][:12], _short(_r(r["name"] or r["prompt"]), 40),
            f"[{STATE_STYLE.get(r['state'], '')}]{r['state']}[/]", str(r["attempts"]), str(r["recoveries"]),
            ago(r["created_at"]), human_seconds(took), _short(_r(r["reason"]), 50),
        )
    console().print(t)


# -- show --------------------------------------------------------------------------------------
def _describe(ev: dict[str, Any]) -> str:
    """One line per event for the timeline: what happened, without the raw JSON."""
    data = ev.get("data")
    src, typ, sub = ev.get("source"), ev.get("type"), ev.get("subtype")
    if not isinstance(data, dict):
        return _r(f"unparseable output: {_short(str(data), 70)}")
    if src != "supervisor":
        return _r(_describe_cli(data, typ, sub))
    bits = [f"{k}={_short(str(v), 60)}" for k, v in data.items()
            if k not in ("type", "subtype", "job_id", "ts") and v not in (None, "", [], {})]
    return f"[bold]{_r(typ)}{'/' + _r(sub) if sub else ''}[/] " + _r(", ".join(bits[:6]))


def _describe_cli(data: dict[str, Any], typ: Any, sub: Any) -> str:
    if typ == "system" and sub == "init":
        return f"session {data.get('session_id', '?')} started (model {data.get('model', '?')})"
    if typ == "system" and sub == "api_retry":
        return f"CLI retries the API ({_short(json.dumps({k: v for k, v in data.items() if k != 'type'}), 70)})"
    if typ == "assistant":
        msg = data.get("message") if isinstance(data.get("message"), dict) else {}
        assert isinstance(msg, dict)
        parts = []
        for b in msg.get("content") or []:
            if isinstance(b, dict) and b.get("type") == "tool_use":
                parts.append(f"tool {b.get('name')}: {_tool_summary(b)}")
            elif isinstance(b, dict) and b.get("type") == "text":
                parts.append(f"says: {_short(b.get('text'), 60)}")
        return "; ".join(parts) or "assistant message"
    if typ == "user":
        return "tool result"
    if typ == "result":
        return (f"result {sub or ''} is_error={data.get('is_error')} turns={data.get('num_turns')}"
                f" cost=${data.get('total_cost_usd', 0) or 0:.4f}: {_short(data.get('result'), 50)}")
    return f"{typ}{'/' + sub if sub else ''}"


@click.command("show")
@click.argument("job")
@click.option("--events", "max_events", default=60, show_default=True, type=click.IntRange(min=0),
              help="How many of the newest events the timeline shows.")
@store_option
@json_option
def show_cmd(job: str, max_events: int, store_opt: Path | None, as_json: bool) -> None:
    """One job: its record, attempts, recoveries and a timeline of events (secrets redacted).

    JOB is a job id, a unique prefix of one, or a unique job name.
    """
    from resurgo.observe import job_detail, redact_obj

    store = open_store(store_path(store_opt), create=False)
    try:
        jid = resolve_job(store, job)
        detail = job_detail(store, jid, max_events=max_events if not as_json else 100_000)
    finally:
        store.close()
    if detail is None:  # deleted between the two queries
        fail(f"job {job!r} disappeared from the store")
    detail = redact_obj(detail)
    if as_json:
        print_json(detail)
        return
    from rich.table import Table

    out = console()
    j = detail["job"]
    out.print(f"[bold]job[/] {j['id']}" + (f"  ([bold]{_r(j['name'])}[/])" if j.get("name") else ""))
    out.print(f"  state      [{STATE_STYLE.get(j['state'], '')}]{j['state']}[/]"
              + (f" — {_r(_short(j['reason'], 100))}" if j.get("reason") else ""))
    out.print(f"  prompt     {_r(_short(j['prompt'], 100))}")
    out.print(f"  cwd        {_r(j['cwd'])}" + (f"   model {_r(j['model'])}" if j.get("model") else ""))
    if j.get("args"):
        out.print(f"  claude args {_r(' '.join(map(str, j['args'])))}")
    if j.get("env"):
        out.print("  env        " + _r(" ".join(f"{k}={v}" for k, v in j["env"].items())))
    out.print(f"  session    {_r(j.get('session_id') or '-')}   endpoint {_r(j.get('endpoint') or '-')}")
    took = (j["finished_at"] or time.time()) - j["started_at"] if j.get("started_at") else None
    out.print(f"  created    {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(j['created_at']))}"
              f"   took {human_seconds(took)}   attempts {j['attempts']}   recoveries {j['recoveries']}")
    if j.get("result_text"):
        out.print(f"  result     {_r(_short(j['result_text'], 200))}")
    if j.get("error"):
        e = j["error"]
        out.print(f"  error      [red]{_r(e.get('type'))}[/] ({_r(e.get('category') or '')}) "
                  + _r(_short(e.get("description"), 80)))
    if detail["attempts"]:
        t = Table(title="attempts", title_justify="left")
        for col in ("#", "kind", "started", "took", "exit", "signal", "killed by", "outcome", "error"):
            t.add_column(col)
        for a in detail["attempts"]:
            took = (a["ended_at"] - a["started_at"]) if a.get("ended_at") else None
            err = a.get("error") or {}
            t.add_row(str(a["n"]), a["kind"], clock_time(a["started_at"]), human_seconds(took),
                      str(a["exit_code"] if a["exit_code"] is not None else "-"), str(a["signal"] or "-"),
                      a.get("killed_by") or "-", a.get("outcome") or "running",
                      str(err.get("type") or "") if isinstance(err, dict) else "")
        out.print(t)
    if detail["recoveries"]:
        t = Table(title="recoveries", title_justify="left")
        for col in ("detected", "error", "strategy", "waited", "restored after", "ok", "reason"):
            t.add_column(col)
        for r in detail["recoveries"]:
            restored = r["restored_at"] - r["detected_at"] if r.get("restored_at") else None
            ok = {1: "[green]yes[/]", 0: "[red]no[/]"}.get(r.get("succeeded"), "…")
            t.add_row(clock_time(r["detected_at"]), r.get("error_type") or "-", r["strategy"],
                      human_seconds(r.get("waited_s") or 0), human_seconds(restored), ok,
                      _r(_short(r.get("reason"), 50)))
        out.print(t)
    if detail.get("recovery_phases"):
        # where each recovery's time went: fault -> noticed -> waits -> CLI started -> first event -> caught up
        t = Table(title="recovery phases (s)", title_justify="left")
        # a relay retry started no CLI: its "start" is the retried request's wait for the API
        for col in ("fault", "detect", "imposed", "backoff", "budget", "other", "start", "redo", "lost tools",
                    "total", "excl. imposed"):
            t.add_column(col, justify="left" if col == "fault" else "right")
        for ph in detail["recovery_phases"]:
            kind = ph["fault_kind"] + (" (relay)" if ph.get("strategy") == "relay_retry" else "")
            t.add_row(kind, *(_secs(ph.get(k)) for k in (
                "detect_s", "imposed_s", "backoff_s", "budget_s", "overhead_s", "start_s", "redo_s")),
                "-" if ph.get("lost_tools") is None else str(ph["lost_tools"]),
                _secs(ph.get("recovery_s")), _secs(ph.get("recovery_excl_imposed_s")))
        out.print(t)
    evs = detail["events"]
    if evs:
        total = detail["events_total"]
        title = f"timeline (last {len(evs)} of {total} events)" if total > len(evs) else "timeline"
        out.print(f"[bold]{title}[/]")
        for ev in evs:
            src = "sup" if ev["source"] == "supervisor" else "cli"
            out.print(f"  {clock_time(ev['ts'])} [dim]{src}[/] " + _describe(ev))


def _secs(v: Any) -> str:
    return "-" if v is None else f"{float(v):.2f}"


# -- cleanup -----------------------------------------------------------------------------------
@click.command("cleanup")
@store_option
@json_option
def cleanup_cmd(store_opt: Path | None, as_json: bool) -> None:
    """End what dead supervisors left behind: interrupt their jobs, end their processes, remove temp folders.

    Safe while other supervisors run: processes and jobs of a live supervisor
    are recognised (pid and start time) and left alone.
    """
    from resurgo._private_dir import default_tmp_root
    from resurgo.supervise._cleanup import ResourceCleaner
    from resurgo.supervise._jobstore import JobStore

    store = open_store(store_path(store_opt))
    try:
        cleaner = ResourceCleaner(JobStore(store), tmp_root=default_tmp_root())
        rep = asyncio.run(cleaner.startup())
    finally:
        store.close()
    data = {
        "interrupted_jobs": rep.interrupted_jobs, "ended_processes": rep.ended_processes,
        "stale_records": rep.stale_records, "reaped": rep.reaped, "removed_tmp": rep.removed_tmp,
        "left_running": rep.left, "stale_health_rows": rep.stale_health,
    }
    if as_json:
        print_json(data)
        return
    out = console()
    if not any(data.values()):
        out.print("nothing to clean up")
        return
    if rep.interrupted_jobs:
        out.print(f"marked {len(rep.interrupted_jobs)} orphaned job(s) interrupted (resume with `resurgo resume JOB`): "
                  + ", ".join(j[:12] for j in rep.interrupted_jobs))
    if rep.ended_processes:
        out.print(f"ended {len(rep.ended_processes)} leftover process(es): {', '.join(map(str, rep.ended_processes))}")
    if rep.stale_records:
        out.print(f"closed {rep.stale_records} record(s) of processes that had already exited")
    if rep.reaped:
        out.print(f"reaped {len(rep.reaped)} zombie(s)")
    if rep.removed_tmp:
        out.print(f"removed {len(rep.removed_tmp)} leaked temp folder(s)")
    if rep.stale_health:
        out.print(f"removed {rep.stale_health} health record(s) of dead supervisors")
    if rep.left:
        out.print(f"[red]could not end {len(rep.left)} process(es)[/]: {', '.join(map(str, rep.left))}")


# -- cancel ------------------------------------------------------------------------------------
@click.command("cancel")
@click.argument("job")
@store_option
def cancel_cmd(job: str, store_opt: Path | None) -> None:
    """Cancel a job: pending or interrupted ones at once; a running one by ending its CLI.

    A job run by another live supervisor is marked cancelled in the store and
    its CLI process group is sent SIGTERM; that supervisor sees the attempt end,
    finds the job cancelled and does not recover it.
    """
    from resurgo.supervise._jobstore import ACTIVE_STATES, JobState, JobStore, owner_alive

    store = open_store(store_path(store_opt), create=False)
    try:
        js = JobStore(store)
        jid = resolve_job(store, job)
        rec = js.require(jid)
        if rec.state.terminal:
            click.echo(f"job {jid[:12]} already {rec.state.value}; nothing to cancel")
            return
        alive = rec.state in ACTIVE_STATES and owner_alive(rec.owner)
        if not js.set_state(jid, JobState.CANCELLED, reason="cancelled with `resurgo cancel`",
                            expect=[s for s in JobState if not s.terminal]):
            fail(f"job {jid[:12]} changed state meanwhile; run the command again")
        ended = _signal_job_processes(js, jid) if alive or rec.state in ACTIVE_STATES else []
    finally:
        store.close()
    if alive:
        click.echo(f"cancelled job {jid[:12]}: it was {rec.state.value} under supervisor {rec.owner}; "
                   f"sent SIGTERM to its CLI process group(s) {ended or '(none found)'}")
    elif rec.state in ACTIVE_STATES:
        click.echo(f"cancelled job {jid[:12]}: its supervisor {rec.owner or '?'} is gone"
                   + (f"; ended leftover process group(s) {ended}" if ended else ""))
    else:
        click.echo(f"cancelled job {jid[:12]} (was {rec.state.value})")


def _signal_job_processes(js: Any, job_id: str) -> list[int]:
    """SIGTERM the recorded, still-running process groups of a job (pid and start time checked)."""
    from resurgo._procs import same_process

    sent: list[int] = []
    for p in js.open_processes():
        if p.job_id != job_id or not same_process(p.pid, p.start_time):
            continue
        try:
            # the group only while the recorded process (checked above by pid and start time) is still in
            # it: then the kernel cannot have handed the group id to anyone else
            in_group = bool(p.pgid) and os.getpgid(p.pid) == p.pgid
            if in_group and p.pgid != os.getpgid(0):
                os.killpg(p.pgid, signal.SIGTERM)
                sent.append(p.pgid)
            else:
                os.kill(p.pid, signal.SIGTERM)
                sent.append(p.pid)
        except ProcessLookupError:
            pass
        except PermissionError:
            fail(f"not allowed to signal process {p.pid} of job {job_id[:12]}")
    return sent


# -- resume ------------------------------------------------------------------------------------
@click.command("resume")
@click.argument("job")
@store_option
@json_option
def resume_cmd(job: str, store_opt: Path | None, as_json: bool) -> None:
    """Continue an interrupted or failed job in its own session, with live progress.

    Exit status as for `resurgo run`.
    """
    from resurgo.cli._run import run_supervised

    path = store_path(store_opt)
    store = open_store(path, create=False)
    try:
        jid = resolve_job(store, job)
        row = store.query("SELECT state FROM jobs WHERE id=?", (jid,))[0]
    finally:
        store.close()
    if row["state"] == "succeeded":
        click.echo(f"job {jid[:12]} already succeeded; nothing to resume")
        raise SystemExit(EXIT_OK)
    code = run_supervised(path, lambda sup: sup.resume(jid), as_json=as_json, label=f"resume {jid[:12]}")
    raise SystemExit(code)


__all__ = ["cancel_cmd", "cleanup_cmd", "jobs_cmd", "phase", "resume_cmd", "show_cmd", "status_cmd"]
