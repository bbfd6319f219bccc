"""The recovery orchestrator's decisions and bookkeeping, on virtual time, without processes.

A scripted process manager stands in for :class:`ProcessManager`: each attempt
ends with an :class:`AttemptOutcome` built from real CLI evidence (the result
events the real CLI printed, taken from the labelled corpus), so the real
classifier, planner, breaker, budget and store do the work.  Waits run on a
:class:`FakeClock`, so a one-hour quota reset takes microseconds.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from resurgo.breaker import CircuitThresholds
from resurgo.classifier import Classifier
from resurgo.clock import FakeClock
from resurgo.store import Store
from resurgo.supervise import JobState, SupervisorConfig
from resurgo.supervise._alerts import AlertManager
from resurgo.supervise._events import BudgetBypassed, SupervisorEvent, Waiting
from resurgo.supervise._jobstore import JobStore
from resurgo.supervise._orchestrator import Orchestrator
from resurgo.supervise._process import AttemptOutcome, AttemptSpec, StreamEvent, parse_line
from resurgo.supervise._recovery import RecoveryPlanner
from resurgo.supervise._session import SessionManager

URL = "http://127.0.0.1:9"

R_529 = {
    "type": "result",
    "subtype": "success",
    "is_error": True,
    "api_error_status": 529,
    "result": "API Error: 529 Overloaded. This is a server-side issue, usually temporary.",
}
R_401 = {
    "type": "result",
    "subtype": "success",
    "is_error": True,
    "api_error_status": 401,
    "result": "Invalid API key \u00b7 Fix external API key",
}
R_500 = {
    "type": "result",
    "subtype": "success",
    "is_error": True,
    "api_error_status": 500,
    "result": "API Error: 500 Internal server error",
}
R_OK = {"type": "result", "subtype": "success", "is_error": False, "api_error_status": None, "result": "done"}


def r_missing(sid: str) -> dict[str, Any]:
    return {
        "type": "result",
        "subtype": "error_during_execution",
        "is_error": True,
        "api_error_status": None,
        "result": None,
        "errors": [f"No conversation found with session ID: {sid}"],
    }


def r_usage_limit(reset_in: float) -> dict[str, Any]:
    msg = f"API Error: Request rejected (429) \u00b7 Claude AI usage limit reached|{int(time.time() + reset_in)}"
    return {"type": "result", "subtype": "success", "is_error": True, "api_error_status": 429, "result": msg}


Script = Callable[[AttemptSpec, int], dict[str, Any]]


class FakeAttempt:
    def __init__(self, mgr: FakeManager, spec: AttemptSpec, out: AttemptOutcome, hang: bool) -> None:
        self.mgr = mgr
        self.spec = spec
        self._out = out
        self._hang = hang
        self._stopped = asyncio.Event()
        self._done = False
        self.pid = 4242
        self.outcome: AttemptOutcome | None = None  # as Attempt: set once it ended

    def done(self) -> bool:
        return self._done

    async def wait(self) -> AttemptOutcome:
        if self._hang:
            await self._stopped.wait()
        else:
            await self.mgr.clock.asleep(self._out.duration)
        self._done = True
        self.outcome = self._out
        return self._out

    async def stop(self, killed_by: Any = "user", reason: str | None = None) -> AttemptOutcome:
        if not self._done:
            self._out = _outcome(self.spec, self.mgr.clock, killed_by=killed_by, signal=15)
            self._stopped.set()
            self._done = True
            self.outcome = self._out
        return self._out


def _outcome(
    spec: AttemptSpec,
    clock: FakeClock,
    *,
    exit_code: int | None = None,
    signal: int | None = None,
    result: dict[str, Any] | None = None,
    killed_by: Any = None,
    events: tuple[StreamEvent, ...] = (),
    stderr: str = "",
    duration: float = 1.0,
) -> AttemptOutcome:
    now = clock.time()
    sid = spec.expected_session_id
    evs = list(events)
    if result is not None:
        evs.append(parse_line(json.dumps({**result, "session_id": sid}).encode(), seq=len(evs), ts=now, mono=0))
    return AttemptOutcome(
        mode=spec.mode,
        argv=("claude",),
        cwd=str(spec.cwd),
        pid=4242,
        start_time=1.0,
        requested_session_id=spec.session_id,
        session_id=sid,
        exit_code=exit_code,
        signal=signal,
        killed_by=killed_by,
        kill_reason=None,
        started_at=now,
        ended_at=now + duration,
        first_event_at=now if evs else None,
        result_at=now if result else None,
        event_count=len(evs),
        unparseable_count=0,
        type_counts={},
        events=tuple(evs),
        init=None,
        result={**result, "session_id": sid} if result else None,
        stderr_tail=stderr,
        stderr_bytes=len(stderr),
    )


class FakeManager:
    """Plays ``script(spec, n) -> outcome kwargs`` for the n-th attempt (1-based) of all jobs."""

    def __init__(self, clock: FakeClock, script: Script, home: Path) -> None:
        self.clock = clock
        self.script = script
        self.home = home
        self.shutting_down = False
        self.specs: list[AttemptSpec] = []
        self.jobs: Any = None
        # what the supervisor's cleaner and health checker look at
        self.active: list[Any] = []
        self.pending: list[Any] = []
        self.leaders: set[int] = set()
        self.tmp_root = home / "tmp"

    async def shutdown(self, *, reason: str = "") -> list[AttemptOutcome]:
        self.shutting_down = True
        return []

    async def start(self, spec: AttemptSpec, *, on_event: Any = None) -> FakeAttempt:
        self.specs.append(spec)
        kw = dict(self.script(spec, len(self.specs)))
        hang = kw.pop("hang", False)
        transcript = kw.pop("transcript", True)
        sid = spec.expected_session_id
        assert sid is not None
        if transcript:  # what the CLI does once it has run a turn
            d = self.home / ".claude" / "projects" / _proj(spec.cwd)
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{sid}.jsonl").write_text("{}\n")
        out = _outcome(spec, self.clock, **kw)
        if on_event is not None:
            init = parse_line(
                json.dumps({"type": "system", "subtype": "init", "session_id": sid}).encode(),
                seq=0,
                ts=self.clock.time(),
                mono=0,
            )
            on_event(init)
            for ev in out.events:
                on_event(ev)
        return FakeAttempt(self, spec, out, hang)


def _proj(cwd: Any) -> str:
    import os
    import re

    return re.sub(r"[^A-Za-z0-9]", "-", os.path.realpath(str(cwd)))


class Rig:
    def __init__(self, tmp_path: Path, script: Script, **cfg: Any) -> None:
        self.clock = FakeClock()
        self.home = tmp_path / "home"
        self.home.mkdir()
        self.cwd = tmp_path / "work"
        self.cwd.mkdir()
        self.store = Store(":memory:")
        self.jobs = JobStore(self.store, clock=self.clock)
        self.manager = FakeManager(self.clock, script, self.home)
        # the scripted CLI never talks to an API, so there is nothing to relay (tests/supervise/test_relay.py
        # covers the relay, the real-CLI tests the two together)
        base: dict[str, Any] = {"backoff_base": 1.0, "backoff_cap": 8.0, "max_recoveries": 3, "recovery_period": 600.0,
                                "relay": False}
        base.update(cfg)
        self.config = SupervisorConfig(**base)
        self.alerts = AlertManager(clock=self.clock, min_interval=60.0)
        self.events: list[SupervisorEvent] = []
        self.orch = self.orchestrator()

    def orchestrator(self) -> Orchestrator:
        """An orchestrator on this rig's store, clock and manager (another one: a restarted supervisor)."""
        return Orchestrator(
            config=self.config,
            jobs=self.jobs,
            manager=self.manager,
            sessions=SessionManager(),  # type: ignore[arg-type]
            planner=RecoveryPlanner(),
            classifier=Classifier(),
            alerts=self.alerts,
            emit=self.events.append,
            clock=self.clock,
            environ={"HOME": str(self.home), "ANTHROPIC_BASE_URL": URL},
        )

    def job(self, prompt: str = "do it") -> str:
        return self.jobs.create_job(prompt, cwd=self.cwd, endpoint=URL).id

    def rows(self, sql: str) -> list[Any]:
        return [dict(r) for r in self.store.query(sql)]


