"""Every recovery's time, broken into phases in the store (detect, imposed wait, own back-off,
CLI start, redoing lost work), on virtual time with the scripted process manager."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from resurgo.store import RunStore, Store, summarize_phases
from resurgo.store.schema import MIGRATIONS
from resurgo.supervise._process import StreamEvent, parse_line

from .test_orchestrator import R_529, R_OK, Rig, r_usage_limit


def _ev(d: dict[str, Any], ts: float, seq: int = 0) -> StreamEvent:
    return parse_line(json.dumps(d).encode(), seq=seq, ts=ts, mono=0)


def _tool_use(ts: float, cmd: str = "sleep 1") -> StreamEvent:
    msg = {"model": "m", "content": [{"type": "tool_use", "id": "t", "name": "Bash", "input": {"command": cmd}}]}
    return _ev({"type": "assistant", "message": msg}, ts)


def _tool_result(ts: float) -> StreamEvent:
    return _ev({"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "t"}]}}, ts)


def _text(ts: float) -> StreamEvent:
    return _ev({"type": "assistant", "message": {"model": "m", "content": [{"type": "text", "text": "ok"}]}}, ts)


def _retry(ts: float, status: int) -> StreamEvent:
    return _ev({"type": "system", "subtype": "api_retry", "attempt": 1, "error_status": status}, ts)


async def test_a_kill_mid_tool_records_detection_start_and_the_redone_tool_call(tmp_path: Path) -> None:
    rig: Rig

    def script(spec: Any, n: int) -> dict[str, Any]:
        t = rig.clock.time()
        if n == 1:  # one tool call completed, a second one in flight when the CLI is killed
            return {"signal": 9, "events": (_tool_use(t + 0.1), _tool_result(t + 0.2), _tool_use(t + 0.3))}
        # the resumed session issues the lost call again, gets its result 0.5 s in, then goes on
        return {"exit_code": 0, "result": R_OK, "events": (_tool_use(t + 0.1), _tool_result(t + 0.5), _text(t + 0.6))}

    rig = Rig(tmp_path, script)
    res = await rig.orch.run_job(rig.job())
    assert res.ok
    (ph,) = rig.store.recovery_phases(res.job_id)
    assert ph.fault_kind == "kill" and ph.lost_tools == 1
    assert ph.detect_s == 0.0  # a kill is noticed when the process ends
    assert ph.imposed_s == 0.0 and ph.backoff_s == 0.0 and ph.budget_s == 0.0
    assert ph.start_s == 0.0  # the fake CLI prints its init at once
    assert ph.redo_s is not None and abs(ph.redo_s - 0.5) < 1e-6  # until the lost call's result came back
    assert ph.recovery_s is not None and ph.recovery_excl_imposed_s == ph.recovery_s
    assert ph.succeeded is True


async def test_a_kill_between_tool_calls_loses_nothing(tmp_path: Path) -> None:
    rig: Rig

    def script(spec: Any, n: int) -> dict[str, Any]:
        t = rig.clock.time()
        if n == 1:
            return {"signal": 9, "events": (_tool_use(t + 0.1), _tool_result(t + 0.2))}
        return {"exit_code": 0, "result": R_OK}

    rig = Rig(tmp_path, script)
    res = await rig.orch.run_job(rig.job())
    (ph,) = rig.store.recovery_phases(res.job_id)
    assert ph.lost_tools == 0 and ph.redo_s == 0.0


async def test_a_restart_from_the_prompt_redoes_every_completed_call(tmp_path: Path) -> None:
    rig: Rig

    def script(spec: Any, n: int) -> dict[str, Any]:
        t = rig.clock.time()
        if n == 1:  # two calls done, none in flight, and no transcript: start over
            evs = (_tool_use(t + 0.1), _tool_result(t + 0.2), _tool_use(t + 0.3), _tool_result(t + 0.4))
            return {"signal": 9, "transcript": False, "events": evs}
        evs = (_tool_use(t + 0.1), _tool_result(t + 0.2), _tool_use(t + 0.3), _tool_result(t + 0.7))
        return {"exit_code": 0, "result": R_OK, "events": evs}

    rig = Rig(tmp_path, script)
    res = await rig.orch.run_job(rig.job())
    (ph,) = rig.store.recovery_phases(res.job_id)
    assert ph.strategy == "restart_process" and ph.lost_tools == 2
    assert ph.redo_s is not None and abs(ph.redo_s - 0.7) < 1e-6


async def test_api_faults_count_the_clis_own_retries_as_detection_and_split_own_backoff(tmp_path: Path) -> None:
    rig: Rig

    def script(spec: Any, n: int) -> dict[str, Any]:
        t = rig.clock.time()
        if n <= 2:  # the CLI retried from 0.2 s on, then gave up with a 529 at the end (1 s)
            return {"exit_code": 1, "result": R_529, "events": (_retry(t + 0.2, 529),)}
        return {"exit_code": 0, "result": R_OK}

    rig = Rig(tmp_path, script, backoff_base=1.0, backoff_cap=8.0)
    res = await rig.orch.run_job(rig.job())
    assert res.ok
    p1, p2 = rig.store.recovery_phases(res.job_id)
    assert (p1.fault_kind, p2.fault_kind) == ("529", "529")
    assert p1.detect_s is not None and abs(p1.detect_s - 0.8) < 1e-6
    assert p1.backoff_s == 0.0  # the first recovery waits for nothing
    # the second one: resurgo's own back-off (1 s doubled-ish by the endpoint's load of failures)
    assert p2.backoff_s >= 1.0 and p2.imposed_s == 0.0
    assert p2.overhead_s == 0.0


async def test_a_quota_reset_is_an_imposed_wait_not_resurgos_backoff(tmp_path: Path) -> None:
    rig = Rig(
        tmp_path,
        lambda spec, n: {"exit_code": 1, "result": r_usage_limit(120)} if n == 1 else {"exit_code": 0, "result": R_OK},
    )
    res = await rig.orch.run_job(rig.job())
    (ph,) = rig.store.recovery_phases(res.job_id)
    assert ph.fault_kind == "429" and ph.imposed_s > 100 and ph.backoff_s == 0.0
    assert ph.recovery_s is not None and ph.recovery_excl_imposed_s is not None
    assert ph.recovery_s - ph.recovery_excl_imposed_s == ph.imposed_s


async def test_a_stall_is_detected_from_the_last_event_before_the_silence(tmp_path: Path) -> None:
    rig: Rig

    def script(spec: Any, n: int) -> dict[str, Any]:
        t = rig.clock.time()
        if n == 1:
            return {"signal": 9, "killed_by": "stall_watchdog", "events": (_text(t + 0.25),), "duration": 5.0}
        return {"exit_code": 0, "result": R_OK}

    rig = Rig(tmp_path, script)
    res = await rig.orch.run_job(rig.job())
    (ph,) = rig.store.recovery_phases(res.job_id)
    assert ph.fault_kind == "stall" and ph.detect_s is not None and abs(ph.detect_s - 4.75) < 1e-6


def test_phases_of_a_store_before_the_phase_columns_read_as_unknown(tmp_path: Path) -> None:
    store = Store(tmp_path / "old.db")
    store.migrate("runs", MIGRATIONS[:2])  # a store written by the previous resurgo
    store.execute("INSERT INTO jobs(id, prompt, cwd, state, created_at, updated_at) VALUES('j','p','/','failed',0,0)")
    store.execute(
        "INSERT INTO recoveries(job_id, strategy, detected_at, started_at, restored_at, waited_s)"
        " VALUES('j','resume_session',10,11,12,0.5)"
    )
    (ph,) = store.recovery_phases()
    assert ph.fault_kind == "other" and ph.detect_s is None and ph.redo_s is None
    assert ph.start_s == 1.0 and ph.overhead_s == 0.5
    RunStore(store)  # the migration adds the columns and keeps the row
    (ph2,) = store.recovery_phases("j")
    assert ph2.start_s == 1.0 and ph2.backoff_s == 0.0
    store.close()


def test_summary_gives_median_and_p95_per_fault_kind() -> None:
    store = Store()
    runs = RunStore(store)
    runs.insert_job("j", prompt="p", cwd="/", state="running")
    for i, kind in enumerate(["kill", "kill", "kill", "529"]):
        rid = runs.insert_recovery("j", strategy="resume_session", detected_at=100.0 * i, fault_kind=kind,
                                   fault_at=100.0 * i - 0.1 * (i + 1))
        runs.update_recovery(rid, started_at=100.0 * i + 0.05, restored_at=100.0 * i + 0.5 + i, caught_up_at=None)
    s = summarize_phases(store.recovery_phases())
    assert s["kill"]["n"] == 3 and s["529"]["n"] == 1 and s["all"]["n"] == 4
    assert abs(s["kill"]["detect_s"]["median"] - 0.2) < 1e-9 and abs(s["kill"]["detect_s"]["p95"] - 0.3) < 1e-9
    assert s["kill"]["redo_s"] is None  # never caught up: left out, not counted as zero
    assert abs(s["all"]["start_s"]["p95"] - 3.45) < 1e-9


async def test_resurgo_show_prints_the_phase_breakdown(tmp_path: Path) -> None:
    from resurgo.cli import main

    db = tmp_path / "s.db"
    store = Store(db)
    rig = Rig(tmp_path, lambda spec, n: {"signal": 9} if n == 1 else {"exit_code": 0, "result": R_OK})
    rig.store = store
    from resurgo.supervise._jobstore import JobStore

    rig.jobs = JobStore(store, clock=rig.clock)
    rig.orch.jobs = rig.jobs
    res = await rig.orch.run_job(rig.job())
    store.close()
    out = CliRunner().invoke(main, ["show", res.job_id, "--store", str(db)], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "recovery phases" in out.output and "kill" in out.output
    js = CliRunner().invoke(main, ["show", res.job_id, "--store", str(db), "--json"])
    data = json.loads(js.output)
    assert data["recovery_phases"][0]["fault_kind"] == "kill"
    assert data["phases_by_fault"]["kill"]["n"] == 1


async def test_lost_work_is_carried_over_an_attempt_killed_while_starting(tmp_path: Path) -> None:
    rig: Rig

    def script(spec: Any, n: int) -> dict[str, Any]:
        t = rig.clock.time()
        if n == 1:  # killed with one tool call in flight
            return {"signal": 9, "events": (_tool_use(t + 0.1),)}
        if n == 2:  # killed again before it redid anything
            return {"signal": 9}
        return {"exit_code": 0, "result": R_OK, "events": (_tool_use(t + 0.1), _tool_result(t + 0.4))}

    rig = Rig(tmp_path, script)
    rig.manager.script = script
    res = await rig.orch.run_job(rig.job())
    p1, p2 = rig.store.recovery_phases(res.job_id)
    assert p1.lost_tools == 1 and p2.lost_tools == 1  # still owed after the second kill
    assert p2.redo_s is not None and abs(p2.redo_s - 0.4) < 1e-6
