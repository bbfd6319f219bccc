"""``resurgo mock-api``: option parsing and a real foreground run ended by Ctrl-C."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys

import click
import pytest

from resurgo.cli._mockapi import parse_fault_options
from resurgo.mockapi import Faults


def test_parse_fault_options() -> None:
    assert parse_fault_options(()) == Faults()
    assert parse_fault_options(("529", "count=3", "seed=1", "probability=0.5")) == Faults(
        status=529, count=3, seed=1, probability=0.5
    )
    assert parse_fault_options(("reset", "cut=4", "session-id=abc", "paths=/v1/messages,/x")) == Faults(
        reset=True, cut_after=4, session_id="abc", paths=("/v1/messages", "/x")
    )
    assert parse_fault_options(("hang=true", "event_delay=0.2")) == Faults(hang=True, event_delay=0.2)


@pytest.mark.parametrize("bad", ["stauts=529", "count=many", "probability=3", "teapot", "hang=maybe"])
def test_parse_fault_options_rejects_bad_input(bad: str) -> None:
    with pytest.raises(click.BadParameter):
        parse_fault_options((bad,))


def test_command_serves_until_ctrl_c() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from resurgo.cli import main; main()",
            "mock-api",
            "--port",
            "0",
            "--fault",
            "503",
            "--fault",
            "count=1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        port = int(url.rsplit(":", 1)[1])
        statuses = []
        for _ in range(2):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request(
                "POST",
                "/v1/messages",
                body=json.dumps({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
            )
            statuses.append(conn.getresponse().status)
            conn.close()
        assert statuses == [503, 200]
        proc.send_signal(signal.SIGINT)
        try:
            # 30 s: two CI rehearsals of the full suite saw it still running 10 s after the SIGINT (never
            # alone); if it hangs, SIGABRT makes faulthandler print where every thread was
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            _, err = proc.communicate(timeout=10)
            raise AssertionError(f"mock-api did not exit within 30 s of SIGINT; its threads:\n{err}") from None
        assert proc.returncode == 0, err
        assert "served 2 request(s)" in err
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
