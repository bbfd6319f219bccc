"""Running the real CLI in tests: its own process group, always ended, parsed events."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil


@dataclass
class Run:
    returncode: int
    events: list[dict[str, Any]]
    stderr: str

    @property
    def result(self) -> dict[str, Any]:
        results = [e for e in self.events if e.get("type") == "result"]
        assert results, f"no result event; rc={self.returncode} stderr={self.stderr[-500:]!r}"
        return results[-1]

    @property
    def init(self) -> dict[str, Any]:
        return next(e for e in self.events if e.get("type") == "system" and e.get("subtype") == "init")


def argv(claude: str, prompt: str, extra: Sequence[str] = ()) -> list[str]:
    return [claude, "-p", prompt, "--output-format", "stream-json", "--verbose", "--allowedTools", "Bash", *extra]


def parse(stdout: str) -> list[dict[str, Any]]:
    out = []
    for line in stdout.splitlines():
        with contextlib.suppress(ValueError):
            ev = json.loads(line)
            if isinstance(ev, dict):
                out.append(ev)
    return out


def kill_strays(root: Path) -> list[int]:
    """SIGKILL every process whose cwd is under ``root``; returns their pids.

    Needed because the CLI starts each Bash tool in its own session (setsid):
    killing the CLI's process group leaves the tool's ``bash`` and children
    running, re-parented to init. Their cwd is still the run's directory.
    """
    killed: list[int] = []
    prefix = str(root.resolve())
    for p in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error):
            cwd = p.cwd()
            if (cwd == prefix or cwd.startswith(prefix + os.sep)) and p.pid != os.getpid():
                p.kill()
                killed.append(p.pid)
    return killed


@contextlib.contextmanager
def spawn(cmd: Sequence[str], env: dict[str, str], cwd: Path) -> Iterator[subprocess.Popen[str]]:
    """Start ``cmd`` in a new process group; on exit the whole group is killed (Bash children too)."""
    proc = subprocess.Popen(
        list(cmd),
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        kill_strays(cwd)  # Bash tools live in their own sessions


def run(
    claude: str, prompt: str, env: dict[str, str], cwd: Path, *, extra: Sequence[str] = (), timeout: float = 60
) -> Run:
    with spawn(argv(claude, prompt, extra), env, cwd) as proc:
        out, err = proc.communicate(timeout=timeout)
    return Run(proc.returncode, parse(out), err)