# ---------------------------------------------------------------------------------------------------


async def test_success_on_the_first_attempt_records_one_retries_row(tmp_path: Path) -> None:
    rig = Rig(tmp_path, lambda spec, n: {"exit_code": 0, "result": R_OK})
    res = await rig.orch.run_job(rig.job())
    assert res.ok and res.exit_status == 0 and res.attempts == 1 and res.recoveries == 0
    assert res.result_text == "done"
    assert rig.rows("SELECT attempts, succeeded, slept_s FROM retries") == [
        {"attempts": 1, "succeeded": 1, "slept_s": 0.0}
    ]
    assert rig.clock.sleeps == [1.0]  # only the attempt itself; no backoff


async def test_a_killed_cli_is_resumed_in_the_same_session_without_backoff(tmp_path: Path) -> None:
    rig = Rig(tmp_path, lambda spec, n: {"signal": 9} if n == 1 else {"exit_code": 0, "result": R_OK})
    res = await rig.orch.run_job(rig.job("the original prompt"))
    assert res.ok and res.attempts == 2 and res.recoveries == 1
    s1, s2 = rig.manager.specs
    assert (s1.mode, s2.mode) == ("start", "resume")
    assert s2.session_id == s1.session_id
    assert s2.prompt != "the original prompt" and "interrupted" in s2.prompt  # the continuation prompt
    (rec,) = rig.rows("SELECT strategy, error_type, succeeded, restored_at, detected_at, waited_s FROM recoveries")
    assert rec["strategy"] == "resume_session" and rec["error_type"] == "process" and rec["succeeded"] == 1
    assert rec["restored_at"] >= rec["detected_at"] and rec["waited_s"] == 0
    assert rig.clock.sleeps == [1.0, 1.0]  # first recovery: no back-off (OTP intensity starts at zero)
    (err,) = rig.rows("SELECT type, retryable FROM errors")
    assert err == {"type": "process", "retryable": 1}
    # a signal on a healthy API says nothing about the endpoint
    assert rig.orch.endpoints[URL].breaker.metrics().failures == 0


