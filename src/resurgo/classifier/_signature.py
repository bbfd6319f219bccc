"""Signatures: the stable identity of "the same error" across jobs and time.

Learned rules, statistics and priority all count occurrences per signature,
so volatile parts of a message (request ids, uuids, paths, numbers, times) are
replaced by placeholders: "req_011CS… timed out after 30s" and "req_02AB…
timed out after 31s" are one problem, not two.  Secrets are redacted first,
because signatures are stored and shown on dashboards.
"""

from __future__ import annotations

import hashlib
import re

from resurgo._redact import redact_text as redact

# Applied in order; every pattern is linear (no nested quantifiers) and runs on a
# short prefix of the message only.
_SUBS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bsk-ant-[A-Za-z0-9_\-]+|\bsk-[A-Za-z0-9_\-]{16,}"), "<secret>"),
    (re.compile(r"(?i)\b(bearer|x-api-key:?|api[_-]?key[=:])\s*\S+"), r"\1 <secret>"),
    (re.compile(r"https?://\S+"), "<url>"),
    (
        re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
        "<uuid>",
    ),
    (
        re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"),
        "<ts>",
    ),
    (re.compile(r"(?i)\b\d{1,2}:\d{2}(?::\d{2})?\s?(?:[ap]m)?"), "<time>"),
    (re.compile(r"(?i)\b\d{1,2}\s?[ap]m\b"), "<time>"),
    (re.compile(r"(?:[A-Za-z]:\\|~?/)[\w.\-@+~]+(?:[/\\][\w.\-@+~]+)+[/\\]?"), "<path>"),
    (re.compile(r"\b(?:req|msg|toolu|srvtoolu|sess|session|org|user|call|file|batch|chatcmpl)_[A-Za-z0-9]+"), "<id>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"\b(?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{12,}\b"), "<id>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
)

#: Characters of a message that go into its signature.
SIGNATURE_TEXT = 300
MAX_SIGNATURE = 200


def normalise(message: str) -> str:
    """Replace volatile parts of a message with placeholders (lower-cased, whitespace collapsed)."""
    s = message[:SIGNATURE_TEXT]
    for pat, rep in _SUBS:
        s = pat.sub(rep, s)
    return s.strip().lower()


#: Signatures remembered by (label, message prefix); the same failures recur, and
#: fourteen substitutions per message were a large share of classification time.
_CACHE: dict[tuple[str, str], str] = {}
_CACHE_SIZE = 4096


def make_signature(label: str, message: str) -> str:
    """``"<label>:<normalised message>"``, bounded in length; equal for "the same" error."""
    key = (label, message[:SIGNATURE_TEXT])
    sig = _CACHE.get(key)
    if sig is not None:
        return sig
    sig = f"{label or '-'}:{normalise(key[1])}"
    if len(sig) > MAX_SIGNATURE:
        digest = hashlib.blake2b(sig.encode("utf-8", "replace"), digest_size=6).hexdigest()
        sig = f"{sig[: MAX_SIGNATURE - 14]}…#{digest}"
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.clear()  # bounded; recurring signatures re-enter at once
    _CACHE[key] = sig
    return sig


__all__ = ["MAX_SIGNATURE", "SIGNATURE_TEXT", "make_signature", "normalise", "redact"]
