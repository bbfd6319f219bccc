"""Health made visible: the recorder's writes, refreshes and alerts, readers that skip dead owners,
the start-up cleanup of dead owners' rows, and the Supervisor wiring it all together."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from resurgo.clock import SYSTEM_CLOCK, FakeClock
from resurgo.store import Store
from resurgo.store.schema import ensure_schema
from resurgo.supervise import Alert, AlertManager, Supervisor, SupervisorConfig
from resurgo.supervise._alerts import HEALTH_UNHEALTHY
from resurgo.supervise._cleanup import ResourceCleaner
from resurgo.supervise._health import ComponentHealth, HealthChecker, HealthState
from resurgo.supervise._health_store import HealthRecorder, read_health, remove_dead_health, worst
from resurgo.supervise._jobstore import JobStore, owner_alive, owner_id

from .test_orchestrator import URL, FakeManager

ME = "testhost:100:1"
OTHER = "testhost:200:1"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "h.db")
    ensure_schema(s)
    yield s
    s.close()


def _dead_owner() -> str:
    """An owner id on this host whose process has exited (and whose start time can never match)."""
    ghost = subprocess.Popen(["true"])
    ghost.wait()
    return f"{socket.gethostname()}:{ghost.pid}:1"


def _other_live_owner() -> str:
    """The owner id of another live process on this host (our parent), as another supervisor's would be."""
    ppid = psutil.Process().ppid()
    return f"{socket.gethostname()}:{ppid}:{int(psutil.Process(ppid).create_time())}"


def ch(name: str, state: HealthState, t: float, detail: str = "") -> ComponentHealth:
    return ComponentHealth(name, state, detail or state.value, t)


def rows(store: Store, owner: str = ME) -> dict[str, tuple[str, str, float]]:
    return {
        r["component"]: (r["state"], r["detail"], r["ts"])
        for r in store.query("SELECT * FROM health WHERE owner=?", (owner,))
    }


def test_changes_are_written_at_once_and_unhealthy_ones_alert_rate_limited(store: Store) -> None:
    clock = FakeClock(start=1000.0)
    sent: list[Alert] = []
    alerts = AlertManager(min_interval=60, clock=clock, sink=sent.append)
    rec = HealthRecorder(JobStore(store, clock=clock, owner=ME), alerts=alerts, refresh=5, clock=clock)

    rec.on_change(ch("api:http://h", HealthState.HEALTHY, clock.monotonic()), None)
    assert rows(store) == {"api:http://h": ("healthy", "healthy", 1000.0)}
    assert sent == []  # healthy is no news for a human

    old = ch("api:http://h", HealthState.HEALTHY, 1000.0)
    rec.on_change(ch("api:http://h", HealthState.UNHEALTHY, 1001.0, "cannot connect"), old)
    assert rows(store)["api:http://h"] == ("unhealthy", "cannot connect", 1001.0)
    assert [(a.kind, a.subject) for a in sent] == [(HEALTH_UNHEALTHY, "api:http://h")]
    assert "was healthy" in sent[0].message and sent[0].details["owner"] == ME

    # flapping within the alert interval: every change is stored, the repeated alert is suppressed
    rec.on_change(ch("api:http://h", HealthState.DEGRADED, 1002.0), None)
    rec.on_change(ch("api:http://h", HealthState.UNHEALTHY, 1003.0, "again"), None)
    assert rows(store)["api:http://h"][:2] == ("unhealthy", "again")
    assert len(sent) == 1
    clock.advance(61)
    rec.on_change(ch("api:http://h", HealthState.UNHEALTHY, clock.monotonic(), "still"), None)
    assert len(sent) == 2 and sent[1].suppressed == 1


def test_a_run_whose_process_is_gone_is_stored_but_not_alerted(store: Store) -> None:
    sent: list[Alert] = []
    rec = HealthRecorder(JobStore(store, owner=ME), alerts=AlertManager(sink=sent.append))
    gone = ComponentHealth("process:7", HealthState.UNHEALTHY, "the CLI process is gone", 1.0, {"alive": 0.0})
    rec.on_change(gone, None)
    assert rows(store)["process:7"][0] == "unhealthy" and sent == []  # the orchestrator handles run ends
    hog = ComponentHealth("process:8", HealthState.UNHEALTHY, "RSS 7000 MB", 1.0, {"alive": 1.0})
    rec.on_change(hog, None)
    assert [a.subject for a in sent] == ["process:8"]  # a live run hoarding memory is a human's business


