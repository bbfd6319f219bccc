"""Pressure starts, holds what it was asked (no more), and leaves nothing behind."""

from __future__ import annotations

import time
from types import SimpleNamespace

import psutil
import pytest

from resurgo.chaos import FaultLog, Pressure, memory_cap_mb, stress_ng_path
from resurgo.chaos import _pressure as pressure_mod

from ._helpers import alive


def _assert_all_gone(pids: set[int]) -> None:
    left = [p for p in pids if alive(p)]
    assert left == [], f"pressure workers left behind: {left}"


def test_python_cpu_workers_start_and_stop_cleanly() -> None:
    log = FaultLog()
    p = Pressure(cpu_workers=2, cpu_load=50, duration=30, backend="python", fault_log=log)
    try:
        p.start()
        pids = p.pids()
        assert len(pids) == 2
        assert p.running
        procs = [psutil.Process(pid) for pid in pids]
        assert all(pr.ppid() == psutil.Process().pid for pr in procs)
        before = sum(pr.cpu_times().user for pr in procs)
        time.sleep(0.5)
        burnt = sum(pr.cpu_times().user for pr in procs) - before
        assert burnt > 0.05  # they really spin (half duty cycle each)
    finally:
        p.stop()
    _assert_all_gone(p.seen_pids())
    assert not p.running
    (w,) = log.windows()
    assert w.kind == "pressure:cpu" and w.end is not None
    p.stop()  # idempotent


def test_python_memory_hog_holds_what_was_asked() -> None:
    p = Pressure(memory_mb=64, duration=30, backend="python")
    try:
        p.start()
        assert p.wait_ready(20)
        (pid,) = p.pids()
        rss_mb = psutil.Process(pid).memory_info().rss / 2**20
        # 64 MB of filled pages plus the interpreter; never wildly more than asked.
        assert 64 <= rss_mb < 64 + 40
    finally:
        p.stop()
    _assert_all_gone(p.seen_pids())


def test_workers_end_on_their_own_deadline() -> None:
    p = Pressure(cpu_workers=1, memory_mb=8, duration=0.5, backend="python")
    try:
        p.start()
        seen = p.pids()
        assert p.wait(timeout=20)
    finally:
        p.stop()
    _assert_all_gone(seen | p.seen_pids())


def test_memory_request_is_capped_to_a_safe_share(monkeypatch: pytest.MonkeyPatch) -> None:
    mb = 2**20
    fake = SimpleNamespace(total=1000 * mb, available=800 * mb)
    monkeypatch.setattr(pressure_mod.psutil, "virtual_memory", lambda: fake)
    p = Pressure(memory_mb=10**9, duration=1, backend="python", max_memory_share=0.1)
    assert (p.plan.requested_memory_mb, p.plan.memory_mb) == (10**9, 100)  # 10 % of 1000
    fake.available = 120 * mb  # little free now: half of what is available wins
    assert Pressure(memory_mb=10**9, duration=1, backend="python").plan.memory_mb == 60
    small = Pressure(memory_mb=16, duration=1, backend="python")
    assert small.plan.memory_mb == 16  # under the cap: exactly what was asked


def test_real_cap_is_a_share_of_this_machine() -> None:
    total_mb = psutil.virtual_memory().total / 2**20
    assert 0 < memory_cap_mb(share=0.1) <= 0.1 * total_mb


def test_stress_ng_backend_starts_and_stops_its_whole_group() -> None:
    # scripts/setup.sh installs stress-ng: missing means the set-up is broken, not a reason to skip
    assert stress_ng_path() is not None, "stress-ng is not installed (scripts/setup.sh installs it)"
    p = Pressure(cpu_workers=1, cpu_load=30, memory_mb=32, duration=30, backend="stress-ng")
    assert p.backend == "stress-ng"
    try:
        p.start()
        # stress-ng forks its stressors; wait until they show up so stop() has a group to end.
        deadline = time.monotonic() + 10
        while len(p.pids()) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(p.pids()) >= 3
    finally:
        p.stop()
    _assert_all_gone(p.seen_pids())


def test_stress_ng_required_but_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pressure_mod.shutil, "which", lambda name: None)
    assert Pressure(cpu_workers=1, duration=1).backend == "python"  # auto falls back
    with pytest.raises(RuntimeError, match="not installed"):
        Pressure(cpu_workers=1, duration=1, backend="stress-ng")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cpu_workers": 1, "duration": 0}, "duration"),
        ({"cpu_workers": 1, "duration": float("inf")}, "duration"),
        ({"cpu_workers": -1, "duration": 1}, "cpu_workers"),
        ({"cpu_workers": 10_000, "duration": 1}, "cpu_workers"),
        ({"cpu_workers": 1, "cpu_load": 0, "duration": 1}, "cpu_load"),
        ({"memory_mb": -5, "duration": 1}, "memory_mb"),
        ({"duration": 1}, "nothing to do"),
        ({"cpu_workers": 1, "duration": 1, "backend": "docker"}, "backend"),
        ({"memory_mb": 1, "duration": 1, "max_memory_share": 1.0}, "max_memory_share"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Pressure(**kwargs)  # type: ignore[arg-type]


def test_start_twice_is_refused() -> None:
    with Pressure(cpu_workers=1, cpu_load=10, duration=10, backend="python") as p:
        with pytest.raises(RuntimeError, match="already"):
            p.start()
        seen = p.pids()
    _assert_all_gone(seen | p.seen_pids())
