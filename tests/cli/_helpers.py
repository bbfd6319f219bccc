"""Helpers for the command-line tests: run ``resurgo`` as a user would, and seed a store.

The commands are always run in a subprocess (``python -m resurgo``) with a
temporary HOME and XDG folders, so the tests see the exit status, stdout and
stderr a user would, and never read or write the real user configuration.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from resurgo.store import Store
from resurgo.supervise._jobstore import JobState, JobStore

SECRET = "sk-ant-api03-SECRETSECRETSECRET0123456789"


def cli_env(tmp: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment with every resurgo location inside ``tmp`` (no RESURGO_* leaks in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESURGO_", "ANTHROPIC_", "XDG_"))}
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    env.update({
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(tmp / "xdg-config"),
        "XDG_STATE_HOME": str(tmp / "xdg-state"),
        "COLUMNS": "200",
        "NO_COLOR": "1",
    })
    env.update(extra or {})
    return env


def resurgo(args: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float = 60,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resurgo", *args], cwd=cwd, env=dict(env), capture_output=True, text=True,
        timeout=timeout, input=input,
    )


def seed_store(path: Path) -> dict[str, Any]:
    """A store with jobs in several states, attempts, events, a recovery and breaker transitions."""
    store = Store(path)
    js = JobStore(store, owner="otherhost:1:1")
    ok = js.create_job("say hello", cwd="/tmp", name="hello", env={"ANTHROPIC_API_KEY": SECRET, "FOO": "bar"})
    js.set_state(ok.id, JobState.RUNNING, claim=True)
    a1 = js.begin_attempt(ok.id, kind="start")
    js.append_supervisor_event(ok.id, "attempt_started", {"n": 1}, attempt_id=a1)
    now = time.time()
    store.execute(
        "INSERT INTO events(job_id, attempt_id, ts, source, type, subtype, data_json) VALUES(?,?,?,?,?,?,?)",
        (ok.id, a1, now, "cli", "assistant", None, json.dumps({
            "type": "assistant",
            "message": {"content": [{"type": "tool_use", "name": "Bash", "input": {"command": "sleep 1; echo step"}}]},
        })),
    )
    rid = js.record_recovery(ok.id, strategy="resume", attempt_id=a1, error_type="overloaded",
                             reason=f"529 overloaded (key {SECRET})")
    js.update_recovery(rid, started_at=now + 1, restored_at=now + 2, succeeded=True)
    js.finish_job(ok.id, JobState.SUCCEEDED, result={"type": "result", "result": "hello!", "is_error": False})
    failed = js.create_job("do the impossible", cwd="/tmp", name="impossible")
    js.set_state(failed.id, JobState.RUNNING, claim=True)
    js.finish_job(failed.id, JobState.FAILED, reason="gave up after 5 recoveries")
    running = js.create_job("long task", cwd="/tmp", name="long")
    js.set_state(running.id, JobState.RUNNING, claim=True)
    pending = js.create_job("later", cwd="/tmp", name="later")
    store.execute(
        "INSERT INTO breaker_transitions(breaker, ts, from_state, to_state, reason) VALUES(?,?,?,?,?)",
        ("http://127.0.0.1:1", now, "closed", "open", "failure rate 100% >= 50%"),
    )
    store.close()
    return {"ok": ok.id, "failed": failed.id, "running": running.id, "pending": pending.id}
