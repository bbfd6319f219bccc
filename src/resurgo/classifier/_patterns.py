"""Compiling rule patterns so that hostile input can never stall a classifier.

Messages come from remote servers and crashing processes, so a pattern that
backtracks catastrophically would turn one odd error line into a hung
supervisor.  Patterns are therefore compiled with RE2 (linear time, module
``re2`` from google-re2) when it is installed.  Without it, patterns are run on
Python's ``re`` only after a structural check rejects the shapes that can
backtrack exponentially or polynomially (nested quantifiers, quantified
alternation, back-references, many unbounded repeats); text is also capped
before matching (see ``MAX_TEXT``), which bounds the remaining cost.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

try:  # pragma: no cover - exercised in both forms by the test-suite via use_re2=False
    import re2 as _re2

    _RE2_OPTIONS: Any = _re2.Options()
    _RE2_OPTIONS.log_errors = False  # RE2 otherwise prints parse errors on stderr
    _RE2_OPTIONS.case_sensitive = False
    HAVE_RE2 = True
except ImportError:  # pragma: no cover
    _re2 = None
    _RE2_OPTIONS = None
    HAVE_RE2 = False

from re import _constants as _sre_c  # type: ignore[attr-defined]  # Python >= 3.11 layout
from re import _parser as _sre_parse  # type: ignore[attr-defined]

#: Characters of any one text that rules look at (the tail is where errors end up).
MAX_TEXT = 64 * 1024


class PatternError(ValueError):
    """A rule's pattern is invalid or unsafe; the message names the rule."""


class Pattern(Protocol):
    """What the classifier needs from a compiled pattern (``re`` and ``re2`` both fit)."""

    @property
    def pattern(self) -> str: ...

    def search(self, text: str) -> Any: ...


def compile_pattern(pattern: str, *, rule_id: str, use_re2: bool | None = None) -> Pattern:
    """Compile a case-insensitive pattern for rule ``rule_id``; raise :class:`PatternError` if bad.

    ``use_re2=None`` means "RE2 when installed".  RE2 rejects back-references
    and look-arounds itself; those rules get an error that says so instead of
    silently running on a backtracking engine.
    """
    if not isinstance(pattern, str) or not pattern:
        raise PatternError(f"rule {rule_id!r}: pattern must be a non-empty string")
    if use_re2 is None:
        use_re2 = HAVE_RE2
    # Python syntax check first: it gives the clearest message for plain typos.
    try:
        compiled_py = re.compile(pattern, re.IGNORECASE)
    except re.error as e:
        raise PatternError(f"rule {rule_id!r}: bad regular expression {pattern!r}: {e}") from None
    if use_re2 and _re2 is not None:
        try:
            p: Pattern = _re2.compile(pattern, _RE2_OPTIONS)
        except Exception as e:  # re2.error is not a stable public name across releases
            detail = e.args[0].decode() if e.args and isinstance(e.args[0], bytes) else str(e)
            raise PatternError(
                f"rule {rule_id!r}: pattern {pattern!r} is not supported by the linear-time "
                f"engine RE2 ({detail}); back-references and look-arounds are not allowed"
            ) from None
        return p
    check_backtracking(pattern, rule_id=rule_id)
    return compiled_py


def combine_patterns(parts: list[str], *, rule_id: str, use_re2: bool | None = None) -> Pattern:
    """One alternation of already-validated parts, so a rule costs one scan, not one per part.

    Top-level alternation of individually safe parts adds no backtracking risk (each branch
    is tried once per position), so the per-part checks are not repeated on the whole.
    """
    joined = "|".join(f"(?:{p})" for p in parts)
    if use_re2 is None:
        use_re2 = HAVE_RE2
    if use_re2 and _re2 is not None:
        return compile_pattern(joined, rule_id=rule_id, use_re2=True)
    return re.compile(joined, re.IGNORECASE)


