"""Read models of jobs for people: the jobs table and one job's timeline.

These return plain dicts (JSON-ready) with the store's JSON columns decoded,
because their consumers (the dashboard's API, ``resurgo show``) print or ship
them as they are.  They do not redact: whoever shows them to a person must
pass them through :func:`resurgo.observe.redact_obj` first (the dashboard does
so for every response).
"""

from __future__ import annotations

import json
from typing import Any

from resurgo.observe._metrics import Window
from resurgo.store import Store
from resurgo.store.runs import summarize_phases

_JOB_LIST_COLUMNS = (
    "id, batch_id, name, model, endpoint, state, session_id, attempts, recoveries,"
    " created_at, started_at, finished_at, updated_at, reason"
)


def _decode(text: str | None) -> Any:
    """JSON column -> value; a column that is not valid JSON is returned as text, not dropped."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def list_jobs(
    store: Store,
    win: Window | None = None,
    *,
    state: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Newest jobs first; with a window, the jobs that were alive at some point in it."""
    where: list[str] = []
    params: list[Any] = []
    if win is not None:
        where.append("created_at < ? AND (finished_at IS NULL OR finished_at >= ?)")
        params += [win.end, win.start]
    if state:
        where.append("state = ?")
        params.append(state)
    sql = f"SELECT {_JOB_LIST_COLUMNS} FROM jobs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_at DESC, id LIMIT ?"
    params.append(max(0, int(limit)))
    return [dict(r) for r in store.query(sql, params)]


def job_detail(store: Store, job_id: str, *, max_events: int = 2000) -> dict[str, Any] | None:
    """Everything about one job, in time order: attempts, events, recoveries and errors.

    Events are capped (newest ``max_events`` kept) because a long session can
    log tens of thousands and the timeline only needs their shape;
    ``events_total`` tells the reader how many there were.
    """
    rows = store.query("SELECT * FROM jobs WHERE id = ?", (job_id,))
    if not rows:
        return None
    job = dict(rows[0])
    for col in ("args_json", "env_json", "result_json", "error_json"):
        job[col.removesuffix("_json")] = _decode(job.pop(col))
    attempts = []
    for r in store.query("SELECT * FROM attempts WHERE job_id = ? ORDER BY n, id", (job_id,)):
        a = dict(r)
        a["error"] = _decode(a.pop("error_json"))
        attempts.append(a)
    total = int(store.query("SELECT COUNT(*) FROM events WHERE job_id = ?", (job_id,))[0][0])
    events = []
    for r in store.query(
        "SELECT * FROM (SELECT id, attempt_id, ts, source, type, subtype, data_json FROM events"
        " WHERE job_id = ? ORDER BY id DESC LIMIT ?) ORDER BY id",
        (job_id, max(0, int(max_events))),
    ):
        e = dict(r)
        e["data"] = _decode(e.pop("data_json"))
        events.append(e)
    recoveries = [
        dict(r)
        for r in store.query("SELECT * FROM recoveries WHERE job_id = ? ORDER BY detected_at, id", (job_id,))
    ]
    errors = [
        dict(r) for r in store.query("SELECT * FROM errors WHERE job_id = ? ORDER BY ts, id", (job_id,))
    ]
    phases = store.recovery_phases(job_id)
    return {
        "job": job,
        "attempts": attempts,
        "events": events,
        "events_total": total,
        "recoveries": recoveries,
        "recovery_phases": [p.to_dict() for p in phases],
        "phases_by_fault": summarize_phases(phases),
        "errors": errors,
    }
