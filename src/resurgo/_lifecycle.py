"""Life cycles of things that are started and stopped: servers, killers, stressors.

:class:`LoopThread` runs an asyncio server from synchronous code, on its own
event loop in a daemon thread.  The API stand-in (``resurgo.mockapi``) and the chaos fault proxy are asyncio
servers that tests and the chaos runner drive from plain threads.  Both need
the same careful life cycle, kept here once: start reports the server's own
start-up error (a port in use) to the caller instead of dying in the thread;
stop runs the server's async stop on its loop, so connections are closed
rather than abandoned; and the thread is a daemon, so a forgotten server never
keeps a test process alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self


class StartStop:
    """``with obj:`` for classes with ``start() -> Self`` and ``stop()``: stop even on error.

    Subclasses implement both; keyword arguments of their own must have defaults.
    """

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class LoopThread:
    """Runs ``astart()`` then the loop until :meth:`stop`, which runs ``astop()`` first.

    One use only: a stopped LoopThread is not started again (make a new one).
    """

    def __init__(
        self,
        name: str,
        astart: Callable[[], Awaitable[object]],
        astop: Callable[[], Awaitable[object]],
    ) -> None:
        self.name = name
        self._astart = astart
        self._astop = astop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self, *, timeout: float | None = 10.0) -> None:
        """Start the thread and return once ``astart()`` has finished.

        Raises what ``astart()`` raised, or RuntimeError when it took longer
        than ``timeout`` seconds (None: wait as long as it takes).
        """
        if self._thread is not None:
            raise RuntimeError(f"{self.name} is already started")
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._astart())
            except BaseException as e:  # reported to the caller of start()
                failure.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                # Also when the loop was stopped without stop(): close what is still open.
                with contextlib.suppress(Exception):
                    loop.run_until_complete(self._astop())
                with contextlib.suppress(Exception):
                    loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._loop, self._thread = loop, thread
        thread.start()
        if not ready.wait(timeout):
            self._thread = None
            loop.call_soon_threadsafe(loop.stop)
            raise RuntimeError(f"{self.name} did not start within {timeout} s")
        if failure:
            self._thread = None
            thread.join(timeout)
            raise failure[0]

    def stop(self, *, timeout: float = 10.0) -> bool:
        """Run ``astop()`` on the loop, stop it and join the thread; idempotent.

        Waits at most ``timeout`` seconds for each; returns whether the thread
        has ended (False: it is still running, stuck in the server's code).
        """
        thread, self._thread = self._thread, None
        loop = self._loop
        if thread is None or loop is None:
            return True
        if loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(_awaited(self._astop), loop)
            with contextlib.suppress(Exception):
                fut.result(timeout)
            with contextlib.suppress(RuntimeError):  # closed meanwhile
                loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        return not thread.is_alive()


async def _awaited(fn: Callable[[], Awaitable[object]]) -> None:
    await fn()


__all__ = ["LoopThread", "StartStop"]
