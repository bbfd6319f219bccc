"""The API relay (``resurgo.supervise._relay``) against the Messages API stand-in.

The client is the ``anthropic`` SDK with its own retries off (as the CLI runs under the
supervisor), or raw ``httpx`` where the bytes on the wire matter (pings, SSE errors).
Every test asserts behaviour -- what the client got, what the stand-in saw, what the
sink and the endpoint's breaker recorded -- never how long something took.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx
import pytest

from resurgo.breaker import CircuitBreaker, CircuitState, CircuitThresholds
from resurgo.classifier import ErrorType, default_classifier
from resurgo.mockapi import Faults, MockServer
from resurgo.retrier import RetryBudget
from resurgo.supervise._orchestrator import _breaker_classifier
from resurgo.supervise._relay import ApiRelay, RelayIncident, RelayRoute
from resurgo.supervise._requests import ResponseTimes

try:  # the SDK's own transport (newer anthropic releases ship an httpx fork)
    import httpx2

    BROKEN_STREAM: tuple[type[BaseException], ...] = (anthropic.APIError, httpx.HTTPError, httpx2.HTTPError)
except ImportError:  # pragma: no cover
    BROKEN_STREAM = (anthropic.APIError, httpx.HTTPError)

MODEL = "claude-sonnet-4-5"
PROMPT = "hello [[text: the quick brown fox jumps over the lazy dog]]"
KEY = "sk-ant-relay-test-3f9c1d7e5b2a4860"
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
STREAM_BODY = {"model": MODEL, "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
MESSAGES = "/v1/messages"


# -- the relay's collaborators -------------------------------------------------------------------------
def lenient_breaker() -> CircuitBreaker:
    """A breaker that never opens on failure rate (tests about retries, not about the breaker).

    With the orchestrator's classifier, which reads the relay's verdict off an ``ApiFailure``.
    """
    return CircuitBreaker("t", thresholds=CircuitThresholds(failure_rate=0.99, min_calls=100),
                          classifier=_breaker_classifier)


@dataclass
class Endpoint:
    breaker: Any = field(default_factory=lenient_breaker)
    request_budget: Any = field(default_factory=lambda: RetryBudget(ratio=0.5, min_retries_per_sec=10))
    budget: Any = field(default_factory=lambda: RetryBudget(ratio=0.0, min_retries_per_sec=0.0))
    """The CLI restarts' budget: empty, so a relay retry drawing on it would fail the test."""
    times: ResponseTimes = field(default_factory=ResponseTimes)


@dataclass
class Sink:
    """Records everything the relay reports."""

    errors: list[RelayIncident] = field(default_factory=list)
    failures: list[RelayIncident] = field(default_factory=list)
    changes: list[RelayIncident] = field(default_factory=list)
    refusals: list[tuple[str, float | None]] = field(default_factory=list)
    progressed: int = 0

    def classify(self, evidence: Any) -> Any:
        return default_classifier().classify(evidence, record=False)

    def error(self, route: RelayRoute, inc: RelayIncident) -> None:
        self.errors.append(inc)

    def failed(self, route: RelayRoute, inc: RelayIncident) -> object:
        self.failures.append(inc)
        return len(self.failures)

    def changed(self, route: RelayRoute, inc: RelayIncident) -> None:
        self.changes.append(inc)

    def refused(self, route: RelayRoute, state: str, retry_after: float | None) -> None:
        self.refusals.append((state, retry_after))

    def progress(self, route: RelayRoute) -> None:
        self.progressed += 1


# -- fixtures ----------------------------------------------------------------------------------------------
@pytest.fixture
async def api() -> AsyncIterator[MockServer]:
    async with MockServer() as srv:
        yield srv


@pytest.fixture
def sink() -> Sink:
    return Sink()


MakeRelay = Callable[..., Awaitable[ApiRelay]]


@pytest.fixture
async def make_relay(sink: Sink) -> AsyncIterator[MakeRelay]:
    """Started relays with short back-offs; every one is stopped after the test."""
    relays: list[ApiRelay] = []

    async def make(**kw: Any) -> ApiRelay:
        kw.setdefault("backoff_base", 0.01)
        kw.setdefault("backoff_cap", 0.05)
        relay = ApiRelay(sink, **kw)
        relays.append(relay)
        await relay.start()
        return relay

    try:
        yield make
    finally:
        for relay in relays:
            await relay.stop()


# -- clients -----------------------------------------------------------------------------------------------
def sdk(relay: ApiRelay, route: RelayRoute) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=relay.url(route), api_key=KEY, max_retries=0, timeout=60)


