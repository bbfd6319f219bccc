"""The continuation prompt of a resumed Claude Code session: one template language for every caller.

The supervisor (:mod:`resurgo.supervise`) and the SDK wrappers
(:mod:`resurgo.sdk`) both send a prompt when they resume an interrupted
session, and users write that prompt in configuration files and code.  One
convention, checked when the template is configured, means a prompt that works
in ``resurgo.toml`` works in ``resilient_query(continuation_prompt=...)`` too,
and a typo such as ``{reson}`` is an error at start-up instead of text sent to
the model an hour later.

The rules:

* ``{reason}``, ``{description}``, ``{category}`` and ``{type}`` are replaced
  (see :data:`PLACEHOLDERS`);
* ``{{name}}`` gives the literal text ``{name}`` (as with ``str.format``);
* every other brace is literal, so JSON or code in a prompt needs no escaping;
* any other ``{identifier}`` is rejected by :func:`check_continuation`.

Lives outside :mod:`resurgo.supervise` so the SDK can use it without importing
the supervisor.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from resurgo.classifier import ErrorClass

#: Placeholder -> what it becomes.
PLACEHOLDERS: dict[str, str] = {
    "reason": "why the previous run ended, in words",
    "description": "the classifier's description of the failure (else the reason)",
    "category": "the classifier's category, e.g. 'rate_limit' (else 'unknown')",
    "type": "the error type, e.g. 'network' (else 'unknown')",
}

#: The supervisor's continuation prompt (``[supervisor] continuation_prompt``); here, not in
#: the supervisor, so the configuration schema reads it without importing the session logic.
#: The SDK has its own, which does not repeat the reason.
DEFAULT_CONTINUATION = (
    "Your previous run of this task was interrupted ({reason}). Continue the task from where it "
    "stopped. Do not repeat steps that already completed; check their results instead. "
    "When the task is done, give the final answer."
)

_FIELD = re.compile(r"\{\{([A-Za-z_][A-Za-z0-9_]*)\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ContinuationError(ValueError):
    """A continuation template uses a placeholder resurgo does not know."""


def check_continuation(template: str) -> str:
    """Return ``template`` unchanged, or raise :class:`ContinuationError` naming every unknown placeholder."""
    if not isinstance(template, str):
        raise ContinuationError(f"continuation prompt must be a string, got {type(template).__name__}")
    unknown = sorted({m.group(2) for m in _FIELD.finditer(template) if m.group(2) and m.group(2) not in PLACEHOLDERS})
    if unknown:
        names = ", ".join("{" + u + "}" for u in unknown)
        known = ", ".join("{" + k + "}" for k in PLACEHOLDERS)
        raise ContinuationError(
            f"unknown placeholder(s) {names} in the continuation prompt; known: {known} "
            "(write {{name}} for a literal {name})"
        )
    return template


def render_continuation(template: str, *, reason: str | None = None, error: ErrorClass | None = None) -> str:
    """The prompt for one resumed run.

    ``reason`` is why the previous run ended; ``error`` the classifier's
    verdict when there is one.  Either may be missing: ``reason`` then falls
    back to the error's description, ``description`` to the reason, and
    ``category``/``type`` to ``"unknown"``.  Templates are checked when they are
    configured; a placeholder that slipped past that check is left as written.
    """
    desc = error.description if error is not None and error.description else None
    why = reason or desc or "unknown reason"
    values = {
        "reason": why,
        "description": desc or why,
        "category": (error.category if error is not None and error.category else "unknown"),
        "type": (error.type.value if error is not None and error.type is not None else "unknown"),
    }

    def sub(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return "{" + m.group(1) + "}"
        return values.get(m.group(2), m.group(0))

    return _FIELD.sub(sub, template)


__all__ = ["DEFAULT_CONTINUATION", "PLACEHOLDERS", "ContinuationError", "check_continuation", "render_continuation"]
