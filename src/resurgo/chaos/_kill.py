"""Random process kills, confined to the process trees a chaos run owns.

The supervisor's promise is that a CLI run, or one of the tools it spawned,
can die at any moment and the job still finishes.  This killer makes those
deaths happen on a seeded schedule.  Its one hard rule is *containment*: a
victim must be a descendant of one of the given root pids or a member of one
of the given process groups at the moment of the kill, and never the calling
process, its ancestors, or pid 1.  Anything else would make a chaos run a
danger to the machine it runs on.

Roots can be a callable, because the interesting processes (the CLI runs)
come and go during the run and the supervisor itself may be restarted.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Self

import psutil

from resurgo._lifecycle import StartStop
from resurgo.chaos._faults import FaultLog
from resurgo.clock import SYSTEM_CLOCK, Clock

Roots = Iterable[int] | Callable[[], Iterable[int]]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A process the killer may pick, with where it sits in the tree.

    ``depth`` is 0 for a root itself, 1 for its children (the CLI runs when the
    root is the supervisor), 2 for grandchildren (their tools), and so on;
    members found only through a process group get depth -1.
    """

    pid: int
    name: str
    depth: int
    root: int
    create_time: float


@dataclass(frozen=True, slots=True)
class KillRecord:
    """What was killed, when and how: the ground truth for recovery metrics."""

    pid: int
    name: str
    time: float
    signal: str
    depth: int
    root: int
    ok: bool
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _signal(sig: int | str | signal.Signals) -> signal.Signals:
    if isinstance(sig, signal.Signals):
        return sig
    if isinstance(sig, str):
        name = sig.upper()
        if not name.startswith("SIG"):
            name = "SIG" + name
        try:
            return signal.Signals[name]
        except KeyError:
            raise ValueError(f"unknown signal {sig!r}") from None
    try:
        return signal.Signals(sig)
    except ValueError:
        raise ValueError(f"unknown signal {sig!r}") from None


def _dead(proc: psutil.Process) -> bool:
    """A zombie is already dead: "killing" it again would count a kill that did nothing."""
    return proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)


def _protected() -> set[int]:
    """Our own process and its ancestors: never victims, whatever the roots say."""
    pids = {0, 1, os.getpid()}
    with contextlib.suppress(psutil.Error):
        for p in psutil.Process().parents():
            pids.add(p.pid)
    return pids


