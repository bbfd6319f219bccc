"""Process mechanics shared by every part of resurgo that starts the Claude Code CLI.

Generic on purpose (nothing here knows about Claude), so the supervisor
(:mod:`resurgo.supervise`), the SDK wrappers (:mod:`resurgo.sdk`), the test
harness and the corpus script reuse one implementation.  The CLI starts each
Bash tool in a session of its own (``setsid``), so killing the CLI's process
group is not enough: the tool's ``bash`` and its children survive, re-parented.

Finding a run's processes: ``psutil.Process.children(recursive=True)`` misses
grandchildren whose parent already died (they are reparented), and a CLI killed
while its Bash tool runs leaves exactly such orphans.  So a run's processes are
identified by the *session* the CLI was started in (``start_new_session`` makes
the CLI a session and group leader; descendants inherit both ids and keep them
after reparenting), by an *environment marker* every descendant inherits
(:func:`env_marked`, :func:`marked_tree`), plus any descendant seen while it
ran (:class:`TreeTracker`); a child subreaper gets the orphans reparented to
*us* so we can reap them.

Reaping needs care: asyncio's child watcher on 3.11 (``ThreadedChildWatcher``,
``PidfdChildWatcher``) waits on the specific pids it started.  A blanket
``os.waitpid(-1, WNOHANG)`` could steal the CLI's exit status (asyncio would then
report 255 and log "Unknown child process").  So we only ever ``waitpid`` a
*specific* pid that is our child, belongs to a session we manage, and is not the
session leader (the leader is the process asyncio started and watches).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from resurgo.clock import SYSTEM_CLOCK, Clock


def kill_processes_in(root: Path) -> list[int]:
    """SIGKILL every process whose working directory is ``root`` or below it; their pids.

    The calling process is spared even when it runs there.  Processes that
    vanish or cannot be inspected meanwhile are skipped.
    """
    killed: list[int] = []
    prefix = str(root.resolve())
    for p in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error):
            cwd = p.cwd()
            if (cwd == prefix or cwd.startswith(prefix + os.sep)) and p.pid != os.getpid():
                p.kill()
                killed.append(p.pid)
    return killed


@contextlib.contextmanager
def session(
    cmd: Sequence[str], env: dict[str, str], cwd: Path, *, reap_timeout: float = 10.0
) -> Iterator[subprocess.Popen[str]]:
    """Start ``cmd`` (an argv list, never a shell) in a new session with piped text output.

    On exit, even on an error, the whole process group is SIGKILLed, its
    output drained (for at most ``reap_timeout`` seconds, default 10), and
    every process left under ``cwd`` killed (Bash tools in their own sessions).
    """
    proc = subprocess.Popen(  # noqa: S603 - argv list, no shell
        list(cmd),
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired, ValueError):
            proc.communicate(timeout=reap_timeout)
        kill_processes_in(cwd)



PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37

_subreaper_lock = threading.Lock()
_subreaper_state: bool | None = None


def become_subreaper() -> bool:
    """Make this process a child subreaper (Linux); True when it is one.

    Idempotent and process-wide.  Orphaned descendants of *any* child of this
    process are then reparented here instead of to PID 1 (which, in containers,
    may never reap them), so zombies do not pile up and a run's leftovers stay
    findable among our own children.
    """
    global _subreaper_state
    with _subreaper_lock:
        if _subreaper_state is not None:
            return _subreaper_state
        ok = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
                ok = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
            except (OSError, AttributeError):
                ok = False
        _subreaper_state = ok
        return ok


def is_subreaper() -> bool:
    """Ask the kernel (not our cache) whether this process is a child subreaper."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        val = ctypes.c_int(0)
        if libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(val), 0, 0, 0) != 0:
            return False
        return val.value != 0
    except (OSError, AttributeError):
        return False


@dataclass(frozen=True, slots=True)
class ProcIds:
    """The ids of one process as the kernel reports them (``/proc/<pid>/stat``)."""

    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str  # 'R', 'S', 'Z', ...

    @property
    def zombie(self) -> bool:
        return self.state in ("Z", "X")


