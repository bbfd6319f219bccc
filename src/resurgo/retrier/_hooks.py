"""A logging instrument: one line per retry and per give-up, secrets redacted.

Exception messages from HTTP clients can echo request headers, so anything that
looks like an API key or a bearer token is masked before it reaches a log.
"""

from __future__ import annotations

import logging

from resurgo._redact import redact_text as redact
from resurgo.retrier._events import GiveUpEvent, RetryEvent


def _describe(exc: BaseException | None, limit: int = 200) -> str:
    if exc is None:
        return "rejected result"
    msg = redact(str(exc))
    if len(msg) > limit:
        msg = msg[:limit] + "…"
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


class LoggingHook:
    """Logs retries at ``level`` (default WARNING) and give-ups at ``give_up_level`` (ERROR)."""

    __slots__ = ("give_up_level", "level", "logger")

    def __init__(
        self,
        logger: logging.Logger | None = None,
        *,
        level: int = logging.WARNING,
        give_up_level: int = logging.ERROR,
    ) -> None:
        self.logger = logger or logging.getLogger("resurgo.retry")
        self.level = level
        self.give_up_level = give_up_level

    def before_sleep(self, event: RetryEvent) -> None:
        if not self.logger.isEnabledFor(self.level):
            return
        kind = event.error_class.type.value if event.error_class.type else event.error_class.category
        self.logger.log(
            self.level,
            "retrying %s: attempt %d failed (%s, %s); waiting %.3f s",
            event.name,
            event.attempt,
            kind,
            _describe(event.exception),
            event.delay,
            extra={
                "retry_name": event.name,
                "retry_attempt": event.attempt,
                "retry_delay": event.delay,
                "error_type": kind,
            },
        )

    def on_give_up(self, event: GiveUpEvent) -> None:
        if not self.logger.isEnabledFor(self.give_up_level):
            return
        self.logger.log(
            self.give_up_level,
            "%s (%s)",
            redact(str(event.error)),
            _describe(event.exception),
            extra={
                "retry_name": event.name,
                "retry_attempts": event.attempts,
                "retry_reason": event.reason.value,
            },
        )
