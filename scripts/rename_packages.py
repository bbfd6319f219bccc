#!/usr/bin/env python3
"""Give the classifier and retrier packages names that differ from their functions (issue 17).

``resurgo.classify`` and ``resurgo.retry`` are both a function (``resurgo.classify(exc)``,
``@resurgo.retry``) and a sub-package.  Python sets ``resurgo.<name>`` to the sub-package
whenever it is imported, so today ``resurgo/__init__.py`` changes the modules' ``__class__`` to
make them callable.  No plain design can keep one attribute both a function and a module; the
plain design is two names:

    resurgo.classify(...)    the function        resurgo.classifier   the package (Classifier, ErrorClass, ...)
    @resurgo.retry(...)      the decorator       resurgo.retrier      the package (Retrier, RetryPolicy, ...)

(the README already calls them "the classifier, retrier and breaker").  This script makes the
move in one go, after every branch that edits those packages is merged:

    python scripts/rename_packages.py            # git mv + rewrite imports + plain resurgo/__init__
    python scripts/rename_packages.py --dry-run  # show what would change, change nothing

What it rewrites (in src, tests, bench, examples, scripts, docs, README.md, pyproject.toml):
``from/import resurgo.classify[...]``, ``resurgo.classify.<attr>`` (also inside strings such as
``mock.patch("resurgo.classify._engine.x")``), quoted module names passed to
``importlib.import_module`` / ``importlib.resources.files``, ``:mod:`` references and paths
``resurgo/classify/...``; the same for ``retry``.  What it leaves alone on purpose: calls
``resurgo.classify(...)`` / ``resurgo.retry(...)``, ``from resurgo import classify``, the logger
names ``"resurgo.retry"`` / ``"resurgo.classify"`` (users' logging configuration names them) and
the TOML table ``[resurgo.retry]`` read by ``RetryPolicy.from_toml``.  Lines that still mention an
old name are printed at the end for a human to check.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RENAMES = {"classify": "classifier", "retry": "retrier"}
SCAN = ["src", "tests", "bench", "examples", "scripts", "docs", "README.md", "pyproject.toml"]
SUFFIXES = {".py", ".md", ".toml", ".txt", ".cfg", ".ini", ".sh", ".pyi", ".rst"}
KEEP_QUOTED = re.compile(r"getLogger|at_level|table\s*=|\[resurgo\.")

INIT_CONSTANTS = {
    '_CLASSIFY_PKG = "resurgo.classify"': '_CLASSIFY_PKG = "resurgo.classifier"',
    '_RETRY_PKG = "resurgo.retry"': '_RETRY_PKG = "resurgo.retrier"',
}
INIT_GETATTR_OLD = (
    "    # transitional: value = getattr(module, name)\n"
    "    value = _callable(module) if name in _CALLABLE_SUBPACKAGES else getattr(module, name)\n"
)
INIT_GETATTR_NEW = "    value = getattr(module, name)\n"
INIT_BLOCK = re.compile(r"# --- BEGIN transitional.*?# --- END transitional\n+", re.S)

DOC_SECTION = re.compile(r"<!-- rename:begin.*?<!-- rename:end -->\n", re.S)
DOC_AFTER = """## The classifier and retrier packages