async def ask_streamed(c: anthropic.AsyncAnthropic) -> anthropic.types.Message:
    async with c.messages.stream(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": PROMPT}]) as s:
        return await s.get_final_message()


async def ask(c: anthropic.AsyncAnthropic) -> anthropic.types.Message:
    return await c.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": PROMPT}])


def text_of(m: anthropic.types.Message) -> str:
    return "".join(b.text for b in m.content if b.type == "text")


async def raw_sse(url: str) -> tuple[int, list[tuple[str, str]]]:
    """A streamed request through raw httpx: the status and the (event, data) pairs as they came."""
    events: list[tuple[str, str]] = []
    async with (
        httpx.AsyncClient(timeout=60) as h,
        h.stream("POST", url + MESSAGES, json=STREAM_BODY, headers=HEADERS) as r,
    ):
        name: str | None = None
        async for line in r.aiter_lines():
            if line.startswith("event:"):
                name = line[len("event:"):].strip()
            elif line.startswith("data:") and name is not None:
                events.append((name, line[len("data:"):].strip()))
                name = None
        return r.status_code, events


def messages_seen(api: MockServer) -> list[Any]:
    return [r for r in api.requests if r.path == MESSAGES]


# -- a retried fault reaches the client as a normal answer ------------------------------------------------
async def test_529_with_retry_after_is_waited_out_and_retried(api: MockServer, sink: Sink,
                                                              make_relay: MakeRelay) -> None:
    relay = await make_relay()
    ep = Endpoint()
    route = relay.register(api.url, ep, job_id="j")
    api.set_faults(Faults(status=529, retry_after=0.1, count=1))
    async with sdk(relay, route) as c:
        m = await ask_streamed(c)
    assert m.stop_reason == "end_turn" and text_of(m)

    seen = messages_seen(api)
    assert [(r.fault, r.status) for r in seen] == [("529", 529), (None, 200)]
    assert len(sink.errors) == 1 and len(sink.failures) == 1
    inc = sink.failures[0]
    assert inc.kind == "529"
    assert inc.status == 529
    assert inc.error.type is ErrorType.RESOURCE
    assert inc.error.retry_after is not None and inc.error.retry_after > 0
    assert inc.imposed_s >= inc.error.retry_after  # the server's wait, not the relay's own back-off
    assert inc.backoff_s == 0.0  # the retry-after was longer than the back-off: nothing of it is the relay's
    assert not inc.gave_up and inc.why == ""
    assert inc.retried_at is not None and inc.restored_at is not None
    assert inc.sent_at <= inc.detected_at <= inc.retried_at <= inc.restored_at
    assert inc.handle == 1
    assert route.requests == 1 and route.answered == 1 and route.retries == 1
    # a short retry-after is this request's to wait out: a plain failure, the breaker stays closed
    bm = ep.breaker.metrics()
    assert (bm.failures, bm.successes, bm.state) == (1, 1, CircuitState.CLOSED)


async def test_a_retry_without_retry_after_is_the_relays_own_back_off(api: MockServer, sink: Sink,
                                                                       make_relay: MakeRelay) -> None:
    relay = await make_relay()
    route = relay.register(api.url, Endpoint(), job_id="j")
    api.set_faults(Faults(status=500, count=1))
    async with sdk(relay, route) as c:
        await ask_streamed(c)
    (inc,) = sink.failures
    assert inc.kind == "5xx" and inc.error.type is ErrorType.INTERNAL
    assert inc.backoff_s > 0
    assert inc.imposed_s == pytest.approx(0.0, abs=1e-3)  # nobody imposed a wait
    assert inc.restored_at is not None


@pytest.mark.parametrize(
    ("faults", "kind", "etype"),
    [
        (Faults(reset=True, count=1), "network", ErrorType.NETWORK),
        (Faults(cut_after=2, count=1), "network", ErrorType.NETWORK),
        (Faults(status=500, count=1), "5xx", ErrorType.INTERNAL),
    ],
    ids=["reset", "cut-stream", "500"],
)
async def test_a_streamed_request_is_retried_and_its_answer_arrives_once(
    api: MockServer, sink: Sink, make_relay: MakeRelay, faults: Faults, kind: str, etype: ErrorType
) -> None:
    relay = await make_relay()
    route = relay.register(api.url, Endpoint(), job_id="j")
    async with sdk(relay, route) as c:
        clean = await ask_streamed(c)
        api.reset_requests()
        api.set_faults(faults)
        m = await ask_streamed(c)
    assert text_of(m) == text_of(clean) != ""
    assert m.stop_reason == clean.stop_reason == "end_turn"
    assert m.usage.output_tokens == clean.usage.output_tokens

    seen = messages_seen(api)
    assert len(seen) == 2
    assert seen[0].fault is not None and seen[1].fault is None and seen[1].status == 200
    (inc,) = sink.failures
    assert (inc.kind, inc.error.type) == (kind, etype)
    assert inc.restored_at is not None and not inc.gave_up


@pytest.mark.parametrize("faults", [Faults(cut_after=2, count=1), Faults(reset=True, count=1),
                                    Faults(status=503, count=1)], ids=["cut", "reset", "503"])
async def test_the_raw_stream_carries_one_complete_answer_after_a_retry(
    api: MockServer, sink: Sink, make_relay: MakeRelay, faults: Faults
) -> None:
    relay = await make_relay()
    route = relay.register(api.url, Endpoint(), job_id="j")
    status, clean = await raw_sse(relay.url(route))
    api.set_faults(faults)
    status2, events = await raw_sse(relay.url(route))
    assert status == status2 == 200
    names = [n for n, _ in events if n != "ping"]
    assert names == [n for n, _ in clean if n != "ping"]
    assert names.count("message_start") == 1 and names.count("message_stop") == 1
    assert names[-1] == "message_stop"
    assert len(sink.failures) == 1


@pytest.mark.parametrize("faults", [Faults(reset=True, count=1), Faults(cut_after=1, count=1),
                                    Faults(status=529, count=1)], ids=["reset", "cut-body", "529"])
async def test_a_non_streamed_request_is_retried_too(api: MockServer, sink: Sink, make_relay: MakeRelay,
                                                     faults: Faults) -> None:
    relay = await make_relay()
    route = relay.register(api.url, Endpoint(), job_id="j")
    api.set_faults(faults)
    async with sdk(relay, route) as c:
        m = await ask(c)
    assert m.stop_reason == "end_turn" and text_of(m)
    assert len(messages_seen(api)) == 2
    assert len(sink.failures) == 1 and sink.failures[0].restored_at is not None


def _watched(relay: ApiRelay, api: MockServer, *, floor: float, factor: float = 3.0,
             request_budget: RetryBudget | None = None, **route_kw: Any) -> RelayRoute:
    """A route whose endpoint has a hang limit from its first answer on (``factor`` x it, at least ``floor``)."""
    ep = Endpoint(times=ResponseTimes(min_samples=1, floor=floor, factor=factor))
    if request_budget is not None:
        ep.request_budget = request_budget
    return relay.register(api.url, ep, job_id="j", **route_kw)


async def test_a_hang_past_the_learned_limit_is_ended_and_retried(api: MockServer, sink: Sink,
                                                                  make_relay: MakeRelay) -> None:
    relay = await make_relay()
    route = _watched(relay, api, floor=0.3)
    async with sdk(relay, route) as c:
        await ask_streamed(c)  # the endpoint learns what an answer takes
        assert route.endpoint.times.first_answer_limit() is not None
        api.set_faults(Faults(hang=True, count=1))
        m = await ask_streamed(c)
    assert m.stop_reason == "end_turn" and text_of(m)
    seen = messages_seen(api)
    assert [r.fault for r in seen] == [None, "hang", None]
    (inc,) = sink.failures
    assert inc.kind == "stall"
    assert inc.error.type is ErrorType.TIMEOUT
    assert inc.restored_at is not None
    # the retry was answered as fast as ever: the API had hung, the limit was not too tight for this job
    assert route.watch_kills == 1 and route.scale == 1.0


async def test_a_retry_after_a_hang_gets_the_same_limit_and_only_a_second_hang_doubles_it(
        api: MockServer, sink: Sink, make_relay: MakeRelay) -> None:
    """One hang says nothing of the next try; a request ended twice may be a slow job's, and gets more time."""
    relay = await make_relay(hedge=False)  # the watch's limits alone (a copy at 0.5 s would beat the doubled one)
    route = _watched(relay, api, floor=0.3)
    async with sdk(relay, route) as c:
        await ask_streamed(c)
        api.set_faults(Faults(hang=True, count=3))
        m = await ask_streamed(c)
    assert m.stop_reason == "end_turn"
    assert [r.fault for r in messages_seen(api)] == [None, "hang", "hang", "hang", None]
    limits = [re.search(r"limit ([0-9.]+) s", inc.error.description) for inc in sink.failures]
    got = [float(x.group(1)) if x else None for x in limits]
    assert len(got) == 3 and None not in got
    assert got[1] == got[0] and got[2] == pytest.approx(2 * got[0], abs=0.011)  # same, same, doubled
    assert route.watch_kills == 3


@pytest.mark.parametrize("budget", [True, False])
async def test_a_request_slower_than_any_recent_answer_is_hedged_and_the_copy_answers(
        api: MockServer, sink: Sink, make_relay: MakeRelay, budget: bool) -> None:
    """The hung first copy is not waited out: a second copy at a third of the limit answers; the stall is recovered.

    Without a retry-budget token there is no copy: the try waits out its whole
    limit and the watch ends it, as before hedging (the property broken).
    """
    relay = await make_relay()
    rb = RetryBudget(min_retries_per_sec=0.0, ratio=0.0) if not budget else RetryBudget()
    route = _watched(relay, api, floor=2.4, request_budget=rb, max_wait=4.0)  # max_wait: for a retry's token
    assert relay.hedge_delay(2.4) == pytest.approx(0.8) and relay.hedge_delay(6.0) == pytest.approx(2.0)
    assert relay.hedge_delay(0.9) == pytest.approx(0.5)  # never sooner than the floor
    assert relay.hedge_delay(0.4) is None  # the floor would be past the limit itself
    # with the slowest recent answer known, the copy goes out when a request is slower than all of them
    assert relay.hedge_delay(3.6, slowest=1.2) == pytest.approx(1.2)
    assert relay.hedge_delay(2.4, slowest=0.1) == pytest.approx(0.5)  # not 0.8, a third of the floored limit
    assert relay.hedge_delay(2.4, slowest=2.4) is None  # a copy at the limit itself is no copy
    async with sdk(relay, route) as c:
        await ask_streamed(c)
        api.set_faults(Faults(hang=True, count=1))
        if not budget:  # nothing to hedge with, nor to retry with once the watch ended the try
            with pytest.raises(anthropic.APIStatusError, match="has not answered"):
                await ask_streamed(c)
            assert route.hedges == 0 and route.watch_kills == 1
            assert [r.fault for r in messages_seen(api)] == [None, "hang"]
            assert sink.errors[-1].detected_at - sink.errors[-1].sent_at >= 2.4  # the whole limit
            return
        m = await ask_streamed(c)
    assert m.stop_reason == "end_turn" and text_of(m)
    assert [r.fault for r in messages_seen(api)] == [None, "hang", None]
    (inc,) = sink.failures
    assert inc.kind == "stall" and inc.error.type is ErrorType.TIMEOUT and inc.restored_at is not None
    assert route.hedges == 1 and route.watch_kills == 0
    assert "second copy" in inc.error.description
    assert inc.detected_at - inc.sent_at < 2.4  # at the hedge delay, not the limit
    slowest = route.endpoint.times.slowest(recent=True)
    assert slowest is not None and slowest < 0.5  # the stand-in's answer: the copy went at the 0.5 s floor


async def test_a_copy_that_fails_while_the_first_still_waits_is_replaced_at_once(
        api: MockServer, sink: Sink, make_relay: MakeRelay) -> None:
    """First copy hung, the hedge reset at once: a third copy goes out without waiting and answers."""
    relay = await make_relay()
    route = _watched(relay, api, floor=2.4)
    async with sdk(relay, route) as c:
        await ask_streamed(c)
        api.set_faults(Faults(hang=True, count=1))
        asking = asyncio.ensure_future(ask_streamed(c))
        for _ in range(200):
            if len(messages_seen(api)) == 2:
                break
            await asyncio.sleep(0.01)
        api.set_faults(Faults(reset=True, count=1))  # the hedge's copy
        m = await asyncio.wait_for(asking, 20)
    assert m.stop_reason == "end_turn"
    assert [r.fault for r in messages_seen(api)] == [None, "hang", "reset", None]
    assert route.hedges == 2 and route.watch_kills == 0
    (inc,) = sink.failures
    assert inc.kind == "stall" and inc.restored_at is not None and inc.detected_at - inc.sent_at < 2.4


@pytest.mark.parametrize("hedge", [True, False])
async def test_a_hang_before_anything_was_learned_is_hedged_then_retried_before_the_cli_times_out(
        api: MockServer, sink: Sink, make_relay: MakeRelay, hedge: bool) -> None:
    """A fresh endpoint has no hang limit: its first hung request gets a copy at a third of ``API_TIMEOUT_MS``.

    Without hedging (the property broken) the hung request waits until just
    before the CLI's own timeout (less the relay's 1 s margin), then the relay
    ends it and retries, sending the client a head so it waits on: twice the
    standstill, but still no timeout on the client's side.
    """
    relay = await make_relay(hedge=hedge)
    ep = Endpoint()
    route = relay.register(api.url, ep, job_id="j", max_wait=10.0, answer_timeout=3.0)
    assert ep.times.first_answer_limit() is None  # nothing learned: no watch limit
    assert relay.hedge_delay(None) is None
    assert relay.hedge_delay(None, answer_timeout=3.0) == (pytest.approx(1.0) if hedge else None)
    api.set_faults(Faults(hang=True, count=1))
    client = anthropic.AsyncAnthropic(base_url=relay.url(route), api_key=KEY, max_retries=0, timeout=3.0)
    async with client as c:
        m = await ask_streamed(c)
    assert m.stop_reason == "end_turn" and text_of(m)
    assert [r.fault for r in messages_seen(api)] == ["hang", None]
    (inc,) = sink.failures
    assert inc.kind == "stall" and inc.restored_at is not None
    took = inc.detected_at - inc.sent_at
    if hedge:
        assert route.hedges == 1 and route.watch_kills == 0 and 1.0 - 0.05 <= took < 2.0
    else:
        assert route.hedges == 0 and route.watch_kills == 1 and 2.0 - 0.05 <= took < 3.0


async def test_without_hedging_a_hang_waits_out_its_limit(api: MockServer, sink: Sink,
                                                          make_relay: MakeRelay) -> None:
    relay = await make_relay(hedge=False)
    route = _watched(relay, api, floor=2.4)
    assert relay.hedge_delay(2.4) is None
    async with sdk(relay, route) as c:
        await ask_streamed(c)
        api.set_faults(Faults(hang=True, count=1))
        await ask_streamed(c)
    assert route.hedges == 0 and route.watch_kills == 1


async def test_a_hang_whose_retry_answers_slowly_keeps_the_longer_limit(api: MockServer, sink: Sink,
                                                                        make_relay: MakeRelay) -> None:
    """The property's other side: a retry slower than the old limit says this job needs more time."""
    relay = await make_relay()
    route = _watched(relay, api, floor=0.5, factor=1.0)
    async with sdk(relay, route) as c:
        await ask_streamed(c)  # learned: 0.5 s (the floor)
        api.set_faults(Faults(first_byte_delay=0.75))  # slower than 0.5 s, within 1 s
        m = await ask_streamed(c)
    assert m.stop_reason == "end_turn"
    # this job's requests get more time from now on (twice, or more if a loaded machine made it miss 1 s)
    assert route.watch_kills >= 1 and route.scale >= 2.0


async def test_no_hang_limit_before_the_endpoint_learned_one(api: MockServer, sink: Sink,
                                                             make_relay: MakeRelay) -> None:
    relay = await make_relay()
    route = relay.register(api.url, Endpoint(times=ResponseTimes(min_samples=1, floor=0.3)), job_id="j")
    api.set_faults(Faults(first_byte_delay=0.6, count=1))  # slow, not hung: nothing learned, nothing ended
    async with sdk(relay, route) as c:
        m = await ask_streamed(c)
    assert m.stop_reason == "end_turn"
    assert len(messages_seen(api)) == 1 and sink.errors == [] and route.watch_kills == 0


async def test_concurrent_requests_are_each_retried(api: MockServer, sink: Sink, make_relay: MakeRelay) -> None:
    relay = await make_relay()
    ep = Endpoint()
    route = relay.register(api.url, ep, job_id="j")
    api.set_faults(Faults(status=529, count=2))
    async with sdk(relay, route) as c:
        answers = await asyncio.gather(*(ask_streamed(c) for _ in range(3)))
    assert all(m.stop_reason == "end_turn" and text_of(m) for m in answers)
    assert sorted(str(r.status) for r in messages_seen(api)) == ["200", "200", "200", "529", "529"]
    assert len(sink.failures) == 2 and all(i.restored_at is not None for i in sink.failures)
    assert route.requests == 3 and route.answered == 3 and route.retries == 2
    assert sink.progressed > 0
    bm = ep.breaker.metrics()
    assert (bm.failures, bm.successes) == (2, 3)


# -- what is not retried ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "exc"), [(401, anthropic.AuthenticationError), (400, anthropic.BadRequestError)])
async def test_a_client_error_is_passed_on_at_once(api: MockServer, sink: Sink, make_relay: MakeRelay,
                                                   status: int, exc: type[anthropic.APIStatusError]) -> None:
    relay = await make_relay()
    ep = Endpoint()
    route = relay.register(api.url, ep, job_id="j")
    api.set_faults(Faults(status=status))
    async with sdk(relay, route) as c:
        with pytest.raises(exc) as ei:
            await ask_streamed(c)
    assert ei.value.status_code == status
    assert len(messages_seen(api)) == 1
    assert sink.failures == []  # no recovery began
    (err,) = sink.errors
    assert err.status == status
    assert err.error.type is (ErrorType.AUTH if status == 401 else ErrorType.VALIDATION)
    bm = ep.breaker.metrics()
    assert bm.failures == 0  # bad credentials or a bad request say nothing about the endpoint's health
    assert bm.state is CircuitState.CLOSED
    assert route.last_failed


async def test_after_max_tries_the_client_sees_the_last_status(api: MockServer, sink: Sink,
                                                               make_relay: MakeRelay) -> None:
    relay = await make_relay(max_tries=3)
    route = relay.register(api.url, Endpoint(), job_id="j")
    api.set_faults(Faults(status=529))
    async with sdk(relay, route) as c:
        with pytest.raises(anthropic.APIStatusError) as ei:
            await ask(c)
    assert ei.value.status_code == 529
    assert [r.status for r in messages_seen(api)] == [529, 529, 529]
    assert len(sink.errors) == 3
    assert len(sink.failures) == 2  # the tries that were retried
    assert all(i.gave_up and "3 tries" in i.why and i.restored_at is None for i in sink.failures)
    assert route.answered == 0 and route.last_failed


async def test_a_retry_after_past_the_clients_timeout_is_passed_on_at_once(api: MockServer, sink: Sink,
                                                                           make_relay: MakeRelay) -> None:
    relay = await make_relay()
    route = relay.register(api.url, Endpoint(), job_id="j", answer_timeout=2.0)
    api.set_faults(Faults(status=429, retry_after=30))
    async with sdk(relay, route) as c:
        with pytest.raises(anthropic.RateLimitError) as ei:
            await ask(c)
    assert ei.value.status_code == 429
    assert ei.value.response.headers.get("retry-after") == "30"
    assert len(messages_seen(api)) == 1
    assert sink.failures == [] and len(sink.errors) == 1 and sink.errors[0].kind == "429"


async def test_a_streamed_request_with_a_retry_after_past_max_wait_sees_the_429(
    api: MockServer, sink: Sink, make_relay: MakeRelay
) -> None:
    """The relay will not wait: it gives up at once, and should pass the 429 on as it came (status and
    retry-after) instead of committing a 200 SSE head first and ending it with an SSE error."""
    relay = await make_relay()
    route = relay.register(api.url, Endpoint(), job_id="j", max_wait=5.0)
    api.set_faults(Faults(status=429, retry_after=30, count=1))
    async with sdk(relay, route) as c:
        with pytest.raises(anthropic.RateLimitError) as ei:
            await ask_streamed(c)
    assert ei.value.status_code == 429
    assert len(messages_seen(api)) == 1
    assert sink.failures == []


async def test_no_retry_budget_within_the_wait_passes_the_failure_on(api: MockServer, sink: Sink,
                                                                      make_relay: MakeRelay) -> None:
    relay = await make_relay()
    ep = Endpoint(request_budget=RetryBudget(ratio=0.0, min_retries_per_sec=0.0))
    route = relay.register(api.url, ep, job_id="j", answer_timeout=1.6)
    api.set_faults(Faults(status=500, count=1))
    async with sdk(relay, route) as c:
        with pytest.raises(anthropic.InternalServerError) as ei:
            await ask(c)
    assert ei.value.status_code == 500
    assert len(messages_seen(api)) == 1
    (inc,) = sink.failures
    assert inc.gave_up and "budget" in inc.why


async def test_request_retries_draw_on_the_relays_budget_not_the_restarts(api: MockServer, sink: Sink,
                                                                          make_relay: MakeRelay) -> None:
    """The endpoint has a budget for request retries apart from the CLI restarts' one (RPC-sized).

    The restarts' budget here is empty: the retry goes ahead on the relay's, and the
    restarts' sees neither the deposit nor the withdrawal.
    """
    relay = await make_relay()
    empty = RetryBudget(ratio=0.0, min_retries_per_sec=0.0)
    own = RetryBudget(ratio=0.2, min_retries_per_sec=10.0)
    route = relay.register(api.url, Endpoint(budget=empty, request_budget=own), job_id="j", answer_timeout=5.0)
    api.set_faults(Faults(status=500, count=1))
    async with sdk(relay, route) as c:
        msg = await ask(c)
    assert msg.content
    assert len(messages_seen(api)) == 2
    assert own.stats().retries_allowed == 1 and own.stats().deposits == 1
    assert empty.stats().retries_allowed == 0 and empty.stats().deposits == 0


async def test_many_attempts_starting_the_relay_at_once_get_one_server(sink: Sink) -> None:
    """The first attempts of a batch start it together: one listening socket, not one each."""
    import psutil

    relay = ApiRelay(sink)
    me = psutil.Process()
    before = {c.laddr for c in me.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    try:
        await asyncio.gather(*(relay.start() for _ in range(16)))
        listening = {c.laddr for c in me.net_connections("tcp") if c.status == psutil.CONN_LISTEN} - before
        assert len(listening) == 1
    finally:
        await relay.stop()
    after = {c.laddr for c in me.net_connections("tcp") if c.status == psutil.CONN_LISTEN} - before
    assert after == set()


# -- the breaker ---------------------------------------------------------------------------------------------
async def test_an_open_breaker_past_the_deadline_answers_529(api: MockServer, sink: Sink,
                                                             make_relay: MakeRelay) -> None:
    relay = await make_relay()
    ep = Endpoint()
    ep.breaker.open(wait=30)
    route = relay.register(api.url, ep, job_id="j", max_wait=2.0)
    async with sdk(relay, route) as c:
        with pytest.raises(anthropic.APIStatusError) as ei:
            await ask_streamed(c)
    assert ei.value.status_code == 529
    assert "circuit breaker" in str(ei.value)
    assert messages_seen(api) == []
    assert sink.refusals and sink.refusals[0][0] == "open"
    assert ep.breaker.metrics().rejected >= 1


async def test_an_open_breaker_with_a_short_wait_holds_the_request(api: MockServer, sink: Sink,
                                                                   make_relay: MakeRelay) -> None:
    relay = await make_relay()
    ep = Endpoint()
    ep.breaker.open(wait=0.3)
    route = relay.register(api.url, ep, job_id="j")
    async with sdk(relay, route) as c:
        m = await ask_streamed(c)
    assert m.stop_reason == "end_turn"
    assert len(messages_seen(api)) == 1
    assert sink.refusals and sink.refusals[0][0] == "open"
    assert sink.errors == [] and sink.failures == []
    assert ep.breaker.metrics().successes == 1


@dataclass
class WatchedEndpoint(Endpoint):
    """An endpoint whose breaker transitions set an event, as the orchestrator's does."""

    changed: asyncio.Event | None = None

    def wait_for_change(self) -> asyncio.Event:
        if self.changed is None:
            self.changed = asyncio.Event()
        return self.changed

    def on_breaker_event(self, ev: object) -> None:
        from resurgo.breaker import StateTransition

        if isinstance(ev, StateTransition) and self.changed is not None:
            old, self.changed = self.changed, None
            old.set()


@pytest.mark.parametrize("wakes", [True, False])
async def test_a_request_a_half_open_breaker_held_goes_when_it_closes_not_at_the_next_poll(
        api: MockServer, sink: Sink, make_relay: MakeRelay, wakes: bool) -> None:
    """The relay's waits never end by themselves here: only the breaker's transition can release the request.

    Without the endpoint's change event (the property broken) the held request
    has nothing but its poll to wake it, and stays held after the closing.
    """
    async def never(_s: float) -> None:
        await asyncio.Event().wait()

    relay = await make_relay(sleep=never)
    br = CircuitBreaker("t", thresholds=CircuitThresholds(failure_rate=0.5, min_calls=1, wait_in_open=0.01,
                                                          half_open_max_calls=1), classifier=_breaker_classifier)
    ep = WatchedEndpoint(breaker=br) if wakes else Endpoint(breaker=br)
    if isinstance(ep, WatchedEndpoint):
        br.add_listener(ep.on_breaker_event)
    br.acquire().on_error(RuntimeError("overloaded"))
    assert br.state is not CircuitState.CLOSED
    await asyncio.sleep(0.05)
    probe = br.acquire()  # half-open: another job's probe has the only slot
    assert br.state is CircuitState.HALF_OPEN
    route = relay.register(api.url, ep, job_id="j", max_wait=10.0)
    async with sdk(relay, route) as c:
        asking = asyncio.ensure_future(ask_streamed(c))
        for _ in range(500):
            if sink.refusals:
                break
            await asyncio.sleep(0.01)
        assert sink.refusals == [("half_open", None)]
        probe.on_success()
        assert br.state is CircuitState.CLOSED
        done, _ = await asyncio.wait({asking}, timeout=3.0)
        if not wakes:
            assert not done and messages_seen(api) == []
            asking.cancel()
            with contextlib.suppress(BaseException):
                await asking
            return
        assert done
        m = asking.result()
    assert m.stop_reason == "end_turn" and len(messages_seen(api)) == 1


@pytest.mark.parametrize("streamed", [True, False])
async def test_a_breaker_open_past_the_clis_request_timeout_holds_a_streamed_request(
    api: MockServer, sink: Sink, make_relay: MakeRelay, streamed: bool
) -> None:
    """A breaker that opened while the attempt ran: a streamed request waits it out within ``max_wait``.

    Without the head, the relay could hold it only until the CLI's ``API_TIMEOUT_MS``
    (here 1.2 s, so 0.5 s): the breaker's 1.5 s would end a healthy attempt with a 529.
    The property's limit: a JSON answer has no head to send early, so it gets the 529.
    """
    relay = await make_relay()
    ep = Endpoint()
    ep.breaker.open(wait=1.5)
    route = relay.register(api.url, ep, job_id="j", answer_timeout=1.2, max_wait=5.0)
    async with sdk(relay, route) as c:
        if streamed:
            m = await ask_streamed(c)
        else:
            with pytest.raises(anthropic.APIStatusError) as ei:
                await ask(c)
    if streamed:
        assert m.stop_reason == "end_turn"
        assert len(messages_seen(api)) == 1
        assert sink.refusals and sink.refusals[0][0] == "open"
        assert sink.errors == [] and sink.failures == []
    else:
        assert ei.value.status_code == 529
        assert messages_seen(api) == []


async def test_a_wait_on_the_breaker_tells_the_supervisor_the_attempt_is_alive(
    api: MockServer, sink: Sink, make_relay: MakeRelay
) -> None:
    """The CLI prints nothing while the relay holds its request: the relay says so, or the stall watch fires."""
    relay = await make_relay()
    ep = Endpoint()
    ep.breaker.open(wait=0.6)
    route = relay.register(api.url, ep, job_id="j")
    async with sdk(relay, route) as c:
        await ask_streamed(c)
    assert sink.progressed >= 2  # every slice of the wait (0.25 s), not only the answer's bytes


async def test_a_failure_that_opens_the_breaker_goes_straight_to_it_without_own_back_off(
    api: MockServer, sink: Sink, make_relay: MakeRelay
) -> None:
    """Jobs must see the breaker refuse at once: the retry waits on the breaker, not on the relay's back-off."""
    relay = await make_relay(backoff_base=5.0, backoff_cap=5.0)  # a back-off that would show
    ep = Endpoint(breaker=CircuitBreaker(
        "t", thresholds=CircuitThresholds(consecutive_failures=1, wait_in_open=0.3, wait_multiplier=1.0),
        classifier=_breaker_classifier))
    api.set_faults(Faults(status=500, count=1))
    route = relay.register(api.url, ep, job_id="j", max_wait=3.0)
    async with sdk(relay, route) as c:
        m = await ask_streamed(c)
    assert m.stop_reason == "end_turn"
    assert sink.refusals and sink.refusals[0][0] == "open"
    (inc,) = sink.failures
    assert inc.backoff_s == 0.0 and inc.imposed_s > 0  # the whole wait was the breaker's


def _strict_breaker() -> CircuitBreaker:
    return CircuitBreaker("t", thresholds=CircuitThresholds(consecutive_failures=3, wait_in_open=30.0),
                          classifier=_breaker_classifier)


async def test_connections_the_network_broke_and_retries_got_past_do_not_open_the_breaker(
    api: MockServer, sink: Sink, make_relay: MakeRelay
) -> None:
    """Four resets in a row, then an answer: a blip the relay absorbed, not evidence about the API.

    Each try counted, a breaker opening at 3 failures in a row would have stopped every job.
    """
    relay = await make_relay()
    ep = Endpoint(breaker=_strict_breaker())
    api.set_faults(Faults(reset=True, count=4))
    route = relay.register(api.url, ep, job_id="j", max_wait=10.0)
    async with sdk(relay, route) as c:
        m = await ask_streamed(c)
    assert m.stop_reason == "end_turn"
    assert len(sink.failures) == 4
    assert ep.breaker.state is CircuitState.CLOSED
    assert ep.breaker.metrics().failures == 0 and ep.breaker.metrics().successes == 1


async def test_a_broken_connection_is_asked_again_almost_at_once_an_api_error_backs_off(
    api: MockServer, sink: Sink, make_relay: MakeRelay
) -> None:
    """Finagle's requeue: a connection the network broke costs the API nothing, so no back-off to speak of."""
    relay = await make_relay(backoff_base=0.6, backoff_cap=0.6)  # a back-off that would show
    ep = Endpoint()
    api.set_faults(Faults(reset=True, count=1))
    route = relay.register(api.url, ep, job_id="j", max_wait=10.0)
    async with sdk(relay, route) as c:
        await ask_streamed(c)
    (reset,) = sink.failures
    assert reset.backoff_s <= 0.005 + 1e-6
    api.set_faults(Faults(status=500, count=1))
    async with sdk(relay, route) as c:
        await ask_streamed(c)
    err500 = sink.failures[1]
    assert 0.3 - 1e-6 <= err500.backoff_s <= 0.6 + 1e-6


@pytest.mark.parametrize("requeues", [25, 3])
async def test_broken_connections_have_their_own_cap_not_max_tries(
        api: MockServer, sink: Sink, make_relay: MakeRelay, requeues: int) -> None:
    """Five resets in a row get past ``max_tries=2``: a few-millisecond requeue is not an API try.

    With the requeue cap at 3 (the property broken: the cap that bounds them is
    what gives the request up), the request fails at the third reset.
    """
    relay = await make_relay(max_tries=2, max_requeues=requeues)
    api.set_faults(Faults(reset=True, count=5))
    route = relay.register(api.url, Endpoint(), job_id="j", max_wait=10.0)
    async with sdk(relay, route) as c:
        if requeues == 3:
            with pytest.raises(anthropic.APIError):
                await ask_streamed(c)
            assert len(sink.errors) == 3 and sink.failures[-1].gave_up
            return
        m = await ask_streamed(c)
    assert m.stop_reason == "end_turn"
    assert len(sink.failures) == 5 and all(i.restored_at is not None for i in sink.failures)


async def test_a_request_given_up_on_broken_connections_counts_once_and_500s_count_every_try(
    api: MockServer, sink: Sink, make_relay: MakeRelay
) -> None:
    """The breaker still hears of a network the relay cannot get past, and of every API error."""
    relay = await make_relay()
    ep = Endpoint(breaker=_strict_breaker())
    api.set_faults(Faults(reset=True))  # every try
    route = relay.register(api.url, ep, job_id="j", max_wait=10.0)
    relay.max_requeues = 4
    async with sdk(relay, route) as c:
        with pytest.raises(anthropic.APIConnectionError):
            await ask(c)
    assert len(sink.errors) == 4 and sink.failures[-1].gave_up
    assert ep.breaker.metrics().failures == 1 and ep.breaker.state is CircuitState.CLOSED

    ep2 = Endpoint(breaker=_strict_breaker())
    api.set_faults(Faults(status=500, count=3))
    route2 = relay.register(api.url, ep2, job_id="k", max_wait=10.0)
    async with sdk(relay, route2) as c:
        with pytest.raises(anthropic.APIStatusError):
            await ask(c)
    assert ep2.breaker.state is CircuitState.OPEN  # 3 API errors in a row: the API's health


async def test_a_long_reset_opens_the_breaker_a_short_one_does_not(api: MockServer, sink: Sink,
                                                                   make_relay: MakeRelay) -> None:
    relay = await make_relay()
    short_ep, long_ep = Endpoint(), Endpoint()
    short = relay.register(api.url, short_ep, job_id="a", max_wait=5.0)
    long = relay.register(api.url, long_ep, job_id="b", max_wait=5.0)
    api.set_faults(Faults(status=429, retry_after=0.1, count=1))
    async with sdk(relay, short) as c:
        await ask(c)
    assert short_ep.breaker.state is CircuitState.CLOSED

    api.set_faults(Faults(status=429, retry_after=120, count=1))
    async with sdk(relay, long) as c:
        with pytest.raises(anthropic.RateLimitError):
            await ask(c)
        assert long_ep.breaker.state is CircuitState.OPEN
        # the next request is refused by the breaker without reaching the API
        n = len(messages_seen(api))
        with pytest.raises(anthropic.APIStatusError) as ei:
            await ask(c)
    assert ei.value.status_code == 529 and "circuit breaker" in str(ei.value)
    assert len(messages_seen(api)) == n


# -- a committed stream that cannot be completed -----------------------------------------------------------
async def test_a_cut_stream_that_keeps_failing_ends_with_an_sse_error(api: MockServer, sink: Sink,
                                                                      make_relay: MakeRelay) -> None:
    relay = await make_relay(max_tries=2)
    route = relay.register(api.url, Endpoint(), job_id="j")
    api.set_faults(Faults(cut_after=1))
    async with sdk(relay, route) as c:
        with pytest.raises(anthropic.APIError, match="resurgo relay"):
            await ask_streamed(c)
    assert [r.fault for r in messages_seen(api)] == ["cut", "cut"]
    assert sink.failures and all(i.gave_up for i in sink.failures)

    api.reset_requests()
    status, events = await raw_sse(relay.url(route))
    assert status == 200
    names = [n for n, _ in events]
    assert "message_start" not in names  # the held half answers never reached the client
    assert names[-1] == "error"
    err = json.loads(events[-1][1])
    assert err["type"] == "error" and err["error"]["message"].startswith("resurgo relay")
    assert len(messages_seen(api)) == 2


# -- not held, not retried ---------------------------------------------------------------------------------
async def test_an_unheld_stream_cut_after_bytes_went_out_breaks_the_client(api: MockServer, sink: Sink,
                                                                           make_relay: MakeRelay) -> None:
    relay = await make_relay()
    route = relay.register(api.url, Endpoint(), job_id="j", hold=False)
    api.set_faults(Faults(cut_after=2, count=1))
    async with sdk(relay, route) as c:
        with pytest.raises(BROKEN_STREAM):
            await ask_streamed(c)
    assert len(messages_seen(api)) == 1
    assert sink.failures == []


async def test_an_unheld_stream_cut_before_its_first_byte_is_retried(api: MockServer, sink: Sink,
                                                                     make_relay: MakeRelay) -> None:
    relay = await make_relay()
    route = relay.register(api.url, Endpoint(), job_id="j", hold=False)
    api.set_faults(Faults(cut_after=0, count=1))
    async with sdk(relay, route) as c:
        m = await ask_streamed(c)
    assert m.stop_reason == "end_turn" and text_of(m)
    assert len(messages_seen(api)) == 2
    assert len(sink.failures) == 1


# -- pings ----------------------------------------------------------------------------------------------------
def _first(names: list[str], name: str) -> int:
    return names.index(name) if name in names else len(names)


async def test_a_held_slow_answer_is_pinged(api: MockServer, make_relay: MakeRelay) -> None:
    relay = await make_relay(ping_every=0.1)
    route = relay.register(api.url, Endpoint(), job_id="j")
    _, clean = await raw_sse(relay.url(route))
    api.set_faults(Faults(event_delay=0.15))
    status, events = await raw_sse(relay.url(route))
    assert status == 200
    names = [n for n, _ in events]
    assert "ping" in names[:_first(names, "message_start")], names
    assert [n for n in names if n != "ping"] == [n for n, _ in clean if n != "ping"]


async def test_a_retry_wait_is_pinged(api: MockServer, make_relay: MakeRelay) -> None:
    relay = await make_relay(ping_every=0.1)
    route = relay.register(api.url, Endpoint(), job_id="j")
    api.set_faults(Faults(status=529, retry_after=0.1, count=1))
    status, events = await raw_sse(relay.url(route))
    assert status == 200
    names = [n for n, _ in events]
    assert "ping" in names[:_first(names, "message_start")], names
    assert names[-1] == "message_stop" and names.count("message_start") == 1


# -- everything else ----------------------------------------------------------------------------------------
async def test_other_requests_are_forwarded_once(api: MockServer, sink: Sink, make_relay: MakeRelay) -> None:
    relay = await make_relay()
    route = relay.register(api.url, Endpoint(), job_id="j")
    async with sdk(relay, route) as c:
        n = await c.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": PROMPT}])
        assert n.input_tokens > 0
        api.set_faults(Faults(status=500, count=1, paths=("/v1/messages/count_tokens",)))
        with pytest.raises(anthropic.InternalServerError):
            await c.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": PROMPT}])
    seen = [r for r in api.requests if r.path == "/v1/messages/count_tokens"]
    assert [r.status for r in seen] == [200, 500]
    assert sink.errors == [] and sink.failures == []
    assert route.requests == 0  # only messages count as the relay's requests


async def test_an_unknown_route_is_404(api: MockServer, make_relay: MakeRelay) -> None:
    relay = await make_relay()
    route = relay.register(api.url, Endpoint(), job_id="j")
    base = relay.url(route).rsplit("/", 1)[0]
    async with httpx.AsyncClient(timeout=10) as h:
        r = await h.post(base + "/not-a-token" + MESSAGES, json=STREAM_BODY, headers=HEADERS)
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
        r = await h.get(relay.url(route).split("/r/")[0] + "/v1/models")
        assert r.status_code == 404
        relay.unregister(route)
        r = await h.post(relay.url(route) + MESSAGES, json=STREAM_BODY, headers=HEADERS)
        assert r.status_code == 404
    assert api.requests == []


async def test_a_non_http_upstream_is_refused(make_relay: MakeRelay) -> None:
    relay = await make_relay()
    with pytest.raises(ValueError, match="http"):
        relay.register("ftp://example.invalid/", Endpoint(), job_id="j")


async def test_stop_ends_the_requests_in_flight(api: MockServer, sink: Sink) -> None:
    relay = ApiRelay(sink, backoff_base=0.01, backoff_cap=0.05)
    await relay.start()
    try:
        route = relay.register(api.url, Endpoint(), job_id="j", watch=False)
        api.set_faults(Faults(hang=True))
        async with sdk(relay, route) as c:
            task = asyncio.ensure_future(ask(c))
            for _ in range(500):
                if messages_seen(api):
                    break
                await asyncio.sleep(0.01)
            assert len(messages_seen(api)) == 1
            await relay.stop()
            assert not relay.running
            with pytest.raises(anthropic.APIConnectionError):
                await asyncio.wait_for(task, 10)
    finally:
        await relay.stop()


# -- secrets ----------------------------------------------------------------------------------------------------
async def test_the_api_key_is_forwarded_and_never_logged(api: MockServer, sink: Sink, make_relay: MakeRelay,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    relay = await make_relay(max_tries=2)
    route = relay.register(api.url, Endpoint(), job_id="j")
    async with sdk(relay, route) as c:
        api.set_faults(Faults(status=500, count=1))
        await ask_streamed(c)  # failed, retried, answered
        api.set_faults(Faults(status=529))
        with pytest.raises(anthropic.APIStatusError):
            await ask(c)  # failed twice, given up (logged)
    assert len(sink.errors) == 3
    assert any(r.name == "resurgo.relay" for r in caplog.records)  # the relay did log something
    for rec in caplog.records:
        assert KEY not in rec.getMessage()
        assert KEY not in (rec.exc_text or "")
    assert KEY not in caplog.text
    seen = messages_seen(api)
    assert len(seen) == 4
    assert all("x-api-key" in r.headers or "authorization" in r.headers for r in seen)  # redacted by the stand-in
    assert seen[1].status == 200


async def test_request_headers_reach_the_upstream_untouched(sink: Sink, make_relay: MakeRelay) -> None:
    """The stand-in redacts what it records: a bare upstream shows the key arrived as the client sent it."""
    heads: list[bytes] = []

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            head = await reader.readuntil(b"\r\n\r\n")
            heads.append(head)
            n = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(n)
            body = b'{"input_tokens": 3}'
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                         b"connection: close\r\n\r\n%s" % (len(body), body))
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(upstream, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        relay = await make_relay()
        route = relay.register(f"http://127.0.0.1:{port}", Endpoint(), job_id="j")
        async with sdk(relay, route) as c:
            n = await c.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "x"}])
        assert n.input_tokens == 3
    finally:
        server.close()
        await server.wait_closed()
    (head,) = heads
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("POST /v1/messages/count_tokens")
    sent = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    # the SDK sends the key as x-api-key or (newer releases) as a bearer token
    assert KEY in (sent.get("x-api-key"), sent.get("authorization", "").removeprefix("Bearer "))


