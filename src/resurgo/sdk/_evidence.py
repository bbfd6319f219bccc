"""Turning what one SDK run showed into an :class:`ErrorClass`.

The SDK reports an API failure three ways at once: a synthetic
``AssistantMessage`` with ``error`` set, a ``ResultMessage`` with ``is_error``
(and ``api_error_status``), then a ``ResultError`` exception when the CLI exits
1.  The result event is the richest of the three (it carries the HTTP status,
which the exception does not), so failures are classified as the CLI's
observation (the taxonomy's JSON form) whenever a result was seen, and as the
exception otherwise (a killed CLI, a missing binary, garbage on stdout).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from claude_agent_sdk import (
    AssistantMessage,
    RateLimitEvent,
    ResultError,
    ResultMessage,
)

from resurgo.classifier import ErrorClass, Observation
from resurgo.classifier import classify as _default_classify

#: Anything that maps an exception or an :class:`Observation` to an ErrorClass.
ClassifierFn = Callable[[Any], ErrorClass]

DEFAULT_ENDPOINT = "https://api.anthropic.com"

_NO_SESSION = "No conversation found with session ID"


def endpoint_of(env: Mapping[str, str] | None) -> str:
    """The breaker/budget key: ``ANTHROPIC_BASE_URL`` from the options' env, else the process env.

    The SDK merges ``options.env`` over ``os.environ`` when it starts the CLI,
    so this is the URL the CLI will really call.  Trailing slashes are dropped
    so ``http://h:1`` and ``http://h:1/`` share one breaker.
    """
    url = (env or {}).get("ANTHROPIC_BASE_URL") or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_ENDPOINT
    return url.rstrip("/") or DEFAULT_ENDPOINT


def result_event(msg: ResultMessage) -> dict[str, Any]:
    """The stream-json ``result`` event a ``ResultMessage`` was parsed from."""
    return {
        "type": "result",
        "subtype": msg.subtype,
        "is_error": msg.is_error,
        "api_error_status": msg.api_error_status,
        "result": msg.result,
        "errors": list(msg.errors or []),
        "session_id": msg.session_id,
        "terminal_reason": msg.terminal_reason,
        "num_turns": msg.num_turns,
    }


@dataclass(slots=True)
class Evidence:
    """What one run showed about its failure, collected while its messages stream by."""

    result: ResultMessage | None = None
    assistant_errors: list[AssistantMessage] = field(default_factory=list)
    resets_at: float | None = None
    exception: BaseException | None = None
    killed_by: str | None = None

    def note(self, msg: object) -> None:
        if isinstance(msg, ResultMessage):
            self.result = msg
        elif isinstance(msg, AssistantMessage) and msg.error:
            self.assistant_errors.append(msg)
        elif isinstance(msg, RateLimitEvent):
            ra = msg.rate_limit_info.resets_at
            if ra is not None and msg.rate_limit_info.status == "rejected":
                self.resets_at = float(ra)

    @property
    def result_data(self) -> Mapping[str, Any] | None:
        """The failing result event: the one yielded, or the one ``ResultError`` carries."""
        if self.result is not None:
            return result_event(self.result)
        exc = self.exception
        if isinstance(exc, ResultError) and exc.data:
            return {"type": "result", **exc.data}
        return None

    @property
    def status(self) -> int | None:
        data = self.result_data
        st = data.get("api_error_status") if data else None
        return st if isinstance(st, int) and not isinstance(st, bool) else None

    @property
    def exit_code(self) -> int | None:
        rc = getattr(self.exception, "exit_code", None)
        return rc if isinstance(rc, int) and not isinstance(rc, bool) else None

    def message(self) -> str:
        """The CLI's own words for the failure (what a person would want to read)."""
        data = self.result_data
        if data:
            errors = data.get("errors") or []
            text = data.get("result")
            if isinstance(text, str) and text.strip():
                return text.strip()
            if errors:
                return "; ".join(str(e) for e in errors)
        if self.killed_by:
            return f"no message from the CLI for too long ({self.killed_by})"
        if self.exception is not None:
            return str(self.exception) or type(self.exception).__name__
        return "the CLI run ended without a result"

    def observation(self) -> Observation:
        events: list[Mapping[str, Any]] = []
        for a in self.assistant_errors:
            events.append({"type": "assistant", "error": a.error, "message": {"model": a.model}})
        if self.resets_at is not None:
            events.append({"type": "rate_limit_event", "rate_limit_info": {"resetsAt": self.resets_at}})
        data = self.result_data
        if data is not None:
            events.append(data)
        stderr = getattr(self.exception, "stderr", None)
        return Observation(
            message=None if data is not None else self.message(),
            exit_code=self.exit_code,
            killed_by=self.killed_by,
            stderr=stderr if isinstance(stderr, str) else None,
            events=tuple(events),
        )

    @property
    def session_missing(self) -> bool:
        """A resume failed because the CLI has no transcript for the session."""
        data = self.result_data
        texts = [self.message()]
        if data:
            texts.extend(str(e) for e in data.get("errors") or [])
        return any(_NO_SESSION in t for t in texts)


def classify_evidence(ev: Evidence, classifier: ClassifierFn | None) -> ErrorClass:
    """The verdict on one failed run (see the module docstring for which evidence wins)."""
    clf = classifier or _default_classify
    exc = ev.exception
    if ev.result_data is not None or ev.killed_by is not None or ev.assistant_errors or exc is None:
        return clf(ev.observation())
    return clf(exc)


__all__ = ["DEFAULT_ENDPOINT", "ClassifierFn", "Evidence", "classify_evidence", "endpoint_of", "result_event"]
