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

from resurgo.classifier import ErrorClass, make_signature
from resurgo.classifier._signature import redact
from resurgo.clock import Clock
from resurgo.store import RunStore, Store
from resurgo.store.runs import fault_kind_of

_log = logging.getLogger("resurgo.sdk")

_MAX_TEXT = 4000


class RunRecorder:
    """Store writes for one run; every method is a no-op without a store."""

    __slots__ = ("_attempt_id", "_clock", "_recovery_id", "_store", "job_id")

    _store: RunStore | None

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
        self._store = None
        self._clock = clock
        self._attempt_id: int | None = None
        self._recovery_id: int | None = None
        self.job_id = f"sdk-{uuid.uuid4().hex[:12]}"
        if store is None:
            return

        runs: list[RunStore] = []

        def write() -> None:
            rs = RunStore(store, clock=clock)
            rs.insert_job(
                self.job_id,
                name=name,
                prompt=redact(prompt)[:_MAX_TEXT],
                cwd=cwd or os.getcwd(),
                model=model,
                endpoint=endpoint,
                state="running",
                owner=f"{os.uname().nodename}:{os.getpid()}",
                started=True,
            )
            runs.append(rs)

        # without the job row later rows would violate its foreign key: then write nothing at all
        self._store = runs[0] if self._safe(write, store) else None

    def _safe(self, fn: Any, store: Store | None = None) -> bool:
        try:
            fn()
        except Exception:
            where = store if store is not None else (self._store.store if self._store is not None else None)
            _log.exception("resurgo.sdk: could not write metrics to %r; continuing without them", where)
            return False
        return True

    def attempt(self, n: int, kind: str, session_id: str | None) -> None:
        store = self._store
        if store is None:
            return
        now = self._clock.time()

        def write() -> None:
            self._attempt_id, _ = store.begin_attempt(self.job_id, kind=kind, session_id=session_id, n=n)
            store.set_job_state_unchecked(self.job_id, "running", attempts=n, session_id=session_id)
            if self._recovery_id is not None:
                store.update_recovery(self._recovery_id, started_at=now)

        self._safe(write)

    def first_event(self) -> None:
        """The current run produced its first message: a recovery in progress is restored."""
        store = self._store
        if store is None:
            return
        now = self._clock.time()

        def write() -> None:
            if self._attempt_id is not None:
                store.attempt_first_event(self._attempt_id, now)
            if self._recovery_id is not None:
                store.update_recovery(self._recovery_id, restored_at=now, only_unset=True)

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
                store.finish_attempt(
                    self._attempt_id,
                    outcome="succeeded" if ok else "failed",
                    ended_at=now,
                    exit_code=exit_code,
                    error_json=None if ec is None else ec.to_json(),
                    session_id=session_id,
                    keep_unset=True,
                )
            if self._recovery_id is not None and ok:
                store.update_recovery(self._recovery_id, succeeded=True)
            if ec is not None and ec.type is not None:
                store.insert_error(
                    ts=now,
                    job_id=self.job_id,
                    type=ec.type.value,
                    severity=None if ec.severity is None else ec.severity.value,
                    retryable=ec.retryable,
                    rule=ec.rule,
                    signature=make_signature(ec.category, message),
                    message=redact(message)[:_MAX_TEXT],
                )

        self._safe(write)

    def recovery(
        self, *, strategy: str, ec: ErrorClass, message: str, detected_at: float, waited: float = 0.0
    ) -> None:
        """A recovery starts (after the retrier's wait of ``waited`` s): its row, filed by fault kind.

        The server's ``retry_after`` is the imposed part of the wait, the rest
        is the retrier's own back-off (``resurgo.store.runs.RecoveryPhases``).
        """
        store = self._store
        if store is None:
            return
        prev = self._recovery_id

        def write() -> None:
            if prev is not None:  # the previous recovery led to another failure
                store.update_recovery(prev, succeeded=False, only_unset=True)
            self._recovery_id = store.insert_recovery(
                self.job_id,
                strategy=strategy,
                detected_at=detected_at,
                attempt_id=self._attempt_id,
                error_type=None if ec.type is None else ec.type.value,
                signature=make_signature(ec.category, message),
                reason=redact(ec.description)[:_MAX_TEXT],
                waited_s=min(waited, float(ec.retry_after or 0.0)) if waited else float(ec.retry_after or 0.0),
                state="recovering",
                fault_kind=fault_kind_of(None if ec.type is None else ec.type.value, ec.category),
                fault_at=detected_at,
            )
            if waited > float(ec.retry_after or 0.0):
                store.update_recovery(self._recovery_id, backoff_s=waited - float(ec.retry_after or 0.0))

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
                store.update_recovery(self._recovery_id, succeeded=False, only_unset=True)
            store.force_finish(
                self.job_id,
                state or ("succeeded" if ok else "failed"),
                session_id=session_id,
                result_text=None if not isinstance(result_text, str) else redact(result_text)[:_MAX_TEXT],
                error_json=None if ec is None else ec.to_json(),
                reason=reason,
            )
            store.insert_retries(
                scope=self.job_id, attempts=attempts, succeeded=ok, give_up_reason=None if ok else reason,
                slept_s=slept, ts=now,
            )

        self._safe(write)


__all__ = ["RunRecorder"]
