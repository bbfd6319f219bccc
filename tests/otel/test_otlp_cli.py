"""What a user runs: `RESURGO_OTEL_ENABLED=1 resurgo run ...` exports spans and metrics over OTLP/HTTP.

A loopback HTTP server plays the collector (OTEL_EXPORTER_OTLP_ENDPOINT); the run goes through the
real CLI against the stand-in with one 529, so there is a recovery to see.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason="the otel extra is part of the dev set-up")

from tests.cli._helpers import cli_env, resurgo

from resurgo.mockapi import Faults, MockServer

pytestmark = pytest.mark.integration


class _Collector(HTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.posts: list[tuple[str, bytes]] = []


class _Handler(BaseHTTPRequestHandler):
    server: _Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.posts.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[_Collector]:
    srv = _Collector()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def test_resurgo_run_with_otel_enabled_exports_to_an_otlp_collector(
    tmp_path: Path, claude_bin: str, claude_env: dict[str, str], mock_api: MockServer, collector: _Collector
) -> None:
    env = cli_env(tmp_path, {
        **claude_env, "RESURGO_CLAUDE": claude_bin, "ANTHROPIC_BASE_URL": mock_api.url,
        "RESURGO_SUPERVISOR_BACKOFF_BASE": "0.1", "RESURGO_OTEL_ENABLED": "1",
        "RESURGO_SUPERVISOR_RELAY": "false",  # the 529 must reach the CLI and end the attempt
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.server_port}",
        "OTEL_SERVICE_NAME": "otel-cli-test", "OTEL_METRIC_EXPORT_INTERVAL": "60000",
    })
    mock_api.set_faults(Faults(status=529, count=1))
    p = resurgo(["--store", str(tmp_path / "r.db"), "run", "go [[text: traced run]]", "--name", "otel"],
                cwd=tmp_path, env=env, timeout=90)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "traced run"
    traces = b"".join(b for path, b in collector.posts if path == "/v1/traces")
    metrics = b"".join(b for path, b in collector.posts if path == "/v1/metrics")
    assert b"resurgo.job" in traces and b"resurgo.attempt" in traces and b"resurgo.classification" in traces
    assert b"otel-cli-test" in traces
    assert b"resurgo_jobs" in metrics and b"resurgo_recovery_seconds" in metrics


def test_without_otel_enabled_nothing_is_sent(
    tmp_path: Path, claude_bin: str, claude_env: dict[str, str], mock_api: MockServer, collector: _Collector
) -> None:
    env = cli_env(tmp_path, {
        **claude_env, "RESURGO_CLAUDE": claude_bin, "ANTHROPIC_BASE_URL": mock_api.url,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.server_port}",
    })
    p = resurgo(["--store", str(tmp_path / "r.db"), "run", "go [[text: quiet]]"], cwd=tmp_path, env=env, timeout=90)
    assert p.returncode == 0, p.stderr
    assert collector.posts == []
