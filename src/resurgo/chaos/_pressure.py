"""CPU and memory pressure, always bounded and always cleaned up.

Supervision has to keep working when the machine is overloaded: timeouts fire
late, heartbeats stall, the CLI starts slowly.  This module produces that load.
It prefers ``stress-ng`` (precise, cheap to drive) and falls back to plain
Python worker processes so a chaos run works on any machine.

Safety is the point of the design, since a pressure tool that outlives its run
or eats the machine would take the tests down with it:

* every worker has its own deadline and exits by itself when it passes, or
  when its parent dies, even if :meth:`Pressure.stop` is never called;
* every worker runs in its own process group, which ``stop`` terminates and
  then kills, so stress-ng's forked stressors go with it;
* memory is capped at a share of the machine's RAM (and of what is available
  now); asking for more gets the cap, with a warning, never more than asked.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Literal, Self

import psutil

from resurgo._lifecycle import StartStop
from resurgo.chaos._faults import FaultLog

log = logging.getLogger(__name__)

Backend = Literal["auto", "stress-ng", "python"]

# Busy loop with a duty cycle, so ``cpu_load`` < 100 leaves room for the system under test.
_CPU_WORKER = """\
import os, sys, time
deadline = time.monotonic() + float(sys.argv[1])
load = float(sys.argv[2]) / 100.0
ppid = os.getppid()
period = 0.1
while time.monotonic() < deadline and os.getppid() == ppid:
    busy_until = time.monotonic() + period * load
    while time.monotonic() < busy_until:
        pass
    if load < 1.0:
        time.sleep(period * (1.0 - load))
"""

# Fills every byte (so the pages are resident, not lazily zeroed), then holds them.
_MEM_WORKER = """\
import os, sys, time
deadline = time.monotonic() + float(sys.argv[1])
mb = int(sys.argv[2])
ppid = os.getppid()
hold = []
for _ in range(mb):
    if time.monotonic() >= deadline or os.getppid() != ppid:
        sys.exit(0)
    hold.append(bytearray(b"\\x5a") * 1048576)
sys.stdout.write("ready\\n")
sys.stdout.flush()
while time.monotonic() < deadline and os.getppid() == ppid:
    time.sleep(0.05)
