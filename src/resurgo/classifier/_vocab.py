"""Mining the error vocabulary of an installed Claude Code CLI and of the Python SDKs.

The CLI's wording changes almost weekly, and a classifier whose rules were
written against last month's messages silently degrades to its fallback.  The
CLI carries its user-facing messages as string literals (a Bun-compiled native
binary embeds the JavaScript source; older npm packages ship ``cli.js``), and
the Python SDKs raise their errors with literal messages, so the vocabulary can
be *read* instead of guessed: ``resurgo rules audit`` and
``scripts/mine_vocabulary.py`` both use this module.

Extraction is deliberately dumb and linear: printable string literals between
quotes (bounded length), with ``${…}`` / ``{…}`` placeholders normalised, kept
when they contain an error word and do not look like code.  It over-collects a
little (debug log lines, UI hints); the audit reports counts per group so the
noise is visible rather than hidden.  Nothing here is imported by the engine:
a classifier never pays for it.
"""

from __future__ import annotations

import ast
import mmap
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

#: A literal shorter or longer than this is not a message (identifiers; blobs of code or prose).
MIN_LEN = 12
MAX_LEN = 300

# Bounded, linear-time scans over bytes: a quote, up to MAX_LEN literal characters, the same quote.
_LITERALS = re.compile(
    rb'"((?:[^"\\\x00-\x1f]|\\.){12,300})"'
    rb"|'((?:[^'\\\x00-\x1f]|\\.){12,300})'"
    rb"|`((?:[^`\\\x00-\x08\x0e-\x1f]|\\.){12,300})`"
)
_PLACEHOLDER = re.compile(r"\$\{[^{}`]{0,120}\}")
_ERROR_WORDS = re.compile(
    r"\b(?:errors?|fail(?:ed|ure|s)?|invalid|cannot|can't|could not|couldn't|unable|not found|"
    r"not installed|expired?|denied|exceed(?:s|ed)?|too (?:large|long|many|big)|limit(?:ed|s)?|missing|"
    r"not logged|timed out|time-?out|refused|reset|disabled|unauthori[sz]ed|forbidden|not allowed|"
    r"not supported|unknown|required|revoked|crash(?:ed)?|killed|exit(?:ed)? (?:with )?(?:code|status)|"
    r"overloaded|unavailable|insufficient|credits?|quota|aborted|terminated|closed|disconnected|"
    r"(?:does not|doesn't|did not) (?:exist|have|support)|malformed|corrupt(?:ed)?|unexpected|"
    r"no (?:api key|auth|conversation|such)|not (?:a valid|valid|permitted|available|accessible)|"
    r"please (?:run|log ?in|re-?authenticate|upgrade)|rejected|blocked)\b",
    re.IGNORECASE,
)
# Shapes of code, not of messages (minified JS, format strings of log calls, paths, regex sources).
_CODE_LIKE = re.compile(
    r"=>|===|!==|&&|\|\||\bfunction\b|\breturn\b|\bconst\b|\bvar\b|\blet\b|\bnew [A-Z]|\)\s*\{|"
    r"\};|;\s*\w+\s*=|\bthis\.|\bimport\(|\brequire\(|^\s*[\w.]+\(|\\[nrtu]|^[\w./-]+$|^https?://\S+$|"
    r"\[\^|\(\?:|\\[dws]|<\/?[a-z]+[ >]|\bself\.|__\w+__|[{}]|\w\(|^[,);:.\]?!]|\?\?|\?\.|\b\w+:\w|=\w|\w=|"
    r"\b[a-z]+[A-Z]\w*\b.*\b[a-z]+[A-Z]\w*\b|\\x[0-9a-f]{2}"
)
_LETTERS = re.compile(r"[A-Za-z]")
_JS_ESCAPE = re.compile(r"\\x([0-9A-Fa-f]{2})|\\u([0-9A-Fa-f]{4})")
_WORDS = re.compile(r"[A-Za-z][A-Za-z'’-]+")


