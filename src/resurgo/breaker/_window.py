"""Sliding-window metrics: O(1) per recorded call, memory bounded by the window.

Both windows are plain objects with no locking of their own: the breaker records
into them while holding its bookkeeping lock, and they are reusable on their own
(for example by a dashboard) under the same rule.  An outcome is a small integer
code so recording needs no allocation: bit 0 = failure, bit 1 = slow.

The running totals ``calls``, ``failures`` and ``slow`` are public attributes so
the breaker's hot path can read them without a method call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "FAILURE",
    "SLOW",
    "SUCCESS",
    "CountWindow",
    "SlidingWindow",
    "TimeWindow",
    "WindowSnapshot",
]

SUCCESS = 0
FAILURE = 1
SLOW = 2


@dataclass(frozen=True, slots=True)
class WindowSnapshot:
    """The window's aggregates at one moment (kept in the state history)."""

    calls: int
    failures: int
    slow: int
    slow_failures: int = 0

    @property
    def failure_rate(self) -> float:
        return self.failures / self.calls if self.calls else 0.0

    @property
    def slow_call_rate(self) -> float:
        return self.slow / self.calls if self.calls else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {
            "calls": self.calls,
            "failures": self.failures,
            "slow": self.slow,
            "slow_failures": self.slow_failures,
            "failure_rate": self.failure_rate,
            "slow_call_rate": self.slow_call_rate,
        }


