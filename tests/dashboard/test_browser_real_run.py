"""The dashboard in a real browser over the store of a REAL supervised run (issue 7).

A small batch goes through the real ``resurgo batch`` command and the real
Claude Code CLI, pointed at the API stand-in, with faults on purpose: a burst of
529 answers (errors, resumed sessions, a breaker that opens, probes and closes)
and one CLI killed with SIGKILL while its Bash tool runs.  Then the dashboard is
served over that store and loaded in Chromium; every number and chart checked
here is compared with :mod:`resurgo.observe` computed over the same store, and a
screenshot is saved to ``test-artifacts/dashboard-real-run.png``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from test_browser import ARGS, ARTIFACTS, CHROMIUM, parse_duration, parse_pct, tile

from resurgo.dashboard import Dashboard
from resurgo.mockapi import Faults, MockServer
from resurgo.observe import job_detail, list_jobs, resolve_window, summary
from resurgo.store import Store

pytestmark = [pytest.mark.browser, pytest.mark.integration]

JOBS = [
    {"name": "tidy", "prompt": "Tidy the notes. [[bash: sleep 1; echo tidied]] [[text: notes tidied]]"},
    {"name": "crash-me", "prompt": "Build the report. [[bash: sleep 3; echo built]] [[text: report built]]",
     "cwd": "crash"},
    {"name": "quick", "prompt": "Say hello. [[text: hello]]"},
]


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


def _kill_tree(proc: subprocess.Popen[str]) -> None:
    """End the resurgo process and everything under it (the CLI's Bash tools run in sessions of their own)."""
    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        kids = []
    for p in [*kids]:
        try:
            p.kill()
        except psutil.Error:
            pass
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def _crash_mid_tool(store_file: Path, crash_dir: Path, batch: subprocess.Popen[str], deadline: float) -> int:
    """Wait until the crash-me job's ``sleep`` tool runs, then SIGKILL its CLI (pid from the store)."""
    while time.monotonic() < deadline and batch.poll() is None:
        tool_running = False
        for p in psutil.process_iter(["name", "cwd"]):
            try:
                if p.info["name"] == "sleep" and p.info["cwd"] and Path(p.info["cwd"]) == crash_dir:
                    tool_running = True
                    break
            except psutil.Error:
                continue
        if tool_running:
            with Store(store_file) as st:
                rows = st.query(
                    "SELECT p.pid FROM processes p JOIN jobs j ON j.id = p.job_id"
                    " WHERE j.name = 'crash-me' AND p.ended_at IS NULL"
                )
            if rows:
                pid = int(rows[0][0])
                os.kill(pid, signal.SIGKILL)
                return pid
        time.sleep(0.1)
    raise AssertionError("the crash-me job's Bash tool never ran; cannot crash it mid-tool")


def _run_batch(tmp_path: Path, claude_bin: str, claude_env: dict[str, str], mock_api: MockServer) -> Path:
    work = tmp_path / "work"
    crash_dir = work / "crash"
    crash_dir.mkdir(parents=True)
    batch_file = work / "jobs.jsonl"
    batch_file.write_text("".join(json.dumps(j) + "\n" for j in JOBS))
    store_file = tmp_path / "runs.db"
    env = {
        **claude_env,
        "ANTHROPIC_BASE_URL": mock_api.url,
        "RESURGO_CLAUDE": claude_bin,
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),  # no user config from the machine running the tests
        "RESURGO_SUPERVISOR_CLAUDE_ARGS": '["--allowedTools", "Bash"]',
        "RESURGO_SUPERVISOR_BACKOFF_BASE": "0.2",
        "RESURGO_SUPERVISOR_BACKOFF_CAP": "1",
        "RESURGO_SUPERVISOR_KILL_GRACE": "1",
        "RESURGO_SUPERVISOR_STALL_TIMEOUT": "20",
        "RESURGO_SUPERVISOR_CLI_MAX_RETRIES": "0",
    }
    # the first 8 requests are "overloaded": 8 failures in a row open the breaker (its default rule)
    mock_api.set_faults(Faults(status=529, count=8))
    batch = subprocess.Popen(
        [sys.executable, "-m", "resurgo", "batch", str(batch_file), "--store", str(store_file), "-j", "3", "-q"],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        _crash_mid_tool(store_file, crash_dir.resolve(), batch, time.monotonic() + 25)
        out, err = batch.communicate(timeout=40)
    finally:
        if batch.poll() is None:
            _kill_tree(batch)
    assert batch.returncode == 0, f"resurgo batch exited {batch.returncode}\n{out}\n{err}"
    return store_file


def test_dashboard_over_a_real_run(
    browser: Any, tmp_path: Path, claude_bin: str, claude_env: dict[str, str], mock_api: MockServer
) -> None:
    store_file = _run_batch(tmp_path, claude_bin, claude_env, mock_api)
    now = float(int(time.time()) + 1)
    with Store(store_file) as store:
        sm = summary(store, now=now, end=now)
        win = resolve_window(store, end=now, now=now)
        jobs = list_jobs(store, win)
        crash = next(j for j in jobs if j["name"] == "crash-me")
        detail = job_detail(store, crash["id"])
        assert detail is not None
        # the run went as intended: this is what makes the page worth checking
        assert sm.jobs == {"succeeded": 3}
        assert sm.errors.by_type.get("resource", 0) >= 3 and sm.errors.by_type.get("process", 0) >= 1
        assert sm.recoveries.count >= 4 and sm.recoveries.succeeded >= 3
        assert any(b.opened >= 1 for b in sm.breakers), "the 529 burst should have opened the breaker"
        # the 529s are retried in the relay (recoveries of their own), the SIGKILL restarts the CLI
        assert crash["attempts"] >= 2
        assert any(r["strategy"] == "relay_retry" for r in store.query("SELECT strategy FROM recoveries"))

        with Dashboard(store, now=lambda: now, poll_s=0.2) as dash:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.goto(dash.url + "#all")
            page.wait_for_selector("body[data-loaded='1']", timeout=15000)

            av, rec, er = sm.availability, sm.recoveries, sm.errors
            assert av.time_ratio is not None and av.job_ratio == 1.0
            assert abs(parse_pct(tile(page, "availability_time")) - av.time_ratio) <= 0.0005 + 1e-9
            assert parse_pct(tile(page, "availability_jobs")) == 1.0
            hint = page.inner_text('.tile[data-metric="availability_jobs"] .hint')
            assert hint == f"{av.jobs_succeeded} of {av.jobs_finished} finished jobs" == "3 of 3 finished jobs"
            assert av.mttr_s is not None
            shown, tol = parse_duration(tile(page, "mttr"))
            assert abs(shown - av.mttr_s) <= tol, (shown, av.mttr_s)
            if av.mtbf_s is not None:
                shown, tol = parse_duration(tile(page, "mtbf"))
                assert abs(shown - av.mtbf_s) <= tol, (shown, av.mtbf_s)
            assert rec.success_rate is not None
            assert abs(parse_pct(tile(page, "recovery_success")) - rec.success_rate) <= 0.0005 + 1e-9
            pending = f" · {rec.pending} pending" if rec.pending else ""
            assert page.inner_text('.tile[data-metric="recovery_success"] .hint') == (
                f"{rec.succeeded} of {rec.succeeded + rec.failed}{pending}"
            )
            assert int(tile(page, "errors")) == er.total
            assert int(tile(page, "jobs_active")) == 0

            # errors over time: stacked segments add up to the stored errors, per type
            bars = page.eval_on_selector_all(
                "#chart-errors svg rect.bar", "rs => rs.map(r => [r.dataset.type, +r.dataset.count])"
            )
            per_type: dict[str, int] = {}
            for t, n in bars:
                per_type[t] = per_type.get(t, 0) + n
            assert per_type == er.by_type
            # breaker timeline: the endpoint's breaker, in the states the store recorded, and visibly
            for b in sm.breakers:
                bands = page.eval_on_selector_all(
                    f'#chart-breakers svg rect.band[data-breaker="{b.name}"]',
                    "rs => rs.map(r => [r.dataset.state, r.getBBox().width])",
                )
                assert [s for s, _ in bands] == [s.state for s in b.segments], b.name
                assert {s for s, _ in bands} >= {"closed", "open"}
                assert all(w >= 1 for _, w in bands), f"a breaker state is drawn too thin to see: {bands}"
            # recovery histogram and per-strategy bars agree with the recoveries table
            hist = page.eval_on_selector_all("#chart-recovery svg rect.bar", "rs => rs.map(r => +r.dataset.count)")
            assert sum(hist) == rec.time.count > 0
            strat = page.eval_on_selector_all(
                "#chart-strategies svg rect.bar",
                "rs => rs.map(r => [r.dataset.strategy, r.dataset.part, +r.dataset.count])",
            )
            for st in rec.by_strategy:
                got = {part: n for s, part, n in strat if s == st.strategy.replace("_", " ")}
                assert got == {k: v for k, v in (("succeeded", st.succeeded), ("failed", st.failed),
                                                  ("pending", st.pending)) if v}

            # the jobs table: every job of the run, attempts and recoveries as stored
            rows = page.eval_on_selector_all(
                "#jobs tbody tr",
                "rs => rs.map(r => [r.dataset.jobId, +r.children[2].textContent, +r.children[3].textContent])",
            )
            assert rows == [[j["id"], j["attempts"], j["recoveries"]] for j in jobs]
            assert page.inner_text("#jobs-count") == "3 jobs"

            # drill-down into the job that was killed mid-tool: its timeline as the store has it
            page.click(f"#jobs tbody tr[data-job-id='{crash['id']}']")
            page.wait_for_selector("#detail-section:not(.hidden) #chart-job svg")
            assert page.locator("#chart-job svg rect[data-attempt]").count() == len(detail["attempts"])
            assert page.locator("#chart-job svg rect[data-recovery]").count() == len(detail["recoveries"])
            assert page.inner_text("#detail-title") == "crash-me"
            outcomes = page.eval_on_selector_all(
                "#detail-attempts tr", "rs => rs.slice(1).map(r => r.children[4].textContent)"
            )
            assert outcomes == [a["outcome"] or "—" for a in detail["attempts"]]
            assert detail["events_total"] > 0
            shown_events = page.locator("#detail-events .ev").count()
            assert shown_events == min(len(detail["events"]), 300)
            page.wait_for_timeout(300)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard-real-run.png"), full_page=True)
            assert not problems, problems
            page.close()
