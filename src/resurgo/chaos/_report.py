"""The chaos report: what a run did to the jobs, and whether the targets hold.

Computed from plain records (jobs, incidents, breaker events, fault windows)
rather than from live objects, so the same code scores a 10-second test run,
a long benchmark read back from the store, or hand-made records in a unit test,
and the arithmetic can be checked by hand.

Definitions (the seed names the metrics but not their formulas; these are ours):

* **availability** (job success ratio, the seed's target) — jobs that
  succeeded / jobs that were meant to succeed (jobs deliberately given a
  non-retryable fault are left out).  A clear failure counts against
  availability just as a lost job does.
* **automatic recovery rate** — recoverable incidents recovered without a
  human / recoverable incidents.  Whether an incident is *recoverable* comes
  from the fault that was injected (a SIGKILL, a 529, a cut connection are; an
  injected 401 is not), never from the classifier's verdict, so a transient
  failure misclassified as fatal counts as a miss; whether the recovery was
  automatic comes from what happened (the supervisor's recovery, or the
  restarted supervisor resuming its job; anything else needed an operator).
* **recovery time** — ``recovered_at - began`` of each recovered incident:
  from the fault (``fault_at``, the moment the injector's log says it hit the
  job: a request the stand-in hung, a connection the proxy black-holed, a
  SIGKILL) to the first event of the resumed run or the first byte of the
  relay's answered retry; where no fault is known, from the failure's
  detection (``at``).  Detection is part of recovery, as it is of standing
  still: a job whose request hangs makes no progress before the watch ends
  it.  (Until this stop it counted from detection, which left every hang's
  2-4 s before its detection out of both recovery and downtime.)  **MTTR** is
  their mean (the seed's "mean recovery time"); p50/p95 are nearest-rank, as
  in ``resurgo.observe``.  **Excluding imposed waits** subtracts the part of
  it spent in waits the run imposed on itself: a server's reset time
  (``retry-after``), an open breaker during a storm the chaos run injected,
  and the second between SIGKILLing the supervisor and starting the next one
  (the new one's start-up, and the CLIs it starts, stay resurgo's).

Time is counted in **job-seconds**, exactly as ``resurgo.observe`` counts it for
the dashboard (``docs/metrics.md``, and the same functions compute it): a job
runs from ``started_at`` to ``finished_at`` (to the end of the run if it did not
finish; a job that never started has no run time), clipped to the run; it is
down from each incident's ``began`` (its fault, else its detection) until the
first ``recovered_at`` at or after it among the job's incidents, else until its
run ends.  Re-doing work a killed CLI lost (the ``lost_work`` phase) counts as
progress: the job's events flow again, it is not standing still.

* **availability_time** — ``1 - down_job_s / run_job_s``: the share of job
  time spent making progress.
* **availability_time_excl_imposed** — the same with imposed waits (see
  above) taken out of both the down time and the run time:
  ``1 - (down - imposed) / (run - imposed)``, imposed counted only where the job
  was down.  What resurgo itself costs, when the server's and the storm's
  waits are not its to shorten.
* **MTBF** — ``(run_job_s - down_job_s) / failures``: job-seconds of operation
  per failure, where failures are the incidents plus failed jobs that had none.
  It does not shrink as more jobs run at once.
* **mtbf_system** (secondary) — system uptime / incidents, with the system down
  whenever *any* job is recovering (the union of the incidents' intervals,
  ``downtime_system``).  With jobs in parallel nearly the whole run is "down"
  and this tends to zero (a 60-job run scored 0.01 s), so it is kept only as
  context for runs of one job at a time.
* **breaker reaction** — from a breaker's threshold crossing to the first *job*
  call it rejected (a crossing never followed by a call is counted as
  unmeasured, not as fast).  Breakers that report no explicit crossing use
  their opening.  A run that injected a storm and saw no reaction at all
  fails this target rather than reporting "no data".
* **false positive** — an alarm nothing injected explains.  With attributed
  incidents (the chaos runner: every fault is known per job and per attempt)
  an incident is a false positive when no fault hit *that attempt of that
  job*, and a breaker opening when the failure that tripped it was one; no
  time window, no grace.  Records without attribution fall back to fault
  windows plus ``grace`` seconds.
* **classification accuracy** — share of incidents (and extra labelled
  samples) whose classified type equals the injected ground truth.

A target with no data (no incidents, no breaker trip) is reported as
"no data", which does not count as passing: a chaos run that provoked nothing
proved nothing.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import psutil
from rich.console import Group, RenderableType
from rich.table import Table

from resurgo._redact import redact_text
from resurgo.chaos._config import FAULT_BUCKETS, fault_bucket
from resurgo.chaos._faults import FaultLog, FaultWindow
from resurgo.observe._metrics import down_time, mtbf, percentile, time_availability, union_length

REPORT_VERSION = 3
# Version 1 named the system-level MTBF ``mtbf`` and its downtime ``downtime``, and kept the
# job-based MTBF as ``mtbf_job``; loading such a file renames them rather than misreading them.
# Version 3 counts recovery and downtime from the fault that hit the job, no longer from the
# failure's detection (version 2 left a hang's seconds before the watch ended it out of both).
_V1_RENAMES = {"mtbf": "mtbf_system", "downtime": "downtime_system", "mtbf_job": "mtbf"}

#: The definitions written into every JSON report, next to the figures they define.
DEFINITIONS: dict[str, str] = {
    "availability": "job success ratio: jobs that succeeded / jobs meant to succeed (the seed's target)",
    "availability_time": "time-based: share of job-time in which jobs were making progress, "
                         "1 - down job-seconds / run job-seconds",
    "availability_time_excl_imposed": "time-based excluding imposed waits: 1 - (down - imposed) / (run - imposed), "
                                      "imposed = the reset time sent with each injected 429/529, the breaker's "
                                      "open time during the injected storm and the time between a supervisor's "
                                      "SIGKILL and the start of the next one, counted where the job was down",
    "recovery": "the fault hitting the job (the injector's log; the failure's detection where none is known) -> "
                "first event of the resumed run, or first byte of the relay's answered retry; detection included. "
                "Excl. imposed waits subtracts the imposed part of it. A job is down over the same span",
    "recoverable": "decided by the injected fault (an injected 401 is not), never by the classifier",
    "automatic": "recovered by the supervisor or by the restarted supervisor; otherwise an operator did it",
    "breaker_reaction": "threshold crossing -> first job call the breaker refused",
    "false_positive": "an incident no injected fault hit (that job, that attempt), or a breaker opening "
                      "tripped by one; no time window",
}

JobOutcome = Literal["succeeded", "failed", "lost"]
BreakerEventKind = Literal["threshold_crossed", "opened", "rejected", "half_open", "closed"]
_OUTCOMES = ("succeeded", "failed", "lost")
_BREAKER_KINDS = ("threshold_crossed", "opened", "rejected", "half_open", "closed")


# ---------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One submitted job and how it ended.

    ``outcome`` None means the run ended without the job reaching a terminal
    state: it is lost, the worst result, because nobody was told.
    ``expected_failure`` marks jobs the chaos run gave a non-retryable fault on
    purpose; failing them clearly is correct, so availability leaves them out.
    ``started_at`` is when its first attempt began (None: it never ran, so it
    has no run time); ``finished_at`` may be set without an outcome (a job
    cancelled at shutdown), which ends its run time there.
    """

    job_id: str
    submitted_at: float
    outcome: JobOutcome | None = None
    finished_at: float | None = None
    attempts: int = 1
    expected_failure: bool = False
    started_at: float | None = None

    def __post_init__(self) -> None:
        if self.outcome is not None and self.outcome not in _OUTCOMES:
            raise ValueError(f"job {self.job_id!r}: unknown outcome {self.outcome!r}")
        if self.finished_at is not None and self.finished_at < self.submitted_at:
            raise ValueError(f"job {self.job_id!r} finished before it was submitted")
        if self.started_at is not None and self.finished_at is not None and self.finished_at < self.started_at:
            raise ValueError(f"job {self.job_id!r} finished before it started")


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """One failure the resilience layer saw (an attempt died, a call failed).

    ``error_type`` is what the classifier said; ``expected_type`` is the
    injector's ground truth when known.  ``recovered_at`` is when the job was
    back on track (next successful attempt or call); ``automatic`` False means
    a human (``resurgo resume``) had to step in.

    Attribution (set by the chaos scorer): ``cause`` is the injected fault that
    ended the attempt (``"api:529"``, ``"kill:cli"``, ``"net:reset"``...),
    ``explained`` whether any injected fault hit this attempt (None: not
    attributed, the report falls back to fault windows), ``imposed_s`` the
    part of the recovery spent in imposed waits, ``phases`` its breakdown in
    seconds, ``recovered_by`` who recovered it (``supervisor``,
    ``supervisor restart``, ``operator``).
    """

    job_id: str
    at: float
    error_type: str
    expected_type: str | None = None
    recovered_at: float | None = None
    automatic: bool = True
    recoverable: bool = True
    cause: str | None = None
    explained: bool | None = None
    imposed_s: float = 0.0
    phases: Mapping[str, float | None] | None = None
    recovered_by: str | None = None
    attempt: int | None = None
    #: when the fault behind it hit the job (the injector's log); None: unknown, ``at`` stands for it
    fault_at: float | None = None

    def __post_init__(self) -> None:
        if self.recovered_at is not None and self.recovered_at < self.at:
            raise ValueError(f"incident of job {self.job_id!r} recovered before it happened")

    @property
    def began(self) -> float:
        """When the job stopped making progress: the fault if known (never after the detection), else ``at``."""
        return self.at if self.fault_at is None else min(self.fault_at, self.at)


