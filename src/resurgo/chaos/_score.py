"""Attribution and scoring of a chaos run: which injected fault hit which attempt of which job.

The ground truth is the injectors' own log, never a time window:

* every job reaches the API through a route of its own -- its own listening
  port on the fault proxy and its own base-URL path (``/j/<route>/``) on the
  stand-in -- so each faulted request and each faulted or cut connection is
  recorded with the job it hit (:class:`FaultHit`);
* a hit belongs to the attempt of that job that was running when it happened
  (the latest attempt started at or before it: a job's attempts follow one
  another), so faults are known per attempt;
* a SIGKILL is matched to the attempt by the pid it killed (the CLI itself, or
  the CLI a killed tool belonged to); a supervisor kill to every attempt that
  was running when it died.

A failed attempt with no fault on it is a false positive; a breaker opening is
one when no attempt running at its threshold crossing had been hit by a fault.
Whether an incident is *recoverable* comes from the fault (see
:func:`~resurgo.chaos._config.fault_recoverable`), and whether its recovery was
*automatic* from what the store shows happened next.
"""

from __future__ import annotations

import bisect
import signal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from resurgo.chaos._config import (
    API_FAULT_TYPES,
    API_RETRY_AFTER,
    HARMLESS_FAULTS,
    NET_FAULT_TYPES,
    fault_recoverable,
)
from resurgo.chaos._kill import KillRecord
from resurgo.chaos._report import (
    BreakerEvent,
    ChaosReport,
    IncidentRecord,
    JobRecord,
    LeftoverProcess,
    _breaker_reactions,
    compute_report,
    percentile,
)
from resurgo.observe._metrics import union_length


@dataclass
class AttemptRow:
    """One attempt as the store recorded it."""

    id: int
    job_id: str
    n: int
    session_id: str | None
    pid: int | None
    started_at: float
    first_event_at: float | None
    ended_at: float | None
    signal: int | None
    killed_by: str | None
    outcome: str | None
    error: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class FaultHit:
    """One injected fault that reached one job: from the stand-in's or the proxy's own log."""

    at: float
    job_id: str
    cause: str  # "api:529", "api:hang", "net:reset", "net:cut_all", ...


@dataclass(frozen=True, slots=True)
class RecoveryRow:
    """One recovery the supervisor recorded (``recoveries`` table), with its phases when stored."""

    job_id: str
    attempt_id: int | None
    strategy: str
    detected_at: float
    started_at: float | None
    restored_at: float | None
    waited_s: float
    phases: Mapping[str, float | None] | None = None
    #: when the failed request was sent (relay retries: the fault hit it after that), and the verdict
    fault_at: float | None = None
    error_type: str | None = None


#: Strategy of a recovery the supervisor's API relay made: the request was retried, the CLI kept running.
RELAY_RETRY = "relay_retry"


@dataclass
class Attribution:
    """Why one failed attempt failed, as far as the injected faults tell."""

    cause: str
    expected_type: str | None
    at: float


@dataclass
class RunArtifacts:
    """The raw records of a run, kept for scoring and for the post-mortem."""

    started_at: float = 0.0
    ended_at: float = 0.0
    jobs: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[AttemptRow] = field(default_factory=list)
    expected_failure_ids: set[str] = field(default_factory=set)  # idem keys of jobs meant to fail
    hits: list[FaultHit] = field(default_factory=list)
    unrouted_faults: int = 0  # faults that reached no job (health probes through the shared port)
    kills: list[KillRecord] = field(default_factory=list)
    supervisor_kills: list[float] = field(default_factory=list)
    storms: list[tuple[float, float]] = field(default_factory=list)
    #: (kill, restart) of each supervisor the run SIGKILLed: the time the run itself kept it dead
    supervisor_down: list[tuple[float, float]] = field(default_factory=list)
    recoveries: list[RecoveryRow] = field(default_factory=list)
    breaker_events: list[BreakerEvent] = field(default_factory=list)  # the breaker log, probes included
    job_rejections: list[BreakerEvent] = field(default_factory=list)  # job admissions refused (the store)
    leaked_processes: list[LeftoverProcess] = field(default_factory=list)
    leaked_temp_files: list[str] = field(default_factory=list)
    worker_exits: list[int | None] = field(default_factory=list)
    jobs_expected: int = 0


