"""Credentials in ANTHROPIC_BASE_URL never become names: breakers, jobs.endpoint, health, metrics (issue 15, item 9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from resurgo._endpoints import endpoint_name
from resurgo.clock import SYSTEM_CLOCK
from resurgo.store import Store
from resurgo.supervise import Supervisor, SupervisorConfig

from .test_orchestrator import R_529, R_OK, FakeManager

SECRET = "hunter2-SECRET-0123456789"
URL = f"https://alice:{SECRET}@gateway.example:8443/anthropic?key={SECRET}"


def test_endpoint_name_keeps_host_and_tells_endpoints_apart() -> None:
    n = endpoint_name(URL)
    assert SECRET not in n and "alice" not in n
    assert n.startswith("https://gateway.example:8443/<redacted>#")
    other = endpoint_name(URL.replace("/anthropic", "/other"))
    assert other != n and other.split("#")[0] == n.split("#")[0]
    assert endpoint_name(URL) == n  # the same on every worker of a fleet
    assert endpoint_name("https://api.anthropic.com") == "https://api.anthropic.com"
    assert endpoint_name("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"


async def test_a_secret_in_the_base_url_reaches_no_name(tmp_path: Path) -> None:
    from prometheus_client import generate_latest

    from resurgo.observe._prometheus import make_registry

    home = tmp_path / "home"
    home.mkdir()

    def script(spec: Any, n: int) -> dict[str, Any]:
        # a 529 first (a breaker transition, an error row), then success
        return {"exit_code": 1, "result": R_529, "duration": 0.01} if n == 0 else \
            {"exit_code": 0, "result": R_OK, "duration": 0.01}

    mgr = FakeManager(SYSTEM_CLOCK, script, home)  # type: ignore[arg-type]
    store = Store(str(tmp_path / "s.db"))
    from resurgo.breaker import CircuitThresholds

    sup = Supervisor(SupervisorConfig(store=store, backoff_base=0.01, backoff_cap=0.05,
                                      breaker=CircuitThresholds(failure_rate=0.1, min_calls=1)),
                     manager=mgr,  # type: ignore[arg-type]
                     environ={"HOME": str(home), "ANTHROPIC_BASE_URL": URL})
    async with sup:
        await sup.run("p", cwd=tmp_path)
        health = await sup.health.check_api(URL)
        names = [b.name for b in sup.breakers.values()]
    assert SECRET not in health.name and "gateway.example" in health.name
    assert names and all(SECRET not in n for n in names)
    dump = "\n".join(str(tuple(r)) for t in ("jobs", "breaker_transitions", "health", "recoveries", "errors")
                     for r in store.query(f"SELECT * FROM {t}"))
    assert "gateway.example" in dump  # the endpoint is there, by name
    assert SECRET not in dump
    assert SECRET not in generate_latest(make_registry(store)).decode()
    store.close()
