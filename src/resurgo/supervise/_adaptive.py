"""Adaptive concurrency for CLI runs: one :class:`~resurgo.limit.AdaptiveLimiter` per API endpoint.

With ``concurrency="auto"`` each attempt (one ``claude -p`` process) holds a
slot of its endpoint's limiter while it runs.  One slot stands for a whole
session that makes many API calls, so the limiter learns from each of them,
as the CLI reports them on its stream:

* an ``assistant`` message (a real one, not ``<synthetic>``) is a successful
  API call; its latency is the time since the request went out (the attempt's
  start for the first one -- which includes the time to the first event --
  then the last ``user``/tool-result event);
* a ``system/api_retry`` event with status 429/503/529 (the CLI retrying by
  itself) is a refusal, reported the moment it happens, not when the attempt
  ends minutes later;
* a ``rate_limit_event`` whose status is ``rejected`` with a ``resetsAt`` (a
  usage limit) pauses the *whole endpoint* until the reset -- no job of that
  endpoint starts meanwhile -- and the limit restarts low afterwards;
* the attempt's end: a ``resource`` verdict (429/529/"temporarily limiting")
  is a refusal (once per attempt: the ``api_retry`` events may already have
  said so), and one carrying a server reset time pauses the endpoint until
  it; any other end says nothing about capacity.

Every limit change, overload signal, pause and queue wait is kept in the
store's ``concurrency_samples`` table (metrics, the dashboard's chart).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping
from typing import Any

from resurgo.classifier._types import ErrorClass, ErrorType
from resurgo.clock import Clock
from resurgo.limit import (
    AdaptiveLimiter,
    Lease,
    LimitChanged,
    LimitEvent,
    OverloadSignal,
    Paused,
    make_algorithm,
)
from resurgo.store import Store
from resurgo.store.limits import ensure_limits_schema

log = logging.getLogger("resurgo.supervise")

#: API statuses that mean "too much": the CLI's api_retry events with these are refusals
OVERLOAD_STATUSES = frozenset({429, 503, 529})
#: the longest pause a server reset may impose on an endpoint (a usage limit resets within hours)
MAX_PAUSE = 6 * 3600.0
#: the first limit of an endpoint: low, so a fresh batch does not open with a burst of refusals
INITIAL_LIMIT = 2


def make_endpoint_limiter(
    url: str, *, algorithm: str, max_limit: int, clock: Clock, initial: int | None = None
) -> AdaptiveLimiter:
    """The limiter of one endpoint, tuned for CLI sessions rather than RPCs.

    A cut to 3/4 on a refusal (AIMD's 0.9 is sized for thousands of calls a
    second; a batch sees a few a second, so it must move faster); Reno's slow
    start (+1 per successful API call) until the first refusal (halved
    then: slow start overshoots by a round trip's growth), then +1 per
    limit's worth of calls, so a batch that found the API's edge probes past
    it about once per round instead of on every other call.
    """
    opts = endpoint_limit_options(algorithm, max_limit=max_limit, initial=initial)
    return AdaptiveLimiter(f"endpoint:{url}", algorithm=make_algorithm(algorithm, **opts), clock=clock)


def endpoint_limit_options(algorithm: str, *, max_limit: int, initial: int | None = None) -> dict[str, Any]:
    """The options of :func:`make_endpoint_limiter` (a fleet's Redis limiter uses the AIMD ones)."""
    init = max(1, min(max_limit, initial if initial is not None else INITIAL_LIMIT))
    opts: dict[str, Any] = {"initial_limit": init, "min_limit": 1, "max_limit": max_limit, "backoff_ratio": 0.75}
    if algorithm == "aimd":
        opts["increase"] = 1.0
        opts["congestion_avoidance"] = True
        opts["slow_start_backoff_ratio"] = 0.5
    return opts


class LimitRecorder:
    """A limiter listener that keeps its events in the store (``concurrency_samples``)."""

    def __init__(self, store: Store, limiter: AdaptiveLimiter, *, owner: str | None = None) -> None:
        self.store = store
        self.limiter = limiter
        self.owner = owner
        try:
            ensure_limits_schema(store)
        except Exception:
            log.exception("could not create the concurrency table; the limit will not be recorded")
        self._write("limit", None, "initial", ts=limiter.clock.time())

    def _write(self, kind: str, value: float | None, detail: str, *, ts: float) -> None:
        lim = self.limiter
        try:
            self.store.execute(
                "INSERT INTO concurrency_samples(ts, endpoint, kind, limit_value, inflight, waiting, value, detail,"
                " owner) VALUES(?,?,?,?,?,?,?,?,?)",
                (ts, lim.name, kind, lim.limit, lim.inflight, lim.waiting, value, detail[:300], self.owner),
            )
        except Exception:
            log.exception("could not record a concurrency %s of %s", kind, lim.name)

    def __call__(self, ev: LimitEvent) -> None:
        if isinstance(ev, LimitChanged):
            self._write("limit", float(ev.old), ev.reason, ts=ev.at)
        elif isinstance(ev, OverloadSignal):
            self._write("overload", None, f"{ev.kind}{'' if ev.applied else ' (not applied)'}: {ev.reason}", ts=ev.at)
        elif isinstance(ev, Paused):
            self._write("pause", ev.until, ev.reason, ts=ev.at)

    def wait(self, seconds: float) -> None:
        self._write("wait", seconds, "", ts=self.limiter.clock.time())


class AttemptSignals:
    """Turns one attempt's CLI events into limiter samples (see the module docstring)."""

    __slots__ = ("_msg_ids", "_req_start", "lease", "limiter", "signalled")

    def __init__(self, limiter: AdaptiveLimiter, lease: Lease) -> None:
        self.limiter = limiter
        self.lease = lease
        # a CLI takes seconds to start before its first API call: until that call is answered the
        # slot says nothing about the API's capacity
        warm = getattr(lease, "warm_up", None)
        if warm is not None:
            warm()
        self._req_start = lease.started
        self._msg_ids: set[str] = set()
        self.signalled = False

    def on_event(self, etype: str | None, subtype: str | None, data: Mapping[str, Any] | None, mono: float) -> None:
        if data is None or self.lease.done:
            return
        if etype == "assistant":
            msg = data.get("message")
            if not isinstance(msg, Mapping) or "error" in data or msg.get("model") == "<synthetic>":
                return
            mid = msg.get("id")
            if isinstance(mid, str):
                if mid in self._msg_ids:
                    return  # one API answer arrives as several assistant events (one per block)
                self._msg_ids.add(mid)
            self.lease.sample(rtt=max(0.0, mono - self._req_start), reason="api call")
        elif etype == "user":
            self._req_start = mono  # a tool result goes back: the next request starts now
        elif etype == "system" and subtype == "api_retry":
            status = data.get("error_status")
            if isinstance(status, int) and status in OVERLOAD_STATUSES:
                self.signalled = True
                self.lease.sample(dropped=True, started=self._req_start, reason=f"api_retry {status}")
            self._req_start = mono
        elif etype == "rate_limit_event":
            info = data.get("rate_limit_info")
            info = info if isinstance(info, Mapping) else data
            status = info.get("status")
            resets = info.get("resetsAt")
            if status == "rejected" and isinstance(resets, int | float) and not isinstance(resets, bool):
                self.pause_until(float(resets), f"rate_limit_event rejected until {resets:.0f}")

    def relay_failed(self, status: int | None, mono: float) -> None:
        """A request failed in the relay (which retries it unseen by the CLI): an overload status is
        the same signal as the CLI's own ``api_retry``."""
        if self.lease.done:
            return
        if status is not None and status in OVERLOAD_STATUSES:
            self.signalled = True
            self.lease.sample(dropped=True, started=self._req_start, reason=f"relay {status}")
        self._req_start = mono

    def pause_until(self, epoch: float, reason: str) -> None:
        secs = min(MAX_PAUSE, epoch - self.limiter.clock.time())
        if secs > 0:
            self.limiter.pause(secs, reason=reason)

    def finish(self, *, succeeded: bool, cancelled: bool, error: ErrorClass | None) -> None:
        """Give the slot back with what the attempt's end says about the endpoint."""
        if self.lease.done:
            return
        if succeeded or cancelled or error is None or error.type is not ErrorType.RESOURCE:
            self.lease.ignore()  # its API calls were already sampled one by one
            return
        if error.retry_after is not None and error.retry_after > 0:
            self.pause_until(self.limiter.clock.time() + error.retry_after, f"{error.category}: server reset")
        self.lease.dropped(f"{error.category}: {error.description}"[:200], started=self._req_start)





_RECORDERS: weakref.WeakKeyDictionary[Any, LimitRecorder] = weakref.WeakKeyDictionary()


def endpoint_limiter(orch: Any, url: str) -> AdaptiveLimiter:
    """The limiter of a new endpoint of ``orch`` (an Orchestrator), recorded in its store."""
    c = orch.config
    lim = orch.limiter_factory(url) if orch.limiter_factory is not None else None
    if lim is None:
        lim = make_endpoint_limiter(
            url, algorithm=c.concurrency_algorithm, max_limit=c.max_concurrency, clock=orch.clock
        )
    rec = LimitRecorder(orch.jobs.store, lim, owner=orch.jobs.owner)
    lim.add_listener(rec)
    _RECORDERS[lim] = rec
    return lim


async def take_slot(limiter: AdaptiveLimiter) -> AttemptSignals:
    """Wait for a slot of the endpoint's limit (recording how long) and watch the attempt's events."""
    t0 = limiter.clock.monotonic()
    lease = await limiter.acquire_async(timeout=None)
    waited = limiter.clock.monotonic() - t0
    rec = _RECORDERS.get(limiter)
    if rec is not None:
        rec.wait(waited)
    return AttemptSignals(limiter, lease)
__all__ = [
    "INITIAL_LIMIT",
    "AttemptSignals",
    "LimitRecorder",
    "endpoint_limit_options",
    "endpoint_limiter",
    "make_endpoint_limiter",
    "take_slot",
]