class ProcessKiller(StartStop):
    """Sends random fatal signals to processes under the given roots.

    Args:
        roots: pids whose descendants are fair game, or a callable returning
            them (re-evaluated before each kill, as CLI runs come and go).
        pgids: process groups whose members are fair game as well.
        include_roots: whether the roots themselves may be killed (default
            False: the usual root is the supervisor, which a separate fault
            restarts on purpose).
        signals: chosen at random per kill (default SIGKILL only).
        interval: seconds between kills in :meth:`run` / :meth:`start`.
        jitter: up to this many extra seconds added to each interval at random.
        max_kills: stop after this many kills (None: no bound but ``duration``);
            without a ``duration`` the schedule also ends after ``10 * max_kills
            + 10`` ticks, so an emptied tree cannot keep it running.
        duration: stop after this many seconds (None: no bound but ``max_kills``).
        match: optional filter on a :class:`Candidate` (e.g. only ``claude``
            runs, only depth 2 for tool children).
        seed: seeds victim, signal and jitter choice, so a run can be replayed.
        fault_log: shared :class:`FaultLog`; each kill is recorded as a point fault.
        clock: where kill times come from.

    :meth:`run` blocks; :meth:`start` runs it in a daemon thread, stopped by
    :meth:`stop` or the context manager.  At least one of ``max_kills`` and
    ``duration`` must be given, so a forgotten killer cannot run forever.
    """

    def __init__(
        self,
        roots: Roots = (),
        *,
        pgids: Iterable[int] = (),
        include_roots: bool = False,
        signals: Sequence[int | str | signal.Signals] = (signal.SIGKILL,),
        interval: float = 1.0,
        jitter: float = 0.0,
        max_kills: int | None = None,
        duration: float | None = None,
        match: Callable[[Candidate], bool] | None = None,
        seed: int | None = None,
        fault_log: FaultLog | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not signals:
            raise ValueError("signals must name at least one signal")
        if interval <= 0 or jitter < 0:
            raise ValueError("interval must be > 0 and jitter >= 0")
        if max_kills is not None and max_kills < 0:
            raise ValueError("max_kills must be >= 0")
        if duration is not None and duration <= 0:
            raise ValueError("duration must be > 0")
        if max_kills is None and duration is None:
            raise ValueError("give max_kills or duration: a chaos killer must be bounded")
        self._roots_fn: Callable[[], Iterable[int]]
        if callable(roots):
            self._roots_fn = roots
        else:
            fixed = tuple(int(r) for r in roots)
            self._roots_fn = lambda: fixed
        self._pgids = tuple(int(g) for g in pgids)
        if any(g <= 1 for g in self._pgids):
            raise ValueError("process group ids must be > 1")
        if self._pgids and os.getpgid(0) in self._pgids:
            raise ValueError("refusing to target our own process group: the killer would shoot its caller")
        self.include_roots = include_roots
        self.signals = tuple(_signal(s) for s in signals)
        self.interval = float(interval)
        self.jitter = float(jitter)
        self.max_kills = max_kills
        self.duration = duration
        self._match = match
        self._rng = random.Random(seed)
        self._log = fault_log
        self._clock = clock
        self._lock = threading.Lock()
        self._records: list[KillRecord] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ selection

    def candidates(self) -> list[Candidate]:
        """Every process that may be killed right now, in pid order."""
        protected = _protected()
        found: dict[int, Candidate] = {}
        for root in self._roots_fn():
            root = int(root)
            try:
                rp = psutil.Process(root)
                if self.include_roots and root not in protected and not _dead(rp):
                    found[root] = Candidate(root, rp.name(), 0, root, rp.create_time())
                for child in rp.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        if child.pid in protected or child.pid in found or _dead(child):
                            continue
                        depth = self._depth(child, root)
                        found[child.pid] = Candidate(child.pid, child.name(), depth, root, child.create_time())
            except psutil.Error:
                continue
        if self._pgids:
            for p in psutil.process_iter(["pid", "name", "create_time"]):
                with contextlib.suppress(psutil.Error, OSError):
                    if p.pid in protected or p.pid in found or _dead(p):
                        continue
                    if os.getpgid(p.pid) in self._pgids:
                        found[p.pid] = Candidate(
                            p.pid, p.info["name"] or "", -1, os.getpgid(p.pid), p.info["create_time"]
                        )
        out = sorted(found.values(), key=lambda c: c.pid)
        if self._match is not None:
            out = [c for c in out if self._match(c)]
        return out

    @staticmethod
    def _depth(proc: psutil.Process, root: int) -> int:
        depth = 1
        for parent in proc.parents():
            if parent.pid == root:
                return depth
            depth += 1
        return depth

    def _still_contained(self, c: Candidate) -> psutil.Process | None:
        """Re-check right before the signal, so pid reuse or reparenting cannot widen the blast."""
        try:
            proc = psutil.Process(c.pid)
            if proc.create_time() != c.create_time or proc.pid in _protected() or _dead(proc):
                return None
            if c.depth == -1:
                return proc if os.getpgid(proc.pid) in self._pgids else None
            if c.depth == 0:
                return proc if self.include_roots and proc.pid in set(self._roots_fn()) else None
            if c.root in (p.pid for p in proc.parents()):
                return proc
        except (psutil.Error, OSError):
            return None
        return None

    # ------------------------------------------------------------------ killing

    def kill_one(self) -> KillRecord | None:
        """Kill one random candidate now; None when there is nobody to kill."""
        cands = self.candidates()
        if not cands:
            return None
        with self._lock:
            victim = self._rng.choice(cands)
            sig = self._rng.choice(self.signals)
        proc = self._still_contained(victim)
        now = self._clock.time()
        error = "no longer under the roots"
        if proc is not None:
            try:
                proc.send_signal(sig)
                error = ""
            except psutil.Error as e:
                error = type(e).__name__
        rec = KillRecord(victim.pid, victim.name, now, sig.name, victim.depth, victim.root, ok=not error, error=error)
        with self._lock:
            self._records.append(rec)
        if rec.ok and self._log is not None:
            self._log.instant(
                f"kill:{sig.name}",
                f"pid {rec.pid} ({rec.name})",
                detail=f"depth={rec.depth} root={rec.root}",
                at=now,
            )
        return rec

    def run(self) -> list[KillRecord]:
        """Kill on the schedule until a bound is reached or :meth:`stop` is called."""
        self._stop.clear()
        started = self._clock.monotonic()
        kills = 0
        ticks = 0
        # Without a duration, ticks that find nobody to kill must still end the
        # schedule, or an emptied tree would keep the thread alive forever.
        max_ticks = None if self.duration is not None else 10 * (self.max_kills or 0) + 10
        while not self._stop.is_set():
            if self.max_kills is not None and kills >= self.max_kills:
                break
            if max_ticks is not None and ticks >= max_ticks:
                break
            ticks += 1
            with self._lock:
                wait = self.interval + (self._rng.uniform(0, self.jitter) if self.jitter else 0.0)
            if self.duration is not None:
                left = self.duration - (self._clock.monotonic() - started)
                if left <= 0:
                    break
                if wait > left:
                    self._stop.wait(left)
                    break
            if self._stop.wait(wait):
                break
            rec = self.kill_one()
            if rec is not None and rec.ok:
                kills += 1
        return self.records

    def start(self) -> Self:
        """Run :meth:`run` in a daemon thread (never keeps a test process alive)."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("the killer is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="resurgo-killer", daemon=True)
        self._thread.start()
        return self

    def stop(self, *, timeout: float = 5.0) -> None:
        """Stop the schedule and wait for the thread; idempotent."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise RuntimeError(f"the killer thread did not stop within {timeout} s")

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a started schedule to reach its bound; True if it finished."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    @property
    def records(self) -> list[KillRecord]:
        with self._lock:
            return list(self._records)


__all__ = ["Candidate", "KillRecord", "ProcessKiller"]
