"""One way for every benchmark to save what it measured, with what it measured it against.

A number without the versions behind it cannot be compared next year, and a README figure
that no file backs cannot be checked.  Every ``bench/bench_*.py`` therefore ends with::

    from _results import write_results          # bench/ is on sys.path when a script runs
    write_results("retry", {"rows": [...]}, anchors=["tenacity", "stamina", "backoff"])

which writes ``bench/results/retry.json``::

    {"bench": "retry", "ts": ..., "utc": "...", "env": {"resurgo": "0.1.0", "python": "3.11.2",
     "implementation": "CPython", "platform": "...", "machine": "x86_64", "cpu_count": 2,
     "load_avg_1m_start": ..., "load_avg_1m_end": ..., "git_commit": "..."},
     "anchors": {"tenacity": "9.0.0", ...}, "results": {...}}

Anchors are distribution names (``importlib.metadata``) or, for things that are not Python
packages (the Claude Code CLI), ``{"name": "version string"}`` pairs already resolved by the
caller.  A missing anchor is recorded as ``null`` rather than raising: the benchmark ran, the
file should still say so.  The write is atomic (temporary file + rename), so a reader never sees
half a file.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"

_LOAD_AT_IMPORT = os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _dist_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _resurgo_version() -> str | None:
    # The checkout being measured, not whatever is installed: the source tree's __version__.
    try:
        import resurgo

        return str(resurgo.__version__)
    except Exception:
        return _dist_version("resurgo")


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def environment() -> dict[str, Any]:
    """What ran the benchmark: versions of resurgo and Python, the machine and its load."""
    return {
        "resurgo": _resurgo_version(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_avg_1m_start": _LOAD_AT_IMPORT,
        "load_avg_1m_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "git_commit": _git_commit(),
        "argv": sys.argv[1:],
    }


def anchor_versions(anchors: Iterable[str] | Mapping[str, str | None]) -> dict[str, str | None]:
    """Distribution names -> installed versions (``None`` when not installed); mappings pass through."""
    if isinstance(anchors, Mapping):
        return dict(anchors)
    return {name: _dist_version(name) for name in anchors}


def write_results(
    name: str,
    results: Mapping[str, Any],
    *,
    anchors: Iterable[str] | Mapping[str, str | None] = (),
    out: Path | None = None,
) -> Path:
    """Write ``bench/results/<name>.json`` (or ``out``) atomically and return its path."""
    path = out if out is not None else RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    doc = {
        "bench": name,
        "ts": now,
        "utc": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        "env": environment(),
        "anchors": anchor_versions(anchors),
        "results": dict(results),
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    print(f"results written to {path}")
    return path
