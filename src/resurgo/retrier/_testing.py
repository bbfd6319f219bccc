"""A testing switch in the spirit of ``stamina.set_testing``.

Test suites of code that uses resurgo should not wait for real backoff.  With
testing on, retries still happen (so the code under test sees the same control
flow) but no retrier sleeps, and every call is limited to ``attempts`` attempts
(``cap=True``: to ``min(attempts, policy.max_attempts)``).  Budgets, deadlines
and ``retry_after`` decisions are unchanged: they are decisions, not waits.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType


@dataclass(frozen=True, slots=True)
class _TestingState:
    enabled: bool = False
    attempts: int = 1
    cap: bool = False


_state = _TestingState()


def _current() -> _TestingState:
    return _state


class _Restore:
    """Returned by :func:`set_testing` so it also works as a ``with`` block."""

    __slots__ = ("_previous",)

    def __init__(self, previous: _TestingState) -> None:
        self._previous = previous

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        et: type[BaseException] | None,
        ev: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        global _state
        _state = self._previous


def set_testing(testing: bool, *, attempts: int = 1, cap: bool = False) -> _Restore:
    """Turn testing mode on or off for the whole process.

    ``attempts`` is the number of attempts every retried call gets (default 1:
    the first failure is final, as in stamina).  Use as a plain call or as
    ``with set_testing(True, attempts=3): ...`` to restore the previous mode.
    """
    global _state
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ValueError(f"attempts must be an integer >= 1, got {attempts!r}")
    previous = _state
    _state = _TestingState(bool(testing), attempts, bool(cap))
    return _Restore(previous)


def is_testing() -> bool:
    return _state.enabled
