"""Rules as data: what a rule is, how packs and user files are loaded and validated.

Rules live in TOML (the shipped packs under ``packs/`` and a user's own file)
so that knowledge about a new failure mode is a reviewed data change, not a
code change, and so users can teach the classifier about their own stack
without forking it.  Every rule is validated on load: an unknown key, a bad
type name or a bad/unsafe regular expression is an error naming the rule.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from importlib import resources
from pathlib import Path
from typing import Any

from resurgo.classifier._patterns import Pattern, PatternError, combine_patterns, compile_pattern
from resurgo.classifier._types import (
    DEFAULT_RETRYABLE,
    DEFAULT_SEVERITY,
    DEFAULT_STRATEGY,
    SEVERITY_PRIORITY,
    ErrorClass,
    ErrorType,
    Severity,
    Strategy,
)


class Tier(IntEnum):
    """Precedence of evidence, most specific first (spec: "Deciding when signals disagree").

    ``killed_by`` (tier 1), learned rules (8) and the fallback (9) are built
    into the engine; rule packs fill the tiers in between.  ``EXIT`` is the
    generic "the process failed and nothing said why" evidence, which must lose
    to message patterns (an unknown option exits 1 but is a validation error).
    ``SEMANTIC`` is the vocabulary-family tier (``_semantic.py``): built into the
    engine, after every explicit message rule and before ``EXIT``.
    """

    KILLED_BY = 1
    SPECIFIC = 2
    STATUS = 3
    CLI = 4
    EXCEPTION = 5
    PROCESS = 6
    MESSAGE = 7
    SEMANTIC = 8
    EXIT = 9
    LEARNED = 10
    FALLBACK = 11


_TIER_NAMES = {
    "specific": Tier.SPECIFIC,
    "status": Tier.STATUS,
    "cli": Tier.CLI,
    "exception": Tier.EXCEPTION,
    "process": Tier.PROCESS,
    "message": Tier.MESSAGE,
    "exit": Tier.EXIT,
}

#: Default confidence per tier: how sure a verdict from that kind of evidence is.
TIER_CONFIDENCE = {
    Tier.KILLED_BY: 1.0,
    Tier.SPECIFIC: 0.95,
    Tier.STATUS: 0.9,
    Tier.CLI: 0.85,
    Tier.EXCEPTION: 0.85,
    Tier.PROCESS: 0.8,
    Tier.MESSAGE: 0.7,
    Tier.SEMANTIC: 0.5,
    Tier.EXIT: 0.55,
    Tier.LEARNED: 0.6,
    Tier.FALLBACK: 0.2,
}

_CONDITION_KEYS = (
    "exception",
    "message",
    "http_status",
    "errno",
    "cli_error",
    "subtype",
    "terminal_reason",
    "signal",
    "exit_code",
    "result_error",
    "stream_incomplete",
)
_YIELD_KEYS = ("type", "retryable", "severity", "strategy", "category", "description", "confidence")
_META_KEYS = ("id", "tier", "weight")
_ALLOWED = frozenset(_CONDITION_KEYS + _YIELD_KEYS + _META_KEYS)

#: ``type = "none"`` in a rule means "not an error" (cancellation, a clean exit).
NOT_AN_ERROR = "none"


class RuleError(ValueError):
    """A rule file or rule is invalid; the message names the file and the rule."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule: conditions that must all hold, and the verdict they yield.

    ``weight`` breaks ties between rules of the same tier (higher wins); the
    tier itself always dominates, so a heavy message rule never beats an HTTP
    status.
    """

    id: str
    tier: Tier
    verdict: ErrorClass
    weight: int = 50
    exception: frozenset[str] = frozenset()
    exception_bare: frozenset[str] = frozenset()
    patterns: tuple[Pattern, ...] = ()
    matcher: Pattern | None = None  # all of ``patterns`` as one alternation: one scan per rule
    http_status: frozenset[int] = frozenset()
    errno: frozenset[str] = frozenset()
    cli_error: frozenset[str] = frozenset()
    subtype: frozenset[str] = frozenset()
    terminal_reason: frozenset[str] = frozenset()
    signal: frozenset[int] = frozenset()
    exit_code: frozenset[int] = frozenset()
    exit_nonzero: bool = False
    result_error: bool | None = None
    stream_incomplete: bool | None = None
    source: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_not_an_error(self) -> bool:
        return self.verdict.type is None


def _as_list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, list | tuple) else [v]


def _ints(rule_id: str, key: str, v: Any, *, allow_ranges: bool = False) -> tuple[frozenset[int], bool]:
    out: set[int] = set()
    nonzero = False
    for item in _as_list(v):
        if isinstance(item, bool):
            raise RuleError(f"rule {rule_id!r}: {key} values must be integers, got {item!r}")
        if isinstance(item, int):
            out.add(item)
        elif allow_ranges and isinstance(item, str) and re.fullmatch(r"[1-5][xX]{2}", item):
            base = int(item[0]) * 100
            out.update(range(base, base + 100))
        elif key == "exit_code" and item == "nonzero":
            nonzero = True
        else:
            hint = ' or "4xx"-style ranges' if allow_ranges else ' or "nonzero"' if key == "exit_code" else ""
            raise RuleError(f"rule {rule_id!r}: {key} must be integers{hint}, got {item!r}")
    return frozenset(out), nonzero


def _strs(rule_id: str, key: str, v: Any) -> frozenset[str]:
    items = _as_list(v)
    if not items or not all(isinstance(i, str) and i for i in items):
        raise RuleError(f"rule {rule_id!r}: {key} must be a non-empty string or list of strings")
    return frozenset(items)


def compile_rule(d: Mapping[str, Any], *, source: str = "", use_re2: bool | None = None) -> Rule:
    """Validate and compile one rule table; errors name the rule (and the source file)."""
    if not isinstance(d, Mapping):
        raise RuleError(f"{source}: every [[rule]] must be a table")
    rid = d.get("id")
    if not isinstance(rid, str) or not rid.strip():
        raise RuleError(f"{source}: a rule has no 'id' (every rule needs a unique string id)")
    unknown = sorted(set(d) - _ALLOWED)
    if unknown:
        raise RuleError(f"rule {rid!r}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_ALLOWED))}")
    if not any(k in d for k in _CONDITION_KEYS):
        raise RuleError(f"rule {rid!r}: has no condition (one of {', '.join(_CONDITION_KEYS)})")

    # -- the verdict ------------------------------------------------------------------
    tname = d.get("type")
    if not isinstance(tname, str):
        raise RuleError(f"rule {rid!r}: 'type' is required (one of {_type_names()})")
    kw: dict[str, Any] = {}
    try:
        etype = None if tname == NOT_AN_ERROR else ErrorType(tname)
        if "severity" in d:
            kw["severity"] = Severity(d["severity"])
        if "strategy" in d:
            kw["strategy"] = Strategy(d["strategy"])
    except ValueError as e:
        raise RuleError(f"rule {rid!r}: {e}") from None
    for key, typ in (("retryable", bool), ("category", str), ("description", str)):
        if key in d and not isinstance(d[key], typ):
            raise RuleError(f"rule {rid!r}: {key!r} must be a {typ.__name__}")
    weight = d.get("weight", 50)
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 1000:
        raise RuleError(f"rule {rid!r}: 'weight' must be an integer from 0 to 1000")

    conds: dict[str, Any] = {}
    if "exception" in d:
        names = _strs(rid, "exception", d["exception"])
        conds["exception"] = names
        conds["exception_bare"] = frozenset(n.rsplit(".", 1)[-1] for n in names if "." in n)
    if "message" in d:
        pats = _strs(rid, "message", d["message"])
        try:
            plist = _as_list(d["message"])
            conds["patterns"] = tuple(compile_pattern(p, rule_id=rid, use_re2=use_re2) for p in plist)
            conds["matcher"] = (
                conds["patterns"][0] if len(plist) == 1 else combine_patterns(plist, rule_id=rid, use_re2=use_re2)
            )
        except PatternError as e:
            raise RuleError(f"{source + ': ' if source else ''}{e}") from None
        del pats
    if "http_status" in d:
        conds["http_status"] = _ints(rid, "http_status", d["http_status"], allow_ranges=True)[0]
    if "errno" in d:
        conds["errno"] = frozenset(s.upper() for s in _strs(rid, "errno", d["errno"]))
    for key in ("cli_error", "subtype", "terminal_reason"):
        if key in d:
            conds[key] = _strs(rid, key, d[key])
    if "signal" in d:
        conds["signal"] = _ints(rid, "signal", d["signal"])[0]
    if "exit_code" in d:
        codes, nonzero = _ints(rid, "exit_code", d["exit_code"])
        conds["exit_code"] = codes
        conds["exit_nonzero"] = nonzero
    for key in ("result_error", "stream_incomplete"):
        if key in d:
            if not isinstance(d[key], bool):
                raise RuleError(f"rule {rid!r}: {key!r} must be true or false")
            conds[key] = d[key]

    tier_name = d.get("tier")
    if tier_name is None:
        tier = _infer_tier(d)
    elif tier_name in _TIER_NAMES:
        tier = _TIER_NAMES[tier_name]
    else:
        raise RuleError(f"rule {rid!r}: unknown tier {tier_name!r}; one of {', '.join(_TIER_NAMES)}")

    conf = d.get("confidence", TIER_CONFIDENCE[tier])
    if isinstance(conf, bool) or not isinstance(conf, int | float) or not 0.0 <= conf <= 1.0:
        raise RuleError(f"rule {rid!r}: 'confidence' must be a number from 0 to 1")
    category = d.get("category") or rid.rsplit(".", 1)[-1]
    description = d.get("description") or _default_description(category, tname if etype is not None else None)
    if etype is None:
        verdict = ErrorClass.not_an_error(category=category, description=description, rule=rid, confidence=float(conf))
    else:
        severity = kw.get("severity", DEFAULT_SEVERITY[etype])
        retryable = d.get("retryable", DEFAULT_RETRYABLE[etype])
        strategy = kw.get("strategy", DEFAULT_STRATEGY[etype])
        verdict = ErrorClass(
            type=etype,
            severity=severity,
            category=category,
            description=description,
            retryable=bool(retryable),
            retry_after=None,
            strategy=strategy,
            priority=SEVERITY_PRIORITY[severity],
            rule=rid,
            confidence=float(conf),
        )
    return Rule(id=rid, tier=tier, verdict=verdict, weight=weight, source=source, raw=dict(d), **conds)


#: What a rule without its own description says, by category: words a user understands.
_CATEGORY_TEXT = {
    "authentication_failed": "authentication failed: the credentials were rejected",
    "credentials": "credentials missing, invalid, expired or without permission",
    "billing": "credits or billing exhausted: retrying will not help until someone pays",
    "rate_limit": "rate limited: wait for the reset",
    "invalid_request": "the request is invalid and will fail again unchanged",
    "client_error": "the server rejected the request",
    "timeout": "the request timed out",
    "overloaded": "the service is overloaded; back off and retry",
    "server_error": "the server failed on its side; retry",
    "bad_gateway": "a gateway or proxy could not reach the server; retry",
    "conflict": "the request conflicted with another one; retry",
    "connection": "the connection could not be made or broke",
    "memory": "memory exhausted; clean up and retry",
    "interrupted": "the call was interrupted",
    "disk_full": "disk full: retrying will fail until space is freed",
    "file_descriptors": "out of file descriptors; clean up and retry",
    "binary_missing": "the program is missing or not executable",
    "programming_error": "a bug in the calling code; retrying runs the same bug again",
}


def _default_description(category: str, type_name: str | None) -> str:
    known = _CATEGORY_TEXT.get(category)
    if known:
        return known
    words = category.replace("_", " ")
    return f"{type_name} error: {words}" if type_name else f"not an error: {words}"


def _type_names() -> str:
    return ", ".join([t.value for t in ErrorType] + [NOT_AN_ERROR])


def _infer_tier(d: Mapping[str, Any]) -> Tier:
    """The tier a rule's strongest condition belongs to, when the rule does not say."""
    if "http_status" in d:
        return Tier.STATUS
    if any(k in d for k in ("cli_error", "subtype", "terminal_reason")):
        return Tier.CLI
    if "exception" in d or "errno" in d:
        return Tier.EXCEPTION
    if "signal" in d or "exit_code" in d:
        return Tier.PROCESS
    if "message" in d:
        return Tier.MESSAGE
    return Tier.EXIT


