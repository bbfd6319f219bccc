"""Breaker overhead: resurgo vs pybreaker and circuitbreaker (sync), aiobreaker and
purgatory (asyncio), all measured in the same run.

Two numbers per library: the overhead of a successful call through a CLOSED
breaker, and the cost of a rejected call on an OPEN one (raise + catch
included, since that is what a caller pays).  Overhead = time per call minus
the same loop calling the bare function.  Contenders are measured in
interleaved rounds and the best round is kept, so background load hits all
of them alike.  Ratios are anchor / resurgo: above 1 means resurgo is faster.

Every library gets the same number of calls per round.  Before the rejected
calls are timed, each open breaker is checked to be really open: one call must
raise that library's own open-circuit error without reaching the function.  A
ratio is reported only when resurgo's overhead is above zero (else "n/a"; no
clamping, no infinite wins).  Results go to ``bench/results/breaker.json``.

Run: ``python bench/bench_breaker.py [--rounds N] [--calls N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import aiobreaker
import circuitbreaker
import purgatory
import pybreaker
from purgatory.domain.model import OpenedState as PurgatoryOpen

from _results import write_results
from resurgo.breaker import CircuitBreaker, CircuitOpenError, CircuitThresholds

Loop = Callable[[int], float]


def f() -> int:
    return 1


REACHED = [0]  # calls that got through to a failing function


def fail() -> int:
    REACHED[0] += 1
    raise ConnectionError("down")


async def af() -> int:
    return 1


async def afail() -> int:
    REACHED[0] += 1
    raise ConnectionError("down")


def check_rejects(name: str, call: Callable[[], object], exc: type[BaseException]) -> None:
    """The breaker must be open: the call raises ``exc`` and never reaches the function."""
    before = REACHED[0]
    try:
        call()
    except exc:
        if REACHED[0] != before:
            raise SystemExit(f"{name}: the call reached the function; the breaker is not open") from None
        return
    except BaseException as e:
        raise SystemExit(f"{name}: expected {exc.__name__}, got {type(e).__name__}: {e}") from None
    raise SystemExit(f"{name}: the call was not rejected")


def acheck_rejects(name: str, call: Callable[[], Awaitable[object]], exc: type[BaseException]) -> None:
    check_rejects(name, lambda: asyncio.run(_await(call)), exc)


async def _await(call: Callable[[], Awaitable[object]]) -> object:
    return await call()


def _classifier(exc: BaseException):  # type: ignore[no-untyped-def]
    from resurgo.classifier import ErrorClass, ErrorType, Severity

    return ErrorClass(ErrorType.NETWORK, Severity.MEDIUM, "network", "down", True)


def _resurgo() -> CircuitBreaker:
    t = CircuitThresholds(min_calls=1, wait_in_open=1e6, max_wait_in_open=1e6)
    return CircuitBreaker("bench", thresholds=t, classifier=_classifier)


# ------------------------------------------------------------------ sync loops
def sync_loop(fn: Callable[[], object]) -> Loop:
    def run(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return time.perf_counter() - t0

    return run


def sync_reject_loop(fn: Callable[[], object], exc: type[BaseException]) -> Loop:
    def run(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            try:
                fn()
            except exc:
                pass
        return time.perf_counter() - t0

    return run


def async_loop(fn: Callable[[], Awaitable[object]]) -> Loop:
    async def go(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            await fn()
        return time.perf_counter() - t0

    return lambda n: asyncio.run(go(n))


def async_reject_loop(fn: Callable[[], Awaitable[object]], exc: type[BaseException]) -> Loop:
    async def go(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            try:
                await fn()
            except exc:
                pass
        return time.perf_counter() - t0

    return lambda n: asyncio.run(go(n))


def build() -> dict[str, dict[str, Loop]]:
    # --- sync, closed
    r_ok = _resurgo()
    r_dec = r_ok(f)
    pb = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)
    pb_dec = pb(f)
    cb = circuitbreaker.CircuitBreaker(failure_threshold=5, recovery_timeout=60)
    cb_dec = cb(f)
    # --- sync, open
    r_open = _resurgo()
    r_open_dec = r_open(fail)
    try:
        r_open_dec()
    except ConnectionError:
        pass
    assert r_open.state.value == "open"
    pb_open = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=1e6)
    pb_open_dec = pb_open(fail)
    try:
        pb_open_dec()
    except (ConnectionError, pybreaker.CircuitBreakerError):
        pass
    assert pb_open.current_state == "open"
    cb_open = circuitbreaker.CircuitBreaker(failure_threshold=1, recovery_timeout=10**6)
    cb_open_dec = cb_open(fail)
    try:
        cb_open_dec()
    except ConnectionError:
        pass
    assert cb_open.opened
    # --- async, closed
    ra = _resurgo()
    ra_dec = ra(af)
    ab = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=timedelta(seconds=60))
    ab_dec = ab(af)
    pg = purgatory.AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=60)
    pg_dec = pg("bench")(af)
    cba = circuitbreaker.CircuitBreaker(failure_threshold=5, recovery_timeout=60)
    cba_dec = cba(af)
    # --- async, open
    rao = _resurgo()
    rao_dec = rao(afail)
    ab_open = aiobreaker.CircuitBreaker(fail_max=1, timeout_duration=timedelta(days=30))
    ab_open_dec = ab_open(afail)
    pg_open = purgatory.AsyncCircuitBreakerFactory(default_threshold=1, default_ttl=1e6)
    pg_open_dec = pg_open("bench_open")(afail)
    cba_open = circuitbreaker.CircuitBreaker(failure_threshold=1, recovery_timeout=10**6)
    cba_open_dec = cba_open(afail)

    async def trip() -> None:
        for d in (rao_dec, ab_open_dec, pg_open_dec, cba_open_dec):
            try:
                await d()
            except Exception:
                pass

    asyncio.run(trip())
    assert rao.state.value == "open"
    check_rejects("resurgo sync", r_open_dec, CircuitOpenError)
    check_rejects("pybreaker", pb_open_dec, pybreaker.CircuitBreakerError)
    check_rejects("circuitbreaker sync", cb_open_dec, circuitbreaker.CircuitBreakerError)
    acheck_rejects("resurgo async", rao_dec, CircuitOpenError)
    acheck_rejects("aiobreaker", ab_open_dec, aiobreaker.CircuitBreakerError)
    acheck_rejects("purgatory", pg_open_dec, PurgatoryOpen)
    acheck_rejects("circuitbreaker async", cba_open_dec, circuitbreaker.CircuitBreakerError)
    pg_exc: type[BaseException] = PurgatoryOpen

    return {
        "sync success (closed)": {
            "bare function": sync_loop(f),
            "resurgo @breaker": sync_loop(r_dec),
            "resurgo .call": sync_loop(lambda: r_ok.call(f)),
            "pybreaker": sync_loop(pb_dec),
            "circuitbreaker": sync_loop(cb_dec),
        },
        "sync rejected (open)": {
            "bare function": sync_reject_loop(f, Exception),
            "resurgo @breaker": sync_reject_loop(r_open_dec, CircuitOpenError),
            "pybreaker": sync_reject_loop(pb_open_dec, pybreaker.CircuitBreakerError),
            "circuitbreaker": sync_reject_loop(cb_open_dec, circuitbreaker.CircuitBreakerError),
        },
        "async success (closed)": {
            "bare function": async_loop(af),
            "resurgo @breaker": async_loop(ra_dec),
            "aiobreaker": async_loop(ab_dec),
            "purgatory": async_loop(pg_dec),
            "circuitbreaker": async_loop(cba_dec),
        },
        "async rejected (open)": {
            "bare function": async_reject_loop(af, Exception),
            "resurgo @breaker": async_reject_loop(rao_dec, CircuitOpenError),
            "aiobreaker": async_reject_loop(ab_open_dec, aiobreaker.CircuitBreakerError),
            "purgatory": async_reject_loop(pg_open_dec, pg_exc),
            "circuitbreaker": async_reject_loop(cba_open_dec, circuitbreaker.CircuitBreakerError),
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=20_000)
    ap.add_argument("--out", default="breaker", help="results name: bench/results/NAME.json")
    args = ap.parse_args()
    groups = build()
    best: dict[str, dict[str, float]] = {g: {} for g in groups}
    gc.disable()
    try:
        for _ in range(args.rounds):
            for g, loops in groups.items():
                for name, loop in loops.items():
                    n = args.calls
                    per = loop(n) / n * 1e9
                    best[g][name] = min(best[g].get(name, float("inf")), per)
    finally:
        gc.enable()
    failed = []
    out: dict[str, object] = {"rounds": args.rounds, "calls_per_round": args.calls, "groups": {}}
    for g, res in best.items():
        bare = res.pop("bare function")
        ours = res["resurgo @breaker"] - bare
        print(f"\n{g}  (bare loop {bare:.0f} ns/call; overhead = ns/call above it)")
        print(f"  {'library':<20}{'overhead ns':>12}{'anchor/resurgo':>16}")
        rows = []
        for name, v in res.items():
            over = v - bare
            ratio = None
            if name.startswith("resurgo"):
                print(f"  {name:<20}{over:>12.0f}{'':>16}")
            elif ours > 0:
                ratio = over / ours
                print(f"  {name:<20}{over:>12.0f}{ratio:>15.2f}x")
                if ratio <= 1.0:
                    failed.append(f"{g}: {name}")
            else:
                print(f"  {name:<20}{over:>12.0f}{'n/a (noise)':>16}")
                failed.append(f"{g}: {name} (resurgo's overhead not measurable)")
            rows.append({"library": name, "ns_per_call": v, "overhead_ns": over, "anchor_over_resurgo": ratio})
        out["groups"][g] = {"bare_ns": bare, "rows": rows}  # type: ignore[index]
    print()
    if failed:
        print("resurgo is NOT shown faster than: " + "; ".join(failed))
    else:
        print("resurgo is faster than every anchor on every measurement")
    out["not_faster_than"] = failed
    write_results(
        args.out, out, anchors=["pybreaker", "circuitbreaker", "aiobreaker", "purgatory"]
    )


if __name__ == "__main__":
    main()
