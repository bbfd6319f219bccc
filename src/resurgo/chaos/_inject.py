"""The fault injectors of a chaos run, one class per fault kind.

Each injector owns one source of faults and its own timetable; the scheduler
(:mod:`resurgo.chaos._schedule`) only calls :meth:`Injector.tick` with the
current monotonic time and :meth:`Injector.stop` at the end.  What an injector
did goes to the run's :class:`FaultLog` (when, for the post-mortem) and, for
faults that reach a job, to the injector's own per-job log read after the run
(the stand-in's request log, the proxy's per-route fault log, the kill
records): that per-job log, not the time windows, is the ground truth.

Adding a fault kind = a class with ``tick``/``stop`` and a line in
:func:`build_injectors`.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from resurgo.chaos._config import API_PHASES, API_RETRY_AFTER, NET_PHASES, ChaosConfig
from resurgo.chaos._faults import FaultLog
from resurgo.chaos._kill import Candidate, KillRecord, ProcessKiller
from resurgo.chaos._pressure import Pressure, memory_cap_mb
from resurgo.chaos._proxy import FaultProxy


class Injector(Protocol):
    """One source of faults, driven by the scheduler's clock."""

    name: str

    def tick(self, now: float) -> None:
        """Inject whatever is due at monotonic time ``now`` (called about every 0.1 s)."""

    def stop(self) -> None:
        """Undo what is still armed (the run is over or failed); idempotent."""


def _assume_opened(since: float) -> bool:
    """Without a breaker log to read, a storm lasts ``storm_s`` exactly."""
    return True


@dataclass
class RunContext:
    """What the injectors share: the run's settings, dice, logs and handles on its processes."""

    config: ChaosConfig
    rng: random.Random
    faults: FaultLog
    armed: FaultLog
    progress: Callable[[str], None]
    stand_in: Any  # resurgo.mockapi.MockServer
    proxy: FaultProxy
    cli_pids: Callable[[], list[int]]
    kill_supervisor: Callable[[], None]
    t0: float
    kills: list[KillRecord] = field(default_factory=list)
    storms: list[tuple[float, float]] = field(default_factory=list)  # wall-clock (start, end) of each storm
    pressure: Pressure | None = None
    storm_active: bool = False
    #: whether the endpoint breaker has opened since a wall-clock time (the worker's breaker log)
    breaker_opened_since: Callable[[float], bool] = _assume_opened

    def tick_in(self, now: float, mean: float) -> float:
        """The next time of a periodic fault: ``mean`` seconds jittered +-50 % with the seed."""
        return now + mean * self.rng.uniform(0.5, 1.5)


def _is_tool(c: Candidate) -> bool:
    """A process the CLI's Bash tool started (not the CLI's own helpers, whose death says little)."""
    return c.depth >= 1 and c.name in ("bash", "sh", "sleep", "dash", "zsh")


