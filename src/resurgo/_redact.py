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
from urllib.parse import urlsplit

import re2

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

_R = REDACTED.encode()
_Spans = list[tuple[int, int]]
#: a replacement: fixed bytes, or built from the text and the match's group spans
_Repl = bytes | Callable[[bytes, _Spans], bytes]

#: RE2 (google-re2): a DFA that reads every byte once per search, whatever the pattern, so no
#: input can make a rule backtrack.  Python's ``re`` took quadratic time here: ``[\w\-]*token``
#: was rescanned from every word boundary of ``a-a-a-…`` (16 KB: 10 s, 32 KB: 38 s), on the
#: event loop.  Rules run on the UTF-8 bytes of the text (encoded once per text, no offset
#: mapping per match).  RE2 has no look-arounds: what the ``re`` rules checked with them is
#: part of the pattern now: the number rule of :data:`_COLON_PAIR`, and a value that is
#: already ``<redacted>`` (an alternative tried first, whose match is kept as it is, so the
#: next search starts after it, as the old look-ahead did, and nothing is scanned twice).
_OPTIONS: Any = re2.Options()
_OPTIONS.log_errors = False


def _rx(pattern: str) -> Any:
    return re2.compile(pattern.encode(), _OPTIONS)


def _g(data: bytes, spans: _Spans, i: int) -> bytes:
    a, b = spans[i]
    return b"" if a < 0 else data[a:b]


def _name_value(d: bytes, sp: _Spans) -> bytes:
    """``NAME=<redacted>``, keeping the quotes around the value as they were."""
    if sp[2][0] >= 0:  # already redacted
        return _g(d, sp, 0)
    quote = _g(d, sp, 3) or _g(d, sp, 4) or _g(d, sp, 5)
    if quote:
        return _g(d, sp, 1) + b"=" + quote + _R + quote
    # a bare value; ``\`` then a space ends it: the space is not the value's
    return _g(d, sp, 1) + b"=" + _g(d, sp, 6) + _R + _g(d, sp, 7)[1:]


def _header(d: bytes, sp: _Spans) -> bytes:
    scheme = _g(d, sp, 2)
    return _g(d, sp, 1) + (scheme + b" " if scheme else b"") + _R


def _url_password(d: bytes, sp: _Spans) -> bytes:
    return _g(d, sp, 1) + _g(d, sp, 2) + b":" + _R + b"@"


def _url_token(d: bytes, sp: _Spans) -> bytes:
    return _g(d, sp, 1) + _R + b"@"


def _colon_pair(d: bytes, sp: _Spans) -> bytes:
    return _g(d, sp, 0) if sp[3][0] >= 0 else _g(d, sp, 1) + _g(d, sp, 2) + _R


