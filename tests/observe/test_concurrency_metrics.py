"""The adaptive limit in the store reaches /metrics and the dashboard's /api/concurrency."""

from __future__ import annotations

import http.client
import json
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from resurgo.clock import FakeClock
from resurgo.dashboard import Dashboard
from resurgo.observe import metrics_text
from resurgo.store import Store
from resurgo.store.schema import ensure_schema
from resurgo.supervise._adaptive import LimitRecorder, make_endpoint_limiter, take_slot

URL = "http://127.0.0.1:9"


async def _record(store: Store, clock: FakeClock) -> None:
    lim = make_endpoint_limiter(URL, algorithm="aimd", max_limit=16, clock=clock, initial=4)
    from resurgo.supervise import _adaptive

    rec = LimitRecorder(store, lim)
    lim.add_listener(rec)
    _adaptive._RECORDERS[lim] = rec
    sigs = [await take_slot(lim) for _ in range(4)]
    for s in sigs:
        s.lease.sample(rtt=0.5)  # the slots warm up one by one; fully in use, the limit grows (4 -> 5)
    clock.advance(1)
    sigs[0].lease.sample(dropped=True, started=clock.monotonic() - 0.1, reason="api_retry 529")
    for s in sigs:
        s.finish(succeeded=True, cancelled=False, error=None)
    lim.pause(30, reason="usage limit: server reset")


async def test_metrics_and_api(tmp_path: Path) -> None:
    clock = FakeClock(wall_start=1_800_000_000.0)
    store = Store(str(tmp_path / "s.db"))
    ensure_schema(store)
    await _record(store, clock)
    body, _ = metrics_text(store, now=clock.time)
    fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
    name = f"endpoint:{URL}"
    (limit,) = fams["resurgo_concurrency_limit"].samples
    assert limit.labels == {"endpoint": name} and limit.value == 2  # 5, halved by the 529
    kinds = {s.labels["kind"]: s.value for s in fams["resurgo_concurrency_overload_signals"].samples
             if s.name.endswith("_total")}
    assert kinds == {"dropped": 1.0, "paused": 1.0}
    waits = [s for s in fams["resurgo_concurrency_queue_waits"].samples if s.name.endswith("_total")]
    assert waits[0].value == 4
    changes = [s for s in fams["resurgo_concurrency_limit_changes"].samples if s.name.endswith("_total")]
    assert changes[0].value == 2  # grew once, was cut once

    d = Dashboard(store, now=clock.time).start()
    try:
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
        c.request("GET", f"/api/concurrency?start={clock.time() - 600}&end={clock.time() + 1}")
        r = c.getresponse()
        data = json.loads(r.read())
        c.close()
    finally:
        d.shutdown()
    assert r.status == 200
    (ep,) = data["endpoints"]
    assert ep["endpoint"] == name and ep["current"] == 2
    values = [p[1] for p in ep["limit"]]
    assert max(values) == 5 and values[-1] == 2
    assert [o[1] for o in ep["overloads"]] == ["dropped", "paused"]
    assert len(ep["pauses"]) == 1 and ep["queue_wait"]["count"] == 4


def test_old_store_without_the_table_has_no_concurrency_data(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "old.db"))
    ensure_schema(store)
    body, _ = metrics_text(store)
    assert b"resurgo_concurrency_limit" not in body
    from resurgo.observe._concurrency import concurrency_series

    assert concurrency_series(store, 0, 1e12) == {"endpoints": []}
