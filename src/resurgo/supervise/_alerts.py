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
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from resurgo._redact import redact_url
from resurgo.clock import SYSTEM_CLOCK, Clock
from resurgo.supervise._redact import redact_text

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
    ) -> None:
        if min_interval < 0 or timeout <= 0:
            raise ValueError("AlertManager: min_interval >= 0 and timeout > 0 required")
        if queue_size < 1 or idle <= 0:
            raise ValueError("AlertManager: queue_size >= 1 and idle > 0 required")
        self.webhook = webhook
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
        """POST one alert to the webhook now (blocking); True when it answered 2xx."""
        assert self.webhook is not None
        body = json.dumps(a.to_dict()).encode()
        req = urllib.request.Request(
            self.webhook,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "resurgo-alerts"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                ok = 200 <= int(resp.status) < 300
        except (urllib.error.URLError, OSError, ValueError) as e:
            ok = False
            log.warning("alert webhook %s failed: %s", redact_url(self.webhook), redact_text(str(e)))
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


__all__ = [
    "BREAKER_OPEN",
    "BUDGET_EXHAUSTED",
    "ESCALATION",
    "GAVE_UP",
    "HEALTH_UNHEALTHY",
    "Alert",
    "AlertManager",
]
