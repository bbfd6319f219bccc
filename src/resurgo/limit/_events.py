"""What a limiter tells the outside world: limit changes, overload signals, pauses, refusals.

Events are immutable and handed to listeners after the limiter's lock is
released (as the breaker does), so a listener may read the limiter, and a
slow or failing listener never holds up callers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitEvent:
    """Base of all events: the limiter's name, wall-clock ``at`` and ``monotonic`` time."""

    limiter: str
    at: float
    monotonic: float


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitChanged(LimitEvent):
    """The limit moved from ``old`` to ``new``; ``reason`` says which sample or action moved it."""

    old: int
    new: int
    inflight: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OverloadSignal(LimitEvent):
    """The dependency showed overload: ``kind`` is ``dropped``, ``latency`` or ``paused``.

    ``applied`` is False when the signal was not allowed to cut the limit
    again (it belongs to calls admitted before the latest cut).
    """

    kind: str
    reason: str
    applied: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Paused(LimitEvent):
    """No call is admitted until ``until`` (wall clock): e.g. a usage limit that resets then."""

    until: float
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejected(LimitEvent):
    """A caller gave up waiting for a slot (``waited`` seconds) or asked without waiting."""

    waited: float


class LimitExceededError(Exception):
    """No slot within the wait allowed (``waited`` seconds); ``limit`` and ``inflight`` at that moment."""

    def __init__(self, name: str, *, limit: int, inflight: int, waited: float) -> None:
        super().__init__(f"concurrency limit of {name} reached ({inflight}/{limit} in flight, waited {waited:.3f} s)")
        self.name = name
        self.limit = limit
        self.inflight = inflight
        self.waited = waited


__all__ = ["LimitChanged", "LimitEvent", "LimitExceededError", "OverloadSignal", "Paused", "Rejected"]