def expected_type(cause: str) -> str | None:
    """The true error type of a fault cause (None: no type to compare a verdict with)."""
    kind, _, what = cause.partition(":")
    if kind == "api":
        return API_FAULT_TYPES.get(what)
    if kind == "net":
        return "network" if what == "cut_all" else NET_FAULT_TYPES.get(what)
    if cause == "kill:cli":
        return "process"
    return None


# ---------------------------------------------------------------------- per-attempt truth


def hits_by_attempt(hits: Iterable[FaultHit], attempts: Sequence[AttemptRow]) -> dict[int, list[FaultHit]]:
    """Each hit on the attempt of its job that was running then (latest started at or before it)."""
    per_job: dict[str, list[AttemptRow]] = {}
    for a in attempts:
        per_job.setdefault(a.job_id, []).append(a)
    starts: dict[str, list[float]] = {}
    for jid, atts in per_job.items():
        atts.sort(key=lambda a: (a.started_at, a.n))
        starts[jid] = [a.started_at for a in atts]
    out: dict[int, list[FaultHit]] = {}
    for h in hits:
        job_atts = per_job.get(h.job_id)
        if not job_atts:
            continue
        i = bisect.bisect_right(starts[h.job_id], h.at) - 1
        if i >= 0:
            out.setdefault(job_atts[i].id, []).append(h)
    for v in out.values():
        v.sort(key=lambda h: h.at)
    return out


def kills_of(a: AttemptRow, kills: Iterable[KillRecord]) -> list[KillRecord]:
    """Our SIGKILLs that hit this attempt's CLI (``depth`` 0) or one of its tools."""
    if a.pid is None:
        return []
    end = a.ended_at if a.ended_at is not None else float("inf")
    return [k for k in kills if k.ok and (k.pid == a.pid or k.root == a.pid) and a.started_at <= k.time <= end]


def attribute(
    a: AttemptRow,
    *,
    hits: Sequence[FaultHit],
    kills: Sequence[KillRecord],
    supervisor_kills: Iterable[float],
) -> Attribution | None:
    """The injected fault that ended attempt ``a``, from the faults that hit *this* attempt only.

    A SIGKILL of the attempt's own CLI that then died of SIGKILL wins outright
    (the stand-in stamps a request when it has read it, which can trail the
    kill); an attempt lost with its supervisor is the supervisor kill's; else
    the latest fault wins, except that a watchdog kill after a hang (API hang or
    blackholed connection) is the hang's timeout.  Faults that only slow a run
    (delay, bandwidth) explain no failure.  None: nothing injected hit it.
    """
    end = a.ended_at if a.ended_at is not None else float("inf")
    exact = [Attribution(h.cause, expected_type(h.cause), h.at) for h in hits if h.cause not in HARMLESS_FAULTS]
    for k in kills:
        if k.pid == a.pid:
            exact.append(Attribution("kill:cli", "process", k.time))
        else:
            # a tool child died: the CLI reports it to the model and carries on; if the
            # attempt failed anyway there is no clean truth to compare with
            exact.append(Attribution("kill:tool", None, k.time))
    sup = [Attribution("kill:supervisor", None, t) for t in supervisor_kills if a.started_at <= t <= end]
    if sup and a.outcome == "lost":
        return sup[0]
    exact += sup
    cli_kills = [x for x in exact if x.cause == "kill:cli"]
    if cli_kills and a.signal == signal.SIGKILL:
        return cli_kills[-1]
    if not exact:
        # a watchdog that ended an attempt nothing was injected into killed a healthy run: a false
        # positive, never "explained" by its own kill
        return None
    best = max(exact, key=lambda x: x.at)
    if a.killed_by == "stall_watchdog" and a.ended_at is not None and best.at <= a.ended_at:
        # the watchdog acted after the faults: the hang behind it, if one hit this attempt
        hangs = [x for x in exact if x.cause in ("api:hang", "net:blackhole")]
        if hangs:
            return Attribution(hangs[-1].cause, "timeout", hangs[-1].at)
    return best


# ---------------------------------------------------------------------- imposed waits


