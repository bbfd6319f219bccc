"""The Supervisor with the REAL Claude Code CLI against the project's Messages API stand-in.

Each test drives one failure the issue names (SIGKILL mid-tool, a hang, a 529
storm, a 401, the supervisor itself killed) and checks the end state in the
store, the stand-in's request log and the process table.  Timeouts are short
and the CLI's own retries are off (``cli_max_retries=0``) so a fault shows at once.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from resurgo.breaker import CircuitThresholds
from resurgo.mockapi import MockServer
from resurgo.store import Store
from resurgo.supervise import (
    BreakerStateChanged,
    JobState,
    Restored,
    Supervisor,
    SupervisorConfig,
    ToolStarted,
)

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent


def _config(tmp_path: Path, claude_bin: str, env: dict[str, str], **kw: Any) -> SupervisorConfig:
    base: dict[str, Any] = {
        "claude": claude_bin,
        "store": str(tmp_path / "store.db"),
        "env": env,
        "stall_timeout": 20.0,
        "kill_grace": 1.0,
        "backoff_base": 0.1,
        "backoff_cap": 1.0,
        "cli_max_retries": 0,
        "claude_args": ("--allowedTools", "Bash"),
        "health_interval": 1.0,
    }
    base.update(kw)
    return SupervisorConfig(**base)


def _cmdline(p: psutil.Process) -> str:
    """A process's command line, or "" when it ended between listing and reading (a race of this poll)."""
    try:
        return " ".join(p.cmdline())
    except psutil.Error:
        return ""


def _procs_in(root: Path) -> list[psutil.Process]:
    """Living processes whose cwd is inside ``root`` or whose command line mentions it."""
    found = []
    r = str(root)
    for p in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if p.info["status"] == psutil.STATUS_ZOMBIE or p.pid == os.getpid():
                continue
            cwd = p.cwd()
            cmd = " ".join(p.info["cmdline"] or [])
        except psutil.Error:
            continue
        if cwd.startswith(r) or r in cmd:
            found.append(p)
    return found


def _kill_all_in(root: Path) -> None:
    for p in _procs_in(root):
        try:
            p.kill()
        except psutil.Error:
            pass


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "work"
    d.mkdir()
    try:
        yield d
    finally:
        _kill_all_in(tmp_path)  # a failing test must not leave CLIs or Bash tools behind


def _messages(srv: MockServer, session_ids: set[str] | None = None) -> list[Any]:
    return [
        r for r in srv.requests if r.path == "/v1/messages" and (session_ids is None or r.session_id in session_ids)
    ]


# ---------------------------------------------------------------------------------------------------


@pytest.mark.cli_versions
async def test_sigkill_mid_tool_resumes_the_same_session_and_leaves_no_orphan(
    claude_bin: str, claude_env: dict[str, str], mock_api: MockServer, tmp_path: Path, run_dir: Path
) -> None:
    env = {**claude_env, "ANTHROPIC_BASE_URL": mock_api.url}
    async with Supervisor(_config(tmp_path, claude_bin, env)) as sup:
        h = sup.submit("count [[bash: sleep 2; echo tool-finished]] [[text: all done]]", cwd=run_dir)
        killed: list[int] = []
        restored: list[Restored] = []

        async def watch() -> None:
            async for ev in h.events():
                if isinstance(ev, ToolStarted) and not killed:
                    await asyncio.sleep(0.5)  # the Bash tool (its own session) is running now
                    tools = [p for p in _procs_in(run_dir) if "sleep 2" in " ".join(p.cmdline())]
                    assert tools, "the Bash tool should be running when we kill the CLI"
                    pid = sup.manager.active[0].pid
                    assert pid is not None
                    killed.append(pid)
                    os.kill(pid, signal.SIGKILL)
                if isinstance(ev, Restored):
                    restored.append(ev)

        watcher = asyncio.create_task(watch())
        res = await asyncio.wait_for(h.result(), 60)
        await asyncio.wait_for(watcher, 5)
        assert killed, "the test never reached the tool call"
        assert res.ok and res.state is JobState.SUCCEEDED, res
        assert res.result_text == "all done"
        attempts = sup.jobs.attempts(res.job_id)
        assert [a.kind for a in attempts] == ["start", "resume"]
        assert attempts[0].signal == signal.SIGKILL
        # the same session: the resumed attempt continued the transcript of the first one
        assert attempts[0].session_id == attempts[1].session_id == res.session_id
        recs = sup.jobs.recoveries(res.job_id)
        assert len(recs) == 1 and recs[0]["strategy"] == "resume_session" and recs[0]["succeeded"] == 1
        assert recs[0]["restored_at"] is not None and recs[0]["restored_at"] >= recs[0]["detected_at"]
        assert len(restored) == 1
        # the stand-in saw requests of that one session only
        assert {r.session_id for r in _messages(mock_api)} == {res.session_id}
    # no orphan: neither the killed CLI's Bash tool nor anything else of the run
    await asyncio.sleep(0.2)
    assert _procs_in(run_dir) == []
    assert not psutil.pid_exists(killed[0]) or psutil.Process(killed[0]).status() == psutil.STATUS_ZOMBIE


