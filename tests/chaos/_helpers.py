"""Helpers for the chaos building-block tests: a loopback upstream and a process reaper.

The upstream is a plain threaded TCP server so proxy tests see real sockets and
real kernel behaviour (FIN vs RST), and the reaper guarantees that every
process a test spawns is killed, by process group, even when the test fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time

import psutil


class _Handler(socketserver.BaseRequestHandler):
    """``GET /bytes/N`` answers N bytes then closes; anything else is echoed until EOF."""

    def handle(self) -> None:
        server: Upstream = self.server  # type: ignore[assignment]
        with server.lock:
            server.accepted += 1
        sock: socket.socket = self.request
        sock.settimeout(10)
        try:
            first = sock.recv(65536)
            if not first:
                return
            with server.lock:
                server.received += len(first)
            if first.startswith(b"GET /bytes/"):
                n = int(first.split(b"/bytes/")[1].split()[0])
                body = bytes(i % 251 for i in range(n))
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n"
                sock.sendall(head.encode() + body)
                return
            sock.sendall(first)
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                with server.lock:
                    server.received += len(data)
                sock.sendall(data)
        except OSError:
            return


class Upstream(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.accepted = 0
        self.received = 0

    @property
    def port(self) -> int:
        return int(self.server_address[1])


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return s


def recv_all(s: socket.socket) -> bytes:
    """Read until EOF (raises on reset or timeout)."""
    chunks = []
    while True:
        data = s.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


class Reaper:
    """Spawns processes in their own groups and kills every group at teardown."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, code: str, *, new_session: bool = True) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=new_session,
        )
        self.procs.append(p)
        return p

    def cleanup(self) -> None:
        for p in self.procs:
            # The whole group: grandchildren re-parented to init are still in it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(5)


# A root that starts two children, each of which starts one grandchild; all sleep.
TREE_CODE = """
import subprocess, sys, time
leaf = "import time; time.sleep(30)"
mid = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', %r]); time.sleep(30)" % leaf
kids = [subprocess.Popen([sys.executable, "-c", mid]) for _ in range(2)]
time.sleep(30)
"""


def wait_tree(root: int, n: int, timeout: float = 10.0) -> list[psutil.Process]:
    """Wait until ``root`` has ``n`` descendants and return them."""
    end = time.monotonic() + timeout
    while True:
        kids = psutil.Process(root).children(recursive=True)
        if len(kids) >= n:
            return kids
        if time.monotonic() > end:
            raise AssertionError(f"tree of {root} has {len(kids)} descendants, expected {n}")
        time.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
