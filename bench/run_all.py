"""Run every benchmark in one command; each prints its anchors and ratios from the same run.

    python bench/run_all.py            # all of them (several minutes)
    python bench/run_all.py retry breaker

Each benchmark is its own script (its own process), so one cannot warm up or slow another.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["classify", "retry", "breaker", "redact", "distributed", "supervisor", "soak", "chaos"]


def main(argv: list[str]) -> int:
    wanted = argv or ORDER
    failed: list[str] = []
    for name in wanted:
        script = HERE / f"bench_{name}.py"
        if not script.exists():
            print(f"no benchmark {name!r} (looked for {script.name})", file=sys.stderr)
            failed.append(name)
            continue
        print(f"\n=== {script.name} ===", flush=True)
        t0 = time.monotonic()
        rc = subprocess.call([sys.executable, str(script)])
        print(f"=== {script.name}: exit {rc} in {time.monotonic() - t0:.0f}s", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
