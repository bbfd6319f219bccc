"""Descriptions a user understands: the rule's own words plus the evidence that decided.

``ErrorClass.description`` is what dashboards, alerts and ``resurgo run`` show a
person, so "auth: credentials" is not enough: it should say what happened
("HTTP 401 from the API: invalid x-api-key — credentials missing, …", "the CLI was
killed by SIGKILL (signal 9) — …", "…; resets at 15:00 Europe/Warsaw (in 1h 12m)").
Only structured evidence (status, signal, exit code, errno, CLI fields, the
exception's class and first line, the API's own error message) is quoted, always
redacted and shortened, because descriptions are logged and stored.
"""

from __future__ import annotations

import math
import re
import signal as _signal
from datetime import UTC, datetime

from resurgo._redact import redact_text
from resurgo.classifier._facts import Node
from resurgo.classifier._resets import ResetSpec
from resurgo.classifier._rules import Rule
from resurgo.classifier._signature import redact

#: Longest description produced (rule text included); quoted evidence is shorter still.
MAX_DESCRIPTION = 240
_QUOTE = 100

# The "message" of an API error body ({"type":"error","error":{"type":…,"message":"…"}}).
# Bounded repeat of two disjoint branches: linear on Python's re.
_API_MESSAGE = re.compile(r'"message"\s*:\s*"((?:[^"\\]|\\.){1,200})"')
# The CLI's rendering of an API failure: "API Error: 400 Invalid request: …".
_CLI_API_ERROR = re.compile(r"API Error:\s*(?:\d{3}\s+)?([^\n{]{3,200})")
_SDK_PREFIXES = ("anthropic.", "claude_agent_sdk.", "claude_code_sdk.")


def _quote(text: str, limit: int = _QUOTE) -> str:
    """The first line (first sentence when long) of ``text``, secrets redacted, at most ``limit`` chars."""
    line = " ".join(text.strip().split("\n", 1)[0].split())
    if len(line) > limit:
        end = line.find(". ", 10)
        if 0 < end < limit:
            line = line[: end + 1]
    line = redact(redact_text(line))
    if len(line.strip(" .:;-0123456789")) < 3:
        return ""  # nothing but a number or punctuation: no information
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _signal_name(n: int) -> str:
    try:
        return _signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


def _api_message(text: str) -> str:
    """The API's own words about the failure: an error body's message, or the CLI's "API Error:" line."""
    head = text[:8192]
    m = _API_MESSAGE.search(head)
    if m is not None:
        return _quote(m.group(1).replace('\\"', '"'))
    m = _CLI_API_ERROR.search(head)
    return _quote(m.group(1)) if m is not None else ""


def _is_api(node: Node, from_cli: bool) -> bool:
    return from_cli or any(n.startswith(_SDK_PREFIXES) for n in node.names)


def _process_word(node: Node, from_cli: bool) -> str:
    return "the CLI" if _is_api(node, from_cli) else "the process"


def describe(rule: Rule, node: Node, *, from_cli: bool) -> str:
    """The verdict's description: what the decisive evidence was, then the rule's words."""
    base = rule.verdict.description
    if rule.verdict.type is None:
        return base
    lead = ""
    detail = ""
    status_said = False
    if rule.http_status and node.status is not None:
        lead = f"HTTP {node.status} from the {'API' if _is_api(node, from_cli) else 'server'}"
        detail = _api_message(node.text)
        status_said = True
    elif rule.signal and node.signal is not None:
        lead = f"{_process_word(node, from_cli)} was killed by {_signal_name(node.signal)} (signal {node.signal})"
    elif (rule.exit_code or rule.exit_nonzero) and node.exit_code is not None:
        lead = f"{_process_word(node, from_cli)} exited with code {node.exit_code}"
        if node.exit_code > 128 and node.exit_code - 128 < 65:
            lead += f" ({_signal_name(node.exit_code - 128)} by way of a shell)"
    elif rule.cli_error and node.cli_errors:
        lead = f"the CLI reported {', '.join(sorted(rule.cli_error & node.cli_errors))}"
    elif rule.subtype and node.subtype:
        lead = f"the run ended with {node.subtype}"
    elif rule.terminal_reason and node.terminal_reason:
        lead = f"the run ended ({node.terminal_reason})"
    if not lead and node.label:
        lead = node.label + (f" [{node.errno}]" if node.errno else "")
        if node.primary and not from_cli:
            detail = _quote(node.primary)
    if not detail and rule.matcher is not None:
        detail = _api_message(node.text)
    if node.status is not None and not status_said:
        lead = f"{lead} (HTTP {node.status})" if lead else f"HTTP {node.status}"
    head = f"{lead}: {detail}" if lead and detail else lead or detail
    out = f"{head} — {base}" if head else base
    return out if len(out) <= MAX_DESCRIPTION else out[: MAX_DESCRIPTION - 1] + "…"


def describe_fallback(node: Node, *, from_cli: bool) -> str:
    base = "no rule recognised this failure"
    parts = []
    if node.label:
        parts.append(node.label)
    elif node.status is not None:
        parts.append(f"HTTP {node.status}")
    elif node.exit_code is not None:
        parts.append(f"exit code {node.exit_code}")
    quote = _quote(node.primary) if node.primary else ""
    head = ": ".join(p for p in (" ".join(parts), quote) if p)
    out = f"{head} — {base}" if head else base
    return out if len(out) <= MAX_DESCRIPTION else out[: MAX_DESCRIPTION - 1] + "…"


def duration(seconds: float) -> str:
    """``45s``, ``12m``, ``1h 12m``, ``2d 3h``: how long a person will wait."""
    if not math.isfinite(seconds):
        return "an unknown time"
    s = max(0, int(seconds + 0.5))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m {s}s" if s and m < 10 else f"{m}m"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h {m}m" if m else f"{h}h"
    d, h = divmod(h, 24)
    return f"{d}d {h}h" if h else f"{d}d"


def wait_text(retry_after: float, source: str, reset: ResetSpec | None, now: float) -> str:
    """When to come back, in words: the reset time when one was given, else the delay."""
    if reset is not None and reset.hour is not None and source == reset.source:
        where = reset.zone or "local time"
        return f"resets at {reset.hour:02d}:{reset.minute:02d} {where} (in {duration(retry_after)})"
    absolute = reset is not None and reset.epoch is not None and source == reset.source
    if absolute or source.startswith(("rate_limit_event", "header anthropic-ratelimit")):
        try:
            at = datetime.fromtimestamp(now + retry_after, UTC)
        except (OverflowError, OSError, ValueError):  # a reset time beyond the calendar
            return f"retry in {duration(retry_after)}"
        when = at.strftime("%H:%M UTC") if retry_after < 20 * 3600 else at.strftime("%Y-%m-%d %H:%M UTC")
        what = "rate limit resets" if source.startswith("header") else "resets"
        return f"{what} at {when} (in {duration(retry_after)})"
    hint = " (retry-after header)" if source == "header retry-after" else ""
    return f"retry in {duration(retry_after)}{hint}"


__all__ = ["MAX_DESCRIPTION", "describe", "describe_fallback", "duration", "wait_text"]
