"""Per-retrier statistics (the seed's ``GetRetryStats``), O(1) and allocation-free per call.

A first-try success, the overwhelmingly common case, costs one locked integer
increment; everything else is recorded once when a call that failed at least
once ends.  ``stats()`` builds an immutable snapshot on demand.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from resurgo.retrier._errors import GiveUpReason


@dataclass(frozen=True, slots=True)
class RetryStats:
    """A snapshot of one retrier's history.

    - ``attempts_histogram``: attempts a call took -> number of calls.
    - ``success_after_retry_rate``: of the calls that needed a retry, the share
      that eventually succeeded (``None`` when no call needed one).
    - ``give_ups``: calls that ended in failure, by :class:`GiveUpReason`
      (``not_retryable`` included: the call failed and was not retried).
    - ``time_slept``: seconds spent (or, in testing mode, skipped) in backoff.
    """

    calls: int
    successes: int
    first_try_successes: int
    successes_after_retry: int
    retries: int
    attempts_histogram: Mapping[int, int] = field(hash=False)
    give_ups: Mapping[str, int] = field(hash=False)
    time_slept: float
    budget_refusals: int

    @property
    def failures(self) -> int:
        return sum(self.give_ups.values())

    @property
    def mean_attempts(self) -> float:
        if not self.calls:
            return 0.0
        return sum(k * v for k, v in self.attempts_histogram.items()) / self.calls

    @property
    def success_after_retry_rate(self) -> float | None:
        retried = sum(v for k, v in self.attempts_histogram.items() if k > 1)
        return self.successes_after_retry / retried if retried else None

    def to_dict(self) -> dict[str, object]:
        return {
            "calls": self.calls,
            "successes": self.successes,
            "first_try_successes": self.first_try_successes,
            "successes_after_retry": self.successes_after_retry,
            "success_after_retry_rate": self.success_after_retry_rate,
            "retries": self.retries,
            "mean_attempts": self.mean_attempts,
            "attempts_histogram": {str(k): v for k, v in sorted(self.attempts_histogram.items())},
            "give_ups": dict(self.give_ups),
            "time_slept": self.time_slept,
            "budget_refusals": self.budget_refusals,
        }


class StatsRecorder:
    """Mutable counters behind one lock; the lock is never held across I/O or awaits."""

    __slots__ = ("_give_ups", "_hist", "_lock", "_ok_after_retry", "_retries", "_slept", "first_ok")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.first_ok = 0
        self._hist: dict[int, int] = {}
        self._ok_after_retry = 0
        self._retries = 0
        self._slept = 0.0
        self._give_ups: dict[str, int] = {}

    @property
    def lock(self) -> threading.Lock:
        return self._lock

    def record_end(self, attempts: int, reason: GiveUpReason | None, slept: float, retries: int) -> None:
        """One call finished; ``reason`` is None when it succeeded."""
        with self._lock:
            if attempts == 1 and reason is None:
                self.first_ok += 1
            else:
                self._hist[attempts] = self._hist.get(attempts, 0) + 1
                if reason is None:
                    self._ok_after_retry += 1
                else:
                    self._give_ups[reason.value] = self._give_ups.get(reason.value, 0) + 1
            self._retries += retries
            self._slept += slept

    def snapshot(self) -> RetryStats:
        with self._lock:
            hist = dict(self._hist)
            first_ok = self.first_ok
            give_ups = dict(self._give_ups)
            ok_after = self._ok_after_retry
            retries = self._retries
            slept = self._slept
        if first_ok:
            hist[1] = hist.get(1, 0) + first_ok
        calls = sum(hist.values())
        failures = sum(give_ups.values())
        return RetryStats(
            calls=calls,
            successes=calls - failures,
            first_try_successes=first_ok,
            successes_after_retry=ok_after,
            retries=retries,
            attempts_histogram=MappingProxyType(dict(sorted(hist.items()))),
            give_ups=MappingProxyType(give_ups),
            time_slept=slept,
            budget_refusals=give_ups.get(GiveUpReason.BUDGET_EXHAUSTED.value, 0),
        )
