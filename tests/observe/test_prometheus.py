"""The Prometheus collector over the synthetic store, and the ways to mount it."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from synthetic import build

from resurgo.observe import ResurgoCollector, make_registry, metrics_text, start_metrics_server
from resurgo.store import Store

T0 = 1_700_000_000.0
NOW = T0 + 3600


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


@pytest.fixture
def store() -> Store:
    s = Store(":memory:")
    build(s, T0)
    return s


def test_collector_values(store: Store) -> None:
    body, ctype = metrics_text(store, window_s=3600, now=lambda: NOW)
    assert ctype.startswith("text/plain")
    s = samples(body.decode())
    assert s[("resurgo_store_up", ())] == 1
    assert s[("resurgo_jobs_total", (("state", "succeeded"),))] == 2
    assert s[("resurgo_jobs_total", (("state", "failed"),))] == 2
    assert s[("resurgo_jobs_total", (("state", "cancelled"),))] == 1
    assert s[("resurgo_jobs_in_state", (("state", "recovering"),))] == 1
    assert s[("resurgo_jobs_in_state", (("state", "running"),))] == 0
    assert s[("resurgo_job_attempts_total", ())] == 10
    # all history: 8 errors, including the one before t0
    assert s[("resurgo_errors_total", (("retryable", "true"), ("type", "network")))] == 2
    assert s[("resurgo_errors_total", (("retryable", "false"), ("type", "auth")))] == 1
    assert s[("resurgo_retries_total", (("outcome", "succeeded"),))] == 3
    assert s[("resurgo_retries_total", (("outcome", "failed"),))] == 1
    assert s[("resurgo_retry_attempts_total", ())] == 10
    assert s[("resurgo_retry_sleep_seconds_total", ())] == pytest.approx(28.5)
    assert s[("resurgo_recoveries_total", (("outcome", "pending"), ("strategy", "resume_session")))] == 1
    assert s[("resurgo_recoveries_total", (("outcome", "failed"), ("strategy", "resume_session")))] == 1
    # histogram: resume_session restored once in 10 s; wait_until in 30 s (10 s without the wait)
    assert s[("resurgo_recovery_seconds_bucket", (("le", "5.0"), ("strategy", "resume_session")))] == 0
    assert s[("resurgo_recovery_seconds_bucket", (("le", "10.0"), ("strategy", "resume_session")))] == 1
    assert s[("resurgo_recovery_seconds_count", (("strategy", "wait_until"),))] == 1
    assert s[("resurgo_recovery_seconds_sum", (("strategy", "wait_until"),))] == 30
    assert s[("resurgo_recovery_active_seconds_sum", (("strategy", "wait_until"),))] == 10
    assert s[("resurgo_recovery_active_seconds_bucket", (("le", "10.0"), ("strategy", "wait_until")))] == 1
    assert s[("resurgo_breaker_state", (("breaker", "api"), ("state", "open")))] == 1
    assert s[("resurgo_breaker_state", (("breaker", "api"), ("state", "closed")))] == 0
    assert s[("resurgo_breaker_state", (("breaker", "model:opus"), ("state", "closed")))] == 1
    assert s[("resurgo_breaker_transitions_total",
              (("breaker", "model:opus"), ("from_state", "half_open"), ("to_state", "closed")))] == 1
    assert s[("resurgo_availability_ratio", (("basis", "time"), ("window", "3600s")))] == (
        pytest.approx(1 - 442 / 3800)
    )
    assert s[("resurgo_availability_ratio", (("basis", "jobs"), ("window", "3600s")))] == 0.5
    assert s[("resurgo_mttr_seconds", (("window", "3600s"),))] == pytest.approx(14.0)
    assert s[("resurgo_mttr_active_seconds", (("window", "3600s"),))] == pytest.approx(6.0)
    assert s[("resurgo_mtbf_seconds", (("window", "3600s"),))] == pytest.approx(3358 / 6)


def test_no_data_means_absent_gauges_not_zero() -> None:
    s = Store(":memory:")
    body, _ = metrics_text(s, now=lambda: NOW)
    text = body.decode()
    assert "resurgo_store_up 1.0" in text
    assert "resurgo_availability_ratio{" not in text and "resurgo_mttr_seconds{" not in text


def test_unreadable_store_reports_down_without_failing_the_scrape(tmp_path: Path) -> None:
    s = Store(tmp_path / "s.db")
    registry = make_registry(s)
    s.execute("CREATE TABLE jobs (x)")  # a table the schema would create, but wrong
    body, _ = metrics_text(registry)
    assert samples(body.decode())[("resurgo_store_up", ())] == 0


def test_collector_in_a_user_registry(store: Store) -> None:
    reg = CollectorRegistry()
    reg.register(ResurgoCollector(store, window_s=None, now=lambda: NOW))
    body, _ = metrics_text(reg)
    s = samples(body.decode())
    assert ("resurgo_availability_ratio", (("basis", "time"), ("window", "all"))) in s


def test_start_metrics_server(tmp_path: Path) -> None:
    st = Store(tmp_path / "s.db")
    build(st, T0)
    server, thread = start_metrics_server(0, store=st)
    try:
        port = server.server_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
        assert samples(text)[("resurgo_jobs_total", (("state", "succeeded"),))] == 2
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        st.close()
