"""One adaptive concurrency limit per endpoint for a whole fleet, kept in Redis.

Ten workers each running their own adaptive limit would each find "the API
takes 8 at once" and together send 80: the fleet must not multiply the
limit by its size.  So the limit, and the calls in flight that it bounds,
live in Redis, changed only by Lua scripts (atomic: two workers can never
both take the last slot):

* a hash ``limit:NAME`` holds the limit (AIMD with Reno's congestion
  avoidance, as :class:`~resurgo.limit.AIMD`), the time of the last cut, the
  slow-start flag and the end of a pause;
* a sorted set ``limit:NAME:leases`` holds one member per slot in use, scored
  by its expiry.  A worker renews its leases while it holds them; a worker
  that dies stops renewing and its slots expire after ``lease_ttl`` seconds,
  so they are not lost to the fleet for good.

Samples and drops are applied by the same script against the shared state: a
refusal seen by any worker cuts the fleet's limit (once per round trip, by
the time its call went out), a usage-limit reset pauses every worker.  Times
are wall-clock from the injected clock (hosts keep them in sync with NTP,
as for the shared retry budget).  Redis unreachable: a local limiter with the
last known limit decides until it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import uuid

from resurgo.clock import SYSTEM_CLOCK, Clock
from resurgo.distributed._link import RedisLink
from resurgo.limit import (
    AIMD,
    AdaptiveLimiter,
    AIMDOptions,
    Lease,
    LimitChanged,
    LimitEvent,
    Listener,
    OverloadSignal,
    Paused,
)

log = logging.getLogger("resurgo.distributed")

__all__ = ["RedisLimitLease", "RedisLimiter"]

# KEYS: state, leases ; ARGV: now, lease_id, lease_ttl, initial
_ACQUIRE = r"""
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local limit = tonumber(redis.call('HGET', KEYS[1], 'limit'))
if not limit then
  limit = tonumber(ARGV[4])
  redis.call('HSET', KEYS[1], 'limit', limit)
end
local paused = tonumber(redis.call('HGET', KEYS[1], 'paused_until') or '0')
local n = redis.call('ZCARD', KEYS[2])
if now < paused then return {0, tostring(limit), n, tostring(paused)} end
if n < math.floor(limit) then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[2])
  return {1, tostring(limit), n + 1, '0'}
end
return {0, tostring(limit), n, '0'}
"""

# KEYS: state, leases ; ARGV: now, dropped, started, increase, ratio, ss_ratio, min, max, initial, avoidance
_SAMPLE = r"""
local now = tonumber(ARGV[1])
local limit = tonumber(redis.call('HGET', KEYS[1], 'limit') or ARGV[9])
local old = limit
local n = redis.call('ZCARD', KEYS[2])
local avoiding = redis.call('HGET', KEYS[1], 'avoiding') == '1'
local lo, hi = tonumber(ARGV[7]), tonumber(ARGV[8])
local applied = 1
if ARGV[2] == '1' then
  local last = tonumber(redis.call('HGET', KEYS[1], 'last_cut') or '-1')
  if tonumber(ARGV[3]) < last then return {tostring(limit), tostring(old), 0, n} end
  local ratio = tonumber(ARGV[5])
  if ARGV[10] == '1' and not avoiding then ratio = tonumber(ARGV[6]) end
  limit = math.max(lo, limit * ratio)
  redis.call('HSET', KEYS[1], 'last_cut', now)
  if ARGV[10] == '1' then redis.call('HSET', KEYS[1], 'avoiding', '1') end
elseif n * 2 >= math.floor(limit) then
  local step = tonumber(ARGV[4])
  if avoiding then step = step / math.max(1, limit) end
  limit = math.min(hi, limit + step)
