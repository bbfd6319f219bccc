"""Configuration sections reach the code that uses them: [classify] rules, [dashboard], [store], budgets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import click
import pytest
from tests.cli._helpers import cli_env, resurgo

from resurgo.cli._common import CliError, supervisor_config
from resurgo.config import load_settings
from resurgo.supervise import Supervisor, SupervisorConfig

RULES = '[[rule]]\nid = "acme.blip"\nmessage = "acme gateway blip"\ntype = "network"\n'


def _ctx(config: Path) -> click.Context:
    return click.Context(click.Command("t"), obj={"config_file": str(config)})


def test_classify_rules_reach_the_supervisor_classifier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rules.toml").write_text(RULES)
    conf = tmp_path / "c.toml"
    conf.write_text('[classify]\nrules = "rules.toml"\n[supervisor]\nretry_budget_ratio = 5\n')
    s = load_settings(config_file=conf, environ={}, user=False)
    assert s.problems == []
    assert s.supervisor_kwargs()["classify_rules"] == str(tmp_path / "rules.toml")  # relative to the file
    with _ctx(conf):
        cfg = supervisor_config(str(tmp_path / "run.db"), {"concurrency": 2})
    assert (cfg.concurrency, cfg.retry_budget_ratio) == (2, 5.0)
    sup = Supervisor(config=cfg)
    try:
        assert sup.classifier.classify({"message": "acme gateway blip #7"}).rule == "acme.blip"
    finally:
        sup.store.close()
    # without the setting the shipped packs alone decide
    bare = Supervisor(config=SupervisorConfig(store=str(tmp_path / "bare.db")))
    try:
        assert bare.classifier.classify({"message": "acme gateway blip #7"}).rule != "acme.blip"
    finally:
        bare.store.close()


def test_supervisor_config_turns_bad_values_into_a_cli_error(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text("")
    with _ctx(conf), pytest.raises(CliError, match="concurrency"):
        supervisor_config(":memory:", {"concurrency": 0})


@pytest.mark.parametrize(("key", "value", "ok"), [
    ("retry_budget_ratio", 5, True),          # the schema used to stop at 1.0
    ("retry_budget_ratio", 1000, True),
    ("retry_budget_ratio", 1000.5, False),
    ("retry_budget_ratio", -0.1, False),
    ("retry_budget_min_per_sec", 0, True),
    ("retry_budget_min_per_sec", 250, True),
    ("retry_budget_min_per_sec", -1, False),
    ("relay_budget_min_per_sec", 0, True),
    ("relay_budget_min_per_sec", -1, False),
])
def test_budget_ranges_agree_between_schema_and_supervisor(tmp_path: Path, key: str, value: float,
                                                           ok: bool) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text(f"[supervisor]\n{key} = {value}\n")
    s = load_settings(config_file=conf, environ={}, user=False)
    schema_ok = not s.problems
    try:
        SupervisorConfig(**{key: value})  # type: ignore[arg-type]
        class_ok = True
    except ValueError:
        class_ok = False
    assert (schema_ok, class_ok) == (ok, ok), s.problems
    if not ok:
        assert [(p.section, p.key) for p in s.problems] == [("supervisor", key)]


def test_budget_defaults_are_the_supervisors(tmp_path: Path) -> None:
    s = load_settings(cwd=tmp_path, environ={}, user=False)
    d = SupervisorConfig()
    assert s.get("supervisor", "retry_budget_min_per_sec") == d.retry_budget_min_per_sec == 1.0
    assert s.get("supervisor", "retry_budget_ratio") == d.retry_budget_ratio == 0.2
    assert s.get("supervisor", "relay_budget_min_per_sec") == d.relay_budget_min_per_sec == 10.0
    assert s.get("supervisor", "relay_max_tries") == d.relay_max_tries == 10


def test_bad_continuation_prompt_is_a_config_problem(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text('[supervisor]\ncontinuation_prompt = "go on ({reson})"\n')
    s = load_settings(config_file=conf, environ={}, user=False)
    assert [(p.section, p.key) for p in s.problems] == [("supervisor", "continuation_prompt")]
    assert "{reson}" in s.problems[0].message


def test_retry_section_is_for_library_code(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text('[retry]\nmax_attempts = 7\n')
    s = load_settings(config_file=conf, environ={}, user=False)
    assert s.retry_policy().max_attempts == 7
    assert "not used by the resurgo commands" in s.schema["retry"]["max_attempts"].doc


def _status(url: str, token: str | None) -> int:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        e.close()
        return int(e.code)


def _serve_dashboard(args: list[str], cwd: Path, env: dict[str, str],
                     tokens: tuple[str | None, ...]) -> tuple[str, list[int]]:
    """Start ``resurgo dashboard``; its announcement and the status of ``/`` with each token; then end it."""
    proc = subprocess.Popen([sys.executable, "-m", "resurgo", "dashboard", *args], cwd=cwd, env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "resurgo dashboard on " in line, line + proc.stderr.read()
        base = line.split("resurgo dashboard on ", 1)[1].split()[0].split("?", 1)[0]
        return line, [_status(base, t) for t in tokens]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_dashboard_takes_its_defaults_from_the_configuration(tmp_path: Path) -> None:
    (tmp_path / "resurgo.toml").write_text(
        '[dashboard]\nhost = "127.0.0.1"\nport = 0\ntoken = "tok-from-config-0123456789"\n[store]\npath = "cfg.db"\n'
    )
    env = cli_env(tmp_path)
    line, codes = _serve_dashboard([], tmp_path, env, (None, "tok-from-config-0123456789"))
    assert codes == [401, 200]  # the token of the file guards the dashboard
    assert f"(store: {tmp_path / 'cfg.db'};" in line and os.path.exists(tmp_path / "cfg.db")
    assert ":8765/" not in line  # port 0 from the file, not the built-in 8765
    # options given on the command line win
    line, codes = _serve_dashboard(["--token", "tok-cli-0123456789abcdef", "--store", str(tmp_path / "cli.db")],
                                   tmp_path, env,
                                   ("tok-from-config-0123456789", "tok-cli-0123456789abcdef"))
    assert codes == [401, 200]
    assert f"(store: {tmp_path / 'cli.db'};" in line


def test_dashboard_refuses_invalid_configuration(tmp_path: Path) -> None:
    (tmp_path / "resurgo.toml").write_text("[dashboard]\nport = 70000\n")
    p = resurgo(["dashboard"], cwd=tmp_path, env=cli_env(tmp_path))
    assert p.returncode == 2 and "dashboard.port: must be <= 65535" in p.stderr


@pytest.mark.parametrize(("value", "ok"), [("auto", True), (1, True), (1024, True), (0, False), (2000, False),
                                           ("lots", False), (True, False)])
def test_start_concurrency_agrees_between_schema_and_supervisor(tmp_path: Path, value: object, ok: bool) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text(f"[supervisor]\nstart_concurrency = {json.dumps(value)}\n")
    s = load_settings(config_file=conf, environ={}, user=False)
    try:
        SupervisorConfig(start_concurrency=value)  # type: ignore[arg-type]
        class_ok = True
    except ValueError:
        class_ok = False
    assert (not s.problems, class_ok) == (ok, ok), s.problems
    d = SupervisorConfig()
    assert load_settings(cwd=tmp_path, environ={}, user=False).get("supervisor", "start_concurrency") \
        == d.start_concurrency == "auto"
    assert d.start_slots >= 2 and SupervisorConfig(start_concurrency=3).start_slots == 3


def test_relay_hedge_is_wired_from_the_config_file_to_the_relay(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text("[supervisor]\nrelay_hedge = false\n")
    s = load_settings(config_file=conf, environ={}, user=False)
    assert not s.problems and s.get("supervisor", "relay_hedge") is False
    assert load_settings(cwd=tmp_path, environ={}, user=False).get("supervisor", "relay_hedge") is True
    assert SupervisorConfig().relay_hedge is True
    with pytest.raises(ValueError, match="relay_hedge"):
        SupervisorConfig(relay_hedge="no")  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "ok"), [(0, True), (8, True), (1024, True), (-1, False), (2000, False),
                                           ("many", False), (True, False)])
def test_standby_agrees_between_schema_and_supervisor(tmp_path: Path, value: object, ok: bool) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text(f"[supervisor]\nstandby = {json.dumps(value)}\nstandby_window = \"5m\"\n")
    s = load_settings(config_file=conf, environ={}, user=False)
    try:
        SupervisorConfig(standby=value)  # type: ignore[arg-type]
        class_ok = True
    except ValueError:
        class_ok = False
    assert (not s.problems, class_ok) == (ok, ok), s.problems
    if ok:
        assert s.get("supervisor", "standby") == value and s.get("supervisor", "standby_window") == 300.0
    d = SupervisorConfig()
    assert load_settings(cwd=tmp_path, environ={}, user=False).get("supervisor", "standby") == d.standby == 8
    with pytest.raises(ValueError, match="standby_window"):
        SupervisorConfig(standby_window=0)
