"""Injectable time: every backoff, window and watchdog reads time through a ``Clock``.

Tests replace the clock with :class:`FakeClock`, whose sleeps advance virtual time
instantly, so timing behaviour is checked deterministically and fast (Polly's
``TimeProvider``, stamina's testing mode).
"""

from __future__ import annotations

import threading
import time as _time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """What resurgo needs from time. ``monotonic`` for intervals, ``time`` for wall-clock resets."""

    def monotonic(self) -> float: ...

    def time(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    async def asleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    __slots__ = ()

    def monotonic(self) -> float:
        return _time.monotonic()

    def time(self) -> float:
        return _time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            _time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        # asyncio.sleep is cancellable, so a CancelledError interrupts a backoff at once.  Imported
        # here (already loaded by any running loop): sync users and the configuration loader that
        # `resurgo run` reads before it starts the CLI do not pay for importing asyncio.
        import asyncio

        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


class FakeClock:
    """Virtual time for tests: ``sleep`` advances the clock instead of waiting.

    ``sleeps`` records every requested sleep so tests can assert on backoff
    schedules.  Thread-safe, so concurrent callers see one consistent time.
    """

    def __init__(self, start: float = 1_000.0, *, wall_start: float = 1_700_000_000.0) -> None:
        self._mono = float(start)
        self._wall_offset = float(wall_start) - float(start)
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def time(self) -> float:
        with self._lock:
            return self._mono + self._wall_offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("cannot move a clock backwards")
        with self._lock:
            self._mono += seconds

    def sleep(self, seconds: float) -> None:
        seconds = max(0.0, float(seconds))
        with self._lock:
            self.sleeps.append(seconds)
            self._mono += seconds

    async def asleep(self, seconds: float) -> None:
        import asyncio

        self.sleep(seconds)
        await asyncio.sleep(0)  # still a scheduling point, and still cancellable

    def __repr__(self) -> str:
        return f"FakeClock(monotonic={self._mono:.3f})"


SYSTEM_CLOCK: Clock = SystemClock()

__all__ = ["SYSTEM_CLOCK", "Clock", "FakeClock", "SystemClock"]
