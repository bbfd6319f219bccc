"""OpenTelemetry over a REAL supervised run: the real CLI against the bundled stand-in.

One job whose first API call gets a 529: the attempt fails, is classified, the
endpoint's breaker (min_calls=1) opens, the recovery waits for it, the second
attempt runs a Bash tool that writes the ``TRACEPARENT`` it inherited, and the
job succeeds.  The SDK's in-memory span exporter and metric reader must show
all of it, and the tool's trace context must point at the attempt span.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is part of the dev set-up")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from resurgo.breaker import CircuitThresholds
from resurgo.mockapi import MockServer
from resurgo.observe._prometheus import ResurgoCollector
from resurgo.otel import SupervisorTelemetry
from resurgo.otel._metrics import FAMILIES
from resurgo.store import Store
from resurgo.supervise import Supervisor, SupervisorConfig

pytestmark = [pytest.mark.integration, pytest.mark.cli_versions]


def _metric_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                out.setdefault(metric.name, []).extend(metric.data.data_points)
    return out


async def test_spans_events_trace_context_and_metrics_of_a_recovered_job(
    claude_bin: str, claude_env: dict[str, str], mock_api: MockServer, tmp_path: Path
) -> None:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    work = tmp_path / "work"
    work.mkdir()
    store_path = tmp_path / "store.db"
    cfg = SupervisorConfig(
        claude=claude_bin,
        store=str(store_path),
        env={**claude_env, "ANTHROPIC_BASE_URL": mock_api.url},
        stall_timeout=20.0,
        kill_grace=1.0,
        backoff_base=0.1,
        backoff_cap=0.5,
        cli_max_retries=0,
        claude_args=("--allowedTools", "Bash"),
        relay=False,  # the 529 must reach the CLI: these are the spans of a recovery by a new attempt
        breaker=CircuitThresholds(
            failure_rate=0.5, min_calls=1, sliding_window=30.0, half_open_max_calls=1,
            half_open_lease=60.0, slow_call_duration=600.0, wait_in_open=0.5, wait_multiplier=1.0,
        ),
    )
    mock_api.set_faults(status=529, count=1)
    telemetry = SupervisorTelemetry(tracer_provider=tp, meter_provider=mp)
    try:
        async with Supervisor(cfg, telemetry=telemetry) as sup:
            res = await sup.run("trace me [[bash: echo $TRACEPARENT > tp.txt]] [[text: traced]]", cwd=work)
            assert res.ok, res.reason
            assert res.recoveries >= 1
            points = _metric_points(reader)  # while the supervisor (and its store) is open
    finally:
        mock_api.clear_faults()

    spans = exporter.get_finished_spans()
    jobs = [s for s in spans if s.name == "resurgo.job"]
    attempts = [s for s in spans if s.name.startswith("resurgo.attempt")]
    assert len(jobs) == 1
    job = jobs[0]
    assert job.attributes is not None and job.attributes["resurgo.job.state"] == "succeeded"
    assert job.status.status_code is StatusCode.OK
    assert len(attempts) == res.attempts >= 2
    assert all(a.parent is not None and a.parent.span_id == job.context.span_id for a in attempts)
    assert all(a.context.trace_id == job.context.trace_id for a in attempts)
    ordered = sorted(attempts, key=lambda s: s.start_time or 0)
    first, last = ordered[0], ordered[-1]
    assert first.status.status_code is StatusCode.ERROR
    verdicts = [e for e in first.events if e.name == "resurgo.classification"]
    assert verdicts and verdicts[0].attributes is not None
    assert verdicts[0].attributes["resurgo.error.type"] == "resource"
    assert verdicts[0].attributes["resurgo.error.retryable"] is True
    names = [e.name for e in job.events]
    assert "resurgo.recovery.planned" in names and "resurgo.recovery.restored" in names
    assert "resurgo.wait" in names  # the recovery waited (backoff, then the open breaker)
    transitions = [
        (e.attributes or {}).get("resurgo.breaker.to_state")
        for e in job.events
        if e.name == "resurgo.breaker.transition"
    ]
    assert "open" in transitions, names

    # the attempt that ran the CLI says which version it was
    assert last.attributes is not None and str(last.attributes["resurgo.cli.version"]).count(".") == 2

    # the Bash tool of the successful attempt inherited that attempt's trace context
    tp_line = (work / "tp.txt").read_text().strip()
    version, trace_id, parent_id, flags = tp_line.split("-")
    assert version == "00" and int(flags, 16) & 1  # sampled (bit 2, "random trace id", may be set too)
    assert int(trace_id, 16) == job.context.trace_id
    assert int(parent_id, 16) == last.context.span_id

    # metrics: the Prometheus collector's families, with the same values over the same store
    assert set(FAMILIES) <= set(points), sorted(set(FAMILIES) - set(points))
    jobs_done = {dict(p.attributes)["state"]: p.value for p in points["resurgo_jobs"]}
    assert jobs_done["succeeded"] == 1
    rec = points["resurgo_recovery_seconds"]
    assert sum(p.count for p in rec) == res.recoveries
    store = Store(str(store_path))
    try:
        prom = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in ResurgoCollector(store).collect() if fam.name in ("resurgo_jobs", "resurgo_recoveries",
                                                                        "resurgo_errors", "resurgo_breaker_transitions")
            for s in fam.samples if not s.name.endswith("_created")
        }
    finally:
        store.close()
    otel = {
        (name + "_total", tuple(sorted(dict(p.attributes).items()))): p.value
        for name in ("resurgo_jobs", "resurgo_recoveries", "resurgo_errors", "resurgo_breaker_transitions")
        for p in points[name]
    }
    assert otel == prom
