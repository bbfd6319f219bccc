"""The public Supervisor API: supervised Claude Code runs as an asyncio library, and its sync facade.

The ``resurgo`` commands, the chaos runner and the Redis worker are thin
layers over this class, so there is one implementation of supervision, one
store, one breaker per endpoint and one retry budget per endpoint per process.

Life cycle: entering ``async with Supervisor(...)`` reconciles the store with
reality (jobs of a supervisor that died become ``interrupted`` and the
processes it left are ended, matched by pid and start time), then runs the
health checks (their states are kept in the store's ``health`` table for
``resurgo status`` and the dashboard) and the cleanup sweep in the background.  Leaving it (or
:meth:`Supervisor.aclose`) ends every process group and leaves unfinished jobs
``interrupted`` -- resumable, never lost.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import os
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from resurgo._endpoints import endpoint_name
from resurgo.breaker import CircuitBreaker
from resurgo.classifier import Classifier, load_rules
from resurgo.clock import SYSTEM_CLOCK, Clock
from resurgo.store import Store, default_store_path
from resurgo.supervise._alerts import Alert, AlertManager
from resurgo.supervise._cleanup import ResourceCleaner
from resurgo.supervise._config import ConfigError, SupervisorConfig
from resurgo.supervise._events import CliEvent, JobFinished, JobQueued, JobResult, SupervisorEvent
from resurgo.supervise._health import HealthChecker
from resurgo.supervise._health_store import HealthRecorder
from resurgo.supervise._jobstore import ACTIVE_STATES, JobState, JobStore, JobStoreError
from resurgo.supervise._orchestrator import BudgetFactory, Orchestrator
from resurgo.supervise._process import ProcessManager
from resurgo.supervise._recovery import RecoveryPlanner, StrategyHistory
from resurgo.supervise._session import SessionManager

if TYPE_CHECKING:
    from resurgo.otel._supervisor import SupervisorTelemetry

log = logging.getLogger("resurgo.supervise")

T = TypeVar("T")

#: Typed events a handle keeps for late subscribers (raw CLI events included).
HANDLE_REPLAY = 5_000


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One job to run: the prompt and how to run it.

    ``idem_key`` makes submission idempotent: a second submission with the
    same key returns the first job (finished: its stored result; unfinished:
    it is resumed), which is what lets a batch be re-run after a crash.
    ``session_id`` chooses the CLI session id of the first attempt (a uuid;
    default: a fresh one), e.g. to find the transcript before the job ends.
    """

    prompt: str
    cwd: str | os.PathLike[str] = "."
    model: str | None = None
    claude_args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    name: str | None = None
    idem_key: str | None = None
    session_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ValueError("JobSpec.prompt must be a non-empty string")
        if isinstance(self.claude_args, str):
            raise TypeError("JobSpec.claude_args must be a list of arguments, not one string")
        if self.session_id is not None:
            try:
                uuid.UUID(self.session_id)
            except (ValueError, TypeError, AttributeError):
                raise ValueError(f"JobSpec.session_id must be a UUID, got {self.session_id!r}") from None


class _Bus:
    """Fan-out of typed events to async subscribers (all jobs, or one job)."""

    def __init__(self) -> None:
        self._subs: list[tuple[str | None, asyncio.Queue[SupervisorEvent | None]]] = []
        self._per_job: dict[str, int] = {}
        self._all = 0

    def has_subscribers(self, job_id: str) -> bool:
        return self._all > 0 or self._per_job.get(job_id, 0) > 0

    def subscribe(self, job_id: str | None) -> asyncio.Queue[SupervisorEvent | None]:
        q: asyncio.Queue[SupervisorEvent | None] = asyncio.Queue()
        self._subs.append((job_id, q))
        if job_id is None:
            self._all += 1
        else:
            self._per_job[job_id] = self._per_job.get(job_id, 0) + 1
        return q

    def unsubscribe(self, q: asyncio.Queue[SupervisorEvent | None]) -> None:
        for i, (jid, qq) in enumerate(self._subs):
            if qq is q:
                del self._subs[i]
                if jid is None:
                    self._all -= 1
                else:
                    self._per_job[jid] -= 1
                    if not self._per_job[jid]:
                        del self._per_job[jid]
                return

    def publish(self, ev: SupervisorEvent) -> None:
        for jid, q in self._subs:
            if jid is None or jid == ev.job_id or not ev.job_id:  # breaker events concern every job
                q.put_nowait(ev)

    def close(self) -> None:
        for _, q in self._subs:
            q.put_nowait(None)