# -- the answer's own text is not the stream's framing -------------------------------------------------------
async def _ask_text(c: anthropic.AsyncAnthropic, text: str) -> anthropic.types.Message:
    async with c.messages.stream(model=MODEL, max_tokens=64,
                                 messages=[{"role": "user", "content": f"[[text: {text}]]"}]) as s:
        return await s.get_final_message()


async def test_an_answer_that_mentions_event_error_is_delivered(api: MockServer, sink: Sink,
                                                                make_relay: MakeRelay) -> None:
    """A complete, healthy answer whose text contains ``event: error`` is not an SSE error event."""
    relay = await make_relay()
    route = relay.register(api.url, Endpoint(), job_id="j")
    text = "an SSE stream may end with event: error event: error event: error"
    async with sdk(relay, route) as c:
        m = await _ask_text(c, text)
    assert text_of(m) == text
    assert len(messages_seen(api)) == 1
    assert sink.errors == []


async def test_a_cut_answer_that_mentions_message_stop_is_still_retried(api: MockServer, sink: Sink,
                                                                        make_relay: MakeRelay) -> None:
    """The text ``message_stop`` inside a delta does not make a cut answer complete."""
    relay = await make_relay()
    route = relay.register(api.url, Endpoint(), job_id="j")
    text = "message_stop message_stop message_stop"
    api.set_faults(Faults(cut_after=4, count=1))  # message_start, content_block_start, ping, the first delta
    async with sdk(relay, route) as c:
        m = await _ask_text(c, text)
    assert text_of(m) == text
    assert m.stop_reason == "end_turn"
    assert [r.fault for r in messages_seen(api)] == ["cut", None]
    assert len(sink.failures) == 1


