"""Distributed mode: how fast a breaker opening reaches the other workers, and shared-budget throughput.

Starts a private ``redis-server`` on loopback (killed at the end), then:

* **Propagation**: two workers (two :class:`RedisLink`s, two connections and
  pub/sub threads, as two processes would have) share ``--openings`` breakers.
  For each, worker A's local breaker opens; the time until worker B's breaker
  is OPEN is measured (A's listener -> Lua compare-and-set -> PUBLISH -> B's
  pub/sub thread -> ``open``).  p50 / p95 / max printed; the issue's target is
  100 ms.
* **Budget**: ``deposit`` (buffered, no I/O) and ``try_withdraw`` (one atomic
  Lua round trip) per second, next to the local :class:`RetryBudget` as the
  anchor (ratio = local / shared: how many times slower the fleet-wide
  budget is).

Run: ``python bench/bench_distributed.py [--openings N]``.  Results go to
``bench/results/distributed.json`` (with the versions of resurgo, Python, redis-py and
the redis-server used).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time

from _results import write_results
from resurgo.breaker import CircuitBreaker, CircuitEvent, CircuitState, StateTransition
from resurgo.distributed import RedisBreakerSync, RedisLink, RedisRetryBudget
from resurgo.retrier import RetryBudget


def start_redis(workdir: str) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    p = subprocess.Popen([exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                          "--dir", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return p, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.02)
    p.kill()
    raise RuntimeError("redis-server did not start")


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def bench_propagation(url: str, n: int) -> list[float]:
    la, lb = RedisLink(url, name="A", prefix="bench"), RedisLink(url, name="B", prefix="bench")
    try:
        sa, sb = RedisBreakerSync(la), RedisBreakerSync(lb)
        lb.wait_subscribed()
        lat: list[float] = []
        for i in range(n):
            a = sa.attach(CircuitBreaker(f"b{i}"))
            b = sb.attach(CircuitBreaker(f"b{i}"))
            seen = threading.Event()
            at: list[float] = []

            def on(ev: CircuitEvent, at: list[float] = at, seen: threading.Event = seen) -> None:
                if isinstance(ev, StateTransition) and ev.to_state is CircuitState.OPEN:
                    at.append(time.perf_counter())
                    seen.set()

            b.add_listener(on)
            time.sleep(0.005)  # let the link threads settle between samples
            t0 = time.perf_counter()
            a.open(wait=60, reason="bench")
            if not seen.wait(5):
                raise RuntimeError(f"opening {i} never reached worker B")
            lat.append((at[0] - t0) * 1000)
            sa.detach(a)
            sb.detach(b)
        return lat
    finally:
        la.close()
        lb.close()


def bench_budget(url: str, seconds: float = 1.0) -> dict[str, float]:
    link = RedisLink(url, name="A", prefix="bench")
    try:
        shared = RedisRetryBudget(link, "api", ratio=1000, min_retries_per_sec=0)
        local = RetryBudget(ratio=1000, min_retries_per_sec=0)
        out: dict[str, float] = {}
        for label, fn in (("local deposit", local.deposit), ("shared deposit", shared.deposit)):
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                for _ in range(1000):
                    fn()
                n += 1000
            out[label] = n / (time.perf_counter() - t0)
        for label, wfn in (("local try_withdraw", local.try_withdraw), ("shared try_withdraw", shared.try_withdraw)):
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                for _ in range(100):
                    wfn()
                n += 100
            out[label] = n / (time.perf_counter() - t0)
        return out
    finally:
        link.close()


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--openings", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        proc, url = start_redis(d)
        try:
            lat = bench_propagation(url, args.openings)
            print(f"breaker opening -> other worker OPEN, {len(lat)} openings over loopback Redis:")
            print(f"  p50 {statistics.median(lat):.2f} ms   p95 {pct(lat, 0.95):.2f} ms   max {max(lat):.2f} ms"
                  f"   (target: < 100 ms; {sum(x < 100 for x in lat)}/{len(lat)} within)")
            ops = bench_budget(url)
            print("retry budget operations per second (one worker, one thread):")
            for kind in ("deposit", "try_withdraw"):
                lo, sh = ops[f"local {kind}"], ops[f"shared {kind}"]
                print(f"  {kind:13s} local {lo:12,.0f}/s   shared {sh:12,.0f}/s   local/shared {lo / sh:7.1f}x")
            server = subprocess.run(
                [shutil.which("redis-server") or "redis-server", "--version"],
                capture_output=True, text=True, check=False,
            ).stdout.strip()
            write_results(
                "distributed",
                {
                    "propagation_ms": {
                        "openings": len(lat), "p50": statistics.median(lat), "p95": pct(lat, 0.95),
                        "max": max(lat), "within_100ms": sum(x < 100 for x in lat), "samples": lat,
                    },
                    "budget_ops_per_s": ops,
                },
                anchors={"redis": _version("redis"), "redis-server": server or None},
            )
        finally:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
