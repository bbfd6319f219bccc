"""Finding, layering and validating the configuration.

Precedence, lowest first (each layer overrides single keys of the ones below):

1. built-in defaults;
2. the user config, ``$XDG_CONFIG_HOME/resurgo/config.toml`` (``~/.config/...``);
3. the project's ``resurgo.toml``, the first one found walking up from the
   current folder, up to the repository root or ``$HOME`` and only through
   folders you own (project settings beat personal ones, as with git);
4. ``--config FILE`` (an explicit file beats every discovered one);
5. environment variables ``RESURGO_<SECTION>_<KEY>`` (e.g.
   ``RESURGO_SUPERVISOR_STALL_TIMEOUT=60``, ``RESURGO_DASHBOARD_TOKEN``), whose
   values are read as TOML values when they parse (``60``, ``true``,
   ``["a","b"]``) and as plain strings otherwise, so a deployment can adjust
   one value without editing files;
6. options given on the command line itself.

Files that another user could write are refused (``refused: ...`` problems,
see :mod:`resurgo.config._trust`): they could choose the program resurgo runs.

Validation never stops at the first problem: every layer is checked and every
problem collected with the file, section and key it comes from, because fixing
a config one error per run is miserable.  Relative paths in a file are taken
relative to that file's folder, so a project config works from any subfolder.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resurgo.config._schema import (
    Key,
    SettingError,
    build_schema,
    default_breaker,
    redact_url,
    supervisor_config_class,
)
from resurgo.config._trust import find_project_config as _find_project_config
from resurgo.config._trust import trust_problems

ENV_PREFIX = "RESURGO_"
PROJECT_FILE = "resurgo.toml"
#: Sections whose values are checked as a whole by a library class after the per-key checks.
_CLASS_SECTIONS = ("retry", "breaker", "supervisor")


class ConfigError(ValueError):
    """The configuration has problems; ``problems`` lists every one of them."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem, located as precisely as the source allows (``file:section.key: message``)."""

    source: str
    section: str | None
    key: str | None
    message: str

    def __str__(self) -> str:
        where = ".".join(x for x in (self.section, self.key) if x)
        return f"{self.source}:{where}: {self.message}" if where else f"{self.source}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "section": self.section, "key": self.key, "message": self.message}


@dataclass(frozen=True, slots=True)
class Layer:
    """The raw tables of one source, plus the folder its relative paths are relative to."""

    name: str  # a file path, "environment" or "command line"
    data: Mapping[str, Any]
    base_dir: Path
    env_names: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def where(self, section: str, key: str) -> str:
        """How to name this value's origin in a message (env layers name the variable)."""
        return self.env_names.get((section, key), self.name)


@dataclass(frozen=True, slots=True)
class Value:
    value: Any
    source: str  # "default", a file path, "env RESURGO_X" or "command line"


def user_config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".config")
    return Path(base) / "resurgo" / "config.toml"


def find_project_config(start: str | os.PathLike[str] | None = None, *,
                        environ: Mapping[str, str] | None = None) -> Path | None:
    """The nearest ``resurgo.toml`` at or above ``start`` (default: the current folder).

    The search stops at the repository root, ``$HOME`` and before folders that
    are not yours (see :mod:`resurgo.config._trust`).
    """
    return _find_project_config(start, environ=environ)


def suggest(word: str, choices: Any) -> str:
    """`` (did you mean 'x'?)`` when a close match exists, else the list of valid names."""
    names = sorted(choices)
    import difflib  # only when a key is misspelt

    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (valid: {', '.join(names)})"


def _read_file(path: Path, problems: list[ConfigProblem], *, required: bool) -> Layer | None:
    untrusted = trust_problems(path)
    if untrusted:
        # never read a file another user can change: it could pick the program resurgo runs
        problems += [ConfigProblem(str(path), None, None, f"refused: {why}") for why in untrusted]
        return None
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if required:
            problems.append(ConfigProblem(str(path), None, None, "file not found"))
        return None
    except OSError as e:
        problems.append(ConfigProblem(str(path), None, None, f"cannot read: {e.strerror or e}"))
        return None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        problems.append(ConfigProblem(str(path), None, None, "not UTF-8 text"))
        return None
    except tomllib.TOMLDecodeError as e:
        problems.append(ConfigProblem(str(path), None, None, f"invalid TOML: {e}"))
        return None
    return Layer(str(path), data, path.resolve().parent)


