"""Fast tests of the stand-in over raw HTTP (no CLI): protocol, bodies, faults, control."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from typing import Any

import pytest

from resurgo.mockapi import Faults, MockServer

MSG = {"model": "claude-test", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


def post(
    srv: MockServer,
    path: str = "/v1/messages?beta=true",
    body: Any = MSG,
    headers: dict[str, str] | None = None,
    timeout: float = 5,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
    try:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn.request("POST", path, body=data, headers={"content-type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def get(srv: MockServer, path: str) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def raw_request(srv: MockServer, body: dict[str, Any] = MSG) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    data = json.dumps(body).encode()
    s.sendall(
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(data), data)
    )
    return s


def test_non_streaming_message(mock_api: MockServer) -> None:
    status, _headers, body = post(
        mock_api, body={**MSG, "messages": [{"role": "user", "content": "go [[text: the answer]]"}]}
    )
    assert status == 200
    msg = json.loads(body)
    assert msg["type"] == "message" and msg["role"] == "assistant"
    assert msg["id"].startswith("msg_01") and len(msg["id"]) == 28
    assert msg["content"] == [{"type": "text", "text": "the answer"}]
    assert msg["stop_reason"] == "end_turn" and msg["model"] == "claude-test"
    assert msg["usage"]["input_tokens"] > 0 and msg["usage"]["output_tokens"] > 0


def test_streaming_event_sequence(mock_api: MockServer) -> None:
    status, headers, body = post(mock_api, body={**MSG, "stream": True})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = sse(body)
    names = [n for n, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names.count("content_block_start") == names.count("content_block_stop") == 1
    assert all(n == d["type"] for n, d in events)
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == "Done."


def test_bash_directive_becomes_tool_use_then_final_text(mock_api: MockServer) -> None:
    tools = [{"name": "Bash", "input_schema": {"type": "object"}}]
    first = {
        **MSG,
        "tools": tools,
        "stream": True,
        "messages": [{"role": "user", "content": "[[bash: echo a]] [[bash: echo b]] [[text: fin]]"}],
    }
    events = sse(post(mock_api, body=first)[2])
    start = [d for n, d in events if n == "content_block_start"][-1]["content_block"]
    assert start["type"] == "tool_use" and start["name"] == "Bash"
    partial = "".join(
        d["delta"]["partial_json"]
        for n, d in events
        if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
    )
    assert json.loads(partial)["command"] == "echo a"
    assert next(d for n, d in events if n == "message_delta")["delta"]["stop_reason"] == "tool_use"

    # the second turn carries the first tool_result: the stand-in moves on to step 2
    history = first["messages"] + [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": start["id"], "name": "Bash", "input": {"command": "echo a"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": start["id"], "content": "a"}]},
    ]
    msg = json.loads(post(mock_api, body={**MSG, "tools": tools, "messages": history})[2])
    assert msg["content"][-1]["input"]["command"] == "echo b"
    tid = msg["content"][-1]["id"]
    assert tid != start["id"]
    history += [
        {"role": "assistant", "content": msg["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tid, "content": "b"}]},
    ]
    msg = json.loads(post(mock_api, body={**MSG, "tools": tools, "messages": history})[2])
    assert msg["content"] == [{"type": "text", "text": "fin"}] and msg["stop_reason"] == "end_turn"


def test_sleep_directive_delays_answer(mock_api: MockServer) -> None:
    t = time.monotonic()
    post(mock_api, body={**MSG, "messages": [{"role": "user", "content": "[[sleep: 0.4]]"}]})
    assert time.monotonic() - t >= 0.4


def test_count_tokens_and_unknown_path(mock_api: MockServer) -> None:
    status, _, body = post(mock_api, path="/v1/messages/count_tokens")
    assert status == 200 and json.loads(body)["input_tokens"] > 0
    status, headers, body = post(mock_api, path="/v1/nope")
    err = json.loads(body)
    assert status == 404 and err["type"] == "error" and err["error"]["type"] == "not_found_error"
    assert err["request_id"].startswith("req_01") and headers["request-id"] == err["request_id"]


@pytest.mark.parametrize(
    ("status", "etype", "retry"),
    [
        (400, "invalid_request_error", "false"),
        (401, "authentication_error", "false"),
        (403, "permission_error", "false"),
        (404, "not_found_error", "false"),
        (413, "request_too_large", "false"),
        (429, "rate_limit_error", "true"),
        (500, "api_error", "true"),
        (502, "api_error", "true"),
        (503, "api_error", "true"),
        (504, "timeout_error", "true"),
        (529, "overloaded_error", "true"),
    ],
)
def test_status_faults_have_realistic_bodies(status: int, etype: str, retry: str) -> None:
    with MockServer(faults=Faults(status=status)) as srv:
        got, headers, body = post(srv)
    err = json.loads(body)
    assert got == status
    assert err["type"] == "error" and err["error"]["type"] == etype and err["error"]["message"]
    assert headers["x-should-retry"] == retry
    if status == 429:
        assert int(headers["retry-after"]) > 0
        assert headers["anthropic-ratelimit-requests-reset"].endswith("Z")


def test_429_reset_time_follows_retry_after(mock_api: MockServer) -> None:
    mock_api.set_faults(Faults(status=429, retry_after=90, message="usage limit reached"))
    _, headers, body = post(mock_api)
    assert headers["retry-after"] == "90"
    reset = time.mktime(time.strptime(headers["anthropic-ratelimit-tokens-reset"], "%Y-%m-%dT%H:%M:%SZ"))
    assert abs((reset - time.timezone) - (time.time() + 90)) < 5
    assert json.loads(body)["error"]["message"] == "usage limit reached"


def test_count_then_recovers_and_nth(mock_api: MockServer) -> None:
    mock_api.set_faults(Faults(status=529, count=2))
    assert [post(mock_api)[0] for _ in range(4)] == [529, 529, 200, 200]
    mock_api.set_faults(Faults(status=500, nth=3))
    assert [post(mock_api)[0] for _ in range(4)] == [200, 200, 500, 200]
    faults = [r.fault for r in mock_api.requests]
    assert faults == ["529", "529", None, None, None, None, "500", None]


def test_probability_is_reproducible_with_seed(mock_api: MockServer) -> None:
    def run() -> list[int]:
        mock_api.set_faults(Faults(status=503, probability=0.5, seed=7))
        return [post(mock_api)[0] for _ in range(12)]

    first, second = run(), run()
    assert first == second
    assert 503 in first and 200 in first


def test_session_targeting(mock_api: MockServer) -> None:
    mock_api.set_faults(Faults(status=401, session_id="bad"))
    assert post(mock_api, headers={"x-claude-code-session-id": "good"})[0] == 200
    assert post(mock_api, headers={"x-claude-code-session-id": "bad"})[0] == 401
    assert post(mock_api)[0] == 200
    assert [r.session_id for r in mock_api.requests] == ["good", "bad", None]


def test_count_tokens_not_faulted_by_default(mock_api: MockServer) -> None:
    mock_api.set_faults(Faults(status=529))
    assert post(mock_api, path="/v1/messages/count_tokens")[0] == 200
    assert post(mock_api)[0] == 529


def test_reset_sends_rst(mock_api: MockServer) -> None:
    mock_api.set_faults(Faults(reset=True))
    s = raw_request(mock_api)
    try:
        with pytest.raises(ConnectionResetError):
            data = s.recv(100)
            # some kernels report the RST only on the next read
            if data == b"":
                s.recv(100)
                raise AssertionError("got FIN, expected RST")
    finally:
        s.close()


def test_hang_until_stop_closes_it() -> None:
    srv = MockServer(faults=Faults(hang=True)).start()
    s = raw_request(srv)
    try:
        s.settimeout(0.3)
        with pytest.raises(TimeoutError):
            s.recv(100)
        assert srv.stats()["open_connections"] == 1
        srv.stop()
        s.settimeout(2)
        try:
            assert s.recv(100) == b""
        except ConnectionResetError:
            pass  # abort may RST: either way the connection is gone
    finally:
        s.close()
        srv.stop()


def test_cut_stream_closes_mid_body(mock_api: MockServer) -> None:
    mock_api.set_faults(Faults(cut_after=2))
    conn = http.client.HTTPConnection("127.0.0.1", mock_api.port, timeout=5)
    try:
        conn.request("POST", "/v1/messages", body=json.dumps({**MSG, "stream": True}))
        resp = conn.getresponse()
        assert resp.status == 200
        with pytest.raises(http.client.IncompleteRead) as ei:
            resp.read()
        names = [n for n, _ in sse(ei.value.partial)]
        assert names == ["message_start", "content_block_start"]
    finally:
        conn.close()


def test_slow_answers_event_delay(mock_api: MockServer) -> None:
    mock_api.set_faults(Faults(event_delay=0.05))
    t = time.monotonic()
    events = sse(post(mock_api, body={**MSG, "stream": True})[2])
    assert time.monotonic() - t >= 0.05 * len(events)
    assert mock_api.requests[-1].fault is None  # slow is not a failure


def test_mixed_kinds_pick_each(mock_api: MockServer) -> None:
    mock_api.set_faults(Faults(status=500, reset=True, seed=3))
    seen = set()
    for _ in range(20):
        try:
            seen.add(post(mock_api)[0])
        except (ConnectionError, http.client.HTTPException):
            seen.add("reset")
    assert seen == {500, "reset"}


def test_keep_alive_serves_several_requests_on_one_connection(mock_api: MockServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", mock_api.port, timeout=5)
    try:
        for _ in range(3):
            conn.request("POST", "/v1/messages", body=json.dumps(MSG))
            assert conn.getresponse().read()
    finally:
        conn.close()
    assert mock_api.stats()["connections_total"] == 1


def test_control_endpoint_switches_faults(mock_api: MockServer) -> None:
    status, _, body = post(mock_api, path="/_resurgo/faults", body={"status": 503, "count": 1})
    assert status == 200 and json.loads(body)["faults"]["status"] == 503
    assert [post(mock_api)[0] for _ in range(2)] == [503, 200]
    status, _, body = post(mock_api, path="/_resurgo/faults", body={"bogus": 1})
    assert status == 400 and "bogus" in json.loads(body)["error"]["message"]
    status, _, _ = post(mock_api, path="/_resurgo/faults", body={"probability": 2})
    assert status == 400
    status, stats = get(mock_api, "/_resurgo/stats")
    assert status == 200 and stats["requests"] == 2 and stats["by_status"] == {"503": 1, "200": 1}
    assert get(mock_api, "/_resurgo/faults")[1]["faults"]["status"] == 503


def test_set_faults_from_another_thread_while_serving(mock_api: MockServer) -> None:
    results: list[int] = []

    def client() -> None:
        for _ in range(30):
            results.append(post(mock_api)[0])

    t = threading.Thread(target=client)
    t.start()
    for _ in range(10):
        mock_api.set_faults(Faults(status=529))
        mock_api.set_faults(Faults())
    mock_api.set_faults(Faults(status=529))
    t.join()
    assert len(results) == 30 and set(results) <= {200, 529}
    assert post(mock_api)[0] == 529


def test_bad_request_and_secret_redaction(mock_api: MockServer) -> None:
    assert post(mock_api, body=b"not json")[0] == 400
    post(mock_api, headers={"x-api-key": "sk-ant-secret"})
    assert mock_api.requests[-1].headers["x-api-key"] == "<redacted>"


def test_faults_validation() -> None:
    with pytest.raises(ValueError, match="probability"):
        Faults(probability=1.5)
    with pytest.raises(ValueError, match="status"):
        Faults(status=200)
    with pytest.raises(ValueError, match="nth"):
        Faults(nth=0)
    with pytest.raises(ValueError, match="unknown"):
        Faults.from_dict({"stauts": 529})
    assert Faults.from_dict(Faults(status=529, paths=("/v1",)).to_dict()) == Faults(status=529, paths=("/v1",))


async def test_async_start_stop() -> None:
    srv = MockServer()
    await srv.start_async()
    try:
        import asyncio

        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        data = json.dumps(MSG).encode()
        writer.write(b"POST /v1/messages HTTP/1.1\r\ncontent-length: %d\r\n\r\n%s" % (len(data), data))
        await writer.drain()
        line = await reader.readline()
        assert line.startswith(b"HTTP/1.1 200")
        writer.close()
    finally:
        await srv.stop_async()


def test_port_in_use_raises() -> None:
    with MockServer() as a, pytest.raises(OSError):
        MockServer(port=a.port).start()


def test_skip_then_persistent(mock_api: MockServer) -> None:
    mock_api.set_faults(Faults(status=502, skip=2))
    assert [post(mock_api)[0] for _ in range(4)] == [200, 200, 502, 502]


def test_a_route_prefix_names_the_client_and_is_served_like_the_bare_path(mock_api: MockServer) -> None:
    from resurgo.mockapi._server import split_route

    assert split_route("/j/job-007/v1/messages") == ("job-007", "/v1/messages")
    assert split_route("/j/job-007/") == ("job-007", "/")
    assert split_route("/v1/messages") == (None, "/v1/messages")
    assert split_route("/j//v1/messages") == (None, "/j//v1/messages")
    assert split_route("/j/" + "x" * 200 + "/v1/messages")[0] is None  # bounded
    mock_api.set_faults(Faults(status=529, count=1))
    status, _, _ = post(mock_api, "/j/job-007/v1/messages?beta=true")
    assert status == 529
    status, _, _ = post(mock_api, "/j/job-008/v1/messages")
    assert status == 200
    recs = [r for r in mock_api.requests if r.path == "/v1/messages"]
    assert [(r.route, r.fault) for r in recs] == [("job-007", "529"), ("job-008", None)]
    _, listed = get(mock_api, "/_resurgo/requests")
    assert [r["route"] for r in listed["requests"]] == ["job-007", "job-008"]
