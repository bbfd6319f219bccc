"""A labelled corpus of REAL exceptions, raised by the real libraries at test time.

Every exception here is produced by actually calling httpx, requests, anthropic, urllib,
http.client, asyncio, socket or subprocess against loopback servers started by
:func:`collect` (or by the interpreter itself: KeyError, MemoryError, ...).  Only OSError
errno cases the machine cannot produce safely (disk full, out of file descriptors) are
constructed, the way Python itself constructs them (``OSError(errno, strerror)``).

``collect()`` returns ``(id, exception_or_None, expect)`` rows where expect is
``{"error": bool, "type": str | None, "retryable": bool | None}``; it starts and stops its
servers itself, so it is usable from the tests and from ``bench/bench_classify.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Row = tuple[str, BaseException | None, dict[str, Any]]

_BODY_TYPE = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


class _Handler(BaseHTTPRequestHandler):
    """``/sNNN/...`` answers status NNN with an Anthropic-shaped error body."""

    def log_message(self, *a: Any) -> None:  # keep test output clean
        pass

    def _answer(self) -> None:
        seg = self.path.lstrip("/").split("/", 1)[0]
        n = int(self.headers.get("content-length") or 0)
        if n:
            self.rfile.read(n)
        if seg == "close":  # accept, read, then hang up without answering
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        status = int(seg[1:]) if seg.startswith("s") and seg[1:].isdigit() else 200
        if status == 200:
            body = json.dumps({"ok": True}).encode()
        else:
            body = json.dumps(
                {
                    "type": "error",
                    "error": {"type": _BODY_TYPE.get(status, "api_error"), "message": f"status {status}"},
                    "request_id": "req_011TEST",
                }
            ).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        if status in (429, 529, 503):
            self.send_header("retry-after", "7")
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer


@contextlib.contextmanager
def _servers() -> Iterator[tuple[int, int, int]]:
    """(http port, silent port that never answers, closed port) on 127.0.0.1."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    closed_port = probe.getsockname()[1]
    probe.close()
    try:
        yield httpd.server_address[1], silent.getsockname()[1], closed_port
    finally:
        httpd.shutdown()
        httpd.server_close()
        silent.close()
        t.join(5)


def _catch(fn: Callable[[], Any]) -> BaseException:
    try:
        fn()
    except BaseException as e:
        return e
    raise AssertionError(f"{fn} did not raise")


def _E(t: str, r: bool) -> dict[str, Any]:
    return {"error": True, "type": t, "retryable": r}


NOT_ERROR: dict[str, Any] = {"error": False, "type": None, "retryable": None}


