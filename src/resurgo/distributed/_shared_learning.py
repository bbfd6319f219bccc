"""Learned rules shared by a fleet: every worker learns from every worker's retries.

A signature nobody wrote a rule for is learned as transient once retries of it
keep succeeding (``resurgo.classify``'s outcome book).  One worker sees only
its share of those retries, so alone it learns late or never; pooled, the
fleet learns as soon as the evidence exists anywhere.

How (and why so):

* **No hook in the classifier.**  The sync thread compares
  ``Classifier.outcomes()`` with the counts it already accounted for and pushes
  the differences with ``HINCRBY`` (per-signature success / failure hashes),
  so whatever code calls ``record_outcome`` is shared unchanged.
* **Remote outcomes are merged into the local book** with
  ``Classifier.merge_outcomes`` (with the signature's base rule, so a
  signature an explicit rule matches can never become learned), so the
  local classifier decides exactly as before, from counts that now include
  the fleet's.  A changed-notice on pub/sub makes the others
  sync at once rather than at the next poll.
* **Redis down:** outcomes accumulate locally and are pushed as differences on
  reconnect; nothing is lost.  If Redis came back *empty*, every worker
  re-seeds it with a max-merge of its local counts (not a sum: each worker's
  copy already holds the fleet's outcomes, and summing would multiply them).
* ``forget`` removes a signature fleet-wide (Redis and, via pub/sub, every
  worker's book).
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from resurgo.classifier import Classifier, LearnedRule
from resurgo.distributed._link import RedisLink

log = logging.getLogger("resurgo.distributed")

__all__ = ["RedisLearning"]

# KEYS: successes, failures, meta, channel ; ARGV: mode ('add'|'max'), origin, then quads (sig, ds, df, meta)
_PUSH = r"""
local mode = ARGV[1]
for i = 3, #ARGV, 4 do
  local sig, ds, df = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  if mode == 'max' then
    if ds > tonumber(redis.call('HGET', KEYS[1], sig) or '0') then redis.call('HSET', KEYS[1], sig, ds) end
    if df > tonumber(redis.call('HGET', KEYS[2], sig) or '0') then redis.call('HSET', KEYS[2], sig, df) end
  else
    if ds ~= 0 then redis.call('HINCRBY', KEYS[1], sig, ds) end
    if df ~= 0 then redis.call('HINCRBY', KEYS[2], sig, df) end
  end
  redis.call('HSETNX', KEYS[3], sig, ARGV[i + 3])