class PatternSet:
    """Many rules' patterns scanned in one pass (RE2 ``Set``): which of them match ``text``.

    The classifier's rules are mostly message patterns; searching them one by one
    costs a Python-level RE2 call (and a UTF-8 encode of the text) per rule, which
    dominated classification time.  A set answers "which patterns match anywhere"
    in a single linear scan, after which only the winning candidates are examined.
    Only patterns compiled by RE2 are accepted (:meth:`add` returns ``False`` for
    others), so the set never changes what a rule's own pattern would have matched.
    """

    __slots__ = ("_compiled", "_ids", "_set")

    def __init__(self) -> None:
        if _re2 is None:  # pragma: no cover - callers check HAVE_RE2
            raise RuntimeError("PatternSet needs google-re2")
        self._set: Any = _re2.Set.SearchSet(_RE2_OPTIONS)
        self._ids: list[int] = []
        self._compiled = False

    def add(self, pattern: Pattern, ident: int) -> bool:
        """Add a pattern compiled by :func:`compile_pattern` on RE2; ``False`` when it cannot be."""
        if self._compiled or _re2 is None or isinstance(pattern, re.Pattern):
            return False
        try:
            self._set.Add(pattern.pattern)
        except Exception:  # re2.error: keep the rule on its own pattern instead
            return False
        self._ids.append(ident)
        return True

    def compile(self) -> bool:
        """Freeze the set; ``False`` (and the set unusable) if RE2 could not build it."""
        if not self._ids:
            return False
        try:
            self._set.Compile()
        except Exception:  # pragma: no cover - only on RE2 memory limits
            return False
        self._compiled = True
        return True

    def matching(self, text: str) -> frozenset[int]:
        """Idents of the patterns that match somewhere in ``text``."""
        found = self._set.Match(text)
        if not found:
            return frozenset()
        ids = self._ids
        return frozenset(ids[i] for i in found)


_REPEATS = {_sre_c.MAX_REPEAT, _sre_c.MIN_REPEAT, getattr(_sre_c, "POSSESSIVE_REPEAT", None)}
_MAXREPEAT = _sre_c.MAXREPEAT
#: More unbounded repeats than this in one pattern can cost O(n^k) on crafted input.
MAX_UNBOUNDED_REPEATS = 3


def check_backtracking(pattern: str, *, rule_id: str) -> None:
    """Reject pattern shapes that backtrack catastrophically on Python's ``re``.

    Conservative by design: a few harmless patterns (``(ab|cd)+``) are refused
    too, because a rule author can always rewrite them, while a supervisor hung
    on one crafted error line cannot recover.
    """
    try:
        tree = _sre_parse.parse(pattern, re.IGNORECASE)
    except re.error as e:  # pragma: no cover - compile_pattern checked already
        raise PatternError(f"rule {rule_id!r}: bad regular expression {pattern!r}: {e}") from None
    unbounded = 0

    def fail(why: str) -> None:
        raise PatternError(
            f"rule {rule_id!r}: pattern {pattern!r} can backtrack catastrophically ({why}); "
            "install google-re2 or rewrite the pattern"
        )

    def walk(items: Any, inside_repeat: bool) -> None:
        nonlocal unbounded
        for op, av in items:
            if op in _REPEATS:
                _lo, hi, sub = av
                big = hi == _MAXREPEAT or hi > 16
                if big:
                    unbounded += 1
                    if unbounded > MAX_UNBOUNDED_REPEATS:
                        fail(f"more than {MAX_UNBOUNDED_REPEATS} unbounded repeats")
                if inside_repeat and (big or hi > 1):
                    fail("nested quantifiers")
                walk(sub, inside_repeat or big)
            elif op is _sre_c.BRANCH:
                if inside_repeat:
                    fail("alternation inside a repeated group")
                for alt in av[1]:
                    walk(alt, inside_repeat)
            elif op is _sre_c.SUBPATTERN:
                walk(av[-1], inside_repeat)
            elif op in (_sre_c.GROUPREF, getattr(_sre_c, "GROUPREF_EXISTS", None)):
                fail("back-reference")
            elif op in (_sre_c.ASSERT, _sre_c.ASSERT_NOT):
                walk(av[1], inside_repeat)
            elif op is getattr(_sre_c, "ATOMIC_GROUP", None):
                walk(av, inside_repeat)

    walk(tree, False)


def cap_text(text: str, limit: int = MAX_TEXT) -> str:
    """Keep the part of a huge text that matters: a little of the head, most of the tail."""
    if len(text) <= limit:
        return text
    head = limit // 8
    return text[:head] + "\n…\n" + text[-(limit - head) :]


__all__ = [
    "HAVE_RE2",
    "MAX_TEXT",
    "Pattern",
    "PatternError",
    "PatternSet",
    "cap_text",
    "check_backtracking",
    "compile_pattern",
]