class JobHandle:
    """A submitted job: await :meth:`result`, watch :meth:`events`, or :meth:`cancel` it."""

    def __init__(self, sup: Supervisor, job_id: str, task: asyncio.Task[JobResult]) -> None:
        self.supervisor = sup
        self.job_id = job_id
        self._task = task
        self._events: list[SupervisorEvent] = []
        self._changed = asyncio.Event()
        #: raw CLI events not kept because the buffer was full (typed events are always kept)
        self.dropped = 0

    def done(self) -> bool:
        return self._task.done()

    async def result(self) -> JobResult:
        """The job's result.  Cancelling the caller cancels the job (it becomes ``interrupted``)."""
        try:
            return await self._task
        except asyncio.CancelledError:
            cur = asyncio.current_task()
            if cur is not None and cur.cancelling():
                raise  # our caller is being cancelled: propagate
            return JobResult.from_record(self.supervisor.jobs.require(self.job_id))

    def cancel(self, *, resumable: bool = True, reason: str = "cancelled by the user") -> None:
        """End the job's process group now; the job becomes ``interrupted`` (or ``cancelled``)."""
        self.supervisor._orch.request_cancel(self.job_id, resumable=resumable, reason=reason)
        self._task.cancel()

    async def events(self) -> AsyncIterator[SupervisorEvent]:
        """Typed events of this job from its submission on, ending with :class:`JobFinished`.

        Events are kept from submission, so iterating late loses nothing but raw
        CLI events beyond the first 5,000 (counted in :attr:`dropped`).  Breaker
        transitions of every endpoint are included (``job_id == ""``).
        Several readers may iterate at once.
        """
        i = 0
        while True:
            while i < len(self._events):
                ev = self._events[i]
                i += 1
                yield ev
                if isinstance(ev, JobFinished):
                    return
            if self._task.done():
                return
            self._changed.clear()
            await self._changed.wait()

    def _push(self, ev: SupervisorEvent) -> None:
        if isinstance(ev, CliEvent) and len(self._events) >= HANDLE_REPLAY:
            self.dropped += 1
            return
        self._events.append(ev)
        self._changed.set()