#: Every value pattern ends in an unbounded run of value characters (consumed by the match, so
#: never scanned twice) or in a closing quote; a search that looks ahead for a closing quote
#: that never comes stops at the next quote of that kind or the end of the line, so the text
#: after one rule start is read a bounded number of times.  Names are found by their keyword,
#: not by a ``[\w-]*`` prefix: the prefix is kept as it is anyway, and scanning for it was the
#: quadratic part.
_TEXT_PATTERNS: tuple[tuple[Any, _Repl, str | None], ...] = (
    # Anthropic keys and OAuth tokens: sk-ant-api03-..., sk-ant-oat01-...
    (_rx(r"sk-ant-[A-Za-z0-9_\-]{4,}"), b"sk-ant-" + _R, None),
    # other provider-style keys (sk-..., sk_live_...)
    (_rx(r"\bsk[-_](?:live[-_]|proj[-_])?[A-Za-z0-9_\-]{16,}"), b"sk-" + _R, "sk[-_]"),
    # Authorization / x-api-key / cookie headers in any quoting, as header lines or JSON
    (
        _rx(
            r"(?i)([\"']?(?:authorization|proxy-authorization|x-api-key|api[-_]?key|cookie|set-cookie)[\"']?"
            r"\s*[:=]\s*[\"']?)(?:(bearer|basic|token)\s+)?[^\s\"',;}]+"
        ),
        _header,
        None,
    ),
    (_rx(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=\-]{8,}"), b"Bearer " + _R, "(?i)bearer"),
    # NAME=value for secret-looking names (env dumps, command lines), the value bare or quoted
    # (``export X_TOKEN="v w"``: the whole quoted value goes).  Quotes are kept, also
    # JSON-escaped ones (``\"``), so JSON text stays JSON; inside a bare value, backslash
    # pairs and backslashes that start no JSON escape belong to the value.
    (
        _rx(
            r"\b([A-Z0-9_]*(?:API_KEY|TOKEN|SECRET|PASSWORD|PASSWD|AUTH_TOKEN)[A-Z0-9_]*)="
            r"(?:(<redacted>)"  # already redacted: kept, and the search goes on after it
            r"|(\\\")[^\"\\\n]*\\\""  # JSON-escaped quotes: \"v w\"
            r"|(\")[^\"\n]*\""  # "v w"
            r"|(')[^'\n]*'"  # 'v w'
            # bare (an unmatched quote is kept); a backslash that ends the value belongs to it
            r"|(\\?[\"']?)(?:[^\s\"'\\]|\\\\|\\[^\\\"'/bfnrtu\s])+(\\\s|\\$)?)"
        ),
        _name_value,
        "API_KEY|TOKEN|SECRET|PASSW",
    ),
    # credentials inside URLs: scheme://user:password@host (the user is kept, the password is not);
    # a bare userinfo long enough to be a token (https://<token>@github.com) goes as a whole
    (_rx(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^\s/?#@:\"'<>\\]*):[^\s/?#\"'<>\\]*@"), _url_password, "://"),
    (_rx(r"(?i)\b([a-z][a-z0-9+.\-]*://)[A-Za-z0-9._~+\-]{16,}@"), _url_token, "://"),
    # GitHub / Slack / AWS style tokens
    (_rx(r"\b(?:ghp|gho|ghs|ghu|github_pat)_[A-Za-z0-9_]{16,}"), _R, "gh[opsu]_|github_pat_"),
    (_rx(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"), _R, "xox[abprs]-"),
    (_rx(r"\bAKIA[0-9A-Z]{16}\b"), _R, "AKIA"),
)

#: Header-style ``name: value`` pairs whose name clearly holds a credential (JSON text, YAML),
#: kept narrow so messages such as "authentication_error: Invalid API key" stay readable.  A
#: value that is a number (``"input_tokens": 5``, ``token: 3-4``: a digit run followed by a
#: non-word character) is kept; ``12ab`` is not a number.
_COLON_PAIR: Any = _rx(
    r"(?i)(api[_\-]?key|token|secret|passw(?:or)?d)(\"?\s*:\s*\"?)"
    r"(?:(<redacted>)|((?:[^\s\"',;&0-9]|[0-9]+(?:[a-z_]|[^\x00-\x7f]))[^\s\"',;&]*))"
)


_RULES = tuple(r[0] for r in _TEXT_PATTERNS)


def _scoped(pattern: bytes) -> bytes:
    """``(?i)x`` as ``(?i:x)``, so that patterns can be joined without their flags leaking."""
    return b"(?i:" + pattern[4:] + b")" if pattern.startswith(b"(?i)") else b"(?:" + pattern + b")"


#: Does any rule match at all?  One scan instead of eleven for the text that needs no change;
#: without capture groups, so that RE2 never extracts submatches over a long match (its DFA
#: alone runs at hundreds of MB/s, submatch extraction at a few).
_ANY: Any = re2.compile(
    re.sub(rb"(?<!\\)\((?!\?)", b"(?:", b"|".join(_scoped(p.pattern) for p in (*_RULES, _COLON_PAIR))), _OPTIONS
)
#: A literal each rule needs (None: ``_ANY`` is filter enough): rules whose ``\b`` makes RE2's
#: DFA slower (~70 MB/s instead of ~700) do not run over a text that cannot match them.
_NEEDS: tuple[Any | None, ...] = tuple(None if r[2] is None else _rx(r[2]) for r in _TEXT_PATTERNS)


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
    """``text`` with API keys, bearer tokens and auth headers replaced by ``<redacted>``.

    Linear in the length of ``text``: one RE2 scan for all the rules at once (most text
    matches none and is returned as is), then each rule that can match once, on the UTF-8
    bytes, every search starting where the previous match ended.
    """
    if not text:
        return text or ""
    data = text.encode("utf-8", "surrogatepass")
    if _ANY.search(data) is None:  # one DFA pass; most text (even with marker words) stops here
        return text
    out = data
    for (pattern, repl, _), needs in zip(_TEXT_PATTERNS, _NEEDS, strict=True):
        if needs is None or needs.search(out) is not None:
            out = _sub(pattern, repl, out)
    out = _sub(_COLON_PAIR, _colon_pair, out)
    return text if out == data else out.decode("utf-8", "surrogatepass")


def _sub(pattern: Any, repl: _Repl, data: bytes) -> bytes:
    """``pattern.sub(repl, data)`` on the binding's fast path; every search starts where the last ended."""
    parts: list[bytes] = []
    done = pos = 0
    end = len(data)
    while pos <= end:
        spans = _search(pattern, data, pos, end)
        if spans is None:
            break
        m0, m1 = spans[0]
        parts.append(data[done:m0])
        parts.append(repl if isinstance(repl, bytes) else repl(data, spans))
        done = m1
        pos = m1 if m1 > m0 else m1 + 1
    if not parts:
        return data
    parts.append(data[done:])
    return b"".join(parts)


def _search_public(pattern: Any, data: bytes, pos: int, end: int) -> _Spans | None:
    m = pattern.search(data, pos, end)
    return None if m is None else [m.span(i) for i in range(pattern.groups + 1)]


def _search_direct(pattern: Any, data: bytes, pos: int, end: int) -> _Spans | None:
    # google-re2's own ``search`` builds a generator and a match object whose every group
    # access asks C++ for the group count: 15 us a match, 1 MB/s on text that is all matches.
    spans: _Spans = pattern._regexp.Match(_UNANCHORED, data, pos, end)
    return None if spans[0][0] < 0 else spans


try:  # the binding's internals (one C++ call a match); the public API if they ever change
    _UNANCHORED: Any = re2._re2.RE2.Anchor.UNANCHORED
    _probe = _rx(r"(a)(x)?")
    if _search_direct(_probe, b"-a", 0, 2) != [(1, 2), (1, 2), (-1, -1)]:
        raise AttributeError("unexpected spans")
    _search = _search_direct
except AttributeError:  # pragma: no cover
    _search = _search_public


def redact_argv(argv: list[str] | tuple[str, ...]) -> list[str]:
    """A command line fit for logging: each argument redacted as text."""
    return [redact_text(a) for a in argv]


#: ``--api-key``-like flags; a flag is short, so longer strings are not looked at (the old
#: ``^--?[\w-]*(key|…)[\w-]*$`` backtracked quadratically on a long ``--keykeykey…``).
_FLAG_SHAPE = re.compile(r"--?[\w\-]{1,120}")
_FLAG_WORD = re.compile(r"(?i)key|token|secret|passw(?:or)?d|auth")


def _is_secret_flag(arg: str) -> bool:
    return len(arg) <= 122 and _FLAG_SHAPE.fullmatch(arg) is not None and _FLAG_WORD.search(arg) is not None


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
            if isinstance(prev, str) and _is_secret_flag(prev) and isinstance(items[i], str):
                items[i] = REDACTED
        return items
    return value


#: Every text rule above needs one of these markers in the text, so a text without any is
#: returned untouched after one RE2 scan instead of a dozen.  ``tokens"`` is not a marker:
#: usage counters (``"input_tokens":``) are in nearly every event and never secret.
_MARKER_WORDS = (
    "sk-", "sk_", "bearer", "auth", "api_key", "api-key", "apikey", "session_key", "sessionkey", "cookie",
    "secret", "passw", "credential", "private", "ghp_", "gho_", "ghs_", "ghu_", "github_pat_", "xox", "akia",
)  # fmt: skip
_MARKERS: Any = _rx(
    "(?i)" + "|".join(re.escape(w) for w in _MARKER_WORDS) + r"|token(?:$|[^s]|s$|s[^\"])" + r"|://[^\s/?#\"']*@"
)


def might_hold_secret(text: str) -> bool:
    """Cheap pre-check: False means :func:`redact_text` would return ``text`` unchanged."""
    return _MARKERS.search(text.encode("utf-8", "surrogatepass")) is not None


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


def redact_url(url: str) -> str:
    """A URL fit for logs: ``scheme://host:port`` kept, everything else shown as ``<redacted>``.

    Userinfo goes (it is the password of ``redis://:pw@host``); a non-empty
    path or query becomes ``/<redacted>`` because for webhooks (Slack,
    Discord) the path *is* the secret.  Never raises, whatever the input: it
    runs inside error handlers.
    """
    try:
        text = str(url).strip()
        if "://" not in text:
            return REDACTED
        p = urlsplit(text)
        scheme = p.scheme
        if not scheme or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*", scheme):
            return REDACTED
        hostport = p.netloc.rpartition("@")[2]
        if not re.fullmatch(r"[A-Za-z0-9._\-]*(?::\d{0,5})?|\[[0-9A-Fa-f:.%A-Za-z]*\](?::\d{0,5})?", hostport):
            hostport = REDACTED  # not a plain host[:port]: show nothing rather than something odd
        rest = "/" + REDACTED if (p.path not in ("", "/") or p.query or p.fragment) else ""
        return f"{scheme.lower()}://{hostport}{rest}"
    except Exception:
        return REDACTED


#: the name the dashboard code uses
redact = redact_text

__all__ = [
    "REDACTED",
    "is_secret_name",
    "might_hold_secret",
    "redact",
    "redact_argv",
    "redact_env",
    "redact_json_line",
    "redact_obj",
    "redact_text",
    "redact_url",
]