end
redis.call('PUBLISH', KEYS[4], cjson.encode({kind = 'changed', origin = ARGV[2]}))
return 1
"""


class RedisLearning:
    """Keeps a :class:`~resurgo.classifier.Classifier`'s learned rules in step with the fleet's.

    ``read_interval`` [0.5 s] bounds how stale the local view of other workers'
    outcomes may get when a pub/sub notice is missed.
    """

    def __init__(self, link: RedisLink, classifier: Classifier, *, read_interval: float = 0.5) -> None:
        self.link = link
        self.classifier = classifier
        self.read_interval = float(read_interval)
        self._ks = link.key("learn", "successes")
        self._kf = link.key("learn", "failures")
        self._km = link.key("learn", "meta")
        self.channel = link.key("learn", "events")
        self._script = link.client.register_script(_PUSH)
        self._lock = threading.RLock()
        #: per signature, the (successes, failures) of the local book already accounted in Redis
        self._base: dict[str, tuple[int, int]] = {}
        self._dirty = threading.Event()
        self._dirty.set()
        self._last_read = 0.0
        self._reseed = False
        link.subscribe(self.channel, self._on_message)
        link.register(self)

    # ------------------------------------------------------------------ public
    def learned_rules(self) -> list[LearnedRule]:
        """The local classifier's learned rules (fleet-informed)."""
        return self.classifier.learned_rules()

    def forget(self, signature_or_all: str) -> int:
        """Forget fleet-wide; returns how many signatures this worker's book dropped."""
        with self._lock:
            n = self.classifier.forget(signature_or_all)
            if signature_or_all == "*":
                self._base.clear()
                self.link.call(lambda: self.link.client.delete(self._ks, self._kf, self._km), 0)
            else:
                self._base.pop(signature_or_all, None)
                self.link.call(
                    lambda: [self.link.client.hdel(k, signature_or_all) for k in (self._ks, self._kf, self._km)],
                    [],
                )
        self.link.publish(self.channel, {"kind": "forget", "signature": signature_or_all, "origin": self.link.name})
        return n

    def sync(self) -> None:
        """Push local differences and pull the fleet's counts now (the link thread does it periodically)."""
        self._dirty.set()
        self._last_read = 0.0
        self.flush()

    def close(self) -> None:
        self.flush()
        self.link.unregister(self)

    # ------------------------------------------------------------------ link callbacks
    def _on_message(self, msg: dict[str, Any]) -> None:
        if msg.get("origin") == self.link.name:
            return
        if msg.get("kind") == "forget":
            sig = str(msg.get("signature") or "")
            if sig:
                with self._lock:
                    self.classifier.forget(sig)
                    if sig == "*":
                        self._base.clear()
                    else:
                        self._base.pop(sig, None)
            return
        self._dirty.set()
        self._last_read = 0.0
        self.link.wake()

    def on_reconnect(self, lost: bool) -> None:
        if lost:
            self._reseed = True
        self._dirty.set()
        self._last_read = 0.0

    def flush(self) -> None:
        if not self.link.up:
            return
        import time

        with self._lock:
            if self._reseed:
                if not self._push(self._local_counts(), mode="max"):
                    return
                self._reseed = False
            local = self._local_counts()
            diffs = {}
            for sig, (s, f, meta) in local.items():
                bs, bf = self._base.get(sig, (0, 0))
                if s != bs or f != bf:
                    diffs[sig] = (s - bs, f - bf, meta)
            if diffs and not self._push(diffs, mode="add"):
                return
            now = time.monotonic()
            if diffs or self._dirty.is_set() or now - self._last_read >= self.read_interval:
                self._dirty.clear()
                self._last_read = now
                self._pull(local)

    # ------------------------------------------------------------------ internals
    def _local_counts(self) -> dict[str, tuple[int, int, str]]:
        out: dict[str, tuple[int, int, str]] = {}
        for r in self.classifier.outcomes():
            meta = json.dumps({"base_rule": r.base_rule, "example": r.example, "first_seen": r.first_seen})
            out[r.signature] = (r.successes, r.failures, meta)
        return out

    def _push(self, items: dict[str, tuple[int, int, str]], *, mode: str) -> bool:
        args: list[Any] = [mode, self.link.name]
        for sig, (s, f, meta) in items.items():
            args += [sig, s, f, meta]
        keys = [self._ks, self._kf, self._km, self.channel]
        ok = self.link.call(lambda: self._script(keys=keys, args=args), None)
        if ok is None:
            return False
        if mode == "max":
            self._base = {sig: (s, f) for sig, (s, f, _m) in items.items()}
        else:
            for sig, (ds, df, _m) in items.items():
                bs, bf = self._base.get(sig, (0, 0))
                self._base[sig] = (bs + ds, bf + df)
        return True

    def _pull(self, local: dict[str, tuple[int, int, str]]) -> None:
        c = self.link.client

        def read() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
            p = c.pipeline(transaction=True)
            p.hgetall(self._ks)
            p.hgetall(self._kf)
            p.hgetall(self._km)
            s, f, m = p.execute()
            return s, f, m

        r = self.link.call(read, None)
        if r is None:
            return
        shared_s, shared_f, meta = r
        for sig in set(shared_s) | set(shared_f):
            ss, sf = int(shared_s.get(sig, 0)), int(shared_f.get(sig, 0))
            bs, bf = self._base.get(sig, (0, 0))
            rs, rf = max(0, ss - bs), max(0, sf - bf)
            if not rs and not rf:
                continue
            try:
                m = json.loads(meta.get(sig) or "{}")
            except ValueError:
                m = {}
            base_rule = m.get("base_rule") if isinstance(m, dict) else None
            example = str(m.get("example") or "") if isinstance(m, dict) else ""
            self.classifier.merge_outcomes(
                sig, successes=rs, failures=rf, base_rule=base_rule if isinstance(base_rule, str) else None,
                example=example,
            )
            self._base[sig] = (bs + rs, bf + rf)
