"""The dashboard's HTTP API over the synthetic store: numbers, errors, auth, redaction, streams."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from synthetic import NOW, SECRET_ARG, SECRET_KEY, T0

from resurgo.dashboard import Dashboard, DashboardError, is_loopback, parse_range
from resurgo.observe import summary
from resurgo.store import Store

RANGE = f"start={T0}&end={NOW}"


def get(d: Dashboard, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def get_json(d: Dashboard, path: str, headers: dict[str, str] | None = None) -> Any:
    status, _, body = get(d, path, headers)
    assert status == 200, body
    return json.loads(body)


def test_summary_matches_the_metrics(dash: Dashboard, store: Store) -> None:
    s = get_json(dash, f"/api/summary?{RANGE}")
    expected = summary(store, start=T0, end=NOW, now=NOW).to_dict()
    assert s["availability"] == pytest.approx(expected["availability"])
    assert s["availability"]["time_ratio"] == pytest.approx(1 - 442 / 3800)
    assert s["availability"]["failures"] == 6
    assert s["recoveries"]["time"]["p95"] == 30.0
    assert s["errors"]["by_type"]["auth"] == 1  # a count under a secret-looking key survives
    assert s["jobs"] == {"succeeded": 2, "failed": 2, "recovering": 1, "pending": 1, "cancelled": 1}
    assert s["now"] == NOW
    # range= is relative to the server's clock
    s1h = get_json(dash, "/api/summary?range=1h")
    assert s1h["window"] == {"start": NOW - 3600, "end": NOW, "seconds": 3600.0}


def test_each_endpoint(dash: Dashboard) -> None:
    e = get_json(dash, f"/api/errors?{RANGE}&bucket=600")
    assert e["series"]["bucket_s"] == 600 and len(e["series"]["counts"]) == 6
    assert e["stats"]["total"] == 7
    b = get_json(dash, f"/api/breakers?{RANGE}")
    api = next(x for x in b["breakers"] if x["name"] == "api")
    assert api["seconds_in"]["open"] == pytest.approx(130.0)
    assert [seg["state"] for seg in api["segments"]] == ["closed", "open", "half_open", "closed", "open"]
    r = get_json(dash, f"/api/recoveries?{RANGE}")
    assert r["stats"]["count"] == 5 and len(r["recent"]) == 5
    assert r["recent"][0]["job_name"] == "long-analysis"  # newest first
    jobs = get_json(dash, "/api/jobs")["jobs"]
    assert {j["id"] for j in jobs} == {"j1", "j2", "j3", "j4", "j5", "j6", "j7"}
    assert [j["id"] for j in get_json(dash, "/api/jobs?state=failed")["jobs"]] == ["j4", "j3"]
    detail = get_json(dash, "/api/jobs/j1")
    assert [a["n"] for a in detail["attempts"]] == [1, 2]
    assert [ev["type"] for ev in detail["events"]] == ["system", "assistant", "failure", "system", "result"]
    assert detail["recoveries"][0]["strategy"] == "resume_session"
    assert detail["events"][1]["data"]["message"]["usage"] == {"input_tokens": 120, "output_tokens": 30}


def test_bad_requests_get_clear_errors(dash: Dashboard) -> None:
    status, _, body = get(dash, "/api/summary?range=forever")
    assert status == 400 and "range must be one of" in json.loads(body)["error"]
    status, _, body = get(dash, "/api/errors?start=yesterday")
    assert status == 400 and "start must be epoch seconds" in json.loads(body)["error"]
    status, _, body = get(dash, f"/api/summary?start={NOW}&end={T0}")
    assert status == 400 and "after its end" in json.loads(body)["error"]
    status, _, body = get(dash, "/api/jobs/nope")
    assert status == 404 and "nope" in json.loads(body)["error"]
    assert get(dash, "/api/nothing")[0] == 404
    assert get(dash, "/static/../../etc/passwd")[0] == 404
    assert get(dash, "/api/jobs?limit=x")[0] == 400


def test_secrets_never_leave_the_server(dash: Dashboard) -> None:
    bodies = b""
    for path in ("/api/summary?range=all", "/api/errors?range=all", "/api/recoveries?range=all",
                 "/api/jobs", "/api/jobs/j1", "/api/jobs/j4", "/metrics"):
        status, _, body = get(dash, path)
        assert status == 200, path
        bodies += body
    assert SECRET_KEY.encode() not in bodies
    assert b"SYNTHETICsecret" not in bodies
    assert SECRET_ARG.encode() not in bodies
    d = get_json(dash, "/api/jobs/j1")
    assert d["job"]["env"]["ANTHROPIC_API_KEY"] == "<redacted>"
    assert d["job"]["env"]["HOME"] == "/tmp/h"  # only secrets are hidden
    assert d["job"]["args"] == ["--model", "opus", "--api-key", "<redacted>"]
    assert d["events"][4]["data"]["note"] == "key was sk-ant-<redacted>"
    errs = get_json(dash, "/api/errors?range=all")["stats"]["by_signature"]
    auth = next(s for s in errs if s["type"] == "auth")
    assert auth["message"] == "401 Invalid API key sk-ant-<redacted>"


def test_static_assets_are_local_only(dash: Dashboard) -> None:
    status, headers, _body = get(dash, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in headers["content-security-policy"]
    static = Path(__file__).resolve().parents[2] / "src/resurgo/dashboard/static"
    for f in static.iterdir():
        text = f.read_text()
        # The only URL allowed is the SVG namespace identifier (never fetched).
        urls = {u for u in ("http://", "https://", "//cdn", "fonts.googleapis") if u in
                text.replace("http://www.w3.org/2000/svg", "")}
        assert not urls, (f.name, urls)
        s, _h, b = get(dash, f"/static/{f.name}")
        assert s == 200 and b == f.read_bytes()


def test_non_loopback_bind_requires_a_token(store: Store) -> None:
    with pytest.raises(DashboardError, match="without a token"):
        Dashboard(store, host="0.0.0.0")
    with pytest.raises(DashboardError, match="empty"):
        Dashboard(store, host="0.0.0.0", token="  ")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.com")


def test_token_auth(store: Store) -> None:
    d = Dashboard(store, token="s3cret-token-0123456789", now=lambda: NOW).start()
    try:
        status, headers, body = get(d, "/api/summary")
        assert status == 401 and "token is required" in json.loads(body)["error"]
        assert headers["www-authenticate"].startswith("Bearer")
        assert get(d, "/metrics")[0] == 401
        assert get(d, "/api/summary", {"Authorization": "Bearer wrong"})[0] == 401
        assert get(d, "/api/summary", {"Authorization": "Bearer s3cret-token-0123456789"})[0] == 200
        assert get(d, "/metrics", {"Authorization": "Bearer s3cret-token-0123456789"})[0] == 200
        # ?token= sets a cookie and, for the page, redirects to drop the token from the address
        status, headers, _ = get(d, "/?token=s3cret-token-0123456789")
        assert status == 303 and headers["location"] == "/"
        cookie = headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert get(d, "/api/jobs", {"Cookie": cookie.split(";")[0]})[0] == 200
        assert get(d, "/api/jobs", {"Cookie": "resurgo_token=nope"})[0] == 401
        status, _, body = get(d, "/", {"Accept": "text/html"})
        assert status == 401 and b"needs its access token" in body
        assert get(d, "/static/style.css")[0] == 200  # assets hold no data
        # with a token, any Host header is fine (the token is the protection)
        assert get(d, "/healthz", {"Host": "dash.example", "Authorization": "Bearer s3cret-token-0123456789"})[0] == 200
    finally:
        d.shutdown()


def test_loopback_without_token_rejects_foreign_host_headers(dash: Dashboard) -> None:
    assert get(dash, "/healthz", {"Host": "attacker.example:8765"})[0] == 403
    assert get(dash, "/healthz", {"Host": f"localhost:{dash.port}"})[0] == 200
    assert get(dash, "/healthz", {"Host": "[::1]:80"})[0] == 200


def read_event(sock_file: Any, deadline: float) -> dict[str, str]:
    event: dict[str, str] = {}
    while time.monotonic() < deadline:
        line = sock_file.readline().decode()
        if line in ("\n", "\r\n", ""):
            if "event" in event:
                return event
            if line == "":
                break
            continue
        k, _, v = line.rstrip("\n").partition(": ")
        event[k] = v
    raise AssertionError(f"no event before the deadline, got {event}")


def test_stream_pushes_updates_when_the_store_changes(dash: Dashboard, store: Store) -> None:
    with socket.create_connection(("127.0.0.1", dash.port), timeout=5) as s:
        s.sendall(b"GET /api/stream HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        f = s.makefile("rb")
        assert b"200" in f.readline()
        while f.readline() not in (b"\r\n", b"\n"):
            pass
        first = read_event(f, time.monotonic() + 5)
        assert first["event"] == "update" and json.loads(first["data"]) == {"n": 0}
        store.execute(
            "INSERT INTO errors(ts, type, retryable, message) VALUES(?, 'network', 1, 'late')", (NOW - 1,)
        )
        nxt = read_event(f, time.monotonic() + 5)
        assert json.loads(nxt["data"]) == {"n": 1, "reason": "change"}


def test_health_endpoint_shows_live_supervisors_only(dash: Dashboard, store: Store) -> None:
    from resurgo.supervise._jobstore import owner_id

    empty = get_json(dash, "/api/health")
    assert empty == {"now": NOW, "overall": None, "supervisors": [], "components": []}
    live, dead = owner_id(), f"{socket.gethostname()}:999999:1"  # this process; a pid that does not exist
    for owner, comp, state, detail in (
        (live, "api:http://127.0.0.1:9", "degraded", f"connected in 900 ms; key {SECRET_KEY}"),
        (live, "disk:/var", "healthy", "5000 MB free"),
        (dead, "api:http://127.0.0.1:9", "unhealthy", "gone"),
    ):
        store.execute("INSERT INTO health VALUES(?,?,?,?,?)", (owner, comp, state, detail, NOW - 4))
    status, _, body = get(dash, "/api/health")
    assert status == 200 and SECRET_KEY.encode() not in body
    h = json.loads(body)
    assert h["overall"] == "degraded" and h["supervisors"] == [live]
    assert [(c["component"], c["state"], c["age_s"]) for c in h["components"]] == [
        ("api:http://127.0.0.1:9", "degraded", 4.0), ("disk:/var", "healthy", 4.0)]
    assert h["components"][0]["detail"].startswith("connected in 900 ms")
    # a refresh of the same states is not news for the live stream; a change of state is
    before = dash.fingerprint()
    store.execute("UPDATE health SET ts=ts+5")
    assert dash.fingerprint() == before
    store.execute("UPDATE health SET state='unhealthy' WHERE owner=? AND component LIKE 'api:%'", (live,))
    assert dash.fingerprint() != before
    assert get_json(dash, "/api/health")["overall"] == "unhealthy"


def test_stream_limit_sends_clients_to_polling(store: Store) -> None:
    d = Dashboard(store, now=lambda: NOW, poll_s=0.05, max_streams=1).start()
    try:
        with socket.create_connection(("127.0.0.1", d.port), timeout=5) as s:
            s.sendall(b"GET /api/stream HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            assert b"200" in s.makefile("rb").readline()
            status, headers, _body = get(d, "/api/stream")
            assert status == 503 and headers["retry-after"] == "30"
            assert get(d, "/api/summary")[0] == 200  # ordinary requests still served
    finally:
        d.shutdown()


def test_metrics_endpoint(dash: Dashboard) -> None:
    status, headers, body = get(dash, "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in fams.values() for s in f.samples}
    assert samples[("resurgo_store_up", ())] == 1.0
    assert samples[("resurgo_errors_total", (("retryable", "false"), ("type", "auth")))] == 1.0
    assert samples[("resurgo_breaker_state", (("breaker", "api"), ("state", "open")))] == 1.0


def test_parse_range() -> None:
    assert parse_range({}, 1000.0) == (1000.0 - 86400, 1000.0)
    assert parse_range({"range": ["90m"]}, 10000.0) == (10000.0 - 5400, 10000.0)
    assert parse_range({"range": ["all"]}, 5.0) == (None, 5.0)
    assert parse_range({"start": ["1"], "end": ["2"]}, 5.0) == (1.0, 2.0)


def test_cli_refuses_public_bind_without_token(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from resurgo.cli import main

    res = CliRunner().invoke(main, ["dashboard", "--store", str(tmp_path / "s.db"), "--host", "0.0.0.0"])
    assert res.exit_code != 0
    assert "without a token" in res.output


def test_cli_serves_a_store(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from resurgo.cli import main; main()", "dashboard", "--store", str(db),
         "--port", "0"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()
        url = line.split(" on ", 1)[1].split()[0]
        u = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        conn.request("GET", "/api/summary?range=all")
        r = conn.getresponse()
        assert r.status == 200
        assert json.loads(r.read())["jobs"] == {}
        conn.close()
        assert db.exists()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
