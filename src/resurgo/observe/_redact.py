"""Redaction of secrets before anything reaches a person or a browser.

Jobs carry environment overrides, CLI arguments and raw CLI events, any of
which may hold an API key.  Rather than trusting each view to remember which
fields are sensitive, the dashboard passes every response through
:func:`redact_obj`, which works on two levels:

* by key: a mapping value whose key names a secret (``KEY``, ``TOKEN``,
  ``SECRET``, ``PASSWORD``, ``AUTH``, any case) is replaced when it is text;
  numbers and booleans are kept so usage counters such as ``input_tokens``
  survive;
* by content: any string is scanned for Anthropic keys (``sk-ant-...``),
  bearer credentials and ``NAME=value`` / ``NAME: value`` pairs whose name
  looks secret; and in argument lists the value after ``--api-key``-like flags.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"

_SECRET_NAME = re.compile(r"(?i)(key|token|secret|passw(or)?d|auth)")
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"sk-ant-[A-Za-z0-9_\-]+"), "sk-ant-" + REDACTED),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{4,}"), r"\1 " + REDACTED),
    # NAME=value (environment style, query strings): any secret-looking name.
    (
        re.compile(
            r"(?i)(\b[\w.\-]*(?:key|token|secret|passw(?:or)?d|auth)[\w.\-]*)"
            r"(\"?\s*=\s*\"?)(?!\d+(?:\.\d+)?\b)(?!\[redacted\])([^\s\"',;&]+)"
        ),
        r"\1\2" + REDACTED,
    ),
    # NAME: value (headers, YAML, JSON text): only names that clearly hold a credential, so
    # messages such as "authentication_error: Invalid API key" stay readable.
    (
        re.compile(
            r"(?i)(\b(?:x-api-key|[\w\-]*api[_\-]?key|authorization|[\w\-]*token|[\w\-]*secret"
            r"|[\w\-]*passw(?:or)?d))(\"?\s*:\s*\"?)(?!\d+(?:\.\d+)?\b)(?!\[redacted\])"
            r"(?!(?:bearer|basic)\s+\[redacted\])([^\s\"',;&]+)"
        ),
        r"\1\2" + REDACTED,
    ),
)
_SECRET_FLAG = re.compile(r"(?i)^--?[\w\-]*(key|token|secret|passw(or)?d|auth)[\w\-]*$")


def is_secret_name(name: str) -> bool:
    """Whether a mapping key or variable name suggests its value is a credential."""
    return bool(_SECRET_NAME.search(name))


def redact(text: str) -> str:
    """Replace every secret-looking part of ``text``; other text is left alone."""
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def redact_obj(value: Any) -> Any:
    """A deep copy of ``value`` (JSON-like data) with secrets replaced, by key and by content."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if isinstance(k, str) and is_secret_name(k) and isinstance(v, str | bytes):
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
