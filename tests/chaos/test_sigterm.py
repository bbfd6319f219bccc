"""A chaos run ended with SIGTERM (a CI timeout, ``kill``) ends everything it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.integration

_SCRIPT = """
import sys
from resurgo.chaos._config import ChaosConfig
from resurgo.chaos._runner import ChaosRunner
cfg = ChaosConfig(claude=sys.argv[1], workdir=sys.argv[2], duration=60.0, jobs=4, concurrency=2, kill_every=None,
                  fault_rate=0.0, network=False, bursts=False, storm=False, kill_supervisor=False, steps=30, seed=5)
ChaosRunner(cfg, progress=lambda m: print(m, flush=True)).run()
"""


@pytest.mark.timeout(120)
def test_sigterm_ends_the_supervisor_and_its_clis(claude_bin: str, tmp_path: Path) -> None:
    p = subprocess.Popen([sys.executable, "-c", _SCRIPT, claude_bin, str(tmp_path)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
    tree: list[psutil.Process] = []
    try:
        me = psutil.Process(p.pid)
        deadline = time.monotonic() + 60
        clis: list[psutil.Process] = []
        while time.monotonic() < deadline and not clis:  # wait until the supervisor runs CLIs
            time.sleep(0.2)
            clis = [c for c in me.children(recursive=True) if "stream-json" in c.cmdline()]  # job runs, not probes
        assert clis, "the chaos run never started a CLI"
        tree = me.children(recursive=True)
        assert any("_supervisor_proc" in " ".join(c.cmdline()) for c in tree), [c.cmdline()[:3] for c in tree]
        p.send_signal(signal.SIGTERM)
        p.wait(60)
        _, alive = psutil.wait_procs(tree, timeout=10)
        left = [c for c in alive if c.status() != psutil.STATUS_ZOMBIE]
        assert left == [], f"left running after SIGTERM: {[(c.pid, c.cmdline()[:3]) for c in left]}"
        assert p.returncode == 128 + signal.SIGTERM
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        for c in tree:  # whatever the run had started, should the assertion above have failed
            try:
                c.kill()
            except psutil.Error:
                pass
