"""The dashboard's HTTP server: JSON API, server-sent events, static UI and ``/metrics``.

Built on the standard library's ``http.server`` so the dashboard has no web
framework to install and works on an air-gapped machine; every asset ships in
``resurgo/dashboard/static``.

Requests run on a bounded thread pool rather than one thread per request: the
store hands each thread its own SQLite connection, so a thread per request
would leak a connection (three file descriptors) per request.  Long-lived
event streams are capped for the same reason; a refused stream makes the page
fall back to polling.

Nobody can tie the server up without credentials: a connection reaches the
pool only once its request headers have fully arrived.  Until then one
selector thread (:class:`_HeaderGate`) reads it without blocking, with an
overall deadline (``header_timeout``, 10 s); idle or trickling connections
beyond ``max_pending`` (or ``max_per_client`` from one address) evict the
oldest waiting one, so a flood of idle sockets cannot keep ``/healthz`` from
answering.

Security: bound to loopback without a token, the server also checks the
``Host`` header (a web page elsewhere cannot reach it through DNS rebinding)
and refuses requests a browser marks as cross-site (``Sec-Fetch-Site``,
``Origin``), so a web page cannot make the browser read a tokenless
dashboard.  Bound anywhere else it refuses to start without a token of at
least :data:`MIN_TOKEN_LENGTH` characters.  Every JSON response goes through
:func:`resurgo.observe.redact_obj`; non-finite numbers become ``null``; a 500
says only that something failed (details go to the log).
"""

from __future__ import annotations

import collections
import contextlib
import hmac
import io
import ipaddress
import json
import logging
import math
import re
import selectors
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from importlib import resources
from typing import Any

from resurgo.observe import (
    error_series,
    error_stats,
    job_detail,
    list_jobs,
    recovery_stats,
    redact_obj,
    resolve_window,
    summary,
)
from resurgo.observe._metrics import Window, breaker_stats
from resurgo.store import Store
from resurgo.store.schema import ensure_schema
from resurgo.supervise._health_store import read_health, worst
from resurgo.supervise._jobstore import owner_alive

log = logging.getLogger(__name__)

COOKIE = "resurgo_token"

#: shorter tokens can be guessed over the network (``resurgo dashboard --token generate`` makes 32 characters)
MIN_TOKEN_LENGTH = 16

#: ``/api/errors`` never builds more buckets than this, whatever ``bucket=`` asks for
MAX_BUCKETS = 2000

#: epoch seconds outside this range are not dates anyone means (and overflow window arithmetic)
_MAX_EPOCH = 1e11

#: ``range=`` values the UI offers, in seconds; ``all`` means from the oldest record.
RANGES: dict[str, float | None] = {
    "15m": 900.0,
    "1h": 3600.0,
    "6h": 6 * 3600.0,
    "24h": 86400.0,
    "7d": 7 * 86400.0,
    "30d": 30 * 86400.0,
    "all": None,
}
_RANGE_RE = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)$")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

_STATIC: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class DashboardError(RuntimeError):
    """The dashboard cannot start as configured (unsafe bind, unusable store, busy port)."""


class BadRequest(ValueError):
    """A request parameter is malformed; its message is shown to the caller."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost``, 127.0.0.0/8, ::1)."""
    h = host.strip("[]").lower()
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def parse_range(params: dict[str, list[str]], now: float) -> tuple[float | None, float]:
    """``range=1h`` (or 90m, 2d, all) / ``start=&end=`` (epoch seconds) -> (start, end)."""
    end = now
    if "end" in params:
        end = _float(params["end"][0], "end")
    if "start" in params:
        return _float(params["start"][0], "start"), end
    raw = (params.get("range") or ["24h"])[0].strip().lower()
    if raw in RANGES:
        span = RANGES[raw]
    else:
        m = _RANGE_RE.match(raw)
        if not m:
            raise BadRequest(
                f"range must be one of {', '.join(RANGES)} or a number with s/m/h/d, got {raw!r}"
            )
        span = float(m.group(1)) * _UNITS[m.group(2)]
    return (None if span is None else end - span), end


def _float(value: str, name: str, *, what: str = "epoch seconds") -> float:
    try:
        v = float(value)
    except ValueError:
        raise BadRequest(f"{name} must be {what}, got {value!r}") from None
    if not math.isfinite(v) or abs(v) > _MAX_EPOCH:
        raise BadRequest(f"{name} must be a finite number of {what}, got {value!r}")
    return v