async def test_a_crash_before_any_transcript_starts_over_with_the_original_prompt(tmp_path: Path) -> None:
    rig = Rig(
        tmp_path, lambda spec, n: {"signal": 9, "transcript": False} if n == 1 else {"exit_code": 0, "result": R_OK}
    )
    res = await rig.orch.run_job(rig.job("original"))
    assert res.ok
    s1, s2 = rig.manager.specs
    assert s2.mode == "start" and s2.prompt == "original" and s2.session_id != s1.session_id
    assert [a.kind for a in rig.jobs.attempts(res.job_id)] == ["start", "restart"]


async def test_401_gives_up_at_once_escalates_and_exits_with_status_3(tmp_path: Path) -> None:
    rig = Rig(tmp_path, lambda spec, n: {"exit_code": 1, "result": R_401})
    res = await rig.orch.run_job(rig.job())
    assert res.state is JobState.FAILED and res.exit_status == 3
    assert res.attempts == 1 and res.recoveries == 0
    assert res.error is not None and res.error.type is not None and res.error.type.value == "auth"
    assert [a.kind for a in rig.alerts.sent] == ["escalation"]
    assert rig.orch.endpoints[URL].breaker.metrics().failures == 0
    assert rig.rows("SELECT attempts, succeeded FROM retries") == [{"attempts": 1, "succeeded": 0}]


async def test_restart_intensity_limit_fails_the_job_with_a_clear_reason(tmp_path: Path) -> None:
    rig = Rig(tmp_path, lambda spec, n: {"signal": 11}, max_recoveries=3, backoff_base=1.0, backoff_cap=8.0)
    res = await rig.orch.run_job(rig.job())
    assert res.state is JobState.FAILED and res.exit_status == 1
    assert res.attempts == 4 and res.recoveries == 3
    assert res.reason is not None and "3 recoveries" in res.reason and "limit 3" in res.reason
    # each attempt takes 1 s; CrashLoop back-off between recoveries: 0, then 1, then 2
    assert rig.clock.sleeps == [1.0, 1.0, 1.0, 1.0, 2.0, 1.0]
    assert [a.kind for a in rig.alerts.sent] == ["gave_up"]
    assert rig.rows("SELECT succeeded FROM recoveries") == [{"succeeded": 0}] * 3


async def test_a_quota_reset_is_waited_for_and_does_not_count_as_a_crash(tmp_path: Path) -> None:
    rig = Rig(
        tmp_path,
        lambda spec, n: {"exit_code": 1, "result": r_usage_limit(3600)} if n <= 4 else {"exit_code": 0, "result": R_OK},
        max_recoveries=1,
    )
    res = await rig.orch.run_job(rig.job())
    # four server-imposed waits in a row, although only one crash-recovery is allowed
    assert res.ok and res.recoveries == 4
    long_waits = [s for s in rig.clock.sleeps if s > 3000]
    assert len(long_waits) == 4
    recs = rig.rows("SELECT strategy, waited_s FROM recoveries")
    assert {r["strategy"] for r in recs} == {"wait_until"}
    assert all(r["waited_s"] > 3000 for r in recs)
    assert any(isinstance(e, Waiting) and e.until_ts is not None for e in rig.events)


async def test_resume_that_finds_no_conversation_starts_fresh_once(tmp_path: Path) -> None:
    def script(spec: AttemptSpec, n: int) -> dict[str, Any]:
        if n == 1:
            return {"signal": 9}
        if n == 2:
            return {"exit_code": 1, "result": r_missing(spec.session_id or ""), "transcript": False}
        return {"exit_code": 0, "result": R_OK}

    rig = Rig(tmp_path, script)
    res = await rig.orch.run_job(rig.job("original"))
    assert res.ok
    modes = [(s.mode, s.prompt == "original") for s in rig.manager.specs]
    assert modes == [("start", True), ("resume", False), ("start", True)]
    assert [r["strategy"] for r in rig.rows("SELECT strategy FROM recoveries")] == ["resume_session", "fork_session"]