def _open_intervals(events: Sequence[BreakerEvent], until: float) -> list[tuple[float, float]]:
    """When each breaker was open (opened -> half-open/closed), per breaker name."""
    out: list[tuple[float, float]] = []
    by: dict[str, list[BreakerEvent]] = {}
    for e in events:
        by.setdefault(e.breaker, []).append(e)
    for evs in by.values():
        evs.sort(key=lambda e: e.at)
        opened: float | None = None
        for e in evs:
            if e.kind == "opened" and opened is None:
                opened = e.at
            elif e.kind in ("half_open", "closed") and opened is not None:
                out.append((opened, e.at))
                opened = None
        if opened is not None:
            out.append((opened, until))
    return out


def _overlap(lo: float, hi: float, intervals: Iterable[tuple[float, float]]) -> float:
    return union_length((max(lo, s), min(hi, e)) for s, e in intervals)


# ---------------------------------------------------------------------- scoring


def _job_records(art: RunArtifacts, expected_fail: set[str]) -> list[JobRecord]:
    jobs: list[JobRecord] = []
    for j in art.jobs:
        state = j["state"]
        outcome = state if state in ("succeeded", "failed") else None
        jobs.append(JobRecord(
            job_id=j["id"], submitted_at=j["created_at"], outcome=outcome,
            finished_at=j["finished_at"], attempts=max(1, j["attempts"] or 1),
            expected_failure=j["id"] in expected_fail, started_at=j["started_at"],
        ))
    for i in range(max(0, art.jobs_expected - len(jobs))):  # the supervisor died before creating them
        jobs.append(JobRecord(job_id=f"never-created-{i}", submitted_at=art.started_at))
    return jobs


