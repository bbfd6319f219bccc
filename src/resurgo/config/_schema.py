"""The settings resurgo knows: one :class:`Key` per ``[section].key``, with its type and default.

Listing every key up front is what lets a typo be an error with a "did you
mean" suggestion instead of a silently ignored line, and lets ``resurgo config
show`` print every effective value (defaults included) with where it came from.
The ``[retry]`` and ``[breaker]`` sections take their keys and defaults from the
library classes that validate them, so the two can never drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from resurgo.retrier._policy import PolicyError, parse_duration

#: Text of the contract's default continuation prompt is owned by the supervisor;
#: ``None`` here means "whatever the supervisor uses".
_SUPERVISOR_DEFAULT = None


class SettingError(ValueError):
    """A value has the wrong type or is out of range; the message says what is expected."""


Check = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Key:
    """One setting: how to check a value, its default, and whether it is secret.

    ``check`` returns the normalised value (``"2s"`` -> ``2.0``) or raises
    :class:`SettingError`; ``None`` means the owning section validates it (retry,
    breaker).  ``secret`` values are never printed in full.
    """

    check: Check | None
    default: Any
    doc: str
    secret: bool = False
    is_path: bool = False
    #: chooses what runs or where data goes (``resurgo config show`` lists who set it)
    dangerous: bool = False


# -- value checks --------------------------------------------------------------------------------
def _none_word(v: Any) -> bool:
    return isinstance(v, str) and v.strip().lower() in ("", "none", "null")


def integer(*, lo: int | None = None, hi: int | None = None, optional: bool = False) -> Check:
    def check(v: Any) -> Any:
        if optional and (v is None or _none_word(v)):
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            raise SettingError(f"must be an integer, got {v!r}")
        if lo is not None and v < lo:
            raise SettingError(f"must be >= {lo}, got {v}")
        if hi is not None and v > hi:
            raise SettingError(f"must be <= {hi}, got {v}")
        return v

    return check


def concurrency_value() -> Check:
    """An integer in [1, 1024] or the word ``auto`` (an adaptive limit per endpoint)."""
    as_int = integer(lo=1, hi=1024)

    def check(v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() == "auto":
            return "auto"
        if isinstance(v, str) and v.strip().isdigit():
            return as_int(int(v.strip()))
        if isinstance(v, str | bool) or not isinstance(v, int):
            raise SettingError(f'must be an integer or "auto", got {v!r}')
        return as_int(v)

    return check


def number(*, lo: float | None = None, hi: float | None = None, positive: bool = False) -> Check:
    def check(v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise SettingError(f"must be a finite number, got {v!r}")
        if positive and v <= 0:
            raise SettingError(f"must be > 0, got {v}")
        if lo is not None and v < lo:
            raise SettingError(f"must be >= {lo:g}, got {v}")
        if hi is not None and v > hi:
            raise SettingError(f"must be <= {hi:g}, got {v}")
        return float(v)

    return check


def duration(*, positive: bool = True, optional: bool = False) -> Check:
    """Seconds, as a number or a string such as ``"250ms"``, ``"2s"``, ``"5m"`` (the retry forms)."""

    def check(v: Any) -> Any:
        if optional and (v is None or _none_word(v)):
            return None
        try:
            s = parse_duration(v, "value")
        except PolicyError:
            raise SettingError(f"must be a duration (seconds, or '250ms', '2s', '5m'), got {v!r}") from None
        if not math.isfinite(s) or s < 0 or (positive and s == 0):
            raise SettingError(f"must be {'> 0' if positive else '>= 0'} seconds, got {v!r}")
        return s

    return check


def boolean() -> Check:
    def check(v: Any) -> Any:
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.strip().lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return v.strip().lower() in ("1", "true", "yes", "on")
        if isinstance(v, int) and v in (0, 1):
            return bool(v)
        raise SettingError(f"must be true or false, got {v!r}")

    return check


def text(*, optional: bool = True, nonempty: bool = False) -> Check:
    def check(v: Any) -> Any:
        if optional and v is None:
            return None
        if not isinstance(v, str):
            raise SettingError(f"must be a string, got {v!r}")
        if nonempty and not v.strip():
            raise SettingError("must not be empty")
        return v

    return check


def path() -> Check:
    def check(v: Any) -> Any:
        if v is None:
            return None
        if not isinstance(v, str) or not v.strip():
            raise SettingError(f"must be a file path (a non-empty string), got {v!r}")
        return v

    return check


def url(*schemes: str) -> Check:
    def check(v: Any) -> Any:
        if v is None or _none_word(v):
            return None
        if not isinstance(v, str):
            raise SettingError(f"must be a URL string, got {type(v).__name__}")
        parts = urlsplit(v)
        if parts.scheme not in schemes or not (parts.netloc or parts.scheme == "unix"):
            raise SettingError(f"must be a {' or '.join(s + '://' for s in schemes)} URL, got {redact_url(v)!r}")
        return v

    return check


def str_list(item: Check | None = None) -> Check:
    def check(v: Any) -> Any:
        if isinstance(v, str):
            v = [s.strip() for s in v.split(",") if s.strip()]  # env overrides: "a,b"
        if not isinstance(v, list | tuple) or not all(isinstance(s, str) and s for s in v):
            raise SettingError(f"must be a list of non-empty strings, got {v!r}")
        return [item(s) if item else s for s in v]

    return check


def choice(*options: str) -> Check:
    def check(v: Any) -> Any:
        if v not in options:
            raise SettingError(f"must be one of {', '.join(options)}, got {v!r}")
        return v

    return check


def str_map() -> Check:
    def check(v: Any) -> Any:
        if not isinstance(v, Mapping):
            raise SettingError(f"must be a table of NAME = \"value\", got {type(v).__name__}")
        bad = [k for k, x in v.items() if not isinstance(x, str)]
        if bad:
            raise SettingError(f"values must be strings; not for {', '.join(map(str, bad))}")
        return dict(v)

    return check


def budget(arg: str) -> Check:
    """A retry-budget value, range-checked by ``RetryBudget`` itself (as ``SupervisorConfig`` does).

    Deriving the limits instead of restating them is what keeps ``resurgo
    config check`` from refusing values the supervisor and the library accept.
    """

    def check(v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise SettingError(f"must be a number, got {v!r}")
        from resurgo.retrier import RetryBudget

        try:
            RetryBudget(ratio=v) if arg == "ratio" else RetryBudget(min_retries_per_sec=v)
        except ValueError as e:
            raise SettingError(str(e).replace("RetryBudget ", "")) from None
        return float(v)

    return check


def continuation() -> Check:
    """A continuation prompt template: non-empty, and only the placeholders the supervisor fills in."""
    nonempty = text(nonempty=True)

    def check(v: Any) -> Any:
        v = nonempty(v)
        if v is None:
            return None
        from resurgo._continuation import ContinuationError, check_continuation

        try:
            return check_continuation(v)
        except ContinuationError as e:
            raise SettingError(str(e)) from None

    return check


def redact_url(u: str) -> str:
    """A URL fit for display; the one policy for every URL resurgo shows (:func:`resurgo._redact.redact_url`)."""
    from resurgo._redact import redact_url as _redact_url

    return _redact_url(u)


# -- the sections ----------------------------------------------------------------------------------
def _supervisor_keys() -> dict[str, Key]:
    return {
        "claude": Key(path(), None, "Claude Code CLI to run (else $RESURGO_CLAUDE, then PATH)", is_path=True,
                      dangerous=True),
        "concurrency": Key(concurrency_value(), 4,
                           "jobs running at once in a batch, or \"auto\": found per API endpoint"),
        "max_concurrency": Key(integer(lo=1, hi=1024), 32, "with concurrency = \"auto\": most jobs at once"),
        "concurrency_algorithm": Key(choice("aimd", "gradient", "vegas"), "aimd",
                                     "with concurrency = \"auto\": the limit algorithm"),
        "start_concurrency": Key(concurrency_value(), "auto",
                                 "CLIs starting at once, spawn to first event (\"auto\": the CPUs, at least 2)"),
        "standby": Key(integer(lo=0, hi=1024), 8,
                       "idle CLIs booted ahead to resume running jobs while restarts happen (0: never)"),
        "standby_window": Key(duration(), 600.0, "standbys are kept this long after the last resume"),
        "stall_timeout": Key(duration(optional=True), 120.0, "no stream-json event for this long: kill and resume"),
        "deadline": Key(duration(optional=True), None, "wall-clock limit per attempt (none: no limit)"),
        "result_exit_timeout": Key(duration(optional=True), 10.0, "the CLI printed its result but does not exit"),
        "kill_grace": Key(duration(positive=False), 3.0, "SIGTERM -> SIGKILL grace"),
        "request_watch": Key(boolean(), True, "end a CLI whose API request hangs, by limits learned from the "
                                              "endpoint's answers (runs the CLI with --include-partial-messages)"),
        "request_timeout_factor": Key(number(lo=1.0), 3.0,
                                      "a request hangs past this many times the slowest recent first answer"),
        "request_timeout_floor": Key(duration(), 2.0, "never a shorter request limit than this"),
        "relay": Key(boolean(), True, "retry failed API requests in a loopback relay before the CLI sees them "
                                      "(no CLI restart for a 429/529/5xx, a reset, a cut stream or a hang)"),
        "relay_max_wait": Key(duration(), 60.0, "longest the relay holds one request for its retries"),
        "relay_max_tries": Key(integer(lo=1, hi=100), 10, "tries of one request in the relay"),
        "relay_budget_min_per_sec": Key(budget("min_retries_per_sec"), 10.0,
                                        "floor of the relay's own retry budget per endpoint (RPC-sized, Finagle's)"),
        "relay_hedge": Key(boolean(), True, "send a second copy of a request slower than the endpoint's "
                                            "slowest recent answer (the first answer wins)"),
        "max_recoveries": Key(integer(lo=0), 5, "recoveries per job within recovery_period (OTP intensity)"),
        "recovery_period": Key(duration(), 600.0, "window of max_recoveries"),
        "backoff_base": Key(duration(positive=False), 0.5, "first recovery backoff"),
        "backoff_cap": Key(duration(positive=False), 30.0, "largest recovery backoff"),
        "retry_budget_ratio": Key(budget("ratio"), 0.2,
                                  "recoveries allowed per answered API request, per endpoint (RetryBudget: 0-1000)"),
        "retry_budget_min_per_sec": Key(budget("min_retries_per_sec"), 1.0,
                                        "recoveries per second always allowed (1.0 here: CLI runs are few; "
                                        "the library RetryBudget's 10.0 suits RPC rates)"),
        "fallback_models": Key(str_list(), [], "models to fall back to on overload"),
        "fallback_endpoints": Key(str_list(url("http", "https")), [], "other ANTHROPIC_BASE_URLs to fail over to",
                                  dangerous=True),
        "continuation_prompt": Key(continuation(), _SUPERVISOR_DEFAULT,
                                   "prompt sent when resuming a session ({reason} {description} {category} {type})"),
        "cli_max_retries": Key(integer(lo=0, optional=True), None, "CLAUDE_CODE_MAX_RETRIES for the child"),
        "env": Key(str_map(), {}, "extra environment for every job (secret values redacted)", secret=True,
                   dangerous=True),
        "health_interval": Key(duration(), 5.0, "seconds between health checks"),
        "cleanup_interval": Key(duration(), 60.0, "seconds between cleanup sweeps"),
        "state_check_interval": Key(duration(), 1.0, "seconds between checks for jobs cancelled elsewhere"),
        "budget_wait_max": Key(duration(positive=False), 60.0, "longest wait for retry-budget tokens"),
        "alert_min_interval": Key(duration(positive=False), 60.0, "same alert at most once per this many s"),
        "claude_args": Key(str_list(), [], "arguments added to every job's claude command line",
                           dangerous=True),
    }


#: SupervisorConfig fields configured in other sections ([store] path, [breaker], [alerts] webhook).
_SUPERVISOR_ELSEWHERE = ("store", "breaker", "alert_webhook", "classify_rules", "otel")


def supervisor_config_class() -> Any:
    """``SupervisorConfig`` when the supervisor is installed, else None (then only our checks run)."""
    try:
        from resurgo.supervise._config import SupervisorConfig
    except ImportError:
        return None
    return SupervisorConfig


def default_breaker() -> Any:
    """The supervisor's breaker defaults (tuned for CLI runs), else the library's."""
    try:
        from resurgo.supervise._config import default_breaker_thresholds
    except ImportError:
        from resurgo.breaker._config import CircuitThresholds

        return CircuitThresholds()
    return default_breaker_thresholds()


def _with_class_defaults(keys: dict[str, Key]) -> dict[str, Key]:
    """Take defaults from ``SupervisorConfig`` itself and accept fields added there later."""
    cls = supervisor_config_class()
    if cls is None:
        return keys
    out = dict(keys)
    for name, key in _dataclass_keys(cls, skip=_SUPERVISOR_ELSEWHERE).items():
        if name in out:
            old = out[name]
            out[name] = Key(old.check, key.default, old.doc, secret=old.secret, is_path=old.is_path,
                            dangerous=old.dangerous)
        else:
            out[name] = key
    return out


def _dataclass_keys(cls: Any, *, skip: tuple[str, ...] = ()) -> dict[str, Key]:
    out: dict[str, Key] = {}
    for f in fields(cls):
        if not f.init or f.name in skip:
            continue
        if f.default is not MISSING:
            default = f.default
        elif f.default_factory is not MISSING:
            default = f.default_factory()
        else:  # pragma: no cover - both classes default every field
            default = None
        out[f.name] = Key(None, default, f"{cls.__name__}.{f.name}")
    return out


def build_schema() -> dict[str, dict[str, Key]]:
    """Every section and key; built on demand so importing the CLI stays cheap."""
    from resurgo.breaker._config import CircuitThresholds
    from resurgo.retrier._policy import RetryPolicy

    return {
        "supervisor": _with_class_defaults(_supervisor_keys()),
        # not read by the resurgo commands (their recovery backoff is [supervisor] backoff_base/backoff_cap):
        # the RetryPolicy of ``load_settings().retry_policy()``, for the user's own code
        "retry": {k: Key(None, v.default, f"{v.doc}, for Settings.retry_policy() in your code; "
                         "not used by the resurgo commands")
                  for k, v in _dataclass_keys(RetryPolicy, skip=("retry_on_result",)).items()},
        "breaker": {k: Key(None, getattr(default_breaker(), k), v.doc)
                    for k, v in _dataclass_keys(CircuitThresholds).items()},
        "classify": {
            "rules": Key(path(), None, "TOML file of extra classification rules ([[rule]] tables)", is_path=True),
        },
        "dashboard": {
            "host": Key(text(optional=False, nonempty=True), "127.0.0.1", "address the dashboard listens on",
                        dangerous=True),
            "port": Key(integer(lo=0, hi=65535), 8765, "dashboard port (0: any free one)"),
            "token": Key(text(), None, "dashboard access token", secret=True, dangerous=True),
        },
        "alerts": {
            "webhook": Key(url("http", "https"), None, "URL POSTed on escalations and breaker openings", secret=True,
                           dangerous=True),
        },
        "redis": {
            "url": Key(url("redis", "rediss", "unix"), None,
                       "Redis of the fleet: `resurgo batch` submits there unless --local; "
                       "`resurgo worker` serves it unless --redis", secret=True, dangerous=True),
        },
        "otel": {
            "enabled": Key(boolean(), False, "emit OpenTelemetry traces and metrics (pip install 'resurgo[otel]'; "
                           "exporter settings: the standard OTEL_* variables, docs/otel.md)"),
        },
        "worker": {
            # what `resurgo worker` accepts from the fleet's Redis (resurgo.distributed._policy)
            "cwd_roots": Key(str_list(), [], "folders a fleet job's cwd must lie under "
                             "(default: the folder the worker started in)", is_path=True, dangerous=True),
            "allow_env": Key(str_list(), [], "variables a fleet job may set although refused by default "
                             "(PATH, LD_*, ANTHROPIC_*, ...)", dangerous=True),
            "allow_claude_args": Key(str_list(), [], "claude flags a fleet job may pass beyond the safe ones "
                                     "(e.g. --allowedTools; '*' for any)", dangerous=True),
            "transcripts": Key(choice("redact", "encrypt", "plain"), "redact",
                               "how session transcripts are stored in Redis"),
            "transcript_key": Key(text(), None, "Fernet key for transcripts = 'encrypt' (shared by the fleet)",
                                  secret=True),
        },
        "store": {
            "path": Key(path(), None, "SQLite run store (default: $RESURGO_HOME or the XDG state folder)",
                        is_path=True),
        },
    }


__all__ = ["Key", "SettingError", "build_schema", "default_breaker", "redact_url", "supervisor_config_class"]
