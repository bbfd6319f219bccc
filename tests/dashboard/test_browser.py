"""The dashboard in a real browser (Debian's chromium through Playwright).

Loads the page over a store, checks that the charts are drawn and that every
number on screen agrees with the metrics computed from the same store, follows
a live update, and saves a screenshot to test-artifacts/dashboard.png.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from synthetic import SECRET_ARG, SECRET_KEY, build

from resurgo.dashboard import Dashboard
from resurgo.observe import list_jobs, resolve_window, summary
from resurgo.store import Store

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
NOW = float(int(time.time()))
T0 = NOW - 3600


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    import playwright.sync_api as playwright  # a dev dependency: missing means set-up failed

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is not installed (scripts/setup.sh installs it)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def busy_store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "runs.db")
    build(s, T0, busy=True)
    yield s
    s.close()


def parse_duration(text: str) -> tuple[float, float]:
    """'11.2 s' -> (11.2, half a display unit): the value and how far rounding may move it."""
    m = re.fullmatch(r"([\d.]+) (ms|s|min|h|d)", text.strip())
    assert m, f"not a duration: {text!r}"
    unit = {"ms": 0.001, "s": 1, "min": 60, "h": 3600, "d": 86400}[m.group(2)]
    half = (0.5 if m.group(2) == "ms" else 0.05) * unit
    return float(m.group(1)) * unit, half + 1e-9


def parse_pct(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)%", text.strip())
    assert m, f"not a percentage: {text!r}"
    return float(m.group(1)) / 100


def tile(page: Any, metric: str) -> str:
    return str(page.inner_text(f'.tile[data-metric="{metric}"] .value'))


def test_dashboard_shows_the_store(browser: Any, busy_store: Store) -> None:
    with Dashboard(busy_store, now=lambda: NOW, poll_s=0.1) as dash:
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(dash.url + "#1h")
        page.wait_for_selector("body[data-loaded='1']", timeout=15000)

        sm = summary(busy_store, start=NOW - 3600, end=NOW, now=NOW)
        av, rec, rt, er = sm.availability, sm.recoveries, sm.retries, sm.errors
        assert av.time_ratio is not None and av.job_ratio is not None
        assert abs(parse_pct(tile(page, "availability_time")) - av.time_ratio) <= 0.0005 + 1e-9
        assert abs(parse_pct(tile(page, "availability_jobs")) - av.job_ratio) <= 0.0005 + 1e-9
        assert rec.success_rate is not None and rt.success_rate is not None
        assert abs(parse_pct(tile(page, "recovery_success")) - rec.success_rate) <= 0.0005 + 1e-9
        assert abs(parse_pct(tile(page, "retry_success")) - rt.success_rate) <= 0.0005 + 1e-9
        for metric, expected in (("mttr", av.mttr_s), ("mtbf", av.mtbf_s)):
            shown, tol = parse_duration(tile(page, metric))
            assert expected is not None and abs(shown - expected) <= tol, (metric, shown, expected)
        assert int(tile(page, "errors")) == er.total
        active = sum(sm.jobs.get(s, 0) for s in ("running", "recovering", "waiting"))
        assert int(tile(page, "jobs_active")) == active
        hint = page.inner_text('.tile[data-metric="availability_jobs"] .hint')
        assert hint == f"{av.jobs_succeeded} of {av.jobs_finished} finished jobs"
        # time-based availability excluding the waits the endpoint imposed, beside the plain one
        hint = page.inner_text('.tile[data-metric="availability_time"] .hint')
        assert av.time_ratio_excl_imposed is not None and av.imposed_s > 0
        assert hint.endswith(f"excl. imposed waits {av.time_ratio_excl_imposed * 100:.1f}%"), hint

        # errors over time: one stacked bar segment per (bucket, type); they add up to the total
        counts = page.eval_on_selector_all("#chart-errors svg rect.bar", "rs => rs.map(r => +r.dataset.count)")
        assert counts and sum(counts) == er.total
        types = set(page.eval_on_selector_all("#chart-errors svg rect.bar", "rs => rs.map(r => r.dataset.type)"))
        assert types == set(er.by_type)
        # breaker timeline: a row per breaker, bands in exactly the states the store says it visited
        for b in sm.breakers:
            states = page.eval_on_selector_all(
                f'#chart-breakers svg rect.band[data-breaker="{b.name}"]', "rs => rs.map(r => r.dataset.state)"
            )
            assert set(states) == set(b.seconds_in), b.name
            assert len(states) == len(b.segments)
        # recovery histogram: bars add up to the restored recoveries
        hist = page.eval_on_selector_all("#chart-recovery svg rect.bar", "rs => rs.map(r => +r.dataset.count)")
        assert sum(hist) == rec.time.count
        by_strategy = page.eval_on_selector_all(
            "#chart-strategies svg rect.bar",
            "rs => rs.map(r => [r.dataset.strategy, r.dataset.part, +r.dataset.count])",
        )
        for st in rec.by_strategy:
            label = st.strategy.replace("_", " ")
            got = {part: n for s, part, n in by_strategy if s == label}
            assert got == {k: v for k, v in (("succeeded", st.succeeded), ("failed", st.failed),
                                              ("pending", st.pending)) if v}

        # jobs table: the jobs alive in the window, newest first
        win = resolve_window(busy_store, start=NOW - 3600, end=NOW, now=NOW)
        rows = page.eval_on_selector_all("#jobs tbody tr", "rs => rs.map(r => r.dataset.jobId)")
        assert rows == [j["id"] for j in list_jobs(busy_store, win)]

        # drill-down into j1: two attempts, one recovery, five events, secrets redacted
        page.click("#jobs tbody tr[data-job-id='j1']")
        page.wait_for_selector("#detail-section:not(.hidden) #chart-job svg")
        assert page.locator("#chart-job svg rect[data-attempt]").count() == 2
        assert page.locator("#chart-job svg rect[data-recovery]").count() == 1
        assert page.inner_text("#detail-events-count") == "(5)"
        assert page.locator("#detail-events .ev").count() == 5
        html = page.content()
        assert SECRET_KEY not in html and SECRET_ARG not in html
        assert "<redacted>" in page.inner_text("#detail-section")  # shown as text, not parsed as a tag

        page.wait_for_timeout(400)  # let the last refresh settle before the picture
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

        # live: a new error in the store reaches the page through the event stream
        assert page.inner_text("#live-text") == "live"
        busy_store.execute(
            "INSERT INTO errors(ts, job_id, type, retryable, signature, message)"
            " VALUES(?, 'j5', 'network', 1, 'net:late', 'late error')",
            (NOW - 5,),
        )
        page.wait_for_function(
            f"() => document.querySelector('.tile[data-metric=errors] .value').textContent === '{er.total + 1}'",
            timeout=10000,
        )
        assert not problems, problems
        assert all(u.startswith(dash.url.rstrip("/")) for u in requests), requests
        page.close()


def test_health_strip_shows_chips_and_follows_changes(browser: Any, busy_store: Store) -> None:
    import socket

    from resurgo.supervise._jobstore import owner_id

    live, dead = owner_id(), f"{socket.gethostname()}:999999:1"
    for owner, comp, state in (
        (live, "api:http://127.0.0.1:9", "healthy"),
        (live, "process:4242", "degraded"),
        (live, "disk:/var", "healthy"),
        (dead, "disk:/gone", "unhealthy"),
    ):
        busy_store.execute("INSERT INTO health VALUES(?,?,?,?,?)", (owner, comp, state, f"{comp} detail", NOW - 2))
    with Dashboard(busy_store, now=lambda: NOW, poll_s=0.1) as dash:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.goto(dash.url + "#1h")
        page.wait_for_selector("body[data-loaded='1']", timeout=15000)
        chips = page.eval_on_selector_all(
            "#health-chips .chip", "cs => cs.map(c => [c.dataset.component, c.dataset.state, c.className])"
        )
        assert chips == [
            ["api:http://127.0.0.1:9", "healthy", "chip healthy"],
            ["disk:/var", "healthy", "chip healthy"],
            ["process:4242", "degraded", "chip degraded"],
        ]  # the dead supervisor's disk:/gone is not shown
        assert page.inner_text("#health-overall") == "degraded"
        assert "process:4242 detail" in (page.get_attribute('.chip[data-component="process:4242"]', "title") or "")
        # a component turning unhealthy reaches the page through the event stream
        busy_store.execute("UPDATE health SET state='unhealthy' WHERE owner=? AND component='disk:/var'", (live,))
        page.wait_for_selector('.chip.unhealthy[data-component="disk:/var"]', timeout=10000)
        assert page.inner_text("#health-overall") == "unhealthy"
        assert not problems, problems
        page.close()


def test_page_falls_back_to_polling_when_streams_are_refused(browser: Any, busy_store: Store) -> None:
    with Dashboard(busy_store, now=lambda: NOW, max_streams=0) as dash:
        page = browser.new_page()
        page.goto(dash.url + "#1h")
        page.wait_for_selector("body[data-loaded='1']", timeout=15000)
        page.wait_for_function("() => document.getElementById('live-text').textContent.startsWith('polling')",
                               timeout=10000)
        before = int(tile(page, "errors"))
        busy_store.execute(
            "INSERT INTO errors(ts, type, retryable, message) VALUES(?, 'timeout', 1, 'polled')", (NOW - 5,)
        )
        page.wait_for_function(
            f"() => document.querySelector('.tile[data-metric=errors] .value').textContent === '{before + 1}'",
            timeout=12000,
        )
        page.close()


def test_token_page_in_the_browser(browser: Any, busy_store: Store) -> None:
    with Dashboard(busy_store, now=lambda: NOW, token="tok-123-4567890abcdef") as dash:
        page = browser.new_page()
        resp = page.goto(dash.url)
        assert resp is not None and resp.status == 401
        assert "needs its access token" in page.inner_text("body")
        page.goto(dash.url + "?token=tok-123-4567890abcdef#1h")
        page.wait_for_selector("body[data-loaded='1']", timeout=15000)
        assert "token" not in page.url  # dropped from the address bar after the cookie was set
        assert int(tile(page, "errors")) > 0
        page.close()
