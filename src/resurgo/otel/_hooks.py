"""OpenTelemetry instruments for the general library: a retry hook and a breaker listener.

They mirror the logging and Prometheus hooks (:mod:`resurgo.retrier._hooks`,
:mod:`resurgo.retrier._prometheus`): the same metric names, so a dashboard built
on one exporter reads the other, plus a span event on whatever span is current
when a retry is scheduled or a breaker moves, so a trace shows *why* a call
took longer.  Only retry decisions and breaker events are recorded, never a
successful first try: an instrumented hot path stays as cheap as a bare one.

Imported only by ``resurgo.otel``; nothing here imports the supervisor.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import metrics, trace

from resurgo._redact import redact_text
from resurgo.breaker._events import CallRejected, CircuitEvent, StateTransition, ThresholdExceeded
from resurgo.retrier._events import GiveUpEvent, RetryEvent

#: Instrumentation scope: what a collector shows as the emitting library.
SCOPE = "resurgo"

#: Backoff histogram bounds: the Prometheus hook's buckets.
BACKOFF_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("resurgo")
    except Exception:
        return "0"


def _kind(event: RetryEvent) -> str:
    t = event.error_class.type
    return t.value if t else event.error_class.category


class OTelRetryHook:
    """Pass as ``instruments=[OTelRetryHook()]`` to ``@retry`` / ``Retrier``.

    Metrics (attributes ``name`` = retrier or dependency name):
    ``resurgo_retry_retries{name,error_type}`` (counter), ``resurgo_retry_backoff_seconds{name}``
    (histogram), ``resurgo_retry_give_ups{name,reason}`` (counter).  Each retry also adds a
    ``resurgo.retry`` event (a ``resurgo.retrier.give_up`` event on giving up) to the current span.
    Providers default to the global ones (``opentelemetry.metrics`` / ``trace``).
    """

    __slots__ = ("_backoff", "_give_ups", "_retries")

    def __init__(self, *, meter_provider: Any = None) -> None:
        meter = (meter_provider or metrics.get_meter_provider()).get_meter(SCOPE, _version())
        self._retries = meter.create_counter(
            "resurgo_retry_retries", description="Retries scheduled by resurgo retriers."
        )
        self._backoff = meter.create_histogram(
            "resurgo_retry_backoff_seconds",
            unit="s",
            description="Backoff waits before retries.",
            explicit_bucket_boundaries_advisory=list(BACKOFF_BUCKETS),
        )
        self._give_ups = meter.create_counter(
            "resurgo_retry_give_ups", description="Retried calls that gave up, by reason."
        )

    def before_sleep(self, event: RetryEvent) -> None:
        kind = _kind(event)
        self._retries.add(1, {"name": event.name, "error_type": kind})
        self._backoff.record(event.delay, {"name": event.name})
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(
                "resurgo.retrier",
                {
                    "resurgo.retrier.name": event.name,
                    "resurgo.retrier.attempt": event.attempt,
                    "resurgo.retrier.delay_s": event.delay,
                    "resurgo.error.type": kind,
                    "resurgo.error.retryable": event.error_class.retryable,
                    "resurgo.error.description": redact_text(event.error_class.description)[:200],
                },
            )

    def on_give_up(self, event: GiveUpEvent) -> None:
        self._give_ups.add(1, {"name": event.name, "reason": event.reason.value})
        span = trace.get_current_span()
        if span.is_recording():
            attrs: dict[str, Any] = {
                "resurgo.retrier.name": event.name,
                "resurgo.retrier.attempts": event.attempts,
                "resurgo.retrier.reason": event.reason.value,
            }
            if event.error_class is not None and event.error_class.type is not None:
                attrs["resurgo.error.type"] = event.error_class.type.value
            span.add_event("resurgo.retrier.give_up", attrs)


class OTelBreakerListener:
    """``breaker.add_listener(OTelBreakerListener())`` (or ``listeners=[...]``).

    Metrics: ``resurgo_breaker_transitions{breaker,from_state,to_state}`` (the
    store collector's name) and ``resurgo_breaker_rejections{breaker,state}``.
    Transitions and threshold crossings become ``resurgo.breaker.transition`` /
    ``resurgo.breaker.threshold`` events on the current span (a rejected call's
    span gets ``resurgo.breaker.rejected``).  Listeners run after the breaker's
    lock is released, so this never delays other callers.
    """

    __slots__ = ("_rejections", "_transitions")

    def __init__(self, *, meter_provider: Any = None) -> None:
        meter = (meter_provider or metrics.get_meter_provider()).get_meter(SCOPE, _version())
        self._transitions = meter.create_counter(
            "resurgo_breaker_transitions", description="Breaker state transitions"
        )
        self._rejections = meter.create_counter(
            "resurgo_breaker_rejections", description="Calls a breaker did not let through"
        )

    def __call__(self, event: CircuitEvent) -> None:
        span = trace.get_current_span()
        if isinstance(event, StateTransition):
            self._transitions.add(
                1,
                {"breaker": event.breaker, "from_state": event.from_state.value, "to_state": event.to_state.value},
            )
            if span.is_recording():
                span.add_event("resurgo.breaker.transition", breaker_attributes(
                    event.breaker, event.from_state.value, event.to_state.value, event.reason
                ))
        elif isinstance(event, CallRejected):
            self._rejections.add(1, {"breaker": event.breaker, "state": event.state.value})
            if span.is_recording():
                attrs: dict[str, Any] = {
                    "resurgo.breaker.name": event.breaker,
                    "resurgo.breaker.state": event.state.value,
                }
                if event.retry_after is not None:
                    attrs["resurgo.breaker.retry_after_s"] = event.retry_after
                span.add_event("resurgo.breaker.rejected", attrs)
        elif isinstance(event, ThresholdExceeded) and span.is_recording():
            span.add_event(
                "resurgo.breaker.threshold",
                {
                    "resurgo.breaker.name": event.breaker,
                    "resurgo.breaker.metric": event.metric,
                    "resurgo.breaker.value": event.value,
                    "resurgo.breaker.threshold": event.threshold,
                },
            )


def breaker_attributes(name: str, from_state: str, to_state: str, reason: str) -> dict[str, Any]:
    """The attributes of a ``resurgo.breaker.transition`` span event (shared with the supervisor)."""
    return {
        "resurgo.breaker.name": name,
        "resurgo.breaker.from_state": from_state,
        "resurgo.breaker.to_state": to_state,
        "resurgo.breaker.reason": redact_text(reason)[:200],
    }
