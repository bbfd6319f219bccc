"""A small synthetic run store whose metrics are worked out by hand in test_metrics.py.

Times are offsets from ``t0``; the reference window is ``[t0, t0 + 3600)`` with
``now = t0 + 3600``.  ``busy=True`` adds deterministic extra traffic (more jobs,
errors, recoveries) so the dashboard has something worth looking at; the
hand-computed numbers only hold for ``busy=False``.
"""

from __future__ import annotations

import json
import random
from typing import Any

from resurgo.store import Store
from resurgo.store.schema import ensure_schema

#: The reference window is [T0, NOW): the hand-computed numbers in the tests assume it.
T0 = 1_700_000_000.0
NOW = T0 + 3600

SECRET_KEY = "sk-ant-api03-SYNTHETICsecretVALUE_123"
SECRET_ARG = "hunter2-password"


def _job(store: Store, t0: float, jid: str, name: str, state: str, started: float | None,
         finished: float | None, attempts: int, recoveries: int, created: float | None = None,
         reason: str | None = None, env: dict[str, str] | None = None,
         args: list[str] | None = None) -> None:
    created_at = t0 + (created if created is not None else (started or 0) - 1)
    store.execute(
        "INSERT INTO jobs(id, name, prompt, args_json, cwd, env_json, model, endpoint, state,"
        " session_id, attempts, recoveries, created_at, started_at, finished_at, updated_at, reason)"
        " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (jid, name, f"do {name}", json.dumps(args or []), "/tmp/work", json.dumps(env or {}),
         "claude-opus", "http://127.0.0.1:9", state, f"sess-{jid}", attempts, recoveries,
         created_at, None if started is None else t0 + started,
         None if finished is None else t0 + finished,
         t0 + (finished if finished is not None else (started or 0)), reason),
    )


def _attempt(store: Store, t0: float, jid: str, n: int, kind: str, start: float, first: float | None,
             end: float | None, outcome: str | None, killed_by: str | None = None) -> int:
    cur = store.execute(
        "INSERT INTO attempts(job_id, n, kind, session_id, pid, started_at, first_event_at, ended_at,"
        " outcome, killed_by, exit_code) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
        (jid, n, kind, f"sess-{jid}", 1000 + n, t0 + start, None if first is None else t0 + first,
         None if end is None else t0 + end, outcome, killed_by,
         0 if outcome == "succeeded" else (None if outcome is None else 1)),
    )
    return int(cur.lastrowid or 0)


def _rec(store: Store, t0: float, jid: str, strategy: str, detected: float, restored: float | None,
         waited: float, succeeded: int | None, error_type: str, signature: str,
         attempt_id: int | None = None) -> None:
    store.execute(
        "INSERT INTO recoveries(job_id, attempt_id, strategy, error_type, signature, detected_at,"
        " started_at, restored_at, waited_s, succeeded, reason) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
        (jid, attempt_id, strategy, error_type, signature, t0 + detected, t0 + detected + waited,
         None if restored is None else t0 + restored, waited, succeeded, None),
    )


def _err(store: Store, t0: float, ts: float, jid: str | None, etype: str, retryable: int, sig: str,
         message: str) -> None:
    store.execute(
        "INSERT INTO errors(ts, job_id, type, severity, retryable, rule, signature, message)"
        " VALUES(?,?,?,?,?,?,?,?)",
        (t0 + ts, jid, etype, "medium", retryable, "synthetic", sig, message),
    )


def _event(store: Store, t0: float, jid: str, attempt_id: int | None, ts: float, source: str,
           etype: str, subtype: str | None, data: dict[str, Any]) -> None:
    store.execute(
        "INSERT INTO events(job_id, attempt_id, ts, source, type, subtype, data_json)"
        " VALUES(?,?,?,?,?,?,?)",
        (jid, attempt_id, t0 + ts, source, etype, subtype, json.dumps(data)),
    )


def _trans(store: Store, t0: float, breaker: str, ts: float, frm: str, to: str, reason: str) -> None:
    store.execute(
        "INSERT INTO breaker_transitions(breaker, ts, from_state, to_state, reason) VALUES(?,?,?,?,?)",
        (breaker, t0 + ts, frm, to, reason),
    )