def rules_from_toml(text: str, *, source: str = "<string>", use_re2: bool | None = None) -> list[Rule]:
    """Parse a TOML document with ``[[rule]]`` tables into compiled, validated rules."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RuleError(f"{source}: not valid TOML: {e}") from None
    extra = sorted(set(doc) - {"rule", "meta"})
    if extra:
        raise RuleError(f"{source}: unknown top-level key(s) {', '.join(extra)} (expected [[rule]] tables)")
    raw = doc.get("rule", [])
    if not isinstance(raw, list):
        raise RuleError(f"{source}: 'rule' must be an array of tables ([[rule]])")
    rules = [compile_rule(r, source=source, use_re2=use_re2) for r in raw]
    check_unique(rules)
    return rules


def load_rules(path: str | Path, *, use_re2: bool | None = None) -> list[Rule]:
    """Load a user's rule file; a missing/unreadable file or any bad rule is a :class:`RuleError`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise RuleError(f"cannot read rule file {p}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise RuleError(f"rule file {p} is not UTF-8: {e}") from None
    return rules_from_toml(text, source=str(p), use_re2=use_re2)


#: The packs shipped with resurgo, in load order.
PACKS: tuple[str, ...] = ("claude_cli", "anthropic_api", "http", "python_builtins", "libraries")


