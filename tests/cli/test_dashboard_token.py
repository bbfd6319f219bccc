"""``resurgo dashboard`` never puts its token in the announced address (issue 15, item 12)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.cli._helpers import cli_env


def _announce(args: list[str], tmp_path: Path, env: dict[str, str], lines: int = 2) -> str:
    """The first ``lines`` lines the dashboard printed on stderr (read as they come), then end it."""
    proc = subprocess.Popen([sys.executable, "-m", "resurgo", "dashboard", "--port", "0",
                             "--store", str(tmp_path / "d.db"), *args],
                            cwd=tmp_path, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert first.startswith("resurgo dashboard on "), first
        assert "token=" not in first  # checked before waiting for more lines (an old build prints only this one)
        text = first + "".join(proc.stderr.readline() for _ in range(lines - 1))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    return text


def test_the_token_is_not_in_the_start_up_url(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    token = "given-token-0123456789abcdef"
    text = _announce(["--token", token], tmp_path, env)
    assert token not in text and "?token=" not in text.splitlines()[0]
    assert "access token: the one from --token" in text
    text = _announce([], tmp_path, {**env, "RESURGO_DASHBOARD_TOKEN": token})
    assert token not in text and "env RESURGO_DASHBOARD_TOKEN" in text


def test_a_generated_token_is_printed_once_on_its_own_line(tmp_path: Path) -> None:
    text = _announce(["--token", "generate"], tmp_path, cli_env(tmp_path), lines=3)
    lines = text.splitlines()
    assert "token" not in lines[0].split("(store:")[0]  # the address line has no token
    (line,) = [ln for ln in lines if ln.startswith("access token (generated, shown once): ")]
    token = line.rsplit(" ", 1)[1]
    assert len(token) >= 16 and text.count(token) == 1


def test_a_short_token_is_refused(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "resurgo", "dashboard", "--port", "0", "--token", "short",
                        "--store", str(tmp_path / "d.db")], cwd=tmp_path, env=cli_env(tmp_path),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "too short" in p.stderr
