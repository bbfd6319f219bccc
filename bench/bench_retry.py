"""Overhead of resurgo.retry against tenacity, stamina and backoff, in one process.

Run: ``python bench/bench_retry.py`` (add ``--quick`` for a short smoke run).

Overhead = time per wrapped call minus time of the same work done by hand:
for the success case the bare call, for the "fails twice then succeeds" case a
hand-written three-iteration try/except loop (so raising and catching the two
exceptions, which every library pays, is not counted as overhead).  All
libraries retry on ``ValueError`` only with zero waits; each figure is the best
of several repeats.  Instrumentation is off for every library (stamina's default
retry logging, backoff's logger), budgets are off except in the row
``resurgo+budget``.  Ratios > 1 mean resurgo has less overhead than the anchor.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Any

import backoff
import stamina
import tenacity

import resurgo.retry as rr
from resurgo.classify import ErrorClass, ErrorType, Severity

_EC = ErrorClass(
    type=ErrorType.NETWORK,
    severity=Severity.MEDIUM,
    category="network",
    description="bench",
    retryable=True,
)


def _classifier(exc: BaseException) -> ErrorClass:
    return _EC


def flaky() -> Callable[[], int]:
    """Fails twice, succeeds on the third call, forever (each retried call = 3 calls)."""
    n = 0

    def flaky_call() -> int:
        nonlocal n
        n += 1
        if n % 3:
            raise ValueError("flaky")
        return n

    return flaky_call


def aflaky() -> Callable[[], Awaitable[int]]:
    f = flaky()

    async def aflaky_call() -> int:
        return f()

    return aflaky_call


def ok() -> int:
    return 1


async def aok() -> int:
    return 1


def best_sync(fn: Callable[[], Any], number: int, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append(time.perf_counter() - t0)
    return min(times) / number


def best_async(fn: Callable[[], Awaitable[Any]], number: int, repeat: int) -> float:
    async def run() -> float:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            for _ in range(number):
                await fn()
            times.append(time.perf_counter() - t0)
        return min(times) / number

    return asyncio.run(run())


def zero_policy() -> rr.RetryPolicy:
    return rr.RetryPolicy(max_attempts=3, base_delay=0, max_delay=0, backoff_strategy="fixed")


def sync_success() -> dict[str, Callable[[], Any]]:
    return {
        "resurgo": rr.retry(on=ValueError, classifier=_classifier, budget=None)(ok),
        "resurgo+budget": rr.retry(on=ValueError, classifier=_classifier, budget=rr.RetryBudget())(ok),
        "tenacity": tenacity.retry(
            retry=tenacity.retry_if_exception_type(ValueError),
            stop=tenacity.stop_after_attempt(3),
        )(ok),
        "stamina": stamina.retry(on=ValueError, attempts=3)(ok),
        "backoff": backoff.on_exception(backoff.expo, ValueError, max_tries=3, logger=None)(ok),
    }


def async_success() -> dict[str, Callable[[], Awaitable[Any]]]:
    return {
        "resurgo": rr.retry(on=ValueError, classifier=_classifier, budget=None)(aok),
        "resurgo+budget": rr.retry(on=ValueError, classifier=_classifier, budget=rr.RetryBudget())(aok),
        "tenacity": tenacity.retry(
            retry=tenacity.retry_if_exception_type(ValueError),
            stop=tenacity.stop_after_attempt(3),
        )(aok),
        "stamina": stamina.retry(on=ValueError, attempts=3)(aok),
        "backoff": backoff.on_exception(backoff.expo, ValueError, max_tries=3, logger=None)(aok),
    }


def sync_flaky() -> dict[str, Callable[[], Any]]:
    return {
        "resurgo": rr.retry(policy=zero_policy(), on=ValueError, classifier=_classifier, budget=None)(flaky()),
        "tenacity": tenacity.retry(
            retry=tenacity.retry_if_exception_type(ValueError),
            stop=tenacity.stop_after_attempt(3),
            wait=tenacity.wait_none(),
        )(flaky()),
        "stamina": stamina.retry(on=ValueError, attempts=3, wait_initial=0, wait_max=0, wait_jitter=0)(flaky()),
        "backoff": backoff.on_exception(
            backoff.constant, ValueError, max_tries=3, interval=0, jitter=None, logger=None
        )(flaky()),
    }


def async_flaky() -> dict[str, Callable[[], Awaitable[Any]]]:
    return {
        "resurgo": rr.retry(policy=zero_policy(), on=ValueError, classifier=_classifier, budget=None)(aflaky()),
        "tenacity": tenacity.retry(
            retry=tenacity.retry_if_exception_type(ValueError),
            stop=tenacity.stop_after_attempt(3),
            wait=tenacity.wait_none(),
        )(aflaky()),
        "stamina": stamina.retry(on=ValueError, attempts=3, wait_initial=0, wait_max=0, wait_jitter=0)(aflaky()),
        "backoff": backoff.on_exception(
            backoff.constant, ValueError, max_tries=3, interval=0, jitter=None, logger=None
        )(aflaky()),
    }


def manual_flaky() -> Callable[[], int]:
    f = flaky()

    def loop() -> int:
        for _ in range(3):
            try:
                return f()
            except ValueError:
                continue
        raise AssertionError("unreachable")

    return loop


def manual_aflaky() -> Callable[[], Awaitable[int]]:
    f = aflaky()

    async def loop() -> int:
        for _ in range(3):
            try:
                return await f()
            except ValueError:
                continue
        raise AssertionError("unreachable")

    return loop


def report(title: str, baseline: float, results: dict[str, float]) -> dict[str, float]:
    over = {k: max(v - baseline, 1e-12) for k, v in results.items()}
    ours = over["resurgo"]
    print(f"\n{title}   (baseline {baseline * 1e9:,.0f} ns/call)")
    print(f"  {'library':<16}{'ns/call':>12}{'overhead ns':>14}{'overhead vs resurgo':>22}")
    for k, v in results.items():
        ratio = over[k] / ours
        print(f"  {k:<16}{v * 1e9:>12,.0f}{over[k] * 1e9:>14,.0f}{ratio:>21.1f}x")
    return over


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer iterations (smoke test)")
    a = ap.parse_args()
    # Instrumentation off everywhere: stamina logs every retry by default, backoff
    # logs through its logger; resurgo runs here without hooks.
    stamina.instrumentation.set_on_retry_hooks([])
    n_ok, n_flaky, rep = (2_000, 500, 2) if a.quick else (50_000, 4_000, 5)
    print(
        f"python {platform.python_version()} on {platform.machine()}; "
        f"tenacity {version('tenacity')}, stamina {version('stamina')}, "
        f"backoff {version('backoff')}; best of {rep}; load average {os.getloadavg()[0]:.1f} "
        f"(noisy machines inflate every figure; compare the ratios)"
    )
    verdicts = []

    base = best_sync(ok, n_ok, rep)
    res = {k: best_sync(fn, n_ok, rep) for k, fn in sync_success().items()}
    verdicts.append(("sync success", report("sync: successful first call", base, res)))

    base = best_async(aok, n_ok, rep)
    res = {k: best_async(fn, n_ok, rep) for k, fn in async_success().items()}
    verdicts.append(("async success", report("async: successful first call", base, res)))

    base = best_sync(manual_flaky(), n_flaky, rep)
    res = {k: best_sync(fn, n_flaky, rep) for k, fn in sync_flaky().items()}
    verdicts.append(("sync fail x2", report("sync: fails twice, then succeeds (zero waits)", base, res)))

    base = best_async(manual_aflaky(), n_flaky, rep)
    res = {k: best_async(fn, n_flaky, rep) for k, fn in async_flaky().items()}
    verdicts.append(("async fail x2", report("async: fails twice, then succeeds (zero waits)", base, res)))

    print("\nGoal: >= 10x less overhead than tenacity and stamina, no more than backoff")
    for name, over in verdicts:
        ours = over["resurgo"]
        t, s, b = (over[k] / ours for k in ("tenacity", "stamina", "backoff"))
        ok_ = t >= 10 and s >= 10 and b >= 1
        print(
            f"  {name:<14} tenacity {t:5.1f}x  stamina {s:5.1f}x  backoff {b:5.1f}x  -> {'met' if ok_ else 'NOT met'}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
