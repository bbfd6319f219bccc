"""The Messages API stand-in: HTTP/1.1 on raw asyncio streams.

Written on asyncio streams rather than an HTTP framework because the faults
that matter live below HTTP: a reset must be a real TCP RST, a hang must hold
the socket open without a byte, and a cut stream must stop mid-chunk. A
framework would answer for us (or buffer) exactly where we need to misbehave.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from resurgo._lifecycle import LoopThread, StartStop
from resurgo.mockapi._capacity import Capacity, CapacityState
from resurgo.mockapi._errors import error_response, reason_phrase
from resurgo.mockapi._faults import KIND_CUT, KIND_HANG, KIND_RESET, Decision, Faults, FaultState
from resurgo.mockapi._script import estimate_tokens, next_reply
from resurgo.mockapi._sse import encode_event, message_json, sse_events

_MAX_HEADER = 256 * 1024
_MAX_BODY = 64 * 1024 * 1024
_SECRET_HEADERS = {"x-api-key", "authorization", "proxy-authorization", "cookie"}
CONTROL_PREFIX = "/_resurgo/"
ROUTE_PREFIX = "/j/"
_MAX_ROUTE = 128


def split_route(path: str) -> tuple[str | None, str]:
    """``/j/<route>/v1/messages`` -> ``("<route>", "/v1/messages")``; other paths unchanged.

    The real CLI keeps the path of ``ANTHROPIC_BASE_URL`` (checked with 2.1.x:
    ``http://host:port/j/job-7/`` is requested as ``/j/job-7/v1/messages``), so a
    route prefix names the client without a header of our own.  Bounded: a route
    longer than 128 characters is not a route and the path is left as it is.
    """
    if not path.startswith(ROUTE_PREFIX):
        return None, path
    rest = path[len(ROUTE_PREFIX) :]
    route, sep, tail = rest.partition("/")
    if not route or len(route) > _MAX_ROUTE:
        return None, path
    return route, "/" + tail if sep else "/"


@dataclass(frozen=True)
class RequestRecord:
    """One request the stand-in saw (control requests excluded).

    ``fault`` is the failure injected (``"529"``, ``"reset"``, ``"hang"``,
    ``"cut"``) or None; ``status`` is the status sent (None when no status
    line was sent). Secret headers are redacted so records can be logged.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    session_id: str | None
    time: float
    fault: str | None
    status: int | None
    stream: bool
    body: dict[str, Any] | None = field(repr=False, default=None)
    route: str | None = None
    """The ``/j/<route>`` prefix the client's base URL carried (None: none): a chaos run gives
    every job its own base URL path so each request, and each fault, is known per job."""


class _BadRequest(Exception):
    pass


class MockServer(StartStop):
    """A fault-injecting stand-in for the Anthropic Messages API.

    ``host``/``port``: where to listen (port 0 picks a free port, read it back
    from :attr:`port`). ``faults``: the initial fault plan (default: none).
    ``record_bodies``: keep parsed request bodies in :attr:`requests`
    (default True; turn off for long soak runs, a CLI request is ~100 kB).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        faults: Faults | None = None,
        record_bodies: bool = True,
        capacity: Capacity | None = None,
    ) -> None:
        self.host = host
        self._capacity = CapacityState(capacity)
        self._want_port = port
        self._port: int | None = None
        self._faults = FaultState(faults or Faults())
        self._record_bodies = record_bodies
        self._records: list[RequestRecord] = []
        self._records_lock = threading.Lock()
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: LoopThread | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping: asyncio.Event | None = None
        self._connections_total = 0
        #: called (from the server's loop) with each record; keep it quick
        self.on_request: Callable[[RequestRecord], None] | None = None

    # ------------------------------------------------------------------ public API

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("MockServer is not started")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the requests seen so far, oldest first."""
        with self._records_lock:
            return list(self._records)

    @property
    def faults(self) -> Faults:
        return self._faults.faults

    def set_faults(self, faults: Faults | None = None, /, **fields: Any) -> None:
        """Switch the fault plan now (thread-safe); counters restart with it.

        Either a :class:`Faults` or its fields as keywords; no argument clears all faults.
        """
        if faults is not None and fields:
            raise TypeError("pass a Faults or keyword fields, not both")
        self._faults.set(faults if faults is not None else Faults(**fields))

    def clear_faults(self) -> None:
        self._faults.set(Faults())

    @property
    def capacity(self) -> Capacity:
        return self._capacity.capacity

    def set_capacity(self, capacity: Capacity | None = None, /, **fields: Any) -> None:
        """Switch the capacity model now (thread-safe): a :class:`Capacity` or its fields; none = unlimited."""
        if capacity is not None and fields:
            raise TypeError("pass a Capacity or keyword fields, not both")
        self._capacity.set(capacity if capacity is not None else Capacity(**fields))

    def capacity_stats(self) -> dict[str, Any]:
        """The capacity model's plan and counters (in flight now, most seen, admitted, refused)."""
        return self._capacity.snapshot()

    def stats(self) -> dict[str, Any]:
        """Counts by path, status and fault, plus the fault plan's bookkeeping."""
        recs = self.requests
        by_path: dict[str, int] = {}
        by_status: dict[str, int] = {}
        by_fault: dict[str, int] = {}
        for r in recs:
            by_path[r.path] = by_path.get(r.path, 0) + 1
            by_status[str(r.status)] = by_status.get(str(r.status), 0) + 1
            if r.fault:
                by_fault[r.fault] = by_fault.get(r.fault, 0) + 1
        return {
            "requests": len(recs),
            "by_path": by_path,
            "by_status": by_status,
            "by_fault": by_fault,
            "open_connections": len(self._writers),
            "connections_total": self._connections_total,
            **self._faults.snapshot(),
            "capacity": self._capacity.snapshot(),
        }

    def reset_requests(self) -> None:
        with self._records_lock:
            self._records.clear()

    async def start_async(self) -> None:
        """Listen on the running loop (for callers that own the loop)."""
        if self._server is not None:
            raise RuntimeError("MockServer already started")
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._server = await asyncio.start_server(self._on_connection, self.host, self._want_port, limit=_MAX_HEADER)
        sock = self._server.sockets[0]
        self._port = int(sock.getsockname()[1])

    async def stop_async(self) -> None:
        """Close the listener and every open connection, hung ones included."""
        if self._server is None:
            return
        assert self._stopping is not None
        self._stopping.set()
        self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2.0)
        self._server = None

    def start(self, *, timeout: float = 10.0) -> Self:
        """Run on a private loop in a daemon thread; returns once listening.

        Raises what listening raised (a port in use), or RuntimeError after
        ``timeout`` seconds.
        """
        if self._runner is not None:
            raise RuntimeError("MockServer already started")
        runner = LoopThread(f"resurgo-mockapi-{id(self):x}", self.start_async, self.stop_async)
        runner.start(timeout=timeout)
        self._runner = runner
        return self

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop the threaded server; safe to call twice or after a failed start."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.stop(timeout=timeout)

    async def __aenter__(self) -> MockServer:
        await self.start_async()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop_async()

    # ------------------------------------------------------------------ connection handling

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self._connections_total += 1
        try:
            while True:
                keep = await self._serve_one(reader, writer)
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            if not writer.transport.is_closing():
                writer.transport.close()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # client closed between requests
        except asyncio.LimitOverrunError:
            await self._send_json(
                writer,
                431,
                {"type": "error", "error": {"type": "invalid_request_error", "message": "Request headers too large"}},
                False,
            )
            return False
        try:
            method, target, headers = _parse_head(head)
            body_bytes = await _read_body(reader, headers)
        except _BadRequest as e:
            hdrs, ebody = error_response(400, message=str(e))
            await self._send(writer, 400, hdrs, ebody, keep_alive=False)
            return False
        keep_alive = headers.get("connection", "").lower() != "close"
        parts = urlsplit(target)
        path = parts.path
        if path.startswith(CONTROL_PREFIX):
            return await self._control(writer, method, path, body_bytes, keep_alive)
        route, path = split_route(path)

        session_id = headers.get("x-claude-code-session-id")
        body: dict[str, Any] | None = None
        if body_bytes:
            with contextlib.suppress(ValueError):
                parsed = json.loads(body_bytes)
                if isinstance(parsed, dict):
                    body = parsed
        stream = bool(body and body.get("stream"))
        decision = self._faults.decide(path, session_id)

        def record(status: int | None, fault: str | None = None) -> None:
            rec = RequestRecord(
                method=method,
                path=path,
                query=parse_qs(parts.query),
                headers={k: ("<redacted>" if k in _SECRET_HEADERS else v) for k, v in headers.items()},
                session_id=session_id,
                time=time.time(),
                fault=fault or decision.kind,
                status=status,
                stream=stream,
                body=body if self._record_bodies else None,
                route=route,
            )
            with self._records_lock:
                self._records.append(rec)
            if self.on_request is not None:
                with contextlib.suppress(Exception):
                    self.on_request(rec)

        if decision.first_byte_delay:
            await asyncio.sleep(decision.first_byte_delay)
        kind = decision.kind
        if kind == KIND_RESET:
            record(None)
            _rst(writer)
            return False
        if kind == KIND_HANG:
            record(None)
            await self._hang(reader)
            return False
        if kind is not None and kind != KIND_CUT:
            status = int(kind)
            hdrs, ebody = error_response(
                status, message=decision.faults.message, retry_after=decision.faults.retry_after
            )
            record(status)
            await self._send(writer, status, hdrs, ebody, keep_alive)
            return keep_alive

        if method != "POST" or path not in ("/v1/messages", "/v1/messages/count_tokens"):
            status = 404 if path not in ("/v1/messages", "/v1/messages/count_tokens") else 405
            hdrs, ebody = error_response(404, message=f"{method} {path} not found")
            record(status)
            await self._send(writer, status, hdrs, ebody, keep_alive)
            return keep_alive
        if body is None:
            hdrs, ebody = error_response(400, message="Request body must be a JSON object")
            record(400)
            await self._send(writer, 400, hdrs, ebody, keep_alive)
            return keep_alive
        if path == "/v1/messages/count_tokens":
            record(200)
            await self._send_json(writer, 200, {"input_tokens": estimate_tokens(body)}, keep_alive)
            return keep_alive
        adm = self._capacity.admit(time.time())
        if adm.status is not None:
            hdrs, ebody = error_response(adm.status, retry_after=adm.retry_after)
            hdrs.update(adm.headers or {})
            record(adm.status, "capacity" if adm.status == 529 else "rate")
            await self._send(writer, adm.status, hdrs, ebody, keep_alive)
            return keep_alive
        try:
            if adm.latency:
                await asyncio.sleep(adm.latency)
            return await self._messages(writer, body, stream, decision, record, keep_alive)
        finally:
            self._capacity.release()

    async def _messages(
        self,
        writer: asyncio.StreamWriter,
        body: dict[str, Any],
        stream: bool,
        decision: Decision,
        record: Callable[[int | None], None],
        keep_alive: bool,
    ) -> bool:
        reply = next_reply(body)
        model = str(body.get("model") or "claude-sonnet-4-5")
        in_tok = estimate_tokens(body.get("messages", []))
        out_tok = estimate_tokens(reply.content)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        cut = decision.kind == KIND_CUT
        record(200)
        if not stream:
            payload = json.dumps(message_json(reply, model=model, input_tokens=in_tok, output_tokens=out_tok)).encode()
            if cut:
                head = _status_line(
                    200, {"content-type": "application/json", "content-length": str(len(payload))}, False
                )
                writer.write(head + payload[: len(payload) // 2])
                await writer.drain()
                writer.transport.close()
                return False
            await self._send(writer, 200, {"content-type": "application/json"}, payload, keep_alive)
            return keep_alive
        hdrs = {
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
            "transfer-encoding": "chunked",
        }
        writer.write(_status_line(200, hdrs, keep_alive and not cut))
        events = sse_events(reply, model=model, input_tokens=in_tok, output_tokens=out_tok)
        limit = decision.faults.cut_after if cut else None
        for n, (name, data) in enumerate(events):
            if limit is not None and n >= limit:
                await writer.drain()
                writer.transport.close()
                return False
            if decision.event_delay:
                await writer.drain()
                await asyncio.sleep(decision.event_delay)
            chunk = encode_event(name, data)
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return keep_alive

    async def _hang(self, reader: asyncio.StreamReader) -> None:
        """Hold the connection without a byte until the client gives up or we stop."""
        assert self._stopping is not None
        stop = asyncio.ensure_future(self._stopping.wait())
        eof = asyncio.ensure_future(reader.read())
        try:
            await asyncio.wait({stop, eof}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            eof.cancel()

    async def _control(
        self, writer: asyncio.StreamWriter, method: str, path: str, body: bytes, keep_alive: bool
    ) -> bool:
        name = path[len(CONTROL_PREFIX) :].strip("/")
        if name == "faults" and method == "POST":
            try:
                data = json.loads(body or b"{}")
                if not isinstance(data, dict):
                    raise ValueError("expected a JSON object of Faults fields")
                faults = Faults.from_dict(data)
            except ValueError as e:
                hdrs, ebody = error_response(400, message=f"bad faults: {e}")
                await self._send(writer, 400, hdrs, ebody, keep_alive)
                return keep_alive
            self._faults.set(faults)
            await self._send_json(writer, 200, {"faults": faults.to_dict()}, keep_alive)
        elif name == "faults" and method == "GET":
            await self._send_json(writer, 200, {"faults": self.faults.to_dict()}, keep_alive)
        elif name == "capacity" and method == "POST":
            try:
                data = json.loads(body or b"{}")
                if not isinstance(data, dict):
                    raise ValueError("expected a JSON object of Capacity fields")
                cap = Capacity.from_dict(data)
            except (ValueError, TypeError) as e:
                hdrs, ebody = error_response(400, message=f"bad capacity: {e}")
                await self._send(writer, 400, hdrs, ebody, keep_alive)
                return keep_alive
            self._capacity.set(cap)
            await self._send_json(writer, 200, self._capacity.snapshot(), keep_alive)
        elif name == "capacity" and method == "GET":
            await self._send_json(writer, 200, self._capacity.snapshot(), keep_alive)
        elif name == "stats" and method == "GET":
            await self._send_json(writer, 200, self.stats(), keep_alive)
        elif name == "requests" and method == "GET":
            recs = [
                {
                    "method": r.method,
                    "path": r.path,
                    "session_id": r.session_id,
                    "time": r.time,
                    "fault": r.fault,
                    "status": r.status,
                    "stream": r.stream,
                    "route": r.route,
                }
                for r in self.requests
            ]
            await self._send_json(writer, 200, {"requests": recs}, keep_alive)
        else:
            hdrs, ebody = error_response(404, message=f"{method} {path} not found")
            await self._send(writer, 404, hdrs, ebody, keep_alive)
        return keep_alive

    async def _send_json(self, writer: asyncio.StreamWriter, status: int, obj: Any, keep_alive: bool) -> None:
        await self._send(writer, status, {"content-type": "application/json"}, json.dumps(obj).encode(), keep_alive)

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        headers: dict[str, str],
        body: bytes,
        keep_alive: bool,
    ) -> None:
        headers = {**headers, "content-length": str(len(body))}
        writer.write(_status_line(status, headers, keep_alive) + body)
        await writer.drain()
        if not keep_alive:
            writer.transport.close()


def _status_line(status: int, headers: dict[str, str], keep_alive: bool) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason_phrase(status)}"]
    lines.append("date: " + time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()))
    lines.append("server: resurgo-mockapi")
    lines.append("connection: " + ("keep-alive" if keep_alive else "close"))
    lines.extend(f"{k}: {v}" for k, v in headers.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as e:  # pragma: no cover - latin-1 decodes anything
        raise _BadRequest("undecodable request head") from e
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise _BadRequest(f"malformed request line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        k, sep, v = line.partition(":")
        if not sep:
            raise _BadRequest(f"malformed header line: {line[:80]!r}")
        headers[k.strip().lower()] = v.strip()
    return parts[0].upper(), parts[1], headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        out = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError as e:
                raise _BadRequest("bad chunk size") from e
            if size == 0:
                await reader.readuntil(b"\r\n")  # trailers are not supported; expect none
                return bytes(out)
            out += await reader.readexactly(size)
            await reader.readexactly(2)
            if len(out) > _MAX_BODY:
                raise _BadRequest("request body too large")
    length = headers.get("content-length")
    if not length:
        return b""
    try:
        n = int(length)
    except ValueError as e:
        raise _BadRequest("bad content-length") from e
    if n < 0 or n > _MAX_BODY:
        raise _BadRequest("bad content-length")
    return await reader.readexactly(n)


def _rst(writer: asyncio.StreamWriter) -> None:
    """Reset the connection: SO_LINGER 0 makes close() send RST instead of FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
