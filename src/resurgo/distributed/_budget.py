"""A retry budget shared by a fleet: the same token bucket as :class:`resurgo.retrier.RetryBudget`, in Redis.

A retry storm is a fleet-wide phenomenon: ten workers each keeping their own
20 % budget still let the fleet send 20 % retries *each*, against one degraded
dependency.  This budget keeps one ring of ten time slots per dependency in a
Redis hash, so the invariant of the local budget holds across every worker:
over any ``ttl`` window (to slot granularity)
``retries <= ratio * calls + min_retries_per_sec * ttl``.

Why it is built this way:

* **Deposits are batched.**  Every call deposits; a round trip per call would
  cost more than the call's retry logic.  Deposits are counted per slot in
  memory and pushed by the link thread (every 50 ms) or together with the
  next withdrawal, in the same script, so a withdrawal always sees this
  worker's own deposits.
* **Withdrawals are atomic.**  One Lua script applies pending deposits, sums
  the live slots, and takes the retry's cost only if the sum plus the reserve
  covers it — two workers can never both take the last token.
* **Time is injected.**  Slots are numbered from ``clock.time()`` (wall clock,
  because monotonic clocks of different hosts are unrelated), so tests drive
  the budget with a ``FakeClock``; hosts must keep their clocks in sync to
  within a slot (``ttl / 10``), which NTP does.
* **Redis down: a local budget decides.**  A shadow :class:`RetryBudget` with
  the same settings sees every deposit; while Redis is unreachable it makes
  the decisions, and what it allowed is replayed (as negative deposits in
  their slots) when Redis returns, so the fleet's bucket reflects it.
"""

from __future__ import annotations

import threading
from typing import Any

from resurgo.clock import SYSTEM_CLOCK, Clock
from resurgo.distributed._link import RedisLink
from resurgo.retrier import BudgetStats, RetryBudget
from resurgo.retrier._budget import wait_from_slots

__all__ = ["RedisRetryBudget"]

_SLOTS = 10

# KEYS: ring ; ARGV: now_slot, reserve, withdraw (0: none, -1: none and return the live slots),
# ttl_ms, then pairs (slot, amount)
_BUDGET = r"""
local cur, reserve, w = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 5, #ARGV, 2 do
  local s = math.min(cur, tonumber(ARGV[i]))
  if s > cur - 10 then redis.call('HINCRBY', KEYS[1], s, tonumber(ARGV[i + 1])) end
end
local sum = 0
local live = {}
local h = redis.call('HGETALL', KEYS[1])
for j = 1, #h, 2 do
  if tonumber(h[j]) <= cur - 10 then redis.call('HDEL', KEYS[1], h[j])
  else
    sum = sum + tonumber(h[j + 1])
    live[#live + 1] = h[j]
    live[#live + 1] = h[j + 1]
  end
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) * 2)
if w > 0 then
  if sum + reserve >= w then
    redis.call('HINCRBY', KEYS[1], cur, -w)
    return {1, sum - w}
  end
  return {0, sum}
end
if w < 0 then return {-1, sum, live} end
return {-1, sum}
"""


