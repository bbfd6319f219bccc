"""Alerts: tell a human when resurgo cannot fix something by itself.

Escalations (bad credentials, billing), breaker openings, exhausted retry
budgets and health components turning unhealthy are logged on the ``resurgo.alerts`` logger and, optionally, POSTed as
JSON to a webhook.  Logging is the only channel to a screen: what is shown, and
how, is the application's choice (the ``resurgo`` command shows a short line in
its live progress and nothing with ``-q``; a library user configures logging
as usual).  Each log record carries the :class:`Alert` as ``record.alert``, so
a handler can format it without parsing text.  The supervisor also keeps every
alert in the store, as a ``supervisor`` event of the jobs it concerns.
Two properties matter more than delivery features:

* **no storms** -- during a 529 storm hundreds of jobs fail the same way; the
  same alert *key* (kind + subject) is sent at most once per
  ``min_interval`` seconds, the suppressed ones are counted and reported with
  the next alert of that key;
* **no secrets** -- every text goes through :func:`redact_text` before it
  leaves the process, and the webhook URL is logged as ``scheme://host:port``
  only (:func:`redact_url`: for Slack or Discord the path *is* the token).

Delivery never blocks the caller and never raises into it: alerts fire from
the event loop, from breaker listeners on a Redis pub/sub thread, from plain
code, and a webhook that hangs for ``timeout`` seconds must stall none of
them.  One daemon thread per manager posts them in order from a bounded queue
(``queue_size``; when full, new alerts are counted in ``dropped`` and logged
instead of queued) and exits when idle.  A dead webhook is logged, not fatal.

The webhook is a place the configuration chose, and nowhere else: redirects
are not followed (a 3xx is a failed delivery: the webhook's URL is the only
destination anyone approved), a loopback webhook never goes through a proxy
(``HTTP_PROXY`` set for the outside world must not see local traffic); for
others the standard proxy variables apply unless ``proxy=False``.  One POST
has an overall deadline of ``timeout`` seconds (a server that trickles its
answer cannot hold the delivery thread longer), and any odd answer is a
failed delivery, never an exception.
"""

from __future__ import annotations

import asyncio
import http.client
import ipaddress
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from resurgo._redact import redact_text, redact_url
from resurgo.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger("resurgo.alerts")

