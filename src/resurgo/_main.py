"""The ``resurgo`` console script and ``python -m resurgo``: a quick start, the click command, a quick exit.

Kept apart from :mod:`resurgo.cli` (which imports click) so that ``resurgo run``
can start the CLI from a remembered launch plan before anything else is
imported (:mod:`resurgo._quick`).
"""

from __future__ import annotations

import os
import sys


def entry() -> None:
    """Run the ``resurgo`` command, then end the process without the interpreter's teardown.

    Why the quick exit: after a short ``resurgo run`` the interpreter's own
    teardown (freeing every module and object one by one) took about 40 ms, a
    tenth of a trivial CLI run that people call in loops.  When the command has
    returned, the store is closed and the output is flushed below, so nothing
    is lost by ending with ``os._exit`` once the ``atexit`` handlers have run.
    Only when no other non-daemon thread is alive (those get the normal exit,
    which waits for them); ``RESURGO_SLOW_EXIT=1`` always takes the normal exit.
    """
    from resurgo import _quick

    _quick.start(sys.argv[1:])
    try:
        from resurgo.cli import main

        main(prog_name="resurgo")
        code: object = 0
    except SystemExit as e:
        code = e.code
    finally:
        _quick.discard_untaken()  # the command ended before `run` looked at the early process
    _exit_now(code)


def _exit_now(code: object) -> None:
    import threading

    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if not (code is None or isinstance(code, int)) or others or os.environ.get("RESURGO_SLOW_EXIT"):
        raise SystemExit(code)
    import atexit

    atexit._run_exitfuncs()
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):  # a closed pipe: let the normal exit report it as Python does
        raise SystemExit(code) from None
    os._exit(code or 0)


__all__ = ["entry"]
