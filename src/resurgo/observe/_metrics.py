"""The seed's monitoring metrics, computed from the run store over a time window.

Everything here is a pure function of the store's rows, the window and ``now``:
no state is kept between calls, so the dashboard, the Prometheus collector and
a user's own script all compute the same numbers from the same data, and
tests check them against values worked out by hand.  The definitions are
written down in ``docs/metrics.md``; keep the two in step.

Conventions shared by every function:

* A window is half-open, ``[start, end)``, in wall-clock epoch seconds (the
  store's unit).  Point events (errors, retries, recoveries, breaker
  transitions, finished jobs) count when their timestamp lies inside it;
  intervals (job run time, down time, breaker states) are clipped to it.
* Ratios whose denominator is zero are ``None`` ("no data"), never 0 or 1, so
  an idle system does not look broken or perfect.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from resurgo.store import Store

#: Job states in which a job is still being worked on: its run interval and any
#: unrestored failure extend to the end of the window.
ACTIVE_STATES = frozenset({"running", "recovering", "waiting"})
#: States that end a job; ``finished`` means succeeded or failed (see availability).
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})

#: Upper bounds (seconds) of the recovery-time histogram, shared with Prometheus so
#: the dashboard's bars and the exported buckets agree.
RECOVERY_BUCKETS: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


@dataclass(frozen=True)
class Window:
    """A resolved time window ``[start, end)`` in epoch seconds."""

    start: float
    end: float

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)

    def contains(self, ts: float | None) -> bool:
        return ts is not None and self.start <= ts < self.end


def earliest_time(store: Store) -> float | None:
    """The oldest timestamp in the run tables: where an unbounded window starts."""
    row = store.query(
        "SELECT MIN(t) FROM ("
        " SELECT MIN(created_at) AS t FROM jobs"
        " UNION ALL SELECT MIN(ts) FROM errors"
        " UNION ALL SELECT MIN(ts) FROM retries"
        " UNION ALL SELECT MIN(detected_at) FROM recoveries"
        " UNION ALL SELECT MIN(ts) FROM breaker_transitions)"
    )
    value = row[0][0] if row else None
    return float(value) if value is not None else None


def resolve_window(
    store: Store,
    *,
    start: float | None = None,
    end: float | None = None,
    now: float | None = None,
) -> Window:
    """Turn optional bounds into a concrete window.

    ``end`` defaults to ``now`` (default: the wall clock); ``start`` defaults to
    the oldest record in the store, so "all history" needs no guessing.
    """
    now_ = time.time() if now is None else float(now)
    end_ = now_ if end is None else float(end)
    if start is None:
        first = earliest_time(store)
        start_ = min(first, end_) if first is not None else end_
    else:
        start_ = float(start)
    if start_ > end_:
        raise ValueError(f"window start {start_} is after its end {end_}")
    return Window(start_, end_)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least ``p`` % of values <= it.

    Chosen over interpolation because it always returns a recovery time that
    actually happened, and is easy to check by hand.
    """
    if not values:
        return None
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    ordered = sorted(values)
    rank = math.ceil(p / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


# --------------------------------------------------------------------------- errors
@dataclass(frozen=True)
class SignatureCount:
    signature: str
    type: str
    count: int
    last_seen: float
    message: str | None


@dataclass(frozen=True)
class ErrorStats:
    """Classified errors in the window (rows of the ``errors`` table)."""

    total: int
    retryable: int
    per_hour: float | None
    by_type: dict[str, int]
    by_signature: list[SignatureCount]
    attempts_ended: int
    attempts_failed: int
    attempt_failure_rate: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def error_stats(store: Store, win: Window, *, top_signatures: int = 20) -> ErrorStats:
    """Error counts by type and by signature, the hourly rate and the attempt failure rate."""
    rows = store.query(
        "SELECT type, COUNT(*) AS n, SUM(retryable) AS r FROM errors"
        " WHERE ts >= ? AND ts < ? GROUP BY type ORDER BY n DESC, type",
        (win.start, win.end),
    )
    by_type = {str(r["type"]): int(r["n"]) for r in rows}
    total = sum(by_type.values())
    retryable = sum(int(r["r"] or 0) for r in rows)
    sig_rows = store.query(
        "SELECT COALESCE(signature, '') AS sig, type, COUNT(*) AS n, MAX(ts) AS last,"
        " (SELECT e2.message FROM errors e2 WHERE COALESCE(e2.signature, '') = COALESCE(e.signature, '')"
        "   AND e2.type = e.type AND e2.ts >= ? AND e2.ts < ? ORDER BY e2.ts DESC, e2.id DESC LIMIT 1) AS msg"
        " FROM errors e WHERE ts >= ? AND ts < ? GROUP BY sig, type ORDER BY n DESC, last DESC LIMIT ?",
        (win.start, win.end, win.start, win.end, top_signatures),
    )
    sigs = [
        SignatureCount(str(r["sig"]), str(r["type"]), int(r["n"]), float(r["last"]), r["msg"])
        for r in sig_rows
    ]
    att = store.query(
        "SELECT COUNT(*) AS n, SUM(CASE WHEN outcome IN ('failed', 'lost') THEN 1 ELSE 0 END) AS f"
        " FROM attempts WHERE ended_at >= ? AND ended_at < ?",
        (win.start, win.end),
    )[0]
    ended, failed = int(att["n"] or 0), int(att["f"] or 0)
    hours = win.seconds / 3600.0
    return ErrorStats(
        total=total,
        retryable=retryable,
        per_hour=total / hours if hours > 0 else None,
        by_type=by_type,
        by_signature=sigs,
        attempts_ended=ended,
        attempts_failed=failed,
        attempt_failure_rate=_ratio(failed, ended),
    )


@dataclass(frozen=True)
class ErrorSeries:
    """Errors per time bucket and type: the data of the stacked "errors over time" chart."""

    start: float
    bucket_s: float
    types: list[str]
    counts: list[dict[str, int]]  # one dict per bucket, type -> count

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_NICE_BUCKETS = (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def nice_bucket(seconds: float, *, target: int = 48) -> float:
    """A round bucket width giving about ``target`` buckets, so axis labels read well."""
    want = seconds / max(target, 1)
    for b in _NICE_BUCKETS:
        if b >= want:
            return float(b)
    return float(math.ceil(want / 86400) * 86400)


def error_series(store: Store, win: Window, *, bucket_s: float | None = None) -> ErrorSeries:
    """Bucket the window's errors by time and type (buckets aligned to the window start)."""
    width = bucket_s if bucket_s and bucket_s > 0 else nice_bucket(win.seconds)
    n = max(1, math.ceil(win.seconds / width)) if win.seconds > 0 else 1
    counts: list[dict[str, int]] = [{} for _ in range(n)]
    types: set[str] = set()
    for r in store.query(
        "SELECT CAST((ts - ?) / ? AS INTEGER) AS b, type, COUNT(*) AS c FROM errors"
        " WHERE ts >= ? AND ts < ? GROUP BY b, type",
        (win.start, width, win.start, win.end),
    ):
        b = min(int(r["b"]), n - 1)
        counts[b][str(r["type"])] = counts[b].get(str(r["type"]), 0) + int(r["c"])
        types.add(str(r["type"]))
    return ErrorSeries(win.start, width, sorted(types), counts)


# --------------------------------------------------------------------------- retries
@dataclass(frozen=True)
class RetryStats:
    """Retry outcomes (``retries`` table) and attempts per finished job (``jobs.attempts``)."""

    operations: int
    succeeded: int
    success_rate: float | None
    mean_attempts: float | None
    retried: int
    retried_succeeded: int
    retried_success_rate: float | None
    slept_s: float
    jobs_finished: int
    jobs_mean_attempts: float | None
    jobs_retried: int
    jobs_retried_succeeded: int
    jobs_retry_success_rate: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def retry_stats(store: Store, win: Window) -> RetryStats:
    """How often retrying worked, and how many attempts it took."""
    r = store.query(
        "SELECT COUNT(*) AS n, SUM(succeeded) AS s, SUM(attempts) AS a, SUM(slept_s) AS z,"
        " SUM(CASE WHEN attempts > 1 THEN 1 ELSE 0 END) AS rn,"
        " SUM(CASE WHEN attempts > 1 AND succeeded THEN 1 ELSE 0 END) AS rs"
        " FROM retries WHERE ts >= ? AND ts < ?",
        (win.start, win.end),
    )[0]
    n, s, a = int(r["n"] or 0), int(r["s"] or 0), int(r["a"] or 0)
    rn, rs = int(r["rn"] or 0), int(r["rs"] or 0)
    j = store.query(
        "SELECT COUNT(*) AS n, SUM(attempts) AS a,"
        " SUM(CASE WHEN attempts > 1 THEN 1 ELSE 0 END) AS rn,"
        " SUM(CASE WHEN attempts > 1 AND state = 'succeeded' THEN 1 ELSE 0 END) AS rs"
        " FROM jobs WHERE state IN ('succeeded', 'failed') AND finished_at >= ? AND finished_at < ?",
        (win.start, win.end),
    )[0]
    jn, ja = int(j["n"] or 0), int(j["a"] or 0)
    jrn, jrs = int(j["rn"] or 0), int(j["rs"] or 0)
    return RetryStats(
        operations=n,
        succeeded=s,
        success_rate=_ratio(s, n),
        mean_attempts=_ratio(a, n),
        retried=rn,
        retried_succeeded=rs,
        retried_success_rate=_ratio(rs, rn),
        slept_s=float(r["z"] or 0.0),
        jobs_finished=jn,
        jobs_mean_attempts=_ratio(ja, jn),
        jobs_retried=jrn,
        jobs_retried_succeeded=jrs,
        jobs_retry_success_rate=_ratio(jrs, jrn),
    )


# --------------------------------------------------------------------------- breakers
def normalise_state(state: str) -> str:
    """``CircuitState.HALF_OPEN`` / ``HALF_OPEN`` / ``half-open`` -> ``half_open``."""
    s = state.rsplit(".", 1)[-1].strip().lower().replace("-", "_")
    return s


@dataclass(frozen=True)
class Segment:
    state: str
    start: float
    end: float


@dataclass(frozen=True)
class BreakerStats:
    """One breaker's history in the window: its transitions and time in each state."""

    name: str
    state: str
    transitions: int
    transitions_by: dict[str, int]
    opened: int
    seconds_in: dict[str, float]
    segments: list[Segment] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def breaker_stats(store: Store, win: Window) -> list[BreakerStats]:
    """Per breaker: the state at the window's end, transitions, and time spent in each state.

    Before a breaker's first recorded transition it is taken to be in that
    transition's ``from_state`` (breakers record transitions, not their birth).
    """
    rows = store.query(
        "SELECT breaker, ts, from_state, to_state FROM breaker_transitions"
        " WHERE ts < ? ORDER BY breaker, ts, id",
        (win.end,),
    )
    by_breaker: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        by_breaker[str(r["breaker"])].append(r)
    # Breakers whose first transition comes after the window sat in its from_state throughout.
    first_after: dict[str, str] = {}
    for r in store.query(
        "SELECT breaker, from_state FROM breaker_transitions b WHERE ts >= ? AND id = ("
        " SELECT id FROM breaker_transitions b2 WHERE b2.breaker = b.breaker ORDER BY ts, id LIMIT 1)",
        (win.end,),
    ):
        first_after[str(r["breaker"])] = str(r["from_state"])
    out: list[BreakerStats] = []
    for name in sorted(set(by_breaker) | set(first_after)):
        trans = by_breaker.get(name, [])
        before = [t for t in trans if t["ts"] < win.start]
        if before:
            state = normalise_state(before[-1]["to_state"])
        else:
            state = normalise_state(trans[0]["from_state"] if trans else first_after[name])
        t = win.start
        segments: list[Segment] = []
        by: dict[str, int] = defaultdict(int)
        opened = 0
        for tr in trans:
            if tr["ts"] < win.start:
                continue
            ts = float(tr["ts"])
            if ts > t:
                segments.append(Segment(state, t, ts))
            to = normalise_state(tr["to_state"])
            by[f"{normalise_state(tr['from_state'])}->{to}"] += 1
            if to in ("open", "forced_open"):
                opened += 1
            state, t = to, ts
        if win.end > t:
            segments.append(Segment(state, t, win.end))
        seconds: dict[str, float] = defaultdict(float)
        for seg in segments:
            seconds[seg.state] += seg.end - seg.start
        out.append(
            BreakerStats(
                name=name,
                state=state,
                transitions=sum(by.values()),
                transitions_by=dict(by),
                opened=opened,
                seconds_in=dict(seconds),
                segments=segments,
            )
        )
    return out


# --------------------------------------------------------------------------- recoveries
@dataclass(frozen=True)
class Distribution:
    count: int
    mean: float | None
    p50: float | None
    p95: float | None
    max: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Distribution:
        return cls(
            count=len(values),
            mean=_mean(values),
            p50=percentile(values, 50),
            p95=percentile(values, 95),
            max=max(values) if values else None,
        )


@dataclass(frozen=True)
class StrategyStats:
    strategy: str
    count: int
    succeeded: int
    failed: int
    pending: int
    success_rate: float | None


@dataclass(frozen=True)
class RecoveryStats:
    """Recoveries detected in the window: outcome, time to restore, results per strategy."""

    count: int
    succeeded: int
    failed: int
    pending: int
    success_rate: float | None
    time: Distribution
    active_time: Distribution
    waited_s: float
    by_strategy: list[StrategyStats]
    histogram: list[tuple[float | None, int]]  # (upper bound or None for +Inf, count)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def histogram(values: Iterable[float], bounds: Sequence[float] = RECOVERY_BUCKETS) -> list[tuple[float | None, int]]:
    """Non-cumulative counts per bucket ``(previous bound, bound]``; the last bucket is +Inf."""
    counts = [0] * (len(bounds) + 1)
    for v in values:
        for i, b in enumerate(bounds):
            if v <= b:
                counts[i] += 1
                break
        else:
            counts[-1] += 1
    edges: list[float | None] = [*bounds, None]
    return list(zip(edges, counts, strict=True))


def recovery_stats(store: Store, win: Window) -> RecoveryStats:
    """Recovery outcomes and the distribution of recovery time, with and without imposed waits."""
    rows = store.query(
        "SELECT strategy, detected_at, restored_at, waited_s, succeeded FROM recoveries"
        " WHERE detected_at >= ? AND detected_at < ? ORDER BY detected_at, id",
        (win.start, win.end),
    )
    times: list[float] = []
    active: list[float] = []
    waited = 0.0
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # succeeded, failed, pending
    for r in rows:
        outcome = r["succeeded"]
        slot = 2 if outcome is None else (0 if outcome else 1)
        per[str(r["strategy"])][slot] += 1
        if r["restored_at"] is not None:
            total = max(0.0, float(r["restored_at"]) - float(r["detected_at"]))
            w = max(0.0, float(r["waited_s"] or 0.0))
            times.append(total)
            active.append(max(0.0, total - w))
            waited += min(w, total)
    strategies = [
        StrategyStats(name, s + f + p, s, f, p, _ratio(s, s + f))
        for name, (s, f, p) in sorted(per.items(), key=lambda kv: (-sum(kv[1]), kv[0]))
    ]
    s = sum(x.succeeded for x in strategies)
    f = sum(x.failed for x in strategies)
    p = sum(x.pending for x in strategies)
    return RecoveryStats(
        count=len(rows),
        succeeded=s,
        failed=f,
        pending=p,
        success_rate=_ratio(s, s + f),
        time=Distribution.of(times),
        active_time=Distribution.of(active),
        waited_s=waited,
        by_strategy=strategies,
        histogram=histogram(times),
    )


# --------------------------------------------------------------------------- availability
@dataclass(frozen=True)
class Availability:
    """Time- and job-based availability, MTTR and MTBF over the window."""

    run_s: float
    down_s: float
    up_s: float
    time_ratio: float | None
    jobs_finished: int
    jobs_succeeded: int
    jobs_failed: int
    job_ratio: float | None
    failures: int
    mttr_s: float | None
    mttr_active_s: float | None
    mtbf_s: float | None
    #: down time spent in waits the endpoint imposed (``recoveries.waited_s``: reset times, an open
    #: breaker), and the time-based availability with it taken out of both down and run time
    imposed_s: float = 0.0
    time_ratio_excl_imposed: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def union_length(intervals: Iterable[tuple[float, float]]) -> float:
    """Total length of the union of intervals (empty or reversed ones count for nothing)."""
    total = 0.0
    cur_s: float | None = None
    cur_e = 0.0
    for s, e in sorted(intervals):
        if e <= s:
            continue
        if cur_s is None or s > cur_e:
            if cur_s is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_s is not None:
        total += cur_e - cur_s
    return total


def down_time(start: float, end: float, failures: Sequence[tuple[float, float | None]]) -> float:
    """A job's down time within ``[start, end)``, its run interval already clipped to the window.

    ``failures`` are ``(detected, restored)`` pairs (``restored`` None: not
    restored) of *all* the job's failures, earlier ones included.  Each is down
    from ``detected`` until the first restoration at or after it among them, so
    a failed recovery followed by a successful one counts once, else until
    ``end``; the intervals are clipped to the run and merged.  The chaos report
    calls this too, so both use one definition of down time.
    """
    restores = sorted(r for _, r in failures if r is not None)
    downs: list[tuple[float, float]] = []
    for detected, _ in failures:
        back = next((x for x in restores if x >= detected), None)
        downs.append((max(detected, start), min(end if back is None else back, end)))
    return union_length(downs)


def time_availability(run_s: float, down_s: float) -> float | None:
    """``1 - down_s / run_s`` over job-seconds; None without run time."""
    return 1.0 - down_s / run_s if run_s > 0 else None


def mtbf(run_s: float, down_s: float, failures: int) -> float | None:
    """Job-seconds of operation (run minus down time) per failure; None without failures.

    Summed over jobs rather than measured on the system's clock: with jobs in
    parallel, "down while any job is recovering" covers nearly all of a busy
    run, and that MTBF shrinks with concurrency instead of measuring resilience.
    """
    return _ratio(max(0.0, run_s - down_s), failures)


def _run_end(job: Any, win: Window) -> float | None:
    if job["finished_at"] is not None:
        return float(job["finished_at"])
    if job["state"] in ACTIVE_STATES:
        return win.end
    return float(job["updated_at"]) if job["updated_at"] is not None else None


def availability(store: Store, win: Window) -> Availability:
    """Availability from jobs' run time and the time between failure detection and restoration.

    See ``docs/metrics.md`` for the exact definitions; in short a job is *down*
    from a failure's ``detected_at`` until the first ``restored_at`` at or after
    it among the job's recoveries (else until the job ends, or the window's end
    while it is still active), and *running* from ``started_at`` to its end.
    """
    jobs = store.query(
        "SELECT id, state, started_at, finished_at, updated_at FROM jobs"
        " WHERE started_at IS NOT NULL AND started_at < ?"
        " AND (finished_at IS NULL OR finished_at >= ?)",
        (win.end, win.start),
    )
    recs: dict[str, list[Any]] = defaultdict(list)
    for r in store.query(
        "SELECT job_id, detected_at, restored_at, waited_s FROM recoveries WHERE detected_at < ?"
        " ORDER BY detected_at",
        (win.end,),
    ):
        recs[str(r["job_id"])].append(r)
    run_s = 0.0
    down_s = 0.0
    imposed_s = 0.0
    for job in jobs:
        end = _run_end(job, win)
        if end is None:
            continue
        rs, re_ = max(float(job["started_at"]), win.start), min(end, win.end)
        if re_ <= rs:
            continue
        run_s += re_ - rs
        fails = [
            (float(r["detected_at"]), None if r["restored_at"] is None else float(r["restored_at"]))
            for r in recs.get(str(job["id"]), [])
        ]
        down_s += down_time(rs, re_, fails)
        for r in recs.get(str(job["id"]), []):
            # a wait lies within its recovery's down interval: count it there, clipped to the window
            d0 = max(float(r["detected_at"]), rs)
            d1 = min(re_ if r["restored_at"] is None else float(r["restored_at"]), re_)
            imposed_s += max(0.0, min(float(r["waited_s"] or 0.0), d1 - d0))
    fin = store.query(
        "SELECT COUNT(*) AS n, SUM(state = 'succeeded') AS s, SUM(state = 'failed') AS f,"
        " SUM(state = 'failed' AND NOT EXISTS (SELECT 1 FROM recoveries r WHERE r.job_id = jobs.id)) AS fx"
        " FROM jobs WHERE state IN ('succeeded', 'failed') AND finished_at >= ? AND finished_at < ?",
        (win.start, win.end),
    )[0]
    n, s, f, fx = (int(fin[k] or 0) for k in ("n", "s", "f", "fx"))
    rec_in = store.query(
        "SELECT COUNT(*) AS n FROM recoveries WHERE detected_at >= ? AND detected_at < ?",
        (win.start, win.end),
    )[0]
    failures = int(rec_in["n"] or 0) + fx
    rstats = recovery_stats(store, win)
    up_s = max(0.0, run_s - down_s)
    return Availability(
        run_s=run_s,
        down_s=down_s,
        up_s=up_s,
        time_ratio=time_availability(run_s, down_s),
        jobs_finished=n,
        jobs_succeeded=s,
        jobs_failed=f,
        job_ratio=_ratio(s, n),
        failures=failures,
        mttr_s=rstats.time.mean,
        mttr_active_s=rstats.active_time.mean,
        mtbf_s=mtbf(run_s, down_s, failures),
        imposed_s=min(imposed_s, down_s),
        time_ratio_excl_imposed=time_availability(run_s - min(imposed_s, down_s), down_s - min(imposed_s, down_s)),
    )


# --------------------------------------------------------------------------- jobs
def job_counts(store: Store, win: Window | None = None) -> dict[str, int]:
    """Jobs by current state; with a window, only jobs that existed and were not done before it."""
    if win is None:
        rows = store.query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
    else:
        rows = store.query(
            "SELECT state, COUNT(*) AS n FROM jobs WHERE created_at < ?"
            " AND (finished_at IS NULL OR finished_at >= ?) GROUP BY state",
            (win.end, win.start),
        )
    return {str(r["state"]): int(r["n"]) for r in rows}


@dataclass(frozen=True)
class Summary:
    """Every headline metric for one window: what ``/api/summary`` returns."""

    window: Window
    jobs: dict[str, int]
    errors: ErrorStats
    retries: RetryStats
    recoveries: RecoveryStats
    availability: Availability
    breakers: list[BreakerStats]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["window"]["seconds"] = self.window.seconds
        return d


def summary(
    store: Store,
    *,
    start: float | None = None,
    end: float | None = None,
    now: float | None = None,
) -> Summary:
    """All metrics over one window (resolved as :func:`resolve_window` does)."""
    win = resolve_window(store, start=start, end=end, now=now)
    return Summary(
        window=win,
        jobs=job_counts(store, win),
        errors=error_stats(store, win),
        retries=retry_stats(store, win),
        recoveries=recovery_stats(store, win),
        availability=availability(store, win),
        breakers=breaker_stats(store, win),
    )
