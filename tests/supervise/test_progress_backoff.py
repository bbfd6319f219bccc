"""resurgo's own delay before a recovery: progress-aware back-off, the half-open probe, start-up overlap.

Each rule is checked on virtual time, and each test also runs the old rule
(``progress_aware=False``: the n-th recovery in the period waits the n-th
back-off, whatever happened) to show that it breaks the property.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from resurgo.breaker import CircuitThresholds
from resurgo.clock import FakeClock
from resurgo.supervise import JobState
from resurgo.supervise._process import StreamEvent, parse_line
from resurgo.supervise._recovery import RestartIntensity

from .test_orchestrator import R_529, R_OK, Rig


def _ev(d: dict[str, Any], ts: float) -> StreamEvent:
    return parse_line(json.dumps(d).encode(), seq=0, ts=ts, mono=0)


def _progress(t: float) -> tuple[StreamEvent, ...]:
    """An answer from the API with a tool call, and the tool's result: the run got further."""
    use = {"model": "m", "content": [{"type": "tool_use", "id": "t", "name": "Bash", "input": {"command": "x"}}]}
    res = {"content": [{"type": "tool_result", "tool_use_id": "t"}]}
    return (_ev({"type": "assistant", "message": use}, t + 0.1), _ev({"type": "user", "message": res}, t + 0.2))


async def _own_backoffs(tmp_path: Path, script: Any, *, progress_aware: bool, **cfg: Any) -> tuple[list[float], Any]:
    rig = Rig(tmp_path, script, **cfg)
    rig.orch.progress_aware = progress_aware
    res = await rig.orch.run_job(rig.job())
    return [p.backoff_s for p in rig.store.recovery_phases(res.job_id)], res


# -- RestartIntensity, the rule itself -------------------------------------------------------------


def test_intensity_backs_off_only_while_failures_of_one_family_make_no_progress() -> None:
    clock = FakeClock()
    it = RestartIntensity(max_restarts=10, backoff_base=1.0, backoff_cap=8.0, clock=clock)
    waits = []
    for kind, progressed in [("529", False), ("529", False), ("529", False), ("529", True), ("529", False)]:
        waits.append(it.next_backoff(fault_kind=kind, progressed=progressed))
        it.record(fault_kind=kind, progressed=progressed)
    assert waits == [0.0, 1.0, 2.0, 0.0, 1.0]  # progress starts the count anew
    # a kill, or a fault of an unrelated kind, does not inherit the overload back-off
    assert it.next_backoff(fault_kind="kill") == 0.0
    assert it.next_backoff(fault_kind="other") == 0.0
    # the overload kinds are one family: a 429 or a network fault after 529s keeps backing off
    assert it.next_backoff(fault_kind="network") == 2.0
    # ... and every recovery counts against the limit, whatever its kind
    assert it.recent() == 5


def test_the_old_intensity_rule_backs_off_after_progress_and_kills() -> None:
    clock = FakeClock()
    it = RestartIntensity(max_restarts=10, backoff_base=1.0, backoff_cap=8.0, clock=clock, progress_aware=False)
    for _ in range(3):
        it.record(fault_kind="529", progressed=True)
    assert it.next_backoff(fault_kind="kill", progressed=True) == 4.0


def test_a_streak_older_than_the_period_is_forgotten() -> None:
    clock = FakeClock()
    it = RestartIntensity(max_restarts=10, period=60.0, backoff_base=1.0, clock=clock)
    it.record(fault_kind="529")
    it.record(fault_kind="529")
    assert it.next_backoff(fault_kind="529") == 2.0
    clock.advance(61.0)
    assert it.next_backoff(fault_kind="529") == 0.0


# -- the orchestrator carries it out ---------------------------------------------------------------


def _kills(spec: Any, n: int) -> dict[str, Any]:
    return {"signal": 9} if n <= 3 else {"exit_code": 0, "result": R_OK}


async def test_a_cli_killed_from_outside_restarts_without_back_off(tmp_path: Path) -> None:
    waits, res = await _own_backoffs(tmp_path, _kills, progress_aware=True, max_recoveries=5)
    assert res.ok and waits == [0.0, 0.0, 0.0]


