"""Adaptive concurrency from the store: the limit over time, overload signals, queue waits.

Read from ``concurrency_samples`` (written by the supervisor's endpoint
limiters, see :mod:`resurgo.supervise._adaptive`).  A store written before
the table existed simply has no data: every reader returns empty results
rather than failing, so the dashboard and ``/metrics`` keep working on old
stores.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from resurgo.store import Store

#: most limit points returned per endpoint (the chart's resolution); older ones are thinned
MAX_POINTS = 2000


def _has_table(store: Store) -> bool:
    try:
        return bool(store.query("SELECT 1 FROM sqlite_master WHERE type='table' AND name='concurrency_samples'"))
    except sqlite3.Error:
        return False


def concurrency_series(store: Store, start: float, end: float) -> dict[str, Any]:
    """Per endpoint: the limit as steps (``[ts, limit, inflight]``, with the value at ``start``),
    overload signals (``[ts, kind, detail]``), pauses and queue-wait statistics."""
    if not _has_table(store):
        return {"endpoints": []}
    out: list[dict[str, Any]] = []
    names = [str(r[0]) for r in store.query("SELECT DISTINCT endpoint FROM concurrency_samples ORDER BY endpoint")]
    for name in names:
        first = store.query(
            "SELECT ts, limit_value, inflight FROM concurrency_samples WHERE endpoint=? AND ts < ?"
            " ORDER BY ts DESC LIMIT 1",
            (name, start),
        )
        rows = store.query(
            "SELECT ts, kind, limit_value, inflight, waiting, value, detail FROM concurrency_samples"
            " WHERE endpoint=? AND ts >= ? AND ts < ? ORDER BY ts, id",
            (name, start, end),
        )
        points: list[list[Any]] = [[start, int(first[0][1]), int(first[0][2])]] if first else []
        overloads: list[list[Any]] = []
        pauses: list[list[Any]] = []
        waits: list[float] = []
        for ts, kind, lim, inflight, _waiting, value, detail in rows:
            if kind == "limit":
                points.append([float(ts), int(lim), int(inflight)])
            elif kind == "overload":
                d = str(detail or "")
                overloads.append([float(ts), d.split(":", 1)[0].split(" ", 1)[0], d])
            elif kind == "pause":
                pauses.append([float(ts), float(value or ts), str(detail or "")])
            elif kind == "wait" and value is not None:
                waits.append(float(value))
        if len(points) > MAX_POINTS:
            step = len(points) / MAX_POINTS
            points = [points[int(i * step)] for i in range(MAX_POINTS)] + [points[-1]]
        waits.sort()
        out.append(
            {
                "endpoint": name,
                "limit": points,
                "current": points[-1][1] if points else None,
                "overloads": overloads[-500:],
                "overload_count": len(overloads),
                "pauses": pauses,
                "queue_wait": {
                    "count": len(waits),
                    "mean_s": sum(waits) / len(waits) if waits else None,
                    "p95_s": waits[max(0, -(-len(waits) * 95 // 100) - 1)] if waits else None,
                    "max_s": waits[-1] if waits else None,
                },
            }
        )
    return {"endpoints": out}


def concurrency_families(store: Store) -> Iterator[Metric]:
    """Prometheus families: current limit, limit changes, overload signals by kind, queue wait totals."""
    if not _has_table(store):
        return
    g = GaugeMetricFamily("resurgo_concurrency_limit", "Current adaptive concurrency limit", labels=["endpoint"])
    ch = CounterMetricFamily(
        "resurgo_concurrency_limit_changes", "Times the adaptive concurrency limit moved", labels=["endpoint"]
    )
    ov = CounterMetricFamily(
        "resurgo_concurrency_overload_signals",
        "Overload signals seen by the adaptive limit (dropped: 429/529/api_retry; latency; paused: a reset)",
        labels=["endpoint", "kind"],
    )
    wc = CounterMetricFamily(
        "resurgo_concurrency_queue_waits", "Attempts that waited for a slot of the limit", labels=["endpoint"]
    )
    ws = CounterMetricFamily(
        "resurgo_concurrency_queue_wait_seconds", "Total seconds attempts waited for a slot", labels=["endpoint"]
    )
    for name, lim in store.query(
        "SELECT endpoint, limit_value FROM concurrency_samples c WHERE id = (SELECT MAX(id) FROM"
        " concurrency_samples WHERE endpoint = c.endpoint)"
    ):
        g.add_metric([str(name)], float(lim))
    for name, n in store.query(
        "SELECT endpoint, COUNT(*) FROM concurrency_samples WHERE kind='limit' AND detail != 'initial'"
        " GROUP BY endpoint"
    ):
        ch.add_metric([str(name)], float(n))
    for name, detail, n in store.query(
        "SELECT endpoint, substr(detail, 1, instr(detail || ':', ':') - 1) AS k, COUNT(*) FROM concurrency_samples"
        " WHERE kind='overload' GROUP BY endpoint, k"
    ):
        ov.add_metric([str(name), str(detail).split(" ", 1)[0]], float(n))
    for name, n, total in store.query(
        "SELECT endpoint, COUNT(*), COALESCE(SUM(value), 0) FROM concurrency_samples WHERE kind='wait'"
        " GROUP BY endpoint"
    ):
        wc.add_metric([str(name)], float(n))
        ws.add_metric([str(name)], float(total))
    yield from (g, ch, ov, wc, ws)


__all__ = ["concurrency_families", "concurrency_series"]
