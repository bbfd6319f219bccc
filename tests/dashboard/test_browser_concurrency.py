"""The adaptive concurrency chart in a real browser: the limit line and the overload ticks match the store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from resurgo.clock import FakeClock
from resurgo.dashboard import Dashboard
from resurgo.store import Store
from resurgo.store.schema import ensure_schema
from resurgo.supervise._adaptive import LimitRecorder, make_endpoint_limiter

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
NOW = float(int(time.time()))


@pytest.fixture
def browser() -> Iterator[Any]:
    import playwright.sync_api as playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is not installed (scripts/setup.sh installs it)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def test_the_limit_chart_shows_the_stored_limit_and_signals(browser: Any, tmp_path: Path) -> None:
    store = Store(tmp_path / "runs.db")
    ensure_schema(store)
    clock = FakeClock(wall_start=NOW - 1800)
    lim = make_endpoint_limiter("http://127.0.0.1:9", algorithm="aimd", max_limit=16, clock=clock, initial=2)
    lim.add_listener(LimitRecorder(store, lim))
    leases = [lim.acquire() for _ in range(2)]
    for _ in range(6):
        clock.advance(20)
        leases[0].sample(rtt=1.0)
        if lim.inflight < lim.limit:
            leases.append(lim.acquire())
    clock.advance(20)
    leases[-1].sample(dropped=True, started=clock.monotonic() - 1, reason="api_retry 529")
    clock.advance(20)
    lim.pause(60, reason="usage limit: server reset")
    expected_overloads = store.query("SELECT COUNT(*) FROM concurrency_samples WHERE kind='overload'")[0][0]
    try:
        with Dashboard(store, now=lambda: NOW, poll_s=0.1) as dash:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(dash.url + "#1h")
            page.wait_for_selector("body[data-loaded='1']", timeout=15000)
            line = page.query_selector("#chart-concurrency svg path.limit-line")
            assert line is not None
            assert line.get_attribute("data-current") == str(lim.limit)
            kinds = page.eval_on_selector_all(
                "#chart-concurrency svg line.overload", "ls => ls.map(l => l.dataset.kind)"
            )
            assert len(kinds) == expected_overloads and set(kinds) == {"dropped", "paused"}
            assert page.query_selector("#chart-concurrency svg rect.pause") is not None
            assert "limit 2" in page.inner_text("#concurrency-stats")
            assert not problems, problems
    finally:
        store.close()