async def test_hang_is_ended_by_the_watchdog_and_the_session_resumes(
    claude_bin: str, claude_env: dict[str, str], mock_api: MockServer, tmp_path: Path, run_dir: Path
) -> None:
    env = {**claude_env, "ANTHROPIC_BASE_URL": mock_api.url}
    mock_api.set_faults(hang=True, count=1)
    async with Supervisor(_config(tmp_path, claude_bin, env, stall_timeout=3.0)) as sup:
        t0 = time.monotonic()
        res = await asyncio.wait_for(sup.run("answer [[text: woke up]]", cwd=run_dir), 60)
        took = time.monotonic() - t0
        assert res.ok, res
        assert res.result_text == "woke up"
        attempts = sup.jobs.attempts(res.job_id)
        assert attempts[0].killed_by == "stall_watchdog"
        assert attempts[-1].outcome == "succeeded"
        assert len(attempts) == 2
        assert attempts[1].kind in ("resume", "restart")
        recs = sup.jobs.recoveries(res.job_id)
        assert recs[0]["error_type"] == "timeout" and recs[0]["succeeded"] == 1
        assert took < 30  # the watchdog (3 s), not the CLI's 10-minute request timeout, ended the hang
    stats = mock_api.stats()
    assert stats is not None
    assert any(r.fault == "hang" for r in mock_api.requests)
    assert _procs_in(run_dir) == []


async def _storm(
    claude_bin: str,
    env: dict[str, str],
    srv: MockServer,
    tmp_path: Path,
    run_dir: Path,
    *,
    breaker: CircuitThresholds,
    storm_s: float,
) -> tuple[list[Any], int, list[str]]:
    srv.reset_requests()
    srv.set_faults(status=529)
    timer = threading.Timer(storm_s, srv.clear_faults)

    def on_request(rec: Any) -> None:
        # the storm lasts storm_s from its first failed request (CLIs take a moment to start)
        if rec.status == 529 and not timer.is_alive() and not timer.finished.is_set():
            timer.start()

    srv.on_request = on_request
    cfg = _config(
        tmp_path,
        claude_bin,
        env,
        breaker=breaker,
        max_recoveries=50,
        recovery_period=60.0,
        backoff_base=0.2,
        backoff_cap=1.0,
        retry_budget_min_per_sec=10.0,
        concurrency=8,
        store=str(tmp_path / f"store-{breaker.min_calls}.db"),
    )
    transitions: list[str] = []
    try:
        async with Supervisor(cfg) as sup:

            async def collect() -> None:
                async for ev in sup.events():
                    if isinstance(ev, BreakerStateChanged):
                        transitions.append(f"{ev.from_state}->{ev.to_state}")

            col = asyncio.create_task(collect())
            results = await asyncio.wait_for(
                sup.run_many([f"job {i} [[text: ok {i}]]" for i in range(8)], concurrency=8), 120
            )
            col.cancel()
    finally:
        srv.on_request = None
        timer.cancel()
        srv.clear_faults()
    faulted = sum(1 for r in _messages(srv) if r.status == 529)
    return results, faulted, transitions


