"""A fleet worker refuses what a writer of the fleet's Redis should not decide (issue 15, items 6 and 13)."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from pathlib import Path

import pytest

from resurgo.distributed import FleetJob, FleetQueue
from resurgo.distributed._policy import WorkerPolicy, is_session_id
from resurgo.distributed._transcripts import TranscriptCodec, TranscriptError


def test_session_ids_must_be_uuids() -> None:
    sid = str(uuid.uuid4())
    assert is_session_id(sid)
    for bad in ("../../x", sid + "/..", "", sid.replace("-", ""), "a" * 36, sid[:-1] + "/", None, 5):
        assert not is_session_id(bad), bad


def test_policy_refuses_dangerous_environment(tmp_path: Path) -> None:
    p = WorkerPolicy.create(cwd_roots=[str(tmp_path)])
    for name in ("PATH", "LD_PRELOAD", "NODE_OPTIONS", "HOME", "CLAUDE_CONFIG_DIR", "ANTHROPIC_BASE_URL",
                 "ANTHROPIC_API_KEY", "https_proxy", "GIT_SSH_COMMAND", "DYLD_INSERT_LIBRARIES"):
        env, problems = p.env({name: "x"})
        assert env == {} and problems and name in problems[0], name
    env, problems = p.env({"MY_SETTING": "1", "LANG": "C.UTF-8"})
    assert env == {"MY_SETTING": "1", "LANG": "C.UTF-8"} and problems == []
    # a secret sent as <redacted> is dropped, never filled from the worker's own environment
    env, problems = p.env({"OPENAI_API_KEY": "<redacted>"})
    assert env == {} and problems == []
    # the worker may allow a variable deliberately
    allowed = WorkerPolicy.create(cwd_roots=[str(tmp_path)], allow_env=["ANTHROPIC_MODEL"])
    assert allowed.env({"ANTHROPIC_MODEL": "m"}) == ({"ANTHROPIC_MODEL": "m"}, [])


def test_policy_confines_cwd(tmp_path: Path) -> None:
    root = tmp_path / "jobs"
    (root / "a").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", root / "link")
    p = WorkerPolicy.create(cwd_roots=[str(root)])
    assert p.cwd(str(root / "a")) == [] and p.cwd(str(root)) == [] and p.cwd(str(root / "new")) == []
    assert p.cwd("/etc") and p.cwd(str(root / ".." / "outside")) and p.cwd(str(root / "link"))
    assert p.cwd(str(tmp_path / "jobs-evil"))  # a prefix of the name is not a folder under it
    assert p.cwd("relative/path")


def test_policy_refuses_claude_args_that_widen_a_run(tmp_path: Path) -> None:
    p = WorkerPolicy.create(cwd_roots=[str(tmp_path)])
    assert p.claude_args(["--model", "sonnet", "--max-turns", "3", "--disallowedTools", "Bash"]) == []
    for bad in (["--settings", "/tmp/s.json"], ["--mcp-config=/tmp/m.json"], ["--dangerously-skip-permissions"],
                ["--permission-mode", "bypassPermissions"], ["--add-dir", "/"], ["--allowedTools", "Bash"],
                ["--plugin-dir", "/tmp"], ["--some-future-flag"]):
        assert p.claude_args(bad), bad
    granting = WorkerPolicy.create(cwd_roots=[str(tmp_path)], allow_claude_args=["--allowedTools"])
    assert granting.claude_args(["--allowedTools", "Bash"]) == []
    assert granting.claude_args(["--settings", "x"])


def test_transcripts_are_redacted_by_default_and_can_be_encrypted() -> None:
    line = json.dumps({"type": "user", "message": {"content": "export ANTHROPIC_API_KEY=sk-ant-api03-" + "A" * 40}})
    text = line + "\n" + json.dumps({"type": "assistant", "message": {"content": "ok"}}) + "\n"
    stored = TranscriptCodec().encode(text)
    assert "sk-ant-api03" not in stored and stored.count("\n") == 2
    assert all(json.loads(x) for x in stored.splitlines())
    assert TranscriptCodec("plain").encode(text) == text
    pytest.importorskip("cryptography")
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    enc = TranscriptCodec("encrypt", key=key)
    sealed = enc.encode(text)
    assert "sk-ant" not in sealed and "assistant" not in sealed
    assert enc.decode(sealed) == text
    assert TranscriptCodec(key=key).decode(sealed) == text  # any worker with the key reads it
    with pytest.raises(TranscriptError, match="no transcript key"):
        TranscriptCodec().decode(sealed)
    with pytest.raises(TranscriptError, match="does not decrypt"):
        TranscriptCodec(key=Fernet.generate_key().decode()).decode(sealed)
    with pytest.raises(TranscriptError, match="needs a key"):
        TranscriptCodec("encrypt")


@pytest.mark.redis
def test_worker_fails_jobs_its_policy_refuses_without_running_anything(tmp_path: Path, redis_url: str) -> None:
    from resurgo.distributed._fleet_worker import FleetWorker
    from resurgo.supervise import SupervisorConfig

    marker = tmp_path / "ran"
    cli = tmp_path / "fake-claude"
    cli.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    cli.chmod(0o755)
    root = tmp_path / "jobs"
    root.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    q = FleetQueue(redis_url, prefix="pol")
    try:
        specs = [
            {"prompt": "p", "cwd": str(root), "env": {"ANTHROPIC_BASE_URL": "http://evil.example",
                                                     "ANTHROPIC_API_KEY": "sk-ant-x"}},
            {"prompt": "p", "cwd": str(root), "env": {"NODE_OPTIONS": "--require /tmp/x.js"}},
            {"prompt": "p", "cwd": "/etc"},
            {"prompt": "p", "cwd": str(root), "claude_args": ["--mcp-config", "/tmp/evil.json"]},
        ]
        ids = [q.submit(FleetJob.of(s)) for s in specs]
        # a job whose session id (written by anyone with Redis access) points out of the projects folder
        jid = q.submit(FleetJob.of({"prompt": "p", "cwd": str(root)}))
        k = q.job_key(jid)
        q.client.hset(k, "session_id", "../../../../escaped")
        q.client.set(k + ":transcript", '{"type":"user"}\n')
        ids.append(jid)

        async def serve() -> None:
            w = FleetWorker(redis_url, prefix="pol", name="w1", concurrency=2, lease=5.0, grace=0.0,
                            share_state=False, environ={**os.environ, "HOME": str(home)},
                            config=SupervisorConfig(claude=str(cli), store=str(tmp_path / "w.db")),
                            policy=WorkerPolicy.create(cwd_roots=[str(root)]))
            task = asyncio.create_task(w.run())
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                states = await asyncio.to_thread(q.states, ids)
                if all(s == "failed" for s in states):
                    break
                await asyncio.sleep(0.1)
            w.stop(now=True)
            await asyncio.wait_for(task, 30)

        asyncio.run(serve())
        results = [q.get(i) for i in ids]
        reasons = [r.reason or "" for r in results if r is not None]
        assert [r.state for r in results if r is not None] == ["failed"] * 5, reasons
        assert "ANTHROPIC_BASE_URL" in reasons[0] and "ANTHROPIC_API_KEY" not in reasons[0]  # <redacted>: dropped
        assert "NODE_OPTIONS" in reasons[1]
        assert "cwd /etc is outside" in reasons[2]
        assert "--mcp-config" in reasons[3]
        assert "session id" in reasons[4]
        assert not marker.exists()  # the CLI never started
        assert not list(tmp_path.rglob("escaped*"))
    finally:
        q.close()


@pytest.mark.redis
def test_uploaded_transcripts_are_stored_redacted(tmp_path: Path, redis_url: str) -> None:
    """The worker stores what the codec makes of a transcript (checked through the real upload path)."""
    from resurgo.distributed._fleet_worker import FleetWorker, _Running

    secret = "sk-ant-api03-" + "B" * 40
    sid = str(uuid.uuid4())
    home = tmp_path / "home"
    work = tmp_path / "w"
    work.mkdir()
    from resurgo.supervise._session import SessionManager

    path = SessionManager().transcript_path(sid, str(work), env={"HOME": str(home)})
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"type": "user", "message": {"content": f"key {secret}"}}) + "\n")
    q = FleetQueue(redis_url, prefix="tr")
    try:
        jid = q.submit({"prompt": "p", "cwd": str(work)})
        k = q.job_key(jid)
        q.client.hset(k, "token", 1)

        async def upload() -> None:
            w = FleetWorker(redis_url, prefix="tr", name="w", share_state=False,
                            environ={**os.environ, "HOME": str(home)})
            try:
                run = _Running(jid, "0-1", 1, FleetJob.of({"prompt": "p", "cwd": str(work)}), {}, session_id=sid)
                await w._upload(run)
            finally:
                await w.r.aclose()

        asyncio.run(upload())
        stored = q.client.get(k + ":transcript")
        assert stored and "<redacted>" in stored and secret not in stored
    finally:
        q.close()