async def test_529s_open_the_shared_breaker_and_other_jobs_wait_for_it(tmp_path: Path) -> None:
    calls = {"n": 0}

    def script(spec: AttemptSpec, n: int) -> dict[str, Any]:
        calls["n"] += 1
        return {"exit_code": 1, "result": R_529} if calls["n"] <= 6 else {"exit_code": 0, "result": R_OK}

    br = CircuitThresholds(
        min_calls=4,
        failure_rate=0.5,
        wait_in_open=10.0,
        half_open_max_calls=1,
        slow_call_duration=600.0,
        half_open_lease=600.0,
    )
    rig = Rig(tmp_path, script, breaker=br, max_recoveries=10, retry_budget_min_per_sec=10.0)
    ids = [rig.job(f"job {i}") for i in range(4)]
    results = await asyncio.gather(*(rig.orch.run_job(j) for j in ids))
    assert all(r.ok for r in results)
    trans = [(r["from_state"], r["to_state"]) for r in rig.rows("SELECT from_state, to_state FROM breaker_transitions")]
    assert trans[0] == ("closed", "open") and trans[-1] == ("half_open", "closed")
    assert [a.kind for a in rig.alerts.sent].count("breaker_open") == 1  # rate limited: one per key per minute
    waits = [e for e in rig.events if isinstance(e, Waiting) and "breaker" in e.reason]
    assert waits
    # waiting for the breaker is recorded as imposed wait, not as our recovery time
    assert any(r["waited_s"] >= 10.0 for r in rig.rows("SELECT waited_s FROM recoveries"))
    assert rig.orch.endpoints[URL].breaker.metrics().failures >= 4


async def test_an_empty_retry_budget_alerts_once_and_waits_instead_of_failing(tmp_path: Path) -> None:
    rig = Rig(
        tmp_path,
        lambda spec, n: {"exit_code": 1, "result": R_500} if n <= 2 else {"exit_code": 0, "result": R_OK},
        retry_budget_ratio=0.0,
        retry_budget_min_per_sec=0.0,
        budget_wait_max=5.0,
        max_recoveries=5,
    )
    res = await rig.orch.run_job(rig.job())
    assert res.ok and res.recoveries == 2
    # the wait ran out, so the bypass is alerted too; the second recovery's alerts are rate limited
    assert [a.kind for a in rig.alerts.sent] == ["budget_exhausted", "budget_bypassed"]
    assert (rig.rows("SELECT slept_s FROM retries")[0]["slept_s"]) >= 10.0  # two bounded waits of 5 s


async def test_a_bounded_budget_wait_that_runs_out_is_an_explicit_counted_bypass(tmp_path: Path) -> None:
    """Regression: the bypass was a log line, and each 0.5 s poll counted a refusal."""
    rig = Rig(
        tmp_path,
        lambda spec, n: {"exit_code": 1, "result": R_500} if n <= 2 else {"exit_code": 0, "result": R_OK},
        retry_budget_ratio=0.0,
        retry_budget_min_per_sec=0.0,
        budget_wait_max=20.0,
        max_recoveries=5,
    )
    res = await rig.orch.run_job(rig.job())
    assert res.ok and res.recoveries == 2
    stats = rig.orch.endpoints[URL].budget.stats()
    assert stats.retries_refused == 2  # one per recovery that had to wait, not one per poll
    assert stats.bypassed == 2 and stats.retries_allowed == 0
    bypasses = [e for e in rig.events if isinstance(e, BudgetBypassed)]
    assert len(bypasses) == 2
    assert all(e.endpoint == URL and e.waited_s >= 20.0 for e in bypasses)
    assert [a.kind for a in rig.alerts.sent] == ["budget_exhausted", "budget_bypassed"]  # then rate limited


async def test_budget_wait_max_none_waits_for_a_token_and_keeps_the_invariant(tmp_path: Path) -> None:
    """With no bound the second recovery waits until the first one's withdrawal expires."""
    rig = Rig(
        tmp_path,
        lambda spec, n: {"exit_code": 1, "result": R_500} if n <= 2 else {"exit_code": 0, "result": R_OK},
        retry_budget_ratio=0.0,
        retry_budget_min_per_sec=0.1,  # a floor of one retry per 10 s window
        budget_wait_max=None,
        max_recoveries=5,
    )
    t0 = rig.clock.monotonic()
    res = await rig.orch.run_job(rig.job())
    assert res.ok and res.recoveries == 2
    stats = rig.orch.endpoints[URL].budget.stats()
    assert (stats.retries_allowed, stats.retries_refused, stats.bypassed) == (2, 1, 0)
    assert not [e for e in rig.events if isinstance(e, BudgetBypassed)]
    assert [a.kind for a in rig.alerts.sent] == ["budget_exhausted"]
    assert rig.clock.monotonic() - t0 >= 9.0  # it waited for the floor to come back (one slot: 1 s)


