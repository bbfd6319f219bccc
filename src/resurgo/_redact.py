"""Redaction of secrets before anything is shown, logged or stored as text.

Jobs carry environment overrides (``ANTHROPIC_API_KEY``, OAuth tokens) and runs
print stderr that may echo headers.  Everything resurgo *shows* — logs, the
dashboard, ``resurgo jobs``, stored stderr tails and reasons — passes through
these functions, so a secret never leaves the process that needs it.  One module for
every package (supervisor, dashboard, config, mock API), so a pattern added here
protects every view at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

REDACTED = "<redacted>"

#: Environment variable names whose values are secrets.
_SECRET_NAME = re.compile(
    r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION_KEY|PRIVATE)",
    re.IGNORECASE,
)
#: Names that match the pattern above but are not secrets (kept readable for debugging).
_NOT_SECRET = frozenset(
    {
        "ANTHROPIC_BASE_URL",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
        "DISABLE_TELEMETRY",
        "CLAUDE_CODE_MAX_RETRIES",
        "API_TIMEOUT_MS",
        "SSH_AUTH_SOCK",
        "XAUTHORITY",
        "IDEM_KEY",  # a batch line's identity, shown so users can match jobs to lines
        "SORT_KEY",
    }
)

_Repl = str | Callable[[re.Match[str]], str]

_TEXT_PATTERNS: tuple[tuple[re.Pattern[str], _Repl], ...] = (
    # Anthropic keys and OAuth tokens: sk-ant-api03-..., sk-ant-oat01-...
    (re.compile(r"sk-ant-[A-Za-z0-9_\-]{4,}"), "sk-ant-" + REDACTED),
    # other provider-style keys (sk-..., sk_live_...)
    (re.compile(r"\bsk[-_](?:live[-_]|proj[-_])?[A-Za-z0-9_\-]{16,}"), "sk-" + REDACTED),
    # Authorization / x-api-key / cookie headers in any quoting, as header lines or JSON
    (
        re.compile(
            r"""(?ix)
            (["']?(?:authorization|proxy-authorization|x-api-key|api[-_]?key|cookie|set-cookie)["']?
             \s*[:=]\s*["']?)
            (?:(bearer|basic|token)\s+)?
            [^\s"',;}]+
            """
        ),
        lambda m: m.group(1) + (m.group(2) + " " if m.group(2) else "") + REDACTED,
    ),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=\-]{8,}"), "Bearer " + REDACTED),
    # NAME=value for secret-looking names (env dumps, command lines)
    (
        re.compile(r"\b([A-Z0-9_]*(?:API_KEY|TOKEN|SECRET|PASSWORD|AUTH_TOKEN)[A-Z0-9_]*)=([^\s\"']+)"),
        r"\1=" + REDACTED,
    ),
    # GitHub / Slack / AWS style tokens
    (re.compile(r"\b(?:ghp|gho|ghs|ghu|github_pat)_[A-Za-z0-9_]{16,}"), REDACTED),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"), REDACTED),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), REDACTED),
)


def is_secret_name(name: str) -> bool:
    """Does an environment variable with this name hold a secret?"""
    return name.upper() not in _NOT_SECRET and bool(_SECRET_NAME.search(name))


def redact_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """A copy of ``env`` fit for display: secret values replaced, other values redacted inline."""
    if not env:
        return {}
    out: dict[str, str] = {}
    for k, v in env.items():
        out[k] = REDACTED if is_secret_name(k) and v else redact_text(str(v))
    return out


def redact_text(text: str | None) -> str:
    """``text`` with API keys, bearer tokens and auth headers replaced by ``<redacted>``."""
    if not text:
        return text or ""
    for pattern, repl in _TEXT_PATTERNS:
        text = pattern.sub(repl, text)
    return _COLON_PAIR.sub(r"\1\2" + REDACTED, text)


def redact_argv(argv: list[str] | tuple[str, ...]) -> list[str]:
    """A command line fit for logging: each argument redacted as text."""
    return [redact_text(a) for a in argv]


_SECRET_FLAG = re.compile(r"(?i)^--?[\w\-]*(key|token|secret|passw(or)?d|auth)[\w\-]*$")
#: Header-style ``name: value`` pairs whose name clearly holds a credential (JSON text, YAML),
#: kept narrow so messages such as "authentication_error: Invalid API key" stay readable.
_COLON_PAIR = re.compile(
    r"(?i)(\b(?:[\w\-]*api[_\-]?key|[\w\-]*token|[\w\-]*secret|[\w\-]*passw(?:or)?d))"
    r"(\"?\s*:\s*\"?)(?!\d+(?:\.\d+)?\b)(?!<redacted>)([^\s\"',;&]+)"
)


def redact_obj(value: Any) -> Any:
    """A deep copy of JSON-like ``value`` with secrets replaced, by key and by content.

    Keys that name a secret have their text values replaced (numbers survive, so
    usage counters such as ``input_tokens`` stay readable); every string is
    scanned like :func:`redact_text`; in argument lists the value after an
    ``--api-key``-like flag is replaced.
    """
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if isinstance(k, str) and is_secret_name(k) and isinstance(v, str | bytes) and v:
                out[k] = REDACTED
            else:
                out[k] = redact_obj(v)
        return out
    if isinstance(value, list | tuple):
        items = [redact_obj(v) for v in value]
        for i in range(1, len(items)):
            prev = value[i - 1]
            if isinstance(prev, str) and _SECRET_FLAG.match(prev) and isinstance(items[i], str):
                items[i] = REDACTED
        return items
    return value


#: the name the dashboard code uses
redact = redact_text

__all__ = ["REDACTED", "is_secret_name", "redact", "redact_argv", "redact_env", "redact_obj", "redact_text"]