def proc_ids(pid: int) -> ProcIds | None:
    """Read pid/ppid/pgid/sid/state without psutil's overhead; None when the pid is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return _proc_ids_portable(pid)
    # the command name is in parentheses and may itself contain ') ', so split at the last one
    rest = raw[raw.rfind(b")") + 2 :].split()
    try:
        return ProcIds(pid, int(rest[1]), int(rest[2]), int(rest[3]), rest[0].decode())
    except (IndexError, ValueError):
        return None


def _proc_ids_portable(pid: int) -> ProcIds | None:
    if os.path.isdir("/proc"):
        return None  # Linux and the stat file is gone: the process is gone
    try:
        p = psutil.Process(pid)
        return ProcIds(pid, p.ppid(), os.getpgid(pid), os.getsid(pid), _short_status(p.status()))
    except (psutil.Error, OSError):
        return None


def _short_status(status: str) -> str:
    return "Z" if status == psutil.STATUS_ZOMBIE else "S"


def _all_pids() -> Iterator[int]:
    if os.path.isdir("/proc"):
        for name in os.listdir("/proc"):
            if name.isdigit():
                yield int(name)
    else:  # pragma: no cover - non-Linux
        yield from psutil.pids()


def create_time(pid: int) -> float | None:
    """psutil's start time of ``pid`` (what tells a reused pid apart), or None when gone."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def same_process(pid: int, start_time: float, *, tolerance: float = 0.05) -> bool:
    """True when ``pid`` is still the process that was recorded with ``start_time``."""
    ct = create_time(pid)
    return ct is not None and abs(ct - start_time) <= tolerance


def session_members(
    sids: Collection[int], *, exclude: Collection[int] = (), include_zombies: bool = True
) -> list[ProcIds]:
    """Every process whose session or process group is one of ``sids``.

    Matching the group as well as the session covers a child that left the
    group but not the session.  A child that called ``setsid`` leaves both;
    that is why :class:`TreeTracker` also remembers descendants by pid and
    start time.
    """
    wanted = set(sids)
    me = os.getpid()
    out: list[ProcIds] = []
    if not wanted:
        return out
    for pid in _all_pids():
        if pid == me or pid in exclude:
            continue
        ids = proc_ids(pid)
        if ids is None:
            continue
        if (ids.sid in wanted or ids.pgid in wanted) and (include_zombies or not ids.zombie):
            out.append(ids)
    return out


def our_children() -> list[ProcIds]:
    """Direct children of this process (including reparented orphans when we are a subreaper)."""
    me = os.getpid()
    out: list[ProcIds] = []
    # /proc/<me>/task/*/children is cheapest, but only with CONFIG_PROC_CHILDREN; scan instead.
    for pid in _all_pids():
        ids = proc_ids(pid)
        if ids is not None and ids.ppid == me:
            out.append(ids)
    return out


