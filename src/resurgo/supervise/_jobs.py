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
import sqlite3
import threading
import uuid
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import psutil

from resurgo._launch import owner_id
from resurgo._redact import redact_json_line
from resurgo.classify._types import ErrorClass
from resurgo.clock import SYSTEM_CLOCK, Clock
from resurgo.store import Store
from resurgo.store.schema import ensure_schema
from resurgo.supervise._redact import REDACTED, is_secret_name, redact_env, redact_text

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


class JobStoreError(ValueError):
    """A job operation got bad input (unknown job, illegal state change, bad arguments)."""


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
    thread, as before.
    """

    __slots__ = (
        "_buf",
        "_bytes",
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
        self._buf: list[_EventRow] = []
        self._bytes = 0
        self._last = jobs.clock.monotonic()
        #: sealed batches not committed yet, oldest first (appended on the loop, removed by the writer)
        self._queue: deque[list[_EventRow]] = deque()
        #: one writer at a time, so batches are committed in order and never twice
        self._wlock = threading.Lock()
        self._task: asyncio.Task[None] | None = None

    def add(self, ev: StreamEvent) -> None:
        raw = redact_json_line(ev.raw, parsed=ev.data)
        self._buf.append((self.job_id, self.attempt_id, ev.ts, "cli", ev.type, ev.subtype, raw))
        self._bytes += len(raw)
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
                self._jobs._insert_events(self._queue[0])
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
        ensure_schema(store)
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
        now = self.clock.time()
        try:
            self.store.execute(
                "INSERT INTO jobs(id, batch_id, name, idem_key, prompt, args_json, cwd, env_json, model,"
                " endpoint, state, created_at, updated_at, session_id) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    jid,
                    batch_id,
                    name,
                    idem_key,
                    prompt,
                    json.dumps(list(args)),
                    os.fspath(cwd),
                    json.dumps(stored_env),
                    model,
                    endpoint,
                    JobState.PENDING.value,
                    now,
                    now,
                    session_id,
                ),
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
        with self.store.transaction() as conn:
            return self._transition(
                conn, job_id, JobState(state), reason=reason, session_id=session_id, expect=expect, claim=claim
            )

    def _transition(
        self,
        conn: sqlite3.Connection,
        job_id: str,
        new: JobState,
        *,
        reason: str | None = None,
        session_id: str | None = None,
        expect: Collection[JobState | str] | None = None,
        claim: bool = False,
    ) -> bool:
        """The state change of :meth:`set_state`, inside the caller's transaction."""
        now = self.clock.time()
        sets = ["state=?", "updated_at=?"]
        params: list[Any] = [new.value, now]
        if reason is not None:
            sets.append("reason=?")
            params.append(redact_text(reason))
        if session_id is not None:
            sets.append("session_id=?")
            params.append(session_id)
        if claim:
            sets.append("owner=?")
            params.append(self.owner)
        if new is JobState.RUNNING:
            sets.append("started_at=COALESCE(started_at, ?)")
            params.append(now)
        if new.terminal:
            sets.append("finished_at=?")
            params.append(now)
        row = conn.execute("SELECT state FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            raise JobStoreError(f"no job with id {job_id!r}")
        cur = JobState(row[0])
        if expect is not None and cur not in {JobState(s) for s in expect}:
            return False
        if cur.terminal and new is not cur:
            raise JobStoreError(f"job {job_id} is {cur.value}; it cannot become {new.value}")
        conn.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id=?", (*params, job_id))
        return True

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
        with self.store.transaction() as conn:
            if not self._transition(conn, job_id, st, reason=reason, expect=expect):
                return False
            conn.execute(
                "UPDATE jobs SET result_text=?, result_json=?, error_json=?, session_id=COALESCE(?, session_id)"
                " WHERE id=?",
                (
                    redact_text(text) if isinstance(text, str) else None,
                    json.dumps(result) if result is not None else None,
                    error.to_json() if error is not None else None,
                    session_id,
                    job_id,
                ),
            )
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
        now = self.clock.time()
        with self.store.transaction() as conn:
            row = conn.execute("SELECT state FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None:
                raise JobStoreError(f"no job with id {job_id!r}")
            cur = JobState(row[0])
            if cur is JobState.SUCCEEDED:
                raise JobStoreError(f"job {job_id} succeeded; a finished job is not re-opened")
            if not cur.terminal:
                return False
            conn.execute(
                "UPDATE jobs SET state=?, finished_at=NULL, error_json=NULL, updated_at=?, reason=? WHERE id=?",
                (JobState.INTERRUPTED.value, now, redact_text(reason), job_id),
            )
        return True

    def note_recovery(self, job_id: str) -> None:
        self.store.execute(
            "UPDATE jobs SET recoveries=recoveries+1, updated_at=? WHERE id=?", (self.clock.time(), job_id)
        )

    # -- attempts --------------------------------------------------------------------------
    def begin_attempt(self, job_id: str, *, kind: AttemptKind, session_id: str | None = None) -> int:
        """Add an attempt row (numbered within the job) and return its id for :class:`AttemptSpec`."""
        if kind not in ("start", "resume", "fork", "restart"):
            raise JobStoreError(f"attempt kind must be start, resume, fork or restart, got {kind!r}")
        now = self.clock.time()
        with self.store.transaction() as conn:
            row = conn.execute("SELECT attempts FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None:
                raise JobStoreError(f"no job with id {job_id!r}")
            n = int(row[0]) + 1
            cur = conn.execute(
                "INSERT INTO attempts(job_id, n, kind, session_id, started_at) VALUES(?,?,?,?,?)",
                (job_id, n, kind, session_id, now),
            )
            conn.execute(
                "UPDATE jobs SET attempts=?, updated_at=?, session_id=COALESCE(?, session_id) WHERE id=?",
                (n, now, session_id, job_id),
            )
            return int(cur.lastrowid or 0)

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
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE attempts SET session_id=COALESCE(?, session_id), pid=?, first_event_at=?, ended_at=?,"
                " exit_code=?, signal=?, killed_by=?, outcome=?, error_json=? WHERE id=?",
                (
                    outcome.session_id,
                    outcome.pid,
                    outcome.first_event_at,
                    outcome.ended_at,
                    outcome.exit_code,
                    outcome.signal,
                    outcome.killed_by,
                    label,
                    error.to_json() if error is not None else None,
                    attempt_id,
                ),
            )
            if outcome.session_id:
                conn.execute(
                    "UPDATE jobs SET session_id=?, updated_at=? WHERE id=(SELECT job_id FROM attempts WHERE id=?)",
                    (outcome.session_id, self.clock.time(), attempt_id),
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

    def _insert_events(self, rows: Sequence[_EventRow]) -> None:
        if not rows:
            return
        with self.store.transaction() as conn:
            conn.executemany(
                "INSERT INTO events(job_id, attempt_id, ts, source, type, subtype, data_json) VALUES(?,?,?,?,?,?,?)",
                rows,
            )

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
    ) -> int:
        cur = self.store.execute(
            "INSERT INTO recoveries(job_id, attempt_id, strategy, error_type, signature, detected_at, reason)"
            " VALUES(?,?,?,?,?,?,?)",
            (
                job_id,
                attempt_id,
                strategy,
                error_type,
                signature,
                self.clock.time() if detected_at is None else detected_at,
                redact_text(reason) if reason else None,
            ),
        )
        self.note_recovery(job_id)
        return int(cur.lastrowid or 0)

    def update_recovery(
        self,
        recovery_id: int,
        *,
        started_at: float | None = None,
        restored_at: float | None = None,
        waited_s: float | None = None,
        succeeded: bool | None = None,
        reason: str | None = None,
    ) -> None:
        sets: list[str] = []
        params: list[Any] = []
        for col, val in (("started_at", started_at), ("restored_at", restored_at), ("waited_s", waited_s)):
            if val is not None:
                sets.append(f"{col}=?")
                params.append(val)
        if succeeded is not None:
            sets.append("succeeded=?")
            params.append(1 if succeeded else 0)
        if reason is not None:
            sets.append("reason=?")
            params.append(redact_text(reason))
        if sets:
            self.store.execute(f"UPDATE recoveries SET {', '.join(sets)} WHERE id=?", (*params, recovery_id))

    def recoveries(self, job_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.store.query("SELECT * FROM recoveries WHERE job_id=? ORDER BY id", (job_id,))]

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
        self.store.execute(
            "INSERT OR REPLACE INTO processes(pid, start_time, pgid, job_id, attempt_id, owner_pid, started_at)"
            " VALUES(?,?,?,?,?,?,?)",
            (pid, start_time, pgid, job_id, attempt_id, os.getpid(), self.clock.time()),
        )
        if attempt_id is not None:
            self.store.execute("UPDATE attempts SET pid=? WHERE id=?", (pid, attempt_id))

    def process_ended(self, pid: int, start_time: float, ended_at: float | None = None) -> None:
        self.store.execute(
            "UPDATE processes SET ended_at=? WHERE pid=? AND start_time=?",
            (self.clock.time() if ended_at is None else ended_at, pid, start_time),
        )

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
                    self.store.execute(
                        "UPDATE attempts SET outcome='lost', ended_at=COALESCE(ended_at, ?) "
                        "WHERE job_id=? AND ended_at IS NULL",
                        (self.clock.time(), rec.id),
                    )
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
