"""Ending what an SDK-launched CLI left behind.

The SDK starts the CLI as a plain child and, when a run ends, waits for it,
terminates or kills it; but the CLI starts each Bash tool in a session of its
own (``setsid``), so a CLI that crashed, or that resurgo abandoned after a
stall, leaves its tools running, re-parented to init, for as long as they
like.  Every CLI a resilient ``query()`` or ``ResilientClient`` starts gets a
fresh marker, ``RESURGO_SDK_RUN=<token>``, through ``ClaudeAgentOptions.env``;
everything it starts inherits it, whatever session or parent it ends up with,
so after a failed or abandoned run, and when a query or client session ends,
the processes carrying it (and their descendants) are ended: SIGTERM, a grace
period, SIGKILL.  The mechanics are :mod:`resurgo._procs`', shared with the
supervisor.

A separate variable from the supervisor's ``RESURGO_ATTEMPT``: a program that
uses resurgo.sdk may itself run under the supervisor, and overwriting that
marker would hide our CLIs from it.

This process does not become a child subreaper (the supervisor does): for a
library that would change how every orphan of the caller's other children is
handled.  Killed orphans are therefore reaped by init, not by us.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import uuid
from typing import Final

from claude_agent_sdk import ClaudeAgentOptions

from resurgo._procs import TreeKillReport, end_tree, marked_tree, proc_ids, same_process
from resurgo.clock import SYSTEM_CLOCK

_log = logging.getLogger("resurgo.sdk")

#: The environment variable that marks every process of one SDK-launched CLI.
RUN_ENV: Final = "RESURGO_SDK_RUN"

#: Seconds between SIGTERM and SIGKILL for a run's leftovers.
DEFAULT_LEFTOVER_GRACE: Final = 3.0


def new_token() -> str:
    return uuid.uuid4().hex


def marked(options: ClaudeAgentOptions, token: str) -> ClaudeAgentOptions:
    """A copy of ``options`` whose CLI, and all it starts, carries ``RESURGO_SDK_RUN=token``."""
    return dataclasses.replace(options, env={**options.env, RUN_ENV: token})


def _kill_now(pids: dict[int, float]) -> None:
    for pid, ct in pids.items():
        if same_process(pid, ct):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


async def end_leftovers(token: str, *, grace: float | None) -> TreeKillReport:
    """End every living process marked with ``token`` (SIGTERM, ``grace`` seconds, SIGKILL).

    ``grace=None`` leaves them alone.  Process death happens in real time, so
    the wait uses the system clock even when the caller injected a fake one.
    A cancellation during the grace period SIGKILLs the rest at once before
    it propagates: a cancelled caller must not leave the tools running.
    """
    if grace is None:
        return TreeKillReport()
    pids = marked_tree(RUN_ENV, token)
    if not pids:
        return TreeKillReport()
    # The CLI is the run's oldest process that is our own child; its exit status
    # belongs to the SDK's asyncio child watcher, so end_tree must not reap it.
    me = os.getpid()
    ours = [p for p in pids if (ids := proc_ids(p)) is not None and ids.ppid == me]
    leader = min(ours, key=pids.__getitem__) if ours else None
    try:
        report = await end_tree((), extra=pids, leader=leader, grace=grace, clock=SYSTEM_CLOCK)
    except BaseException:
        _kill_now(pids)
        raise
    if report.terminated:
        _log.info(
            "resurgo.sdk: ended %d leftover process(es) of run %s (%d needed SIGKILL)",
            len(report.terminated),
            token,
            len(report.killed),
        )
    if report.left:
        _log.warning("resurgo.sdk: leftover processes of run %s would not die: %s", token, report.left)
    return report


async def end_leftovers_quietly(token: str, *, grace: float | None) -> None:
    """:func:`end_leftovers` for ``finally`` blocks: an error while cleaning up is logged, not raised."""
    try:
        await end_leftovers(token, grace=grace)
    except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
        raise
    except Exception:
        _log.exception("resurgo.sdk: ending the leftovers of run %s failed", token)


__all__ = ["DEFAULT_LEFTOVER_GRACE", "RUN_ENV", "end_leftovers", "end_leftovers_quietly", "marked", "new_token"]
