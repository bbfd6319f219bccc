"""The injectors' timetables, driven by a fake clock against stand-ins that only record what they were told."""

from __future__ import annotations

import random
from typing import Any

from resurgo.chaos import FaultLog
from resurgo.chaos._config import ChaosConfig
from resurgo.chaos._inject import ApiFaults, RunContext, StandInPlan, Storm, SupervisorKills, build_injectors


class _StandIn:
    def __init__(self) -> None:
        self.plans: list[Any] = []

    def set_faults(self, faults: Any) -> None:
        self.plans.append(faults)

    def clear_faults(self) -> None:
        self.plans.append(None)


class _Proxy:
    def clear(self) -> None:
        pass


def _ctx(**kw: Any) -> tuple[RunContext, _StandIn, list[str]]:
    srv, killed = _StandIn(), []
    ctx = RunContext(
        config=ChaosConfig(**kw), rng=random.Random(1), faults=FaultLog(), armed=FaultLog(), progress=lambda s: None,
        stand_in=srv, proxy=_Proxy(), cli_pids=lambda: [],  # type: ignore[arg-type]
        kill_supervisor=lambda: killed.append("sup"), t0=0.0,
    )
    return ctx, srv, killed


def test_the_storm_pre_empts_the_api_phases_and_they_resume_after_it() -> None:
    ctx, srv, _ = _ctx(duration=100.0, storm_s=4.0, phase_s=6.0, fault_rate=0.2)
    plan = StandInPlan(ctx)
    api = ApiFaults(ctx, plan)
    storm = Storm(ctx, plan, api)
    for now in (0.0, 7.0, 30.0, 31.0, 33.0, 34.5):
        storm.tick(now)
        api.tick(now)
    probs = [(p.status, p.probability) if p is not None else None for p in srv.plans]
    # phases at 0 and 7 (p=0.2); the storm at 30: every request 529; nothing re-armed during it; at 34.5 a phase
    assert probs[2] == (529, 1.0) and len(probs) == 4 and probs[3][1] == 0.2
    assert ctx.storms and ctx.storms[0][1] >= ctx.storms[0][0]
    assert [w.kind for w in ctx.faults.windows()] == ["storm:529"]
    storm.stop()
    api.stop()
    assert srv.plans[-1] is None  # nothing stays armed


def test_supervisor_kills_come_once_or_twice_depending_on_the_run() -> None:
    for duration, n in ((60.0, 1), (300.0, 2)):
        ctx, _, killed = _ctx(duration=duration, kill_supervisor=True)
        inj = SupervisorKills(ctx)
        for now in range(0, int(duration) + 1):
            inj.tick(float(now))
        assert killed == ["sup"] * n


def test_the_configuration_chooses_the_injectors() -> None:
    names = [i.name for i in build_injectors(_ctx(kill_supervisor=True, pressure=True)[0])]
    assert names == ["supervisor", "storm", "api", "network", "kills", "burst", "pressure"]
    quiet = [i.name for i in build_injectors(_ctx(fault_rate=0.0, kill_every=None, bursts=False)[0])]
    assert quiet == []


def test_a_storm_goes_on_until_the_breaker_opened_but_not_for_ever() -> None:
    for opened_at, storm_end in ((36.0, 36.0), (None, 42.0)):
        ctx, srv, _ = _ctx(duration=100.0, storm_s=4.0, fault_rate=0.2)
        clock = [0.0]
        ctx.breaker_opened_since = lambda since, at=opened_at, c=clock: at is not None and c[0] >= at  # type: ignore[misc]
        storm = Storm(ctx, StandInPlan(ctx), None)
        ended = None
        for k in range(0, 600):
            clock[0] = k / 10
            storm.tick(clock[0])
            if ended is None and ctx.storms:
                ended = clock[0]
        # it opened at 36: the storm stopped then; never opened: it stopped at 3 x 4 s after its start at 30
        assert ended == storm_end
        assert srv.plans[-1] is None