def score(
    art: RunArtifacts,
    *,
    seed: int | None = None,
    config: Mapping[str, Any] | None = None,
    fault_windows: Any = None,
    extra: Mapping[str, Any] | None = None,
) -> ChaosReport:
    """The report of a run from its artifacts (pure: the same records always give the same report)."""
    expected_fail = {j["id"] for j in art.jobs if j["idem_key"] in art.expected_failure_ids}
    jobs = _job_records(art, expected_fail)
    by_attempt = hits_by_attempt(art.hits, art.attempts)
    rec_by_attempt = {r.attempt_id: r for r in art.recoveries
                      if r.attempt_id is not None and r.strategy != RELAY_RETRY}
    opens = _open_intervals(art.breaker_events, art.ended_at)
    storm_open = [(max(s, bs), min(e, be)) for s, e in art.storms for bs, be in opens if min(e, be) > max(s, bs)]
    # Imposed waits come from the injectors' truth, not from what the supervisor says it waited
    # (its ``waited_s`` also counts an open breaker long after the storm, which is resurgo's own):
    # the reset time the stand-in sent with the fault that ended the attempt, from its detection,
    # every job's time while the breaker was open during a storm the run injected, and the time
    # between a supervisor's SIGKILL and the run starting the next one (no supervisor can act
    # then; the new one's start-up and the CLIs it starts are resurgo's own and stay counted).
    imposed: dict[str, list[tuple[float, float]]] = {
        j["id"]: [*storm_open, *art.supervisor_down] for j in art.jobs}

    incidents: list[IncidentRecord] = []
    causes: dict[str, int] = {}
    confusion: dict[str, int] = {}
    unexplained: list[dict[str, Any]] = []
    details: list[dict[str, Any]] = []
    per_job: dict[str, list[AttemptRow]] = {}
    for a in art.attempts:
        per_job.setdefault(a.job_id, []).append(a)
    for atts in per_job.values():
        atts.sort(key=lambda a: (a.n, a.id))
    # Every server reset first: a 429 whose retry got another 429 waited out both resets, and the
    # second one's interval must be known when the first incident's imposed part is measured.
    hits_by_job = _hits_by_job(art)
    failures: dict[int, tuple[float, Attribution | None]] = {}  # attempt id -> (failed at, its fault)
    for jid, atts in per_job.items():
        for i, a in enumerate(atts):
            failed = _attempt_failure(a, i + 1 < len(atts), art, by_attempt)
            if failed is not None:
                failures[a.id] = failed
                _impose_reset(imposed, jid, *failed)
    relay_faults: dict[int, Attribution | None] = {}  # id(row) -> its fault
    for r in art.recoveries:
        if r.strategy == RELAY_RETRY:
            relay_faults[id(r)] = _relay_fault(r, hits_by_job)
            _impose_reset(imposed, r.job_id, r.detected_at, relay_faults[id(r)])
    for jid, atts in per_job.items():
        for i, a in enumerate(atts):
            later = atts[i + 1:]
            sup_during = [t for t in art.supervisor_kills if a.started_at <= t <= (a.ended_at or float("inf"))]
            failed = failures.get(a.id)
            if failed is None:
                continue  # succeeded, cancelled at shutdown, or still running when the run ended
            at, attr = failed
            err = a.error or {}
            got = str(err.get("type") or ("interrupted" if a.outcome != "failed" else "unknown"))
            cause = attr.cause if attr is not None else "unexplained"
            causes[cause] = causes.get(cause, 0) + 1
            # only a failure the classifier judged has a verdict to compare with the truth
            exp = attr.expected_type if attr is not None and a.outcome == "failed" else None
            if exp is not None:
                key = f"{exp} -> {got}"
                confusion[key] = confusion.get(key, 0) + 1
            nxt_att = next((b for b in later if b.first_event_at is not None), None)
            nxt = nxt_att.first_event_at if nxt_att is not None else None
            if nxt is not None and nxt < at:
                nxt = at
            rec = rec_by_attempt.get(a.id)
            if nxt is None:
                by = None
            elif rec is not None:
                by = "supervisor"
            elif a.outcome == "lost" or sup_during:
                by = "supervisor restart"  # the restarted supervisor resumed it on its own
            else:
                by = "operator"
            recoverable = jid not in expected_fail and fault_recoverable(attr.cause if attr else None)
            imp = _overlap(_began(at, attr), nxt, imposed.get(jid, [])) if nxt is not None else 0.0
            phases = _phases(a, attr, at, nxt, nxt_att, rec, imp)
            _record((incidents, details, unexplained), jid=jid, attempt=a.n, at=at, attr=attr,
                    exp=exp if attr is not None else None, got=got, nxt=nxt, by=by,
                    automatic=by in ("supervisor", "supervisor restart") if nxt is not None else True,
                    recoverable=recoverable, imp=imp, phases=phases, rule=err.get("rule"),
                    description=str(err.get("description") or "")[:160], killed_by=a.killed_by, signal=a.signal)

    relay_n = _relay_incidents(art, per_job, relay_faults, imposed, expected_fail, incidents, causes, confusion,
                               unexplained, details)

    # what a breaker counts: failures the supervisor judged the API's (not a killed CLI, not a dead supervisor)
    api_failed = sorted((i for i in incidents if i.error_type not in ("process", "interrupted")), key=lambda i: i.at)

    def opening_explained(ev: BreakerEvent) -> bool:
        # The supervisor finishes the attempt's row, then records its failure in the breaker, so
        # the failure that opened it is the API failure that ended last before the opening.
        before = [i for i in api_failed if i.at <= ev.at]
        return bool(before) and bool(before[-1].explained)

    report = compute_report(  # the reaction target: crossing -> first *job* admission the breaker refused
        started_at=art.started_at,
        ended_at=art.ended_at,
        jobs=jobs,
        incidents=incidents,
        breaker_events=job_breaker_events(art),
        probe_breaker_events=art.breaker_events,
        fault_log=fault_windows,
        leaked_processes=art.leaked_processes,
        leaked_temp_files=art.leaked_temp_files,
        seed=seed,
        config=config,
        storms=len(art.storms),
        imposed=imposed,
        opening_explained=opening_explained,
    )
    report.attribution = {
        "causes": dict(sorted(causes.items())),
        "confusion": dict(sorted(confusion.items())),
        "unexplained": unexplained[:50],
        "unexplained_count": len(unexplained),
        "faults_injected": _count(h.cause for h in art.hits),
        "faults_unrouted": art.unrouted_faults,
        "api_faults_injected": _count(h.cause.split(":", 1)[1] for h in art.hits if h.cause.startswith("api:")),
        "kills": {"cli": sum(1 for k in art.kills if k.depth == 0), "tool": sum(1 for k in art.kills if k.depth)},
        "supervisor_kills": len(art.supervisor_kills),
        "relay_retries": relay_n,
        "storms": [list(s) for s in art.storms],
        "worker_exit_codes": art.worker_exits,
        "breaker_probe_reaction": _reaction_summary(art.breaker_events),
        "breaker_job_reaction": _reaction_summary(job_breaker_events(art)),
        "incidents": details[:500],
        **dict(extra or {}),
    }
    return report


