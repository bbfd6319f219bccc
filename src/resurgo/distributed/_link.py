"""One worker's connection to the fleet's Redis, and what happens when Redis goes away.

Every shared component (breakers, budgets, learned rules) talks to Redis
through a :class:`RedisLink` because they must all agree on one thing: whether
Redis is reachable *right now*.  While it is not, each component keeps working
on local state and buffers what it must tell the fleet; the link's background
thread notices when Redis is back and asks every component to replay its
buffer and re-read the shared state.  Redis errors never escape to callers of
the resilience library: a coordination store that is down must not turn into
an outage of the thing it coordinates.

The link also notices when Redis came back *empty* (a restart without
persistence): a random instance token is kept under ``<prefix>:instance``; if
it changed, components are told the shared state was lost so they re-seed it
from their local copies instead of trusting what they read.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from resurgo._redact import redact_url

log = logging.getLogger("resurgo.distributed")

T = TypeVar("T")

__all__ = ["LinkComponent", "RedisLink", "default_worker_name"]


def default_worker_name() -> str:
    """``host:pid`` — unique enough in a fleet, readable in ``XINFO`` and job records."""
    return f"{socket.gethostname()}:{os.getpid()}"


class LinkComponent(Protocol):
    """What a shared component gives the link: a periodic flush and a reconnect hook."""

    def flush(self) -> None:
        """Push buffered changes; called from the link thread every ``interval``."""

    def on_reconnect(self, lost: bool) -> None:
        """Redis is reachable again; ``lost`` when it came back without the shared state."""


class RedisLink:
    """A Redis client, a reachability flag, a flush thread and a pub/sub thread.

    ``url`` is a ``redis://`` URL; ``prefix`` namespaces every key and channel
    (several fleets can share one Redis); ``name`` identifies this worker in
    messages (default ``host:pid``); ``interval`` [0.05 s] is how often buffered
    outcomes are pushed; ``socket_timeout`` [1 s] bounds how long a call may
    hang on an unresponsive Redis before the link counts it as down.

    Threads start on :meth:`start` (or the first component registered) and
    stop on :meth:`close`; both are daemon threads so a forgotten link cannot
    keep an interpreter alive.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "resurgo",
        name: str | None = None,
        interval: float = 0.05,
        socket_timeout: float = 1.0,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"redis URL must start with redis://, rediss:// or unix://, got {url!r}")
        if not prefix or any(c.isspace() for c in prefix):
            raise ValueError(f"prefix must be a non-empty word, got {prefix!r}")
        if not interval > 0:
            raise ValueError(f"interval must be positive, got {interval!r}")
        self.url = url
        self.prefix = prefix
        self.name = name or default_worker_name()
        self.interval = float(interval)
        self.client: Any = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=min(socket_timeout, 1.0),
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        self._up = True
        self._instance: str | None = None
        self._lock = threading.Lock()
        self._components: list[LinkComponent] = []
        self._handlers: dict[str, list[Callable[[dict[str, Any]], None]]] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pubsub_ready = threading.Event()
        self.errors = 0
        self._check_instance()

    # ------------------------------------------------------------------ keys
    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # ------------------------------------------------------------------ reachability
    @property
    def up(self) -> bool:
        """Was the last call to Redis successful?"""
        return self._up

    def call(self, fn: Callable[[], T], default: T) -> T:
        """Run ``fn`` against Redis; on a Redis error mark the link down and return ``default``."""
        try:
            r = fn()
        except (RedisError, OSError) as e:
            self._down(e)
            return default
        return r

    def _down(self, e: BaseException) -> None:
        self.errors += 1
        if self._up:
            log.warning("redis %s unreachable (%s: %s); carrying on with local state",
                        redact_url(self.url), type(e).__name__, e)
        self._up = False
        self._wake.set()

    def _check_instance(self) -> bool | None:
        """Read (or create) the instance token; True when it differs from the one seen before."""
        try:
            key = self.key("instance")
            self.client.set(key, uuid.uuid4().hex, nx=True)
            cur = self.client.get(key)
        except (RedisError, OSError) as e:
            self._down(e)
            return None
        lost = self._instance is not None and cur != self._instance
        self._instance = cur
        self._up = True
        return lost

    # ------------------------------------------------------------------ components
    def register(self, comp: LinkComponent) -> None:
        with self._lock:
            self._components.append(comp)
        self.start()

    def unregister(self, comp: LinkComponent) -> None:
        with self._lock:
            self._components = [c for c in self._components if c is not comp]

    def wake(self) -> None:
        """Flush now rather than at the next tick (used for openings: latency matters)."""
        self._wake.set()

    def subscribe(self, channel: str, handler: Callable[[dict[str, Any]], None]) -> None:
        """Call ``handler(message_dict)`` for every JSON message published on ``channel``."""
        with self._lock:
            self._handlers.setdefault(channel, []).append(handler)
        self.start()
        self._pubsub_ready.clear()
        self._wake.set()

    def publish(self, channel: str, msg: dict[str, Any]) -> None:
        self.call(lambda: self.client.publish(channel, json.dumps(msg)), 0)

    def wait_subscribed(self, timeout: float = 5.0) -> bool:
        """Block until the pub/sub thread listens on every channel subscribed so far."""
        return self._pubsub_ready.wait(timeout)

    # ------------------------------------------------------------------ threads
    def start(self) -> None:
        with self._lock:
            if self._threads or self._stop.is_set():
                return
            for target, nm in ((self._flush_loop, "flush"), (self._pubsub_loop, "pubsub")):
                t = threading.Thread(target=target, name=f"resurgo-redis-{nm}", daemon=True)
                self._threads.append(t)
                t.start()

    def close(self) -> None:
        """Flush once more (best effort), stop the threads, close the connections."""
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout=3)
        self._flush_all()
        try:
            self.client.close()
        except Exception:
            pass

    def __enter__(self) -> RedisLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _flush_all(self) -> None:
        with self._lock:
            comps = list(self._components)
        for c in comps:
            try:
                c.flush()
            except Exception:  # a component bug must not kill the link thread
                log.exception("redis link: flush of %r failed", c)

    def _flush_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            if not self._up:
                lost = self._check_instance()
                if lost is None:
                    self._stop.wait(min(0.2, self.interval * 4))
                    continue
                log.warning("redis %s reachable again%s; replaying buffered state",
                            redact_url(self.url), " (it lost the shared state)" if lost else "")
                with self._lock:
                    comps = list(self._components)
                for c in comps:
                    try:
                        c.on_reconnect(bool(lost))
                    except Exception:
                        log.exception("redis link: reconnect hook of %r failed", c)
            self._flush_all()

    def _pubsub_loop(self) -> None:
        ps: Any = None
        channels: tuple[str, ...] = ()
        while not self._stop.is_set():
            try:
                with self._lock:
                    want = tuple(sorted(self._handlers))
                if ps is None or want != channels:
                    if ps is not None:
                        ps.close()
                    ps = self.client.pubsub(ignore_subscribe_messages=True)
                    if want:
                        ps.subscribe(*want)
                        # wait for the confirmations so wait_subscribed() means "will not miss"
                        confirmed = 0
                        while confirmed < len(want):
                            m = ps.parse_response(block=True, timeout=2.0)
                            if m is None:
                                raise TimeoutError("no subscribe confirmation")
                            confirmed += 1
                    channels = want
                    self._pubsub_ready.set()
                if not channels:
                    self._stop.wait(0.05)
                    continue
                msg = ps.get_message(timeout=0.1)
                if msg is None or msg.get("type") != "message":
                    continue
                try:
                    data = json.loads(msg["data"])
                except (TypeError, ValueError):
                    log.warning("redis link: ignoring a malformed message on %s", msg.get("channel"))
                    continue
                with self._lock:
                    hs = list(self._handlers.get(msg["channel"], ()))
                for h in hs:
                    try:
                        h(data)
                    except Exception:
                        log.exception("redis link: handler %r failed", h)
            except (RedisError, OSError) as e:
                self._down(e)
                if ps is not None:
                    try:
                        ps.close()
                    except Exception:
                        pass
                ps = None
                channels = ()
                self._stop.wait(0.1)
        if ps is not None:
            try:
                ps.close()
            except Exception:
                pass
