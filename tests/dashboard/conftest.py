"""Fixtures: a dashboard served on 127.0.0.1:0 over the synthetic store, shut down at teardown."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "observe"))

from synthetic import NOW, T0, build

from resurgo.dashboard import Dashboard
from resurgo.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "runs.db")
    build(s, T0)
    yield s
    s.close()


@pytest.fixture
def dash(store: Store) -> Iterator[Dashboard]:
    d = Dashboard(store, now=lambda: NOW, poll_s=0.05, tick_s=60)
    d.start()
    yield d
    d.shutdown()
