"""The one home of every write to the run tables (``jobs``, ``attempts``, ``events``,
``recoveries``, ``errors``, ``retries``, ``breaker_transitions``, ``processes``).

The supervisor's :class:`~resurgo.supervise.JobStore`, its recovery
orchestrator and the claude-agent-sdk integration all record runs; before this
module each wrote its own SQL, so a column added in :mod:`resurgo.store.schema`
had to be found in three places.  Now they call :class:`RunStore`, and the SQL
of the run tables lives here and in the schema, nowhere else.

What stays with the callers is *policy*: which state a job may move to, what is
redacted, what a failed write means (the SDK drops it, the supervisor raises).
What lives here is *mechanics*: the statements, the transactions that keep a
state change and its result together, and the readers that turn rows into the
figures people ask for (:meth:`RunStore.recovery_phases`).

Text values are written as given: redaction is the caller's job, because the
caller knows what the text is (a prompt, a tool's output, an error message).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from resurgo.clock import SYSTEM_CLOCK, Clock
from resurgo.store._sqlite import Store
from resurgo.store.schema import ensure_schema

#: Final job states (a row in one of them is not moved again except by :meth:`RunStore.reopen`).
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})

#: The kinds of fault a recovery is filed under (``recoveries.fault_kind``).
#: ``kill``: the CLI died of a signal nobody in resurgo sent; ``stall``: the progress
#: watchdog ended a silent CLI; ``429``/``529``/``5xx``: the API's status (from the
#: result or the CLI's own ``api_retry`` events); ``network``: the connection failed
#: (refused, reset, timed out, cut stream); ``supervisor``: the job's supervisor died
#: and a new one resumed it; ``other``: anything else (deadline, crash without signal ...).
FAULT_KINDS = ("kill", "stall", "429", "529", "5xx", "network", "supervisor", "other")

_NETWORK_CATEGORIES = frozenset({"connection", "timeout", "stream_incomplete", "cli_connection", "tls_certificate"})


def fault_kind_of(error_type: str | None, category: str | None, status: int | None = None) -> str:
    """The fault kind of an API-side failure from its HTTP status, else the classifier's verdict.

    The part of the fault kind that needs no process evidence (the supervisor
    decides ``kill`` and ``stall`` first); shared by the supervisor and the SDK.
    """
    if status == 429:
        return "429"
    if status == 529:
        return "529"
    if status is not None and 500 <= status < 600:
        return "5xx"
    cat = category or ""
    if cat in ("rate_limit", "usage_limit"):
        return "429"
    if cat == "overloaded":
        return "529"
    if cat in ("server_error", "bad_gateway"):
        return "5xx"
    if error_type == "network" or cat in _NETWORK_CATEGORIES:
        return "network"
    return "other"


#: Event row: job_id, attempt_id, ts, source, type, subtype, data_json.
EventRow = tuple[str, int | None, float, str, str | None, str | None, str]


class JobStoreError(ValueError):
    """A job operation got bad input (unknown job, illegal state change, bad arguments)."""


@dataclass(frozen=True, slots=True)
class RecoveryPhases:
    """Where the time of one recovery went, in seconds (None: that moment was never reached).

    The phases follow the recovery's timeline without overlap::

        fault_at --detect--> detected_at --imposed + backoff + budget + overhead--> started_at
                 --start--> restored_at --redo--> caught_up_at

    * ``detect_s``: from the fault to the supervisor noticing it.  The fault's
      moment is the process's end for a kill, the last event before the
      silence for a stall, and the CLI's first ``api_retry`` (or its error
      result) for an API fault, so the CLI's own retries count as detection.
    * ``imposed_s``: waits someone else imposed: a server's retry-after or
      quota reset, and the endpoint's breaker being open.
    * ``backoff_s``: resurgo's own back-off between recoveries.
    * ``budget_s``: waiting for the endpoint's shared retry budget.
    * ``overhead_s``: the rest before the CLI was started again
      (classification, bookkeeping, clean-up sweeps).
    * ``start_s``: from starting the CLI to its first event.
    * ``redo_s``: from that first event until the lost work was done again:
      the run had received as many tool results as the tool calls lost with
      the failed attempt (calls in flight when it failed, for a resume; every
      completed call too, for a restart from the prompt), or its result event.
      Zero when nothing was lost.

    A ``relay_retry`` (the supervisor's API relay asked the API again; the CLI
    kept running) has the same phases with the relay as the actor:
    ``fault_at`` is when the failed request was sent, ``started_at`` when the
    next try was, ``start_s`` that try's wait for the API's first byte (or for
    the tries after it), and ``redo_s`` zero: nothing reached the CLI.
    """

    id: int
    job_id: str
    attempt_id: int | None
    strategy: str
    error_type: str | None
    fault_kind: str
    fault_at: float | None
    detected_at: float
    started_at: float | None
    restored_at: float | None
    caught_up_at: float | None
    succeeded: bool | None
    detect_s: float | None
    imposed_s: float
    backoff_s: float
    budget_s: float
    overhead_s: float | None
    start_s: float | None
    redo_s: float | None
    lost_tools: int | None

    @property
    def recovery_s(self) -> float | None:
        """Fault to the recovered run's first event (what MTTR measures)."""
        if self.restored_at is None:
            return None
        return max(0.0, self.restored_at - (self.fault_at if self.fault_at is not None else self.detected_at))

    @property
    def recovery_excl_imposed_s(self) -> float | None:
        """:attr:`recovery_s` without the waits someone else imposed: what resurgo is answerable for."""
        r = self.recovery_s
        return None if r is None else max(0.0, r - self.imposed_s)

    @property
    def own_wait_s(self) -> float:
        """resurgo's own delay: back-off and retry budget."""
        return self.backoff_s + self.budget_s

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["recovery_s"] = self.recovery_s
        d["recovery_excl_imposed_s"] = self.recovery_excl_imposed_s
        return d


