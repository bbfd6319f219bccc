"""The public Supervisor API without the CLI: configuration, alerts, handles, events, idempotency, sync facade.

Processes are played by the scripted manager of ``test_orchestrator`` (real
classifier, planner, breaker and store); the real CLI is exercised in
``test_supervisor_integration``.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from resurgo.classifier import ErrorClass, ErrorType
from resurgo.clock import SYSTEM_CLOCK, FakeClock
from resurgo.store import Store
from resurgo.supervise import (
    AlertManager,
    AttemptStarted,
    ConfigError,
    JobFailedError,
    JobFinished,
    JobQueued,
    JobSpec,
    JobState,
    Supervisor,
    SupervisorConfig,
    SyncSupervisor,
    exit_status_for,
)

from .test_orchestrator import R_401, R_OK, URL, FakeManager, Script

# -- configuration -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"stall_timeout": -1}, "stall_timeout"),
        ({"backoff_base": 5.0, "backoff_cap": 1.0}, "backoff_cap"),
        ({"kill_grace": float("nan")}, "kill_grace"),
        ({"fallback_endpoints": ["ftp://x"]}, "fallback_endpoints"),
        ({"fallback_models": "opus"}, "fallback_models"),
        ({"alert_webhook": "file:///etc/passwd"}, "alert_webhook"),
        ({"cli_max_retries": -2}, "cli_max_retries"),
        ({"env": {"A": 1}}, "env"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(kw: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        SupervisorConfig(**kw)


def test_config_from_dict_checks_keys_and_takes_a_breaker_table() -> None:
    cfg = SupervisorConfig.from_dict({"concurrency": 2, "breaker": {"min_calls": 7}, "fallback_models": ["m"]})
    assert cfg.concurrency == 2 and cfg.breaker.min_calls == 7 and cfg.fallback_models == ("m",)
    assert cfg.breaker.slow_call_duration == 3600.0  # the supervisor's defaults, not the library's
    with pytest.raises(ConfigError, match=r"unknown supervisor setting.*concurrancy"):
        SupervisorConfig.from_dict({"concurrancy": 2})
    with pytest.raises(ConfigError, match=r"breaker.*failure_rate"):
        SupervisorConfig.from_dict({"breaker": {"failure_rate": 50}})


@pytest.mark.parametrize(("probes", "closes"), [(10, True), (3, True), (1, False)])
def test_one_background_failure_among_the_probes_does_not_reopen_the_breaker(probes: int, closes: bool) -> None:
    """The supervisor's breaker probes ten requests: one scattered failure is not the API down.

    With a single probe (an old default, the last case) that one failure reopens it
    and doubles every job's wait.
    """
    from dataclasses import replace

    from resurgo.breaker import CircuitBreaker, CircuitState
    from resurgo.supervise._config import default_breaker_thresholds

    clock = FakeClock()
    th = default_breaker_thresholds()
    assert th.half_open_max_calls == 10
    br = CircuitBreaker("t", thresholds=replace(th, half_open_max_calls=probes), clock=clock)
    br.open(wait=2.0)
    clock.advance(2.0)
    permits = [br.acquire() for _ in range(probes)]
    permits[0].on_error(ConnectionResetError("a scattered 500"))
    for p in permits[1:]:
        p.on_success()
    assert (br.state is CircuitState.CLOSED) is closes


@pytest.mark.parametrize("probes", [10, 3])
def test_every_waiting_job_gets_a_probe_after_a_storm(probes: int) -> None:
    """Six jobs' requests held by the open breaker all go out when it half-opens (ten probes).

    With three probes (the broken variant) three of them are refused and wait
    for the close: a probe's answer, then their own.
    """
    from dataclasses import replace

    from resurgo.breaker import CircuitBreaker, CircuitOpenError, CircuitState
    from resurgo.supervise._config import default_breaker_thresholds

    clock = FakeClock()
    th = default_breaker_thresholds()
    br = CircuitBreaker("t", thresholds=replace(th, half_open_max_calls=probes), clock=clock)
    br.open(wait=1.0)
    clock.advance(1.0)
    admitted, refused = [], 0
    for _ in range(6):
        try:
            admitted.append(br.acquire())
        except CircuitOpenError:
            refused += 1
    assert (len(admitted), refused) == ((6, 0) if probes == 10 else (3, 3))
    for p in admitted:
        p.on_success()
    assert br.state is CircuitState.CLOSED


def test_exit_statuses_say_how_a_job_ended() -> None:
    auth = ErrorClass(ErrorType.AUTH, None, "credentials", "bad key", False)
    bad = ErrorClass(ErrorType.VALIDATION, None, "invalid_request", "bad", False)
    flaky = ErrorClass(ErrorType.NETWORK, None, "connection", "reset", True)
    assert exit_status_for(JobState.SUCCEEDED, None) == 0
    assert exit_status_for(JobState.FAILED, flaky) == 1
    assert exit_status_for(JobState.FAILED, auth) == 3
    assert exit_status_for(JobState.FAILED, bad) == 4
    assert exit_status_for(JobState.INTERRUPTED, None) == 5
    assert exit_status_for(JobState.CANCELLED, None) == 5
    assert exit_status_for(JobState.INTERRUPTED, None, internal=True) == 6


# -- alerts ------------------------------------------------------------------------------------------


class _Hook(http.server.BaseHTTPRequestHandler):
    got: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        n = int(self.headers.get("content-length") or 0)
        _Hook.got.append(json.loads(self.rfile.read(n)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a: Any) -> None:
        pass


@pytest.fixture
def hook_url() -> Iterator[str]:
    _Hook.got = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/alerts"
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


def test_alerts_are_rate_limited_per_key_redacted_and_posted(hook_url: str) -> None:
    clock = FakeClock()
    am = AlertManager(webhook=hook_url, min_interval=60.0, clock=clock, timeout=2.0)
    secret = "sk-ant-api03-" + "x" * 30
    assert am.alert("escalation", "job:1", f"bad key {secret}") is not None
    for _ in range(999):  # a storm of the same alert
        assert am.alert("escalation", "job:1", "again") is None
    assert am.alert("breaker_open", "endpoint:a", "opened") is not None  # another key is not suppressed
    clock.advance(61)
    a = am.alert("escalation", "job:1", "still failing")
    assert a is not None and a.suppressed == 999
    assert am.flush(10)  # delivery is asynchronous: wait for the three posts
    assert len(_Hook.got) == 3 and am.delivered == 3
    assert secret not in json.dumps(_Hook.got)
    assert _Hook.got[0]["message"].startswith("bad key sk-ant-<redacted>")
    assert _Hook.got[2]["suppressed"] == 999


def test_a_dead_webhook_is_logged_not_fatal() -> None:
    am = AlertManager(webhook="http://127.0.0.1:9/none?token=abc", timeout=0.5)
    assert am.alert("escalation", "x", "y") is not None
    assert am.flush(10)
    assert am.delivery_failures == 1 and am.delivered == 0


class _HangingHook(http.server.BaseHTTPRequestHandler):
    """A webhook that accepts the POST and answers only when the test releases it."""

    received = threading.Semaphore(0)
    release = threading.Event()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        _HangingHook.received.release()
        _HangingHook.release.wait(10)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a: Any) -> None:
        pass


@pytest.fixture
def hanging_hook() -> Iterator[str]:
    _HangingHook.received = threading.Semaphore(0)
    _HangingHook.release = threading.Event()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HangingHook)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/hook"
    finally:
        _HangingHook.release.set()
        srv.shutdown()
        srv.server_close()
        t.join(5)


def test_an_alert_to_a_hanging_webhook_does_not_block_the_caller(hanging_hook: str) -> None:
    """Fired from plain code (no event loop; e.g. a breaker listener on a Redis pub/sub thread)."""
    am = AlertManager(webhook=hanging_hook, timeout=5.0, min_interval=0)
    caller = threading.current_thread()
    assert am.alert("breaker_open", "endpoint:a", "opened") is not None
    # alert() returned although the webhook holds the POST until we release it: had it posted
    # inline, it would only have returned after the POST finished (delivered or failed)
    assert am.delivered == 0 and am.delivery_failures == 0
    assert _HangingHook.received.acquire(timeout=5)  # the POST is in flight, on another thread
    assert am._worker is not None and am._worker is not caller
    _HangingHook.release.set()
    assert am.flush(10)
    assert am.delivered == 1 and am.delivery_failures == 0


def test_a_full_delivery_queue_drops_alerts_instead_of_blocking(hanging_hook: str) -> None:
    am = AlertManager(webhook=hanging_hook, timeout=5.0, queue_size=1)
    assert am.alert("escalation", "job:1", "first") is not None
    assert _HangingHook.received.acquire(timeout=5)  # the first is in flight, the queue is empty
    assert am.alert("escalation", "job:2", "second") is not None  # queued
    assert am.alert("escalation", "job:3", "third") is not None  # queue full: dropped, still recorded
    assert am.dropped == 1 and [a.subject for a in am.sent] == ["job:1", "job:2", "job:3"]
    assert am.flush(0.05) is False  # still waiting on the hanging webhook
    _HangingHook.release.set()
    assert am.flush(10)
    assert am.delivered == 2 and am.dropped == 1


async def test_alerts_fired_on_the_event_loop_are_drained(hook_url: str) -> None:
    am = AlertManager(webhook=hook_url, timeout=2.0)
    assert am.alert("escalation", "job:1", "x") is not None
    await am.drain(10)
    assert am.delivered == 1 and len(_Hook.got) == 1


# -- the Supervisor over scripted attempts -----------------------------------------------------------


def _sup(tmp_path: Path, script: Script, **cfg: Any) -> tuple[Supervisor, FakeManager]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    mgr = FakeManager(SYSTEM_CLOCK, script, home)  # type: ignore[arg-type]
    base: dict[str, Any] = {"store": Store(str(tmp_path / "s.db")), "backoff_base": 0.01, "backoff_cap": 0.05}
    base.update(cfg)
    sup = Supervisor(
        SupervisorConfig(**base),
        manager=mgr,  # type: ignore[arg-type]
        environ={"HOME": str(home), "ANTHROPIC_BASE_URL": URL},
    )
    return sup, mgr


def ok(spec: Any, n: int) -> dict[str, Any]:
    return {"exit_code": 0, "result": R_OK, "duration": 0.01}


async def test_run_many_is_idempotent_by_key_and_keeps_input_order(tmp_path: Path) -> None:
    sup, mgr = _sup(tmp_path, ok)
    specs = [JobSpec(f"p{i}", cwd=tmp_path, idem_key=f"k{i}") for i in range(5)]
    async with sup:
        first = await sup.run_many(specs, concurrency=2)
        assert [r.ok for r in first] == [True] * 5
        assert len(mgr.specs) == 5
        again = await sup.run_many([*specs, JobSpec("p5", cwd=tmp_path, idem_key="k5")])
    assert [r.job_id for r in again[:5]] == [r.job_id for r in first]
    assert len(mgr.specs) == 6  # only the new job ran
    assert [r.idem_key for r in again] == [f"k{i}" for i in range(6)]


async def test_handle_events_are_typed_and_end_with_the_result(tmp_path: Path) -> None:
    sup, _ = _sup(tmp_path, lambda s, n: {"signal": 9, "duration": 0.01} if n == 1 else ok(s, n))
    async with sup:
        h = sup.submit("go", cwd=tmp_path)
        evs = [ev async for ev in h.events()]
        res = await h.result()
    kinds = [type(e).__name__ for e in evs]
    assert kinds[0] == "JobQueued" and kinds[-1] == "JobFinished"
    for k in ("AttemptStarted", "CliEvent", "FailureDetected", "RecoveryPlanned", "Restored"):
        assert k in kinds
    starts = [e for e in evs if isinstance(e, AttemptStarted)]
    assert [(s.n, s.kind) for s in starts] == [(1, "start"), (2, "resume")]
    fin = evs[-1]
    assert isinstance(fin, JobFinished) and fin.result == res and res.ok


async def test_handle_cancel_ends_the_attempt_and_leaves_the_job_resumable(tmp_path: Path) -> None:
    sup, mgr = _sup(tmp_path, lambda s, n: {"hang": True} if n == 1 else ok(s, n))
    async with sup:
        h = sup.submit("go", cwd=tmp_path)
        while not mgr.specs:
            await asyncio.sleep(0.01)
        h.cancel()
        res = await h.result()
        assert res.state is JobState.INTERRUPTED and res.exit_status == 5
        again = await sup.resume(h.job_id)
    assert again.ok and mgr.specs[-1].mode == "resume"


async def test_a_failed_job_can_be_resumed_on_request_and_run_check_raises(tmp_path: Path) -> None:
    sup, _mgr = _sup(tmp_path, lambda s, n: {"exit_code": 1, "result": R_401, "duration": 0.01} if n == 1 else ok(s, n))
    async with sup:
        with pytest.raises(JobFailedError) as ei:
            await sup.run("go", cwd=tmp_path, check=True)
        assert ei.value.result.exit_status == 3
        assert ei.value.error_class is not None and ei.value.error_class.type is ErrorType.AUTH
        res = await sup.resume(ei.value.result.job_id)
    assert res.ok and res.attempts == 2


async def test_aclose_interrupts_running_jobs_and_never_loses_them(tmp_path: Path) -> None:
    sup, mgr = _sup(tmp_path, lambda s, n: {"hang": True})
    await sup.start()
    hs = [sup.submit(f"p{i}", cwd=tmp_path) for i in range(3)]
    while len(mgr.specs) < 3:
        await asyncio.sleep(0.01)
    await sup.aclose()
    states = {sup.jobs.require(h.job_id).state for h in hs}
    assert states == {JobState.INTERRUPTED}


async def test_supervisor_events_stream_every_job(tmp_path: Path) -> None:
    sup, _ = _sup(tmp_path, ok)
    seen: list[Any] = []
    async with sup:

        async def listen() -> None:
            async for ev in sup.events():
                seen.append(ev)

        t = asyncio.create_task(listen())
        await asyncio.sleep(0)
        await sup.run_many([JobSpec(f"p{i}", cwd=tmp_path) for i in range(2)])
        await asyncio.sleep(0)
        t.cancel()
    assert len([e for e in seen if isinstance(e, JobQueued)]) == 2
    assert len([e for e in seen if isinstance(e, JobFinished)]) == 2


def test_sync_supervisor_runs_jobs_from_plain_code(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    mgr = FakeManager(SYSTEM_CLOCK, ok, home)  # type: ignore[arg-type]
    cfg = SupervisorConfig(store=str(tmp_path / "s.db"))
    with SyncSupervisor(cfg, manager=mgr, environ={"HOME": str(home), "ANTHROPIC_BASE_URL": URL}) as sup:
        r = sup.run("hello", cwd=str(tmp_path))
        rs = sup.run_many(["a", "b"])
        assert r.ok and [x.ok for x in rs] == [True, True]
        assert sup.result(r.job_id).state is JobState.SUCCEEDED


async def test_a_missing_cli_fails_the_job_with_a_clear_configuration_error(tmp_path: Path) -> None:
    cfg = SupervisorConfig(store=str(tmp_path / "s.db"), claude=str(tmp_path / "no-such-claude"))
    async with Supervisor(cfg, environ={"HOME": str(tmp_path), "ANTHROPIC_BASE_URL": URL}) as sup:
        res = await sup.run("hello", cwd=tmp_path)
    assert res.state is JobState.FAILED and res.exit_status == 4
    assert res.reason is not None and "no-such-claude" in res.reason
    assert res.error is not None and res.error.category == "binary_missing"


# -- public hooks for embedding (the fleet worker uses these instead of private attributes) ------------


async def test_budget_factory_and_endpoint_breaker(tmp_path: Path) -> None:
    from resurgo.retrier import RetryBudget

    asked: list[str] = []
    budgets: dict[str, RetryBudget] = {}

    def factory(url: str) -> RetryBudget | None:
        asked.append(url)
        if url == URL:
            budgets[url] = RetryBudget(ratio=0.5, min_retries_per_sec=0.0)
            return budgets[url]
        return None  # the default local budget

    home = tmp_path / "home"
    home.mkdir()
    sup = Supervisor(SupervisorConfig(store=Store(str(tmp_path / "s.db"))),
                     manager=FakeManager(SYSTEM_CLOCK, ok, home),  # type: ignore[arg-type]
                     environ={"HOME": str(home), "ANTHROPIC_BASE_URL": URL}, budget_factory=factory)
    async with sup:
        assert sup.endpoint_url() == URL
        assert sup.endpoint_url({"ANTHROPIC_BASE_URL": "http://127.0.0.1:8"}) == "http://127.0.0.1:8"
        # jobs reaching one API by routes of their own (the chaos run's) share its breaker by name
        routed = {"ANTHROPIC_BASE_URL": f"{URL}/j/job-1/", "RESURGO_ENDPOINT": URL}
        assert sup.endpoint_url(routed) == URL
        br = sup.endpoint_breaker(URL)
        assert br is sup.endpoint_breaker(URL) and sup.breakers == {URL: br}
        res = await sup.run("go", cwd=tmp_path)
        assert res.ok
        assert sup.orchestrator.endpoints[URL].budget is budgets[URL]
        other = sup.endpoint_breaker("http://127.0.0.1:8")
        assert other is not br and isinstance(sup.orchestrator.endpoints["http://127.0.0.1:8"].budget, RetryBudget)
    assert asked == [URL, "http://127.0.0.1:8"]  # once per endpoint, when first used


async def test_adopt_job_resumes_a_session_that_ran_elsewhere(tmp_path: Path) -> None:
    import uuid

    from resurgo.supervise._session import SessionManager

    sup, mgr = _sup(tmp_path, lambda s, n: {**ok(s, n), "transcript": False})
    sid = str(uuid.uuid4())
    async with sup:
        h = sup.adopt_job(JobSpec("long task", cwd=tmp_path, name="moved"), sid, transcript='{"type":"user"}\n',
                          reason="reclaimed from host b")
        res = await h.result()
        path = SessionManager().transcript_path(sid, tmp_path, env={"HOME": str(tmp_path / "home")})
        assert path.read_text() == '{"type":"user"}\n'
        assert res.ok and res.session_id == sid and res.name == "moved"
        (spec,) = mgr.specs
        assert spec.mode == "resume" and spec.session_id == sid
        with pytest.raises(ValueError, match="session id"):
            sup.adopt_job(JobSpec("x", cwd=tmp_path), " ")


async def test_adopted_transcripts_are_private_and_stay_in_their_folder(tmp_path: Path) -> None:
    """A session id from Redis becomes a file name: only UUIDs; the file is 0600 whatever the umask."""
    import os
    import uuid

    from resurgo.supervise._session import SessionManager

    sup, _mgr = _sup(tmp_path, lambda s, n: {**ok(s, n), "transcript": False})
    sid = str(uuid.uuid4())
    old = os.umask(0o022)
    try:
        async with sup:
            for bad in ("../../../../escaped", "x/../../y", sid + "/../z", sid.upper() + "x"):
                with pytest.raises(ValueError, match="must be a UUID"):
                    sup.adopt_job(JobSpec("x", cwd=tmp_path), bad, transcript="{}\n")
            assert not list(tmp_path.rglob("escaped*")) and not list(tmp_path.rglob("z.jsonl"))
            h = sup.adopt_job(JobSpec("t", cwd=tmp_path), sid, transcript='{"type":"user"}\n')
            await h.result()
    finally:
        os.umask(old)
    path = SessionManager().transcript_path(sid, tmp_path, env={"HOME": str(tmp_path / "home")})
    assert path.stat().st_mode & 0o777 == 0o600


async def test_alerts_are_kept_in_the_store_as_supervisor_events(tmp_path: Path) -> None:
    sup, _ = _sup(tmp_path, lambda s, n: {"exit_code": 1, "result": R_401, "duration": 0.01})
    async with sup:
        res = await sup.run("go", cwd=tmp_path)
        evs = [e for e in sup.jobs.events(res.job_id) if e.source == "supervisor" and e.type == "alert"]
    assert res.exit_status == 3
    (ev,) = evs
    data = ev.data()
    assert ev.subtype == "escalation" and data["kind"] == "escalation" and data["severity"] == "critical"
