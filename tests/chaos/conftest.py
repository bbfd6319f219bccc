"""Fixtures for the chaos tests; every one tears down what it started, even on failure."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from ._helpers import Reaper, Upstream


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    srv = Upstream()
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


@pytest.fixture
def reaper() -> Iterator[Reaper]:
    r = Reaper()
    try:
        yield r
    finally:
        r.cleanup()
