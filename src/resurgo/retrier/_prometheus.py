"""A Prometheus instrument for retriers (imported only when asked for).

Metrics (labels: ``name`` = retrier/dependency name):

- ``resurgo_retry_retries_total{name,error_type}``: retries scheduled;
- ``resurgo_retry_backoff_seconds{name}``: histogram of backoff waits;
- ``resurgo_retry_give_ups_total{name,reason}``: calls that gave up, by reason
  (``budget_exhausted`` is the retry-storm alarm).

Only retry decisions are counted, never successful first tries, so an
instrumented retrier's hot path stays as cheap as an uninstrumented one.
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from resurgo.retrier._events import GiveUpEvent, RetryEvent

_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
_metrics: dict[int, tuple[Any, Any, Any]] = {}
_lock = threading.Lock()


def _metrics_for(registry: CollectorRegistry) -> tuple[Any, Any, Any]:
    # One set per registry: registering the same names twice is an error in prometheus_client.
    with _lock:
        m = _metrics.get(id(registry))
        if m is None:
            m = (
                Counter(
                    "resurgo_retry_retries",
                    "Retries scheduled by resurgo retriers.",
                    ["name", "error_type"],
                    registry=registry,
                ),
                Histogram(
                    "resurgo_retry_backoff_seconds",
                    "Backoff waits before retries.",
                    ["name"],
                    buckets=_BUCKETS,
                    registry=registry,
                ),
                Counter(
                    "resurgo_retry_give_ups",
                    "Retried calls that gave up, by reason.",
                    ["name", "reason"],
                    registry=registry,
                ),
            )
            _metrics[id(registry)] = m
        return m


class PrometheusHook:
    """Pass as ``instruments=[PrometheusHook()]``; ``registry`` defaults to the global one."""

    __slots__ = ("_backoff", "_give_ups", "_retries")

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._retries, self._backoff, self._give_ups = _metrics_for(registry or REGISTRY)

    def before_sleep(self, event: RetryEvent) -> None:
        t = event.error_class.type
        self._retries.labels(event.name, t.value if t else event.error_class.category).inc()
        self._backoff.labels(event.name).observe(event.delay)

    def on_give_up(self, event: GiveUpEvent) -> None:
        self._give_ups.labels(event.name, event.reason.value).inc()
