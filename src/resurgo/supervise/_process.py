"""Running one Claude Code CLI attempt: spawn, stream events, watch liveness, end the whole tree.

One *attempt* is one ``claude -p ... --output-format stream-json --verbose``
process.  The recovery orchestrator decides what to run (start, resume, fork);
this module only makes a single run observable and killable:

* the CLI runs in its own session and process group (``start_new_session``) so
  the Bash tool's children can be ended with it, and we are a child subreaper so
  orphans come back to us (see :mod:`resurgo._procs`);
* stdout and stderr are drained concurrently in chunks and split into lines here,
  so a multi-megabyte event never hits ``StreamReader``'s 64 KiB line limit and a
  full stderr pipe never blocks the CLI;
* liveness comes from *progress* (events), not from the process being alive:
  a CLI waiting on a server that never answers is alive and useless;
* events go to the store in batches written by a worker thread
  (:class:`~resurgo.supervise._jobstore.EventWriter` with ``background=True``): a
  write waits for the store's lock (up to its 10 s busy timeout) while another
  process writes, and on the event loop that would freeze every attempt's
  reading and watchdogs.  The few other writes (the process row at start and
  end here; attempt, job and recovery state in the supervisor) are single-row
  transactions that stay on the loop: they wait only as long as another writer
  holds the lock, and every resurgo writer holds it for one short transaction
  (at most one event batch, now off any loop).  A foreign process holding the
  lock for long could still stall them up to the busy timeout.

The result is an :class:`AttemptOutcome`, whose :meth:`~AttemptOutcome.to_observation`
feeds the classifier.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import logging
import math
import os
import shutil
import signal as _signal
import threading
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from resurgo._launch import (
    ARGV_PROMPT_LIMIT,
    ATTEMPT_ENV,
    OWNER_ENV,
    ClaudeNotFoundError,
    Prestarted,
    attempt_env,
    cli_argv,
    default_tmp_root,
    find_claude,
    make_tmpdir,
    owner_id,
    spawn_early,
)
from resurgo._procs import (
    TreeKillReport,
    TreeTracker,
    become_subreaper,
    create_time,
    end_tree,
    marked_tree,
    same_process,
)
from resurgo._redact import redact_argv, redact_text
from resurgo.classifier._types import Observation
from resurgo.clock import SYSTEM_CLOCK, Clock
from resurgo.supervise._requests import RequestWatch


class EventWriter(Protocol):
    """Where an attempt's CLI events go (``_jobs.EventWriter`` implements it); a protocol so
    that this module does not import the job store that imports it."""

    def add(self, ev: StreamEvent) -> None: ...
    def maybe_flush(self) -> None: ...
    def flush(self) -> None: ...
    async def drain(self) -> None: ...


class JobStore(Protocol):
    """What the process manager records in the job store (``_jobs.JobStore`` implements it)."""

    owner: str

    def record_process(
        self, *, pid: int, start_time: float, pgid: int | None, job_id: str | None = None,
        attempt_id: int | None = None,
    ) -> None: ...
    def process_ended(self, pid: int, start_time: float, ended_at: float | None = None) -> None: ...
    def event_writer(self, job_id: str, attempt_id: int | None, **kw: Any) -> EventWriter: ...
    def append_supervisor_event(
        self, job_id: str, type: str, data: Mapping[str, Any], *, attempt_id: int | None = None,
        subtype: str | None = None,
    ) -> None: ...

log = logging.getLogger("resurgo.supervise")

KilledBy = Literal["stall_watchdog", "deadline", "shutdown", "user"]
Mode = Literal["start", "resume", "fork"]

#: Unparseable lines are kept as evidence, cut to this many characters.
UNPARSEABLE_PREVIEW = 2_000
_READ_CHUNK = 1 << 18
#: a standby's prompt up to this size is written at once (a pipe holds 64 KiB); a larger one from a thread
_FEED_INLINE = 32 << 10
#: how long a standby's boot is taken to keep a CPU busy (the CLI's start, measured 0.34-0.45 s)
_STANDBY_BOOT = 0.5


def _feed_quietly(pre: Prestarted, data: bytes) -> None:
    with contextlib.suppress(OSError):
        pre.feed(data)
_REQUESTING = "requesting"


@dataclass(frozen=True, slots=True)
class Liveness:
    """When an attempt counts as dead although its process lives. ``None`` disables a check.

    * ``stall_timeout`` — seconds without any event (``system/api_retry`` counts:
      the CLI is retrying, i.e. alive).  Default 300 s: a long tool call prints
      nothing until it ends, so keep this above your longest expected command.
    * ``deadline`` — wall-clock limit for the whole attempt.
    * ``exit_after_result`` — the CLI must exit this long after its ``result``
      event (users report hangs after the result).
    * ``grace`` — SIGTERM to SIGKILL.
    * ``tick`` — how often the watchdog looks; bounds detection latency.
    * ``request`` — limits for one API request (first answer, silence within an
      answer) learned from the endpoint (:mod:`resurgo.supervise._requests`); needs
      the CLI's ``--include-partial-messages``.  A request past its limit is a hang
      and ends the attempt like a stall, long before ``stall_timeout``.
    """

    stall_timeout: float | None = 300.0
    deadline: float | None = None
    exit_after_result: float | None = 10.0
    grace: float = 3.0
    tick: float = 0.25
    request: RequestWatch | None = None

    def __post_init__(self) -> None:
        for name in ("stall_timeout", "deadline", "exit_after_result"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ValueError(f"Liveness.{name} must be > 0 or None, got {v!r}")
        if not self.grace >= 0:
            raise ValueError(f"Liveness.grace must be >= 0, got {self.grace!r}")
        if not self.tick > 0:
            raise ValueError(f"Liveness.tick must be > 0, got {self.tick!r}")


class LivenessMonitor:
    """The watchdog's decision logic, separate from processes so it is testable with FakeClock."""

    __slots__ = (
        "_clock", "_gap_max", "_req_at", "_stream_at", "answers", "last_progress", "policy", "request_killed",
        "result_at", "started",
    )

    def __init__(self, policy: Liveness, clock: Clock = SYSTEM_CLOCK) -> None:
        self.policy = policy
        self._clock = clock
        self.started = clock.monotonic()
        self.last_progress = self.started
        self.result_at: float | None = None
        self._req_at: float | None = None  # a request is out, not answered yet
        self._stream_at: float | None = None  # an answer is streaming: its last event
        self._gap_max = 0.0
        #: the request watch (not the plain stall timeout) ended this attempt
        self.request_killed = False
        #: requests answered (their first answer event seen)
        self.answers = 0

    def progress(self) -> None:
        """Any event (including ``api_retry``) proves the CLI is making progress."""
        self.last_progress = self._clock.monotonic()

    def result_seen(self) -> None:
        self.result_at = self._clock.monotonic()
        self.last_progress = self.result_at
        self._req_at = self._stream_at = None

    def request_sent(self) -> None:
        """The CLI reported ``system/status "requesting"``: an answer is due."""
        self._req_at = self._clock.monotonic()
        self._stream_at = None

    def answer_event(self, kind: str | None, *, pause: bool = False) -> None:
        """One ``stream_event`` of the answer (``kind`` is its SSE type); teaches the endpoint's times.

        ``pause``: the API runs a server-side tool now (its results come later in
        the same answer), so the silence until the next event is not watched.
        """
        now = self._clock.monotonic()
        w = self.policy.request
        if self._req_at is not None:
            self.answers += 1
            if w is not None:
                w.times.first_answer(now - self._req_at)
            self._req_at = None
            self._gap_max = 0.0
        elif self._stream_at is not None:
            self._gap_max = max(self._gap_max, now - self._stream_at)
        if kind == "message_stop":
            if w is not None and self._stream_at is not None:
                w.times.stream_gap(self._gap_max)
            self._stream_at = None
        elif pause:
            self._stream_at = None  # not watched (nor learned) until the answer goes on
        else:
            self._stream_at = now

    def other_event(self, etype: str | None) -> None:
        """Any other event: the CLI moved on (a retry, a tool result, an error), no request is out.

        An ``assistant`` event arrives in the middle of an answer (one per content
        block) and leaves the stream's watch as it is.
        """
        self._req_at = None
        if etype != "assistant":
            self._stream_at = None

    def verdict(self) -> tuple[KilledBy, str] | None:
        """``(killed_by, reason)`` when the attempt must be ended now, else None."""
        p = self.policy
        now = self._clock.monotonic()
        if p.deadline is not None and now - self.started >= p.deadline:
            return "deadline", f"ran past its deadline of {p.deadline:g} s"
        if self.result_at is not None:
            if p.exit_after_result is not None and now - self.result_at >= p.exit_after_result:
                return "deadline", f"did not exit within {p.exit_after_result:g} s after its result event"
            return None  # after the result, silence is expected: only the exit deadline applies
        w = p.request
        # a request out and unanswered, else an answer streaming: its silence is watched
        gap = self._req_at is None
        since = self._stream_at if gap else self._req_at
        if w is not None and since is not None:
            lim = w.limit(gap=gap)
            if lim is not None and now - since >= lim:
                self.request_killed = True
                what = "the API's answer stopped" if gap else "the API has not answered a request"
                return "stall_watchdog", f"{what} for {now - since:.1f} s (limit {lim:.2f} s: {w.describe(gap=gap)})"
        if p.stall_timeout is not None and now - self.last_progress >= p.stall_timeout:
            return "stall_watchdog", f"no event for {now - self.last_progress:.1f} s (limit {p.stall_timeout:g} s)"
        return None


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One line of the CLI's stdout. ``data`` is None when the line is not a JSON object."""

    seq: int
    ts: float  # wall clock, epoch seconds
    mono: float  # monotonic, for intervals
    type: str | None
    subtype: str | None
    data: Mapping[str, Any] | None
    raw: str  # the line as received (decoded), so storing it needs no re-serialisation

    @property
    def unparseable(self) -> bool:
        return self.data is None

    @property
    def session_id(self) -> str | None:
        sid = self.data.get("session_id") if self.data is not None else None
        return sid if isinstance(sid, str) and sid else None

    @property
    def is_notable(self) -> bool:
        """Events the classifier needs even when the tail has scrolled past them."""
        if self.data is None:
            return True
        t, st = self.type, self.subtype
        return (
            t in ("result", "rate_limit_event")
            or (t == "system" and st in ("init", "api_retry"))
            or (t == "assistant" and "error" in self.data)
        )

    def as_evidence(self) -> Mapping[str, Any]:
        """The mapping the classifier sees; garbage lines become ``{"type": "unparseable"}``."""
        if self.data is not None:
            return self.data
        return {"type": "unparseable", "raw": self.raw[:UNPARSEABLE_PREVIEW]}


