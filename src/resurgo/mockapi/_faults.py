"""Fault plans for the Messages API stand-in.

A :class:`Faults` value is immutable and validated up front, so a test that
switches faults while the server runs never leaves it half-configured; the
mutable bookkeeping (how many faults are left, how many requests matched,
the seeded RNG) lives in :class:`FaultState`, owned by the server and guarded
by its lock.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Statuses the stand-in knows realistic bodies and headers for.
KNOWN_STATUSES: frozenset[int] = frozenset({400, 401, 402, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 504, 529})

#: Fault kinds other than a status code, as they appear in ``RequestRecord.fault``.
KIND_RESET = "reset"
KIND_HANG = "hang"
KIND_CUT = "cut"


@dataclass(frozen=True, kw_only=True)
class Faults:
    """What the stand-in should do wrong, and to which requests.

    Failure kinds (set one or several; when several are set, each faulted
    request picks one with the seeded RNG, which makes a cheap chaos mix):

    * ``status`` -- answer with this HTTP status and the real API's error body
      and headers (default ``None``: no status fault).
    * ``reset`` -- read the request, then reset the connection (RST, via
      ``SO_LINGER`` 0) instead of answering (default ``False``).
    * ``hang`` -- read the request and never answer; only :meth:`MockServer.stop`
      or the client's own timeout ends the connection (default ``False``).
    * ``cut_after`` -- stream this many SSE events, then close the connection
      without the terminating chunk (default ``None``). Applies to streaming
      requests; a non-streaming request gets its headers and half a body.

    Details of a status fault:

    * ``retry_after`` -- seconds until the limit resets; sent as ``retry-after``
      and the ``anthropic-ratelimit-*-reset`` headers on 429/503/529
      (default ``None``: 429 sends a short default, the others none).
    * ``message`` -- replaces the error message (e.g. a usage-limit text).

    Slow answers (not failures, so ``count``/``probability``/``nth`` do not
    gate them; ``session_id`` and ``paths`` do):

    * ``event_delay`` -- seconds before each SSE event (default 0).
    * ``first_byte_delay`` -- seconds before the response starts (default 0).

    Which requests fail:

    * ``count`` -- only the next N matching requests (default ``None``: all).
    * ``probability`` -- each matching request fails with this probability
      (default 1.0), drawn from ``random.Random(seed)``.
    * ``seed`` -- RNG seed, so a flaky run can be replayed (default ``None``).
    * ``nth`` -- only the n-th matching request (1-based) after the faults were
      set (default ``None``).
    * ``skip`` -- the first N matching requests are answered normally, every
      later one is eligible (default 0). Unlike ``nth`` the fault persists, so
      a CLI's own retry of the failed turn fails too.
    * ``session_id`` -- only requests whose ``x-claude-code-session-id`` header
      equals this (default ``None``: any).
    * ``paths`` -- exact request paths (query excluded) the faults apply to
      (default: ``/v1/messages`` only, so ``count_tokens`` and the CLI's
      ``HEAD /`` probe do not eat the count).
    """

    status: int | None = None
    reset: bool = False
    hang: bool = False
    cut_after: int | None = None
    retry_after: float | None = None
    message: str | None = None
    event_delay: float = 0.0
    first_byte_delay: float = 0.0
    count: int | None = None
    probability: float = 1.0
    seed: int | None = None
    nth: int | None = None
    skip: int = 0
    session_id: str | None = None
    paths: tuple[str, ...] = field(default=("/v1/messages",))

    def __post_init__(self) -> None:
        if self.status is not None and not (400 <= self.status <= 599):
            raise ValueError(f"Faults.status must be an HTTP error status (400-599), got {self.status}")
        if self.cut_after is not None and self.cut_after < 0:
            raise ValueError(f"Faults.cut_after must be >= 0, got {self.cut_after}")
        if self.count is not None and self.count < 0:
            raise ValueError(f"Faults.count must be >= 0, got {self.count}")
        if self.nth is not None and self.nth < 1:
            raise ValueError(f"Faults.nth is 1-based and must be >= 1, got {self.nth}")
        if self.skip < 0:
            raise ValueError(f"Faults.skip must be >= 0, got {self.skip}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"Faults.probability must be within [0, 1], got {self.probability}")
        for name in ("event_delay", "first_byte_delay"):
            if getattr(self, name) < 0:
                raise ValueError(f"Faults.{name} must be >= 0")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError("Faults.retry_after must be >= 0")
        if isinstance(self.paths, str):  # a lone string would match per character
            object.__setattr__(self, "paths", (self.paths,))
        else:
            object.__setattr__(self, "paths", tuple(self.paths))

    @property
    def kinds(self) -> tuple[str, ...]:
        """The failure kinds this plan can inject, in a stable order."""
        out: list[str] = []
        if self.status is not None:
            out.append(str(self.status))
        if self.reset:
            out.append(KIND_RESET)
        if self.hang:
            out.append(KIND_HANG)
        if self.cut_after is not None:
            out.append(KIND_CUT)
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, the same field names the control endpoint accepts."""
        d = dataclasses.asdict(self)
        d["paths"] = list(self.paths)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Faults:
        """Build from JSON (the control endpoint); unknown fields are an error, not ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown Faults field(s): {', '.join(unknown)}")
        kwargs = dict(data)
        if "paths" in kwargs and isinstance(kwargs["paths"], list):
            kwargs["paths"] = tuple(kwargs["paths"])
        try:
            return cls(**kwargs)
        except TypeError as e:
            raise ValueError(str(e)) from e


NO_FAULTS = Faults()


@dataclass(frozen=True)
class Decision:
    """What to do with one request: a failure kind (or None) and slow-down delays."""

    kind: str | None
    faults: Faults
    event_delay: float
    first_byte_delay: float


class FaultState:
    """The mutable side of a fault plan: remaining count, match counter, RNG.

    Thread-safe: ``set`` is called from the test's thread, ``decide`` from the
    server's loop.
    """

    def __init__(self, faults: Faults = NO_FAULTS) -> None:
        self._lock = threading.Lock()
        self._faults = faults
        self._remaining = faults.count
        self._matched = 0
        self._rng = random.Random(faults.seed)
        self.applied = 0

    @property
    def faults(self) -> Faults:
        with self._lock:
            return self._faults

    def set(self, faults: Faults) -> None:
        with self._lock:
            self._faults = faults
            self._remaining = faults.count
            self._matched = 0
            self._rng = random.Random(faults.seed)

    def decide(self, path: str, session_id: str | None) -> Decision:
        with self._lock:
            f = self._faults
            targeted = path in f.paths and (f.session_id is None or f.session_id == session_id)
            if not targeted:
                return Decision(None, f, 0.0, 0.0)
            self._matched += 1
            kind: str | None = None
            kinds = f.kinds
            eligible = (
                bool(kinds)
                and (f.nth is None or f.nth == self._matched)
                and self._matched > f.skip
                and (self._remaining is None or self._remaining > 0)
            )
            # draw only for eligible requests, so a seed replays the same sequence
            if eligible and (f.probability >= 1.0 or self._rng.random() < f.probability):
                kind = kinds[0] if len(kinds) == 1 else self._rng.choice(kinds)
                if self._remaining is not None:
                    self._remaining -= 1
                self.applied += 1
            return Decision(kind, f, f.event_delay, f.first_byte_delay)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "faults": self._faults.to_dict(),
                "remaining": self._remaining,
                "matched": self._matched,
                "applied": self.applied,
            }
