"""Observability of supervised runs: metrics from the store, Prometheus export, redaction.

Everything is computed from the SQLite run store (``resurgo.store.schema``), so
numbers agree wherever they are shown (dashboard, ``/metrics``, scripts) and
survive supervisor restarts.  Definitions: ``docs/metrics.md``.
"""

from typing import TYPE_CHECKING

from resurgo._redact import REDACTED, is_secret_name, redact, redact_obj
from resurgo.observe._job_views import job_detail, list_jobs
from resurgo.observe._metrics import (
    RECOVERY_BUCKETS,
    Availability,
    BreakerStats,
    Distribution,
    ErrorSeries,
    ErrorStats,
    RecoveryStats,
    RetryStats,
    Segment,
    SignatureCount,
    StrategyStats,
    Summary,
    Window,
    availability,
    breaker_stats,
    error_series,
    error_stats,
    job_counts,
    percentile,
    recovery_stats,
    resolve_window,
    retry_stats,
    summary,
)

if TYPE_CHECKING:  # typed for users; imported lazily at run time (below)
    from resurgo.observe._prometheus import ResurgoCollector, make_registry, metrics_text, start_metrics_server

__all__ = [
    "RECOVERY_BUCKETS",
    "REDACTED",
    "Availability",
    "BreakerStats",
    "Distribution",
    "ErrorSeries",
    "ErrorStats",
    "RecoveryStats",
    "ResurgoCollector",
    "RetryStats",
    "Segment",
    "SignatureCount",
    "StrategyStats",
    "Summary",
    "Window",
    "availability",
    "breaker_stats",
    "error_series",
    "error_stats",
    "is_secret_name",
    "job_counts",
    "job_detail",
    "list_jobs",
    "make_registry",
    "metrics_text",
    "percentile",
    "recovery_stats",
    "redact",
    "redact_obj",
    "resolve_window",
    "retry_stats",
    "start_metrics_server",
    "summary",
]


def __getattr__(name: str) -> object:
    # prometheus_client is imported only when the Prometheus API is used.
    if name in ("ResurgoCollector", "make_registry", "metrics_text", "start_metrics_server"):
        from resurgo.observe import _prometheus

        return getattr(_prometheus, name)
    raise AttributeError(f"module 'resurgo.observe' has no attribute {name!r}")
