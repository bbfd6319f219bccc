"""Overhead of resurgo.retry against tenacity, stamina and backoff, in one process.

Run: ``python bench/bench_retry.py`` (add ``--quick`` for a short smoke run).

Overhead = time per wrapped call minus time of the same work done by hand:
for the success case the bare call, for the "fails twice then succeeds" case a
hand-written three-iteration try/except loop (so raising and catching the two
exceptions, which every library pays, is not counted as overhead).  The failure
is a ``ConnectionError`` (what a flaky network raises); the anchors retry on that
type with zero waits.  The row ``resurgo`` is what ``@resurgo.retry`` does by
default: every failure goes through the full default classifier (rule packs,
about 9 us per exception).  The row ``resurgo (stub classifier)`` passes a
constant classifier instead -- a set-up nobody gets by default, kept to show
the retry machinery's own cost.  Each figure is the best of several repeats.
Instrumentation is off for every library (stamina's default retry logging,
backoff's logger); budgets are off except in the row ``resurgo+budget`` (a
budget sized for RPC traffic would stop thousands of retries per second, which
is its job).  Ratios > 1 mean resurgo has less overhead than the anchor; when
resurgo's overhead is not above the measurement's noise the ratio is reported
as missing, never as a huge number.  Results go to ``bench/results/retry.json``.
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

import resurgo.retrier as rr
from _results import write_results
from resurgo.classifier import ErrorClass, ErrorType, Severity

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
            raise ConnectionError("flaky")
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


STUB = "resurgo (stub classifier)"
E = ConnectionError  # what every library retries on: a flaky network


def zero_policy() -> rr.RetryPolicy:
    return rr.RetryPolicy(max_attempts=3, base_delay=0, max_delay=0, backoff_strategy="fixed")


def sync_success() -> dict[str, Callable[[], Any]]:
    return {
        "resurgo": rr.retry(budget=None)(ok),
        "resurgo+budget": rr.retry(budget=rr.RetryBudget())(ok),
        "tenacity": tenacity.retry(
            retry=tenacity.retry_if_exception_type(E),
            stop=tenacity.stop_after_attempt(3),
        )(ok),
        "stamina": stamina.retry(on=E, attempts=3)(ok),
        "backoff": backoff.on_exception(backoff.expo, E, max_tries=3, logger=None)(ok),
    }


def async_success() -> dict[str, Callable[[], Awaitable[Any]]]:
    return {
        "resurgo": rr.retry(budget=None)(aok),
        "resurgo+budget": rr.retry(budget=rr.RetryBudget())(aok),
        "tenacity": tenacity.retry(
            retry=tenacity.retry_if_exception_type(E),
            stop=tenacity.stop_after_attempt(3),
        )(aok),
        "stamina": stamina.retry(on=E, attempts=3)(aok),
        "backoff": backoff.on_exception(backoff.expo, E, max_tries=3, logger=None)(aok),
    }


def sync_flaky() -> dict[str, Callable[[], Any]]:
    return {
        "resurgo": rr.retry(policy=zero_policy(), budget=None)(flaky()),
        STUB: rr.retry(policy=zero_policy(), classifier=_classifier, budget=None)(flaky()),
        "tenacity": tenacity.retry(
            retry=tenacity.retry_if_exception_type(E),
            stop=tenacity.stop_after_attempt(3),
            wait=tenacity.wait_none(),
        )(flaky()),
        "stamina": stamina.retry(on=E, attempts=3, wait_initial=0, wait_max=0, wait_jitter=0)(flaky()),
        "backoff": backoff.on_exception(
            backoff.constant, E, max_tries=3, interval=0, jitter=None, logger=None
        )(flaky()),
    }


def async_flaky() -> dict[str, Callable[[], Awaitable[Any]]]:
    return {
        "resurgo": rr.retry(policy=zero_policy(), budget=None)(aflaky()),
        STUB: rr.retry(policy=zero_policy(), classifier=_classifier, budget=None)(aflaky()),
        "tenacity": tenacity.retry(
            retry=tenacity.retry_if_exception_type(E),
            stop=tenacity.stop_after_attempt(3),
            wait=tenacity.wait_none(),
        )(aflaky()),
        "stamina": stamina.retry(on=E, attempts=3, wait_initial=0, wait_max=0, wait_jitter=0)(aflaky()),
        "backoff": backoff.on_exception(
            backoff.constant, E, max_tries=3, interval=0, jitter=None, logger=None
        )(aflaky()),
    }


def manual_flaky() -> Callable[[], int]:
    f = flaky()

    def loop() -> int:
        for _ in range(3):
            try:
                return f()
            except E:
                continue
        raise AssertionError("unreachable")

    return loop


def manual_aflaky() -> Callable[[], Awaitable[int]]:
    f = aflaky()

    async def loop() -> int:
        for _ in range(3):
            try:
                return await f()
            except E:
                continue
        raise AssertionError("unreachable")

    return loop


def ratio(anchor_over: float, ours: float) -> float | None:
    """anchor overhead / resurgo overhead; None when resurgo's is not above zero (noise)."""
    return anchor_over / ours if ours > 0 else None


def report(title: str, baseline: float, results: dict[str, float]) -> dict[str, Any]:
    over = {k: v - baseline for k, v in results.items()}
    ours = over["resurgo"]
    print(f"\n{title}   (baseline {baseline * 1e9:,.0f} ns/call)")
    print(f"  {'library':<28}{'ns/call':>12}{'overhead ns':>14}{'overhead vs resurgo':>22}")
    rows = []
    for k, v in results.items():
        r = ratio(over[k], ours)
        shown = f"{r:>21.1f}x" if r is not None else f"{'n/a (noise)':>22}"
        print(f"  {k:<28}{v * 1e9:>12,.0f}{over[k] * 1e9:>14,.0f}{shown}")
        rows.append({"library": k, "ns_per_call": v * 1e9, "overhead_ns": over[k] * 1e9, "vs_resurgo": r})
    return {"title": title, "baseline_ns": baseline * 1e9, "rows": rows, "over": over}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer iterations (smoke test)")
    ap.add_argument("--repeat", type=int, default=None, help="repeats per figure (best is kept; default 5)")
    a = ap.parse_args()
    # Instrumentation off everywhere: stamina logs every retry by default, backoff
    # logs through its logger; resurgo runs here without hooks.
    stamina.instrumentation.set_on_retry_hooks([])
    n_ok, n_flaky, rep = (2_000, 500, 2) if a.quick else (50_000, 4_000, 5)
    if a.repeat is not None:
        rep = a.repeat
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
    out: dict[str, Any] = {"calls": {"success": n_ok, "fail_x2": n_flaky}, "repeat": rep, "cases": {}}
    for name, rep_ in verdicts:
        over = rep_.pop("over")
        ours = over["resurgo"]
        t, s, b = (ratio(over[k], ours) for k in ("tenacity", "stamina", "backoff"))
        ok_ = t is not None and s is not None and b is not None and t >= 10 and s >= 10 and b >= 1
        fmt = lambda r: f"{r:5.1f}x" if r is not None else "  n/a"  # noqa: E731
        print(f"  {name:<14} tenacity {fmt(t)}  stamina {fmt(s)}  backoff {fmt(b)}  -> {'met' if ok_ else 'NOT met'}")
        rep_["goal_met"] = ok_
        out["cases"][name] = rep_
    sys.stdout.flush()
    write_results("retry", out, anchors=["tenacity", "stamina", "backoff"])


if __name__ == "__main__":
    main()
