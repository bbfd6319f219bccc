"""The quick start of ``resurgo run``: the CLI starts from the remembered launch plan before click loads.

What must hold: a plan is used only while everything it was derived from is
unchanged; a quick-started process is adopted only if it is exactly what the
normal path would start, and is killed otherwise (also when the command fails
before running); the plan file is private, and bad plan files are ignored.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.cli._helpers import cli_env

from resurgo import _quick
from resurgo.cli import main as cli_main
from resurgo.cli._run import _early_start
from resurgo.mockapi import MockServer
from resurgo.store import Store


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(d))
    return d


# -- the command-line reader -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        (["run", "hi"], ("hi", None, None, None, None, ())),
        (["--store", "s.db", "run", "hi", "-q", "--json"], ("hi", None, None, None, None, ())),
        (["--config=c.toml", "run", "--model", "m", "hi", "--claude", "/x/claude", "--cwd", "/w", "--",
          "--allowedTools", "Bash"], ("hi", "c.toml", "/w", "m", "/x/claude", ("--allowedTools", "Bash"))),
        (["--config", "run", "run", "hi"], ("hi", "run", None, None, None, ())),  # a config file named "run"
        (["run", "--name=n", "--concurrency", "auto", "--max-concurrency", "3", "--store", "x", "hi"],
         ("hi", None, None, None, None, ())),
    ],
)
def test_the_run_command_line_is_read(argv: list[str], want: tuple[Any, ...]) -> None:
    got = _quick.parse_run_argv(argv)
    assert got is not None
    assert (got.prompt, got.config, got.cwd, got.model, got.claude, got.claude_args) == want


@pytest.mark.parametrize("argv", [
    ["run"], ["run", ""], ["run", "  "], ["run", "--help"], ["run", "hi", "extra"], ["run", "-x", "hi"],
    ["--version"], ["batch", "jobs.toml"], ["--verbose", "run", "hi"], ["run", "hi", "--model"],
    ["run", "-qj", "hi"], ["run", "--", "hi"], ["classify", "run"],
])
def test_anything_unusual_is_left_to_click(argv: list[str]) -> None:
    assert _quick.parse_run_argv(argv) is None


# -- the plan file ---------------------------------------------------------------------------------


def _remember(tmp_path: Path, *, env: dict[str, str] | None = None, files: list[str] | None = None) -> Any:
    key = _quick.plan_key(workdir=str(tmp_path), config_file=None, claude=None)
    _quick.remember(key, exe="/bin/true", claude_args=["--allowedTools", "Bash"], env=env or {"A": "1"},
                    paths=_quick.watched_paths(str(tmp_path), files or []))
    return key


def test_a_plan_is_found_while_nothing_changed(tmp_path: Path, cache_home: Path) -> None:
    key = _remember(tmp_path)
    plan = _quick.lookup(key)
    assert plan is not None and plan.exe == "/bin/true" and plan.env == {"A": "1"}
    assert plan.claude_args == ["--allowedTools", "Bash"]
    f = Path(_quick.cache_path())
    assert stat.S_IMODE(f.stat().st_mode) == 0o600 and stat.S_IMODE(f.parent.stat().st_mode) == 0o700
    assert _quick.lookup(_quick.plan_key(workdir=str(tmp_path / "other"), config_file=None, claude=None)) is None


def test_a_new_project_config_invalidates_the_plan(tmp_path: Path, cache_home: Path) -> None:
    key = _remember(tmp_path)
    (tmp_path / "resurgo.toml").write_text("[supervisor]\n")
    assert _quick.lookup(key) is None


def test_an_edited_config_file_invalidates_the_plan(tmp_path: Path, cache_home: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("# one\n")
    key = _remember(tmp_path, files=[str(cfg)])
    assert _quick.lookup(key) is not None
    cfg.write_text("# two, longer\n")
    assert _quick.lookup(key) is None


def test_a_changed_mode_invalidates_the_plan(tmp_path: Path, cache_home: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("# one\n")
    cfg.chmod(0o600)
    key = _remember(tmp_path, files=[str(cfg)])
    cfg.chmod(0o666)  # now refused by the trust check: the plan must not outlive that
    assert _quick.lookup(key) is None


def test_a_changed_resurgo_variable_invalidates_the_plan(tmp_path: Path, cache_home: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    key = _remember(tmp_path)
    monkeypatch.setenv("RESURGO_SUPERVISOR_CLI_MAX_RETRIES", "3")
    assert _quick.lookup(key) is None


def test_new_files_in_a_folder_do_not_invalidate_the_plan(tmp_path: Path, cache_home: Path) -> None:
    """Folders are compared by identity, owner and mode: their times change with every new file (e.g. /tmp)."""
    key = _remember(tmp_path)
    (tmp_path / "unrelated.txt").write_text("x")
    assert _quick.lookup(key) is not None


def test_a_plan_file_others_can_read_is_not_trusted(tmp_path: Path, cache_home: Path) -> None:
    key = _remember(tmp_path)
    os.chmod(_quick.cache_path(), 0o644)
    assert _quick.lookup(key) is None


@pytest.mark.parametrize("junk", [b"", b"\x00\x00", b"resurgo-launch-plans-1\x00E\x00a", b"\xff\xfe" * 100,
                                  b"resurgo-launch-plans-1\x00E\x00a\x00b\x00c\x00/bin/true\x00-5"])
def test_a_damaged_plan_file_is_ignored_and_replaced(tmp_path: Path, cache_home: Path, junk: bytes) -> None:
    f = Path(_quick.cache_path())
    f.parent.mkdir(mode=0o700, parents=True)
    f.write_bytes(junk)
    f.chmod(0o600)
    key = _quick.plan_key(workdir=str(tmp_path), config_file=None, claude=None)
    assert _quick.lookup(key) is None
    _remember(tmp_path)
    assert _quick.lookup(key) is not None


def test_only_the_newest_plans_are_kept(tmp_path: Path, cache_home: Path) -> None:
    keys = []
    for i in range(_quick.MAX_PLANS + 5):
        d = tmp_path / f"w{i}"
        d.mkdir()
        keys.append(_remember(d))
    assert _quick.lookup(keys[0]) is None and _quick.lookup(keys[-1]) is not None
    assert len(_quick._load(_quick.cache_path())) == _quick.MAX_PLANS


_TEXT = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=30)


@given(exe=_TEXT, args=st.lists(_TEXT, max_size=5), env=st.dictionaries(_TEXT, _TEXT, max_size=5))
def test_plans_round_trip_through_the_file_format(exe: str, args: list[str], env: dict[str, str]) -> None:
    e = _quick._Entry(("w", "", ""), exe, args, env, {"HOME": "/h"}, {"/p": "-"})
    back = _quick._decode(_quick._encode([e, e]))
    assert len(back) == 2 and back[0].same(e) and back[1].same(e)


# -- the early process: adopted only when exact ----------------------------------------------------


@pytest.fixture
def run_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, claude_bin: str, claude_env: dict[str, str],
                mock_api: MockServer, cache_home: Path) -> dict[str, str]:
    for k in list(os.environ):
        if k.startswith(("RESURGO_", "ANTHROPIC_", "CLAUDE_")):
            monkeypatch.delenv(k)
    env = {**claude_env, "ANTHROPIC_BASE_URL": mock_api.url, "RESURGO_CLAUDE": claude_bin,
           "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "XDG_STATE_HOME": str(tmp_path / "state")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    return env


def _normal_path(tmp_path: Path, prompt: str) -> Any:
    ctx = click.Context(cli_main, obj={"config_file": None, "store": None})
    with ctx:
        return _early_start(prompt, str(tmp_path), None, (), None)


def _wait_gone(pre: Any) -> None:
    deadline = time.monotonic() + 5
    while pre.popen.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.mark.integration
def test_a_process_started_from_the_plan_is_the_one_used(tmp_path: Path, run_environ: dict[str, str]) -> None:
    first = _normal_path(tmp_path, "hi [[text: one]]")  # no plan yet: started by the normal path; remembers it
    try:
        assert first is not None and first is not _quick.take()
    finally:
        first.discard()
    quick = _quick.start(["run", "hi [[text: two]]"])
    assert quick is not None  # the plan was remembered and still holds
    try:
        assert _normal_path(tmp_path, "hi [[text: two]]") is quick  # exactly what it would start: kept
        assert quick.popen.poll() is None
    finally:
        quick.discard()


@pytest.mark.integration
def test_a_process_started_from_a_stale_plan_is_killed(tmp_path: Path, run_environ: dict[str, str]) -> None:
    """The gate: a plan that no longer matches the settings (here: an extra variable) is never adopted."""
    exe = run_environ["RESURGO_CLAUDE"]
    key = _quick.plan_key(workdir=str(tmp_path), config_file=None, claude=None)
    _quick.remember(key, exe=exe, claude_args=[], env={"RESURGO_TEST_STALE": "1"},
                    paths=_quick.watched_paths(str(tmp_path), []))
    quick = _quick.start(["run", "hi [[sleep: 20]]"])
    assert quick is not None and quick.env["RESURGO_TEST_STALE"] == "1"
    pre = _normal_path(tmp_path, "hi [[sleep: 20]]")
    try:
        assert pre is not None and pre is not quick and "RESURGO_TEST_STALE" not in pre.env
        _wait_gone(quick)
        assert quick.popen.poll() is not None  # ended, not left running
    finally:
        pre.discard()
        quick.discard()
    assert _quick.lookup(key) is not None and _quick.lookup(key).env == {}  # the plan was corrected


@pytest.mark.integration
def test_the_command_end_to_end_with_a_stale_plan(tmp_path: Path, claude_bin: str, claude_env: dict[str, str],
                                                  mock_api: MockServer) -> None:
    """``resurgo run`` as a user runs it: the stale early process starts, is killed, and never runs the job."""
    wrapper, log = _wrapper(tmp_path, claude_bin)
    work = tmp_path / "work"
    work.mkdir()
    env = cli_env(tmp_path, {**claude_env, "HOME": str(tmp_path / "home"), "ANTHROPIC_BASE_URL": mock_api.url})
    db = tmp_path / "r.db"
    argv = [sys.executable, "-m", "resurgo", "--store", str(db), "run", "hi [[text: fine]]", "--claude",
            str(wrapper), "-q"]
    out = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "fine", out.stderr
    plans = Path(env["HOME"]) / ".cache" / "resurgo" / "launch-plans"
    assert plans.exists()
    # make the remembered plan stale: same fingerprint, an environment the settings do not give
    wd = str(work.resolve())
    _remember_as(env, _quick.plan_key(workdir=wd, config_file=None, claude=str(wrapper)), str(wrapper),
                 {"RESURGO_TEST_STALE": "1"}, _quick.watched_paths(wd, [str(wrapper)]))
    out = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "fine", out.stderr
    starts = dict(line.split() for line in log.read_text().splitlines())
    s = Store(db)
    try:
        pids = [str(r["pid"]) for r in s.query("SELECT pid FROM attempts ORDER BY id")]
    finally:
        s.close()
    assert len(pids) == 2
    assert "1" in starts.values()  # the stale plan did start a CLI early...
    assert all(starts[p] == "none" for p in pids)  # ...but no attempt ran in it


def _wrapper(tmp_path: Path, claude_bin: str) -> tuple[Path, Path]:
    """A CLI that logs its pid and ``$RESURGO_TEST_STALE`` as it starts, then becomes the real CLI (same pid)."""
    log = tmp_path / "starts.log"
    wrapper = tmp_path / "claude-wrapper"
    wrapper.write_text(f'#!/bin/sh\necho "$$ ${{RESURGO_TEST_STALE:-none}}" >> {log}\nexec {claude_bin} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper, log


def _remember_as(env: dict[str, str], key: tuple[str, str, str], exe: str, plan_env: dict[str, str],
                 paths: list[str]) -> None:
    """Write a plan as the command would under ``env`` (the fingerprint includes the environment)."""
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        _quick.remember(key, exe=exe, claude_args=[], env=plan_env, paths=paths)
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.integration
def test_a_quick_start_is_ended_when_the_command_fails(tmp_path: Path, claude_bin: str,
                                                       claude_env: dict[str, str], mock_api: MockServer) -> None:
    """A command line click then refuses (exit 2): the CLI started from the plan is killed, not left running."""
    wrapper, log = _wrapper(tmp_path, claude_bin)
    work = tmp_path / "work"
    work.mkdir()
    env = cli_env(tmp_path, {**claude_env, "HOME": str(tmp_path / "home"), "ANTHROPIC_BASE_URL": mock_api.url})
    wd = str(work.resolve())
    _remember_as(env, _quick.plan_key(workdir=wd, config_file=None, claude=str(wrapper)), str(wrapper), {},
                 _quick.watched_paths(wd, []))
    out = subprocess.run([sys.executable, "-m", "resurgo", "--store", str(tmp_path / "r.db"), "run",
                          "hi [[sleep: 20]]", "--claude", str(wrapper), "--max-concurrency", "0"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    lines = log.read_text().split()
    assert len(lines) == 2  # one CLI was started from the plan...
    pid = int(lines[0])
    alive = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
    assert alive in ("", "Z"), f"the early CLI {pid} outlived the failed command ({alive})"  # ...and ended
