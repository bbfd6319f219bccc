#!/usr/bin/env python3
"""Recovery figures of a run's store (a `resurgo chaos --keep` directory's ``store.db``).

    python scripts/recovery_figures.py STORE [STORE ...] [--json]

For each store: recovery time excluding imposed waits (median, p95), time-based
availability excluding imposed waits, and the median/p95 of every phase per
fault kind (``resurgo.store.runs.RecoveryPhases``).  Stores written before the
phase columns existed still give the figures measured from detection.

Definitions (all per recovery that restored, i.e. whose next attempt printed an event):

* ``from_detection_s``: ``restored_at - detected_at - imposed``, where imposed is
  ``waited_s`` (server reset / retry-after, open breaker);
* ``from_fault_s``: ``restored_at - fault_at - imposed`` (adds the detection
  time; needs the phase columns);
* ``per_failure_s``: every failure, restored or not, from its fault (or detection)
  until the job's first restoration at or after it, minus the imposed waits in
  between (a recovery whose CLI was killed again while starting counts here);
* time-based availability excluding imposed waits: over every job's run time
  (``started_at`` .. ``finished_at``), the share in which it was not down,
  where a job is down from each fault (or detection, on old stores) until the
  recovered run's first event; imposed waits are taken out of both the down
  time and the run time.  ``availability_progress`` is the same with down
  time lasting until the lost work was redone (``caught_up_at``).
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import sys
from typing import Any


def _pct(vals: list[float], q: float) -> float | None:
    if not vals:
        return None
    s = sorted(vals)
    return s[max(0, min(len(s) - 1, math.ceil(q * len(s)) - 1))]


def figures(path: str) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    cols = {r[1] for r in conn.execute("PRAGMA table_info(recoveries)")}
    recs = [dict(r) for r in conn.execute("SELECT * FROM recoveries ORDER BY detected_at")]
    jobs = {r["id"]: dict(r) for r in conn.execute("SELECT id, started_at, finished_at, updated_at FROM jobs")}
    det, flt = [], []
    by_job: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        by_job.setdefault(r["job_id"], []).append(r)
        if r["restored_at"] is None:
            continue
        imposed = float(r["waited_s"] or 0.0)
        det.append(max(0.0, r["restored_at"] - r["detected_at"] - imposed))
        if "fault_at" in cols and r.get("fault_at") is not None:
            flt.append(max(0.0, r["restored_at"] - r["fault_at"] - imposed))
    from resurgo.observe._metrics import down_time

    run_s = down_s = down_prog_s = imposed_s = 0.0
    for jid, j in jobs.items():
        if j["started_at"] is None:
            continue
        start, end = float(j["started_at"]), float(j["finished_at"] or j["updated_at"])
        run_s += max(0.0, end - start)
        rs = by_job.get(jid, [])
        imposed = sum(float(r["waited_s"] or 0.0) for r in rs)
        imposed_s += imposed

        def at(r: dict[str, Any]) -> float:
            return float(r["fault_at"] if r.get("fault_at") is not None else r["detected_at"])

        # the same definition of down time as the metrics and the chaos report (observe.down_time),
        # from the fault instead of its detection when known; imposed waits taken out
        down_s += max(0.0, down_time(start, end, [(at(r), r["restored_at"]) for r in rs]) - imposed)
        prog = [(at(r), r.get("caught_up_at") or r["restored_at"]) for r in rs]
        down_prog_s += max(0.0, down_time(start, end, prog) - imposed)
    # per failure, as the chaos report counts an incident: from its fault (or detection) to the first
    # restoration at or after it, so a recovery killed while its CLI started is counted, not dropped
    chain: list[float] = []
    for rs in by_job.values():
        restores = sorted(float(r["restored_at"]) for r in rs if r["restored_at"] is not None)
        for r in rs:
            at = float(r["fault_at"] if r.get("fault_at") is not None else r["detected_at"])
            back = next((x for x in restores if x >= at), None)
            if back is not None:
                imposed_chain = sum(float(x["waited_s"] or 0.0) for x in rs
                                    if at <= float(x["detected_at"]) <= back)
                chain.append(max(0.0, back - at - imposed_chain))
    denom = run_s - imposed_s
    out: dict[str, Any] = {
        "store": path,
        "recoveries": len(recs),
        "restored": len(det),
        "from_detection_s": {"median": _pct(det, 0.5), "p95": _pct(det, 0.95)},
        "from_fault_s": {"median": _pct(flt, 0.5), "p95": _pct(flt, 0.95), "n": len(flt)},
        "per_failure_s": {"median": _pct(chain, 0.5), "p95": _pct(chain, 0.95), "n": len(chain)},
        "job_run_s": run_s,
        "imposed_s": imposed_s,
        "availability_excl_imposed": None if denom <= 0 else 1 - down_s / denom,
        "availability_progress_excl_imposed": None if denom <= 0 or "caught_up_at" not in cols
        else 1 - down_prog_s / denom,
    }
    if "fault_kind" in cols:
        from resurgo.store import Store, summarize_phases

        st = Store(path)
        try:
            out["phases_by_fault"] = summarize_phases(st.recovery_phases())
        finally:
            st.close()
    conn.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stores", nargs="+")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    res = [figures(p) for p in a.stores]
    if a.json:
        json.dump(res, sys.stdout, indent=2)
        print()
        return 0
    for f in res:
        print(f"{f['store']}: {f['restored']}/{f['recoveries']} recoveries restored")
        for k in ("from_detection_s", "from_fault_s", "per_failure_s"):
            v = f[k]
            if v["median"] is not None:
                print(f"  recovery excl. imposed, {k[:-2].replace('_', ' ')}: median {v['median']:.2f} s,"
                      f" p95 {v['p95']:.2f} s")
        if f["availability_excl_imposed"] is not None:
            print(f"  time-based availability excl. imposed waits: {f['availability_excl_imposed']:.3f}")
        if f.get("availability_progress_excl_imposed") is not None:
            print(f"  ... counting redone work as down: {f['availability_progress_excl_imposed']:.3f}")
        for kind, row in (f.get("phases_by_fault") or {}).items():
            parts = [f"{name[:-2]} {v['median']:.2f}/{v['p95']:.2f}" for name, v in row.items()
                     if isinstance(v, dict) and name.endswith("_s") and name != "recovery_s"]
            print(f"  {kind:>10} n={row['n']:<3} " + "  ".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
