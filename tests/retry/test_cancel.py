"""Cancellation interrupts a backoff sleep at once (real clock, 30 s waits, short timeouts)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from resurgo.retrier import GiveUpReason, Retrier, RetryEvent, RetryPolicy, retry_info

from ._helpers import Classified, classify, net

LONG = RetryPolicy(max_attempts=5, base_delay=30, max_delay=30, backoff_strategy="fixed", jitter=False)


async def test_task_cancellation_interrupts_async_backoff() -> None:
    r = Retrier(policy=LONG, classifier=classify)
    sleeping = asyncio.Event()
    calls = 0

    async def always() -> None:
        nonlocal calls
        calls += 1
        raise net()

    r2 = Retrier(policy=LONG, classifier=classify, before_sleep=[lambda ev: sleeping.set()])
    task = asyncio.create_task(r2.call_async(always))
    await asyncio.wait_for(sleeping.wait(), 5)
    t0 = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - t0 < 5  # not the 30 s backoff
    assert calls == 1
    assert r2.stats().give_ups == {"cancelled": 1}
    assert r.stats().calls == 0


async def test_async_block_form_cancellation() -> None:
    r = Retrier(policy=LONG, classifier=classify)

    async def loop() -> None:
        async for attempt in r:
            with attempt:
                raise net()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)


def test_cancel_wakes_a_sync_sleep_from_another_thread() -> None:
    sleeping = threading.Event()

    def on_sleep(ev: RetryEvent) -> None:
        sleeping.set()

    r = Retrier(policy=LONG, classifier=classify, before_sleep=[on_sleep])
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            r.call(lambda: (_ for _ in ()).throw(net()))
        except BaseException as e:
            outcome.append(e)

    t = threading.Thread(target=run)
    t0 = time.monotonic()
    t.start()
    assert sleeping.wait(5)
    r.cancel()
    t.join(5)
    assert not t.is_alive()
    assert time.monotonic() - t0 < 5
    (exc,) = outcome
    assert isinstance(exc, Classified)  # the original error, as always
    info = retry_info(exc)
    assert info is not None and info.reason is GiveUpReason.CANCELLED
    assert r.cancelled
    # a cancelled retrier refuses further retries until reset
    with pytest.raises(Classified):
        r.call(lambda: (_ for _ in ()).throw(net()))
    r.reset_cancel()
    assert not r.cancelled
