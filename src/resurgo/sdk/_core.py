"""The machinery shared by the resilient ``query()`` and ``ResilientClient``.

One :class:`_Run` follows one unit of work (a ``query()`` call, or one turn of
a client) across its CLI runs: it decides how the next run starts (resume the
session, or start over), filters what the caller sees so nothing is shown
twice, classifies each failure, reports to the breaker, and writes metrics.
The retry decision itself (attempts, backoff, ``retry_after``, deadline,
budget) is the :class:`resurgo.retrier.Retrier`'s, reused through its
``async for attempt in retrier`` form so a backoff sleep stays cancellable and
``set_testing`` removes it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import Counter
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ResultMessage,
    SystemMessage,
    UserMessage,
)

from resurgo._continuation import check_continuation, render_continuation
from resurgo._endpoints import endpoint_name
from resurgo.breaker import CircuitBreaker, CircuitOpenError, CircuitThresholds, Permit
from resurgo.classifier import ErrorClass, ErrorType, Severity, Strategy
from resurgo.classifier import classify as _default_classify
from resurgo.clock import SYSTEM_CLOCK, Clock
from resurgo.retrier import GiveUpReason, Retrier, RetryBudget, RetryError, RetryPolicy, budget_for, retry_info
from resurgo.sdk._errors import RecoveryEvent, ResilientSDKError, SDKAttemptError, StopReason
from resurgo.sdk._evidence import ClassifierFn, Evidence, classify_evidence, endpoint_of
from resurgo.sdk._leftovers import DEFAULT_LEFTOVER_GRACE
from resurgo.sdk._store import RunRecorder
from resurgo.store import Store

_log = logging.getLogger("resurgo.sdk")

#: Four runs, full-jitter backoff from 1 s up to 60 s: a CLI run is expensive and
#: the CLI already retries each API call itself (``CLAUDE_CODE_MAX_RETRIES``),
#: so resurgo's layer retries the *run* a few times, slowly.
DEFAULT_POLICY: Final = RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=60.0)

#: What the resumed session is told.  Deliberately free of the original prompt:
#: the prompt is already in the transcript, and repeating it would make the
#: model start the task again.
DEFAULT_CONTINUATION: Final = (
    "The previous run of this session was interrupted by an error ({description}). "
    "Continue the task from where it stopped; do not repeat steps that already completed."
)

#: Failures that say something about the endpoint; the breaker counts only these.
#: A crashed CLI or a bad prompt is not the API's fault.
ENDPOINT_TYPES: Final = frozenset({ErrorType.NETWORK, ErrorType.TIMEOUT, ErrorType.RESOURCE, ErrorType.AUTH})

ContinuationSpec = str | Callable[[ErrorClass], str]
RecoveryHook = Callable[[RecoveryEvent], object]
GiveUpHook = Callable[[ResilientSDKError], object]


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


#: "Use the endpoint's shared object" for ``breaker=`` and ``budget=`` (``None`` disables).
DEFAULT: Final = _Default()

_SESSION_MISSING = ErrorClass(
    type=ErrorType.PROCESS,
    severity=Severity.MEDIUM,
    category="session_missing",
    description="the session to resume has no transcript; starting over",
    retryable=True,
    strategy=Strategy.RESTART_PROCESS,
    rule="resurgo.sdk.session_missing",
    confidence=0.9,
)

_GIVE_UP_REASONS: dict[GiveUpReason, StopReason] = {
    GiveUpReason.NOT_RETRYABLE: StopReason.NOT_RETRYABLE,
    GiveUpReason.ATTEMPTS_EXHAUSTED: StopReason.ATTEMPTS_EXHAUSTED,
    GiveUpReason.DEADLINE: StopReason.DEADLINE,
    GiveUpReason.RETRY_AFTER_BEYOND_DEADLINE: StopReason.RETRY_AFTER_BEYOND_DEADLINE,
    GiveUpReason.BUDGET_EXHAUSTED: StopReason.BUDGET_EXHAUSTED,
    GiveUpReason.CANCELLED: StopReason.CANCELLED,
}

# --------------------------------------------------------------------------- breakers

_breakers: dict[str, CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def _breaker_classifier(exc: BaseException) -> ErrorClass:
    """The verdict the wrapper already computed, else the taxonomy's."""
    if isinstance(exc, SDKAttemptError):
        return exc.error_class
    return _default_classify(exc)


