from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry

from resurgo.clock import FakeClock
from resurgo.retrier import LoggingHook, PrometheusHook, Retrier, RetryPolicy
from resurgo.retrier._hooks import redact

from ._helpers import Classified, classify, ec, net

P = RetryPolicy(max_attempts=2, base_delay=1, max_delay=1, backoff_strategy="fixed", jitter=False)


def test_redact_masks_keys_and_tokens() -> None:
    text = "bad key sk-ant-api03-AAAABBBBCCCCDDDD x-api-key: abc123 Authorization: Bearer zzz.yyy"
    out = redact(text)
    assert "AAAABBBBCCCCDDDD" not in out and "abc123" not in out and "zzz.yyy" not in out
    assert "sk-ant-<redacted>" in out


def test_logging_hook(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    r = Retrier(policy=P, clock=clock, classifier=classify, instruments=[LoggingHook()], name="api")
    with caplog.at_level(logging.WARNING, "resurgo.retry"), pytest.raises(Classified):
        r.call(lambda: (_ for _ in ()).throw(Classified(ec(), "leaked sk-ant-api03-SECRETSECRET")))
    msgs = [rec.getMessage() for rec in caplog.records]
    assert any("retrying api: attempt 1 failed (network" in m for m in msgs)
    assert any("gave up on 'api' after 2 attempts" in m for m in msgs)
    assert "SECRETSECRET" not in caplog.text
    assert caplog.records[0].retry_attempt == 1  # type: ignore[attr-defined]


def test_prometheus_hook(clock: FakeClock) -> None:
    reg = CollectorRegistry()
    hook = PrometheusHook(reg)
    assert PrometheusHook(reg)._retries is hook._retries  # one metric set per registry
    r = Retrier(policy=P, clock=clock, classifier=classify, instruments=[hook], name="api")
    with pytest.raises(Classified):
        r.call(lambda: (_ for _ in ()).throw(net()))
    assert reg.get_sample_value("resurgo_retry_retries_total", {"name": "api", "error_type": "network"}) == 1
    assert reg.get_sample_value("resurgo_retry_backoff_seconds_sum", {"name": "api"}) == 1.0
    assert reg.get_sample_value("resurgo_retry_give_ups_total", {"name": "api", "reason": "attempts_exhausted"}) == 1