class SlidingWindow:
    """Common interface; ``record`` must be O(1)."""

    __slots__ = ("calls", "failures", "slow", "slow_failures")

    def __init__(self) -> None:
        self.calls = 0
        self.failures = 0
        self.slow = 0
        self.slow_failures = 0

    def record(self, code: int, now: float) -> int:  # pragma: no cover - interface
        """Add one outcome; returns ``failures + slow`` so callers can skip evaluating
        the thresholds while the window holds nothing bad (the common case)."""
        raise NotImplementedError

    def record_many(self, successes: int, failures: int, now: float) -> None:
        raise NotImplementedError  # pragma: no cover - interface

    def advance(self, now: float) -> None:
        """Forget what fell out of the window by ``now`` (no-op for count windows)."""

    def clean_until(self) -> float:
        """Until when plain successes may be batched (see ``add_clean_successes``):
        -inf while the window holds a failure or a slow call."""
        raise NotImplementedError  # pragma: no cover - interface

    def add_clean_successes(self, k: int) -> None:
        """Add ``k`` plain successes in O(1); only valid while ``clean_until()`` is
        in the future (no failure or slow call in the window, same time bucket).

        This is what lets the breaker count a success with one integer increment
        and fold the run in later: a clean ring holds only zero codes, so adding
        zeros is just moving the index.
        """
        raise NotImplementedError  # pragma: no cover - interface

    def reset(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def snapshot(self, now: float) -> WindowSnapshot:
        self.advance(now)
        return WindowSnapshot(self.calls, self.failures, self.slow, self.slow_failures)


class CountWindow(SlidingWindow):
    """The last ``size`` outcomes: a ring of codes plus running totals.

    Recording overwrites the oldest code and adjusts the totals by the
    difference, so the cost does not depend on ``size``.
    """

    __slots__ = ("_i", "_ring", "size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a count window needs at least one slot, got {size}")
        super().__init__()
        self.size = size
        self._ring = bytearray(size)
        self._i = 0

    def record(self, code: int, now: float = 0.0) -> int:
        i = self._i
        ring = self._ring
        old = ring[i]
        if old != code:
            ring[i] = code
            self.failures += (code & 1) - (old & 1)
            self.slow += (code >> 1) - (old >> 1)
            self.slow_failures += (code == 3) - (old == 3)
        i += 1
        self._i = 0 if i == self.size else i
        if self.calls < self.size:
            self.calls += 1
        return self.failures + self.slow

    def clean_until(self) -> float:
        return math.inf if not (self.failures or self.slow) else -math.inf

    def add_clean_successes(self, k: int) -> None:
        self._i = (self._i + k) % self.size
        self.calls = min(self.size, self.calls + k)

    def record_many(self, successes: int, failures: int, now: float = 0.0) -> None:
        """Record a batch; only the last ``size`` outcomes can matter, in proportion.

        A batch has no order, so when it is larger than the ring the kept
        slots hold the batch's failure ratio, interleaved, rather than all of
        one kind at the end.
        """
        total = successes + failures
        if total <= 0:
            return
        k = min(total, self.size)
        f = round(failures * k / total)
        acc = 0
        for _ in range(k):  # Bresenham-style interleave of f failures among k slots
            acc += f
            if acc >= k:
                acc -= k
                self.record(FAILURE)
            else:
                self.record(SUCCESS)

    def reset(self) -> None:
        self._ring = bytearray(self.size)
        self._i = 0
        self.calls = self.failures = self.slow = self.slow_failures = 0

    def __repr__(self) -> str:
        return f"CountWindow(size={self.size}, calls={self.calls}, failures={self.failures})"


class TimeWindow(SlidingWindow):
    """The last ``seconds``: a ring of per-bucket aggregates advanced lazily.

    Nothing runs on a timer; a record or read first retires the buckets the
    clock has moved past (at most one pass over the ring, however long the
    idle gap), so a busy breaker pays O(1) and memory is ``seconds / bucket``
    regardless of the call rate.  The newest bucket is kept in four scalar
    attributes and folded into the ring when the clock leaves it, so the
    common record is two integer increments and one float comparison.

    Times read just before taking the breaker's lock can arrive slightly out
    of order across threads; an outcome stamped before the newest bucket is
    counted in the newest bucket rather than dropped.
    """

    __slots__ = (
        "_bf", "_calls", "_edge", "_fail", "_hb", "_hc", "_head", "_hf", "_hs", "_inv", "_n",
        "_slow", "bucket",
    )

    def __init__(self, seconds: float, *, bucket: float = 1.0) -> None:
        if bucket <= 0 or seconds < bucket:
            raise ValueError("a time window needs bucket > 0 and seconds >= bucket")
        super().__init__()
        n = max(1, int(seconds / bucket + 0.999999999))
        self._n = n
        self.bucket = bucket
        self._inv = 1.0 / bucket
        self._calls = [0] * n
        self._fail = [0] * n
        self._slow = [0] * n
        self._bf = [0] * n
        self._head = -1  # absolute index of the newest bucket; -1 before the first record
        self._edge = -math.inf  # start time of the bucket after the head: time to advance
        self._hc = self._hf = self._hs = self._hb = 0  # the head bucket's aggregates

    @property
    def seconds(self) -> float:
        return self._n * self.bucket

    def _advance(self, now: float) -> None:
        b = int(now * self._inv)
        head = self._head
        if b <= head:  # float rounding at an edge; stay in the head bucket
            self._edge = (head + 1) * self.bucket
            return
        n = self._n
        calls, fail, slow, bf = self._calls, self._fail, self._slow, self._bf
        if head >= 0:  # fold the head bucket into the ring
            j = head % n
            calls[j], fail[j], slow[j], bf[j] = self._hc, self._hf, self._hs, self._hb
            self._hc = self._hf = self._hs = self._hb = 0
        if head < 0 or b - head >= n:
            for j in range(n):
                calls[j] = fail[j] = slow[j] = bf[j] = 0
            self.calls = self.failures = self.slow = self.slow_failures = 0
        else:
            for a in range(head + 1, b + 1):
                j = a % n
                c = calls[j]
                if c:
                    self.calls -= c
                    self.failures -= fail[j]
                    self.slow -= slow[j]
                    self.slow_failures -= bf[j]
                    calls[j] = fail[j] = slow[j] = bf[j] = 0
        self._head = b
        self._edge = (b + 1) * self.bucket

    def advance(self, now: float) -> None:
        if now >= self._edge:
            self._advance(now)

    def clean_until(self) -> float:
        return self._edge if not (self.failures or self.slow) else -math.inf

    def add_clean_successes(self, k: int) -> None:
        self._hc += k
        self.calls += k

    def record(self, code: int, now: float) -> int:
        if now >= self._edge:
            self._advance(now)
        self._hc += 1
        self.calls += 1
        if code:
            if code & 1:
                self._hf += 1
                self.failures += 1
            if code & 2:
                self._hs += 1
                self.slow += 1
                if code == 3:
                    self._hb += 1
                    self.slow_failures += 1
        return self.failures + self.slow

    def record_many(self, successes: int, failures: int, now: float) -> None:
        if successes + failures <= 0:
            return
        if now >= self._edge:
            self._advance(now)
        self._hc += successes + failures
        self.calls += successes + failures
        self._hf += failures
        self.failures += failures

    def reset(self) -> None:
        self._head = -1
        self._edge = -math.inf
        self._hc = self._hf = self._hs = self._hb = 0
        for lst in (self._calls, self._fail, self._slow, self._bf):
            for j in range(self._n):
                lst[j] = 0
        self.calls = self.failures = self.slow = self.slow_failures = 0

    def __repr__(self) -> str:
        return (
            f"TimeWindow(seconds={self.seconds:g}, calls={self.calls}, failures={self.failures})"
        )