def _record(
    lists: tuple[list[IncidentRecord], list[dict[str, Any]], list[dict[str, Any]]],
    *, jid: str, attempt: int | None, at: float, attr: Attribution | None, exp: str | None, got: str,
    nxt: float | None, by: str | None, automatic: bool, recoverable: bool, imp: float,
    phases: dict[str, float | None] | None, **extra: Any,
) -> None:
    """One incident into the report's three lists: the record, its detail row, and the unexplained ones."""
    incidents, details, unexplained = lists
    cause = attr.cause if attr is not None else "unexplained"
    began = _began(at, attr)
    detail = {"job_id": jid, "attempt": attempt, "at": round(at, 3), "fault_at": round(began, 3), "cause": cause,
              "expected": exp, "got": got, "recovered_by": by, "recoverable": recoverable, "imposed_s": round(imp, 3),
              "recovery_s": None if nxt is None else round(nxt - began, 3),
              "phases": None if phases is None else {
                  k: (None if v is None else round(float(v), 3)) for k, v in phases.items()}, **extra}
    details.append(detail)
    if attr is None:
        unexplained.append(detail)
    incidents.append(IncidentRecord(
        job_id=jid, at=at, error_type=got, expected_type=exp, recovered_at=nxt, automatic=automatic,
        recoverable=recoverable, cause=cause, explained=attr is not None, imposed_s=imp, phases=phases,
        recovered_by=by, attempt=attempt, fault_at=None if attr is None else began,
    ))


def _began(at: float, attr: Attribution | None) -> float:
    """When the job stopped making progress: the fault behind the failure, never after its detection."""
    return at if attr is None else min(attr.at, at)