#: The phase columns of :class:`RecoveryPhases`, in timeline order (for tables and summaries).
PHASES = ("detect_s", "imposed_s", "backoff_s", "budget_s", "overhead_s", "start_s", "redo_s")


def _pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of a non-empty sequence."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q * len(s)) - 1))
    return s[k]


def summarize_phases(phases: Iterable[RecoveryPhases]) -> dict[str, dict[str, Any]]:
    """Median and p95 of each phase per fault kind (and ``all``), over recoveries that restored.

    A phase a recovery never reached (``None``) is left out of that phase's
    figures; ``n`` counts the restored recoveries of the kind.
    """
    groups: dict[str, list[RecoveryPhases]] = {}
    for p in phases:
        if p.restored_at is None:
            continue
        groups.setdefault(p.fault_kind, []).append(p)
        groups.setdefault("all", []).append(p)
    out: dict[str, dict[str, Any]] = {}
    for kind, ps in sorted(groups.items(), key=lambda kv: (kv[0] == "all", kv[0])):
        row: dict[str, Any] = {"n": len(ps)}
        for name in (*PHASES, "recovery_s", "recovery_excl_imposed_s"):
            vals = [v for v in (getattr(p, name) for p in ps) if v is not None]
            row[name] = {"median": _pct(vals, 0.5), "p95": _pct(vals, 0.95)} if vals else None
        out[kind] = row
    return out


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) else None


#: An attempt's first event, kept if already known (the SDK's writer and the event writer's first batch).
_MARK_FIRST_EVENT = "UPDATE attempts SET first_event_at=COALESCE(first_event_at, ?) WHERE id=?"


