"""A TCP fault proxy on loopback: the "network" between the CLI and the API.

The CLI reaches the API through ``ANTHROPIC_BASE_URL``; pointing that at this
proxy lets a chaos run break the connection in the ways real networks do —
refused-then-closed, reset, slow, silent, cut mid-stream, thin — without
touching the CLI or the API stand-in.  Faults are switched at runtime from any
thread, so a chaos driver can script "30 s of resets, then a cut" while jobs
are running.

A fault is decided **per connection when it is accepted** (a probability of
0.3 faults 30 % of connections, as a flaky link would), so a switch does not
retroactively change a connection that is already streaming; use
:meth:`FaultProxy.cut_all` to break the live ones (a network cut).

Loopback only: this workplace forbids traffic to other hosts, and a chaos tool
that could be pointed at a real service by a typo is a hazard, so a
non-loopback upstream (or listen address) is refused at construction.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import ipaddress
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from resurgo._lifecycle import LoopThread, StartStop
from resurgo.chaos._faults import FaultLog


class FaultMode(enum.StrEnum):
    """What happens to a connection the fault dice picked."""

    PASS = "pass"
    """Forward untouched."""
    DROP = "drop"
    """Accept, then close at once (FIN): the client sees EOF / "socket hang up"."""
    RESET = "reset"
    """Accept, then abort with SO_LINGER 0 (RST): the client sees ECONNRESET."""
    DELAY = "delay"
    """Forward, sleeping ``delay`` (+ up to ``jitter``) before every chunk, both ways."""
    BLACKHOLE = "blackhole"
    """Accept and read, never forward nor answer: the client hangs until its timeout."""
    CUT = "cut"
    """Forward, but close after ``cut_bytes`` bytes of the response: a cut stream."""
    BANDWIDTH = "bandwidth"
    """Forward at most ``bandwidth`` bytes per second in each direction."""


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """A validated, immutable fault setting; swapped atomically by ``set_mode``."""

    mode: FaultMode = FaultMode.PASS
    probability: float = 1.0
    """Chance that a new connection gets ``mode``; the others pass."""
    delay: float = 0.0
    jitter: float = 0.0
    cut_bytes: int = 0
    bandwidth: int = 0
    """Bytes per second, for ``bandwidth`` mode."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", _mode(self.mode))
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must be within [0, 1], got {self.probability!r}")
        if self.delay < 0 or self.jitter < 0:
            raise ValueError("delay and jitter must be >= 0")
        if self.cut_bytes < 0:
            raise ValueError("cut_bytes must be >= 0")
        if self.bandwidth < 0:
            raise ValueError("bandwidth must be >= 0")
        if self.mode is FaultMode.BANDWIDTH and self.bandwidth <= 0:
            raise ValueError("bandwidth mode needs bandwidth > 0 (bytes per second)")
        if self.mode is FaultMode.DELAY and self.delay == 0 and self.jitter == 0:
            raise ValueError("delay mode needs delay > 0 or jitter > 0")

    @property
    def active(self) -> bool:
        """Whether any connection can be faulted under this setting."""
        return self.mode is not FaultMode.PASS and self.probability > 0


@dataclass(frozen=True, slots=True)
class ProxyStats:
    """A snapshot of what the proxy did, for the chaos report."""

    connections: int = 0
    active: int = 0
    bytes_up: int = 0
    """Client -> upstream."""
    bytes_down: int = 0
    """Upstream -> client."""
    faults: dict[str, int] = field(default_factory=dict)
    """Faults applied, by mode (only connections the dice picked)."""
    upstream_errors: int = 0
    cut_all: int = 0
    """Live connections broken by :meth:`FaultProxy.cut_all`."""


@dataclass(frozen=True, slots=True)
class ProxyFault:
    """One fault the proxy applied to one connection: the per-job ground truth of a chaos run.

    ``route`` is the name of the listener the connection came in on (see
    :meth:`FaultProxy.add_route`; None for the main port), so with one route
    per job every network fault is known per job; ``mode`` is the fault mode,
    or ``"cut_all"`` for a live connection broken by :meth:`FaultProxy.cut_all`.
    ``at`` is wall-clock time (``time.time()``), comparable with the store.
    """

    at: float
    route: str | None
    mode: str
    conn: int