def reap_orphans(
    sids: Collection[int], *, watched: Collection[int] = (), pids: Collection[int] = ()
) -> list[tuple[int, int]]:
    """Reap zombie children of ours that belong to ``sids`` (or are in ``pids``).

    Returns ``(pid, raw wait status)`` for each reaped process.  Never touches a
    pid in ``watched`` (the CLI itself, whose status belongs to asyncio's child
    watcher).  Being our child *and* in a run's sessions means it is an orphan
    reparented to us by the subreaper: nobody else waits for it.
    """
    wanted = set(sids)
    extra = set(pids)
    reaped: list[tuple[int, int]] = []
    for ids in our_children():
        if ids.pid in watched or not ids.zombie:
            continue
        if ids.sid not in wanted and ids.pgid not in wanted and ids.pid not in extra:
            continue
        try:
            pid, status = os.waitpid(ids.pid, os.WNOHANG)
        except ChildProcessError:
            continue
        if pid:
            reaped.append((pid, status))
    return reaped


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid``, cheaply: ``/proc/<pid>/task/*/children`` when the kernel has it.

    Reading only the tree we care about costs microseconds, so the watchdog can
    sample every tick; psutil's ``children()`` scans all of ``/proc``.
    """
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        tasks = []
    out: list[int] = []
    ok = False
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                out.extend(int(x) for x in f.read().split())
            ok = True
        except (OSError, ValueError):
            continue
    if ok:
        return out
    try:
        return [c.pid for c in psutil.Process(pid).children()]
    except psutil.Error:
        return []


def descendants(pid: int) -> list[int]:
    """All living descendants of ``pid`` (breadth first), while they are still linked to it."""
    out: list[int] = []
    todo = [pid]
    seen = {pid}
    while todo:
        cur = todo.pop()
        for c in children_of(cur):
            if c not in seen:
                seen.add(c)
                out.append(c)
                todo.append(c)
    return out


def env_marked(name: str, value: str) -> list[int]:
    """Pids whose environment contains ``name=value`` (same user only; others are unreadable).

    Every process a run starts inherits the marker resurgo puts into the CLI's
    environment, whatever session or parent it ends up with, so this finds
    leftovers that escaped by ``setsid`` (the CLI starts its Bash tool that
    way) and were reparented before we ever saw them, even after a supervisor crash.
    """
    needle = f"{name}={value}".encode()
    me = os.getpid()
    out: list[int] = []
    if not os.path.isdir("/proc"):
        return out  # pragma: no cover - non-Linux
    for pid in _all_pids():
        if pid == me:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                data = f.read()
        except OSError:
            continue
        if needle in data.split(b"\0"):
            out.append(pid)
    return out


def env_values(name: str) -> dict[int, str]:
    """``{pid: value}`` of environment variable ``name`` for every readable process that has it."""
    prefix = f"{name}=".encode()
    me = os.getpid()
    out: dict[int, str] = {}
    if not os.path.isdir("/proc"):
        return out  # pragma: no cover - non-Linux
    for pid in _all_pids():
        if pid == me:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                data = f.read()
        except OSError:
            continue
        if prefix not in data:
            continue
        for item in data.split(b"\0"):
            if item.startswith(prefix):
                out[pid] = item[len(prefix) :].decode("utf-8", errors="replace")
                break
    return out


def marked_tree(name: str, value: str) -> dict[int, float]:
    """``{pid: start time}`` of every process marked ``name=value`` and of their descendants.

    The marker finds the CLI and everything that inherited its environment;
    the descendants add what did not (a tool that ran ``env -i``), as long as
    they are still linked to a marked parent.  Start times let the caller
    signal them later without hitting a reused pid.  Our own process is never
    included.
    """
    out: dict[int, float] = {}
    me = os.getpid()
    for pid in env_marked(name, value):
        for p in (pid, *descendants(pid)):
            if p == me or p in out:
                continue
            ct = create_time(p)
            if ct is not None:
                out[p] = ct
    return out


@dataclass(slots=True)
class TreeTracker:
    """Remembers the descendants of a run as it goes, by pid *and* start time, and their sessions.

    The CLI starts its Bash tool with ``setsid`` (observed with 2.1.197: the
    tool's ``bash`` leads its own session), so the CLI's session id does not
    find it; and once the CLI died its children are reparented.  Sampling the
    tree while the CLI lives (every watchdog tick, and right before we signal
    it) keeps a handle on them; start times guard against a reused pid.
    """

    leader_pid: int
    seen: dict[int, float] = field(default_factory=dict)
    sids: set[int] = field(default_factory=set)

    def sample(self) -> None:
        for pid in descendants(self.leader_pid):
            if pid in self.seen:
                continue
            ct = create_time(pid)
            ids = proc_ids(pid)
            if ct is None or ids is None:
                continue
            self.seen[pid] = ct
            if ids.sid != self.leader_pid:
                self.sids.add(ids.sid)
            if ids.pgid != self.leader_pid:
                self.sids.add(ids.pgid)

    def still_alive(self) -> list[int]:
        return [pid for pid, ct in self.seen.items() if same_process(pid, ct)]

    def alive_map(self) -> dict[int, float]:
        """``{pid: start time}`` of the descendants still alive: what :func:`end_tree` may signal."""
        return {pid: ct for pid, ct in self.seen.items() if same_process(pid, ct)}

    def sid_starts(self) -> dict[int, float]:
        """``{session or group id: start time of its leader}`` for the remembered ids whose leader we saw.

        A session id is a pid; once its leader and members are gone the kernel
        may hand it to an unrelated program.  The leader's start time is what
        tells the remembered session from a new one with the same number.
        """
        return {sid: self.seen[sid] for sid in self.sids if sid in self.seen}


@dataclass(frozen=True, slots=True)
class TreeKillReport:
    """What ending a process tree took: how many needed SIGTERM, SIGKILL, and what is left."""

    terminated: tuple[int, ...] = ()
    killed: tuple[int, ...] = ()
    reaped: tuple[int, ...] = ()
    #: non-zombie processes still present after SIGKILL (should always be empty)
    left: tuple[int, ...] = ()
    #: zombies whose parent is not us: dead, but only their parent can reap them
    foreign_zombies: tuple[int, ...] = ()


def _signal_pid(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return False


def _reused_ids(sid_starts: Mapping[int, float]) -> set[int]:
    """Remembered session/group ids now led by another process (the number was reused)."""
    out = set()
    for sid, ct in sid_starts.items():
        now = create_time(sid)
        if now is not None and abs(now - ct) > 0.05:
            out.add(sid)
    return out


def _living(
    sids: Collection[int], extra: Iterable[int], *, not_before: float | None, started: Mapping[int, float],
    sid_starts: Mapping[int, float] | None = None,
) -> list[int]:
    """Non-zombie pids of the sessions plus tracked extras still alive (and still the same process)."""
    pids: set[int] = set()
    reused = _reused_ids(sid_starts) if sid_starts else set()
    for ids in session_members(set(sids) - reused, include_zombies=False):
        if not_before is not None:
            ct = create_time(ids.pid)
            if ct is None or ct + 0.05 < not_before:
                continue  # older than the run: not ours (a reused session id)
        pids.add(ids.pid)
    for pid in extra:
        found = proc_ids(pid)
        if found is not None and not found.zombie:
            ct = started.get(pid)
            if ct is not None and not same_process(pid, ct):
                continue  # died, and its pid went to another program
            pids.add(pid)
    return sorted(pids)


async def end_tree(
    sids: Collection[int],
    *,
    extra: Iterable[int] | Mapping[int, float] = (),
    leader: int | None = None,
    leader_running: bool = False,
    grace: float = 3.0,
    not_before: float | None = None,
    sid_starts: Mapping[int, float] | None = None,
    clock: Clock = SYSTEM_CLOCK,
    poll: float = 0.02,
) -> TreeKillReport:
    """SIGTERM every process of ``sids`` (and ``extra``), wait ``grace``, SIGKILL the rest.

    ``leader_running`` says the session leader has not been reaped yet, so its
    process-group id is certainly still ours and ``killpg`` is safe; once it is
    reaped we signal members one by one (a group id is only reserved while a
    member lives).  ``not_before`` (the leader's start time) excludes processes
    older than the run.  Zombie children of ours in these sessions are reaped.
    ``extra`` given as ``{pid: start time}`` (:func:`marked_tree`) is matched by
    pid *and* start time, so a pid reused while we wait is never signalled.
    ``sid_starts`` (``{session id: its leader's start time}``,
    :meth:`TreeTracker.sid_starts`) drops a remembered session whose number
    now belongs to a new leader; every pass of the grace loop rechecks both.
    """
    started: Mapping[int, float] = extra if isinstance(extra, Mapping) else {}
    extra = list(extra)
    terminated: list[int] = []
    killed: list[int] = []
    reaped: list[int] = []
    watched = {leader} if leader is not None else set()

    if leader is not None and leader_running:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(leader, signal.SIGTERM)
    for pid in _living(sids, extra, not_before=not_before, started=started, sid_starts=sid_starts):
        if _signal_pid(pid, signal.SIGTERM):
            terminated.append(pid)

    deadline = clock.monotonic() + max(0.0, grace)
    while True:
        reaped.extend(p for p, _ in reap_orphans(sids, watched=watched, pids=extra))
        alive = _living(sids, extra, not_before=not_before, started=started, sid_starts=sid_starts)
        if not alive or clock.monotonic() >= deadline:
            break
        await clock.asleep(poll)

    alive = _living(sids, extra, not_before=not_before, started=started, sid_starts=sid_starts)
    if alive:
        if leader is not None and leader_running:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(leader, signal.SIGKILL)
        for pid in alive:
            if _signal_pid(pid, signal.SIGKILL):
                killed.append(pid)
        # SIGKILL cannot be ignored; give the kernel a moment to tear them down
        end = clock.monotonic() + 2.0
        while clock.monotonic() < end:
            reaped.extend(p for p, _ in reap_orphans(sids, watched=watched, pids=extra))
            if not _living(sids, extra, not_before=not_before, started=started, sid_starts=sid_starts):
                break
            await clock.asleep(poll)

    reaped.extend(p for p, _ in reap_orphans(sids, watched=watched, pids=extra))
    left = _living(sids, extra, not_before=not_before, started=started, sid_starts=sid_starts)
    me = os.getpid()
    foreign = [ids.pid for ids in session_members(sids) if ids.zombie and ids.ppid != me and ids.pid not in watched]
    return TreeKillReport(
        terminated=tuple(terminated),
        killed=tuple(killed),
        reaped=tuple(reaped),
        left=tuple(left),
        foreign_zombies=tuple(foreign),
    )


__all__ = [
    "ProcIds",
    "TreeKillReport",
    "TreeTracker",
    "become_subreaper",
    "children_of",
    "create_time",
    "descendants",
    "end_tree",
    "env_marked",
    "env_values",
    "is_subreaper",
    "kill_processes_in",
    "marked_tree",
    "our_children",
    "proc_ids",
    "reap_orphans",
    "same_process",
    "session",
    "session_members",
]