async def test_the_old_rule_backs_off_killed_clis(tmp_path: Path) -> None:
    waits, res = await _own_backoffs(tmp_path, _kills, progress_aware=False, max_recoveries=5)
    assert res.ok and waits != [0.0, 0.0, 0.0] and waits[1:] == [1.0, 2.0]


async def test_a_kill_loop_is_still_bounded_by_the_restart_intensity(tmp_path: Path) -> None:
    rig = Rig(tmp_path, lambda spec, n: {"signal": 9}, max_recoveries=3)
    res = await rig.orch.run_job(rig.job())
    assert res.state is JobState.FAILED and res.recoveries == 3 and "limit 3" in (res.reason or "")
    assert [p.backoff_s for p in rig.store.recovery_phases(res.job_id)] == [0.0, 0.0, 0.0]


def _529_with_progress(rig_clock: list[FakeClock]) -> Any:
    def script(spec: Any, n: int) -> dict[str, Any]:
        if n <= 3:  # each attempt gets further (a tool call done), then meets a 529
            return {"exit_code": 1, "result": R_529, "events": _progress(rig_clock[0].time())}
        return {"exit_code": 0, "result": R_OK}

    return script


async def test_a_run_that_made_progress_does_not_inherit_the_back_off(tmp_path: Path) -> None:
    holder: list[FakeClock] = []
    rig = Rig(tmp_path, _529_with_progress(holder))
    holder.append(rig.clock)
    res = await rig.orch.run_job(rig.job())
    assert res.ok
    assert [p.backoff_s for p in rig.store.recovery_phases(res.job_id)] == [0.0, 0.0, 0.0]


async def test_the_old_rule_backs_off_a_run_that_made_progress(tmp_path: Path) -> None:
    holder: list[FakeClock] = []
    # a breaker that stays closed: with it open, no back-off is slept at all (the breaker imposes the wait)
    rig = Rig(tmp_path, _529_with_progress(holder), breaker=CircuitThresholds(min_calls=100))
    holder.append(rig.clock)
    rig.orch.progress_aware = False
    res = await rig.orch.run_job(rig.job())
    assert res.ok
    waits = [p.backoff_s for p in rig.store.recovery_phases(res.job_id)]
    assert waits[0] == 0.0 and waits[1] >= 1.0 and waits[2] >= 2.0


def _529s_then_segfault(spec: Any, n: int) -> dict[str, Any]:
    if n <= 2:
        return {"exit_code": 1, "result": R_529}
    if n == 3:
        return {"signal": 11}  # the CLI crashes by itself: not an overload
    return {"exit_code": 0, "result": R_OK}


async def test_an_unrelated_fault_kind_does_not_inherit_the_overload_back_off(tmp_path: Path) -> None:
    waits, res = await _own_backoffs(tmp_path, _529s_then_segfault, progress_aware=True)
    assert res.ok and waits[0] == 0.0 and waits[1] >= 1.0 and waits[2] == 0.0


async def test_the_old_rule_makes_an_unrelated_fault_inherit_the_back_off(tmp_path: Path) -> None:
    waits, res = await _own_backoffs(tmp_path, _529s_then_segfault, progress_aware=False)
    assert res.ok and waits[2] >= 2.0


async def test_overload_failures_without_progress_still_back_off_exponentially(tmp_path: Path) -> None:
    def script(spec: Any, n: int) -> dict[str, Any]:
        return {"exit_code": 1, "result": R_529} if n <= 3 else {"exit_code": 0, "result": R_OK}

    new, _ = await _own_backoffs(tmp_path / "a", script, progress_aware=True)
    old, _ = await _own_backoffs(tmp_path / "b", script, progress_aware=False)
    assert new == old and new[0] == 0.0 and new[1] >= 1.0 and new[2] >= 2.0


