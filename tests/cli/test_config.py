"""``resurgo config check|show`` and the layering of configuration, driven as a user would."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli._helpers import cli_env, resurgo

BAD_PROJECT = """
[supervisor]
concurency = 3
backoff_base = 40
[retry]
max_attempts = 0
[breaker]
failure_rate = 50
[dashbord]
port = 1
[dashboard]
port = 70000
[classify]
rules = "missing-rules.toml"
"""


def test_check_reports_every_problem_at_once(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    (proj / "sub").mkdir(parents=True)
    (proj / "resurgo.toml").write_text(BAD_PROJECT)
    env = cli_env(tmp_path, {"RESURGO_RETRY_MAX_ATEMPTS": "3"})
    p = resurgo(["config", "check"], cwd=proj / "sub", env=env)  # found by walking up
    assert p.returncode == 1, p.stderr
    lines = p.stdout.strip().splitlines()
    f = str(proj / "resurgo.toml")
    expected = [
        f"{f}:supervisor.concurency: unknown setting (did you mean 'concurrency'?)",
        f"{f}:dashbord: unknown section (did you mean 'dashboard'?)",
        f"{f}:dashboard.port: must be <= 65535, got 70000",
        "env RESURGO_RETRY_MAX_ATEMPTS:retry.max_atempts: unknown setting (did you mean 'max_attempts'?)",
    ]
    for e in expected:
        assert e in lines, (e, lines)
    joined = "\n".join(lines)
    assert f"{f}:retry.max_attempts:" in joined
    assert f"{f}:breaker.failure_rate:" in joined and "did you mean 0.5" in joined
    assert f"{f}:supervisor.backoff_base:" in joined
    assert f"{f}:classify.rules: rules file not found" in joined
    assert len(lines) == 8
    assert "8 problem(s)" in p.stderr


def test_check_json_and_clean_config(tmp_path: Path) -> None:
    (tmp_path / "resurgo.toml").write_text('[supervisor]\nstall_timeout = "90s"\n[retry]\nmax_attempts = 5\n')
    p = resurgo(["config", "check", "--json"], cwd=tmp_path, env=cli_env(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    data = json.loads(p.stdout)
    assert data["ok"] is True and data["problems"] == []
    assert data["files"] == [str(tmp_path / "resurgo.toml")]


def test_invalid_toml_and_missing_config_file(tmp_path: Path) -> None:
    (tmp_path / "resurgo.toml").write_text("[supervisor\nx=")
    p = resurgo(["--config", str(tmp_path / "nope.toml"), "config", "check"], cwd=tmp_path, env=cli_env(tmp_path))
    assert p.returncode == 1
    assert f"{tmp_path / 'resurgo.toml'}: invalid TOML" in p.stdout
    assert f"{tmp_path / 'nope.toml'}: file not found" in p.stdout


def test_precedence_and_sources_in_show(tmp_path: Path) -> None:
    user = tmp_path / "xdg-config" / "resurgo"
    user.mkdir(parents=True)
    (user / "config.toml").write_text("[supervisor]\nconcurrency = 2\nkill_grace = 7\nmax_recoveries = 9\n")
    (tmp_path / "resurgo.toml").write_text("[supervisor]\nconcurrency = 3\nkill_grace = 8\n[store]\npath = 'x.db'\n")
    extra = tmp_path / "extra.toml"
    extra.write_text("[supervisor]\nconcurrency = 4\n")
    env = cli_env(tmp_path, {"RESURGO_SUPERVISOR_CONCURRENCY": "5", "RESURGO_DASHBOARD_TOKEN": "tok-SECRET-123",
                             "RESURGO_SUPERVISOR_ENV": '{ANTHROPIC_API_KEY = "sk-ant-api03-abcdefgh", FOO = "bar"}'})
    p = resurgo(["--config", str(extra), "config", "show", "--json"], cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    assert "SECRET" not in p.stdout and "abcdefgh" not in p.stdout
    s = json.loads(p.stdout)["settings"]
    assert s["supervisor"]["concurrency"] == {"value": 5, "source": "env RESURGO_SUPERVISOR_CONCURRENCY"}
    assert s["supervisor"]["kill_grace"] == {"value": 8.0, "source": str(tmp_path / "resurgo.toml")}
    assert s["supervisor"]["max_recoveries"]["source"] == str(user / "config.toml")
    assert s["supervisor"]["stall_timeout"]["source"] == "default"
    assert s["store"]["path"]["value"] == str(tmp_path / "x.db")  # relative to the file's folder
    assert s["dashboard"]["token"]["value"] != "tok-SECRET-123"
    assert s["supervisor"]["env"]["value"]["FOO"] == "bar"
    # the human form shows the same, also redacted
    p = resurgo(["config", "show"], cwd=tmp_path, env=env)
    assert p.returncode == 0 and "[supervisor]" in p.stdout and "SECRET" not in p.stdout


def test_invalid_config_stops_other_commands_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "resurgo.toml").write_text("[store]\npathh = 'x.db'\n")
    p = resurgo(["jobs"], cwd=tmp_path, env=cli_env(tmp_path))
    assert p.returncode == 2
    assert "store.pathh: unknown setting (did you mean 'path'?)" in p.stderr
    assert "Traceback" not in p.stderr
