"""Alerts in ``resurgo run``: a short line in the progress, nothing with ``-q``, always in the store.

Regression: the supervisor's ``ALERT …`` log lines reached stderr through
Python's last-resort handler even with ``-q`` and no webhook configured.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.cli._helpers import SECRET, cli_env, resurgo

from resurgo.mockapi import Faults, MockServer
from resurgo.store import Store

pytestmark = pytest.mark.integration


@pytest.fixture
def env(tmp_path: Path, claude_bin: str, claude_env: dict[str, str], mock_api: MockServer) -> dict[str, str]:
    return cli_env(tmp_path, {**claude_env, "RESURGO_CLAUDE": claude_bin, "ANTHROPIC_BASE_URL": mock_api.url,
                              "RESURGO_SUPERVISOR_BACKOFF_BASE": "0.1", "RESURGO_SUPERVISOR_KILL_GRACE": "1"})


def _alert_events(db: Path) -> list[dict[str, object]]:
    with Store(db) as s:
        rows = s.query("SELECT data_json FROM events WHERE source='supervisor' AND type='alert'")
    return [json.loads(r[0]) for r in rows]


def test_alerts_are_hidden_with_q_shown_as_one_line_otherwise_and_always_stored(
    tmp_path: Path, env: dict[str, str], mock_api: MockServer
) -> None:
    mock_api.set_faults(Faults(status=401))  # bad credentials: the supervisor escalates
    q_db = tmp_path / "q.db"
    p = resurgo(["--store", str(q_db), "run", f"hello {SECRET}", "-q"], cwd=tmp_path, env=env, timeout=90)
    assert p.returncode == 3, p.stderr
    assert "ALERT" not in p.stderr and "alert" not in p.stderr.lower(), p.stderr
    (stored,) = _alert_events(q_db)
    assert stored["kind"] == "escalation" and stored["subtype"] == "escalation"
    assert SECRET not in json.dumps(stored)

    db = tmp_path / "r.db"
    p = resurgo(["--store", str(db), "run", f"hello {SECRET}"], cwd=tmp_path, env=env, timeout=90)
    assert p.returncode == 3, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if "alert" in ln.lower()]
    assert len(lines) == 1 and "alert escalation:" in lines[0], p.stderr
    assert "ALERT" not in p.stderr  # the raw log record is not printed as well
    assert SECRET not in p.stderr
    assert len(_alert_events(db)) == 1
