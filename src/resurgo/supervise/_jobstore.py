"""Jobs, attempts, events, recoveries and process records in the store (``resurgo.store.schema``).

The store is the supervisor's memory across its own crashes: a restarted
supervisor reads which jobs were running and which processes it had started,
and continues from there.  Two concerns shape this module:

* the event write path is hot (a run prints thousands of events, some of them
  megabytes), so events are buffered and written with ``executemany`` in one
  transaction per batch, storing the line as the CLI printed it unless it
  holds a secret (:func:`redact_json_line`: one regex scan for lines without
  a secret marker, a parse and re-serialise only for those with one);
* secrets never reach the store or the screen: environment overrides whose
  names look secret are stored as ``<redacted>`` and kept only in this
  process's memory (a restarted supervisor takes them from its own
  environment), events are redacted before they are written (a Bash tool
  running ``env`` or ``cat .env`` prints keys into the stream), and every text
  shown passes through :func:`redact_text`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import threading
import uuid
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import psutil

from resurgo._launch import owner_id
from resurgo._redact import REDACTED, is_secret_name, redact_env, redact_json_line, redact_text
from resurgo.classifier._types import ErrorClass
from resurgo.clock import SYSTEM_CLOCK, Clock
from resurgo.store import Store
from resurgo.store.runs import JobStoreError, RunStore

if TYPE_CHECKING:
    from resurgo.supervise._process import AttemptOutcome, StreamEvent

log = logging.getLogger("resurgo.supervise")


class JobState(StrEnum):
    """Lifecycle of a job. ``interrupted``: its supervisor died while it ran; it can be resumed."""

    PENDING = "pending"
    RUNNING = "running"
    RECOVERING = "recovering"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def active(self) -> bool:
        return self in ACTIVE_STATES


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
ACTIVE_STATES = frozenset({JobState.RUNNING, JobState.RECOVERING, JobState.WAITING})

AttemptKind = str  # start | resume | fork | restart




def owner_alive(owner: str | None) -> bool:
    """Is the supervisor named by ``owner`` still running?

    Owners on another host are assumed alive (we cannot check them and must not
    steal their jobs).  An unparseable owner is treated as dead.
    """
    if not owner:
        return False
    parts = owner.rsplit(":", 2)
    if len(parts) != 3:
        return False
    host, pid_s, start_s = parts
    if host != socket.gethostname():
        return True
    try:
        pid, start = int(pid_s), int(start_s)
        p = psutil.Process(pid)
        return abs(int(p.create_time()) - start) <= 1 and p.status() != psutil.STATUS_ZOMBIE
    except (ValueError, psutil.Error):
        return False


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One row of ``jobs``.  ``env`` is as stored: secret values read ``<redacted>``."""

    id: str
    batch_id: str | None
    name: str | None
    idem_key: str | None
    prompt: str
    args: tuple[str, ...]
    cwd: str
    env: Mapping[str, str]
    model: str | None
    endpoint: str | None
    state: JobState
    session_id: str | None
    attempts: int
    recoveries: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    updated_at: float
    result_text: str | None
    result: Mapping[str, Any] | None
    error: Mapping[str, Any] | None
    reason: str | None
    owner: str | None

    def display_env(self) -> dict[str, str]:
        return redact_env(self.env)

    @property
    def error_class(self) -> ErrorClass | None:
        return ErrorClass.from_dict(self.error) if self.error else None


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    id: int
    job_id: str
    n: int
    kind: str
    session_id: str | None
    pid: int | None
    started_at: float
    first_event_at: float | None
    ended_at: float | None
    exit_code: int | None
    signal: int | None
    killed_by: str | None
    outcome: str | None
    error: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: int
    job_id: str
    attempt_id: int | None
    ts: float
    source: str
    type: str | None
    subtype: str | None
    data_json: str

    def data(self) -> Any:
        """The event parsed; a garbage line stored as evidence comes back as a string."""
        try:
            return json.loads(self.data_json)
        except ValueError:
            return self.data_json


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    pid: int
    start_time: float
    pgid: int | None
    job_id: str | None
    attempt_id: int | None
    owner_pid: int
    started_at: float
    ended_at: float | None


def _loads(s: str | None) -> Any:
    if s is None:
        return None
    try:
        return json.loads(s)
    except ValueError:
        return None