def parse_line(line: bytes, *, seq: int, ts: float, mono: float) -> StreamEvent:
    """Parse one stdout line; never raises (garbage is evidence, not a crash)."""
    text = line.decode("utf-8", errors="replace")
    data: Any = None
    with contextlib.suppress(ValueError, RecursionError):
        data = json.loads(text)
    if not isinstance(data, dict):
        return StreamEvent(seq, ts, mono, None, None, None, text)
    t = data.get("type")
    st = data.get("subtype")
    return StreamEvent(
        seq, ts, mono, t if isinstance(t, str) else None, st if isinstance(st, str) else None, data, text
    )


#: Longest stdout line kept (bytes, default 64 MiB).  A CLI that prints more without a newline
#: (a runaway tool result, a broken stream) would otherwise make the reader buffer without bound.
DEFAULT_MAX_LINE = 64 << 20


class TruncatedLine(bytes):
    """The start of a stdout line longer than the splitter's cap; ``size`` is its whole length.

    What the reader passes on instead of the line: the first bytes (a preview for the
    evidence), never parsed as JSON, and the line's real size (counted while it was skipped).
    """

    size: int


class LineSplitter:
    """Splits a byte stream into lines, scanning each byte once; lines are capped at ``max_line``.

    A line longer than ``max_line`` bytes is not buffered: its first ``preview`` bytes are kept,
    the rest is counted and dropped until the next newline, and the line comes out as a
    :class:`TruncatedLine` (memory stays at ``max_line`` + one read chunk, whatever the CLI
    prints).  ``max_line=None``: no cap.
    """

    __slots__ = ("_buf", "_head", "_max", "_preview", "_scan", "_skipped")

    def __init__(self, max_line: int | None = None, *, preview: int = UNPARSEABLE_PREVIEW) -> None:
        self._buf = bytearray()
        self._scan = 0
        self._max = max_line
        self._preview = preview
        self._skipped: int | None = None  # bytes of an over-long line dropped so far (None: not skipping)
        self._head = b""

    def _truncated(self, head: bytes, size: int) -> TruncatedLine:
        t = TruncatedLine(head[: self._preview])
        t.size = size
        return t

    def feed(self, chunk: bytes) -> list[bytes]:
        out: list[bytes] = []
        if self._skipped is not None:  # inside an over-long line: look for its end only
            nl = chunk.find(b"\n")
            if nl < 0:
                self._skipped += len(chunk)
                return out
            out.append(self._truncated(self._head, self._skipped + nl))
            self._skipped, self._head = None, b""
            chunk = chunk[nl + 1 :]
        buf = self._buf
        buf += chunk
        pos = 0
        cap = self._max
        nl = buf.find(b"\n", self._scan)
        while nl >= 0:
            if cap is not None and nl - pos > cap:
                out.append(self._truncated(bytes(buf[pos : pos + self._preview]), nl - pos))
            else:
                line = bytes(buf[pos:nl])
                if line.endswith(b"\r"):
                    line = line[:-1]
                if line.strip():
                    out.append(line)
            pos = nl + 1
            nl = buf.find(b"\n", pos)
        if pos:
            del buf[:pos]
        if cap is not None and len(buf) > cap:  # no newline within the cap: skip to the next one
            self._head = bytes(buf[: self._preview])
            self._skipped = len(buf)
            buf.clear()
        self._scan = len(buf)
        return out

    def close(self) -> bytes | None:
        """The last line when the stream ended without a newline."""
        if self._skipped is not None:
            t = self._truncated(self._head, self._skipped)
            self._skipped, self._head = None, b""
            return t
        rest = bytes(self._buf).rstrip(b"\r")
        self._buf.clear()
        self._scan = 0
        return rest if rest.strip() else None

    @property
    def pending(self) -> int:
        return len(self._buf)


