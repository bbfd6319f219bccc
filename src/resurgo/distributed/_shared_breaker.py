"""Breakers that share their state across a fleet, without touching the breaker's hot path.

Why the design looks like this:

* **No hook in the call path.**  A local :class:`~resurgo.breaker.CircuitBreaker`
  admits a closed-state call by reading one attribute; a network round trip
  there would cost a thousand times more than the breaker itself.  Instead the
  sync thread reads the breaker's lifetime counters (``metrics()``) every
  ``interval`` and pushes the *differences* into a shared window.  Any code
  that uses the breaker — the supervisor's, a decorator, raw permits — is
  shared without being changed.
* **Transitions are decided in Lua, once.**  The shared window and the shared
  state live in two Redis hashes; a script adds outcomes, judges the window
  against the thresholds and, if they are crossed while the shared state is
  closed, opens it — atomically, so exactly one worker performs each shared
  transition and bumps its epoch.  Local openings (a 429 with a reset time, an
  auth error, a local window) go through the same compare-and-set.
* **Openings are pushed, not polled.**  The script publishes the opening; every
  worker's pub/sub thread moves its local breaker to OPEN for the remaining
  wait the moment the message arrives (a millisecond or two on a LAN;
  ``bench/bench_distributed.py`` measures it).  The wait travels as a duration
  computed from Redis's clock, so clock skew between hosts does not matter.
* **Half-open stays local.**  After the wait each worker probes on its own; the
  first worker whose probes pass closes the shared state (compare-and-set on
  the epoch it opened under) and the others follow.
* **Redis down: local breakers keep working.**  Counter differences and
  transitions are buffered and replayed on reconnect (outcomes keep the second
  they were observed in; those that fell out of the window meanwhile only
  count in the lifetime totals); then the shared state is re-read and applied.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from resurgo.breaker import CircuitBreaker, CircuitEvent, CircuitState, StateTransition, WindowKind
from resurgo.distributed._link import RedisLink

log = logging.getLogger("resurgo.distributed")

__all__ = ["RedisBreakerSync", "SharedBreakerState"]

_REMOTE = "shared: "

# KEYS: win, state, channel ; ARGV: name, origin, kind('time'|'count'), size, bucket_s,
#       min_calls, failure_rate, wait_base, wait_mult, wait_max, then triples (ts, calls, failures)
_RECORD = r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local kind, size, bucket = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local st = redis.call('HMGET', KEYS[2], 'state', 'until', 'epoch', 'attempt')
local state = st[1] or 'closed'
local untl = tonumber(st[2] or '0')
local epoch = tonumber(st[3] or '0')
local attempt = tonumber(st[4] or '0')
local blocked = state == 'forced_open' or (state == 'open' and untl > now)
local add_c, add_f = 0, 0
for i = 11, #ARGV, 3 do
  local c, f = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  add_c = add_c + c
  add_f = add_f + f
  if not blocked then
    if kind == 'count' then
      for _ = 1, f do redis.call('LPUSH', KEYS[1], 1) end
      for _ = 1, c - f do redis.call('LPUSH', KEYS[1], 0) end
    else
      local cur = math.floor(now / bucket)
      local idx = math.min(cur, math.floor(tonumber(ARGV[i]) / bucket))
      if idx > cur - size then
        redis.call('HINCRBY', KEYS[1], 'c' .. idx, c)
        redis.call('HINCRBY', KEYS[1], 'f' .. idx, f)
      end
    end
  end
end
redis.call('HINCRBY', KEYS[2], 'total_calls', add_c)
redis.call('HINCRBY', KEYS[2], 'total_failures', add_f)
if blocked then return {0, 0, 0, state, epoch} end
local calls, fails = 0, 0
if kind == 'count' then
  redis.call('LTRIM', KEYS[1], 0, size - 1)
  local xs = redis.call('LRANGE', KEYS[1], 0, -1)
  calls = #xs
  for _, x in ipairs(xs) do fails = fails + tonumber(x) end
  redis.call('EXPIRE', KEYS[1], 86400)
else
  local cur = math.floor(now / bucket)
  local h = redis.call('HGETALL', KEYS[1])
  for j = 1, #h, 2 do
    local idx = tonumber(string.sub(h[j], 2))
    if idx <= cur - size then
      redis.call('HDEL', KEYS[1], h[j])
    elseif string.sub(h[j], 1, 1) == 'c' then
      calls = calls + tonumber(h[j + 1])
    else
      fails = fails + tonumber(h[j + 1])
    end
  end
  redis.call('PEXPIRE', KEYS[1], math.ceil(size * bucket * 2000))
end
local min_calls, rate = tonumber(ARGV[6]), tonumber(ARGV[7])
if calls > 0 and calls >= min_calls and fails / calls >= rate then
  if state == 'open' then attempt = attempt + 1 else attempt = 1 end
  local wait = math.min(tonumber(ARGV[10]), tonumber(ARGV[8]) * tonumber(ARGV[9]) ^ (attempt - 1))
  epoch = epoch + 1
  local reason = string.format('failure_rate %d%% >= %d%% over %d calls (fleet)',
    math.floor(fails * 100 / calls), math.floor(rate * 100 + 0.5), calls)
  redis.call('HSET', KEYS[2], 'state', 'open', 'until', now + wait, 'epoch', epoch,
             'attempt', attempt, 'reason', reason, 'origin', ARGV[2], 'changed', now)
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', KEYS[3], cjson.encode({name = ARGV[1], state = 'open', wait = wait,
    epoch = epoch, attempt = attempt, reason = reason, origin = ARGV[2]}))
  return {1, calls, fails, 'open', epoch}
end
return {0, calls, fails, state, epoch}
"""

