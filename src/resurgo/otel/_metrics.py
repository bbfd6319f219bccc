"""The Prometheus collector's instruments, through the OpenTelemetry metrics API.

:class:`~resurgo.observe._prometheus.ResurgoCollector` computes every sample
from the run store when scraped (the store is the single record several
supervisors write to).  Here the same computation feeds OpenTelemetry
*observable* instruments: one callback per metric family, all served from one
read of the store per collection (a short cache), with the collector's names,
descriptions and label names as attributes, so a dashboard built on the
Prometheus endpoint reads the OTLP export unchanged.

Histograms have no observable form in OpenTelemetry, so the two recovery-time
histograms are recorded as recoveries complete (:meth:`StoreMetrics.record_recovery`,
called by the supervisor's telemetry) with the collector's bucket bounds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from resurgo.observe import _metrics as m
from resurgo.observe._prometheus import ResurgoCollector
from resurgo.otel._hooks import SCOPE, _version
from resurgo.store import Store

#: name -> (kind, description); kind is "gauge" or "counter".  Kept identical to the collector's
#: families (``tests/otel`` compares the two over the same store so they cannot drift apart).
FAMILIES: dict[str, tuple[str, str]] = {
    "resurgo_store_up": ("gauge", "1 if the run store could be read on this collection"),
    "resurgo_jobs_in_state": ("gauge", "Jobs currently in each state"),
    "resurgo_jobs": ("counter", "Jobs that reached a final state"),
    "resurgo_job_attempts": ("counter", "CLI process attempts over all jobs"),
    "resurgo_errors": ("counter", "Classified errors by type and retryability"),
    "resurgo_retries": ("counter", "Retried operations by outcome"),
    "resurgo_retry_attempts": ("counter", "Attempts made by retried operations"),
    "resurgo_retry_sleep_seconds": ("counter", "Time spent sleeping between retries"),
    "resurgo_recoveries": ("counter", "Recoveries by strategy and outcome"),
    "resurgo_breaker_state": ("gauge", "1 for the current state of each breaker"),
    "resurgo_breaker_transitions": ("counter", "Breaker state transitions"),
    "resurgo_availability_ratio": ("gauge", "Availability over the trailing window"),
    "resurgo_mttr_seconds": ("gauge", "Mean time from failure detection to restoration over the trailing window"),
    "resurgo_mttr_active_seconds": ("gauge", "Mean time to restore, excluding server-imposed waits"),
    "resurgo_mtbf_seconds": ("gauge", "Mean up time between failures over the trailing window"),
}
#: The collector's histograms, recorded as recoveries complete.
HISTOGRAMS = {
    "resurgo_recovery_seconds": "Recovery time, failure detected -> first event of the recovered run",
    "resurgo_recovery_active_seconds": "Recovery time excluding waits imposed by the server",
}


class StoreMetrics:
    """Register the store's metrics with ``meter_provider`` (default: the global one).

    ``max_age`` is how long one read of the store serves the callbacks of a
    collection (they run one after another).  :meth:`close` stops reporting
    (OpenTelemetry cannot unregister an observable instrument, so its callback
    then observes nothing).
    """

    def __init__(
        self,
        store: Store,
        *,
        meter_provider: Any = None,
        window_s: float | None = 3600.0,
        max_age: float = 1.0,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._collector = ResurgoCollector(store, window_s=window_s, now=now)
        self._max_age = max_age
        self._lock = threading.Lock()
        self._cache: tuple[float, dict[str, list[tuple[dict[str, str], float]]]] | None = None
        self._closed = False
        meter = (meter_provider or metrics.get_meter_provider()).get_meter(SCOPE, _version())
        for name, (kind, doc) in FAMILIES.items():
            cb = self._callback(name)
            if kind == "gauge":
                meter.create_observable_gauge(name, callbacks=[cb], description=doc)
            else:
                meter.create_observable_counter(name, callbacks=[cb], description=doc)
        self._hist = {
            name: meter.create_histogram(
                name, unit="s", description=doc, explicit_bucket_boundaries_advisory=list(m.RECOVERY_BUCKETS)
            )
            for name, doc in HISTOGRAMS.items()
        }

    def close(self) -> None:
        self._closed = True

    def record_recovery(self, strategy: str, seconds: float, active_seconds: float) -> None:
        """One completed recovery into both histograms (attribute ``strategy``)."""
        if self._closed:
            return
        self._hist["resurgo_recovery_seconds"].record(max(0.0, seconds), {"strategy": strategy})
        self._hist["resurgo_recovery_active_seconds"].record(max(0.0, active_seconds), {"strategy": strategy})

    def samples(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        """Every family's samples as the collector computes them now (cached for ``max_age``)."""
        with self._lock:
            now = time.monotonic()
            if self._cache is not None and now - self._cache[0] < self._max_age:
                return self._cache[1]
            out: dict[str, list[tuple[dict[str, str], float]]] = {}
            for fam in self._collector.collect():
                if fam.name not in FAMILIES:
                    continue  # histograms: recorded as recoveries complete
                rows = out.setdefault(fam.name, [])
                for s in fam.samples:
                    if s.name.endswith("_created"):
                        continue
                    rows.append((dict(s.labels), float(s.value)))
            self._cache = (now, out)
            return out

    def _callback(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            if self._closed:
                return []
            return [Observation(v, labels) for labels, v in self.samples().get(name, [])]

        return observe