@dataclass(frozen=True, slots=True)
class BreakerEvent:
    """A breaker's transition or rejection, with its wall-clock time."""

    at: float
    breaker: str
    kind: BreakerEventKind

    def __post_init__(self) -> None:
        if self.kind not in _BREAKER_KINDS:
            raise ValueError(f"unknown breaker event kind {self.kind!r}")


@dataclass(frozen=True, slots=True)
class ClassificationRecord:
    """A labelled classification sample: what was injected, what was concluded."""

    expected: str
    got: str


@dataclass(frozen=True, slots=True)
class LeftoverProcess:
    """A process still alive after the run that the run started."""

    pid: int
    name: str
    cmdline: str


@dataclass(frozen=True, slots=True)
class FalsePositive:
    """An alarm raised while no fault was active (kept for the post-mortem)."""

    at: float
    what: str


@dataclass(frozen=True, slots=True)
class TargetCheck:
    """One target and how the run measured against it."""

    name: str
    bar: Literal["seed", "resurgo"]
    op: Literal[">=", "<", "<=", "=="]
    target: float
    value: float | None
    status: Literal["pass", "fail", "no data"]

    def line(self) -> str:
        shown = "n/a" if self.value is None else _fmt_num(self.value)
        return f"[{self.status.upper()}] {self.name} {self.op} {_fmt_num(self.target)} ({self.bar}): {shown}"