async def test_529_storm_opens_the_breaker_jobs_wait_and_all_succeed(
    claude_bin: str, claude_env: dict[str, str], mock_api: MockServer, tmp_path: Path, run_dir: Path
) -> None:
    env = {**claude_env, "ANTHROPIC_BASE_URL": mock_api.url}
    storm = 8.0
    with_breaker = CircuitThresholds(
        failure_rate=0.5,
        min_calls=4,
        sliding_window=30.0,
        half_open_max_calls=1,
        half_open_lease=60.0,
        slow_call_duration=600.0,
        wait_in_open=2.0,
        wait_multiplier=1.0,
    )
    results, faulted, transitions = await _storm(
        claude_bin, env, mock_api, tmp_path, run_dir, breaker=with_breaker, storm_s=storm
    )
    assert [r.ok for r in results] == [True] * 8, [r.reason for r in results]
    assert [r.result_text for r in results] == [f"ok {i}" for i in range(8)]
    assert "closed->open" in transitions
    assert transitions[-1] == "half_open->closed"

    # the breaker limited load: no request reached the API while it was open, and at most one probe
    # (half_open_max_calls) per half-open period; jobs waited instead (in the relay, their CLIs alive)
    store = Store(str(tmp_path / "store-4.db"))
    trans = [(r["ts"], r["to_state"]) for r in store.query("SELECT ts, to_state FROM breaker_transitions ORDER BY id")]
    waited = store.query("SELECT COUNT(*) FROM recoveries WHERE waited_s > 0")[0][0]
    relayed = store.query("SELECT COUNT(*) FROM recoveries WHERE strategy = 'relay_retry'")[0][0]
    store.close()
    sent = sorted(r.time for r in _messages(mock_api))
    assert "open" in [t for _, t in trans]
    assert relayed >= 1  # the storm was retried in the relay

    def state_at(ts: float) -> str:
        st = "closed"
        for when, to in trans:
            if when <= ts:
                st = to
        return st

    # the stand-in stamps a request when it has read it: a few ms after the relay sent it
    def open_for_a_while(t: float) -> bool:
        # the stand-in stamps a request when it has read it, a few ms after the relay sent it: a
        # request stamped just after a transition to open was sent before it
        before = [when for when, _ in trans if when <= t]
        return state_at(t) == "open" and bool(before) and t - before[-1] > 0.05

    assert [t for t in sent if open_for_a_while(t)] == []
    for i, (when, to) in enumerate(trans):
        if to == "half_open":
            end = trans[i + 1][0] if i + 1 < len(trans) else float("inf")
            assert sum(1 for t in sent if when <= t < end) <= 1
    assert waited >= 1  # some recoveries waited for the breaker

    # the same storm with a breaker that never opens: every job keeps retrying on its own
    never = with_breaker.replace(min_calls=10_000)
    results2, faulted2, transitions2 = await _storm(
        claude_bin, env, mock_api, tmp_path, run_dir, breaker=never, storm_s=storm
    )
    assert all(r.ok for r in results2)
    assert "closed->open" not in transitions2
    # the endpoint got fewer failing requests with the breaker (the first wave of 8 is unavoidable:
    # all jobs are in flight before the breaker has seen min_calls failures)
    assert faulted < faulted2, (faulted, faulted2)
    assert _procs_in(run_dir) == []


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        n = int(self.headers.get("content-length") or 0)
        _Hook.received.append(json.loads(self.rfile.read(n)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    _Hook.received = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/hook?token=s3cret", _Hook.received
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


@pytest.mark.cli_versions
async def test_401_is_not_retried_escalates_and_exits_with_the_auth_status(
    claude_bin: str,
    claude_env: dict[str, str],
    mock_api: MockServer,
    tmp_path: Path,
    run_dir: Path,
    webhook: tuple[str, list[dict[str, Any]]],
) -> None:
    url, received = webhook
    key = "sk-ant-api03-" + "A" * 40
    env = {**claude_env, "ANTHROPIC_BASE_URL": mock_api.url, "ANTHROPIC_API_KEY": key}
    mock_api.set_faults(status=401)
    async with Supervisor(_config(tmp_path, claude_bin, env, alert_webhook=url)) as sup:
        res = await asyncio.wait_for(sup.run("hello [[text: never]]", cwd=run_dir), 60)
        assert res.state is JobState.FAILED
        assert res.exit_status == 3
        assert res.error is not None and res.error.type is not None and res.error.type.value == "auth"
        assert res.reason is not None and "escalated" in res.reason
        assert res.attempts == 1 and res.recoveries == 0
        assert len(_messages(mock_api, {res.session_id or ""})) == 1
        esc = [a for a in sup.alerts.sent if a.kind == "escalation"]
        assert len(esc) == 1
        # the endpoint's breaker did not count a credentials problem as an API outage
        assert sup.breakers and all(b.metrics().failures == 0 for b in sup.breakers.values())
    for _ in range(50):
        if received:
            break
        await asyncio.sleep(0.05)
    assert [r["kind"] for r in received] == ["escalation"]
    assert key not in json.dumps(received)
    assert res.job_id in json.dumps(received)


async def test_supervisor_killed_mid_batch_and_restarted_finishes_every_job(
    claude_bin: str, claude_env: dict[str, str], mock_api: MockServer, tmp_path: Path, run_dir: Path
) -> None:
    store_path = tmp_path / "batch.db"
    n = 3
    cfg = {
        "store": str(store_path),
        "claude": claude_bin,
        "env": {**claude_env, "ANTHROPIC_BASE_URL": mock_api.url},
        "cwd": str(run_dir),
        "prompts": [f"job {i} [[bash: sleep 3; echo step-{i}]] [[text: finished {i}]]" for i in range(n)],
        "concurrency": n,
        "stall_timeout": 20,
    }
    cfg_path = tmp_path / "batch.json"
    cfg_path.write_text(json.dumps(cfg))
    cmd = [sys.executable, str(HERE / "batch_script.py"), str(cfg_path)]
    penv = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=penv)
    try:
        # wait until every job's Bash tool runs, then kill the supervisor outright
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            sleeping = [p for p in _procs_in(run_dir) if "sleep 3" in _cmdline(p)]
            if len(sleeping) >= n:
                break
            assert first.poll() is None, first.communicate()
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the batch never reached its tool calls")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)
        if first.stdout:
            first.stdout.close()
        if first.stderr:
            first.stderr.close()
    # its CLIs and their tools outlived it
    assert _procs_in(run_dir), "the killed supervisor's runs should still be alive before the restart"
    store = Store(str(store_path))
    before = {r["id"]: r["state"] for r in store.query("SELECT id, state FROM jobs")}
    assert len(before) == n and set(before.values()) <= {"running"}
    store.close()

    second = subprocess.run(cmd, capture_output=True, text=True, env=penv, timeout=90)
    assert second.returncode == 0, second.stderr[-3000:]
    lines = [json.loads(x) for x in second.stdout.splitlines() if x.startswith("{")]
    assert [d["state"] for d in lines] == ["succeeded"] * n
    assert [d["result_text"] for d in lines] == [f"finished {i}" for i in range(n)]

    store = Store(str(store_path))
    rows = store.query("SELECT id, state, attempts, session_id FROM jobs ORDER BY idem_key")
    store.close()
    assert len(rows) == n  # none lost, none duplicated
    assert {r["id"] for r in rows} == set(before)
    assert all(r["state"] == "succeeded" and r["attempts"] == 2 for r in rows)
    # nothing of either supervisor is left running
    await asyncio.sleep(0.2)
    assert _procs_in(run_dir) == []

    # a third run is idempotent: finished jobs are returned from the store, nothing runs again
    requests_before = len(_messages(mock_api))
    third = subprocess.run(cmd, capture_output=True, text=True, env=penv, timeout=60)
    assert third.returncode == 0, third.stderr[-3000:]
    assert len(_messages(mock_api)) == requests_before
