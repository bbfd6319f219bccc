"""Continuous health checks: one state per component, so recovery acts on causes, not symptoms.

A failing run can be the API (unreachable endpoint), the run itself (no
progress), the machine (memory, disk) or resources the run hoards (open files).
Keeping a separate healthy/degraded/unhealthy state for each lets the
orchestrator tell "wait for the endpoint" from "kill this process tree" and lets
the dashboard show *why*.  Checks are cheap (a TCP connect, psutil reads) and
never raise: a check that cannot run reports ``unhealthy`` with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import psutil

from resurgo._endpoints import endpoint_name
from resurgo.clock import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    from resurgo.supervise._process import Attempt, ProcessManager

log = logging.getLogger("resurgo.supervise")


class HealthState(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {HealthState.HEALTHY: 0, HealthState.DEGRADED: 1, HealthState.UNHEALTHY: 2}


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    """One component's state at ``checked_at`` (wall clock), with the numbers that decided it."""

    name: str
    state: HealthState
    detail: str
    checked_at: float
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HealthThresholds:
    """Where degraded and unhealthy begin.  Defaults suit a laptop running a handful of sessions.

    ``progress_degraded`` is a fraction of the attempt's stall timeout: a run
    silent for half its allowance is worth showing before the watchdog acts.
    """

    api_timeout: float = 2.0
    api_slow: float = 0.5
    progress_degraded: float = 0.5
    rss_degraded_mb: float = 2048.0
    rss_unhealthy_mb: float = 6144.0
    open_files_degraded: int = 1000
    open_files_unhealthy: int = 4000
    cpu_degraded_percent: float = 300.0
    disk_free_degraded_mb: float = 2048.0
    disk_free_unhealthy_mb: float = 256.0

    def __post_init__(self) -> None:
        if not 0 < self.progress_degraded <= 1:
            raise ValueError("HealthThresholds.progress_degraded must be in (0, 1]")
        if self.api_timeout <= 0:
            raise ValueError("HealthThresholds.api_timeout must be > 0")
        if self.rss_unhealthy_mb < self.rss_degraded_mb or self.disk_free_unhealthy_mb > self.disk_free_degraded_mb:
            raise ValueError("HealthThresholds: unhealthy limits must be beyond the degraded ones")


def _worse(a: HealthState, b: HealthState) -> HealthState:
    return a if a.rank >= b.rank else b


