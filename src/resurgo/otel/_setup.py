"""Providers for a process that has none: the resurgo commands with ``[otel] enabled``.

A library user's application normally configures OpenTelemetry itself (its
service name, its exporters); resurgo then only uses the global providers.
The ``resurgo`` command has nobody to do that, so when telemetry is enabled
and the global providers are still the API's no-op defaults, it installs SDK
providers exporting over OTLP/HTTP, configured by the standard variables
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_HEADERS``,
``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ...; see docs/otel.md).
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import metrics, trace

log = logging.getLogger(__name__)

#: Providers this module installed (once per process: a second supervisor reuses them).
_installed: list[Any] = []


def _is_default(provider: Any, sdk_cls: type) -> bool:
    return not isinstance(provider, sdk_cls)


def configure_default_providers(*, service_name: str = "resurgo") -> Any:
    """Install OTLP-exporting SDK providers unless the process already has SDK ones.

    Returns a callable that flushes what was installed (a no-op when nothing
    was), for the supervisor to call when it closes.  The providers stay for
    the rest of the process (another supervisor may start; the SDK shuts them
    down at exit), so they are flushed, not shut down.
    """
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as e:  # the API without the SDK: keep whatever the application set up
        log.warning("OpenTelemetry SDK not installed (%s); using the global providers as they are", e)
        return lambda: None
    import os

    resource = Resource.create({} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service_name})
    installed = _installed
    if _is_default(trace.get_tracer_provider(), TracerProvider):
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warning("opentelemetry-exporter-otlp-proto-http is not installed: traces are not exported "
                        "(pip install 'resurgo[otel]')")
        else:
            tp = TracerProvider(resource=resource)
            tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            trace.set_tracer_provider(tp)
            installed.append(tp)
    if _is_default(metrics.get_meter_provider(), MeterProvider):
        try:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        except ImportError:
            log.warning("opentelemetry-exporter-otlp-proto-http is not installed: metrics are not exported")
        else:
            mp = MeterProvider(resource=resource, metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())])
            metrics.set_meter_provider(mp)
            installed.append(mp)

    def flush() -> None:
        for p in installed:
            try:
                p.force_flush()
            except Exception:
                log.warning("OpenTelemetry: could not flush %s", type(p).__name__, exc_info=True)

    return flush
