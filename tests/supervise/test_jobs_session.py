"""JobStore, redaction and session planning."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from resurgo._redact import REDACTED, redact_env, redact_text
from resurgo.classifier._types import ErrorClass, ErrorType, Severity
from resurgo.clock import FakeClock
from resurgo.store import Store
from resurgo.supervise._jobstore import JobState, JobStore, JobStoreError, owner_alive, owner_id
from resurgo.supervise._process import AttemptOutcome, parse_line
from resurgo.supervise._session import SessionManager, config_dir, project_dir_name

KEY = "sk-ant-api03-" + "A1b2" * 10


@pytest.fixture
def jobs(tmp_path: Path) -> JobStore:
    return JobStore(Store(tmp_path / "r.db"), clock=FakeClock())


def test_redact_text_covers_keys_tokens_and_headers() -> None:
    cases = {
        f"key {KEY} end": "key sk-ant-<redacted> end",
        "Authorization: Bearer abc.def.ghi123456": "Authorization: Bearer <redacted>",
        '{"x-api-key": "sk-zzz"}': '{"x-api-key": "<redacted>"}',
        "ANTHROPIC_API_KEY=foo123 ls": "ANTHROPIC_API_KEY=<redacted> ls",
        "nothing secret here": "nothing secret here",
    }
    for raw, want in cases.items():
        assert redact_text(raw) == want
    env = redact_env(
        {"ANTHROPIC_API_KEY": KEY, "CLAUDE_CODE_OAUTH_TOKEN": "t", "HOME": "/h", "ANTHROPIC_BASE_URL": "http://x"}
    )
    assert env == {
        "ANTHROPIC_API_KEY": REDACTED,
        "CLAUDE_CODE_OAUTH_TOKEN": REDACTED,
        "HOME": "/h",
        "ANTHROPIC_BASE_URL": "http://x",
    }


def test_create_job_is_idempotent_and_never_stores_secrets(jobs: JobStore, tmp_path: Path) -> None:
    j = jobs.create_job(
        "p", cwd=tmp_path, env={"ANTHROPIC_API_KEY": KEY, "FOO": "bar"}, idem_key="line-1", args=["--model", "x"]
    )
    again = jobs.create_job("p", cwd=tmp_path, idem_key="line-1")
    assert again.id == j.id and j.state is JobState.PENDING and j.args == ("--model", "x")
    raw = jobs.store.query("SELECT env_json FROM jobs WHERE id=?", (j.id,))[0][0]
    assert KEY not in raw and json.loads(raw) == {"ANTHROPIC_API_KEY": REDACTED, "FOO": "bar"}
    assert jobs.env_for(j.id) == {"ANTHROPIC_API_KEY": KEY, "FOO": "bar"}  # this process still knows it
    # a restarted supervisor takes the secret from its own environment, or drops it
    fresh = JobStore(jobs.store)
    assert fresh.env_for(j.id, environ={"ANTHROPIC_API_KEY": "from-env"})["ANTHROPIC_API_KEY"] == "from-env"
    assert "ANTHROPIC_API_KEY" not in fresh.env_for(j.id, environ={})
    with pytest.raises(JobStoreError, match="non-empty prompt"):
        jobs.create_job("  ", cwd=tmp_path)
    with pytest.raises(JobStoreError, match="not one string"):
        jobs.create_job("p", cwd=tmp_path, args="--model x")  # type: ignore[arg-type]


def test_states_compare_and_set_and_terminal_is_final(jobs: JobStore, tmp_path: Path) -> None:
    j = jobs.create_job("p", cwd=tmp_path)
    assert jobs.set_state(j.id, JobState.RUNNING, claim=True, expect={JobState.PENDING})
    assert not jobs.set_state(j.id, JobState.RUNNING, expect={JobState.PENDING})
    rec = jobs.require(j.id)
    assert rec.state is JobState.RUNNING and rec.owner == jobs.owner and rec.started_at is not None
    err = ErrorClass(
        type=ErrorType.AUTH, severity=Severity.CRITICAL, category="auth", description="401", retryable=False
    )
    jobs.finish_job(
        j.id, JobState.FAILED, result={"type": "result", "result": f"bad key {KEY}"}, error=err, reason=f"auth {KEY}"
    )
    rec = jobs.require(j.id)
    assert rec.state is JobState.FAILED and rec.error_class == err and rec.finished_at is not None
    assert KEY not in (rec.result_text or "") and KEY not in (rec.reason or "")
    with pytest.raises(JobStoreError, match="cannot become running"):
        jobs.set_state(j.id, JobState.RUNNING)
    with pytest.raises(JobStoreError, match="no job"):
        jobs.set_state("nope", JobState.RUNNING)


def test_cli_events_are_stored_redacted(jobs: JobStore, tmp_path: Path) -> None:
    """A Bash tool running ``env`` prints keys into the stream: they must not reach events.data_json."""
    j = jobs.create_job("p", cwd=tmp_path)
    a1 = jobs.begin_attempt(j.id, kind="start")
    output = f"ANTHROPIC_API_KEY={KEY}\nHOME=/root\nAuthorization: Bearer abcdefghijklmnopqrstuv"
    tool_result = {
        "type": "user",
        "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": output}]},
        "session_id": "s-1",
    }
    plain = {"type": "assistant", "message": {"usage": {"input_tokens": 3, "output_tokens": 4}}, "session_id": "s-1"}
    garbage = f"not json: export ANTHROPIC_AUTH_TOKEN=\"{KEY}\""
    lines = [json.dumps(tool_result), json.dumps(plain, separators=(",", ":")), garbage]
    w = jobs.event_writer(j.id, a1)
    for i, line in enumerate(lines):
        w.add(parse_line(line.encode(), seq=i, ts=1.0, mono=1.0))
    w.flush()
    # the non-batched path too
    jobs.append_events(j.id, a1, [parse_line(lines[0].encode(), seq=9, ts=2.0, mono=2.0)])
    rows = [r[0] for r in jobs.store.query("SELECT data_json FROM events WHERE job_id=? ORDER BY id", (j.id,))]
    assert len(rows) == 4
    raw = "\n".join(rows)
    assert KEY not in raw and "A1b2" not in raw and "abcdefghijklmnopqrstuv" not in raw
    stored = json.loads(rows[0])
    assert stored["session_id"] == "s-1"  # the rest of the event is intact and still JSON
    assert stored["message"]["content"][0]["content"] == (
        "ANTHROPIC_API_KEY=<redacted>\nHOME=/root\nAuthorization: Bearer <redacted>"
    )
    assert rows[1] == lines[1]  # an event without secrets is stored exactly as printed
    assert rows[2] == 'not json: export ANTHROPIC_AUTH_TOKEN="<redacted>"'
    assert rows[3] == rows[0]


async def test_background_writer_keeps_a_failed_batch_and_writes_it_in_order(
    jobs: JobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    j = jobs.create_job("p", cwd=tmp_path)
    a1 = jobs.begin_attempt(j.id, kind="start")
    w = jobs.event_writer(j.id, a1, max_rows=10, background=True)
    real = jobs._insert_events
    calls: list[int] = []

    def flaky(rows: Any, **kw: Any) -> None:
        calls.append(len(rows))
        if len(calls) == 1:
            raise sqlite3.OperationalError("database is locked")
        real(rows, **kw)

    monkeypatch.setattr(jobs, "_insert_events", flaky)
    for i in range(25):
        w.add(parse_line(json.dumps({"type": "n", "i": i}).encode(), seq=i, ts=1.0, mono=1.0))
    assert w._task is not None
    await w._task  # the background write of the full batches failed (logged, not raised)
    assert calls and w.pending == 25 and jobs.event_count(j.id) == 0
    await w.drain()  # nothing was lost: the failed batch goes first, then the rest
    assert w.pending == 0
    assert [json.loads(e.data_json)["i"] for e in jobs.events(j.id)] == list(range(25))
    # the batch that failed carried the attempt's first event: its retry still marks it
    assert jobs.attempts(j.id)[0].first_event_at == 1.0


def test_an_attempt_that_never_ends_still_records_when_it_first_spoke(jobs: JobStore, tmp_path: Path) -> None:
    """A supervisor killed mid-attempt never finishes the attempt's row; the events it stored say it spoke.

    Without the mark the chaos scorer counted such a job as standing still from
    its previous fault until the restarted supervisor's attempt (seconds of
    progress counted as downtime).
    """
    j = jobs.create_job("p", cwd=tmp_path)
    a1 = jobs.begin_attempt(j.id, kind="start")
    w = jobs.event_writer(j.id, a1, max_rows=2)
    for i, ts in enumerate((5.0, 6.0, 7.0)):
        w.add(parse_line(json.dumps({"type": "n", "i": i}).encode(), seq=i, ts=ts, mono=ts))
    w.flush()
    jobs.runs.lose_open_attempts(j.id)  # what the next supervisor does with it
    a = jobs.attempts(j.id)[0]
    assert a.outcome == "lost" and a.first_event_at == 5.0  # the first event, not a later batch's
    # an attempt that ends normally keeps the same figure
    a2 = jobs.begin_attempt(j.id, kind="resume")
    w2 = jobs.event_writer(j.id, a2)
    w2.add(parse_line(b'{"type":"n"}', seq=0, ts=9.0, mono=9.0))
    w2.flush()
    assert jobs.attempts(j.id)[1].first_event_at == 9.0


def test_attempts_events_recoveries(jobs: JobStore, tmp_path: Path) -> None:
    j = jobs.create_job("p", cwd=tmp_path)
    a1 = jobs.begin_attempt(j.id, kind="start", session_id=str(uuid.uuid4()))
    w = jobs.event_writer(j.id, a1, max_rows=100)
    for i in range(250):
        w.add(parse_line(json.dumps({"type": "n", "i": i}).encode(), seq=i, ts=1.0, mono=1.0))
    assert w.pending == 50 and jobs.event_count(j.id) == 200  # two full batches written
    w.flush()
    assert jobs.event_count(j.id) == 250
    jobs.append_supervisor_event(j.id, "recovery", {"note": f"key {KEY}"}, attempt_id=a1)
    last = jobs.events(j.id)[-1]
    assert last.source == "supervisor" and KEY not in last.data_json
    rid = jobs.record_recovery(j.id, strategy="resume_session", attempt_id=a1, error_type="timeout")
    jobs.update_recovery(rid, started_at=2.0, restored_at=3.0, succeeded=True)
    rec = jobs.recoveries(j.id)[0]
    assert rec["succeeded"] == 1 and rec["restored_at"] == 3.0
    a2 = jobs.begin_attempt(j.id, kind="resume")
    assert [a.n for a in jobs.attempts(j.id)] == [1, 2] and a2 != a1
    assert jobs.require(j.id).attempts == 2 and jobs.require(j.id).recoveries == 1
    with pytest.raises(JobStoreError, match="attempt kind"):
        jobs.begin_attempt(j.id, kind="bogus")


def test_interrupt_orphaned_jobs_only_touches_dead_owners(jobs: JobStore, tmp_path: Path) -> None:
    mine = jobs.create_job("a", cwd=tmp_path)
    dead = jobs.create_job("b", cwd=tmp_path)
    live = jobs.create_job("c", cwd=tmp_path)
    jobs.set_state(mine.id, JobState.RUNNING, claim=True)
    for j, owner in ((dead, "host:1:1"), (live, "other:2:2")):
        jobs.set_state(j.id, JobState.RECOVERING)
        jobs.store.execute("UPDATE jobs SET owner=? WHERE id=?", (owner, j.id))
    jobs.begin_attempt(dead.id, kind="start")
    moved = jobs.interrupt_orphaned_jobs(is_alive=lambda o: o == "other:2:2")
    assert moved == [dead.id]
    assert jobs.require(dead.id).state is JobState.INTERRUPTED
    assert jobs.attempts(dead.id)[0].outcome == "lost"
    assert jobs.require(live.id).state is JobState.RECOVERING and jobs.require(mine.id).state is JobState.RUNNING


def test_owner_identity_survives_pid_reuse_check() -> None:
    me = owner_id()
    assert owner_alive(me)
    host, pid, start = me.rsplit(":", 2)
    assert not owner_alive(f"{host}:{pid}:{int(start) - 1000}")  # same pid, different process
    assert not owner_alive(None) and not owner_alive("garbage")
    assert owner_alive("some-other-host:1:1")  # cannot check: never steal


# -- sessions --------------------------------------------------------------------------------


def _outcome(
    mode: str, *, result: dict[str, object] | None = None, stderr: str = "", sid: str | None = None
) -> AttemptOutcome:
    return AttemptOutcome(
        mode=mode,  # type: ignore[arg-type]
        argv=(),
        cwd="/",
        pid=1,
        start_time=1.0,
        requested_session_id=sid,
        session_id=sid,
        exit_code=1,
        signal=None,
        killed_by=None,
        kill_reason=None,
        started_at=0.0,
        ended_at=1.0,
        first_event_at=None,
        result_at=None,
        event_count=0,
        unparseable_count=0,
        type_counts={},
        events=(),
        init=None,
        result=result,
        stderr_tail=stderr,
        stderr_bytes=len(stderr),
    )


def test_project_dir_and_config_dir() -> None:
    assert project_dir_name("/tmp/my_proj.x y/a-b") == "-tmp-my-proj-x-y-a-b"
    assert config_dir({"HOME": "/h"}) == Path("/h/.claude")
    assert config_dir({"HOME": "/h", "CLAUDE_CONFIG_DIR": "/c"}) == Path("/c")


def test_transcript_lookup_resolves_symlinked_cwd(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    env = {"HOME": str(tmp_path / "home")}
    sm = SessionManager()
    sid = str(uuid.uuid4())
    p = sm.transcript_path(sid, link, env=env)
    assert p.parent.name == project_dir_name(str(real))
    assert not sm.has_transcript(sid, link, env=env)
    p.parent.mkdir(parents=True)
    p.write_text('{"type":"user"}\n')
    assert sm.find_transcript(sid, link, env=env) == p


def test_plan_start_over_resume_and_one_fallback(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    sm = SessionManager()
    sid = str(uuid.uuid4())
    first = sm.plan(prompt="orig", cwd=tmp_path, env=env, session_id=sid, reason="killed")
    assert first is not None and first.mode == "start" and first.prompt == "orig" and first.session_id != sid
    t = sm.transcript_path(sid, tmp_path, env=env)
    t.parent.mkdir(parents=True)
    t.write_text("{}\n")
    nxt = sm.plan(prompt="orig", cwd=tmp_path, env=env, session_id=sid, reason="stalled")
    assert nxt is not None and nxt.mode == "resume" and nxt.session_id == sid and "stalled" in nxt.prompt
    not_found = _outcome(
        "resume",
        result={"subtype": "error_during_execution", "errors": [f"No conversation found with session ID: {sid}"]},
        sid=sid,
    )
    fb = sm.plan(prompt="orig", cwd=tmp_path, env=env, session_id=sid, last=not_found)
    assert fb is not None and fb.mode == "start" and fb.fallback and fb.prompt == "orig"
    assert sm.plan(prompt="orig", cwd=tmp_path, env=env, session_id=sid, last=not_found, fallback_used=True) is None
    orphan = _outcome(
        "resume", result={"result": "API Error: 400 `tool_use` ids were found without `tool_result` blocks"}, sid=sid
    )
    fk = sm.plan(prompt="orig", cwd=tmp_path, env=env, session_id=sid, last=orphan)
    assert fk is not None and fk.mode == "fork" and fk.fallback
    in_use = _outcome("start", stderr=f"Error: Session ID {sid} is already in use.\n", sid=sid)
    assert SessionManager.session_failure(in_use) == "in_use"
    spec = sm.spec(nxt, cwd=tmp_path, env=env, claude_args=["--allowedTools", "Bash"])
    assert spec.mode == "resume" and spec.session_id == sid and spec.argv("claude")[0][5:7] == ["--resume", sid]


def test_reopen_is_the_one_explicit_way_out_of_failed_or_cancelled(jobs: JobStore, tmp_path: Path) -> None:
    err = ErrorClass(type=ErrorType.AUTH, severity=Severity.CRITICAL, category="auth", description="401",
                     retryable=False)
    f = jobs.create_job("p", cwd=tmp_path)
    jobs.set_state(f.id, JobState.RUNNING, claim=True)
    jobs.finish_job(f.id, JobState.FAILED, error=err, reason="gave up")
    assert jobs.reopen(f.id, reason=f"again, key {KEY}")
    rec = jobs.require(f.id)
    assert rec.state is JobState.INTERRUPTED and rec.finished_at is None and rec.error is None
    assert rec.reason is not None and rec.reason.startswith("again") and KEY not in rec.reason
    assert jobs.set_state(f.id, JobState.RUNNING, expect={JobState.INTERRUPTED})  # runnable again
    assert not jobs.reopen(f.id)  # not final: nothing to re-open
    c = jobs.create_job("p", cwd=tmp_path)
    jobs.set_state(c.id, JobState.CANCELLED)
    assert jobs.reopen(c.id) and jobs.require(c.id).state is JobState.INTERRUPTED
    s = jobs.create_job("p", cwd=tmp_path)
    jobs.finish_job(s.id, JobState.SUCCEEDED, result={"type": "result", "result": "ok"})
    with pytest.raises(JobStoreError, match="succeeded"):
        jobs.reopen(s.id)
    assert jobs.require(s.id).state is JobState.SUCCEEDED
    with pytest.raises(JobStoreError, match="no job"):
        jobs.reopen("nope")


def test_finish_job_with_expect_does_not_overwrite_a_cancel_from_elsewhere(jobs: JobStore, tmp_path: Path) -> None:
    j = jobs.create_job("p", cwd=tmp_path)
    jobs.set_state(j.id, JobState.RUNNING, claim=True)
    JobStore(jobs.store, clock=jobs.clock, owner="other:1:1").set_state(j.id, JobState.CANCELLED, reason="by hand")
    assert not jobs.finish_job(j.id, JobState.SUCCEEDED, result={"type": "result", "result": "late"},
                               expect={JobState.RUNNING})
    rec = jobs.require(j.id)
    assert rec.state is JobState.CANCELLED and rec.result_text is None and rec.reason == "by hand"
