"""Process and session mechanics against the real Claude Code CLI on the bundled API stand-in."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from resurgo._procs import session_members
from resurgo.mockapi import Faults, MockServer
from resurgo.supervise._process import AttemptOutcome, AttemptSpec, Liveness, ProcessManager, StreamEvent
from resurgo.supervise._session import SessionManager

from ._helpers import alive, marked

pytestmark = [pytest.mark.integration, pytest.mark.cli_versions]

LIVE = Liveness(stall_timeout=20, tick=0.05, grace=2.0)


@pytest.fixture
def env(claude_env: dict[str, str], mock_api: MockServer) -> dict[str, str]:
    return {**claude_env, "ANTHROPIC_BASE_URL": mock_api.url}


@pytest.fixture
def pm(claude_bin: str, tmp_path: Path) -> ProcessManager:
    return ProcessManager(claude=claude_bin, tmp_root=tmp_path / "tmp")


def _spec(prompt: str, cwd: Path, env: dict[str, str], **kw: object) -> AttemptSpec:
    kw.setdefault("liveness", LIVE)
    return AttemptSpec(
        prompt=prompt,
        cwd=cwd,
        env=env,
        claude_args=("--allowedTools", "Bash"),
        inherit_env=False,
        **kw,  # type: ignore[arg-type]
    )


async def _resume_ok(
    pm: ProcessManager, sm: SessionManager, cwd: Path, env: dict[str, str], last: AttemptOutcome
) -> AttemptOutcome:
    nxt = sm.plan(prompt="original", cwd=cwd, env=env, session_id=last.session_id, last=last, reason="test")
    assert nxt is not None and nxt.mode == "resume" and nxt.session_id == last.session_id
    out = await pm.run(_spec(nxt.prompt, cwd, env, mode="resume", session_id=nxt.session_id))
    assert out.exit_code == 0 and out.succeeded, (out.result, out.stderr_tail)
    assert out.session_id == last.session_id
    return out


async def test_sigkill_mid_tool_leaves_no_orphan_and_the_session_resumes(
    pm: ProcessManager, env: dict[str, str], tmp_path: Path
) -> None:
    started = asyncio.Event()

    def watch(ev: StreamEvent) -> None:
        if ev.type == "system" and ev.subtype == "task_started":
            started.set()

    # short sleep: on resume the stand-in re-issues the interrupted Bash step (no tool_result in the
    # history), so the resumed run sleeps again before it can finish
    a = await pm.start(_spec("run it [[bash: sleep 4; echo hi]]", tmp_path, env), on_event=watch)
    await asyncio.wait_for(started.wait(), 15)
    await asyncio.sleep(0.3)
    tool = [p for p in marked(a.token) if p != a.pid]
    assert tool, "the Bash tool's processes should be running"
    assert a.pid is not None and a.tracker is not None
    a.tracker.sample()
    assert a.tracker.sids, "the CLI starts its Bash tool in a session of its own"
    os.kill(a.pid, signal.SIGKILL)
    out = await a.wait()
    assert out.signal == 9 and out.exit_code is None and out.killed_by is None
    assert out.to_observation().signal == 9
    assert not any(alive(p) for p in tool), "the Bash tool's sleep survived its CLI"
    assert marked(a.token) == [] and session_members({a.pid, *a.tracker.sids}) == []
    sm = SessionManager()
    assert sm.has_transcript(out.session_id, tmp_path, env=env)
    await _resume_ok(pm, sm, tmp_path, env, out)


async def test_hang_is_caught_by_the_stall_watchdog_and_the_session_resumes(
    pm: ProcessManager, env: dict[str, str], mock_api: MockServer, tmp_path: Path
) -> None:
    # a first good turn, so the session has a transcript
    first = await pm.run(_spec("hello", tmp_path, env))
    assert first.succeeded
    mock_api.set_faults(Faults(hang=True))
    hung = await pm.run(
        _spec(
            "more",
            tmp_path,
            env,
            mode="resume",
            session_id=first.session_id,
            liveness=Liveness(stall_timeout=2.0, tick=0.05, grace=2.0),
        )
    )
    assert hung.killed_by == "stall_watchdog" and hung.result is None
    obs = hung.to_observation()
    assert obs.killed_by == "stall_watchdog"
    assert hung.cleanup.left == () and session_members({hung.pid}) == []  # type: ignore[arg-type]
    mock_api.set_faults(Faults())
    await _resume_ok(pm, SessionManager(), tmp_path, env, hung)


async def test_garbage_around_the_real_cli_output_does_not_crash_the_reader(
    pm: ProcessManager, claude_bin: str, env: dict[str, str], tmp_path: Path
) -> None:
    spec = _spec("hello", tmp_path, env).with_session()
    argv, _ = spec.argv(claude_bin)
    wrapped = ["bash", "-c", 'echo "garbage {not json"; printf "\\x00\\xff\\n"; exec "$@"', "wrap", *argv]
    out = await pm.run(
        AttemptSpec(prompt="-", cwd=tmp_path, env=env, inherit_env=False, command=wrapped, liveness=LIVE)
    )
    assert out.unparseable_count == 2 and out.succeeded
    assert out.session_id == spec.session_id and out.init is not None
    assert [e.as_evidence()["type"] for e in out.events[:2]] == ["unparseable", "unparseable"]
