"""Retry budgets: a token bucket shared by every retrier of one dependency.

Per-call attempt limits do not stop retry storms: when a dependency degrades,
every caller retries at once and multiplies its load exactly when it can least
take it.  A budget bounds the *share* of traffic that may be retries, after
Finagle's ``RetryBudget`` (and in the spirit of gRPC retry throttling):

- every call deposits ``1`` unit; every retry withdraws ``1 / ratio`` units
  (ratio 0.2 -> a retry costs 5 calls' worth);
- a fixed reserve allows ``min_retries_per_sec * ttl`` retries per window even
  with no traffic, so a low-volume client can still retry at all;
- deposits and withdrawals expire after ``ttl`` seconds (a ring of 10 time slots
  advanced lazily, as in resilience4j's time-based window: O(1) per operation,
  memory independent of call rate).

Hence, over any window of ``ttl`` seconds (to slot granularity):
``retries <= ratio * calls + min_retries_per_sec * ttl``.
Tokens are integers (scaled by 1000) so the invariant holds exactly, without
floating-point drift.  A ``threading.Lock`` makes it safe across threads; it
is never held across an ``await``, so it is equally safe from asyncio tasks.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from resurgo.clock import SYSTEM_CLOCK, Clock, SystemClock

_SCALE = 1000
_SLOTS = 10


@dataclass(frozen=True, slots=True)
class BudgetStats:
    deposits: int
    retries_allowed: int
    #: Refused withdrawals: one per retry that was turned away (or had to wait),
    #: not one per poll -- waiting callers ask ``wait_time()``, which counts nothing.
    retries_refused: int
    available: float  # retries that would be allowed right now
    #: Retries that went ahead without budget because a caller stopped waiting
    #: (``record_bypass()``): each one is a breach of the invariant, made visible.
    bypassed: int = 0


def wait_from_slots(
    slots: dict[int, int], cur: int, width: float, now: float, reserve: int, cost: int
) -> float | None:
    """Seconds from ``now`` until ``cost`` fits, if no call deposits meanwhile; None: never.

    ``slots`` maps absolute slot numbers (``cur - 9 .. cur``) to their token
    sums.  Slots expire oldest first at each slot boundary; an expiring
    withdrawal raises the sum, an expiring deposit lowers it, so the first
    boundary at which ``sum + reserve >= cost`` is the answer.  Shared with the
    Redis budget, which reads its ring from Redis.
    """
    total = sum(v for k, v in slots.items() if k > cur - _SLOTS)
    if total + reserve >= cost:
        return 0.0
    for k in range(1, _SLOTS + 1):
        total -= slots.get(cur + k - _SLOTS, 0)  # the slot that expires at boundary cur + k
        if total + reserve >= cost:
            return max(0.0, (cur + k) * width - now)
    return None


class RetryBudget:
    """Token bucket bounding retries to ``ratio`` of calls plus a small floor."""

    __slots__ = (
        "_allowed",
        "_bypassed",
        "_cur",
        "_deposits",
        "_lock",
        "_mono",
        "_next",
        "_pos",
        "_refused",
        "_ring",
        "_sum",
        "_width",
        "clock",
        "deposit_amount",
        "min_retries_per_sec",
        "ratio",
        "reserve",
        "ttl",
        "withdraw_amount",
    )

    def __init__(
        self,
        *,
        ratio: float = 0.2,
        min_retries_per_sec: float = 10.0,
        ttl: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0.0 <= ratio <= 1000.0:
            raise ValueError(f"RetryBudget ratio must be a number in [0, 1000], got {ratio!r}")
        if (
            isinstance(min_retries_per_sec, bool)
            or not isinstance(min_retries_per_sec, int | float)
            or not 0.0 <= min_retries_per_sec < math.inf
        ):
            raise ValueError(
                f"RetryBudget min_retries_per_sec must be a finite number >= 0, got {min_retries_per_sec!r}"
            )
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 1.0 <= ttl <= 60.0:
            raise ValueError(f"RetryBudget ttl must be between 1 and 60 seconds, got {ttl!r}")
        self.ratio = float(ratio)
        self.min_retries_per_sec = float(min_retries_per_sec)
        self.ttl = float(ttl)
        self.clock = clock or SYSTEM_CLOCK
        if ratio == 0:
            self.deposit_amount, self.withdraw_amount = 0, _SCALE
        else:
            self.deposit_amount = _SCALE
            # ceil: never let rounding grant more than the configured ratio
            self.withdraw_amount = math.ceil(_SCALE / ratio)
        self.reserve = int(self.min_retries_per_sec * self.ttl * self.withdraw_amount)
        self._width = self.ttl / _SLOTS
        self._mono: Callable[[], float]
        self._ring = [0] * _SLOTS
        self._sum = 0
        # time.monotonic itself for the real clock: one call less on every deposit
        self._mono = time.monotonic if isinstance(self.clock, SystemClock) else self.clock.monotonic
        self._cur = int(self._mono() // self._width)
        self._pos = self._cur % _SLOTS
        self._next = (self._cur + 1) * self._width
        self._lock = threading.Lock()
        self._deposits = 0
        self._allowed = 0
        self._refused = 0
        self._bypassed = 0

    def _advance(self, now: float) -> None:
        """Expire the slots that time has moved past (call with the lock held)."""
        idx = int(now // self._width)
        cur = self._cur
        if idx <= cur:
            return
        ring = self._ring
        if idx - cur >= _SLOTS:
            for i in range(_SLOTS):
                ring[i] = 0
            self._sum = 0
        else:
            for i in range(cur + 1, idx + 1):
                j = i % _SLOTS
                self._sum -= ring[j]
                ring[j] = 0
        self._cur = idx
        self._pos = idx % _SLOTS
        self._next = (idx + 1) * self._width

    def deposit(self) -> None:
        """Record one call (first attempts only; retries do not earn budget).

        On every call's path, so it only compares the time with the next slot
        boundary; the slot arithmetic runs once per slot (``ttl / 10``).
        """
        now = self._mono()
        with self._lock:
            if now >= self._next:
                self._advance(now)
            self._ring[self._pos] += self.deposit_amount
            self._sum += self.deposit_amount
            self._deposits += 1

    def try_withdraw(self, *, count_refusal: bool = True) -> bool:
        """Take the cost of one retry if the budget allows it; False means fail fast.

        ``count_refusal=False`` is for a caller that already counted this retry's
        refusal and is trying again after waiting (so ``retries_refused`` counts
        retries turned away, not attempts to get through).
        """
        w = self.withdraw_amount
        now = self._mono()
        with self._lock:
            self._advance(now)
            if self._sum + self.reserve >= w:
                self._ring[self._pos] -= w
                self._sum -= w
                self._allowed += 1
                return True
            if count_refusal:
                self._refused += 1
            return False

    def wait_time(self) -> float | None:
        """Seconds until a retry would be allowed if no calls arrive meanwhile (0: now).

        None means never without new calls (no reserve and nothing to expire).
        Counts nothing and takes nothing, so a waiting caller can ask as often as
        it likes; new calls only make the real wait shorter.
        """
        now = self._mono()
        with self._lock:
            self._advance(now)
            cur = self._cur
            ring = self._ring
            slots = {i: ring[i % _SLOTS] for i in range(cur - _SLOTS + 1, cur + 1)}
            return wait_from_slots(slots, cur, self._width, now, self.reserve, self.withdraw_amount)

    def record_bypass(self) -> None:
        """Count a retry that went ahead without budget (a caller's explicit choice)."""
        with self._lock:
            self._bypassed += 1

    def available(self) -> float:
        """How many retries the budget would allow right now."""
        with self._lock:
            self._advance(self._mono())
            return max(0, self._sum + self.reserve) / self.withdraw_amount

    def stats(self) -> BudgetStats:
        with self._lock:
            self._advance(self._mono())
            avail = max(0, self._sum + self.reserve) / self.withdraw_amount
            return BudgetStats(self._deposits, self._allowed, self._refused, avail, self._bypassed)

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self.ratio}, min_retries_per_sec={self.min_retries_per_sec}, "
            f"ttl={self.ttl}, available={self.available():.1f})"
        )