class RedisRetryBudget:
    """A fleet-wide retry budget with :class:`RetryBudget`'s interface (``deposit``, ``try_withdraw``,
    ``wait_time``, ``record_bypass``, ``available``, ``stats``).

    ``name`` identifies the dependency (workers naming the same one share a
    bucket); ``ratio`` [0.2], ``min_retries_per_sec`` [10] and ``ttl`` [10 s]
    mean what they mean for :class:`RetryBudget` and must agree fleet-wide
    (the first worker's settings are not enforced on the others).
    """

    def __init__(
        self,
        link: RedisLink,
        name: str,
        *,
        ratio: float = 0.2,
        min_retries_per_sec: float = 10.0,
        ttl: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"budget name must be a non-empty string, got {name!r}")
        self.clock = clock or SYSTEM_CLOCK
        # the shadow validates the settings and decides while Redis is away
        self.local = RetryBudget(ratio=ratio, min_retries_per_sec=min_retries_per_sec, ttl=ttl, clock=self.clock)
        self.link = link
        self.name = name
        self.ratio = self.local.ratio
        self.min_retries_per_sec = self.local.min_retries_per_sec
        self.ttl = self.local.ttl
        self.deposit_amount = self.local.deposit_amount
        self.withdraw_amount = self.local.withdraw_amount
        self.reserve = self.local.reserve
        self._width = self.ttl / _SLOTS
        self._key = link.key("budget", name)
        self._script = link.client.register_script(_BUDGET)
        self._lock = threading.Lock()
        self._pending: dict[int, int] = {}
        self._push_lock = threading.Lock()
        self._deposits = 0
        self._allowed = 0
        self._refused = 0
        self._bypassed = 0
        self._local_decisions = 0
        self._last_sum = 0
        link.register(self)

    def _slot(self) -> int:
        return int(self.clock.time() // self._width)

    def deposit(self) -> None:
        """Record one call; pushed to Redis in the background (no I/O here)."""
        s = self._slot()
        with self._lock:
            self._pending[s] = self._pending.get(s, 0) + self.deposit_amount
            self._deposits += 1
        self.local.deposit()

    def _run(self, withdraw: int) -> list[Any] | None:
        """Push pending deposits (and maybe withdraw) in one script call; None when Redis is down."""
        with self._push_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
            cur = self._slot()
            args: list[Any] = [cur, self.reserve, withdraw, int(self.ttl * 1000)]
            for s, amt in pending.items():
                if s > cur - _SLOTS and amt:
                    args += [s, amt]
            r: list[Any] | None = self.link.call(lambda: self._script(keys=[self._key], args=args), None)
            if r is None:
                with self._lock:  # keep them for the replay, merged with newer ones
                    for s, amt in pending.items():
                        self._pending[s] = self._pending.get(s, 0) + amt
                return None
            self._last_sum = int(r[1])
            return r

    def try_withdraw(self, *, count_refusal: bool = True) -> bool:
        """Take one retry's cost from the fleet's bucket; False means fail fast.

        While Redis is unreachable the local shadow decides, and the cost is
        queued for the fleet's bucket.  ``count_refusal=False``: this retry's
        refusal was already counted (a caller trying again after waiting).
        """
        r = self._run(self.withdraw_amount) if self.link.up else None
        if r is None:
            ok = self.local.try_withdraw(count_refusal=count_refusal)
            with self._lock:
                self._local_decisions += 1
                if ok:
                    s = self._slot()
                    self._pending[s] = self._pending.get(s, 0) - self.withdraw_amount
                    self._allowed += 1
                elif count_refusal:
                    self._refused += 1
            return ok
        ok = int(r[0]) == 1
        with self._lock:
            if ok:
                self._allowed += 1
            elif count_refusal:
                self._refused += 1
        if ok:
            self.local.try_withdraw()  # keep the shadow close to this worker's share
        return ok

    def wait_time(self) -> float | None:
        """Seconds until the fleet's bucket would allow a retry if no calls arrive (0: now).

        None: never without new calls.  Counts and takes nothing (one script call
        that only applies pending deposits and reads the live slots); the local
        estimate while Redis is down.
        """
        r = self._run(-1) if self.link.up else None
        if r is None or len(r) < 3:
            return self.local.wait_time()
        flat = [int(x) for x in r[2]]
        slots = {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}
        now = self.clock.time()
        return wait_from_slots(
            slots, int(now // self._width), self._width, now, self.reserve, self.withdraw_amount
        )

    def record_bypass(self) -> None:
        """Count a retry this worker let through without budget (see ``RetryBudget.record_bypass``)."""
        with self._lock:
            self._bypassed += 1

    def available(self) -> float:
        """Retries the fleet's bucket would allow now (the local estimate while Redis is down)."""
        r = self._run(0) if self.link.up else None
        if r is None:
            return self.local.available()
        return max(0, int(r[1]) + self.reserve) / self.withdraw_amount

    def stats(self) -> BudgetStats:
        """This worker's own counts, and the fleet's availability."""
        avail = self.available()
        with self._lock:
            return BudgetStats(self._deposits, self._allowed, self._refused, avail, self._bypassed)

    @property
    def local_decisions(self) -> int:
        """Withdrawals decided by the local shadow because Redis was unreachable."""
        return self._local_decisions

    def flush(self) -> None:
        with self._lock:
            if not self._pending:
                return
        if self.link.up:
            self._run(0)

    def on_reconnect(self, lost: bool) -> None:
        self.flush()

    def close(self) -> None:
        self.flush()
        self.link.unregister(self)

    def __repr__(self) -> str:
        return (
            f"RedisRetryBudget({self.name!r}, ratio={self.ratio}, min_retries_per_sec={self.min_retries_per_sec}, "
            f"ttl={self.ttl})"
        )
