"""``resurgo chaos --json``, run as a user runs it: one JSON report on stdout, progress on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.timeout(120)
def test_chaos_json_prints_the_report_and_nothing_else_on_stdout(claude_bin: str, tmp_path: Path) -> None:
    env = {**os.environ, "RESURGO_CLAUDE": claude_bin}
    p = subprocess.run(
        [sys.executable, "-m", "resurgo", "chaos", "--json", "--duration", "3", "--jobs", "2", "--concurrency", "2",
         "--kill-every", "0", "--fault-rate", "0", "--steps", "1", "--step-sleep", "0", "--workdir", str(tmp_path),
         "--report", str(tmp_path / "r.json")],
        capture_output=True, text=True, timeout=110, env=env, cwd=tmp_path,
    )
    report = json.loads(p.stdout)  # the whole of stdout is one JSON document
    assert report["jobs_submitted"] == 2 and report["jobs_succeeded"] == 2, p.stderr[-2000:]
    for key in ("availability", "availability_time", "availability_time_excl_imposed", "recovery_breakdown", "checks",
                "goals"):
        assert key in report
    assert report == json.loads((tmp_path / "r.json").read_text())
    assert "chaos:" in p.stderr  # progress went to stderr
    # nothing was provoked, so the seed's targets have no data: exit 1, as without --json
    assert p.returncode == 1
