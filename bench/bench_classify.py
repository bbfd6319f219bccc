"""Classifier benchmark: confusion matrix over the corpus, and throughput on one core.

    python bench/bench_classify.py [--seconds 2]

Prints (1) the confusion matrix (expected type -> predicted type, "none" = not an error) over
every tests/corpus/*.jsonl plus the real-exception corpus, with accuracy on type+retryable;
(2) exceptions/s: classify() on the corpus' real exceptions, round-robin, with the default
verdict cache (the realistic case: a retry loop sees the same failure again and again) and
with the cache disabled; (3) observations/s: the same JSON lines ``resurgo classify`` reads
(parse + classify + serialise, no process start-up), with and without the verdict cache
(the corpus lines repeat round-robin, so "cache on" is the recurring-failure case).
Single thread; pin with ``taskset -c 0``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.classify._corpus import correct, exception_rows, jsonl_rows  # noqa: E402

from resurgo.classify import Classifier  # noqa: E402

TYPES = ["network", "timeout", "resource", "auth", "validation", "process", "internal", "none"]


def confusion(pairs: list[tuple[str, str]]) -> str:
    m = Counter(pairs)
    w = 11
    lines = ["expected \\ got".ljust(16) + "".join(t[:w].rjust(w) for t in TYPES)]
    for exp in TYPES:
        if not any(e == exp for e, _ in pairs):
            continue
        lines.append(exp.ljust(16) + "".join(str(m[(exp, got)] or ".").rjust(w) for got in TYPES))
    return "\n".join(lines)


def rate(fn, items, seconds: float) -> float:
    n = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while time.perf_counter() < deadline:
        for it in items:
            fn(it)
        n += len(items)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    clf = Classifier()
    rows = jsonl_rows()
    excs = exception_rows()
    pairs: list[tuple[str, str]] = []
    ok = total = 0
    for r in rows:
        v = clf.classify(r["observation"], record=False)
        pairs.append((r["expect"]["type"] or "none", v.type.value if v.type else "none"))
        ok += correct(v, r["expect"])
        total += 1
    for _, e, exp in excs:
        v = clf.classify(e, record=False)
        pairs.append((exp["type"] or "none", v.type.value if v.type else "none"))
        ok += correct(v, exp)
        total += 1
    non_err = [(e, g) for e, g in pairs if e == "none"]
    print(f"corpus: {len(rows)} observations + {len(excs)} real exceptions")
    print(confusion(pairs))
    print(
        f"type+retryable correct: {ok}/{total} = {ok / total:.1%}; "
        f"non-errors flagged: {sum(g != 'none' for _, g in non_err)}/{len(non_err)}"
    )

    exceptions = [e for _, e, _ in excs if e is not None]
    hot = Classifier()
    eps = rate(hot.classify, exceptions, args.seconds)
    cold = Classifier(cache_size=0)
    eps_cold = rate(cold.classify, exceptions, args.seconds / 2)
    lines = [json.dumps(r["observation"]) for r in rows]
    obs_clf = Classifier()

    def one_line(line: str) -> None:
        obs = json.loads(line)
        json.dumps(obs_clf.classify(obs).to_dict())

    ops = rate(one_line, lines, args.seconds)
    obs_cold = Classifier(cache_size=0)

    def one_line_cold(line: str) -> None:
        obs = json.loads(line)
        json.dumps(obs_cold.classify(obs).to_dict())

    ops_cold = rate(one_line_cold, lines, args.seconds / 2)
    print(f"exceptions/s (verdict cache on, {len(exceptions)} distinct): {eps:,.0f}  (target 100,000)")
    print(f"exceptions/s (verdict cache off):                  {eps_cold:,.0f}")
    print(f"CLI observations/s (json in -> classify -> json out, cache on, {len(lines)} distinct): {ops:,.0f}")
    print(f"CLI observations/s (verdict cache off):             {ops_cold:,.0f}")


if __name__ == "__main__":
    main()