def collect() -> list[Row]:
    rows: list[Row] = []
    add = rows.append
    with _servers() as (port, silent, closed):
        base = f"http://127.0.0.1:{port}"
        # -- socket / stdlib ----------------------------------------------------------
        add(("socket.refused", _catch(lambda: socket.create_connection(("127.0.0.1", closed), 1)), _E("network", True)))
        add(("socket.timeout", _catch(lambda: _recv_timeout(silent)), _E("timeout", True)))
        add(
            (
                "urllib.refused",
                _catch(lambda: urllib.request.urlopen(f"http://127.0.0.1:{closed}/", timeout=1)),
                _E("network", True),
            )
        )
        for st, exp in (
            (503, _E("resource", True)),
            (401, _E("auth", False)),
            (404, _E("validation", False)),
            (500, _E("internal", True)),
            (504, _E("timeout", True)),
        ):
            add((f"urllib.http{st}", _catch(lambda st=st: urllib.request.urlopen(f"{base}/s{st}/", timeout=2)), exp))
        add(("http.client.remote_disconnected", _catch(lambda: _http_client_close(port)), _E("network", True)))
        # -- httpx --------------------------------------------------------------------
        import httpx

        add(
            (
                "httpx.connect_refused",
                _catch(lambda: httpx.get(f"http://127.0.0.1:{closed}/", timeout=1)),
                _E("network", True),
            )
        )
        add(
            (
                "httpx.read_timeout",
                _catch(lambda: httpx.get(f"http://127.0.0.1:{silent}/", timeout=httpx.Timeout(1, read=0.05))),
                _E("timeout", True),
            )
        )
        add(
            (
                "httpx.remote_protocol",
                _catch(lambda: httpx.post(f"{base}/close/", content=b"x", timeout=2)),
                _E("network", True),
            )
        )
        add(("httpx.unsupported_protocol", _catch(lambda: httpx.get("ftp://127.0.0.1/")), _E("validation", False)))
        for st, exp in (
            (429, _E("resource", True)),
            (529, _E("resource", True)),
            (401, _E("auth", False)),
            (403, _E("auth", False)),
            (400, _E("validation", False)),
            (413, _E("validation", False)),
            (500, _E("internal", True)),
            (502, _E("network", True)),
            (504, _E("timeout", True)),
        ):
            add(
                (
                    f"httpx.status{st}",
                    _catch(lambda st=st: httpx.get(f"{base}/s{st}/", timeout=2).raise_for_status()),
                    exp,
                )
            )
        # -- requests -----------------------------------------------------------------
        import requests

        add(
            (
                "requests.connection_error",
                _catch(lambda: requests.get(f"http://127.0.0.1:{closed}/", timeout=1)),
                _E("network", True),
            )
        )
        add(
            (
                "requests.read_timeout",
                _catch(lambda: requests.get(f"http://127.0.0.1:{silent}/", timeout=(1, 0.05))),
                _E("timeout", True),
            )
        )
        add(("requests.missing_schema", _catch(lambda: requests.get("127.0.0.1/nothing")), _E("validation", False)))
        add(
            (
                "requests.chunked_close",
                _catch(lambda: requests.post(f"{base}/close/", data=b"x", timeout=2)),
                _E("network", True),
            )
        )
        for st, exp in (
            (429, _E("resource", True)),
            (503, _E("resource", True)),
            (401, _E("auth", False)),
            (422, _E("validation", False)),
            (500, _E("internal", True)),
        ):
            add(
                (
                    f"requests.status{st}",
                    _catch(lambda st=st: requests.get(f"{base}/s{st}/", timeout=2).raise_for_status()),
                    exp,
                )
            )
        # -- anthropic SDK ------------------------------------------------------------
        import anthropic

        def call(url: str, timeout: float = 2.0) -> Any:
            c = anthropic.Anthropic(api_key="sk-ant-test-not-a-key", base_url=url, max_retries=0, timeout=timeout)
            try:
                with warnings.catch_warnings():  # the SDK warns about model names; irrelevant here
                    warnings.simplefilter("ignore")
                    return c.messages.create(
                        model="claude-sonnet-4-5", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
                    )
            finally:
                c.close()

        for st, exp in (
            (429, _E("resource", True)),
            (529, _E("resource", True)),
            (503, _E("resource", True)),
            (401, _E("auth", False)),
            (403, _E("auth", False)),
            (400, _E("validation", False)),
            (404, _E("validation", False)),
            (413, _E("validation", False)),
            (500, _E("internal", True)),
            (502, _E("network", True)),
            (504, _E("timeout", True)),
        ):
            add((f"anthropic.status{st}", _catch(lambda st=st: call(f"{base}/s{st}")), exp))
        add(("anthropic.connection_refused", _catch(lambda: call(f"http://127.0.0.1:{closed}")), _E("network", True)))
        add(("anthropic.timeout", _catch(lambda: call(f"http://127.0.0.1:{silent}", timeout=0.1)), _E("timeout", True)))
        # -- asyncio ------------------------------------------------------------------
        add(
            (
                "asyncio.wait_for_timeout",
                _catch(lambda: asyncio.run(asyncio.wait_for(asyncio.sleep(5), 0.01))),
                _E("timeout", True),
            )
        )
        add(("asyncio.cancelled", _catch(lambda: asyncio.run(_cancelled())), NOT_ERROR))
        add(
            (
                "asyncio.open_connection_refused",
                _catch(lambda: asyncio.run(asyncio.open_connection("127.0.0.1", closed))),
                _E("network", True),
            )
        )
        add(("asyncio.taskgroup_refused", _catch(lambda: asyncio.run(_group(closed))), _E("network", True)))
        add(("asyncio.incomplete_read", _catch(lambda: asyncio.run(_incomplete(port))), _E("network", True)))
    # -- subprocess -------------------------------------------------------------------
    py = sys.executable
    add(
        (
            "subprocess.timeout",
            _catch(lambda: subprocess.run([py, "-c", "import time; time.sleep(5)"], timeout=0.2)),
            _E("timeout", True),
        )
    )
    add(
        (
            "subprocess.exit3",
            _catch(lambda: subprocess.run([py, "-c", "import sys; sys.exit(3)"], check=True)),
            _E("process", True),
        )
    )
    add(
        (
            "subprocess.sigkill",
            _catch(
                lambda: subprocess.run(
                    [py, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"], check=True
                )
            ),
            _E("process", True),
        )
    )
    add(
        (
            "subprocess.sigsegv",
            _catch(
                lambda: subprocess.run(
                    [py, "-c", "import ctypes; ctypes.string_at(0)"], check=True, capture_output=True
                )
            ),
            _E("process", True),
        )
    )
    add(
        (
            "subprocess.missing_binary",
            _catch(lambda: subprocess.run(["/nonexistent/claude-binary"])),
            _E("process", False),
        )
    )
    add(
        (
            "subprocess.shell_127",
            _catch(lambda: subprocess.run(["/bin/sh", "-c", "exec /nonexistent/claude 2>/dev/null"], check=True)),
            _E("process", False),
        )
    )
    add(("subprocess.not_executable", _catch(lambda: subprocess.run([os.devnull])), _E("process", False)))
    # -- the interpreter itself -------------------------------------------------------
    add(("builtin.keyerror", _catch(lambda: {}["missing"]), _E("internal", False)))
    add(("builtin.typeerror", _catch(lambda: None + 1), _E("internal", False)))  # type: ignore[operator]
    add(("builtin.attributeerror", _catch(lambda: None.missing), _E("internal", False)))  # type: ignore[attr-defined]
    add(("builtin.assertion", _catch(_assert_false), _E("internal", False)))
    add(("builtin.json_decode", _catch(lambda: json.loads("{")), _E("internal", False)))
    add(("builtin.memoryerror", _catch(lambda: bytearray(1 << 62)), _E("resource", True)))
    add(("builtin.file_not_found", _catch(_open_missing), _E("process", False)))
    add(("builtin.keyboard_interrupt", KeyboardInterrupt(), NOT_ERROR))
    add(("chain.runtime_from_refused", _catch(lambda: _wrapped(closed)), _E("network", True)))
    add(("chain.context_keyerror_during_timeout", _catch(_keyerror_while_handling_timeout), _E("timeout", True)))
    # constructed exactly as the OS layer does (cannot be produced safely here)
    add(("oserror.enospc", OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/var/tmp/x"), _E("resource", False)))
    add(("oserror.emfile", OSError(errno.EMFILE, os.strerror(errno.EMFILE)), _E("resource", True)))
    add(("oserror.enomem", OSError(errno.ENOMEM, os.strerror(errno.ENOMEM)), _E("resource", True)))
    return rows


def _recv_timeout(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), 1) as s:
        s.settimeout(0.05)
        s.recv(1)


def _open_missing() -> None:
    with open("/nonexistent/file/for/resurgo"):
        pass


def _assert_false() -> None:
    raise AssertionError("invariant broken")


def _http_client_close(port: int) -> None:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        c.request("POST", "/close/", body=b"x")
        c.getresponse()
    finally:
        c.close()


async def _cancelled() -> None:
    t = asyncio.ensure_future(asyncio.sleep(5))
    await asyncio.sleep(0)
    t.cancel()
    await t


async def _group(closed: int) -> None:
    async with asyncio.TaskGroup() as tg:
        tg.create_task(asyncio.open_connection("127.0.0.1", closed))
        tg.create_task(asyncio.sleep(0.01))


async def _incomplete(port: int) -> None:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"POST /close/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
    await w.drain()
    try:
        await r.readexactly(100)
    finally:
        w.close()


def _wrapped(closed: int) -> None:
    try:
        socket.create_connection(("127.0.0.1", closed), 1)
    except OSError as e:
        raise RuntimeError("upload failed") from e


def _keyerror_while_handling_timeout() -> None:
    try:
        raise TimeoutError("read timed out")
    except TimeoutError:
        {}["retry_count"]  # a bug in the handler, while a real timeout is in flight
