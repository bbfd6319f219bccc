"""``resurgo batch --redis URL`` as a user runs it: a batch file, two ``resurgo worker`` processes, the real CLI.

Checks what the command promises: malformed lines reported with their line
numbers while the rest runs, every job run exactly once (one local job in the
workers' stores per batch entry, one completion each), the summary with the
worker and claim count, the documented exit status, and that submitting the
same file again queues nothing and prints the same results.  An unreachable
Redis is a clear usage error with nothing submitted.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil
import pytest

from resurgo.distributed import FleetQueue
from resurgo.mockapi import MockServer

from .conftest import RedisProcess
from .test_fleet import Fleet, leftovers


def batch_env(tmp: Path) -> dict[str, str]:
    """The submitting user's environment: its own HOME and XDG folders, no RESURGO_* settings leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESURGO_", "ANTHROPIC_", "XDG_"))}
    home = tmp / "submitter"
    home.mkdir(exist_ok=True)
    env.update({"HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"), "XDG_STATE_HOME": str(home / "state"),
                "COLUMNS": "200", "NO_COLOR": "1"})
    return env


def resurgo(args: Sequence[str], *, cwd: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "resurgo", *args], cwd=cwd, env=batch_env(cwd),
                          capture_output=True, text=True, timeout=timeout)


def write_jobs(tmp: Path, work: Path) -> Path:
    lines = [json.dumps({"prompt": f"[[text: done {i}]]", "name": f"j{i}", "cwd": str(work)}) for i in range(4)]
    lines.insert(2, '{"prompt": "half a line"')  # line 3: malformed
    f = tmp / "jobs.jsonl"
    f.write_text("\n".join(lines) + "\n")
    return f


def local_jobs(db: Path) -> int:
    """Jobs a worker ran on its host (its own SQLite store): one per run, so duplicates would show here."""
    if not db.exists():
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])
    finally:
        con.close()


def fleet_size(q: FleetQueue) -> tuple[int, int]:
    """(job records, stream entries ever added): both grow by one per submission."""
    jobs = [k for k in q.client.scan_iter(f"{q.prefix}:job:*") if k.count(":") == 2]
    return len(jobs), int(q.client.xlen(q.stream))


@pytest.fixture
def fleet(tmp_path: Path, redis_proc: RedisProcess, claude_bin: str, claude_env: dict[str, str],
          mock_api: MockServer) -> Iterator[Fleet]:
    f = Fleet(tmp_path, redis_proc.url, claude_bin, {**claude_env, "ANTHROPIC_BASE_URL": mock_api.url})
    try:
        yield f
    finally:
        f.close()
        for p in leftovers(tmp_path, redis_proc.proc.pid if redis_proc.proc else None):
            try:
                p.kill()
            except psutil.Error:
                pass


