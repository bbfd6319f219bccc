"""bench/_results.py: every benchmark's JSON carries the versions it was measured with."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_bench_results", BENCH / "_results.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["_bench_results"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_writes_versions_of_resurgo_python_and_each_anchor(tmp_path: Path) -> None:
    import platform

    import resurgo

    br = _load()
    out = br.write_results(
        "demo",
        {"rows": [{"name": "x", "ratio": 2.0}]},
        anchors=["pytest", "surely-not-an-installed-distribution"],
        out=tmp_path / "demo.json",
    )
    doc = json.loads(out.read_text())
    assert doc["bench"] == "demo"
    assert doc["env"]["resurgo"] == resurgo.__version__
    assert doc["env"]["python"] == platform.python_version()
    assert doc["anchors"]["pytest"] == pytest.__version__
    # A missing anchor is recorded as missing, not silently dropped.
    assert "surely-not-an-installed-distribution" in doc["anchors"]
    assert doc["anchors"]["surely-not-an-installed-distribution"] is None
    assert doc["results"]["rows"][0]["ratio"] == 2.0
    assert not list(tmp_path.glob("*.tmp"))


def test_anchor_versions_resolved_by_the_caller_pass_through(tmp_path: Path) -> None:
    br = _load()
    out = br.write_results("cli", {}, anchors={"claude": "2.1.197 (Claude Code)"}, out=tmp_path / "c.json")
    assert json.loads(out.read_text())["anchors"] == {"claude": "2.1.197 (Claude Code)"}
