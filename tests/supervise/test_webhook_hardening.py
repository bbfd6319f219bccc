"""The alert webhook goes where it was configured and nowhere else, and never hangs or raises (issue 15, item 10)."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from resurgo.supervise._alerts import Alert, AlertManager

ALERT = Alert("escalation", "job x", "bad credentials", 0.0)


@contextmanager
def http_server(status: int, headers: dict[str, str] | None = None) -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []

    class H(http.server.BaseHTTPRequestHandler):
        def _any(self) -> None:
            hits.append(self.path)
            n = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(n)
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET = _any

        def log_message(self, *a: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", hits
    finally:
        srv.shutdown()
        srv.server_close()


@contextmanager
def raw_server(answer: Callable[[socket.socket], None]) -> Iterator[str]:
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    ls.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                c, _ = ls.accept()
            except (TimeoutError, OSError):
                continue
            with c:
                c.settimeout(0.5)
                try:
                    c.recv(65536)
                    answer(c)
                except OSError:
                    pass

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{ls.getsockname()[1]}/hook"
    finally:
        stop.set()
        t.join(timeout=20)
        ls.close()


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirects_are_not_followed(code: int) -> None:
    with http_server(200) as (other, other_hits), http_server(code, {"Location": f"{other}/stolen"}) as (url, hits):
        am = AlertManager(webhook=f"{url}/services/T0/B0/SECRET", timeout=2.0)
        assert am.post(ALERT) is False
        assert hits == ["/services/T0/B0/SECRET"] and other_hits == []
        assert am.delivery_failures == 1


def test_a_loopback_webhook_never_goes_through_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    with http_server(200) as (proxy, proxy_hits), http_server(200) as (url, hits):
        for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
            monkeypatch.setenv(var, proxy)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        import urllib.request

        monkeypatch.setattr(urllib.request, "_opener", None)  # as in a fresh process: proxies read now
        assert AlertManager(webhook=f"{url}/hook", timeout=2.0).post(ALERT) is True
        assert hits == ["/hook"] and proxy_hits == []


def test_a_trickling_answer_is_cut_at_the_overall_deadline() -> None:
    def trickle(c: socket.socket) -> None:
        c.sendall(b"HTTP/1.1 200 OK\r\n")
        end = time.monotonic() + 15  # far beyond the 1 s deadline (bounded, so a regression fails, not hangs)
        while time.monotonic() < end:
            c.sendall(b"X-Slow: a\r\n")  # each byte resets a per-read timeout
            time.sleep(0.2)

    with raw_server(trickle) as url:
        am = AlertManager(webhook=url, timeout=1.0)
        t0 = time.monotonic()
        assert am.post(ALERT) is False
        assert time.monotonic() - t0 < 5.0


@pytest.mark.parametrize("answer", [
    b"HELLO\r\n\r\n",                                                     # not HTTP at all
    b"HTTP/1.1 2OO OK\r\n\r\n",                                          # a status that is not a number
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",      # broken chunking
    b"",                                                                  # closed without a word
])
def test_odd_answers_are_failed_deliveries_not_exceptions(answer: bytes) -> None:
    with raw_server(lambda c: c.sendall(answer)) as url:
        am = AlertManager(webhook=url, timeout=2.0)
        assert am.post(ALERT) is False
        assert am.delivery_failures == 1
