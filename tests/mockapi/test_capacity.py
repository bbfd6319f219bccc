"""The stand-in's capacity model: K in flight (then 529), a request-rate budget (then 429), changed live."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from resurgo.mockapi import Capacity, MockServer

BODY = json.dumps({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})


@pytest.fixture
def srv() -> Iterator[MockServer]:
    s = MockServer(capacity=Capacity(max_inflight=1, latency=0.5))
    s.start()
    try:
        yield s
    finally:
        s.stop()


def post(s: MockServer, path: str = "/v1/messages", body: str = BODY) -> tuple[int, dict[str, str], Any]:
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    try:
        c.request("POST", path, body=body, headers={"content-type": "application/json"})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, json.loads(r.read() or b"null")
    finally:
        c.close()


def get(s: MockServer, path: str) -> Any:
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    try:
        c.request("GET", path)
        return json.loads(c.getresponse().read())
    finally:
        c.close()


def test_beyond_k_in_flight_is_refused_with_529(srv: MockServer) -> None:
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(post(srv)[0])) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 529, 529]
    # the server releases its slot just after the answer is sent: give it a moment
    import time

    deadline = time.monotonic() + 2.0
    while srv.capacity_stats()["inflight"] and time.monotonic() < deadline:
        time.sleep(0.01)
    st = srv.capacity_stats()
    assert st["refused_inflight"] == 2 and st["admitted"] == 1 and st["inflight"] == 0
    assert [r.fault for r in srv.requests].count("capacity") == 2


def test_529_body_is_an_overloaded_error(srv: MockServer) -> None:
    srv.set_capacity(max_inflight=1, latency=1.0)
    t = threading.Thread(target=post, args=(srv,))
    t.start()
    import time

    time.sleep(0.3)
    status, _, body = post(srv)
    t.join()
    assert status == 529 and body["error"]["type"] == "overloaded_error"


def test_rate_budget_answers_429_with_reset_headers(srv: MockServer) -> None:
    srv.set_capacity(rate=2, rate_window=60.0)
    assert post(srv)[0] == 200 and post(srv)[0] == 200
    status, headers, body = post(srv)
    assert status == 429 and body["error"]["type"] == "rate_limit_error"
    assert 0 <= int(headers["retry-after"]) <= 60
    assert headers["anthropic-ratelimit-requests-limit"] == "2"
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    assert srv.capacity_stats()["refused_rate"] == 1


def test_token_counting_is_not_limited(srv: MockServer) -> None:
    srv.set_capacity(rate=1, rate_window=60.0)
    for _ in range(3):
        assert post(srv, "/v1/messages/count_tokens")[0] == 200


def test_capacity_changes_while_running_through_the_admin_endpoint(srv: MockServer) -> None:
    status, _, body = post(srv, "/_resurgo/capacity", json.dumps({"max_inflight": 3, "latency": 0.2}))
    assert status == 200 and body["capacity"]["max_inflight"] == 3
    assert srv.capacity.max_inflight == 3
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(post(srv)[0])) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200, 200, 200]
    assert get(srv, "/_resurgo/capacity")["max_inflight_seen"] == 3
    # no limits at all
    assert post(srv, "/_resurgo/capacity", "{}")[0] == 200
    assert not srv.capacity.limited


@pytest.mark.parametrize(
    "bad", ['{"max_inflight": 0}', '{"rate": -1}', '{"latency": "slow"}', '{"bogus": 1}', "[1]", "{not json"]
)
def test_bad_capacity_is_refused_and_the_old_one_kept(srv: MockServer, bad: str) -> None:
    status, _, body = post(srv, "/_resurgo/capacity", bad)
    assert status == 400 and "capacity" in body["error"]["message"]
    assert srv.capacity.max_inflight == 1


def test_capacity_validation() -> None:
    with pytest.raises(ValueError, match="max_inflight"):
        Capacity(max_inflight=0)
    with pytest.raises(ValueError, match="rate_window"):
        Capacity(rate=1, rate_window=0)
    with pytest.raises(ValueError, match="latency"):
        Capacity(latency=float("inf"))


def test_mock_api_command_takes_the_capacity_flags() -> None:
    import subprocess
    import sys
    import urllib.request

    p = subprocess.Popen(
        [sys.executable, "-m", "resurgo", "mock-api", "--port", "0", "--max-inflight", "2", "--rate", "50",
         "--rate-window", "10", "--latency", "0.25"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert p.stdout is not None
        url = p.stdout.readline().strip()
        with urllib.request.urlopen(url + "/_resurgo/capacity", timeout=10) as r:
            cap = json.loads(r.read())["capacity"]
        assert cap == {"max_inflight": 2, "rate": 50, "rate_window": 10.0, "latency": 0.25}
    finally:
        p.terminate()
        p.wait(10)


def test_mock_api_command_rejects_a_bad_capacity() -> None:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "resurgo", "mock-api", "--max-inflight", "0"],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 2 and "max-inflight" in r.stderr
