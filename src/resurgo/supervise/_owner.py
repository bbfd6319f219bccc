"""Who runs a job: the owner id a supervisor writes on its jobs and processes.

Its own module because both the process manager (``_process``) and the job store
(``_jobs``) need it; keeping it in ``_jobs`` made the two import each other.
"""

from __future__ import annotations

import os
import socket

import psutil

__all__ = ["owner_id"]


def owner_id() -> str:
    """``host:pid:start`` — who runs a job; the start time tells a reused pid apart."""
    try:
        start = int(psutil.Process().create_time())
    except psutil.Error:
        start = 0
    return f"{socket.gethostname()}:{os.getpid()}:{start}"
