"""``resurgo run`` starts the CLI before importing the supervisor; the supervisor adopts it only if it is exact.

The early start is worth having only if it is really adopted with the settings
users have (default, and with ``[supervisor]`` env/args/retries set): these
tests run the real CLI and check that the attempt's process *is* the one
started early.  When anything differs, the early process must be ended and the
attempt started as usual, so the early start can never change what runs.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import click
import psutil
import pytest

from resurgo._launch import prestart
from resurgo.cli import main as cli_main
from resurgo.cli._run import _early_start, _make_supervisor
from resurgo.mockapi import MockServer
from resurgo.supervise import JobSpec
from resurgo.supervise._process import AttemptSpec, ProcessManager

pytestmark = pytest.mark.integration


@pytest.fixture
def cli_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, claude_bin: str, claude_env: dict[str, str],
                mock_api: MockServer) -> dict[str, str]:
    for k in list(os.environ):
        if k.startswith(("RESURGO_", "ANTHROPIC_", "CLAUDE_")):
            monkeypatch.delenv(k)
    env = {**claude_env, "ANTHROPIC_BASE_URL": mock_api.url, "RESURGO_CLAUDE": claude_bin,
           "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "XDG_STATE_HOME": str(tmp_path / "state")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    return env


def _run_command_path(tmp_path: Path, config: str | None, prompt: str = "hi [[text: early]]") -> tuple[Any, Any]:
    """What ``resurgo run PROMPT`` does up to the result, in-process, so the early process can be inspected."""
    cfg_file = None
    if config is not None:
        cfg_file = tmp_path / "extra.toml"
        cfg_file.write_text(config)
        cfg_file.chmod(0o600)
    ctx = click.Context(cli_main, obj={"config_file": str(cfg_file) if cfg_file else None, "store": None})
    with ctx:
        workdir = str(tmp_path)
        pre = _early_start(prompt, workdir, None, (), None)
        assert pre is not None
        try:
            sup, store = _make_supervisor(tmp_path / "r.db", prestarted=pre)

            async def go() -> Any:
                async with sup:
                    return await sup.submit(JobSpec(prompt, cwd=workdir, session_id=pre.session_id)).result()

            try:
                res = asyncio.run(go())
            finally:
                store.close()
        finally:
            pre.discard()
    return pre, res


def _attempt_pids(db: Path) -> list[int]:
    from resurgo.store import Store

    s = Store(db)
    try:
        return [r["pid"] for r in s.query("SELECT pid FROM attempts ORDER BY id")]
    finally:
        s.close()


def test_default_settings_adopt_the_early_cli(tmp_path: Path, cli_environ: dict[str, str]) -> None:
    pre, res = _run_command_path(tmp_path, None)
    assert res.ok and res.result_text == "early"
    assert pre.mismatch is None
    assert _attempt_pids(tmp_path / "r.db") == [pre.pid]  # the attempt's process is the early one
    assert pre.tmpdir is not None and not os.path.exists(pre.tmpdir)  # its private TMPDIR was removed


def test_configured_env_args_and_retries_are_still_adopted(tmp_path: Path, cli_environ: dict[str, str]) -> None:
    config = (
        "[supervisor]\n"
        'claude_args = ["--allowedTools", "Bash"]\n'
        "cli_max_retries = 2\n"
        'env = { RESURGO_TEST_MARK = "x1" }\n'
    )
    pre, res = _run_command_path(tmp_path, config)
    assert res.ok, res.reason
    assert pre.mismatch is None
    assert "--allowedTools" in pre.argv and pre.env["CLAUDE_CODE_MAX_RETRIES"] == "2"
    assert pre.env["RESURGO_TEST_MARK"] == "x1"
    assert _attempt_pids(tmp_path / "r.db") == [pre.pid]


async def test_a_different_command_line_is_never_adopted(tmp_path: Path, cli_environ: dict[str, str],
                                                         claude_bin: str) -> None:
    """The gate: if the early process is not exactly the attempt's, it is killed and a fresh one runs."""
    pre = prestart(claude_bin, prompt="hi [[text: wrong]]", cwd=str(tmp_path), model=None,
                   claude_args=("--allowedTools", "Bash"))
    assert pre is not None
    mgr = ProcessManager(claude=claude_bin, prestarted=[pre], subreaper=False)
    spec = AttemptSpec(prompt="hi [[text: right]]", cwd=str(tmp_path), session_id=pre.session_id)
    out = await mgr.run(spec)
    assert pre.mismatch == "command line differs"
    assert out.pid != pre.pid and out.result_ok
    assert out.result is not None and out.result.get("result") == "right"
    assert pre.popen.poll() is not None  # the early process was ended, not left running
    assert not psutil.pid_exists(pre.pid) or psutil.Process(pre.pid).status() == psutil.STATUS_ZOMBIE


async def test_an_environment_difference_is_never_adopted(tmp_path: Path, cli_environ: dict[str, str],
                                                          claude_bin: str) -> None:
    pre = prestart(claude_bin, prompt="hi [[text: x]]", cwd=str(tmp_path), env_overrides={"EXTRA": "1"})
    assert pre is not None
    mgr = ProcessManager(claude=claude_bin, prestarted=[pre], subreaper=False)
    out = await mgr.run(AttemptSpec(prompt="hi [[text: x]]", cwd=str(tmp_path), session_id=pre.session_id))
    assert pre.mismatch is not None and "EXTRA" in pre.mismatch
    assert out.pid != pre.pid and out.result_ok


async def test_an_unadopted_early_cli_is_ended_at_shutdown(tmp_path: Path, cli_environ: dict[str, str],
                                                           claude_bin: str) -> None:
    pre = prestart(claude_bin, prompt="hi [[sleep: 30]]", cwd=str(tmp_path))
    assert pre is not None
    mgr = ProcessManager(claude=claude_bin, prestarted=[pre], subreaper=False)
    assert pre.pid in mgr.leaders  # the cleaner must not reap it while it waits for adoption
    await mgr.shutdown()
    deadline = time.monotonic() + 5
    while pre.popen.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert pre.popen.returncode is not None