async def test_a_cli_killed_from_outside_does_not_spend_the_endpoints_retry_budget(tmp_path: Path) -> None:
    """The budget limits retries caused by the endpoint's failures; a SIGKILL says nothing about the endpoint.

    With an empty budget, the API's failures wait for it (the test above) while
    kills recover at once: no budget wait, no alert, the budget untouched.
    """
    rig = Rig(
        tmp_path,
        lambda spec, n: {"signal": 9} if n <= 2 else {"exit_code": 0, "result": R_OK},
        retry_budget_ratio=0.0,
        retry_budget_min_per_sec=0.0,
        budget_wait_max=20.0,
        max_recoveries=5,
    )
    t0 = rig.clock.monotonic()
    res = await rig.orch.run_job(rig.job())
    assert res.ok and res.recoveries == 2
    stats = rig.orch.endpoints[URL].budget.stats()
    assert (stats.retries_allowed, stats.retries_refused, stats.bypassed) == (0, 0, 0)
    assert not [a for a in rig.alerts.sent if a.kind.startswith("budget")]
    assert rig.clock.monotonic() - t0 < 20.0  # never waited out the 20 s bound
    assert all(r["budget_s"] == 0 for r in rig.rows("SELECT budget_s FROM recoveries"))


def test_budget_wait_max_accepts_none_and_rejects_negative() -> None:
    assert SupervisorConfig(budget_wait_max=None).budget_wait_max is None
    with pytest.raises(ValueError, match="budget_wait_max"):
        SupervisorConfig(budget_wait_max=-1.0)


async def test_cancelling_a_waiting_job_leaves_it_interrupted_and_resumable(tmp_path: Path) -> None:
    rig = Rig(
        tmp_path,
        lambda spec, n: {"exit_code": 1, "result": r_usage_limit(3600)} if n == 1 else {"exit_code": 0, "result": R_OK},
    )
    jid = rig.job()
    real = rig.clock.asleep

    async def slow_asleep(s: float) -> None:  # a long wait yields for real, so the test can cancel it
        if s > 1000:
            await asyncio.sleep(10)
        await real(s)

    rig.clock.asleep = slow_asleep  # type: ignore[method-assign]
    t = asyncio.create_task(rig.orch.run_job(jid))
    for _ in range(100):
        await asyncio.sleep(0)
        if rig.jobs.require(jid).state is JobState.WAITING:
            break
    assert rig.jobs.require(jid).state is JobState.WAITING
    t.cancel()
    with pytest.raises(asyncio.CancelledError):
        await t
    assert rig.jobs.require(jid).state is JobState.INTERRUPTED
    rig.clock.asleep = real  # type: ignore[method-assign]
    res = await rig.orch.run_job(jid)
    assert res.ok and rig.manager.specs[-1].mode == "resume"


async def test_cancelling_a_running_attempt_stops_it_and_keeps_the_job(tmp_path: Path) -> None:
    rig = Rig(tmp_path, lambda spec, n: {"hang": True})
    jid = rig.job()
    t = asyncio.create_task(rig.orch.run_job(jid))
    for _ in range(50):
        await asyncio.sleep(0)
    assert rig.jobs.require(jid).state is JobState.RUNNING
    t.cancel()
    with pytest.raises(asyncio.CancelledError):
        await t
    rec = rig.jobs.require(jid)
    assert rec.state is JobState.INTERRUPTED
    (a,) = rig.jobs.attempts(jid)
    assert a.outcome == "cancelled" and a.killed_by == "user"


# -- the stored state changed under the supervisor (``resurgo cancel`` from another process) -----------


def _cancel_elsewhere(rig: Rig, jid: str) -> None:
    """What ``resurgo cancel`` does from another process: its own JobStore, the job marked cancelled."""
    other = JobStore(rig.store, clock=rig.clock, owner="otherhost:1:1")
    assert other.set_state(jid, JobState.CANCELLED, reason="cancelled with `resurgo cancel`",
                           expect=[s for s in JobState if not s.terminal])


async def test_an_attempt_killed_by_a_cancel_elsewhere_is_not_recovered_and_the_job_stays_cancelled(
    tmp_path: Path,
) -> None:
    jid_box: list[str] = []

    def script(spec: AttemptSpec, n: int) -> dict[str, Any]:
        _cancel_elsewhere(rig, jid_box[0])  # the cancel lands while the attempt runs and SIGTERMs it
        return {"signal": 15}

    rig = Rig(tmp_path, script)
    jid_box.append(rig.job())
    res = await rig.orch.run_job(jid_box[0])
    assert res.state is JobState.CANCELLED and res.exit_status == 5 and res.recoveries == 0
    assert res.reason == "cancelled with `resurgo cancel`"
    assert len(rig.manager.specs) == 1  # no recovery attempt
    (a,) = rig.jobs.attempts(jid_box[0])
    assert a.outcome == "cancelled" and a.killed_by == "user"
    assert rig.rows("SELECT COUNT(*) AS n FROM recoveries")[0]["n"] == 0
    assert rig.rows("SELECT COUNT(*) AS n FROM errors")[0]["n"] == 0  # not classified as a failure


