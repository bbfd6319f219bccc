"""Report maths on hand-made records, where every number can be checked by hand."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

from resurgo.chaos import (
    BreakerEvent,
    ChaosReport,
    ClassificationRecord,
    FaultLog,
    IncidentRecord,
    JobRecord,
    LeftoverProcess,
    compute_report,
    new_files,
    new_processes,
    percentile,
    snapshot_files,
    snapshot_processes,
)
from resurgo.chaos._faults import FaultWindow
from resurgo.clock import FakeClock

from ._helpers import Reaper

T0 = 1_000.0


def _jobs() -> list[JobRecord]:
    jobs = [JobRecord(f"ok{i}", T0 + i, "succeeded", T0 + 80, started_at=T0 + i) for i in range(8)]
    jobs.append(JobRecord("bad", T0, "failed", T0 + 20, started_at=T0))
    jobs.append(JobRecord("gone", T0, started_at=T0 + 5))  # never finished: lost
    jobs.append(JobRecord("auth", T0, "failed", T0 + 1, expected_failure=True, started_at=T0))
    jobs.append(JobRecord("queued", T0))  # never started: lost, and no run time
    return jobs


def _incidents() -> list[IncidentRecord]:
    return [
        IncidentRecord("ok0", T0 + 10, "network", "network", recovered_at=T0 + 11),
        IncidentRecord("ok1", T0 + 10.5, "network", "network", recovered_at=T0 + 12.5),
        IncidentRecord("ok2", T0 + 50, "rate_limit", "rate_limit", recovered_at=T0 + 53),
        IncidentRecord("ok3", T0 + 60, "process_crash", "network", recovered_at=T0 + 70),
        IncidentRecord("gone", T0 + 90, "timeout", "timeout"),  # never recovered
    ]


def _windows() -> list[FaultWindow]:
    return [
        FaultWindow(1, T0 + 9, T0 + 10.2, "net:reset", "api"),
        FaultWindow(2, T0 + 45, T0 + 49.5, "api:429", "api"),  # 50 is within the 1 s grace
        FaultWindow(3, T0 + 59.9, T0 + 59.9, "kill:SIGKILL", "pid 7"),
        FaultWindow(4, T0 + 19.9, T0 + 19.9, "kill:SIGKILL", "pid 8"),
    ]


def _events() -> list[BreakerEvent]:
    return [
        BreakerEvent(T0 + 20, "api", "threshold_crossed"),
        BreakerEvent(T0 + 20, "api", "opened"),
        BreakerEvent(T0 + 20.4, "api", "rejected"),
        BreakerEvent(T0 + 21, "api", "rejected"),
        BreakerEvent(T0 + 30, "api", "threshold_crossed"),  # nobody called: unmeasured
        BreakerEvent(T0 + 40, "api", "threshold_crossed"),
        BreakerEvent(T0 + 40.9, "api", "rejected"),
        BreakerEvent(T0 + 80, "tools", "opened"),  # no crossing events: opening is the trigger
        BreakerEvent(T0 + 80.25, "tools", "rejected"),
    ]


def _report(**kw: object) -> ChaosReport:
    args: dict[str, object] = {
        "started_at": T0,
        "ended_at": T0 + 100,
        "jobs": _jobs(),
        "incidents": _incidents(),
        "breaker_events": _events(),
        "fault_log": _windows(),
        "grace": 1.0,
        "seed": 7,
    }
    args.update(kw)
    return compute_report(**args)  # type: ignore[arg-type]


def test_job_counts_and_availability() -> None:
    r = _report()
    assert (r.jobs_submitted, r.jobs_succeeded, r.jobs_failed, r.jobs_lost) == (12, 8, 2, 2)
    assert r.jobs_expected_failures == 1
    assert r.availability == pytest.approx(8 / 11)  # the deliberate auth failure is left out


def test_recovery_rate_times_mttr_and_mtbf() -> None:
    r = _report()
    assert (r.incidents, r.recovered_automatically, r.unrecovered) == (5, 4, 1)
    assert r.auto_recovery_rate == pytest.approx(4 / 5)
    # recovery times 1, 2, 3, 10; nearest rank: p50 is the 2nd, p95 the 4th (ceil(3.8))
    assert r.recovery_p50 == pytest.approx(2.0)
    assert r.recovery_p95 == pytest.approx(10.0)
    assert r.recovery_max == pytest.approx(10)
    assert r.mttr == pytest.approx(4.0)
    # job time: ok0..ok7 run 80-i s each (612), bad 20, gone 95 (5 -> end of run), auth 1;
    # queued never started.  Down: ok0 1, ok1 2, ok2 3, ok3 10, gone 10 (90 -> end, unrecovered).
    assert r.run_job_s == pytest.approx(728.0)
    assert r.down_job_s == pytest.approx(26.0)
    assert r.availability_time == pytest.approx(1 - 26 / 728)
    # failures: 5 incidents + bad and auth, which failed without an incident
    assert r.failures == 7
    assert r.mtbf == pytest.approx((728 - 26) / 7)
    # system-wide: down while any job recovers, [10,12.5] + [50,53] + [60,70] + [90,100] = 25.5
    assert r.downtime_system == pytest.approx(25.5)
    assert r.mtbf_system == pytest.approx((100 - 25.5) / 5)


def test_job_mtbf_does_not_shrink_with_parallel_jobs() -> None:
    # Four jobs all running 0..100, each down for 25 s, one after the other: the system
    # is "down" the whole run, yet each job made progress 75 % of its time.
    jobs = [JobRecord(f"j{k}", T0, "succeeded", T0 + 100, started_at=T0) for k in range(4)]
    incidents = [
        IncidentRecord(f"j{k}", T0 + 25 * k, "network", "network", recovered_at=T0 + 25 * (k + 1))
        for k in range(4)
    ]
    r = compute_report(started_at=T0, ended_at=T0 + 100, jobs=jobs, incidents=incidents)
    assert r.downtime_system == pytest.approx(100.0)
    assert r.mtbf_system == pytest.approx(0.0)
    assert (r.run_job_s, r.down_job_s, r.failures) == (pytest.approx(400.0), pytest.approx(100.0), 4)
    assert r.mtbf == pytest.approx(300 / 4)
    assert r.availability_time == pytest.approx(0.75)


def test_job_time_clips_to_the_run_and_chains_failed_recoveries() -> None:
    jobs = [
        JobRecord("a", T0 - 10, "succeeded", T0 + 40, started_at=T0 - 10),  # run clipped to 0..40
        JobRecord("b", T0, None, T0 + 30, started_at=T0 + 20),  # cancelled: finished, no outcome
    ]
    incidents = [
        IncidentRecord("a", T0 - 5, "network", recovered_at=T0 + 2),  # before the run: down 0..2
        IncidentRecord("a", T0 + 10, "network"),  # a recovery that failed, then one that
        IncidentRecord("a", T0 + 12, "network", recovered_at=T0 + 15),  # worked: down 10..15 once
        IncidentRecord("b", T0 + 25, "timeout"),  # unrecovered: down to b's end (30)
    ]
    r = compute_report(started_at=T0, ended_at=T0 + 100, jobs=jobs, incidents=incidents)
    assert r.run_job_s == pytest.approx(40 + 10)
    assert r.down_job_s == pytest.approx(2 + 5 + 5)
    assert r.mtbf == pytest.approx((50 - 12) / 4)


def test_chaos_and_observe_agree_on_availability_and_mtbf() -> None:
    """The same history scored by the chaos report and by resurgo.observe (the dashboard)."""
    from resurgo.observe import availability
    from resurgo.observe._metrics import Window
    from resurgo.store import Store
    from resurgo.store.schema import ensure_schema

    jobs = [
        JobRecord("x", T0, "succeeded", T0 + 60, started_at=T0 + 5),
        JobRecord("y", T0, "failed", T0 + 50, started_at=T0 + 10),
        JobRecord("z", T0, "failed", T0 + 30, started_at=T0 + 20),
    ]
    incidents = [
        IncidentRecord("x", T0 + 10, "network", recovered_at=T0 + 14),
        IncidentRecord("x", T0 + 30, "rate_limit"),
        IncidentRecord("x", T0 + 33, "rate_limit", recovered_at=T0 + 40),
        IncidentRecord("y", T0 + 45, "timeout"),
    ]
    r = compute_report(started_at=T0, ended_at=T0 + 100, jobs=jobs, incidents=incidents)
    s = Store(":memory:")
    ensure_schema(s)
    for j in jobs:
        s.execute(
            "INSERT INTO jobs(id, prompt, cwd, state, created_at, started_at, finished_at, updated_at)"
            " VALUES(?, 'p', '/', ?, ?, ?, ?, ?)",
            (j.job_id, j.outcome, j.submitted_at, j.started_at, j.finished_at, j.finished_at),
        )
    for i in incidents:
        s.execute(
            "INSERT INTO recoveries(job_id, strategy, detected_at, restored_at, succeeded)"
            " VALUES(?, 'restart_process', ?, ?, ?)",
            (i.job_id, i.at, i.recovered_at, i.recovered_at is not None),
        )
    a = availability(s, Window(T0, T0 + 100))
    # by hand: run 55 + 40 + 10 = 105; down x 10..14 + 30..40, y 45..50 = 19;
    # failures 4 incidents + z (failed without one) = 5
    assert (a.run_s, a.down_s, a.failures) == (pytest.approx(105.0), pytest.approx(19.0), 5)
    assert (r.run_job_s, r.down_job_s, r.failures) == (a.run_s, a.down_s, a.failures)
    assert r.mtbf == a.mtbf_s == pytest.approx(86 / 5)
    assert r.availability_time == a.time_ratio == pytest.approx(1 - 19 / 105)


def test_manual_and_unrecoverable_incidents() -> None:
    incidents = [
        IncidentRecord("a", T0 + 1, "x", recovered_at=T0 + 2),
        IncidentRecord("b", T0 + 1, "x", recovered_at=T0 + 5, automatic=False),
        IncidentRecord("c", T0 + 1, "auth", recoverable=False),
    ]
    r = _report(incidents=incidents)
    assert (r.recoverable_incidents, r.recovered_automatically, r.recovered_manually) == (2, 1, 1)
    assert r.auto_recovery_rate == pytest.approx(0.5)
    assert r.mttr == pytest.approx((1 + 4) / 2)  # manual recoveries still took that long


def test_breaker_reaction_pairs_each_crossing_with_the_next_rejection() -> None:
    r = _report()
    # api: 0.4 (20 -> 20.4), unmeasured (30), 0.9 (40 -> 40.9); tools: 0.25 (opened 80 -> 80.25)
    assert r.breaker_reactions == 3
    assert r.breaker_unmeasured == 1
    assert r.breaker_reaction_max == pytest.approx(0.9)
    assert r.breaker_reaction_p50 == pytest.approx(0.4)
    assert r.breaker_reaction_mean == pytest.approx((0.4 + 0.9 + 0.25) / 3)
    assert r.breaker_openings == 2


def test_false_positives_are_alarms_outside_fault_windows_plus_grace() -> None:
    r = _report()
    # alarms: 5 incidents + 2 openings = 7.
    # covered: 10 and 10.5 (window 1 + grace), 50 (window 2 + grace), 60 (kill at 59.9 + grace),
    #          opening at 20 (kill at 19.9).  Not covered: incident at 90, opening at 80.
    assert r.alarms == 7
    assert r.false_positives == 2
    assert r.false_positive_rate == pytest.approx(2 / 7)
    assert [s["at"] for s in r.false_positive_samples] == [T0 + 80, T0 + 90]
    # With no grace only the incident at 10 (inside window 1) is still explained.
    assert _report(grace=0.0).false_positives == 6


def test_open_fault_window_covers_until_the_end_of_the_run() -> None:
    log = FaultLog(clock=FakeClock())
    log.open("pressure:cpu", "machine", at=T0 + 85)
    r = _report(fault_log=log, grace=0.0)
    unexplained = [s["at"] for s in r.false_positive_samples]
    assert T0 + 90 not in unexplained  # still open at the end of the run: covers 90
    assert T0 + 80 in unexplained  # before it opened


def test_classification_accuracy_from_incidents_and_samples() -> None:
    extra = [ClassificationRecord("auth", "auth"), ClassificationRecord("overloaded", "rate_limit")]
    r = _report(classifications=extra)
    # incidents: 4 of 5 right (ok3 was a network fault classified as a crash); samples: 1 of 2.
    assert (r.classified, r.classified_correctly) == (7, 5)
    assert r.classification_accuracy == pytest.approx(5 / 7)


def test_checks_list_seed_and_resurgo_bars() -> None:
    r = _report()
    lines = {(c.name, c.bar): c for c in r.checks()}
    assert lines[("availability", "seed")].status == "fail"  # 8 of 11
    assert lines[("mean recovery time (s)", "seed")].status == "pass"  # 4 s < 30 s
    assert lines[("breaker reaction max (s)", "seed")].status == "pass"  # 0.9 s < 1 s
    assert lines[("jobs lost", "resurgo")].status == "fail"
    assert not r.passed
    assert any(line.startswith("[FAIL] jobs lost == 0 (resurgo): 2") for line in r.check_lines())


def test_a_clean_run_passes_every_target() -> None:
    jobs = [JobRecord(f"j{i}", T0, "succeeded", T0 + 5) for i in range(1000)]
    incidents = [IncidentRecord(f"j{i}", T0 + 1, "network", "network", recovered_at=T0 + 3) for i in range(50)]
    events = [BreakerEvent(T0 + 1, "api", "threshold_crossed"), BreakerEvent(T0 + 1.05, "api", "rejected")]
    r = compute_report(
        started_at=T0,
        ended_at=T0 + 10,
        jobs=jobs,
        incidents=incidents,
        breaker_events=events,
        fault_log=[FaultWindow(1, T0 + 0.5, T0 + 2, "net:reset", "api")],
    )
    assert [c.status for c in r.checks()] == ["pass"] * len(r.checks())
    assert r.passed and r.passed_seed()


def test_no_data_is_not_a_pass() -> None:
    r = compute_report(started_at=T0, ended_at=T0 + 1, jobs=[JobRecord("a", T0, "succeeded", T0 + 1)])
    statuses = {c.name: c.status for c in r.checks() if c.bar == "seed"}
    assert statuses["automatic recovery rate"] == "no data"
    assert statuses["availability"] == "pass"
    assert not r.passed


def test_leftovers_fail_the_resurgo_bar() -> None:
    r = _report(
        leaked_processes=[LeftoverProcess(123, "claude", "claude -p hi")],
        leaked_temp_files=["/tmp/x"],
    )
    status = {c.name: c.status for c in r.checks() if c.bar == "resurgo"}
    assert status["leaked processes"] == "fail"
    assert status["leaked temp files"] == "fail"


def test_json_round_trip_and_atomic_save(tmp_path: Path) -> None:
    r = _report(config={"jobs": 11, "fault_rate": 0.2})
    path = r.save(tmp_path / "out" / "report.json")
    data = json.loads(path.read_text())
    assert data["version"] == 3 and data["passed"] is False
    assert data["duration"] == pytest.approx(100)
    assert len(data["checks"]) == len(r.checks())
    back = ChaosReport.load(path)
    assert back.to_dict() == r.to_dict()
    assert list(tmp_path.joinpath("out").iterdir()) == [path]  # no temp file left behind
    with pytest.raises(ValueError, match="version"):
        ChaosReport.from_dict({**data, "version": 99})
    assert ChaosReport.from_dict({**data, "version": 2}).to_dict() == r.to_dict()  # the earlier saved runs
    with pytest.raises(ValueError, match="missing"):
        ChaosReport.from_dict({"jobs_lost": 0})


def test_a_version_1_report_loads_with_its_mtbf_fields_renamed() -> None:
    # version 1 called the system-wide MTBF "mtbf" and the job-based one "mtbf_job"
    old = {"version": 1, "started_at": T0, "ended_at": T0 + 300, "mtbf": 0.01, "mtbf_job": 3.47, "downtime": 297.0}
    r = ChaosReport.from_dict(old)
    assert (r.mtbf, r.mtbf_system, r.downtime_system) == (3.47, 0.01, 297.0)
    assert r.run_job_s is None and r.availability_time is None  # not recorded by version 1


def test_rich_rendering_shows_metrics_and_verdicts() -> None:
    console = Console(record=True, width=140, color_system=None)
    console.print(_report())
    text = console.export_text()
    assert "availability (job success ratio)" in text and "72.73%" in text
    assert "availability (time: share of job-time making progress)" in text and f"{(1 - 26 / 728) * 100:.2f}%" in text
    assert "fail" in text and "pass" in text
    assert "MTTR" in text and "4.000 s" in text
    assert "MTBF (job-s of operation per failure)" in text and f"{702 / 7:.3f} s" in text
    assert "MTBF, system-wide" in text and "14.900 s" in text
    assert "728.0 / 26.0 job-s" in text


def test_bad_records_get_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown outcome"):
        JobRecord("a", T0, "exploded")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="recovered before"):
        IncidentRecord("a", T0 + 5, "x", recovered_at=T0)
    with pytest.raises(ValueError, match="duplicate job ids"):
        compute_report(started_at=T0, ended_at=T0 + 1, jobs=[JobRecord("a", T0), JobRecord("a", T0)])
    with pytest.raises(ValueError, match="ended before"):
        compute_report(started_at=T0, ended_at=T0 - 1, jobs=[])
    with pytest.raises(ValueError, match="breaker event"):
        BreakerEvent(T0, "api", "exploded")  # type: ignore[arg-type]


def test_percentile_is_observes_nearest_rank() -> None:
    from resurgo.observe import percentile as observe_percentile

    assert percentile is observe_percentile  # one definition for the report and the dashboard
    assert percentile([], 50) is None
    assert percentile([3.0], 95) == 3.0
    assert percentile([1, 2, 3, 4], 50) == 2  # the 2nd of 4: always a value that occurred
    assert percentile([10, 1, 2], 100) == 10
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95) == 10  # ceil(9.5) = 10th
    with pytest.raises(ValueError):
        percentile([1], 101)


# ---------------------------------------------------------------------- FaultLog


def test_fault_log_windows_and_coverage() -> None:
    clock = FakeClock(wall_start=T0)
    log = FaultLog(clock=clock)
    wid = log.open("net:reset", "api", detail="p=0.3")
    clock.advance(2)
    w = log.close(wid)
    assert (w.start, w.end) == (T0, T0 + 2)
    assert log.close(wid).end == T0 + 2  # closing twice keeps the first end
    k = log.instant("kill:SIGKILL", "pid 9")
    assert log.windows()[-1].id == k and log.windows()[-1].start == log.windows()[-1].end
    assert [x.kind for x in log.active_at(T0 + 2.5, grace=1)] == ["net:reset", "kill:SIGKILL"]
    assert log.active_at(T0 + 10, grace=1) == []
    with log.window("pressure:cpu", "machine"):
        clock.advance(1)
        assert log.windows()[-1].end is None
    assert log.windows()[-1].end == T0 + 3
    assert log.counts() == {"net:reset": 1, "kill:SIGKILL": 1, "pressure:cpu": 1}
    again = FaultLog.from_list(json.loads(json.dumps(log.to_list())))
    assert again.windows() == log.windows()
    assert again.open("x", "y") == 4  # ids keep counting after a reload
    with pytest.raises(KeyError):
        log.close(999)
    with pytest.raises(ValueError, match="not a fault window"):
        FaultLog.from_list([{"start": 1}])


def test_fault_log_is_thread_safe() -> None:
    log = FaultLog()

    def work() -> None:
        for _ in range(200):
            log.close(log.open("k", "t"))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ws = log.windows()
    assert len(ws) == 1600 and len({w.id for w in ws}) == 1600
    assert all(w.end is not None for w in ws)
    assert log.close_all() == 0


# ---------------------------------------------------------------------- leftovers


def test_new_processes_finds_what_the_run_left_behind(reaper: Reaper) -> None:
    marker = "resurgo-chaos-leak-marker"
    before = snapshot_processes()
    p = reaper.spawn(f"import time; time.sleep(30)  # {marker} sk-ant-api03-SECRETSECRET")

    def ours(proc: object) -> bool:
        return marker in " ".join(proc.cmdline())  # type: ignore[attr-defined]

    deadline = time.monotonic() + 5
    found = new_processes(before, match=ours)
    while not found and time.monotonic() < deadline:
        time.sleep(0.02)
        found = new_processes(before, match=ours)
    assert [f.pid for f in found] == [p.pid]
    assert "SECRETSECRET" not in found[0].cmdline and "redacted" in found[0].cmdline
    p.kill()
    p.wait(5)
    assert new_processes(before, match=ours) == []


def test_new_files_lists_temp_files_left_behind(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("x")
    before = snapshot_files([tmp_path, tmp_path / "missing"])
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "new.json").write_text("{}")
    assert new_files(before, [tmp_path]) == [str(tmp_path / "sub" / "new.json")]
