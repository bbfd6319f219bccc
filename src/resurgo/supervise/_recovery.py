"""Choosing a recovery: strategies, their learned success rates, and the restart-intensity limit.

This module is pure decision logic (no processes, no I/O): given what failed and
what we know about the session, it returns a :class:`RecoveryPlan` that the
supervisor carries out.  Keeping the decision separate from the mechanics makes
every branch of the seed's flow (detect -> classify -> retryable? -> backoff ->
breaker -> strategy) testable with a fake clock in microseconds.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from resurgo._endpoints import endpoint_name
from resurgo.classifier._types import ErrorClass, ErrorType, Observation, Strategy
from resurgo.clock import SYSTEM_CLOCK, Clock

Action = Literal["start", "resume", "fork", "none"]


@dataclass(frozen=True, slots=True)
class RecoveryContext:
    """What the orchestrator knows when a run has failed."""

    job_id: str
    error: ErrorClass
    observation: Observation | None = None
    session_id: str | None = None
    #: a transcript exists for ``session_id`` (the CLI wrote at least one turn)
    has_transcript: bool = False
    #: the previous recovery was a resume and it failed because of the session itself
    resume_failed: bool = False
    #: a fork or a fresh start was already tried because resuming failed
    forked_once: bool = False
    #: models/endpoints still available for failover (first is preferred)
    fallback_models: Sequence[str] = ()
    fallback_endpoints: Sequence[str] = ()
    #: a local resource (memory, file descriptors) ran out: cleaning up may help
    local_resource: bool = False
    #: the fault's kind (``resurgo.store.runs.FAULT_KINDS``; None: unknown) and whether the failed
    #: attempt made progress since the previous recovery: both shape the back-off
    fault_kind: str | None = None
    progressed: bool = False


@dataclass(frozen=True, slots=True)
class RecoveryPlan:
    """What to do next. ``action == "none"`` with ``give_up`` means the job fails."""

    strategy: Strategy
    action: Action
    reason: str
    wait_s: float = 0.0
    #: the wait is imposed by the server (a quota reset): it does not count as a crash
    server_wait: bool = False
    model: str | None = None
    endpoint: str | None = None
    cleanup: bool = False
    alert: bool = False
    give_up: bool = False


class RecoveryStrategy(Protocol):
    """The seed's RecoveryStrategy: can it recover, what it does, how long, how often it works."""

    name: Strategy

    def can_recover(self, ctx: RecoveryContext) -> bool: ...

    def plan(self, ctx: RecoveryContext) -> RecoveryPlan: ...

    def estimated_time(self) -> float: ...


# -- learned success rates ------------------------------------------------------------------