async def test_a_success_after_a_cancel_elsewhere_leaves_the_job_cancelled(tmp_path: Path) -> None:
    jid_box: list[str] = []

    def script(spec: AttemptSpec, n: int) -> dict[str, Any]:
        _cancel_elsewhere(rig, jid_box[0])
        return {"exit_code": 0, "result": R_OK}

    rig = Rig(tmp_path, script)
    jid_box.append(rig.job())
    res = await rig.orch.run_job(jid_box[0])
    assert res.state is JobState.CANCELLED and res.exit_status == 5
    assert rig.rows("SELECT COUNT(*) AS n FROM retries")[0]["n"] == 0  # no success recorded


async def test_check_stored_ends_a_running_attempt_cancelled_elsewhere(tmp_path: Path) -> None:
    rig = Rig(tmp_path, lambda spec, n: {"hang": True})
    jid = rig.job()
    t = asyncio.create_task(rig.orch.run_job(jid))
    for _ in range(50):
        await asyncio.sleep(0)
    assert rig.jobs.require(jid).state is JobState.RUNNING
    assert rig.orch.check_stored() == []  # nothing changed yet
    _cancel_elsewhere(rig, jid)
    assert rig.orch.check_stored() == [jid]
    res = await asyncio.wait_for(t, 5)
    assert res.state is JobState.CANCELLED and len(rig.manager.specs) == 1
    (a,) = rig.jobs.attempts(jid)
    assert a.outcome == "cancelled" and a.killed_by == "user"


async def test_check_stored_wakes_a_job_waiting_for_a_quota_reset(tmp_path: Path) -> None:
    rig = Rig(
        tmp_path,
        lambda spec, n: {"exit_code": 1, "result": r_usage_limit(3600)} if n == 1 else {"exit_code": 0, "result": R_OK},
    )
    jid = rig.job()
    real = rig.clock.asleep

    async def slow_asleep(s: float) -> None:  # the hour-long wait yields for real, so it can be interrupted
        if s > 1000:
            await asyncio.sleep(30)
        await real(s)

    rig.clock.asleep = slow_asleep  # type: ignore[method-assign]
    t = asyncio.create_task(rig.orch.run_job(jid))
    for _ in range(100):
        await asyncio.sleep(0)
        if rig.jobs.require(jid).state is JobState.WAITING:
            break
    assert rig.jobs.require(jid).state is JobState.WAITING
    _cancel_elsewhere(rig, jid)
    assert rig.orch.check_stored() == [jid]
    res = await asyncio.wait_for(t, 5)  # not 30 s: the wait was cut short
    assert res.state is JobState.CANCELLED and len(rig.manager.specs) == 1
    (rec,) = rig.jobs.recoveries(jid)
    assert rec["succeeded"] is None and "outside this supervisor" in rec["reason"]


def _answers(*ids: str) -> tuple[StreamEvent, ...]:
    """API answers as the CLI prints them: one ``assistant`` event per content block, same message id."""
    out = []
    for i, mid in enumerate(ids):
        msg = {"id": mid, "model": "m", "content": [{"type": "text", "text": f"turn {i}"}]}
        out.append(parse_line(json.dumps({"type": "assistant", "message": msg}).encode(), seq=i, ts=0.0, mono=0))
    return tuple(out)


def _three_answers_then_a_500(spec: AttemptSpec, n: int) -> dict[str, Any]:
    """Attempt 1: answers m1, m2 (two blocks), m3, then a request fails with a 500; attempt 2: r1, r2."""
    if n == 1:
        return {"exit_code": 1, "result": R_500, "events": _answers("m1", "m2", "m2", "m3")}
    return {"exit_code": 0, "result": R_OK, "events": _answers("r1", "r2")}


async def test_every_answered_request_earns_retry_budget_but_the_retried_one_does_not(tmp_path: Path) -> None:
    """The budget is a fraction of the requests the endpoint answered (Finagle), not of the jobs.

    First attempt: its first request was deposited when the job began; its
    answers m1, m2 (two blocks), m3 add two more.  The recovery's first answer
    is the retried request (no deposit); its next answer, r2, adds one.
    """
    rig = Rig(tmp_path, _three_answers_then_a_500)
    res = await rig.orch.run_job(rig.job())
    assert res.ok and res.recoveries == 1
    stats = rig.orch.endpoints[URL].budget.stats()
    # + 1: the request after m3 failed (the 500), an original request, which earns budget too
    assert stats.deposits == 1 + 2 + 1 + 1
    assert stats.retries_allowed == 1