# ---------------------------------------------------------------------- maths


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _fmt_num(v: float) -> str:
    if v == int(v) and abs(v) >= 1:
        return str(int(v))
    return f"{v:.4g}"


# ---------------------------------------------------------------------- report


@dataclass(slots=True)
class ChaosReport:
    """Every number of a chaos run; JSON-serialisable, renderable with rich."""

    started_at: float
    ended_at: float
    seed: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    # jobs
    jobs_submitted: int = 0
    jobs_succeeded: int = 0
    jobs_failed: int = 0
    jobs_lost: int = 0
    jobs_expected_failures: int = 0
    availability: float | None = None
    # incidents and recovery
    incidents: int = 0
    recoverable_incidents: int = 0
    recovered_automatically: int = 0
    recovered_manually: int = 0
    unrecovered: int = 0
    auto_recovery_rate: float | None = None
    recovery_p50: float | None = None
    recovery_p95: float | None = None
    recovery_max: float | None = None
    mttr: float | None = None
    recovered_by: dict[str, int] = field(default_factory=dict)
    # the same without imposed waits (server reset times, an open breaker during an injected storm)
    recovery_excl_imposed_p50: float | None = None
    recovery_excl_imposed_p95: float | None = None
    recovery_excl_imposed_max: float | None = None
    # per fault kind: n, recovery p50/p95, the same without imposed waits, and the median of each phase
    recovery_breakdown: dict[str, dict[str, Any]] = field(default_factory=dict)
    # job-seconds (see the module docstring): the primary MTBF and the time-based availability
    # (None in reports read back from version 1, which did not record them)
    run_job_s: float | None = None
    down_job_s: float | None = None
    failures: int | None = None
    mtbf: float | None = None
    availability_time: float | None = None
    imposed_job_s: float | None = None
    availability_time_excl_imposed: float | None = None
    # secondary, system-level: down whenever any job is recovering (meaningless with parallel jobs)
    downtime_system: float = 0.0
    mtbf_system: float | None = None
    # breakers
    breaker_openings: int = 0
    breaker_reactions: int = 0
    breaker_unmeasured: int = 0
    breaker_reaction_p50: float | None = None
    breaker_reaction_max: float | None = None
    breaker_reaction_mean: float | None = None
    # the breaker alone: a probe call made by the run itself right after each crossing (context only)
    breaker_probe_reaction_max: float | None = None
    storms: int = 0
    # false positives
    alarms: int = 0
    false_positives: int = 0
    false_positive_rate: float | None = None
    false_positive_samples: list[dict[str, Any]] = field(default_factory=list)
    fp_grace: float = 0.0
    # classification
    classified: int = 0
    classified_correctly: int = 0
    classification_accuracy: float | None = None
    # faults and leftovers
    faults: dict[str, int] = field(default_factory=dict)
    fault_windows: list[dict[str, Any]] = field(default_factory=list)
    leaked_processes: list[dict[str, Any]] = field(default_factory=list)
    leaked_temp_files: list[str] = field(default_factory=list)
    # how each incident was explained (chaos runner: causes, confusion pairs, unexplained ones)
    attribution: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.ended_at - self.started_at

    # ------------------------------------------------------------------ targets

    def checks(self) -> list[TargetCheck]:
        """The seed's acceptance targets, then resurgo's stricter bar."""

        def chk(
            name: str,
            bar: Literal["seed", "resurgo"],
            op: Literal[">=", "<", "<=", "=="],
            target: float,
            value: float | None,
            *,
            required: bool = False,
        ) -> TargetCheck:
            if value is None:
                # "required": the run provoked what this target measures, so silence is a failure
                status: Literal["pass", "fail", "no data"] = "fail" if required else "no data"
            elif op == ">=":
                status = "pass" if value >= target else "fail"
            elif op == "<":
                status = "pass" if value < target else "fail"
            elif op == "<=":
                status = "pass" if value <= target else "fail"
            else:
                status = "pass" if value == target else "fail"
            return TargetCheck(name, bar, op, target, value, status)

        storm = self.storms > 0
        return [
            chk("classification accuracy", "seed", ">=", 0.95, self.classification_accuracy),
            chk("automatic recovery rate", "seed", ">=", 0.90, self.auto_recovery_rate),
            chk("mean recovery time (s)", "seed", "<", 30.0, self.mttr),
            chk("breaker reaction max (s)", "seed", "<", 1.0, self.breaker_reaction_max, required=storm),
            chk("false positive rate", "seed", "<", 0.05, self.false_positive_rate),
            chk("availability", "seed", ">=", 0.99, self.availability),
            chk("jobs lost", "resurgo", "==", 0, float(self.jobs_lost)),
            chk("leaked processes", "resurgo", "==", 0, float(len(self.leaked_processes))),
            chk("leaked temp files", "resurgo", "==", 0, float(len(self.leaked_temp_files))),
            chk("automatic recovery rate", "resurgo", ">=", 0.99, self.auto_recovery_rate),
            chk("availability", "resurgo", ">=", 0.999, self.availability),
            chk("breaker reaction max (s)", "resurgo", "<", 0.1, self.breaker_reaction_max, required=storm),
        ]

    def goal_checks(self) -> list[TargetCheck]:
        """Issue 14's goals for recovery speed; reported beside the targets, not part of :attr:`passed`."""
        out = []
        for name, op, target, value in (
            ("recovery excl. imposed waits p50 (s)", "<=", 1.0, self.recovery_excl_imposed_p50),
            ("recovery excl. imposed waits p95 (s)", "<=", 2.5, self.recovery_excl_imposed_p95),
            ("availability (time) excl. imposed waits", ">=", 0.90, self.availability_time_excl_imposed),
        ):
            if value is None:
                status: Literal["pass", "fail", "no data"] = "no data"
            elif op == "<=":
                status = "pass" if value <= target else "fail"
            else:
                status = "pass" if value >= target else "fail"
            out.append(TargetCheck(name, "resurgo", op, target, value, status))  # type: ignore[arg-type]
        return out

    def check_lines(self) -> list[str]:
        return [c.line() for c in self.checks()]

    @property
    def passed(self) -> bool:
        """True only when every target passed; "no data" is not a pass."""
        return all(c.status == "pass" for c in self.checks())

    def passed_seed(self) -> bool:
        return all(c.status == "pass" for c in self.checks() if c.bar == "seed")

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["version"] = REPORT_VERSION
        d["duration"] = self.duration
        d["checks"] = [asdict(c) for c in self.checks()]
        d["goals"] = [asdict(c) for c in self.goal_checks()]
        d["definitions"] = DEFINITIONS
        d["passed"] = self.passed
        return d

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True, allow_nan=False)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON atomically, so a run killed mid-save leaves no half report."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(self.to_json())
                f.write("\n")
            os.replace(tmp, p)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return p

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ChaosReport:
        version = d.get("version", REPORT_VERSION)
        if version == 1:
            d = {k: v for k, v in d.items() if k not in _V1_RENAMES} | {
                new: d[old] for old, new in _V1_RENAMES.items() if old in d
            }
        elif version not in (2, REPORT_VERSION):  # 2: the same fields, its recoveries counted from detection
            raise ValueError(f"unsupported chaos report version {version!r}")
        names = {f.name for f in fields(cls)}
        missing = {"started_at", "ended_at"} - set(d)
        if missing:
            raise ValueError(f"not a chaos report: missing {sorted(missing)}")
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ChaosReport:
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    # ------------------------------------------------------------------ rich

    def __rich__(self) -> RenderableType:
        return render_report(self)


