"""Serve resurgo's metrics from your own process, next to your own, and scrape them once.

Run: python examples/prometheus_mount.py

A program that supervises Claude Code runs (or uses resurgo.sdk, or plain
retriers) usually already exposes /metrics.  resurgo's collector goes into that
same registry: it reads the run store on every scrape, so the numbers agree with
`resurgo dashboard` and survive restarts.  Here one supervised job runs through
the real CLI against the bundled API stand-in (a 529 first, so there is an error
and a recovery to count), then /metrics is served on a free loopback port with
wsgiref and scraped once over HTTP.
"""

from __future__ import annotations

import os
import tempfile
import threading
import urllib.request
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Counter, make_wsgi_app

import resurgo
from resurgo.mockapi import Faults, MockServer
from resurgo.observe import ResurgoCollector, summary
from resurgo.retrier import PrometheusHook
from resurgo.store import Store
from resurgo.supervise import ClaudeNotFoundError, SupervisorConfig, SyncSupervisor, find_claude

REPO = Path(__file__).resolve().parents[1]


def find_cli() -> str:
    try:
        return find_claude(None)
    except ClaudeNotFoundError:
        local = REPO / ".tools/npm/node_modules/.bin/claude"
        if local.exists():
            return str(local)
        raise


def run_one_job(store: Store, work: Path) -> None:
    """Something to measure: one supervised CLI run that meets a 529 and recovers."""
    with MockServer(host="127.0.0.1", port=0) as srv:
        srv.set_faults(Faults(status=529, count=1))
        env = {
            "HOME": str(work),
            "ANTHROPIC_BASE_URL": srv.url,
            "ANTHROPIC_API_KEY": "key-for-the-local-stand-in",
            "DISABLE_TELEMETRY": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }
        cfg = SupervisorConfig(claude=find_cli(), store=store, env=env, cli_max_retries=0, backoff_base=0.1)
        with SyncSupervisor(cfg) as sup:
            res = sup.run("Say hello. [[text: hello]]", cwd=str(work), name="hello")
        print(f"job {res.name}: {res.state.value} after {res.attempts} attempts, {res.recoveries} recovery")


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # no access log on stderr
        pass


def main(work: Path) -> None:
    store = Store(work / "resurgo.db")
    if not os.environ.get("ANTHROPIC_API_KEY"):
        run_one_job(store, work)

    # Your process's registry, with your own metrics in it ...
    registry = CollectorRegistry()
    requests_total = Counter("myapp_requests", "Requests my app served", registry=registry)
    requests_total.inc()
    # ... resurgo's run-store metrics (jobs, errors, recoveries, breakers, availability, MTTR) ...
    registry.register(ResurgoCollector(store, window_s=3600))
    # ... and, for plain retriers in your code, their retry decisions.
    hook = PrometheusHook(registry)
    resurgo.set_testing(True, attempts=2)  # no real waits in an example

    @resurgo.retry(max_attempts=2, instruments=[hook], name="flaky")
    def flaky(state: dict[str, int]) -> str:
        state["n"] += 1
        if state["n"] == 1:
            raise ConnectionResetError("connection reset by peer")
        return "ok"

    flaky({"n": 0})

    # Mount it: any WSGI/ASGI framework works the same way (prometheus_client.make_wsgi_app / make_asgi_app).
    server = make_server("127.0.0.1", 0, make_wsgi_app(registry), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = resp.read().decode()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        store.close()

    print(f"scraped {url}:")
    wanted = ("myapp_requests_total", "resurgo_jobs_total", "resurgo_errors_total", "resurgo_recoveries_total",
              "resurgo_availability_ratio", "resurgo_mttr_seconds", "resurgo_breaker_state",
              "resurgo_retry_retries_total", "resurgo_store_up")
    for line in body.splitlines():
        if line.startswith(wanted) and not line.endswith(" 0.0"):
            print("  " + line)

    # The scrape agrees with resurgo.observe over the same store (the dashboard's numbers).
    with Store(work / "resurgo.db") as check:
        sm = summary(check)
    errors = sum(float(ln.rsplit(" ", 1)[1]) for ln in body.splitlines() if ln.startswith("resurgo_errors_total{"))
    assert errors == sm.errors.total, (errors, sm.errors.total)
    print(f"errors in the scrape: {errors:g}, in resurgo.observe.summary: {sm.errors.total}")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="resurgo-prom-") as tmp:
        main(Path(tmp))
