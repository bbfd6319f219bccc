"""``concurrency="auto"`` with the real Claude Code CLI against the capacity-limited stand-in.

The stand-in answers one request at a time (K=1; one more gets 529) and each
answer takes a second, so a batch started above capacity is refused, the
endpoint's limit drops, and the API calls that then succeed raise it again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from resurgo.mockapi import Capacity, MockServer
from resurgo.supervise import JobSpec, Supervisor, SupervisorConfig

pytestmark = pytest.mark.integration


@pytest.fixture
def capped() -> Any:
    srv = MockServer(capacity=Capacity(max_inflight=1, latency=1.0), record_bodies=False)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _config(claude_bin: str, tmp_path: Path, concurrency: int | str, env: dict[str, str]) -> SupervisorConfig:
    return SupervisorConfig(
        claude=claude_bin,
        env=env,
        store=str(tmp_path / "store.db"),
        concurrency=concurrency,  # type: ignore[arg-type]
        max_concurrency=8,
        cli_max_retries=0,  # resurgo owns the retries: every refusal ends the attempt
        max_recoveries=30,
        backoff_base=0.2,
        backoff_cap=2.0,
        stall_timeout=60,
        claude_args=("--allowedTools", "Bash"),
    )


def _specs(tmp_path: Path, n: int) -> list[JobSpec]:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return [JobSpec(f"[[bash: echo job{i}]] [[text: done {i}]]", cwd=work, name=f"j{i}") for i in range(n)]


async def _batch(claude_bin: str, claude_env: dict[str, str], srv: MockServer, tmp_path: Path,
                 concurrency: int | str, n: int, start_limit: int | None = None) -> tuple[Supervisor, Any]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    env = {**claude_env, "ANTHROPIC_BASE_URL": srv.url}
    sup = Supervisor(config=_config(claude_bin, tmp_path, concurrency, env))
    async with sup:
        if start_limit is not None:
            sup.orchestrator.endpoint(srv.url).limiter.set_limit(start_limit, reason="test: start above capacity")
        results = await sup.run_many(_specs(tmp_path, n))
    return sup, results


async def test_the_limit_drops_on_529s_and_recovers(
    claude_bin: str, claude_env: dict[str, str], capped: MockServer, tmp_path: Path
) -> None:
    _, results = await _batch(claude_bin, claude_env, capped, tmp_path, "auto", 6, start_limit=5)
    assert all(r.ok for r in results), [(r.state, r.reason) for r in results]
    st = capped.capacity_stats()
    assert st["refused_inflight"] >= 1  # started above capacity: the API refused
    from resurgo.store import Store

    store = Store(str(tmp_path / "store.db"))
    try:
        rows = [dict(r) for r in store.query(
            "SELECT kind, limit_value, value, detail FROM concurrency_samples ORDER BY id")]
    finally:
        store.close()
    cut = next(i for i, r in enumerate(rows) if r["kind"] == "overload" and "(not applied)" not in r["detail"])
    limits_after = [r for r in rows[cut:] if r["kind"] == "limit"]
    assert limits_after[0]["limit_value"] < limits_after[0]["value"]  # the 529 cut the limit
    low = min(r["limit_value"] for r in limits_after)
    assert any(r["limit_value"] > low and r["detail"] == "api call" for r in limits_after)  # and calls raised it


@pytest.mark.slow
async def test_gate_a_fixed_high_concurrency_is_refused_far_more_than_auto(
    claude_bin: str, claude_env: dict[str, str], capped: MockServer, tmp_path: Path
) -> None:
    """The property adaptive concurrency exists for, and what breaks it: all 12 jobs at once against K=2."""
    capped.set_capacity(max_inflight=2, latency=1.0)
    _, fixed = await _batch(claude_bin, claude_env, capped, tmp_path / "fixed", 12, 12)
    refused_fixed = capped.capacity_stats()["refused_inflight"]
    _, auto = await _batch(claude_bin, claude_env, capped, tmp_path / "auto", "auto", 12)
    refused_auto = capped.capacity_stats()["refused_inflight"] - refused_fixed
    assert all(r.ok for r in fixed) and all(r.ok for r in auto)
    print(f"refused: fixed 12 {refused_fixed}, auto {refused_auto}")
    assert refused_fixed >= 3 * max(1, refused_auto), (refused_fixed, refused_auto)