def _retry(store: Store, t0: float, ts: float, scope: str, attempts: int, ok: int, slept: float,
           why: str | None = None) -> None:
    store.execute(
        "INSERT INTO retries(ts, scope, attempts, succeeded, give_up_reason, slept_s)"
        " VALUES(?,?,?,?,?,?)",
        (t0 + ts, scope, attempts, ok, why, slept),
    )


def build(store: Store, t0: float, *, busy: bool = False) -> None:
    """Fill ``store`` with the reference data set (see the module docstring)."""
    ensure_schema(store)
    env = {"ANTHROPIC_API_KEY": SECRET_KEY, "ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "HOME": "/tmp/h"}
    _job(store, t0, "j1", "refactor-parser", "succeeded", 0, 1000, 2, 1, env=env,
         args=["--model", "opus", "--api-key", SECRET_ARG])
    _job(store, t0, "j2", "write-tests", "succeeded", 200, 1200, 3, 2)
    _job(store, t0, "j3", "migrate-db", "failed", 400, 900, 2, 1, reason="resume failed twice")
    _job(store, t0, "j4", "deploy-docs", "failed", 1000, 1600, 1, 0, reason="auth: invalid API key")
    _job(store, t0, "j5", "long-analysis", "recovering", 3000, None, 1, 1)
    _job(store, t0, "j6", "queued-report", "pending", None, None, 0, 0, created=3550)
    _job(store, t0, "j7", "abandoned", "cancelled", 2000, 2100, 1, 0, reason="cancelled by user")

    a1 = _attempt(store, t0, "j1", 1, "start", 0, 1, 100, "failed")
    a2 = _attempt(store, t0, "j1", 2, "resume", 105, 110, 1000, "succeeded")
    a3 = _attempt(store, t0, "j2", 1, "start", 200, 201, 300, "failed")
    _attempt(store, t0, "j2", 2, "resume", 325, 330, 500, "failed", killed_by="signal")
    _attempt(store, t0, "j2", 3, "restart", 501, 502, 1200, "succeeded")
    a6 = _attempt(store, t0, "j3", 1, "start", 400, 401, 600, "failed", killed_by="stall")
    _attempt(store, t0, "j3", 2, "resume", 601, None, 605, "failed")
    _attempt(store, t0, "j4", 1, "start", 1000, 1001, 1600, "failed")
    a9 = _attempt(store, t0, "j5", 1, "start", 3000, 3001, 3500, "lost")
    _attempt(store, t0, "j7", 1, "start", 2000, 2001, 2100, "cancelled")

    _rec(store, t0, "j1", "resume_session", 100, 110, 4, 1, "network", "net:reset", a1)
    _rec(store, t0, "j2", "wait_until", 300, 330, 20, 1, "resource", "rate:429", a3)
    _rec(store, t0, "j2", "restart_process", 500, 502, 0, 1, "process", "proc:sigkill")
    _rec(store, t0, "j3", "resume_session", 600, None, 0, 0, "timeout", "stall", a6)
    _rec(store, t0, "j5", "resume_session", 3500, None, 0, None, "process", "proc:sigkill", a9)

    _err(store, t0, -100, None, "network", 1, "net:reset", "connection reset (before the window)")
    _err(store, t0, 100, "j1", "network", 1, "net:reset", "ECONNRESET")
    _err(store, t0, 300, "j2", "resource", 1, "rate:429", "429 rate_limit_error")
    _err(store, t0, 310, "j2", "resource", 1, "rate:429", "429 rate_limit_error again")
    _err(store, t0, 500, "j2", "process", 1, "proc:sigkill", "killed by SIGKILL")
    _err(store, t0, 600, "j3", "timeout", 1, "stall", "no event for 60 s")
    _err(store, t0, 1500, "j4", "auth", 0, "auth:401", f"401 Invalid API key {SECRET_KEY}")
    _err(store, t0, 3500, "j5", "process", 1, "proc:sigkill", "killed by SIGKILL")

    _trans(store, t0, "api", 300, "closed", "open", "failure rate 60% >= 50%")
    _trans(store, t0, "api", 330, "open", "half_open", "wait elapsed")
    _trans(store, t0, "api", 332, "half_open", "closed", "probes succeeded")
    _trans(store, t0, "api", 3500, "closed", "open", "failure rate 75% >= 50%")
    _trans(store, t0, "model:opus", -500, "closed", "open", "overloaded")
    _trans(store, t0, "model:opus", 50, "open", "half_open", "wait elapsed")
    _trans(store, t0, "model:opus", 60, "half_open", "open", "probe failed")
    _trans(store, t0, "model:opus", 120, "OPEN", "HALF_OPEN", "wait elapsed")
    _trans(store, t0, "model:opus", 125, "CircuitState.HALF_OPEN", "CircuitState.CLOSED", "probes ok")

    _retry(store, t0, 100, "j1", 2, 1, 1.5)
    _retry(store, t0, 300, "api", 3, 1, 20.0)
    _retry(store, t0, 600, "j3", 4, 0, 7.0, "budget exhausted")
    _retry(store, t0, 700, "fn", 1, 1, 0.0)

    _event(store, t0, "j1", a1, 1, "cli", "system", "init",
           {"session_id": "sess-j1", "apiKeySource": "ANTHROPIC_API_KEY", "model": "claude-opus"})
    _event(store, t0, "j1", a1, 50, "cli", "assistant", None,
           {"message": {"content": [{"type": "tool_use", "name": "Bash"}],
                        "usage": {"input_tokens": 120, "output_tokens": 30}}})
    _event(store, t0, "j1", a1, 100, "supervisor", "failure", "detected",
           {"error": "ECONNRESET", "env": {"ANTHROPIC_API_KEY": SECRET_KEY}})
    _event(store, t0, "j1", a2, 110, "cli", "system", "init", {"session_id": "sess-j1"})
    _event(store, t0, "j1", a2, 999, "cli", "result", "success",
           {"result": "done", "total_cost_usd": 0.01, "note": f"key was {SECRET_KEY}"})

    if busy:
        _busy(store, t0)


def _busy(store: Store, t0: float) -> None:
    rnd = random.Random(7)
    types = ["network", "timeout", "resource", "process", "resource", "network"]
    strategies = ["resume_session", "restart_process", "wait_until", "resume_session"]
    for i in range(24):
        jid = f"b{i:02d}"
        start = 60 + i * 140 + rnd.uniform(0, 40)
        dur = rnd.uniform(200, 700)
        end = min(start + dur, 3590)
        nrec = rnd.choice([0, 0, 1, 1, 2])
        ok = rnd.random() < 0.85
        _job(store, t0, jid, f"batch-task-{i:02d}", "succeeded" if ok else "failed", start, end,
             1 + nrec, nrec)
        _attempt(store, t0, jid, 1, "start", start, start + 1, end, "succeeded" if ok else "failed")
        for k in range(nrec):
            d = start + (k + 1) * dur / (nrec + 2)
            et = rnd.choice(types)
            waited = rnd.uniform(5, 40) if et == "resource" else 0.0
            took = waited + rnd.uniform(0.4, 6.0)
            _rec(store, t0, jid, rnd.choice(strategies), d, d + took, waited,
                 1 if rnd.random() < 0.9 else 0, et, f"{et}:{k}")
            _err(store, t0, d, jid, et, 1, f"{et}:{rnd.randint(0, 2)}", f"synthetic {et} failure")
    for _ in range(40):
        et = rnd.choice(types)
        _err(store, t0, rnd.uniform(0, 3590), None, et, 1, f"{et}:api", f"api retry: {et}")
    _trans(store, t0, "endpoint:fallback", 1800, "closed", "open", "failure rate 80%")
    _trans(store, t0, "endpoint:fallback", 1860, "open", "half_open", "wait elapsed")
    _trans(store, t0, "endpoint:fallback", 1862, "half_open", "open", "probe failed")
    _trans(store, t0, "endpoint:fallback", 1982, "open", "half_open", "wait elapsed")
    _trans(store, t0, "endpoint:fallback", 1985, "half_open", "closed", "probes ok")
    for i in range(12):
        _retry(store, t0, 200 + i * 250, f"api:{i}", rnd.randint(1, 4), int(rnd.random() < 0.8),
               rnd.uniform(0, 10))
