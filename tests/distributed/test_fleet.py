"""The fleet over the real CLI: several ``resurgo worker`` processes, one killed mid-batch.

Each worker runs in its own HOME (another "host"), so a job reclaimed from the
killed worker can only resume its session through the transcript uploaded to
Redis.  The test checks that every job ends succeeded exactly once, that the
reclaimed jobs continued their sessions, and that no process is left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from resurgo.distributed import FleetQueue
from resurgo.mockapi import MockServer

from .conftest import RedisProcess

pytestmark = [pytest.mark.redis, pytest.mark.integration]


class Fleet:
    """Worker subprocesses, each with its own HOME and store; all ended by ``close``."""

    def __init__(self, tmp: Path, url: str, claude: str, env: dict[str, str]) -> None:
        self.tmp, self.url, self.claude, self.env = tmp, url, claude, env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *, concurrency: int = 2, lease: float = 2.0, grace: float = 5.0) -> None:
        home = self.tmp / f"home-{name}"
        home.mkdir()
        # jobs from Redis may not grant tools by default: these workers allow --allowedTools ([worker] section)
        env = {**self.env, "HOME": str(home), "PYTHONUNBUFFERED": "1",
               "RESURGO_WORKER_ALLOW_CLAUDE_ARGS": "--allowedTools"}
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed right after the fork
        try:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "resurgo.cli", "worker", "--redis", self.url, "--name", name,
                 "--concurrency", str(concurrency), "--store", str(self.tmp / f"{name}.db"),
                 "--lease", str(lease), "--transcript-interval", "0.3", "--grace", str(grace),
                 "--claude", self.claude],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp,
            )
        finally:
            log.close()

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def close(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)


def leftovers(tmp: Path, keep: int | None = None) -> list[psutil.Process]:
    """Processes (ours or orphans) whose HOME or cwd lies in this test's temp dir (``keep``: the redis-server)."""
    out = []
    me = os.getpid()
    for p in psutil.process_iter(["pid"]):
        if p.pid in (me, keep):
            continue
        try:
            home = p.environ().get("HOME", "")
            cwd = p.cwd()
        except (psutil.Error, OSError):
            continue
        if home.startswith(str(tmp)) or cwd.startswith(str(tmp)):
            out.append(p)
    return out


@pytest.fixture
def fleet(tmp_path: Path, redis_proc: RedisProcess, claude_bin: str, claude_env: dict[str, str],
          mock_api: MockServer) -> Iterator[Fleet]:
    env = {**claude_env, "ANTHROPIC_BASE_URL": mock_api.url}
    f = Fleet(tmp_path, redis_proc.url, claude_bin, env)
    try:
        yield f
    finally:
        f.close()
        for p in leftovers(tmp_path):
            try:
                p.kill()
            except psutil.Error:
                pass