def _env_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def env_layer(environ: Mapping[str, str], schema: Mapping[str, Mapping[str, Key]],
              problems: list[ConfigProblem]) -> Layer:
    """``RESURGO_<SECTION>_<KEY>`` variables as a layer.

    Only names starting with a known section are read, because resurgo uses
    other ``RESURGO_*`` variables for other purposes (``RESURGO_HOME``,
    ``RESURGO_CLAUDE``, the ``RESURGO_SUPERVISOR`` marker in child processes).
    """
    data: dict[str, dict[str, Any]] = {}
    names: dict[tuple[str, str], str] = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX):].lower()
        section = next((s for s in schema if rest.startswith(s + "_")), None)
        if section is None:
            continue
        key = rest[len(section) + 1:]
        if key not in schema[section]:
            problems.append(ConfigProblem(f"env {name}", section, key,
                                          "unknown setting" + suggest(key, schema[section])))
            continue
        data.setdefault(section, {})[key] = _env_value(environ[name])
        names[(section, key)] = f"env {name}"
    return Layer("environment", data, Path.cwd(), names)


_FIELD_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _culprits(message: str, keys: Mapping[str, Any]) -> list[str]:
    words = set(_FIELD_WORD.findall(message))
    return [k for k in keys if k in words]


def _class_check(section: str, values: dict[str, Any], defaults: Mapping[str, Any]) -> None:
    """Validate a whole section with the library class that owns it (raises ValueError)."""
    if section == "retry":
        from resurgo.retrier._policy import RetryPolicy

        RetryPolicy.from_dict(values)
    elif section == "breaker":
        from resurgo.breaker._config import CircuitThresholds

        CircuitThresholds.from_dict({**default_breaker().to_dict(), **values})
    elif section == "supervisor":
        cfg = supervisor_config_class()
        if cfg is not None and values:
            cfg.from_dict(values)
        merged = {**defaults, **values}
        base, cap = merged.get("backoff_base"), merged.get("backoff_cap")
        if isinstance(base, float) and isinstance(cap, float) and base > cap:
            raise ValueError(f"backoff_base ({base:g}) must not exceed backoff_cap ({cap:g})")


