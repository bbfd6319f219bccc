"""Validated breaker configuration.

The thresholds are a frozen, validated value object (resilience4j's
``CircuitBreakerConfig``) so that one bad number is rejected where it is written
— in code or in a TOML table — instead of surfacing later as a breaker that
never opens or never closes.  Rates are fractions in ``(0, 1]``, durations are
seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum
from typing import Any

__all__ = ["CircuitThresholds", "ThresholdsError", "WaitGenerator", "WindowKind"]

#: ``attempt -> seconds``: how long to stay open after the ``attempt``-th consecutive opening
#: (1 for the first opening since the breaker was last closed).
WaitGenerator = Callable[[int], float]


class ThresholdsError(ValueError):
    """A threshold is missing, of the wrong type or out of range; the message names it."""


class WindowKind(StrEnum):
    """How the sliding window decides which outcomes still count."""

    #: The last ``sliding_window`` seconds (a ring of per-bucket aggregates).
    TIME = "time"
    #: The last ``sliding_window`` calls (a ring of outcomes with running totals).
    COUNT = "count"


def _num(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ThresholdsError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    if math.isnan(v) or math.isinf(v):
        raise ThresholdsError(f"{name} must be finite, got {value!r}")
    return v


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ThresholdsError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class CircuitThresholds:
    """When the breaker opens, how long it stays open and how it probes.

    Defaults follow resilience4j where it has one (50 % failures, 100 % slow
    calls at 60 s, a minimum of 100 calls is too many for a CLI supervisor, so
    10 here) and the seed's field names.

    failure_rate:
        Open when at least this fraction of the calls in the window failed.
    slow_call_rate:
        Open when at least this fraction of the calls in the window were slow.
    min_calls:
        No verdict while the window holds fewer calls: two failures out of two
        calls say little about a dependency.
    sliding_window:
        Seconds (``window_kind="time"``) or number of calls (``"count"``).
    window_kind:
        ``"time"`` or ``"count"``.
    bucket_seconds:
        Width of one time bucket; the window forgets outcomes one bucket at a
        time.  Must divide into the window at least once.
    half_open_max_calls:
        Probes admitted after the wait in OPEN; the verdict comes once all of
        them report, and at most this many run at once.
    half_open_lease:
        Seconds a probe may take before its lease expires; an expired probe
        counts as a slow failure so a hung call cannot wedge the breaker in
        HALF_OPEN (a known resilience4j bug class).
    slow_call_duration:
        A call taking at least this many seconds is tagged slow.
    wait_in_open:
        Seconds to stay open after the first opening.
    wait_multiplier / max_wait_in_open:
        The default wait generator: ``min(max_wait_in_open, wait_in_open *
        wait_multiplier ** (attempt - 1))`` so a dependency that keeps failing
        its probes is left alone for longer each time.
    max_retry_after:
        Upper bound in seconds on a rate-limit reset the breaker will honour
        (``None``: any); a garbled header must not park a breaker for a week.
    consecutive_failures:
        Also open after this many failed calls in a row, none succeeding in
        between (pybreaker's ``fail_max``; ``None``: off).  A rate over a long
        window is steady under scattered failures but slow to see an outage
        begin: the successes before it keep the rate low for a while.  A run of
        failures with no success among them is what an outage looks like from
        its first seconds.
    """

    failure_rate: float = 0.5
    slow_call_rate: float = 1.0
    min_calls: int = 10
    sliding_window: float = 60.0
    window_kind: WindowKind = WindowKind.TIME
    bucket_seconds: float = 1.0
    half_open_max_calls: int = 3
    half_open_lease: float = 60.0
    slow_call_duration: float = 60.0
    wait_in_open: float = 30.0
    wait_multiplier: float = 1.0
    max_wait_in_open: float = 600.0
    max_retry_after: float | None = None
    consecutive_failures: int | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for name in ("failure_rate", "slow_call_rate"):
            v = _num(name, getattr(self, name))
            if not 0.0 < v <= 1.0:
                hint = f" (did you mean {v / 100:g}?)" if 1.0 < v <= 100.0 else ""
                raise ThresholdsError(f"{name} is a fraction in (0, 1], got {v:g}{hint}")
            set_(self, name, v)
        for name in ("min_calls", "half_open_max_calls"):
            if _int(name, getattr(self, name)) < 1:
                raise ThresholdsError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.consecutive_failures is not None and _int("consecutive_failures", self.consecutive_failures) < 1:
            raise ThresholdsError(f"consecutive_failures must be at least 1 or None, got {self.consecutive_failures}")
        try:
            kind = WindowKind(self.window_kind)
        except ValueError:
            raise ThresholdsError(
                f"window_kind must be 'time' or 'count', got {self.window_kind!r}"
            ) from None
        set_(self, "window_kind", kind)
        if kind is WindowKind.COUNT:
            size = _int("sliding_window (a call count for window_kind='count')",
                        self.sliding_window)
            if size < 1:
                raise ThresholdsError(f"sliding_window must be at least 1 call, got {size}")
        else:
            w = _num("sliding_window", self.sliding_window)
            b = _num("bucket_seconds", self.bucket_seconds)
            if b <= 0:
                raise ThresholdsError(f"bucket_seconds must be positive, got {b:g}")
            if w < b:
                raise ThresholdsError(
                    f"sliding_window ({w:g} s) must be at least one bucket ({b:g} s)"
                )
            if w / b > 1_000_000:
                raise ThresholdsError("sliding_window / bucket_seconds exceeds 1e6 buckets")
            set_(self, "sliding_window", w)
            set_(self, "bucket_seconds", b)
        for name in ("half_open_lease", "slow_call_duration", "wait_in_open",
                     "max_wait_in_open"):
            v = _num(name, getattr(self, name))
            if v < 0 or (v == 0 and name in ("half_open_lease", "slow_call_duration")):
                raise ThresholdsError(f"{name} must be positive, got {v:g}")
            set_(self, name, v)
        m = _num("wait_multiplier", self.wait_multiplier)
        if m < 1.0:
            raise ThresholdsError(f"wait_multiplier must be >= 1 (waits never shrink), got {m:g}")
        set_(self, "wait_multiplier", m)
        if self.max_wait_in_open < self.wait_in_open:
            raise ThresholdsError(
                f"max_wait_in_open ({self.max_wait_in_open:g}) is below wait_in_open "
                f"({self.wait_in_open:g})"
            )
        if self.max_retry_after is not None:
            v = _num("max_retry_after", self.max_retry_after)
            if v <= 0:
                raise ThresholdsError(f"max_retry_after must be positive, got {v:g}")
            set_(self, "max_retry_after", v)

    # ------------------------------------------------------------------ derived
    @property
    def window_size(self) -> int:
        """Calls (count window) or buckets (time window) the ring holds: its memory bound."""
        if self.window_kind is WindowKind.COUNT:
            return int(self.sliding_window)
        return max(1, math.ceil(self.sliding_window / self.bucket_seconds - 1e-9))

    def wait_for(self, attempt: int) -> float:
        """The default wait generator: exponential in ``attempt`` (1-based), capped."""
        if attempt < 1:
            attempt = 1
        try:
            w = self.wait_in_open * self.wait_multiplier ** (attempt - 1)
        except OverflowError:
            return self.max_wait_in_open
        return min(self.max_wait_in_open, w)

    def replace(self, **changes: Any) -> CircuitThresholds:
        """A validated copy with some fields changed."""
        return replace(self, **changes)

    # ------------------------------------------------------------------ (de)serialisation
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CircuitThresholds:
        """Build from a plain mapping (JSON, a TOML table); unknown keys are an error.

        Unknown keys are rejected rather than ignored because a typo such as
        ``failure_ratio`` would otherwise silently keep the default.
        """
        if not isinstance(data, Mapping):
            raise ThresholdsError(f"thresholds must be a table/mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ThresholdsError(
                f"unknown threshold(s): {', '.join(map(str, unknown))}; known: "
                f"{', '.join(sorted(known))}"
            )
        return cls(**dict(data))

    @classmethod
    def from_toml(cls, text: str, *, table: str | None = "breaker") -> CircuitThresholds:
        """Parse TOML text; ``table`` is a dotted path to the table (``None``: the top level)."""
        import tomllib

        try:
            doc: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ThresholdsError(f"invalid TOML: {e}") from e
        if table:
            for part in table.split("."):
                if not isinstance(doc, Mapping) or part not in doc:
                    raise ThresholdsError(f"TOML has no [{table}] table")
                doc = doc[part]
        return cls.from_dict(doc)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["window_kind"] = self.window_kind.value
        return d
