"""The dashboard opens on a range that fits the data: a 20-second demo fills the charts.

Before, it opened on 24 h, so a short run was a sliver at the right edge and the breaker band
hid its transitions.  The same store on #24h shows what the fit avoids.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from synthetic import _attempt, _err, _job, _rec, _trans
from test_browser import ARTIFACTS, browser  # noqa: F401

from resurgo.dashboard import Dashboard
from resurgo.store import Store
from resurgo.store.schema import ensure_schema

pytestmark = pytest.mark.browser

NOW = float(int(time.time()))
T0 = NOW - 600  # a 20-second demo that ended ten minutes ago


@pytest.fixture
def demo_store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "demo.db")
    ensure_schema(s)
    _job(s, T0, "d1", "tidy", "succeeded", 0, 8, 1, 0)
    _job(s, T0, "d2", "crash-me", "succeeded", 0.5, 19, 3, 2)
    _job(s, T0, "d3", "summary", "succeeded", 1, 12, 2, 1)
    a = _attempt(s, T0, "d2", 1, "start", 0.5, 1, 4, "failed", killed_by="signal")
    _attempt(s, T0, "d2", 2, "resume", 5, 5.5, 7, "failed", killed_by="signal")
    _attempt(s, T0, "d2", 3, "resume", 8, 8.5, 19, "succeeded")
    b = _attempt(s, T0, "d3", 1, "start", 1, 1.5, 2, "failed")
    _attempt(s, T0, "d3", 2, "resume", 6, 6.5, 12, "succeeded")
    _rec(s, T0, "d2", "resume_session", 4, None, 0, 0, "process", "proc:sigkill", a)
    _rec(s, T0, "d2", "resume_session", 7, 8.5, 0, 1, "process", "proc:sigkill")
    _rec(s, T0, "d3", "resume_session", 2, 6.5, 0, 1, "resource", "api:529", b)
    for ts, sig in ((2, "api:529"), (2.2, "api:529"), (4, "proc:sigkill"), (7, "proc:sigkill")):
        _err(s, T0, ts, "d3" if sig == "api:529" else "d2", "resource" if sig == "api:529" else "process", 1, sig, sig)
    _trans(s, T0, "endpoint:http://127.0.0.1:9", 2.3, "closed", "open", "failure rate 100%")
    _trans(s, T0, "endpoint:http://127.0.0.1:9", 5.0, "open", "half_open", "wait over")
    _trans(s, T0, "endpoint:http://127.0.0.1:9", 6.6, "half_open", "closed", "probe succeeded")
    yield s
    s.close()


def _band_widths(page: Any) -> dict[str, float]:
    """Total width of the breaker row's bands per state, as a fraction of the row."""
    return dict(page.evaluate("""() => {
        const rs = [...document.querySelectorAll('#chart-breakers svg rect.band')];
        const total = rs.reduce((a, r) => a + r.width.baseVal.value, 0) || 1;
        const out = {};
        for (const r of rs) out[r.dataset.state] = (out[r.dataset.state] || 0) + r.width.baseVal.value / total;
        return Object.entries(out);
    }"""))


def test_opens_on_a_range_that_fits_a_short_run_and_keeps_the_buttons(browser: Any, demo_store: Store) -> None:  # noqa: F811
    with Dashboard(demo_store, now=lambda: NOW, poll_s=0.1) as dash:
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        summaries: list[str] = []
        page.on("request", lambda r: summaries.append(r.url) if "api/summary" in r.url else None)
        page.goto(dash.url)
        page.wait_for_selector("body[data-loaded='1']", timeout=15000)
        assert page.get_attribute("#ranges button.on", "data-range") == "fit"
        assert [b for b in page.eval_on_selector_all("#ranges button", "bs => bs.map(b => b.dataset.range)")] == [
            "fit", "15m", "1h", "6h", "24h", "7d", "all"]
        # the window asked for is the run (19 s) with a small margin, not the last 24 h
        fitted = [u for u in summaries if "start=" in u]
        assert fitted, summaries
        q = dict(p.split("=") for p in fitted[-1].split("?")[1].split("&"))
        start, end = float(q["start"]), float(q["end"])
        assert start <= T0 and end >= T0 + 19 and end - start < 40, (start - T0, end - T0)
        fit = _band_widths(page)
        assert fit.get("open", 0) > 0.05 and fit.get("half_open", 0) > 0.03, fit
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-fit.png"), full_page=True)

        # the buttons still work, and 24 h shows the sliver the fit avoids
        page.click('#ranges button[data-range="24h"]')
        page.wait_for_function("() => location.hash === '#24h'")
        page.wait_for_function("n => +document.body.dataset.refreshes > n", arg=int(
            page.evaluate("() => +document.body.dataset.refreshes")))
        day = _band_widths(page)
        assert day.get("open", 0) < 0.01, day
        assert not problems, problems
        page.close()