def _relay_incidents(
    art: RunArtifacts,
    per_job: Mapping[str, Sequence[AttemptRow]],
    relay_faults: Mapping[int, Attribution | None],
    imposed: dict[str, list[tuple[float, float]]],
    expected_fail: set[str],
    incidents: list[IncidentRecord],
    causes: dict[str, int],
    confusion: dict[str, int],
    unexplained: list[dict[str, Any]],
    details: list[dict[str, Any]],
) -> dict[str, int]:
    """The failed requests the relay retried inside a running attempt, scored like failed attempts.

    The fault behind one is the injected fault that hit *that job* between the
    moment the failed request was sent (``fault_at``) and the moment the relay
    saw it fail: the stand-in stamps a request when it has read it, the proxy a
    connection when it accepts it, both after the relay sent it.  No fault in
    that span is a false positive (the relay's hang watch ending a healthy
    request).  It is recovered when a later try of the same request was
    answered (``restored_at``); a request the relay gave up on is recovered by
    the job's next attempt, like any failed attempt.
    """
    att_by_id = {a.id: a for atts in per_job.values() for a in atts}
    out = {"n": 0, "restored_in_attempt": 0, "not_restored_in_attempt": 0}  # the latter: given up, or cut short
    relay_rows = [r for r in art.recoveries if r.strategy == RELAY_RETRY]
    for r in sorted(relay_rows, key=lambda r: r.detected_at):
        jid, at = r.job_id, r.detected_at
        attr = relay_faults[id(r)]
        cause = attr.cause if attr is not None else "unexplained"
        causes[cause] = causes.get(cause, 0) + 1
        got = r.error_type or "unknown"
        exp = attr.expected_type if attr is not None else None
        if exp is not None:
            key = f"{exp} -> {got}"
            confusion[key] = confusion.get(key, 0) + 1
        a = att_by_id.get(r.attempt_id) if r.attempt_id is not None else None
        nxt = r.restored_at
        by: str | None
        out["n"] += 1
        if nxt is not None:
            out["restored_in_attempt"] += 1
            by = "relay"
        else:
            out["not_restored_in_attempt"] += 1
            # the job moved again: a later request of it the relay got answered, a later attempt's
            # first event, or this very attempt succeeding (the CLI itself asked again and got through)
            later = [b.first_event_at for b in per_job.get(jid, ()) if b.first_event_at is not None
                     and b.first_event_at >= at and (a is None or b.id != a.id)]
            answered = [x.restored_at for x in relay_rows if x.job_id == jid and x.restored_at is not None
                        and x.restored_at >= at]
            own = [a.ended_at] if a is not None and a.outcome == "succeeded" and a.ended_at is not None \
                and a.ended_at >= at else []
            nxt = min([*later, *answered, *own], default=None)
            by = None if nxt is None else ("supervisor" if later and nxt == min(later) else "relay")
        imp = _overlap(_began(at, attr), nxt, imposed.get(jid, [])) if nxt is not None else 0.0
        p = r.phases or {}

        def num(k: str, p: Mapping[str, float | None] = p) -> float:
            v = p.get(k)
            return float(v) if v is not None else 0.0

        phases: dict[str, float | None] | None = None if nxt is None else {
            "detection": max(0.0, at - attr.at) if attr is not None else p.get("detect_s"),
            "imposed_wait": imp,
            "endpoint_wait": max(0.0, num("imposed_s") - imp),
            "own_backoff": num("backoff_s") + num("budget_s"),
            "overhead": num("overhead_s"),
            "cli_start": 0.0 if r.restored_at is not None else None,  # the CLI was never restarted
            "retry_answer": p.get("start_s") if r.restored_at is not None else None,
            "lost_work": 0.0 if r.restored_at is not None else None,
        }
        recoverable = jid not in expected_fail and fault_recoverable(attr.cause if attr else None)
        _record((incidents, details, unexplained), jid=jid, attempt=a.n if a is not None else None, at=at,
                attr=attr, exp=exp, got=got, nxt=nxt, by=by, automatic=True, recoverable=recoverable, imp=imp,
                phases=phases, rule=None, description="", killed_by=None, signal=None, relay=True)
    return out


def _attempt_failure(a: AttemptRow, has_later: bool, art: RunArtifacts,
                     by_attempt: Mapping[int, Sequence[FaultHit]]) -> tuple[float, Attribution | None] | None:
    """When attempt ``a`` failed and the fault behind it; None: it did not fail."""
    if a.outcome == "failed":
        at = a.ended_at if a.ended_at is not None else a.started_at
    elif a.outcome in (None, "lost") and (has_later or a.outcome == "lost"):
        # its supervisor died under it: the failure happened at the kill, not at the
        # restart that noticed it
        sup_during = [t for t in art.supervisor_kills if a.started_at <= t <= (a.ended_at or float("inf"))]
        at = sup_during[0] if sup_during else (a.ended_at if a.ended_at is not None else a.started_at)
    else:
        return None
    attr = attribute(a, hits=by_attempt.get(a.id, []), kills=kills_of(a, art.kills),
                     supervisor_kills=art.supervisor_kills)
    return at, attr


def _hits_by_job(art: RunArtifacts) -> dict[str, list[FaultHit]]:
    out: dict[str, list[FaultHit]] = {}
    for h in art.hits:
        if h.cause not in HARMLESS_FAULTS:
            out.setdefault(h.job_id, []).append(h)
    return out


def _relay_fault(r: RecoveryRow, hits_by_job: Mapping[str, Sequence[FaultHit]]) -> Attribution | None:
    """The injected fault that hit the job between the failed try's sending and its detection.

    A try's own fault is stamped before the try failed (the stand-in stamps a
    request when it reads it, the proxy a connection when it accepts it): a hit
    after the detection belongs to the next try.  A hedged copy is sent at the
    very moment its stalled try is reported, and with 20 ms of slack after the
    detection the copy's own fault (a 500, a drop) was taken for the stall's:
    the stall then counted from its detection instead of from the hang, and
    was scored as misclassified.
    """
    eps = 0.02
    at = r.detected_at
    sent = r.fault_at if r.fault_at is not None else at
    cands = [h for h in hits_by_job.get(r.job_id, []) if sent - eps <= h.at <= at + 0.001]
    return Attribution(cands[-1].cause, expected_type(cands[-1].cause), cands[-1].at) if cands else None