@dataclass(frozen=True, slots=True)
class AttemptSpec:
    """What to run.  ``mode`` decides the session flags:

    * ``start``  — ``--session-id <session_id>`` (a fresh uuid4 when None).
    * ``resume`` — ``--resume <session_id>``; ``prompt`` is the continuation prompt.
    * ``fork``   — ``--resume <session_id> --fork-session --session-id <fork_session_id>``
      (the fork's id is chosen up front too; the CLI accepts it, verified with 2.1.197).

    ``env`` holds the job's overrides on top of the caller's environment
    (``inherit_env``).  ``job_id``/``attempt_id`` make the manager persist events
    and the process record when it has a :class:`JobStore`.
    """

    prompt: str
    cwd: str | os.PathLike[str]
    mode: Mode = "start"
    session_id: str | None = None
    claude_args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    model: str | None = None
    liveness: Liveness = field(default_factory=Liveness)
    job_id: str | None = None
    attempt_id: int | None = None
    inherit_env: bool = True
    #: give the CLI its own TMPDIR, removed after the run, so leaked temp files cannot pile up
    private_tmp: bool = True
    #: the new id of a forked session (``mode="fork"``); a fresh uuid4 when None
    fork_session_id: str | None = None
    #: run exactly this argv instead of building a CLI command line (wrappers such as
    #: ``timeout``/``nice``, and tests of the process mechanics); session flags are not added
    command: Sequence[str] | None = None
    #: leave out of the stored and forwarded events the answer events (``stream_event``) and
    #: ``system/status "requesting"`` that ``--include-partial-messages`` adds: resurgo asked for
    #: them only to watch requests (``liveness.request``), the job did not
    quiet_stream: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("start", "resume", "fork"):
            raise ValueError(f"AttemptSpec.mode must be start, resume or fork, got {self.mode!r}")
        if self.mode != "start" and not self.session_id:
            raise ValueError(f"AttemptSpec.mode={self.mode!r} needs the session_id to resume")
        if not isinstance(self.prompt, str):
            raise TypeError("AttemptSpec.prompt must be a string")
        if isinstance(self.claude_args, str):
            raise TypeError("AttemptSpec.claude_args must be a sequence of arguments, not one string")
        if self.command is not None and (isinstance(self.command, str) or not self.command):
            raise TypeError("AttemptSpec.command must be a non-empty sequence of arguments (never a shell string)")
        for sid in (self.session_id, self.fork_session_id):
            if sid is not None:
                try:
                    uuid.UUID(sid)
                except ValueError:
                    raise ValueError(f"session id {sid!r} is not a UUID") from None

    def with_session(self) -> AttemptSpec:
        """This spec with its session id fixed up front (a new uuid for ``start`` and for a fork)."""
        if self.mode == "start" and self.session_id is None:
            return replace(self, session_id=str(uuid.uuid4()))
        if self.mode == "fork" and self.fork_session_id is None:
            return replace(self, fork_session_id=str(uuid.uuid4()))
        return self

    @property
    def expected_session_id(self) -> str | None:
        """The id this attempt's transcript will have: resumed runs keep theirs, forks get the new one."""
        return self.fork_session_id if self.mode == "fork" else self.session_id

    def argv(self, claude: str) -> tuple[list[str], bytes | None]:
        """The command line and, for very long prompts, the stdin bytes carrying the prompt.

        The prompt goes last, after ``--``: ``--allowedTools`` takes several
        values and would otherwise swallow it, and a prompt starting with ``-``
        must not be read as an option.
        """
        if self.command is not None:
            return [str(a) for a in self.command], None
        return cli_argv(
            claude,
            prompt=self.prompt,
            mode=self.mode,
            session_id=self.session_id,
            fork_session_id=self.fork_session_id,
            model=self.model,
            claude_args=self.claude_args,
        )


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """Everything known about one finished attempt; the input to classification and recovery.

    ``exit_code`` is None when the process died by a signal (then ``signal`` is
    set) or never started (then ``spawn_error`` says why and ``exit_code`` is 127/126
    as a shell would report).  ``events`` holds the notable events (init,
    api_retry, rate limits, errors, result, garbage lines) plus the last
    ``tail`` events, in order; ``event_count``/``type_counts`` count all of them.
    """

    mode: Mode
    argv: tuple[str, ...]  # redacted, for display
    cwd: str
    pid: int | None
    start_time: float | None  # psutil create_time of the CLI
    requested_session_id: str | None
    session_id: str | None  # newest id seen (init / result), else the requested one
    exit_code: int | None
    signal: int | None
    killed_by: KilledBy | None
    kill_reason: str | None
    started_at: float
    ended_at: float
    first_event_at: float | None
    result_at: float | None
    event_count: int
    unparseable_count: int
    type_counts: Mapping[str, int]
    events: tuple[StreamEvent, ...]
    init: Mapping[str, Any] | None
    result: Mapping[str, Any] | None
    stderr_tail: str
    stderr_bytes: int
    spawn_error: str | None = None
    spawn_exception: str | None = None
    cleanup: TreeKillReport = field(default_factory=TreeKillReport)
    job_id: str | None = None
    attempt_id: int | None = None

    @property
    def duration(self) -> float:
        return self.ended_at - self.started_at

    @property
    def result_ok(self) -> bool:
        """The CLI's own verdict: a result event with ``is_error: false``."""
        r = self.result
        return r is not None and r.get("is_error") is False

    @property
    def hung_after_result(self) -> bool:
        """We ended a CLI that had already printed its result but would not exit."""
        return self.killed_by == "deadline" and self.result is not None

    @property
    def succeeded(self) -> bool:
        """Success is the result event's verdict; a forced exit after a good result is still success."""
        if not self.result_ok:
            return False
        return self.exit_code == 0 or self.hung_after_result

    @property
    def cancelled(self) -> bool:
        return self.killed_by in ("user", "shutdown")

    @property
    def orphans_left(self) -> tuple[int, ...]:
        return self.cleanup.left

    def observation_events(self, limit: int = 50) -> list[Mapping[str, Any]]:
        evs = list(self.events)
        if len(evs) > limit:
            # keep the first (init) and the newest; the result is always the newest
            evs = evs[:1] + evs[-(limit - 1) :]
        return [e.as_evidence() for e in evs]

    def to_observation(self, *, max_events: int = 50) -> Observation:
        """The classifier's view of this attempt.

        A CLI that printed a successful result and was then ended because it
        would not exit is reported without ``killed_by`` and signal: resurgo's
        cleanup is not the run's failure, and ``killed_by`` would otherwise
        outrank the result (spec: "Deciding when signals disagree").
        """
        res = self.result
        message: str | None = None
        http_status: int | None = None
        if res is not None:
            txt = res.get("result")
            errs = res.get("errors")
            parts = [txt] if isinstance(txt, str) and txt else []
            if isinstance(errs, list):
                parts += [str(e) for e in errs if e]
            message = redact_text("\n".join(parts)) or None
            st = res.get("api_error_status")
            if isinstance(st, int) and not isinstance(st, bool):
                http_status = st
        if self.spawn_error:
            message = self.spawn_error
        benign_kill = self.hung_after_result and self.result_ok
        return Observation(
            message=message,
            exception_type=self.spawn_exception,
            exit_code=None if benign_kill else self.exit_code,
            signal=None if benign_kill else self.signal,
            killed_by=None if benign_kill else self.killed_by,
            http_status=http_status,
            stderr=redact_text(self.stderr_tail) or None,
            events=tuple(self.observation_events(max_events)),
        )


EventCallback = Callable[[StreamEvent], Awaitable[None] | None]
_END = object()