The functions are ``resurgo.classify(...)`` and ``@resurgo.retry``; the packages behind them are
``resurgo.classifier`` and ``resurgo.retrier`` (like ``resurgo.breaker``: the package is named
after the thing, the function after the action).  Import from the packages
(``from resurgo.classifier import ErrorClass``, ``from resurgo.retrier import RetryPolicy``);
no module's class is changed and no attribute is both a function and a module.
"""

PLAIN_TEST = '''"""After the rename: ``resurgo.classify`` / ``resurgo.retry`` are plain functions whatever
was imported first, and no module's class is changed behind the user's back."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import types
import resurgo.supervise, resurgo.classifier, resurgo.retrier   # every sub-package imported first
import resurgo
assert isinstance(resurgo.classify, types.FunctionType), type(resurgo.classify)
assert isinstance(resurgo.retry, types.FunctionType), type(resurgo.retry)
assert resurgo.classifier.classify is resurgo.classify and resurgo.retrier.retry is resurgo.retry
odd = [n for n, m in list(sys.modules.items()) if n.startswith("resurgo") and type(m) is not types.ModuleType]
assert not odd, odd
print("ok")
"""


def test_functions_are_plain_functions_and_modules_plain_modules() -> None:
    proc = subprocess.run([sys.executable, "-c", "import sys\\n" + SCRIPT], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
'''


def rewrite(text: str) -> str:
    for old, new in RENAMES.items():
        o = re.escape(old)
        text = re.sub(rf"\b(from|import)(\s+)resurgo\.{o}\b", rf"\1\2resurgo.{new}", text)
        text = re.sub(rf"\bresurgo\.{o}\.(?=[A-Za-z_{{])", f"resurgo.{new}.", text)
        text = re.sub(rf":mod:`resurgo\.{o}`", f":mod:`resurgo.{new}`", text)
        text = re.sub(rf"\bresurgo/{o}\b", f"resurgo/{new}", text)
        lines = text.split("\n")
        for i, line in enumerate(lines):
            if not KEEP_QUOTED.search(line):
                lines[i] = re.sub(rf"(['\"])resurgo\.{o}\1", rf"\1resurgo.{new}\1", line)
        text = "\n".join(lines)
    return text


def files(root: Path) -> list[Path]:
    out: list[Path] = []
    me = root / "scripts" / "rename_packages.py"
    for entry in SCAN:
        p = root / entry
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out.extend(
                f for f in p.rglob("*")
                if f.is_file() and f.suffix in SUFFIXES and f != me
                and "__pycache__" not in f.parts
            )
    return sorted(out)


def plain_init(text: str) -> str:
    for old, new in INIT_CONSTANTS.items():
        if old not in text:
            raise SystemExit(f"src/resurgo/__init__.py: expected {old!r}; edit it by hand")
        text = text.replace(old, new)
    if INIT_GETATTR_OLD not in text:
        raise SystemExit("src/resurgo/__init__.py: the transitional __getattr__ line is missing; edit by hand")
    text = text.replace(INIT_GETATTR_OLD, INIT_GETATTR_NEW)
    text = re.sub(
        r"# Where the classifier and the retrier live\..*?(?=_CLASSIFY_PKG)",
        lambda _: "# The packages behind the functions ``classify`` and ``retry``: named apart from them, so\n"
        "# importing a package never replaces a function of the same name on this module.\n",
        text,
        count=1,
        flags=re.S,
    )
    text, n = INIT_BLOCK.subn("", text)
    if n != 1:
        raise SystemExit("src/resurgo/__init__.py: the transitional block is missing; edit by hand")
    text = re.sub(r"^import sys\n", "", text, flags=re.M)  # only the block used it
    text = re.sub(r"^import types\n", "", text, flags=re.M)
    return text


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--root", type=Path, default=ROOT)
    ap.add_argument("--dry-run", action="store_true")
    a = ap.parse_args(argv)
    root: Path = a.root.resolve()
    pkg = root / "src" / "resurgo"
    for old, new in RENAMES.items():
        if not (pkg / old).is_dir() or (pkg / new).exists():
            print(f"src/resurgo/{old} missing or src/resurgo/{new} exists: already renamed?", file=sys.stderr)
            return 2
    changed = []
    for f in files(root):
        text = f.read_text(encoding="utf-8")
        new_text = rewrite(plain_init(text) if f == pkg / "__init__.py" else text)
        if f.name == "architecture.md":
            new_text = DOC_SECTION.sub(lambda _: DOC_AFTER, new_text)
        if new_text != text:
            changed.append(f)
            if not a.dry_run:
                f.write_text(new_text, encoding="utf-8")
    for old, new in RENAMES.items():
        src, dst = pkg / old, pkg / new
        if a.dry_run:
            print(f"would move {src.relative_to(root)} -> {dst.relative_to(root)}")
            continue
        git = shutil.which("git")
        moved = False
        if git and (root / ".git").exists():
            cmd = [git, "-C", str(root), "mv", str(src), str(dst)]
            moved = subprocess.run(cmd, check=False).returncode == 0  # noqa: S603 - fixed argv, no shell
        if not moved:
            shutil.move(str(src), str(dst))
    test = root / "tests" / "test_plain_packages.py"
    if not a.dry_run:
        test.write_text(PLAIN_TEST, encoding="utf-8")
    print(f"{'would change' if a.dry_run else 'changed'} {len(changed)} files; added {test.relative_to(root)}")
    left = re.compile(r"resurgo[./](" + "|".join(RENAMES) + r")\b(?!\s*\()")
    for f in files(root):
        for n, line in enumerate(f.read_text(encoding="utf-8").split("\n"), 1):
            if left.search(line) and not re.search(r"from resurgo import", line):
                print(f"  check: {f.relative_to(root)}:{n}: {line.strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
