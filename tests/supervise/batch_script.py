"""A supervisor in its own process, for the "supervisor SIGKILLed mid-batch" test and the benchmark.

Usage: python batch_script.py CONFIG.json
CONFIG: {"store", "claude", "env", "cwd", "prompts": [...], "concurrency", "stall_timeout"}
Runs the prompts with idempotency keys ``job-<i>`` through SyncSupervisor.run_many and
prints one JSON line per result.  Run it twice on the same store: the second run must
finish what the first one (killed) left, without running finished jobs again.
"""

from __future__ import annotations

import json
import sys

from resurgo.supervise import JobSpec, SupervisorConfig, SyncSupervisor


def main() -> int:
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    config = SupervisorConfig(
        claude=cfg["claude"],
        store=cfg["store"],
        env=cfg["env"],
        concurrency=int(cfg.get("concurrency", 4)),
        stall_timeout=float(cfg.get("stall_timeout", 30)),
        kill_grace=1.0,
        backoff_base=0.1,
        backoff_cap=1.0,
        cli_max_retries=0,
        claude_args=("--allowedTools", "Bash"),
    )
    specs = [JobSpec(p, cwd=cfg["cwd"], idem_key=f"job-{i}", name=f"job-{i}") for i, p in enumerate(cfg["prompts"])]
    with SyncSupervisor(config) as sup:
        results = sup.run_many(specs)
    for r in results:
        print(json.dumps(r.to_dict()), flush=True)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
