"""The recovery orchestrator: the seed's flow, carried out for one job at a time.

detect -> classify -> retryable? -> adaptive backoff -> breaker check -> choose
and run a recovery strategy -> monitor -> restore.

:class:`Orchestrator` owns nothing that outlives a supervisor but the store:
the decisions come from :class:`~resurgo.supervise._recovery.RecoveryPlanner`,
the mechanics of one run from :class:`~resurgo.supervise._process.ProcessManager`,
the session choice from :class:`~resurgo.supervise._session.SessionManager`.
What this module adds is the *order* of those steps and the bookkeeping that
makes them observable and restartable:

* every attempt, error, recovery, retry and breaker transition lands in the
  store, so the dashboard's metrics and a restarted supervisor see the truth;
* one breaker, one retry budget and one load tracker per endpoint
  (``ANTHROPIC_BASE_URL``), shared by every job, so a 529 storm is met by
  fewer requests, not by eight jobs each retrying on its own;
* only failures that came *from the API* count against the endpoint's breaker:
  a CLI we killed for being stuck in a long tool, or a prompt the API
  rejected, says nothing about the endpoint's health;
* no double retries: the CLI retries API errors itself
  (``CLAUDE_CODE_MAX_RETRIES``); we act only on its final result or its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Protocol
from urllib.parse import urlsplit

from resurgo._endpoints import endpoint_name
from resurgo._redact import redact_text
from resurgo.breaker import CircuitBreaker, CircuitOpenError, CircuitState, Permit, StateTransition
from resurgo.classifier import Classifier
from resurgo.classifier._types import ErrorClass, ErrorType, Observation, Severity, Strategy
from resurgo.clock import SYSTEM_CLOCK, Clock
from resurgo.retrier import AdaptiveBackoff, LoadTracker, RetryBudget
from resurgo.supervise._alerts import BREAKER_OPEN, BUDGET_EXHAUSTED, ESCALATION, GAVE_UP, AlertManager
from resurgo.supervise._cleanup import ResourceCleaner
from resurgo.supervise._config import SupervisorConfig
from resurgo.supervise._events import (
    AttemptStarted,
    BreakerStateChanged,
    BudgetBypassed,
    CliEvent,
    FailureDetected,
    JobFinished,
    JobResult,
    RecoveryPlanned,
    Restored,
    SupervisorEvent,
    ToolStarted,
    Waiting,
)
from resurgo.supervise._jobstore import ACTIVE_STATES, JobRecord, JobState, JobStore, JobStoreError
from resurgo.supervise._phases import Progress, fault_at, fault_kind
from resurgo.supervise._process import (
    Attempt,
    AttemptOutcome,
    AttemptSpec,
    ClaudeNotFoundError,
    Liveness,
    Mode,
    ProcessManager,
    StreamEvent,
)
from resurgo.supervise._recovery import RecoveryContext, RecoveryPlan, RecoveryPlanner, RestartIntensity
from resurgo.supervise._relay import ApiFailure, ApiRelay, RelayIncident, RelayRoute
from resurgo.supervise._requests import PARTIAL_FLAG, RequestWatch, ResponseTimes, watch_args
from resurgo.supervise._session import NextRun, SessionManager

log = logging.getLogger("resurgo.supervise")
#: breaker states in which the next admission is certainly refused
_REFUSING = (CircuitState.OPEN, CircuitState.FORCED_OPEN)

DEFAULT_ENDPOINT = "https://api.anthropic.com"

#: Error types that say something about the endpoint's health (when the API reported them).
_API_TYPES = frozenset({ErrorType.RESOURCE, ErrorType.NETWORK, ErrorType.TIMEOUT, ErrorType.INTERNAL})

Emit = Callable[[SupervisorEvent], None]

#: Typed events also appended to the job's stored event stream (what ``resurgo show`` replays).
_STORED: dict[type[SupervisorEvent], str] = {
    AttemptStarted: "attempt_started",
    FailureDetected: "failure_detected",
    RecoveryPlanned: "recovery_planned",
    Waiting: "waiting",
    Restored: "restored",
}


class _TakenAway(Exception):
    """The job's stored state changed under this supervisor (``resurgo cancel`` from another process, ...).

    Raised out of the job loop so nothing more is recorded as this
    supervisor's doing: the job keeps the state someone else gave it.
    """

    def __init__(self, record: JobRecord, outcome: AttemptOutcome | None = None) -> None:
        super().__init__(f"job {record.id} is {record.state.value} elsewhere")
        self.record = record
        self.outcome = outcome


def _breaker_classifier(exc: BaseException) -> ErrorClass:
    if isinstance(exc, ApiFailure):
        return exc.error
    from resurgo.classifier import classify

    return classify(exc)


class EndpointBudget(Protocol):
    """The retry budget of one endpoint, as the orchestrator uses it (a :class:`RetryBudget` or a fleet's)."""

    def deposit(self) -> None: ...

    def try_withdraw(self, *, count_refusal: bool = True) -> bool: ...

    def wait_time(self) -> float | None:
        """Seconds until a retry would be allowed (0: now; None: not without new calls); counts nothing."""
        ...

    def record_bypass(self) -> None: ...

    def stats(self) -> Any: ...


#: Alert kind of a recovery that went ahead without retry budget (``budget_wait_max`` reached).
BUDGET_BYPASSED = "budget_bypassed"


#: ``factory(url)`` -> the retry budget shared by that endpoint's jobs, or None for the default local one.
BudgetFactory = Callable[[str], EndpointBudget | None]


@dataclass
class Endpoint:
    """What every job using one API endpoint shares."""

    url: str
    breaker: CircuitBreaker
    budget: EndpointBudget
    load: LoadTracker
    #: set (and replaced by a fresh one) on every breaker transition: wakes the jobs waiting to be admitted
    changed: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    #: with ``concurrency="auto"``: the endpoint's adaptive concurrency limit (see ``_adaptive``)
    limiter: Any = None
    #: what this endpoint's answers take: the request watch's limits (see ``_requests``)
    times: ResponseTimes = field(default_factory=ResponseTimes)
    #: the relay's retries of single requests, RPC-sized (``relay_budget_min_per_sec``), apart from ``budget``
    request_budget: Any = field(default_factory=RetryBudget)

    def wait_for_change(self) -> asyncio.Event:
        """The event the next breaker transition sets (a job waiting for admission awaits it)."""
        if self.changed is None:
            self.changed = asyncio.Event()
            self._loop = asyncio.get_running_loop()
        return self.changed

    def on_breaker_event(self, ev: object) -> None:
        """A transition (closed after a probe, half-open after the wait): let the waiting jobs try again now."""
        if not isinstance(ev, StateTransition) or self.changed is None:
            return
        old, self.changed = self.changed, None
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop:
            old.set()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(old.set)  # a distributed breaker's listener runs on another thread


class _Call:
    """One attempt seen by the endpoint's breaker: judged once, as early as possible.

    The API's first real answer (a non-synthetic assistant message) proves the
    endpoint works, so the permit is reported then -- a half-open breaker's
    probe must not wait for a twenty-minute session to end.  A failure that
    comes later in the same attempt is still recorded, with a fresh permit.
    """

    __slots__ = ("breaker", "done", "permit")

    def __init__(self, breaker: CircuitBreaker, permit: Permit) -> None:
        self.breaker = breaker
        self.permit = permit
        self.done = False

    def success(self) -> None:
        if not self.done:
            self.done = True
            self.permit.on_success()

    def failure(self, error: ErrorClass) -> None:
        if not self.done:
            self.done = True
            self.permit.on_error(ApiFailure(error))
            return
        try:
            p = self.breaker.acquire()
        except CircuitOpenError:
            return  # already open: the failure would not change anything
        p.on_error(ApiFailure(error))

    def answered(self) -> None:
        """Another request of this attempt was answered: one more successful call for the breaker.

        The breaker's failure rate is a share of *requests*: every failure is one
        request that failed, so every answered request must count as one that did
        not.  Judging an attempt once would weigh a ten-turn attempt as one success
        against each of its failed requests, and read an endpoint that answers 80 %
        of requests as failing half of them.  Not counted while the breaker is open
        or its probe slots are taken (the probe's own verdict decides then).
        """
        try:
            p = self.breaker.acquire()
        except CircuitOpenError:
            return
        p.on_success()

    def release(self) -> None:
        if not self.done:
            self.done = True
            self.permit.release()


@dataclass
class _Pending:
    """A recovery in progress: recorded when planned, completed by the next attempt."""

    rec_id: int
    strategy: str
    error: ErrorClass
    observation: Observation
    detected_at: float
    #: the fault's kind (``resurgo.store.runs.FAULT_KINDS``) and the tool calls it lost
    fault_kind: str = "other"
    lost: int = 0
    #: imposed waits (server reset, open breaker), resurgo's own back-off, waiting for retry budget
    waited_s: float = 0.0
    backoff_s: float = 0.0
    budget_s: float = 0.0
    restored: bool = False
    #: a real failure the classifier judged (not a restart after our own crash): learn from it
    learn: bool = True


@dataclass(frozen=True, slots=True)
class _Failure:
    """A failed attempt as the decision sees it: what happened, what it was, what kind of fault."""

    outcome: AttemptOutcome
    observation: Observation
    error: ErrorClass
    #: ``resurgo.store.runs.FAULT_KINDS`` and when the fault began (wall clock)
    kind: str
    at: float
    #: the attempt got further than where the previous failure left the job
    progressed: bool
    #: the API caused it (an error answer, a failed or hung request): it says something about the endpoint
    api_side: bool = True


@dataclass
class _JobRun:
    """The mutable state of one job while this supervisor runs it."""

    rec: JobRecord
    env: dict[str, str]  # the job's overrides on top of the inherited environment
    full_env: dict[str, str]  # what the CLI sees (HOME / CLAUDE_CONFIG_DIR decide where transcripts are)
    endpoint: Endpoint
    intensity: RestartIntensity
    model: str | None
    fallback_models: list[str]
    fallback_endpoints: list[str]
    attempts: int = 0
    #: the request watch's limits for this job are its endpoint's times this (doubled after each
    #: request the watch ended, back to 1 once an attempt was answered in time)
    request_scale: float = 1.0
    slept_s: float = 0.0
    forked_once: bool = False
    pending: _Pending | None = None
    attempt: Attempt | None = None
    attempt_id: int | None = None
    call: _Call | None = None
    #: the id of the last API answer seen in this attempt (an answer may come as several events)
    last_answer: object = None
    interrupted_reason: str = "cancelled"
    cancel_resumable: bool = True
    #: this supervisor moved the job to ``running`` (from then on only it moves the job, among active states)
    claimed: bool = False
    #: the stored job as someone else left it (cancelled, interrupted, claimed by another owner)
    taken: JobRecord | None = None
    #: set with ``taken``: wakes the job from its waits
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    stopper: asyncio.Task[Any] | None = None
    #: tool calls and results of the session and the running attempt (lost work, progress)
    progress: Progress = field(default_factory=Progress)
    #: the slot of the endpoint's adaptive limit this attempt holds, and what its events say
    signals: Any = None
    #: the running attempt's way through the relay (None: the CLI talks to the API itself)
    route: RelayRoute | None = None
    #: the session a standby CLI waits to resume (:meth:`Orchestrator._keep_standby`), and the
    #: relay route token it was given (the next attempt's route takes it)
    standby_sid: str | None = None
    next_token: str | None = None
    standby_task: asyncio.Future[None] | None = None


class Orchestrator:
    """Runs jobs to their end through failures; one per supervisor, shared by all its jobs."""

    def __init__(
        self,
        *,
        config: SupervisorConfig,
        jobs: JobStore,
        manager: ProcessManager,
        sessions: SessionManager,
        planner: RecoveryPlanner,
        classifier: Classifier,
        alerts: AlertManager,
        emit: Emit,
        cleaner: ResourceCleaner | None = None,
        clock: Clock = SYSTEM_CLOCK,
        environ: Mapping[str, str] | None = None,
        budget_factory: BudgetFactory | None = None,
        limiter_factory: Callable[[str], Any] | None = None,
    ) -> None:
        self.config = config
        #: ``factory(url)`` -> the adaptive limiter of that endpoint (e.g. one a fleet shares), or None
        self.limiter_factory = limiter_factory
        self.jobs = jobs
        self.manager = manager
        self.sessions = sessions
        self.planner = planner
        self.classifier = classifier
        self.alerts = alerts
        self.emit = emit
        self.cleaner = cleaner
        self.clock = clock
        self.environ = dict(os.environ if environ is None else environ)
        self.endpoints: dict[str, Endpoint] = {}
        self.budget_factory = budget_factory
        self._runs: dict[str, _JobRun] = {}
        self._backoff = AdaptiveBackoff(max_delay=config.backoff_cap, jitter=False)
        #: seconds from starting the CLI to its first event (EWMA of what this supervisor saw); the part
        #: of resurgo's own back-off that overlaps with it (0 until measured)
        self._start_estimate = 0.0
        self._start_ewma: float | None = None
        #: when this supervisor last resumed a session (monotonic): standbys are kept for a while after
        self._resumed_at: float | None = None
        #: the back-off grows only while attempts fail without progress (False: the old exponential rule)
        self.progress_aware = True
        self.has_subscribers: Callable[[str], bool] = lambda job_id: True
        self.relay: ApiRelay | None = None
        if config.relay:
            # Finagle's way: a request that failed is asked again almost at once, and the retry budget
            # (not the back-off) bounds the extra load; the breaker stops it when the API is down
            # (an overload answer without a reset time backs off like a recovery: the API asks for less)
            self.relay = ApiRelay(_RelaySink(self), backoff_base=min(config.backoff_base, 0.05),
                                  backoff_cap=min(config.backoff_cap, 1.0),
                                  overload_backoff=(config.backoff_base, config.backoff_cap),
                                  max_tries=config.relay_max_tries, clock=clock, hedge=config.relay_hedge)

    async def close_relay(self) -> None:
        if self.relay is not None:
            await self.relay.stop()
        self.save_times(every=1)

    # -- the stored state may change under us -------------------------------------------------------
    def _stored_change(self, run: _JobRun) -> JobRecord | None:
        """The stored job when someone else changed it since this supervisor claimed it, else None.

        Once claimed, a job this supervisor runs stays in an active state owned
        by it until it ends; anything else (``resurgo cancel`` marked it
        cancelled, another supervisor's ``cancel()`` marked it interrupted,
        another owner claimed it) means it is no longer ours to run.
        """
        if run.taken is not None:
            return run.taken
        if not run.claimed:
            return None
        rec = self.jobs.get(run.rec.id)
        if rec is None:
            return None
        if rec.state in ACTIVE_STATES and rec.owner in (None, self.jobs.owner):
            return None
        return rec

    def _take_away(self, run: _JobRun, rec: JobRecord) -> None:
        """Note the change, wake the job's waits and end its running attempt (as the user's doing)."""
        if run.taken is not None:
            return
        run.taken = rec
        run.stop.set()
        log.info("job %s became %s outside this supervisor; stopping it", rec.id, rec.state.value)
        a = run.attempt
        if a is not None and run.stopper is None:
            run.stopper = asyncio.ensure_future(a.stop("user", _taken_reason(rec)))

    def _check(self, run: _JobRun) -> None:
        rec = self._stored_change(run)
        if rec is not None:
            self._take_away(run, rec)
            raise _TakenAway(rec)

    def _set(self, run: _JobRun, state: JobState, *, reason: str | None = None, **kw: Any) -> None:
        """Move the job, unless someone else moved it first (compare-and-set; then :class:`_TakenAway`)."""
        expect = ACTIVE_STATES if run.claimed else ACTIVE_STATES | {JobState.PENDING, JobState.INTERRUPTED}
        if not self.jobs.set_state(run.rec.id, state, reason=reason, expect=expect, **kw):
            rec = self.jobs.require(run.rec.id)
            self._take_away(run, rec)
            raise _TakenAway(rec)

    def check_stored(self) -> list[str]:
        """Compare every running job with the store now; stop the ones changed elsewhere.

        Returns their ids.  :class:`~resurgo.supervise.Supervisor` calls this
        every ``state_check_interval`` seconds, so a ``resurgo cancel`` from
        another shell ends the attempt's process group within about that time,
        and a job waiting out a backoff or a quota stops waiting.
        """
        changed: list[str] = []
        for run in list(self._runs.values()):
            if run.taken is not None:
                continue
            try:
                rec = self._stored_change(run)
            except Exception:
                log.exception("could not read the stored state of job %s", run.rec.id)
                continue
            if rec is not None:
                self._take_away(run, rec)
                changed.append(rec.id)
        return changed

    async def watch_store(self, interval: float) -> None:
        """Run :meth:`check_stored` every ``interval`` seconds (until cancelled)."""
        while True:
            await self.clock.asleep(interval)
            self.check_stored()

    async def _sleep(self, run: _JobRun, seconds: float, *, wake: asyncio.Event | None = None) -> None:
        """Sleep, unless the job is taken away meanwhile (then :class:`_TakenAway` at once) or ``wake`` is set."""
        if run.taken is None:
            tasks = {asyncio.ensure_future(self.clock.asleep(seconds)), asyncio.ensure_future(run.stop.wait())}
            if wake is not None:
                tasks.add(asyncio.ensure_future(wake.wait()))
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        if run.taken is not None:
            raise _TakenAway(run.taken)

    # -- endpoints --------------------------------------------------------------------------------
    def endpoint(self, url: str) -> Endpoint:
        """The shared breaker/budget/load of ``url``; created on first use, its transitions persisted."""
        ep = self.endpoints.get(url)
        if ep is None:
            br = CircuitBreaker(
                f"endpoint:{endpoint_name(url)}",  # names reach the store and metrics: no credentials
                thresholds=self.config.breaker,
                clock=self.clock,
                classifier=_breaker_classifier,
            )
            br.add_listener(self._on_breaker_event)
            budget = self.budget_factory(url) if self.budget_factory is not None else None
            if budget is None:
                budget = RetryBudget(
                    ratio=self.config.retry_budget_ratio,
                    min_retries_per_sec=self.config.retry_budget_min_per_sec,
                    ttl=10.0,
                    clock=self.clock,
                )
            ep = Endpoint(
                url=url, breaker=br, budget=budget, load=LoadTracker(clock=self.clock),
                times=ResponseTimes(factor=self.config.request_timeout_factor, floor=self.config.request_timeout_floor),
                request_budget=RetryBudget(
                    ratio=self.config.retry_budget_ratio,
                    min_retries_per_sec=self.config.relay_budget_min_per_sec,
                    ttl=10.0,
                    clock=self.clock,
                ),
            )
            br.add_listener(ep.on_breaker_event)
            self._restore_open(br)
            self._restore_times(ep)
            if self.config.adaptive:
                from resurgo.supervise import _adaptive

                ep.limiter = _adaptive.endpoint_limiter(self, url)
            self.endpoints[url] = ep
        return ep

    def _restore_open(self, br: CircuitBreaker) -> None:
        """Reopen ``br`` if the store says it was open and its wait has not run out.

        A supervisor killed while the endpoint's breaker was open must not come
        back with a closed one and send every job at a failing API; the restarted
        one (or another supervisor on the same store) waits out the rest.  Only a
        timed opening is restored: a forced open (bad credentials) is for an
        operator or a health probe to lift, and a restart is often that fix.
        """
        try:
            last = self.jobs.runs.last_breaker_transition(br.name)
        except Exception:
            log.exception("could not read the last state of breaker %s", br.name)
            return
        if last is None or last["to_state"] != "open":
            return
        wait = last["metrics"].get("open_for")
        if not isinstance(wait, int | float) or isinstance(wait, bool):
            return
        left = float(last["ts"]) + float(wait) - self.clock.time()
        th = self.config.breaker
        caps = [c for c in (th.max_wait_in_open, th.max_retry_after, th.wait_in_open) if c is not None]
        if 0.0 < left <= max(caps, default=math.inf):  # a usage-limit reset included; never beyond the limits
            br.open(wait=left, reason=f"restored: open when the last supervisor stopped ({left:.3g} s left)")

    def _restore_times(self, ep: Endpoint) -> None:
        """Start ``ep``'s request watch from the answer times stored by the last supervisor on it.

        Only recent ones (``_TIMES_MAX_AGE``): a watch limit is ``factor`` times the
        slowest recent answer, and yesterday's answers say little about today's
        prompts; a job slower than them still gets more time on every retry (its
        own scale doubles).
        """
        try:
            got = self.jobs.runs.endpoint_times(ep.breaker.name)
        except Exception:
            log.exception("could not read the stored answer times of %s", ep.breaker.name)
            return
        if got is not None and self.clock.time() - got[0] <= _TIMES_MAX_AGE:
            ep.times.preload(got[1], got[2])

    def save_times(self, *, every: int = 20) -> None:
        """Store each endpoint's recent answer times once ``every`` new ones came in (see ``_restore_times``).

        Called when an attempt ends and when the supervisor closes: a killed
        supervisor loses at most the answers since the last save.
        """
        for ep in self.endpoints.values():
            if ep.times.added < every:
                continue
            first, gap = ep.times.samples()
            try:
                self.jobs.runs.save_endpoint_times(ep.breaker.name, ts=self.clock.time(), first=first, gap=gap)
            except Exception:
                log.exception("could not store the answer times of %s", ep.breaker.name)
                continue
            ep.times.added = 0

    def running_endpoints(self) -> dict[str, Endpoint]:
        """The endpoint each job running in this orchestrator uses now (by job id)."""
        return {jid: run.endpoint for jid, run in self._runs.items()}

    def _on_breaker_event(self, ev: object) -> None:
        if not isinstance(ev, StateTransition):
            return
        frm, to = ev.from_state.value, ev.to_state.value
        try:
            self.jobs.runs.insert_breaker_transition(
                breaker=ev.breaker,
                ts=ev.at,
                from_state=frm,
                to_state=to,
                reason=redact_text(ev.reason),
                metrics_json=_json({**ev.metrics.to_dict(), "open_for": ev.open_for}),
            )
        except Exception:
            log.exception("could not store breaker transition %s -> %s", frm, to)
        self.emit(
            BreakerStateChanged(job_id="", ts=ev.at, breaker=ev.breaker, from_state=frm, to_state=to, reason=ev.reason)
        )
        if to in ("open", "forced_open"):
            self.alerts.alert(
                BREAKER_OPEN,
                ev.breaker,
                f"circuit breaker {ev.breaker} opened: {ev.reason}",
                details={"from": frm, "to": to, "open_for_s": ev.open_for},
            )

    def _note(self, ev: SupervisorEvent) -> None:
        """Emit a recovery-relevant event and keep it in the job's stored stream (``source='supervisor'``)."""
        self.emit(ev)
        name = _STORED.get(type(ev))
        if name is None or not ev.job_id:
            return
        data: dict[str, Any] = {}
        for f in fields(ev):
            if f.name == "job_id":
                continue
            v = getattr(ev, f.name)
            data[f.name] = v.to_dict() if isinstance(v, ErrorClass) else v
        try:
            self.jobs.append_supervisor_event(ev.job_id, name, data)
        except Exception:
            log.exception("could not store supervisor event %s of job %s", name, ev.job_id)

    def endpoint_url(self, env: Mapping[str, str]) -> str:
        """The endpoint a job shares its breaker and budget with.

        ``RESURGO_ENDPOINT`` names it when jobs reach one API by different base
        URLs (the chaos run gives each job its own route through the fault proxy,
        yet all of them hit one API whose overload one breaker must see).
        """
        return env.get("RESURGO_ENDPOINT") or env.get("ANTHROPIC_BASE_URL") or DEFAULT_ENDPOINT

    # -- the job loop -----------------------------------------------------------------------------
    def _job_env(self, rec: JobRecord) -> dict[str, str]:
        env = dict(self.config.env)
        env.update(self.jobs.env_for(rec.id, environ=self.environ))
        if self.config.cli_max_retries is not None:
            env["CLAUDE_CODE_MAX_RETRIES"] = str(self.config.cli_max_retries)
        return env

    def _liveness(self, run: _JobRun | None = None, *, watch: bool = True) -> Liveness:
        c = self.config
        w = None
        if run is not None and c.request_watch and watch:
            w = RequestWatch(run.endpoint.times, scale=run.request_scale)
        return Liveness(
            stall_timeout=c.stall_timeout,
            deadline=c.deadline,
            exit_after_result=c.result_exit_timeout,
            grace=c.kill_grace,
            tick=min(0.25, (c.stall_timeout or 1.0) / 8, c.request_timeout_floor / 4 if w else 1.0),
            request=w,
        )

    def request_cancel(self, job_id: str, *, resumable: bool, reason: str) -> None:
        run = self._runs.get(job_id)
        if run is not None:
            run.cancel_resumable = resumable
            run.interrupted_reason = reason

    async def run_job(self, job_id: str, *, reason: str | None = None) -> JobResult:
        """Run (or continue) ``job_id`` until it succeeds, fails for good, or is cancelled.

        A job that already ran attempts (interrupted, or explicitly resumed)
        continues its session when a transcript exists.  Cancelling the task
        ends the attempt's process group and leaves the job ``interrupted``
        (resumable); the ``CancelledError`` propagates.
        """
        rec = self.jobs.require(job_id)
        if rec.state.terminal:
            return JobResult.from_record(rec)
        if job_id in self._runs:
            raise JobStoreError(f"job {job_id} is already running in this supervisor")
        env = self._job_env(rec)
        full_env = {**self.environ, **env}
        url = self.endpoint_url(full_env)
        run = _JobRun(
            rec=rec,
            env=env,
            full_env=full_env,
            endpoint=self.endpoint(url),
            intensity=RestartIntensity(
                max_restarts=self.config.max_recoveries,
                period=self.config.recovery_period,
                backoff_base=self.config.backoff_base,
                backoff_cap=self.config.backoff_cap,
                clock=self.clock,
                progress_aware=self.progress_aware,
            ),
            model=rec.model,
            fallback_models=list(self.config.fallback_models),
            fallback_endpoints=[e for e in self.config.fallback_endpoints if e != url],
        )
        self._runs[job_id] = run
        try:
            return await self._run(run, reason)
        except _TakenAway as t:
            return await self._ended_elsewhere(run, t)
        except asyncio.CancelledError:
            await self._interrupted(run)
            raise
        except ClaudeNotFoundError as e:  # a configuration problem: say so, do not retry
            err = ErrorClass(
                ErrorType.PROCESS, Severity.CRITICAL, "binary_missing", str(e), False, strategy=Strategy.ABORT
            )
            if run.attempt_id is not None:
                self.store_attempt_error(run.attempt_id, err)
            self.jobs.finish_job(job_id, JobState.FAILED, error=err, reason=str(e))
            self._retries_row(run, succeeded=False, give_up=str(e))
            return self._result(job_id)
        except Exception as e:  # a bug of ours: never lose the job, leave it resumable
            log.exception("internal error while running job %s", job_id)
            await self._stop_attempt(run, "user", f"resurgo internal error: {e}")
            with contextlib.suppress(Exception):
                self.jobs.set_state(
                    job_id,
                    JobState.INTERRUPTED,
                    reason=f"resurgo internal error: {e!r}",
                    expect=ACTIVE_STATES | {JobState.PENDING, JobState.INTERRUPTED},
                )
            res = JobResult.from_record(self.jobs.require(job_id), internal=True)
            self.emit(JobFinished(job_id=job_id, ts=self.clock.time(), result=res))
            return res
        finally:
            self._give_slot(run)
            self._runs.pop(job_id, None)
            if run.standby_task is not None:
                run.standby_task.cancel()
            if run.standby_sid is not None:
                self.manager.discard_standby(run.standby_sid)

    async def _run(self, run: _JobRun, reason: str | None) -> JobResult:
        """The seed's flow, one failure per turn: act -> monitor -> detect -> classify -> decide -> wait.

        Each step is one method below; a step that ends the job returns its
        result (or raises :class:`_TakenAway` / ``CancelledError``, handled by
        :meth:`run_job`).
        """
        nxt = self._begin(run, reason)
        while True:
            outcome = await self._act(run, nxt)  # breaker admission, then the CLI, monitored to its end
            if self._detect(run, outcome):  # succeeded (a cancel raises)
                return self._succeeded(run, outcome)
            failure = self._classify_failure(run, outcome)  # classified, recorded, reported to the breaker
            plan = self._decide(run, failure)  # a strategy and its wait, or give up
            if plan.give_up:
                return self._failed(run, failure.error, plan, outcome)
            await self._wait(run, failure, plan)  # retry budget, back-off or imposed wait, clean-up
            nxt = self._next_run(run, plan, outcome)  # resume, fork or start over; failover applied

    # -- the steps ------------------------------------------------------------------------------------
    def _begin(self, run: _JobRun, reason: str | None) -> NextRun:
        """The first run of this supervisor: a fresh start, or the continuation of an interrupted job."""
        nxt = self._first_run(run, reason)
        if run.rec.attempts == 0 and self.relay is None:
            run.endpoint.budget.deposit()  # a first call earns retry budget; recoveries spend it (the relay
            # deposits for every request it forwards)
        return nxt

    async def _act(self, run: _JobRun, nxt: NextRun) -> AttemptOutcome:
        """Wait for the endpoint's breaker to admit the call, run one attempt, and check the job is still ours."""
        await self._take_slot(run)  # adaptive concurrency: a slot of the endpoint's limit (else nothing)
        run.call = await self._admit(run, relayed=self._will_relay(run, nxt.session_id))
        run.last_answer = None
        outcome = await self._attempt(run, nxt)
        taken = self._stored_change(run)  # cancelled from another shell: neither success nor failure
        if taken is not None:
            self._take_away(run, taken)
            raise _TakenAway(taken, outcome)
        return outcome

    def _detect(self, run: _JobRun, outcome: AttemptOutcome) -> bool:
        """True when the attempt succeeded; a cancelled attempt raises; False: a failure to recover from."""
        if outcome.succeeded or outcome.cancelled:
            self._give_slot(run, outcome)
        if outcome.succeeded:
            self._finish_attempt_row(run, outcome)
            if run.call is not None:
                run.call.success()
            run.endpoint.load.record(False)
            return True
        if outcome.cancelled:
            self._finish_attempt_row(run, outcome)
            run.attempt_id = None
            if run.call is not None:
                run.call.release()
            raise asyncio.CancelledError  # handled by run_job: the job becomes interrupted
        return False

    def _classify_failure(self, run: _JobRun, outcome: AttemptOutcome) -> _Failure:
        """Classify the failed attempt, record it, and tell the breaker when the API caused it."""
        jid = run.rec.id
        obs = outcome.to_observation()
        err = self._classify(obs, outcome, jid)
        self._give_slot(run, outcome, err)
        self._finish_attempt_row(run, outcome, err)
        self._record_error(jid, err, obs)
        api_side = self._api_side(err, outcome)
        relayed = run.route is not None and run.route.last_failed
        if relayed and run.call is not None:
            # the relay reported every failed try of the request that ended this attempt already
            run.call.release()
        elif run.call is not None:
            if api_side and run.call.done:
                # The request that failed came after an answer in this attempt: an original
                # request, not the retry the attempt began with, and every original request
                # earns budget whatever its outcome (Finagle deposits per request sent).  The
                # first request of a first attempt was deposited when the job began.
                run.endpoint.budget.deposit()
            if api_side:
                run.call.failure(err)
            else:
                run.call.release()
        if api_side:
            run.endpoint.load.record(True)
        self._close_pending(run, succeeded=False)
        self._note(FailureDetected(job_id=jid, ts=outcome.ended_at, error=err, attempt=run.attempts))
        kind = fault_kind(err, outcome)
        return _Failure(
            outcome=outcome,
            observation=obs,
            error=err,
            kind=kind,
            at=min(fault_at(kind, outcome), outcome.ended_at),
            progressed=run.progress.progressed,
            api_side=api_side,
        )

    def _decide(self, run: _JobRun, f: _Failure) -> RecoveryPlan:
        """Choose the strategy (and its wait); record the recovery unless the job gives up."""
        jid = run.rec.id
        outcome = f.outcome
        sf = self.sessions.session_failure(outcome) if outcome.mode != "start" else None
        # a transcript the CLI could not find ("No conversation found") is as good as none
        has_tx = sf != "not_found" and self.sessions.has_transcript(outcome.session_id, run.rec.cwd, env=run.full_env)
        ctx = RecoveryContext(
            job_id=jid,
            error=f.error,
            observation=f.observation,
            session_id=outcome.session_id,
            has_transcript=has_tx,
            resume_failed=sf is not None,
            forked_once=run.forked_once,
            fallback_models=tuple(run.fallback_models),
            fallback_endpoints=tuple(run.fallback_endpoints),
            local_resource=_local_resource(f.error, outcome),
            fault_kind=f.kind,
            progressed=f.progressed,
        )
        plan = self.planner.choose(ctx, run.intensity)
        self._note(
            RecoveryPlanned(
                job_id=jid,
                ts=self.clock.time(),
                strategy=plan.strategy.value,
                action=plan.action,
                reason=plan.reason,
                wait_s=plan.wait_s,
                server_wait=plan.server_wait,
            )
        )
        if plan.give_up:
            return plan
        if not plan.server_wait:
            run.intensity.record(fault_kind=f.kind, progressed=f.progressed)
        # the recovery is detected now; the next attempt's first event restores it
        lost = run.progress.lost_if(restart=plan.action == "start")
        rec_id = self.jobs.record_recovery(
            jid,
            strategy=plan.strategy.value,
            attempt_id=run.attempt_id,
            error_type=f.error.type.value if f.error.type else None,
            signature=_signature(self.classifier, f.observation),
            reason=plan.reason,
            detected_at=outcome.ended_at,
            fault_kind=f.kind,
            fault_at=f.at,
            lost_tools=lost,
        )
        run.pending = _Pending(
            rec_id, plan.strategy.value, f.error, f.observation, outcome.ended_at, fault_kind=f.kind, lost=lost
        )
        self._set(run, JobState.RECOVERING, reason=plan.reason)
        return plan

    async def _wait(self, run: _JobRun, f: _Failure, plan: RecoveryPlan) -> None:
        """Everything between deciding and acting: retry budget, back-off or imposed wait, clean-up.

        The imposed part (a server's reset or retry-after) is waited in full.
        resurgo's own back-off overlaps with the CLI's start-up: the CLI sends
        its first request only after its ``init`` event, so the back-off that
        the API sees is kept while the job stands still for less.
        """
        refused = run.endpoint.breaker.state in _REFUSING
        if refused:
            # the endpoint's breaker is open: ask it first, so this job is refused (and waits for the
            # breaker) the moment it failed, instead of after spending retry budget and sleeping
            # a server's wait with the breaker's refusal still ahead of it
            await self._admission(run, keep=False, relayed=self._will_relay(run, None))
        if f.api_side and not refused:
            # the budget limits retries *caused by the endpoint's failures* (Finagle's retry budget, gRPC's
            # retry throttling): they are what multiplies load on a struggling API.  A CLI killed from
            # outside or a crashed process says nothing about the endpoint and is not held back by it.
            # Nor is a job the open breaker already held back: the breaker let it go because its probe
            # got answers again, and the budget, drained by the outage, would only add a blind wait.
            await self._spend_budget(run)
        wait = plan.wait_s
        if wait > 0 and not plan.server_wait:
            wait = max(wait, self._backoff.adjust_for_load(wait, run.endpoint.load.load()))
        imposed = wait if plan.server_wait else min(wait, float(f.error.retry_after or 0.0))
        own = max(0.0, wait - imposed)
        if own > 0 and (refused or run.endpoint.breaker.state in _REFUSING):
            # the endpoint's breaker is (or was, and has just been waited for) open: its wait is the
            # back-off, and our own is not stacked on top of it
            own = 0.0
        if own > 0:
            own = max(0.0, own - self._start_estimate)
        if imposed + own > 0:
            slept = await self._sleep_waiting(run, imposed + own, plan.reason)
            assert run.pending is not None
            run.pending.waited_s += min(slept, imposed)
            run.pending.backoff_s += max(0.0, slept - imposed)
        if plan.cleanup and self.cleaner is not None:
            try:
                await self.cleaner.sweep()
            except Exception:
                log.exception("cleanup before recovering job %s failed", run.rec.id)

    # -- steps --------------------------------------------------------------------------------------
    def _first_run(self, run: _JobRun, reason: str | None) -> NextRun:
        rec = run.rec
        if rec.attempts == 0:
            return NextRun("start", rec.session_id or str(uuid.uuid4()), rec.prompt, "first attempt")
        why = reason or rec.reason or "the supervisor was interrupted"
        nxt = self.sessions.plan(
            prompt=rec.prompt, cwd=rec.cwd, env=run.full_env, session_id=rec.session_id, reason=why
        )
        assert nxt is not None  # without a failed attempt to inspect, plan() always has an answer
        strategy = Strategy.RESUME_SESSION if nxt.mode == "resume" else Strategy.RESTART_PROCESS
        now = self.clock.time()
        lost = self._lost_by_last_attempt(run, restart=nxt.mode == "start")
        rec_id = self.jobs.record_recovery(
            rec.id,
            strategy=strategy.value,
            error_type=ErrorType.PROCESS.value,
            reason=f"{why}; {nxt.reason}",
            detected_at=now,
            fault_kind="supervisor",
            lost_tools=lost,
        )
        err = ErrorClass(
            type=ErrorType.PROCESS,
            severity=None,
            category="interrupted",
            description=why,
            retryable=True,
            strategy=strategy,
        )
        run.pending = _Pending(
            rec_id, strategy.value, err, Observation(message=why), now, fault_kind="supervisor", lost=lost, learn=False
        )
        return nxt

    def _lost_by_last_attempt(self, run: _JobRun, *, restart: bool) -> int:
        """Tool calls the previous supervisor's last attempt left in flight (from its stored events)."""
        try:
            atts = self.jobs.attempts(run.rec.id)
            if atts:
                run.progress.replay(self.jobs.runs.attempt_events(atts[-1].id))
        except Exception:
            log.exception("could not read the last attempt of job %s", run.rec.id)
        return run.progress.lost_if(restart=restart)

    def _next_run(self, run: _JobRun, plan: RecoveryPlan, outcome: AttemptOutcome) -> NextRun:
        """Apply the plan's failover (model, endpoint) and say how the next attempt runs."""
        if plan.model:
            run.model = plan.model
            with contextlib.suppress(ValueError):
                run.fallback_models.remove(plan.model)
        if plan.endpoint:
            run.env["ANTHROPIC_BASE_URL"] = plan.endpoint
            run.full_env["ANTHROPIC_BASE_URL"] = plan.endpoint
            run.endpoint = self.endpoint(plan.endpoint)
            with contextlib.suppress(ValueError):
                run.fallback_endpoints.remove(plan.endpoint)
        if plan.strategy is Strategy.FORK_SESSION:
            run.forked_once = True
        rec = run.rec
        sid = outcome.session_id or run.rec.session_id
        why = plan.reason
        if plan.action in ("resume", "fork") and sid:
            mode: Mode = plan.action
            err = run.pending.error if run.pending is not None else None
            return NextRun(mode, sid, self.sessions.continuation_prompt(_short(outcome), error=err), why)
        return NextRun("start", str(uuid.uuid4()), rec.prompt, why)

    async def _admit(self, run: _JobRun, *, relayed: bool = False) -> _Call | None:
        """A breaker permit for the next attempt; waits (state ``waiting``) while the breaker is open.

        ``relayed``: None, once the CLI may start (see :meth:`_admission`).
        """
        call = await self._admission(run, relayed=relayed)
        assert call is not None or relayed
        return call

    async def _admission(self, run: _JobRun, *, keep: bool = True, relayed: bool = False) -> _Call | None:
        """Ask the endpoint's breaker; while it refuses, wait (state ``waiting``) for it to change.

        ``keep=False``: only wait until the breaker would admit the job, and give
        the permit back (a job that still has a server's wait or retry budget to
        wait for must not hold a half-open breaker's only probe meanwhile).

        ``relayed``: the attempt's requests go through the relay, which asks the
        breaker for each of them; the job takes no permit and waits only until
        the open wait has less left than the CLI takes to start (its learned
        start-up time), so the CLI starts while the circuit is still open and
        its first request reaches the relay as the breaker lets calls through.
        A half-open breaker does not hold it at all: its probes are requests the
        relay already holds, answered in milliseconds.  Taking a probe here (as
        without the relay) made the probe a CLI still starting: in chaos runs
        the breaker stayed half-open 1.2 s after a storm, and the jobs that had
        no probe waited for it to close and only then started their CLI (1.4 s
        of every such job standing still after the storm had ended).
        """
        br = run.endpoint.breaker
        if relayed:
            await self._relayed_admission(run)
            return None
        announced = False
        t0 = self.clock.monotonic()
        while True:
            try:
                permit = br.acquire()
            except CircuitOpenError as e:
                ra = e.retry_after
                # open: sleep until it may half-open (then this job's acquire makes it half-open and takes the
                # probe at once); half-open and full: until the probe's verdict (any transition wakes us
                # at once; the poll is a safety net)
                delay = min(max(ra, 0.005), 5.0) if ra else 0.25
                announced = self._announce_refusal(run, announced, e.state.value, ra)
                await self._sleep(run, delay, wake=run.endpoint.wait_for_change())
                continue
            self._waited_for_breaker(run, announced, t0)
            if not keep:
                permit.release()
                return None
            return _Call(br, permit)

    async def _relayed_admission(self, run: _JobRun) -> None:
        """Wait while the circuit stays open longer than the CLI takes to start (see :meth:`_admission`)."""
        br = run.endpoint.breaker
        announced = False
        t0 = self.clock.monotonic()
        while True:
            lead = self._start_ewma or 0.0
            if br.state not in _REFUSING:
                break
            ra = br.retry_after
            if ra is not None and ra <= lead:
                break
            wake = run.endpoint.wait_for_change()
            announced = self._announce_refusal(run, announced, br.state.value, ra)
            await self._sleep(run, min(max(ra - lead, 0.005), 5.0) if ra is not None else 0.25, wake=wake)
        self._waited_for_breaker(run, announced, t0)

    def _announce_refusal(self, run: _JobRun, announced: bool, state: str, ra: float | None) -> bool:
        """The job waits for the breaker: say so once per wait (state ``waiting`` and a ``Waiting`` event)."""
        if not announced:
            br = run.endpoint.breaker
            self._set(run, JobState.WAITING, reason=f"circuit breaker of {run.endpoint.url} is {state}")
            now = self.clock.time()
            self._note(
                Waiting(job_id=run.rec.id, ts=now, until_ts=now + ra if ra else None,
                        reason=f"breaker {br.name} is {state}")
            )
        return True

    def _waited_for_breaker(self, run: _JobRun, announced: bool, t0: float) -> None:
        if announced:
            waited = self.clock.monotonic() - t0
            run.slept_s += waited
            if run.pending is not None:
                run.pending.waited_s += waited  # imposed by the endpoint's condition, not by us

    async def _take_slot(self, run: _JobRun) -> None:
        limiter = run.endpoint.limiter
        if limiter is not None and run.signals is None:
            from resurgo.supervise import _adaptive

            run.signals = await _adaptive.take_slot(limiter)

    def _give_slot(self, run: _JobRun, outcome: AttemptOutcome | None = None, err: ErrorClass | None = None) -> None:
        sig, run.signals = run.signals, None
        if sig is not None:
            sig.finish(
                succeeded=outcome is not None and outcome.succeeded,
                cancelled=outcome is None or outcome.cancelled,
                error=err,
            )

    async def _spend_budget(self, run: _JobRun) -> None:
        """Take one retry from the endpoint's shared budget; when it is empty, wait for it.

        The wait asks the budget when a token will free up (``wait_time``, which
        counts nothing), so a recovery that had to wait is one refusal in the
        budget's stats, however long it waited.  After ``budget_wait_max`` seconds
        (never, when it is None) the recovery goes ahead without a token, and says
        so: a ``BudgetBypassed`` event, a ``budget_bypassed`` alert and the
        budget's ``bypassed`` counter.
        """
        ep = run.endpoint
        if ep.budget.try_withdraw():  # a refusal here is this recovery's one refusal
            return
        t0 = self.clock.monotonic()
        try:
            await self._wait_for_budget(run)
        finally:
            if run.pending is not None:
                run.pending.budget_s += max(0.0, self.clock.monotonic() - t0)

    async def _wait_for_budget(self, run: _JobRun) -> None:
        ep = run.endpoint
        self.alerts.alert(
            BUDGET_EXHAUSTED,
            ep.url,
            f"retry budget of {ep.url} exhausted: recoveries are being slowed down",
            details={"job_id": run.rec.id, "stats": ep.budget.stats().__repr__()},
        )
        self._note(
            Waiting(
                job_id=run.rec.id, ts=self.clock.time(), until_ts=None, reason=f"retry budget of {ep.url} exhausted"
            )
        )
        self._set(run, JobState.WAITING, reason=f"retry budget of {ep.url} exhausted")
        limit = self.config.budget_wait_max
        t0 = self.clock.monotonic()
        try:
            while True:
                wt = ep.budget.wait_time()
                if wt == 0.0 and ep.budget.try_withdraw(count_refusal=False):
                    return
                waited = self.clock.monotonic() - t0
                if limit is not None and waited >= limit:
                    break
                # Sleep until the budget says a token frees up, but look again at least every
                # second: other jobs' first attempts deposit meanwhile and shorten the wait.
                delay = 1.0 if wt is None else min(max(wt, 0.05), 1.0)
                if limit is not None:
                    delay = min(delay, limit - waited)
                await self._sleep(run, delay)
        finally:
            run.slept_s += self.clock.monotonic() - t0
        waited = self.clock.monotonic() - t0
        ep.budget.record_bypass()
        why = f"retry budget of {ep.url} still empty after {waited:.0f} s (budget_wait_max); recovering anyway"
        log.warning("job %s: %s", run.rec.id, why)
        self._note(
            BudgetBypassed(job_id=run.rec.id, ts=self.clock.time(), endpoint=ep.url, waited_s=waited, reason=why)
        )
        self.alerts.alert(
            BUDGET_BYPASSED,
            ep.url,
            why,
            details={"job_id": run.rec.id, "waited_s": waited, "stats": ep.budget.stats().__repr__()},
        )

    async def _sleep_waiting(self, run: _JobRun, seconds: float, why: str) -> float:
        """Wait ``seconds`` in state ``waiting``; returns the time actually waited."""
        now = self.clock.time()
        self._set(run, JobState.WAITING, reason=why)
        self._note(Waiting(job_id=run.rec.id, ts=now, until_ts=now + seconds, reason=why))
        t0 = self.clock.monotonic()
        slept = 0.0
        try:
            await self._sleep(run, seconds)
        finally:
            slept = min(seconds, max(0.0, self.clock.monotonic() - t0))
            run.slept_s += slept
        return slept

    async def _attempt(self, run: _JobRun, nxt: NextRun) -> AttemptOutcome:
        rec = run.rec
        jid = rec.id
        run.attempts += 1
        n = rec.attempts + run.attempts
        kind = nxt.mode if nxt.mode != "start" else ("start" if n == 1 else "restart")
        asked_partial = PARTIAL_FLAG in (*self.config.claude_args, *rec.args)
        upstream = self._relay_upstream(run)
        has_pre = getattr(self.manager, "has_prestarted", None)
        if upstream is not None and nxt.session_id is not None and has_pre is not None and has_pre(nxt.session_id):
            upstream = None  # ``resurgo run`` started this CLI before the relay existed: it talks to the API
        if upstream is not None:
            assert self.relay is not None
            await self.relay.start()
        spec = self._spec(run, nxt, relayed=upstream is not None)
        token, run.next_token = run.next_token, None  # the route a standby for this attempt was given
        if run.standby_sid is not None and (nxt.mode != "resume" or nxt.session_id != run.standby_sid):
            self.manager.discard_standby(run.standby_sid)  # a restart or a fork: the standby cannot serve it
        run.standby_sid = None
        if nxt.mode == "resume":
            self._resumed_at = self.clock.monotonic()
        self._check(run)  # before a recovery starts: a job cancelled while it waited stays cancelled
        self._set(run, JobState.RUNNING, claim=True, session_id=spec.expected_session_id)
        run.claimed = True
        run.attempt_id = self.jobs.begin_attempt(jid, kind=kind, session_id=spec.expected_session_id)
        spec = replace(spec, attempt_id=run.attempt_id)
        if upstream is not None:
            assert self.relay is not None
            run.route = self.relay.register(
                upstream, run.endpoint, job_id=jid, attempt_id=run.attempt_id, hold=not asked_partial, token=token,
                watch=self.config.request_watch, retry_overload=run.endpoint.limiter is None,
                scale=run.request_scale, max_wait=self._relay_max_wait(), answer_timeout=self._api_timeout(run),
            )
            spec = self._via_relay(spec, run, run.route.token)
            if run.call is not None:
                # the relay asks the breaker for every request (a half-open breaker's probe is the
                # first one); the admission only held the job back while the circuit was open
                run.call.release()
        self._note(
            AttemptStarted(job_id=jid, ts=self.clock.time(), n=n, kind=kind, session_id=spec.expected_session_id)
        )
        p = run.pending
        if p is not None:
            self.jobs.update_recovery(
                p.rec_id, started_at=self.clock.time(), waited_s=p.waited_s, backoff_s=p.backoff_s, budget_s=p.budget_s
            )
        run.progress.begin(lost=p.lost if p is not None else 0, fresh_session=nxt.mode == "start")
        try:
            run.attempt = await self.manager.start(spec, on_event=self._event_handler(run))
        except RuntimeError as e:  # the manager is shutting down
            self._end_route(run)
            raise asyncio.CancelledError from e
        if run.taken is not None and run.stopper is None:  # taken away while the process started
            run.stopper = asyncio.ensure_future(run.attempt.stop("user", _taken_reason(run.taken)))
        try:
            outcome = await run.attempt.wait()  # on cancellation run.attempt stays set for _interrupted()
        finally:
            route = self._end_route(run)
        mon = getattr(run.attempt, "monitor", None)  # a manager of another kind may not watch requests
        if route is not None:
            if route.watch_kills:
                run.request_scale = route.scale
            elif route.answered:
                run.request_scale = 1.0
        elif mon is not None and mon.request_killed:
            run.request_scale = min(run.request_scale * 2, 64.0)
        elif mon is not None and mon.answers:
            run.request_scale = 1.0
        run.attempt = None
        if outcome.first_event_at is not None:
            self._learn_start(outcome.first_event_at - outcome.started_at)
        self.save_times()
        return outcome

    def _spec(self, run: _JobRun, nxt: NextRun, *, relayed: bool) -> AttemptSpec:
        """The attempt ``nxt`` asks for (before its relay route): one recipe for attempts and their standbys."""
        # through the relay the API's answers are watched on the wire; the CLI-side request watch
        # would read a held answer as a hang
        watching = self.config.request_watch and not relayed
        asked_partial = PARTIAL_FLAG in (*self.config.claude_args, *run.rec.args)
        return AttemptSpec(
            prompt=nxt.prompt,
            cwd=run.rec.cwd,
            mode=nxt.mode,
            session_id=nxt.session_id,
            claude_args=(*watch_args(self.config.claude_args, enabled=watching), *run.rec.args),
            env=run.env,
            model=run.model,
            liveness=self._liveness(run, watch=watching),
            quiet_stream=watching and not asked_partial,
            job_id=run.rec.id,
        ).with_session()

    def _via_relay(self, spec: AttemptSpec, run: _JobRun, token: str) -> AttemptSpec:
        """``spec`` with the CLI pointed at the relay route ``token`` (an attempt's, or its standby's)."""
        assert self.relay is not None
        return replace(spec, env={**run.env, "ANTHROPIC_BASE_URL": self.relay.url_for(token)})

    def _want_standby(self, run: _JobRun) -> bool:
        """Whether the running attempt of ``run`` should get a standby CLI for its session's next resume.

        Only while the supervisor has resumed a session within the last
        ``standby_window`` seconds (restarts are happening: in calm weather a
        standby is ~150 MB held for nothing), for at most ``standby`` jobs at
        once, and only while no other CLI boots (:attr:`ProcessManager.quiet`).
        """
        cfg = self.config
        if cfg.standby <= 0 or self._resumed_at is None or run.attempt is None or run.taken is not None:
            return False
        if self.clock.monotonic() - self._resumed_at > cfg.standby_window:
            return False
        standbys = getattr(self.manager, "standbys", None)  # a manager of another kind keeps none
        return standbys is not None and standbys < cfg.standby

    async def _keep_standby(self, run: _JobRun, attempt: Attempt, session_id: str) -> None:
        """Boot a standby for the next resume of this attempt's session once no CLI is starting."""
        while run.attempt is attempt and not self.manager.quiet:
            await self.clock.asleep(0.1)
        if run.attempt is not attempt or not self._want_standby(run):
            return
        relayed = self._upstream(run) is not None
        nxt = NextRun("resume", session_id, "", "standby")
        spec = self._spec(run, nxt, relayed=relayed)
        token = None
        if relayed:
            assert self.relay is not None
            token = self.relay.new_token()
            spec = self._via_relay(spec, run, token)
        try:
            ok = self.manager.prepare_standby(spec)
        except Exception:  # a standby is an optimisation: never fail the job over it
            log.debug("could not start a standby CLI for job %s", run.rec.id, exc_info=True)
            return
        if ok:
            run.standby_sid, run.next_token = session_id, token

    def _end_route(self, run: _JobRun) -> RelayRoute | None:
        """The attempt is over: its route stops relaying (the route stays on ``run`` for the judgement)."""
        route = run.route
        if route is not None and self.relay is not None:
            self.relay.unregister(route)
        return route

    def _will_relay(self, run: _JobRun, session_id: str | None) -> bool:
        """Whether the next attempt's requests will go through the relay (as :meth:`_attempt` decides)."""
        if self._upstream(run) is None:
            return False
        has_pre = getattr(self.manager, "has_prestarted", None)
        return not (session_id is not None and has_pre is not None and has_pre(session_id))

    def _relay_upstream(self, run: _JobRun) -> str | None:
        """Where the relay forwards this job's requests, or None when the CLI must talk to the API itself."""
        run.route = None
        return self._upstream(run)

    def _upstream(self, run: _JobRun) -> str | None:
        if self.relay is None:
            return None
        env = run.full_env
        url = env.get("ANTHROPIC_BASE_URL") or DEFAULT_ENDPOINT
        u = urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname or u.username or u.password:
            return None
        if _proxied(env, u.scheme, u.hostname):
            return None  # the CLI goes through a proxy the relay does not speak to
        return url

    def _relay_max_wait(self) -> float:
        # the relay tells the liveness watch while it waits on purpose, so stall_timeout need not bound it
        return max(0.5, self.config.relay_max_wait)

    def _api_timeout(self, run: _JobRun) -> float:
        """The CLI's wait for a response head (``API_TIMEOUT_MS``, 10 minutes by default), in seconds."""
        raw = run.full_env.get("API_TIMEOUT_MS")
        try:
            ms = float(raw) if raw else 600_000.0
        except ValueError:
            ms = 600_000.0
        return ms / 1000.0 if ms > 0 else 600.0

    def _learn_start(self, seconds: float) -> None:
        """Track the CLI's start-up time; 80 % of its EWMA is what own back-off may overlap with."""
        if seconds < 0:
            return
        self._start_ewma = seconds if self._start_ewma is None else 0.8 * self._start_ewma + 0.2 * seconds
        self._start_estimate = 0.8 * self._start_ewma

    def store_attempt_error(self, attempt_id: int, err: ErrorClass) -> None:
        """Close an attempt row that never got a process (the CLI could not be found)."""
        self.jobs.runs.fail_attempt(attempt_id, error_json=err.to_json())

    def _finish_attempt_row(self, run: _JobRun, outcome: AttemptOutcome, error: ErrorClass | None = None) -> None:
        if run.attempt_id is None:
            return
        if error is None and not outcome.succeeded and not outcome.cancelled:
            error = self._classify(outcome.to_observation(), outcome, run.rec.id, record=False)
        self.jobs.finish_attempt(run.attempt_id, outcome, error=error)

    def _answered(self, run: _JobRun, message_id: object) -> None:
        """An API call answered: it earns retry budget, as every request does in Finagle's budget.

        The budget limits recoveries to a fraction of the *requests* the endpoint
        answers, not of the jobs: a job makes one request per turn, and a job of
        fifty turns is fifty calls' worth of evidence that the endpoint works.
        The first answer of an attempt is not counted here: for a first attempt
        it was deposited when the job began, and for a recovery it is the retried
        request itself (retries do not earn budget).
        """
        if run.route is not None:
            return  # the relay counted this request (breaker and budget) on the wire
        if run.call is None or not run.call.done:
            run.last_answer = message_id
            return
        if message_id is not None and message_id == run.last_answer:
            return  # the same answer, another of its content blocks
        run.last_answer = message_id
        run.endpoint.budget.deposit()
        run.call.answered()

    def _event_handler(self, run: _JobRun) -> Callable[[StreamEvent], None]:
        jid = run.rec.id
        first = [True]

        def on_event(ev: StreamEvent) -> None:
            if run.signals is not None:
                run.signals.on_event(ev.type, ev.subtype, ev.data, ev.mono)
            caught_up = run.progress.see(ev)
            p = run.pending
            if first[0]:
                first[0] = False
                att = run.attempt
                if att is not None and att.session_id and run.standby_sid is None and self._want_standby(run):
                    run.standby_task = asyncio.ensure_future(self._keep_standby(run, att, att.session_id))
                if p is not None and not p.restored:
                    p.restored = True
                    # nothing lost (or already redone by this very event): caught up at once
                    caught = ev.ts if run.progress.caught_up else None
                    self.jobs.update_recovery(p.rec_id, restored_at=ev.ts, caught_up_at=caught)
                    self._note(Restored(job_id=jid, ts=ev.ts, recovery_s=max(0.0, ev.ts - p.detected_at)))
            elif caught_up and p is not None and p.restored:
                self.jobs.update_recovery(p.rec_id, caught_up_at=ev.ts)
            data = ev.data
            if ev.type == "assistant" and data is not None:
                msg = data.get("message")
                if isinstance(msg, Mapping):
                    if "error" not in data and msg.get("model") != "<synthetic>" and run.call is not None:
                        self._answered(run, msg.get("id"))
                        run.call.success()  # the API answered: the endpoint is healthy
                    content = msg.get("content")
                    if isinstance(content, list) and self.has_subscribers(jid):
                        for b in content:
                            if isinstance(b, Mapping) and b.get("type") == "tool_use":
                                inp = b.get("input")
                                summary = (
                                    inp.get("command") or inp.get("description") if isinstance(inp, Mapping) else inp
                                )
                                self.emit(
                                    ToolStarted(
                                        job_id=jid,
                                        ts=ev.ts,
                                        name=str(b.get("name") or "?"),
                                        summary=redact_text(str(summary or ""))[:200],
                                    )
                                )
            if self.has_subscribers(jid):
                self.emit(CliEvent(job_id=jid, ts=ev.ts, event=ev.as_evidence()))

        return on_event

    # -- judgement ----------------------------------------------------------------------------------
    def _classify(self, obs: Observation, outcome: AttemptOutcome, job_id: str, *, record: bool = True) -> ErrorClass:
        try:
            err = self.classifier.classify(obs, job=job_id, record=record)
        except Exception:
            log.exception("classifier failed on job %s; treating the failure as a process crash", job_id)
            err = ErrorClass(ErrorType.PROCESS, None, "unclassified", "the classifier failed on this failure", True)
        if err.type is None:
            # not an error by the evidence, yet the attempt did not succeed (e.g. exit 1 without a
            # result): a process failure, worth another attempt
            desc = f"the CLI ended without a successful result (exit {outcome.exit_code}, signal {outcome.signal})"
            err = ErrorClass(ErrorType.PROCESS, None, "no_result", desc, True, strategy=Strategy.RESTART_PROCESS)
        return err

    def _api_side(self, err: ErrorClass, outcome: AttemptOutcome) -> bool:
        """Did this failure come from the API (and so say something about the endpoint)?"""
        if err.type not in _API_TYPES:
            return False
        if outcome.killed_by == "stall_watchdog":
            # silent while a request was in flight (last event: init or a tool result) -> the API hung;
            # silent while a tool ran (last event: assistant tool_use) -> the tool, not the API
            last = outcome.events[-1] if outcome.events else None
            return last is None or last.type in ("system", "user")
        if outcome.killed_by is not None or outcome.signal is not None:
            return False
        r = outcome.result
        if r is not None and r.get("is_error") is True:
            if isinstance(r.get("api_error_status"), int):
                return True
            text = str(r.get("result") or "")
            return text.startswith("API Error") or "the API" in text
        return any(
            (e.type == "assistant" and e.data is not None and "error" in e.data)
            or (e.type == "system" and e.subtype == "api_retry")
            for e in outcome.events
        )

    def _record_error(self, job_id: str, err: ErrorClass, obs: Observation) -> None:
        try:
            self.jobs.runs.insert_error(
                ts=self.clock.time(),
                job_id=job_id,
                type=err.type.value if err.type else "internal",
                severity=err.severity.value if err.severity else None,
                retryable=err.retryable,
                rule=err.rule or None,
                signature=_signature(self.classifier, obs),
                message=redact_text(err.description)[:2000],
            )
        except Exception:
            log.exception("could not store the error of job %s", job_id)

    def _close_pending(self, run: _JobRun, *, succeeded: bool) -> None:
        """The attempt after a recovery ended: that recovery worked or not; learn from it."""
        p = run.pending
        if p is None:
            return
        run.pending = None
        self.jobs.update_recovery(p.rec_id, succeeded=succeeded)
        now = self.clock.time()
        self.planner.history.record(
            p.strategy, p.error.type, succeeded=succeeded, duration_s=max(0.0, now - p.detected_at - p.waited_s)
        )
        if p.learn:
            with contextlib.suppress(Exception):
                self.classifier.record_outcome(p.observation, succeeded)

    # -- endings ------------------------------------------------------------------------------------
    def _succeeded(self, run: _JobRun, outcome: AttemptOutcome) -> JobResult:
        jid = run.rec.id
        self._close_pending(run, succeeded=True)
        if not self.jobs.finish_job(
            jid, JobState.SUCCEEDED, result=outcome.result, session_id=outcome.session_id, expect=ACTIVE_STATES
        ):
            raise _TakenAway(self.jobs.require(jid))  # cancelled in the last instant: it stays so
        self.jobs.runs.clear_reason(jid)  # recovered: no failure to explain
        self._retries_row(run, succeeded=True, give_up=None)
        return self._result(jid)

    def _failed(self, run: _JobRun, err: ErrorClass, plan: RecoveryPlan, outcome: AttemptOutcome) -> JobResult:
        jid = run.rec.id
        if not self.jobs.finish_job(
            jid,
            JobState.FAILED,
            result=outcome.result,
            error=err,
            reason=plan.reason,
            session_id=outcome.session_id,
            expect=ACTIVE_STATES,
        ):
            raise _TakenAway(self.jobs.require(jid))
        if plan.alert:
            self.alerts.alert(
                ESCALATION if plan.strategy is Strategy.ESCALATE else GAVE_UP,
                f"job:{jid}",
                plan.reason,
                severity="critical" if err.type is ErrorType.AUTH else "high",
                details={"job_id": jid, "error": err.to_dict(), "endpoint": run.endpoint.url},
            )
        self._retries_row(run, succeeded=False, give_up=plan.reason)
        return self._result(jid)

    def _result(self, job_id: str) -> JobResult:
        res = JobResult.from_record(self.jobs.require(job_id))
        self.emit(JobFinished(job_id=job_id, ts=self.clock.time(), result=res))
        return res

    def _retries_row(self, run: _JobRun, *, succeeded: bool, give_up: str | None) -> None:
        try:
            self.jobs.runs.insert_retries(
                scope=f"job:{run.rec.id}",
                attempts=max(1, run.attempts),
                succeeded=succeeded,
                give_up_reason=redact_text(give_up) if give_up else None,
                slept_s=round(run.slept_s, 6),
            )
        except Exception:
            log.exception("could not store the retries row of job %s", run.rec.id)

    async def _stop_attempt(self, run: _JobRun, killed_by: Any, reason: str) -> None:
        """End the attempt still in flight (if any) and record how it ended."""
        a = run.attempt
        run.attempt = None
        if a is None:
            return
        with contextlib.suppress(Exception):
            # an attempt whose wait() was cancelled has already been stopped: its outcome is there
            out = a.outcome if a.outcome is not None else await asyncio.shield(a.stop(killed_by, reason))
            self._finish_attempt_row(run, out)

    async def _ended_elsewhere(self, run: _JobRun, t: _TakenAway) -> JobResult:
        """The job was cancelled (or claimed) from outside: end what runs, record it, change nothing else.

        The attempt that the change ended is recorded as stopped by the user
        (``resurgo cancel`` signals the process group itself, so the CLI may
        have died of that SIGTERM before we asked): it is neither classified
        nor recovered from, and the job keeps the state it was given.
        """
        jid = run.rec.id
        rec = t.record
        why = _taken_reason(rec)
        if run.stopper is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(run.stopper)
        await self._stop_attempt(run, "user", why)
        out = t.outcome
        if out is not None and run.attempt_id is not None:
            if not out.succeeded and not out.cancelled:
                out = replace(out, killed_by="user", kill_reason=why)
            with contextlib.suppress(Exception):
                self._finish_attempt_row(run, out)
        run.attempt_id = None
        if run.call is not None:
            run.call.release()
        p = run.pending
        if p is not None:
            with contextlib.suppress(Exception):
                self.jobs.update_recovery(p.rec_id, reason=f"{why} before it completed")
        log.info("job %s: %s; not recovering it", jid, why)
        return self._result(jid)

    async def _interrupted(self, run: _JobRun) -> None:
        """Cancelled (Ctrl-C, task cancel, shutdown, ``cancel()``): end the processes, keep the job."""
        jid = run.rec.id
        kb = "shutdown" if self.manager.shutting_down else "user"
        await self._stop_attempt(run, kb, run.interrupted_reason)
        if run.call is not None:
            run.call.release()
        p = run.pending
        if p is not None:
            self.jobs.update_recovery(p.rec_id, reason=f"{run.interrupted_reason} before it completed")
        state = JobState.INTERRUPTED if run.cancel_resumable else JobState.CANCELLED
        with contextlib.suppress(Exception):
            if state is JobState.CANCELLED:
                self.jobs.finish_job(
                    jid, state, reason=run.interrupted_reason, expect=ACTIVE_STATES | {JobState.PENDING}
                )
            else:
                self.jobs.set_state(
                    jid, state, reason=run.interrupted_reason, expect=ACTIVE_STATES | {JobState.PENDING}
                )
        with contextlib.suppress(Exception):
            res = JobResult.from_record(self.jobs.require(jid))
            self.emit(JobFinished(job_id=jid, ts=self.clock.time(), result=res))


def _taken_reason(rec: JobRecord) -> str:
    return f"the job became {rec.state.value} outside this supervisor" + (
        f" ({redact_text(rec.reason)})" if rec.reason else ""
    )


def _short(outcome: AttemptOutcome) -> str:
    """Why the previous run ended, in words, for the continuation prompt."""
    if outcome.killed_by:
        return f"ended by the {outcome.killed_by.replace('_', ' ')}: {outcome.kill_reason or ''}".strip(": ")
    if outcome.signal:
        return f"the process was killed by signal {outcome.signal}"
    r = outcome.result
    if r is not None and isinstance(r.get("result"), str) and r.get("result"):
        return redact_text(str(r["result"]))[:200]
    return f"exit status {outcome.exit_code}"


#: Classifier categories of local exhaustion that cleaning up leftovers can relieve.
_LOCAL_RESOURCE = frozenset({"memory", "file_descriptors", "process_limit"})


def _local_resource(err: ErrorClass, outcome: AttemptOutcome) -> bool:
    """Did a local resource run out?  The verdict's category first, then the CLI's own stderr."""
    if err.category in _LOCAL_RESOURCE:
        return True
    tail = outcome.stderr_tail[-2000:].lower()
    return any(k in tail for k in ("heap out of memory", "emfile", "too many open files"))


def _signature(classifier: Classifier, obs: Observation) -> str | None:
    try:
        return classifier.signature(obs)
    except Exception:
        return None


def _json(d: Mapping[str, Any]) -> str:
    return json.dumps(d, default=str)


def _proxied(env: Mapping[str, str], scheme: str, host: str) -> bool:
    """Whether the CLI would reach ``host`` through an HTTP(S) proxy (``*_PROXY`` set, ``NO_PROXY`` not matching)."""
    names = ("HTTPS_PROXY", "https_proxy") if scheme == "https" else ("HTTP_PROXY", "http_proxy")
    if not any(env.get(n) for n in names):
        return False
    no = (env.get("NO_PROXY") or env.get("no_proxy") or "").lower()
    h = host.lower()
    for item in (x.strip() for x in no.split(",")):
        if item == "*" or (item and (h == item.lstrip(".") or h.endswith("." + item.lstrip(".")))):
            return False
    return True


class _RelaySink:
    """What the relay reports, made into the supervisor's records: a recovery per failed try, liveness."""

    def __init__(self, orch: Orchestrator) -> None:
        self.o = orch

    def classify(self, evidence: Any) -> ErrorClass:
        try:
            return self.o.classifier.classify(evidence, record=True)
        except Exception:
            log.exception("classifier failed on a relayed failure")
            return ErrorClass(ErrorType.NETWORK, None, "relay", "the relayed request failed", True)

    def error(self, route: RelayRoute, inc: RelayIncident) -> None:
        err = inc.error
        run = self.o._runs.get(route.job_id)
        if run is not None and run.signals is not None:
            run.signals.relay_failed(inc.status, self.o.clock.monotonic())
        try:
            self.o.jobs.runs.insert_error(
                ts=inc.detected_at, job_id=route.job_id, type=err.type.value if err.type else "internal",
                severity=err.severity.value if err.severity else None, retryable=err.retryable,
                rule=err.rule or None, signature=None, message=redact_text(err.description)[:2000],
            )
        except Exception:
            log.exception("could not store a relayed failure of job %s", route.job_id)

    def failed(self, route: RelayRoute, inc: RelayIncident) -> object:
        o = self.o
        err = inc.error
        try:
            return o.jobs.runs.insert_recovery(
                route.job_id, strategy=RELAY_RETRY, detected_at=inc.detected_at, attempt_id=route.attempt_id,
                error_type=err.type.value if err.type else None, reason=redact_text(err.description)[:500],
                fault_kind=inc.kind, fault_at=inc.sent_at,
            )
        except Exception:
            log.exception("could not store a relayed failure of job %s", route.job_id)
            return None

    def changed(self, route: RelayRoute, inc: RelayIncident) -> None:
        if not isinstance(inc.handle, int):
            return
        succeeded = True if inc.restored_at is not None else (False if inc.gave_up else None)
        why = f"{redact_text(inc.error.description)[:300]} — the relay gave up: {inc.why}" if inc.why else None
        try:
            self.o.jobs.update_recovery(
                inc.handle, started_at=inc.retried_at, restored_at=inc.restored_at, caught_up_at=inc.restored_at,
                waited_s=inc.imposed_s, backoff_s=inc.backoff_s, budget_s=inc.budget_s, succeeded=succeeded,
                reason=why,
            )
        except Exception:
            log.exception("could not update a relayed failure of job %s", route.job_id)

    def refused(self, route: RelayRoute, state: str, retry_after: float | None) -> None:
        o = self.o
        now = o.clock.time()
        br = route.endpoint.breaker
        o._note(Waiting(job_id=route.job_id, ts=now, until_ts=now + retry_after if retry_after else None,
                        reason=f"breaker {br.name} is {state}"))

    def progress(self, route: RelayRoute) -> None:
        run = self.o._runs.get(route.job_id)
        mon = getattr(run.attempt, "monitor", None) if run is not None else None
        if mon is not None:
            mon.progress()


#: Answer times stored longer ago than this (seconds) are not loaded by a new supervisor.
_TIMES_MAX_AGE = 3600.0

#: Strategy of the recoveries the relay made (a request retried without restarting the CLI).
RELAY_RETRY = "relay_retry"

__all__ = ["DEFAULT_ENDPOINT", "ApiFailure", "BudgetFactory", "Endpoint", "EndpointBudget", "Orchestrator"]
