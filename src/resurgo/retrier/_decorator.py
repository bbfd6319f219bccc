"""``@retry``: the decorator form, for sync and ``async def`` functions alike."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar, overload

from resurgo.clock import Clock
from resurgo.retrier._backoff import LoadTracker
from resurgo.retrier._budget import RetryBudget
from resurgo.retrier._events import BeforeSleepHook, GiveUpHook, RetryInstrument
from resurgo.retrier._policy import DEFAULT_POLICY, RetryPolicy
from resurgo.retrier._retrier import DEFAULT, Classifier, OnSpec, Retrier, _Default

P = ParamSpec("P")
R = TypeVar("R")


@overload
def retry(fn: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def retry(
    *,
    policy: RetryPolicy | None = None,
    on: OnSpec = None,
    name: str | None = None,
    dependency: str | None = None,
    budget: RetryBudget | _Default | None = DEFAULT,
    load_tracker: LoadTracker | _Default | None = DEFAULT,
    clock: Clock | None = None,
    classifier: Classifier | None = None,
    before_sleep: Iterable[BeforeSleepHook] = (),
    on_give_up: Iterable[GiveUpHook] = (),
    instruments: Iterable[RetryInstrument] = (),
    raise_retry_error: bool = False,
    **policy_changes: Any,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def retry(
    fn: Callable[P, R] | None = None,
    /,
    *,
    policy: RetryPolicy | None = None,
    on: OnSpec = None,
    name: str | None = None,
    dependency: str | None = None,
    budget: RetryBudget | _Default | None = DEFAULT,
    load_tracker: LoadTracker | _Default | None = DEFAULT,
    clock: Clock | None = None,
    classifier: Classifier | None = None,
    before_sleep: Iterable[BeforeSleepHook] = (),
    on_give_up: Iterable[GiveUpHook] = (),
    instruments: Iterable[RetryInstrument] = (),
    raise_retry_error: bool = False,
    **policy_changes: Any,
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Retry the decorated function; works bare (``@retry``) or configured.

    Every keyword has the meaning and default documented on :class:`Retrier`;
    ``name`` defaults to the function's qualified name.  Extra keywords are
    policy fields applied on top of ``policy`` (or the default policy), so
    ``@retry(max_attempts=5, base_delay="200ms")`` needs no separate object.
    The decorated function gains a ``.retrier`` attribute (for ``stats()``).
    """
    if policy_changes:
        base = policy or DEFAULT_POLICY
        try:
            policy = base.with_(**policy_changes)
        except TypeError:
            valid = sorted(k for k in RetryPolicy.__dataclass_fields__ if k != "calculator")
            bad = sorted(set(policy_changes) - set(valid))
            raise TypeError(
                f"retry() got unknown keyword(s) {', '.join(bad)}; policy fields are {', '.join(valid)}"
            ) from None

    def decorate(f: Callable[P, R]) -> Callable[P, R]:
        retrier = Retrier(
            policy=policy,
            name=name or dependency or getattr(f, "__qualname__", None) or repr(f),
            dependency=dependency,
            budget=budget,
            load_tracker=load_tracker,
            clock=clock,
            classifier=classifier,
            on=on,
            before_sleep=before_sleep,
            on_give_up=on_give_up,
            instruments=instruments,
            raise_retry_error=raise_retry_error,
        )
        return retrier.wrap(f)

    if fn is not None:
        return decorate(fn)
    return decorate
