"""An HTTP relay between the CLI and the API: a failed request is retried before the CLI sees it.

Why: without it every API fault ends the CLI (``CLAUDE_CODE_MAX_RETRIES=0``) or
waits out the CLI's own backoff, and the supervisor then starts a new CLI that
resumes the session.  The CLI's start alone took 0.4-0.6 s of every recovery in
the chaos runs (14 % of all job-time), and a fault during a turn re-ran the
turn's tools.  The relay sits on loopback where the CLI's ``ANTHROPIC_BASE_URL``
points; it forwards each request to the real endpoint and, when the answer is a
429/529/5xx, a reset or cut connection, a hang or a cut stream, asks again --
through the endpoint's breaker and retry budget, honouring the server's
``retry-after`` -- so the CLI just sees a slower answer.

What makes a cut stream retryable is that the relay **holds** a streamed answer
until it is complete (``message_stop``) and only then hands it to the CLI: a
half answer never reaches it, so a new request can replace it.  The CLI gets the
response head at once and an SSE ``ping`` every few seconds while the relay
holds, so neither its request timeout nor an idle timer fires.  A job that asked
for ``--include-partial-messages`` itself is not held (it wants the stream as it
comes); then only failures before the first byte are retried.

Watching for hangs uses the endpoint's learned response times
(:mod:`resurgo.supervise._requests`), measured here on the wire -- request sent
to first byte, longest silence within an answer -- without the CLI's start-up
and event loop in between.

The relay gives up, and lets the CLI see the last failure as it would have
without it, when the failure is not retryable (401, 400...), after
``max_tries``, when the retry budget or the breaker would hold the request past
the time the CLI waits (its ``API_TIMEOUT_MS``, minus a margin) or past
``max_wait``.  Every failed try is reported to the ``sink`` (the orchestrator
stores it as a recovery of strategy ``relay_retry`` with its phases).

The breaker hears of every try's outcome except one kind: a connection the
network broke before any answer (refused, reset, closed, cut), which says
nothing of the API's load.  The relay asks again almost at once (Finagle's
requeue, bounded by the retry budget) and reports such a failure to the
breaker only when it gives the request up.  An API error or a hang counts on
every try.

Secrets: requests are forwarded with their headers untouched (API keys
included) and nothing of a request's headers or body is ever logged.  Only
``http`` and ``https`` upstreams are relayed; a proxy in between
(``HTTPS_PROXY``) is the caller's reason not to use the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import re
import secrets
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from resurgo.classifier._types import ErrorClass, ErrorType, Observation
from resurgo.supervise._requests import RequestWatch, ResponseTimes

log = logging.getLogger("resurgo.relay")

_MAX_HEAD = 64 * 1024
_MAX_BODY = 256 * 1024 * 1024
_MAX_ERROR_BODY = 1024 * 1024
#: a held answer larger than this is passed through as it comes (no longer retryable)
HOLD_LIMIT = 64 * 1024 * 1024
_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "transfer-encoding", "content-length", "te", "trailer",
    "upgrade", "proxy-authorization", "proxy-authenticate", "host",
})
_PING = b'event: ping\ndata: {"type": "ping"}\n\n'
_NOT_RETRIED = frozenset({ErrorType.AUTH, ErrorType.VALIDATION})
_API_SIDE = frozenset({ErrorType.RESOURCE, ErrorType.NETWORK, ErrorType.TIMEOUT, ErrorType.INTERNAL})
_NO_ROUTE = b'{"type":"error","error":{"type":"not_found_error","message":"resurgo relay: no such route"}}'
_SLICE = 0.25
# an SSE event name is a whole line ("event: error"): answer text that mentions one is no event.  Linear
# (no nested repetition), and searched once per held answer (the stop near its end only).
_SSE_ERROR = re.compile(rb"(?m)^event:[ \t]*error[ \t]*\r?$")
_SSE_STOP = re.compile(rb"(?m)^event:[ \t]*message_stop[ \t]*\r?$")
_SSE_HEAD = [("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache")]
#: the Messages API's error types by status (what an SSE ``error`` event carries)
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
                529: "overloaded_error"}
_POOL_IDLE = 4.0  # how often a wait looks at the client (gone?) and sends a ping


class ApiFailure(Exception):
    """A failed API call as the endpoint's breaker sees it: the classifier's verdict travels with it."""

    def __init__(self, error: ErrorClass) -> None:
        super().__init__(error.description)
        self.error = error


class _EndpointLike(Protocol):
    breaker: Any
    request_budget: Any
    """The retry budget of the relay's retries of single requests (RPC-sized; not the CLI restarts' one)."""
    times: ResponseTimes


@dataclass
class RelayIncident:
    """One failed try of one request: what failed, when, and what the retry after it waited for.

    Times are wall clock (``clock.time()``), comparable with the store.  ``sent_at``
    is when the failed try was sent (the fault hit it after that), ``detected_at``
    when the relay knew it failed, ``retried_at`` when the next try went out,
    ``restored_at`` when a later try of the same request got its first byte.
    """

    sent_at: float
    detected_at: float
    kind: str
    """``resurgo.store.runs.FAULT_KINDS``: 429, 529, 5xx, network, stall, other."""
    error: ErrorClass
    status: int | None
    retried_at: float | None = None
    restored_at: float | None = None
    imposed_s: float = 0.0
    """Waited because the server or the breaker said so (retry-after, an open circuit)."""
    backoff_s: float = 0.0
    budget_s: float = 0.0
    gave_up: bool = False
    why: str = ""
    """Why the relay gave the request up (empty: it did not)."""
    handle: object = None


class RelaySink(Protocol):
    """Where the relay reports (the orchestrator stores, classifies and keeps the attempt alive)."""

    def classify(self, evidence: Any) -> ErrorClass: ...

    def error(self, route: RelayRoute, inc: RelayIncident) -> None:
        """A try failed (every failed try: the error statistics)."""
        ...

    def failed(self, route: RelayRoute, inc: RelayIncident) -> object:
        """A failed try will be retried: a recovery begins; the return value comes back as ``inc.handle``."""
        ...

    def changed(self, route: RelayRoute, inc: RelayIncident) -> None: ...

    def refused(self, route: RelayRoute, state: str, retry_after: float | None) -> None:
        """The breaker refused a request of this route (it waits, or the CLI gets a 529)."""
        ...

    def progress(self, route: RelayRoute) -> None:
        """Bytes came from the API for this route: the attempt is alive though the CLI is quiet."""
        ...


@dataclass(eq=False)
class RelayRoute:
    """One attempt's way through the relay: its upstream, its endpoint's breaker/budget/times, its limits."""

    token: str
    upstream: str
    endpoint: _EndpointLike
    job_id: str
    attempt_id: int | None = None
    hold: bool = True
    watch: bool = True
    """End a try that passes the endpoint's learned limits (``request_watch``); False: wait for the CLI."""
    scale: float = 1.0
    retry_overload: bool = True
    """False: an overload answer without a reset time (529/503) goes to the CLI at once -- with
    ``concurrency="auto"`` the adaptive limit, which gives the attempt's slot back and admits fewer
    jobs, is what answers overload; retries inside a running attempt would bypass it."""
    max_wait: float = 60.0
    answer_timeout: float = 600.0
    """The CLI's own wait for a response head (``API_TIMEOUT_MS``): the relay answers before it."""
    requests: int = 0
    answered: int = 0
    retries: int = 0
    watch_kills: int = 0
    hedges: int = 0
    """Second copies of requests sent because the first had no answer at the hedge delay."""
    base_scale: float = 0.0
    """The scale the attempt started with (``scale`` doubles for each try after a request's second hang)."""
    #: the last request ended with a failure the relay already reported to the breaker
    last_failed: bool = False
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _scheme: str = ""
    _host: str = ""
    _port: int = 0
    _base: str = ""

    def __post_init__(self) -> None:
        if not self.base_scale:
            self.base_scale = self.scale
        u = urlsplit(self.upstream)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError("the relay forwards to http:// or https:// endpoints only")
        self._scheme, self._host = u.scheme, u.hostname
        self._port = u.port or (443 if u.scheme == "https" else 80)
        self._base = u.path.rstrip("/")


