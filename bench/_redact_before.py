"""The redaction of resurgo 0.x before issue 15 (Python ``re``), kept as the benchmark's anchor.

A verbatim copy of the rules in ``src/resurgo/_redact.py`` as they were: the "before" of
``bench_redact.py`` and the implementation that the linearity gate in
``tests/test_redact_linear.py`` is shown to fail on.  Not used by resurgo itself.
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
        "APIKEYSOURCE",  # the CLI's init event: *which* variable held the key ("ANTHROPIC_API_KEY"), not the key
    }
)


def _is_secret_name(name: str) -> bool:
    return name.upper() not in _NOT_SECRET and bool(_SECRET_NAME.search(name))


_Repl = str | Callable[[re.Match[str]], str]


def _name_value(m: re.Match[str]) -> str:
    """``NAME=<redacted>``, keeping the quotes around the value as they were."""
    quote = m.group(2) or m.group(3) or m.group(4)
    if quote:
        return f"{m.group(1)}={quote}{REDACTED}{quote}"
    return f"{m.group(1)}={m.group(5) or ''}{REDACTED}"


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
    # NAME=value for secret-looking names (env dumps, command lines), the value bare or quoted
    # (``export X_TOKEN="v w"``: the whole quoted value goes).  Quotes are kept, also
    # JSON-escaped ones (``\"``), so JSON text stays JSON; inside a bare value, backslash
    # pairs and backslashes that start no JSON escape belong to the value.
    (
        re.compile(
            r"""\b([A-Z0-9_]*(?:API_KEY|TOKEN|SECRET|PASSWORD|PASSWD|AUTH_TOKEN)[A-Z0-9_]*)=
            (?!<redacted>)
            (?:(\\")[^"\\\n]*\\"          # JSON-escaped quotes: \"v w\"
              |(")[^"\n]*"                   # "v w"
              |(')[^'\n]*'                   # 'v w'
              |(\\?["']?)(?:[^\s"'\\]|\\\\|\\(?![\\"'/bfnrtu]))+  # bare (an unmatched quote is kept)
            )""",
            re.VERBOSE,
        ),
        _name_value,
    ),
    # credentials inside URLs: scheme://user:password@host (the user is kept, the password is not);
    # a bare userinfo long enough to be a token (https://<token>@github.com) goes as a whole
    (
        re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^\s/?#@:\"'<>\\]*):(?!<redacted>@)[^\s/?#\"'<>\\]*@"),
        r"\1\2:" + REDACTED + "@",
    ),
    (
        re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[A-Za-z0-9._~+\-]{16,}@"),
        r"\1" + REDACTED + "@",
    ),
    # GitHub / Slack / AWS style tokens
    (re.compile(r"\b(?:ghp|gho|ghs|ghu|github_pat)_[A-Za-z0-9_]{16,}"), REDACTED),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"), REDACTED),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), REDACTED),
)


def redact_text(text: str | None) -> str:
    """``text`` with API keys, bearer tokens and auth headers replaced by ``<redacted>``."""
    if not text:
        return text or ""
    for pattern, repl in _TEXT_PATTERNS:
        text = pattern.sub(repl, text)
    return _COLON_PAIR.sub(r"\1\2" + REDACTED, text)


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
            if isinstance(k, str) and _is_secret_name(k) and isinstance(v, str | bytes) and v:
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


#: Every text rule above needs one of these markers in the text (compared in lower case), so a
#: line without any is returned untouched after a few substring scans (``str in``, far faster
#: than one regex alternation) instead of a dozen regexes.  ``tokens"`` is not a marker: usage
#: counters (``"input_tokens":``) are in nearly every event and never secret.
_MARKER_WORDS = (
    "sk-", "sk_", "bearer", "auth", "api_key", "api-key", "apikey", "session_key", "sessionkey", "cookie",
    "secret", "passw", "credential", "private", "ghp_", "gho_", "ghs_", "ghu_", "github_pat_", "xox", "akia",
)  # fmt: skip
_MARKER_PATTERNS = (re.compile(r'token(?!s")'), re.compile(r"://[^\s/?#\"']*@"))


def might_hold_secret(text: str) -> bool:
    """Cheap pre-check: False means :func:`redact_text` would return ``text`` unchanged."""
    low = text.lower()
    return any(w in low for w in _MARKER_WORDS) or any(p.search(low) for p in _MARKER_PATTERNS)


_UNPARSED: Any = object()


def redact_json_line(line: str, *, parsed: Any = _UNPARSED) -> str:
    """One line of JSON (a stream-json event) with its secrets replaced, still valid JSON.

    The hot path of the event store: a line without any secret marker is
    returned as is (one regex scan); a line with one is parsed and redacted
    value by value (:func:`redact_obj`), so escaped quotes and newlines inside
    strings cannot derail a rule and break the JSON; a line that was not JSON
    is redacted as text.  A line whose redaction changes nothing keeps its
    exact bytes.  ``parsed`` is the line already decoded by the caller (None:
    not JSON), saving a second parse.  The pre-check covers every text rule; :func:`redact_obj`'s
    key-name rule is applied only to lines that carry a marker, so a value
    under a bare ``"key"`` with no secret-looking text stays as printed.
    """
    if not line or not might_hold_secret(line):
        return line
    import json

    obj = parsed
    try:
        if obj is _UNPARSED:
            obj = json.loads(line)
        if obj is None:
            return redact_text(line)
        clean = redact_obj(obj)
        if clean == obj:
            return line
        return json.dumps(clean, ensure_ascii=False, separators=(",", ":"))
    except (ValueError, RecursionError):  # not JSON, or nested too deep to walk: redact it as text
        return redact_text(line)