def test_rounds_refresh_at_most_every_interval_and_drop_forgotten_components(store: Store) -> None:
    clock = FakeClock(start=1000.0)
    rec = HealthRecorder(JobStore(store, clock=clock, owner=ME), refresh=5, clock=clock)
    # another supervisor's rows are never touched by this one
    store.execute("INSERT INTO health VALUES(?,?,?,?,?)", (OTHER, "process:1", "healthy", "", 1.0))

    snap = {k: ch(k, HealthState.HEALTHY, 1000.0) for k in ("disk:/", "process:7")}
    rec.on_round(snap)  # first round: everything written
    assert {k: v[2] for k, v in rows(store).items()} == {"disk:/": 1000.0, "process:7": 1000.0}
    writes = rec.writes

    clock.advance(2)
    rec.on_round({k: ch(k, HealthState.HEALTHY, clock.monotonic()) for k in snap})
    assert rec.writes == writes  # nothing changed and the refresh interval has not passed
    assert {v[2] for v in rows(store).values()} == {1000.0}

    clock.advance(3)  # 5 s since the last refresh
    rec.on_round({k: ch(k, HealthState.HEALTHY, clock.monotonic()) for k in snap})
    assert {v[2] for v in rows(store).values()} == {1005.0}

    # the run finished: the checker forgets process:7, its row goes (before the next refresh is due)
    clock.advance(1)
    rec.on_round({"disk:/": ch("disk:/", HealthState.HEALTHY, clock.monotonic())})
    assert set(rows(store)) == {"disk:/"}
    assert set(rows(store, OTHER)) == {"process:1"}

    rec.clear()
    assert rows(store) == {} and set(rows(store, OTHER)) == {"process:1"}


async def test_recorder_wired_into_a_real_checker(store: Store, tmp_path: Path) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    url = f"http://127.0.0.1:{srv.getsockname()[1]}"
    sent: list[Alert] = []
    rec = HealthRecorder(JobStore(store, owner=ME), alerts=AlertManager(sink=sent.append), refresh=60)
    hc = HealthChecker(endpoints=[url], disk_paths=[str(tmp_path)], on_change=rec.on_change, on_round=rec.on_round)
    try:
        await hc.check_all()
        assert {k: v[0] for k, v in rows(store).items()} == {f"api:{url}": "healthy", f"disk:{tmp_path}": "healthy"}
    finally:
        srv.close()
    await hc.check_all()
    got = rows(store)[f"api:{url}"]
    assert got[0] == "unhealthy" and "cannot connect" in got[1]  # written on the change, not at the next refresh
    assert [a.subject for a in sent] == [f"api:{url}"]


def test_readers_skip_dead_owners_and_cleanup_removes_their_rows(store: Store) -> None:
    live, dead = owner_id(), _dead_owner()
    assert owner_alive(live) and not owner_alive(dead)
    for owner, comp, st in ((live, "api:x", "degraded"), (live, "disk:/", "healthy"), (dead, "api:x", "unhealthy")):
        store.execute("INSERT INTO health VALUES(?,?,?,?,?)", (owner, comp, st, "d", 5.0))

    shown = read_health(store)
    assert [(h.owner, h.component, h.state) for h in shown] == [
        (live, "api:x", "degraded"), (live, "disk:/", "healthy")]
    assert shown[0].to_dict(now=8.0)["age_s"] == 3.0
    assert worst([h.state for h in shown]) == "degraded" and worst([]) is None

    assert remove_dead_health(store, keep=live) == 1
    assert {r["owner"] for r in store.query("SELECT owner FROM health")} == {live}
    # a supervisor never removes its own rows, even when asked to judge itself dead
    assert remove_dead_health(store, keep=live, is_alive=lambda o: False) == 0


async def test_cleaner_startup_removes_health_of_dead_supervisors(store: Store, tmp_path: Path) -> None:
    jobs = JobStore(store)
    dead, other_live = _dead_owner(), _other_live_owner()
    for owner in (dead, other_live, jobs.owner):
        store.execute("INSERT INTO health VALUES(?,?,?,?,?)", (owner, "disk:/", "healthy", "", 1.0))
    assert owner_alive(other_live)
    rep = await ResourceCleaner(jobs, tmp_root=tmp_path / "none").startup()
    assert rep.stale_health == 1
    assert {r["owner"] for r in store.query("SELECT owner FROM health")} == {other_live, jobs.owner}


async def test_supervisor_publishes_its_health_and_removes_it_on_close(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    db = tmp_path / "s.db"
    st = Store(str(db))
    try:
        sup = Supervisor(
            SupervisorConfig(store=st, health_interval=0.05),
            manager=FakeManager(SYSTEM_CLOCK, lambda s, n: {}, home),  # type: ignore[arg-type]
            environ={"HOME": str(home), "ANTHROPIC_BASE_URL": URL},  # port 9: nothing listens
        )
        async with sup:
            for _ in range(200):
                mine = {h.component: h for h in read_health(st) if h.owner == sup.jobs.owner}
                if f"api:{URL}" in mine:
                    break
                await asyncio.sleep(0.02)
            assert mine[f"api:{URL}"].state == "unhealthy"
            assert mine[f"disk:{tmp_path}"].state in ("healthy", "degraded", "unhealthy")
            assert any(a.kind == HEALTH_UNHEALTHY and a.subject == f"api:{URL}" for a in sup.alerts.sent)
        assert [h for h in read_health(st) if h.owner == sup.jobs.owner] == []
    finally:
        st.close()
