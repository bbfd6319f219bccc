"""Running a CLI in its own session and ending everything it started.

Shared by the test harness (``tests/mockapi/_cli.py``) and the corpus script
(``scripts/gen_cli_corpus.py``), which both run the real Claude Code CLI and
must leave no process behind.  The CLI starts each Bash tool in a session of
its own (``setsid``), so killing the CLI's process group is not enough: the
tool's ``bash`` and its children survive, re-parented to init.  What they
still have in common is their working directory, which is the run's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil


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


__all__ = ["kill_processes_in", "session"]
