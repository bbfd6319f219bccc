"""``concurrency="auto"``: the endpoint's adaptive limit, driven by the CLI's evidence, on virtual time.

The scripted process manager of the orchestrator tests plays attempts whose
results and events are the real CLI's (529 results, usage-limit results,
assistant messages), so the real classifier and the real limiter decide.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from tests.supervise.test_orchestrator import R_529, R_OK, URL, Rig, r_usage_limit

from resurgo.store.limits import ensure_limits_schema
from resurgo.supervise import ConfigError, SupervisorConfig
from resurgo.supervise._adaptive import AttemptSignals, make_endpoint_limiter
from resurgo.supervise._process import AttemptSpec, parse_line


def assistant(msg_id: str) -> Any:
    line = {"type": "assistant", "message": {"id": msg_id, "model": "claude-x", "content": [{"type": "text"}]}}
    return parse_line(json.dumps(line).encode(), seq=1, ts=0.0, mono=0.0)


def api_retry(status: int) -> Any:
    line = {"type": "system", "subtype": "api_retry", "attempt": 1, "max_retries": 2, "error_status": status}
    return parse_line(json.dumps(line).encode(), seq=1, ts=0.0, mono=0.0)


def ok_with_calls(k: int, tag: str) -> dict[str, Any]:
    return {"exit_code": 0, "result": R_OK, "events": tuple(assistant(f"{tag}-{i}") for i in range(k))}


def limit_rows(rig: Rig) -> list[dict[str, Any]]:
    return rig.rows("SELECT kind, limit_value, value, detail FROM concurrency_samples ORDER BY id")


async def test_a_529_cuts_the_endpoint_limit_and_api_calls_raise_it_again(tmp_path: Path) -> None:
    rig = Rig(
        tmp_path,
        lambda spec, n: {"exit_code": 1, "result": R_529} if n == 1 else ok_with_calls(6, f"m{n}"),
        concurrency="auto",
        max_concurrency=16,
    )
    lim = rig.orch.endpoint(URL).limiter
    assert lim is not None and lim.limit == 2
    lim.set_limit(8)
    res = await rig.orch.run_job(rig.job())
    assert res.ok and res.recoveries == 1
    rows = limit_rows(rig)
    cut = next(i for i, r in enumerate(rows) if r["kind"] == "overload")
    assert rows[cut]["detail"].startswith("dropped")
    after_cut = [r for r in rows[cut:] if r["kind"] == "limit"]
    assert after_cut[0]["limit_value"] == 4  # 8, halved at the end of slow start
    assert lim.limit < 8  # one job alone does not use the limit: it does not grow on credit
    # the wait for a slot is recorded for every attempt
    assert sum(1 for r in rows if r["kind"] == "wait") == 2


async def test_api_calls_of_a_busy_endpoint_raise_the_limit(tmp_path: Path) -> None:
    rig = Rig(tmp_path, lambda spec, n: ok_with_calls(3, f"m{n}"), concurrency="auto", max_concurrency=16)
    jobs = [rig.job(f"job {i}") for i in range(6)]
    results = await asyncio.gather(*(rig.orch.run_job(j) for j in jobs))
    assert all(r.ok for r in results)
    assert rig.orch.endpoint(URL).limiter.limit > 2
    assert any(r["kind"] == "limit" and r["detail"] == "api call" for r in limit_rows(rig))


async def test_a_usage_limit_reset_pauses_the_whole_endpoint(tmp_path: Path) -> None:
    starts: dict[str, float] = {}

    def script(spec: AttemptSpec, n: int) -> dict[str, Any]:
        starts.setdefault(spec.prompt, rig.clock.time())
        if spec.prompt == "A" and n == 1:
            return {"exit_code": 1, "result": r_usage_limit(3600), "duration": 1.0}
        return {"exit_code": 0, "result": R_OK, "duration": 5.0}

    rig = Rig(tmp_path, script, concurrency="auto", max_concurrency=4)
    t0 = rig.clock.time()
    a, b, c = rig.job("A"), rig.job("B"), rig.job("C")
    ra = asyncio.ensure_future(rig.orch.run_job(a))
    rb = asyncio.ensure_future(rig.orch.run_job(b))
    await asyncio.sleep(0)
    rc = asyncio.ensure_future(rig.orch.run_job(c))  # the limit is 2: C queues behind A and B
    results = await asyncio.gather(ra, rb, rc)
    assert all(r.ok for r in results)
    # A's usage limit paused the endpoint: C, waiting for a slot, did not start before the reset
    assert starts["C"] - t0 >= 3500
    assert any(r["kind"] == "pause" for r in limit_rows(rig))


async def test_after_a_reset_the_limit_restarts_low_instead_of_where_it_was(tmp_path: Path) -> None:
    rig = Rig(
        tmp_path,
        lambda spec, n: {"exit_code": 1, "result": r_usage_limit(3600)} if n == 1 else ok_with_calls(1, f"m{n}"),
        concurrency="auto",
        max_concurrency=16,
    )
    lim = rig.orch.endpoint(URL).limiter
    lim.set_limit(12)
    res = await rig.orch.run_job(rig.job())
    assert res.ok
    pause = next(r for r in limit_rows(rig) if r["kind"] == "pause")
    assert "server reset" in pause["detail"]
    assert [r["limit_value"] for r in limit_rows(rig) if r["kind"] == "limit"][-1] <= 3  # ramping up from 2


def test_gate_a_refusal_without_a_reset_time_cuts_but_does_not_pause() -> None:
    """What makes the pause: the server's reset time.  A 529 (no reset) only cuts the limit."""
    from resurgo.classifier import classify
    from resurgo.classifier._types import Observation
    from resurgo.clock import FakeClock

    clock = FakeClock()
    lim = make_endpoint_limiter(URL, algorithm="aimd", max_limit=16, clock=clock, initial=8)
    sig = AttemptSignals(lim, lim.acquire())
    clock.advance(1)
    sig.finish(succeeded=False, cancelled=False, error=classify(Observation(exit_code=1, events=[R_529])))
    assert lim.paused_for() == 0 and lim.limit == 4
    sig2 = AttemptSignals(lim, lim.acquire())
    sig2.finish(succeeded=False, cancelled=False, error=classify(Observation(exit_code=1, events=[r_usage_limit(600)])))
    assert lim.paused_for() > 500


