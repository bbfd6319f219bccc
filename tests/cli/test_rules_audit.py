"""`resurgo rules audit` against the real installed Claude Code CLI (the conftest fixture)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from resurgo.classifier import Classifier
from resurgo.classifier._vocab import is_error_like, literals_in, mine_cli
from resurgo.cli._rules import audit_report


def _run(args: list[str], tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg"), **extra}
    return subprocess.run([sys.executable, "-m", "resurgo", "rules", "audit", *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)


@pytest.fixture(scope="module")
def mined(claude_bin: str) -> list:
    return mine_cli(claude_bin)


def test_mining_reads_the_real_cli(mined: list) -> None:
    texts = {m.text for m in mined}
    assert len(texts) > 500
    # messages the CLI is known to print (claude-cli-facts.md), found by reading the install
    assert any("Invalid API key" in t for t in texts)
    assert any(t.startswith("Unable to connect to API") for t in texts)
    assert all(is_error_like(t) for t in list(texts)[:200])


def test_audit_json_against_the_real_cli(claude_bin: str, tmp_path: Path, mined: list) -> None:
    p = _run(["--claude", claude_bin, "--json"], tmp_path)
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert rep["strings"] == len(mined)
    assert rep["explicit_rule"] + rep["semantic_tier"] + rep["fallback_only"] == rep["strings"]
    assert sum(g["count"] for g in rep["groups"]) == rep["fallback_only"]
    clf = Classifier()
    for g in rep["groups"][:5]:
        for ex in g["examples"]:
            assert clf.classify(ex, record=False).rule == "fallback"  # really only the fallback knows it


def test_audit_text_output_and_a_missing_cli(claude_bin: str, tmp_path: Path) -> None:
    p = _run(["--limit", "3"], tmp_path, RESURGO_CLAUDE=claude_bin)  # the installed CLI, as `run` finds it
    assert p.returncode == 0, p.stderr
    assert "only by the fallback" in p.stdout and "more groups" in p.stdout
    bad = _run(["--claude", str(tmp_path / "nope")], tmp_path)
    assert bad.returncode == 2 and "not an executable" in bad.stderr


def test_audit_sees_what_a_rule_stops_knowing() -> None:
    """Gate: a string only the fallback knows is reported; a user rule for it takes it off the list."""
    from resurgo.classifier._rules import rules_from_toml

    texts = [("Your OAuth session lapsed and could not be renewed", "t"), ("zq frobnication wobbled", "t")]
    rep = audit_report(texts)
    assert (rep["semantic_tier"], rep["fallback_only"]) == (1, 1)
    assert rep["groups"][0]["examples"] == ["zq frobnication wobbled"]
    rule = rules_from_toml('[[rule]]\nid = "u.frob"\nmessage = "frobnication"\ntype = "network"\n')
    taught = audit_report(texts, classifier=Classifier(rule))
    assert taught["fallback_only"] == 0 and taught["explicit_rule"] == 1


def test_literal_extraction_is_bounded() -> None:
    blob = b'x="' + b"a" * 10_000 + b'" y="Connection was refused by the peer host" z=`Failed: ${e.message} happened`'
    out = list(literals_in(blob))
    assert "Connection was refused by the peer host" in out
    assert "Failed: <x> happened" in out
    assert all(len(t) <= 300 for t in out)
