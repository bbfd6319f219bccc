"""Metrics over the synthetic store, against numbers worked out by hand (see synthetic.py)."""

from __future__ import annotations

import pytest
from synthetic import build

from resurgo.observe import (
    availability,
    breaker_stats,
    error_series,
    error_stats,
    job_counts,
    percentile,
    recovery_stats,
    resolve_window,
    retry_stats,
    summary,
)
from resurgo.observe._metrics import Window, histogram, nice_bucket
from resurgo.store import Store
from resurgo.store.schema import ensure_schema

T0 = 1_700_000_000.0
WIN = Window(T0, T0 + 3600)


@pytest.fixture
def store() -> Store:
    s = Store(":memory:")
    build(s, T0)
    return s


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0], 95) == 5.0
    assert percentile([2.0, 30.0, 10.0], 50) == 10.0
    assert percentile([2.0, 30.0, 10.0], 95) == 30.0
    vals = [float(i) for i in range(1, 101)]
    assert percentile(vals, 50) == 50.0
    assert percentile(vals, 95) == 95.0
    with pytest.raises(ValueError):
        percentile(vals, 0)


def test_window_defaults_to_oldest_record_and_now(store: Store) -> None:
    win = resolve_window(store, now=T0 + 3600)
    # the oldest record is model:opus's transition at t0-500
    assert win == Window(T0 - 500, T0 + 3600)
    with pytest.raises(ValueError):
        resolve_window(store, start=T0 + 10, end=T0)


def test_error_stats(store: Store) -> None:
    e = error_stats(store, WIN)
    assert e.total == 7  # the error at t0-100 is outside the window
    assert e.by_type == {"process": 2, "resource": 2, "auth": 1, "network": 1, "timeout": 1}
    assert e.retryable == 6
    assert e.per_hour == pytest.approx(7.0)
    sigs = {(s.signature, s.type): s.count for s in e.by_signature}
    assert sigs == {
        ("rate:429", "resource"): 2,
        ("proc:sigkill", "process"): 2,
        ("net:reset", "network"): 1,
        ("stall", "timeout"): 1,
        ("auth:401", "auth"): 1,
    }
    top = e.by_signature[0]
    assert top.count == 2 and top.signature == "proc:sigkill"  # ties broken by the newest
    assert top.message == "killed by SIGKILL"
    # attempts that ended in the window: 10, of which failed or lost: 7
    assert (e.attempts_ended, e.attempts_failed) == (10, 7)
    assert e.attempt_failure_rate == pytest.approx(0.7)


def test_error_series_buckets(store: Store) -> None:
    s = error_series(store, WIN, bucket_s=600)
    assert len(s.counts) == 6
    assert s.types == ["auth", "network", "process", "resource", "timeout"]
    assert s.counts[0] == {"network": 1, "resource": 2, "process": 1}  # ts 100, 300, 310, 500
    assert s.counts[1] == {"timeout": 1}  # 600
    assert s.counts[2] == {"auth": 1}  # 1500
    assert s.counts[3] == {} and s.counts[4] == {}
    assert s.counts[5] == {"process": 1}  # 3500
    assert nice_bucket(3600) == 120.0  # 3600/48 = 75 -> next round width


def test_retry_stats(store: Store) -> None:
    r = retry_stats(store, WIN)
    assert (r.operations, r.succeeded) == (4, 3)
    assert r.success_rate == pytest.approx(0.75)
    assert r.mean_attempts == pytest.approx(2.5)  # (2 + 3 + 4 + 1) / 4
    assert (r.retried, r.retried_succeeded) == (3, 2)
    assert r.retried_success_rate == pytest.approx(2 / 3)
    assert r.slept_s == pytest.approx(28.5)
    # finished jobs (succeeded or failed): j1 2, j2 3, j3 2, j4 1 attempts
    assert r.jobs_finished == 4
    assert r.jobs_mean_attempts == pytest.approx(2.0)
    assert (r.jobs_retried, r.jobs_retried_succeeded) == (3, 2)
    assert r.jobs_retry_success_rate == pytest.approx(2 / 3)