class Settings:
    """The merged, validated configuration: each value with the source it came from."""

    def __init__(self, values: dict[str, dict[str, Value]], problems: list[ConfigProblem],
                 layers: list[Layer], schema: dict[str, dict[str, Key]]) -> None:
        self.values = values
        self.problems = problems
        self.layers = layers
        self.schema = schema

    def get(self, section: str, key: str) -> Any:
        return self.values[section][key].value

    def source(self, section: str, key: str) -> str:
        return self.values[section][key].source

    def explicit(self, section: str) -> dict[str, Any]:
        """Only the keys some layer set (what a library ``from_dict`` should see)."""
        return {k: v.value for k, v in self.values[section].items() if v.source != "default"}

    def raise_for_problems(self) -> None:
        if self.problems:
            raise ConfigError(self.problems)

    # -- typed views -----------------------------------------------------------------------
    def store_path(self, override: str | os.PathLike[str] | None = None) -> Path:
        """``override`` (``--store``), else ``[store] path``, else the default store location."""
        if override is not None:
            return Path(override)
        p = self.get("store", "path")
        if p:
            return Path(p)
        from resurgo.store import default_store_path

        return default_store_path()

    def retry_policy(self) -> Any:
        """A ``RetryPolicy`` from ``[retry]``, for the user's own code.

        The resurgo commands do not use it: the supervisor's backoff between
        recoveries is ``[supervisor] backoff_base``/``backoff_cap`` (restart
        intensity), because a recovery is a resumed session, not a repeated call.
        """
        from resurgo.retrier._policy import RetryPolicy

        return RetryPolicy.from_dict(self.explicit("retry"))

    def thresholds(self) -> Any:
        """The breaker thresholds: the supervisor's defaults with ``[breaker]`` applied."""
        from resurgo.breaker._config import CircuitThresholds

        return CircuitThresholds.from_dict({**default_breaker().to_dict(), **self.explicit("breaker")})

    def supervisor_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``SupervisorConfig`` from ``[supervisor]``, ``[breaker]``, ``[alerts]``
        and ``[classify]`` (``[store] path`` is left to the caller, which may override it)."""
        kw = self.explicit("supervisor")
        rules = self.get("classify", "rules")
        if rules:
            kw["classify_rules"] = rules
        if self.explicit("breaker"):
            kw["breaker"] = self.thresholds()
        hook = self.get("alerts", "webhook")
        if hook:
            kw["alert_webhook"] = hook
        if self.get("otel", "enabled"):
            kw["otel"] = True
        return kw

    def display(self, section: str, key: str) -> Any:
        """The value fit for a screen or a log: secrets redacted."""
        v = self.get(section, key)
        spec = self.schema[section][key]
        if v is None or not spec.secret:
            return _plain(v)
        if isinstance(v, Mapping):
            from resurgo._redact import is_secret_name, redact

            return {str(k): ("<redacted>" if is_secret_name(str(k)) else redact(str(x))) for k, x in v.items()}
        if isinstance(v, str) and "://" in v:
            return redact_url(v)
        return "<redacted>"

    def to_dict(self) -> dict[str, Any]:
        return {
            s: {k: {"value": self.display(s, k), "source": self.source(s, k)} for k in keys}
            for s, keys in self.values.items()
        }

    def dangerous(self) -> list[dict[str, Any]]:
        """Settings that choose what runs or where data goes, with the file or variable that set them.

        Only those not at their default: these are what to look at first when
        a configuration came from somewhere you do not fully trust.
        """
        return [
            {"setting": f"{s}.{k}", "value": self.display(s, k), "source": self.source(s, k)}
            for s, keys in self.schema.items() for k, spec in keys.items()
            if spec.dangerous and self.source(s, k) != "default"
        ]


def _plain(v: Any) -> Any:
    """JSON/TOML-friendly form (frozensets of error types, enums)."""
    if isinstance(v, frozenset | set):
        return sorted(str(getattr(x, "value", x)) for x in v)
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return getattr(v, "value", v) if not isinstance(v, str | int | float | bool) else v


def load_settings(
    *,
    config_file: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    user: bool = True,
) -> Settings:
    """Read every layer, merge, and validate; problems are collected in ``Settings.problems``.

    Never raises for bad configuration (call :meth:`Settings.raise_for_problems`),
    so ``resurgo config check`` can show them all.  ``overrides`` are the
    command line's own options, ``{section: {key: value}}``.
    """
    environ = os.environ if environ is None else environ
    schema = build_schema()
    problems: list[ConfigProblem] = []
    layers: list[Layer] = []
    if user:
        lay = _read_file(user_config_path(environ), problems, required=False)
        if lay:
            layers.append(lay)
    proj = find_project_config(cwd, environ=environ)
    if proj is not None:
        lay = _read_file(proj, problems, required=False)
        if lay:
            layers.append(lay)
    if config_file is not None:
        lay = _read_file(Path(config_file), problems, required=True)
        if lay:
            layers.append(lay)
    layers.append(env_layer(environ, schema, problems))
    if overrides:
        layers.append(Layer("command line", {s: dict(t) for s, t in overrides.items()}, Path.cwd()))

    values: dict[str, dict[str, Value]] = {
        s: {k: Value(spec.default, "default") for k, spec in keys.items()} for s, keys in schema.items()
    }
    for lay in layers:
        for section, table in lay.data.items():
            if section not in schema:
                problems.append(ConfigProblem(lay.name, section, None, "unknown section" + suggest(section, schema)))
                continue
            if not isinstance(table, Mapping):
                problems.append(ConfigProblem(lay.name, section, None,
                                              f"must be a table ([{section}]), got {type(table).__name__}"))
                continue
            for key, raw in table.items():
                spec = schema[section].get(key)
                src = lay.where(section, key)
                if spec is None:
                    problems.append(ConfigProblem(src, section, key, "unknown setting" + suggest(key, schema[section])))
                    continue
                try:
                    v = spec.check(raw) if spec.check is not None else raw
                except SettingError as e:
                    problems.append(ConfigProblem(src, section, key, str(e)))
                    continue
                if spec.is_path and isinstance(v, str):
                    v = str((lay.base_dir / os.path.expanduser(v)).resolve())
                values[section][key] = Value(v, src)

    for section in _CLASS_SECTIONS:
        _check_section(section, values[section], problems)
    _check_rules(values["classify"]["rules"], problems)
    return Settings(values, problems, layers, schema)


def _check_section(section: str, vals: dict[str, Value], problems: list[ConfigProblem]) -> None:
    """Run the owning class's validation repeatedly, dropping each culprit, to report every problem."""
    explicit = {k: v for k, v in vals.items() if v.source != "default"}
    defaults = {k: v.value for k, v in vals.items() if v.source == "default"}
    current = {k: v.value for k, v in explicit.items()}
    for _ in range(len(current) + 1):
        try:
            _class_check(section, current, defaults)
        except (ValueError, TypeError) as e:
            msg = str(e)
            culprits = _culprits(msg, current) or sorted(current)
            srcs = sorted({explicit[k].source for k in culprits if k in explicit}) or ["config"]
            key = culprits[0] if len(culprits) == 1 else None
            problems.append(ConfigProblem(", ".join(srcs), section, key, msg))
            for k in culprits:
                current.pop(k, None)
            continue
        return


def _check_rules(rules: Value, problems: list[ConfigProblem]) -> None:
    """A rules file must load and must not clash with the shipped packs (``Classifier.from_config``)."""
    if not rules.value:
        return
    from resurgo.classifier import Classifier, RuleError

    p = Path(rules.value)
    if not p.is_file():
        problems.append(ConfigProblem(rules.source, "classify", "rules", f"rules file not found: {p}"))
        return
    try:
        Classifier.from_config(p)
    except (RuleError, ValueError, OSError) as e:
        problems.append(ConfigProblem(rules.source, "classify", "rules", f"{p}: {e}"))


__all__ = [
    "ENV_PREFIX",
    "PROJECT_FILE",
    "ConfigError",
    "ConfigProblem",
    "Settings",
    "Value",
    "find_project_config",
    "load_settings",
    "suggest",
    "trust_problems",
    "user_config_path",
]
