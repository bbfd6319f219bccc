"""Redaction shapes the reviewers found leaking, and the one URL policy every module uses."""

from __future__ import annotations

import json
import logging
import socket

import pytest

from resurgo._redact import REDACTED, might_hold_secret, redact_json_line, redact_text, redact_url


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        # quoted values: the whole value goes, the quotes stay
        ('export ANTHROPIC_AUTH_TOKEN="xyz-very-secret"', 'export ANTHROPIC_AUTH_TOKEN="<redacted>"'),
        ("export DB_PASSWORD='two words' && run", "export DB_PASSWORD='<redacted>' && run"),
        ('X_SECRET="unterminated', 'X_SECRET="<redacted>'),
        ("GH_TOKEN=plain next", "GH_TOKEN=<redacted> next"),
        # credentials in URLs: the user is kept, the password is not
        ("redis://:s3cret@host:6379/0", "redis://:<redacted>@host:6379/0"),
        ("clone https://user:pass@host/ now", "clone https://user:<redacted>@host/ now"),
        ("redis://:p@ss@host:1/0", "redis://:<redacted>@host:1/0"),  # an unencoded @ in the password
        ("https://abcdefghijklmnopqrstuvwx@github.com/o/r", "https://<redacted>@github.com/o/r"),
        # not secrets: left alone
        ("ssh://git@github.com/o/r", "ssh://git@github.com/o/r"),
        ("http://127.0.0.1:8080/v1/messages", "http://127.0.0.1:8080/v1/messages"),
    ],
)
def test_redact_text_quoted_values_and_url_credentials(raw: str, want: str) -> None:
    assert redact_text(raw) == want
    assert redact_text(want) == want  # idempotent: redacting twice changes nothing more


def test_name_value_rule_keeps_json_text_valid() -> None:
    """redact_text also runs over JSON text (stored payloads): escaped quotes must survive."""
    doc = json.dumps({"cmd": 'export T_TOKEN="a b" PASSWORD=c\\d', "n": 1})
    out = redact_text(doc)
    back = json.loads(out)
    assert back["cmd"] == 'export T_TOKEN="<redacted>" PASSWORD=<redacted>'
    assert "a b" not in out and "c\\\\d" not in out


def test_the_pre_check_lets_ordinary_events_through_and_catches_every_shape() -> None:
    usage = '{"type":"assistant","message":{"usage":{"input_tokens":5,"output_tokens":7}}}'
    assert not might_hold_secret(usage)
    assert redact_json_line(usage) is usage  # untouched, not re-serialised
    for secret in ("sk-ant-api03-abcd", "Bearer abcdefghijk", "X_TOKEN=1", "redis://:pw@h", "AKIAABCDEFGHIJKLMNOP"):
        assert might_hold_secret(f"... {secret} ...")


def test_redact_json_line_redacts_values_and_keeps_the_rest() -> None:
    ev = {
        "type": "system",
        "subtype": "init",
        "apiKeySource": "ANTHROPIC_API_KEY",  # names the variable, not a secret
        "session_id": "s-1",
        "tools": ["Bash"],
        "note": "Authorization: Bearer abcdefghijklmnop and a café",
    }
    line = json.dumps(ev)
    out = json.loads(redact_json_line(line))
    assert out["apiKeySource"] == "ANTHROPIC_API_KEY" and out["session_id"] == "s-1"
    assert out["note"] == "Authorization: Bearer <redacted> and a café"
    assert redact_json_line("not json, ANTHROPIC_API_KEY=abc") == "not json, ANTHROPIC_API_KEY=<redacted>"
    deep = "[" * 100_000 + "]" * 100_000 + " X_TOKEN=abc"  # not JSON, and too deep to walk anyway
    assert redact_json_line(deep).endswith("X_TOKEN=<redacted>")


@pytest.mark.parametrize(
    ("url", "want"),
    [
        ("https://hooks.slack.com/services/T000/B000/XXXXSECRET", "https://hooks.slack.com/<redacted>"),
        ("https://discord.com/api/webhooks/1/tok?wait=true", "https://discord.com/<redacted>"),
        ("redis://:s3cret@cache:6379/0", "redis://cache:6379/<redacted>"),
        ("https://user:pass@host/", "https://host"),
        ("http://alerts.example:8080", "http://alerts.example:8080"),
        ("http://[::1]:9000/x", "http://[::1]:9000/<redacted>"),
        ("HTTPS://Host.Example/?q=1", "https://Host.Example/<redacted>"),
        ("http://host:99999999/", "http://" + REDACTED),  # out-of-range port: shown as nothing
        ("http://host:abc/", "http://" + REDACTED),
        ("http://[::1/", REDACTED),  # urlsplit raises on this one: nothing shown
        ("not a url", REDACTED),
        ("", REDACTED),
        ("token-only-no-scheme@host", REDACTED),
    ],
)
def test_redact_url_one_policy_never_raises(url: str, want: str) -> None:
    assert redact_url(url) == want
    assert "pass" not in redact_url(url) and "SECRET" not in redact_url(url)


def test_every_url_redactor_is_the_one_policy(caplog: pytest.LogCaptureFixture) -> None:
    from resurgo.config import redact_url as config_redact_url
    from resurgo.supervise._alerts import AlertManager

    for u in ("redis://:pw@h:1/0", "https://hooks.slack.com/services/T/B/X", "http://[::1/", "x"):
        assert config_redact_url(u) == redact_url(u)

    # the alert manager's failure log: a Slack-style webhook's path is its token
    port = _closed_port()
    am = AlertManager(webhook=f"http://u:pw@127.0.0.1:{port}/services/T0/B0/HOOKSECRET?token=abc", timeout=1.0)
    with caplog.at_level(logging.WARNING, logger="resurgo.alerts"):
        assert am.alert("escalation", "x", "y") is not None
        assert am.flush(10)
    assert am.delivery_failures == 1
    failed = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert failed and f"http://127.0.0.1:{port}/<redacted>" in failed[0]
    text = caplog.text
    assert "HOOKSECRET" not in text and "token=abc" not in text and "pw@" not in text


def test_the_redis_link_logs_its_url_redacted(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("redis")
    from resurgo.distributed._link import RedisLink

    port = _closed_port()
    with caplog.at_level(logging.WARNING, logger="resurgo.distributed"):
        link = RedisLink(f"redis://:s3cret@127.0.0.1:{port}/0", socket_timeout=0.2)
        link.close()
    assert not link.up
    assert f"redis redis://127.0.0.1:{port}/<redacted> unreachable" in caplog.text
    assert "s3cret" not in caplog.text


def _closed_port() -> int:
    """A loopback port nothing listens on (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