class RunStore:
    """Typed writes and reads of the run tables over one :class:`Store`.

    Cheap to create (the schema check is one query once current); every
    component that records runs makes its own over the shared store.
    """

    __slots__ = ("clock", "store")

    def __init__(self, store: Store, *, clock: Clock = SYSTEM_CLOCK) -> None:
        ensure_schema(store)
        self.store = store
        self.clock = clock

    # -- jobs --------------------------------------------------------------------------------------
    def insert_job(
        self,
        job_id: str,
        *,
        prompt: str,
        cwd: str,
        state: str,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        batch_id: str | None = None,
        name: str | None = None,
        idem_key: str | None = None,
        model: str | None = None,
        endpoint: str | None = None,
        owner: str | None = None,
        started: bool = False,
        session_id: str | None = None,
    ) -> None:
        """Insert a job row (raises ``sqlite3.IntegrityError`` on a duplicate id or idem key)."""
        now = self.clock.time()
        self.store.execute(
            "INSERT INTO jobs(id, batch_id, name, idem_key, prompt, args_json, cwd, env_json, model,"
            " endpoint, state, created_at, started_at, updated_at, owner, session_id)"
            " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                job_id,
                batch_id,
                name,
                idem_key,
                prompt,
                json.dumps(list(args)),
                cwd,
                json.dumps(dict(env or {})),
                model,
                endpoint,
                state,
                now,
                now if started else None,
                now,
                owner,
                session_id,
            ),
        )

    def set_state(
        self,
        job_id: str,
        state: str,
        *,
        reason: str | None = None,
        session_id: str | None = None,
        expect: Collection[str] | None = None,
        owner: str | None = None,
    ) -> bool:
        """Move a job to ``state`` (compare-and-set with ``expect``); False when it was elsewhere.

        Leaving a final state raises :class:`JobStoreError` (:meth:`reopen` is
        the one way back).  ``owner`` claims the job for that supervisor.
        """
        with self.store.transaction() as conn:
            return self._transition(
                conn, job_id, state, reason=reason, session_id=session_id, expect=expect, owner=owner
            )

    def _transition(
        self,
        conn: sqlite3.Connection,
        job_id: str,
        new: str,
        *,
        reason: str | None = None,
        session_id: str | None = None,
        expect: Collection[str] | None = None,
        owner: str | None = None,
    ) -> bool:
        now = self.clock.time()
        sets = ["state=?", "updated_at=?"]
        params: list[Any] = [new, now]
        if reason is not None:
            sets.append("reason=?")
            params.append(reason)
        if session_id is not None:
            sets.append("session_id=?")
            params.append(session_id)
        if owner is not None:
            sets.append("owner=?")
            params.append(owner)
        if new == "running":
            sets.append("started_at=COALESCE(started_at, ?)")
            params.append(now)
        if new in TERMINAL:
            sets.append("finished_at=?")
            params.append(now)
        row = conn.execute("SELECT state FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            raise JobStoreError(f"no job with id {job_id!r}")
        cur = str(row[0])
        if expect is not None and cur not in {str(s) for s in expect}:
            return False
        if cur in TERMINAL and new != cur:
            raise JobStoreError(f"job {job_id} is {cur}; it cannot become {new}")
        conn.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id=?", (*params, job_id))
        return True

    def finish_job(
        self,
        job_id: str,
        state: str,
        *,
        result_text: str | None = None,
        result_json: str | None = None,
        error_json: str | None = None,
        reason: str | None = None,
        session_id: str | None = None,
        expect: Collection[str] | None = None,
    ) -> bool:
        """Final state, result and error in one transaction (no reader sees one without the other)."""
        if state not in TERMINAL:
            raise JobStoreError(f"finish_job needs a final state, got {state}")
        with self.store.transaction() as conn:
            if not self._transition(conn, job_id, state, reason=reason, expect=expect):
                return False
            conn.execute(
                "UPDATE jobs SET result_text=?, result_json=?, error_json=?, session_id=COALESCE(?, session_id)"
                " WHERE id=?",
                (result_text, result_json, error_json, session_id, job_id),
            )
        return True

    def force_finish(
        self,
        job_id: str,
        state: str,
        *,
        session_id: str | None = None,
        result_text: str | None = None,
        error_json: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Record the end of a job whose rows only this writer touches (an SDK run): no state check."""
        now = self.clock.time()
        self.store.execute(
            "UPDATE jobs SET state=?, finished_at=?, updated_at=?, session_id=COALESCE(?, session_id),"
            " result_text=?, error_json=?, reason=? WHERE id=?",
            (state, now, now, session_id, result_text, error_json, reason, job_id),
        )

    def reopen(self, job_id: str, *, state: str, reason: str | None) -> bool:
        """A final (not succeeded) job back to ``state``; False when it was not final."""
        now = self.clock.time()
        with self.store.transaction() as conn:
            row = conn.execute("SELECT state FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None:
                raise JobStoreError(f"no job with id {job_id!r}")
            cur = str(row[0])
            if cur == "succeeded":
                raise JobStoreError(f"job {job_id} succeeded; a finished job is not re-opened")
            if cur not in TERMINAL:
                return False
            conn.execute(
                "UPDATE jobs SET state=?, finished_at=NULL, error_json=NULL, updated_at=?, reason=? WHERE id=?",
                (state, now, reason, job_id),
            )
        return True

    def clear_reason(self, job_id: str) -> None:
        """A job that recovered has no failure to explain."""
        self.store.execute("UPDATE jobs SET reason=NULL WHERE id=?", (job_id,))

    def set_job_state_unchecked(self, job_id: str, state: str, *, attempts: int | None = None,
                                session_id: str | None = None) -> None:
        """State (and attempt count) of a job whose rows only this writer touches (an SDK run)."""
        self.store.execute(
            "UPDATE jobs SET state=?, attempts=COALESCE(?, attempts), session_id=COALESCE(?, session_id),"
            " updated_at=? WHERE id=?",
            (state, attempts, session_id, self.clock.time(), job_id),
        )

    # -- attempts ----------------------------------------------------------------------------------
    def begin_attempt(
        self, job_id: str, *, kind: str, session_id: str | None = None, n: int | None = None
    ) -> tuple[int, int]:
        """Add the job's next attempt row (number ``n``, default the job's count + 1); returns ``(id, n)``."""
        now = self.clock.time()
        with self.store.transaction() as conn:
            row = conn.execute("SELECT attempts FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None:
                raise JobStoreError(f"no job with id {job_id!r}")
            n = int(row[0]) + 1 if n is None else n
            cur = conn.execute(
                "INSERT INTO attempts(job_id, n, kind, session_id, started_at) VALUES(?,?,?,?,?)",
                (job_id, n, kind, session_id, now),
            )
            conn.execute(
                "UPDATE jobs SET attempts=?, updated_at=?, session_id=COALESCE(?, session_id) WHERE id=?",
                (n, now, session_id, job_id),
            )
            return int(cur.lastrowid or 0), n

    def finish_attempt(
        self,
        attempt_id: int,
        *,
        outcome: str,
        ended_at: float,
        session_id: str | None = None,
        pid: int | None = None,
        first_event_at: float | None = None,
        exit_code: int | None = None,
        signal: int | None = None,
        killed_by: str | None = None,
        error_json: str | None = None,
        keep_unset: bool = False,
    ) -> None:
        """How an attempt ended; its session id also becomes the job's newest.

        ``keep_unset`` keeps the stored pid and first-event time where None is
        given (a writer that never knew them, such as the SDK).
        """
        with self.store.transaction() as conn:
            if keep_unset:
                conn.execute(
                    "UPDATE attempts SET session_id=COALESCE(?, session_id), pid=COALESCE(?, pid),"
                    " first_event_at=COALESCE(first_event_at, ?), ended_at=?, exit_code=?, signal=?, killed_by=?,"
                    " outcome=?, error_json=? WHERE id=?",
                    (session_id, pid, first_event_at, ended_at, exit_code, signal, killed_by, outcome, error_json,
                     attempt_id),
                )
            else:
                conn.execute(
                    "UPDATE attempts SET session_id=COALESCE(?, session_id), pid=?, first_event_at=?, ended_at=?,"
                    " exit_code=?, signal=?, killed_by=?, outcome=?, error_json=? WHERE id=?",
                    (session_id, pid, first_event_at, ended_at, exit_code, signal, killed_by, outcome, error_json,
                     attempt_id),
                )
            if session_id:
                conn.execute(
                    "UPDATE jobs SET session_id=?, updated_at=? WHERE id=(SELECT job_id FROM attempts WHERE id=?)",
                    (session_id, self.clock.time(), attempt_id),
                )

    def fail_attempt(self, attempt_id: int, *, error_json: str) -> None:
        """Close an attempt that never got a process (the CLI could not be found)."""
        self.store.execute(
            "UPDATE attempts SET ended_at=?, outcome='failed', error_json=? WHERE id=?",
            (self.clock.time(), error_json, attempt_id),
        )

    def attempt_first_event(self, attempt_id: int, ts: float) -> None:
        self.store.execute(_MARK_FIRST_EVENT, (ts, attempt_id))

    def lose_open_attempts(self, job_id: str) -> None:
        """Attempts of a job whose supervisor died that never recorded an end: ``lost``."""
        self.store.execute(
            "UPDATE attempts SET outcome='lost', ended_at=COALESCE(ended_at, ?) WHERE job_id=? AND ended_at IS NULL",
            (self.clock.time(), job_id),
        )

    # -- events ------------------------------------------------------------------------------------
    def insert_events(self, rows: Sequence[EventRow], *, first_event_of: int | None = None) -> None:
        """Append event rows in one transaction (the hot write path: one ``executemany``).

        ``first_event_of``: an attempt whose first event is ``rows[0]``; its
        ``first_event_at`` is set in the same transaction.  The attempt's row is
        otherwise finished only when it ends, and an attempt whose supervisor
        was killed never ends: without this its record would say it never
        spoke, though its events show it did.
        """
        if not rows:
            return
        with self.store.transaction() as conn:
            conn.executemany(
                "INSERT INTO events(job_id, attempt_id, ts, source, type, subtype, data_json) VALUES(?,?,?,?,?,?,?)",
                rows,
            )
            if first_event_of is not None:
                conn.execute(_MARK_FIRST_EVENT, (rows[0][2], first_event_of))

    def attempt_events(self, attempt_id: int, *, types: Collection[str] = ("assistant", "user", "result")) -> list[Any]:
        """The stored CLI events of one attempt (parsed), for rebuilding its progress after a restart."""
        marks = ",".join("?" * len(types))
        rows = self.store.query(
            f"SELECT data_json FROM events WHERE attempt_id=? AND source='cli' AND type IN ({marks}) ORDER BY id",
            (attempt_id, *types),
        )
        out: list[Any] = []
        for r in rows:
            try:
                out.append(json.loads(r[0]))
            except ValueError:
                continue
        return out

    # -- recoveries --------------------------------------------------------------------------------
    def insert_recovery(
        self,
        job_id: str,
        *,
        strategy: str,
        detected_at: float,
        attempt_id: int | None = None,
        error_type: str | None = None,
        signature: str | None = None,
        reason: str | None = None,
        fault_kind: str | None = None,
        fault_at: float | None = None,
        waited_s: float = 0.0,
        lost_tools: int | None = None,
        state: str | None = None,
    ) -> int:
        """A recovery row, and the job's recovery count (and ``state``, when given) in the same transaction."""
        if fault_kind is not None and fault_kind not in FAULT_KINDS:
            raise JobStoreError(f"fault kind must be one of {', '.join(FAULT_KINDS)}, got {fault_kind!r}")
        with self.store.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO recoveries(job_id, attempt_id, strategy, error_type, signature, detected_at, reason,"
                " fault_kind, fault_at, waited_s, lost_tools) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                (job_id, attempt_id, strategy, error_type, signature, detected_at, reason, fault_kind, fault_at,
                 waited_s, lost_tools),
            )
            sets = "recoveries=recoveries+1, updated_at=?"
            params: list[Any] = [self.clock.time()]
            if state is not None:
                sets += ", state=?"
                params.append(state)
            conn.execute(f"UPDATE jobs SET {sets} WHERE id=?", (*params, job_id))
            return int(cur.lastrowid or 0)

    def update_recovery(
        self,
        recovery_id: int,
        *,
        started_at: float | None = None,
        restored_at: float | None = None,
        caught_up_at: float | None = None,
        waited_s: float | None = None,
        backoff_s: float | None = None,
        budget_s: float | None = None,
        succeeded: bool | None = None,
        reason: str | None = None,
        only_unset: bool = False,
    ) -> None:
        """Set the given columns of a recovery; ``only_unset`` keeps times and verdicts already stored."""
        sets: list[str] = []
        params: list[Any] = []
        cols = (
            ("started_at", started_at),
            ("restored_at", restored_at),
            ("caught_up_at", caught_up_at),
            ("waited_s", waited_s),
            ("backoff_s", backoff_s),
            ("budget_s", budget_s),
            ("succeeded", None if succeeded is None else (1 if succeeded else 0)),
            ("reason", reason),
        )
        for col, val in cols:
            if val is None:
                continue
            sets.append(f"{col}=COALESCE({col}, ?)" if only_unset and col not in ("waited_s", "backoff_s",
                                                                                 "budget_s", "reason") else f"{col}=?")
            params.append(val)
        if sets:
            self.store.execute(f"UPDATE recoveries SET {', '.join(sets)} WHERE id=?", (*params, recovery_id))

    def recoveries(self, job_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.store.query("SELECT * FROM recoveries WHERE job_id=? ORDER BY id", (job_id,))]

    def recovery_phases(self, job_id: str | None = None) -> list[RecoveryPhases]:
        """Every recovery (of ``job_id``, or all), broken into phases; see :class:`RecoveryPhases`."""
        return read_recovery_phases(self.store, job_id)

    # -- errors, retries, breaker transitions -------------------------------------------------------
    def insert_error(
        self,
        *,
        ts: float,
        job_id: str | None,
        type: str,
        retryable: bool,
        severity: str | None = None,
        rule: str | None = None,
        signature: str | None = None,
        message: str | None = None,
    ) -> None:
        self.store.execute(
            "INSERT INTO errors(ts, job_id, type, severity, retryable, rule, signature, message)"
            " VALUES(?,?,?,?,?,?,?,?)",
            (ts, job_id, type, severity, 1 if retryable else 0, rule, signature, message),
        )

    def insert_retries(
        self, *, scope: str, attempts: int, succeeded: bool, give_up_reason: str | None, slept_s: float,
        ts: float | None = None,
    ) -> None:
        self.store.execute(
            "INSERT INTO retries(ts, scope, attempts, succeeded, give_up_reason, slept_s) VALUES(?,?,?,?,?,?)",
            (self.clock.time() if ts is None else ts, scope, attempts, 1 if succeeded else 0, give_up_reason,
             slept_s),
        )

    def last_breaker_transition(self, breaker: str) -> dict[str, Any] | None:
        """The newest stored transition of ``breaker``: ``{ts, from_state, to_state, metrics}`` or None."""
        rows = self.store.query(
            "SELECT ts, from_state, to_state, metrics_json FROM breaker_transitions WHERE breaker=?"
            " ORDER BY ts DESC, id DESC LIMIT 1",
            (breaker,),
        )
        if not rows:
            return None
        r = rows[0]
        try:
            metrics = json.loads(r["metrics_json"]) if r["metrics_json"] else {}
        except ValueError:
            metrics = {}
        return {"ts": float(r["ts"]), "from_state": r["from_state"], "to_state": r["to_state"],
                "metrics": metrics if isinstance(metrics, dict) else {}}

    def save_endpoint_times(self, endpoint: str, *, ts: float, first: Sequence[float], gap: Sequence[float]) -> None:
        """Replace the stored recent answer times of ``endpoint`` (see :meth:`endpoint_times`)."""
        self.store.execute(
            "INSERT INTO endpoint_times(endpoint, ts, first_json, gap_json) VALUES(?,?,?,?)"
            " ON CONFLICT(endpoint) DO UPDATE SET ts=excluded.ts, first_json=excluded.first_json,"
            " gap_json=excluded.gap_json",
            (endpoint, ts, json.dumps([round(float(v), 4) for v in first]),
             json.dumps([round(float(v), 4) for v in gap])),
        )

    def endpoint_times(self, endpoint: str) -> tuple[float, list[float], list[float]] | None:
        """``(saved at, first-answer delays, gaps)`` of ``endpoint``; None: nothing (readable) stored.

        Anything that is not a list of finite non-negative numbers is dropped, not
        raised: these are hints for a watch, and a damaged row must not stop a
        supervisor from starting.
        """
        rows = self.store.query("SELECT ts, first_json, gap_json FROM endpoint_times WHERE endpoint=?", (endpoint,))
        if not rows:
            return None

        def nums(raw: Any) -> list[float]:
            try:
                v = json.loads(raw)
            except (TypeError, ValueError):
                return []
            if not isinstance(v, list):
                return []
            return [float(x) for x in v if isinstance(x, (int, float)) and not isinstance(x, bool)
                    and math.isfinite(x) and x >= 0]

        r = rows[0]
        return float(r["ts"]), nums(r["first_json"]), nums(r["gap_json"])

    def insert_breaker_transition(
        self, *, breaker: str, ts: float, from_state: str, to_state: str, reason: str | None, metrics_json: str | None
    ) -> None:
        self.store.execute(
            "INSERT INTO breaker_transitions(breaker, ts, from_state, to_state, reason, metrics_json)"
            " VALUES(?,?,?,?,?,?)",
            (breaker, ts, from_state, to_state, reason, metrics_json),
        )

    # -- processes ---------------------------------------------------------------------------------
    def record_process(
        self,
        *,
        pid: int,
        start_time: float,
        pgid: int | None,
        owner_pid: int,
        job_id: str | None = None,
        attempt_id: int | None = None,
    ) -> None:
        self.store.execute(
            "INSERT OR REPLACE INTO processes(pid, start_time, pgid, job_id, attempt_id, owner_pid, started_at)"
            " VALUES(?,?,?,?,?,?,?)",
            (pid, start_time, pgid, job_id, attempt_id, owner_pid, self.clock.time()),
        )
        if attempt_id is not None:
            self.store.execute("UPDATE attempts SET pid=? WHERE id=?", (pid, attempt_id))

    def process_ended(self, pid: int, start_time: float, ended_at: float | None = None) -> None:
        self.store.execute(
            "UPDATE processes SET ended_at=? WHERE pid=? AND start_time=?",
            (self.clock.time() if ended_at is None else ended_at, pid, start_time),
        )


