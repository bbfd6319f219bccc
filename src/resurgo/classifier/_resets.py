"""When to come back: ``retry_after`` from reset times, headers and messages.

All results are seconds relative to ``now`` (read from the injected clock by
the caller), never negative, so a retrier can sleep on them directly and tests
can pin time.  Message forms are the ones the Claude Code CLI prints:
"Claude AI usage limit reached|<epoch>", "resets 3pm (Europe/Warsaw)",
"resets 2:10pm"; a wall-clock time already past today means tomorrow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from email.utils import parsedate_to_datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Hand-written, linear patterns on capped text: safe on Python's re.
_EPOCH = re.compile(r"limit reached\|(\d{9,13})\b", re.IGNORECASE)
_CLOCK = re.compile(
    r"\bresets?(?:\s+at)?\s+(\d{1,2})(?::(\d{2}))?\s*([ap]\.?m\.?)?"
    r"(?:\s*\(([A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+){0,2})\))?",
    re.IGNORECASE,
)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
# "resets Feb 7, 11am (Asia/Seoul)", "resets on Dec 12 at 9:30 pm", "resets Feb 7" (midnight)
_DATE = re.compile(
    r"\bresets?(?:\s+on)?\s+(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]{0,6}\.?\s+(\d{1,2})(?:st|nd|rd|th)?"
    r"(?:,?\s*(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*([ap]\.?m\.?)?)?"
    r"(?:\s*\(([A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+){0,2})\))?",
    re.IGNORECASE,
)
_IN_SECONDS = re.compile(
    r"\b(?:try again|retry) (?:in|after) (\d{1,6}(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|mins?|minutes?)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class ResetSpec:
    """A reset time found in a message, kept unresolved so a cached verdict stays valid.

    ``epoch`` is absolute; ``hour``/``minute``/``zone`` are a wall-clock time
    resolved against "now" each time (``zone`` ``None`` = local time);
    ``seconds`` is relative to the moment of classification.
    """

    epoch: float | None = None
    hour: int | None = None
    minute: int = 0
    zone: str | None = None
    seconds: float | None = None
    source: str = ""
    month: int | None = None  # with ``day``: a calendar date ("resets Feb 7, 11am"), year inferred
    day: int | None = None

    def seconds_from(self, now: float) -> float | None:
        if self.epoch is not None:
            return max(0.0, self.epoch - now)
        if self.seconds is not None:
            return max(0.0, self.seconds)
        if self.hour is None:
            return None
        tz: tzinfo | None = None
        if self.zone:
            try:
                tz = ZoneInfo(self.zone)
            except (ZoneInfoNotFoundError, ValueError):
                tz = None
        if self.month is not None and self.day is not None:
            return self._date_seconds(now, tz)
        # no zone given: the user's local time, as the CLI printed it
        now_dt = datetime.fromtimestamp(now).astimezone() if tz is None else datetime.fromtimestamp(now, tz)
        day = now_dt.date()
        for add in (0, 1, 2):
            d = day + timedelta(days=add)
            if tz is not None:
                cand = datetime(d.year, d.month, d.day, self.hour, self.minute, tzinfo=tz)
            else:
                # naive wall time read as local time (no zone was given)
                cand = datetime(d.year, d.month, d.day, self.hour, self.minute).astimezone()
            delta = cand.timestamp() - now
            if delta > 0:
                return delta
        return None  # pragma: no cover - two days ahead is always in the future

    def _date_seconds(self, now: float, tz: tzinfo | None) -> float | None:
        """A month-day reset: this year's date, or next year's when this year's is long past.

        A date printed without a year is the next such date; one that passed only
        hours or a day ago (clock skew, a message read late) means "now", not a year away.
        """
        assert self.month is not None and self.day is not None and self.hour is not None
        now_dt = datetime.fromtimestamp(now).astimezone() if tz is None else datetime.fromtimestamp(now, tz)
        for year in (now_dt.year, now_dt.year + 1):
            try:
                if tz is not None:
                    cand = datetime(year, self.month, self.day, self.hour, self.minute, tzinfo=tz)
                else:
                    cand = datetime(year, self.month, self.day, self.hour, self.minute).astimezone()
            except ValueError:  # Feb 30, Feb 29 off a leap year
                continue
            delta = cand.timestamp() - now
            if delta > -2 * 86_400:
                return max(0.0, delta)
        return None


def parse_message_reset(text: str) -> ResetSpec | None:
    """Find a reset time in a message (first match wins); ``None`` when there is none."""
    if not text:
        return None
    m = _EPOCH.search(text)
    if m:
        v = float(m.group(1))
        if v > 1e11:  # milliseconds
            v /= 1000.0
        return ResetSpec(epoch=v, source=f"message epoch {m.group(1)}")
    for m in _DATE.finditer(text):
        mon, day_s, hour_s, minute_s, ampm, zone = m.groups()
        day = int(day_s)
        hour = int(hour_s) if hour_s else 0
        minute = int(minute_s or 0)
        if ampm:
            if not 1 <= hour <= 12:
                continue
            hour = (hour % 12) + (12 if ampm.lower().startswith("p") else 0)
        if not (1 <= day <= 31 and 0 <= hour <= 23 and 0 <= minute <= 59):
            continue
        month = _MONTHS.index(mon.lower()[:3]) + 1
        return ResetSpec(
            hour=hour, minute=minute, zone=zone, month=month, day=day, source=f"message {m.group(0).strip()!r}"
        )
    for m in _CLOCK.finditer(text):
        hour_s, minute_s, ampm, zone = m.groups()
        if not ampm and minute_s is None:
            continue  # "resets 3 times" is not a time
        hour = int(hour_s)
        minute = int(minute_s or 0)
        if ampm:
            if not 1 <= hour <= 12:
                continue
            pm = ampm.lower().startswith("p")
            hour = (hour % 12) + (12 if pm else 0)
        if not (0 <= hour <= 23 and 0 <= minute <= 59):
            continue
        return ResetSpec(hour=hour, minute=minute, zone=zone, source=f"message {m.group(0).strip()!r}")
    m = _IN_SECONDS.search(text)
    if m:
        n = float(m.group(1))
        if m.group(2).lower().startswith("m"):
            n *= 60.0
        return ResetSpec(seconds=n, source=f"message {m.group(0)!r}")
    return None


def _header(headers: Any, name: str) -> str | None:
    try:
        v = headers.get(name)
    except Exception:
        return None
    return v if isinstance(v, str) else None


def retry_after_header(headers: Any, now: float) -> float | None:
    """``retry-after`` as seconds (delta-seconds or an HTTP date); ``None`` if absent/garbled."""
    v = _header(headers, "retry-after")
    if v is None:
        return None
    v = v.strip()
    try:
        secs = float(v)
        if secs != secs or secs in (float("inf"), float("-inf")):
            return None
        return max(0.0, secs)
    except ValueError:
        pass
    try:
        dt = parsedate_to_datetime(v)
    except (TypeError, ValueError, IndexError):
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return max(0.0, dt.timestamp() - now)


def _rfc3339(v: str) -> float | None:
    try:
        dt = datetime.fromisoformat(v.strip().replace("z", "Z"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def ratelimit_reset(headers: Any, now: float) -> float | None:
    """Seconds until the exhausted ``anthropic-ratelimit-*-reset`` (else the earliest one)."""
    try:
        items = list(headers.items())
    except Exception:
        return None
    resets: dict[str, float] = {}
    remaining: dict[str, str] = {}
    for k, v in items:
        if not isinstance(k, str) or not isinstance(v, str):
            continue
        k = k.lower()
        if not k.startswith("anthropic-ratelimit-"):
            continue
        kind = k[len("anthropic-ratelimit-") :]
        if kind.endswith("-reset"):
            t = _rfc3339(v)
            if t is not None:
                resets[kind[: -len("-reset")]] = t
        elif kind.endswith("-remaining"):
            remaining[kind[: -len("-remaining")]] = v.strip()
    if not resets:
        return None
    exhausted = [t for kind, t in resets.items() if remaining.get(kind) == "0"]
    t = max(exhausted) if exhausted else min(resets.values())
    return max(0.0, t - now)


def compute_retry_after(
    *,
    now: float,
    message_reset: ResetSpec | None = None,
    resets_at: float | None = None,
    headers: Mapping[str, str] | Any = None,
) -> tuple[float | None, str]:
    """Seconds to wait and where that came from, in the spec's order of precedence."""
    if message_reset is not None:
        s = message_reset.seconds_from(now)
        if s is not None:
            return s, message_reset.source
    if resets_at is not None:
        return max(0.0, resets_at - now), "rate_limit_event resetsAt"
    if headers:
        s = retry_after_header(headers, now)
        if s is not None:
            return s, "header retry-after"
        s = ratelimit_reset(headers, now)
        if s is not None:
            return s, "header anthropic-ratelimit-*-reset"
    return None, ""


__all__ = [
    "ResetSpec",
    "compute_retry_after",
    "parse_message_reset",
    "ratelimit_reset",
    "retry_after_header",
]