class Attempt:
    """A running attempt: live state for health checks, an event stream, and its end.

    Obtain one from :meth:`ProcessManager.start`.  Awaiting :meth:`wait` from a
    task that gets cancelled ends the process group (``killed_by="user"``, or
    ``"shutdown"`` during :meth:`ProcessManager.shutdown`) before the
    ``CancelledError`` propagates; the outcome is then in :attr:`outcome`.
    """

    def __init__(
        self,
        manager: ProcessManager,
        spec: AttemptSpec,
        claude: str,
        *,
        on_event: EventCallback | None,
        writer: EventWriter | None,
        tail: int,
    ) -> None:
        self.manager = manager
        self.spec = spec
        self.claude = claude
        self._clock = manager.clock
        self._on_event = on_event
        self._writer = writer
        self._argv, self._stdin = spec.argv(claude)
        self.argv_display: tuple[str, ...] = tuple(redact_argv(self._argv))
        self.pid: int | None = None
        self.start_time: float | None = None
        self._recorded_start: float | None = None  # the start time the store has for this process
        self.started_at = self._clock.time()
        #: the prompt to write to an adopted standby's stdin (see :meth:`_standby`)
        self._feed: bytes | None = None
        self.first_event_at: float | None = None
        self.result_at: float | None = None
        self.session_id: str | None = spec.expected_session_id
        self.event_count = 0
        self.unparseable_count = 0
        self.type_counts: Counter[str] = Counter()
        self.monitor = LivenessMonitor(spec.liveness, self._clock)
        self.tracker: TreeTracker | None = None
        #: how the attempt ended; set once it has ended and its tree is gone (None while it runs)
        self.outcome: AttemptOutcome | None = None
        self._tail: deque[StreamEvent] = deque(maxlen=max(1, tail))
        self._notable: deque[StreamEvent] = deque(maxlen=200)
        self._init: Mapping[str, Any] | None = None
        self._result: Mapping[str, Any] | None = None
        self._stderr_tail = bytearray()
        self._stderr_bytes = 0
        self._stderr_keep = manager.stderr_tail_bytes
        self._subscribers: list[asyncio.Queue[object]] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._kill: tuple[KilledBy, str] | None = None
        self._kill_started: float | None = None
        self._killer: asyncio.Task[None] | None = None
        self._done = asyncio.Event()
        self._tmpdir: str | None = None
        self._task: asyncio.Task[AttemptOutcome] | None = None
        self._exited = asyncio.Event()
        #: the manager's start gate while this attempt holds it (see :attr:`ProcessManager.start_gate`)
        self._gate: asyncio.Semaphore | None = None
        self._gate_timer: asyncio.TimerHandle | None = None
        #: the value of ``RESURGO_ATTEMPT`` in this attempt's environment
        self.token = uuid.uuid4().hex

    # -- public --------------------------------------------------------------------------
    @property
    def last_event_age(self) -> float:
        """Seconds since the last progress (or the start), on the manager's clock."""
        return self._clock.monotonic() - self.monitor.last_progress

    @property
    def tmpdir(self) -> str | None:
        """The attempt's private TMPDIR (removed when it ends)."""
        return self._tmpdir

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def done(self) -> bool:
        return self._done.is_set()

    async def wait(self) -> AttemptOutcome:
        """The outcome once the attempt ended and its tree is gone."""
        assert self._task is not None
        try:
            return await asyncio.shield(self._task)
        except asyncio.CancelledError:
            kb: KilledBy = "shutdown" if self.manager.shutting_down else "user"
            with contextlib.suppress(Exception):
                await asyncio.shield(self.stop(kb, "the awaiting task was cancelled"))
            raise

    async def stop(self, killed_by: KilledBy = "user", reason: str | None = None) -> AttemptOutcome:
        """End the attempt's whole process group and return its outcome."""
        self.request_kill(killed_by, reason or f"stopped ({killed_by})")
        assert self._task is not None
        return await asyncio.shield(self._task)

    def request_kill(self, killed_by: KilledBy, reason: str) -> None:
        """Start ending the process group (SIGTERM now, SIGKILL after the grace period)."""
        if self._kill is not None or self._done.is_set():
            return
        self._kill = (killed_by, reason)
        self._kill_started = self._clock.monotonic()
        log.info("ending attempt pid=%s: %s (%s)", self.pid, redact_text(reason), killed_by)
        proc = self._proc
        if proc is not None:
            self._signal_tree(proc, _signal.SIGTERM)
            if proc.returncode is None:
                self._killer = asyncio.get_running_loop().create_task(self._escalate(proc))

    def _signal_tree(self, proc: asyncio.subprocess.Process, sig: int) -> None:
        """Signal the CLI's group and every descendant group we know, all at once.

        At once matters: on SIGTERM the CLI kills its Bash tool's ``bash`` but not
        that shell's children, which would be orphaned before we could see them.
        """
        tracker = self.tracker
        if tracker is not None:
            tracker.sample()  # the CLI is still alive: its tree is still linked
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
        if tracker is None:
            return
        for sid in tracker.sids:
            ct = tracker.seen.get(sid)
            if ct is not None and same_process(sid, ct):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(sid, sig)
        for pid in tracker.still_alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    async def events(self) -> AsyncIterator[StreamEvent]:
        """Events from now on, as they arrive, until the attempt ends.

        Subscribe before awaiting the outcome; events printed before the
        subscription are not replayed (use ``on_event`` to see every one).
        """
        q: asyncio.Queue[object] = asyncio.Queue()
        if self._done.is_set():
            return
        self._subscribers.append(q)
        try:
            while True:
                item = await q.get()
                if item is _END:
                    return
                assert isinstance(item, StreamEvent)
                yield item
        finally:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(q)

    # -- internals -----------------------------------------------------------------------
    async def _escalate(self, proc: asyncio.subprocess.Process) -> None:
        await self._clock.asleep(self.spec.liveness.grace)
        if proc.returncode is None:
            self._signal_tree(proc, _signal.SIGKILL)

    def _env(self) -> dict[str, str]:
        if self.spec.private_tmp:
            self._tmpdir = make_tmpdir(self.manager.tmp_root)
        return self._env_with(self.token, self._tmpdir)

    def _env_with(self, token: str, tmpdir: str | None) -> dict[str, str]:
        return self.manager.attempt_env(self.spec, token, tmpdir)

    def _adoptable(self, cwd: str) -> Prestarted | None:
        """The early-started process of this very attempt, if the manager holds one (see resurgo._launch)."""
        pre = self.manager.take_prestarted(self.spec.session_id)
        if pre is None:
            return self._standby(cwd)
        tmp = pre.tmpdir if self.spec.private_tmp else None
        why = pre.matches(self._argv, cwd, self._env_with(pre.token, tmp)) if self._stdin is None else "stdin prompt"
        if why is not None or (tmp is None) != (pre.tmpdir is None):
            pre.mismatch = why or "private temp folder differs"
            log.info("not adopting the early-started CLI pid=%s: %s", pre.pid, pre.mismatch)
            pre.discard()
            return None
        pre.adopted = True
        self.token = pre.token
        self._tmpdir = pre.tmpdir
        self.started_at = pre.started_at
        return pre

    def _standby(self, cwd: str) -> Prestarted | None:
        """The manager's idle CLI for this resume (:meth:`ProcessManager.prepare_standby`), if it fits exactly.

        It fits when this attempt's command line is the standby's plus the
        prompt, and its folder and environment are the same; the prompt is then
        fed on the standby's stdin (:attr:`_feed`).  Anything else, or a standby
        that died while it waited, is discarded and the attempt starts as usual.
        """
        spec = self.spec
        if spec.mode != "resume":
            return None
        pre = self.manager.take_standby(spec.session_id)
        if pre is None:
            return None
        if self._stdin is not None:
            argv, data = self._argv, self._stdin
        elif len(self._argv) >= 2 and self._argv[-2] == "--":
            argv, data = self._argv[:-2], self._argv[-1].encode()
        else:
            argv, data = self._argv, b""
        tmp = pre.tmpdir if spec.private_tmp else None
        why = ("it has ended" if not pre.alive else
               pre.matches(argv, cwd, self._env_with(pre.token, tmp)) if data else "no prompt to give it")
        if why is None and (tmp is None) != (pre.tmpdir is None):
            why = "private temp folder differs"
        if why is not None:
            log.info("not adopting the standby CLI pid=%s for session %s: %s", pre.pid, spec.session_id, why)
            if not pre.alive:
                self.manager.standby_died(pre)
            self.manager.drop(pre)
            return None
        pre.adopted = True
        self.manager.standby_stats["adopted"] += 1
        self.token = pre.token
        self._tmpdir = pre.tmpdir
        self._feed = data  # self.started_at stays this attempt's: the restart is timed from now
        return pre

    async def _pass_gate(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait for a start slot; it is held until the first event, the exit, or ``start_hold`` seconds."""
        gate = self.manager.start_gate
        if gate is None:
            return
        await gate.acquire()
        self._gate = gate
        self._gate_timer = loop.call_later(self.manager.start_hold, self._open_gate)

    def _open_gate(self) -> None:
        """Give the start slot back (idempotent): the CLI spoke, exited, or took too long to."""
        gate, self._gate = self._gate, None
        if self._gate_timer is not None:
            self._gate_timer.cancel()
            self._gate_timer = None
        if gate is not None:
            gate.release()

    async def _run(self) -> AttemptOutcome:
        try:
            return await self._run_process()
        finally:
            self._open_gate()  # ended, failed to spawn, or cancelled at the gate: never hold others' starts

    async def _run_process(self) -> AttemptOutcome:
        spec = self.spec
        cwd = os.fspath(spec.cwd)
        loop = asyncio.get_running_loop()
        exited = self._exited
        pre = self._adoptable(cwd)
        if pre is not None:
            self._proc = await _adopt(pre, exited, loop, limit=1 << 20)
            if self._feed is not None:
                data, self._feed = self._feed, None
                if len(data) <= _FEED_INLINE:
                    with contextlib.suppress(OSError):  # ended meanwhile: its exit is the attempt's outcome
                        pre.feed(data)
                else:  # more than a pipe holds: the CLI reads it while we read its output
                    threading.Thread(target=_feed_quietly, args=(pre, data), daemon=True).start()
        else:
            await self._pass_gate(loop)
            try:
                env = self._env()
                transport, protocol = await loop.subprocess_exec(
                    lambda: _ExitAwareProtocol(exited, limit=1 << 20, loop=loop),
                    *self._argv,
                    cwd=cwd,
                    env=env,
                    stdin=asyncio.subprocess.PIPE if self._stdin is not None else asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    start_new_session=True,
                )
                self._proc = asyncio.subprocess.Process(transport, protocol, loop)
            except (FileNotFoundError, PermissionError, NotADirectoryError, OSError) as e:
                return self._finish_spawn_error(e)
        proc = self._proc
        self.pid = proc.pid
        self.start_time = create_time(proc.pid)
        self.tracker = TreeTracker(proc.pid)
        self.monitor = LivenessMonitor(spec.liveness, self._clock)
        self.manager._register(self)
        # a CLI that exits at once may be gone before psutil reads its start time: the record then
        # carries our own start stamp, and its end must name that same stamp (else it stays "open"
        # for ever, and each cleanup sweep re-examined every such record: +3.5 MB and 3,000 open
        # rows after 3,000 instant jobs in the soak bench)
        self._recorded_start = self.start_time or self.started_at
        if self.manager.jobs is not None:
            self.manager.jobs.record_process(
                pid=proc.pid,
                start_time=self._recorded_start,
                pgid=proc.pid,
                job_id=spec.job_id,
                attempt_id=spec.attempt_id,
            )
        if self._kill is not None:  # stop() raced the spawn
            k = self._kill
            self._kill = None
            self.request_kill(*k)

        t_out = asyncio.create_task(self._read_stdout(proc))
        t_err = asyncio.create_task(self._read_stderr(proc))
        t_in = asyncio.create_task(self._write_stdin(proc)) if self._stdin is not None else None
        t_wd = asyncio.create_task(self._watchdog())
        try:
            # not proc.wait(): asyncio only returns from it once every pipe is closed too,
            # and a leftover grandchild holding stdout would keep us waiting for it
            await self._exited.wait()
        except asyncio.CancelledError:
            # the loop is going away under us (asyncio.run() ending): leave nothing behind
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, _signal.SIGKILL)
            for t in (t_out, t_err, t_in):
                if t is not None:
                    t.cancel()
            self._close()
            raise
        finally:
            t_wd.cancel()
            if self._killer is not None:
                self._killer.cancel()
        # the CLI is gone; anything left in its session is a leftover (Bash children, daemons)
        grace = spec.liveness.grace
        if self._kill_started is not None:
            grace = max(0.0, grace - (self._clock.monotonic() - self._kill_started))
        marked = await asyncio.to_thread(marked_tree, ATTEMPT_ENV, self.token)
        # every pid with its start time, every remembered session with its leader's: the grace loop
        # rechecks them, so a pid or session id reused meanwhile is never signalled
        extra = {**marked, **self.tracker.alive_map()}
        extra.pop(proc.pid, None)
        sid_starts = self.tracker.sid_starts()
        if self.start_time is not None:
            sid_starts[proc.pid] = self.start_time
        report = await end_tree(
            {proc.pid, *self.tracker.sids},
            extra=extra,
            leader=proc.pid,
            leader_running=False,
            grace=grace,
            not_before=self.start_time,
            sid_starts=sid_starts,
        )
        if report.left:
            log.warning("attempt pid=%s left processes that would not die: %s", proc.pid, report.left)
        # leftovers held our pipes open; now they are gone the readers reach EOF
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(proc.wait()), 2.0)
        readers = [t for t in (t_out, t_err, t_in) if t is not None]
        _, pending = await asyncio.wait(readers, timeout=2.0)
        for t in pending:
            t.cancel()
        for t in readers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await self._drain_writer()
        return self._finish(proc, report)

    async def _write_stdin(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdin is not None and self._stdin is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.write(self._stdin)
            await proc.stdin.drain()
            proc.stdin.close()

    async def _read_stdout(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        splitter = LineSplitter(self.manager.max_line_bytes)
        stream = proc.stdout
        while True:
            chunk = await stream.read(_READ_CHUNK)
            if not chunk:
                break
            for line in splitter.feed(chunk):
                await self._line(line)
        last = splitter.close()
        if last is not None:
            await self._line(last)

    def _too_long(self, line: TruncatedLine) -> StreamEvent:
        """An over-long line: an unparseable event (its start as the preview), and a note in the store."""
        cap = self.manager.max_line_bytes
        log.warning("attempt pid=%s printed a %d-byte line (limit %s): kept as unparseable", self.pid, line.size, cap)
        jobs, job_id = self.manager.jobs, self.spec.job_id
        if jobs is not None and job_id is not None:
            try:
                jobs.append_supervisor_event(
                    job_id,
                    "stdout_line_too_long",
                    {"bytes": line.size, "limit": cap, "seq": self.event_count},
                    attempt_id=self.spec.attempt_id,
                )
            except Exception:  # a note, not the run: never fatal
                log.warning("could not record the over-long line of attempt pid=%s", self.pid, exc_info=True)
        clock = self._clock
        text = bytes(line).decode("utf-8", errors="replace") + f"… [{line.size} bytes, over the {cap}-byte line limit]"
        return StreamEvent(self.event_count, clock.time(), clock.monotonic(), None, None, None, text)

    async def _read_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        keep = self._stderr_keep
        while True:
            chunk = await proc.stderr.read(_READ_CHUNK)
            if not chunk:
                break
            self._stderr_bytes += len(chunk)
            self._stderr_tail += chunk
            if len(self._stderr_tail) > keep:
                del self._stderr_tail[: len(self._stderr_tail) - keep]

    async def _line(self, line: bytes) -> None:
        clock = self._clock
        if isinstance(line, TruncatedLine):
            ev = self._too_long(line)
        else:
            ev = parse_line(line, seq=self.event_count, ts=clock.time(), mono=clock.monotonic())
        mon = self.monitor
        mon.progress()
        etype = ev.type
        if etype == "stream_event":
            inner = ev.data.get("event") if ev.data is not None else None
            kind = inner.get("type") if isinstance(inner, dict) else None
            block = inner.get("content_block") if kind == "content_block_start" and isinstance(inner, dict) else None
            # a server-side tool (web search, code execution) runs inside the answer: silence there is work
            mon.answer_event(kind, pause=isinstance(block, dict) and block.get("type") == "server_tool_use")
            if self.spec.quiet_stream:
                return
        elif etype == "system" and ev.subtype == "status" and ev.data and ev.data.get("status") == _REQUESTING:
            mon.request_sent()
            if self.spec.quiet_stream:
                return
        else:
            mon.other_event(etype)
        self.event_count += 1
        if self.first_event_at is None:
            self.first_event_at = ev.ts
            self._open_gate()
        if ev.data is None:
            self.unparseable_count += 1
            self.type_counts["unparseable"] += 1
        else:
            key = ev.type or "?"
            if ev.subtype and ev.type in ("system", "result"):
                key = f"{key}/{ev.subtype}"
            self.type_counts[key] += 1
            sid = ev.session_id
            if ev.type == "system" and ev.subtype == "init":
                self._init = ev.data
                if sid:
                    self.session_id = sid
            elif ev.type == "result":
                self._result = ev.data
                self.result_at = ev.ts
                self.monitor.result_seen()
                if sid:
                    self.session_id = sid
        if ev.is_notable:
            self._notable.append(ev)
        self._tail.append(ev)
        if self._writer is not None:
            self._writer.add(ev)
        for q in self._subscribers:
            q.put_nowait(ev)
        if self._on_event is not None:
            try:
                r = self._on_event(ev)
                if inspect.isawaitable(r):
                    await r
            except Exception:  # a broken callback must not lose the run
                log.exception("on_event callback failed for event %d", ev.seq)

    async def _watchdog(self) -> None:
        tick = self.spec.liveness.tick
        while True:
            await self._clock.asleep(tick)
            if self.tracker is not None:
                self.tracker.sample()
            if self._kill is None:
                v = self.monitor.verdict()
                if v is not None:
                    self.request_kill(*v)
            if self._writer is not None:
                self._writer.maybe_flush()

    async def _drain_writer(self) -> None:
        """Store the last events (in a worker thread) before the outcome exists.

        Whoever records the outcome must find every event in the store.  A write
        that fails here (the lock held past the busy timeout) is retried once in
        :meth:`_close`, synchronously: better to stall the loop once than to lose
        the events.
        """
        if self._writer is None:
            return
        try:
            await self._writer.drain()
        except Exception:
            log.warning("could not store the last events of attempt pid=%s yet; retrying", self.pid, exc_info=True)

    def _collect_events(self) -> tuple[StreamEvent, ...]:
        seen: dict[int, StreamEvent] = {e.seq: e for e in self._notable}
        for e in self._tail:
            seen[e.seq] = e
        return tuple(seen[k] for k in sorted(seen))

    def _finish(self, proc: asyncio.subprocess.Process, report: TreeKillReport) -> AttemptOutcome:
        rc = proc.returncode
        exit_code: int | None = None
        sig: int | None = None
        if rc is not None:
            if rc < 0:
                sig = -rc
            else:
                exit_code = rc
        killed_by, kill_reason = self._kill if self._kill is not None else (None, None)
        out = AttemptOutcome(
            mode=self.spec.mode,
            argv=self.argv_display,
            cwd=os.fspath(self.spec.cwd),
            pid=proc.pid,
            start_time=self.start_time,
            requested_session_id=self.spec.session_id,
            session_id=self.session_id or self.spec.expected_session_id,
            exit_code=exit_code,
            signal=sig,
            killed_by=killed_by,
            kill_reason=kill_reason,
            started_at=self.started_at,
            ended_at=self._clock.time(),
            first_event_at=self.first_event_at,
            result_at=self.result_at,
            event_count=self.event_count,
            unparseable_count=self.unparseable_count,
            type_counts=dict(self.type_counts),
            events=self._collect_events(),
            init=self._init,
            result=self._result,
            stderr_tail=bytes(self._stderr_tail).decode("utf-8", errors="replace"),
            stderr_bytes=self._stderr_bytes,
            cleanup=report,
            job_id=self.spec.job_id,
            attempt_id=self.spec.attempt_id,
        )
        self.outcome = out  # before _close() wakes anyone waiting on done()
        self._close()
        jobs = self.manager.jobs
        if jobs is not None and self._recorded_start is not None:
            jobs.process_ended(proc.pid, self._recorded_start, out.ended_at)
        return out

    def _finish_spawn_error(self, e: OSError) -> AttemptOutcome:
        code = 126 if isinstance(e, PermissionError) else 127
        where = (
            "working directory"
            if isinstance(e, NotADirectoryError)
            or (isinstance(e, FileNotFoundError) and e.filename == os.fspath(self.spec.cwd))
            else "Claude Code CLI"
        )
        msg = f"cannot start the {where}: {e.strerror or e} ({e.filename or self.claude})"
        out = AttemptOutcome(
            mode=self.spec.mode,
            argv=self.argv_display,
            cwd=os.fspath(self.spec.cwd),
            pid=None,
            start_time=None,
            requested_session_id=self.spec.session_id,
            session_id=self.spec.expected_session_id,
            exit_code=code,
            signal=None,
            killed_by=self._kill[0] if self._kill else None,
            kill_reason=self._kill[1] if self._kill else None,
            started_at=self.started_at,
            ended_at=self._clock.time(),
            first_event_at=None,
            result_at=None,
            event_count=0,
            unparseable_count=0,
            type_counts={},
            events=(),
            init=None,
            result=None,
            stderr_tail="",
            stderr_bytes=0,
            spawn_error=msg,
            spawn_exception=type(e).__name__,
            job_id=self.spec.job_id,
            attempt_id=self.spec.attempt_id,
        )
        self.outcome = out
        self._close()
        return out

    def _close(self) -> None:
        if self._writer is not None:
            try:
                self._writer.flush()
            except Exception:
                log.exception("could not store the last events of attempt pid=%s", self.pid)
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
        for q in self._subscribers:
            q.put_nowait(_END)
        self._done.set()
        self.manager._unregister(self)


class _ExitAwareProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """asyncio's stream protocol plus an event set the moment the process exits (pipes may stay open)."""

    def __init__(self, exited: asyncio.Event, *, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self._exited_event = exited

    def process_exited(self) -> None:
        super().process_exited()
        self._exited_event.set()


class _AdoptedProcess:
    """An early-started CLI (a ``subprocess.Popen``) behind the surface of ``asyncio.subprocess.Process``.

    Its pipes are connected to the loop as asyncio streams, and a thread waits
    for its exit (as asyncio's own child watcher does), setting ``exited``.
    """

    stdin = None

    def __init__(self, popen: Any, exited: asyncio.Event, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self._popen = popen
        self.pid: int = popen.pid
        self.returncode: int | None = None
        self._exited = exited
        self._loop = loop
        self.stdout = asyncio.StreamReader(limit=limit, loop=loop)
        self.stderr = asyncio.StreamReader(limit=limit, loop=loop)

    def _on_exit(self, rc: int) -> None:
        self.returncode = rc
        self._exited.set()

    def _wait_thread(self) -> None:
        rc = self._popen.wait()
        with contextlib.suppress(RuntimeError):  # the loop closed first: nobody is waiting
            self._loop.call_soon_threadsafe(self._on_exit, rc)

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode


async def _adopt(
    pre: Prestarted, exited: asyncio.Event, loop: asyncio.AbstractEventLoop, *, limit: int
) -> asyncio.subprocess.Process:
    """Connect an early-started CLI to the loop; typed as the Process whose surface it offers."""
    import threading

    proc = _AdoptedProcess(pre.popen, exited, loop, limit)
    for reader, pipe in ((proc.stdout, pre.popen.stdout), (proc.stderr, pre.popen.stderr)):
        await loop.connect_read_pipe(functools.partial(asyncio.StreamReaderProtocol, reader, loop=loop), pipe)
    threading.Thread(target=proc._wait_thread, name=f"resurgo-wait-{proc.pid}", daemon=True).start()
    return proc  # type: ignore[return-value]


class ProcessManager:
    """Starts attempts and keeps the set of running ones (for health checks and shutdown).

    One per supervisor.  Creating it makes this process a child subreaper on
    Linux (``subreaper=False`` to opt out, e.g. when embedding in a program
    that manages its own children's orphans).
    """

    def __init__(
        self,
        *,
        claude: str | os.PathLike[str] | None = None,
        jobs: JobStore | None = None,
        clock: Clock = SYSTEM_CLOCK,
        subreaper: bool = True,
        tmp_root: str | os.PathLike[str] | None = None,
        event_tail: int = 100,
        stderr_tail_bytes: int = 16_384,
        owner: str | None = None,
        max_line_bytes: int | None = DEFAULT_MAX_LINE,
        prestarted: Sequence[Prestarted] = (),
        start_concurrency: int | None = None,
        start_hold: float = 5.0,
    ) -> None:
        if start_concurrency is not None and (
            isinstance(start_concurrency, bool) or not isinstance(start_concurrency, int) or start_concurrency < 1
        ):
            raise ValueError(f"start_concurrency must be an integer >= 1 or None, got {start_concurrency!r}")
        if not (isinstance(start_hold, int | float) and math.isfinite(start_hold) and start_hold > 0):
            raise ValueError(f"start_hold must be a finite number of seconds > 0, got {start_hold!r}")
        #: at most this many CLIs between their spawn and their first event (None: no limit).  A CLI's
        #: start is ~0.35 s of CPU: six started at once on two cores each printed their first event
        #: after 1.38 s on average, two at a time after 0.87 s (and the last of the six sooner too)
        self.start_gate = asyncio.Semaphore(start_concurrency) if start_concurrency is not None else None
        #: a CLI that has not spoken after this many seconds gives its start slot back anyway
        self.start_hold = float(start_hold)
        self._claude_arg = claude
        self._claude: str | None = None
        self.jobs = jobs
        self.clock = clock
        self.tmp_root = Path(tmp_root) if tmp_root else default_tmp_root()
        self.event_tail = event_tail
        self.stderr_tail_bytes = stderr_tail_bytes
        #: stdout lines longer than this are not buffered (kept as unparseable; None: no cap)
        self.max_line_bytes = max_line_bytes
        self.subreaper = become_subreaper() if subreaper else False
        self.shutting_down = False
        #: ``hook(spec) -> {name: value}`` added to each attempt's environment (after the job's own)
        self.env_hooks: list[Callable[[AttemptSpec], Mapping[str, str]]] = []
        self.owner = owner or (jobs.owner if jobs is not None else _default_owner())
        self._active: dict[int, Attempt] = {}
        self._pending: set[Attempt] = set()
        #: CLIs started early (``resurgo run``), by session id, until their attempt adopts them
        self._prestarted: dict[str, Prestarted] = {p.session_id: p for p in prestarted}
        #: idle CLIs booted ahead of a resume, by session id (:meth:`prepare_standby`)
        self._standby: dict[str, Prestarted] = {}
        self._dropping: set[Prestarted] = set()
        self.standby_stats: Counter[str] = Counter()
        #: why standbys were turned off (they died unadopted: a CLI that does not wait on stdin), or None
        self.standby_broken: str | None = None
        self._standby_spawned = -math.inf

    def offer_prestarted(self, pre: Prestarted) -> None:
        """Hold an early-started CLI for the attempt of its session (``resurgo run``; see resurgo._launch)."""
        self._prestarted[pre.session_id] = pre

    def has_prestarted(self, session_id: str | None) -> bool:
        """Whether a CLI was started early for this session (its attempt must launch it the same way)."""
        return session_id is not None and session_id in self._prestarted

    def take_prestarted(self, session_id: str | None) -> Prestarted | None:
        """The early-started CLI for this session, handed over once (the caller adopts or discards it)."""
        if session_id is None or not self._prestarted:
            return None
        return self._prestarted.pop(session_id, None)

    def discard_prestarted(self) -> None:
        """End every early-started CLI that no attempt adopted (shutdown, or the job never started)."""
        while self._prestarted:
            _, pre = self._prestarted.popitem()
            pre.discard()

    # -- standbys: a CLI booted ahead of a resume ---------------------------------------------------------
    def attempt_env(self, spec: AttemptSpec, token: str, tmpdir: str | None) -> dict[str, str]:
        """The whole environment of an attempt (or of a standby for it): the job's, its hooks', our markers."""
        env = attempt_env(spec.env, token=token, owner=self.owner, tmpdir=tmpdir, inherit=spec.inherit_env)
        for hook in self.env_hooks:  # e.g. the trace context of this attempt (resurgo.otel)
            env.update(hook(spec))
        return env

    def prepare_standby(self, spec: AttemptSpec) -> bool:
        """Boot an idle CLI now for a later ``resume`` of ``spec``'s session; True if one is ready or booting.

        Restarting a killed CLI costs its boot, ~0.4 s on the machines we
        measured, most of the whole recovery: a standby has booted already and
        only waits for its prompt on stdin (it reads the session once the
        prompt comes, so the work done meanwhile is not lost; see
        :func:`resurgo._launch.spawn_early`).  The attempt that resumes this
        session adopts it when its command line, folder and environment are
        exactly the standby's (:meth:`Attempt._standby`); its prompt then
        reaches the CLI in ~0.1 s.  The cost: one idle CLI (~150 MB resident)
        per standby and its boot's CPU, so the supervisor keeps them only for
        running jobs while restarts are frequent (``SupervisorConfig.standby``).
        """
        if (self.shutting_down or self.standby_broken or spec.mode != "resume" or spec.command is not None
                or not spec.session_id):
            return False
        old = self._standby.get(spec.session_id)
        if old is not None:
            if old.alive:
                return True
            self.standby_died(self._standby.pop(spec.session_id))
            self.drop(old)
            if self.standby_broken:
                return False
        argv, _ = cli_argv(self.claude, prompt=None, mode="resume", session_id=spec.session_id, model=spec.model,
                           claude_args=spec.claude_args)
        token = uuid.uuid4().hex
        try:
            tmpdir = make_tmpdir(self.tmp_root) if spec.private_tmp else None
        except OSError:  # the attempt itself will report an unsafe temp folder
            return False
        pre = spawn_early(argv, cwd=os.fspath(spec.cwd), env=self.attempt_env(spec, token, tmpdir),
                          session_id=spec.session_id, token=token, owner=self.owner, tmpdir=tmpdir, standby=True)
        if pre is None:
            return False
        self._standby[spec.session_id] = pre
        self._standby_spawned = self.clock.monotonic()
        self.standby_stats["started"] += 1
        return True

    def standby_died(self, pre: Prestarted) -> None:
        """A standby ended while it waited.  Three in a row, none ever adopted: standbys are off for good.

        A CLI version that does not wait for its prompt on stdin would make every
        standby a boot's CPU spent for nothing; say so once and stop.
        """
        self.standby_stats["died"] += 1
        if self.standby_stats["died"] >= 3 and not self.standby_stats["adopted"] and not self.standby_broken:
            err = b""
            with contextlib.suppress(OSError, ValueError):
                if pre.popen.stderr is not None:
                    err = pre.popen.stderr.read(2000)
            self.standby_broken = (f"{self.standby_stats['died']} standby CLIs ended before their prompt came "
                                   f"(last said: {redact_text(err.decode(errors='replace').strip()[:300])!r})")
            log.warning("standby CLIs are off: %s", self.standby_broken)

    def take_standby(self, session_id: str | None) -> Prestarted | None:
        """The standby for this session, handed over once (the caller adopts it or :meth:`drop` s it)."""
        if session_id is None or not self._standby:
            return None
        return self._standby.pop(session_id, None)

    def has_standby(self, session_id: str | None) -> bool:
        return session_id is not None and session_id in self._standby

    @property
    def quiet(self) -> bool:
        """No CLI is booting now: no attempt between its spawn and its first event, no standby booting.

        A standby's boot is ~0.35 s of CPU; booted beside an attempt's CLI it
        slows the start a job is waiting for.
        """
        if any(a.first_event_at is None and a.outcome is None for a in self._pending):
            return False
        return self.clock.monotonic() - self._standby_spawned >= _STANDBY_BOOT

    @property
    def standbys(self) -> int:
        """Standbys held now (booting or idle)."""
        return len(self._standby)

    @property
    def standby_tmpdirs(self) -> set[str]:
        """The private temp folders of the standbys held now (in use: not leaked)."""
        return {p.tmpdir for p in self._standby.values() if p.tmpdir is not None}

    def discard_standby(self, session_id: str | None) -> None:
        """End this session's standby, if any (the job ended, or its next run will not resume it)."""
        pre = self.take_standby(session_id)
        if pre is not None:
            self.drop(pre)

    def drop(self, pre: Prestarted) -> None:
        """End an unadopted standby: SIGKILL its group now; reap it and remove its temp folder off the loop."""
        if pre.adopted:
            return
        self.standby_stats["discarded"] += 1
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pre.popen.pid, _signal.SIGKILL)
        self._dropping.add(pre)
        t = threading.Thread(target=self._reap, args=(pre,), name=f"resurgo-standby-{pre.pid}", daemon=True)
        t.start()

    def _reap(self, pre: Prestarted) -> None:
        try:
            pre.discard()
        finally:
            self._dropping.discard(pre)

    def _end_standbys(self) -> None:
        """Every standby ended and reaped, and its temp folder removed (shutdown)."""
        while self._standby:
            _, pre = self._standby.popitem()
            pre.discard()
        for pre in list(self._dropping):
            pre.popen.wait()  # SIGKILLed already: only its reaping thread may not have run yet

    @property
    def claude(self) -> str:
        """The CLI's path, resolved on first use (raises :class:`ClaudeNotFoundError`)."""
        if self._claude is None:
            self._claude = find_claude(self._claude_arg)
        return self._claude

    @property
    def active(self) -> list[Attempt]:
        """Attempts whose process is running now."""
        return list(self._active.values())

    @property
    def pending(self) -> list[Attempt]:
        """Attempts started but not finished (including those still spawning)."""
        return list(self._pending)

    @property
    def leaders(self) -> set[int]:
        """Pids of the CLIs this manager runs now: asyncio's child watcher owns their exit status."""
        early = {p.pid for p in (*self._prestarted.values(), *self._standby.values(), *self._dropping)}
        return {a.pid for a in self._pending if a.pid is not None} | set(self._active) | early

    def _register(self, a: Attempt) -> None:
        if a.pid is not None:
            self._active[a.pid] = a

    def _unregister(self, a: Attempt) -> None:
        if a.pid is not None:
            self._active.pop(a.pid, None)
        self._pending.discard(a)

    async def start(self, spec: AttemptSpec, *, on_event: EventCallback | None = None) -> Attempt:
        """Spawn the attempt and return at once; await :meth:`Attempt.wait` for the outcome."""
        if self.shutting_down:
            raise RuntimeError("the process manager is shutting down")
        spec = spec.with_session()
        writer = None
        if self.jobs is not None and spec.job_id is not None:
            # events are written off the loop: a store locked by another process must
            # not freeze the reading and watchdogs of every attempt
            writer = self.jobs.event_writer(spec.job_id, spec.attempt_id, background=True)
        claude = spec.command[0] if spec.command is not None else self.claude
        a = Attempt(self, spec, claude, on_event=on_event, writer=writer, tail=self.event_tail)
        self._pending.add(a)
        a._task = asyncio.get_running_loop().create_task(a._run(), name=f"resurgo-attempt-{spec.session_id}")
        return a

    async def run(self, spec: AttemptSpec, *, on_event: EventCallback | None = None) -> AttemptOutcome:
        """Start and wait; cancelling the caller ends the process group (``killed_by="user"``)."""
        a = await self.start(spec, on_event=on_event)
        return await a.wait()

    async def shutdown(self, *, reason: str = "supervisor shutting down") -> list[AttemptOutcome]:
        """End every running attempt with ``killed_by="shutdown"``; returns their outcomes."""
        self.shutting_down = True
        self.discard_prestarted()
        await asyncio.to_thread(self._end_standbys)
        attempts = list(self._pending | set(self._active.values()))
        return list(await asyncio.gather(*(a.stop("shutdown", reason) for a in attempts)))


def _default_owner() -> str:
    return owner_id()


async def run_attempt(
    spec: AttemptSpec,
    *,
    manager: ProcessManager | None = None,
    on_event: EventCallback | None = None,
    claude: str | os.PathLike[str] | None = None,
) -> AttemptOutcome:
    """Run one attempt to its end with a throw-away manager (or ``manager``)."""
    mgr = manager or ProcessManager(claude=claude)
    return await mgr.run(spec, on_event=on_event)


__all__ = [
    "ARGV_PROMPT_LIMIT",
    "ATTEMPT_ENV",
    "DEFAULT_MAX_LINE",
    "OWNER_ENV",
    "Attempt",
    "AttemptOutcome",
    "AttemptSpec",
    "ClaudeNotFoundError",
    "EventCallback",
    "KilledBy",
    "LineSplitter",
    "Liveness",
    "LivenessMonitor",
    "Mode",
    "ProcessManager",
    "StreamEvent",
    "TruncatedLine",
    "find_claude",
    "parse_line",
    "run_attempt",
]