class ScriptedUpstream:
    """A bare upstream that answers the n-th request with the n-th scripted SSE body (cleanly chunked)."""

    def __init__(self, bodies: list[bytes]) -> None:
        self.bodies = bodies
        self.seen = 0
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> ScriptedUpstream:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            head = await reader.readuntil(b"\r\n\r\n")
            n = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(n)
            body = self.bodies[min(self.seen, len(self.bodies) - 1)]
            self.seen += 1
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
                         b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n")
            writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
            await writer.drain()
        writer.close()


def sse_answer(text: str) -> list[bytes]:
    """The events of a complete streamed answer with this text, one encoded event each."""
    from resurgo.mockapi._script import Reply
    from resurgo.mockapi._sse import encode_event, sse_events

    reply = Reply(content=[{"type": "text", "text": text}])
    return [encode_event(name, data) for name, data in sse_events(reply, model=MODEL, input_tokens=3,
                                                                   output_tokens=3)]


@pytest.mark.parametrize("text", ["all good all good all good", "message_stop message_stop message_stop"],
                         ids=["plain-text", "text-mentions-message_stop"])
async def test_a_cleanly_ended_answer_without_message_stop_is_retried(sink: Sink, make_relay: MakeRelay,
                                                                      text: str) -> None:
    """An answer whose stream ends (cleanly) before its ``message_stop`` event is incomplete, whatever
    its text says."""
    full = sse_answer(text)
    assert full[3].startswith(b"event: content_block_delta")
    async with ScriptedUpstream([b"".join(full[:4]), b"".join(full)]) as up:
        relay = await make_relay()
        route = relay.register(up.url, Endpoint(), job_id="j")
        async with sdk(relay, route) as c:
            m = await _ask_text(c, text)
        seen = up.seen
    assert text_of(m) == text and m.stop_reason == "end_turn"
    assert seen == 2
    assert len(sink.failures) == 1 and sink.failures[0].kind == "network"