def _mode(mode: FaultMode | str) -> FaultMode:
    try:
        return FaultMode(mode)
    except ValueError:
        modes = ", ".join(m.value for m in FaultMode)
        raise ValueError(f"unknown fault mode {mode!r}; one of: {modes}") from None


def _is_loopback_host(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    addrs = {info[4][0] for info in infos}
    return bool(addrs) and all(ipaddress.ip_address(str(a)).is_loopback for a in addrs)


def _require_loopback(what: str, host: str) -> None:
    if not _is_loopback_host(host):
        raise ValueError(
            f"{what} {host!r} is not a loopback address: the fault proxy only relays "
            "between local endpoints (127.0.0.0/8, ::1), never to another host"
        )


class _Cut(Exception):
    """Raised inside a pipe when the configured cut point is reached."""


def _set_linger0(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _abort(writer: asyncio.StreamWriter | None, *, rst: bool) -> None:
    if writer is None:
        return
    if rst:
        _set_linger0(writer)
    writer.transport.abort()


class _Conn:
    __slots__ = ("client", "down", "id", "route", "task", "up", "upstream")

    def __init__(
        self, client: asyncio.StreamWriter, task: asyncio.Task[Any] | None, *, route: str | None = None, cid: int = 0
    ) -> None:
        self.client = client
        self.route = route
        self.id = cid
        self.upstream: asyncio.StreamWriter | None = None
        self.task = task
        self.up = 0
        self.down = 0


class FaultProxy(StartStop):
    """Loopback TCP relay with runtime-switchable faults.

    Use it from synchronous code (its own event loop in a daemon thread)::

        with FaultProxy(upstream=("127.0.0.1", api_port), seed=7) as p:
            env["ANTHROPIC_BASE_URL"] = p.url
            p.set_mode("reset", probability=0.3)

    or inside a running loop with ``await p.astart()`` / ``await p.astop()``
    (or ``async with``).  ``set_mode``, ``cut_all`` and ``stats`` are safe to
    call from any thread.

    Args:
        upstream: ``(host, port)`` to relay to; must be loopback.
        listen_host: where to listen; loopback only (default ``127.0.0.1``).
        listen_port: 0 (default) picks a free port, read it from :attr:`port`.
        seed: seeds the fault dice and jitter, so a chaos run can be replayed.
        fault_log: shared :class:`FaultLog`; the proxy opens a window for every
            period a fault mode is armed and records each ``cut_all``.
        name: the target name written to the fault log.
        chunk_size: largest read per chunk (default 64 KiB).
        connect_timeout: how long to wait for the upstream (default 5 s).
        mode, probability, delay, jitter, cut_bytes, bandwidth: the initial
            fault setting, as for :meth:`set_mode` (default: pass everything).
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        seed: int | None = None,
        fault_log: FaultLog | None = None,
        name: str = "proxy",
        chunk_size: int = 65536,
        connect_timeout: float = 5.0,
        mode: FaultMode | str = FaultMode.PASS,
        probability: float = 1.0,
        delay: float = 0.0,
        jitter: float = 0.0,
        cut_bytes: int = 0,
        bandwidth: int = 0,
    ) -> None:
        try:
            up_host, up_port = upstream
        except (TypeError, ValueError):
            raise ValueError(f"upstream must be a (host, port) pair, got {upstream!r}") from None
        if not isinstance(up_port, int) or not 0 < up_port < 65536:
            raise ValueError(f"upstream port must be an int in 1..65535, got {up_port!r}")
        _require_loopback("upstream host", str(up_host))
        _require_loopback("listen host", listen_host)
        if not 0 <= listen_port < 65536:
            raise ValueError(f"listen_port must be in 0..65535, got {listen_port!r}")
        if chunk_size <= 0:
            raise ValueError("chunk_size must be > 0")
        if connect_timeout <= 0:
            raise ValueError("connect_timeout must be > 0")
        self.upstream: tuple[str, int] = (str(up_host), up_port)
        self.listen_host = listen_host
        self._listen_port = listen_port
        self.name = name
        self._chunk = chunk_size
        self._connect_timeout = connect_timeout
        self._drop_linger = 1.0
        self._switch = threading.Lock()
        self._log = fault_log
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._window: int | None = None
        self._config = self.set_mode(
            mode, probability=probability, delay=delay, jitter=jitter, cut_bytes=cut_bytes, bandwidth=bandwidth
        )
        # statistics (guarded by _lock)
        self._connections = 0
        self._bytes_up = 0
        self._bytes_down = 0
        self._faults: dict[str, int] = {}
        self._upstream_errors = 0
        self._cut_all = 0
        # runtime
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._conns: set[_Conn] = set()
        self._runner: LoopThread | None = None
        self._port: int | None = None
        # per-route listeners and the per-connection fault record (guarded by _lock)
        self._routes: dict[str, int] = {}
        self._route_servers: list[asyncio.Server] = []
        self._fault_events: list[ProxyFault] = []

    # ------------------------------------------------------------------ config

    def set_mode(
        self,
        mode: FaultMode | str,
        *,
        probability: float = 1.0,
        delay: float = 0.0,
        jitter: float = 0.0,
        cut_bytes: int = 0,
        bandwidth: int = 0,
        seed: int | None = None,
    ) -> FaultConfig:
        """Switch the fault for connections accepted from now on; thread-safe.

        Every call replaces the whole setting (parameters not given fall back
        to their defaults), so a chaos script never inherits a stale delay.
        ``seed`` reseeds the dice.  Returns the validated setting.
        """
        config = FaultConfig(
            mode=_mode(mode),
            probability=probability,
            delay=delay,
            jitter=jitter,
            cut_bytes=cut_bytes,
            bandwidth=bandwidth,
        )
        # One switch at a time, so two racing callers cannot leave a window open.
        with self._switch:
            with self._lock:
                self._config = config
                if seed is not None:
                    self._rng.seed(seed)
            self._log_window(config)
        return config

    def clear(self) -> None:
        """Back to pass-through (shorthand for ``set_mode("pass")``)."""
        self.set_mode(FaultMode.PASS)

    @property
    def config(self) -> FaultConfig:
        with self._lock:
            return self._config

    def _log_window(self, config: FaultConfig) -> None:
        if self._log is None:
            return
        with self._lock:
            old, self._window = self._window, None
        if old is not None:
            self._log.close(old)
        if config.active:
            detail = f"p={config.probability}"
            if config.mode is FaultMode.DELAY:
                detail += f" delay={config.delay} jitter={config.jitter}"
            elif config.mode is FaultMode.CUT:
                detail += f" cut_bytes={config.cut_bytes}"
            elif config.mode is FaultMode.BANDWIDTH:
                detail += f" bandwidth={config.bandwidth}"
            wid = self._log.open(f"net:{config.mode.value}", self.name, detail=detail)
            with self._lock:
                self._window = wid

    def _decide(self, conn: _Conn | None = None) -> FaultConfig:
        """Roll the dice for one new connection: its fault, or PASS (a fault is logged with its route)."""
        with self._lock:
            config = self._config
            self._connections += 1
            if conn is not None:
                conn.id = self._connections
            if not config.active:
                return config
            if config.probability >= 1.0 or self._rng.random() < config.probability:
                self._faults[config.mode.value] = self._faults.get(config.mode.value, 0) + 1
                if conn is not None:
                    self._fault_events.append(ProxyFault(time.time(), conn.route, config.mode.value, conn.id))
                return config
        return FaultConfig()

    def _jitter(self, config: FaultConfig) -> float:
        if config.jitter <= 0:
            return config.delay
        with self._lock:
            return config.delay + self._rng.uniform(0.0, config.jitter)

    # ------------------------------------------------------------------ info

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the proxy is not started")
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        return (self.listen_host, self.port)

    @property
    def url(self) -> str:
        """``http://host:port`` to hand to a client as its base URL."""
        host = self.listen_host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def routes(self) -> dict[str, int]:
        """Route name -> its listening port (see :meth:`add_route`)."""
        with self._lock:
            return dict(self._routes)

    def route_url(self, route: str) -> str:
        """``http://host:port`` of a route added with :meth:`add_route`."""
        host = self.listen_host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.routes[route]}"

    def fault_events(self) -> list[ProxyFault]:
        """Every fault applied so far, per connection and route, oldest first."""
        with self._lock:
            return list(self._fault_events)

    def stats(self) -> ProxyStats:
        with self._lock:
            return ProxyStats(
                connections=self._connections,
                active=len(self._conns),
                bytes_up=self._bytes_up,
                bytes_down=self._bytes_down,
                faults=dict(self._faults),
                upstream_errors=self._upstream_errors,
                cut_all=self._cut_all,
            )

    # ------------------------------------------------------------------ async life cycle

    async def astart(self) -> FaultProxy:
        """Start listening in the running event loop."""
        if self._server is not None:
            raise RuntimeError("the proxy is already started")
        self._loop = asyncio.get_running_loop()
        with self._lock:
            self._routes.clear()
            self._route_servers = []
        self._server = await asyncio.start_server(self._handle, self.listen_host, self._listen_port, reuse_address=True)
        sock = self._server.sockets[0]
        self._port = int(sock.getsockname()[1])
        return self

    async def astop(self) -> None:
        """Stop listening and tear down every live connection; idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        with self._lock:
            conns = list(self._conns)
            extra, self._route_servers = self._route_servers, []
        for srv in extra:
            srv.close()
        tasks = []
        for c in conns:
            _abort(c.client, rst=False)
            _abort(c.upstream, rst=False)
            if c.task is not None:
                c.task.cancel()
                tasks.append(c.task)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for srv in (server, *extra):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(srv.wait_closed(), timeout=2.0)
        if self._log is not None:
            with self._lock:
                wid, self._window = self._window, None
            if wid is not None:
                self._log.close(wid)

    async def __aenter__(self) -> FaultProxy:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()

    # ------------------------------------------------------------------ threaded life cycle

    def start(self, *, timeout: float = 5.0) -> Self:
        """Run the proxy on its own event loop in a daemon thread.

        A daemon thread so that a forgotten proxy never keeps a test process
        alive; :meth:`stop` is still the clean way out.
        """
        if self._runner is not None or self._server is not None:
            raise RuntimeError("the proxy is already started")
        runner = LoopThread(f"resurgo-{self.name}", self.astart, self.astop)
        runner.start(timeout=timeout)
        self._runner = runner
        return self

    def stop(self, *, timeout: float = 5.0) -> None:
        """Stop the threaded proxy, closing every connection; idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None and not runner.stop(timeout=timeout):
            raise RuntimeError(f"the proxy thread did not stop within {timeout} s")

    # ------------------------------------------------------------------ routes

    async def aadd_route(self, route: str) -> int:
        """:meth:`add_route` for callers inside the proxy's loop."""
        if not route or len(route) > 128:
            raise ValueError("a route name must have 1..128 characters")
        with self._lock:
            if route in self._routes:
                return self._routes[route]
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        srv = await asyncio.start_server(
            functools.partial(self._handle, route=route), self.listen_host, 0, reuse_address=True
        )
        port = int(srv.sockets[0].getsockname()[1])
        with self._lock:
            self._routes[route] = port
            self._route_servers.append(srv)
        return port

    def add_route(self, route: str, *, timeout: float = 5.0) -> int:
        """Listen on one more port whose connections are tagged ``route``; returns the port.

        The same relay, faults and dice as the main port; only the tag differs.
        A chaos run gives every job its own route, so each network fault (and
        each live connection broken by :meth:`cut_all`) is known per job -- a
        TCP proxy cannot otherwise tell which client a connection serves.
        Idempotent per name; callable from any thread once started.
        """
        loop = self._loop
        if loop is None or self._server is None:
            raise RuntimeError("the proxy is not started")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise RuntimeError("inside the proxy's loop, await aadd_route()")
        return asyncio.run_coroutine_threadsafe(self.aadd_route(route), loop).result(timeout)

    # ------------------------------------------------------------------ network cut

    def cut_all(self, *, rst: bool = True, timeout: float = 5.0) -> int:
        """Break every live connection now (both sides); returns how many.

        ``rst`` (default) aborts with SO_LINGER 0, like a middlebox dropping
        state; otherwise a plain close.  Callable from any thread, and from
        the proxy's own loop (where it acts immediately).
        """
        loop = self._loop
        if loop is None or self._server is None:
            return 0
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            return self._cut_all_now(rst)

        async def _do() -> int:
            return self._cut_all_now(rst)

        return asyncio.run_coroutine_threadsafe(_do(), loop).result(timeout)

    async def acut_all(self, *, rst: bool = True) -> int:
        """:meth:`cut_all` for callers inside the proxy's loop."""
        return self._cut_all_now(rst)

    def _cut_all_now(self, rst: bool) -> int:
        now = time.time()
        with self._lock:
            conns = list(self._conns)
            self._cut_all += len(conns)
            self._fault_events.extend(ProxyFault(now, c.route, "cut_all", c.id) for c in conns)
        for c in conns:
            _abort(c.client, rst=rst)
            _abort(c.upstream, rst=rst)
        if self._log is not None:
            self._log.instant("net:cut_all", self.name, detail=f"{len(conns)} connections")
        return len(conns)

    # ------------------------------------------------------------------ connections

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, route: str | None = None
    ) -> None:
        conn = _Conn(writer, asyncio.current_task(), route=route)
        config = self._decide(conn)
        with self._lock:
            self._conns.add(conn)
        try:
            await self._serve(conn, reader, writer, config)
        except (asyncio.CancelledError, ConnectionError, OSError, _Cut):
            pass
        finally:
            _abort(conn.upstream, rst=False)
            with contextlib.suppress(Exception):
                writer.close()
            with self._lock:
                self._conns.discard(conn)

    async def _serve(
        self,
        conn: _Conn,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        config: FaultConfig,
    ) -> None:
        mode = config.mode
        if mode is FaultMode.DROP:
            # FIN first, then swallow what the client already sent: closing a socket
            # with unread data makes the kernel send RST, and "drop" must stay
            # distinguishable from "reset" (EOF, not ECONNRESET, on the client).
            if writer.can_write_eof():
                writer.write_eof()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._drop_linger):
                    while await reader.read(self._chunk):
                        pass
            writer.close()
            return
        if mode is FaultMode.RESET:
            _abort(writer, rst=True)
            return
        if mode is FaultMode.BLACKHOLE:
            while await reader.read(self._chunk):
                pass
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream), timeout=self._connect_timeout
            )
        except (OSError, TimeoutError):
            with self._lock:
                self._upstream_errors += 1
            # The upstream is down: refuse the client the way a dead server would.
            _abort(writer, rst=True)
            return
        conn.upstream = up_writer
        pipes = [
            asyncio.ensure_future(self._pipe(reader, up_writer, conn, config, downstream=False)),
            asyncio.ensure_future(self._pipe(up_reader, writer, conn, config, downstream=True)),
        ]
        try:
            done, pending = await asyncio.wait(pipes, return_when=asyncio.FIRST_EXCEPTION)
            failed = any(not t.cancelled() and t.exception() is not None for t in done)
            if failed:
                for t in pending:
                    t.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                for t in done:
                    exc = t.exception()
                    if isinstance(exc, _Cut):
                        # A cut closes the client side after the allowed bytes, plainly.
                        with contextlib.suppress(Exception):
                            writer.close()
        finally:
            for t in pipes:
                t.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)

    def _read_size(self, config: FaultConfig) -> int:
        if config.mode is FaultMode.BANDWIDTH:
            # Small slices so the rate is smooth rather than one burst per second.
            return max(1, min(self._chunk, config.bandwidth // 20 or 1))
        return self._chunk

    async def _pipe(
        self,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        conn: _Conn,
        config: FaultConfig,
        *,
        downstream: bool,
    ) -> None:
        size = self._read_size(config)
        mode = config.mode
        if mode is FaultMode.CUT and downstream and config.cut_bytes == 0:
            # Nothing of the response may pass: hang up once the request is sent
            # and the first response byte shows up (or the upstream closes).
            await src.read(1)
            raise _Cut
        while True:
            data = await src.read(size)
            if not data:
                break
            if mode is FaultMode.DELAY:
                await asyncio.sleep(self._jitter(config))
            if mode is FaultMode.CUT and downstream:
                room = config.cut_bytes - conn.down
                if len(data) >= room:
                    data = data[:room]
                    await self._forward(dst, data, conn, downstream)
                    raise _Cut
            await self._forward(dst, data, conn, downstream)
            if mode is FaultMode.BANDWIDTH:
                await asyncio.sleep(len(data) / config.bandwidth)
        # Half-close so request/response protocols that signal the end with EOF still work.
        if dst.can_write_eof() and not dst.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                dst.write_eof()

    async def _forward(self, dst: asyncio.StreamWriter, data: bytes, conn: _Conn, downstream: bool) -> None:
        if not data:
            return
        dst.write(data)
        await dst.drain()
        with self._lock:
            if downstream:
                conn.down += len(data)
                self._bytes_down += len(data)
            else:
                conn.up += len(data)
                self._bytes_up += len(data)


__all__ = ["FaultConfig", "FaultMode", "FaultProxy", "ProxyFault", "ProxyStats"]