_budgets: dict[str, RetryBudget] = {}
_budgets_lock = threading.Lock()


def budget_for(
    dependency: str,
    *,
    ratio: float | None = None,
    min_retries_per_sec: float | None = None,
    ttl: float | None = None,
) -> RetryBudget:
    """The process-wide budget of ``dependency``, created on first use.

    All retriers naming the same dependency share it, which is what makes it a
    defence against retry storms.  Passing settings that disagree with an
    existing budget is an error rather than a silent second budget.
    """
    if not isinstance(dependency, str) or not dependency:
        raise ValueError(f"dependency must be a non-empty string, got {dependency!r}")
    want = {"ratio": ratio, "min_retries_per_sec": min_retries_per_sec, "ttl": ttl}
    given = {k: float(v) for k, v in want.items() if v is not None}
    with _budgets_lock:
        b = _budgets.get(dependency)
        if b is None:
            b = _budgets[dependency] = RetryBudget(
                ratio=0.2 if ratio is None else ratio,
                min_retries_per_sec=10.0 if min_retries_per_sec is None else min_retries_per_sec,
                ttl=10.0 if ttl is None else ttl,
            )
            return b
    for k, v in given.items():
        if getattr(b, k) != v:
            raise ValueError(f"retry budget for {dependency!r} already exists with {k}={getattr(b, k)}, not {v}")
    return b
