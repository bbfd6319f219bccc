"""The chaos run's timetable: tick every injector until the time is up or the batch is done.

The scheduler knows nothing about any fault kind; each injector
(:mod:`resurgo.chaos._inject`) keeps its own timetable.  It runs in the calling
thread, and whatever happens (an error, Ctrl-C) every injector is stopped, so
no fault stays armed after the run.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence

from resurgo.chaos._inject import Injector

log = logging.getLogger("resurgo.chaos")


class Scheduler:
    """Drives ``injectors`` every ``tick`` seconds for ``duration`` seconds.

    ``done`` says the batch is over (the supervisor exited): the run ends
    early.  ``stop`` ends it from another thread.  ``clock`` is monotonic time
    (injectable so the order of injectors can be tested without waiting).
    """

    def __init__(
        self,
        injectors: Sequence[Injector],
        *,
        duration: float,
        t0: float,
        done: Callable[[], bool],
        stop: threading.Event,
        tick: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.injectors = list(injectors)
        self.end = t0 + duration
        self._done = done
        self._stop = stop
        self._tick = tick
        self._clock = clock

    def run(self) -> None:
        try:
            while not self._stop.is_set():
                now = self._clock()
                if self._done() or now >= self.end:
                    break
                for inj in self.injectors:
                    inj.tick(now)
                self._stop.wait(self._tick)
        finally:
            for inj in self.injectors:
                try:
                    inj.stop()
                except Exception:  # one injector's cleanup must not keep the others armed
                    with contextlib.suppress(Exception):
                        log.exception("chaos: stopping the %s injector failed", inj.name)


__all__ = ["Scheduler"]
