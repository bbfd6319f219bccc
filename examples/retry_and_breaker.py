"""Retry with backoff and a shared budget, behind a circuit breaker, in sync and asyncio code.

Run: python examples/retry_and_breaker.py   (waits are removed with resurgo.set_testing)
"""

from __future__ import annotations

import asyncio

import resurgo
from resurgo.breaker import CircuitThresholds

calls = {"n": 0}


@resurgo.retry(max_attempts=4, base_delay=0.2, dependency="flaky-service")
def flaky() -> str:
    """Fails twice with a dropped connection, then works: the retrier hides that from callers."""
    calls["n"] += 1
    if calls["n"] < 3:
        raise ConnectionResetError("connection reset by peer")
    return "ok"


@resurgo.retry(max_attempts=3)
def bad_request() -> None:
    """A validation error is never retried: trying again unchanged cannot help."""
    calls["n"] += 1
    raise ValueError("invalid request: prompt is too long")


async def main_async(breaker: resurgo.CircuitBreaker) -> None:
    retrier = resurgo.Retrier(policy=resurgo.RetryPolicy(max_attempts=3, base_delay=0.1))
    attempts = 0
    async for attempt in retrier:
        with attempt:
            attempts += 1
            if attempts == 1:
                raise TimeoutError("read timed out")
    print("async block form succeeded after", attempts, "attempts")

    async def call_api() -> str:
        return "pong"

    print("through the breaker:", await breaker.call_async(call_api))


def main() -> None:
    resurgo.set_testing(True, attempts=4)  # no real waits in a demo or a test

    print("flaky() ->", flaky(), "after", calls["n"], "calls")

    calls["n"] = 0
    try:
        bad_request()
    except ValueError:
        print("bad_request() raised at once after", calls["n"], "call (not retryable)")

    breaker = resurgo.CircuitBreaker(
        "api", thresholds=CircuitThresholds(failure_rate=0.5, min_calls=4, sliding_window=10)
    )

    @breaker
    def down() -> None:
        raise ConnectionRefusedError("connection refused")

    for _ in range(4):
        try:
            down()
        except ConnectionRefusedError:
            pass
    print("breaker state after 4 failures:", breaker.state)
    try:
        down()
    except resurgo.CircuitOpenError as e:
        print(f"rejected without calling through; retry in {e.retry_after:.0f}s")
    breaker.reset()
    asyncio.run(main_async(breaker))


if __name__ == "__main__":
    main()
