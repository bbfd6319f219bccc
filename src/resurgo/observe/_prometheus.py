"""Prometheus export of the run store: a collector that reads the store on every scrape.

The supervisor does not keep in-process counters for Prometheus: the store is
the single record, several supervisors (or a crashed and restarted one) write
to it, and a scrape must agree with the dashboard.  So the collector computes
every sample from the store when scraped; counters are totals over all
history (monotonic as long as rows are not deleted) and the availability
gauges cover a configurable trailing window.

Three ways to use it in a library user's own process:

* ``registry.register(ResurgoCollector(store))`` in an existing registry;
* :func:`metrics_text` returns ``(body, content_type)`` for any web framework;
* :func:`start_metrics_server` serves ``/metrics`` on its own port.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.utils import floatToGoString as _float_to_go

from resurgo.observe import _metrics as m
from resurgo.store import Store
from resurgo.store.schema import ensure_schema

log = logging.getLogger(__name__)

#: Bucket bounds spelled as the client library spells them (``5.0``, ``+Inf``).
_go_float: Callable[[float], str] = _float_to_go

#: Breaker states always exported (0 or 1) so dashboards can graph a steady set of series.
BREAKER_STATES = ("closed", "open", "half_open")


class ResurgoCollector:
    """A ``prometheus_client`` custom collector over a resurgo store.

    ``window_s`` is the trailing window of the availability, MTTR and MTBF
    gauges (default one hour; ``None`` means all history).  ``now`` is
    injectable for tests.  A store that cannot be read yields
    ``resurgo_store_up 0`` instead of failing the whole scrape, so the other
    collectors of a shared registry still report.
    """

    def __init__(
        self,
        store: Store,
        *,
        window_s: float | None = 3600.0,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.window_s = window_s
        self._now = now
        self._schema_ready = False
        self._lock = threading.Lock()

    def describe(self) -> list[Metric]:
        """Nothing up front: registration must not read the store (it may not exist yet)."""
        return []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("resurgo_store_up", "1 if the run store could be read on this scrape")
        try:
            families = self._families()
        except Exception as e:  # a scrape must never crash the exporter
            log.warning("resurgo: cannot read the store %s for metrics: %s", self.store.path, e)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield from families

    def _families(self) -> list[Metric]:
        with self._lock:
            if not self._schema_ready:
                ensure_schema(self.store)
                self._schema_ready = True
        store = self.store
        now = self._now()
        out: list[Metric] = []

        # jobs ---------------------------------------------------------------------
        counts = m.job_counts(store)
        g = GaugeMetricFamily(
            "resurgo_jobs_in_state", "Jobs currently in each state", labels=["state"]
        )
        for state in sorted(set(counts) | {"pending", "running", "recovering", "waiting"}):
            g.add_metric([state], float(counts.get(state, 0)))
        out.append(g)
        c = CounterMetricFamily("resurgo_jobs", "Jobs that reached a final state", labels=["state"])
        for state in sorted(m.FINAL_STATES):
            c.add_metric([state], float(counts.get(state, 0)))
        out.append(c)
        att = store.query("SELECT COALESCE(SUM(attempts), 0) FROM jobs")[0]
        c = CounterMetricFamily("resurgo_job_attempts", "CLI process attempts over all jobs")
        c.add_metric([], float(att[0]))
        out.append(c)

        # errors -------------------------------------------------------------------
        c = CounterMetricFamily(
            "resurgo_errors", "Classified errors by type and retryability", labels=["type", "retryable"]
        )
        for r in store.query("SELECT type, retryable, COUNT(*) FROM errors GROUP BY type, retryable"):
            c.add_metric([str(r[0]), "true" if r[1] else "false"], float(r[2]))
        out.append(c)

        # retries ------------------------------------------------------------------
        c = CounterMetricFamily("resurgo_retries", "Retried operations by outcome", labels=["outcome"])
        a = CounterMetricFamily("resurgo_retry_attempts", "Attempts made by retried operations")
        s = CounterMetricFamily("resurgo_retry_sleep_seconds", "Time spent sleeping between retries")
        r = store.query(
            "SELECT COALESCE(SUM(succeeded), 0), COUNT(*), COALESCE(SUM(attempts), 0),"
            " COALESCE(SUM(slept_s), 0) FROM retries"
        )[0]
        c.add_metric(["succeeded"], float(r[0]))
        c.add_metric(["failed"], float(r[1] - r[0]))
        a.add_metric([], float(r[2]))
        s.add_metric([], float(r[3]))
        out += [c, a, s]

        # recoveries ---------------------------------------------------------------
        c = CounterMetricFamily(
            "resurgo_recoveries", "Recoveries by strategy and outcome", labels=["strategy", "outcome"]
        )
        for row in store.query(
            "SELECT strategy, CASE WHEN succeeded IS NULL THEN 'pending' WHEN succeeded THEN 'succeeded'"
            " ELSE 'failed' END AS o, COUNT(*) FROM recoveries GROUP BY strategy, o"
        ):
            c.add_metric([str(row[0]), str(row[1])], float(row[2]))
        out.append(c)
        out.append(self._recovery_histogram(store, active=False))
        out.append(self._recovery_histogram(store, active=True))

        # breakers -----------------------------------------------------------------
        win_all = m.Window(m.earliest_time(store) or now, now)
        breakers = m.breaker_stats(store, win_all) if win_all.end > win_all.start else []
        g = GaugeMetricFamily(
            "resurgo_breaker_state", "1 for the current state of each breaker", labels=["breaker", "state"]
        )
        c = CounterMetricFamily(
            "resurgo_breaker_transitions",
            "Breaker state transitions",
            labels=["breaker", "from_state", "to_state"],
        )
        for b in breakers:
            for state in sorted(set(BREAKER_STATES) | {b.state}):
                g.add_metric([b.name, state], 1.0 if state == b.state else 0.0)
        for row in store.query(
            "SELECT breaker, from_state, to_state, COUNT(*) FROM breaker_transitions"
            " GROUP BY breaker, from_state, to_state"
        ):
            c.add_metric(
                [str(row[0]), m.normalise_state(str(row[1])), m.normalise_state(str(row[2]))],
                float(row[3]),
            )
        out += [g, c]

        # availability over the trailing window -------------------------------------
        start = None if self.window_s is None else now - self.window_s
        win = m.resolve_window(store, start=start, now=now)
        av = m.availability(store, win)
        label = "all" if self.window_s is None else f"{self.window_s:g}s"
        g = GaugeMetricFamily(
            "resurgo_availability_ratio",
            "Availability over the trailing window: basis=time (1 - down/run time) or jobs"
            " (succeeded/finished); absent when there is no data",
            labels=["basis", "window"],
        )
        if av.time_ratio is not None:
            g.add_metric(["time", label], av.time_ratio)
        if av.job_ratio is not None:
            g.add_metric(["jobs", label], av.job_ratio)
        out.append(g)
        for name, value, doc in (
            ("resurgo_mttr_seconds", av.mttr_s, "Mean time from failure detection to restoration"),
            (
                "resurgo_mttr_active_seconds",
                av.mttr_active_s,
                "Mean time to restore, excluding waits imposed by the server",
            ),
            ("resurgo_mtbf_seconds", av.mtbf_s, "Mean up time between failures"),
        ):
            g = GaugeMetricFamily(name, doc + " over the trailing window", labels=["window"])
            if value is not None:
                g.add_metric([label], value)
            out.append(g)
        # adaptive concurrency (absent on stores without its table) ------------------
        from resurgo.observe._concurrency import concurrency_families

        out += list(concurrency_families(store))
        return out

    @staticmethod
    def _recovery_histogram(store: Store, *, active: bool) -> Metric:
        name = "resurgo_recovery_active_seconds" if active else "resurgo_recovery_seconds"
        doc = (
            "Recovery time excluding waits imposed by the server (restored - detected - waited)"
            if active
            else "Recovery time, failure detected -> first event of the recovered run"
        )
        h = HistogramMetricFamily(name, doc, labels=["strategy"])
        per: dict[str, list[float]] = {}
        expr = "MAX(0, restored_at - detected_at - waited_s)" if active else "MAX(0, restored_at - detected_at)"
        for row in store.query(
            f"SELECT strategy, {expr} FROM recoveries WHERE restored_at IS NOT NULL"
        ):
            per.setdefault(str(row[0]), []).append(float(row[1]))
        for strategy, values in sorted(per.items()):
            buckets: list[tuple[str, float]] = []
            cumulative = 0
            for bound, count in m.histogram(values):
                cumulative += count
                buckets.append(("+Inf" if bound is None else _go_float(bound), float(cumulative)))
            h.add_metric([strategy], buckets, sum(values))
        return h


def make_registry(store: Store, **kwargs: Any) -> CollectorRegistry:
    """A fresh registry holding only a :class:`ResurgoCollector` (kwargs go to it)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(ResurgoCollector(store, **kwargs))
    return registry


def metrics_text(store_or_registry: Store | CollectorRegistry, **kwargs: Any) -> tuple[bytes, str]:
    """``(body, content_type)`` of the exposition format, to serve from any framework.

    Pass a store (a throwaway registry is built per call) or a registry that
    already holds the collector (cheaper when called on every scrape).
    """
    registry = (
        make_registry(store_or_registry, **kwargs)
        if isinstance(store_or_registry, Store)
        else store_or_registry
    )
    return generate_latest(registry), CONTENT_TYPE_LATEST


def start_metrics_server(
    port: int,
    *,
    store: Store,
    addr: str = "127.0.0.1",
    window_s: float | None = 3600.0,
) -> tuple[Any, threading.Thread]:
    """Serve ``/metrics`` for ``store`` on ``addr:port`` in a daemon thread.

    Binds to loopback by default: the metrics reveal job names and error
    signatures, so exposing them on a network interface should be a choice.
    Returns ``(server, thread)``; call ``server.shutdown()`` then
    ``server.server_close()`` to stop.  ``port=0`` picks a free port
    (``server.server_port``).
    """
    registry = make_registry(store, window_s=window_s)
    server, thread = start_http_server(port, addr=addr, registry=registry)
    return server, thread
