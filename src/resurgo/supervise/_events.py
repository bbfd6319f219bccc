"""Typed results and events of supervised runs.

Callers of the API (the ``resurgo`` command, the chaos runner, the Redis
worker, users' scripts) watch runs through these frozen dataclasses instead of
parsing log lines or the raw stream-json: a recovery is a
:class:`RecoveryPlanned` followed by :class:`Restored`, not a pattern in text.
Every event carries ``job_id`` and ``ts`` (wall clock) so one merged stream of
many jobs stays readable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from resurgo.classifier._types import ErrorClass, ErrorType
from resurgo.supervise._jobstore import JobRecord, JobState

# -- exit statuses ------------------------------------------------------------------------------

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_NOT_RETRYABLE = 4
EXIT_INTERRUPTED = 5
EXIT_INTERNAL = 6


def exit_status_for(state: JobState, error: ErrorClass | None, *, internal: bool = False) -> int:
    """The process exit status that says how a job ended (documented in the README).

    Auth gets its own status because it is the one failure a human must fix
    before anything else can work; other non-retryable failures (validation,
    billing, configuration) share 4; a retryable failure we gave up on is 1,
    and so is a failure no rule recognised (``internal``): claiming 4 would send
    people hunting for a configuration mistake, and 6 is reserved for resurgo's
    own bugs (``internal=True``).
    """
    if internal:
        return EXIT_INTERNAL
    if state is JobState.SUCCEEDED:
        return EXIT_OK
    if state in (JobState.INTERRUPTED, JobState.CANCELLED) or not state.terminal:
        return EXIT_INTERRUPTED
    if error is None:
        return EXIT_FAILED
    if error.type is ErrorType.AUTH:
        return EXIT_AUTH
    if error.type is ErrorType.INTERNAL:
        # Unclassified (the classifier's fallback) or a remote internal error: the run failed.
        # Neither "validation, billing or configuration" (4) nor a bug of resurgo itself (6) is true.
        return EXIT_FAILED
    if not error.retryable and error.type is not None:
        return EXIT_NOT_RETRYABLE
    return EXIT_FAILED


@dataclass(frozen=True, slots=True)
class JobResult:
    """How a job ended (or stands, for an interrupted one).

    ``ok`` is True only for ``succeeded``.  ``error`` is the classification of
    the failure that ended the job; ``reason`` says in words why it failed or
    stopped.  ``exit_status`` follows :func:`exit_status_for`.
    """

    job_id: str
    state: JobState
    session_id: str | None
    attempts: int
    recoveries: int
    result_text: str | None = None
    result: Mapping[str, Any] | None = None
    error: ErrorClass | None = None
    reason: str | None = None
    exit_status: int = EXIT_OK
    duration_s: float = 0.0
    cost_usd: float | None = None
    name: str | None = None
    idem_key: str | None = None

    @property
    def ok(self) -> bool:
        return self.state is JobState.SUCCEEDED

    @classmethod
    def from_record(cls, rec: JobRecord, *, internal: bool = False) -> JobResult:
        """The result as the store knows it (also for jobs finished by an earlier supervisor)."""
        err = rec.error_class
        end = rec.finished_at if rec.finished_at is not None else rec.updated_at
        start = rec.started_at if rec.started_at is not None else rec.created_at
        cost: float | None = None
        if rec.result is not None:
            c = rec.result.get("total_cost_usd")
            if isinstance(c, int | float) and not isinstance(c, bool):
                cost = float(c)
        return cls(
            job_id=rec.id,
            state=rec.state,
            session_id=rec.session_id,
            attempts=rec.attempts,
            recoveries=rec.recoveries,
            result_text=rec.result_text,
            result=rec.result,
            error=err,
            reason=rec.reason,
            exit_status=exit_status_for(rec.state, err, internal=internal),
            duration_s=max(0.0, end - start),
            cost_usd=cost,
            name=rec.name,
            idem_key=rec.idem_key,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``resurgo run --json``, the worker's reply)."""
        return {
            "job_id": self.job_id,
            "name": self.name,
            "idem_key": self.idem_key,
            "state": self.state.value,
            "ok": self.ok,
            "session_id": self.session_id,
            "attempts": self.attempts,
            "recoveries": self.recoveries,
            "result_text": self.result_text,
            "error": self.error.to_dict() if self.error is not None else None,
            "reason": self.reason,
            "exit_status": self.exit_status,
            "duration_s": round(self.duration_s, 3),
            "cost_usd": self.cost_usd,
        }

    def raise_for_status(self) -> JobResult:
        """Raise :class:`JobFailedError` unless the job succeeded; returns self for chaining."""
        if not self.ok:
            raise JobFailedError(self)
        return self


class JobFailedError(Exception):
    """A job did not succeed; ``result`` says how it ended, ``error_class`` why."""

    def __init__(self, result: JobResult) -> None:
        self.result = result
        self.error_class: ErrorClass | None = result.error
        what = result.error.type.value if result.error is not None and result.error.type else result.state.value
        super().__init__(f"job {result.job_id} {result.state.value} ({what}): {result.reason or 'no reason recorded'}")


# -- events ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisorEvent:
    """Base of every typed event."""

    job_id: str
    ts: float


@dataclass(frozen=True, slots=True, kw_only=True)
class JobQueued(SupervisorEvent):
    name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptStarted(SupervisorEvent):
    n: int
    kind: str  # start | resume | fork
    session_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CliEvent(SupervisorEvent):
    """One raw stream-json event of the CLI (``{"type": "unparseable", ...}`` for garbage lines)."""

    event: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolStarted(SupervisorEvent):
    name: str
    summary: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureDetected(SupervisorEvent):
    error: ErrorClass
    attempt: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoveryPlanned(SupervisorEvent):
    strategy: str
    action: str
    reason: str
    wait_s: float
    server_wait: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Waiting(SupervisorEvent):
    until_ts: float | None  # None: until something changes (breaker probe, budget tokens)
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetBypassed(SupervisorEvent):
    """A recovery went ahead without retry-budget tokens after waiting ``waited_s``
    (``SupervisorConfig.budget_wait_max``): the budget's bound on retries was exceeded."""

    endpoint: str
    waited_s: float
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerStateChanged(SupervisorEvent):
    """A breaker transition; ``job_id`` is ``""`` (breakers are shared by every job of an endpoint)."""

    breaker: str
    from_state: str
    to_state: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Restored(SupervisorEvent):
    recovery_s: float  # failure detected -> first event of the recovered run


@dataclass(frozen=True, slots=True, kw_only=True)
class JobFinished(SupervisorEvent):
    result: JobResult = field(repr=False)


__all__ = [
    "EXIT_AUTH",
    "EXIT_FAILED",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_RETRYABLE",
    "EXIT_OK",
    "EXIT_USAGE",
    "AttemptStarted",
    "BreakerStateChanged",
    "BudgetBypassed",
    "CliEvent",
    "FailureDetected",
    "JobFailedError",
    "JobFinished",
    "JobQueued",
    "JobResult",
    "RecoveryPlanned",
    "Restored",
    "SupervisorEvent",
    "ToolStarted",
    "Waiting",
    "exit_status_for",
]