end
redis.call('HSET', KEYS[1], 'limit', limit)
return {tostring(limit), tostring(old), applied, n}
"""

# KEYS: state ; ARGV: now, until, resume_limit
_PAUSE = r"""
local cur = tonumber(redis.call('HGET', KEYS[1], 'paused_until') or '0')
local untl = tonumber(ARGV[2])
if untl <= cur then return 0 end
redis.call('HSET', KEYS[1], 'paused_until', untl, 'last_cut', ARGV[1], 'avoiding', '0')
local limit = tonumber(redis.call('HGET', KEYS[1], 'limit') or ARGV[3])
redis.call('HSET', KEYS[1], 'limit', math.min(limit, tonumber(ARGV[3])))
return 1
"""


class RedisLimitLease:
    """A slot of the fleet's limit (the same methods as :class:`~resurgo.limit.Lease`)."""

    __slots__ = ("_limiter", "done", "id", "signalled", "started")

    def __init__(self, limiter: RedisLimiter, lease_id: str, started: float) -> None:
        self._limiter = limiter
        self.id = lease_id
        self.started = started  # monotonic, like a local lease
        self.done = False
        self.signalled = False

    def success(self, rtt: float | None = None) -> None:
        if not self.done:
            self.done = True
            self._limiter._release(self, dropped=False, started=self.started, reason="success")

    def dropped(self, reason: str = "dropped", *, started: float | None = None) -> None:
        if not self.done:
            self.done = True
            skip = self.signalled
            self._limiter._release(self, dropped=None if skip else True,
                                   started=self.started if started is None else started, reason=reason)

    def ignore(self) -> None:
        if not self.done:
            self.done = True
            self._limiter._release(self, dropped=None, started=self.started, reason="ignored")

    def sample(
        self, *, rtt: float | None = None, dropped: bool = False, started: float | None = None, reason: str = "sample"
    ) -> None:
        if self.done:
            return
        if dropped:
            self.signalled = True
        self._limiter._apply(dropped, self.started if started is None else started, reason)