def bucket_width(raw: str, window_s: float) -> float | None:
    """``bucket=`` in seconds, raised so the window holds at most :data:`MAX_BUCKETS` buckets.

    A tiny bucket would otherwise build millions of empty buckets (``1e-300``
    exhausts memory); raising it rather than refusing keeps a zoomed-out chart working.
    """
    if not raw:
        return None
    b = _float(raw, "bucket", what="seconds")
    if b <= 0:
        raise BadRequest(f"bucket must be > 0 seconds, got {raw!r}")
    return max(b, window_s / MAX_BUCKETS) if window_s > 0 else b


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as ``None``: JSON has no such numbers, and a float the
    store happens to hold must not turn a response into an error (or a dropped connection)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


class _HeaderGate(threading.Thread):
    """Reads request headers of new connections without a thread each; hands complete ones on.

    One selector, non-blocking sockets, an absolute deadline per connection
    (``timeout``), at most ``max_pending`` waiting connections and
    ``max_per_client`` per address, the oldest evicted first: an attacker's
    idle sockets age out and are pushed out by fresh ones, while a real client
    sends its headers at once and is passed on straight away.
    """

    _LIMIT = 64 * 1024  # request line and headers; a GET has no body

    def __init__(self, ready: Callable[[socket.socket, Any, bytes], None], *, timeout: float,
                 max_pending: int, max_per_client: int) -> None:
        super().__init__(name="resurgo-dashboard-headers", daemon=True)
        self.ready = ready
        self.timeout = timeout
        self.max_pending = max_pending
        self.max_per_client = max_per_client
        self.sel = selectors.DefaultSelector()
        self._inbox: collections.deque[tuple[socket.socket, Any]] = collections.deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.sel.register(self._wake_r, selectors.EVENT_READ)
        # insertion-ordered: the first entries are the oldest
        self._pending: dict[socket.socket, tuple[Any, float, bytearray]] = {}
        self._stopping = False
        self.evicted = 0

    def add(self, sock: socket.socket, addr: Any) -> None:
        self._inbox.append((sock, addr))
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def stop(self) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self.is_alive():
            self.join(timeout=5)
        for sock in list(self._pending):
            self._drop(sock)
        while self._inbox:
            self._close(self._inbox.popleft()[0])
        self.sel.close()
        self._wake_r.close()
        self._wake_w.close()

    @staticmethod
    def _close(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.close()

    def _drop(self, sock: socket.socket) -> None:
        self._pending.pop(sock, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.sel.unregister(sock)
        self._close(sock)

    def _admit(self, sock: socket.socket, addr: Any) -> None:
        host = addr[0] if isinstance(addr, tuple) and addr else addr
        same = [s for s, (a, _d, _b) in self._pending.items() if (a[0] if isinstance(a, tuple) else a) == host]
        if len(same) >= self.max_per_client:
            self.evicted += 1
            self._drop(same[0])
        if len(self._pending) >= self.max_pending:
            self.evicted += 1
            self._drop(next(iter(self._pending)))
        try:
            sock.setblocking(False)
            self.sel.register(sock, selectors.EVENT_READ)
        except (OSError, ValueError):
            self._close(sock)
            return
        self._pending[sock] = (addr, time.monotonic() + self.timeout, bytearray())

    def run(self) -> None:
        while not self._stopping:
            now = time.monotonic()
            first = next(iter(self._pending.values()), None)
            wait = 0.5 if first is None else max(0.0, min(0.5, first[1] - now))
            try:
                events = self.sel.select(wait)
            except (OSError, ValueError):
                if self._stopping:
                    return
                continue
            for key, _mask in events:
                sock = key.fileobj
                if sock is self._wake_r:
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(4096)
                    while self._inbox:
                        self._admit(*self._inbox.popleft())
                    continue
                assert isinstance(sock, socket.socket)
                self._read(sock)
            now = time.monotonic()
            expired = [s for s, (_a, deadline, _b) in self._pending.items() if deadline <= now]
            for s in expired:
                self._drop(s)

    def _read(self, sock: socket.socket) -> None:
        entry = self._pending.get(sock)
        if entry is None:
            return
        addr, _deadline, buf = entry
        try:
            chunk = sock.recv(8192)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(sock)
            return
        if not chunk:
            self._drop(sock)
            return
        buf += chunk
        if b"\r\n\r\n" in buf or b"\n\n" in buf:
            self._pending.pop(sock, None)
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.sel.unregister(sock)
            try:
                sock.setblocking(True)
            except OSError:
                self._close(sock)
                return
            self.ready(sock, addr, bytes(buf))
        elif len(buf) > self._LIMIT:
            self._drop(sock)


class _PooledHTTPServer(HTTPServer):
    """An HTTPServer that hands requests to a fixed pool of threads (see the module docstring)."""

    daemon_threads = True
    allow_reuse_address = True

    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], handler: type[BaseHTTPRequestHandler], workers: int, *,
                 header_timeout: float = 10.0, max_pending: int = 256, max_per_client: int = 128) -> None:
        host = addr[0]
        if ":" in host.strip("[]"):
            self.address_family = socket.AF_INET6
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="resurgo-dashboard")
        self._prebuf: dict[int, bytes] = {}
        self._prebuf_lock = threading.Lock()
        super().__init__((host.strip("[]"), addr[1]), handler)
        self.gate = _HeaderGate(self._ready, timeout=header_timeout, max_pending=max_pending,
                                max_per_client=max_per_client)
        self.gate.start()
        self.dashboard: Dashboard | None = None

    def process_request(self, request: Any, client_address: Any) -> None:
        # headers first, without a worker: only complete requests reach the pool (see _HeaderGate)
        self.gate.add(request, client_address)

    def _ready(self, request: socket.socket, client_address: Any, head: bytes) -> None:
        with self._prebuf_lock:
            self._prebuf[request.fileno()] = head
        try:
            self.pool.submit(self._work, request, client_address)
        except RuntimeError:  # shutting down
            with self._prebuf_lock:
                self._prebuf.pop(request.fileno(), None)
            with contextlib.suppress(OSError):
                request.close()

    def take_head(self, request: socket.socket) -> bytes:
        with self._prebuf_lock:
            return self._prebuf.pop(request.fileno(), b"")

    def _work(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        self.gate.stop()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("dashboard: error while handling %s", client_address, exc_info=True)


class Dashboard:
    """The dashboard server over one store.

    ``token``: required on every request when set (``Authorization: Bearer``,
    ``?token=`` which then sets a cookie, or that cookie).  Without a token only
    a loopback ``host`` is allowed.  ``now`` is injectable so tests and
    screenshots can pin time; ``is_alive(owner)`` decides whose stored
    health is shown (default: :func:`owner_alive`, the supervisor process
    exists).  ``port=0`` picks a free port (see :attr:`port`).  A token has at
    least :data:`MIN_TOKEN_LENGTH` characters.  ``header_timeout`` [10 s] is
    how long a connection may take to send its request headers;
    ``max_pending`` [256] / ``max_per_client`` [128] bound the connections
    still sending them (the oldest is dropped first).
    """

    def __init__(
        self,
        store: Store,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        now: Callable[[], float] = time.time,
        poll_s: float = 1.0,
        tick_s: float = 15.0,
        workers: int = 16,
        max_streams: int = 8,
        is_alive: Callable[[str | None], bool] = owner_alive,
        header_timeout: float = 10.0,
        max_pending: int = 256,
        max_per_client: int = 128,
    ) -> None:
        if token is not None and not token.strip():
            raise DashboardError("the token must not be empty")
        if token is not None and len(token) < MIN_TOKEN_LENGTH:
            raise DashboardError(
                f"the token is too short ({len(token)} characters; at least {MIN_TOKEN_LENGTH}): it could be "
                "guessed. Use --token generate for a random one."
            )
        if not token and not is_loopback(host):
            raise DashboardError(
                f"refusing to serve the dashboard on {host} without a token: anyone who can reach "
                "that address could read it. Pass --token (or bind to 127.0.0.1)."
            )
        if max_streams >= workers:
            raise DashboardError("max_streams must leave workers free for ordinary requests")
        self.store = store
        self.host = host
        self.token = token
        self.now = now
        self.poll_s = poll_s
        self.tick_s = tick_s
        self.max_streams = max_streams
        self.is_alive = is_alive
        self._streams = 0
        self._streams_lock = threading.Lock()
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._registry: Any = None
        try:
            ensure_schema(store)
        except Exception as e:
            raise DashboardError(f"cannot use the store {store.path}: {e}") from e
        try:
            self.httpd = _PooledHTTPServer((host, port), _Handler, workers, header_timeout=header_timeout,
                                           max_pending=max_pending, max_per_client=max_per_client)
        except OSError as e:
            raise DashboardError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
        self.httpd.dashboard = self

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host.strip('[]')}]"
        return f"http://{host}:{self.port}/"

    def start(self) -> Dashboard:
        """Serve in a background thread (tests, embedding); returns self."""
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="resurgo-dashboard", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def shutdown(self) -> None:
        """Stop accepting, end event streams, wait for workers, release the port."""
        self.stopping.set()
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=5)
        self.httpd.pool.shutdown(wait=True, cancel_futures=True)
        self.httpd.server_close()

    def __enter__(self) -> Dashboard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- streams -----------------------------------------------------------------------
    def acquire_stream(self) -> bool:
        with self._streams_lock:
            if self._streams >= self.max_streams:
                return False
            self._streams += 1
            return True

    def release_stream(self) -> None:
        with self._streams_lock:
            self._streams -= 1

    def fingerprint(self) -> tuple[Any, ...]:
        """Changes whenever the supervisor writes something the dashboard shows."""
        row = self.store.query(
            "SELECT (SELECT COUNT(*) FROM jobs), (SELECT MAX(updated_at) FROM jobs),"
            " (SELECT MAX(id) FROM events), (SELECT MAX(id) FROM attempts),"
            " (SELECT COUNT(ended_at) FROM attempts), (SELECT MAX(id) FROM errors),"
            " (SELECT MAX(id) FROM recoveries), (SELECT COUNT(restored_at) + COUNT(succeeded)"
            " FROM recoveries), (SELECT MAX(id) FROM breaker_transitions), (SELECT MAX(id) FROM retries),"
            # health rows are refreshed every few seconds; only a change of state (or a component
            # appearing / going) is news, so the timestamps stay out of the fingerprint
            " (SELECT COUNT(*) FROM health), (SELECT TOTAL(CASE state WHEN 'unhealthy' THEN 1000000"
            " WHEN 'degraded' THEN 1000 ELSE 1 END) FROM health)"
        )[0]
        return tuple(row)

    def metrics_registry(self) -> Any:
        if self._registry is None:
            from resurgo.observe._prometheus import make_registry

            self._registry = make_registry(self.store, now=self.now)
        return self._registry

    # -- API ---------------------------------------------------------------------------
    def api(self, path: str, params: dict[str, list[str]]) -> Any:
        """Answer a JSON API request (raises BadRequest / KeyError for 400 / 404)."""
        now = self.now()
        if path == "/api/summary":
            start, end = parse_range(params, now)
            d = summary(self.store, start=start, end=end, now=now).to_dict()
            d["now"] = now
            return d
        if path == "/api/health":
            return self.health(now)
        win = self._window(params, now)
        if path == "/api/errors":
            bucket = bucket_width(params.get("bucket", [""])[0], win.seconds)
            series = error_series(self.store, win, bucket_s=bucket)
            return {
                "window": _win(win),
                "series": series.to_dict(),
                "stats": error_stats(self.store, win).to_dict(),
            }
        if path == "/api/breakers":
            return {"window": _win(win), "breakers": [b.to_dict() for b in breaker_stats(self.store, win)]}
        if path == "/api/recoveries":
            rows = self.store.query(
                "SELECT r.*, j.name AS job_name FROM recoveries r LEFT JOIN jobs j ON j.id = r.job_id"
                " WHERE r.detected_at >= ? AND r.detected_at < ? ORDER BY r.detected_at DESC LIMIT 200",
                (win.start, win.end),
            )
            return {
                "window": _win(win),
                "stats": recovery_stats(self.store, win).to_dict(),
                "recent": [dict(r) for r in rows],
            }
        if path == "/api/jobs":
            limit = params.get("limit", ["200"])[0]
            try:
                n = max(1, min(int(limit), 5000))
            except ValueError:
                raise BadRequest(f"limit must be an integer, got {limit!r}") from None
            state = params.get("state", [None])[0]
            use_window = params.get("range", [""])[0] or "start" in params
            return {
                "window": _win(win),
                "jobs": list_jobs(self.store, win if use_window else None, state=state, limit=n),
            }
        if path == "/api/concurrency":
            from resurgo.observe._concurrency import concurrency_series

            return {"window": _win(win), **concurrency_series(self.store, win.start, win.end)}
        if path.startswith("/api/jobs/"):
            job_id = urllib.parse.unquote(path[len("/api/jobs/") :])
            detail = job_detail(self.store, job_id)
            if detail is None:
                raise KeyError(f"no job {job_id!r}")
            return detail
        raise KeyError(f"no such endpoint {path}")

    def health(self, now: float) -> dict[str, Any]:
        """The latest health of every live supervisor writing to this store (rows of dead ones are skipped)."""
        rows = read_health(self.store, is_alive=self.is_alive)
        return {
            "now": now,
            "overall": worst([r.state for r in rows]),
            "supervisors": sorted({r.owner for r in rows}),
            "components": [r.to_dict(now) for r in rows],
        }

    def _window(self, params: dict[str, list[str]], now: float) -> Window:
        start, end = parse_range(params, now)
        return resolve_window(self.store, start=start, end=end, now=now)


