"""The shared record of *when* faults were injected.

Every injector (fault proxy, process killer, pressure, API faults) writes its
fault windows here.  The report needs them to tell a true detection from a
false positive: an error or a breaker opening is only justified if some fault
was active at that moment (or shortly before, since a kill is noticed only when
the supervisor next looks).  Without timestamps a chaos run could not prove
that the resilience layer does not cry wolf.

Times are wall-clock seconds (``clock.time()``), not monotonic, because the
records they are compared with come from other processes (the supervisor can
itself be killed and restarted) and from the store, which all share wall time.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from resurgo.clock import SYSTEM_CLOCK, Clock


@dataclass(frozen=True, slots=True)
class FaultWindow:
    """One injected fault: ``end`` is None while it is still active.

    A point fault (a SIGKILL, a network cut of live connections) has
    ``start == end``; its after-effects are covered by the grace period the
    report applies, not by a made-up duration.
    """

    id: int
    start: float
    end: float | None
    kind: str
    target: str
    detail: str = ""

    def covers(self, t: float, *, grace: float = 0.0, now: float | None = None) -> bool:
        """Whether an effect observed at ``t`` can be blamed on this fault.

        ``grace`` extends the window after its end, because symptoms trail the
        cause (a killed CLI is noticed on the next poll, a cut stream when the
        reader times out).  An open window counts as lasting until ``now``.
        """
        end = self.end
        if end is None:
            end = now if now is not None else float("inf")
        return self.start <= t <= end + grace

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FaultWindow:
        try:
            end = d.get("end")
            return cls(
                id=int(d["id"]),
                start=float(d["start"]),
                end=None if end is None else float(end),
                kind=str(d["kind"]),
                target=str(d["target"]),
                detail=str(d.get("detail", "")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a fault window record: {dict(d)!r} ({e})") from e


class FaultLog:
    """Thread-safe, append-only log of fault windows shared by all injectors.

    Injectors run in their own threads (proxy loop, killer, pressure), so all
    access goes through one lock; windows are immutable and replaced on close.
    """

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._windows: dict[int, FaultWindow] = {}

    @property
    def clock(self) -> Clock:
        return self._clock

    def open(self, kind: str, target: str, *, detail: str = "", at: float | None = None) -> int:
        """Start a fault window now (or at ``at``) and return its id for :meth:`close`."""
        if not kind:
            raise ValueError("a fault window needs a kind")
        start = self._clock.time() if at is None else float(at)
        with self._lock:
            wid = next(self._ids)
            self._windows[wid] = FaultWindow(wid, start, None, kind, target, detail)
        return wid

    def close(self, wid: int, *, at: float | None = None) -> FaultWindow:
        """End a window.  Closing twice keeps the first end: injectors' cleanup paths may overlap."""
        end = self._clock.time() if at is None else float(at)
        with self._lock:
            try:
                w = self._windows[wid]
            except KeyError:
                raise KeyError(f"no fault window with id {wid}") from None
            if w.end is not None:
                return w
            w = FaultWindow(w.id, w.start, max(end, w.start), w.kind, w.target, w.detail)
            self._windows[wid] = w
            return w

    def instant(self, kind: str, target: str, *, detail: str = "", at: float | None = None) -> int:
        """Record a point fault (a kill, a cut): start == end."""
        t = self._clock.time() if at is None else float(at)
        wid = self.open(kind, target, detail=detail, at=t)
        self.close(wid, at=t)
        return wid

    @contextlib.contextmanager
    def window(self, kind: str, target: str, *, detail: str = "") -> Iterator[int]:
        """Keep a window open for the duration of a ``with`` block, closed even on error."""
        wid = self.open(kind, target, detail=detail)
        try:
            yield wid
        finally:
            self.close(wid)

    def close_all(self, *, at: float | None = None) -> int:
        """Close every open window (end of run); returns how many were open."""
        with self._lock:
            open_ids = [w.id for w in self._windows.values() if w.end is None]
        for wid in open_ids:
            self.close(wid, at=at)
        return len(open_ids)

    def windows(self) -> list[FaultWindow]:
        """A snapshot, ordered by start time."""
        with self._lock:
            ws = list(self._windows.values())
        return sorted(ws, key=lambda w: (w.start, w.id))

    def active_at(self, t: float, *, grace: float = 0.0) -> list[FaultWindow]:
        """The windows that explain an effect seen at ``t`` (see :meth:`FaultWindow.covers`)."""
        now = self._clock.time()
        return [w for w in self.windows() if w.covers(t, grace=grace, now=now)]

    def counts(self) -> dict[str, int]:
        """How many windows of each kind were recorded."""
        out: dict[str, int] = {}
        for w in self.windows():
            out[w.kind] = out.get(w.kind, 0) + 1
        return out

    def to_list(self) -> list[dict[str, Any]]:
        return [w.to_dict() for w in self.windows()]

    @classmethod
    def from_list(cls, records: Iterable[Mapping[str, Any]], *, clock: Clock = SYSTEM_CLOCK) -> FaultLog:
        """Rebuild a log saved by :meth:`to_list` (e.g. read back from a report)."""
        log = cls(clock=clock)
        max_id = 0
        for r in records:
            w = FaultWindow.from_dict(r)
            if w.id in log._windows:
                raise ValueError(f"duplicate fault window id {w.id}")
            log._windows[w.id] = w
            max_id = max(max_id, w.id)
        log._ids = itertools.count(max_id + 1)
        return log

    def __len__(self) -> int:
        with self._lock:
            return len(self._windows)

    def __repr__(self) -> str:
        return f"FaultLog({len(self)} windows)"


__all__ = ["FaultLog", "FaultWindow"]
