"""The one-way dependency rule, checked on the source (docs/architecture.md).

The general library -- classify, retry, breaker, clock, store (and the shared
redaction helper they use) -- never imports what is built on it: the supervisor,
the CLI, chaos, the dashboard, observe, sdk, distributed, mockapi, config.  Every
import counts, including ones inside functions and under ``TYPE_CHECKING``: a lazy
import is still a dependency.  The same graph must have no cycles between the
modules the refactoring untangled (issue 17).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
GENERAL = ("resurgo.classifier", "resurgo.retrier", "resurgo.breaker", "resurgo.clock", "resurgo.store")
# Renamed packages (scripts/rename_packages.py) keep their place in the rule.
GENERAL += ("resurgo.classifier", "resurgo.retrier")
ALLOWED_OUTSIDE = ("resurgo._redact", "resurgo._lazy")  # shared helpers below the library (no imports of ours)


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every ``resurgo`` module this file imports, anywhere in it."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("resurgo"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            if mod.startswith("resurgo"):
                out.add(mod)
                out.update(f"{mod}.{a.name}" for a in node.names)  # ``from pkg import submodule``
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", None) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            out.add(node.args[0].value)
    return out


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in SRC.joinpath("resurgo").rglob("*.py")}
    g: dict[str, set[str]] = {}
    for name, path in files.items():
        deps = set()
        for imp in imports_of(path):
            # keep only names that are modules of ours (drop imported functions/classes)
            while imp and imp not in files:
                imp = imp.rpartition(".")[0]
            if imp and imp != name and imp != "resurgo":
                deps.add(imp)
        g[name] = deps
    return g


def in_general(mod: str) -> bool:
    return any(mod == p or mod.startswith(p + ".") for p in GENERAL)


def violations(g: dict[str, set[str]]) -> list[str]:
    bad = []
    for mod, deps in sorted(g.items()):
        if not in_general(mod):
            continue
        for d in sorted(deps):
            if not in_general(d) and d not in ALLOWED_OUTSIDE:
                bad.append(f"{mod} imports {d}")
    return bad


def test_the_general_library_never_imports_what_is_built_on_it() -> None:
    g = graph()
    assert any(in_general(m) for m in g), "found no library modules: the test would check nothing"
    assert violations(g) == []


def test_the_rule_check_catches_a_library_module_importing_the_supervisor() -> None:
    """The gate failing: a breaker module that imports the supervisor is reported."""
    g = graph()
    g["resurgo.breaker._states"] = g["resurgo.breaker._states"] | {"resurgo.supervise._jobstore"}
    g["resurgo.clock"] = g["resurgo.clock"] | {"resurgo.cli._run"}
    assert violations(g) == [
        "resurgo.breaker._states imports resurgo.supervise._jobstore",
        "resurgo.clock imports resurgo.cli._run",
    ]


def cycle_between(g: dict[str, set[str]], a: str, b: str) -> bool:
    def reaches(x: str, y: str) -> bool:
        seen, todo = set(), [x]
        while todo:
            n = todo.pop()
            if n == y:
                return True
            if n not in seen:
                seen.add(n)
                todo.extend(g.get(n, ()))
        return False

    return reaches(a, b) and reaches(b, a)


def test_untangled_modules_do_not_import_each_other() -> None:
    g = graph()
    for a, b in [
        ("resurgo.breaker._breaker", "resurgo.breaker._states"),
        ("resurgo.supervise._jobstore", "resurgo.supervise._process"),
        ("resurgo.cli._batch_redis", "resurgo.cli._run"),
    ]:
        assert a in g and b in g, (a, b)
        assert not cycle_between(g, a, b), f"{a} and {b} import each other (directly or through others)"


def test_the_cycle_check_sees_a_lazy_import() -> None:
    """The gate failing: a function-level import back from _states to _breaker is a cycle."""
    g = graph()
    g["resurgo.breaker._states"] = g["resurgo.breaker._states"] | {"resurgo.breaker._breaker"}
    assert cycle_between(g, "resurgo.breaker._breaker", "resurgo.breaker._states")