class StandInPlan:
    """The stand-in's one fault slot, shared by the API phases and the storm (the storm wins)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self._wid: int | None = None

    def arm(self, kind: str, *, probability: float) -> None:
        from resurgo.mockapi import Faults

        ctx = self.ctx
        if self._wid is not None:
            ctx.armed.close(self._wid)
            self._wid = None
        if kind == "off":
            ctx.stand_in.clear_faults()
            return
        kw: dict[str, Any] = {"probability": probability, "seed": ctx.rng.randrange(1 << 30)}
        if kind.isdigit():
            kw["status"] = int(kind)
            if kind in API_RETRY_AFTER:
                kw["retry_after"] = API_RETRY_AFTER[kind]
        elif kind == "hang":
            kw["hang"] = True
        elif kind == "cut":
            kw["cut_after"] = 2
        elif kind == "reset":
            kw["reset"] = True
        ctx.stand_in.set_faults(Faults(**kw))
        self._wid = ctx.armed.open(f"api:{kind}", "stand-in", detail=f"p={probability}")


class ApiFaults:
    """API faults in the stand-in at ``fault_rate``, the kind rotating every ``phase_s`` seconds."""

    name = "api"

    def __init__(self, ctx: RunContext, plan: StandInPlan) -> None:
        self.ctx, self.plan = ctx, plan
        self.phases = list(API_PHASES)
        ctx.rng.shuffle(self.phases)
        self.i = 0
        self.next = ctx.t0

    def tick(self, now: float) -> None:
        if self.ctx.storm_active or now < self.next:
            return
        self.plan.arm(self.phases[self.i % len(self.phases)], probability=self.ctx.config.fault_rate)
        self.i += 1
        self.next = now + self.ctx.config.phase_s

    def resume_now(self, now: float) -> None:
        """After a storm: arm the next phase at once."""
        self.next = now

    def stop(self) -> None:
        self.plan.arm("off", probability=0.0)


class Storm:
    """One 529 storm at 30 % of the run: every request fails, for ``storm_s`` seconds and until the breaker opened.

    The storm is there to trip the breaker.  Under load few requests may reach
    the stand-in in ``storm_s`` (CLIs start slowly and are killed while
    starting), too few to cross the threshold; then the storm goes on, up to
    three times ``storm_s``, rather than leave the breaker untested.  A breaker
    that still has not opened fails the run's reaction target.
    """

    name = "storm"

    def __init__(self, ctx: RunContext, plan: StandInPlan, api: ApiFaults | None) -> None:
        self.ctx, self.plan, self.api = ctx, plan, api
        self.at = ctx.t0 + ctx.config.duration * 0.3
        self.end: float | None = None
        self.cap = float("inf")
        self._wid: int | None = None
        self._wall0 = 0.0

    def tick(self, now: float) -> None:
        ctx = self.ctx
        if self.end is None and now >= self.at:
            self.end = now + ctx.config.storm_s
            self.cap = now + 3 * ctx.config.storm_s
            self.at = float("inf")
            ctx.storm_active = True
            self.plan.arm("529", probability=1.0)
            self._wall0 = time.time()
            self._wid = ctx.faults.open("storm:529", "stand-in", detail=f"{ctx.config.storm_s:g} s, every request")
            ctx.progress(f"chaos: 529 storm for {ctx.config.storm_s:g} s")
        elif self.end is not None and now >= self.end:
            if now < self.cap and not ctx.breaker_opened_since(self._wall0):
                return  # not tripped yet: keep storming
            self._finish()
            if self.api is not None:
                self.api.resume_now(now)
            else:
                self.plan.arm("off", probability=0.0)

    def _finish(self) -> None:
        if self.end is None:
            return
        self.end = None
        self.ctx.storm_active = False
        self.ctx.storms.append((self._wall0, time.time()))
        if self._wid is not None:
            self.ctx.faults.close(self._wid)
            self._wid = None

    def stop(self) -> None:
        self._finish()
        self.plan.arm("off", probability=0.0)


class NetworkFaults:
    """Proxy faults every ~``net_every`` s for 2-3 s (reset, drop, blackhole, delay), with a cut of live connections."""

    name = "network"

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.next = ctx.tick_in(ctx.t0, ctx.config.net_every)
        self.end: float | None = None
        self.i = 0

    def tick(self, now: float) -> None:
        ctx = self.ctx
        if self.end is not None and now >= self.end:
            ctx.proxy.clear()
            self.end = None
            self.next = ctx.tick_in(now, ctx.config.net_every)
        elif self.end is None and now >= self.next:
            mode, p, delay = NET_PHASES[self.i % len(NET_PHASES)]
            self.i += 1
            ctx.proxy.set_mode(mode, probability=p, delay=delay)
            ctx.proxy.cut_all()  # the CLI keeps connections alive: make it dial again (logged per route)
            self.end = now + ctx.rng.uniform(2.0, 3.0)

    def stop(self) -> None:
        self.ctx.proxy.clear()


class Kills:
    """A SIGKILL every ~``kill_every`` s: a CLI run (65 %) or one of its Bash tool children."""

    name = "kills"

    def __init__(self, ctx: RunContext) -> None:
        c = ctx.config
        self.ctx = ctx
        self.cli = cli_killer(ctx)
        self.tool = ProcessKiller(
            ctx.cli_pids, include_roots=False, match=_is_tool, duration=c.duration + 1,
            seed=ctx.rng.randrange(1 << 30), fault_log=ctx.faults,
        )
        self.next = ctx.tick_in(ctx.t0, c.kill_every or 1.0)

    def tick(self, now: float) -> None:
        if now < self.next:
            return
        ctx = self.ctx
        self.next = ctx.tick_in(now, ctx.config.kill_every or 1.0)
        first, second = (self.cli, self.tool) if ctx.rng.random() < 0.65 else (self.tool, self.cli)
        rec = first.kill_one() or second.kill_one()
        if rec is not None and rec.ok:
            ctx.kills.append(rec)

    def stop(self) -> None:
        pass


def cli_killer(ctx: RunContext) -> ProcessKiller:
    return ProcessKiller(
        ctx.cli_pids, include_roots=True, match=lambda cd: cd.depth == 0, duration=ctx.config.duration + 1,
        seed=ctx.rng.randrange(1 << 30), fault_log=ctx.faults,
    )


class Burst:
    """Once, at 60 % of the run: every CLI killed at once and every live connection cut."""

    name = "burst"

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.killer = cli_killer(ctx)
        self.at = ctx.t0 + ctx.config.duration * 0.6

    def tick(self, now: float) -> None:
        ctx = self.ctx
        # postponed while fewer than two runs are alive: a breaker may hold every job back
        if now < self.at or len(ctx.cli_pids()) < min(2, ctx.config.concurrency):
            return
        self.at = float("inf")
        n = 0
        with ctx.faults.window("burst", "all CLI runs", detail="every CLI killed + live connections cut"):
            for _ in range(ctx.config.concurrency + 2):
                rec = self.killer.kill_one()
                if rec is None:
                    break
                if rec.ok:
                    ctx.kills.append(rec)
                    n += 1
            n_cut = ctx.proxy.cut_all()
        ctx.progress(f"chaos: burst: {n} CLI run(s) killed at once, {n_cut} connection(s) cut")

    def stop(self) -> None:
        pass


class SupervisorKills:
    """The supervisor SIGKILLed once (twice in runs >= 120 s) and started again on the same store."""

    name = "supervisor"

    def __init__(self, ctx: RunContext) -> None:
        c = ctx.config
        n = 2 if c.duration >= 120 else 1
        self.ctx = ctx
        self.times = [ctx.t0 + c.duration * (k + 1) / (n + 1) * 0.9 for k in range(n)]

    def tick(self, now: float) -> None:
        if self.times and now >= self.times[0]:
            self.times.pop(0)
            self.ctx.kill_supervisor()

    def stop(self) -> None:
        pass


class MachinePressure:
    """CPU (one busy worker per core at 60 %) and memory (<= 256 MB) pressure for a quarter of the run."""

    name = "pressure"

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.at = ctx.t0 + ctx.config.duration * 0.2

    def tick(self, now: float) -> None:
        if now < self.at:
            return
        self.at = float("inf")
        ctx = self.ctx
        p = Pressure(
            cpu_workers=os.cpu_count() or 1, cpu_load=60, memory_mb=min(256, memory_cap_mb()),
            duration=max(2.0, ctx.config.duration / 4), fault_log=ctx.faults,
        ).start()
        ctx.pressure = p
        ctx.progress(f"chaos: {p.backend} pressure: {p.plan.cpu_workers} CPU worker(s), "
                     f"{p.plan.memory_mb} MB for {p.plan.duration:g} s")

    def stop(self) -> None:
        if self.ctx.pressure is not None:
            self.ctx.pressure.stop()


def build_injectors(ctx: RunContext) -> list[Injector]:
    """The injectors a configuration asks for, in the order they act on each tick."""
    c = ctx.config
    out: list[Injector] = []
    if c.kill_supervisor:
        out.append(SupervisorKills(ctx))
    api_on = c.fault_rate > 0
    plan = StandInPlan(ctx)
    api = ApiFaults(ctx, plan) if api_on else None
    if c.storm and api_on:
        out.append(Storm(ctx, plan, api))  # before the phases: a storm due now pre-empts them
    if api is not None:
        out.append(api)
    if c.network and api_on:
        out.append(NetworkFaults(ctx))
    if c.kills:
        out.append(Kills(ctx))
    if c.bursts:
        out.append(Burst(ctx))
    if c.pressure:
        out.append(MachinePressure(ctx))
    return out


__all__ = [
    "ApiFaults",
    "Burst",
    "Injector",
    "Kills",
    "MachinePressure",
    "NetworkFaults",
    "RunContext",
    "StandInPlan",
    "Storm",
    "SupervisorKills",
    "build_injectors",
]