def test_killed_worker_jobs_are_reclaimed_resumed_and_finish_exactly_once(
    fleet: Fleet, tmp_path: Path, redis_proc: RedisProcess
) -> None:
    assert redis_proc.proc is not None
    keep = redis_proc.proc.pid
    work = tmp_path / "work"
    work.mkdir()
    q = FleetQueue(fleet.url)
    try:
        for name in ("w1", "w2", "w3"):
            fleet.start(name)
        ids = q.submit_many([
            {"prompt": f"[[bash: sleep 3; echo hi {i}]] [[text: done {i}]]", "cwd": str(work), "name": f"j{i}",
             "idem_key": f"batch-1-{i}", "claude_args": ["--allowedTools", "Bash"]}
            for i in range(6)
        ])
        assert len(set(ids)) == 6
        # resubmitting with the same idem_keys queues nothing new
        assert q.submit_many([{"prompt": "x", "idem_key": f"batch-1-{i}"} for i in range(6)]) == ids

        # wait until w1 runs a job whose transcript reached Redis, then kill w1 without warning
        deadline = time.monotonic() + 30
        victim_jobs: list[str] = []
        while time.monotonic() < deadline and not victim_jobs:
            for j in ids:
                h = q.client.hgetall(q.job_key(j))
                if h.get("owner") == "w1" and h.get("state") == "running" and int(h.get("transcript_bytes") or 0):
                    victim_jobs.append(j)
            time.sleep(0.05)
        assert victim_jobs, fleet.log("w1")
        w1_jobs = [j for j in ids if q.client.hget(q.job_key(j), "owner") == "w1"
                   and q.client.hget(q.job_key(j), "state") == "running"]
        sessions_before = {j: q.client.hget(q.job_key(j), "session_id") for j in victim_jobs}
        fleet.procs["w1"].send_signal(signal.SIGKILL)
        fleet.procs["w1"].wait(timeout=5)

        t_kill = time.monotonic()
        results = q.wait(ids, timeout=45)
        print(f"batch finished {time.monotonic() - t_kill:.1f}s after the kill")
        logs = {n: fleet.log(n) for n in ("w2", "w3")}
        for r in results:
            assert r.state == "succeeded", (r, logs)
            assert r.completions == 1, r  # completed exactly once
            assert r.result is not None and r.result["ok"] is True
        by_id = {r.job_id: r for r in results}
        for j in w1_jobs:
            r = by_id[j]
            assert r.claims >= 2 and "w1" in r.owners and r.worker in ("w2", "w3"), r
        for j, sid in sessions_before.items():
            # the reclaiming worker continued the same conversation (another HOME: only via Redis)
            assert by_id[j].session_id == sid, (by_id[j], logs)
            assert "resuming session" in logs[by_id[j].worker or ""]
        # each job's final answer is there once: no duplicate results
        texts = sorted(r.result["result_text"] for r in results if r.result)
        assert len(texts) == 6
        # the stream has nothing pending: every delivery was acknowledged
        assert q.client.xpending(q.stream, "workers")["pending"] == 0
    finally:
        q.close()
    fleet.close()
    for name, p in fleet.procs.items():
        if name != "w1":
            assert p.returncode == 0, fleet.log(name)
    # no stray process: workers, CLIs and their Bash children are all gone (the killed worker's
    # orphaned CLI included: it loses its stdout reader and ends)
    deadline = time.monotonic() + 10
    while leftovers(tmp_path, keep) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = leftovers(tmp_path, keep)
    assert not left, [(p.pid, p.cmdline()) for p in left]


def test_sigterm_hands_running_jobs_back_and_another_worker_resumes_them(
    fleet: Fleet, tmp_path: Path, redis_proc: RedisProcess
) -> None:
    """A stopping worker releases its jobs at once (no lease to wait out: the lease here is 60 s)."""
    import threading

    from resurgo.distributed import FleetResult, run_batch_via_redis

    work = tmp_path / "work"
    work.mkdir()
    fleet.start("w1", lease=60, grace=0)
    specs = [{"prompt": f"[[bash: sleep 4; echo hi {i}]] [[text: done {i}]]", "cwd": str(work),
              "claude_args": ["--allowedTools", "Bash"]} for i in range(2)]
    out: list[FleetResult] = []
    errors: list[BaseException] = []

    def batch() -> None:
        try:
            out.extend(run_batch_via_redis(fleet.url, specs, timeout=45))
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    t = threading.Thread(target=batch)
    t.start()
    q = FleetQueue(fleet.url)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            hs = [q.client.hgetall(k) for k in q.client.keys("resurgo:job:*") if k.count(":") == 2]
            if len(hs) == 2 and all(h.get("state") == "running" and int(h.get("transcript_bytes") or 0) for h in hs):
                break
            time.sleep(0.05)
        else:
            pytest.fail(fleet.log("w1"))
        fleet.start("w2", lease=60)
        fleet.procs["w1"].send_signal(signal.SIGTERM)
        assert fleet.procs["w1"].wait(timeout=20) == 0, fleet.log("w1")
        t.join(timeout=50)
        assert not t.is_alive() and not errors, (errors, fleet.log("w2"))
    finally:
        q.close()
        t.join(timeout=1)
    assert [r.state for r in out] == ["succeeded", "succeeded"], (out, fleet.log("w2"))
    for r in out:
        assert r.completions == 1 and r.claims == 2 and r.owners == ("w1",) and r.worker == "w2", r
    assert "released for another worker" in fleet.log("w1")
    assert fleet.log("w2").count("resuming session") == 2
