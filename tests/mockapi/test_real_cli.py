"""The stand-in driven by the real Claude Code CLI (no mock of the CLI anywhere)."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from resurgo.mockapi import Faults, MockServer, tool_wait

from ._cli import argv, parse, run, spawn

pytestmark = [pytest.mark.integration, pytest.mark.cli_versions]


@pytest.fixture
def env(claude_env: dict[str, str], mock_api: MockServer) -> dict[str, str]:
    return {**claude_env, "ANTHROPIC_BASE_URL": mock_api.url}


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    return d


def _wait_for(pred: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_plain_run_succeeds(claude_bin: str, env: dict[str, str], cwd: Path, mock_api: MockServer) -> None:
    r = run(claude_bin, "say it [[text: hello from the stand-in]]", env, cwd)
    assert r.returncode == 0, r.stderr
    assert r.result["is_error"] is False and r.result["subtype"] == "success"
    assert r.result["result"] == "hello from the stand-in"
    sid = r.init["session_id"]
    msgs = [q for q in mock_api.requests if q.path == "/v1/messages"]
    assert msgs and all(q.session_id == sid for q in msgs)
    assert msgs[0].query == {"beta": ["true"]} and msgs[0].stream
    assert msgs[0].headers["x-api-key"] == "<redacted>"


def test_bash_directive_runs_a_real_bash_child(
    claude_bin: str, env: dict[str, str], cwd: Path, mock_api: MockServer
) -> None:
    prompt = "[[bash: echo $BASH_VERSION > marker.txt; echo pid $$]] [[bash: echo second]] [[text: both ran]]"
    r = run(claude_bin, prompt, env, cwd)
    assert r.returncode == 0, r.stderr
    assert r.result["result"] == "both ran" and r.result["num_turns"] == 3
    assert (cwd / "marker.txt").read_text().strip()  # a real bash wrote its version
    results = [
        b
        for e in r.events
        if e.get("type") == "user"
        for b in e["message"]["content"]
        if b.get("type") == "tool_result"
    ]
    assert [b["is_error"] for b in results] == [False, False]
    assert results[0]["content"].startswith("pid ") and results[1]["content"] == "second"
    # the CLI sent the Bash tool with a {"command": ...} schema
    body = mock_api.requests[-1].body
    assert body is not None
    bash = next(t for t in body["tools"] if t["name"] == "Bash")
    assert "command" in bash["input_schema"]["required"]


def test_529_gives_error_result(claude_bin: str, env: dict[str, str], cwd: Path, mock_api: MockServer) -> None:
    mock_api.set_faults(Faults(status=529))
    r = run(claude_bin, "hi", env, cwd)
    assert r.returncode == 1
    assert r.result["is_error"] is True and r.result["api_error_status"] == 529
    assert "529" in r.result["result"]


def test_hang_times_out_and_stop_frees_it(
    claude_bin: str, env: dict[str, str], cwd: Path, mock_api: MockServer
) -> None:
    mock_api.set_faults(Faults(hang=True))
    r = run(claude_bin, "hi", {**env, "API_TIMEOUT_MS": "1500"}, cwd)
    assert r.result["is_error"] is True and "timed out" in r.result["result"].lower()
    assert next(q.fault for q in mock_api.requests if q.path == "/v1/messages") == "hang"


def test_faults_switch_at_runtime_over_http(
    claude_bin: str, env: dict[str, str], cwd: Path, mock_api: MockServer
) -> None:
    """The first turn succeeds; while its Bash tool runs we switch to 503; the next turn fails."""
    with spawn(argv(claude_bin, "[[bash: sleep 1.5; echo ok]]"), env, cwd) as proc:
        _wait_for(lambda: any(q.status == 200 and q.path == "/v1/messages" for q in mock_api.requests))
        req = urllib.request.Request(
            f"{mock_api.url}/_resurgo/faults", method="POST", data=json.dumps({"status": 503}).encode()
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert json.loads(resp.read())["faults"]["status"] == 503
        out, _err = proc.communicate(timeout=60)
    result = [e for e in parse(out) if e.get("type") == "result"][-1]
    assert result["is_error"] is True and result["api_error_status"] == 503
    statuses = [q.status for q in mock_api.requests if q.path == "/v1/messages"]
    assert statuses[0] == 200 and statuses[-1] == 503
    # and back: clearing faults lets the next run succeed
    mock_api.set_faults(Faults())
    assert run(claude_bin, "again", env, cwd).result["is_error"] is False


def test_session_targeted_fault_hits_only_that_session(
    claude_bin: str, env: dict[str, str], cwd: Path, mock_api: MockServer
) -> None:
    bad, good = str(uuid.uuid4()), str(uuid.uuid4())
    mock_api.set_faults(Faults(status=401, session_id=bad))
    r_bad = run(claude_bin, "hi", env, cwd, extra=["--session-id", bad])
    r_good = run(claude_bin, "hi", env, cwd, extra=["--session-id", good])
    assert r_bad.result["api_error_status"] == 401 and r_bad.returncode == 1
    assert r_good.result["is_error"] is False and r_good.returncode == 0


def test_resume_after_sigkill_mid_tool_continues_statelessly(
    claude_bin: str, claude_version: tuple[int, int, int], env: dict[str, str], cwd: Path, mock_api: MockServer
) -> None:
    sid = str(uuid.uuid4())
    # the first step blocks only on its first run, so the resumed repeat of it is quick
    first = "test -f flag || { touch flag; sleep 30; }; echo first"
    prompt = f"[[bash: {first}]] [[bash: echo second]] [[text: resumed and done]]"
    home = Path(env["HOME"])

    def tool_use_in_transcript() -> bool:
        # the CLI appends to the transcript asynchronously: the Bash tool can be running (the flag
        # exists) before its tool_use is on disk, and a kill then leaves nothing to resume ("No
        # conversation found"), which is another case than the one this test is about
        return any(b'"tool_use"' in f.read_bytes() for f in home.glob(f".claude/projects/*/{sid}.jsonl"))

    with spawn(argv(claude_bin, prompt, ["--session-id", sid]), env, cwd) as proc:
        _wait_for(lambda: (cwd / "flag").exists() and tool_use_in_transcript())  # the Bash tool is running
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    seen = len(mock_api.requests)
    r = run(claude_bin, "continue", env, cwd, extra=["--resume", sid])
    assert r.result["is_error"] is False, r.result
    assert r.result["result"] == "resumed and done"
    commands = [
        b["input"]["command"]
        for e in r.events
        if e.get("type") == "assistant"
        for b in e["message"]["content"]
        if b.get("type") == "tool_use"
    ]
    history = next(q.body for q in mock_api.requests[seen:] if q.path == "/v1/messages" and q.body)["messages"]
    blocks = [b for m in history if isinstance(m["content"], list) for b in m["content"]]
    interrupted = [b for b in blocks if b.get("type") == "tool_result" and b.get("is_error")]
    if claude_version >= (2, 1, 332):
        # 2.1.332 keeps the dangling tool_use and answers it with a synthetic error result ("[Tool call
        # interrupted: ... its outcome is unknown ...]"), so the stand-in goes on with step 2: the model is
        # told the interrupted step may or may not have run (docs/cli-versions.md)
        assert len(interrupted) == 1 and "Tool call interrupted" in str(interrupted[0]["content"])
        assert commands == ["echo second"]
    else:
        # 2.1.197 drops the dangling tool_use from the resumed history: the step is asked for again
        assert interrupted == [] and not any(b.get("type") == "tool_use" for b in blocks)
        assert commands == [first, "echo second"]


def _tool_results(srv: MockServer) -> list[dict[str, object]]:
    return [
        b
        for q in srv.requests
        if q.path == "/v1/messages" and q.body
        for m in q.body["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]


def test_a_long_leading_sleep_is_refused_by_newer_clis_and_tool_wait_runs_everywhere(
    claude_bin: str, claude_version: tuple[int, int, int], env: dict[str, str], cwd: Path, mock_api: MockServer
) -> None:
    """The known difference (2.1.332 blocks `sleep N`, N >= 25, as the first command) and the shape that avoids it.

    Neither run is waited out: a refused call comes back within a second as an error tool_result;
    a call that runs shows as a `sleep 1` child of the tool loop, and no second request arrives.
    """
    long_s = 30
    with spawn(argv(claude_bin, f"[[bash: sleep {long_s}; echo x]] [[text: fin]]"), env, cwd) as proc:
        if claude_version >= (2, 1, 332):
            out, _ = proc.communicate(timeout=60)
            [res] = _tool_results(mock_api)
            assert res["is_error"] is True and f"Blocked: sleep {long_s}" in str(res["content"])
            assert [e for e in parse(out) if e.get("type") == "result"][-1]["result"] == "fin"
        else:
            _wait_for(lambda: bool(_sleepers(cwd, f"sleep {long_s}")), timeout=20)
            assert _tool_results(mock_api) == []  # 2.1.197 runs it
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    mock_api.reset_requests()
    shape = tool_wait(long_s)
    assert not shape.startswith("sleep")
    with spawn(argv(claude_bin, f"[[bash: {shape}; echo waited]] [[text: fin]]"), env, cwd) as proc:
        _wait_for(lambda: bool(_sleepers(cwd, "sleep 1")), timeout=20)
        time.sleep(1.0)
        assert _tool_results(mock_api) == [], "the tool_wait shape was refused"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _sleepers(cwd: Path, cmd: str) -> list[int]:
    import psutil

    out = []
    for p in psutil.process_iter(["pid", "cmdline", "cwd"]):
        try:
            if " ".join(p.info["cmdline"] or []) == cmd and p.info["cwd"] == str(cwd):
                out.append(p.pid)
        except psutil.Error:
            continue
    return out