class _Gone(Exception):
    """The CLI closed its connection (it gave up, or it was killed)."""


class _TryFailed(Exception):
    def __init__(self, evidence: Any, status: int | None = None, response: tuple[int, list[tuple[str, str]], bytes] | None = None, *, watch: bool = False, headed: bool = False) -> None:  # noqa: E501
        super().__init__(str(evidence))
        self.evidence = evidence
        self.status = status
        self.response = response
        self.watch = watch
        #: the API had sent a response head (a stream cut later): a real try, not a requeue
        self.headed = headed


#: Copies of one try at most besides the first (see ``ApiRelay._head``): one at each hedge delay, or
#: at once whenever a copy fails while an earlier one still waits.
_MAX_HEDGES = 2
#: never a copy sooner than this after its request (see :meth:`Relay.hedge_delay`)
_HEDGE_FLOOR = 0.5


@dataclass
class _State:
    """One request's state across its tries."""

    committed: bool = False
    """The response head went to the CLI: from then on only an SSE error can end it badly."""
    restored_at: float | None = None
    """When the answering try got its first byte (wall clock)."""
    told: bool = False
    """The breaker's refusal of this request was reported."""
    deferred: tuple[Any, Any] | None = None
    """(permit, failure) of a try the network broke: reported to the breaker only if the relay gives up."""
    watch_kills: int = 0
    """Tries of this request the hang watch ended."""
    hedged: list[RelayIncident] = field(default_factory=list)
    """Stalled tries a hedged copy answered for (see ``ApiRelay._head``): restored with the request."""


@dataclass
class _Request:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None


def fault_kind_of(err: ErrorClass, status: int | None, *, watch: bool) -> str:
    if watch:
        return "stall"
    if status == 429:
        return "429"
    if status == 529:
        return "529"
    if status is not None and status >= 500:
        return "5xx"
    if err.type in (ErrorType.NETWORK, ErrorType.TIMEOUT):
        return "network"
    return "other"


