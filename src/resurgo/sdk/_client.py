"""``ResilientClient``: ``ClaudeSDKClient`` whose turns survive a crashed CLI and API errors.

A *turn* is a ``query()`` followed by reading its messages up to the
``ResultMessage``.  When a turn fails:

- the CLI process died (``ProcessError``, ``CLIConnectionError``, the stream
  ended, or the stall watchdog fired): the client reconnects with
  ``resume=<current session id>`` (a new session with the pending prompt if no
  id is known, or if the transcript is gone) and sends the turn again: the
  continuation prompt when the interrupted turn had reached the transcript,
  else the pending prompt itself;
- the CLI is alive but the turn ended with an error result (a 529, say): the
  turn is sent again on the same connection after the backoff.

The retry decision, the breaker and the budget are those of
:func:`resurgo.sdk.query`, per turn; the visibility rules too (failure
messages held back, nothing shown twice, no repeated ``init``).  A failure
while no turn is pending (between turns) is not recovered at once: the next
``query()`` reconnects first.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from types import TracebackType
from typing import Any

from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, CLIConnectionError, Message, ResultMessage

from resurgo.breaker import CircuitBreaker, Permit
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
from resurgo.sdk._errors import SDKAttemptError, StopReason
from resurgo.sdk._evidence import ClassifierFn, Evidence
from resurgo.sdk._leftovers import DEFAULT_LEFTOVER_GRACE, end_leftovers_quietly, marked, new_token
from resurgo.sdk._query import aclose, next_message
from resurgo.store import Store

_log = logging.getLogger("resurgo.sdk")

Prompt = str | AsyncIterable[dict[str, Any]]


class ResilientClient:
    """A drop-in for ``ClaudeSDKClient`` (async context manager, ``connect``, ``query``,
    ``receive_response``, ``receive_messages``, ``disconnect``; other methods such as
    ``interrupt`` are forwarded to the current SDK client).

    ``options`` is the SDK's; the keyword-only arguments and their defaults are
    those of :func:`resurgo.sdk.query`.  Each CLI process (one per connect or
    reconnect) carries its own ``RESURGO_SDK_RUN`` marker; what it leaves
    running is ended when it is replaced after a failure and on ``disconnect``.  A custom ``transport`` is refused: the
    SDK cannot restart one, so there would be nothing to recover with.
    """

    def __init__(
        self,
        options: ClaudeAgentOptions | None = None,
        transport: Any = None,
        *,
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
    ) -> None:
        if transport is not None:
            raise TypeError("ResilientClient cannot restart a custom transport; use ClaudeSDKClient for that")
        self.options = options if options is not None else ClaudeAgentOptions()
        self._s = Settings.resolve(
            self.options,
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
        self._client: ClaudeSDKClient | None = None
        self._session_id: str | None = self.options.resume
        self._dead = False
        self._turn: Run | None = None
        self._permit: Permit | None = None
        self._send_error: BaseException | None = None
        self._turn_session = "default"
        #: the marker of the current CLI process (None before the first connect)
        self._token: str | None = None

    # ------------------------------------------------------------------ properties
    @property
    def client(self) -> ClaudeSDKClient | None:
        """The SDK client of the current CLI process (replaced by each reconnect)."""
        return self._client

    @property
    def session_id(self) -> str | None:
        """The newest session id seen (what a reconnect resumes)."""
        return self._session_id

    def __getattr__(self, name: str) -> Any:
        client = self.__dict__.get("_client")
        if client is None or name.startswith("_"):
            raise AttributeError(name)
        return getattr(client, name)

    # ------------------------------------------------------------------ connection
    def _options_for(self, resume: str | None) -> ClaudeAgentOptions:
        if resume:
            return dataclasses.replace(
                self.options, resume=resume, fork_session=False, continue_conversation=False, session_id=None
            )
        if self._session_id is not None and resume is None:
            # starting over: the configured id (if any) is taken by the dead session
            return dataclasses.replace(self.options, resume=None, session_id=None, continue_conversation=False)
        return self.options

    async def connect(self, prompt: Prompt | None = None) -> None:
        """Start the CLI; with a prompt, that prompt is the first turn (recovered like ``query``)."""
        if isinstance(prompt, str | AsyncIterable):
            self._begin_turn(prompt, "default")
        self._token = token = new_token()
        client = ClaudeSDKClient(marked(self.options, token))
        try:
            await client.connect(prompt)
        except Exception as e:
            if self._turn is None:
                await self._end_leftovers()
                raise
            self._send_error = e
            self._dead = True
        self._client = client

    async def disconnect(self) -> None:
        client, self._client = self._client, None
        try:
            if client is not None:
                await client.disconnect()
        finally:
            await self._end_leftovers()
            if self._permit is not None:
                self._permit.release()
                self._permit = None

    async def _retire(self) -> None:
        """The CLI died or was abandoned mid-turn: close its SDK client and end what it left, before the backoff.

        The client object stays (``query()`` between turns must still work, and
        reconnects from it); closing it again later is a no-op.
        """
        if self._client is not None:
            try:
                await self._client.disconnect()
            except Exception:
                _log.debug("resurgo.sdk: disconnecting the dead client failed", exc_info=True)
        await self._end_leftovers()

    async def _end_leftovers(self) -> None:
        """End what the current CLI process left running (see :mod:`resurgo.sdk._leftovers`)."""
        token, self._token = self._token, None
        if token is not None:
            await end_leftovers_quietly(token, grace=self._s.leftover_grace)

    async def __aenter__(self) -> ResilientClient:
        await self.connect()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> bool:
        await self.disconnect()
        return False

    async def _reconnect(self, resume: str | None) -> None:
        old, self._client = self._client, None
        if old is not None:
            try:
                await old.disconnect()
            except Exception:
                _log.debug("resurgo.sdk: disconnecting the dead client failed", exc_info=True)
        await self._end_leftovers()
        self._token = token = new_token()
        client = ClaudeSDKClient(marked(self._options_for(resume), token))
        await client.connect()
        self._client = client
        self._dead = False

    # ------------------------------------------------------------------ turns
    def _begin_turn(self, prompt: Prompt, session_id: str) -> None:
        if self._permit is not None:  # the previous turn was never read to its end
            self._permit.release()
            self._permit = None
        turn = Run(self._s, self.options, prompt, name="sdk.client")
        turn.session_id = self._session_id
        self._permit = turn.acquire()  # an open breaker refuses the turn before anything is sent
        self._turn = turn
        self._turn_session = session_id
        self._send_error = None

    async def query(self, prompt: Prompt, session_id: str = "default") -> None:
        """Send a turn.  A send that fails (the CLI died between turns) is recovered while reading."""
        if self._client is None:
            raise CLIConnectionError("Not connected. Call connect() first.")
        self._begin_turn(prompt, session_id)
        try:
            if self._dead:
                await self._reconnect(self._session_id)
            await self._client.query(prompt, session_id)
        except Exception as e:
            self._send_error = e
            self._dead = True

    async def _send(self, turn: Run, action: str) -> None:
        """Carry out a recovery: reconnect if the CLI is gone, then send the turn again."""
        assert self._client is not None or action != "resend"
        if action != "resend":
            await self._reconnect(turn.session_id if action == "resume" else None)
        assert self._client is not None
        if turn.progress and action != "restart":
            prompt: Prompt = turn.continuation()
        else:
            prompt = turn.prompt
        await self._client.query(prompt, self._turn_session)

    def _action(self, turn: Run) -> str:
        if not self._dead and self._client is not None:
            return "resend"
        if turn.session_id and not turn.resume_broken:
            return "resume"
        if not isinstance(turn.prompt, str):
            raise turn.give_up_error(
                StopReason.PROMPT_NOT_REPLAYABLE, "the streamed prompt was consumed and the session cannot be resumed"
            )
        return "restart"

    async def _turn_messages(self, stop_at_result: bool) -> AsyncIterator[Message]:
        turn = self._turn
        if turn is None:
            if self._client is None:
                raise CLIConnectionError("Not connected. Call connect() first.")
            inner = self._client.receive_response() if stop_at_result else self._client.receive_messages()
            async for m in inner:
                yield m
            return
        s = self._s
        try:
            async for attempt in s.retrier:
                n = attempt.num
                if n == 1:
                    action, permit = "start", self._permit
                    self._permit = None
                else:
                    action = self._action(turn)
                    permit = turn.acquire()
                turn.begin(n, action)
                with attempt:
                    ev = Evidence()
                    result: ResultMessage | None = None
                    error_result = False
                    try:
                        if n > 1:
                            try:
                                await self._send(turn, action)
                            except Exception as e:
                                ev.exception = e
                        elif self._send_error is not None:
                            ev.exception, self._send_error = self._send_error, None
                        if ev.exception is None and self._client is not None:
                            agen = self._client.receive_messages()
                            try:
                                while (msg := await next_message(agen, s.stall_timeout, ev)) is not None:
                                    turn.observe(msg)
                                    ev.note(msg)
                                    if turn.session_id:
                                        self._session_id = turn.session_id
                                    if turn.holds(msg):
                                        turn.held.append(msg)
                                        if isinstance(msg, ResultMessage):
                                            error_result = True
                                            break
                                        continue
                                    if isinstance(msg, ResultMessage):
                                        result = msg
                                    if turn.should_yield(msg):
                                        yield msg
                                    if result is not None:
                                        break
                            finally:
                                await aclose(agen)
                    except BaseException:
                        if permit is not None:
                            permit.release()
                        raise
                    if result is None:
                        if not error_result:
                            self._dead = True  # no result and no error result: the CLI is gone
                            await self._retire()
                        raise turn.failure(ev, permit)
                    turn.succeeded(permit, result)
        except (SDKAttemptError, RetryError) as e:
            self._turn = None
            err = turn.give_up_from(e)
            for m in turn.held:
                if turn.should_yield(m):
                    yield m
            raise err from err.__cause__
        self._turn = None
        if not stop_at_result and self._client is not None:
            async for m in self._client.receive_messages():
                yield m

    def receive_response(self) -> AsyncIterator[Message]:
        """The pending turn's messages up to and including its successful ``ResultMessage``."""
        return self._turn_messages(stop_at_result=True)

    def receive_messages(self) -> AsyncIterator[Message]:
        """Every message; the pending turn (if any) is recovered, later ones pass through as the SDK gives them."""
        return self._turn_messages(stop_at_result=False)