@pytest.fixture(autouse=True)
def _dirs(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()


# -- own back-off overlaps the CLI's start-up ------------------------------------------------------


async def test_own_back_off_overlaps_the_clis_measured_start_up(tmp_path: Path) -> None:
    def script(spec: Any, n: int) -> dict[str, Any]:
        return {"exit_code": 1, "result": R_529} if n <= 2 else {"exit_code": 0, "result": R_OK}

    async def second_backoff(d: Path, start_s: float | None) -> float:
        rig = Rig(d, script, backoff_base=1.0)
        if start_s is not None:
            rig.orch._learn_start(start_s)  # the CLI took this long from spawn to its first event ...
        rig.orch._learn_start = lambda s: None  # type: ignore[method-assign]  # ... and keeps taking it
        res = await rig.orch.run_job(rig.job())
        return rig.store.recovery_phases(res.job_id)[1].backoff_s

    plain = await second_backoff(tmp_path / "a", None)
    overlapped = await second_backoff(tmp_path / "b", 0.5)
    # 80 % of the CLI's start-up runs during the back-off: the CLI's first request still waits it out
    assert plain >= 1.0 and overlapped == pytest.approx(plain - 0.4, abs=1e-9)


# -- the half-open probe, and the jobs waiting behind it -----------------------------------------


class ManualClock(FakeClock):
    """Sleeps block until the test advances the clock past their end (nothing moves by itself)."""

    def __init__(self) -> None:
        super().__init__()
        self._cv: asyncio.Condition | None = None

    async def asleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self._cv is None:
            self._cv = asyncio.Condition()
        end = self.monotonic() + max(0.0, seconds)
        async with self._cv:
            await self._cv.wait_for(lambda: self.monotonic() >= end)

    async def tick(self, seconds: float) -> None:
        self.advance(seconds)
        if self._cv is not None:
            async with self._cv:
                self._cv.notify_all()
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("wake", [True, False], ids=["woken", "old-poll"])
async def test_a_half_open_breaker_admits_its_probe_when_the_wait_ends_and_wakes_waiters_on_close(
    tmp_path: Path, wake: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    br = CircuitThresholds(min_calls=2, failure_rate=0.5, wait_in_open=10.0, half_open_max_calls=1,
                           half_open_lease=600.0, slow_call_duration=600.0)
    rig = Rig(tmp_path, lambda spec, n: {"exit_code": 0, "result": R_OK}, breaker=br)
    clock = ManualClock()
    rig.orch.clock = clock
    if not wake:  # the old behaviour: waiting jobs only poll
        from resurgo.supervise._orchestrator import Endpoint

        monkeypatch.setattr(Endpoint, "on_breaker_event", lambda self, ev: None)
    ep = rig.orch.endpoint("http://127.0.0.1:9")  # its breaker runs on the manual clock
    from resurgo.supervise._orchestrator import _JobRun

    def run_of(jid: str) -> Any:
        rec = rig.jobs.require(jid)
        return _JobRun(rec=rec, env={}, full_env={}, endpoint=ep, intensity=RestartIntensity(clock=clock),
                       model=None, fallback_models=[], fallback_endpoints=[])

    # two failures open the breaker for 10 s
    for _ in range(2):
        ep.breaker.acquire().on_error(RuntimeError("529"))
    assert ep.breaker.state.value == "open"
    a, b = run_of(rig.job("a")), run_of(rig.job("b"))
    ta = asyncio.ensure_future(rig.orch._admit(a))
    await asyncio.sleep(0.01)
    await clock.tick(9.9)
    assert not ta.done()
    await clock.tick(0.1)  # the wait in open ends: the first job takes the probe at once
    assert ta.done()
    probe = ta.result()
    tb = asyncio.ensure_future(rig.orch._admit(b))  # half-open and full: the second job waits
    await asyncio.sleep(0.01)
    assert not tb.done()
    probe.success()  # the probe's answer closes the breaker ...
    await asyncio.sleep(0.01)
    if wake:
        assert tb.done(), "the waiting job must be admitted when the breaker closes, not at its next poll"
    else:
        assert not tb.done()  # polling: it waits for its next 0.25 s tick
        await clock.tick(0.25)
        assert tb.done()
    tb.result().release()


async def test_an_open_breaker_refuses_at_once_instead_of_after_our_own_back_off(tmp_path: Path) -> None:
    """The job-level breaker reaction: once the endpoint's breaker is open, a failed job does not sleep
    its own back-off first and meet the breaker afterwards; it is refused (a ``Waiting`` for the breaker)
    at the moment of its failure, and waits what the breaker imposes."""
    from resurgo.supervise._events import FailureDetected, Waiting

    def script(spec: Any, n: int) -> dict[str, Any]:
        return {"exit_code": 1, "result": R_529} if n <= 4 else {"exit_code": 0, "result": R_OK}

    br = CircuitThresholds(failure_rate=0.5, min_calls=2, half_open_max_calls=1, wait_in_open=5.0)
    (tmp_path / "a").mkdir(exist_ok=True)
    rig = Rig(tmp_path / "a", script, breaker=br, max_recoveries=6)
    res = await rig.orch.run_job(rig.job())
    assert res.ok
    fails = [e.ts for e in rig.events if isinstance(e, FailureDetected)]
    refusals = [e.ts for e in rig.events if isinstance(e, Waiting) and "breaker" in e.reason]
    assert refusals, "the breaker never refused the job"
    # the first refusal comes with the failure that opened the breaker (the 2nd), not a back-off later
    assert min(abs(refusals[0] - t) for t in fails) < 0.05, (fails, refusals)
    phases = rig.store.recovery_phases(res.job_id)
    assert phases[1].backoff_s == 0.0  # no own back-off stacked on the open breaker


async def test_an_open_breaker_refuses_before_the_retry_budget_wait(tmp_path: Path) -> None:
    """The job-level reaction, the other wait: a job whose failure finds the endpoint's breaker open is
    refused by it at once, not after waiting for retry budget (here: an empty budget, 20 s bound) first."""
    from resurgo.supervise._events import FailureDetected, Waiting

    from .test_orchestrator import R_500

    def script(spec: Any, n: int) -> dict[str, Any]:
        return {"exit_code": 1, "result": R_500} if n <= 3 else {"exit_code": 0, "result": R_OK}

    br = CircuitThresholds(failure_rate=0.5, min_calls=2, half_open_max_calls=1, wait_in_open=5.0)
    rig = Rig(tmp_path, script, breaker=br, max_recoveries=6, retry_budget_ratio=0.0,
              retry_budget_min_per_sec=0.0, budget_wait_max=20.0)
    res = await rig.orch.run_job(rig.job())
    assert res.ok
    fails = [e.ts for e in rig.events if isinstance(e, FailureDetected)]
    refusals = [e.ts for e in rig.events if isinstance(e, Waiting) and "breaker" in e.reason]
    assert refusals, "the breaker never refused the job"
    # the failure that opened the breaker (the 2nd) is refused at once, not 20 s of budget wait later
    assert abs(refusals[0] - fails[1]) < 0.05, (fails, refusals)


async def test_a_job_the_open_breaker_held_back_does_not_also_wait_for_retry_budget(tmp_path: Path) -> None:
    """After an outage the budget is drained; the breaker that refused the job and then admitted it (its
    probe was answered) is the endpoint's protection, so the job does not wait a second, blind time."""
    from .test_orchestrator import R_500

    def script(spec: Any, n: int) -> dict[str, Any]:
        return {"exit_code": 1, "result": R_500} if n <= 3 else {"exit_code": 0, "result": R_OK}

    br = CircuitThresholds(failure_rate=0.5, min_calls=2, half_open_max_calls=1, wait_in_open=5.0)
    rig = Rig(tmp_path, script, breaker=br, max_recoveries=6, retry_budget_ratio=0.0,
              retry_budget_min_per_sec=0.0, budget_wait_max=20.0)
    res = await rig.orch.run_job(rig.job())
    assert res.ok
    phases = rig.store.recovery_phases(res.job_id)
    # the 1st recovery (breaker still closed) waits for budget; the ones after the breaker opened do not
    assert phases[0].budget_s >= 20.0
    assert [p.budget_s for p in phases[1:]] == [0.0] * (len(phases) - 1)
