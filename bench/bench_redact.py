"""Redaction and event-ingestion throughput, before and after issue 15 (linear-time redaction).

Every line a Claude Code CLI prints is redacted before it is stored, and again when the
dashboard shows it; a ``cat`` of a log file arrives as one multi-megabyte ``tool_result``
line.  Measured here, in one process, the new rules (RE2, ``resurgo._redact``) against the
old ones (Python ``re``, kept verbatim in ``bench/_redact_before.py``) on the same data:

1. **realistic stream-json** -- a session's lines: small ``assistant``/``system`` events and
   ``tool_result`` events carrying a ``cat`` of a generated service log (HTTP lines, levels,
   ``auth``/``token_count`` words, a few real-looking secrets) at 64 KiB, 1 MiB and 4 MiB:
   ``redact_json_line`` MB/s [goal >= 50 MB/s per core];
2. **adversarial** -- the shapes of ``tests/test_redact_linear.py`` (``token: x a-a-a…``,
   repeated ``KEY=``/``KEY="``, nested escaped quotes, base64 bearer, …) at 16 KiB to 1 MiB:
   ``redact_text`` MB/s per size (linear: about the same MB/s at every size); the old rules
   only at sizes where they finish in seconds;
3. **ingestion** -- what the supervisor does per stdout line: ``parse_line`` +
   ``EventWriter.add`` + the batched write with redaction into a SQLite store, MB/s; and how
   long one 4 MiB ``tool_result`` holds the event loop (``EventWriter.add``: now O(1), the
   redaction runs in the writer's thread; before: redacted inline).

One thread, so MB/s is per core.  The machine is shared: the numbers are noisy, the ratios
(measured in the same run) less so.  Results: ``bench/results/redact.json``.
Run: ``python bench/bench_redact.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import _redact_before as before  # noqa: E402
from resurgo import _redact as after  # noqa: E402
from resurgo.store import Store  # noqa: E402
from resurgo.supervise._jobstore import JobStore  # noqa: E402
from resurgo.supervise._process import parse_line  # noqa: E402

MB = 1e6


def service_log(size: int, seed: int = 1) -> str:
    """A plausible ``cat``-ed service log of about ``size`` characters."""
    rng = random.Random(seed)
    paths = ["/api/v1/items", "/api/v1/users/42", "/healthz", "/auth/login", "/static/app.js", "/metrics"]
    msgs = [
        "request handled",
        "cache miss for key user:42",
        "auth ok for user alice",
        "retrying upstream call (attempt 2)",
        "token_count=512 prompt_tokens=120",
        "slow query: SELECT * FROM orders WHERE id = 7",
        "connection reset by peer",
        "GET https://api.example.com/v2/things?page=3",
    ]
    lines: list[str] = []
    n = 0
    i = 0
    while n < size:
        i += 1
        lvl = rng.choice(["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"])
        line = (
            f"2026-12-04T10:{i // 60 % 60:02d}:{i % 60:02d}.{rng.randrange(1000):03d}Z {lvl} "
            f"[worker-{rng.randrange(8)}] {rng.choice(['GET', 'POST'])} {rng.choice(paths)} "
            f"status={rng.choice([200, 200, 201, 404, 500])} took={rng.randrange(900)}ms {rng.choice(msgs)}"
        )
        if i % 5000 == 0:  # now and then a secret that must go
            line += " ANTHROPIC_API_KEY=sk-ant-api03-" + "x" * 40
        lines.append(line)
        n += len(line) + 1
    return "\n".join(lines)


def tool_result_line(size: int) -> str:
    return json.dumps(
        {
            "type": "user",
            "message": {
                "role": "user",
                "content": [{"tool_use_id": "toolu_01", "type": "tool_result", "content": service_log(size)}],
            },
            "session_id": "5b0c8c1e-7a4e-4d2a-9d57-3c1b2f0a9e11",
        }
    )


def small_events(n: int) -> list[str]:
    rng = random.Random(2)
    out = []
    for i in range(n):
        if i % 3 == 0:
            ev = {
                "type": "assistant",
                "message": {
                    "content": [{"type": "text", "text": "Let me look at the failing test. " * rng.randrange(1, 20)}],
                    "usage": {"input_tokens": rng.randrange(9999), "output_tokens": rng.randrange(999)},
                },
                "session_id": "s",
            }
        elif i % 3 == 1:
            ev = {
                "type": "assistant",
                "message": {
                    "content": [{"type": "tool_use", "name": "Bash", "input": {"command": f"pytest -x tests/t{i}.py"}}]
                },
            }
        else:
            ev = {"type": "system", "subtype": "api_retry", "attempt": 1, "error": "overloaded_error"}
        out.append(json.dumps(ev))
    return out


ADVERSARIAL: dict[str, Callable[[int], str]] = {
    "token: x a-a-a": lambda n: ("token: x " + "a-" * n)[:n],
    "a-a-a then a secret": lambda n: "a-" * (n // 2) + "token: s3cr3t",
    "repeated KEY=": lambda n: "X_TOKEN=" * (n // 8),
    'repeated KEY="': lambda n: 'X_TOKEN="' * (n // 9),
    "repeated token:<redacted>": lambda n: "token:<redacted>" * (n // 16),
    "nested escaped quotes": lambda n: '"token": "' + '\\"' * (n // 2) + '"',
    "repeated https:// then a password": lambda n: "https://" * (n // 8) + "u:pw@host",
    "base64 bearer": lambda n: "Authorization: Bearer " + "QUJD" * (n // 4),
    "no marker": lambda n: "a" * n,
}


def rate(fn: Callable[[str], object], text: str, *, budget: float = 0.3) -> float:
    """MB/s of ``fn`` on ``text`` (UTF-8 bytes), best of repeated runs within ``budget`` seconds."""
    size = len(text.encode())
    best = float("inf")
    spent = 0.0
    runs = 0
    while runs < 2 or (spent < budget and runs < 50):
        t0 = time.perf_counter()
        fn(text)
        dt = time.perf_counter() - t0
        best = min(best, dt)
        spent += dt
        runs += 1
    return size / MB / best


def bench_realistic(quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    sizes = [64 << 10, 1 << 20] + ([] if quick else [4 << 20])
    for size in sizes:
        line = tool_result_line(size)
        new = rate(after.redact_json_line, line)
        old = rate(before.redact_json_line, line, budget=1.0)
        same_secrets_gone = "sk-ant-api03-x" not in after.redact_json_line(line)
        out[f"tool_result_{size >> 10}KiB"] = {
            "bytes": len(line),
            "after_mb_s": round(new, 1),
            "before_mb_s": round(old, 2),
            "speedup": round(new / old, 1),
            "secrets_redacted": same_secrets_gone,
        }
    evs = small_events(3000)
    blob = "\n".join(evs)

    def each(lines: list[str], f: Callable[[str], object]) -> Callable[[str], object]:
        return lambda _s: [f(x) for x in lines]

    new = rate(each(evs, after.redact_json_line), blob)
    old = rate(each(evs, before.redact_json_line), blob)
    out["small_events"] = {
        "lines": len(evs),
        "bytes": len(blob),
        "after_mb_s": round(new, 1),
        "before_mb_s": round(old, 1),
        "speedup": round(new / old, 2),
    }
    return out


def bench_adversarial(quick: bool) -> dict[str, Any]:
    sizes = [16 << 10, 64 << 10, 256 << 10] + ([] if quick else [1 << 20])
    out: dict[str, Any] = {}
    for name, make in ADVERSARIAL.items():
        row: dict[str, Any] = {"after_mb_s": {}, "before_mb_s": {}}
        for size in sizes:
            row["after_mb_s"][f"{size >> 10}KiB"] = round(rate(after.redact_text, make(size)), 1)
        # the old rules: the smallest sizes only, and stop once one run takes over 2 s
        for size in (4 << 10, 8 << 10, 16 << 10):
            text = make(size)
            t0 = time.perf_counter()
            before.redact_text(text)
            dt = time.perf_counter() - t0
            row["before_mb_s"][f"{size >> 10}KiB"] = round(len(text.encode()) / MB / dt, 3)
            if dt > 2.0:
                break
        a16 = row["after_mb_s"]["16KiB"]
        b16 = row["before_mb_s"].get("16KiB")
        row["speedup_16KiB"] = round(a16 / b16, 1) if b16 else None
        vals = list(row["after_mb_s"].values())
        row["after_largest_over_smallest_mb_s"] = round(vals[-1] / vals[0], 2)  # ~1 or more: linear
        out[name] = row
    return out


def bench_ingestion(quick: bool) -> dict[str, Any]:
    """parse + EventWriter.add + batched write (redaction included), and the loop stall per big line."""
    big = tool_result_line(4 << 20 if not quick else 1 << 20).encode()
    evs = [e.encode() for e in small_events(2000)]
    stream = [*evs[:1000], big, *evs[1000:]]
    total = sum(len(x) for x in stream)
    out: dict[str, Any] = {"bytes": total, "lines": len(stream)}
    with tempfile.TemporaryDirectory() as d:
        jobs = JobStore(Store(Path(d) / "bench.db"))
        job = jobs.create_job("bench", cwd=d)

        def ingest_after() -> tuple[float, float]:
            # throughput: a foreground writer, so parse, redaction and writes all count, on one core
            w = jobs.event_writer(job.id, None)
            t0 = time.perf_counter()
            for i, line in enumerate(stream):
                w.add(parse_line(line, seq=i, ts=0.0, mono=0.0))
            w.flush()
            dt = time.perf_counter() - t0
            # the loop's share: what the supervisor's writer (background=True) costs per add()
            return dt, asyncio.run(loop_hold())

        async def loop_hold() -> float:
            w = jobs.event_writer(job.id, None, background=True)
            worst = 0.0
            for i, line in enumerate(stream):
                ev = parse_line(line, seq=i, ts=0.0, mono=0.0)
                a = time.perf_counter()
                w.add(ev)
                worst = max(worst, time.perf_counter() - a)
                await asyncio.sleep(0)
            await w.drain()
            return worst

        def ingest_before() -> tuple[float, float]:
            rows: list[Any] = []
            worst = 0.0
            t0 = time.perf_counter()
            for i, line in enumerate(stream):
                ev = parse_line(line, seq=i, ts=0.0, mono=0.0)
                a = time.perf_counter()
                raw = before.redact_json_line(ev.raw, parsed=ev.data)  # the old add(): inline, on the loop
                rows.append((job.id, None, ev.ts, "cli", ev.type, ev.subtype, raw))
                worst = max(worst, time.perf_counter() - a)
                if len(rows) >= 500:
                    jobs._insert_events(rows)
                    rows = []
            jobs._insert_events(rows)
            return time.perf_counter() - t0, worst

        a_dt, a_worst = min(ingest_after() for _ in range(3))
        b_dt, b_worst = min(ingest_before() for _ in range(2))
        n_rows = jobs.store.query("SELECT count(*) AS n FROM events")[0]["n"]
        leaked = jobs.store.query("SELECT count(*) AS n FROM events WHERE data_json LIKE '%sk-ant-api03-x%'")[0]["n"]
    out.update(
        {
            "after_mb_s": round(total / MB / a_dt, 1),
            "before_mb_s": round(total / MB / b_dt, 1),
            "speedup": round(b_dt / a_dt, 2),
            "big_line_bytes": len(big),
            "after_loop_hold_ms_worst_line": round(a_worst * 1e3, 3),
            "before_loop_hold_ms_worst_line": round(b_worst * 1e3, 1),
            "rows_written": n_rows,
            "rows_with_a_secret_left": leaked,
        }
    )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    ap.add_argument("--out", default=str(ROOT / "bench/results/redact.json"))
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    res: dict[str, Any] = {
        "benchmark": "redact",
        "ts": time.time(),
        "versions": {
            "python": platform.python_version(),
            "resurgo": version("resurgo"),
            "google-re2": version("google-re2"),
            "sqlite": sqlite3.sqlite_version,
        },
        "machine": {"cpu_count": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)},
        "goal_mb_s_per_core": 50,
    }
    print("realistic stream-json (redact_json_line) ...", flush=True)
    res["realistic"] = bench_realistic(args.quick)
    for k, v in res["realistic"].items():
        print(f"  {k:22s} after {v['after_mb_s']:8.1f} MB/s   before {v['before_mb_s']:8.2f} MB/s   x{v['speedup']}")
    print("adversarial (redact_text) ...", flush=True)
    res["adversarial"] = bench_adversarial(args.quick)
    for k, v in res["adversarial"].items():
        sizes = "  ".join(f"{s}:{r}" for s, r in v["after_mb_s"].items())
        olds = "  ".join(f"{s}:{r}" for s, r in v["before_mb_s"].items())
        print(f"  {k:36s} after MB/s {sizes}\n  {'':36s} before MB/s {olds}")
    print("ingestion (parse + EventWriter + SQLite) ...", flush=True)
    res["ingestion"] = bench_ingestion(args.quick)
    ing = res["ingestion"]
    print(
        f"  after {ing['after_mb_s']} MB/s, before {ing['before_mb_s']} MB/s (x{ing['speedup']}); "
        f"loop held per {ing['big_line_bytes'] >> 20} MiB line: after {ing['after_loop_hold_ms_worst_line']} ms, "
        f"before {ing['before_loop_hold_ms_worst_line']} ms"
    )
    real = [v["after_mb_s"] for k, v in res["realistic"].items() if k.startswith("tool_result")]
    res["summary"] = {
        "realistic_min_mb_s": min(real),
        "meets_goal_realistic": min(real) >= 50,
        "adversarial_min_mb_s": min(min(v["after_mb_s"].values()) for v in res["adversarial"].values()),
        "ingestion_mb_s": ing["after_mb_s"],
        "seconds": round(time.monotonic() - t0, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    print(f"summary: {res['summary']}\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
