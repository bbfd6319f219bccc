"""``resurgo doctor``: each check's failure mode, and the command's exit status and JSON."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from resurgo.cli import _doctor as d
from resurgo.config import load_settings
from resurgo.store import Store
from resurgo.store.schema import MIGRATIONS, ensure_schema

SRC = Path(__file__).resolve().parents[2] / "src"


def _ctx(tmp_path: Path, *, env: dict[str, str] | None = None, toml: str | None = None,
         run: object = None) -> d.Context:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    environ = {"HOME": str(home), "PATH": "/usr/bin:/bin", **(env or {})}
    files: list[Path] = []
    cfg = None
    if toml is not None:
        cfg = tmp_path / "cfg.toml"
        cfg.write_text(toml)
        cfg.chmod(0o600)
        files.append(cfg)
    s = load_settings(config_file=cfg, environ=environ, cwd=tmp_path, user=False)
    return d.Context(environ=environ, settings=s, store_path=tmp_path / "state" / "r.db", config_files=files,
                     run=run, tmpdir=tmp_path / "tmp")  # type: ignore[arg-type]


def _one(findings: list[d.Finding], check: str) -> d.Finding:
    [f] = [f for f in findings if f.check == check]
    return f


def _fake_claude(tmp_path: Path) -> str:
    exe = tmp_path / "claude"
    exe.write_text("#!/bin/sh\necho x\n")
    exe.chmod(0o755)
    return str(exe)


# -- cli ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("out", "status"),
    [("2.1.197 (Claude Code)", "ok"), ("2.1.332 (Claude Code)", "ok"), ("2.1.250 (Claude Code)", "ok"),
     ("2.0.99 (Claude Code)", "warn"), ("2.1.400 (Claude Code)", "warn")],
)
def test_cli_version_against_the_tested_range(tmp_path: Path, out: str, status: str) -> None:
    exe = _fake_claude(tmp_path)
    ctx = _ctx(tmp_path, env={"RESURGO_CLAUDE": exe}, run=lambda argv: (0, out))
    f = _one(d.check_cli(ctx), "cli")
    assert f.status == status, f
    assert f.details["path"] == exe and f.details["tested_range"] == list(d.TESTED_CLI_RANGE)
    if status == "warn":
        assert ("older" if out.startswith("2.0") else "newer") in f.summary and f.fix


def test_cli_missing_or_broken_fails(tmp_path: Path) -> None:
    f = _one(d.check_cli(_ctx(tmp_path, env={"PATH": str(tmp_path / "empty")})), "cli")
    assert f.status == "fail" and "not found" in f.summary and "npm install" in (f.fix or "")
    exe = _fake_claude(tmp_path)
    f = _one(d.check_cli(_ctx(tmp_path, env={"RESURGO_CLAUDE": exe}, run=lambda argv: (1, "Segmentation fault"))),
             "cli")
    assert f.status == "fail" and "does not run" in f.summary


def test_the_tested_range_matches_the_test_suites_cli_versions() -> None:
    """doctor, the README and the suite's two CLIs must name the same range."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    lo, hi = d.TESTED_CLI_RANGE
    assert f"{lo}" in readme and f"{hi}" in readme
    setup = (Path(__file__).resolve().parents[2] / "scripts/setup.sh").read_text()
    assert f"CLAUDE_VERSION:-{lo}" in setup and f"CLAUDE_LATEST_VERSION:-{hi}" in setup


# -- auth --------------------------------------------------------------------------------------------
def test_auth_missing_fails_and_present_is_never_printed(tmp_path: Path) -> None:
    assert _one(d.check_auth(_ctx(tmp_path)), "auth").status == "fail"
    secret = "sk-ant-api03-DOCTORSECRETDOCTORSECRET"
    f = _one(d.check_auth(_ctx(tmp_path, env={"ANTHROPIC_API_KEY": secret})), "auth")
    assert f.status == "ok" and "ANTHROPIC_API_KEY" in f.summary
    assert secret not in json.dumps(f.to_dict())
    # a login made with `claude` counts too
    cred = tmp_path / "home" / ".claude" / ".credentials.json"
    cred.parent.mkdir(parents=True)
    cred.write_text('{"claudeAiOauth": {"accessToken": "SECRETTOKEN"}}')
    f = _one(d.check_auth(_ctx(tmp_path)), "auth")
    assert f.status == "ok" and "SECRETTOKEN" not in json.dumps(f.to_dict())