class HealthChecker:
    """Checks the API endpoints, every running attempt and the disks, on demand or periodically.

    ``on_change(new, old)`` fires when a component's state changes (old is None
    the first time), e.g. to raise an alert or open a breaker.  ``on_round(snapshot)``
    fires after every round with all current states, e.g. to persist them
    (:class:`~resurgo.supervise._health_store.HealthRecorder`).
    """

    def __init__(
        self,
        *,
        manager: ProcessManager | None = None,
        endpoints: Sequence[str] = (),
        disk_paths: Sequence[str] = (),
        thresholds: HealthThresholds | None = None,
        clock: Clock = SYSTEM_CLOCK,
        on_change: Callable[[ComponentHealth, ComponentHealth | None], None] | None = None,
        on_round: Callable[[Mapping[str, ComponentHealth]], None] | None = None,
    ) -> None:
        self.manager = manager
        self.endpoints = list(endpoints)
        self.disk_paths = list(disk_paths)
        self.thresholds = thresholds or HealthThresholds()
        self.clock = clock
        self.on_change = on_change
        self.on_round = on_round
        self._state: dict[str, ComponentHealth] = {}
        self._procs: dict[tuple[int, float], psutil.Process] = {}
        self._used: set[tuple[int, float]] = set()

    # -- individual checks -------------------------------------------------------------------
    async def check_api(self, url: str) -> ComponentHealth:
        """TCP connect to the endpoint's host and port: cheap, spends no tokens, says "reachable"."""
        name = f"api:{endpoint_name(url)}"
        now = self.clock.time()
        try:
            parts = urlsplit(url)
            host = parts.hostname
            port = parts.port or (443 if parts.scheme == "https" else 80)
            if not host:
                raise ValueError(f"no host in {url!r}")
        except ValueError as e:
            return ComponentHealth(name, HealthState.UNHEALTHY, f"bad endpoint URL: {e}", now)
        t0 = self.clock.monotonic()
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), self.thresholds.api_timeout)
        except (TimeoutError, OSError) as e:
            what = "timed out" if isinstance(e, TimeoutError) else (e.strerror or type(e).__name__)
            return ComponentHealth(name, HealthState.UNHEALTHY, f"cannot connect to {host}:{port}: {what}", now)
        latency = self.clock.monotonic() - t0
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        st = HealthState.DEGRADED if latency > self.thresholds.api_slow else HealthState.HEALTHY
        return ComponentHealth(name, st, f"connected in {latency * 1000:.0f} ms", now, {"connect_ms": latency * 1000})

    def check_attempt(self, attempt: Attempt) -> ComponentHealth:
        """Liveness, progress and the resources of the attempt's whole process tree."""
        th = self.thresholds
        now = self.clock.time()
        name = f"process:{attempt.pid}"
        if attempt.pid is None:
            return ComponentHealth(name, HealthState.DEGRADED, "not started yet", now)
        if attempt.done():
            return ComponentHealth(name, HealthState.HEALTHY, "finished", now)
        pids = [attempt.pid]
        if attempt.tracker is not None:
            pids += attempt.tracker.still_alive()
        rss = 0.0
        cpu = 0.0
        files = 0
        alive = False
        for pid in pids:
            p = self._proc(pid)
            if p is None:
                continue
            try:
                with p.oneshot():
                    if p.status() == psutil.STATUS_ZOMBIE:
                        continue
                    alive = alive or pid == attempt.pid
                    rss += p.memory_info().rss
                    cpu += p.cpu_percent(None)
                    with contextlib.suppress(psutil.AccessDenied):
                        files += p.num_fds()
            except psutil.Error:
                continue
        metrics = {
            "rss_mb": rss / 2**20,
            "cpu_percent": cpu,
            "open_files": float(files),
            "processes": float(len(pids)),
            "last_event_age_s": attempt.last_event_age,
            "events": float(attempt.event_count),
            "alive": 1.0 if alive else 0.0,
        }
        if not alive:
            return ComponentHealth(name, HealthState.UNHEALTHY, "the CLI process is gone", now, metrics)
        state = HealthState.HEALTHY
        notes: list[str] = []
        stall = attempt.spec.liveness.stall_timeout
        if stall is not None and attempt.result_at is None and attempt.last_event_age >= stall * th.progress_degraded:
            state = HealthState.DEGRADED
            notes.append(f"no event for {attempt.last_event_age:.0f} s")
        rss_mb = metrics["rss_mb"]
        if rss_mb >= th.rss_unhealthy_mb:
            state = HealthState.UNHEALTHY
            notes.append(f"RSS {rss_mb:.0f} MB")
        elif rss_mb >= th.rss_degraded_mb:
            state = _worse(state, HealthState.DEGRADED)
            notes.append(f"RSS {rss_mb:.0f} MB")
        if files >= th.open_files_unhealthy:
            state = HealthState.UNHEALTHY
            notes.append(f"{files} open files")
        elif files >= th.open_files_degraded:
            state = _worse(state, HealthState.DEGRADED)
            notes.append(f"{files} open files")
        if cpu >= th.cpu_degraded_percent:
            state = _worse(state, HealthState.DEGRADED)
            notes.append(f"CPU {cpu:.0f}%")
        detail = "; ".join(notes) or f"alive, last event {attempt.last_event_age:.1f} s ago"
        return ComponentHealth(name, state, detail, now, metrics)

    def check_disk(self, path: str) -> ComponentHealth:
        th = self.thresholds
        now = self.clock.time()
        name = f"disk:{path}"
        try:
            usage = shutil.disk_usage(path)
        except OSError as e:
            return ComponentHealth(name, HealthState.UNHEALTHY, f"cannot stat {path}: {e.strerror or e}", now)
        free_mb = usage.free / 2**20
        if free_mb < th.disk_free_unhealthy_mb:
            st = HealthState.UNHEALTHY
        elif free_mb < th.disk_free_degraded_mb:
            st = HealthState.DEGRADED
        else:
            st = HealthState.HEALTHY
        return ComponentHealth(
            name, st, f"{free_mb:.0f} MB free", now, {"free_mb": free_mb, "used_fraction": usage.used / usage.total}
        )

    # -- all together --------------------------------------------------------------------------
    async def check_all(self) -> dict[str, ComponentHealth]:
        """Run every check once, record the states, fire ``on_change`` for changes."""
        results: list[ComponentHealth] = list(await asyncio.gather(*(self.check_api(u) for u in self.endpoints)))
        if self.manager is not None:
            results += [self.check_attempt(a) for a in self.manager.active]
        results += [self.check_disk(p) for p in self.disk_paths]
        current = {r.name: r for r in results}
        for r in results:
            old = self._state.get(r.name)
            if self.on_change is not None and (old is None or old.state is not r.state):
                try:
                    self.on_change(r, old)
                except Exception:
                    log.exception("health on_change hook failed for %s", r.name)
        # processes that finished are dropped, not remembered as unhealthy
        self._state = {
            k: v for k, v in {**self._state, **current}.items() if not k.startswith("process:") or k in current
        }
        self._procs = {k: v for k, v in self._procs.items() if k in self._used}
        self._used = set()
        if self.on_round is not None:
            try:
                self.on_round(dict(self._state))
            except Exception:
                log.exception("health on_round hook failed")
        return dict(self._state)

    async def run(self, interval: float = 5.0) -> None:
        """Check every ``interval`` seconds until cancelled."""
        while True:
            try:
                await self.check_all()
            except Exception:  # a broken check must not stop the others forever
                log.exception("health check round failed")
            await self.clock.asleep(interval)

    @property
    def snapshot(self) -> dict[str, ComponentHealth]:
        return dict(self._state)

    @property
    def overall(self) -> HealthState:
        st = HealthState.HEALTHY
        for c in self._state.values():
            st = _worse(st, c.state)
        return st

    def _proc(self, pid: int) -> psutil.Process | None:
        """A cached psutil handle, so ``cpu_percent`` measures since the previous check."""
        try:
            ct = psutil.Process(pid).create_time()
        except psutil.Error:
            return None
        key = (pid, ct)
        self._used.add(key)
        p = self._procs.get(key)
        if p is None:
            try:
                p = psutil.Process(pid)
                p.cpu_percent(None)  # prime: the first reading is meaningless
            except psutil.Error:  # it ended in between (a tool's child exits any moment): not ours to fail on
                return None
            self._procs[key] = p
        return p


__all__ = ["ComponentHealth", "HealthChecker", "HealthState", "HealthThresholds"]