# KEYS: win, state, channel ; ARGV: name, origin, state('open'|'forced_open'), wait, attempt, reason
_OPEN = r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local st = redis.call('HMGET', KEYS[2], 'state', 'until', 'epoch', 'attempt')
local state = st[1] or 'closed'
local untl = tonumber(st[2] or '0')
local epoch = tonumber(st[3] or '0')
local want, wait = ARGV[3], tonumber(ARGV[4])
if state == 'forced_open' and want == 'open' then return {0, epoch} end
if want == 'open' and state == 'open' and untl >= now + wait - 0.001 then return {0, epoch} end
if want == 'forced_open' and state == 'forced_open' then return {0, epoch} end
epoch = epoch + 1
local attempt = math.max(tonumber(ARGV[5]), tonumber(st[4] or '0'))
redis.call('HSET', KEYS[2], 'state', want, 'until', now + wait, 'epoch', epoch, 'attempt', attempt,
           'reason', ARGV[6], 'origin', ARGV[2], 'changed', now)
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', KEYS[3], cjson.encode({name = ARGV[1], state = want, wait = wait, epoch = epoch,
  attempt = attempt, reason = ARGV[6], origin = ARGV[2]}))
return {1, epoch}
"""

# KEYS: win, state, channel ; ARGV: name, origin, expect_epoch (-1: any), reason
_CLOSE = r"""
local st = redis.call('HMGET', KEYS[2], 'state', 'epoch')
local state = st[1] or 'closed'
local epoch = tonumber(st[2] or '0')
if state == 'closed' then return {0, epoch} end
local expect = tonumber(ARGV[3])
if expect >= 0 and expect ~= epoch then return {0, epoch} end
local t = redis.call('TIME')
epoch = epoch + 1
redis.call('HSET', KEYS[2], 'state', 'closed', 'until', 0, 'epoch', epoch, 'attempt', 0,
           'reason', ARGV[4], 'origin', ARGV[2], 'changed', tonumber(t[1]))
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', KEYS[3], cjson.encode({name = ARGV[1], state = 'closed', epoch = epoch,
  closed = epoch - 1, reason = ARGV[4], origin = ARGV[2]}))
return {1, epoch}
"""

# KEYS: state ; -> state, remaining wait, epoch, attempt, reason, origin, total_calls, total_failures
_READ = r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local st = redis.call('HMGET', KEYS[1], 'state', 'until', 'epoch', 'attempt', 'reason', 'origin',
                      'total_calls', 'total_failures')
local remaining = math.max(0, tonumber(st[2] or '0') - now)
return {st[1] or 'closed', tostring(remaining), st[3] or '0', st[4] or '0', st[5] or '', st[6] or '',
        st[7] or '0', st[8] or '0'}
"""


@dataclass(frozen=True, slots=True)
class SharedBreakerState:
    """The fleet's view of one breaker (``remaining``: seconds of OPEN left)."""

    name: str
    state: str
    remaining: float
    epoch: int
    attempt: int
    reason: str
    origin: str
    total_calls: int
    total_failures: int


@dataclass
class _Tracked:
    breaker: CircuitBreaker
    successes: int
    failures: int
    #: the shared epoch this breaker last opened under (for the close compare-and-set)
    epoch: int = -1
    #: outcome differences not yet in Redis: second -> [calls, failures]
    pending: dict[int, list[int]] = field(default_factory=dict)
    #: transitions not yet in Redis, oldest first: (kind, wait deadline (monotonic) or None, attempt, reason)
    ops: list[tuple[str, float | None, int, str]] = field(default_factory=list)
    listener: Any = None