def breaker_for(endpoint: str, *, thresholds: CircuitThresholds | None = None) -> CircuitBreaker:
    """The process-wide breaker of an API endpoint (``ANTHROPIC_BASE_URL``), created on first use.

    Every resilient query and client talking to the same endpoint shares it, so
    one caller's 529 storm protects the others.  An auth failure forces it open
    until :meth:`CircuitBreaker.reset` (bad credentials do not heal by waiting).
    """
    key = endpoint.rstrip("/")
    with _breakers_lock:
        b = _breakers.get(key)
        if b is None:
            b = _breakers[key] = CircuitBreaker(
                f"claude-api {endpoint_name(key)}", thresholds=thresholds, classifier=_breaker_classifier
            )
        elif thresholds is not None and b.thresholds != thresholds:
            raise ValueError(f"the breaker for {key!r} already exists with other thresholds")
        return b


# --------------------------------------------------------------------------- stats


@dataclass(frozen=True, slots=True)
class SDKStats:
    """Counters of every resilient query and client turn in this process."""

    runs: int
    succeeded: int
    failed: int
    attempts: int
    recoveries: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    give_ups: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


class _StatsRecorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.runs = self.succeeded = self.failed = self.attempts = 0
            self.recoveries: Counter[str] = Counter()
            self.errors: Counter[str] = Counter()
            self.give_ups: Counter[str] = Counter()

    def snapshot(self) -> SDKStats:
        with self.lock:
            return SDKStats(
                self.runs,
                self.succeeded,
                self.failed,
                self.attempts,
                dict(self.recoveries),
                dict(self.errors),
                dict(self.give_ups),
            )


_STATS = _StatsRecorder()


def stats() -> SDKStats:
    """A snapshot of the counters of every resilient SDK call in this process."""
    return _STATS.snapshot()


def reset_stats() -> None:
    _STATS.reset()


# --------------------------------------------------------------------------- settings


@dataclass(slots=True)
class Settings:
    """The keyword arguments of ``query()`` / ``ResilientClient`` after defaults are applied."""

    endpoint: str
    retrier: Retrier
    breaker: CircuitBreaker | None
    classifier: ClassifierFn | None
    store: Store | None
    clock: Clock
    continuation: ContinuationSpec
    on_recovery: tuple[RecoveryHook, ...]
    on_give_up: tuple[GiveUpHook, ...]
    stall_timeout: float | None
    leftover_grace: float | None = DEFAULT_LEFTOVER_GRACE

    @classmethod
    def resolve(
        cls,
        options: ClaudeAgentOptions,
        *,
        policy: RetryPolicy | None,
        retrier: Retrier | None,
        breaker: CircuitBreaker | _Default | None,
        budget: RetryBudget | _Default | None,
        classifier: ClassifierFn | None,
        store: Store | None,
        clock: Clock | None,
        continuation_prompt: ContinuationSpec,
        on_recovery: RecoveryHook | Iterable[RecoveryHook] | None,
        on_give_up: GiveUpHook | Iterable[GiveUpHook] | None,
        stall_timeout: float | None,
        leftover_grace: float | None = DEFAULT_LEFTOVER_GRACE,
    ) -> Settings:
        if not isinstance(options, ClaudeAgentOptions):
            raise TypeError(f"options must be a claude_agent_sdk.ClaudeAgentOptions, got {type(options).__name__}")
        if retrier is not None and (policy is not None or not isinstance(budget, _Default)):
            raise TypeError("pass either retrier= or policy=/budget=, not both (the retrier carries its own)")
        if stall_timeout is not None and not stall_timeout > 0:
            raise ValueError(f"stall_timeout must be a positive number of seconds or None, got {stall_timeout!r}")
        if leftover_grace is not None and not leftover_grace >= 0:
            raise ValueError(f"leftover_grace must be seconds >= 0 or None, got {leftover_grace!r}")
        if not (isinstance(continuation_prompt, str) or callable(continuation_prompt)):
            raise TypeError("continuation_prompt must be a string or a callable taking the ErrorClass")
        if isinstance(continuation_prompt, str):
            check_continuation(continuation_prompt)  # ContinuationError (a ValueError) names unknown placeholders
        endpoint = endpoint_of(options.env)
        clk = clock or SYSTEM_CLOCK
        if retrier is None:
            user_clf = classifier

            def attempt_classifier(exc: BaseException) -> ErrorClass:
                if isinstance(exc, SDKAttemptError):
                    return exc.error_class
                return (user_clf or _default_classify)(exc)

            retrier = Retrier(
                policy=policy or DEFAULT_POLICY,
                name=f"claude-sdk {endpoint_name(endpoint)}",
                budget=budget_for(endpoint) if isinstance(budget, _Default) else budget,
                clock=clk,
                classifier=attempt_classifier,
            )
        elif not isinstance(retrier, Retrier):
            raise TypeError(f"retrier must be a resurgo.retrier.Retrier, got {type(retrier).__name__}")
        if isinstance(breaker, _Default):
            breaker = breaker_for(endpoint)
        elif breaker is not None and not isinstance(breaker, CircuitBreaker):
            raise TypeError(f"breaker must be a CircuitBreaker, None or DEFAULT, got {type(breaker).__name__}")
        return cls(
            endpoint=endpoint,
            retrier=retrier,
            breaker=breaker,
            classifier=classifier,
            store=store,
            clock=clk,
            continuation=continuation_prompt,
            on_recovery=_hooks(on_recovery),
            on_give_up=_hooks(on_give_up),
            stall_timeout=stall_timeout,
            leftover_grace=leftover_grace,
        )


