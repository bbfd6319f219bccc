"""The OpenTelemetry retry hook and breaker listener, the [otel] setting, and life without the extra."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is part of the dev set-up")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from resurgo.breaker import CircuitBreaker, CircuitOpenError, CircuitThresholds
from resurgo.classifier import ErrorClass, ErrorType, Severity
from resurgo.clock import FakeClock
from resurgo.config import load_settings
from resurgo.otel import OTelBreakerListener, OTelRetryHook
from resurgo.retrier import Retrier, RetryPolicy

SRC = Path(__file__).resolve().parents[2] / "src"


def ec() -> ErrorClass:
    return ErrorClass(ErrorType.NETWORK, Severity.MEDIUM, "network", "test", True)


class Classified(Exception):
    pass


def classify(exc: BaseException) -> ErrorClass:
    return ec()


def net() -> Classified:
    return Classified("reset")


P = RetryPolicy(max_attempts=2, base_delay=1, max_delay=1, backoff_strategy="fixed", jitter=False)


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out.setdefault(m.name, []).extend(m.data.data_points)
    return out


def test_retry_hook_counts_like_the_prometheus_hook_and_marks_the_current_span() -> None:
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    r = Retrier(policy=P, clock=FakeClock(), classifier=classify, instruments=[OTelRetryHook(meter_provider=mp)],
                name="api")
    with tp.get_tracer("t").start_as_current_span("call"), pytest.raises(Classified):
        r.call(lambda: (_ for _ in ()).throw(net()))
    pts = _points(reader)
    [retries] = pts["resurgo_retry_retries"]
    assert dict(retries.attributes) == {"name": "api", "error_type": "network"} and retries.value == 1
    [backoff] = pts["resurgo_retry_backoff_seconds"]
    assert backoff.count == 1 and backoff.sum == 1.0
    [give_up] = pts["resurgo_retry_give_ups"]
    assert dict(give_up.attributes) == {"name": "api", "reason": "attempts_exhausted"}
    [span] = exporter.get_finished_spans()
    assert [e.name for e in span.events] == ["resurgo.retrier", "resurgo.retrier.give_up"]
    assert span.events[0].attributes["resurgo.retrier.delay_s"] == 1.0  # type: ignore[index]


def test_retry_hook_records_nothing_on_a_first_try_success() -> None:
    reader = InMemoryMetricReader()
    r = Retrier(policy=P, clock=FakeClock(), classifier=classify,
                instruments=[OTelRetryHook(meter_provider=MeterProvider(metric_readers=[reader]))], name="api")
    assert r.call(lambda: 7) == 7
    assert all(not pts for pts in _points(reader).values())


def test_breaker_listener_counts_transitions_and_rejections_with_span_events() -> None:
    reader = InMemoryMetricReader()
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    b = CircuitBreaker(
        "api",
        thresholds=CircuitThresholds(failure_rate=0.5, min_calls=2, wait_in_open=30.0),
        clock=FakeClock(),
        classifier=lambda e: ec(),
        listeners=[OTelBreakerListener(meter_provider=MeterProvider(metric_readers=[reader]))],
    )
    with tp.get_tracer("t").start_as_current_span("calls"):
        for _ in range(2):
            with pytest.raises(Classified):
                b.call(lambda: (_ for _ in ()).throw(net()))
        with pytest.raises(CircuitOpenError):
            b.call(lambda: 1)
    pts = _points(reader)
    [tr] = pts["resurgo_breaker_transitions"]
    assert dict(tr.attributes) == {"breaker": "api", "from_state": "closed", "to_state": "open"} and tr.value == 1
    [rej] = pts["resurgo_breaker_rejections"]
    assert dict(rej.attributes) == {"breaker": "api", "state": "open"}
    [span] = exporter.get_finished_spans()
    names = [e.name for e in span.events]
    assert "resurgo.breaker.transition" in names and "resurgo.breaker.rejected" in names


def test_otel_setting_from_file_and_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "r.toml"
    cfg.write_text("[otel]\nenabled = true\n")
    cfg.chmod(0o600)
    s = load_settings(config_file=cfg, environ={"HOME": str(tmp_path)}, cwd=tmp_path)
    assert not s.problems and s.supervisor_kwargs()["otel"] is True
    s = load_settings(environ={"HOME": str(tmp_path), "RESURGO_OTEL_ENABLED": "1"}, cwd=tmp_path)
    assert s.supervisor_kwargs()["otel"] is True
    s = load_settings(environ={"HOME": str(tmp_path)}, cwd=tmp_path)
    assert "otel" not in s.supervisor_kwargs()
    s = load_settings(environ={"HOME": str(tmp_path), "RESURGO_OTEL_ENABLED": "maybe"}, cwd=tmp_path)
    assert any(p.key == "enabled" and "true or false" in p.message for p in s.problems)


_BLOCK = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError("blocked for the test: " + name)
        return None
sys.meta_path.insert(0, _Block())
"""


def _run_blocked(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "HOME": str(tmp_path), "RESURGO_HOME": str(tmp_path / "state")}
    env.pop("RESURGO_OTEL_ENABLED", None)
    return subprocess.run(
        [sys.executable, "-c", _BLOCK + textwrap.dedent(code)],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
    )


def test_resurgo_imports_and_runs_without_opentelemetry(tmp_path: Path) -> None:
    """Nothing changes for users without the extra: the library, the supervisor and the CLI load and work."""
    r = _run_blocked(
        """
        import asyncio, sys
        import resurgo
        from resurgo.supervise import Supervisor, SupervisorConfig
        from resurgo.cli import main
        assert resurgo.classify(TimeoutError("x")).retryable
        calls = []
        @resurgo.retry(max_attempts=3, base_delay=0.01, max_delay=0.01)
        def flaky():
            calls.append(1)
            if len(calls) < 2:
                raise ConnectionResetError("reset")
            return "ok"
        assert flaky() == "ok"
        async def go():
            async with Supervisor(SupervisorConfig(store=":memory:", claude="/bin/false")) as sup:
                return await sup.run("hi", cwd=".")
        res = asyncio.run(go())
        assert res.state.value == "failed", res
        assert not [m for m in sys.modules if m.startswith("opentelemetry")]
        print("OK")
        """,
        tmp_path,
    )
    assert r.returncode == 0 and r.stdout.strip().endswith("OK"), r.stderr[-2000:]


def test_enabling_otel_without_the_extra_is_a_clear_configuration_error(tmp_path: Path) -> None:
    r = _run_blocked(
        """
        from resurgo.supervise import Supervisor, SupervisorConfig, ConfigError
        try:
            Supervisor(SupervisorConfig(store=":memory:", otel=True))
        except ConfigError as e:
            print("ERR", e)
        try:
            import resurgo.otel
        except ImportError as e:
            print("IMP", e)
        """,
        tmp_path,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ERR otel is enabled but OpenTelemetry is not installed" in r.stdout
    assert "pip install 'resurgo[otel]'" in r.stdout
