"""The dashboard under hostile requests (issue 15, items 4, 5 and 12)."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from synthetic import NOW, T0

from resurgo.dashboard import Dashboard, DashboardError
from resurgo.store import Store


def get(d: Dashboard, path: str, headers: dict[str, str] | None = None,
        timeout: float = 10.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_bucket_width_is_clamped() -> None:
    from resurgo.dashboard._server import MAX_BUCKETS, bucket_width

    assert bucket_width("1e-300", 3600.0) == 3600.0 / MAX_BUCKETS  # 1e-300 used to exhaust memory
    assert bucket_width("600", 3600.0) == 600.0
    assert bucket_width("", 3600.0) is None


def test_tiny_buckets_are_raised_to_a_bounded_count(dash: Dashboard) -> None:
    # (small enough to show the clamp, not so small that a regression would eat the machine's memory)
    for b in ("0.01", "0.5"):
        status, body = get(dash, f"/api/errors?start={T0}&end={NOW}&bucket={b}")
        assert status == 200, body
        series = json.loads(body)["series"]
        assert 1 <= len(series["counts"]) <= 2000
        assert series["bucket_s"] >= (NOW - T0) / 2000
    # a sensible bucket is kept as asked
    series = json.loads(get(dash, f"/api/errors?start={T0}&end={NOW}&bucket=600")[1])["series"]
    assert series["bucket_s"] == 600


@pytest.mark.parametrize("query", [
    "start=-inf", "start=nan", f"start={T0}&end=inf", "bucket=nan", "bucket=inf", "bucket=0", "bucket=-5",
    "start=-1e308&end=1e308", "bucket=abc",
])
def test_non_finite_or_absurd_numbers_are_a_400(dash: Dashboard, query: str) -> None:
    status, body = get(dash, f"/api/errors?{query}")
    assert status == 400, (query, body)
    assert json.loads(body)["status"] == 400


def test_cross_site_requests_to_a_tokenless_dashboard_are_refused(dash: Dashboard) -> None:
    assert get(dash, "/api/summary", {"Sec-Fetch-Site": "cross-site"})[0] == 403
    assert get(dash, "/api/summary", {"Sec-Fetch-Site": "same-site"})[0] == 403  # another port of localhost
    assert get(dash, "/metrics", {"Origin": "http://evil.example"})[0] == 403
    assert get(dash, "/api/jobs", {"Origin": "null"})[0] == 403
    # the page's own requests, typed addresses and tools without these headers still work
    host = f"127.0.0.1:{dash.port}"
    assert get(dash, "/api/summary", {"Sec-Fetch-Site": "same-origin", "Origin": f"http://{host}"})[0] == 200
    assert get(dash, "/", {"Sec-Fetch-Site": "none"})[0] == 200
    assert get(dash, "/api/summary")[0] == 200


def test_short_tokens_are_refused(store: Store) -> None:
    with pytest.raises(DashboardError, match="too short"):
        Dashboard(store, token="tok-123")
    with pytest.raises(DashboardError, match="too short"):
        Dashboard(store, host="0.0.0.0", token="x" * 15)


def test_a_500_does_not_show_the_exception(dash: Dashboard, monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    def boom(path: str, params: Any) -> Any:
        raise RuntimeError("no such table: /home/alice/secret-project/runs.db")

    monkeypatch.setattr(dash, "api", boom)
    with caplog.at_level(logging.ERROR, logger="resurgo.dashboard._server"):
        status, body = get(dash, "/api/summary")
    assert status == 500
    assert b"secret-project" not in body and b"RuntimeError" not in body
    assert json.loads(body)["error"].startswith("internal error")
    assert "secret-project" in caplog.text  # the details are in the log


def test_nan_in_the_store_is_null_not_a_dropped_connection(dash: Dashboard, store: Store) -> None:
    job = store.query("SELECT id FROM jobs LIMIT 1")[0]["id"]
    # stream-json is parsed with Python's json, which accepts NaN and Infinity
    store.execute("INSERT INTO events(job_id, attempt_id, ts, source, type, subtype, data_json)"
                  " VALUES(?, NULL, ?, 'cli', 'result', NULL, ?)",
                  (job, NOW - 1, '{"total_cost_usd": NaN, "duration_ms": Infinity}'))
    status, body = get(dash, f"/api/jobs/{job}")
    assert status == 200
    data = json.loads(body)  # strict JSON: no NaN tokens
    ev = [e for e in data["events"] if isinstance(e.get("data"), dict) and "duration_ms" in e["data"]]
    assert ev and ev[0]["data"] == {"total_cost_usd": None, "duration_ms": None}


@pytest.fixture
def small(store: Store) -> Iterator[Dashboard]:
    d = Dashboard(store, now=lambda: NOW, workers=4, max_streams=2, header_timeout=30.0)
    d.start()
    yield d
    d.shutdown()


def _idle(port: int, n: int, first_bytes: bytes = b"") -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if first_bytes:
            s.sendall(first_bytes)
        socks.append(s)
    return socks


def test_idle_and_trickling_connections_do_not_tie_up_the_server(small: Dashboard) -> None:
    # 24 silent connections and 8 that started a request and stalled: 8 times the 4 workers
    socks = _idle(small.port, 24) + _idle(small.port, 8, b"GET /api/summary HTTP/1.1\r\nHost: x")
    try:
        time.sleep(0.3)
        t0 = time.monotonic()
        status, body = get(small, "/healthz", timeout=5.0)  # generous: without the gate it hangs for 30 s
        assert status == 200 and json.loads(body) == {"ok": True}
        assert get(small, f"/api/summary?start={T0}&end={NOW}", timeout=5.0)[0] == 200
        assert time.monotonic() - t0 < 5.0
    finally:
        for s in socks:
            s.close()


def test_a_flood_of_idle_connections_evicts_the_oldest(store: Store) -> None:
    d = Dashboard(store, now=lambda: NOW, workers=4, max_streams=2, max_pending=8, max_per_client=6).start()
    try:
        socks = _idle(d.port, 20)
        try:
            time.sleep(0.3)
            assert get(d, "/healthz", timeout=5.0)[0] == 200
            assert d.httpd.gate.evicted >= 12
            # the evicted ones were closed by the server: reading them ends at once
            closed = 0
            for s in socks[:10]:
                s.settimeout(2.0)
                try:
                    closed += s.recv(1) == b""
                except (ConnectionResetError, TimeoutError, OSError):
                    closed += 1
            assert closed == 10
        finally:
            for s in socks:
                s.close()
    finally:
        d.shutdown()


def test_headers_that_never_finish_are_dropped_after_the_deadline(store: Store) -> None:
    d = Dashboard(store, now=lambda: NOW, workers=4, max_streams=2, header_timeout=0.5).start()
    try:
        (s,) = _idle(d.port, 1, b"GET / HTTP/1.1\r\n")
        s.settimeout(5.0)
        t0 = time.monotonic()
        assert s.recv(1) == b""  # closed by the server, well before our 5 s
        assert time.monotonic() - t0 < 4.0
        s.close()
    finally:
        d.shutdown()