class Supervisor:
    """Supervised Claude Code runs (asyncio).  See the module docstring for the life cycle.

    ``clock`` is injectable for tests (backoffs and waits then run on virtual
    time); ``classifier`` defaults to one whose learned rules live in the
    supervisor's store; the rules of ``config.classify_rules`` are added to it
    (so do not pass a classifier that already holds them).  ``environ`` replaces ``os.environ`` for deciding the
    endpoint and restoring secret overrides; ``manager`` replaces the process
    manager (embedding, tests).  ``budget_factory(url)`` supplies the retry
    budget every job of an endpoint shares, when the endpoint is first used
    (e.g. one shared by a fleet of hosts); returning None, or no factory,
    means a local budget from ``retry_budget_ratio`` /
    ``retry_budget_min_per_sec``.  ``limiter_factory(url)`` likewise supplies
    the adaptive concurrency limiter of an endpoint when ``concurrency="auto"``
    (e.g. one kept in Redis for a fleet); None: a local one.
    """

    def __init__(
        self,
        config: SupervisorConfig | None = None,
        *,
        clock: Clock | None = None,
        classifier: Classifier | None = None,
        environ: Mapping[str, str] | None = None,
        manager: ProcessManager | None = None,
        budget_factory: BudgetFactory | None = None,
        limiter_factory: Callable[[str], Any] | None = None,
        telemetry: SupervisorTelemetry | None = None,
    ) -> None:
        self.config = config or SupervisorConfig()
        # OpenTelemetry (the optional extra): imported only when asked for
        self._otel_shutdown: Callable[[], None] | None = None
        if telemetry is None and self.config.otel:
            try:
                from resurgo.otel import SupervisorTelemetry as _Telemetry
                from resurgo.otel import configure_default_providers
            except ImportError as e:
                raise ConfigError(f"otel is enabled but OpenTelemetry is not installed: {e}") from e
            self._otel_shutdown = configure_default_providers()
            telemetry = _Telemetry()
        self.telemetry = telemetry
        self.clock = clock or SYSTEM_CLOCK
        # ``[classify] rules``: joins whichever classifier runs (a fleet worker passes its own).  Read
        # before the store opens, so a bad file fails here with nothing to clean up.
        rules_file = self.config.classify_rules
        extra_rules = load_rules(os.fspath(rules_file)) if rules_file is not None else []
        st = self.config.store
        self._own_store = not isinstance(st, Store)
        self.store: Store = st if isinstance(st, Store) else Store(os.fspath(st) if st else default_store_path())
        self.jobs = JobStore(self.store, clock=self.clock)
        self.manager = manager or ProcessManager(
            claude=self.config.claude, jobs=self.jobs, clock=self.clock, max_line_bytes=self.config.max_line_bytes,
            start_concurrency=self.config.start_slots,
        )
        if self.manager.jobs is None:
            self.manager.jobs = self.jobs
        if self.telemetry is not None:
            self.telemetry.attach(self.store)
            tel = self.telemetry
            self.manager.env_hooks.append(lambda spec: tel.env_for(spec.job_id))
        self.sessions = SessionManager(continuation=self.config.continuation_prompt)
        history = StrategyHistory()
        try:
            history.load(
                dict(r)
                for r in self.store.query(
                    "SELECT strategy, error_type, succeeded, detected_at, restored_at FROM recoveries"
                    " WHERE succeeded IS NOT NULL ORDER BY id DESC LIMIT 5000"
                )
            )
        except Exception:
            log.exception("could not seed strategy history from the store")
        self.planner = RecoveryPlanner(history=history)
        # learned rules ("this unknown failure is transient") persist in the run store, so a restarted
        # supervisor keeps what it learned
        self.classifier = classifier or Classifier(store=self.store, clock=self.clock)
        if extra_rules:
            try:
                self.classifier.add_rules(extra_rules)
            except Exception:  # a name clash with the packs or the classifier's own rules
                if self._own_store:
                    self.store.close()
                raise
        self.alerts = AlertManager(
            webhook=self.config.alert_webhook,
            min_interval=self.config.alert_min_interval,
            clock=self.clock,
            sink=self._store_alert,
        )
        self.cleaner = ResourceCleaner(self.jobs, manager=self.manager, grace=self.config.kill_grace, clock=self.clock)
        self._bus = _Bus()
        self._handles: dict[str, JobHandle] = {}
        self._orch = Orchestrator(
            config=self.config,
            jobs=self.jobs,
            manager=self.manager,
            sessions=self.sessions,
            planner=self.planner,
            classifier=self.classifier,
            alerts=self.alerts,
            emit=self._emit,
            cleaner=self.cleaner,
            clock=self.clock,
            environ=environ,
            budget_factory=budget_factory,
            limiter_factory=limiter_factory,
        )
        self._orch.has_subscribers = lambda jid: jid in self._handles or self._bus.has_subscribers(jid)
        # the checker's states go to the store (``resurgo status``, the dashboard) and, when a component
        # turns unhealthy, to the alerts
        self.health_recorder = HealthRecorder(
            self.jobs, alerts=self.alerts, refresh=self.config.health_interval, clock=self.clock
        )
        self.health = HealthChecker(
            manager=self.manager,
            clock=self.clock,
            disk_paths=[] if self.store.path == ":memory:" else [os.path.dirname(os.path.abspath(self.store.path))],
            on_change=self.health_recorder.on_change,
            on_round=self.health_recorder.on_round,
        )
        self._tasks: dict[str, asyncio.Task[JobResult]] = {}
        self._background: list[asyncio.Task[None]] = []
        self._started = False
        self._start_lock: asyncio.Lock | None = None
        self._closed = False

    # -- life cycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Reconcile the store after a possible crash and start the background loops (idempotent)."""
        if self._started:
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started:
                return
            if self._closed:
                raise RuntimeError("this supervisor is closed")
            rep = await self.cleaner.startup()
            if rep.interrupted_jobs or rep.ended_processes:
                log.warning(
                    "start-up: %d job(s) of a dead supervisor marked interrupted, %d leftover process(es) ended",
                    len(rep.interrupted_jobs),
                    len(rep.ended_processes),
                )
            self.health.endpoints = sorted({self._orch.endpoint_url({**self._orch.environ, **self.config.env})})
            self._background = [
                asyncio.create_task(self.health.run(self.config.health_interval), name="resurgo-health"),
                asyncio.create_task(self._cleanup_loop(), name="resurgo-cleanup"),
                asyncio.create_task(self._state_loop(), name="resurgo-state-check"),
            ]
            self._started = True

    async def _cleanup_loop(self) -> None:
        while True:
            await self.clock.asleep(self.config.cleanup_interval)
            try:
                await self.cleaner.sweep()
            except Exception:
                log.exception("cleanup sweep failed")

    async def _state_loop(self) -> None:
        """Notice jobs cancelled (or claimed) by another process while this one runs them."""
        while True:
            await self.clock.asleep(self.config.state_check_interval)
            try:
                self._orch.check_stored()
            except Exception:
                log.exception("checking the stored job states failed")

    async def __aenter__(self) -> Supervisor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """End every running job's process group; unfinished jobs become ``interrupted``."""
        if self._closed:
            return
        self._closed = True
        self.manager.shutting_down = True
        tasks = [t for t in self._tasks.values() if not t.done()]
        for jid in list(self._tasks):
            self._orch.request_cancel(jid, resumable=True, reason="the supervisor shut down")
        for jt in tasks:
            jt.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.manager.shutdown()
        await self._orch.close_relay()
        for t in self._background:
            t.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self.health_recorder.clear()
        await self.alerts.drain()
        self._bus.close()
        if self.telemetry is not None:
            self.telemetry.close(self.clock.time())  # end spans left open
        if self._otel_shutdown is not None:
            self._otel_shutdown()  # flush spans and a last metrics collection while the store is open
        if self.telemetry is not None:
            self.telemetry.detach()
        if self._own_store:
            self.store.close()

    def _store_alert(self, a: Alert) -> None:
        """Keep an alert in the store as a ``supervisor`` event (type ``alert``) of every job it concerns.

        A job's own alert (gave up, escalation, its budget wait) goes to that job; a
        breaker opening goes to every job this supervisor runs on that endpoint.
        """
        ids: list[str] = []
        jid = a.details.get("job_id")
        if isinstance(jid, str) and jid:
            ids.append(jid)
        elif a.subject.startswith("job:"):
            ids.append(a.subject[4:])
        else:
            ids += [j for j, ep in self._orch.running_endpoints().items() if a.subject in (ep.url, ep.breaker.name)]
        data = a.to_dict()  # redacted
        for j in ids:
            try:
                self.jobs.append_supervisor_event(j, "alert", data, subtype=a.kind)
            except Exception:
                log.exception("could not store alert %s for job %s", a.kind, j)

    # -- jobs -------------------------------------------------------------------------------------
    def _emit(self, ev: SupervisorEvent) -> None:
        if self.telemetry is not None:
            self.telemetry.on_event(ev)  # first: an AttemptStarted opens the span whose context the CLI gets
        self._bus.publish(ev)
        if ev.job_id:
            h = self._handles.get(ev.job_id)
            if h is not None:
                h._push(ev)
        else:
            for h in self._handles.values():
                h._push(ev)

    def _create(self, spec: JobSpec, batch_id: str | None = None) -> str:
        env = {**self.config.env, **dict(spec.env)}
        url = self._orch.endpoint_url({**self._orch.environ, **env})
        rec = self.jobs.create_job(
            spec.prompt,
            cwd=os.path.abspath(os.fspath(spec.cwd)),
            args=list(spec.claude_args),
            env=dict(spec.env),
            model=spec.model,
            endpoint=endpoint_name(url),  # stored and shown: the URL could hold credentials
            idem_key=spec.idem_key,
            name=spec.name,
            batch_id=batch_id,
            session_id=spec.session_id,
        )
        return rec.id

    def submit(self, spec: JobSpec | str, **kw: Any) -> JobHandle:
        """Start a job now (a :class:`JobSpec`, or a prompt plus JobSpec's keywords); returns its handle."""
        if self._closed:
            raise RuntimeError("this supervisor is closed")
        if isinstance(spec, str):
            spec = JobSpec(spec, **kw)
        elif kw:
            raise TypeError("pass either a JobSpec or a prompt with keywords, not both")
        job_id = self._create(spec)
        return self._launch(job_id)

    def _launch(self, job_id: str, *, reason: str | None = None, sem: asyncio.Semaphore | None = None) -> JobHandle:
        h = self._handles.get(job_id)
        if h is not None and not h.done():
            return h
        rec = self.jobs.require(job_id)
        self._bus.publish(JobQueued(job_id=job_id, ts=self.clock.time(), name=rec.name))
        task = asyncio.get_running_loop().create_task(self._job(job_id, reason, sem), name=f"resurgo-job-{job_id}")
        self._tasks[job_id] = task
        h = JobHandle(self, job_id, task)
        self._handles[job_id] = h
        h._push(JobQueued(job_id=job_id, ts=self.clock.time(), name=rec.name))
        task.add_done_callback(functools.partial(self._forget, job_id))
        return h

    def _forget(self, job_id: str, _task: object = None) -> None:
        self._tasks.pop(job_id, None)
        h = self._handles.pop(job_id, None)
        if h is not None:
            h._changed.set()  # wake readers: the task is done

    async def _job(self, job_id: str, reason: str | None, sem: asyncio.Semaphore | None) -> JobResult:
        await self.start()
        if sem is None:
            return await self._orch.run_job(job_id, reason=reason)
        async with sem:
            return await self._orch.run_job(job_id, reason=reason)

    async def run(
        self,
        prompt: str,
        *,
        cwd: str | os.PathLike[str] = ".",
        model: str | None = None,
        claude_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        name: str | None = None,
        idem_key: str | None = None,
        check: bool = False,
    ) -> JobResult:
        """Run one prompt to its end; ``check=True`` raises :class:`JobFailedError` unless it succeeded."""
        spec = JobSpec(
            prompt,
            cwd=cwd,
            model=model,
            claude_args=tuple(claude_args),
            env=dict(env or {}),
            name=name,
            idem_key=idem_key,
        )
        res = await self.run_spec(spec)
        return res.raise_for_status() if check else res

    async def run_spec(self, spec: JobSpec) -> JobResult:
        job_id = self._create(spec)
        rec = self.jobs.require(job_id)
        if rec.state.terminal:
            return JobResult.from_record(rec)
        return await self._launch(job_id).result()

    async def run_many(
        self,
        specs: Iterable[JobSpec | str],
        *,
        concurrency: int | None = None,
        batch_id: str | None = None,
    ) -> list[JobResult]:
        """Run many jobs, at most ``concurrency`` at once; results in input order.

        Idempotent by ``idem_key``: a job that already finished is not run
        again (its stored result is returned), an unfinished one is resumed.
        """
        n = concurrency or self.config.max_jobs
        if n < 1:
            raise ValueError(f"concurrency must be >= 1, got {n}")
        await self.start()
        ids: list[str] = []
        for s in specs:
            spec = JobSpec(s) if isinstance(s, str) else s
            ids.append(self._create(spec, batch_id=batch_id))
        results: list[JobResult | None] = [None] * len(ids)
        todo: list[int] = []
        for i, jid in enumerate(ids):
            rec = self.jobs.require(jid)
            if rec.state.terminal:
                results[i] = JobResult.from_record(rec)
            else:
                if jid not in self._tasks:
                    self._claim_check(jid)
                todo.append(i)
        # A pool of ``n`` runners, not one task per job: a job waiting for its turn is an index,
        # and a finished one leaves only its JobResult (its handle, with the events it kept, goes
        # as soon as it ends).  With a task per job, a batch of N jobs held N tasks, handles and
        # event lists until its very end.
        queue = iter(todo)

        async def runner() -> None:
            for i in queue:
                jid = ids[i]
                h = self._handles.get(jid)
                if h is not None and not h.done():  # already running here (another caller's)
                    results[i] = await h.result()
                    continue
                rec = self.jobs.require(jid)  # it may have ended while it waited for its turn
                results[i] = JobResult.from_record(rec) if rec.state.terminal else await self._launch(jid).result()

        runners = [asyncio.ensure_future(runner()) for _ in range(min(n, len(todo)))]
        try:
            await asyncio.gather(*runners)
        except asyncio.CancelledError:
            for r in runners:
                r.cancel()
            await asyncio.gather(*runners, return_exceptions=True)
            raise
        return [r for r in results if r is not None]

    def _claim_check(self, job_id: str) -> None:
        """Refuse to run a job another live supervisor is running right now."""
        from resurgo.supervise._jobstore import owner_alive

        rec = self.jobs.require(job_id)
        if rec.state in ACTIVE_STATES and rec.owner not in (None, self.jobs.owner) and owner_alive(rec.owner):
            raise JobStoreError(f"job {job_id} is being run by another supervisor ({rec.owner})")

    async def resume(self, job_id: str, *, reason: str = "resumed on request") -> JobResult:
        """Continue an interrupted or failed job, in the same session when its transcript exists."""
        await self.start()
        if job_id in self._tasks:
            return await self._handles[job_id].result()
        rec = self.jobs.require(job_id)
        if rec.state is JobState.SUCCEEDED:
            return JobResult.from_record(rec)
        self._claim_check(job_id)
        if rec.state in (JobState.FAILED, JobState.CANCELLED):
            # an explicit request to try again: the one way out of a final state
            self.jobs.reopen(job_id, reason=reason)
        return await self._launch(job_id, reason=reason).result()

    async def cancel(self, job_id: str, *, resumable: bool = True, reason: str = "cancelled by the user") -> JobResult:
        """End a job's processes; it becomes ``interrupted`` (``resumable``) or ``cancelled``."""
        h = self._handles.get(job_id)
        if h is not None and not h.done():
            h.cancel(resumable=resumable, reason=reason)
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([h._task])
            return JobResult.from_record(self.jobs.require(job_id))
        rec = self.jobs.require(job_id)
        if not rec.state.terminal:
            if resumable:
                self.jobs.set_state(job_id, JobState.INTERRUPTED, reason=reason)
            else:
                self.jobs.finish_job(job_id, JobState.CANCELLED, reason=reason)
        return JobResult.from_record(self.jobs.require(job_id))

    def endpoint_url(self, env: Mapping[str, str] | None = None) -> str:
        """The API endpoint (``ANTHROPIC_BASE_URL``) a job with these environment overrides talks to."""
        return self._orch.endpoint_url({**self._orch.environ, **self.config.env, **dict(env or {})})

    def endpoint_breaker(self, url: str) -> CircuitBreaker:
        """The breaker every job of endpoint ``url`` shares; the endpoint is set up on first use.

        For attaching it elsewhere (listeners, a fleet-wide breaker sync); its
        state transitions are stored and emitted as :class:`BreakerStateChanged`.
        """
        return self._orch.endpoint(url).breaker

    def adopt_job(
        self,
        spec: JobSpec,
        session_id: str,
        *,
        transcript: str | bytes | None = None,
        reason: str = "adopted from another supervisor",
    ) -> JobHandle:
        """Continue here a job whose session ran elsewhere (another host, another store); returns its handle.

        ``transcript`` (the session's JSONL as the CLI wrote it) is put where
        this host's CLI looks for ``session_id`` (same cwd and HOME rules as
        the job's environment), so the first attempt resumes that session
        instead of starting over; without it, or if the CLI cannot find the
        session, the usual fallbacks apply (fresh start with the prompt).  The
        job is new in this supervisor's store, recorded as having run before
        (one attempt elsewhere) and ``interrupted`` with ``reason``.
        """
        if self._closed:
            raise RuntimeError("this supervisor is closed")
        if not isinstance(session_id, str) or not session_id.strip():
            raise ValueError("adopt_job needs the session id of the job's previous run")
        if not _is_uuid(session_id):
            # it becomes a file name below: "../../x" must not write anywhere
            raise ValueError(f"adopt_job: session id must be a UUID, got {session_id[:60]!r}")
        if transcript is not None:
            env = {**self._orch.environ, **self.config.env, **dict(spec.env)}
            path = self.sessions.transcript_path(session_id, os.path.abspath(os.fspath(spec.cwd)), env=env)
            path.parent.mkdir(parents=True, exist_ok=True)
            data = transcript.encode() if isinstance(transcript, str) else transcript
            tmp = path.with_suffix(".part")
            # 0600 whatever the umask: a transcript holds every tool result of the session
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        job_id = self._create(spec)
        rec = self.jobs.require(job_id)
        if rec.attempts == 0 and not rec.state.terminal:
            self.jobs.begin_attempt(job_id, kind="start", session_id=session_id)  # it ran before: resume it
            self.jobs.set_state(job_id, JobState.INTERRUPTED, session_id=session_id, reason=reason)
        return self._launch(job_id, reason=reason)

    @property
    def breakers(self) -> dict[str, CircuitBreaker]:
        """The breaker of every endpoint used so far (shared by all jobs of that endpoint)."""
        return {url: ep.breaker for url, ep in self._orch.endpoints.items()}

    @property
    def limiters(self) -> dict[str, Any]:
        """With ``concurrency="auto"``: the adaptive limiter of every endpoint used so far."""
        return {url: ep.limiter for url, ep in self._orch.endpoints.items() if ep.limiter is not None}

    @property
    def orchestrator(self) -> Orchestrator:
        """The recovery orchestrator (endpoints, budgets); for instrumentation and tests."""
        return self._orch

    def handle(self, job_id: str) -> JobHandle | None:
        """The handle of a job running in this supervisor."""
        return self._handles.get(job_id)

    def result(self, job_id: str) -> JobResult:
        """The job's result as stored now (running jobs included)."""
        return JobResult.from_record(self.jobs.require(job_id))

    async def events(self) -> AsyncIterator[SupervisorEvent]:
        """Every job's typed events from now on, until the supervisor closes."""
        q = self._bus.subscribe(None)
        try:
            while True:
                item = await q.get()
                if item is None:
                    return
                yield item
        finally:
            self._bus.unsubscribe(q)