def test_auth_from_supervisor_env_in_the_config(tmp_path: Path) -> None:
    f = _one(d.check_auth(_ctx(tmp_path, toml='[supervisor]\nenv = {ANTHROPIC_API_KEY = "k-123456"}\n')), "auth")
    assert f.status == "ok" and "[supervisor] env" in f.summary and "k-123456" not in f.summary


# -- CLI retry settings --------------------------------------------------------------------------------
def test_cli_retries_default_and_env_multiply_and_watchdog_hides(tmp_path: Path) -> None:
    f = _one(d.check_cli_retries(_ctx(tmp_path)), "cli-retries")
    assert f.status == "warn" and f.details["worst_case_calls"] == 11 * 6
    f = _one(d.check_cli_retries(_ctx(tmp_path, env={"CLAUDE_CODE_MAX_RETRIES": "15"})), "cli-retries")
    assert f.status == "warn" and f.details["cli_max_retries"] == 15
    f = _one(d.check_cli_retries(_ctx(tmp_path, toml="[supervisor]\ncli_max_retries = 1\n",
                                      env={"CLAUDE_CODE_MAX_RETRIES": "15"})), "cli-retries")
    assert f.status == "ok"  # resurgo sets it for the child, overriding the environment
    fs = d.check_cli_retries(_ctx(tmp_path, env={"CLAUDE_CODE_MAX_RETRIES": "0", "CLAUDE_CODE_RETRY_WATCHDOG": "1"}))
    assert [f.status for f in fs] == ["ok", "warn"] and "indefinitely" in fs[1].summary