# ---------------------------------------------------------------------- computation


def _windows_of(fault_log: FaultLog | Iterable[FaultWindow] | None) -> list[FaultWindow]:
    if fault_log is None:
        return []
    if isinstance(fault_log, FaultLog):
        return fault_log.windows()
    return sorted(fault_log, key=lambda w: (w.start, w.id))


def _breaker_reactions(events: Sequence[BreakerEvent]) -> tuple[list[float], int, int]:
    by_breaker: dict[str, list[BreakerEvent]] = {}
    for e in events:
        by_breaker.setdefault(e.breaker, []).append(e)
    reactions: list[float] = []
    unmeasured = 0
    openings = 0
    for evs in by_breaker.values():
        evs.sort(key=lambda e: e.at)
        openings += sum(1 for e in evs if e.kind == "opened")
        trigger = "threshold_crossed" if any(e.kind == "threshold_crossed" for e in evs) else "opened"
        crossings = [e.at for e in evs if e.kind == trigger]
        rejections = [e.at for e in evs if e.kind == "rejected"]
        for i, t in enumerate(crossings):
            nxt = crossings[i + 1] if i + 1 < len(crossings) else math.inf
            first = next((r for r in rejections if t <= r < nxt), None)
            if first is None:
                unmeasured += 1
            else:
                reactions.append(first - t)
    return reactions, unmeasured, openings


