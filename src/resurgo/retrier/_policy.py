"""``RetryPolicy``: a validated, immutable description of how to retry.

Validation happens once, on construction, so a bad value in the TOML
configuration fails at start-up with a message naming the field, not in the
middle of an outage.  The policy also precomputes its backoff calculator and
its per-error-type table so the retry path only does attribute reads.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from resurgo.classifier._types import ErrorType
from resurgo.retrier._backoff import (
    AdaptiveBackoff,
    BackoffCalculator,
    DecorrelatedJitterBackoff,
    EqualJitterBackoff,
    ExponentialBackoff,
    FixedBackoff,
    FullJitterBackoff,
    LinearBackoff,
)


class BackoffStrategy(StrEnum):
    FIXED = "fixed"
    LINEAR = "linear"
    EXPONENTIAL = "exponential"
    FULL_JITTER = "full_jitter"
    EQUAL_JITTER = "equal_jitter"
    DECORRELATED_JITTER = "decorrelated_jitter"
    ADAPTIVE = "adaptive"


class PolicyError(ValueError):
    """A retry policy (or its TOML table) has an invalid value; the message names the field."""


_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s|m|h)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any, name: str) -> float:
    """Seconds from a number or a string such as ``"250ms"``, ``"2s"``, ``"5m"``."""
    if isinstance(value, bool):
        raise PolicyError(f"{name} must be a duration in seconds, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNIT[m.group(2)]
    raise PolicyError(f"{name} must be a number of seconds or a string like '250ms', '2s', '5m'; got {value!r}")


def _build_calculator(p: RetryPolicy) -> BackoffCalculator:
    s = p.backoff_strategy
    if s is BackoffStrategy.FIXED:
        return FixedBackoff(p.max_delay, jitter=p.jitter)
    if s is BackoffStrategy.LINEAR:
        return LinearBackoff(p.max_delay, jitter=p.jitter)
    if s is BackoffStrategy.EXPONENTIAL:
        return ExponentialBackoff(p.max_delay, jitter=p.jitter)
    if s is BackoffStrategy.FULL_JITTER:
        return FullJitterBackoff(p.max_delay)
    if s is BackoffStrategy.EQUAL_JITTER:
        return EqualJitterBackoff(p.max_delay)
    if s is BackoffStrategy.DECORRELATED_JITTER:
        return DecorrelatedJitterBackoff(p.max_delay)
    return AdaptiveBackoff(p.max_delay, gain=p.adaptive_gain, jitter=p.jitter)


_ALL_TYPES: frozenset[ErrorType] = frozenset(ErrorType)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How to retry one kind of call.

    Defaults follow the anchors: 3 attempts (Google SRE's per-request limit),
    full-jitter exponential backoff from 0.5 s capped at 30 s (AWS: least total
    work), no overall deadline.

    - ``max_attempts``: attempts including the first call (``1`` = never retry).
    - ``base_delay`` / ``max_delay``: seconds; every computed wait lies in
      ``[0, max_delay]`` except that a server's ``retry_after`` always wins.
    - ``backoff_strategy``: a :class:`BackoffStrategy` or its string value.
    - ``jitter``: for ``fixed``, ``linear``, ``exponential`` and ``adaptive``,
      randomise the lower half of each wait (equal jitter) so clients that
      failed together do not retry together.  The ``*_jitter`` strategies are
      random by construction and ignore it.
    - ``retryable_errors``: error types that may be retried at all.  It only
      *filters*: the classifier's ``retryable`` verdict must also be true
      (billing is ``resource`` but never retryable).
    - ``max_elapsed``: deadline in seconds for the whole call, measured from the
      first attempt; no attempt starts after it, and a ``retry_after`` beyond it
      gives up at once.
    - ``overrides``: per-error-type policies (a 529 deserves a longer wait than a
      dropped connection).  An override supplies ``max_attempts``, the delays,
      the strategy and jitter; the deadline, the filter and ``retry_on_result``
      always come from the top-level policy.
    - ``retry_on_result``: a predicate on return values that counts a result as a
      failure (a CLI ``result`` with ``is_error``).  Results are retried with the
      top-level policy's schedule.
    - ``adaptive_gain``: how strongly ``adaptive`` stretches waits with load.
    """

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0
    backoff_strategy: BackoffStrategy | str = BackoffStrategy.FULL_JITTER
    jitter: bool = True
    retryable_errors: Iterable[ErrorType | str] = _ALL_TYPES
    max_elapsed: float | None = None
    overrides: Mapping[ErrorType | str, RetryPolicy] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    retry_on_result: Callable[[Any], bool] | None = None
    adaptive_gain: float = 3.0
    # Precomputed by __post_init__; not part of the configuration.
    calculator: BackoffCalculator = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> PolicyError:
            return PolicyError(f"RetryPolicy.{name} {why}, got {getattr(self, name)!r}")

        ma = self.max_attempts
        if isinstance(ma, bool) or not isinstance(ma, int) or ma < 1:
            raise bad("max_attempts", "must be an integer >= 1")
        for name in ("base_delay", "max_delay", "max_elapsed"):
            v = getattr(self, name)
            if isinstance(v, str):  # "250ms", "2s": the same forms the TOML accepts
                object.__setattr__(self, name, parse_duration(v, f"RetryPolicy.{name}"))
        for name in ("base_delay", "max_delay", "adaptive_gain"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise bad(name, "must be a finite number >= 0")
            object.__setattr__(self, name, float(v))
        if self.base_delay > self.max_delay:
            raise PolicyError(
                f"RetryPolicy.base_delay ({self.base_delay}) must not exceed max_delay ({self.max_delay})"
            )
        me = self.max_elapsed
        if me is not None:
            if isinstance(me, bool) or not isinstance(me, int | float) or not math.isfinite(me) or me <= 0:
                raise bad("max_elapsed", "must be a finite number of seconds > 0, or None")
            object.__setattr__(self, "max_elapsed", float(me))
        try:
            object.__setattr__(self, "backoff_strategy", BackoffStrategy(self.backoff_strategy))
        except ValueError:
            choices = ", ".join(s.value for s in BackoffStrategy)
            raise bad("backoff_strategy", f"must be one of {choices}") from None
        if not isinstance(self.jitter, bool):
            raise bad("jitter", "must be true or false")
        object.__setattr__(
            self,
            "retryable_errors",
            _error_type_set(self.retryable_errors, "RetryPolicy.retryable_errors"),
        )
        ov: dict[ErrorType, RetryPolicy] = {}
        if not isinstance(self.overrides, Mapping):
            raise bad("overrides", "must be a mapping of error type to RetryPolicy")
        for k, v in self.overrides.items():
            t = _error_type(k, "RetryPolicy.overrides")
            if not isinstance(v, RetryPolicy):
                raise PolicyError(f"RetryPolicy.overrides[{t.value!r}] must be a RetryPolicy, got {v!r}")
            if v.overrides:
                raise PolicyError(f"RetryPolicy.overrides[{t.value!r}] must not have overrides itself")
            ov[t] = v
        object.__setattr__(self, "overrides", MappingProxyType(ov))
        if self.retry_on_result is not None and not callable(self.retry_on_result):
            raise bad("retry_on_result", "must be a callable or None")
        object.__setattr__(self, "calculator", _build_calculator(self))

    @property
    def strategy(self) -> BackoffStrategy:
        """``backoff_strategy`` with its precise type (it is always normalised)."""
        s = self.backoff_strategy
        assert isinstance(s, BackoffStrategy)
        return s

    def for_error(self, error_type: ErrorType | None) -> RetryPolicy:
        """The policy that governs waits and attempts for ``error_type``."""
        if error_type is None:
            return self
        return self.overrides.get(error_type, self)

    def with_(self, **changes: Any) -> RetryPolicy:
        """A copy with some fields changed, validated like a new policy."""
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, table: Mapping[str, Any], *, where: str = "retry") -> RetryPolicy:
        """Build from a configuration table (e.g. ``[retry]`` in TOML).

        Durations accept numbers of seconds or strings like ``"250ms"``;
        ``overrides`` is a table of error type to sub-table.  Unknown keys are
        errors (a typo must not silently fall back to a default).
        """
        if not isinstance(table, Mapping):
            raise PolicyError(f"[{where}] must be a table, got {type(table).__name__}")
        allowed = {f.name for f in fields(cls) if f.init and f.name != "retry_on_result"}
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise PolicyError(
                f"[{where}] has unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(allowed))}"
            )
        kw: dict[str, Any] = {}
        for k, v in table.items():
            if k in ("base_delay", "max_delay"):
                kw[k] = parse_duration(v, f"[{where}].{k}")
            elif k == "max_elapsed":
                kw[k] = None if v in (None, "", 0, "none") else parse_duration(v, f"[{where}].{k}")
            elif k == "retryable_errors":
                kw[k] = _error_type_set(v, f"[{where}].retryable_errors")
            elif k == "overrides":
                if not isinstance(v, Mapping):
                    raise PolicyError(f"[{where}].overrides must be a table of error type to table")
                kw[k] = {
                    _error_type(t, f"[{where}].overrides"): cls.from_dict(sub, where=f"{where}.overrides.{t}")
                    for t, sub in v.items()
                }
            else:
                kw[k] = v
        try:
            return cls(**kw)
        except PolicyError as e:
            raise PolicyError(f"[{where}]: {e}") from None

    @classmethod
    def from_toml(cls, source: str | Path, *, table: str = "retry") -> RetryPolicy:
        """Load from TOML: a :class:`~pathlib.Path` is read as a file, a ``str`` is TOML text.

        ``table`` is a dotted path to the policy's table inside the document.
        """
        text = source.read_text(encoding="utf-8") if isinstance(source, Path) else source
        try:
            doc: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise PolicyError(f"invalid TOML: {e}") from None
        for part in table.split(".") if table else ():
            if not isinstance(doc, Mapping) or part not in doc:
                raise PolicyError(f"TOML has no [{table}] table")
            doc = doc[part]
        return cls.from_dict(doc, where=table or "root")


def _error_type(value: Any, name: str) -> ErrorType:
    try:
        return ErrorType(value)
    except ValueError:
        valid = ", ".join(t.value for t in ErrorType)
        raise PolicyError(f"{name}: unknown error type {value!r}; valid types: {valid}") from None


def _error_type_set(values: Any, name: str) -> frozenset[ErrorType]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise PolicyError(f"{name} must be a collection of error types, got {values!r}")
    return frozenset(_error_type(v, name) for v in values)


DEFAULT_POLICY = RetryPolicy()