def _hooks(h: Any) -> tuple[Any, ...]:
    if h is None:
        return ()
    if callable(h):
        return (h,)
    return tuple(h)


def _call_hooks(hooks: tuple[Callable[[Any], object], ...], ev: object) -> None:
    for hook in hooks:
        try:
            hook(ev)
        except Exception:  # observing a recovery must not change it
            _log.exception("resurgo.sdk hook %r failed", hook)


def prompt_text(prompt: object) -> str:
    return prompt if isinstance(prompt, str) else "<streamed prompt>"


# --------------------------------------------------------------------------- one run


class Run:
    """One unit of work followed across its CLI runs (see the module docstring)."""

    def __init__(self, s: Settings, options: ClaudeAgentOptions, prompt: str | AsyncIterable[dict[str, Any]], *,
                 name: str) -> None:
        self.s = s
        self.options = options
        self.prompt = prompt
        self.session_id: str | None = options.resume
        self.seen: set[str] = set()
        self.attempt = 0
        self.progress = False
        self.resume_broken = False
        self.failed_at: float | None = None
        self.slept = 0.0
        self.last_ec: ErrorClass | None = None
        self.last_failure: SDKAttemptError | None = None
        self.last_message = ""
        self.held: list[Any] = []
        self.action = "start"
        self._first = False
        self.recorder = RunRecorder(
            s.store,
            s.clock,
            name=name,
            prompt=prompt_text(prompt),
            cwd=None if options.cwd is None else str(options.cwd),
            endpoint=s.endpoint,
            model=options.model,
        )
        with _STATS.lock:
            _STATS.runs += 1

    # -- planning ---------------------------------------------------------------------
    def continuation(self) -> str:
        c = self.s.continuation
        ec = self.last_ec
        if callable(c):
            return c(ec) if ec is not None else c(_SESSION_MISSING)
        # the supervisor's template convention (checked in Settings.create): {reason} {description} {category} {type}
        return render_continuation(c, reason=ec.description if ec is not None else "unknown error", error=ec)

    def plan(self, n: int) -> tuple[str, ClaudeAgentOptions, str | AsyncIterable[dict[str, Any]]]:
        """``(action, options, prompt)`` for the run about to start.

        Resume when a session id is known and resuming has not failed: the CLI
        then has the conversation so far, and gets the continuation prompt (or
        the original prompt if the interrupted run never got as far as
        recording it).  Otherwise start over with the original prompt.
        """
        if n <= 1:
            return "start", self.options, self.prompt
        sid = self.session_id
        if sid and not self.resume_broken:
            opts = dataclasses.replace(
                self.options, resume=sid, fork_session=False, continue_conversation=False, session_id=None
            )
            if self.progress or not isinstance(self.prompt, str):
                return "resume", opts, self.continuation()
            return "resume", opts, self.prompt
        if not isinstance(self.prompt, str):
            raise self.give_up_error(
                StopReason.PROMPT_NOT_REPLAYABLE,
                "the streamed prompt was consumed and the session cannot be resumed",
            )
        opts = dataclasses.replace(
            self.options,
            session_id=None if self.session_id else self.options.session_id,
            resume=None if self.resume_broken else self.options.resume,
            continue_conversation=False if self.resume_broken else self.options.continue_conversation,
        )
        if self.resume_broken:
            self.session_id = None
        return "restart", opts, self.prompt

    def begin(self, n: int, action: str) -> None:
        """Run number ``n`` starts: count it, tell the hooks if it is a recovery."""
        self.attempt = n
        self.action = action
        self.held = []
        self._first = False
        with _STATS.lock:
            _STATS.attempts += 1
            if n > 1:
                _STATS.recoveries[action] += 1
        if n > 1 and self.last_ec is not None:
            waited = 0.0 if self.failed_at is None else max(0.0, self.s.clock.monotonic() - self.failed_at)
            self.slept += waited
            self.recorder.recovery(
                strategy=action,
                ec=self.last_ec,
                message=self.last_message,
                detected_at=self.s.clock.time() - waited,
                waited=waited,
            )
            _call_hooks(
                self.s.on_recovery,
                RecoveryEvent(
                    endpoint=self.s.endpoint,
                    attempt=n,
                    action=action,
                    session_id=self.session_id if action != "restart" else None,
                    error_class=self.last_ec,
                    exception=None if self.last_failure is None else self.last_failure.__cause__,
                    waited=waited,
                ),
            )
        self.recorder.attempt(n, "start" if n == 1 else action, self.session_id)

    # -- the breaker ------------------------------------------------------------------
    def acquire(self) -> Permit | None:
        b = self.s.breaker
        if b is None:
            return None
        try:
            return b.acquire()
        except CircuitOpenError as e:
            ec = ErrorClass(
                type=ErrorType.RESOURCE,
                severity=Severity.HIGH,
                category="circuit_open",
                description=str(e),
                retryable=True,
                retry_after=e.retry_after,
                strategy=Strategy.WAIT_UNTIL,
                rule="resurgo.sdk.circuit_open",
            )
            err = self.give_up_error(StopReason.CIRCUIT_OPEN, str(e), ec=ec, retry_after=e.retry_after)
            err.__cause__ = e
            raise err from e

    # -- messages ---------------------------------------------------------------------
    @property
    def started(self) -> bool:
        """The current CLI run has produced at least one message."""
        return self._first

    def observe(self, msg: object) -> None:
        """Track the session id and progress from every message, shown or not."""
        if not self._first:
            self._first = True
            self.recorder.first_event()
        sid = msg.data.get("session_id") if isinstance(msg, SystemMessage) else getattr(msg, "session_id", None)
        if isinstance(sid, str) and sid:
            self.session_id = sid
        if isinstance(msg, AssistantMessage | UserMessage | ResultMessage):
            self.progress = True

    def should_yield(self, msg: object) -> bool:
        """Hide what the caller has already seen: replays (same ``uuid``) and repeated ``init``s."""
        uid = getattr(msg, "uuid", None)
        if isinstance(uid, str) and uid:
            if uid in self.seen:
                return False
            self.seen.add(uid)
        return not (self.attempt > 1 and isinstance(msg, SystemMessage) and msg.subtype == "init")

    @staticmethod
    def holds(msg: object) -> bool:
        """Messages that describe the failure itself wait until we know whether we retry."""
        if isinstance(msg, ResultMessage):
            return msg.is_error
        return isinstance(msg, AssistantMessage) and bool(msg.error)

    # -- outcomes ---------------------------------------------------------------------
    def failure(self, ev: Evidence, permit: Permit | None) -> SDKAttemptError:
        """Classify a failed run, report it to the breaker, and build the exception the retrier sees."""
        if self.action == "resume" and ev.session_missing:
            ec = _SESSION_MISSING
            self.resume_broken = True
        else:
            ec = classify_evidence(ev, self.s.classifier)
        msg = ev.message()
        f = SDKAttemptError(msg, error_class=ec, status_code=ev.status, exit_code=ev.exit_code, result=ev.result)
        f.__cause__ = ev.exception
        if permit is not None:
            try:
                if ec.type in ENDPOINT_TYPES:
                    permit.on_error(f)
                else:
                    permit.release()
            except Exception:
                _log.exception("resurgo.sdk: reporting to the breaker failed")
        self.last_ec, self.last_failure, self.last_message = ec, f, msg
        self.failed_at = self.s.clock.monotonic()
        with _STATS.lock:
            _STATS.errors[ec.type.value if ec.type else "none"] += 1
        self.recorder.attempt_end(ok=False, ec=ec, message=msg, exit_code=ev.exit_code, session_id=self.session_id)
        return f

    def succeeded(self, permit: Permit | None, result: ResultMessage | None) -> None:
        if permit is not None:
            permit.on_success()
        with _STATS.lock:
            _STATS.succeeded += 1
        self.recorder.attempt_end(ok=True, ec=None, message="", exit_code=0, session_id=self.session_id)
        self.recorder.finish(
            ok=True,
            attempts=self.attempt,
            slept=self.slept,
            session_id=self.session_id,
            result=result,
            ec=None,
            reason=None,
        )

    def give_up_error(
        self,
        reason: StopReason,
        detail: str,
        *,
        ec: ErrorClass | None = None,
        retry_after: float | None = None,
    ) -> ResilientSDKError:
        ec = ec or self.last_ec or _SESSION_MISSING
        if retry_after is None:
            retry_after = ec.retry_after
        last = self.last_failure
        text = f"resurgo gave up on the Claude SDK run after {self.attempt} attempt(s): {reason.value}"
        if detail:
            text += f" ({detail})"
        if ec.type is not None:
            text += f"; last error: {ec.type.value}/{ec.category}: {self.last_message or ec.description}"
        err = ResilientSDKError(
            text,
            error_class=ec,
            reason=reason,
            attempts=self.attempt,
            session_id=self.session_id,
            retry_after=retry_after,
            result=None if last is None else last.result,
        )
        with _STATS.lock:
            _STATS.failed += 1
            _STATS.give_ups[reason.value] += 1
        self.recorder.finish(
            ok=False,
            attempts=self.attempt,
            slept=self.slept,
            session_id=self.session_id,
            result=None if last is None else last.result,
            ec=ec,
            reason=f"{reason.value}: {detail}" if detail else reason.value,
        )
        _call_hooks(self.s.on_give_up, err)
        return err

    def give_up_from(self, exc: BaseException) -> ResilientSDKError:
        """Turn what the retrier raised on give-up into the caller's exception."""
        info: RetryError | None
        if isinstance(exc, RetryError):
            info = exc
            failure = exc.__cause__ if isinstance(exc.__cause__, SDKAttemptError) else self.last_failure
        else:
            info = retry_info(exc)
            failure = exc if isinstance(exc, SDKAttemptError) else self.last_failure
        reason = _GIVE_UP_REASONS.get(info.reason, StopReason.NOT_RETRYABLE) if info else StopReason.NOT_RETRYABLE
        detail = info.detail if info else ""
        err = self.give_up_error(reason, detail, ec=None if failure is None else failure.error_class)
        cause = failure.__cause__ if failure is not None and failure.__cause__ is not None else failure
        err.__cause__ = cause
        return err


__all__ = [
    "DEFAULT",
    "DEFAULT_CONTINUATION",
    "DEFAULT_POLICY",
    "ENDPOINT_TYPES",
    "Run",
    "SDKStats",
    "Settings",
    "breaker_for",
    "reset_stats",
    "stats",
]