#: Alert kinds resurgo raises.
ESCALATION = "escalation"
BREAKER_OPEN = "breaker_open"
BUDGET_EXHAUSTED = "budget_exhausted"
GAVE_UP = "gave_up"
HEALTH_UNHEALTHY = "health_unhealthy"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert as sent: ``key`` groups repeats for rate limiting."""

    kind: str
    subject: str
    message: str
    ts: float
    severity: str = "high"
    details: Mapping[str, Any] = field(default_factory=dict)
    suppressed: int = 0  # alerts of the same key dropped since the previous one was sent

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.subject}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": "resurgo",
            "kind": self.kind,
            "subject": redact_text(self.subject),
            "message": redact_text(self.message),
            "severity": self.severity,
            "ts": self.ts,
            "suppressed": self.suppressed,
            "details": json.loads(redact_text(json.dumps(dict(self.details), default=str))),
        }


class AlertManager:
    """Rate-limited alerts to the log and an optional webhook.

    ``min_interval`` seconds between two alerts of the same key; ``timeout``
    bounds one webhook POST.  ``sink`` (for tests and embedding) receives every
    alert that is sent.  ``sent`` keeps the last ``history`` alerts.
    ``queue_size`` (default 100) bounds the alerts waiting for the webhook;
    ``idle`` (default 5 s) is how long the delivery thread waits for more
    before it exits (the next alert starts a new one).
    """

    def __init__(
        self,
        *,
        webhook: str | None = None,
        min_interval: float = 60.0,
        timeout: float = 5.0,
        clock: Clock = SYSTEM_CLOCK,
        sink: Callable[[Alert], None] | None = None,
        history: int = 200,
        queue_size: int = 100,
        idle: float = 5.0,
        proxy: bool = True,
    ) -> None:
        if min_interval < 0 or timeout <= 0:
            raise ValueError("AlertManager: min_interval >= 0 and timeout > 0 required")
        if queue_size < 1 or idle <= 0:
            raise ValueError("AlertManager: queue_size >= 1 and idle > 0 required")
        self.webhook = webhook
        self.proxy = proxy
        self.min_interval = min_interval
        self.timeout = timeout
        self.clock = clock
        self.sink = sink
        self._history = history
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self.sent: list[Alert] = []
        self.delivered = 0
        self.delivery_failures = 0
        self.dropped = 0  # alerts not posted because the delivery queue was full
        self.queue_size = queue_size
        self.idle = idle
        self._cond = threading.Condition(threading.Lock())  # guards the queue, _busy and _worker
        self._queue: deque[Alert] = deque()
        self._busy = 0
        self._worker: threading.Thread | None = None

    def alert(
        self,
        kind: str,
        subject: str,
        message: str,
        *,
        severity: str = "high",
        details: Mapping[str, Any] | None = None,
    ) -> Alert | None:
        """Raise an alert; returns it, or None when rate limiting suppressed it."""
        now = self.clock.monotonic()
        key = f"{kind}:{subject}"
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.min_interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return None
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
            a = Alert(kind, subject, message, self.clock.time(), severity, dict(details or {}), suppressed)
            self.sent.append(a)
            del self.sent[: -self._history]
        log.warning(
            "ALERT %s [%s] %s%s",
            kind,
            redact_text(subject),
            redact_text(message),
            f" (+{suppressed} similar suppressed)" if suppressed else "",
            extra={"alert": a},
        )
        if self.sink is not None:
            try:
                self.sink(a)
            except Exception:
                log.exception("alert sink failed")
        if self.webhook:
            self._deliver(a)
        return a

    def _deliver(self, a: Alert) -> None:
        """Queue ``a`` for the delivery thread (started if needed); O(1), never waits for the network."""
        with self._cond:
            full = len(self._queue) >= self.queue_size
            if not full:
                self._queue.append(a)
                self._cond.notify_all()
                if self._worker is None:
                    self._worker = threading.Thread(target=self._run, name="resurgo-alerts", daemon=True)
                    self._worker.start()
        if full:
            with self._lock:
                self.dropped += 1
            log.warning("alert webhook %s is behind (%d queued): not sending %s",
                        redact_url(self.webhook or ""), self.queue_size, a.key)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    if not self._cond.wait(self.idle) and not self._queue:
                        self._worker = None  # under the lock: _deliver starts a new thread from now on
                        self._cond.notify_all()
                        return
                a = self._queue.popleft()
                self._busy += 1
            try:
                self.post(a)
            except Exception:  # post handles network errors; anything else must not kill the thread
                log.exception("alert delivery failed")
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every queued alert has been posted (or failed); False if ``timeout`` ran out."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def post(self, a: Alert) -> bool:
        """POST one alert to the webhook now (blocking, at most ``timeout`` s); True when it answered 2xx."""
        assert self.webhook is not None
        body = json.dumps(a.to_dict()).encode()
        req = urllib.request.Request(
            self.webhook,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "resurgo-alerts"},
        )
        conns: list[http.client.HTTPConnection] = []
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({} if not self.proxy or _loopback_url(self.webhook) else None),
            _NoRedirect(),
            _TrackedHTTP(conns),
            _TrackedHTTPS(conns),
        )
        # the per-operation socket timeout does not bound the whole exchange; this does
        expired = threading.Event()
        deadline = threading.Timer(self.timeout, _abort, (conns, expired))
        deadline.daemon = True
        started = time.monotonic()
        deadline.start()
        try:
            with opener.open(req, timeout=self.timeout) as resp:
                status = resp.status
                resp.read(65536)  # the answer must arrive whole (and in time) to count
                ok = isinstance(status, int) and 200 <= status < 300 and not expired.is_set()
                if expired.is_set():
                    log.warning("alert webhook %s failed: no complete answer within %g s",
                                redact_url(self.webhook), self.timeout)
                elif not ok:
                    log.warning("alert webhook %s answered %r", redact_url(self.webhook), status)
        except urllib.error.HTTPError as e:
            ok = False
            e.close()
            what = "a redirect, which is not followed" if 300 <= e.code < 400 else f"HTTP {e.code}"
            log.warning("alert webhook %s failed: %s", redact_url(self.webhook), what)
        except Exception as e:  # any odd answer is a failed delivery (http.client raises more than OSError)
            ok = False
            if expired.is_set() or time.monotonic() - started >= self.timeout:
                why = f"no complete answer within {self.timeout:g} s"
            else:
                why = redact_text(f"{type(e).__name__}: {e}")
            log.warning("alert webhook %s failed: %s", redact_url(self.webhook), why)
        finally:
            deadline.cancel()
        with self._lock:
            if ok:
                self.delivered += 1
            else:
                self.delivery_failures += 1
        return ok

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for queued webhook deliveries (at shutdown) without blocking the event loop."""
        with self._cond:
            if not self._queue and not self._busy:
                return
        await asyncio.to_thread(self.flush, timeout if timeout is not None else self.timeout + 1)


def _loopback_url(url: str) -> bool:
    try:
        host = (urlsplit(url).hostname or "").strip("[]").lower()
    except ValueError:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 3xx becomes an HTTPError: the alert (and whatever the URL's path holds) goes nowhere else."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _abort(conns: list[http.client.HTTPConnection], expired: threading.Event) -> None:
    expired.set()
    for c in list(conns):
        sock = c.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked read in the delivery thread
            except OSError:
                pass


class _TrackedHTTP(urllib.request.HTTPHandler):
    def __init__(self, conns: list[http.client.HTTPConnection]) -> None:
        super().__init__()
        self.conns = conns

    def http_open(self, req: urllib.request.Request) -> Any:
        def make(host: str, **kw: Any) -> http.client.HTTPConnection:
            c = http.client.HTTPConnection(host, **kw)
            self.conns.append(c)
            return c

        return self.do_open(make, req)


class _TrackedHTTPS(urllib.request.HTTPSHandler):
    def __init__(self, conns: list[http.client.HTTPConnection]) -> None:
        super().__init__()
        self.conns = conns

    def https_open(self, req: urllib.request.Request) -> Any:
        def make(host: str, **kw: Any) -> http.client.HTTPSConnection:
            c = http.client.HTTPSConnection(host, **kw)
            self.conns.append(c)
            return c

        return self.do_open(make, req, context=self._context)  # type: ignore[attr-defined]


__all__ = [
    "BREAKER_OPEN",
    "BUDGET_EXHAUSTED",
    "ESCALATION",
    "GAVE_UP",
    "HEALTH_UNHEALTHY",
    "Alert",
    "AlertManager",
]