class ApiRelay:
    """The relay server (one per supervisor, on loopback); see the module docstring.

    Keyword-only settings: ``backoff_base``/``backoff_cap`` (seconds; the wait before
    retry *n* is ``base * 2**(n-1)`` capped, half of it jittered, never shorter than a
    server's ``retry-after``), ``overload_backoff`` (base and cap after an overload
    answer: 429/529/503 ask for less load), ``connection_backoff`` (base and cap after a connection
    the network broke before any answer), ``max_tries`` per request (answers and hangs),
    ``max_requeues`` (tries of one request that a broken connection ended), ``ping_every`` (seconds
    between pings to the CLI while an answer is held), ``hedge`` (send a second copy of a
    request slower than the slowest recent answer, budget permitting: see ``_head``),
    ``sleep`` (replaceable: tests remove the waits), ``clock`` (wall/monotonic times of the
    records).
    """

    def __init__(
        self,
        sink: RelaySink,
        *,
        backoff_base: float = 0.2,
        backoff_cap: float = 2.0,
        max_tries: int = 10,
        max_requeues: int = 25,
        overload_backoff: tuple[float, float] | None = None,
        connection_backoff: tuple[float, float] | None = None,
        ping_every: float = 5.0,
        margin: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        clock: Any = None,
        rng: random.Random | None = None,
        hedge: bool = True,
    ) -> None:
        if not backoff_base >= 0 or not backoff_cap >= backoff_base:
            raise ValueError("backoff_base must be >= 0 and backoff_cap >= backoff_base")
        if max_tries < 1 or max_requeues < 1:
            raise ValueError("max_tries and max_requeues must be >= 1")
        self.sink = sink
        self.hedge = hedge
        self.backoff_base, self.backoff_cap, self.max_tries = backoff_base, backoff_cap, max_tries
        #: tries lost to a connection the network broke count apart, against their own, larger cap: at a
        #: few milliseconds each, ten of them were 0.2 s, and a request unlucky ten times in a row in a
        #: chaos phase resetting half the connections went to the CLI (3.2 s before the job moved again)
        self.max_requeues = max_requeues
        #: base and cap of the back-off after an overload answer (429/529/503) without a reset time: the
        #: API asks for less load, so those retries back off like the supervisor's own recoveries
        self.overload_backoff = overload_backoff or (backoff_base, backoff_cap)
        #: base and cap after a connection the network broke before any answer (refused, reset, closed,
        #: cut): nothing says the API is loaded, and the breaker does not count it, so the relay asks again
        #: almost at once (Finagle requeues such failures at once, bounded by the retry budget, as here).
        #: With the full back-off, a request unlucky six times in a row in a network phase that drops half
        #: the connections spent ~2 s of the ~3.8 s it stood still backing off; with 25 ms doubling to
        #: 250 ms, 0.85 s of the 1.07 s such a chain took.  5 ms doubling to 50 ms: six tries in ~0.15 s
        #: (a network that stays down is the budget's and then the breaker's, not the back-off's).
        self.connection_backoff = connection_backoff or (min(backoff_base, 0.005), min(backoff_cap, 0.05))
        self.ping_every, self.margin = ping_every, margin
        self._sleep = sleep or asyncio.sleep
        self._time = clock.time if clock is not None else time.time
        self._mono = clock.monotonic if clock is not None else time.monotonic
        self._rng = rng or random.Random()
        self._routes: dict[str, RelayRoute] = {}
        self._server: asyncio.Server | None = None
        self._start_lock: asyncio.Lock | None = None
        self._port = 0
        self._pool: dict[tuple[str, str, int], list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]]] = {}
        self._conns: set[asyncio.StreamWriter] = set()
        self._pinged: dict[int, float] = {}  # id(client writer) -> when it last got bytes from the relay
        self._ssl: ssl.SSLContext | None = None

    # -- life ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Listen (idempotent).  The first attempts of a batch all call this at once: without the
        lock each found no server yet and started one, and all but the last stayed listening (32
        sockets for a supervisor at concurrency 32)."""
        if self._server is not None:
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._server is None:
                self._server = await asyncio.start_server(self._on_client, "127.0.0.1", 0, limit=_MAX_HEAD)
                self._port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        srv, self._server = self._server, None
        if srv is None:
            return
        srv.close()
        for r in list(self._routes.values()):
            self.unregister(r)
        for w in list(self._conns):
            w.transport.abort()
        for conns in self._pool.values():
            for _, w, _ in conns:
                w.transport.abort()
        self._pool.clear()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(srv.wait_closed(), 2.0)

    @property
    def running(self) -> bool:
        return self._server is not None

    def register(self, upstream: str, endpoint: _EndpointLike, *, job_id: str, token: str | None = None,
                 **kw: Any) -> RelayRoute:
        """A route for one attempt; ``url(route)`` is what the CLI's ``ANTHROPIC_BASE_URL`` becomes.

        ``token``: one handed out earlier by :meth:`new_token` (a standby CLI was
        started with its URL before the attempt existed); a new one otherwise.
        """
        if token is None or token in self._routes:
            token = self.new_token()
        route = RelayRoute(token=token, upstream=upstream, endpoint=endpoint, job_id=job_id, **kw)
        self._routes[route.token] = route
        return route

    @staticmethod
    def new_token() -> str:
        """A route token nobody can guess (the relay listens on loopback, but other local users exist)."""
        return secrets.token_urlsafe(12)

    def url_for(self, token: str) -> str:
        """The base URL of the route that ``token`` names or will name."""
        return f"http://127.0.0.1:{self._port}/r/{token}"

    def unregister(self, route: RelayRoute) -> None:
        """The attempt ended: its requests in flight are dropped (the CLI is gone anyway)."""
        self._routes.pop(route.token, None)
        for t in list(route._tasks):
            t.cancel()

    def url(self, route: RelayRoute) -> str:
        return self.url_for(route.token)

    # -- the CLI's side -----------------------------------------------------------------------------
    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._conns.add(writer)
        task = asyncio.current_task()
        route: RelayRoute | None = None
        try:
            while True:
                req = await _read_request(reader)
                if req is None:
                    break
                path = req.target.split("?", 1)[0]
                parts = path.split("/", 3)  # "", "r", token, rest
                route = self._routes.get(parts[2]) if len(parts) >= 3 and parts[1] == "r" else None
                if route is None:
                    await _respond(writer, 404, [("content-type", "application/json")], _NO_ROUTE)
                    break
                if task is not None:
                    route._tasks.add(task)
                rest = req.target[len(parts[1]) + len(parts[2]) + 2:] or "/"
                keep = await self._serve(route, req, rest, reader, writer)
                if task is not None:
                    route._tasks.discard(task)
                if not keep or req.header("connection") == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, _Gone):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("relay: a request failed inside the relay")
        finally:
            if route is not None and task is not None:
                route._tasks.discard(task)
            self._conns.discard(writer)
            self._pinged.pop(id(writer), None)
            if not writer.transport.is_closing():
                writer.close()

    async def _serve(self, route: RelayRoute, req: _Request, rest: str, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> bool:
        target = route._base + rest
        if req.method == "POST" and rest.split("?", 1)[0].rstrip("/").endswith("/v1/messages"):
            return await self._messages(route, req, target, reader, writer)
        return await self._pass(route, req, target, reader, writer)

    async def _pass(self, route: RelayRoute, req: _Request, target: str, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> bool:
        """Anything but a message: forwarded once, as it comes; a broken upstream breaks the CLI's connection."""
        try:
            ur, uw, _ = await self._connect(route)
            await self._send(uw, route, req, target, identity=False)
            status, headers = await _read_head(ur)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            writer.transport.abort()
            return False
        await _write_head(writer, status, headers, chunked=_has_body(req.method, status))
        ok = True
        try:
            async for piece in _body(ur, headers, req.method, status):
                self.sink.progress(route)
                await _write_chunk(writer, piece)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            ok = False
        if not ok:
            uw.transport.abort()
            writer.transport.abort()
            return False
        if _has_body(req.method, status):
            await _write_chunk(writer, b"")
        if req.method == "HEAD":  # some servers send a body anyway: the connection is not reusable
            uw.transport.abort()
        else:
            self._put(route, ur, uw, headers)
        return True

    # -- messages: the retried kind ---------------------------------------------------------------------
    async def _messages(self, route: RelayRoute, req: _Request, target: str, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> bool:
        st = _State()
        try:
            return await self._messages_in(route, req, target, reader, writer, st)
        finally:
            if st.deferred is not None:  # cancelled (the attempt ended) between a try and its retry
                st.deferred[0].release()
                st.deferred = None

    async def _messages_in(self, route: RelayRoute, req: _Request, target: str, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter, st: _State) -> bool:
        ep = route.endpoint
        route.requests += 1
        route.last_failed = False
        ep.request_budget.deposit()  # every request sent earns retry budget (Finagle); only retries spend it
        t0 = self._mono()
        head_deadline = t0 + max(0.5, min(route.max_wait, route.answer_timeout - self.margin))
        incs: list[RelayIncident] = []
        last: _TryFailed | None = None
        tries = requeues = 0
        pending_wait = (0.0, 0.0, 0.0)  # imposed, backoff, budget of the wait before this try
        while True:
            deadline = t0 + route.max_wait if st.committed else head_deadline
            permit, waited = await self._admit(route, req, reader, writer, st, deadline, hold_until=t0 + route.max_wait)
            if incs and (waited or pending_wait != (0.0, 0.0, 0.0)):
                inc = incs[-1]
                inc.imposed_s, inc.backoff_s, inc.budget_s = pending_wait[0] + waited, pending_wait[1], pending_wait[2]
            if permit is None:  # the breaker stayed open past what the CLI waits
                return await self._give_up(route, incs, last, writer, st, open_circuit=True)
            if incs:
                incs[-1].retried_at = self._time()
                self.sink.changed(route, incs[-1])
            tries += 1
            sent_wall = self._time()
            try:
                await self._try(route, req, target, reader, writer, st)
            except _Gone:
                permit.release()
                raise
            except _TryFailed as f:
                incs.extend(st.hedged)  # a stalled try a copy answered for, which then failed too
                st.hedged.clear()
                err = self.sink.classify(f.evidence)
                if f.watch:
                    route.watch_kills += 1
                    st.watch_kills += 1
                    if st.watch_kills >= 2:
                        # the same request ended twice: this job's requests may just be slower than the
                        # endpoint's others (a huge context), so its next try gets twice the time.  Not
                        # at the first: a request past 3x the slowest recent answer has most likely hung,
                        # and a hang says nothing of the next try.  Doubled at once, a retry that hung
                        # again (or ran into the same network black hole) stood still 4-7 s instead of 2-4
                        route.scale = min(route.scale * 2, 64.0)
                # A connection the network broke (refused, reset, closed or cut before an HTTP answer;
                # not a hang, which the breaker hears of) says nothing of the API's load, and the relay
                # asks again at once: it is the breaker's only if the relay gives the request up.  Counted
                # per try, one network blip (a cut of every connection, then half the new ones dropped)
                # opened the circuit for every job at each chaos network phase, for 2-6 s, while the
                # retries alone got through in well under a second.  A network that stays down still
                # opens it: each request given up counts.
                conn_only = err.type is ErrorType.NETWORK and f.status is None and not f.watch
                if conn_only:
                    st.deferred = (permit, ApiFailure(err))
                elif err.type in _API_SIDE:
                    # A reset this request can wait out is this request's: the relay waits it.  Only
                    # one longer than a request may be held (a usage limit "resets 3pm") is everyone's,
                    # and opens the endpoint's breaker until then.  A 429/529 answer to one request among
                    # many answered ones says the API sheds load, not that every job must stop.
                    ra0 = err.retry_after
                    short = ra0 is not None and ra0 <= route.max_wait
                    permit.on_error(ApiFailure(dataclasses.replace(err, retry_after=None) if short else err))
                    if _is_open(ep.breaker):
                        # this failure opened it (or it was open): ask at once, before any bookkeeping, so
                        # the job's next call is refused now rather than after the relay's records
                        self._ask_now(route, st)
                else:  # bad credentials or a bad request say nothing about the endpoint's health
                    permit.release()
                inc = RelayIncident(sent_at=sent_wall, detected_at=self._time(),
                                    kind=fault_kind_of(err, f.status, watch=f.watch), error=err, status=f.status)
                last = f
                self.sink.error(route, inc)
                if not err.retryable or err.type in _NOT_RETRIED:
                    return await self._give_up(route, incs, last, writer, st, why="not retryable")
                if err.type is ErrorType.RESOURCE and err.retry_after is None and not route.retry_overload:
                    return await self._give_up(route, incs, last, writer, st,
                                               why="overload: the adaptive concurrency limit answers it")
                if conn_only and not f.headed:
                    requeues += 1
                if tries - requeues >= self.max_tries or requeues >= self.max_requeues:
                    return await self._give_up(route, incs, last, writer, st,
                                               why=f"{tries} tries failed")
                # the CLI's request timeout runs until a response head: a streamed request gets its head
                # at its first retry, and the relay may hold it for max_wait, pinging, not API_TIMEOUT_MS
                commit = not st.committed and _streaming(req)
                ra = max(0.0, err.retry_after or 0.0)
                base, cap = self.overload_backoff if err.type is ErrorType.RESOURCE else (
                    self.connection_backoff if conn_only else (self.backoff_base, self.backoff_cap))
                backoff = min(cap, base * 2 ** (tries - 1))
                backoff = backoff / 2 + self._rng.uniform(0, backoff / 2)
                if _is_open(ep.breaker):
                    backoff = 0.0  # the breaker holds the retry now: its wait, not ours (and jobs see it refuse)
                delay = wanted = max(ra, backoff)
                deadline = t0 + route.max_wait if st.committed or commit else head_deadline
                if self._mono() + delay > deadline:
                    return await self._give_up(route, incs, last, writer, st,
                                               why=f"a wait of {delay:.1f} s goes past the time it may be held")
                if commit:
                    await self._commit(writer, st)
                # retried: a recovery (the failures the relay passes on are the supervisor's to recover)
                inc.handle = self.sink.failed(route, inc)
                incs.append(inc)
                budget_wait = 0.0
                if not ep.request_budget.try_withdraw():
                    tb = self._mono()
                    got = await self._budget(route, reader, writer, st.committed, deadline)
                    budget_wait = self._mono() - tb
                    if not got:
                        return await self._give_up(route, incs, last, writer, st,
                                                   why="no retry budget within the time the request may be held")
                    delay = max(0.0, delay - budget_wait)
                route.retries += 1
                await self._wait(delay, reader, writer, st.committed, route)
                total = delay + budget_wait
                imposed = min(ra, total)
                over = max(0.0, total - wanted)  # waited beyond what the retry wanted: the budget's
                pending_wait = (imposed, max(0.0, total - imposed - over), over)
                if st.deferred is not None:
                    st.deferred[0].release()  # retried: not the breaker's (a half-open probe slot is free again)
                    st.deferred = None
                continue
            except BaseException:
                permit.release()
                raise
            permit.on_success()
            route.answered += 1
            incs.extend(st.hedged)
            st.hedged.clear()
            if incs:
                now = self._time()
                for inc in incs:
                    inc.restored_at = st.restored_at if st.restored_at is not None else now
                    self.sink.changed(route, inc)
            return True

    async def _try(self, route: RelayRoute, req: _Request, target: str, reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter, st: _State) -> None:
        """One try; raises _TryFailed (retryable or not) or _Gone."""
        ep = route.endpoint
        watch = RequestWatch(ep.times, scale=route.scale)
        first_limit = watch.limit() if route.watch else None
        t_sent = self._mono()
        # Before the CLI has a head from us, its own request timeout runs: a try still unanswered just
        # before it would fire is ended here, and its retry sends the CLI a head (then the relay may hold
        # it).  A learned limit past that timeout (the slowest recent answer came in a slow phase), or
        # none yet, let the CLI time out first, and the supervisor restarted it: 0.5 s of CLI start
        # added to a hang the relay could have retried (two jobs of one chaos seed, 4.1 s each).
        cli_end = t_sent + max(0.5, route.answer_timeout - self.margin) if route.watch and not st.committed \
            else None
        ur, uw, status, headers, t_sent = await self._head(route, req, target, reader, writer, st, watch,
                                                           first_limit, t_sent, cli_end)
        ok = False
        try:
            if status < 200 or status >= 300:
                body = b""
                with contextlib.suppress(Exception):
                    body = await self._until(_read_all(ur, headers, req.method, status, _MAX_ERROR_BODY), 10.0,
                                             reader, writer, st.committed)
                text = body.decode("utf-8", "replace")
                hmap = {k.lower(): v for k, v in headers}
                obs = Observation(message=f"API Error: {status} {text}"[:4000], http_status=status, headers=hmap)
                raise _TryFailed(obs, status, (status, headers, body))
            sse = "text/event-stream" in (_get(headers, "content-type") or "")
            hold = route.hold or not sse  # a JSON answer is useless in part: always held
            if sse and not st.committed:
                await _write_head(writer, status, headers, chunked=True)
                st.committed = True
            buf = bytearray()
            first_at: float | None = None
            last_at = t_sent
            gap_max = 0.0
            forwarded = False
            gap_limit = watch.limit(gap=True) if route.watch else None
            it = _body(ur, headers, req.method, status).__aiter__()
            while True:
                now = self._mono()
                limit = _left(first_limit, t_sent, now) if first_at is None else _left(gap_limit, last_at, now)
                try:
                    piece = await self._until(it.__anext__(), limit, reader, writer, st.committed and hold)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    if forwarded:
                        writer.transport.abort()
                        raise _Gone() from None
                    what = "has not answered a request" if first_at is None else "answer stopped"
                    raise _TryFailed(TimeoutError(
                        f"the API {what} for {self._mono() - (t_sent if first_at is None else last_at):.1f} s"
                        f" (limit {limit:.2f} s: {watch.describe(gap=first_at is not None)})"), watch=True) from None
                except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                    if forwarded:
                        writer.transport.abort()  # the CLI had part of it: it must see the cut, as it would have
                        raise _Gone() from None
                    raise _TryFailed(ConnectionResetError(f"the API's answer was cut: {e}"), headed=True) from None
                now = self._mono()
                if first_at is None:
                    first_at = now
                    st.restored_at = self._time()
                else:
                    gap_max = max(gap_max, now - last_at)
                last_at = now
                self.sink.progress(route)
                if hold and len(buf) + len(piece) <= HOLD_LIMIT:
                    buf += piece
                    if st.committed:  # a long answer trickling in: the CLI still hears from us
                        await self._ping(writer)
                    continue
                if not st.committed:
                    await _write_head(writer, status, headers, chunked=True)
                    st.committed = True
                if buf:
                    await _write_chunk(writer, bytes(buf))
                    buf.clear()
                await _write_chunk(writer, piece)
                forwarded = True
            if sse and not forwarded:
                m = _SSE_ERROR.search(buf)
                if m is not None:
                    line = buf[m.end():m.end() + 4000].lstrip(b"\r\n").split(b"\n", 1)[0]
                    data = line.decode("utf-8", "replace").strip().removeprefix("data:").strip()
                    raise _TryFailed(Observation(message=f"API Error: {data}"))
                if _SSE_STOP.search(buf, max(0, len(buf) - 65536)) is None:
                    raise _TryFailed(ConnectionResetError("the API's answer ended before message_stop"), headed=True)
            if first_at is not None:
                took = first_at - t_sent
                if route.scale > route.base_scale and first_limit is not None \
                        and took <= first_limit / route.scale * route.base_scale:
                    # answered within the limit this job started with: the request that was ended
                    # had hung, its limit was not too tight for this job; later requests get the
                    # base limit again (kept doubled, every real hang made each later one wait
                    # twice as long: 3.6 s, 7.3 s, 14.5 s ...)
                    route.scale = route.base_scale
                ep.times.first_answer(took)
                if sse:
                    ep.times.stream_gap(gap_max)
            if not st.committed:
                await _write_head(writer, status, headers, chunked=_has_body(req.method, status))
                st.committed = True
            if buf:
                await _write_chunk(writer, bytes(buf))
            if _has_body(req.method, status):
                await _write_chunk(writer, b"")
            ok = True
            self._put(route, ur, uw, headers)
        finally:
            if not ok:
                uw.transport.abort()

    def _ask_now(self, route: RelayRoute, st: _State) -> None:
        from resurgo.breaker import CircuitOpenError

        try:
            p = route.endpoint.breaker.acquire()
        except CircuitOpenError as e:
            if not st.told:
                st.told = True
                self.sink.refused(route, e.state.value, e.retry_after)
            return
        p.release()  # it let us through after all (its wait just ended): the retry asks again in turn

    async def _admit(self, route: RelayRoute, req: _Request, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter, st: _State, deadline: float, *,
                     hold_until: float) -> tuple[Any, float]:
        """A breaker permit, waiting while the circuit is open (never past ``deadline``).

        A streamed request whose wait would outlast the CLI's ``API_TIMEOUT_MS``
        gets its response head now and may then wait until ``hold_until``
        (pinged, as after a retry): a breaker that opened while the attempt
        ran would otherwise end a healthy attempt with a 529 of our own.
        """
        from resurgo.breaker import CircuitOpenError

        br = route.endpoint.breaker
        t0 = self._mono()
        told = False
        while True:
            try:
                permit = br.acquire()
            except CircuitOpenError as e:
                if not told:
                    told = True
                    if not st.told:
                        self.sink.refused(route, e.state.value, e.retry_after)
                    st.told = True
                left = deadline - self._mono()
                ra = e.retry_after or _SLICE
                if ra > left + 0.05 and not st.committed and hold_until > deadline and _streaming(req):
                    await self._commit(writer, st)
                    deadline = hold_until
                    left = deadline - self._mono()
                if left <= 0 or ra > left + 0.05:
                    return None, self._mono() - t0
                # any transition wakes the request at once: a half-open breaker whose probes are out has
                # no time to tell, and polling it every quarter second left each held request a mean
                # eighth of a second behind the closing
                changed = getattr(route.endpoint, "wait_for_change", None)
                await self._wait(min(max(ra, 0.005), left, 1.0), reader, writer, st.committed, route,
                                 wake=changed() if callable(changed) else None)
                continue
            st.told = False  # a later opening is a new refusal to report
            return permit, (self._mono() - t0 if told else 0.0)

    async def _commit(self, writer: asyncio.StreamWriter, st: _State) -> None:
        """Send the CLI a 200 SSE head now: from here the relay may hold the request (pinging) up to max_wait."""
        await _write_head(writer, 200, _SSE_HEAD, chunked=True)
        st.committed = True
        self._pinged[id(writer)] = self._mono()

    async def _give_up(self, route: RelayRoute, incs: list[RelayIncident], last: _TryFailed | None,
                       writer: asyncio.StreamWriter, st: _State, *, open_circuit: bool = False,
                       why: str = "") -> bool:
        """Let the CLI see the failure as it would have without the relay; the supervisor takes it from there."""
        committed = st.committed
        if st.deferred is not None:
            permit, failure = st.deferred
            st.deferred = None
            permit.on_error(failure)  # the network failure the relay could not get past: the breaker's now
        route.last_failed = True  # the breaker heard of it (or refused the request): not again
        if open_circuit:
            why = why or "the circuit breaker stayed open past the time the request may be held"
        if last is not None:
            log.info("relay: gave up a request of job %s after %d retries: %s", route.job_id, len(incs), why)
        for inc in incs:
            inc.gave_up = True
            inc.why = why
            self.sink.changed(route, inc)
        if committed:
            msg = last.evidence.message if last is not None and isinstance(last.evidence, Observation) else str(
                last.evidence if last is not None else "the circuit breaker of this endpoint is open")
            status = 529 if last is None else last.status
            etype = _ERROR_TYPES.get(status or 0, "api_error" if status else "overloaded_error")
            if open_circuit:
                etype, msg = "overloaded_error", "the circuit breaker of this endpoint is open"
            data = json.dumps({"type": "error", "error": {"type": etype, "message": f"resurgo relay: {msg}"[:2000]}})
            await _write_chunk(writer, f"event: error\ndata: {data}\n\n".encode())
            await _write_chunk(writer, b"")
            return False
        if open_circuit and last is None:
            await _respond(writer, 529, [("content-type", "application/json"), ("retry-after", "1")],
                           b'{"type":"error","error":{"type":"overloaded_error","message":'
                           b'"resurgo relay: the circuit breaker of this endpoint is open"}}')
            return True
        if last is not None and last.response is not None:
            status, headers, body = last.response
            await _respond(writer, status, [(k, v) for k, v in headers if k.lower() not in _HOP], body)
            return True
        writer.transport.abort()  # a connection failure or a hang: the CLI sees its connection fail
        return False

    async def _budget(self, route: RelayRoute, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      committed: bool, deadline: float) -> bool:
        """Wait for a retry token until ``deadline`` (other requests earn them); False: none came."""
        budget = route.endpoint.request_budget
        while True:
            w = budget.wait_time()
            left = deadline - self._mono()
            if left <= 0:
                return False
            await self._wait(min(left, max(w if w is not None else _SLICE, 0.01), 1.0), reader, writer, committed,
                             route)
            if budget.try_withdraw(count_refusal=False):
                return True

    # -- waiting while watching the CLI ------------------------------------------------------------------
    async def _wait(self, seconds: float, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    committed: bool, route: RelayRoute | None = None, *, wake: asyncio.Event | None = None) -> None:
        """A deliberate wait (back-off, a server's reset, an open breaker, the budget): the attempt is alive.

        ``route`` given: its supervisor hears that the attempt is waiting on purpose, so a quiet CLI is
        not taken for a hung one (waiting on the API itself is not reported: a hang must still show).
        ``wake``: the wait ends early once it is set.
        """
        end = self._mono() + seconds
        while True:
            if route is not None:
                self.sink.progress(route)
            if reader.at_eof():
                raise _Gone()
            left = end - self._mono()
            if left <= 0 or (wake is not None and wake.is_set()):
                return
            if wake is None:
                await self._sleep(min(left, _SLICE))
            else:
                nap = asyncio.ensure_future(self._sleep(min(left, _SLICE)))
                woke = asyncio.ensure_future(wake.wait())
                try:
                    await asyncio.wait({nap, woke}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for t in (nap, woke):
                        t.cancel()
                    await asyncio.gather(nap, woke, return_exceptions=True)
            if committed:
                await self._ping(writer)

    async def _ping(self, writer: asyncio.StreamWriter) -> None:
        """An SSE ping to a CLI whose answer is held, at most every ``ping_every`` s (one clock per connection)."""
        now = self._mono()
        key = id(writer)
        if now - self._pinged.get(key, now) >= self.ping_every:
            self._pinged[key] = now
            await _write_chunk(writer, _PING)
        else:
            self._pinged.setdefault(key, now)

    async def _until(self, aw: Awaitable[Any], timeout: float | None, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter, ping: bool) -> Any:
        """``aw`` within ``timeout`` (None: no limit), while the CLI is still there; pings while held."""
        task = asyncio.ensure_future(aw)
        end = None if timeout is None else self._mono() + timeout
        try:
            while True:
                left = None if end is None else end - self._mono()
                if left is not None and left <= 0:
                    raise TimeoutError
                done, _ = await asyncio.wait({task}, timeout=_SLICE if left is None else min(left, _SLICE))
                if done:
                    return task.result()
                if reader.at_eof():
                    raise _Gone()
                if ping:
                    await self._ping(writer)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    # -- the API's side ----------------------------------------------------------------------------------
    async def _ask(self, route: RelayRoute, req: _Request, target: str) -> tuple[
            asyncio.StreamReader, asyncio.StreamWriter, int, list[tuple[str, str]]]:
        """Connect, send, read the response head; the connection is aborted if this fails or is cancelled."""
        try:
            ur, uw, _ = await self._connect(route)
        except OSError as e:
            raise _TryFailed(e) from None
        try:
            await self._send(uw, route, req, target, identity=True)
            status, headers = await _read_head(ur)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            uw.transport.abort()
            raise _TryFailed(ConnectionResetError(f"the API closed the connection before answering: {e!r}")) \
                from None
        except BaseException:
            uw.transport.abort()
            raise
        return ur, uw, status, headers

    async def _head(self, route: RelayRoute, req: _Request, target: str, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter, st: _State, watch: RequestWatch, first_limit: float | None,
                    t_sent: float, cli_end: float | None = None) -> tuple[
                        asyncio.StreamReader, asyncio.StreamWriter, int, list[tuple[str, str]], float]:
        """The first response head of this try, hedged: ``(reader, writer, status, headers, sent)``.

        A try with no head after ``hedge_delay`` (the slowest recent answer, at
        least 0.5 s) gets a second copy of its request
        on a new connection, if the endpoint's retry budget has a token; the
        first head of the two wins and the other connection is aborted.  The
        first one is not ended: a slow answer still wins if it comes first, so
        hedging early costs at most one extra request, never an answer (Dean and
        Barroso, "The Tail at Scale"; gRPC's hedging policy).  A hung request
        or a black-holed connection costs its job the hedge delay instead of
        the whole limit.  Each copy has its own limit; a further copy goes out
        after another hedge delay, or at once when a copy fails (a dropped
        connection) while an earlier one still waits, up to ``_MAX_HEDGES``
        copies a try.  A copy that wins is the
        stalled try's recovery: it is reported as a failed try of kind
        ``stall`` (``st.hedged``), restored when the answer comes.  ``sent`` is
        when the winning copy was sent.
        """
        first = asyncio.ensure_future(self._ask(route, req, target))
        racing: dict[asyncio.Future[Any], float] = {first: t_sent}  # each copy -> when it was sent
        hedge_in = self.hedge_delay(watch.limit(recent=True) if route.watch else None,
                                    answer_timeout=route.answer_timeout if route.watch else None,
                                    slowest=watch.slowest(recent=True) if route.watch else None)
        next_hedge = None if hedge_in is None else t_sent + hedge_in
        copies_left = _MAX_HEDGES
        hedged_at: float | None = None  # wall clock of the first copy, for the records
        hedged_mono = 0.0
        last: BaseException | None = None
        try:
            while True:
                now = self._mono()
                if next_hedge is not None and now >= next_hedge:
                    next_hedge = None
                    if copies_left > 0 and route.endpoint.request_budget.try_withdraw():
                        racing[asyncio.ensure_future(self._ask(route, req, target))] = now
                        copies_left -= 1
                        route.hedges += 1
                        if hedged_at is None:
                            hedged_at, hedged_mono = self._time(), now
                        if copies_left > 0 and hedge_in is not None:
                            next_hedge = now + hedge_in
                # each copy has its own limit: the try ends when the last one's has run out (or the CLI's would)
                end = None if first_limit is None else max(sent + first_limit for sent in racing.values())
                if cli_end is not None:
                    end = cli_end if end is None else min(end, cli_end)
                waits = [x for x in (end, next_hedge) if x is not None]
                timeout = None if not waits else max(0.0, min(waits) - now)
                try:
                    done, _ = await self._until(asyncio.wait(set(racing), return_when=asyncio.FIRST_COMPLETED),
                                                timeout, reader, writer, st.committed)
                except TimeoutError:
                    if end is not None and self._mono() >= end:
                        why = (f"limit {first_limit:.2f} s: {watch.describe()}" if end != cli_end else
                               f"the CLI's request timeout of {route.answer_timeout:g} s is near")
                        raise _TryFailed(TimeoutError(
                            f"the API has not answered a request for {self._mono() - t_sent:.1f} s ({why})"),
                            watch=True) from None
                    continue  # time to hedge
                for t in done:
                    sent = racing.pop(t)
                    if t.exception() is None:
                        ur, uw, status, headers = t.result()
                        if t is not first and hedged_at is not None:
                            self._hedge_won(route, st, hedged_at, hedged_mono - t_sent, first_limit, watch)
                        return ur, uw, status, headers, sent
                    last = t.exception()
                if not racing:
                    assert last is not None
                    raise last
                if hedged_at is not None and copies_left > 0:
                    next_hedge = self._mono()  # a copy failed while another still waits: another copy at once
        finally:
            for t in racing:
                t.cancel()
            for t in racing:
                with contextlib.suppress(BaseException):
                    _, uw2, _, _ = await t
                    uw2.transport.abort()  # answered too late: the winner's answer is the one forwarded

    def hedge_delay(self, first_limit: float | None, *, answer_timeout: float | None = None,
                    slowest: float | None = None) -> float | None:
        """When a try without a head gets a second copy (None: never; see :meth:`_head`).

        With a learned limit (the hang limit of the endpoint's last 50 answers,
        ``ResponseTimes(recent=...)``): the slowest of those answers
        (``slowest``; without it a third of the limit, which is 3x it but at
        least 2 s), so in a steady state at most about one request in 50 gets a
        copy, and never before ``_HEDGE_FLOOR``.  A copy ends nothing -- the
        first request still wins if it answers first -- so its cost is one
        duplicate request, paid from the retry budget.  Hedging at a third of
        the limit's 2 s floor (2/3 s) instead of the slowest answer with a
        0.5 s floor cost every hang of a chaos run a sixth of a second per
        copy, with no healthy answer of the stand-in slower than 0.4 s outside
        the latency phases (which raise the slowest answer, and so the delay,
        themselves).

        Nothing learned yet (a fresh supervisor on a fresh store): a third of
        ``answer_timeout``, the CLI's own wait for a head, when given.  Without
        it, a hang among the first requests of a run held its job for the
        CLI's whole timeout (6 s in chaos runs, four jobs of one seed at once).
        """
        if not self.hedge:
            return None
        if first_limit is None:
            return answer_timeout / 3 if answer_timeout is not None and answer_timeout > 0 else None
        d = max(_HEDGE_FLOOR, first_limit / 3 if slowest is None else slowest)
        return d if d < first_limit else None

    def _hedge_won(self, route: RelayRoute, st: _State, hedged_at: float, waited: float,
                   first_limit: float | None, watch: RequestWatch) -> None:
        """The copy answered first: the first try had stalled, and this is its recovery (a ``stall`` failure)."""
        why = (f"the slowest of the endpoint's recent answers, at least {_HEDGE_FLOOR:g} s (hang limit "
               f"{first_limit:.2f} s: {watch.describe()})" if first_limit is not None
               else f"a third of the CLI's request timeout of {route.answer_timeout:g} s: nothing learned yet")
        err = self.sink.classify(TimeoutError(
            f"a second copy of a request answered first: the API had not answered it for {waited:.1f} s "
            f"(hedged at {why})"))
        inc = RelayIncident(sent_at=hedged_at - waited, detected_at=hedged_at, kind="stall", error=err, status=None,
                            retried_at=hedged_at)
        self.sink.error(route, inc)
        inc.handle = self.sink.failed(route, inc)
        st.hedged.append(inc)

    async def _connect(self, route: RelayRoute) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        key = (route._scheme, route._host, route._port)
        idle = self._pool.get(key)
        while idle:
            r, w, since = idle.pop()
            # a connection idle for long may be closed by the server as we send on it, which would look
            # like a fault: reuse only recently used ones (servers keep idle connections >= 5 s)
            if not r.at_eof() and not w.transport.is_closing() and self._mono() - since < _POOL_IDLE:
                return r, w, True
            w.transport.abort()
        ctx = None
        if route._scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            ctx = self._ssl
        r, w = await asyncio.open_connection(route._host, route._port, ssl=ctx, limit=_MAX_HEAD)
        return r, w, False

    def _put(self, route: RelayRoute, r: asyncio.StreamReader, w: asyncio.StreamWriter,
             headers: list[tuple[str, str]]) -> None:
        if (_get(headers, "connection") or "").lower() == "close" or r.at_eof():
            w.transport.abort()
            return
        idle = self._pool.setdefault((route._scheme, route._host, route._port), [])
        if len(idle) < 16:
            idle.append((r, w, self._mono()))
        else:
            w.transport.abort()

    async def _send(self, w: asyncio.StreamWriter, route: RelayRoute, req: _Request, target: str, *,
                    identity: bool) -> None:
        host = route._host if route._port in (80, 443) else f"{route._host}:{route._port}"
        lines = [f"{req.method} {target} HTTP/1.1", f"host: {host}"]
        for k, v in req.headers:
            lk = k.lower()
            if lk in _HOP or (identity and lk == "accept-encoding"):
                continue
            lines.append(f"{k}: {v}")
        if identity:
            lines.append("accept-encoding: identity")  # the relay reads the answer: no compression
        lines.append(f"content-length: {len(req.body)}")
        w.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + req.body)
        await w.drain()


def _is_open(breaker: Any) -> bool:
    try:
        return str(getattr(breaker.state, "value", breaker.state)) in ("open", "forced_open")
    except Exception:
        return False


def _streaming(req: _Request) -> bool:
    """Whether the request asks for a streamed answer (only read on a failure: bodies can be megabytes)."""
    if b'"stream"' not in req.body:
        return False
    try:
        body = json.loads(req.body)
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("stream") is True


def _left(limit: float | None, since: float, now: float) -> float | None:
    return None if limit is None else max(0.0, limit - (now - since))


def _get(headers: list[tuple[str, str]], name: str) -> str | None:
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def _has_body(method: str, status: int) -> bool:
    return method != "HEAD" and status not in (204, 304) and status >= 200


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1"):
        raise ValueError("malformed request line")
    headers = _parse_headers(lines[1:])
    body = await _read_all(reader, headers, "POST", 200, _MAX_BODY, request=True)
    return _Request(parts[0].upper(), parts[1], headers, body)


def _parse_headers(lines: list[str]) -> list[tuple[str, str]]:
    out = []
    for line in lines:
        if not line:
            continue
        k, sep, v = line.partition(":")
        if not sep or not k.strip():
            raise ValueError("malformed header line")
        out.append((k.strip(), v.strip()))
    return out


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, list[tuple[str, str]]]:
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1"):
            raise ValueError("malformed status line")
        status = int(parts[1])
        if status >= 200 or status == 101:
            return status, _parse_headers(lines[1:])


