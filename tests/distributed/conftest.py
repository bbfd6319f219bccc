"""A private ``redis-server`` per test, on loopback, that tests may kill and restart.

Each test gets its own server (a free port, a temp dir, no persistence) so a
test that kills Redis mid-run cannot disturb another, and the server is always
killed at the end, even when the test fails.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisProcess:
    """A redis-server child process bound to 127.0.0.1:``port``; ``kill``/``start`` keep the port."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 5.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - closed when the child is reaped
        try:
            self.proc = subprocess.Popen(
                [
                    REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port),
                    "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
                    "--protected-mode", "yes", "--daemonize", "no",
                ],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.workdir / 'redis.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        self.kill()
        raise RuntimeError("redis-server did not start in time")

    def kill(self) -> None:
        """SIGKILL (a crash, not a clean shutdown) and reap."""
        p = self.proc
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(timeout=5)
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()


@pytest.fixture
def redis_proc(tmp_path: Path) -> Iterator[RedisProcess]:
    """A started private redis-server; killed after the test whatever happened."""
    if not Path(REDIS_SERVER).exists():
        pytest.fail("redis-server not installed (apt-get install redis-server)")
    d = tmp_path / "redis"
    d.mkdir()
    rp = RedisProcess(d)
    rp.start()
    try:
        yield rp
    finally:
        rp.kill()


@pytest.fixture
def redis_url(redis_proc: RedisProcess) -> str:
    return redis_proc.url