"""


def stress_ng_path() -> str | None:
    """Where ``stress-ng`` is, if installed."""
    return shutil.which("stress-ng")


def memory_cap_mb(*, share: float = 0.25) -> int:
    """The most memory pressure may take: ``share`` of total RAM and half of what is free now."""
    vm = psutil.virtual_memory()
    return max(0, int(min(vm.total * share, vm.available * 0.5) // (1024 * 1024)))


@dataclass(frozen=True, slots=True)
class PressurePlan:
    """What a :class:`Pressure` will actually do, after validation and capping."""

    backend: Literal["stress-ng", "python"]
    cpu_workers: int
    cpu_load: int
    memory_mb: int
    requested_memory_mb: int
    duration: float


class Pressure(StartStop):
    """Bounded CPU and memory load for a chaos run.

    Args:
        cpu_workers: busy processes (0 = no CPU pressure); at most 4 per core.
        cpu_load: percent of each worker's time spent busy, 1..100.
        memory_mb: memory to hold (0 = none), capped by ``max_memory_share``.
        duration: seconds; every worker exits on its own when they pass.
        backend: ``"auto"`` (stress-ng when installed, else Python),
            ``"stress-ng"`` (error when missing) or ``"python"``.
        max_memory_share: cap on memory as a share of total RAM (default 0.25;
            also never more than half of the memory available at start).
        fault_log: shared :class:`FaultLog`; one window per kind of pressure.
        name: target name in the fault log.

    Use as a context manager, or :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        *,
        cpu_workers: int = 0,
        cpu_load: int = 100,
        memory_mb: int = 0,
        duration: float,
        backend: Backend = "auto",
        max_memory_share: float = 0.25,
        fault_log: FaultLog | None = None,
        name: str = "machine",
    ) -> None:
        ncpu = os.cpu_count() or 1
        if not 0 <= cpu_workers <= 4 * ncpu:
            raise ValueError(f"cpu_workers must be within 0..{4 * ncpu}, got {cpu_workers!r}")
        if not 1 <= cpu_load <= 100:
            raise ValueError(f"cpu_load must be a percentage in 1..100, got {cpu_load!r}")
        if memory_mb < 0:
            raise ValueError("memory_mb must be >= 0")
        if not (duration > 0 and math.isfinite(duration)):
            raise ValueError(f"duration must be a positive number of seconds, got {duration!r}")
        if not 0 < max_memory_share <= 0.9:
            raise ValueError("max_memory_share must be within (0, 0.9]")
        if cpu_workers == 0 and memory_mb == 0:
            raise ValueError("nothing to do: give cpu_workers and/or memory_mb")
        if backend not in ("auto", "stress-ng", "python"):
            raise ValueError(f"backend must be 'auto', 'stress-ng' or 'python', got {backend!r}")
        exe = stress_ng_path()
        if backend == "stress-ng" and exe is None:
            raise RuntimeError("backend 'stress-ng' asked for, but stress-ng is not installed")
        chosen: Literal["stress-ng", "python"] = "stress-ng" if backend != "python" and exe is not None else "python"
        mem = memory_mb
        if memory_mb:
            cap = memory_cap_mb(share=max_memory_share)
            if memory_mb > cap:
                log.warning(
                    "memory pressure capped at %d MB (asked %d MB): more would endanger the host",
                    cap,
                    memory_mb,
                )
                mem = cap
        self.plan = PressurePlan(chosen, cpu_workers, cpu_load, mem, memory_mb, float(duration))
        self._exe = exe
        self._log = fault_log
        self.name = name
        self._procs: list[subprocess.Popen[bytes]] = []
        self._mem_proc: subprocess.Popen[bytes] | None = None
        self._windows: list[int] = []
        self._seen: set[int] = set()

    @property
    def backend(self) -> str:
        return self.plan.backend

    @property
    def running(self) -> bool:
        return any(p.poll() is None for p in self._procs)

    # ------------------------------------------------------------------ life cycle

    def start(self) -> Self:
        """Start the workers; raises if already started."""
        if self._procs:
            raise RuntimeError("pressure already started")
        plan = self.plan
        try:
            if plan.backend == "stress-ng":
                self._start_stress_ng()
            else:
                self._start_python()
        except BaseException:
            self.stop()
            raise
        if self._log is not None:
            if plan.cpu_workers:
                self._windows.append(
                    self._log.open(
                        "pressure:cpu",
                        self.name,
                        detail=f"{plan.cpu_workers} workers at {plan.cpu_load}% ({plan.backend})",
                    )
                )
            if plan.memory_mb:
                self._windows.append(
                    self._log.open(
                        "pressure:memory",
                        self.name,
                        detail=f"{plan.memory_mb} MB ({plan.backend})",
                    )
                )
        return self

    def _spawn(self, argv: list[str], *, stdout: int) -> subprocess.Popen[bytes]:
        # Own session: one killpg reaches stress-ng's forked stressors too, and a
        # Ctrl-C aimed at the test runner does not orphan half of them.
        proc = subprocess.Popen(  # noqa: S603 - fixed argv built here, no shell
            argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
        self._procs.append(proc)
        self._seen.add(proc.pid)
        return proc

    def _start_stress_ng(self) -> None:
        plan = self.plan
        assert self._exe is not None
        argv = [self._exe, "--timeout", f"{max(1, math.ceil(plan.duration))}s", "--quiet"]
        if plan.cpu_workers:
            argv += ["--cpu", str(plan.cpu_workers), "--cpu-load", str(plan.cpu_load)]
        if plan.memory_mb:
            argv += ["--vm", "1", "--vm-bytes", f"{plan.memory_mb}M", "--vm-keep"]
        self._spawn(argv, stdout=subprocess.DEVNULL)

    def _start_python(self) -> None:
        plan = self.plan
        dur = repr(plan.duration)
        for _ in range(plan.cpu_workers):
            self._spawn(
                [sys.executable, "-c", _CPU_WORKER, dur, str(plan.cpu_load)],
                stdout=subprocess.DEVNULL,
            )
        if plan.memory_mb:
            self._mem_proc = self._spawn(
                [sys.executable, "-c", _MEM_WORKER, dur, str(plan.memory_mb)],
                stdout=subprocess.PIPE,
            )

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Wait until the memory is actually held (Python backend); True when it is.

        stress-ng gives no such signal, so for it (and for CPU-only pressure)
        this only reports whether the workers are running.
        """
        proc = self._mem_proc
        if proc is None or proc.stdout is None:
            return self.running
        r, _, _ = select.select([proc.stdout], [], [], timeout)
        if not r:
            return False
        return proc.stdout.readline().strip() == b"ready"

    def pids(self) -> set[int]:
        """Every worker process now alive, including stress-ng's forked stressors."""
        out: set[int] = set()
        for p in self._procs:
            if p.poll() is None:
                out.add(p.pid)
                with contextlib.suppress(psutil.Error):
                    out.update(c.pid for c in psutil.Process(p.pid).children(recursive=True))
        self._seen |= out
        return out

    def seen_pids(self) -> set[int]:
        """Every worker pid observed so far (for leak checks after :meth:`stop`)."""
        return set(self._seen)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the workers to finish on their own deadline; True when all did."""
        end = None if timeout is None else time.monotonic() + timeout
        for p in self._procs:
            left = None if end is None else max(0.0, end - time.monotonic())
            try:
                p.wait(left)
            except subprocess.TimeoutExpired:
                return False
        return True

    def stop(self, *, timeout: float = 5.0) -> None:
        """Terminate every worker group, then kill what is left; idempotent.

        The process groups are signalled before the leaders are reaped, so a
        group id cannot have been handed to an unrelated process in between.
        """
        self.pids()  # remember stressor children for the leak check
        procs = list(self._procs)
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout / 2
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.0, deadline - time.monotonic()))
        for p in procs:
            # The leader may be gone while forked stressors still hold the group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout / 2)
            if p.stdout is not None:
                p.stdout.close()
        self._procs.clear()
        self._mem_proc = None
        if self._log is not None:
            for wid in self._windows:
                self._log.close(wid)
        self._windows.clear()


__all__ = ["Pressure", "PressurePlan", "memory_cap_mb", "stress_ng_path"]
