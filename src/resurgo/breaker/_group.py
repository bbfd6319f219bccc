"""Several backends, one breaker each: route calls to one that is healthy.

The seed's load balancer and resurgo's failover in one object: API endpoints,
API keys or models are members; a call goes to a member whose breaker admits
it.  HALF_OPEN members come first, for their few probes (otherwise a recovered
primary would never be probed again), then CLOSED members (in priority,
round-robin or smooth weighted round-robin order), then OPEN ones whose wait is
over soonest.  Only when every breaker
rejects does the group raise, with the soonest ``retry_after``.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeGuard, TypeVar

from resurgo.breaker._breaker import CircuitBreaker, Classifier, Permit
from resurgo.breaker._config import CircuitThresholds
from resurgo.breaker._events import CircuitOpenError, CircuitState, Outcome
from resurgo.clock import Clock

__all__ = ["AllBackendsOpenError", "Backend", "BreakerGroup", "GroupStrategy"]

T = TypeVar("T")
R = TypeVar("R")

GroupStrategy = Literal["priority", "round_robin", "weighted"]
_STRATEGIES = ("priority", "round_robin", "weighted")
_CLOSED_LIKE = (CircuitState.CLOSED, CircuitState.METRICS_ONLY, CircuitState.DISABLED)
_FAILOVER_OUTCOMES = (Outcome.FAILURE, Outcome.FORCED_OPEN, Outcome.RATE_LIMITED, Outcome.STALE)


@dataclass(eq=False, slots=True)
class Backend(Generic[T]):
    """One member: what to call (``target``), its breaker and its weight."""

    name: str
    target: T
    breaker: CircuitBreaker
    weight: int = 1
    _current: int = field(default=0, repr=False)


class AllBackendsOpenError(CircuitOpenError):
    """Every member's breaker rejected the call.  ``errors`` maps member name to its
    rejection; ``retry_after`` is the soonest of theirs (None if none is known)."""

    def __init__(self, name: str, errors: Mapping[str, CircuitOpenError]) -> None:
        known = [e.retry_after for e in errors.values() if e.retry_after is not None]
        super().__init__(
            name, CircuitState.OPEN, min(known) if known else None,
            "all backends open" if errors else "no backends",
        )
        self.errors = dict(errors)


class BreakerGroup(Generic[T]):
    """Route calls among backends by the health of their breakers.

    ``strategy``: ``"priority"`` (failover: always the first healthy member in
    the order they were added), ``"round_robin"`` (spread over healthy members)
    or ``"weighted"`` (smooth weighted round-robin, nginx's algorithm, so a
    weight-3 member gets 3 of every 4 calls, interleaved).  Members without an
    explicit breaker get one built from ``thresholds``/``clock``/``classifier``.
    """

    def __init__(
        self,
        backends: Mapping[str, T] | Iterable[tuple[str, T]] = (),
        *,
        name: str = "group",
        strategy: GroupStrategy = "priority",
        thresholds: CircuitThresholds | None = None,
        clock: Clock | None = None,
        classifier: Classifier | None = None,
    ) -> None:
        if strategy not in _STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(_STRATEGIES)}, got {strategy!r}")
        self.name = name
        self.strategy: GroupStrategy = strategy
        self._thresholds = thresholds
        self._clock = clock
        self._classifier = classifier
        self._members: list[Backend[T]] = []
        self._lock = threading.Lock()
        self._rr = itertools.count()
        items = backends.items() if isinstance(backends, Mapping) else backends
        for n, target in items:
            self.add(n, target)

    # ------------------------------------------------------------------ membership
    def add(
        self, name: str, target: T, *, weight: int = 1, breaker: CircuitBreaker | None = None
    ) -> Backend[T]:
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
            raise ValueError(f"weight must be a positive integer, got {weight!r}")
        if breaker is None:
            breaker = CircuitBreaker(
                f"{self.name}/{name}", thresholds=self._thresholds, clock=self._clock,
                classifier=self._classifier,
            )
        b = Backend(name, target, breaker, weight)
        with self._lock:
            if any(m.name == name for m in self._members):
                raise ValueError(f"backend {name!r} is already in group {self.name!r}")
            self._members = [*self._members, b]
        return b

    def remove(self, name: str) -> None:
        with self._lock:
            kept = [m for m in self._members if m.name != name]
            if len(kept) == len(self._members):
                raise KeyError(name)
            self._members = kept

    @property
    def backends(self) -> tuple[Backend[T], ...]:
        return tuple(self._members)

    def __getitem__(self, name: str) -> Backend[T]:
        for m in self._members:
            if m.name == name:
                return m
        raise KeyError(name)

    def __len__(self) -> int:
        return len(self._members)

    def states(self) -> dict[str, CircuitState]:
        return {m.name: m.breaker.state for m in self._members}

    # ------------------------------------------------------------------ routing
    def order(self) -> list[Backend[T]]:
        """Members in the order the next call will try them."""
        closed: list[Backend[T]] = []
        half: list[Backend[T]] = []
        opened: list[Backend[T]] = []
        forced: list[Backend[T]] = []
        for m in self._members:  # one pass: this runs on every call
            s = m.breaker.state
            if s in _CLOSED_LIKE:
                closed.append(m)
            elif s is CircuitState.HALF_OPEN:
                half.append(m)
            elif s is CircuitState.OPEN:
                opened.append(m)
            elif s is CircuitState.FORCED_OPEN:
                forced.append(m)
        if len(closed) > 1:
            if self.strategy == "round_robin":
                k = next(self._rr) % len(closed)
                closed = closed[k:] + closed[:k]
            elif self.strategy == "weighted":
                with self._lock:
                    total = 0
                    best = closed[0]
                    for m in closed:
                        m._current += m.weight
                        total += m.weight
                        if m._current > best._current:
                            best = m
                    best._current -= total
                closed.remove(best)
                closed.insert(0, best)
        if len(opened) > 1:
            opened.sort(key=lambda m: m.breaker.retry_after or 0.0)
        # Half-open members go first: their probes are bounded (half_open_max_calls)
        # and are the only way they can close again; behind closed members they would
        # never see a call and stay half-open for ever.
        return half + closed + opened + forced

    def pick(self) -> Backend[T]:
        """The member the next call would use (takes no permit, so it can go stale)."""
        for m in self.order():
            if m.breaker.is_call_permitted():
                return m
        raise self._all_open()

    def _all_open(self) -> AllBackendsOpenError:
        errors: dict[str, CircuitOpenError] = {}
        for m in self._members:
            br = m.breaker
            errors[m.name] = CircuitOpenError(br.name, br.state, br.retry_after)
        return AllBackendsOpenError(self.name, errors)

    def _permits(self, errors: dict[str, CircuitOpenError]) -> Iterator[tuple[Backend[T], Permit]]:
        """Each member in :meth:`order` whose breaker grants a permit, with the permit;
        the rejections are collected in ``errors`` for :class:`AllBackendsOpenError`."""
        for m in self.order():
            try:
                permit = m.breaker.acquire()
            except CircuitOpenError as e:
                errors[m.name] = e
            else:
                yield m, permit

    def acquire(self) -> tuple[Backend[T], Permit]:
        """A member and a permit on its breaker; raises :class:`AllBackendsOpenError`."""
        errors: dict[str, CircuitOpenError] = {}
        for got in self._permits(errors):
            return got
        raise AllBackendsOpenError(self.name, errors)

    def call(self, fn: Callable[[T], R], *, failover_on_error: bool = False) -> R:
        """``fn(target)`` on a healthy member.

        With ``failover_on_error`` a call whose error the breaker counted
        against the member (not a validation error or a cancellation) is tried
        once on each remaining member before the last error is raised.
        """
        errors: dict[str, CircuitOpenError] = {}
        last: Exception | None = None
        for m, permit in self._permits(errors):
            try:
                result = fn(m.target)
            except BaseException as exc:
                if _fails_over(exc, permit, failover_on_error):
                    last = exc
                    continue
                raise
            permit.on_success(result, check_result=True)
            return result
        raise last if last is not None else AllBackendsOpenError(self.name, errors)

    async def call_async(
        self, fn: Callable[[T], Awaitable[R]], *, failover_on_error: bool = False
    ) -> R:
        """``await fn(target)`` on a healthy member; see :meth:`call`."""
        errors: dict[str, CircuitOpenError] = {}
        last: Exception | None = None
        for m, permit in self._permits(errors):
            try:
                result = await fn(m.target)
            except BaseException as exc:
                if _fails_over(exc, permit, failover_on_error):
                    last = exc
                    continue
                raise
            permit.on_success(result, check_result=True)
            return result
        raise last if last is not None else AllBackendsOpenError(self.name, errors)


def _fails_over(exc: BaseException, permit: Permit, failover_on_error: bool) -> TypeGuard[Exception]:
    """Record ``exc`` on the member's permit; whether the call should move on to the next
    member (only errors the breaker counted against the member, and only when asked)."""
    outcome = permit.on_error(exc)
    return failover_on_error and isinstance(exc, Exception) and outcome in _FAILOVER_OUTCOMES