def normalise(text: str) -> str:
    """One spelling per message: placeholders as ``<x>``, whitespace collapsed, unescaped quotes."""
    t = _PLACEHOLDER.sub("<x>", text)
    t = t.replace('\\"', '"').replace("\\'", "'").replace("\\`", "`")
    t = _JS_ESCAPE.sub(lambda m: chr(int(m.group(1) or m.group(2), 16)), t)  # "\xB7" -> "·", as printed
    return " ".join(t.split())


def is_error_like(text: str) -> bool:
    """Heuristic: a sentence-like literal that carries an error word and does not look like code."""
    if not MIN_LEN <= len(text) <= MAX_LEN:
        return False
    if len(_WORDS.findall(text)) < 3 or not _ERROR_WORDS.search(text):
        return False
    if _CODE_LIKE.search(text):
        return False
    letters = len(_LETTERS.findall(text))
    return letters >= 0.55 * len(text.replace(" ", ""))  # else mostly punctuation, digits or placeholders


@dataclass(frozen=True, slots=True)
class Mined:
    """One distinct error-like literal and where it was found."""

    text: str
    source: str  # e.g. "claude-code 2.1.197 (bin/claude.exe)", "claude_agent_sdk 0.2.189 (_errors.py)"


# -- the CLI --------------------------------------------------------------------------------------


