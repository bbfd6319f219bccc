"""Telling a hung API request from a slow one, by learning what the endpoint's answers take.

Without help, the supervisor sees nothing while the CLI waits for the API: the
CLI prints its next event only when a whole content block has arrived.  A
request the server accepted and never answers is then caught by the CLI's own
``API_TIMEOUT_MS`` (10 minutes by default) or by the stall watchdog, both far
longer than a healthy answer takes.  Each such hang cost a chaos job 6 s of
standing still (the profile's API timeout) where 1 s would have told.

With ``--include-partial-messages`` the CLI reports ``system/status
"requesting"`` when it sends a request and a ``stream_event`` for every SSE
event of the answer.  That shows two delays per request:

* **first answer** — request sent -> first stream event (``message_start``);
* **longest gap** — the longest silence between two stream events of one answer.

:class:`ResponseTimes` keeps the recent values of both per endpoint (every job
on it contributes) and derives a limit from them: ``factor`` times the slowest
of the recent ones, never below ``floor`` (``gap_floor`` for gaps), and none at
all until ``min_samples`` answers were seen (a fresh supervisor knows nothing
about its endpoint and kills nothing for it).  The slowest rather than a percentile: a limit must sit
above every healthy answer, and the maximum of a window is the estimate that
never undercuts one it has seen.

:class:`RequestWatch` is one attempt's view: the endpoint's limits times a
per-job ``scale`` that doubles once this watch ended the same request twice
(through the relay; without it, after every attempt the watch ended): a job
whose requests are genuinely slower than the endpoint's others -- a huge
context -- gets more time on each further retry instead of a kill loop.  It
resets once a request of that job is answered in time.
"""

from __future__ import annotations

import math
from collections import deque

from resurgo._launch import PARTIAL_FLAG, watch_args


class _Window:
    """The last ``size`` samples and their maximum (recomputed on eviction only: O(1) amortised per sample)."""

    __slots__ = ("_max", "_q")

    def __init__(self, size: int) -> None:
        self._q: deque[float] = deque(maxlen=size)
        self._max = 0.0

    def add(self, v: float) -> None:
        q = self._q
        evicted = q[0] if len(q) == q.maxlen else None
        q.append(v)
        if evicted is not None and evicted >= self._max:
            self._max = max(q)
        elif v > self._max:
            self._max = v

    def __len__(self) -> int:
        return len(self._q)

    def values(self) -> list[float]:
        return list(self._q)

    @property
    def max(self) -> float:
        return self._max