def test_api_retry_overload_events_cut_at_once_and_the_end_does_not_cut_again(tmp_path: Path) -> None:
    from resurgo.clock import FakeClock
    from resurgo.store import Store
    from resurgo.supervise._adaptive import LimitRecorder

    clock = FakeClock()
    lim = make_endpoint_limiter(URL, algorithm="aimd", max_limit=16, clock=clock, initial=8)
    store = Store(":memory:")
    lim.add_listener(LimitRecorder(store, lim))
    lease = lim.acquire()
    sig = AttemptSignals(lim, lease)
    clock.advance(1)
    sig.on_event("system", "api_retry", {"error_status": 529}, clock.monotonic())
    assert lim.limit == 4
    sig.on_event("system", "api_retry", {"error_status": 500}, clock.monotonic())  # not an overload
    assert lim.limit == 4
    from resurgo.classifier import classify
    from resurgo.classifier._types import Observation

    err = classify(Observation(exit_code=1, events=[R_529]))
    sig.finish(succeeded=False, cancelled=False, error=err)
    assert lim.limit == 4 and lim.inflight == 0
    rows = [dict(r) for r in store.query("SELECT kind FROM concurrency_samples")]
    # one overload signal: the api_retry; the final result of the same refusal is counted as a drop, not again
    assert [r["kind"] for r in rows].count("overload") == 1
    assert lim.snapshot().drops == 1 and lim.snapshot().overload_signals == 1  # drops: leases given back as such


def test_rate_limit_event_rejected_pauses_until_its_reset() -> None:
    from resurgo.clock import FakeClock

    clock = FakeClock()
    lim = make_endpoint_limiter(URL, algorithm="aimd", max_limit=16, clock=clock)
    sig = AttemptSignals(lim, lim.acquire())
    sig.on_event("rate_limit_event", None,
                 {"rate_limit_info": {"status": "rejected", "resetsAt": clock.time() + 600}}, clock.monotonic())
    assert lim.paused_for() == pytest.approx(600)
    sig.on_event("rate_limit_event", None,
                 {"rate_limit_info": {"status": "allowed", "resetsAt": clock.time() + 9000}}, clock.monotonic())
    assert lim.paused_for() == pytest.approx(600)


def test_fixed_concurrency_has_no_limiter(tmp_path: Path) -> None:
    rig = Rig(tmp_path, lambda spec, n: {"exit_code": 0, "result": R_OK}, concurrency=3)
    assert rig.orch.endpoint(URL).limiter is None


def test_config_accepts_auto_and_rejects_nonsense() -> None:
    c = SupervisorConfig(concurrency="auto", max_concurrency=12, concurrency_algorithm="gradient")
    assert c.adaptive and c.max_jobs == 12
    assert SupervisorConfig(concurrency=3).max_jobs == 3
    for bad in ({"concurrency": "lots"}, {"concurrency": 0}, {"max_concurrency": 0}, {"max_concurrency": 5000},
                {"concurrency_algorithm": "cubic"}):
        with pytest.raises(ConfigError):
            SupervisorConfig(**bad)  # type: ignore[arg-type]


def test_configuration_file_and_cli_option(tmp_path: Path) -> None:
    import click

    from resurgo.cli._concurrency import concurrency_option
    from resurgo.config._schema import concurrency_value

    check = concurrency_value()
    assert check("auto") == "auto" and check("AUTO") == "auto" and check(8) == 8 and check("8") == 8
    with pytest.raises(Exception, match="auto"):
        check("many")
    assert concurrency_option(None, None, "auto") == "auto"
    assert concurrency_option(None, None, "16") == 16
    with pytest.raises(click.BadParameter):
        concurrency_option(None, None, "0")
    with pytest.raises(click.BadParameter):
        concurrency_option(None, None, "x")


def test_limits_table_is_created_on_demand() -> None:
    from resurgo.store import Store

    s = Store(":memory:")
    ensure_limits_schema(s)
    ensure_limits_schema(s)
    assert s.query("SELECT COUNT(*) FROM concurrency_samples")[0][0] == 0
