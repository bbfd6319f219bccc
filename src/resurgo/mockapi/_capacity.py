"""A capacity model for the stand-in: what a real, busy API does when asked for more than it has.

Two limits, both changeable while the server runs (``POST /_resurgo/capacity``,
:meth:`MockServer.set_capacity`, ``resurgo mock-api --max-inflight/--rate``):

* ``max_inflight``: at most K Messages requests being answered at once; one
  more is refused at once with ``529 overloaded_error`` (the API's answer to
  load, not to a quota);
* ``rate`` per ``rate_window`` seconds: a request budget in fixed windows;
  beyond it ``429 rate_limit_error`` with ``retry-after`` (seconds to the
  window's end) and the ``anthropic-ratelimit-requests-*`` headers.

``latency`` is added to every admitted request while it holds its slot, so a
benchmark's bottleneck is the API's capacity rather than the machine's CPU.
Only ``POST /v1/messages`` counts (token counting is free, as in the real API).
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Capacity:
    """The capacity plan; every field None/0 means unlimited / no added latency."""

    max_inflight: int | None = None
    rate: int | None = None
    rate_window: float = 60.0
    latency: float = 0.0

    def __post_init__(self) -> None:
        if self.max_inflight is not None and (
            isinstance(self.max_inflight, bool) or not isinstance(self.max_inflight, int) or self.max_inflight < 1
        ):
            raise ValueError(f"max_inflight must be an integer >= 1 or None, got {self.max_inflight!r}")
        if self.rate is not None and (isinstance(self.rate, bool) or not isinstance(self.rate, int) or self.rate < 1):
            raise ValueError(f"rate must be an integer >= 1 or None, got {self.rate!r}")
        for name in ("rate_window", "latency"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        if self.rate_window <= 0:
            raise ValueError("rate_window must be > 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Capacity:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown capacity field(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**data)

    @property
    def limited(self) -> bool:
        return self.max_inflight is not None or self.rate is not None or self.latency > 0


@dataclass(frozen=True, slots=True)
class Admission:
    """The capacity model's answer to one request: ``status`` None = admitted (then call ``release``)."""

    status: int | None
    retry_after: float | None = None
    headers: dict[str, str] | None = None
    latency: float = 0.0


class CapacityState:
    """Counts in flight and per window (thread-safe: the control endpoint and tests change it live)."""

    def __init__(self, capacity: Capacity | None = None) -> None:
        self._lock = threading.Lock()
        self._cap = capacity or Capacity()
        self._inflight = 0
        self._max_seen = 0
        self._window_start = 0.0
        self._window_count = 0
        self.admitted = 0
        self.refused_inflight = 0
        self.refused_rate = 0

    @property
    def capacity(self) -> Capacity:
        return self._cap

    def set(self, capacity: Capacity) -> None:
        """A new plan; requests in flight keep their slots (a lower K refuses new ones until enough end)."""
        with self._lock:
            self._cap = capacity

    def admit(self, now: float) -> Admission:
        with self._lock:
            cap = self._cap
            if cap.max_inflight is not None and self._inflight >= cap.max_inflight:
                self.refused_inflight += 1
                return Admission(529)
            if cap.rate is not None:
                if now - self._window_start >= cap.rate_window:
                    # fixed windows aligned to the clock, like per-minute quotas
                    self._window_start = now - (now % cap.rate_window)
                    self._window_count = 0
                reset_at = self._window_start + cap.rate_window
                if self._window_count >= cap.rate:
                    self.refused_rate += 1
                    retry = max(0.0, reset_at - now)
                    return Admission(429, retry_after=retry, headers=_rate_headers(cap.rate, 0, reset_at))
                self._window_count += 1
            self._inflight += 1
            self._max_seen = max(self._max_seen, self._inflight)
            self.admitted += 1
            return Admission(None, latency=cap.latency)

    def release(self) -> None:
        with self._lock:
            self._inflight = max(0, self._inflight - 1)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "capacity": self._cap.to_dict(),
                "inflight": self._inflight,
                "max_inflight_seen": self._max_seen,
                "admitted": self.admitted,
                "refused_inflight": self.refused_inflight,
                "refused_rate": self.refused_rate,
            }


def _rate_headers(limit: int, remaining: int, reset_at: float) -> dict[str, str]:
    reset = datetime.fromtimestamp(reset_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "anthropic-ratelimit-requests-limit": str(limit),
        "anthropic-ratelimit-requests-remaining": str(remaining),
        "anthropic-ratelimit-requests-reset": reset,
    }


__all__ = ["Admission", "Capacity", "CapacityState"]