def _intersect(a: Sequence[tuple[float, float]], b: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Pairwise intersections of two interval lists (either may overlap itself; callers take the union)."""
    out = []
    for s1, e1 in a:
        for s2, e2 in b:
            s0, e0 = max(s1, s2), min(e1, e2)
            if e0 > s0:
                out.append((s0, e0))
    return out


def _down_intervals(
    start: float, end: float, failures: Sequence[tuple[float, float | None]]
) -> list[tuple[float, float]]:
    """The intervals :func:`resurgo.observe._metrics.down_time` measures (same definition, kept as intervals)."""
    restores = sorted(r for _, r in failures if r is not None)
    downs = []
    for detected, _ in failures:
        back = next((x for x in restores if x >= detected), None)
        s, e = max(detected, start), min(end if back is None else back, end)
        if e > s:
            downs.append((s, e))
    return downs


def _breakdown(incidents: Sequence[IncidentRecord]) -> dict[str, dict[str, Any]]:
    """Recovery time per fault bucket, with and without imposed waits, and the median of each phase."""
    groups: dict[str, list[IncidentRecord]] = {}
    for i in incidents:
        if i.cause is not None:
            groups.setdefault(fault_bucket(i.cause), []).append(i)
    groups["all"] = [i for i in incidents if i.cause is not None]
    out: dict[str, dict[str, Any]] = {}
    for bucket in (*FAULT_BUCKETS, "all"):
        g = groups.get(bucket)
        if not g:
            continue
        rec = [i for i in g if i.recovered_at is not None]
        times = [i.recovered_at - i.began for i in rec if i.recovered_at is not None]
        excl = [max(0.0, i.recovered_at - i.began - i.imposed_s) for i in rec if i.recovered_at is not None]
        phases: dict[str, list[float]] = {}
        for i in rec:
            for k, v in (i.phases or {}).items():
                if v is not None:
                    phases.setdefault(k, []).append(float(v))
        # what is left once the server's waits and the CLI's own start-up are taken out: resurgo's share
        own = [
            max(0.0, i.recovered_at - i.began - i.imposed_s - float((i.phases or {}).get("cli_start") or 0.0))
            for i in rec if i.recovered_at is not None and (i.phases or {}).get("cli_start") is not None
        ]
        out[bucket] = {
            "excl_imposed_and_cli_start_p50": percentile(own, 50),
            "n": len(g),
            "recovered": len(rec),
            "p50": percentile(times, 50),
            "p95": percentile(times, 95),
            "excl_imposed_p50": percentile(excl, 50),
            "excl_imposed_p95": percentile(excl, 95),
            "phases_p50": {k: percentile(v, 50) for k, v in sorted(phases.items())},
        }
    return out


def compute_report(
    *,
    started_at: float,
    ended_at: float,
    jobs: Iterable[JobRecord],
    incidents: Iterable[IncidentRecord] = (),
    breaker_events: Iterable[BreakerEvent] = (),
    fault_log: FaultLog | Iterable[FaultWindow] | None = None,
    classifications: Iterable[ClassificationRecord] = (),
    leaked_processes: Iterable[LeftoverProcess] = (),
    leaked_temp_files: Iterable[str] = (),
    grace: float = 5.0,
    seed: int | None = None,
    config: Mapping[str, Any] | None = None,
    max_fp_samples: int = 50,
    probe_breaker_events: Iterable[BreakerEvent] = (),
    storms: int = 0,
    imposed: Mapping[str, Sequence[tuple[float, float]]] | None = None,
    opening_explained: Callable[[BreakerEvent], bool] | None = None,
) -> ChaosReport:
    """Score a chaos run from its records (see the module docstring for the formulas).

    ``breaker_events`` are the jobs' own (the reaction target is measured on
    them); ``probe_breaker_events`` those of a probe that measures the breaker
    alone (context).  ``storms`` is how many storms the run injected: with one,
    a missing breaker reaction fails.  ``imposed`` maps a job id to its imposed
    waits (intervals); ``opening_explained`` tells whether a breaker opening
    was tripped by an injected fault.  When every incident carries
    ``explained`` and ``opening_explained`` is given, false positives are
    attributed per attempt and ``fault_log``/``grace`` only fill the fault
    counts; otherwise ``grace`` is how long after a fault window ends an alarm
    is still blamed on it.
    """
    if ended_at < started_at:
        raise ValueError("the run ended before it started")
    if grace < 0:
        raise ValueError("grace must be >= 0")
    jobs = list(jobs)
    ids = [j.job_id for j in jobs]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"duplicate job ids: {dup[:5]}")
    incidents = list(incidents)
    events = list(breaker_events)
    windows = _windows_of(fault_log)

    r = ChaosReport(started_at=started_at, ended_at=ended_at, seed=seed, config=dict(config or {}))

    # jobs
    r.jobs_submitted = len(jobs)
    r.jobs_succeeded = sum(1 for j in jobs if j.outcome == "succeeded")
    r.jobs_failed = sum(1 for j in jobs if j.outcome == "failed")
    r.jobs_lost = sum(1 for j in jobs if j.outcome in (None, "lost"))
    r.jobs_expected_failures = sum(1 for j in jobs if j.expected_failure)
    meant = [j for j in jobs if not j.expected_failure]
    r.availability = _ratio(sum(1 for j in meant if j.outcome == "succeeded"), len(meant))

    # incidents and recovery
    r.incidents = len(incidents)
    recoverable = [i for i in incidents if i.recoverable]
    r.recoverable_incidents = len(recoverable)
    r.recovered_automatically = sum(1 for i in recoverable if i.recovered_at is not None and i.automatic)
    r.recovered_manually = sum(1 for i in incidents if i.recovered_at is not None and not i.automatic)
    r.unrecovered = sum(1 for i in incidents if i.recovered_at is None)
    r.auto_recovery_rate = _ratio(r.recovered_automatically, len(recoverable))
    times = [i.recovered_at - i.began for i in incidents if i.recovered_at is not None]
    r.recovery_p50 = percentile(times, 50)
    r.recovery_p95 = percentile(times, 95)
    r.recovery_max = max(times) if times else None
    r.mttr = _mean(times)
    by: dict[str, int] = {}
    for i in incidents:
        if i.recovered_at is not None:
            who = i.recovered_by or ("supervisor" if i.automatic else "operator")
            by[who] = by.get(who, 0) + 1
    r.recovered_by = dict(sorted(by.items()))
    excl = [max(0.0, i.recovered_at - i.began - i.imposed_s) for i in incidents if i.recovered_at is not None]
    r.recovery_excl_imposed_p50 = percentile(excl, 50)
    r.recovery_excl_imposed_p95 = percentile(excl, 95)
    r.recovery_excl_imposed_max = max(excl) if excl else None
    r.recovery_breakdown = _breakdown(incidents)
    by_job: dict[str, list[tuple[float, float | None]]] = {}
    for i in incidents:
        by_job.setdefault(i.job_id, []).append((i.began, i.recovered_at))
    run_s = down_s = imposed_s = 0.0
    for j in jobs:
        if j.started_at is None:
            continue
        rs = max(j.started_at, started_at)
        re_ = min(j.finished_at if j.finished_at is not None else ended_at, ended_at)
        if re_ > rs:
            run_s += re_ - rs
            down_s += down_time(rs, re_, by_job.get(j.job_id, []))
            waits = (imposed or {}).get(j.job_id)
            if waits:
                downs = _down_intervals(rs, re_, by_job.get(j.job_id, []))
                imposed_s += union_length(_intersect(downs, list(waits)))
    failures = len(incidents) + sum(1 for j in jobs if j.outcome == "failed" and j.job_id not in by_job)
    r.run_job_s, r.down_job_s, r.failures = run_s, down_s, failures
    r.mtbf = mtbf(run_s, down_s, failures)
    r.availability_time = time_availability(run_s, down_s)
    r.imposed_job_s = imposed_s
    r.availability_time_excl_imposed = time_availability(run_s - imposed_s, down_s - imposed_s)
    r.downtime_system = union_length(
        (max(i.began, started_at), min(ended_at if i.recovered_at is None else i.recovered_at, ended_at))
        for i in incidents
    )
    r.mtbf_system = (r.duration - r.downtime_system) / len(incidents) if incidents else None

    # breakers
    reactions, unmeasured, openings = _breaker_reactions(events)
    r.breaker_openings = openings
    r.breaker_reactions = len(reactions)
    r.breaker_unmeasured = unmeasured
    r.breaker_reaction_p50 = percentile(reactions, 50)
    r.breaker_reaction_max = max(reactions) if reactions else None
    r.breaker_reaction_mean = _mean(reactions)
    probe_reactions, _, _ = _breaker_reactions(list(probe_breaker_events))
    r.breaker_probe_reaction_max = max(probe_reactions) if probe_reactions else None
    r.storms = storms

    # false positives
    opened = [e for e in events if e.kind == "opened"]
    attributed = opening_explained is not None and all(i.explained is not None for i in incidents)
    if attributed:
        assert opening_explained is not None
        # per job and per attempt: an alarm nothing injected into *that* attempt explains
        fps = [FalsePositive(i.at, f"incident {i.error_type} (job {i.job_id}, attempt {i.attempt})")
               for i in incidents if not i.explained]
        fps += [FalsePositive(e.at, f"breaker {e.breaker} opened") for e in opened if not opening_explained(e)]
        fps.sort(key=lambda f: f.at)
        n_alarms = len(incidents) + len(opened)
    else:
        alarms = [(i.at, f"incident {i.error_type} (job {i.job_id})") for i in incidents]
        alarms += [(e.at, f"breaker {e.breaker} opened") for e in opened]
        fps = [
            FalsePositive(t, what)
            for t, what in sorted(alarms)
            if not any(w.covers(t, grace=grace, now=ended_at) for w in windows)
        ]
        n_alarms = len(alarms)
    r.alarms = n_alarms
    r.false_positives = len(fps)
    r.false_positive_rate = _ratio(len(fps), n_alarms)
    r.false_positive_samples = [asdict(f) for f in fps[:max_fp_samples]]
    r.fp_grace = 0.0 if attributed else grace

    # classification
    pairs = [(c.expected, c.got) for c in classifications]
    pairs += [(i.expected_type, i.error_type) for i in incidents if i.expected_type is not None]
    r.classified = len(pairs)
    r.classified_correctly = sum(1 for exp, got in pairs if exp == got)
    r.classification_accuracy = _ratio(r.classified_correctly, r.classified)

    # faults and leftovers
    counts: dict[str, int] = {}
    for w in windows:
        counts[w.kind] = counts.get(w.kind, 0) + 1
    r.faults = counts
    r.fault_windows = [w.to_dict() for w in windows]
    r.leaked_processes = [asdict(p) for p in leaked_processes]
    r.leaked_temp_files = sorted(str(f) for f in leaked_temp_files)
    return r


# ---------------------------------------------------------------------- leftovers

def snapshot_processes() -> dict[int, float]:
    """pid -> create time of every process now; compare after the run with :func:`new_processes`."""
    out: dict[int, float] = {}
    for p in psutil.process_iter(["create_time"]):
        ct = p.info.get("create_time")
        if ct is not None:
            out[p.pid] = float(ct)
    return out


def new_processes(
    before: Mapping[int, float],
    *,
    match: Callable[[psutil.Process], bool],
) -> list[LeftoverProcess]:
    """Processes alive now that were not alive in ``before`` and that ``match`` claims.

    Scans the whole table rather than our descendants, because a CLI whose
    supervisor was killed is re-parented to init and is exactly the leak to
    catch.  Zombies are not counted: they hold no resources but a pid.
    """
    out: list[LeftoverProcess] = []
    for p in psutil.process_iter(["create_time", "name", "cmdline", "status"]):
        try:
            if p.info.get("status") == psutil.STATUS_ZOMBIE:
                continue
            if before.get(p.pid) == p.info.get("create_time"):
                continue
            if p.pid == os.getpid() or not match(p):
                continue
            cmd = " ".join(p.info.get("cmdline") or [])
            out.append(LeftoverProcess(p.pid, p.info.get("name") or "", redact_text(cmd)[:300]))
        except psutil.Error:
            continue
    return out


def snapshot_files(dirs: Iterable[str | os.PathLike[str]]) -> set[str]:
    """Every file path under ``dirs`` now (missing directories are empty)."""
    out: set[str] = set()
    for d in dirs:
        for root, _dirs, files in os.walk(d):
            out.update(os.path.join(root, f) for f in files)
    return out


def new_files(before: set[str], dirs: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Files under ``dirs`` that were not there in ``before``: temp files left behind."""
    return sorted(snapshot_files(dirs) - before)