async def _body(reader: asyncio.StreamReader, headers: list[tuple[str, str]], method: str,
                status: int, *, request: bool = False) -> AsyncIterator[bytes]:
    """The body's pieces as they arrive; raises IncompleteReadError when the connection ends early."""
    if not request and not _has_body(method, status):
        return
    if (_get(headers, "transfer-encoding") or "").lower().endswith("chunked"):
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers: dropped
                return
            yield await reader.readexactly(size)
            if await reader.readexactly(2) != b"\r\n":
                raise ValueError("bad chunk")
    n = _get(headers, "content-length")
    if n is not None:
        left = int(n)
        if left < 0:
            raise ValueError("bad content-length")
        while left > 0:
            piece = await reader.read(min(left, 65536))
            if not piece:
                raise asyncio.IncompleteReadError(b"", left)
            left -= len(piece)
            yield piece
        return
    if request:
        return
    while piece := await reader.read(65536):  # close-delimited
        yield piece


async def _read_all(reader: asyncio.StreamReader, headers: list[tuple[str, str]], method: str, status: int,
                    cap: int, *, request: bool = False) -> bytes:
    out = bytearray()
    async for piece in _body(reader, headers, method, status, request=request):
        out += piece
        if len(out) > cap:
            raise ValueError("body too large")
    return bytes(out)


async def _write_head(writer: asyncio.StreamWriter, status: int, headers: list[tuple[str, str]], *,
                      chunked: bool) -> None:
    lines = [f"HTTP/1.1 {status} {_reason(status)}"]
    lines += [f"{k}: {v}" for k, v in headers if k.lower() not in _HOP]
    if chunked:
        lines.append("transfer-encoding: chunked")
    else:
        lines.append("content-length: 0")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    await writer.drain()


async def _write_chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(b"%x\r\n%s\r\n" % (len(data), data))
    await writer.drain()


async def _respond(writer: asyncio.StreamWriter, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    lines = [f"HTTP/1.1 {status} {_reason(status)}"]
    lines += [f"{k}: {v}" for k, v in headers if k.lower() not in _HOP]
    lines.append(f"content-length: {len(body)}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return {529: "Overloaded"}.get(status, "Unknown")
