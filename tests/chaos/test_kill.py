"""The process killer: random, seeded, bounded, and never outside its roots."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from resurgo.chaos import FaultLog, ProcessKiller

from ._helpers import TREE_CODE, Reaper, alive, wait_tree

SLEEPER = "import time; time.sleep(30)"


def test_kills_only_descendants_of_the_root(reaper: Reaper) -> None:
    root = reaper.spawn(TREE_CODE)
    outsider = reaper.spawn(SLEEPER)  # a sibling of the root: must survive
    tree = {p.pid for p in wait_tree(root.pid, 4)}
    killer = ProcessKiller([root.pid], max_kills=10, seed=1)
    killed: list[int] = []
    for _ in range(10):
        rec = killer.kill_one()
        if rec is None:
            break
        assert rec.pid in tree
        if rec.ok:  # not ok: re-parented between listing and signal, so spared
            killed.append(rec.pid)
    # The tree is emptied (children die, orphaned grandchildren leave the tree
    # when re-parented, which also puts them out of reach): nothing else was hit.
    assert set(killed) <= tree
    assert killed
    assert alive(root.pid)
    assert alive(outsider.pid)
    assert alive(os.getpid())
    assert killer.candidates() == [] or all(c.pid in tree for c in killer.candidates())


def test_never_targets_itself_or_its_ancestors() -> None:
    me = os.getpid()
    killer = ProcessKiller([me, os.getppid()], include_roots=True, max_kills=1)
    pids = {c.pid for c in killer.candidates()}
    protected = {me, 1} | {p.pid for p in psutil.Process().parents()}
    assert not pids & protected  # only listed, never signalled: the parent's tree is not ours


def test_own_process_group_is_refused() -> None:
    with pytest.raises(ValueError, match="own process group"):
        ProcessKiller(pgids=[os.getpgid(0)], max_kills=1)


def test_process_group_members_are_targets(reaper: Reaper) -> None:
    root = reaper.spawn(TREE_CODE)  # own session: pgid == root.pid
    outsider = reaper.spawn(SLEEPER)
    members = {root.pid} | {p.pid for p in wait_tree(root.pid, 4)}
    killer = ProcessKiller(pgids=[root.pid], max_kills=5, seed=3)
    cands = killer.candidates()
    assert {c.pid for c in cands} == members
    assert all(c.depth == -1 for c in cands)
    rec = killer.kill_one()
    assert rec is not None and rec.ok and rec.pid in members
    assert alive(outsider.pid)


def test_match_selects_tool_children_only(reaper: Reaper) -> None:
    root = reaper.spawn(TREE_CODE)
    kids = wait_tree(root.pid, 4)
    grandchildren = {p.pid for p in kids if p.ppid() != root.pid}
    killer = ProcessKiller([root.pid], match=lambda c: c.depth == 2, max_kills=2, interval=0.02)
    assert {c.pid for c in killer.candidates()} == grandchildren
    killer.run()
    assert {r.pid for r in killer.records if r.ok} == grandchildren
    assert all(alive(p.pid) for p in kids if p.ppid() == root.pid)


def test_signal_choice_and_records(reaper: Reaper) -> None:
    victim = reaper.spawn(SLEEPER, new_session=True)
    log = FaultLog()
    killer = ProcessKiller([victim.pid], include_roots=True, signals=["segv"], max_kills=1, fault_log=log)
    rec = killer.kill_one()
    assert rec is not None and rec.ok
    assert (rec.pid, rec.signal, rec.depth) == (victim.pid, "SIGSEGV", 0)
    assert victim.wait(5) == -signal.SIGSEGV
    (w,) = log.windows()
    assert w.kind == "kill:SIGSEGV" and w.start == w.end == rec.time
    assert str(victim.pid) in w.target


def test_schedule_is_bounded_by_count(reaper: Reaper) -> None:
    root = reaper.spawn(TREE_CODE)
    wait_tree(root.pid, 4)
    killer = ProcessKiller([root.pid], signals=["SIGTERM", "SIGKILL"], interval=0.02, max_kills=2, seed=9)
    with killer:
        assert killer.wait(10)
    ok = [r for r in killer.records if r.ok]
    assert len(ok) == 2
    assert {r.signal for r in ok} <= {"SIGTERM", "SIGKILL"}
    assert alive(root.pid)


def test_schedule_is_bounded_by_time_with_nobody_to_kill() -> None:
    with ProcessKiller([], interval=0.02, duration=0.2) as killer:
        assert killer.wait(5)
    assert killer.records == []


def test_same_seed_same_victims(reaper: Reaper) -> None:
    orders = []
    for _ in range(2):
        root = reaper.spawn(TREE_CODE)
        kids = wait_tree(root.pid, 4)
        # Normalise pids to positions in the sorted candidate list, which is what the seed drives.
        pos = {p.pid: i for i, p in enumerate(sorted(kids, key=lambda p: p.pid))}
        killer = ProcessKiller([root.pid], match=lambda c: c.depth == 1, seed=5, max_kills=1)
        rec = killer.kill_one()
        assert rec is not None
        orders.append(pos[rec.pid])
    assert orders[0] == orders[1]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="bounded"):
        ProcessKiller([123])
    with pytest.raises(ValueError, match="unknown signal"):
        ProcessKiller([123], signals=["SIGNOPE"], max_kills=1)
    with pytest.raises(ValueError, match="interval"):
        ProcessKiller([123], interval=0, max_kills=1)
    with pytest.raises(ValueError, match="process group"):
        ProcessKiller(pgids=[1], max_kills=1)


def test_dead_root_has_no_candidates(reaper: Reaper) -> None:
    p = reaper.spawn(SLEEPER)
    p.kill()
    p.wait(5)
    assert ProcessKiller([p.pid], include_roots=True, max_kills=1).candidates() == []


# A root with three children; the third execs into `sleep`, which never waits, so its own
# background child becomes a zombie for certain once killed (a Python parent could reap it).
ZOMBIE_TREE = """
import subprocess, sys, time
kids = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) for _ in range(2)]
kids.append(subprocess.Popen(["sh", "-c", "sleep 31 & exec sleep 30"]))
time.sleep(30)
"""


def test_zombies_are_not_victims(reaper: Reaper) -> None:
    root = reaper.spawn(ZOMBIE_TREE)
    kids = wait_tree(root.pid, 4)
    leaf = next(p for p in kids if p.ppid() != root.pid)
    assert leaf.cmdline() == ["sleep", "31"]
    leaf.kill()  # its parent is `sleep 30`, which never waits: it stays a zombie under the root
    deadline = time.monotonic() + 5
    while leaf.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.01)
    assert leaf.status() == psutil.STATUS_ZOMBIE
    killer = ProcessKiller([root.pid], max_kills=1)
    assert leaf.pid not in {c.pid for c in killer.candidates()}
    assert len(killer.candidates()) == 3


def test_count_bound_alone_still_ends_when_nobody_is_left() -> None:
    with ProcessKiller([], interval=0.005, max_kills=1) as killer:
        assert killer.wait(5)  # 20 empty ticks, then it gives up
    assert killer.records == []