def read_recovery_phases(store: Store, job_id: str | None = None) -> list[RecoveryPhases]:
    """:meth:`RunStore.recovery_phases` for readers: no schema check, no write lock.

    A store not yet migrated to the phase columns reads their values as unknown.
    """
    sql = "SELECT * FROM recoveries"
    params: tuple[Any, ...] = ()
    if job_id is not None:
        sql += " WHERE job_id=?"
        params = (job_id,)
    return [_phases(r) for r in store.query(sql + " ORDER BY detected_at, id", params)]


def _phases(row: sqlite3.Row) -> RecoveryPhases:
    r: dict[str, Any] = dict(row)
    r.setdefault("fault_kind", None)
    r.setdefault("fault_at", None)
    r.setdefault("caught_up_at", None)
    r.setdefault("backoff_s", 0.0)
    r.setdefault("budget_s", 0.0)
    r.setdefault("lost_tools", None)
    detected = float(r["detected_at"])
    fault_at = _num(r["fault_at"])
    started = _num(r["started_at"])
    restored = _num(r["restored_at"])
    caught = _num(r["caught_up_at"])
    imposed = float(r["waited_s"] or 0.0)
    backoff = float(r["backoff_s"] or 0.0)
    budget = float(r["budget_s"] or 0.0)
    ok = r["succeeded"]
    return RecoveryPhases(
        id=int(r["id"]),
        job_id=str(r["job_id"]),
        attempt_id=r["attempt_id"],
        strategy=str(r["strategy"]),
        error_type=r["error_type"],
        fault_kind=str(r["fault_kind"] or "other"),
        fault_at=fault_at,
        detected_at=detected,
        started_at=started,
        restored_at=restored,
        caught_up_at=caught,
        succeeded=None if ok is None else bool(ok),
        detect_s=None if fault_at is None else max(0.0, detected - fault_at),
        imposed_s=imposed,
        backoff_s=backoff,
        budget_s=budget,
        overhead_s=None if started is None else max(0.0, started - detected - imposed - backoff - budget),
        start_s=None if started is None or restored is None else max(0.0, restored - started),
        redo_s=None if restored is None or caught is None else max(0.0, caught - restored),
        lost_tools=r["lost_tools"],
    )


__all__ = [
    "FAULT_KINDS",
    "PHASES",
    "TERMINAL",
    "EventRow",
    "JobStoreError",
    "RecoveryPhases",
    "RunStore",
    "fault_kind_of",
    "read_recovery_phases",
    "summarize_phases",
]