_EventRow = tuple[str, int | None, float, str, str | None, str | None, str]


class EventWriter:
    """Buffers one attempt's events and writes them in batches.

    ``add`` is O(1) and never touches SQLite unless a batch is full (by count or
    bytes); the process manager also calls :meth:`maybe_flush` on every watchdog
    tick so events reach the store (and the dashboard) within ``interval``.

    With ``background=True`` (what the process manager uses) a full or due batch
    is written by a worker thread (``asyncio.to_thread``) instead of on the event
    loop: a write waits up to the store's busy timeout (10 s) whenever another
    process holds the write lock (``resurgo cancel``, a second batch on the same
    store), and on the loop that wait would freeze the reading, watchdogs and
    stall timers of every job.  Batches queue in order and one thread at a time
    writes them (``_wlock``), so the job's events keep their order; a batch is
    dropped from the queue only once it is committed, so a failed write is
    retried on the next flush instead of lost.  :meth:`drain` writes everything
    and waits for it: the process manager awaits it before an attempt's outcome
    is returned, so later reads see every event.  The thread gets its own
    connection (``Store`` connections are per thread; ``":memory:"`` shares one
    under a lock).  Without ``background`` everything happens in the caller's
    thread, as before.  Redaction (:func:`redact_json_line`) is part of the
    write, not of :meth:`add`: a ``cat`` of a large log is scanned in the
    worker thread, never on the loop that reads every job's stdout.
    """

    __slots__ = (
        "_buf",
        "_bytes",
        "_first_stored",
        "_jobs",
        "_last",
        "_queue",
        "_task",
        "_wlock",
        "attempt_id",
        "background",
        "interval",
        "job_id",
        "max_bytes",
        "max_rows",
    )

    def __init__(
        self,
        jobs: JobStore,
        job_id: str,
        attempt_id: int | None,
        *,
        max_rows: int = 500,
        max_bytes: int = 4 << 20,
        interval: float = 0.5,
        background: bool = False,
    ) -> None:
        self._jobs = jobs
        self.job_id = job_id
        self.attempt_id = attempt_id
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.interval = interval
        self.background = background
        self._buf: list[StreamEvent] = []
        self._bytes = 0
        self._last = jobs.clock.monotonic()
        #: sealed batches not committed yet, oldest first (appended on the loop, removed by the writer)
        self._queue: deque[list[StreamEvent]] = deque()
        #: one writer at a time, so batches are committed in order and never twice
        self._wlock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        #: the attempt's first event is committed, and with it the attempt's ``first_event_at``
        self._first_stored = attempt_id is None

    def add(self, ev: StreamEvent) -> None:
        # kept as printed: redaction happens where the batch is written (with ``background``,
        # the worker thread), so a multi-megabyte tool result is never scanned on the loop
        self._buf.append(ev)
        self._bytes += len(ev.raw)
        if len(self._buf) >= self.max_rows or self._bytes >= self.max_bytes:
            self._due()

    def maybe_flush(self) -> None:
        if (self._buf or self._queue) and self._jobs.clock.monotonic() - self._last >= self.interval:
            self._due()

    def flush(self) -> None:
        """Write everything now, in the calling thread (waits for a batch a worker is writing)."""
        self._seal()
        self._write_queued()

    async def drain(self) -> None:
        """Write everything in a worker thread and wait until it is committed.

        Raises what the store raised; the rows stay queued for another try.
        """
        self._seal()
        if self._queue:
            await asyncio.to_thread(self._write_queued)

    @property
    def pending(self) -> int:
        """Rows not committed yet (buffered or queued)."""
        return len(self._buf) + sum(len(b) for b in self._queue)

    def _due(self) -> None:
        if not self.background:
            self.flush()
            return
        self._seal()
        if self._queue and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._write_in_thread())

    def _seal(self) -> None:
        self._last = self._jobs.clock.monotonic()
        if self._buf:
            self._queue.append(self._buf)
            self._buf, self._bytes = [], 0

    async def _write_in_thread(self) -> None:
        try:
            await asyncio.to_thread(self._write_queued)
        except Exception:  # kept queued: the next flush (at the latest the final drain) retries
            log.warning("could not store events of job %s yet; will retry", self.job_id, exc_info=True)

    def _write_queued(self) -> None:
        with self._wlock:
            while self._queue:
                job, attempt = self.job_id, self.attempt_id
                self._jobs._insert_events(
                    [
                        (job, attempt, e.ts, "cli", e.type, e.subtype, redact_json_line(e.raw, parsed=e.data))
                        for e in self._queue[0]
                    ],
                    first_event_of=None if self._first_stored else attempt,
                )
                self._first_stored = True
                self._queue.popleft()


