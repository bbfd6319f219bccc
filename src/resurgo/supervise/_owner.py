"""Who runs a job: the owner id a supervisor writes on its jobs, and whether that owner lives.

Its own module because both the process manager (``_process``) and the job store
(``_jobs``) need it; keeping it in either made the two import each other.
"""

from __future__ import annotations

import os
import socket

import psutil

__all__ = ["owner_alive", "owner_id"]


def owner_id() -> str:
    """``host:pid:start`` — who runs a job; the start time tells a reused pid apart."""
    try:
        start = int(psutil.Process().create_time())
    except psutil.Error:
        start = 0
    return f"{socket.gethostname()}:{os.getpid()}:{start}"


def owner_alive(owner: str | None) -> bool:
    """Is the supervisor named by ``owner`` still running?

    Owners on another host are assumed alive (we cannot check them and must not
    steal their jobs).  An unparseable owner is treated as dead.
    """
    if not owner:
        return False
    parts = owner.rsplit(":", 2)
    if len(parts) != 3:
        return False
    host, pid_s, start_s = parts
    if host != socket.gethostname():
        return True
    try:
        pid, start = int(pid_s), int(start_s)
        p = psutil.Process(pid)
        return abs(int(p.create_time()) - start) <= 1 and p.status() != psutil.STATUS_ZOMBIE
    except (ValueError, psutil.Error):
        return False