def test_breaker_time_in_state(store: Store) -> None:
    b = {x.name: x for x in breaker_stats(store, WIN)}
    api = b["api"]
    assert api.state == "open"
    assert api.transitions == 4 and api.opened == 2
    assert api.transitions_by == {"closed->open": 2, "open->half_open": 1, "half_open->closed": 1}
    assert api.seconds_in == pytest.approx({"closed": 3468.0, "open": 130.0, "half_open": 2.0})
    assert [(s.state, s.start - T0, s.end - T0) for s in api.segments] == [
        ("closed", 0, 300), ("open", 300, 330), ("half_open", 330, 332),
        ("closed", 332, 3500), ("open", 3500, 3600),
    ]
    opus = b["model:opus"]  # opened before the window: starts open; mixed-case states normalised
    assert opus.state == "closed"
    assert opus.transitions == 4 and opus.opened == 1
    assert opus.seconds_in == pytest.approx({"open": 110.0, "half_open": 15.0, "closed": 3475.0})
    assert sum(opus.seconds_in.values()) == pytest.approx(WIN.seconds)


def test_breaker_before_any_transition_in_window(store: Store) -> None:
    # A window entirely before api's first transition: api is closed throughout.
    win = Window(T0, T0 + 200)
    b = {x.name: x for x in breaker_stats(store, win)}
    assert b["api"].state == "closed" and b["api"].transitions == 0
    assert b["api"].seconds_in == {"closed": 200.0}


def test_recovery_stats(store: Store) -> None:
    r = recovery_stats(store, WIN)
    assert r.count == 5
    assert (r.succeeded, r.failed, r.pending) == (3, 1, 1)
    assert r.success_rate == pytest.approx(0.75)
    # restored recoveries: 10 s, 30 s, 2 s; minus imposed waits (4, 20, 0): 6, 10, 2
    assert r.time.count == 3
    assert (r.time.mean, r.time.p50, r.time.p95, r.time.max) == pytest.approx((14.0, 10.0, 30.0, 30.0))
    assert (r.active_time.mean, r.active_time.p50, r.active_time.p95, r.active_time.max) == (
        pytest.approx((6.0, 6.0, 10.0, 10.0))
    )
    assert r.waited_s == pytest.approx(24.0)
    by = {s.strategy: s for s in r.by_strategy}
    assert (by["resume_session"].count, by["resume_session"].succeeded, by["resume_session"].failed,
            by["resume_session"].pending) == (3, 1, 1, 1)
    assert by["resume_session"].success_rate == pytest.approx(0.5)
    assert by["wait_until"].success_rate == 1.0 and by["restart_process"].success_rate == 1.0
    assert r.by_strategy[0].strategy == "resume_session"  # most used first
    hist = dict(r.histogram)
    assert hist[2.0] == 1 and hist[10.0] == 1 and hist[30.0] == 1
    assert sum(hist.values()) == 3


def test_histogram_edges() -> None:
    h = dict(histogram([0.5, 0.51, 1.0, 5000.0], (0.5, 1.0)))
    assert h == {0.5: 1, 1.0: 2, None: 1}


def test_availability(store: Store) -> None:
    a = availability(store, WIN)
    # run time: j1 1000 + j2 1000 + j3 500 + j4 600 + j5 600 (running to the window's end) + j7 100
    assert a.run_s == pytest.approx(3800.0)
    # down: j1 [100,110] + j2 [300,330] + [500,502] + j3 [600, job end 900] + j5 [3500, 3600]
    assert a.down_s == pytest.approx(442.0)
    assert a.up_s == pytest.approx(3358.0)
    assert a.time_ratio == pytest.approx(1 - 442 / 3800)
    assert (a.jobs_finished, a.jobs_succeeded, a.jobs_failed) == (4, 2, 2)
    assert a.job_ratio == pytest.approx(0.5)
    # 5 recoveries detected + j4, failed without any recovery
    assert a.failures == 6
    assert a.mttr_s == pytest.approx(14.0)
    assert a.mttr_active_s == pytest.approx(6.0)
    assert a.mtbf_s == pytest.approx(3358 / 6)


