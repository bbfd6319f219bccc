"""Traces and metrics of supervised runs, built from the supervisor's typed events.

The supervisor already tells the outside world everything through
:mod:`resurgo.supervise._events` (an attempt started, a failure was
classified, a recovery was planned, a wait began, a breaker moved, the run was
restored, the job finished), so tracing is one more consumer of those events
rather than calls sprinkled through the recovery orchestrator:

* a ``resurgo.job`` span per job, from its first attempt to its end;
* a ``resurgo.attempt`` child span per CLI process attempt (start, restart,
  resume, fork), ended when the attempt fails or the job finishes;
* span events: ``resurgo.classification`` (the verdict), ``resurgo.recovery.planned``,
  ``resurgo.wait``, ``resurgo.budget.bypassed``, ``resurgo.breaker.transition``
  (on every job span of this supervisor), ``resurgo.recovery.restored``;
* W3C trace context of the attempt span in the CLI's environment
  (``TRACEPARENT``/``TRACESTATE``, the environment-variable carrier of the
  OpenTelemetry specification), which the CLI passes on to its Bash tools,
  so what they emit joins the trace.

Event timestamps come from the events (the supervisor's injectable clock), so
spans line up with the store.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from resurgo._redact import redact_text
from resurgo.otel._hooks import SCOPE, _version, breaker_attributes
from resurgo.otel._metrics import StoreMetrics
from resurgo.store import Store
from resurgo.supervise._events import (
    AttemptStarted,
    BreakerStateChanged,
    BudgetBypassed,
    CliEvent,
    FailureDetected,
    JobFinished,
    RecoveryPlanned,
    Restored,
    SupervisorEvent,
    Waiting,
)

log = logging.getLogger(__name__)
_PROPAGATOR = TraceContextTextMapPropagator()


def _ns(ts: float) -> int:
    return int(ts * 1e9)


@dataclass
class _JobSpans:
    job: Span
    attempt: Span | None = None
    strategy: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class SupervisorTelemetry:
    """Turn a supervisor's events into spans (and, with a store, metrics).

    ``Supervisor(config=SupervisorConfig(otel=True))`` makes one on the global
    providers; pass ``Supervisor(telemetry=SupervisorTelemetry(tracer_provider=...,
    meter_provider=...))`` to choose them (tests use the SDK's in-memory
    exporter and reader).  ``metrics=False`` leaves the store's metrics out
    (e.g. when another process already exports them for the same store).
    """

    def __init__(
        self,
        *,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        metrics: bool = True,
        window_s: float | None = 3600.0,
    ) -> None:
        self._tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer(SCOPE, _version())
        self._meter_provider = meter_provider
        self._want_metrics = metrics
        self._window_s = window_s
        self._metrics: StoreMetrics | None = None
        self._store: Store | None = None
        self._jobs: dict[str, _JobSpans] = {}
        self._lock = threading.Lock()

    # -- wiring --------------------------------------------------------------------------------
    def attach(self, store: Store) -> None:
        """Called by the supervisor with its store: registers the store's metrics once."""
        self._store = store
        if self._want_metrics and self._metrics is None:
            self._metrics = StoreMetrics(store, meter_provider=self._meter_provider, window_s=self._window_s)

    def close(self, ts: float | None = None) -> None:
        """End spans left open (a supervisor closing with jobs still running)."""
        with self._lock:
            jobs, self._jobs = self._jobs, {}
        for js in jobs.values():
            end = None if ts is None else _ns(ts)
            if js.attempt is not None:
                js.attempt.set_status(Status(StatusCode.UNSET))
                js.attempt.end(end_time=end)
            js.job.set_attribute("resurgo.job.state", "interrupted")
            js.job.end(end_time=end)

    def detach(self) -> None:
        """Stop reading the store (it is about to close); call after the last export was flushed."""
        if self._metrics is not None:
            self._metrics.close()

    def env_for(self, job_id: str | None) -> Mapping[str, str]:
        """``TRACEPARENT``/``TRACESTATE`` of the job's current attempt span, for the CLI's environment."""
        if not job_id:
            return {}
        with self._lock:
            js = self._jobs.get(job_id)
            span = None if js is None else (js.attempt or js.job)
        if span is None:
            return {}
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
        return {k.upper(): v for k, v in carrier.items()}

    # -- events --------------------------------------------------------------------------------
    def on_event(self, ev: SupervisorEvent) -> None:
        """Consume one event (the supervisor calls this for each; never raises into it)."""
        try:
            self._on_event(ev)
        except Exception:
            log.exception("OpenTelemetry: could not record %s", type(ev).__name__)

    def _job(self, job_id: str, ts: float) -> _JobSpans:
        js = self._jobs.get(job_id)
        if js is None:
            span = self._tracer.start_span(
                "resurgo.job",
                kind=SpanKind.INTERNAL,
                start_time=_ns(ts),
                attributes={"resurgo.job.id": job_id},
                context=None,
            )
            js = self._jobs[job_id] = _JobSpans(job=span)
        return js

    def _on_event(self, ev: SupervisorEvent) -> None:
        attrs: dict[str, Any]
        with self._lock:
            if isinstance(ev, BreakerStateChanged):
                attrs = breaker_attributes(ev.breaker, ev.from_state, ev.to_state, ev.reason)
                for js in self._jobs.values():
                    js.job.add_event("resurgo.breaker.transition", attrs, timestamp=_ns(ev.ts))
                return
            if not ev.job_id:
                return
            if isinstance(ev, AttemptStarted):
                js = self._job(ev.job_id, ev.ts)
                if js.attempt is not None:
                    js.attempt.end(end_time=_ns(ev.ts))
                attrs = {"resurgo.attempt.number": ev.n, "resurgo.attempt.kind": ev.kind}
                if ev.session_id:
                    attrs["resurgo.session.id"] = ev.session_id
                js.attempt = self._tracer.start_span(
                    f"resurgo.attempt {ev.kind}",
                    context=trace.set_span_in_context(js.job),
                    start_time=_ns(ev.ts),
                    attributes=attrs,
                )
                js.job.set_attribute("resurgo.job.attempts", ev.n)
                return
            js_opt = self._jobs.get(ev.job_id)
            if js_opt is None:
                return
            js = js_opt
            if isinstance(ev, CliEvent):
                raw = ev.event
                if raw.get("type") == "system" and raw.get("subtype") == "init" and js.attempt is not None:
                    # which CLI version ran this attempt (their events and wording differ: docs/cli-versions.md)
                    version = raw.get("claude_code_version")
                    if isinstance(version, str):
                        js.attempt.set_attribute("resurgo.cli.version", version[:40])
                    model = raw.get("model")
                    if isinstance(model, str):
                        js.attempt.set_attribute("resurgo.cli.model", model[:80])
                return
            if isinstance(ev, FailureDetected):
                e = ev.error
                attrs = {
                    "resurgo.error.type": e.type.value if e.type else "none",
                    "resurgo.error.severity": e.severity.value if e.severity else "none",
                    "resurgo.error.category": e.category,
                    "resurgo.error.retryable": e.retryable,
                    "resurgo.error.strategy": e.strategy.value,
                    "resurgo.error.rule": e.rule,
                    "resurgo.error.description": redact_text(e.description)[:300],
                    "resurgo.attempt.number": ev.attempt,
                }
                if e.retry_after is not None:
                    attrs["resurgo.error.retry_after_s"] = e.retry_after
                target = js.attempt or js.job
                target.add_event("resurgo.classification", attrs, timestamp=_ns(ev.ts))
                if js.attempt is not None:
                    js.attempt.set_status(Status(StatusCode.ERROR, f"{attrs['resurgo.error.type']}: {e.category}"))
                    js.attempt.end(end_time=_ns(ev.ts))
                    js.attempt = None
            elif isinstance(ev, RecoveryPlanned):
                js.strategy = ev.strategy
                js.job.add_event(
                    "resurgo.recovery.planned",
                    {
                        "resurgo.recovery.strategy": ev.strategy,
                        "resurgo.recovery.action": ev.action,
                        "resurgo.recovery.reason": redact_text(ev.reason)[:300],
                        "resurgo.recovery.wait_s": ev.wait_s,
                        "resurgo.recovery.server_wait": ev.server_wait,
                    },
                    timestamp=_ns(ev.ts),
                )
            elif isinstance(ev, Waiting):
                attrs = {"resurgo.wait.reason": redact_text(ev.reason)[:300]}
                if ev.until_ts is not None:
                    attrs["resurgo.wait.seconds"] = max(0.0, ev.until_ts - ev.ts)
                js.job.add_event("resurgo.wait", attrs, timestamp=_ns(ev.ts))
            elif isinstance(ev, BudgetBypassed):
                js.job.add_event(
                    "resurgo.budget.bypassed",
                    {"resurgo.budget.endpoint": ev.endpoint, "resurgo.budget.waited_s": ev.waited_s},
                    timestamp=_ns(ev.ts),
                )
            elif isinstance(ev, Restored):
                js.job.add_event(
                    "resurgo.recovery.restored",
                    {"resurgo.recovery.seconds": ev.recovery_s, "resurgo.recovery.strategy": js.strategy or ""},
                    timestamp=_ns(ev.ts),
                )
                self._record_recovery(ev.job_id, js.strategy, ev.recovery_s)
            elif isinstance(ev, JobFinished):
                r = ev.result
                del self._jobs[ev.job_id]
                ok = r.ok
                if js.attempt is not None:
                    if not ok:
                        js.attempt.set_status(Status(StatusCode.ERROR, r.state.value))
                    js.attempt.end(end_time=_ns(ev.ts))
                js.job.set_attributes(
                    {
                        "resurgo.job.state": r.state.value,
                        "resurgo.job.attempts": r.attempts,
                        "resurgo.job.recoveries": r.recoveries,
                        "resurgo.job.exit_status": r.exit_status,
                        **({"resurgo.job.name": r.name} if r.name else {}),
                        **({"resurgo.session.id": r.session_id} if r.session_id else {}),
                    }
                )
                if ok:
                    js.job.set_status(Status(StatusCode.OK))
                else:
                    js.job.set_status(Status(StatusCode.ERROR, redact_text(r.reason or r.state.value)[:300]))
                js.job.end(end_time=_ns(ev.ts))

    def _record_recovery(self, job_id: str, strategy: str | None, seconds: float) -> None:
        if self._metrics is None:
            return
        active = seconds
        st = strategy or "unknown"
        if self._store is not None:
            try:  # the stored row knows the server-imposed wait; the event does not
                rows = self._store.query(
                    "SELECT strategy, waited_s FROM recoveries WHERE job_id=? ORDER BY id DESC LIMIT 1", (job_id,)
                )
                if rows:
                    st = str(rows[0][0])
                    active = seconds - float(rows[0][1] or 0.0)
            except Exception:
                log.debug("OpenTelemetry: no recovery row for %s", job_id, exc_info=True)
        self._metrics.record_recovery(st, seconds, active)


__all__ = ["SupervisorTelemetry"]
