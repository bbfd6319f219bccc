"""tool_wait: the shape of a scripted wait that every tested CLI version runs (docs/cli-versions.md)."""

from __future__ import annotations

import re

import pytest

from resurgo.mockapi import tool_wait
from resurgo.mockapi._shapes import REFUSED_LEADING_SLEEP_S

# 2.1.332's rule, as read from the CLI: the first command is exactly `sleep N` and N >= 25
_REFUSED = re.compile(r"^sleep\s+(\d+(?:\.\d*)?)\s*$")


def _refused_by_latest(cmd: str) -> bool:
    first = cmd.split(";")[0].strip()
    m = _REFUSED.match(first)
    return bool(m) and float(m.group(1)) >= REFUSED_LEADING_SLEEP_S


@pytest.mark.parametrize("s", [0, 0.5, 1, 3, 20, 24.9, 25, 30, 60, 90.5, 600])
def test_no_wait_shape_is_refused_and_short_ones_stay_plain(s: float) -> None:
    cmd = tool_wait(s)
    assert not _refused_by_latest(cmd)
    assert (cmd == f"sleep {s:g}") == (s <= 20)
    assert not _refused_by_latest(cmd + "; echo done")


def test_the_rule_model_itself_flags_the_refused_shape() -> None:
    """The check above would catch a regression: a plain long sleep is what 2.1.332 blocks."""
    assert _refused_by_latest("sleep 30") and _refused_by_latest("sleep 25; echo x")
    assert not _refused_by_latest("sleep 24; echo x")


def test_bad_seconds_are_refused() -> None:
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            tool_wait(bad)
