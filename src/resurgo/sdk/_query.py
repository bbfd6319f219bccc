"""``resurgo.sdk.query``: ``claude_agent_sdk.query`` that finishes anyway.

What the caller sees across a recovery (the contract, kept deliberately close
to the plain SDK's so no caller code changes):

- Messages are yielded as the SDK yields them, except the ones that describe a
  failure the wrapper is about to recover from: the synthetic
  ``AssistantMessage`` with ``error`` set and the ``ResultMessage`` with
  ``is_error``.  Those are held back and dropped when a retry follows.
- A recovered run does not repeat what the caller already saw: messages whose
  ``uuid`` was already yielded are skipped, and the new run's
  ``SystemMessage(subtype="init")`` is not yielded (the caller saw one).  The
  final ``ResultMessage.session_id`` is authoritative: a restart (as opposed
  to a resume) runs in a new session.
- Messages yielded before a failure stay yielded (they are true: the resumed
  session continues from them).  With ``include_partial_messages`` the
  partial ``StreamEvent``\\ s of an interrupted turn are not retracted.
- No marker message is inserted: recoveries are reported through the
  ``on_recovery`` hooks, :func:`resurgo.sdk.stats` and the optional store.
- On give-up the held messages of the last run are yielded (as the plain SDK
  would have shown them) and then :class:`ResilientSDKError` is raised,
  chained to the SDK's exception.  Non-retryable failures (auth, validation,
  billing) give up after the first run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

import claude_agent_sdk as _sdk
from claude_agent_sdk import ClaudeAgentOptions, Message, ResultMessage

from resurgo.breaker import CircuitBreaker
from resurgo.clock import Clock
from resurgo.retrier import Retrier, RetryBudget, RetryError, RetryPolicy
from resurgo.sdk._core import (
    DEFAULT,
    DEFAULT_CONTINUATION,
    ContinuationSpec,
    GiveUpHook,
    RecoveryHook,
    Run,
    Settings,
    _Default,
)
from resurgo.sdk._errors import SDKAttemptError
from resurgo.sdk._evidence import ClassifierFn, Evidence
from resurgo.sdk._leftovers import DEFAULT_LEFTOVER_GRACE, end_leftovers_quietly, marked, new_token
from resurgo.store import Store

_log = logging.getLogger("resurgo.sdk")

#: The function the wrapper calls; ``install()`` replaces ``claude_agent_sdk.query``
#: but the wrapper must keep calling the original.
_sdk_query = _sdk.query


async def aclose(agen: AsyncIterator[Message]) -> None:
    """Close an SDK message generator (ends its CLI process); typed as an iterator by the SDK."""
    close = getattr(agen, "aclose", None)
    if close is not None:
        await close()


async def next_message(
    agen: AsyncIterator[Message], stall_timeout: float | None, ev: Evidence, *, first_seen: bool = True
) -> Message | None:
    """The next message, or None when the run is over (normally, by an error, or by the watchdog).

    The watchdog starts with the run's first message: until then the SDK's own
    ``initialize`` timeout covers a CLI that does not start, and a loaded
    machine can take seconds to start one, which is not a stall.

    ``asyncio.timeout`` (not ``wait_for``) keeps the SDK generator in the
    caller's task: the SDK's clean-up must run in the task that started it.
    """
    try:
        if stall_timeout is None or not first_seen:
            return await agen.__anext__()
        cm = asyncio.timeout(stall_timeout)
        try:
            async with cm:
                return await agen.__anext__()
        except TimeoutError:
            if not cm.expired():
                raise
            ev.killed_by = "stall_watchdog"
            return None
    except StopAsyncIteration:
        return None
    except Exception as e:
        ev.exception = e
        return None


async def query(
    *,
    prompt: str | AsyncIterable[dict[str, Any]],
    options: ClaudeAgentOptions | None = None,
    transport: Any = None,
    policy: RetryPolicy | None = None,
    retrier: Retrier | None = None,
    breaker: CircuitBreaker | _Default | None = DEFAULT,
    budget: RetryBudget | _Default | None = DEFAULT,
    classifier: ClassifierFn | None = None,
    store: Store | None = None,
    clock: Clock | None = None,
    continuation_prompt: ContinuationSpec = DEFAULT_CONTINUATION,
    on_recovery: RecoveryHook | Iterable[RecoveryHook] | None = None,
    on_give_up: GiveUpHook | Iterable[GiveUpHook] | None = None,
    stall_timeout: float | None = None,
    leftover_grace: float | None = DEFAULT_LEFTOVER_GRACE,
) -> AsyncIterator[Message]:
    """``claude_agent_sdk.query`` with classification, breaker, budget, backoff and session resume.

    ``prompt``, ``options`` and ``transport`` are the SDK's.  The rest are
    keyword-only, with these defaults:

    - ``policy`` [:data:`DEFAULT_POLICY`: 4 runs, full jitter 1 s .. 60 s] or
      ``retrier`` [None]: a :class:`resurgo.retrier.Retrier` to use as is (its
      policy, budget, hooks and stats).  Not both.
    - ``breaker`` [the endpoint's shared breaker, :func:`breaker_for`]: a
      :class:`CircuitBreaker`, or None for none.  Only endpoint failures
      (network, timeout, resource, auth) count; a crashed CLI does not.  An
      open breaker fails the call at once with ``reason="circuit_open"`` and
      its ``retry_after``.
    - ``budget`` [the endpoint's shared :func:`resurgo.retrier.budget_for`
      budget]: a :class:`RetryBudget` or None.
    - ``classifier`` [:func:`resurgo.classifier.classify`]: receives an
      :class:`~resurgo.classifier.Observation` built from the run's result and
      error events, or the SDK exception when the run produced none.
    - ``store`` [None]: a :class:`resurgo.store.Store`; runs, attempts,
      errors, recoveries and retries are written to the run tables.
    - ``clock`` [the system clock]: backoff sleeps and store timestamps.
    - ``continuation_prompt`` [:data:`DEFAULT_CONTINUATION`]: sent to a resumed
      session; a string in the supervisor's convention (``{reason}``,
      ``{description}``, ``{category}``, ``{type}`` are filled in, other braces
      are literal, an unknown ``{name}`` is a ValueError here) or a callable
      taking the :class:`ErrorClass`.
    - ``on_recovery`` / ``on_give_up`` [none]: hooks receiving a
      :class:`RecoveryEvent` / the :class:`ResilientSDKError`; a hook that
      raises is logged, never propagated.
    - ``stall_timeout`` [None]: seconds without any message (counted from the
      run's first message) after which the run is abandoned (its CLI ended)
      and recovered as a stall.  Real time, not the injected clock: it
      watches a real process.
    - ``leftover_grace`` [:data:`DEFAULT_LEFTOVER_GRACE`, 3 s]: each CLI run
      is marked ``RESURGO_SDK_RUN=<token>`` in its environment; when the run
      ends (failed, abandoned, finished, or the caller stopped reading), every
      process still carrying the marker (Bash tools the CLI started in their
      own sessions, what they started) gets SIGTERM, then SIGKILL after this
      many seconds.  None leaves them running.

    With a custom ``transport`` the SDK cannot restart the CLI, so the call is
    passed through unchanged (no recovery).
    """
    if transport is not None:
        async for m in _sdk_query(prompt=prompt, options=options, transport=transport):
            yield m
        return
    opts = options if options is not None else ClaudeAgentOptions()
    s = Settings.resolve(
        opts,
        policy=policy,
        retrier=retrier,
        breaker=breaker,
        budget=budget,
        classifier=classifier,
        store=store,
        clock=clock,
        continuation_prompt=continuation_prompt,
        on_recovery=on_recovery,
        on_give_up=on_give_up,
        stall_timeout=stall_timeout,
        leftover_grace=leftover_grace,
    )
    run = Run(s, opts, prompt, name="sdk.query")
    try:
        async for attempt in s.retrier:
            action, run_opts, run_prompt = run.plan(attempt.num)
            permit = run.acquire()
            run.begin(attempt.num, action)
            with attempt:
                ev = Evidence()
                result: ResultMessage | None = None
                token = new_token()
                agen = _sdk_query(prompt=run_prompt, options=marked(run_opts, token))
                try:
                    while (msg := await next_message(agen, s.stall_timeout, ev, first_seen=run.started)) is not None:
                        run.observe(msg)
                        ev.note(msg)
                        if run.holds(msg):
                            run.held.append(msg)
                            continue
                        if isinstance(msg, ResultMessage):
                            result = msg
                        if run.should_yield(msg):
                            yield msg
                except BaseException:  # the caller closed us or was cancelled: the call does not count
                    if permit is not None:
                        permit.release()
                    raise
                finally:
                    try:
                        await aclose(agen)
                    finally:
                        await end_leftovers_quietly(token, grace=s.leftover_grace)
                if result is None:
                    raise run.failure(ev, permit)
                if ev.exception is not None:
                    _log.warning(
                        "resurgo.sdk: the CLI reported success, then the SDK raised %r; keeping the result",
                        ev.exception,
                    )
                run.succeeded(permit, result)
    except (SDKAttemptError, RetryError) as e:
        err = run.give_up_from(e)
        for m in run.held:
            if run.should_yield(m):
                yield m
        raise err from err.__cause__
