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

#: The CLI versions the suite runs: the pinned one everything was recorded against (scripts/setup.sh
#: installs it into .tools/npm) and the newest one we test (.tools/npm-latest).  Keep in step with
#: ``resurgo.cli._doctor.TESTED_CLI_RANGE`` and the README.
CLI_VERSIONS = ("pinned", "latest")
_ROOT = Path(__file__).resolve().parents[1]


def find_claude(which: str = "pinned") -> str | None:
    """The real CLI.

    pinned: $RESURGO_CLAUDE, else the repo's .tools/npm install, else PATH;
    latest: $RESURGO_CLAUDE_LATEST, else the repo's .tools/npm-latest install.
    """
    if which == "latest":
        env = os.environ.get("RESURGO_CLAUDE_LATEST")
        if env:
            return env
        local = _ROOT / ".tools/npm-latest/node_modules/.bin/claude"
        return str(local) if local.exists() else None
    env = os.environ.get("RESURGO_CLAUDE")
    if env:
        return env
    local = _ROOT / ".tools/npm/node_modules/.bin/claude"
    if local.exists():
        return str(local)
    return shutil.which("claude")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "cli_versions: run this real-CLI test once per tested CLI version (pinned and latest), "
        "through a parametrised claude_bin",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked ``cli_versions`` get ``claude_bin`` once per version (ids ``cli-pinned``, ``cli-latest``).

    Only a representative subset carries the mark (process mechanics, sessions and
    resume, the supervisor's recoveries, OpenTelemetry): running the whole
    integration suite twice would double the default run for little more coverage.
    """
    if "claude_bin" in metafunc.fixturenames and metafunc.definition.get_closest_marker("cli_versions"):
        metafunc.parametrize("claude_bin", CLI_VERSIONS, indirect=True, ids=[f"cli-{v}" for v in CLI_VERSIONS])


@pytest.fixture(scope="session")
def claude_bin(request: pytest.FixtureRequest) -> str:
    """Path of the real Claude Code CLI; a missing CLI fails loudly instead of skipping.

    The pinned version unless the test is marked ``cli_versions`` (then each version in turn).
    """
    which = getattr(request, "param", "pinned")
    path = find_claude(which)
    if path is None or not Path(path).exists():
        hint = "RESURGO_CLAUDE_LATEST" if which == "latest" else "RESURGO_CLAUDE"
        pytest.fail(f"real Claude Code CLI ({which}) not found: set {hint} or run scripts/setup.sh")
    return path


@pytest.fixture(scope="session")
def claude_version(claude_bin: str) -> tuple[int, int, int]:
    """``claude --version`` of ``claude_bin`` as a tuple, for the few assertions that differ by version
    (each such difference is listed in docs/cli-versions.md)."""
    import re
    import subprocess

    out = subprocess.run([claude_bin, "--version"], capture_output=True, text=True, timeout=60).stdout
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", out)
    assert m, f"cannot read the CLI version from {out!r}"
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


@pytest.fixture(autouse=True)
def _private_cache_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """``resurgo run`` remembers launch plans under ``$XDG_CACHE_HOME``: never the real user's during tests."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))


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
