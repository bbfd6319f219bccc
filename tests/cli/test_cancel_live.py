"""``resurgo cancel`` of a job that another live ``resurgo run`` is running (real CLI, API stand-in).

Regression: the owning supervisor used to find the job cancelled under it,
fail to record its own ending (a final state cannot be left) and exit 6 with
a traceback.  Now it notices the stored state changed, ends the attempt's
process group as the user's doing, and exits 5 with a clear message.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.cli._helpers import cli_env, resurgo

from resurgo.mockapi import MockServer
from resurgo.store import Store

pytestmark = pytest.mark.integration

_MARK = "sleep 3; echo hi-from-cancel-test"


@pytest.fixture
def env(tmp_path: Path, claude_bin: str, claude_env: dict[str, str], mock_api: MockServer) -> dict[str, str]:
    return cli_env(tmp_path, {**claude_env, "RESURGO_CLAUDE": claude_bin, "ANTHROPIC_BASE_URL": mock_api.url,
                              "RESURGO_SUPERVISOR_BACKOFF_BASE": "0.1", "RESURGO_SUPERVISOR_KILL_GRACE": "1"})


def _wait_for_tool(db: Path, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    """Until the CLI asked for the Bash tool (the attempt is running and slow)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"resurgo run ended early ({proc.returncode}): {proc.communicate()}")
        time.sleep(0.2)
        if not db.exists():
            continue
        with Store(db) as s:
            try:
                if s.query("SELECT COUNT(*) FROM events WHERE type='assistant'")[0][0]:
                    return
            except sqlite3.OperationalError:  # the supervisor is still creating the tables
                continue
    raise AssertionError("the CLI never started its tool")


def test_cancel_from_another_process_ends_the_run_cleanly(tmp_path: Path, env: dict[str, str]) -> None:
    db = tmp_path / "r.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "resurgo", "--store", str(db), "run", "--name", "slow",
         f"x [[bash: {_MARK}]] [[text: finished]]",
         "--", "--allowedTools", "Bash"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        _wait_for_tool(db, proc)
        c = resurgo(["--store", str(db), "cancel", "slow"], cwd=tmp_path, env=env, timeout=30)
        assert c.returncode == 0, c.stderr
        assert "cancelled job" in c.stdout
        out, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 5, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert "cancelled" in err and out.strip() != "finished"
    with Store(db) as s:
        assert s.query("SELECT state FROM jobs")[0][0] == "cancelled"
        assert s.query("SELECT COUNT(*) FROM processes WHERE ended_at IS NULL")[0][0] == 0
        # the attempt the cancel ended is recorded as the user's doing, not as a failure to recover from
        rows = s.query("SELECT outcome, killed_by FROM attempts ORDER BY n")
        assert [tuple(r) for r in rows] == [("cancelled", "user")]
        assert s.query("SELECT COUNT(*) FROM recoveries")[0][0] == 0
    assert subprocess.run(["pgrep", "-f", _MARK], capture_output=True).returncode == 1
    p = resurgo(["--store", str(db), "show", "slow", "--json"], cwd=tmp_path, env=env)
    assert p.returncode == 0 and '"cancelled"' in p.stdout