async def test_a_retry_that_fails_before_any_answer_earns_no_budget(tmp_path: Path) -> None:
    """Finagle: originals deposit, retries do not. The first request of a recovery is the retry."""
    def script(spec: AttemptSpec, n: int) -> dict[str, Any]:
        if n < 3:
            return {"exit_code": 1, "result": R_500}
        return {"exit_code": 0, "result": R_OK}

    rig = Rig(tmp_path, script, max_recoveries=5)
    res = await rig.orch.run_job(rig.job())
    assert res.ok and res.recoveries == 2
    stats = rig.orch.endpoints[URL].budget.stats()
    assert stats.deposits == 1  # the job's first request only: both failures were a first request


async def test_the_breaker_counts_every_answered_request_not_one_success_per_attempt(tmp_path: Path) -> None:
    """Each failure is one failed request, so each answered request is one success: m1, m2, m3 and
    r1, r2 are five answers (m2 came in two blocks), against the one request that failed."""
    rig = Rig(tmp_path, _three_answers_then_a_500)
    res = await rig.orch.run_job(rig.job())
    assert res.ok and res.recoveries == 1
    m = rig.orch.endpoints[URL].breaker.metrics()
    assert (m.successes, m.failures) == (5, 1)


async def test_the_request_watch_settings_reach_the_endpoint_and_each_attempt(tmp_path: Path) -> None:
    from resurgo.supervise._requests import PARTIAL_FLAG

    rig = Rig(tmp_path, lambda spec, n: {"exit_code": 0, "result": R_OK},
              request_timeout_factor=4.0, request_timeout_floor=0.5)
    times = rig.orch.endpoint(URL).times
    assert (times.factor, times.floor) == (4.0, 0.5)
    res = await rig.orch.run_job(rig.job())
    assert res.ok
    spec = rig.manager.specs[0]
    assert spec.liveness.request is not None and spec.liveness.request.times is times
    assert PARTIAL_FLAG in spec.claude_args and spec.quiet_stream
    (tmp_path / "off").mkdir()
    off = Rig(tmp_path / "off", lambda spec, n: {"exit_code": 0, "result": R_OK}, request_watch=False)
    assert (await off.orch.run_job(off.job())).ok
    spec = off.manager.specs[0]
    assert spec.liveness.request is None and PARTIAL_FLAG not in spec.claude_args and not spec.quiet_stream


async def test_answers_do_not_close_an_open_breaker_nor_take_a_probe_slot(tmp_path: Path) -> None:
    from resurgo.breaker import CircuitState

    br = CircuitThresholds(failure_rate=0.5, min_calls=2, wait_in_open=30.0, half_open_max_calls=1)
    rig = Rig(tmp_path, lambda spec, n: {"exit_code": 0, "result": R_OK}, breaker=br)
    ep = rig.orch.endpoint(URL)
    for _ in range(2):
        ep.breaker.acquire().on_error(RuntimeError("529"))
    assert ep.breaker.state is CircuitState.OPEN
    from resurgo.supervise._orchestrator import _Call

    call = _Call(ep.breaker, None)  # type: ignore[arg-type]  # an attempt judged before the opening
    call.done = True
    call.answered()  # a job still running from before the opening got an answer: no effect on the state
    assert ep.breaker.state is CircuitState.OPEN and ep.breaker.metrics().successes == 0


async def test_a_restarted_supervisor_keeps_an_open_breaker_open_for_the_rest_of_its_wait(tmp_path: Path) -> None:
    """A supervisor killed while the endpoint's breaker was open must not come back with a closed one
    and send every job at a failing API; after the wait has run out, nothing is restored."""
    from resurgo.breaker import CircuitState

    br = CircuitThresholds(failure_rate=0.5, min_calls=2, wait_in_open=10.0, half_open_max_calls=1)
    rig = Rig(tmp_path, lambda spec, n: {"exit_code": 0, "result": R_OK}, breaker=br)
    ep = rig.orch.endpoint(URL)
    for _ in range(2):
        ep.breaker.acquire().on_error(RuntimeError("529"))
    assert ep.breaker.state is CircuitState.OPEN
    rig.clock.advance(4.0)
    again = rig.orchestrator().endpoint(URL).breaker
    assert again.state is CircuitState.OPEN
    assert again.retry_after is not None and 5.9 <= again.retry_after <= 6.0  # the rest of the 10 s, not more
    with pytest.raises(Exception, match="open"):
        again.acquire()
    rig.clock.advance(7.0)  # the restored wait (and the original one) ran out
    assert rig.orchestrator().endpoint(URL).breaker.state is CircuitState.CLOSED


