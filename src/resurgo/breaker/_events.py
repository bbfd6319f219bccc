"""What a breaker tells the outside world: its states, rejection error and events.

Every transition, rejection and threshold crossing is an immutable event handed
to listeners after the breaker's lock is released, so a listener may call back
into the breaker (read its state, reset it) without deadlocking, and a slow
listener never delays other callers' bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, cast

from resurgo.breaker._window import WindowSnapshot

__all__ = [
    "CallRejected",
    "CircuitEvent",
    "CircuitOpenError",
    "CircuitState",
    "Outcome",
    "StateTransition",
    "ThresholdExceeded",
]


class CircuitState(StrEnum):
    """The six states (resilience4j's set)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    #: Rejects everything until an operator resets it (or, when an auth error put it
    #: there, until a health probe succeeds).
    FORCED_OPEN = "forced_open"
    #: Admits everything and records nothing.
    DISABLED = "disabled"
    #: Records and reports threshold crossings but never opens.
    METRICS_ONLY = "metrics_only"


class Outcome(StrEnum):
    """How the breaker judged one finished call (returned by ``Permit.on_error``)."""

    SUCCESS = "success"
    FAILURE = "failure"
    #: Not the dependency's fault (validation error, cancellation, ignored type):
    #: the permit is released and the call counts as neither.
    IGNORED = "ignored"
    #: An auth error forced the breaker open.
    FORCED_OPEN = "forced_open"
    #: A rate limit with a reset time opened the breaker until then.
    RATE_LIMITED = "rate_limited"
    #: The breaker moved on while the call ran (or its probe lease expired); not counted.
    STALE = "stale"


@dataclass(frozen=True, slots=True, kw_only=True)
class CircuitEvent:
    """Base of all events; ``at`` is wall-clock time from the breaker's clock."""

    breaker: str
    at: float
    monotonic: float


@dataclass(frozen=True, slots=True, kw_only=True)
class StateTransition(CircuitEvent):
    """One entry of the state history, also delivered to listeners.

    ``metrics`` is the window of the state being left, at the moment it was
    left, so the history explains *why* the breaker moved.  ``open_for`` is the
    planned wait when the new state is OPEN.
    """

    from_state: CircuitState
    to_state: CircuitState
    reason: str
    metrics: WindowSnapshot
    attempt: int = 0
    open_for: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "breaker": self.breaker,
            "at": self.at,
            "from": self.from_state.value,
            "to": self.to_state.value,
            "reason": self.reason,
            "attempt": self.attempt,
            "open_for": self.open_for,
            "metrics": self.metrics.to_dict(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRejected(CircuitEvent):
    """A call was not let through (only built when someone listens)."""

    state: CircuitState
    retry_after: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ThresholdExceeded(CircuitEvent):
    """A rate crossed its threshold (emitted in METRICS_ONLY, once per excursion,
    and in CLOSED just before the transition it causes)."""

    metric: str
    value: float
    threshold: float
    metrics: WindowSnapshot = field(compare=False)


class CircuitOpenError(Exception):
    """The breaker did not let the call through; nothing was called.

    ``retry_after`` is the wait left in seconds until the breaker will admit a
    probe, or ``None`` when nothing but an operator (or a health probe) will
    close it again, or when the half-open probe slots are all taken.

    Constructed as ``CircuitOpenError(name, state, retry_after, reason="")``.
    The fields are read from ``args`` rather than set in an ``__init__``: a
    rejection is a hot path, and the C-level constructor is several times
    cheaper than a Python one (it also keeps the error picklable).
    """

    if TYPE_CHECKING:

        def __init__(
            self, name: str, state: CircuitState, retry_after: float | None, reason: str = ""
        ) -> None: ...

    @property
    def name(self) -> str:
        return str(self.args[0])

    @property
    def state(self) -> CircuitState:
        return cast(CircuitState, self.args[1])

    @property
    def retry_after(self) -> float | None:
        return cast("float | None", self.args[2])

    @property
    def reason(self) -> str:
        return str(self.args[3]) if len(self.args) > 3 else ""

    def __str__(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        ra = self.retry_after
        when = "no retry time known" if ra is None else f"retry in {ra:.3g} s"
        return f"circuit {self.name!r} is {self.state.value}{why}; {when}"