class StrategyHistory:
    """Outcomes per (strategy, error type), with a Laplace prior so new strategies get tried.

    Success rates feed the ranking of strategies that can all recover a failure:
    the orchestrator prefers the one that has worked most often for this kind of
    error, and ``estimated_time`` learns from observed recovery durations (EWMA).
    """

    def __init__(self, *, prior_successes: float = 1.0, prior_failures: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._ok: dict[tuple[str, str], float] = {}
        self._fail: dict[tuple[str, str], float] = {}
        self._time: dict[str, float] = {}
        self._prior = (prior_successes, prior_failures)

    def record(
        self,
        strategy: Strategy | str,
        error_type: ErrorType | str | None,
        *,
        succeeded: bool,
        duration_s: float | None = None,
    ) -> None:
        key = (str(strategy), str(error_type or ""))
        with self._lock:
            table = self._ok if succeeded else self._fail
            table[key] = table.get(key, 0.0) + 1.0
            if duration_s is not None and duration_s >= 0:
                old = self._time.get(str(strategy))
                self._time[str(strategy)] = duration_s if old is None else 0.8 * old + 0.2 * duration_s

    def success_rate(self, strategy: Strategy | str, error_type: ErrorType | str | None = None) -> float:
        key = (str(strategy), str(error_type or ""))
        with self._lock:
            if error_type is None:
                ok = sum(v for (s, _), v in self._ok.items() if s == key[0])
                fail = sum(v for (s, _), v in self._fail.items() if s == key[0])
            else:
                ok = self._ok.get(key, 0.0)
                fail = self._fail.get(key, 0.0)
        a, b = self._prior
        return (ok + a) / (ok + fail + a + b)

    def estimated_time(self, strategy: Strategy | str, default: float) -> float:
        with self._lock:
            return self._time.get(str(strategy), default)

    def load(self, rows: Iterable[Mapping[str, object]]) -> None:
        """Seed from stored recoveries (``strategy``, ``error_type``, ``succeeded``, times)."""
        for r in rows:
            ok = r.get("succeeded")
            if ok is None:
                continue
            dur = None
            restored, detected = r.get("restored_at"), r.get("detected_at")
            if isinstance(restored, int | float) and isinstance(detected, int | float):
                dur = float(restored) - float(detected)
            self.record(str(r.get("strategy")), str(r.get("error_type") or ""), succeeded=bool(ok), duration_s=dur)


# -- the strategies -------------------------------------------------------------------------


@dataclass
class _Base:
    history: StrategyHistory
    default_time: float = 2.0
    name: Strategy = Strategy.NONE

    def estimated_time(self) -> float:
        return self.history.estimated_time(self.name, self.default_time)

    def success_rate(self, error_type: ErrorType | None = None) -> float:
        return self.history.success_rate(self.name, error_type)


@dataclass
class ResumeSession(_Base):
    """Continue the same conversation with ``--resume``: no work already done is lost."""

    name: Strategy = Strategy.RESUME_SESSION

    def can_recover(self, ctx: RecoveryContext) -> bool:
        return ctx.error.retryable and ctx.has_transcript and not ctx.resume_failed

    def plan(self, ctx: RecoveryContext) -> RecoveryPlan:
        return RecoveryPlan(self.name, "resume", f"resume session {ctx.session_id} after {_what(ctx)}")


@dataclass
class RestartProcess(_Base):
    """Start over with the original prompt: the CLI died before writing any transcript."""

    name: Strategy = Strategy.RESTART_PROCESS

    def can_recover(self, ctx: RecoveryContext) -> bool:
        return ctx.error.retryable and not ctx.has_transcript

    def plan(self, ctx: RecoveryContext) -> RecoveryPlan:
        return RecoveryPlan(
            self.name, "start", f"restart from the original prompt after {_what(ctx)} (no transcript to resume)"
        )


@dataclass
class ForkSession(_Base):
    """Resuming failed because of the session itself: fork it (or start fresh), once."""

    name: Strategy = Strategy.FORK_SESSION

    def can_recover(self, ctx: RecoveryContext) -> bool:
        if ctx.forked_once:
            return False
        return ctx.resume_failed or _session_broken(ctx.error)

    def plan(self, ctx: RecoveryContext) -> RecoveryPlan:
        if ctx.has_transcript and not _no_conversation(ctx.error):
            return RecoveryPlan(self.name, "fork", f"fork session {ctx.session_id}: {ctx.error.description}")
        return RecoveryPlan(self.name, "start", f"start a fresh session: {ctx.error.description}")


@dataclass
class WaitUntilReset(_Base):
    """A quota or rate limit with a known reset: sleep until then, then resume.

    Not a crash: it does not count against the restart-intensity limit.
    """

    name: Strategy = Strategy.WAIT_UNTIL
    max_wait_s: float = 6 * 3600.0

    def can_recover(self, ctx: RecoveryContext) -> bool:
        e = ctx.error
        return (
            e.retryable
            and e.type is ErrorType.RESOURCE
            and e.retry_after is not None
            and e.retry_after <= self.max_wait_s
        )

    def plan(self, ctx: RecoveryContext) -> RecoveryPlan:
        wait = max(0.0, float(ctx.error.retry_after or 0.0))
        action: Action = "resume" if ctx.has_transcript and not ctx.resume_failed else "start"
        return RecoveryPlan(
            self.name, action, f"wait {wait:.0f}s for the limit to reset, then {action}", wait_s=wait, server_wait=True
        )


@dataclass
class CleanupResources(_Base):
    """Local memory or descriptors ran out: clean up leftovers, then resume."""

    name: Strategy = Strategy.CLEANUP_RESOURCES

    def can_recover(self, ctx: RecoveryContext) -> bool:
        return ctx.error.retryable and ctx.local_resource

    def plan(self, ctx: RecoveryContext) -> RecoveryPlan:
        action: Action = "resume" if ctx.has_transcript and not ctx.resume_failed else "start"
        return RecoveryPlan(self.name, action, f"clean up resources, then {action}", cleanup=True)


@dataclass
class Failover(_Base):
    """Overload or a failing endpoint: move to a fallback model or another endpoint."""

    name: Strategy = Strategy.FAILOVER

    def can_recover(self, ctx: RecoveryContext) -> bool:
        e = ctx.error
        return (
            e.retryable
            and e.type in (ErrorType.RESOURCE, ErrorType.INTERNAL, ErrorType.NETWORK)
            and bool(ctx.fallback_models or ctx.fallback_endpoints)
        )

    def plan(self, ctx: RecoveryContext) -> RecoveryPlan:
        action: Action = "resume" if ctx.has_transcript and not ctx.resume_failed else "start"
        if ctx.fallback_endpoints:
            ep = ctx.fallback_endpoints[0]
            return RecoveryPlan(self.name, action, f"fail over to endpoint {endpoint_name(ep)}", endpoint=ep)
        m = ctx.fallback_models[0]
        return RecoveryPlan(self.name, action, f"fail over to model {m}", model=m)


@dataclass
class Escalate(_Base):
    """Credentials or billing: retrying cannot help and would hammer the API; alert a human."""

    name: Strategy = Strategy.ESCALATE

    def can_recover(self, ctx: RecoveryContext) -> bool:
        return not ctx.error.retryable and (ctx.error.type is ErrorType.AUTH or ctx.error.strategy is Strategy.ESCALATE)

    def plan(self, ctx: RecoveryContext) -> RecoveryPlan:
        return RecoveryPlan(self.name, "none", f"escalated: {ctx.error.description}", alert=True, give_up=True)


@dataclass
class Abort(_Base):
    """Nothing can fix it by trying again: fail with the classifier's explanation."""

    name: Strategy = Strategy.ABORT

    def can_recover(self, ctx: RecoveryContext) -> bool:
        return True

    def plan(self, ctx: RecoveryContext) -> RecoveryPlan:
        kind = ctx.error.type.value if ctx.error.type else "unknown"
        return RecoveryPlan(self.name, "none", f"not recoverable ({kind}): {ctx.error.description}", give_up=True)


def _what(ctx: RecoveryContext) -> str:
    t = ctx.error.type.value if ctx.error.type else "failure"
    return f"{t} ({ctx.error.description})"


def _no_conversation(e: ErrorClass) -> bool:
    return e.category == "session_not_found"


#: Classifier categories meaning the session itself cannot continue as it is.
_BROKEN_SESSION = frozenset({"orphan_tool_use", "context_overflow", "session_not_found"})


def _session_broken(e: ErrorClass) -> bool:
    """The session itself cannot continue: orphan tool_use, context overflow, missing transcript.

    Keyed on the classifier's category and strategy, never on description words,
    which quote whatever the API or the CLI said.
    """
    return e.strategy is Strategy.FORK_SESSION or e.category in _BROKEN_SESSION


# -- restart intensity ------------------------------------------------------------------------


#: Fault kinds whose back-off protects a struggling API: they share one back-off streak.
OVERLOAD_KINDS = frozenset({"429", "529", "5xx", "network", "stall"})


def _family(kind: str | None) -> str:
    return "overload" if kind in OVERLOAD_KINDS else (kind or "?")


@dataclass
class RestartIntensity:
    """At most ``max_restarts`` recoveries in ``period`` seconds, with a back-off that grows without progress.

    Erlang/OTP's intensity/period bounds crash loops: every recovery counts,
    whatever its kind and however far the run got.  The back-off is
    Kubernetes' CrashLoopBackOff, ``min(backoff_cap, backoff_base * 2**(n-1))``,
    but ``n`` counts only the failures in a row that made no progress and are
    of the same family (the overload kinds 429/529/5xx/network/stall share one),
    within ``period``.  So, with ``progress_aware`` (the default):

    * a CLI killed from outside (``fault_kind="kill"``) restarts at once: a
      signal says nothing about an overloaded API;
    * a run that made progress since its last recovery starts its count anew;
    * a fault of an unrelated kind does not inherit another kind's back-off.

    ``progress_aware=False`` is the old rule: the n-th recovery in the period
    waits for the n-th back-off, whatever happened.  Waits imposed by the
    server (a quota reset) are neither counted nor backed off here.
    """

    max_restarts: int = 5
    period: float = 300.0
    backoff_base: float = 0.25
    backoff_cap: float = 30.0
    clock: Clock = SYSTEM_CLOCK
    progress_aware: bool = True
    _times: deque[float] = field(default_factory=deque)
    #: monotonic times of the current run of failures without progress, and their family
    _streak: deque[float] = field(default_factory=deque)
    _streak_family: str | None = None

    def __post_init__(self) -> None:
        if self.max_restarts < 0 or self.period <= 0 or self.backoff_base < 0 or self.backoff_cap < 0:
            raise ValueError("RestartIntensity: max_restarts >= 0, period > 0, backoffs >= 0 required")

    def _prune(self, now: float) -> None:
        for q in (self._times, self._streak):
            while q and now - q[0] > self.period:
                q.popleft()

    def recent(self) -> int:
        self._prune(self.clock.monotonic())
        return len(self._times)

    def exceeded(self) -> bool:
        return self.recent() >= self.max_restarts

    def _backoff(self, n: int) -> float:
        return 0.0 if n <= 0 else float(min(self.backoff_cap, self.backoff_base * (2 ** (n - 1))))

    def next_backoff(self, *, fault_kind: str | None = None, progressed: bool = False) -> float:
        """The back-off before recovering from a failure of ``fault_kind`` (progress: see the class)."""
        if not self.progress_aware:
            return self._backoff(self.recent())
        if fault_kind == "kill" or progressed:
            return 0.0
        self._prune(self.clock.monotonic())
        if self._streak_family != _family(fault_kind):
            return 0.0
        return self._backoff(len(self._streak))

    def record(self, *, fault_kind: str | None = None, progressed: bool = False) -> None:
        """Count a recovery (for the limit) and extend or restart the back-off streak."""
        now = self.clock.monotonic()
        self._prune(now)
        self._times.append(now)
        fam = _family(fault_kind)
        if progressed or fault_kind == "kill" or fam != self._streak_family:
            self._streak.clear()
        self._streak_family = fam
        self._streak.append(now)


# -- the orchestrator's choice ----------------------------------------------------------------

#: Preference when several strategies can recover the same failure; learned success
#: rates re-rank within this order (a strategy that keeps failing sinks).
_ORDER: tuple[Strategy, ...] = (
    Strategy.ESCALATE,
    Strategy.FORK_SESSION,
    Strategy.WAIT_UNTIL,
    Strategy.CLEANUP_RESOURCES,
    Strategy.RESUME_SESSION,
    Strategy.RESTART_PROCESS,
    Strategy.FAILOVER,
    Strategy.ABORT,
)


def default_strategies(history: StrategyHistory) -> list[RecoveryStrategy]:
    return [
        Escalate(history, default_time=0.0),
        ForkSession(history, default_time=2.0),
        WaitUntilReset(history, default_time=60.0),
        CleanupResources(history, default_time=1.0),
        ResumeSession(history, default_time=1.5),
        RestartProcess(history, default_time=1.0),
        Failover(history, default_time=1.5),
        Abort(history, default_time=0.0),
    ]


class RecoveryPlanner:
    """Picks the strategy for a failure and applies the restart-intensity limit.

    The ranking: strategies that can recover, in the taxonomy's order of
    specificity; among recoverable retry strategies, one whose learned success
    rate for this error type is below ``min_success_rate`` is skipped when an
    alternative exists (e.g. resuming keeps failing -> restart or fail over).
    """

    def __init__(
        self,
        *,
        strategies: Sequence[RecoveryStrategy] | None = None,
        history: StrategyHistory | None = None,
        min_success_rate: float = 0.2,
    ) -> None:
        self.history = history or StrategyHistory()
        self.strategies = list(strategies) if strategies is not None else default_strategies(self.history)
        self.min_success_rate = min_success_rate

    def candidates(self, ctx: RecoveryContext) -> list[RecoveryStrategy]:
        order = {s: i for i, s in enumerate(_ORDER)}
        able = [s for s in self.strategies if s.can_recover(ctx)]
        able.sort(key=lambda s: order.get(s.name, len(order)))
        return able

    def choose(self, ctx: RecoveryContext, intensity: RestartIntensity | None = None) -> RecoveryPlan:
        able = self.candidates(ctx)
        if not able:  # pragma: no cover - Abort always can
            return Abort(self.history).plan(ctx)
        pick = able[0]
        if pick.name not in (Strategy.ESCALATE, Strategy.ABORT):
            good = [
                s
                for s in able
                if s.name not in (Strategy.ESCALATE, Strategy.ABORT)
                and self.history.success_rate(s.name, ctx.error.type) >= self.min_success_rate
            ]
            if good:
                pick = good[0]
        plan = pick.plan(ctx)
        if plan.give_up or intensity is None or plan.server_wait:
            return plan
        if intensity.exceeded():
            return RecoveryPlan(
                Strategy.ABORT,
                "none",
                f"gave up: {intensity.recent()} recoveries within {intensity.period:.0f}s "
                f"(limit {intensity.max_restarts}); last failure: {_what(ctx)}",
                alert=True,
                give_up=True,
            )
        backoff = intensity.next_backoff(fault_kind=ctx.fault_kind, progressed=ctx.progressed)
        wait = max(plan.wait_s, backoff)
        if ctx.error.retry_after is not None:
            wait = max(wait, float(ctx.error.retry_after))
        if wait != plan.wait_s:
            plan = RecoveryPlan(
                plan.strategy,
                plan.action,
                plan.reason,
                wait_s=wait,
                server_wait=plan.server_wait,
                model=plan.model,
                endpoint=plan.endpoint,
                cleanup=plan.cleanup,
                alert=plan.alert,
                give_up=plan.give_up,
            )
        return plan


__all__ = [
    "OVERLOAD_KINDS",
    "Abort",
    "CleanupResources",
    "Escalate",
    "Failover",
    "ForkSession",
    "RecoveryContext",
    "RecoveryPlan",
    "RecoveryPlanner",
    "RecoveryStrategy",
    "RestartIntensity",
    "RestartProcess",
    "ResumeSession",
    "StrategyHistory",
    "WaitUntilReset",
    "default_strategies",
]