class JobStore:
    """The supervisor's tables, typed.  Thread-safe through :class:`Store`'s per-thread connections."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock = SYSTEM_CLOCK,
        owner: str | None = None,
    ) -> None:
        #: every write to the run tables goes through this (the one home of their SQL)
        self.runs = RunStore(store, clock=clock)
        self.store = store
        self.clock = clock
        self.owner = owner or owner_id()
        self._secrets: dict[str, dict[str, str]] = {}

    # -- jobs ------------------------------------------------------------------------------
    def create_job(
        self,
        prompt: str,
        *,
        cwd: str | os.PathLike[str],
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        model: str | None = None,
        endpoint: str | None = None,
        idem_key: str | None = None,
        batch_id: str | None = None,
        name: str | None = None,
        job_id: str | None = None,
        session_id: str | None = None,
    ) -> JobRecord:
        """Insert a pending job; with an ``idem_key`` already known, return that job instead.

        ``session_id`` is the session its first attempt will start (chosen by the caller).
        """
        if not isinstance(prompt, str) or not prompt.strip():
            raise JobStoreError("a job needs a non-empty prompt")
        if isinstance(args, str):
            raise JobStoreError("args must be a list of arguments, not one string")
        env = dict(env or {})
        for k, v in env.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise JobStoreError(f"environment override {k!r} must map a string to a string")
        if idem_key is not None:
            existing = self.by_idem_key(idem_key)
            if existing is not None:
                return existing
        jid = job_id or uuid.uuid4().hex
        stored_env = {k: (REDACTED if is_secret_name(k) and v else v) for k, v in env.items()}
        secrets = {k: v for k, v in env.items() if is_secret_name(k) and v}
        try:
            self.runs.insert_job(
                jid,
                prompt=prompt,
                cwd=os.fspath(cwd),
                state=JobState.PENDING.value,
                args=args,
                env=stored_env,
                batch_id=batch_id,
                name=name,
                idem_key=idem_key,
                model=model,
                endpoint=endpoint,
                session_id=session_id,
            )
        except Exception as e:
            if idem_key is not None and "UNIQUE" in str(e):
                existing = self.by_idem_key(idem_key)  # lost a race with another writer
                if existing is not None:
                    return existing
            raise
        if secrets:
            self._secrets[jid] = secrets
        rec = self.get(jid)
        assert rec is not None
        return rec

    def get(self, job_id: str) -> JobRecord | None:
        rows = self.store.query("SELECT * FROM jobs WHERE id=?", (job_id,))
        return self._job(rows[0]) if rows else None

    def require(self, job_id: str) -> JobRecord:
        rec = self.get(job_id)
        if rec is None:
            raise JobStoreError(f"no job with id {job_id!r}")
        return rec

    def by_idem_key(self, idem_key: str) -> JobRecord | None:
        rows = self.store.query("SELECT * FROM jobs WHERE idem_key=?", (idem_key,))
        return self._job(rows[0]) if rows else None

    def list_jobs(
        self,
        *,
        states: Collection[JobState | str] | None = None,
        batch_id: str | None = None,
        limit: int | None = None,
    ) -> list[JobRecord]:
        sql = "SELECT * FROM jobs"
        where: list[str] = []
        params: list[Any] = []
        if states:
            where.append(f"state IN ({','.join('?' * len(states))})")
            params += [JobState(s).value for s in states]
        if batch_id is not None:
            where.append("batch_id=?")
            params.append(batch_id)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at, id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [self._job(r) for r in self.store.query(sql, params)]

    def env_for(self, job_id: str, *, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """The job's real overrides: stored values, secrets from memory or ``environ``.

        A secret override this process never saw (the supervisor restarted) is
        taken from ``environ`` (default: ``os.environ``); if absent there too it
        is dropped with a warning naming the variable, never its value.
        """
        rec = self.require(job_id)
        environ = os.environ if environ is None else environ
        mem = self._secrets.get(job_id, {})
        out: dict[str, str] = {}
        for k, v in rec.env.items():
            if v == REDACTED and is_secret_name(k):
                if k in mem:
                    out[k] = mem[k]
                elif k in environ:
                    out[k] = environ[k]
                else:
                    log.warning("job %s: secret override %s is not available after a restart", job_id, k)
            else:
                out[k] = v
        return out

    def set_state(
        self,
        job_id: str,
        state: JobState | str,
        *,
        reason: str | None = None,
        session_id: str | None = None,
        expect: Collection[JobState | str] | None = None,
        claim: bool = False,
    ) -> bool:
        """Move a job to ``state``; with ``expect``, only from one of those states (compare-and-set).

        Returns False when the job was not in an expected state.  A terminal
        state is final: leaving it raises, so a finished job cannot silently
        start running again (:meth:`reopen` is the one explicit way back).
        ``claim`` records this supervisor as the owner.
        """
        return self.runs.set_state(
            job_id,
            JobState(state).value,
            reason=redact_text(reason) if reason is not None else None,
            session_id=session_id,
            expect=None if expect is None else {JobState(x).value for x in expect},
            owner=self.owner if claim else None,
        )

    def finish_job(
        self,
        job_id: str,
        state: JobState | str,
        *,
        result: Mapping[str, Any] | None = None,
        error: ErrorClass | None = None,
        reason: str | None = None,
        session_id: str | None = None,
        expect: Collection[JobState | str] | None = None,
    ) -> bool:
        """Record the final state, the final ``result`` event and the error that ended it.

        With ``expect``, nothing is written unless the job is in one of those
        states (returns False): a supervisor recording its own ending must not
        overwrite a ``resurgo cancel`` from another process.  State and result
        change in one transaction, so no reader sees one without the other.
        """
        st = JobState(state)
        if not st.terminal:
            raise JobStoreError(f"finish_job needs a final state, got {st.value}")
        text = result.get("result") if result is not None else None
        if not self.runs.finish_job(
            job_id,
            st.value,
            result_text=redact_text(text) if isinstance(text, str) else None,
            result_json=json.dumps(result) if result is not None else None,
            error_json=error.to_json() if error is not None else None,
            reason=redact_text(reason) if reason is not None else None,
            session_id=session_id,
            expect=None if expect is None else {JobState(x).value for x in expect},
        ):
            return False
        self._secrets.pop(job_id, None)
        return True

    def reopen(self, job_id: str, *, reason: str = "re-opened on request") -> bool:
        """Take a ``failed`` or ``cancelled`` job out of its final state, to ``interrupted``.

        The one explicit exception to "a final state is final", for a person
        asking to try again (``resurgo resume`` / ``Supervisor.resume``): the
        finish time and the error are cleared, attempts and events are kept.
        Returns True when the job was re-opened, False when it was not final
        (nothing to do).  A ``succeeded`` job is never re-opened: that would
        run finished work again, so it raises :class:`JobStoreError`.
        """
        return self.runs.reopen(job_id, state=JobState.INTERRUPTED.value, reason=redact_text(reason))

    # -- attempts --------------------------------------------------------------------------
    def begin_attempt(self, job_id: str, *, kind: AttemptKind, session_id: str | None = None) -> int:
        """Add an attempt row (numbered within the job) and return its id for :class:`AttemptSpec`."""
        if kind not in ("start", "resume", "fork", "restart"):
            raise JobStoreError(f"attempt kind must be start, resume, fork or restart, got {kind!r}")
        return self.runs.begin_attempt(job_id, kind=kind, session_id=session_id)[0]

    def finish_attempt(
        self,
        attempt_id: int,
        outcome: AttemptOutcome,
        *,
        error: ErrorClass | None = None,
        label: str | None = None,
    ) -> None:
        """Store how an attempt ended; ``label`` defaults from the outcome (succeeded/failed/cancelled)."""
        if label is None:
            label = "succeeded" if outcome.succeeded else "cancelled" if outcome.cancelled else "failed"
        self.runs.finish_attempt(
            attempt_id,
            outcome=label,
            ended_at=outcome.ended_at,
            session_id=outcome.session_id,
            pid=outcome.pid,
            first_event_at=outcome.first_event_at,
            exit_code=outcome.exit_code,
            signal=outcome.signal,
            killed_by=outcome.killed_by,
            error_json=_error_json(error, outcome),
        )

    def attempts(self, job_id: str) -> list[AttemptRecord]:
        rows = self.store.query("SELECT * FROM attempts WHERE job_id=? ORDER BY n", (job_id,))
        return [
            AttemptRecord(
                id=r["id"],
                job_id=r["job_id"],
                n=r["n"],
                kind=r["kind"],
                session_id=r["session_id"],
                pid=r["pid"],
                started_at=r["started_at"],
                first_event_at=r["first_event_at"],
                ended_at=r["ended_at"],
                exit_code=r["exit_code"],
                signal=r["signal"],
                killed_by=r["killed_by"],
                outcome=r["outcome"],
                error=_loads(r["error_json"]),
            )
            for r in rows
        ]

    # -- events ----------------------------------------------------------------------------
    def event_writer(self, job_id: str, attempt_id: int | None, **kw: Any) -> EventWriter:
        return EventWriter(self, job_id, attempt_id, **kw)

    def append_events(self, job_id: str, attempt_id: int | None, events: Iterable[StreamEvent]) -> int:
        rows = [
            (job_id, attempt_id, e.ts, "cli", e.type, e.subtype, redact_json_line(e.raw, parsed=e.data))
            for e in events
        ]
        self._insert_events(rows)
        return len(rows)

    def append_supervisor_event(
        self,
        job_id: str,
        type: str,
        data: Mapping[str, Any],
        *,
        attempt_id: int | None = None,
        subtype: str | None = None,
    ) -> None:
        """Our own events (recovery started, waiting for a reset ...), in the same stream as the CLI's."""
        payload = json.dumps({"type": type, "subtype": subtype, **data}, default=str)
        self._insert_events(
            [(job_id, attempt_id, self.clock.time(), "supervisor", type, subtype, redact_text(payload))]
        )

    def _insert_events(self, rows: Sequence[_EventRow], *, first_event_of: int | None = None) -> None:
        self.runs.insert_events(rows, first_event_of=first_event_of)

    def events(
        self, job_id: str, *, after_id: int = 0, limit: int | None = None, redact: bool = False
    ) -> list[StoredEvent]:
        """Stored events of a job in order; ``redact`` for anything that will be displayed."""
        sql = "SELECT * FROM events WHERE job_id=? AND id>? ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [
            StoredEvent(
                id=r["id"],
                job_id=r["job_id"],
                attempt_id=r["attempt_id"],
                ts=r["ts"],
                source=r["source"],
                type=r["type"],
                subtype=r["subtype"],
                data_json=redact_text(r["data_json"]) if redact else r["data_json"],
            )
            for r in self.store.query(sql, (job_id, after_id))
        ]

    def event_count(self, job_id: str) -> int:
        return int(self.store.query("SELECT COUNT(*) FROM events WHERE job_id=?", (job_id,))[0][0])

    # -- recoveries ------------------------------------------------------------------------
    def record_recovery(
        self,
        job_id: str,
        *,
        strategy: str,
        attempt_id: int | None = None,
        error_type: str | None = None,
        signature: str | None = None,
        reason: str | None = None,
        detected_at: float | None = None,
        fault_kind: str | None = None,
        fault_at: float | None = None,
        lost_tools: int | None = None,
    ) -> int:
        """A recovery row (and the job's recovery count); phases are filled in as they happen."""
        return self.runs.insert_recovery(
            job_id,
            strategy=strategy,
            detected_at=self.clock.time() if detected_at is None else detected_at,
            attempt_id=attempt_id,
            error_type=error_type,
            signature=signature,
            reason=redact_text(reason) if reason else None,
            fault_kind=fault_kind,
            fault_at=fault_at,
            lost_tools=lost_tools,
        )

    def update_recovery(
        self,
        recovery_id: int,
        *,
        started_at: float | None = None,
        restored_at: float | None = None,
        waited_s: float | None = None,
        succeeded: bool | None = None,
        reason: str | None = None,
        caught_up_at: float | None = None,
        backoff_s: float | None = None,
        budget_s: float | None = None,
    ) -> None:
        self.runs.update_recovery(
            recovery_id,
            started_at=started_at,
            restored_at=restored_at,
            caught_up_at=caught_up_at,
            waited_s=waited_s,
            backoff_s=backoff_s,
            budget_s=budget_s,
            succeeded=succeeded,
            reason=redact_text(reason) if reason is not None else None,
        )

    def recoveries(self, job_id: str) -> list[dict[str, Any]]:
        return self.runs.recoveries(job_id)

    # -- processes -------------------------------------------------------------------------
    def record_process(
        self,
        *,
        pid: int,
        start_time: float,
        pgid: int | None,
        job_id: str | None = None,
        attempt_id: int | None = None,
    ) -> None:
        """Remember a process we started, so a restarted supervisor can end it (pid + start time)."""
        self.runs.record_process(
            pid=pid, start_time=start_time, pgid=pgid, owner_pid=os.getpid(), job_id=job_id, attempt_id=attempt_id
        )

    def process_ended(self, pid: int, start_time: float, ended_at: float | None = None) -> None:
        self.runs.process_ended(pid, start_time, ended_at)

    def open_processes(self) -> list[ProcessRecord]:
        """Processes recorded as started and never recorded as ended."""
        return [
            ProcessRecord(
                pid=r["pid"],
                start_time=r["start_time"],
                pgid=r["pgid"],
                job_id=r["job_id"],
                attempt_id=r["attempt_id"],
                owner_pid=r["owner_pid"],
                started_at=r["started_at"],
                ended_at=r["ended_at"],
            )
            for r in self.store.query("SELECT * FROM processes WHERE ended_at IS NULL ORDER BY started_at")
        ]

    # -- crash reconciliation --------------------------------------------------------------
    def interrupt_orphaned_jobs(self, *, is_alive: Callable[[str | None], bool] = owner_alive) -> list[str]:
        """Mark active jobs whose owning supervisor is dead as ``interrupted``; returns their ids.

        Attempts of those jobs that never recorded an end are marked ``lost``.
        Jobs owned by this very supervisor are left alone.
        """
        moved: list[str] = []
        for rec in self.list_jobs(states=ACTIVE_STATES):
            if rec.owner == self.owner or is_alive(rec.owner):
                continue
            if self.set_state(
                rec.id,
                JobState.INTERRUPTED,
                reason=f"supervisor {rec.owner or '?'} died while the job was {rec.state.value}",
                expect=ACTIVE_STATES,
            ):
                moved.append(rec.id)
                with contextlib.suppress(Exception):
                    self.runs.lose_open_attempts(rec.id)
        return moved

    # -- helpers ---------------------------------------------------------------------------
    def _job(self, r: Any) -> JobRecord:
        return JobRecord(
            id=r["id"],
            batch_id=r["batch_id"],
            name=r["name"],
            idem_key=r["idem_key"],
            prompt=r["prompt"],
            args=tuple(_loads(r["args_json"]) or ()),
            cwd=r["cwd"],
            env=dict(_loads(r["env_json"]) or {}),
            model=r["model"],
            endpoint=r["endpoint"],
            state=JobState(r["state"]),
            session_id=r["session_id"],
            attempts=r["attempts"],
            recoveries=r["recoveries"],
            created_at=r["created_at"],
            started_at=r["started_at"],
            finished_at=r["finished_at"],
            updated_at=r["updated_at"],
            result_text=r["result_text"],
            result=_loads(r["result_json"]),
            error=_loads(r["error_json"]),
            reason=r["reason"],
            owner=r["owner"],
        )


__all__ = [
    "ACTIVE_STATES",
    "TERMINAL_STATES",
    "AttemptRecord",
    "EventWriter",
    "JobRecord",
    "JobState",
    "JobStore",
    "JobStoreError",
    "ProcessRecord",
    "StoredEvent",
    "owner_alive",
    "owner_id",
    "redact_env",
    "redact_text",
]


def _error_json(error: ErrorClass | None, outcome: AttemptOutcome) -> str | None:
    """The classification, plus why resurgo ended the attempt when it did (``resurgo show`` says it)."""
    if error is None:
        return None
    if not outcome.kill_reason:
        return error.to_json()
    d = error.to_dict()
    d["kill_reason"] = redact_text(outcome.kill_reason)
    return json.dumps(d, ensure_ascii=False, separators=(",", ":"))
