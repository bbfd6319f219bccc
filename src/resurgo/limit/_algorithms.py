"""Limit algorithms: how many calls may be in flight, learned from what the calls report.

An algorithm only sees samples -- ``(rtt, inflight, dropped)`` -- and answers
with a new limit; it knows nothing of waiting, threads or clocks, so each is a
small pure state machine tested sample by sample.  The three follow Netflix's
concurrency-limits (``AIMDLimit``, ``Gradient2Limit``, ``VegasLimit``) with
two changes that matter for calls which fail loudly under overload (429/529)
rather than only slowing down:

* every algorithm treats a *drop* (the dependency refused the call, or the
  caller gave up on it) as a congestion signal and cuts the limit
  multiplicatively -- Gradient2 on its own only reacts to latency;
* a drop counts once per round trip: the limiter passes a drop on only when
  the dropped call went out after the latest cut, so a call sent before it is
  not applied again (TCP's "one reduction per round trip").  Without it, a
  burst of N refusals that all answer the same overload would cut the limit
  N times over and collapse it to the minimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, NamedTuple, Protocol, runtime_checkable


class LimitOptionsError(ValueError):
    """An option of a limit algorithm is of the wrong type or out of range; the message names it."""


def _num(name: str, v: Any, *, lo: float, hi: float = math.inf, lo_open: bool = False, hi_open: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise LimitOptionsError(f"{name} must be a number, got {type(v).__name__} {v!r}")
    f = float(v)
    bad = not math.isfinite(f) or f < lo or f > hi or (lo_open and f == lo) or (hi_open and f == hi)
    if bad:
        lo_s = "(" if lo_open else "["
        hi_s = ")" if hi_open else "]"
        raise LimitOptionsError(f"{name} must be in {lo_s}{lo:g}, {hi:g}{hi_s}, got {v!r}")
    return f


def _int(name: str, v: Any, *, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise LimitOptionsError(f"{name} must be an integer >= {lo}, got {v!r}")
    return v


@dataclass(frozen=True, kw_only=True, slots=True)
class _Bounds:
    initial_limit: int = 4
    min_limit: int = 1
    max_limit: int = 200

    def _check_bounds(self) -> None:
        _int("min_limit", self.min_limit, lo=1)
        _int("max_limit", self.max_limit, lo=1)
        _int("initial_limit", self.initial_limit, lo=1)
        if self.max_limit < self.min_limit:
            raise LimitOptionsError(f"max_limit ({self.max_limit}) must be >= min_limit ({self.min_limit})")
        if not self.min_limit <= self.initial_limit <= self.max_limit:
            raise LimitOptionsError(
                f"initial_limit ({self.initial_limit}) must be within [min_limit, max_limit]"
                f" = [{self.min_limit}, {self.max_limit}]"
            )

    def replace(self, **changes: Any) -> Any:
        """A copy with ``changes`` applied (and validated again)."""
        names = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise LimitOptionsError(f"unknown option(s): {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        return replace(self, **changes)


@dataclass(frozen=True, kw_only=True, slots=True)
class AIMDOptions(_Bounds):
    """Additive increase, multiplicative decrease.

    ``backoff_ratio``: the limit is multiplied by it on a drop or on a call
    slower than ``timeout`` seconds (None: latency never counts as a drop).
    ``increase``: added per successful sample while the limit is in use
    (at least half of it in flight; an idle limit must not grow on credit).
    ``congestion_avoidance``: TCP Reno's two phases -- ``increase`` per sample
    until the first drop (slow start: the limit about doubles per round
    trip), then ``increase / limit`` per sample (about +``increase`` per round
    trip), so a limit that found the edge probes past it rarely instead of on
    every few calls; in slow start the limit grows only while it is fully in
    use (half is enough afterwards), so a fast ramp does not outrun its
    evidence.  Off by default (``AIMDLimit``'s behaviour).
    ``slow_start_backoff_ratio``: with ``congestion_avoidance``, the cut at
    the first drop (the end of slow start), which overshoots by up to a round
    trip's worth of growth; default: ``backoff_ratio``.  TCP halves here.
    """

    backoff_ratio: float = 0.9
    increase: float = 1.0
    timeout: float | None = None
    congestion_avoidance: bool = False
    slow_start_backoff_ratio: float | None = None

    def __post_init__(self) -> None:
        self._check_bounds()
        _num("backoff_ratio", self.backoff_ratio, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        _num("increase", self.increase, lo=0.0, lo_open=True)
        if self.timeout is not None:
            _num("timeout", self.timeout, lo=0.0, lo_open=True)
        if self.slow_start_backoff_ratio is not None:
            _num("slow_start_backoff_ratio", self.slow_start_backoff_ratio, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        if not isinstance(self.congestion_avoidance, bool):
            raise LimitOptionsError(f"congestion_avoidance must be a bool, got {self.congestion_avoidance!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class GradientOptions(_Bounds):
    """Gradient2: compare a short-term latency with a long-term average.

    ``gradient = clamp(tolerance * long_rtt / short_rtt, 0.5, 1)``;
    ``new = limit * gradient + sqrt(limit)`` (the queue allowance), smoothed
    by ``smoothing``.  ``long_window`` is the number of samples of the
    long-term exponential average; ``backoff_ratio`` cuts the limit on a drop.
    """

    smoothing: float = 0.2
    tolerance: float = 1.5
    long_window: int = 600
    backoff_ratio: float = 0.9

    def __post_init__(self) -> None:
        self._check_bounds()
        _num("smoothing", self.smoothing, lo=0.0, hi=1.0, lo_open=True)
        _num("tolerance", self.tolerance, lo=1.0)
        _int("long_window", self.long_window, lo=1)
        _num("backoff_ratio", self.backoff_ratio, lo=0.0, hi=1.0, lo_open=True, hi_open=True)


@dataclass(frozen=True, kw_only=True, slots=True)
class VegasOptions(_Bounds):
    """Vegas: estimate the queue from the lowest latency seen (``rtt_noload``).

    ``queue = ceil(limit * (1 - rtt_noload / rtt))``; below ``alpha(limit)``
    (3*log10) the limit grows, above ``beta(limit)`` (6*log10) it shrinks, by
    log10(limit); a drop multiplies it by ``backoff_ratio``.  ``probe_every``
    samples, ``rtt_noload`` is forgotten so a permanently slower dependency is
    not mistaken for a queue forever.
    """

    smoothing: float = 1.0
    backoff_ratio: float = 0.9
    probe_every: int = 1000

    def __post_init__(self) -> None:
        self._check_bounds()
        _num("smoothing", self.smoothing, lo=0.0, hi=1.0, lo_open=True)
        _num("backoff_ratio", self.backoff_ratio, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        _int("probe_every", self.probe_every, lo=1)


class Sample(NamedTuple):
    """One observation handed to an algorithm (a named tuple: built on every call, so cheap to build).

    ``rtt``: seconds the call took (None when unknown: a drop, or a signal
    without a call).  ``inflight``: calls in flight when it was taken.
    ``dropped``: the dependency refused it or it was given up on.
    """

    rtt: float | None
    inflight: int
    dropped: bool


@runtime_checkable
class LimitAlgorithm(Protocol):
    """What a limiter needs from an algorithm.  Not thread-safe: the limiter holds its lock."""

    name: str

    @property
    def limit(self) -> int: ...

    @property
    def options(self) -> _Bounds: ...

    def update(self, sample: Sample) -> int:
        """Take one sample; return the (possibly new) limit."""
        ...

    def reset(self, limit: int) -> int:
        """Start again from ``limit`` (clamped), e.g. after a pause; returns it."""
        ...


class _Base:
    name = "base"

    def __init__(self, options: _Bounds) -> None:
        self._opts = options
        self._estimate = float(options.initial_limit)

    @property
    def options(self) -> _Bounds:
        return self._opts

    @property
    def limit(self) -> int:
        return int(self._estimate)

    def _clamp(self, v: float) -> float:
        return min(float(self._opts.max_limit), max(float(self._opts.min_limit), v))

    def reset(self, limit: int) -> int:
        self._estimate = self._clamp(float(limit))
        return self.limit


class AIMD(_Base):
    """Additive increase / multiplicative decrease (``AIMDLimit``)."""

    name = "aimd"

    def __init__(self, options: AIMDOptions | None = None) -> None:
        super().__init__(options or AIMDOptions())
        self.opts: AIMDOptions = options or AIMDOptions()
        #: congestion avoidance: a drop was seen, so growth is now linear per round trip
        self.avoiding = False

    def update(self, sample: Sample) -> int:
        o = self.opts
        slow = o.timeout is not None and sample.rtt is not None and sample.rtt > o.timeout
        if sample.dropped or slow:
            first = o.congestion_avoidance and not self.avoiding
            ratio = o.slow_start_backoff_ratio if first and o.slow_start_backoff_ratio is not None else o.backoff_ratio
            self._estimate = self._clamp(self._estimate * ratio)
            self.avoiding = o.congestion_avoidance
        elif sample.inflight * 2 >= self.limit and (
            self.avoiding or not o.congestion_avoidance or sample.inflight >= self.limit
        ):
            step = o.increase / max(1.0, self._estimate) if self.avoiding else o.increase
            self._estimate = self._clamp(self._estimate + step)
        return self.limit

    def reset(self, limit: int) -> int:
        self.avoiding = False  # after a pause the edge is unknown again: slow start
        return super().reset(limit)


class Gradient2(_Base):
    """The latency gradient of ``Gradient2Limit``, plus a multiplicative cut on drops."""

    name = "gradient"

    def __init__(self, options: GradientOptions | None = None) -> None:
        super().__init__(options or GradientOptions())
        self.opts: GradientOptions = options or GradientOptions()
        self._long_rtt: float | None = None
        self._n = 0

    @property
    def long_rtt(self) -> float | None:
        return self._long_rtt

    def update(self, sample: Sample) -> int:
        o = self.opts
        if sample.dropped:
            self._estimate = self._clamp(self._estimate * o.backoff_ratio)
            return self.limit
        rtt = sample.rtt
        if rtt is None or rtt <= 0:
            return self.limit
        # the long-term average: a plain mean while warming up, then an exponential one
        self._n += 1
        if self._long_rtt is None:
            self._long_rtt = rtt
        elif self._n <= 10:
            self._long_rtt += (rtt - self._long_rtt) / self._n
        else:
            f = 2.0 / (o.long_window + 1)
            self._long_rtt = self._long_rtt * (1 - f) + rtt * f
        # the dependency got faster (e.g. the load went away): let the average catch up quickly
        if self._long_rtt / rtt > 2.0:
            self._long_rtt *= 0.95
        # an application that does not use its limit gives no evidence to raise it
        if sample.inflight < self._estimate / 2:
            return self.limit
        gradient = max(0.5, min(1.0, o.tolerance * self._long_rtt / rtt))
        new = self._estimate * gradient + math.sqrt(self._estimate)
        new = self._estimate * (1 - o.smoothing) + new * o.smoothing
        self._estimate = self._clamp(new)
        return self.limit


class Vegas(_Base):
    """``VegasLimit``: the queue estimated from the lowest latency seen, plus a cut on drops."""

    name = "vegas"

    def __init__(self, options: VegasOptions | None = None) -> None:
        super().__init__(options or VegasOptions())
        self.opts: VegasOptions = options or VegasOptions()
        self._rtt_noload: float | None = None
        self._since_probe = 0

    def update(self, sample: Sample) -> int:
        o = self.opts
        if sample.dropped:
            self._estimate = self._clamp(self._estimate * o.backoff_ratio)
            return self.limit
        rtt = sample.rtt
        if rtt is None or rtt <= 0:
            return self.limit
        self._since_probe += 1
        if self._since_probe >= o.probe_every:
            self._since_probe = 0
            self._rtt_noload = None
        if self._rtt_noload is None or rtt < self._rtt_noload:
            self._rtt_noload = rtt
            return self.limit
        if sample.inflight * 2 < self._estimate:
            return self.limit
        cur = self._estimate
        log = max(1.0, math.log10(cur))
        queue = math.ceil(cur * (1 - self._rtt_noload / rtt))
        if queue <= log:
            new = cur + 6 * log
        elif queue < 3 * log:
            new = cur + log
        elif queue > 6 * log:
            new = cur - log
        else:
            return self.limit
        self._estimate = self._clamp(cur * (1 - o.smoothing) + new * o.smoothing)
        return self.limit


ALGORITHMS = ("aimd", "gradient", "vegas")


def make_algorithm(name: str, **options: Any) -> LimitAlgorithm:
    """An algorithm by name (``aimd``, ``gradient``, ``vegas``) with its options as keywords."""
    if name == "aimd":
        return AIMD(AIMDOptions(**options))
    if name == "gradient":
        return Gradient2(GradientOptions(**options))
    if name == "vegas":
        return Vegas(VegasOptions(**options))
    raise LimitOptionsError(f"unknown limit algorithm {name!r}; known: {', '.join(ALGORITHMS)}")


__all__ = [
    "AIMD",
    "ALGORITHMS",
    "AIMDOptions",
    "Gradient2",
    "GradientOptions",
    "LimitAlgorithm",
    "LimitOptionsError",
    "Sample",
    "Vegas",
    "VegasOptions",
    "make_algorithm",
]
