"""The fault proxy, against a real loopback upstream: each mode does what it says."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from resurgo.chaos import FaultLog, FaultMode, FaultProxy

from ._helpers import Upstream, connect, recv_all


def _echo(port: int, payload: bytes = b"hello") -> bytes:
    with connect(port) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        return recv_all(s)


def _get_bytes(port: int, n: int) -> bytes:
    with connect(port) as s:
        s.sendall(f"GET /bytes/{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        return recv_all(s)


def _expect_reset(port: int) -> None:
    """The RST may already be there when connect() checks SO_ERROR, or arrive at recv()."""
    with pytest.raises(ConnectionResetError), connect(port) as s:
        s.sendall(b"x")
        s.recv(10)


def _body(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


def test_pass_forwards_both_ways_and_counts(upstream: Upstream) -> None:
    with FaultProxy(upstream=("127.0.0.1", upstream.port)) as p:
        assert p.url == f"http://127.0.0.1:{p.port}"
        assert _echo(p.port, b"x" * 1000) == b"x" * 1000
        resp = _get_bytes(p.port, 5000)
        assert resp.endswith(_body(5000))
        st = p.stats()
    assert st.connections == 2
    assert st.bytes_up >= 1000
    assert st.bytes_down >= 6000
    assert st.faults == {}


def test_drop_closes_without_answering(upstream: Upstream) -> None:
    with FaultProxy(upstream=("127.0.0.1", upstream.port), mode="drop") as p:
        for _ in range(5):
            with connect(p.port) as s:
                s.sendall(b"GET / HTTP/1.1\r\n\r\n")  # unread data must not turn it into RST
                assert recv_all(s) == b""  # orderly EOF, nothing forwarded
        assert p.stats().faults == {"drop": 5}
    assert upstream.accepted == 0


def test_reset_sends_rst(upstream: Upstream) -> None:
    with FaultProxy(upstream=("127.0.0.1", upstream.port), mode="reset") as p:
        for _ in range(5):
            _expect_reset(p.port)
        assert p.stats().faults == {"reset": 5}
    assert upstream.accepted == 0


def test_delay_slows_every_chunk(upstream: Upstream) -> None:
    with FaultProxy(upstream=("127.0.0.1", upstream.port), mode="delay", delay=0.2) as p:
        t0 = time.monotonic()
        assert _echo(p.port, b"ping") == b"ping"
        elapsed = time.monotonic() - t0
    # One chunk up and one down, each held back 0.2 s: a lower bound on behaviour, not speed.
    assert elapsed >= 0.35


def test_blackhole_reads_but_never_forwards_nor_answers(upstream: Upstream) -> None:
    with FaultProxy(upstream=("127.0.0.1", upstream.port), mode="blackhole") as p:
        with connect(p.port, timeout=0.4) as s:
            s.sendall(b"anyone there?")
            with pytest.raises(TimeoutError):
                s.recv(100)
            assert p.stats().active == 1
        assert p.stats().faults == {"blackhole": 1}
    assert upstream.accepted == 0


def test_cut_closes_after_n_response_bytes(upstream: Upstream) -> None:
    with FaultProxy(upstream=("127.0.0.1", upstream.port), mode="cut", cut_bytes=100) as p:
        got = _get_bytes(p.port, 100_000)
    assert len(got) == 100
    assert got.startswith(b"HTTP/1.1 200 OK")


def test_cut_zero_forwards_the_request_but_no_response(upstream: Upstream) -> None:
    with FaultProxy(upstream=("127.0.0.1", upstream.port), mode="cut", cut_bytes=0) as p:
        assert _get_bytes(p.port, 1000) == b""
    assert upstream.accepted == 1


def test_bandwidth_limits_throughput_and_keeps_data_intact(upstream: Upstream) -> None:
    n = 20_000
    with FaultProxy(upstream=("127.0.0.1", upstream.port), mode="bandwidth", bandwidth=40_000) as p:
        t0 = time.monotonic()
        got = _get_bytes(p.port, n)
        elapsed = time.monotonic() - t0
    assert got.endswith(_body(n))
    assert elapsed >= 0.4  # 20 kB at 40 kB/s cannot arrive sooner


def _pattern(port: int, k: int) -> list[bool]:
    """For k connections: True if the echo came back, False if dropped."""
    out = []
    for _ in range(k):
        with connect(port) as s:
            s.sendall(b"z")
            s.shutdown(socket.SHUT_WR)
            got = recv_all(s)
            assert got in (b"z", b"")  # echoed, or dropped with a clean EOF
            out.append(got == b"z")
    return out


def test_probability_is_seeded_and_reproducible(upstream: Upstream) -> None:
    up = ("127.0.0.1", upstream.port)
    with FaultProxy(upstream=up, seed=42, mode="drop", probability=0.5) as p1:
        a = _pattern(p1.port, 30)
        s1 = p1.stats()
    with FaultProxy(upstream=up, seed=42, mode="drop", probability=0.5) as p2:
        b = _pattern(p2.port, 30)
    assert a == b
    assert 0 < a.count(False) < 30
    assert s1.faults["drop"] == a.count(False)


def test_runtime_switch_applies_to_new_connections_only(upstream: Upstream) -> None:
    with FaultProxy(upstream=("127.0.0.1", upstream.port)) as p:
        with connect(p.port) as live:
            live.sendall(b"one")
            assert live.recv(10) == b"one"
            p.set_mode("reset")
            _expect_reset(p.port)
            # The connection accepted before the switch keeps working.
            live.sendall(b"two")
            assert live.recv(10) == b"two"
        p.clear()
        assert _echo(p.port) == b"hello"
        assert p.stats().faults == {"reset": 1}


def test_cut_all_breaks_live_connections_and_new_ones_still_work(upstream: Upstream) -> None:
    log = FaultLog()
    with FaultProxy(upstream=("127.0.0.1", upstream.port), fault_log=log, name="api") as p:
        socks = [connect(p.port) for _ in range(3)]
        try:
            for s in socks:
                s.sendall(b"hi")
                assert s.recv(10) == b"hi"
            assert p.cut_all() == 3
            for s in socks:
                try:
                    data = s.recv(10)
                except ConnectionResetError:
                    data = b""
                assert data == b""
        finally:
            for s in socks:
                s.close()
        assert _echo(p.port) == b"hello"
        assert p.stats().cut_all == 3
    kinds = [(w.kind, w.target, w.start == w.end) for w in log.windows()]
    assert kinds == [("net:cut_all", "api", True)]


def test_set_mode_writes_fault_windows() -> None:
    log = FaultLog()
    p = FaultProxy(upstream=("127.0.0.1", 9), fault_log=log, name="api")
    p.set_mode("delay", delay=0.1, probability=0.2)
    p.set_mode("reset")
    p.clear()
    ws = log.windows()
    assert [w.kind for w in ws] == ["net:delay", "net:reset"]
    assert all(w.end is not None for w in ws)
    assert "p=0.2" in ws[0].detail


def test_upstream_down_resets_client_and_counts() -> None:
    with socket.socket() as probe:  # a port that nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    with FaultProxy(upstream=("127.0.0.1", dead)) as p:
        _expect_reset(p.port)
        deadline = time.monotonic() + 2
        while p.stats().upstream_errors == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert p.stats().upstream_errors == 1


def test_stop_frees_the_port_and_closes_live_connections(upstream: Upstream) -> None:
    p = FaultProxy(upstream=("127.0.0.1", upstream.port)).start()
    port = p.port
    try:
        live = connect(port)
        live.sendall(b"a")
        assert live.recv(10) == b"a"
    finally:
        p.stop()
    try:
        assert live.recv(10) == b""
    except ConnectionResetError:
        pass
    finally:
        live.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    p.stop()  # idempotent


@pytest.mark.parametrize("host", ["10.0.0.1", "192.168.1.1", "8.8.8.8", "0.0.0.0", "::", "2001:db8::1"])
def test_non_loopback_upstream_is_refused(host: str) -> None:
    with pytest.raises(ValueError, match="not a loopback address"):
        FaultProxy(upstream=(host, 80))


def test_loopback_names_are_accepted_and_listen_host_is_checked() -> None:
    FaultProxy(upstream=("localhost", 80))
    FaultProxy(upstream=("127.0.0.5", 80))
    FaultProxy(upstream=("::1", 80))
    with pytest.raises(ValueError, match="listen host"):
        FaultProxy(upstream=("127.0.0.1", 80), listen_host="0.0.0.0")


def test_bad_settings_get_clear_errors() -> None:
    p = FaultProxy(upstream=("127.0.0.1", 80))
    with pytest.raises(ValueError, match="unknown fault mode"):
        p.set_mode("explode")
    with pytest.raises(ValueError, match="probability"):
        p.set_mode("drop", probability=1.5)
    with pytest.raises(ValueError, match="bandwidth"):
        p.set_mode("bandwidth")
    with pytest.raises(ValueError, match="delay"):
        p.set_mode("delay")
    with pytest.raises(ValueError, match="port"):
        FaultProxy(upstream=("127.0.0.1", 0))
    with pytest.raises(RuntimeError, match="not started"):
        _ = p.url
    assert p.config.mode is FaultMode.PASS  # a rejected switch changes nothing


async def test_async_life_cycle_in_the_running_loop(upstream: Upstream) -> None:
    async with FaultProxy(upstream=("127.0.0.1", upstream.port)) as p:
        r, w = await asyncio.open_connection("127.0.0.1", p.port)
        w.write(b"async")
        assert await asyncio.wait_for(r.read(10), 5) == b"async"
        assert await p.acut_all() == 1
        with pytest.raises(ConnectionResetError):  # the cut is an RST, as a dropped route
            await asyncio.wait_for(r.read(10), 5)
        w.close()
        p.set_mode(FaultMode.DROP)
        r2, w2 = await asyncio.open_connection("127.0.0.1", p.port)
        assert await asyncio.wait_for(r2.read(10), 5) == b""
        w2.close()
    assert not p.running


def test_concurrent_switches_leave_no_window_open() -> None:
    log = FaultLog()
    p = FaultProxy(upstream=("127.0.0.1", 9), fault_log=log)

    def flip(mode: str) -> None:
        for _ in range(50):
            p.set_mode(mode, probability=0.5)

    threads = [threading.Thread(target=flip, args=(m,)) for m in ("drop", "reset") * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    p.clear()
    ws = log.windows()
    assert len(ws) == 400
    assert all(w.end is not None for w in ws)


def test_each_route_has_its_own_port_and_its_faults_are_logged_per_route(upstream: Upstream) -> None:
    with FaultProxy(upstream=("127.0.0.1", upstream.port), seed=1) as p:
        pa, pb = p.add_route("job-a"), p.add_route("job-b")
        assert len({p.port, pa, pb}) == 3 and p.add_route("job-a") == pa  # idempotent
        assert p.route_url("job-b") == f"http://127.0.0.1:{pb}"
        assert _echo(pa) == b"hello"  # the same relay on every route
        p.set_mode("reset")
        _expect_reset(pb)
        _expect_reset(p.port)  # the main port: a fault that reached no job
        p.clear()
        with connect(pa) as live:  # a live connection of job-a, broken by a cut of everything
            live.sendall(b"x")
            assert live.recv(1) == b"x"
            assert p.cut_all() == 1
        events = p.fault_events()
    assert [(e.route, e.mode) for e in events] == [("job-b", "reset"), (None, "reset"), ("job-a", "cut_all")]
    assert len({e.conn for e in events}) == 3 and all(e.at > 0 for e in events)


def test_routes_need_a_started_proxy_and_a_bounded_name(upstream: Upstream) -> None:
    p = FaultProxy(upstream=("127.0.0.1", upstream.port))
    with pytest.raises(RuntimeError, match="not started"):
        p.add_route("job-a")
    with p, pytest.raises(ValueError, match="route name"):
        p.add_route("x" * 200)