class RedisLimiter:
    """An adaptive limit shared through Redis by every worker naming the same ``name``.

    The algorithm is AIMD with ``options`` (as
    :func:`resurgo.supervise._adaptive.make_endpoint_limiter` sets it up:
    congestion avoidance, halving at the end of slow start).  ``lease_ttl``:
    seconds a slot outlives its worker (renewed every third of it while
    held); ``poll``: how often a waiting worker asks again (slots freed by
    other workers are not announced).
    """

    def __init__(
        self,
        link: RedisLink,
        name: str,
        *,
        options: AIMDOptions | None = None,
        clock: Clock | None = None,
        lease_ttl: float = 30.0,
        poll: float = 0.1,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("limiter name must be a non-empty string")
        if not (isinstance(lease_ttl, int | float) and math.isfinite(lease_ttl) and lease_ttl > 0):
            raise ValueError(f"lease_ttl must be a positive number, got {lease_ttl!r}")
        if not (isinstance(poll, int | float) and math.isfinite(poll) and poll > 0):
            raise ValueError(f"poll must be a positive number, got {poll!r}")
        self.link = link
        self.name = name
        self.options = options or AIMDOptions(congestion_avoidance=True)
        self.clock = clock or SYSTEM_CLOCK
        self.lease_ttl = float(lease_ttl)
        self.poll = float(poll)
        # decides while Redis is unreachable, from the last limit the fleet had
        self.local = AdaptiveLimiter(name, algorithm=AIMD(self.options), clock=self.clock)
        self._key = link.key("limit", name)
        self._leases_key = link.key("limit", name, "leases")
        c = link.client
        self._acquire_s = c.register_script(_ACQUIRE)
        self._sample_s = c.register_script(_SAMPLE)
        self._pause_s = c.register_script(_PAUSE)
        self._lock = threading.Lock()
        self._held: dict[str, RedisLimitLease] = {}
        self._listeners: list[Listener] = []
        self._limit = float(self.options.initial_limit)
        self._inflight = 0
        self._waiting = 0
        self._renewer: asyncio.Task[None] | None = None

    # -- the interface the supervisor uses ---------------------------------------------------------
    @property
    def limit(self) -> int:
        """The fleet's limit as this worker last saw it (every acquire and sample reads it)."""
        return int(self._limit)

    def refresh(self) -> int:
        """Read the fleet's limit now (``limit`` is the value this worker last saw)."""
        v = self.link.call(lambda: self.link.client.hget(self._key, "limit"), None)
        if v is not None:
            self._limit = float(v)
        return self.limit

    @property
    def inflight(self) -> int:
        """Slots in use across the fleet, as last seen."""
        return self._inflight

    @property
    def waiting(self) -> int:
        """Callers of this worker waiting for a slot."""
        return self._waiting

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _emit(self, ev: LimitEvent) -> None:
        for fn in list(self._listeners):
            try:
                fn(ev)
            except Exception:
                log.exception("limiter %s: listener failed", self.name)

    def _wall(self, mono: float) -> float:
        return self.clock.time() - (self.clock.monotonic() - mono)

    def try_acquire(self) -> RedisLimitLease | Lease | None:
        """A slot of the fleet's limit now, or None; with Redis away, one of the local limiter."""
        lid = f"{self.link.name}:{uuid.uuid4().hex[:12]}"
        now = self.clock.time()
        r = self.link.call(
            lambda: self._acquire_s(keys=[self._key, self._leases_key],
                                    args=[now, lid, self.lease_ttl, self.options.initial_limit]),
            None,
        )
        if r is None:
            self.local.set_limit(self.limit, reason="redis unreachable: the last fleet limit")
            return self.local.try_acquire()
        ok, limit, n = int(r[0]), float(r[1]), int(r[2])
        self._limit, self._inflight = limit, n
        if not ok:
            return None
        lease = RedisLimitLease(self, lid, self.clock.monotonic())
        with self._lock:
            self._held[lid] = lease
        return lease

    async def acquire_async(self, timeout: float | None = None) -> RedisLimitLease | Lease:
        """Wait for a slot of the fleet's limit (polling every ``poll`` s), at most ``timeout`` s."""
        t0 = self.clock.monotonic()
        self._waiting += 1
        try:
            while True:
                lease = self.try_acquire()
                if lease is not None:
                    self._ensure_renewer()
                    return lease
                if timeout is not None and self.clock.monotonic() - t0 >= timeout:
                    from resurgo.limit import LimitExceededError

                    raise LimitExceededError(self.name, limit=self.limit, inflight=self._inflight,
                                             waited=self.clock.monotonic() - t0)
                await self.clock.asleep(self.poll)
        finally:
            self._waiting -= 1

    def pause(self, seconds: float, *, reason: str = "paused", resume_limit: int | None = None) -> None:
        """Pause every worker of the fleet for ``seconds``; the limit restarts from the initial one."""
        if not math.isfinite(seconds):
            raise ValueError(f"seconds must be finite, got {seconds!r}")
        now = self.clock.time()
        until = now + max(0.0, seconds)
        target = resume_limit if resume_limit is not None else self.options.initial_limit
        r = self.link.call(lambda: self._pause_s(keys=[self._key], args=[now, until, target]), None)
        self.local.pause(seconds, reason=reason, resume_limit=resume_limit)
        if r:
            mono = self.clock.monotonic()
            self._emit(OverloadSignal(limiter=self.name, at=now, monotonic=mono, kind="paused", reason=reason,
                                      applied=True))
            self._emit(Paused(limiter=self.name, at=now, monotonic=mono, until=until, reason=reason))

    # -- samples --------------------------------------------------------------------------------------
    def _apply(self, dropped: bool, started: float, reason: str) -> None:
        o = self.options
        now = self.clock.time()
        args = [now, "1" if dropped else "0", self._wall(started), o.increase, o.backoff_ratio,
                o.slow_start_backoff_ratio if o.slow_start_backoff_ratio is not None else o.backoff_ratio,
                o.min_limit, o.max_limit, o.initial_limit, "1" if o.congestion_avoidance else "0"]
        r = self.link.call(lambda: self._sample_s(keys=[self._key, self._leases_key], args=args), None)
        if r is None:
            return
        new, old, applied, n = float(r[0]), float(r[1]), int(r[2]), int(r[3])
        self._limit, self._inflight = new, n
        mono = self.clock.monotonic()
        if dropped:
            self._emit(OverloadSignal(limiter=self.name, at=now, monotonic=mono, kind="dropped", reason=reason,
                                      applied=bool(applied)))
        if int(new) != int(old):
            self._emit(LimitChanged(limiter=self.name, at=now, monotonic=mono, old=int(old), new=int(new),
                                    inflight=n, reason=reason))

    def _release(self, lease: RedisLimitLease, *, dropped: bool | None, started: float, reason: str) -> None:
        with self._lock:
            self._held.pop(lease.id, None)
        self.link.call(lambda: self.link.client.zrem(self._leases_key, lease.id), 0)
        if dropped is not None:
            self._apply(dropped, started, reason)

    # -- leases of the living ------------------------------------------------------------------------
    def renew(self) -> int:
        """Push the expiry of every slot this worker holds; returns how many."""
        with self._lock:
            ids = list(self._held)
        if not ids:
            return 0
        exp = self.clock.time() + self.lease_ttl

        def push() -> int:
            pipe = self.link.client.pipeline()
            for lid in ids:
                pipe.zadd(self._leases_key, {lid: exp}, xx=True)
            pipe.execute()
            return len(ids)

        return self.link.call(push, 0)

    def _ensure_renewer(self) -> None:
        if self._renewer is None or self._renewer.done():
            with contextlib.suppress(RuntimeError):
                self._renewer = asyncio.get_running_loop().create_task(self._renew_loop(), name="resurgo-limit-renew")

    async def _renew_loop(self) -> None:
        while True:
            await self.clock.asleep(self.lease_ttl / 3)
            with self._lock:
                if not self._held:
                    self._renewer = None
                    return
            self.renew()

    def close(self) -> None:
        """Give back every slot this worker holds (a clean stop) and stop renewing."""
        if self._renewer is not None:
            self._renewer.cancel()
        with self._lock:
            held = list(self._held.values())
        for lease in held:
            lease.ignore()
