"""Every chaos gate can fail: the scorer fed with recorded runs, each broken in one way.

A healthy record of a small run passes; then the same run with a deliberately
wrong classifier, a breaker that never opened under the injected storm, a
supervisor that did not resume, an operator doing the resuming, and a failure
nothing injected -- each makes its gate fail.  The numbers are small enough to
check by hand.  (A real short run with a wrong classifier is in
``test_gates_fail.py``.)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from resurgo.chaos import KillRecord
from resurgo.chaos._report import BreakerEvent, ChaosReport
from resurgo.chaos._score import AttemptRow, FaultHit, RecoveryRow, RunArtifacts, score

T = 1_000.0


def _job(jid: str, state: str = "succeeded", *, start: float = T, end: float = T + 30) -> dict[str, Any]:
    return {"id": jid, "idem_key": f"k-{jid}", "name": jid, "state": state, "created_at": start,
            "started_at": start, "finished_at": end if state in ("succeeded", "failed") else None,
            "attempts": 2, "recoveries": 1, "error_json": None}


def _att(aid: int, jid: str, n: int, start: float, end: float | None, outcome: str | None, *,
         err: str | None = None, retryable: bool = True, pid: int | None = None, sig: int | None = None,
         first: float | None = None) -> AttemptRow:
    return AttemptRow(
        id=aid, job_id=jid, n=n, session_id=None, pid=pid if pid is not None else 500 + aid, started_at=start,
        first_event_at=first if first is not None else start + 0.4, ended_at=end, signal=sig, killed_by=None,
        outcome=outcome, error=None if err is None else {"type": err, "retryable": retryable},
    )


def _healthy() -> RunArtifacts:
    """Three jobs: a 529 (server reset 1 s) in j1, a SIGKILL in j2, a storm that opens the breaker; all recover."""
    art = RunArtifacts(started_at=T, ended_at=T + 40, jobs_expected=3)
    art.jobs = [_job("j1"), _job("j2"), _job("j3", end=T + 20)]
    art.attempts = [
        _att(1, "j1", 1, T, T + 10, "failed", err="resource"),
        _att(2, "j1", 2, T + 11.5, T + 30, "succeeded"),          # first event at 11.9: down 1.9 s, 1 s imposed
        _att(3, "j2", 1, T, T + 12, "failed", err="process", pid=77, sig=9),
        _att(4, "j2", 2, T + 12.3, T + 30, "succeeded"),          # first event at 12.7: down 0.7 s
        _att(5, "j3", 1, T, T + 20, "succeeded"),
    ]
    art.hits = [FaultHit(T + 9.9, "j1", "api:529"), FaultHit(T + 15, "j3", "net:delay")]
    art.kills = [KillRecord(pid=77, name="claude", time=T + 11.95, signal="SIGKILL", depth=0, root=77, ok=True)]
    art.recoveries = [RecoveryRow("j1", 1, "resume_session", T + 10, T + 11.5, T + 11.9, 1.0),
                      RecoveryRow("j2", 3, "resume_session", T + 12, T + 12.3, T + 12.7, 0.0)]
    art.storms = [(T + 9.5, T + 10.5)]
    art.breaker_events = [BreakerEvent(T + 10.0, "endpoint:x@1", "threshold_crossed"),
                          BreakerEvent(T + 10.0, "endpoint:x@1", "opened"),
                          BreakerEvent(T + 10.0001, "endpoint:x@1", "rejected"),  # the probe: not a job call
                          BreakerEvent(T + 11.0, "endpoint:x@1", "half_open"),
                          BreakerEvent(T + 11.6, "endpoint:x@1", "closed")]
    art.job_rejections = [BreakerEvent(T + 10.04, "endpoint:x", "rejected")]
    return art


def _checks(r: ChaosReport) -> dict[tuple[str, str], str]:
    return {(c.name, c.bar): c.status for c in r.checks()}


def test_a_healthy_record_passes_and_its_numbers_check_by_hand() -> None:
    r = score(_healthy())
    assert r.passed, r.check_lines()
    assert (r.incidents, r.recoverable_incidents, r.recovered_automatically) == (2, 2, 2)
    assert r.recovered_by == {"supervisor": 2}
    assert r.classification_accuracy == 1.0 and r.false_positives == 0 and r.alarms == 3  # 2 incidents + 1 opening
    assert r.breaker_reaction_max == pytest.approx(0.04)  # crossing -> the job admission refused, not the probe
    # j1: down from the 529's hit (9.9, detected at 10) -> 11.9; imposed: the 529's 1 s reset (10 -> 11) and
    # the open breaker within the storm (10 -> 10.5).  j2: down from the SIGKILL (11.95) -> 12.7
    inc = {i["job_id"]: i for i in r.attribution["incidents"]}
    assert inc["j1"]["imposed_s"] == pytest.approx(1.0) and inc["j2"]["imposed_s"] == pytest.approx(0.0)
    assert inc["j1"]["recovery_s"] == pytest.approx(2.0) and inc["j2"]["recovery_s"] == pytest.approx(0.75)
    assert r.recovery_excl_imposed_p95 == pytest.approx(1.0)
    # availability: run 30 + 30 + 20 = 80 job-s, down 2.0 + 0.75 = 2.75, imposed 1.0
    assert r.availability_time == pytest.approx(1 - 2.75 / 80)
    assert r.availability_time_excl_imposed == pytest.approx(1 - 1.75 / 79)
    assert set(r.recovery_breakdown) == {"529", "kill", "all"}
    assert r.recovery_breakdown["kill"]["phases_p50"]["cli_start"] == pytest.approx(0.4)
    # j1: 2.0 s down - 1 s reset - 0.4 s CLI start = 0.6 s of resurgo's own (0.1 s of it detecting the 529)
    assert r.recovery_breakdown["529"]["excl_imposed_and_cli_start_p50"] == pytest.approx(0.6)
    assert r.recovery_breakdown["all"]["n"] == 2


def test_a_wrong_classifier_fails_accuracy_and_recovery() -> None:
    art = _healthy()
    # the 529 judged a validation error, not retryable: the supervisor gives up on the job
    art.attempts[0] = dataclasses.replace(art.attempts[0], error={"type": "validation", "retryable": False})
    art.attempts.pop(1)
    art.jobs[0] = _job("j1", "failed", end=T + 10)
    r = score(art)
    c = _checks(r)
    assert c[("classification accuracy", "seed")] == "fail"
    # recoverable because a 529 was injected, whatever the classifier said: the miss counts
    assert r.recoverable_incidents == 2 and c[("automatic recovery rate", "seed")] == "fail"
    assert c[("availability", "seed")] == "fail"


def test_a_breaker_that_never_opens_under_the_storm_fails_the_reaction_gate() -> None:
    art = _healthy()
    art.breaker_events, art.job_rejections = [], []
    r = score(art)
    assert r.storms == 1 and r.breaker_reaction_max is None
    assert _checks(r)[("breaker reaction max (s)", "seed")] == "fail"  # not "no data": the storm was injected
    art.storms = []
    assert _checks(score(art))[("breaker reaction max (s)", "seed")] == "no data"


def test_a_slow_job_level_reaction_fails_even_when_the_breaker_alone_is_fast() -> None:
    art = _healthy()
    art.job_rejections = [BreakerEvent(T + 10.5, "endpoint:x", "rejected")]
    r = score(art)
    c = _checks(r)
    assert r.breaker_probe_reaction_max == pytest.approx(0.0001, abs=1e-6)
    assert c[("breaker reaction max (s)", "seed")] == "pass" and c[("breaker reaction max (s)", "resurgo")] == "fail"
    art.job_rejections = [BreakerEvent(T + 11.2, "endpoint:x", "rejected")]
    assert _checks(score(art))[("breaker reaction max (s)", "seed")] == "fail"


def test_a_supervisor_that_does_not_resume_fails_recovery_and_loses_jobs() -> None:
    art = _healthy()
    art.attempts = [a for a in art.attempts if a.n == 1]
    art.recoveries = []
    art.jobs[0] = _job("j1", "running")
    art.jobs[1] = _job("j2", "running")
    r = score(art)
    c = _checks(r)
    assert r.unrecovered == 2 and r.jobs_lost == 2
    assert c[("automatic recovery rate", "seed")] == "fail" and c[("jobs lost", "resurgo")] == "fail"


def test_a_recovery_an_operator_had_to_start_is_not_automatic() -> None:
    art = _healthy()
    art.recoveries = art.recoveries[1:]  # nothing recorded a recovery of j1's attempt 1: `resurgo resume` did it
    r = score(art)
    assert r.recovered_by == {"operator": 1, "supervisor": 1}
    assert r.auto_recovery_rate == 0.5 and _checks(r)[("automatic recovery rate", "seed")] == "fail"


def test_a_failure_no_fault_hit_is_a_false_positive_even_next_to_other_jobs_faults() -> None:
    art = _healthy()
    # j3 fails while j1's 529 and the storm are active: nothing hit j3, so it is still unexplained
    art.attempts[4] = _att(5, "j3", 1, T, T + 10.3, "failed", err="network")
    art.attempts.append(_att(6, "j3", 2, T + 10.4, T + 20, "succeeded"))
    r = score(art)
    assert r.false_positives == 1 and r.attribution["unexplained_count"] == 1
    assert r.false_positive_samples[0]["what"].startswith("incident network (job j3, attempt 1)")
    assert r.false_positive_rate == pytest.approx(1 / 4)
    assert _checks(r)[("false positive rate", "seed")] == "fail"


def test_a_breaker_tripped_by_an_unexplained_failure_is_a_false_positive() -> None:
    art = _healthy()
    art.hits = [h for h in art.hits if h.job_id != "j1"]  # the 529 that tripped it was never injected
    art.storms = []
    r = score(art)
    what = [s["what"] for s in r.false_positive_samples]
    assert any(w.startswith("breaker endpoint:x") for w in what), what


def test_an_injected_401_is_not_recoverable_and_its_failure_is_correct() -> None:
    art = _healthy()
    art.jobs.append(_job("auth", "failed", end=T + 1))
    art.expected_failure_ids = {"k-auth"}
    art.attempts.append(_att(9, "auth", 1, T, T + 1, "failed", err="auth", retryable=False))
    art.hits.append(FaultHit(T + 0.5, "auth", "api:401"))
    r = score(art)
    assert r.recoverable_incidents == 2 and r.jobs_expected_failures == 1 and r.passed_seed()
    assert r.attribution["confusion"]["auth -> auth"] == 1


# -- faults the relay absorbed inside a running attempt ---------------------------------------------


def _relayed(*, hit: bool, restored: float | None = T + 5.3) -> RunArtifacts:
    """j3 runs one attempt; the relay retried one of its requests (sent at 5.0, failed at 5.1)."""
    art = _healthy()
    art.recoveries.append(RecoveryRow("j3", 5, "relay_retry", T + 5.1, T + 5.15, restored, 0.0,
                                      fault_at=T + 5.0, error_type="internal"))
    if hit:
        art.hits.append(FaultHit(T + 5.02, "j3", "api:500"))
    return art


def test_a_fault_the_relay_absorbed_is_an_explained_incident_recovered_inside_the_attempt() -> None:
    r = score(_relayed(hit=True))
    rel = [i for i in r.attribution["incidents"] if i.get("relay")]
    assert len(rel) == 1 and rel[0]["cause"] == "api:500" and rel[0]["recovered_by"] == "relay"
    # from the 500's hit (5.02) to the retry's answer (5.3), its detection (5.1) included
    assert rel[0]["recovery_s"] == pytest.approx(0.28) and rel[0]["phases"]["cli_start"] == 0.0
    assert r.attribution["relay_retries"] == {"n": 1, "restored_in_attempt": 1, "not_restored_in_attempt": 0}
    assert r.false_positives == 0 and r.classification_accuracy == 1.0
    # the 0.28 s the job stood still count as down time like any other recovery
    assert r.down_job_s == pytest.approx(score(_healthy()).down_job_s + 0.28)


def test_a_relay_retry_with_no_fault_on_that_request_is_a_false_positive() -> None:
    """The gate breaks when the relay ends a healthy request (a hang watch too eager): one false positive."""
    r = score(_relayed(hit=False))
    assert r.false_positives == 1 and r.attribution["unexplained_count"] == 1
    assert _checks(r)[("false positive rate", "seed")] == "fail"


def test_a_fault_on_the_same_job_outside_the_request_explains_nothing() -> None:
    art = _relayed(hit=False)
    art.hits.append(FaultHit(T + 4.0, "j3", "api:500"))   # before the request was sent
    art.hits.append(FaultHit(T + 5.05, "j1", "api:500"))  # another job's request
    assert score(art).false_positives == 1


def test_a_relay_retry_cut_short_recovers_with_the_next_attempt() -> None:
    art = _relayed(hit=True, restored=None)
    art.attempts[4] = dataclasses.replace(art.attempts[4], outcome="failed", ended_at=T + 6.0)  # j3's CLI died
    r = score(art)
    rel = next(i for i in r.attribution["incidents"] if i.get("relay"))
    assert r.attribution["relay_retries"]["not_restored_in_attempt"] == 1
    assert rel["recovered_by"] is None and rel["recovery_s"] is None  # j3 had no later attempt


def test_a_relay_retry_given_up_is_recovered_when_the_same_attempt_goes_on() -> None:
    """The CLI asked again itself after the relay gave up and got through: the job moved on, no restart."""
    art = _relayed(hit=True, restored=None)
    art.recoveries.append(RecoveryRow("j3", 5, "relay_retry", T + 8.0, T + 8.05, T + 8.4, 0.0,
                                      fault_at=T + 7.9, error_type="internal"))
    art.hits.append(FaultHit(T + 7.95, "j3", "api:500"))
    r = score(art)
    first = next(i for i in r.attribution["incidents"] if i.get("relay") and i["at"] == T + 5.1)
    assert first["recovered_by"] == "relay" and first["recovery_s"] == pytest.approx(3.38)  # 5.02 -> 8.4
    assert r.auto_recovery_rate == 1.0


def test_the_time_the_run_keeps_the_supervisor_dead_is_imposed_its_restart_is_not() -> None:
    """A supervisor SIGKILLed at 5 and started again at 6 by the run; the resumed CLI speaks at 6.9.

    Without the down interval the incident's 1.9 s would all be resurgo's: the property
    breaks (and the figure grows by the second) when ``supervisor_down`` is not recorded.
    """
    def run(down: list[tuple[float, float]]) -> ChaosReport:
        art = _healthy()
        art.attempts[4] = _att(5, "j3", 1, T, None, "lost")
        art.attempts.append(_att(6, "j3", 2, T + 6.3, T + 20, "succeeded", first=T + 6.9))
        art.supervisor_kills = [T + 5.0]
        art.supervisor_down = down
        return score(art)

    with_down = {i["job_id"]: i for i in run([(T + 5.0, T + 6.0)]).attribution["incidents"]}["j3"]
    without = {i["job_id"]: i for i in run([]).attribution["incidents"]}["j3"]
    assert with_down["cause"] == "kill:supervisor" and with_down["recovered_by"] == "supervisor restart"
    assert with_down["recovery_s"] == pytest.approx(1.9) == without["recovery_s"]  # from the kill (5.0)
    assert with_down["imposed_s"] == pytest.approx(1.0)
    assert without["imposed_s"] == pytest.approx(0.0)


def test_a_429_whose_retry_got_another_429_waited_out_both_resets() -> None:
    """Two 429s in a row on one request (2 s reset each): the first incident's 4 s are all imposed.

    Measured as the incidents come, the second reset was not known yet when the first
    incident's imposed part was taken, and 2 s of the server's reset counted as resurgo's.
    """
    art = _healthy()
    art.recoveries += [
        RecoveryRow("j3", 5, "relay_retry", T + 5.0, T + 7.0, T + 9.1, 2.0, fault_at=T + 4.95,
                    error_type="resource"),
        RecoveryRow("j3", 5, "relay_retry", T + 7.05, T + 9.05, T + 9.1, 2.0, fault_at=T + 7.0,
                    error_type="resource"),
    ]
    art.hits += [FaultHit(T + 4.97, "j3", "api:429"), FaultHit(T + 7.02, "j3", "api:429")]
    r = score(art)
    first, second = sorted((i for i in r.attribution["incidents"] if i.get("relay")), key=lambda i: i["at"])
    assert first["recovery_s"] == pytest.approx(4.13)  # the first 429's hit (4.97) -> the answer (9.1)
    assert first["imposed_s"] == pytest.approx(4.0)  # [5, 7] and [7.05, 9.05]
    assert second["imposed_s"] == pytest.approx(2.0)


def test_the_recovery_speed_goals_fail_when_resurgo_itself_is_slow() -> None:
    """Issue 14's goals: the healthy record meets them; resumed runs that speak 8 s late miss all three.

    The 1 s server reset of j1 stays imposed either way: only resurgo's own wait moves the figures.
    """
    def goals(r: ChaosReport) -> dict[str, str]:
        return {c.name: c.status for c in r.goal_checks()}

    ok = goals(score(_healthy()))
    assert set(ok.values()) == {"pass"}, ok
    art = _healthy()
    art.attempts[1] = _att(2, "j1", 2, T + 11.5, T + 30, "succeeded", first=T + 19.9)  # 10 s down, 1 s imposed
    art.attempts[3] = _att(4, "j2", 2, T + 12.3, T + 30, "succeeded", first=T + 20.7)  # 8.75 s down
    r = score(art)
    assert r.recovery_excl_imposed_p50 == pytest.approx(8.75) and r.recovery_excl_imposed_p95 == pytest.approx(9.0)
    assert goals(r) == {"recovery excl. imposed waits p50 (s)": "fail", "recovery excl. imposed waits p95 (s)": "fail",
                        "availability (time) excl. imposed waits": "fail"}
    assert r.passed  # the goals are reported beside the seed's targets, not part of them


def test_a_hang_counts_as_down_from_the_moment_it_hit_not_from_its_detection() -> None:
    """A request the stand-in hung at 5.0, ended by the watch at 8.6, answered on retry at 8.8: 3.8 s down.

    Counted from the detection (as until this stop) the job would have been down
    0.2 s, and a slow watch would have cost nothing in the availability figures.
    """
    art = _healthy()
    art.recoveries.append(RecoveryRow("j3", 5, "relay_retry", T + 8.6, T + 8.65, T + 8.8, 0.0,
                                      fault_at=T + 4.99, error_type="timeout"))
    art.hits.append(FaultHit(T + 5.0, "j3", "api:hang"))
    r = score(art)
    rel = next(i for i in r.attribution["incidents"] if i.get("relay"))
    assert rel["cause"] == "api:hang" and rel["fault_at"] == pytest.approx(T + 5.0)
    assert rel["recovery_s"] == pytest.approx(3.8) and rel["phases"]["detection"] == pytest.approx(3.6)
    assert r.down_job_s == pytest.approx(score(_healthy()).down_job_s + 3.8)
    # a watch twice as slow costs its seconds: the figure follows the detection
    art.recoveries[-1] = dataclasses.replace(art.recoveries[-1], detected_at=T + 12.2, started_at=T + 12.25,
                                             restored_at=T + 12.4)
    assert score(art).down_job_s == pytest.approx(score(_healthy()).down_job_s + 7.4)


def test_a_hedged_copys_own_fault_is_not_the_stalled_tries_fault() -> None:
    """The copy went out at the stall's report (8.0) and got a 500 at 8.005: the stall is the hang at 5.0."""
    art = _healthy()
    art.recoveries.append(RecoveryRow("j3", 5, "relay_retry", T + 8.0, T + 8.0, T + 8.3, 0.0,
                                      fault_at=T + 4.99, error_type="timeout"))
    art.hits += [FaultHit(T + 5.0, "j3", "api:hang"), FaultHit(T + 8.005, "j3", "api:500")]
    rel = next(i for i in score(art).attribution["incidents"] if i.get("relay"))
    assert rel["cause"] == "api:hang" and rel["expected"] == "timeout"
    assert rel["fault_at"] == pytest.approx(T + 5.0) and rel["recovery_s"] == pytest.approx(3.3)
    # a stall no fault hit is a false positive, whatever hit the copy
    art.hits = [h for h in art.hits if h.cause != "api:hang"]
    assert score(art).false_positives == 1
