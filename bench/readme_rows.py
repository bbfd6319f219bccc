"""Print the README's "Measured" rows for retry and breaker from bench/results/*.json.

The README's figures are copied from these files, never typed in:

    python bench/readme_rows.py          # paste the rows into README.md's table
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def _load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8"))
    return doc


def _ns(v: float) -> str:
    return f"{v / 1000:.1f} us" if v >= 1000 else f"{v:.0f} ns"


def _x(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f}x"


def retry_rows(doc: dict[str, Any]) -> list[str]:
    cases = doc["results"]["cases"]

    def row(case: str) -> dict[str, dict[str, Any]]:
        return {r["library"]: r for r in cases[case]["rows"]}

    out = []
    for label, s, a in (
        ("retry overhead, successful call (sync / async)", "sync success", "async success"),
        ("retry overhead, fails twice then succeeds, default classifier (sync / async)",
         "sync fail x2", "async fail x2"),
    ):
        rs, ra = row(s), row(a)
        ours = f"{_ns(rs['resurgo']['overhead_ns'])} / {_ns(ra['resurgo']['overhead_ns'])}"
        anchors = ", ".join(
            f"{k} {_x(rs[k]['vs_resurgo'])} / {_x(ra[k]['vs_resurgo'])}" for k in ("tenacity", "stamina", "backoff")
        )
        out.append(f"| {label} | {ours} | {anchors} more |")
    rs, ra = row("sync fail x2"), row("async fail x2")
    stub = "resurgo (stub classifier)"
    out.append(
        f"| the same with a constant stub classifier (not the default; the retry machinery alone) | "
        f"{_ns(rs[stub]['overhead_ns'])} / {_ns(ra[stub]['overhead_ns'])} | |"
    )
    return out


def breaker_rows(doc: dict[str, Any]) -> list[str]:
    g = doc["results"]["groups"]

    def rows(name: str) -> dict[str, dict[str, Any]]:
        return {r["library"]: r for r in g[name]["rows"]}

    out = []
    for label, s, a in (
        ("breaker, closed call (sync / async)", "sync success (closed)", "async success (closed)"),
        ("breaker, rejected call (sync / async)", "sync rejected (open)", "async rejected (open)"),
    ):
        rs, ra = rows(s), rows(a)
        ours = f"{_ns(rs['resurgo @breaker']['overhead_ns'])} / {_ns(ra['resurgo @breaker']['overhead_ns'])}"
        sa = ", ".join(f"{k} {_x(v['anchor_over_resurgo'])}" for k, v in rs.items() if not k.startswith("resurgo"))
        aa = ", ".join(f"{k} {_x(v['anchor_over_resurgo'])}" for k, v in ra.items() if not k.startswith("resurgo"))
        out.append(f"| {label} | {ours} | {sa} / {aa} more |")
    return out


def main() -> None:
    r, b = _load("retry"), _load("breaker")
    for doc in (r, b):
        e = doc["env"]
        print(
            f"<!-- {doc['bench']}: {doc['utc']}, resurgo {e['resurgo']}, Python {e['python']}, "
            f"load {e['load_avg_1m_start']:.1f}->{e['load_avg_1m_end']:.1f} on {e['cpu_count']} cores, "
            f"anchors {doc['anchors']} -->"
        )
    for line in retry_rows(r) + breaker_rows(b):
        print(line)


if __name__ == "__main__":
    main()
