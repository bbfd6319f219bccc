"""Running the real CLI in tests: its own process group, always ended, parsed events."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resurgo._procs import session as spawn

__all__ = ["Run", "argv", "parse", "run", "spawn"]


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


def run(
    claude: str, prompt: str, env: dict[str, str], cwd: Path, *, extra: Sequence[str] = (), timeout: float = 60
) -> Run:
    with spawn(argv(claude, prompt, extra), env, cwd) as proc:
        out, err = proc.communicate(timeout=timeout)
    return Run(proc.returncode, parse(out), err)
