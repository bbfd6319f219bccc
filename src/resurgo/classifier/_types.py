"""The vocabulary of the error taxonomy (``shared/spec/error-taxonomy.md``).

These types are the contract between the classifier and everything that acts on
its verdicts (retrier, breaker, supervisor, metrics), so they live in one small
module with no dependencies and serialise with the field names the spec fixes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any


class ErrorType(StrEnum):
    """The seven kinds of failure; each decides default retryability and strategy."""

    NETWORK = "network"
    TIMEOUT = "timeout"
    RESOURCE = "resource"
    AUTH = "auth"
    VALIDATION = "validation"
    PROCESS = "process"
    INTERNAL = "internal"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Priority(StrEnum):
    """P0 is the most urgent; derived from severity and how widespread a signature is."""

    P0 = "P0"
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"


class Strategy(StrEnum):
    """Recovery strategies the supervisor knows how to run."""

    RETRY = "retry"
    WAIT_UNTIL = "wait_until"
    RESTART_PROCESS = "restart_process"
    RESUME_SESSION = "resume_session"
    FORK_SESSION = "fork_session"
    CLEANUP_RESOURCES = "cleanup_resources"
    FAILOVER = "failover"
    ESCALATE = "escalate"
    ABORT = "abort"
    NONE = "none"


#: Severity each type gets unless a rule says otherwise (spec: "Severity, priority, strategy").
DEFAULT_SEVERITY: Mapping[ErrorType, Severity] = {
    ErrorType.NETWORK: Severity.MEDIUM,
    ErrorType.TIMEOUT: Severity.MEDIUM,
    ErrorType.RESOURCE: Severity.HIGH,
    ErrorType.AUTH: Severity.CRITICAL,
    ErrorType.VALIDATION: Severity.MEDIUM,
    ErrorType.PROCESS: Severity.HIGH,
    ErrorType.INTERNAL: Severity.HIGH,
}

#: Default retryability per type; rules refine it (billing is resource but not retryable).
DEFAULT_RETRYABLE: Mapping[ErrorType, bool] = {
    ErrorType.NETWORK: True,
    ErrorType.TIMEOUT: True,
    ErrorType.RESOURCE: True,
    ErrorType.AUTH: False,
    ErrorType.VALIDATION: False,
    ErrorType.PROCESS: True,
    ErrorType.INTERNAL: False,
}

DEFAULT_STRATEGY: Mapping[ErrorType, Strategy] = {
    ErrorType.NETWORK: Strategy.RETRY,
    ErrorType.TIMEOUT: Strategy.RETRY,
    ErrorType.RESOURCE: Strategy.WAIT_UNTIL,
    ErrorType.AUTH: Strategy.ESCALATE,
    ErrorType.VALIDATION: Strategy.ABORT,
    ErrorType.PROCESS: Strategy.RESTART_PROCESS,
    ErrorType.INTERNAL: Strategy.ABORT,
}

SEVERITY_PRIORITY: Mapping[Severity, Priority] = {
    Severity.CRITICAL: Priority.P0,
    Severity.HIGH: Priority.P1,
    Severity.MEDIUM: Priority.P2,
    Severity.LOW: Priority.P3,
}


@dataclass(frozen=True, slots=True)
class ErrorClass:
    """The classifier's verdict on one failure (or on something that is not one).

    ``type`` and ``severity`` are ``None`` when the observation is not an error
    (a successful run, a process resurgo itself cancelled).  ``retry_after`` is
    in seconds from the moment of classification, or ``None`` when nothing said
    when to come back.
    """

    type: ErrorType | None
    severity: Severity | None
    category: str
    description: str
    retryable: bool
    retry_after: float | None = None
    strategy: Strategy = Strategy.NONE
    priority: Priority = Priority.P3
    rule: str = ""
    confidence: float = 1.0
    evidence: tuple[str, ...] = field(default=(), compare=False)

    @property
    def is_error(self) -> bool:
        return self.type is not None

    @classmethod
    def not_an_error(
        cls, *, category: str = "ok", description: str = "not an error", rule: str = "", confidence: float = 1.0
    ) -> ErrorClass:
        return cls(
            type=None,
            severity=None,
            category=category,
            description=description,
            retryable=False,
            retry_after=None,
            strategy=Strategy.NONE,
            priority=Priority.P3,
            rule=rule,
            confidence=confidence,
        )

    def with_(self, **changes: Any) -> ErrorClass:
        return replace(self, **changes)

    def to_dict(self, *, explain: bool = False) -> dict[str, Any]:
        """The JSON form of the spec and of ``resurgo classify``: fixed field names.

        Written out field by field (not ``dataclasses.asdict``, which deep-copies
        every value): ``resurgo classify`` serialises one verdict per input line.
        """
        t = self.type
        sev = self.severity
        out: dict[str, Any] = {
            "error": t is not None,
            "type": _plain(t),
            "severity": _plain(sev),
            "category": self.category,
            "description": self.description,
            "retryable": self.retryable,
            "retry_after": self.retry_after,
            "strategy": _plain(self.strategy),
            "priority": _plain(self.priority),
            "rule": self.rule,
            "confidence": self.confidence,
        }
        if explain:
            out["evidence"] = list(self.evidence)
        return out

    def to_json(self, *, explain: bool = False) -> str:
        return json.dumps(self.to_dict(explain=explain), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ErrorClass:
        t = d.get("type")
        sev = d.get("severity")
        return cls(
            type=ErrorType(t) if t else None,
            severity=Severity(sev) if sev else None,
            category=str(d.get("category", "")),
            description=str(d.get("description", "")),
            retryable=bool(d.get("retryable", False)),
            retry_after=None if d.get("retry_after") is None else float(d["retry_after"]),
            strategy=Strategy(d.get("strategy") or "none"),
            priority=Priority(d.get("priority") or "P3"),
            rule=str(d.get("rule", "")),
            confidence=float(d.get("confidence", 1.0)),
        )


def _plain(v: Any) -> Any:
    return v.value if isinstance(v, StrEnum) else v


KILLED_BY_VALUES = frozenset({"stall_watchdog", "deadline", "shutdown", "user"})

_OBS_FIELDS = (
    "message",
    "exception_type",
    "exit_code",
    "signal",
    "killed_by",
    "http_status",
    "headers",
    "stderr",
    "events",
)


class ObservationError(ValueError):
    """An observation object has a field of the wrong shape."""


@dataclass(frozen=True, slots=True)
class Observation:
    """A failure seen from outside Python: the spec's JSON form.

    Every field is optional; the classifier uses whatever evidence is present.
    Header names are lower-cased on construction so rules need not care.
    """

    message: str | None = None
    exception_type: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    killed_by: str | None = None
    http_status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    stderr: str | None = None
    events: Sequence[Mapping[str, Any]] = ()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Observation:
        """Build from untrusted JSON, with a clear error naming the bad field."""
        if not isinstance(d, Mapping):
            raise ObservationError("observation must be a JSON object")
        kw: dict[str, Any] = {}
        for name in ("message", "exception_type", "killed_by", "stderr"):
            v = d.get(name)
            if v is not None:
                if not isinstance(v, str):
                    raise ObservationError(f"field {name!r} must be a string")
                kw[name] = v
        for name in ("exit_code", "signal", "http_status"):
            v = d.get(name)
            if v is not None:
                if isinstance(v, bool) or not isinstance(v, int):
                    raise ObservationError(f"field {name!r} must be an integer")
                kw[name] = v
        h = d.get("headers")
        if h is not None:
            if not isinstance(h, Mapping):
                raise ObservationError("field 'headers' must be an object")
            kw["headers"] = {str(k).lower(): str(v) for k, v in h.items()}
        ev = d.get("events")
        if ev is not None:
            if not isinstance(ev, list) or not all(isinstance(e, Mapping) for e in ev):
                raise ObservationError("field 'events' must be a list of objects")
            kw["events"] = tuple(ev)
        return cls(**kw)

    def __post_init__(self) -> None:
        if self.headers and any(k != k.lower() for k in self.headers):
            object.__setattr__(self, "headers", {k.lower(): v for k, v in self.headers.items()})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in _OBS_FIELDS:
            v = getattr(self, name)
            if v is None or v == {} or v == ():
                continue
            out[name] = dict(v) if name == "headers" else list(v) if name == "events" else v
        return out

    @property
    def result_event(self) -> Mapping[str, Any] | None:
        """The last ``result`` event of a CLI run, if it printed one."""
        for e in reversed(self.events):
            if e.get("type") == "result":
                found: Mapping[str, Any] = e
                return found
        return None