class RedisBreakerSync:
    """Shares the state of local breakers with every worker that attaches a breaker of the same name.

    ``link`` is the worker's :class:`RedisLink`.  Call :meth:`attach` with each
    breaker to share; ``detach`` (or ``close``) stops sharing.  Thresholds
    (window, minimum calls, failure rate, waits) are each breaker's own and
    should be the same fleet-wide; the slow-call rate is judged locally only,
    since lifetime counters do not say which calls were slow.
    """

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self.channel = link.key("breaker", "events")
        self._lock = threading.Lock()
        self._tracked: dict[str, list[_Tracked]] = {}
        self._applying = threading.local()
        self._s_record = link.client.register_script(_RECORD)
        self._s_open = link.client.register_script(_OPEN)
        self._s_close = link.client.register_script(_CLOSE)
        self._s_read = link.client.register_script(_READ)
        self.messages = 0
        link.subscribe(self.channel, self._on_message)
        link.register(self)

    # ------------------------------------------------------------------ public
    def attach(self, breaker: CircuitBreaker) -> CircuitBreaker:
        """Share ``breaker`` under its name; the shared state, if open, is applied at once."""
        m = breaker.metrics()
        tr = _Tracked(breaker, m.successes, m.failures)
        with self._lock:
            self._tracked.setdefault(breaker.name, []).append(tr)
        tr.listener = breaker.add_listener(self._listener_for(tr))
        self._apply_shared(tr)
        return breaker

    def detach(self, breaker: CircuitBreaker) -> None:
        with self._lock:
            gone = [t for t in self._tracked.get(breaker.name, ()) if t.breaker is breaker]
            self._tracked[breaker.name] = [t for t in self._tracked.get(breaker.name, ()) if t.breaker is not breaker]
        for t in gone:
            breaker.remove_listener(t.listener)

    def shared_state(self, name: str) -> SharedBreakerState | None:
        """The fleet's state of ``name`` (None while Redis is unreachable)."""
        keys = self._keys(name)
        r = self.link.call(lambda: self._s_read(keys=[keys[1]]), None)
        if r is None:
            return None
        return SharedBreakerState(
            name, str(r[0]), float(r[1]), int(r[2]), int(r[3]), str(r[4]), str(r[5]), int(r[6]), int(r[7])
        )

    def close(self) -> None:
        self.flush()
        self.link.unregister(self)

    # ------------------------------------------------------------------ local -> shared
    def _keys(self, name: str) -> list[str]:
        return [self.link.key("breaker", name, "window"), self.link.key("breaker", name, "state"), self.channel]

    def _listener_for(self, tr: _Tracked) -> Any:
        def listener(ev: CircuitEvent) -> None:
            if not isinstance(ev, StateTransition) or getattr(self._applying, "on", False):
                return
            now = time.monotonic()
            op: tuple[str, float | None, int, str]
            if ev.to_state is CircuitState.OPEN:
                wait = ev.open_for if ev.open_for is not None else tr.breaker.thresholds.wait_in_open
                op = ("open", now + wait, ev.attempt, ev.reason)
            elif ev.to_state is CircuitState.FORCED_OPEN:
                op = ("forced_open", None, 0, ev.reason)
            elif ev.to_state is CircuitState.CLOSED and ev.from_state in (
                CircuitState.HALF_OPEN, CircuitState.OPEN, CircuitState.FORCED_OPEN
            ):
                # probes passed (CAS on the episode) or an operator reset (unconditional)
                op = ("close" if ev.from_state is CircuitState.HALF_OPEN else "reset", None, 0, ev.reason)
            else:
                return
            with self._lock:
                tr.ops.append(op)
            self.link.wake()

        return listener

    def flush(self) -> None:
        """Push counter differences and queued transitions (link thread)."""
        with self._lock:
            trs = [t for ts in self._tracked.values() for t in ts]
        sec = int(time.time())
        for tr in trs:
            m = tr.breaker.metrics()
            ds, df = m.successes - tr.successes, m.failures - tr.failures
            with self._lock:
                if ds or df:
                    tr.successes, tr.failures = m.successes, m.failures
                    slot = tr.pending.setdefault(sec, [0, 0])
                    slot[0] += max(0, ds) + max(0, df)
                    slot[1] += max(0, df)
                ops, tr.ops = tr.ops, []
            if not self._push_ops(tr, ops):
                continue
            if tr.pending and self.link.up:
                self._push_outcomes(tr)

    def _push_ops(self, tr: _Tracked, ops: list[tuple[str, float | None, int, str]]) -> bool:
        name = tr.breaker.name
        keys = self._keys(name)
        origin = self.link.name
        for i, (kind, deadline, attempt, reason) in enumerate(ops):
            if kind == "open":
                assert deadline is not None
                wait = deadline - time.monotonic()
                if wait <= 0:
                    continue  # the opening is over; nothing to tell the fleet any more
                r = self._script(self._s_open, keys, [name, origin, "open", wait, attempt, reason])
            elif kind == "forced_open":
                r = self._script(self._s_open, keys, [name, origin, "forced_open", 0, 0, reason])
            else:
                expect = tr.epoch if kind == "close" else -1
                r = self._script(self._s_close, keys, [name, origin, expect, reason])
            if r is None:  # Redis down: keep this and the later ones, in order
                with self._lock:
                    tr.ops[:0] = ops[i:]
                return False
            tr.epoch = int(r[1])
        return True

    def _script(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script; None when Redis is unreachable."""
        return self.link.call(lambda: script(keys=keys, args=args), None)

    def _push_outcomes(self, tr: _Tracked) -> None:
        t = tr.breaker.thresholds
        with self._lock:
            pending, tr.pending = tr.pending, {}
        args: list[Any] = [
            tr.breaker.name, self.link.name, t.window_kind.value,
            t.window_size, t.bucket_seconds if t.window_kind is WindowKind.TIME else 1,
            t.min_calls, t.failure_rate, t.wait_in_open, t.wait_multiplier, t.max_wait_in_open,
        ]
        for sec, (c, f) in sorted(pending.items()):
            args += [sec, c, f]
        keys = self._keys(tr.breaker.name)
        r = self.link.call(lambda: self._s_record(keys=keys, args=args), None)
        if r is None:
            with self._lock:  # put them back, merged with anything recorded meanwhile
                for sec, (c, f) in pending.items():
                    slot = tr.pending.setdefault(sec, [0, 0])
                    slot[0] += c
                    slot[1] += f

    # ------------------------------------------------------------------ shared -> local
    def _on_message(self, msg: dict[str, Any]) -> None:
        name = msg.get("name")
        if not isinstance(name, str):
            return
        self.messages += 1
        with self._lock:
            trs = list(self._tracked.get(name, ()))
        for tr in trs:
            self._apply(tr, str(msg.get("state")), float(msg.get("wait") or 0.0), int(msg.get("epoch") or 0),
                        str(msg.get("reason") or ""), str(msg.get("origin") or ""),
                        closed=int(msg.get("closed", -1)))

    def _apply(
        self, tr: _Tracked, state: str, wait: float, epoch: int, reason: str, origin: str, *, closed: int = -1
    ) -> None:
        b = tr.breaker
        why = f"{_REMOTE}{reason} (by {origin})"
        self._applying.on = True
        try:
            cur = b.state
            if state == "open":
                tr.epoch = max(tr.epoch, epoch)
                ra = b.retry_after
                if cur is CircuitState.FORCED_OPEN or (
                    cur is CircuitState.OPEN and ra is not None and ra >= wait - 0.001
                ):
                    return
                if cur in (CircuitState.DISABLED, CircuitState.METRICS_ONLY):
                    return  # an operator chose not to break locally; respect it
                b.open(wait=wait, reason=why)
            elif state == "forced_open":
                tr.epoch = max(tr.epoch, epoch)
                if cur not in (CircuitState.FORCED_OPEN, CircuitState.DISABLED, CircuitState.METRICS_ONLY):
                    b.force_open(reason=why)
            elif state == "closed":
                # follow a close only for the episode this breaker is in (or an operator reset)
                if cur in (CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.FORCED_OPEN) and (
                    closed < 0 or tr.epoch <= closed
                ):
                    b.reset(reason=why)
                tr.epoch = max(tr.epoch, epoch)
        finally:
            self._applying.on = False

    def _apply_shared(self, tr: _Tracked) -> None:
        s = self.shared_state(tr.breaker.name)
        if s is None:
            return
        if s.state == "forced_open" or (s.state == "open" and s.remaining > 0):
            self._apply(tr, s.state, s.remaining, s.epoch, s.reason, s.origin)
        else:
            tr.epoch = max(tr.epoch, s.epoch)

    def on_reconnect(self, lost: bool) -> None:
        """Replay what happened while Redis was away, then adopt the shared state.

        A breaker still open locally re-announces its opening (Redis may have
        lost it, or never heard of it); the compare-and-set makes that a no-op
        when the fleet already knows.
        """
        with self._lock:
            trs = [t for ts in self._tracked.values() for t in ts]
        for tr in trs:
            b = tr.breaker
            if lost:
                tr.epoch = -1
            st = b.state
            if st is CircuitState.OPEN and not any(op[0] == "open" for op in tr.ops):
                ra = b.retry_after or 0.0
                if ra > 0 and math.isfinite(ra):
                    with self._lock:
                        tr.ops.append(("open", time.monotonic() + ra, b.metrics().attempt, b.metrics().reason))
            elif st is CircuitState.FORCED_OPEN and not any(op[0] == "forced_open" for op in tr.ops):
                with self._lock:
                    tr.ops.append(("forced_open", None, 0, b.metrics().reason))
        self.flush()
        for tr in trs:
            self._apply_shared(tr)
