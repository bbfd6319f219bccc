"""Classification: what went wrong, is it worth retrying, when, and what recovery fits.

``classify(x)`` accepts a Python exception (its cause chain and exception-group
members are examined), an :class:`Observation`, the observation's JSON dict
form, or a bare message string, and returns an :class:`ErrorClass` as the
contract ``shared/spec/error-taxonomy.md`` defines.  Rules are data (TOML packs
shipped under ``packs/`` plus user files); see :class:`Classifier`.
"""

from typing import TYPE_CHECKING, Any

from resurgo.classifier._types import (
    DEFAULT_RETRYABLE,
    DEFAULT_SEVERITY,
    DEFAULT_STRATEGY,
    ErrorClass,
    ErrorType,
    Observation,
    ObservationError,
    Priority,
    Severity,
    Strategy,
)

# The engine (rule packs, RE2, the store glue) loads on first use, so code that only
# needs the vocabulary above (the retrier, the breaker) imports in microseconds.
_LAZY: dict[str, str] = {
    "Classifier": "_engine",
    "classify": "_engine",
    "default_classifier": "_engine",
    "is_retryable": "_engine",
    "priority": "_engine",
    "set_default_classifier": "_engine",
    "suggest_strategy": "_engine",
    "LearnedRule": "_learn",
    "HAVE_RE2": "_patterns",
    "PatternError": "_patterns",
    "PACKS": "_rules",
    "Rule": "_rules",
    "RuleError": "_rules",
    "Tier": "_rules",
    "load_pack": "_rules",
    "load_rules": "_rules",
    "rules_from_toml": "_rules",
    "make_signature": "_signature",
    "normalise": "_signature",
    "ErrorStats": "_stats",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'resurgo.classifier' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"resurgo.classifier.{mod}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover
    from resurgo.classifier._engine import (
        Classifier,
        classify,
        default_classifier,
        is_retryable,
        priority,
        set_default_classifier,
        suggest_strategy,
    )
    from resurgo.classifier._learn import LearnedRule
    from resurgo.classifier._patterns import HAVE_RE2, PatternError
    from resurgo.classifier._rules import PACKS, Rule, RuleError, Tier, load_pack, load_rules, rules_from_toml
    from resurgo.classifier._signature import make_signature, normalise
    from resurgo.classifier._stats import ErrorStats

__all__ = [
    "DEFAULT_RETRYABLE",
    "DEFAULT_SEVERITY",
    "DEFAULT_STRATEGY",
    "HAVE_RE2",
    "PACKS",
    "Classifier",
    "ErrorClass",
    "ErrorStats",
    "ErrorType",
    "LearnedRule",
    "Observation",
    "ObservationError",
    "PatternError",
    "Priority",
    "Rule",
    "RuleError",
    "Severity",
    "Strategy",
    "Tier",
    "classify",
    "default_classifier",
    "is_retryable",
    "load_pack",
    "load_rules",
    "make_signature",
    "normalise",
    "priority",
    "rules_from_toml",
    "set_default_classifier",
    "suggest_strategy",
]