# -- store ---------------------------------------------------------------------------------------------
def test_store_missing_is_fine_current_is_ok_newer_or_garbage_fails(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    assert _one(d.check_store(ctx), "store").status == "ok"
    ctx.store_path.parent.mkdir(parents=True)
    st = Store(str(ctx.store_path))
    ensure_schema(st)
    st.close()
    f = _one(d.check_store(ctx), "store")
    assert f.status == "ok" and "current" in f.summary
    conn = sqlite3.connect(ctx.store_path)
    conn.execute("UPDATE schema_versions SET version=? WHERE component='runs'", (len(MIGRATIONS) + 1,))
    conn.commit()
    conn.close()
    f = _one(d.check_store(ctx), "store")
    assert f.status == "fail" and "newer" in f.summary
    ctx.store_path.write_bytes(b"this is not a database at all" * 100)
    f = _one(d.check_store(ctx), "store")
    assert f.status == "fail" and "cannot be read" in f.summary


def test_store_folder_not_writable_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = _ctx(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    ctx.store_path = ro / "sub" / "r.db"
    real = os.access
    # permission bits do not stop root (the suite may run as root), so the answer is faked for this folder
    monkeypatch.setattr(d.os, "access", lambda p, mode: False if Path(p) == ro else real(p, mode))
    f = _one(d.check_store(ctx), "store")
    assert f.status == "fail" and "not writable" in f.summary


def test_store_path_that_is_a_folder_fails(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    ctx.store_path.mkdir(parents=True)
    assert _one(d.check_store(ctx), "store").status == "fail"


# -- configuration ---------------------------------------------------------------------------------------
def test_invalid_config_fails_with_each_problem(tmp_path: Path) -> None:
    fs = d.check_config(_ctx(tmp_path, toml="[supervisor]\nconcurrency = 0\nstal_timeout = 3\n"))
    f = _one(fs, "config")
    assert f.status == "fail" and len(f.details["problems"]) == 2


def test_config_writable_by_others_fails_as_untrusted(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, toml="[supervisor]\nconcurrency = 2\n")
    ctx.config_files[0].chmod(0o666)
    f = _one(d.check_config(ctx), "config-trust")
    assert f.status == "fail" and "writable" in f.summary
    ctx.config_files[0].chmod(0o600)
    assert _one(d.check_config(ctx), "config-trust").status == "ok"


# -- redis -----------------------------------------------------------------------------------------------
def test_redis_unreachable_fails_and_unconfigured_is_skipped(tmp_path: Path) -> None:
    assert _one(d.check_redis(_ctx(tmp_path)), "redis").status == "skip"
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    f = _one(d.check_redis(_ctx(tmp_path, toml=f'[redis]\nurl = "redis://:hunter2@127.0.0.1:{port}/0"\n')), "redis")
    assert f.status == "fail" and "not reachable" in f.summary and "hunter2" not in f.summary


# -- disk ------------------------------------------------------------------------------------------------
class _Vfs:
    def __init__(self, bavail: int, favail: int, files: int = 10**6) -> None:
        self.f_bavail, self.f_frsize, self.f_favail, self.f_files = bavail, 4096, favail, files


@pytest.mark.parametrize(
    ("bavail", "favail", "status"),
    [(10**7, 10**6, "ok"), (100_000, 10**6, "warn"), (1_000, 10**6, "fail"), (10**7, 500, "fail"),
     (10**7, 5_000, "warn")],
)
def test_disk_space_and_inodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bavail: int, favail: int,
                               status: str) -> None:
    monkeypatch.setattr(d.os, "statvfs", lambda p: _Vfs(bavail, favail))
    fs = d.check_disk(_ctx(tmp_path))
    assert fs and all(f.status == status for f in fs), fs


# -- temp folder ---------------------------------------------------------------------------------------------
def test_temp_folder_world_writable_without_sticky_bit_fails(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    assert ctx.tmpdir is not None
    ctx.tmpdir.mkdir()
    ctx.tmpdir.chmod(0o777)
    f = _one(d.check_temp(ctx), "temp")
    assert f.status == "fail" and "sticky" in f.summary
    ctx.tmpdir.chmod(0o1777)
    assert _one(d.check_temp(ctx), "temp").status == "ok"


def test_temp_per_user_folder_planted_or_shared_fails(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    assert ctx.tmpdir is not None
    ctx.tmpdir.mkdir(mode=0o700)
    mine = ctx.tmpdir / f"resurgo-{ctx.uid}"
    mine.mkdir()
    mine.chmod(0o777)
    # ours but too open: the supervisor tightens it to 0700 when it uses it (resurgo._private_dir), not a failure
    assert d._private_dir_fn() is not None
    assert _one(d.check_temp(ctx), "temp").status == "ok"
    mine.rmdir()
    mine.symlink_to(tmp_path)
    f = _one(d.check_temp(ctx), "temp")
    assert f.status == "fail" and "symbolic link" in f.summary
    mine.unlink()
    # as if another user had made our folder: seen from uid+1, the folder we own is someone else's
    other = ctx.tmpdir / f"resurgo-{ctx.uid + 1}"
    other.mkdir(mode=0o700)
    ctx.uid += 1
    f = _one(d.check_temp(ctx), "temp")
    assert f.status == "fail" and "not you" in f.summary


# -- the command -----------------------------------------------------------------------------------------
def _doctor(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path / "home"),
            "PYTHONPATH": str(SRC), "RESURGO_HOME": str(tmp_path / "state"), "TMPDIR": str(tmp_path)}
    (tmp_path / "home").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "resurgo", "doctor", *args], capture_output=True, text=True,
                          env={**base, **env}, timeout=120, cwd=tmp_path)


def test_doctor_command_json_and_exit_status(tmp_path: Path, claude_bin: str) -> None:
    good = {"RESURGO_CLAUDE": claude_bin, "ANTHROPIC_API_KEY": "sk-ant-api03-CMDSECRETCMDSECRET",
            "CLAUDE_CODE_MAX_RETRIES": "2"}
    r = _doctor(tmp_path, good, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] is True and doc["tested_cli_range"] == list(d.TESTED_CLI_RANGE)
    checks = {c["check"] for c in doc["checks"]}
    assert {"cli", "auth", "cli-retries", "store", "config", "config-trust", "redis", "disk", "temp"} <= checks
    assert "CMDSECRET" not in r.stdout
    # no credentials: a run would break -> exit 1, and the text output says how to fix it
    bad = {k: v for k, v in good.items() if k != "ANTHROPIC_API_KEY"}
    r = _doctor(tmp_path, bad)
    assert r.returncode == 1
    assert "FAIL auth" in r.stdout and "fix: set ANTHROPIC_API_KEY" in r.stdout