class SyncSupervisor:
    """The same supervisor for synchronous code: an event loop in a daemon thread.

    Ctrl-C while waiting cancels the jobs being waited for (their process
    groups end, the jobs become ``interrupted``) before ``KeyboardInterrupt``
    propagates.  Always :meth:`close` it (or use it as a context manager).
    """

    def __init__(self, config: SupervisorConfig | None = None, **kw: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="resurgo-supervisor", daemon=True)
        self._thread.start()
        self._ready.wait()
        self.supervisor: Supervisor = self._call(self._make(config, kw))
        self._call(self.supervisor.start())

    async def _make(self, config: SupervisorConfig | None, kw: dict[str, Any]) -> Supervisor:
        return Supervisor(config, **kw)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._ready.set)
        self._loop.run_forever()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result()
        except KeyboardInterrupt:
            fut.cancel()
            with contextlib.suppress(BaseException):
                fut.result(timeout=30)
            raise
        except concurrent.futures.CancelledError:
            raise

    def run(self, prompt: str, **kw: Any) -> JobResult:
        return self._call(self.supervisor.run(prompt, **kw))

    def run_many(self, specs: Iterable[JobSpec | str], **kw: Any) -> list[JobResult]:
        specs = list(specs)
        return self._call(self.supervisor.run_many(specs, **kw))

    def resume(self, job_id: str, **kw: Any) -> JobResult:
        return self._call(self.supervisor.resume(job_id, **kw))

    def cancel(self, job_id: str, **kw: Any) -> JobResult:
        return self._call(self.supervisor.cancel(job_id, **kw))

    def result(self, job_id: str) -> JobResult:
        return self.supervisor.result(job_id)

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._call(self.supervisor.aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            with contextlib.suppress(RuntimeError):
                self._loop.close()

    def __enter__(self) -> SyncSupervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["JobHandle", "JobSpec", "Supervisor", "SyncSupervisor"]
