"""The user guide cannot rot: its runnable code blocks run, the rest at least compile.

Blocks fenced as ```` ```python run ```` in docs/guide.md are executed, each in a
fresh interpreter with a throw-away HOME and resurgo home, the real CLI in
RESURGO_CLAUDE and no ANTHROPIC_API_KEY (exactly like the examples in
tests/test_examples.py), and must exit 0.  Plain ```` ```python ```` blocks are
fragments (they need a real repository or API key) and are only compiled.
Every ``examples/*.py`` the guide names must exist (those run in test_examples).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guide.md"

_FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.S | re.M)


def blocks(info_match: str) -> list[tuple[int, str]]:
    """(line number, code) of the fenced blocks whose info string is exactly ``info_match``."""
    text = GUIDE.read_text(encoding="utf-8")
    out = []
    for m in _FENCE.finditer(text):
        if m.group("info").strip() == info_match:
            out.append((text.count("\n", 0, m.start()) + 1, m.group("body")))
    return out


RUNNABLE = blocks("python run")
FRAGMENTS = blocks("python")


def test_the_guide_has_runnable_blocks() -> None:
    assert len(RUNNABLE) >= 6, "docs/guide.md lost its runnable examples"


def test_fence_parser_sees_every_python_block() -> None:
    """A typo in a fence (```pyhton run) must not silently drop a block from the checks."""
    text = GUIDE.read_text(encoding="utf-8")
    opened = re.findall(r"^```(\S*)", text, re.M)
    infos = [i for i in opened if i]  # closing fences have no info string
    assert set(infos) <= {"python", "bash", "toml", "json", "jsonl", "text"}, infos
    assert len(RUNNABLE) + len(FRAGMENTS) == sum(1 for i in infos if i == "python")


@pytest.mark.parametrize(("line", "code"), RUNNABLE, ids=[f"line{n}" for n, _ in RUNNABLE])
def test_guide_block_runs(line: int, code: str, tmp_path: Path, claude_bin: str) -> None:
    env = dict(os.environ)
    env.update(HOME=str(tmp_path), RESURGO_HOME=str(tmp_path / "resurgo"), RESURGO_CLAUDE=claude_bin,
               XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    env.pop("ANTHROPIC_API_KEY", None)
    script = tmp_path / f"guide_line{line}.py"
    script.write_text(code, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90
    )
    assert proc.returncode == 0, f"docs/guide.md block at line {line} failed:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.strip(), f"docs/guide.md block at line {line} printed nothing"


@pytest.mark.parametrize(("line", "code"), FRAGMENTS, ids=[f"line{n}" for n, _ in FRAGMENTS])
def test_guide_fragment_compiles(line: int, code: str) -> None:
    # top-level `await` appears in asyncio fragments; compile them as the asyncio REPL would
    import ast

    compile(code, f"docs/guide.md:{line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_examples_named_in_the_guide_exist() -> None:
    named = set(re.findall(r"examples/[\w-]+\.py", GUIDE.read_text(encoding="utf-8")))
    assert named, "the guide should point at the runnable examples"
    missing = sorted(n for n in named if not (ROOT / n).exists())
    assert not missing, missing
