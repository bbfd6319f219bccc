"""run / batch / resume / Ctrl-C / demo through the real Claude Code CLI against the bundled API stand-in."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.cli._helpers import cli_env, resurgo

from resurgo.mockapi import Faults, MockServer
from resurgo.store import Store

pytestmark = pytest.mark.integration


@pytest.fixture
def env(tmp_path: Path, claude_bin: str, claude_env: dict[str, str], mock_api: MockServer) -> dict[str, str]:
    return cli_env(tmp_path, {**claude_env, "RESURGO_CLAUDE": claude_bin, "ANTHROPIC_BASE_URL": mock_api.url,
                              "RESURGO_SUPERVISOR_BACKOFF_BASE": "0.1", "RESURGO_SUPERVISOR_KILL_GRACE": "1"})


def test_run_recovers_from_overload_and_prints_the_answer(tmp_path: Path, env: dict[str, str],
                                                          mock_api: MockServer) -> None:
    mock_api.set_faults(Faults(status=529, count=1))
    db = tmp_path / "r.db"
    p = resurgo(["--store", str(db), "run", "go [[bash: echo step]] [[text: all done]]", "--name", "one",
                 "--", "--allowedTools", "Bash"], cwd=tmp_path, env=env, timeout=90)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "all done"
    assert "failed: resource" in p.stderr and "recovering" in p.stderr and "restored" in p.stderr
    assert "working: Bash echo step" in p.stderr
    p = resurgo(["--store", str(db), "show", "one", "--json"], cwd=tmp_path, env=env)
    d = json.loads(p.stdout)
    assert d["job"]["state"] == "succeeded" and d["job"]["recoveries"] == 1 and len(d["attempts"]) == 2


def test_run_json_and_auth_exit_status(tmp_path: Path, env: dict[str, str], mock_api: MockServer) -> None:
    mock_api.set_faults(Faults(status=401))
    p = resurgo(["--store", str(tmp_path / "r.db"), "run", "hello", "--json", "-q"], cwd=tmp_path, env=env,
                timeout=90)
    assert p.returncode == 3, (p.stdout, p.stderr)
    rec = json.loads(p.stdout)
    assert rec["state"] == "failed" and rec["exit_status"] == 3 and rec["error"]["type"] == "auth"
    assert "starting" not in p.stderr and "failed after" not in p.stderr  # -q: no progress lines


def test_batch_malformed_lines_then_idempotent_rerun(tmp_path: Path, env: dict[str, str],
                                                     mock_api: MockServer) -> None:
    f = tmp_path / "jobs.jsonl"
    f.write_text(
        '{"prompt": "a [[bash: echo a]] [[text: A]]", "name": "a", "args": ["--allowedTools", "Bash"]}\n'
        "{not json\n"
        '{"prompt": "b [[text: B]]", "id": "job-b"}\n'
        '{"prompt": "c [[text: C]]"}\n'
    )
    mock_api.set_faults(Faults(status=529, count=1))
    db = tmp_path / "r.db"
    p = resurgo(["--store", str(db), "batch", str(f), "-j", "2", "--json"], cwd=tmp_path, env=env, timeout=100)
    assert p.returncode == 2, p.stderr  # every job succeeded, but a line was malformed
    assert "line 2: not valid JSON" in p.stderr
    d = json.loads(p.stdout)
    assert [j["state"] for j in d["jobs"]] == ["succeeded"] * 3
    assert [j["result_text"] for j in d["jobs"]] == ["A", "B", "C"]
    assert sum(j["recoveries"] for j in d["jobs"]) == 1
    first_ids = [j["job_id"] for j in d["jobs"]]
    n_requests = len(mock_api.requests)
    # the same file again: nothing re-runs
    p = resurgo(["--store", str(db), "batch", str(f), "--json"], cwd=tmp_path, env=env, timeout=60)
    assert "3 already finished (skipped)" in p.stderr
    assert [j["job_id"] for j in json.loads(p.stdout)["jobs"]] == first_ids
    assert len(mock_api.requests) == n_requests
    # an edited line is a new job; the untouched ones are still skipped
    f.write_text(f.read_text().replace("[[text: C]]", "[[text: C2]]").replace("{not json\n", ""))
    p = resurgo(["--store", str(db), "batch", str(f), "--json"], cwd=tmp_path, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    jobs = json.loads(p.stdout)["jobs"]
    assert [j["job_id"] for j in jobs][:2] == first_ids[:2] and jobs[2]["job_id"] != first_ids[2]
    assert jobs[2]["result_text"] == "C2"
    with Store(db) as s:
        assert s.query("SELECT COUNT(*) FROM jobs")[0][0] == 4


def test_ctrl_c_interrupts_then_resume_finishes(tmp_path: Path, env: dict[str, str]) -> None:
    db = tmp_path / "r.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "resurgo", "--store", str(db), "run", "--name", "slow",
         "x [[bash: sleep 6; echo step-ctrl-c-test]] [[text: finally]]", "--", "--allowedTools", "Bash"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.time() + 30
        while time.time() < deadline:  # wait until the tool runs
            time.sleep(0.2)
            if not db.exists():
                continue
            with Store(db) as s:
                try:
                    if s.query("SELECT COUNT(*) FROM events WHERE type='assistant'")[0][0]:
                        break
                except sqlite3.OperationalError:  # the supervisor is still creating the tables
                    continue
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 5, err
    assert "resurgo resume" in err
    with Store(db) as s:
        assert s.query("SELECT state FROM jobs")[0][0] == "interrupted"
        assert s.query("SELECT COUNT(*) FROM processes WHERE ended_at IS NULL")[0][0] == 0
    assert subprocess.run(["pgrep", "-f", "sleep 6; echo step-ctrl-c-test"], capture_output=True).returncode == 1
    p = resurgo(["--store", str(db), "resume", "slow", "--json"], cwd=tmp_path,
                env={**env, "RESURGO_SUPERVISOR_STALL_TIMEOUT": "60"}, timeout=90)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["result_text"] == "finally"


def test_demo_short(tmp_path: Path, env: dict[str, str]) -> None:
    denv = {k: v for k, v in env.items() if k not in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")}
    p = resurgo(["demo", "--jobs", "2", "--dir", str(tmp_path / "demo")], cwd=tmp_path, env=denv, timeout=115)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SIGKILL to the CLI of crash-me" in p.stderr
    assert "the process died" in p.stderr and "restored" in p.stderr
    assert "529" in p.stderr and "overloaded" in p.stderr
    assert "availability" in p.stdout and "MTTR" in p.stdout
    assert f"resurgo dashboard --store {tmp_path / 'demo' / 'resurgo.db'}" in p.stdout
    with Store(tmp_path / "demo" / "resurgo.db") as s:
        assert s.query("SELECT COUNT(*) FROM jobs WHERE state='succeeded'")[0][0] == 2
        assert s.query("SELECT COUNT(*) FROM recoveries")[0][0] >= 2