def load_pack(name: str, *, use_re2: bool | None = None) -> list[Rule]:
    """Load one shipped pack by name (see :data:`PACKS`)."""
    if name not in PACKS:
        raise RuleError(f"unknown rule pack {name!r}; shipped packs: {', '.join(PACKS)}")
    text = resources.files("resurgo.classifier").joinpath("packs", f"{name}.toml").read_text("utf-8")
    return rules_from_toml(text, source=f"pack:{name}", use_re2=use_re2)


def load_packs(names: Sequence[str] = PACKS, *, use_re2: bool | None = None) -> list[Rule]:
    out: list[Rule] = []
    for n in names:
        out.extend(load_pack(n, use_re2=use_re2))
    check_unique(out)
    return out


def check_unique(rules: Iterable[Rule]) -> None:
    seen: dict[str, str] = {}
    for r in rules:
        if r.id in seen:
            raise RuleError(f"rule id {r.id!r} is defined twice ({seen[r.id]} and {r.source})")
        seen[r.id] = r.source


__all__ = [
    "NOT_AN_ERROR",
    "PACKS",
    "TIER_CONFIDENCE",
    "Rule",
    "RuleError",
    "Tier",
    "check_unique",
    "compile_rule",
    "load_pack",
    "load_packs",
    "load_rules",
    "rules_from_toml",
]
