"""What hooks receive: one immutable record per retry decision.

Hooks are how instrumentation (logging, Prometheus, the dashboard) observes a
retrier without the retrier knowing about any of them (stamina's design).
Events are built only when at least one hook is installed, so an
uninstrumented retrier pays nothing for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from resurgo.classifier._types import ErrorClass
from resurgo.retrier._errors import GiveUpReason, RetryError


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """About to sleep ``delay`` seconds after attempt number ``attempt`` failed."""

    name: str
    attempt: int
    delay: float
    error_class: ErrorClass
    exception: BaseException | None  # None when a result was rejected by retry_on_result
    elapsed: float
    result: Any = None


@dataclass(frozen=True, slots=True)
class GiveUpEvent:
    """The call stopped after ``attempts`` attempts, for ``reason``."""

    name: str
    attempts: int
    reason: GiveUpReason
    error_class: ErrorClass | None
    exception: BaseException | None
    elapsed: float
    error: RetryError


BeforeSleepHook = Callable[[RetryEvent], None]
GiveUpHook = Callable[[GiveUpEvent], None]


class RetryInstrument(Protocol):
    """An object observing both kinds of event (see ``LoggingHook``, ``PrometheusHook``)."""

    def before_sleep(self, event: RetryEvent) -> None: ...

    def on_give_up(self, event: GiveUpEvent) -> None: ...
