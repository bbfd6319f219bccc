"""Writing SDK runs into the run tables, so the dashboard shows them next to supervised jobs.

Each resilient query (or each turn of a resilient client) becomes one ``jobs``
row (``name`` = ``sdk.query`` / ``sdk.client``), one ``attempts`` row per CLI
run, an ``errors`` row per classified failure, a ``recoveries`` row per
recovery and one ``retries`` row at the end.  Metrics are an observer: a
failing write is logged and dropped, it never changes the outcome of the run.
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any

from resurgo.classify import ErrorClass, make_signature
from resurgo.classify._signature import redact
from resurgo.clock import Clock
from resurgo.store import Store
from resurgo.store.schema import ensure_schema

_log = logging.getLogger("resurgo.sdk")

_MAX_TEXT = 4000


class RunRecorder:
    """Store writes for one run; every method is a no-op without a store."""

    __slots__ = ("_attempt_id", "_clock", "_recovery_id", "_store", "job_id")

    def __init__(
        self,
        store: Store | None,
        clock: Clock,
        *,
        name: str,
        prompt: str,
        cwd: str | None,
        endpoint: str,
        model: str | None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._attempt_id: int | None = None
        self._recovery_id: int | None = None
        self.job_id = f"sdk-{uuid.uuid4().hex[:12]}"
        if store is None:
            return
        now = clock.time()

        def write() -> None:
            ensure_schema(store)
            store.execute(
                "INSERT INTO jobs(id, name, prompt, cwd, model, endpoint, state, created_at, started_at,"
                " updated_at, owner) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                (
                    self.job_id,
                    name,
                    redact(prompt)[:_MAX_TEXT],
                    cwd or os.getcwd(),
                    model,
                    endpoint,
                    "running",
                    now,
                    now,
                    now,
                    f"{os.uname().nodename}:{os.getpid()}",
                ),
            )

        if not self._safe(write):
            self._store = None  # the job row is missing: later rows would violate its foreign key

    def _safe(self, fn: Any) -> bool:
        try:
            fn()
        except Exception:
            _log.exception("resurgo.sdk: could not write metrics to %r; continuing without them", self._store)
            return False
        return True

    def attempt(self, n: int, kind: str, session_id: str | None) -> None:
        store = self._store
        if store is None:
            return
        now = self._clock.time()

        def write() -> None:
            cur = store.execute(
                "INSERT INTO attempts(job_id, n, kind, session_id, started_at) VALUES(?,?,?,?,?)",
                (self.job_id, n, kind, session_id, now),
            )
            self._attempt_id = cur.lastrowid
            store.execute(
                "UPDATE jobs SET attempts=?, state='running', session_id=COALESCE(?, session_id), updated_at=?"
                " WHERE id=?",
                (n, session_id, now, self.job_id),
            )
            if self._recovery_id is not None:
                store.execute(
                    "UPDATE recoveries SET started_at=? WHERE id=?", (now, self._recovery_id)
                )

        self._safe(write)

    def first_event(self) -> None:
        """The current run produced its first message: a recovery in progress is restored."""
        store = self._store
        if store is None:
            return
        now = self._clock.time()

        def write() -> None:
            if self._attempt_id is not None:
                store.execute(
                    "UPDATE attempts SET first_event_at=COALESCE(first_event_at, ?) WHERE id=?",
                    (now, self._attempt_id),
                )
            if self._recovery_id is not None:
                store.execute(
                    "UPDATE recoveries SET restored_at=COALESCE(restored_at, ?) WHERE id=?",
                    (now, self._recovery_id),
                )

        self._safe(write)

    def attempt_end(
        self, *, ok: bool, ec: ErrorClass | None, message: str, exit_code: int | None, session_id: str | None
    ) -> None:
        store = self._store
        if store is None:
            return
        now = self._clock.time()

        def write() -> None:
            if self._attempt_id is not None:
                store.execute(
                    "UPDATE attempts SET ended_at=?, exit_code=?, outcome=?, error_json=?, session_id=COALESCE(?,"
                    " session_id) WHERE id=?",
                    (
                        now,
                        exit_code,
                        "succeeded" if ok else "failed",
                        None if ec is None else ec.to_json(),
                        session_id,
                        self._attempt_id,
                    ),
                )
            if self._recovery_id is not None and ok:
                store.execute("UPDATE recoveries SET succeeded=1 WHERE id=?", (self._recovery_id,))
            if ec is not None and ec.type is not None:
                store.execute(
                    "INSERT INTO errors(ts, job_id, type, severity, retryable, rule, signature, message)"
                    " VALUES(?,?,?,?,?,?,?,?)",
                    (
                        now,
                        self.job_id,
                        ec.type.value,
                        None if ec.severity is None else ec.severity.value,
                        int(ec.retryable),
                        ec.rule,
                        make_signature(ec.category, message),
                        redact(message)[:_MAX_TEXT],
                    ),
                )

        self._safe(write)

    def recovery(self, *, strategy: str, ec: ErrorClass, message: str, detected_at: float) -> None:
        store = self._store
        if store is None:
            return
        prev = self._recovery_id

        def write() -> None:
            if prev is not None:  # the previous recovery led to another failure
                store.execute("UPDATE recoveries SET succeeded=0 WHERE id=? AND succeeded IS NULL", (prev,))
            cur = store.execute(
                "INSERT INTO recoveries(job_id, attempt_id, strategy, error_type, signature, detected_at, waited_s,"
                " reason) VALUES(?,?,?,?,?,?,?,?)",
                (
                    self.job_id,
                    self._attempt_id,
                    strategy,
                    None if ec.type is None else ec.type.value,
                    make_signature(ec.category, message),
                    detected_at,
                    float(ec.retry_after or 0.0),
                    redact(ec.description)[:_MAX_TEXT],
                ),
            )
            self._recovery_id = cur.lastrowid
            store.execute(
                "UPDATE jobs SET recoveries=recoveries+1, state='recovering', updated_at=? WHERE id=?",
                (self._clock.time(), self.job_id),
            )

        self._safe(write)

    def finish(
        self,
        *,
        ok: bool,
        attempts: int,
        slept: float,
        session_id: str | None,
        result: Any,
        ec: ErrorClass | None,
        reason: str | None,
        state: str | None = None,
    ) -> None:
        store = self._store
        if store is None:
            return
        now = self._clock.time()
        result_text = getattr(result, "result", None)

        def write() -> None:
            if self._recovery_id is not None and not ok:
                store.execute(
                    "UPDATE recoveries SET succeeded=0 WHERE id=? AND succeeded IS NULL", (self._recovery_id,)
                )
            store.execute(
                "UPDATE jobs SET state=?, finished_at=?, updated_at=?, session_id=COALESCE(?, session_id),"
                " result_text=?, error_json=?, reason=? WHERE id=?",
                (
                    state or ("succeeded" if ok else "failed"),
                    now,
                    now,
                    session_id,
                    None if not isinstance(result_text, str) else redact(result_text)[:_MAX_TEXT],
                    None if ec is None else ec.to_json(),
                    reason,
                    self.job_id,
                ),
            )
            store.execute(
                "INSERT INTO retries(ts, scope, attempts, succeeded, give_up_reason, slept_s) VALUES(?,?,?,?,?,?)",
                (now, self.job_id, attempts, int(ok), None if ok else reason, slept),
            )

        self._safe(write)


__all__ = ["RunRecorder"]
