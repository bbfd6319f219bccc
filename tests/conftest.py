"""Fixtures shared by every test area: the real CLI, a throw-away home, the API stand-in.

Kept small and generic on purpose; area-specific helpers live in each area's package.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from resurgo.mockapi import MockServer


def find_claude() -> str | None:
    """The real CLI: $RESURGO_CLAUDE, else the repo's npm install, else PATH."""
    env = os.environ.get("RESURGO_CLAUDE")
    if env:
        return env
    local = Path(__file__).resolve().parents[1] / ".tools/npm/node_modules/.bin/claude"
    if local.exists():
        return str(local)
    return shutil.which("claude")


@pytest.fixture(scope="session")
def claude_bin() -> str:
    """Path of the real Claude Code CLI; a missing CLI fails loudly instead of skipping."""
    path = find_claude()
    if path is None or not Path(path).exists():
        pytest.fail("real Claude Code CLI not found: set RESURGO_CLAUDE or run the README set-up")
    return path


@pytest.fixture
def claude_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a CLI run in a temporary HOME (never the real ~/.claude).

    Add ``ANTHROPIC_BASE_URL`` (e.g. ``mock_api.url``) yourself. The CLI's own
    retries are off so a fault shows at once; raise CLAUDE_CODE_MAX_RETRIES to test them.
    """
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "ANTHROPIC_API_KEY": "test",
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_MAX_RETRIES": "0",
    }


@pytest.fixture
def mock_api() -> Iterator[MockServer]:
    """A started Messages API stand-in on a free loopback port; stopped (all sockets closed) after."""
    srv = MockServer(host="127.0.0.1", port=0)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
