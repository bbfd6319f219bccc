"""Overhead of the adaptive limiter against a plain semaphore, sync and asyncio.

What a call pays for the limit: taking a slot and giving it back with an
outcome (which runs the algorithm), against ``threading.Semaphore`` /
``asyncio.Semaphore`` doing only the counting, measured in the same process,
interleaved, best of ``--repeat`` rounds.  Three cases:

* uncontended (sync and async): one caller, the slot is always free;
* contended async: ``--tasks`` tasks sharing ``--limit`` slots, each yielding
  once while it holds its slot (so waiters queue and are woken in order).

Results are ratios (limiter / semaphore) plus nanoseconds per call;
``bench/results/limit.json`` with versions.  The machine is shared: absolute
numbers are noisy, the ratios from interleaved rounds less so.
Run: ``python bench/bench_limit.py [--n 200000] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resurgo.limit import AIMD, AdaptiveLimiter, AIMDOptions

ROOT = Path(__file__).resolve().parents[1]


def _limiter(limit: int) -> AdaptiveLimiter:
    # min = max: the algorithm runs on every outcome but the limit stays put, so rounds are comparable
    return AdaptiveLimiter("bench", algorithm=AIMD(AIMDOptions(initial_limit=limit, min_limit=limit, max_limit=limit)))


def sync_sem(n: int) -> float:
    sem = threading.Semaphore(10)
    t = time.perf_counter()
    for _ in range(n):
        with sem:
            pass
    return time.perf_counter() - t


def sync_limiter(n: int) -> float:
    lim = _limiter(10)
    t = time.perf_counter()
    for _ in range(n):
        with lim.acquire():
            pass
    return time.perf_counter() - t


def sync_limiter_manual(n: int) -> float:
    lim = _limiter(10)
    t = time.perf_counter()
    for _ in range(n):
        lease = lim.try_acquire()
        assert lease is not None
        lease.success(0.001)
    return time.perf_counter() - t


async def _async_sem(n: int) -> float:
    sem = asyncio.Semaphore(10)
    t = time.perf_counter()
    for _ in range(n):
        async with sem:
            pass
    return time.perf_counter() - t


async def _async_limiter(n: int) -> float:
    lim = _limiter(10)
    t = time.perf_counter()
    for _ in range(n):
        lease = await lim.acquire_async()
        lease.success()
    return time.perf_counter() - t


async def _contended_sem(n: int, tasks: int, limit: int) -> float:
    sem = asyncio.Semaphore(limit)
    per = n // tasks

    async def worker() -> None:
        for _ in range(per):
            async with sem:
                await asyncio.sleep(0)

    t = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return time.perf_counter() - t


async def _contended_limiter(n: int, tasks: int, limit: int) -> float:
    lim = _limiter(limit)
    per = n // tasks

    async def worker() -> None:
        for _ in range(per):
            lease = await lim.acquire_async()
            await asyncio.sleep(0)
            lease.success()

    t = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return time.perf_counter() - t


def _best(fns: dict[str, Callable[[], float]], repeat: int) -> dict[str, float]:
    best = {k: float("inf") for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():  # interleaved: a noisy moment hits every variant alike
            best[k] = min(best[k], fn())
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--tasks", type=int, default=100)
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "limit.json"))
    a = ap.parse_args()
    n = a.n
    nc = max(a.tasks, n // 10)
    best = _best(
        {
            "sync_semaphore": lambda: sync_sem(n),
            "sync_limiter": lambda: sync_limiter(n),
            "sync_limiter_manual": lambda: sync_limiter_manual(n),
            "async_semaphore": lambda: asyncio.run(_async_sem(n)),
            "async_limiter": lambda: asyncio.run(_async_limiter(n)),
            "contended_semaphore": lambda: asyncio.run(_contended_sem(nc, a.tasks, a.limit)),
            "contended_limiter": lambda: asyncio.run(_contended_limiter(nc, a.tasks, a.limit)),
        },
        a.repeat,
    )
    ns = {k: round(v / (nc if k.startswith("contended") else n) * 1e9, 1) for k, v in best.items()}
    ratios = {
        "sync_limiter_vs_semaphore": round(best["sync_limiter"] / best["sync_semaphore"], 2),
        "sync_manual_vs_semaphore": round(best["sync_limiter_manual"] / best["sync_semaphore"], 2),
        "async_limiter_vs_semaphore": round(best["async_limiter"] / best["async_semaphore"], 2),
        "contended_async_limiter_vs_semaphore": round(best["contended_limiter"] / best["contended_semaphore"], 2),
    }
    import resurgo

    out: dict[str, Any] = {
        "versions": {"python": platform.python_version(), "resurgo": getattr(resurgo, "__version__", "dev"),
                     "platform": platform.platform()},
        "ts": time.time(),
        "params": {"n": n, "n_contended": nc, "repeat": a.repeat, "tasks": a.tasks, "limit": a.limit},
        "ns_per_call": ns,
        "ratios": ratios,
    }
    for k, v in ns.items():
        print(f"{k:>22}: {v:8.1f} ns/call")
    for k, v in ratios.items():
        print(f"{k:>38}: {v:.2f}x")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"written {a.out}")


if __name__ == "__main__":
    main()
