#!/usr/bin/env python3
"""Extract the error vocabulary of Claude Code CLI installs and of the Python SDKs.

    python scripts/mine_vocabulary.py --claude .tools/npm/node_modules/.bin/claude \
        --claude /tmp/cli-latest/node_modules/.bin/claude --python claude_agent_sdk --python anthropic \
        --out tests/corpus/mined

Writes one ``<source>.jsonl`` per install/package into ``--out`` (``{"text", "source"}`` per
line, sorted, so a re-run after a CLI upgrade diffs cleanly).  These raw lists are what
``scripts/label_catalogue.py`` labels into ``tests/corpus/catalogue.jsonl``; they are
over-collected on purpose (the labeller drops what is not a failure a run could end with).
The same extraction runs in ``resurgo rules audit`` (``resurgo.classifier._vocab``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from resurgo.classifier._vocab import cli_version, installed_package, mine_cli, mine_python_package  # noqa: E402


def _write(out: Path, name: str, rows: list[dict[str, str]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.jsonl"
    rows = sorted(rows, key=lambda r: r["text"])
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{path}: {len(rows)} strings")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--claude", action="append", default=[], help="a Claude Code install (launcher, package, binary)")
    ap.add_argument("--python", action="append", default=[], help="an installed Python package to read")
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "corpus" / "mined")
    args = ap.parse_args()
    if not args.claude and not args.python:
        ap.error("give at least one --claude or --python")
    for c in args.claude:
        version = cli_version(c) or "unknown"
        rows = [{"text": m.text, "source": m.source} for m in mine_cli(c)]
        _write(args.out, f"claude-code-{version}", rows)
    for name in args.python:
        found = installed_package(name)
        if found is None:
            print(f"{name}: not installed", file=sys.stderr)
            return 1
        folder, version = found
        rows = [{"text": m.text, "source": m.source} for m in mine_python_package(folder, name=name, version=version)]
        _write(args.out, re.sub(r"[^\w.-]", "_", f"{name}-{version}"), rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
