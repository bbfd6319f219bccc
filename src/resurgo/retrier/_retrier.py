"""The retry engine: ``Retrier`` runs a callable, classifies its failures and retries.

Design notes (why it looks like this):

- **The success path does almost nothing.**  A first-try success costs a budget
  deposit (when a budget is configured), one clock read, the call itself and a
  locked counter increment.  No per-call objects, no classifier call, no hook
  dispatch.  Everything else lives in the failure path, which is allowed to be
  slower because it is about to sleep anyway.
- **The classifier decides what is retryable**, the policy only filters by
  error type.  ``asyncio.CancelledError``, ``KeyboardInterrupt``, ``SystemExit``
  and ``GeneratorExit`` derive from ``BaseException`` and are never caught, so
  they are never retried and cancel a backoff sleep at once.
- **A server's ``retry_after`` wins** over any computed backoff; when it lies
  beyond the call's deadline the retrier gives up immediately, because waiting
  for a moment it may not use helps nobody.
- **Give-up raises the original exception** (stamina semantics) with the
  :class:`RetryError` attached; ``raise_retry_error=True`` raises the latter.
  An exhausted budget always raises :class:`RetryBudgetExhausted`.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Final, ParamSpec, TypeVar, cast

from resurgo.classifier._types import ErrorClass, ErrorType, Severity, Strategy
from resurgo.clock import SYSTEM_CLOCK, Clock, SystemClock
from resurgo.retrier import _testing
from resurgo.retrier._backoff import LoadTracker, load_tracker_for
from resurgo.retrier._budget import RetryBudget, budget_for
from resurgo.retrier._errors import GiveUpReason, RetryBudgetExhausted, RetryError, attach
from resurgo.retrier._events import (
    BeforeSleepHook,
    GiveUpEvent,
    GiveUpHook,
    RetryEvent,
    RetryInstrument,
)
from resurgo.retrier._policy import DEFAULT_POLICY, RetryPolicy
from resurgo.retrier._stats import RetryStats, StatsRecorder

P = ParamSpec("P")
R = TypeVar("R")

_log = logging.getLogger("resurgo.retry")

Classifier = Callable[[BaseException], ErrorClass]
#: ``on=``: exception classes or a predicate (explicitly retryable), or error types (a filter).
OnSpec = (
    type[BaseException]
    | tuple[type[BaseException], ...]
    | Callable[[BaseException], bool]
    | ErrorType
    | str
    | Iterable[ErrorType | str]
    | None
)


class _Default:
    """Sentinel for "use the dependency's shared object" (``None`` means "none at all")."""

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = _Default()

#: The class given to results rejected by ``retry_on_result``.
RESULT_REJECTED: Final = ErrorClass(
    type=None,
    severity=None,
    category="result",
    description="result rejected by retry_on_result",
    retryable=True,
    strategy=Strategy.RETRY,
    rule="retry_on_result",
)

_classifier_cache: list[Classifier] = []
_fallback_warned: list[bool] = []


def _fallback_classify(exc: BaseException) -> ErrorClass:
    """Used only while ``resurgo.classifier.classify`` is unavailable: the obvious cases."""
    if isinstance(exc, TimeoutError):
        t, retryable = ErrorType.TIMEOUT, True
    elif isinstance(exc, ConnectionError):
        t, retryable = ErrorType.NETWORK, True
    else:
        t, retryable = ErrorType.INTERNAL, False
    return ErrorClass(
        type=t,
        severity=Severity.MEDIUM if retryable else Severity.HIGH,
        category=t.value,
        description=f"{type(exc).__name__} (fallback classification)",
        retryable=retryable,
        strategy=Strategy.RETRY if retryable else Strategy.ABORT,
        rule="resurgo.retrier.fallback",
        confidence=0.3,
    )


def default_classifier() -> Classifier:
    """``resurgo.classifier.classify``, imported on first failure (keeps ``import`` cheap)."""
    if _classifier_cache:
        return _classifier_cache[0]
    try:
        mod = importlib.import_module("resurgo.classifier")
        fn = cast(Classifier, mod.classify)
    except (ImportError, AttributeError):
        if not _fallback_warned:
            _fallback_warned.append(True)
            _log.warning("resurgo.classifier.classify is unavailable; using the fallback classifier")
        return _fallback_classify
    _classifier_cache.append(fn)
    return fn


class _Run:
    """State of one call that has failed at least once (never allocated on success)."""

    __slots__ = ("attempt", "deadline", "error_class", "prev_delay", "retries", "slept", "start")

    def __init__(self, start: float, max_elapsed: float | None) -> None:
        self.start = start
        self.deadline = None if max_elapsed is None else start + max_elapsed
        self.attempt = 1
        self.prev_delay = 0.0
        self.slept = 0.0
        self.retries = 0
        self.error_class: ErrorClass | None = None


def _split_on(
    on: OnSpec,
) -> tuple[Callable[[BaseException], bool] | None, frozenset[ErrorType] | None]:
    if on is None:
        return None, None
    if isinstance(on, type) and issubclass(on, BaseException):
        cls = on
        return (lambda e: isinstance(e, cls)), None
    if isinstance(on, tuple) and on and all(isinstance(c, type) and issubclass(c, BaseException) for c in on):
        classes = on
        return (lambda e: isinstance(e, classes)), None
    if isinstance(on, str):
        return None, frozenset({ErrorType(on)})
    if callable(on):
        return cast(Callable[[BaseException], bool], on), None
    if isinstance(on, Iterable):
        try:
            return None, frozenset(ErrorType(cast(str, x)) for x in on)
        except ValueError as e:
            raise ValueError(f"on=: {e}") from None
    raise TypeError(f"on= must be exception class(es), a predicate, or error type(s); got {on!r}")


class Retrier:
    """Runs callables under a :class:`RetryPolicy`; reusable and thread-safe.

    Keyword-only arguments (defaults in brackets):

    - ``policy`` [``RetryPolicy()``: 3 attempts, full jitter 0.5 s .. 30 s].
    - ``name`` [dependency, else ``"retrier"``]: label in errors, logs, metrics.
    - ``dependency`` [None]: names what is being called.  Retriers naming the
      same dependency share its :class:`RetryBudget` and :class:`LoadTracker`.
    - ``budget`` [the dependency's shared budget, or none without a
      dependency]: pass a :class:`RetryBudget` or ``None`` to disable.
    - ``load_tracker`` [the dependency's shared tracker when the policy is
      ``adaptive``, else none].
    - ``clock`` [``SYSTEM_CLOCK``]: a :class:`resurgo.clock.Clock`; tests pass a
      ``FakeClock``.
    - ``classifier`` [``resurgo.classifier.classify``, imported lazily].
    - ``on`` [None]: exception class(es) or a predicate make matching
      exceptions retryable whatever the classifier says and everything else
      not; error type(s) narrow ``policy.retryable_errors``.
    - ``before_sleep`` / ``on_give_up`` [()]: hooks; ``instruments`` [()]:
      objects with both methods.  A hook that raises is logged, not propagated:
      observing a retry must not change its outcome.
    - ``raise_retry_error`` [False]: raise :class:`RetryError` on give-up
      instead of the original exception.

    Cancellation: asyncio sleeps are cancellable.  A synchronous sleep on the
    system clock waits on an event, so :meth:`cancel` (from another thread)
    wakes every sleeping caller at once and makes them give up with reason
    ``cancelled``; otherwise only signals (``KeyboardInterrupt``) interrupt it.
    """

    __slots__ = (
        "_before_sleep",
        "_cancel",
        "_check_result",
        "_classifier",
        "_clock",
        "_forced",
        "_give_up_hooks",
        "_now",
        "_on_pred",
        "_raise_retry_error",
        "_stats",
        "_system_clock",
        "_types",
        "budget",
        "load_tracker",
        "name",
        "policy",
    )

    def __init__(
        self,
        *,
        policy: RetryPolicy | None = None,
        name: str | None = None,
        dependency: str | None = None,
        budget: RetryBudget | _Default | None = DEFAULT,
        load_tracker: LoadTracker | _Default | None = DEFAULT,
        clock: Clock | None = None,
        classifier: Classifier | None = None,
        on: OnSpec = None,
        before_sleep: Iterable[BeforeSleepHook] = (),
        on_give_up: Iterable[GiveUpHook] = (),
        instruments: Iterable[RetryInstrument] = (),
        raise_retry_error: bool = False,
    ) -> None:
        if policy is None:
            policy = DEFAULT_POLICY
        if not isinstance(policy, RetryPolicy):
            raise TypeError(f"policy must be a RetryPolicy, got {policy!r}")
        self.policy = policy
        self.name = name or dependency or "retrier"
        if isinstance(budget, _Default):
            budget = budget_for(dependency) if dependency else None
        self.budget = budget
        if isinstance(load_tracker, _Default):
            adaptive = policy.strategy == "adaptive" or any(p.strategy == "adaptive" for p in policy.overrides.values())
            if not adaptive:
                load_tracker = None
            else:
                load_tracker = load_tracker_for(dependency) if dependency else LoadTracker(clock=clock)
        self.load_tracker = load_tracker
        self._clock: Clock = clock or SYSTEM_CLOCK
        self._system_clock = isinstance(self._clock, SystemClock)
        # Bind the fastest time source: time.monotonic itself for the real clock.
        self._now: Callable[[], float] = time.monotonic if self._system_clock else self._clock.monotonic
        self._classifier = classifier
        self._on_pred, on_types = _split_on(on)
        self._forced = self._on_pred is not None
        types = frozenset(cast(Iterable[ErrorType], policy.retryable_errors))
        self._types = types if on_types is None else types & on_types
        self._check_result = policy.retry_on_result
        instruments = list(instruments)
        self._before_sleep: tuple[BeforeSleepHook, ...] = tuple(before_sleep) + tuple(
            i.before_sleep for i in instruments
        )
        self._give_up_hooks: tuple[GiveUpHook, ...] = tuple(on_give_up) + tuple(i.on_give_up for i in instruments)
        self._raise_retry_error = bool(raise_retry_error)
        self._stats = StatsRecorder()
        self._cancel = threading.Event()

    # ------------------------------------------------------------------ public

    def stats(self) -> RetryStats:
        """A consistent snapshot of this retrier's history."""
        return self._stats.snapshot()

    def cancel(self) -> None:
        """Wake every synchronous backoff sleep now and refuse further retries.

        Attempts in progress are not interrupted (Python cannot stop a running
        function safely); their failures give up with reason ``cancelled``.
        """
        self._cancel.set()

    def reset_cancel(self) -> None:
        """Allow retries again after :meth:`cancel`."""
        self._cancel.clear()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``fn(*args, **kwargs)``, retrying failures the policy allows."""
        if self.budget is not None:
            self.budget.deposit()
        start = self._now()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            return cast(R, self._retry_sync(fn, args, kwargs, start, exc, None))
        if self._check_result is not None and self._check_result(result):
            return cast(R, self._retry_sync(fn, args, kwargs, start, None, result))
        if self.load_tracker is not None:
            self.load_tracker.record(False)
        with self._stats.lock:
            self._stats.first_ok += 1
        return result

    async def call_async(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)``, retrying failures; backoff sleeps are cancellable."""
        if self.budget is not None:
            self.budget.deposit()
        start = self._now()
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            return cast(R, await self._retry_async(fn, args, kwargs, start, exc, None))
        if self._check_result is not None and self._check_result(result):
            return cast(R, await self._retry_async(fn, args, kwargs, start, None, result))
        if self.load_tracker is not None:
            self.load_tracker.record(False)
        with self._stats.lock:
            self._stats.first_ok += 1
        return result

    def wrap(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate ``fn`` (sync or ``async def``) so every call goes through this retrier.

        The wrapper inlines :meth:`call`'s success path with its state bound to
        local variables: this is what keeps a decorated call within a few
        hundred nanoseconds of a bare one.
        """
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(
                f"cannot retry generator function {fn!r}: its body runs only when iterated; "
                "retry the code that consumes it instead"
            )
        budget = self.budget
        deposit = budget.deposit if budget is not None else None
        now = self._now
        check = self._check_result
        tracker = self.load_tracker
        stats = self._stats
        lock = stats.lock

        if inspect.iscoroutinefunction(fn):
            afn = cast(Callable[..., Awaitable[Any]], fn)
            retry_async = self._retry_async

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                if deposit is not None:
                    deposit()
                start = now()
                try:
                    result = await afn(*args, **kwargs)
                except Exception as exc:
                    return await retry_async(afn, args, kwargs, start, exc, None)
                if check is not None and check(result):
                    return await retry_async(afn, args, kwargs, start, None, result)
                if tracker is not None:
                    tracker.record(False)
                with lock:
                    stats.first_ok += 1
                return result

            async_wrapper.retrier = self  # type: ignore[attr-defined]
            return cast(Callable[P, R], async_wrapper)

        retry_sync = self._retry_sync

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if deposit is not None:
                deposit()
            start = now()
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                return retry_sync(fn, args, kwargs, start, exc, None)
            if check is not None and check(result):
                return retry_sync(fn, args, kwargs, start, None, result)
            if tracker is not None:
                tracker.record(False)
            with lock:
                stats.first_ok += 1
            return result

        wrapper.retrier = self  # type: ignore[attr-defined]
        return cast(Callable[P, R], wrapper)

    def __iter__(self) -> Iterator[Attempt]:
        """``for attempt in retrier: with attempt: ...`` retries the block."""
        return _AttemptIterator(self)

    def __aiter__(self) -> AsyncIterator[Attempt]:
        """``async for attempt in retrier: with attempt: ...``; sleeps are cancellable."""
        return _AsyncAttemptIterator(self)

    def __repr__(self) -> str:
        return f"Retrier(name={self.name!r}, policy={self.policy!r}, budget={self.budget!r})"

    # ------------------------------------------------------------ failure path

    def _classify(self, exc: BaseException) -> ErrorClass:
        classifier = self._classifier
        if classifier is None:
            classifier = self._classifier = default_classifier()
        try:
            return classifier(exc)
        except Exception:  # a classifier bug must not mask the caller's real error
            _log.exception("classifier failed on %s; treating it as not retryable", type(exc).__name__)
            return _fallback_classify(RuntimeError()).with_(
                description="classifier failed", rule="resurgo.retrier.classifier_error"
            )

    def _decide(self, run: _Run, exc: BaseException | None) -> float | RetryError:
        """After attempt ``run.attempt`` failed: the delay before the next one, or why not."""
        if exc is None:
            ec = RESULT_REJECTED
            retryable = True
        elif self._on_pred is not None and not self._on_pred(exc):
            return self._info(run, GiveUpReason.NOT_RETRYABLE, None, exc, "not matched by on=")
        else:
            ec = self._classify(exc)
            retryable = self._forced or (ec.retryable and ec.type in self._types)
        run.error_class = ec
        tracker = self.load_tracker
        if tracker is not None:
            tracker.record(True)
        if not retryable:
            return self._info(run, GiveUpReason.NOT_RETRYABLE, ec, exc)
        p = self.policy.for_error(ec.type)
        max_attempts = p.max_attempts
        t = _testing._state
        if t.enabled:
            max_attempts = min(t.attempts, max_attempts) if t.cap else t.attempts
        if run.attempt >= max_attempts:
            return self._info(run, GiveUpReason.ATTEMPTS_EXHAUSTED, ec, exc, f"max_attempts={max_attempts}")
        calc = p.calculator
        delay = calc.calculate(run.attempt, p.base_delay, ec, run.prev_delay)
        if tracker is not None:
            delay = calc.adjust_for_load(delay, tracker.load())
        ra = ec.retry_after
        if ra is not None and ra > delay:
            delay = ra
        if run.deadline is not None:
            remaining = run.deadline - self._now()
            if ra is not None and ra > remaining:
                return self._info(
                    run,
                    GiveUpReason.RETRY_AFTER_BEYOND_DEADLINE,
                    ec,
                    exc,
                    f"retry_after={ra:.3f}s but only {max(remaining, 0.0):.3f}s left of "
                    f"max_elapsed={self.policy.max_elapsed}s",
                )
            if delay >= remaining:
                return self._info(
                    run,
                    GiveUpReason.DEADLINE,
                    ec,
                    exc,
                    f"next wait {delay:.3f}s, {max(remaining, 0.0):.3f}s left of "
                    f"max_elapsed={self.policy.max_elapsed}s",
                )
        if self._cancel.is_set():
            return self._info(run, GiveUpReason.CANCELLED, ec, exc)
        if self.budget is not None and not self.budget.try_withdraw():
            b = self.budget
            return self._info(
                run,
                GiveUpReason.BUDGET_EXHAUSTED,
                ec,
                exc,
                f"ratio={b.ratio}, min_retries_per_sec={b.min_retries_per_sec}, ttl={b.ttl}s",
            )
        run.prev_delay = delay
        if t.enabled:
            delay = 0.0
        if self._before_sleep:
            ev = RetryEvent(self.name, run.attempt, delay, ec, exc, self._now() - run.start)
            for hook in self._before_sleep:
                try:
                    hook(ev)
                except Exception:
                    _log.exception("before_sleep hook %r failed", hook)
        return delay

    def _info(
        self,
        run: _Run,
        reason: GiveUpReason,
        ec: ErrorClass | None,
        exc: BaseException | None,
        detail: str = "",
        result: Any = None,
    ) -> RetryError:
        cls = RetryBudgetExhausted if reason is GiveUpReason.BUDGET_EXHAUSTED else RetryError
        return cls(
            reason=reason,
            attempts=run.attempt,
            elapsed=self._now() - run.start,
            name=self.name,
            error_class=ec,
            last_exception=exc,
            detail=detail,
            last_result=result,
        )

    def _finish_give_up(self, run: _Run, info: RetryError) -> None:
        """Count the give-up and tell the hooks; the caller raises or returns."""
        self._stats.record_end(run.attempt, info.reason, run.slept, run.retries)
        if self._give_up_hooks:
            ev = GiveUpEvent(
                self.name,
                run.attempt,
                info.reason,
                info.error_class,
                info.last_exception,
                info.elapsed,
                info,
            )
            for hook in self._give_up_hooks:
                try:
                    hook(ev)
                except Exception:
                    _log.exception("on_give_up hook %r failed", hook)

    def _give_up(self, run: _Run, info: RetryError, exc: BaseException | None, result: Any) -> Any:
        """Raise what the configuration says, or return the rejected result."""
        self._finish_give_up(run, info)
        if exc is None:
            info.last_result = result
            if self._raise_retry_error or isinstance(info, RetryBudgetExhausted):
                raise info
            return result  # "original" semantics for results: the caller sees what it got
        if self._raise_retry_error or isinstance(info, RetryBudgetExhausted):
            raise info from exc
        if info.reason is not GiveUpReason.NOT_RETRYABLE or run.attempt > 1:
            attach(exc, info)
        raise exc

    def _succeeded(self, run: _Run) -> None:
        if self.load_tracker is not None:
            self.load_tracker.record(False)
        self._stats.record_end(run.attempt, None, run.slept, run.retries)

    def _sleep_sync(self, run: _Run, delay: float, exc: BaseException | None) -> RetryError | None:
        run.slept += delay
        run.retries += 1
        if delay <= 0.0:
            return None
        if self._system_clock:
            if self._cancel.wait(delay):
                return self._info(run, GiveUpReason.CANCELLED, run.error_class, exc)
        else:
            self._clock.sleep(delay)
            if self._cancel.is_set():
                return self._info(run, GiveUpReason.CANCELLED, run.error_class, exc)
        return None

    async def _sleep_async(self, run: _Run, delay: float) -> None:
        run.slept += delay
        run.retries += 1
        if delay <= 0.0:
            return
        try:
            await self._clock.asleep(delay)
        except BaseException:  # CancelledError: count it, then let it propagate
            self._stats.record_end(run.attempt, GiveUpReason.CANCELLED, run.slept, run.retries)
            raise

    def _retry_sync(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        start: float,
        exc: BaseException | None,
        result: Any,
    ) -> Any:
        run = _Run(start, self.policy.max_elapsed)
        check = self._check_result
        while True:
            decision = self._decide(run, exc)
            if isinstance(decision, RetryError):
                return self._give_up(run, decision, exc, result)
            cancelled = self._sleep_sync(run, decision, exc)
            if cancelled is not None:
                return self._give_up(run, cancelled, exc, result)
            run.attempt += 1
            try:
                result = fn(*args, **kwargs)
            except Exception as e:
                exc = e
                continue
            if check is not None and check(result):
                exc = None
                continue
            self._succeeded(run)
            return result

    async def _retry_async(
        self,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        start: float,
        exc: BaseException | None,
        result: Any,
    ) -> Any:
        run = _Run(start, self.policy.max_elapsed)
        check = self._check_result
        while True:
            decision = self._decide(run, exc)
            if isinstance(decision, RetryError):
                return self._give_up(run, decision, exc, result)
            await self._sleep_async(run, decision)
            run.attempt += 1
            try:
                result = await fn(*args, **kwargs)
            except Exception as e:
                exc = e
                continue
            if check is not None and check(result):
                exc = None
                continue
            self._succeeded(run)
            return result


class Attempt:
    """One try of a retried block: ``with attempt:`` reports its outcome to the retrier.

    ``retry_on_result`` does not apply to blocks (they have no return value).
    """

    __slots__ = ("_it", "num")

    def __init__(self, it: _AttemptIterator | _AsyncAttemptIterator, num: int) -> None:
        self._it = it
        self.num = num

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self,
        et: type[BaseException] | None,
        ev: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        it = self._it
        if ev is None:
            return False
        if not isinstance(ev, Exception):  # cancellation, KeyboardInterrupt, ...
            it.done = True
            return False
        r = it.retrier
        run = it.run
        if run is None:
            run = it.run = _Run(it.start, r.policy.max_elapsed)
        decision = r._decide(run, ev)
        if isinstance(decision, RetryError):
            it.done = True
            r._give_up(run, decision, ev, None)
            return False  # not reached: _give_up raises for exceptions
        it.delay = decision
        it.last_exc = ev
        return True  # swallow: the iterator sleeps and yields the next attempt

    def __repr__(self) -> str:
        return f"<Attempt {self.num}>"


class _AttemptIterator:
    __slots__ = ("delay", "done", "last_exc", "num", "retrier", "run", "start")

    def __init__(self, retrier: Retrier) -> None:
        self.retrier = retrier
        self.run: _Run | None = None
        self.delay: float | None = None
        self.done = False
        self.last_exc: BaseException | None = None
        self.num = 0
        self.start = 0.0

    def __iter__(self) -> _AttemptIterator:
        return self

    def _advance(self) -> Attempt | float | None:
        """Next attempt, a delay to sleep first, or None when the loop is over."""
        r = self.retrier
        if self.num == 0:
            if r.budget is not None:
                r.budget.deposit()
            self.start = r._now()
            self.num = 1
            return Attempt(self, 1)
        if self.done:
            return None
        if self.delay is None:  # the last block did not fail: success
            self.done = True
            self.last_exc = None
            if self.run is None:
                if r.load_tracker is not None:
                    r.load_tracker.record(False)
                with r._stats.lock:
                    r._stats.first_ok += 1
            else:
                r._succeeded(self.run)
            return None
        return self.delay

    def __next__(self) -> Attempt:
        step = self._advance()
        if step is None:
            raise StopIteration
        if isinstance(step, Attempt):
            return step
        assert self.run is not None
        cancelled = self.retrier._sleep_sync(self.run, step, self.last_exc)
        if cancelled is not None:
            self.done = True
            exc, self.last_exc = self.last_exc, None
            self.retrier._give_up(self.run, cancelled, exc, None)  # raises
        return self._next_attempt()

    def _next_attempt(self) -> Attempt:
        assert self.run is not None
        self.delay = None
        self.last_exc = None
        self.run.attempt += 1
        self.num = self.run.attempt
        return Attempt(self, self.num)


class _AsyncAttemptIterator(_AttemptIterator):
    __slots__ = ()

    def __aiter__(self) -> _AsyncAttemptIterator:
        return self

    async def __anext__(self) -> Attempt:
        step = self._advance()
        if step is None:
            raise StopAsyncIteration
        if isinstance(step, Attempt):
            return step
        assert self.run is not None
        try:
            await self.retrier._sleep_async(self.run, step)
        except BaseException:
            self.done = True
            raise
        return self._next_attempt()
