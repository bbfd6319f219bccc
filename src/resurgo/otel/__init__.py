"""OpenTelemetry for resurgo (the optional extra: ``pip install 'resurgo[otel]'``).

* :class:`OTelRetryHook`: ``@retry(instruments=[OTelRetryHook()])``, the OpenTelemetry
  twin of the logging and Prometheus hooks;
* :class:`OTelBreakerListener`: ``CircuitBreaker(..., listeners=[OTelBreakerListener()])``;
* :class:`StoreMetrics`: the Prometheus collector's instruments over a run store;
* :class:`SupervisorTelemetry`: spans per job and attempt, span events for
  classifications, recoveries, waits and breaker transitions, trace context for
  the CLI; ``SupervisorConfig(otel=True)`` or ``[otel] enabled = true`` turns it on.

Importing this module needs ``opentelemetry-api``; nothing else in resurgo
imports it, so users without the extra see no change.  See docs/otel.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

try:
    import opentelemetry.trace  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "resurgo.otel needs the OpenTelemetry packages: pip install 'resurgo[otel]'"
    ) from e

from resurgo.otel._hooks import OTelBreakerListener, OTelRetryHook
from resurgo.otel._metrics import StoreMetrics
from resurgo.otel._setup import configure_default_providers

if TYPE_CHECKING:
    from resurgo.otel._supervisor import SupervisorTelemetry


def __getattr__(name: str) -> Any:
    # the supervisor part imports the supervisor; the library part must not (general library rule)
    if name == "SupervisorTelemetry":
        from resurgo.otel._supervisor import SupervisorTelemetry

        return SupervisorTelemetry
    raise AttributeError(name)


__all__ = [
    "OTelBreakerListener",
    "OTelRetryHook",
    "StoreMetrics",
    "SupervisorTelemetry",
    "configure_default_providers",
]