def cli_files(path: str | os.PathLike[str]) -> list[Path]:
    """The files of a Claude Code install that hold its messages.

    ``path`` may be the ``claude`` launcher (a symlink into the package), the
    package folder, its native binary, or a JavaScript bundle.  A Bun-compiled
    binary embeds the whole JavaScript source, so it is read as it is.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"no Claude Code CLI at {p}")
    p = p.resolve()
    if p.is_file():
        if p.suffix in (".js", ".cjs", ".mjs", ".exe") or p.stat().st_size > 5_000_000:
            return [p]
        # a small launcher script: look at the package around it
        p = p.parent.parent if p.parent.name == "bin" else p.parent
    found: list[Path] = []
    for rel in ("bin/claude.exe", "bin/claude", "cli.js", "claude"):
        f = p / rel
        if f.is_file() and f.stat().st_size > 1_000_000:
            found.append(f)
            break
    if not found:
        # the platform package next to the wrapper package (npm layout)
        for sib in sorted(p.parent.glob("claude-code-*")):
            f = sib / "claude"
            if f.is_file() and f.stat().st_size > 1_000_000:
                found.append(f)
                break
    if not found:
        raise FileNotFoundError(f"no CLI bundle or native binary found under {p}")
    return found


def cli_version(path: str | os.PathLike[str]) -> str | None:
    """The version from the package.json next to the install, when there is one."""
    import json

    p = Path(path).expanduser().resolve()
    for d in (p, *p.parents[:4]):
        pj = d / "package.json"
        if pj.is_file():
            try:
                data = json.loads(pj.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and str(data.get("name", "")).startswith("@anthropic-ai/claude-code"):
                v = data.get("version")
                return str(v) if v else None
    return None


def literals_in(data: bytes | mmap.mmap) -> Iterator[str]:
    """Every quoted literal of MIN_LEN..MAX_LEN characters in ``data``, normalised."""
    for m in _LITERALS.finditer(data):
        raw = m.group(1) or m.group(2) or m.group(3)
        if raw is None:
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        yield normalise(text)


def mine_cli(path: str | os.PathLike[str]) -> list[Mined]:
    """The distinct error-like literals of the CLI install at ``path``, in first-seen order."""
    files = cli_files(path)
    version = cli_version(path) or cli_version(files[0]) or "unknown"
    seen: dict[str, Mined] = {}
    for f in files:
        src = f"claude-code {version} ({f.name})"
        with open(f, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            for text in literals_in(mm):
                if text not in seen and is_error_like(text):
                    seen[text] = Mined(text, src)
    return list(seen.values())


# -- Python packages ------------------------------------------------------------------------------


def _fstring_text(node: ast.JoinedStr) -> str:
    parts: list[str] = []
    for v in node.values:
        if isinstance(v, ast.Constant) and isinstance(v.value, str):
            parts.append(v.value)
        else:
            parts.append("<x>")
    return "".join(parts)


def _strings_of(node: ast.AST) -> Iterator[str]:
    """Message-like strings in an expression (a raise, a call's arguments), concatenations joined."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.JoinedStr):
        yield _fstring_text(node)
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
        left = list(_strings_of(node.left))
        right = list(_strings_of(node.right)) if isinstance(node.op, ast.Add) else []
        if left and right:
            yield left[0] + right[0]
        else:
            yield from left
            yield from right
    elif isinstance(node, ast.Call):
        for a in (*node.args, *(k.value for k in node.keywords)):
            yield from _strings_of(a)
        if isinstance(node.func, ast.Attribute) and node.func.attr == "format":
            yield from _strings_of(node.func.value)


def mine_python_package(package_dir: str | os.PathLike[str], *, name: str, version: str = "") -> list[Mined]:
    """Error messages of a Python package: the strings its ``raise`` statements and error classes carry.

    Only raises and error-class defaults are read (not every string in the
    package), because those are the texts that reach a caller as ``str(exc)``.
    """
    root = Path(package_dir)
    seen: dict[str, Mined] = {}
    for f in sorted(root.rglob("*.py")):
        try:
            tree = ast.parse(f.read_text(encoding="utf-8"), filename=str(f))
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
            continue
        rel = f.relative_to(root).as_posix()
        src = f"{name} {version} ({rel})".replace("  ", " ")
        for node in ast.walk(tree):
            texts: Iterable[str] = ()
            if isinstance(node, ast.Raise) and node.exc is not None:
                texts = _strings_of(node.exc)
            elif isinstance(node, ast.Call) and node.args and _is_error_call(node.func):
                texts = _strings_of(node.args[0])  # an error built here, raised elsewhere; logger.error(...)
            elif isinstance(node, ast.ClassDef) and any(
                isinstance(b, ast.Name | ast.Attribute) and _is_error_name(b) for b in node.bases
            ):
                texts = [
                    s
                    for stmt in node.body
                    if isinstance(stmt, ast.Assign | ast.AnnAssign) and stmt.value is not None
                    for s in _strings_of(stmt.value)
                ]
            for t in texts:
                text = " ".join(t.replace("{", "<").replace("}", ">").split()) if "{" in t else " ".join(t.split())
                text = re.sub(r"<[^<>]{0,60}>", "<x>", text)
                if text not in seen and _message_like(text):
                    seen[text] = Mined(text, src)
    return list(seen.values())


def _is_error_call(f: ast.expr) -> bool:
    if isinstance(f, ast.Attribute) and f.attr in ("error", "exception", "critical"):
        return True
    return _is_error_name(f)


def _is_error_name(b: ast.expr) -> bool:
    n = b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else ""
    return n.endswith(("Error", "Exception"))


def _message_like(text: str) -> bool:
    """Python raise messages are errors by construction: only drop the ones that are not sentences."""
    if not 8 <= len(text) <= MAX_LEN or len(_WORDS.findall(text)) < 2:
        return False
    return not re.fullmatch(r"[\w.<>-]+", text)


def installed_package(name: str) -> tuple[Path, str] | None:
    """Folder and version of an importable package, without importing it (no side effects)."""
    import importlib.metadata
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    try:
        version = importlib.metadata.version(name.replace("_", "-"))
    except importlib.metadata.PackageNotFoundError:
        version = ""
    return folder, version


__all__ = [
    "MAX_LEN",
    "MIN_LEN",
    "Mined",
    "cli_files",
    "cli_version",
    "installed_package",
    "is_error_like",
    "literals_in",
    "mine_cli",
    "mine_python_package",
    "normalise",
]