def _impose_reset(imposed: dict[str, list[tuple[float, float]]], jid: str, at: float,
                  attr: Attribution | None) -> None:
    """The reset time the stand-in sent with an injected 429/529, from the failure's detection."""
    reset = API_RETRY_AFTER.get(attr.cause.split(":", 1)[1]) if attr and attr.cause.startswith("api:") else None
    if reset:
        imposed.setdefault(jid, []).append((at, at + reset))


def _phases(
    a: AttemptRow,
    attr: Attribution | None,
    at: float,
    nxt: float | None,
    nxt_att: AttemptRow | None,
    rec: RecoveryRow | None,
    imposed: float,
) -> dict[str, float | None] | None:
    """Where the recovery of attempt ``a`` went, in seconds (None: not measurable from the records).

    Phases recorded by the supervisor (``recoveries.phases``) win; otherwise
    they are derived: detection (fault -> failure noticed), imposed wait,
    resurgo's own wait (the rest until the next attempt started), CLI start to
    first event.  Re-doing lost work needs the stored phases.
    """
    if nxt is None:
        return None
    detection = max(0.0, at - attr.at) if attr is not None else None
    p = rec.phases if rec is not None else None
    if p:
        def num(k: str) -> float:
            v = p.get(k)
            return float(v) if v is not None else 0.0

        start = p.get("start_s")
        redo = p.get("redo_s")
        return {
            "detection": detection if detection is not None else p.get("detect_s"),
            "imposed_wait": imposed,
            # what the supervisor waited on the endpoint beyond what the run imposed (an open
            # breaker after the storm, a half-open probe): the endpoint's state, resurgo's to shorten
            "endpoint_wait": max(0.0, num("imposed_s") - imposed),
            "own_backoff": num("backoff_s") + num("budget_s"),
            "overhead": num("overhead_s"),
            "cli_start": None if start is None else float(start),
            "lost_work": None if redo is None else float(redo),
        }
    start_next = nxt_att.started_at if nxt_att is not None else None
    waiting = max(0.0, start_next - at) if start_next is not None else None
    return {
        "detection": detection,
        "imposed_wait": imposed,
        "own_wait": None if waiting is None else max(0.0, waiting - imposed),
        "cli_start": None if start_next is None else max(0.0, nxt - start_next),
        "lost_work": None,
    }


def _base(name: str) -> str:
    """A breaker's name without the worker's ``@pid`` tag (the store's events do not carry it)."""
    return name.rsplit("@", 1)[0]


def job_breaker_events(art: RunArtifacts) -> list[BreakerEvent]:
    """Crossings, openings and transitions from the breaker log, plus the jobs' refused admissions.

    A job call the breaker refused is the supervisor's ``waiting`` event for
    the breaker (recorded when a job's next attempt could not get a permit);
    the probe's rejections and a failure recorded into an already open breaker
    are not job calls, so the breaker log's own rejections are left out.
    """
    out = [BreakerEvent(e.at, _base(e.breaker), e.kind) for e in art.breaker_events if e.kind != "rejected"]
    out += [BreakerEvent(e.at, _base(e.breaker), "rejected") for e in art.job_rejections]
    return sorted(out, key=lambda e: e.at)


def _reaction_summary(events: list[BreakerEvent]) -> dict[str, Any]:
    reactions, unmeasured, _ = _breaker_reactions(events)
    return {
        "n": len(reactions),
        "unmeasured": unmeasured,
        "p50": percentile(reactions, 50),
        "max": max(reactions) if reactions else None,
    }


def _count(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return dict(sorted(out.items()))


__all__ = [
    "AttemptRow",
    "Attribution",
    "FaultHit",
    "RecoveryRow",
    "RunArtifacts",
    "attribute",
    "expected_type",
    "hits_by_attempt",
    "job_breaker_events",
    "kills_of",
    "score",
]