async def test_a_forced_open_breaker_is_not_restored_by_a_restart(tmp_path: Path) -> None:
    from resurgo.breaker import CircuitState

    rig = Rig(tmp_path, lambda spec, n: {"exit_code": 0, "result": R_OK})
    rig.orch.endpoint(URL).breaker.force_open("bad credentials")
    assert rig.orchestrator().endpoint(URL).breaker.state is CircuitState.CLOSED


async def test_a_restarted_supervisor_watches_for_hangs_from_its_first_request(tmp_path: Path) -> None:
    """The answer times the last supervisor learned are stored when attempts end and loaded by the next one.

    Without them a restarted supervisor has no hang limit until 8 answers came
    in: a hang right after a restart held its job for the hang's whole length.
    """
    rig = Rig(tmp_path, lambda spec, n: {"exit_code": 0, "result": R_OK})
    ep = rig.orch.endpoint(URL)
    assert ep.times.first_answer_limit() is None
    for v in [0.2] * 19 + [1.0]:
        ep.times.first_answer(v)
        ep.times.stream_gap(0.1)
    assert ep.times.first_answer_limit() == pytest.approx(3.0)
    fresh = rig.orchestrator().endpoint(URL).times
    assert fresh.first_answer_limit() is None  # nothing saved yet: no attempt has ended
    assert (await rig.orch.run_job(rig.job())).ok  # an attempt ends: the times are saved
    rig.clock.advance(60.0)
    again = rig.orchestrator().endpoint(URL).times
    assert again.first_answer_limit() == pytest.approx(3.0) and again.gap_limit() == pytest.approx(5.0)
    assert again.samples() == ep.times.samples() and again.added == 0
    # times saved over an hour ago say little about today's answers: not loaded
    rig.clock.advance(3600.0)
    assert rig.orchestrator().endpoint(URL).times.first_answer_limit() is None


def test_damaged_stored_answer_times_are_dropped_not_raised(tmp_path: Path) -> None:
    rig = Rig(tmp_path, lambda spec, n: {"exit_code": 0, "result": R_OK})
    name = rig.orch.endpoint(URL).breaker.name
    rig.jobs.runs.save_endpoint_times(name, ts=rig.clock.time(), first=[0.1] * 30, gap=[])
    rig.store.execute("UPDATE endpoint_times SET gap_json='{\"no\": 1}', "
                      "first_json='[0.5, \"x\", -1, true, 1e999, null' WHERE endpoint=?", (name,))
    times = rig.orchestrator().endpoint(URL).times  # starts, with nothing learned
    assert times.samples() == ([], [])
    rig.store.execute("UPDATE endpoint_times SET first_json='[0.5, \"x\", -1, true, 0.25]' WHERE endpoint=?",
                      (name,))
    assert rig.jobs.runs.endpoint_times(name) == (rig.clock.time(), [0.5, 0.25], [])


@pytest.mark.parametrize("relay", [True, False])
async def test_through_the_relay_the_cli_starts_before_the_open_wait_ends_and_takes_no_probe(
        tmp_path: Path, relay: bool) -> None:
    """Through the relay the breaker judges each request, so the job need not wait for the circuit itself.

    The CLI starts once the open wait has less left than the CLI takes to start
    (learned: 0.5 s here), and takes none of a half-open breaker's probe slots:
    its first request reaches the relay as the breaker lets calls through.
    Without the relay (the property broken), the attempt itself is the probe:
    it waits for the whole open wait and takes the slot.
    """
    from resurgo.breaker import CircuitState

    states: list[tuple[float, CircuitState]] = []
    br = CircuitThresholds(failure_rate=0.5, min_calls=2, wait_in_open=10.0, half_open_max_calls=1)

    def script(spec: AttemptSpec, n: int) -> dict[str, Any]:
        b = rig.orch.endpoints[URL].breaker
        states.append((rig.clock.monotonic() - opened, b.state))
        return {"exit_code": 0, "result": R_OK}

    rig = Rig(tmp_path, script, breaker=br, relay=relay)
    try:
        rig.orch._learn_start(0.5)
        ep = rig.orch.endpoint(URL)
        for _ in range(2):
            ep.breaker.acquire().on_error(RuntimeError("529"))
        opened = rig.clock.monotonic()
        assert ep.breaker.state is CircuitState.OPEN
        res = await rig.orch.run_job(rig.job())
        assert res.ok
        ((at, state),) = states
        if relay:
            assert 9.5 - 1e-6 <= at < 10.0 and state is CircuitState.OPEN  # started 0.5 s before the wait's end
            assert ep.breaker.metrics().successes == 0  # no permit: the relay's requests are the probes
        else:
            assert at >= 10.0 and state is CircuitState.HALF_OPEN  # the attempt took the probe
        waits = [e for e in rig.events if isinstance(e, Waiting) and "breaker" in e.reason]
        assert len(waits) == 1  # said once, whichever way it waited
    finally:
        await rig.orch.close_relay()