def _win(win: Window) -> dict[str, float]:
    return {"start": win.start, "end": win.end, "seconds": win.seconds}


class _Handler(BaseHTTPRequestHandler):
    server: _PooledHTTPServer
    # One request per connection: idle keep-alive connections would each pin a pool worker.
    protocol_version = "HTTP/1.0"
    # headers have already arrived (the gate); this bounds each write to a client that stopped reading
    timeout = 10
    server_version = "resurgo-dashboard"
    sys_version = ""

    @property
    def dash(self) -> Dashboard:
        assert self.server.dashboard is not None
        return self.server.dashboard

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines may carry ?token=; keep them out of the default stderr log.
        log.debug("dashboard %s: %s", self.address_string(), format % args)

    # -- plumbing --------------------------------------------------------------------
    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: Any, *, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(redact_obj(value), separators=(",", ":"), allow_nan=False).encode()
        self._send(status, body, "application/json", headers=headers)

    def _error(self, status: int, message: str, **headers: str) -> None:
        self._json(status, {"error": message, "status": status}, headers=headers or None)

    # -- auth ------------------------------------------------------------------------
    def _authorised(self, params: dict[str, list[str]]) -> tuple[bool, bool]:
        """(allowed, came with ?token=) for this request."""
        token = self.dash.token
        if not token:
            return True, False
        expected = token.encode()
        auth = self.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer " and hmac.compare_digest(auth[7:].strip().encode(), expected):
            return True, False
        q = params.get("token")
        if q and hmac.compare_digest(q[0].encode(), expected):
            return True, True
        for part in self.headers.get("Cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and hmac.compare_digest(urllib.parse.unquote(value).encode(), expected):
                return True, False
        return False, False

    def setup(self) -> None:
        super().setup()
        head = self.server.take_head(self.connection)
        if head:  # the gate read the request headers already; a GET has nothing more to read
            raw, self.rfile = self.rfile, io.BytesIO(head)
            raw.close()

    def _cross_site(self) -> bool:
        """A request a browser sent on behalf of another site (a link, an image, a fetch from a web page).

        ``Sec-Fetch-Site`` is sent by current browsers; ``Origin`` covers
        older ones for scripted requests.  Tools (curl, Prometheus) send
        neither and are unaffected; the page's own requests are same-origin.
        """
        site = self.headers.get("Sec-Fetch-Site", "").strip().lower()
        if site and site not in ("same-origin", "none"):
            return True
        origin = self.headers.get("Origin")
        if origin is not None:
            o = urllib.parse.urlsplit(origin.strip())
            if origin.strip() == "null" or o.netloc.lower() != self.headers.get("Host", "").strip().lower():
                return True
        return False

    def _host_ok(self) -> bool:
        """Without a token, only loopback Host headers: defeats DNS rebinding."""
        if self.dash.token:
            return True
        host = self.headers.get("Host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if host.startswith("[") and "]" in host:
            name = host[1 : host.index("]")]
        return is_loopback(name)

    # -- routes ----------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        params = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        path = url.path.rstrip("/") or "/"
        if not self._host_ok():
            self._error(HTTPStatus.FORBIDDEN, "this dashboard answers only to loopback host names")
            return
        if not self.dash.token and self._cross_site() and path != "/healthz":
            # without a token a loopback address is the only protection; another site's page must not use it
            self._error(HTTPStatus.FORBIDDEN, "cross-site requests are refused")
            return
        if path.startswith("/static/") or path == "/favicon.ico":
            # Assets hold no data, and the token page needs its stylesheet.
            self._route(path, params, {})
            return
        ok, via_query = self._authorised(params)
        if not ok:
            if path == "/" and "text/html" in self.headers.get("Accept", ""):
                body = _LOGIN_PAGE.encode()
                self._send(HTTPStatus.UNAUTHORIZED, body, "text/html; charset=utf-8",
                           headers={"WWW-Authenticate": 'Bearer realm="resurgo"'})
            else:
                self._error(HTTPStatus.UNAUTHORIZED, "a token is required (Authorization: Bearer, "
                            "or ?token=)", **{"WWW-Authenticate": 'Bearer realm="resurgo"'})
            return
        cookie: dict[str, str] = {}
        if via_query and self.dash.token:
            cookie["Set-Cookie"] = (
                f"{COOKIE}={urllib.parse.quote(self.dash.token)}; Path=/; HttpOnly; SameSite=Strict"
            )
            if path == "/":
                # Drop the token from the address bar and history once the cookie is set.
                rest = {k: v for k, v in params.items() if k != "token"}
                location = "/" + ("?" + urllib.parse.urlencode(rest, doseq=True) if rest else "")
                self._send(HTTPStatus.SEE_OTHER, b"", "text/plain", headers={**cookie, "Location": location})
                return
        try:
            self._route(path, params, cookie)
        except BrokenPipeError:
            pass
        except ConnectionResetError:
            pass

    def _route(self, path: str, params: dict[str, list[str]], cookie: dict[str, str]) -> None:
        if path == "/":
            self._static("index.html", cookie)
        elif path.startswith("/static/"):
            self._static(path[len("/static/") :], cookie)
        elif path == "/favicon.ico":
            self._static("favicon.svg", cookie)
        elif path == "/metrics":
            from prometheus_client import generate_latest
            from prometheus_client.exposition import CONTENT_TYPE_LATEST

            self._send(HTTPStatus.OK, generate_latest(self.dash.metrics_registry()), CONTENT_TYPE_LATEST,
                       headers=cookie)
        elif path == "/healthz":
            self._json(HTTPStatus.OK, {"ok": True}, headers=cookie)
        elif path == "/api/stream":
            self._stream(params)
        elif path.startswith("/api/"):
            try:
                value = self.dash.api(path, params)
            except BadRequest as e:
                self._error(HTTPStatus.BAD_REQUEST, str(e))
            except ValueError as e:
                self._error(HTTPStatus.BAD_REQUEST, str(e))
            except KeyError as e:
                self._error(HTTPStatus.NOT_FOUND, str(e.args[0]) if e.args else "not found")
            except Exception:
                # the text of an exception can hold paths, SQL or data: it goes to the log only
                log.exception("dashboard: %s failed", path)
                self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error; the dashboard's log has the details")
            else:
                self._json(HTTPStatus.OK, json_safe(value), headers=cookie)
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no such page {path}")

    def _static(self, name: str, cookie: dict[str, str]) -> None:
        ctype = _STATIC.get(name)
        if ctype is None:
            self._error(HTTPStatus.NOT_FOUND, f"no such asset {name}")
            return
        body = resources.files("resurgo.dashboard").joinpath("static", name).read_bytes()
        self._send(HTTPStatus.OK, body, ctype, headers=cookie)

    def _stream(self, params: dict[str, list[str]]) -> None:
        """Server-sent events: ``update`` whenever the store changes, and every ``tick_s``.

        Events carry no data beyond a counter: the page refetches what it shows,
        so the stream never has to know which range or job is on screen.
        """
        dash = self.dash
        if not dash.acquire_stream():
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, "too many live streams; poll instead",
                        **{"Retry-After": "30"})
            return
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Accel-Buffering", "no")
            self.end_headers()
            n = 0
            self.wfile.write(b"retry: 3000\n\n")
            last = dash.fingerprint()
            last_sent = time.monotonic()
            self.wfile.write(f"event: update\nid: {n}\ndata: {{\"n\": {n}}}\n\n".encode())
            self.wfile.flush()
            while not dash.stopping.wait(dash.poll_s):
                fp = dash.fingerprint()
                if fp != last or time.monotonic() - last_sent >= dash.tick_s:
                    n += 1
                    reason = "change" if fp != last else "tick"
                    last, last_sent = fp, time.monotonic()
                    self.wfile.write(
                        f"event: update\nid: {n}\ndata: {{\"n\": {n}, \"reason\": \"{reason}\"}}\n\n".encode()
                    )
                    self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            pass
        finally:
            dash.release_stream()


_LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>resurgo</title>
<link rel="stylesheet" href="/static/style.css"></head><body class="login">
<main><h1>resurgo</h1><p>This dashboard needs its access token.</p>
<p>Open it as <code>http://HOST:PORT/?token=YOUR_TOKEN</code>; the token is then kept in a cookie.</p>
</main></body></html>"""


def serve(store: Store, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None) -> None:
    """Run the dashboard in the foreground until interrupted."""
    dash = Dashboard(store, host=host, port=port, token=token)
    try:
        dash.serve_forever()
    finally:
        dash.shutdown()
