"""Every runnable example in examples/ runs and exits 0, so the user guide cannot rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(example: Path, tmp_path: Path, claude_bin: str) -> None:
    env = dict(os.environ)
    env.update(HOME=str(tmp_path), RESURGO_HOME=str(tmp_path / "resurgo"), RESURGO_CLAUDE=claude_bin)
    env.pop("ANTHROPIC_API_KEY", None)  # examples use the bundled stand-in, never a real API
    proc = subprocess.run(
        [sys.executable, str(example)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"{example.name} failed:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.strip(), f"{example.name} printed nothing"