class ResponseTimes:
    """One endpoint's recent first-answer delays and stream gaps, and the limits they imply.

    Keyword-only settings, validated once:

    * ``factor`` (3.0) — a limit is this many times the slowest recent value;
    * ``floor`` (2.0 s) — never a shorter first-answer limit.  Measured in chaos runs on
      a loaded 2-core machine: with 1 s, healthy requests of the stand-in (whose
      answers usually take milliseconds) were ended while CPU contention held the CLI
      or the stand-in for a second, mostly before the window held a slow sample;
    * ``gap_floor`` (5.0 s) — never a shorter limit for a silence within an answer:
      the same runs ended healthy answers at 1 s (the CLI itself pauses while it
      starts a tool), and a stall there is rarer than a request never answered;
    * ``min_samples`` (8) — no limit before this many answers were seen.  With 20,
      a chaos run whose first API phase was hangs had no limit for its first
      ~10 s: five hung requests then waited out the CLI's own 6 s timeout and
      were restarted (30 of its 90 down job-s).  Eight answers of a healthy
      endpoint already put the limit at the floor or above; a job slower than
      them gets more time after a second hang (its scale doubles) and a hedge
      copy never ends the first;
    * ``window`` (200) — how many recent answers count;
    * ``recent`` (50, at most ``window``) — how many of them the *hedge* limit looks at
      (:meth:`first_answer_limit` with ``recent=True``).  A second copy of a
      slow request ends nothing, so it may follow the endpoint's last answers
      rather than the slowest of a long window: after a chaos latency phase
      (answers 1.2 s slow for 3 s) the 200-answer window kept hedging at 1.2 s
      for about a minute, every hang meanwhile costing its job 1.2 s instead of
      0.67 s.  The kill limit keeps the longer memory.
    """

    __slots__ = ("_first", "_gap", "_recent", "added", "factor", "floor", "gap_floor", "min_samples")

    def __init__(
        self, *, factor: float = 3.0, floor: float = 2.0, gap_floor: float = 5.0, min_samples: int = 8,
        window: int = 200, recent: int | None = None,
    ) -> None:
        if not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor >= 1.0):
            raise ValueError(f"factor must be a finite number >= 1, got {factor!r}")
        for name, v in (("floor", floor), ("gap_floor", gap_floor)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
            raise ValueError(f"min_samples must be an integer >= 1, got {min_samples!r}")
        if isinstance(window, bool) or not isinstance(window, int) or window < min_samples:
            raise ValueError(f"window must be an integer >= min_samples, got {window!r}")
        if recent is None:
            recent = max(min_samples, min(50, window))
        if isinstance(recent, bool) or not isinstance(recent, int) or not min_samples <= recent <= window:
            raise ValueError(f"recent must be an integer between min_samples and window, got {recent!r}")
        self.factor = float(factor)
        self.floor = float(floor)
        self.gap_floor = float(gap_floor)
        self.min_samples = min_samples
        self._first = _Window(window)
        self._gap = _Window(window)
        self._recent = _Window(recent)
        #: samples added since this count was last reset (by whoever saves them: see :meth:`preload`)
        self.added = 0

    def first_answer(self, seconds: float) -> None:
        """A request was answered (its first stream event) ``seconds`` after it was sent."""
        if seconds >= 0 and math.isfinite(seconds):
            self._first.add(seconds)
            self._recent.add(seconds)
            self.added += 1

    def stream_gap(self, seconds: float) -> None:
        """An answer's longest silence between two of its events."""
        if seconds >= 0 and math.isfinite(seconds):
            self._gap.add(seconds)
            self.added += 1

    def samples(self) -> tuple[list[float], list[float]]:
        """The recent first-answer delays and gaps, oldest first (what :meth:`preload` takes back)."""
        return self._first.values(), self._gap.values()

    def preload(self, first: list[float], gap: list[float]) -> None:
        """Start from answers seen before (a previous supervisor's, from the store).

        A supervisor restarted after a crash otherwise watches nothing until
        ``min_samples`` answers came in: in chaos runs a hang injected seconds
        after a supervisor restart then held its job for the hang's whole 6 s
        instead of the ~2 s limit.  Loaded samples count like seen ones and age
        out of the window the same way; they do not count as :attr:`added`.
        """
        for v in first:
            if v >= 0 and math.isfinite(v):
                self._first.add(v)
                self._recent.add(v)
        for v in gap:
            if v >= 0 and math.isfinite(v):
                self._gap.add(v)

    def _limit(self, w: _Window, floor: float) -> float | None:
        if len(w) < self.min_samples:
            return None
        return max(floor, self.factor * w.max)

    def first_answer_limit(self, *, recent: bool = False) -> float | None:
        """Seconds a request may wait for its first answer event (None: not learned yet).

        ``recent``: from the last ``recent`` answers only (what hedging follows).
        """
        return self._limit(self._recent if recent else self._first, self.floor)

    def slowest(self, *, recent: bool = False) -> float | None:
        """The slowest first answer among the endpoint's last ones (None: fewer than ``min_samples``).

        What hedging waits for: a request slower than every recent answer gets
        a copy (:meth:`resurgo.supervise._relay.ApiRelay.hedge_delay`).
        """
        w = self._recent if recent else self._first
        return w.max if len(w) >= self.min_samples else None

    def gap_limit(self) -> float | None:
        """Seconds an answer may stay silent between two events (None: not learned yet)."""
        return self._limit(self._gap, self.gap_floor)

    def snapshot(self) -> dict[str, float | int | None]:
        """For health reports and ``resurgo show``: what was learned and the limits it gives."""
        return {
            "first_answer_samples": len(self._first),
            "first_answer_max_s": self._first.max if len(self._first) else None,
            "first_answer_limit_s": self.first_answer_limit(),
            "gap_samples": len(self._gap),
            "gap_max_s": self._gap.max if len(self._gap) else None,
            "gap_limit_s": self.gap_limit(),
        }


class RequestWatch:
    """One attempt's limits: its endpoint's, times the job's ``scale``."""

    __slots__ = ("scale", "times")

    def __init__(self, times: ResponseTimes, *, scale: float = 1.0) -> None:
        if not (math.isfinite(scale) and scale >= 1.0):
            raise ValueError(f"scale must be a finite number >= 1, got {scale!r}")
        self.times = times
        self.scale = scale

    def limit(self, *, gap: bool = False, recent: bool = False) -> float | None:
        """Seconds allowed for the first answer (or, ``gap``, a silence within one); None: not learned yet.

        ``recent``: the first-answer limit of the endpoint's last answers only (the hedge's).
        """
        lim = self.times.gap_limit() if gap else self.times.first_answer_limit(recent=recent)
        return None if lim is None else lim * self.scale

    def slowest(self, *, recent: bool = False) -> float | None:
        """The endpoint's slowest recent first answer, times this job's scale (None: not learned yet)."""
        v = self.times.slowest(recent=recent)
        return None if v is None else v * self.scale

    def describe(self, *, gap: bool = False) -> str:
        """Where the limit comes from, for the kill reason a user reads."""
        t = self.times
        s = f" x{self.scale:g} for this job" if self.scale != 1.0 else ""
        what = "longest silences within" if gap else "first answers to"
        floor = t.gap_floor if gap else t.floor
        return f"{t.factor:g}x the slowest of the {what} the endpoint's recent requests, at least {floor:g} s{s}"


__all__ = ["PARTIAL_FLAG", "RequestWatch", "ResponseTimes", "watch_args"]