async def test_an_sse_error_event_from_the_api_is_retried(sink: Sink, make_relay: MakeRelay) -> None:
    """The API's own mid-stream ``event: error`` (an overload) makes the held answer a failed try."""
    text = "all good"
    full = sse_answer(text)
    err = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    async with ScriptedUpstream([full[0] + err, b"".join(full)]) as up:
        relay = await make_relay()
        route = relay.register(up.url, Endpoint(), job_id="j")
        async with sdk(relay, route) as c:
            m = await _ask_text(c, text)
        seen = up.seen
    assert text_of(m) == text
    assert seen == 2
    (inc,) = sink.failures
    assert inc.error.type is ErrorType.RESOURCE and inc.restored_at is not None


async def test_with_adaptive_concurrency_an_overload_goes_to_the_cli_at_once(
    api: MockServer, sink: Sink, make_relay: MakeRelay
) -> None:
    """concurrency="auto": the limiter answers overload (fewer jobs), so the relay must not retry around it."""
    relay = await make_relay()
    api.set_faults(Faults(status=529, count=1))
    held = relay.register(api.url, Endpoint(), job_id="a", retry_overload=False)
    async with sdk(relay, held) as c:
        with pytest.raises(anthropic.APIStatusError) as e:
            await ask(c)
    assert e.value.status_code == 529 and len(messages_seen(api)) == 1
    assert sink.failures == [] and len(sink.errors) == 1  # an error, not a recovery

    api.set_faults(Faults(status=529, count=1))  # the same answer with the default: retried
    retried = relay.register(api.url, Endpoint(), job_id="b")
    async with sdk(relay, retried) as c:
        await ask(c)
    assert len(messages_seen(api)) == 3 and len(sink.failures) == 1