@pytest.mark.redis
@pytest.mark.integration
def test_batch_runs_each_job_once_on_the_fleet_and_resubmitting_adds_nothing(
    fleet: Fleet, tmp_path: Path, redis_proc: RedisProcess
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    jobs = write_jobs(tmp_path, work)
    fleet.start("w1")
    fleet.start("w2")

    first = resurgo(["batch", "--redis", fleet.url, str(jobs)], cwd=tmp_path)
    logs = f"{first.stderr}\n--- w1\n{fleet.log('w1')}\n--- w2\n{fleet.log('w2')}"
    assert first.returncode == 2, logs  # every job succeeded, one entry malformed: the documented 2
    assert "line 3: not valid JSON" in first.stderr
    assert "submitting 4 job(s) to the fleet" in first.stderr
    table = first.stdout
    for col in ("worker", "claims", "state", "result / reason"):
        assert col in table
    for i in range(4):
        assert f"j{i}" in table and f"done {i}" in table, table
    assert "succeeded: 4" in table and "malformed entries: 1" in table, table

    q = FleetQueue(fleet.url)
    try:
        assert fleet_size(q) == (4, 4)
        ran = local_jobs(tmp_path / "w1.db") + local_jobs(tmp_path / "w2.db")
        assert ran == 4  # each entry ran once, on one worker

        # the same file again: nothing new is queued or run, the same summary is printed
        second = resurgo(["batch", "--redis", fleet.url, str(jobs)], cwd=tmp_path)
        assert second.returncode == 2, second.stderr
        assert "4 already finished, 0 already queued or running, 0 new" in second.stderr
        assert second.stdout == table

        third = resurgo(["batch", "--redis", fleet.url, "--json", str(jobs)], cwd=tmp_path)
        assert third.returncode == 2, third.stderr
        doc = json.loads(third.stdout)
        assert len(doc["malformed"]) == 1 and doc["malformed"][0].startswith("line 3:")
        got = {j["name"]: j for j in doc["jobs"]}
        assert sorted(got) == ["j0", "j1", "j2", "j3"]
        for i in range(4):
            j = got[f"j{i}"]
            assert j["state"] == "succeeded" and j["completions"] == 1 and j["claims"] == 1, j
            assert j["worker"] in ("w1", "w2"), j
            assert j["result"]["result_text"] == f"done {i}" and j["result"]["exit_status"] == 0, j
            assert j["job_id"][:12] in table
        assert fleet_size(q) == (4, 4)
        assert local_jobs(tmp_path / "w1.db") + local_jobs(tmp_path / "w2.db") == 4
        assert q.client.xpending(q.stream, "workers")["pending"] == 0
    finally:
        q.close()
    fleet.close()
    for name, p in fleet.procs.items():
        assert p.returncode == 0, fleet.log(name)
    assert redis_proc.proc is not None
    deadline = time.monotonic() + 10  # workers, their CLIs: all gone (the CLIs end with their worker)
    while leftovers(tmp_path, redis_proc.proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [(p.pid, p.cmdline()) for p in leftovers(tmp_path, redis_proc.proc.pid)]


@pytest.mark.redis
def test_timeout_leaves_the_jobs_queued_and_exits_resumable(tmp_path: Path, redis_proc: RedisProcess) -> None:
    """No worker: the jobs stay queued; status 5 says "not finished, resumable"; again queues nothing new."""
    work = tmp_path / "work"
    work.mkdir()
    jobs = write_jobs(tmp_path, work)
    r = resurgo(["batch", "--redis", redis_proc.url, "--timeout", "0.5", "--json", str(jobs)], cwd=tmp_path)
    assert r.returncode == 5, r.stderr
    assert "4 job(s) unfinished" in r.stderr and "submit the same batch again" in r.stderr
    doc = json.loads(r.stdout)
    assert [j["state"] for j in doc["jobs"]] == ["queued"] * 4
    again = resurgo(["batch", "--redis", redis_proc.url, "--timeout", "0.5", str(jobs)], cwd=tmp_path)
    assert again.returncode == 5
    assert "0 already finished, 4 already queued or running, 0 new" in again.stderr
    q = FleetQueue(redis_proc.url)
    try:
        assert fleet_size(q) == (4, 4)
    finally:
        q.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


@pytest.mark.parametrize("how", ["option", "config"])
def test_unreachable_redis_is_a_usage_error_and_nothing_runs(tmp_path: Path, how: str) -> None:
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    jobs = write_jobs(tmp_path, tmp_path)
    if how == "option":
        args = ["batch", "--redis", url, str(jobs)]
    else:  # [redis] url is the default for --redis
        cfg = tmp_path / "fleet.toml"
        cfg.write_text(f'[redis]\nurl = "{url}"\n')
        args = ["--config", str(cfg), "batch", str(jobs)]
    r = resurgo(args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "cannot reach Redis at redis://127.0.0.1:" in r.stderr and "nothing was submitted" in r.stderr
    assert ("[redis] url" in r.stderr) is (how == "config")
    assert r.stdout == ""
    assert not (tmp_path / "submitter" / "state").exists()  # no local store was created: nothing ran here


def test_local_only_options_are_refused_with_redis(tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path, tmp_path)
    r = resurgo(["batch", "--redis", "redis://127.0.0.1:1/0", "--concurrency", "2", str(jobs)], cwd=tmp_path)
    assert r.returncode == 2 and "--concurrency applies to runs on this machine" in r.stderr, r.stderr
