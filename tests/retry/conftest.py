from __future__ import annotations

from collections.abc import Iterator

import pytest

from resurgo.clock import FakeClock
from resurgo.retrier import set_testing


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def _no_testing_mode() -> Iterator[None]:
    """Each test starts with testing mode off, and a test that turns it on cannot leak it."""
    with set_testing(False):
        yield