def test_availability_chained_unrestored_recovery_ends_at_next_restore() -> None:
    s = Store(":memory:")
    ensure_schema(s)
    s.execute(
        "INSERT INTO jobs(id, prompt, cwd, state, created_at, started_at, finished_at, updated_at)"
        " VALUES('x', 'p', '/', 'succeeded', 0, 0, 100, 100)"
    )
    # first recovery failed without restoring (10), the second restored at 20:
    # the job was down 10..20 once, not 10..100.
    s.execute("INSERT INTO recoveries(job_id, strategy, detected_at, restored_at, succeeded)"
              " VALUES('x', 'resume_session', 10, NULL, 0)")
    s.execute("INSERT INTO recoveries(job_id, strategy, detected_at, restored_at, succeeded)"
              " VALUES('x', 'restart_process', 12, 20, 1)")
    a = availability(s, Window(0, 100))
    assert a.down_s == pytest.approx(10.0)
    assert a.time_ratio == pytest.approx(0.9)
    assert a.mtbf_s == pytest.approx(90 / 2)


def test_availability_excluding_imposed_waits_takes_them_out_of_down_and_run_time() -> None:
    s = Store(":memory:")
    ensure_schema(s)
    s.execute(
        "INSERT INTO jobs(id, prompt, cwd, state, created_at, started_at, finished_at, updated_at)"
        " VALUES('x', 'p', '/', 'succeeded', 0, 0, 100, 100)"
    )
    # down 10..20, of which 6 s the server imposed (a reset time): resurgo's own share is 4 s of 94
    s.execute("INSERT INTO recoveries(job_id, strategy, detected_at, restored_at, waited_s, succeeded)"
              " VALUES('x', 'wait_until', 10, 20, 6, 1)")
    # a wait recorded longer than its down interval counts only within it
    s.execute("INSERT INTO recoveries(job_id, strategy, detected_at, restored_at, waited_s, succeeded)"
              " VALUES('x', 'wait_until', 50, 52, 30, 1)")
    a = availability(s, Window(0, 100))
    assert a.down_s == pytest.approx(12.0) and a.imposed_s == pytest.approx(8.0)
    assert a.time_ratio == pytest.approx(0.88)
    assert a.time_ratio_excl_imposed == pytest.approx(1 - 4 / 92)


def test_window_clips_intervals(store: Store) -> None:
    win = Window(T0 + 100, T0 + 700)
    a = availability(store, win)
    # j1 100..700 (600), j2 200..700 (500), j3 400..700 (300)
    assert a.run_s == pytest.approx(1400.0)
    # j1 100..110, j2 300..330 + 500..502, j3 600..700
    assert a.down_s == pytest.approx(142.0)
    assert a.jobs_finished == 0 and a.job_ratio is None


def test_empty_store_has_no_data_not_zero() -> None:
    s = Store(":memory:")
    ensure_schema(s)
    sm = summary(s, now=T0)
    assert sm.window.seconds == 0
    assert sm.availability.time_ratio is None and sm.availability.job_ratio is None
    assert sm.availability.mttr_s is None and sm.availability.mtbf_s is None
    assert sm.recoveries.success_rate is None and sm.retries.success_rate is None
    assert sm.errors.total == 0 and sm.errors.per_hour is None
    assert sm.breakers == []


def test_job_counts_and_summary(store: Store) -> None:
    assert job_counts(store) == {
        "succeeded": 2, "failed": 2, "recovering": 1, "pending": 1, "cancelled": 1,
    }
    sm = summary(store, start=T0, now=T0 + 3600)
    d = sm.to_dict()
    assert d["window"] == {"start": T0, "end": T0 + 3600, "seconds": 3600.0}
    assert d["availability"]["failures"] == 6
    assert {b["name"] for b in d["breakers"]} == {"api", "model:opus"}