# ---------------------------------------------------------------------- rendering


def _s(v: float | None, unit: str = "") -> str:
    return "n/a" if v is None else f"{v:.3f}{unit}"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 100:.2f}%"


def render_report(r: ChaosReport) -> Group:
    """A rich table of the metrics and one of the targets."""
    m = Table(title=f"chaos run: {r.duration:.1f} s, seed {r.seed}", show_header=False)
    m.add_column("metric", style="bold")
    m.add_column("value", justify="right")
    rows = [
        ("jobs submitted / succeeded", f"{r.jobs_submitted} / {r.jobs_succeeded}"),
        ("jobs failed / lost", f"{r.jobs_failed} / {r.jobs_lost}"),
        ("availability (job success ratio)", _pct(r.availability)),
        ("availability (time: share of job-time making progress)", _pct(r.availability_time)),
        ("availability (time, excluding imposed waits)", _pct(r.availability_time_excl_imposed)),
        ("incidents (recoverable)", f"{r.incidents} ({r.recoverable_incidents})"),
        ("automatic recovery", _pct(r.auto_recovery_rate)),
        (
            "recovery p50 / p95 / max",
            f"{_s(r.recovery_p50, ' s')} / {_s(r.recovery_p95, ' s')} / {_s(r.recovery_max, ' s')}",
        ),
        (
            "recovery excl. imposed waits p50 / p95",
            f"{_s(r.recovery_excl_imposed_p50, ' s')} / {_s(r.recovery_excl_imposed_p95, ' s')}",
        ),
        ("recovered by", ", ".join(f"{k}={v}" for k, v in r.recovered_by.items()) or "none"),
        ("MTTR", _s(r.mttr, " s")),
        ("MTBF (job-s of operation per failure)", _s(r.mtbf, " s")),
        (
            "job time run / down",
            "n/a" if r.run_job_s is None or r.down_job_s is None
            else f"{r.run_job_s:.1f} / {r.down_job_s:.1f} job-s",
        ),
        ("MTBF, system-wide (down while any job recovers)", _s(r.mtbf_system, " s")),
        ("breaker openings", str(r.breaker_openings)),
        (
            "breaker reaction, job calls p50 / max",
            f"{_s(r.breaker_reaction_p50, ' s')} / {_s(r.breaker_reaction_max, ' s')}"
            + (f" ({r.breaker_unmeasured} unmeasured)" if r.breaker_unmeasured else ""),
        ),
        ("breaker reaction, the breaker alone (probe) max", _s(r.breaker_probe_reaction_max, " s")),
        ("false positives", f"{r.false_positives} of {r.alarms} ({_pct(r.false_positive_rate)})"),
        ("classification accuracy", _pct(r.classification_accuracy)),
        ("faults injected", ", ".join(f"{k}={v}" for k, v in sorted(r.faults.items())) or "none"),
        ("leaked processes / temp files", f"{len(r.leaked_processes)} / {len(r.leaked_temp_files)}"),
    ]
    for k, v in rows:
        m.add_row(k, v)
    t = Table(title="targets")
    t.add_column("target")
    t.add_column("bar")
    t.add_column("needed", justify="right")
    t.add_column("measured", justify="right")
    t.add_column("result")
    style = {"pass": "green", "fail": "bold red", "no data": "yellow"}
    for c in [*r.checks(), *r.goal_checks()]:
        t.add_row(
            c.name,
            c.bar,
            f"{c.op} {_fmt_num(c.target)}",
            "n/a" if c.value is None else _fmt_num(c.value),
            f"[{style[c.status]}]{c.status}[/]" + ("" if c in r.checks() else " (goal)"),
        )
    parts: list[RenderableType] = [m, t]
    if r.recovery_breakdown:
        b = Table(title="recovery time by fault kind (s, p50; phases p50)")
        for col in ("kind", "n", "recovery p50 / p95", "excl. imposed p50 / p95", "excl. imposed & CLI start p50",
                    "phases"):
            b.add_column(col)
        for kind, d in r.recovery_breakdown.items():
            ph = ", ".join(f"{k} {v:.2f}" for k, v in (d.get("phases_p50") or {}).items() if v is not None)
            b.add_row(
                kind, str(d.get("n")),
                f"{_s(d.get('p50'))} / {_s(d.get('p95'))}",
                f"{_s(d.get('excl_imposed_p50'))} / {_s(d.get('excl_imposed_p95'))}",
                _s(d.get("excl_imposed_and_cli_start_p50")),
                ph or "n/a",
            )
        parts.append(b)
    return Group(*parts)


__all__ = [
    "REPORT_VERSION",
    "BreakerEvent",
    "ChaosReport",
    "ClassificationRecord",
    "FalsePositive",
    "IncidentRecord",
    "JobRecord",
    "LeftoverProcess",
    "TargetCheck",
    "compute_report",
    "new_files",
    "new_processes",
    "percentile",
    "render_report",
    "snapshot_files",
    "snapshot_processes",
]
