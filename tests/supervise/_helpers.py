"""Helpers for the supervision tests: plain child processes and "is anything left?" checks."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from resurgo._procs import env_marked, proc_ids
from resurgo.supervise._process import ATTEMPT_ENV, AttemptSpec, Liveness

PY = sys.executable


def py(code: str, tmp_path: Path, **kw: object) -> AttemptSpec:
    """An attempt that runs ``python -c code`` instead of the CLI (process mechanics only)."""
    liveness = kw.pop("liveness", Liveness(stall_timeout=10, tick=0.05, grace=1.0))
    return AttemptSpec(prompt="-", cwd=tmp_path, command=[PY, "-c", code], liveness=liveness, **kw)  # type: ignore[arg-type]


def sh(script: str, tmp_path: Path, **kw: object) -> AttemptSpec:
    liveness = kw.pop("liveness", Liveness(stall_timeout=10, tick=0.05, grace=1.0))
    return AttemptSpec(prompt="-", cwd=tmp_path, command=["bash", "-c", script], liveness=liveness, **kw)  # type: ignore[arg-type]


def ev(**d: object) -> str:
    return json.dumps(d)


def alive(pid: int) -> bool:
    """A process exists and is not a zombie."""
    ids = proc_ids(pid)
    return ids is not None and not ids.zombie


def exists(pid: int) -> bool:
    """The pid is still in the process table (zombies count: someone failed to reap it)."""
    return proc_ids(pid) is not None


def marked(token: str) -> list[int]:
    """Processes (zombies excluded: their environ is unreadable) carrying an attempt's marker."""
    return [p for p in env_marked(ATTEMPT_ENV, token) if p != os.getpid()]
