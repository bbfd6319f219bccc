"""Process mechanics of one attempt, with plain child processes (no CLI needed)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from resurgo._procs import become_subreaper, is_subreaper, session_members
from resurgo.clock import FakeClock
from resurgo.store import Store
from resurgo.supervise._jobstore import JobState, JobStore
from resurgo.supervise._process import (
    ARGV_PROMPT_LIMIT,
    AttemptSpec,
    ClaudeNotFoundError,
    LineSplitter,
    Liveness,
    LivenessMonitor,
    ProcessManager,
    StreamEvent,
    TruncatedLine,
    find_claude,
    parse_line,
)

from ._helpers import alive, exists, marked, py, sh

SID = "0b1559ab-ccf9-4e39-8c07-3c187b66321a"


@pytest.fixture
def pm(tmp_path: Path) -> ProcessManager:
    return ProcessManager(claude="/bin/true", tmp_root=tmp_path / "tmp")


# -- pure parts ------------------------------------------------------------------------------


def test_line_splitter_handles_chunk_boundaries_crlf_and_missing_final_newline() -> None:
    s = LineSplitter()
    out = s.feed(b'{"a":1}\r\n{"b"')
    out += s.feed(b":2}\n\n   \n")
    out += s.feed(b"tail-without-newline")
    assert out == [b'{"a":1}', b'{"b":2}']
    assert s.close() == b"tail-without-newline"
    assert s.pending == 0


def test_line_splitter_keeps_a_line_of_many_megabytes_whole() -> None:
    s = LineSplitter()
    big = b"x" * (3 << 20)
    lines: list[bytes] = []
    for i in range(0, len(big), 65536):
        lines += s.feed(big[i : i + 65536])
    assert lines == []
    lines += s.feed(b"\nnext\n")
    assert lines == [big, b"next"]


def test_parse_line_keeps_garbage_and_non_objects_as_unparseable() -> None:
    good = parse_line(b'{"type":"system","subtype":"init","session_id":"s1"}', seq=0, ts=1.0, mono=1.0)
    assert (good.type, good.subtype, good.session_id, good.unparseable) == ("system", "init", "s1", False)
    for raw in (b"not json at all", b"[1,2,3]", b'"a string"', b"\xff\xfe{broken", b"{" * 100_000):
        e = parse_line(raw, seq=1, ts=1.0, mono=1.0)
        assert e.unparseable and e.is_notable
        assert e.as_evidence()["type"] == "unparseable"
        assert len(e.as_evidence()["raw"]) <= 2000


def test_liveness_monitor_stall_counts_api_retry_as_progress() -> None:
    clock = FakeClock()
    m = LivenessMonitor(Liveness(stall_timeout=10, exit_after_result=5), clock)
    clock.advance(9)
    assert m.verdict() is None
    m.progress()  # e.g. a system/api_retry event
    clock.advance(9)
    assert m.verdict() is None
    clock.advance(1.5)
    v = m.verdict()
    assert v is not None and v[0] == "stall_watchdog"


def test_liveness_monitor_deadline_and_exit_after_result() -> None:
    clock = FakeClock()
    m = LivenessMonitor(Liveness(stall_timeout=100, deadline=30, exit_after_result=5), clock)
    clock.advance(2)
    m.result_seen()
    clock.advance(4.9)
    assert m.verdict() is None
    clock.advance(0.2)
    v = m.verdict()
    assert v is not None and v[0] == "deadline" and "after its result" in v[1]
    m2 = LivenessMonitor(Liveness(stall_timeout=None, deadline=30), clock)
    clock.advance(29)
    assert m2.verdict() is None
    clock.advance(1.01)
    v2 = m2.verdict()
    assert v2 is not None and v2[0] == "deadline"


def test_liveness_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="stall_timeout"):
        Liveness(stall_timeout=0)
    with pytest.raises(ValueError, match="grace"):
        Liveness(grace=-1)


def test_spec_argv_for_start_resume_fork_puts_the_prompt_last_after_double_dash() -> None:
    s = AttemptSpec(prompt="-p looks like an option", cwd="/", claude_args=["--allowedTools", "Bash"]).with_session()
    argv, stdin = s.argv("claude")
    assert stdin is None
    assert argv[:5] == ["claude", "-p", "--output-format", "stream-json", "--verbose"]
    assert argv[5] == "--session-id" and argv[6] == s.session_id
    assert argv[-2:] == ["--", "-p looks like an option"]
    r, _ = AttemptSpec(prompt="go on", cwd="/", mode="resume", session_id=SID).argv("claude")
    assert r[5:7] == ["--resume", SID] and "--fork-session" not in r
    f = AttemptSpec(prompt="go on", cwd="/", mode="fork", session_id=SID).with_session()
    fa, _ = f.argv("claude")
    assert fa[5:8] == ["--resume", SID, "--fork-session"]
    assert fa[8:10] == ["--session-id", f.fork_session_id] and f.expected_session_id == f.fork_session_id


def test_spec_long_prompt_goes_through_stdin() -> None:
    s = AttemptSpec(prompt="x" * (ARGV_PROMPT_LIMIT + 1), cwd="/").with_session()
    argv, stdin = s.argv("claude")
    assert stdin == b"x" * (ARGV_PROMPT_LIMIT + 1)
    assert "--" not in argv


def test_spec_validation_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="needs the session_id"):
        AttemptSpec(prompt="x", cwd="/", mode="resume")
    with pytest.raises(ValueError, match="not a UUID"):
        AttemptSpec(prompt="x", cwd="/", session_id="nope")
    with pytest.raises(TypeError, match="not one string"):
        AttemptSpec(prompt="x", cwd="/", claude_args="--model x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="never a shell string"):
        AttemptSpec(prompt="x", cwd="/", command="sleep 1")  # type: ignore[arg-type]


def test_find_claude_order_and_errors(tmp_path: Path) -> None:
    exe = tmp_path / "claude"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    other = tmp_path / "other"
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    env = {"PATH": str(tmp_path)}
    assert find_claude(env=env) == str(exe)
    assert find_claude(env={**env, "RESURGO_CLAUDE": str(other)}) == str(other)
    assert find_claude(str(exe), env={**env, "RESURGO_CLAUDE": str(other)}) == str(exe)
    with pytest.raises(ClaudeNotFoundError, match="explicit path"):
        find_claude(str(tmp_path / "missing"), env=env)
    with pytest.raises(ClaudeNotFoundError, match="RESURGO_CLAUDE"):
        find_claude(env={"RESURGO_CLAUDE": str(tmp_path / "nope"), "PATH": ""})
    with pytest.raises(ClaudeNotFoundError, match="tried"):
        find_claude(env={"PATH": str(tmp_path / "empty")})


def test_subreaper_is_set_on_linux(pm: ProcessManager) -> None:
    assert become_subreaper() is True
    assert is_subreaper() is True and pm.subreaper is True


# -- real child processes --------------------------------------------------------------------

EVENTS_SCRIPT = r"""
import json, sys
w = sys.stdout.write
w(json.dumps({"type": "system", "subtype": "init", "session_id": "s-init"}) + "\n")
w("this is not json\n")
w(json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": "y" * (5 << 20)}]}}) + "\n")
sys.stderr.write("e" * (1 << 20))   # a full stderr pipe must not block stdout
w(json.dumps({"type": "system", "subtype": "api_retry", "attempt": 1}) + "\n")
res = {"type": "result", "subtype": "success", "is_error": False, "result": "ok", "session_id": "s-result"}
w(json.dumps(res) + "\n")
w("trailing garbage without newline")
"""


async def test_big_event_garbage_and_big_stderr_are_read_without_deadlock(pm: ProcessManager, tmp_path: Path) -> None:
    seen: list[StreamEvent] = []
    out = await pm.run(py(EVENTS_SCRIPT, tmp_path), on_event=seen.append)
    assert out.exit_code == 0 and out.signal is None and out.killed_by is None
    assert out.event_count == 6 and out.unparseable_count == 2
    big = [e for e in seen if e.type == "assistant"]
    assert len(big[0].data["message"]["content"][0]["text"]) == 5 << 20  # type: ignore[index]
    assert out.session_id == "s-result"  # the newest id wins
    assert out.stderr_bytes == 1 << 20 and len(out.stderr_tail) == pm.stderr_tail_bytes
    assert out.succeeded and out.result is not None and out.result["result"] == "ok"
    assert out.type_counts["unparseable"] == 2 and out.type_counts["system/api_retry"] == 1
    obs = out.to_observation()
    assert obs.exit_code == 0 and obs.killed_by is None and obs.message == "ok"
    assert [e["type"] for e in obs.events][-1] == "unparseable"
    assert obs.result_event is not None


async def test_stall_watchdog_kills_the_whole_group_and_reaps_orphans(pm: ProcessManager, tmp_path: Path) -> None:
    spec = sh(
        'sleep 100 & sleep 100 & echo \'{"type":"system","subtype":"init"}\'; wait',
        tmp_path,
        liveness=Liveness(stall_timeout=0.5, tick=0.05, grace=1.0),
    )
    a = await pm.start(spec)
    await asyncio.sleep(0.3)
    members = [m.pid for m in session_members({a.pid}) if m.pid != a.pid]  # type: ignore[arg-type]
    assert len(members) == 2  # the two sleeps
    out = await a.wait()
    assert out.killed_by == "stall_watchdog" and "no event" in (out.kill_reason or "")
    assert out.signal == signal.SIGTERM and out.exit_code is None
    assert out.to_observation().killed_by == "stall_watchdog"
    assert not any(exists(p) for p in members), "a sleep survived or was left a zombie"
    assert session_members({out.pid}) == []  # type: ignore[arg-type]
    assert out.cleanup.left == ()


async def test_a_grandchild_that_escaped_with_setsid_is_ended_too(pm: ProcessManager, tmp_path: Path) -> None:
    # the CLI starts its Bash tool exactly like this: in a session of its own
    spec = sh("setsid sleep 100 & sleep 0.3; exit 3", tmp_path)
    a = await pm.start(spec)
    await asyncio.sleep(0.15)
    escaped = [p for p in marked(a.token) if p != a.pid]
    assert escaped, "the setsid'ed sleep should carry the attempt's marker"
    out = await a.wait()
    assert out.exit_code == 3
    assert not any(alive(p) for p in escaped)
    assert marked(a.token) == []


async def test_normal_exit_leaving_a_background_child_leaves_nothing(pm: ProcessManager, tmp_path: Path) -> None:
    out = await pm.run(sh("sleep 100 & echo started; exit 0", tmp_path))
    assert out.exit_code == 0  # asyncio still got the real status: nothing stole it
    assert out.cleanup.left == ()
    assert session_members({out.pid}) == []  # type: ignore[arg-type]


async def test_sigkill_from_outside_is_reported_as_signal_9(pm: ProcessManager, tmp_path: Path) -> None:
    a = await pm.start(sh("sleep 100 & sleep 100", tmp_path))
    await asyncio.sleep(0.2)
    assert a.pid is not None
    os.kill(a.pid, signal.SIGKILL)
    out = await a.wait()
    assert out.signal == 9 and out.killed_by is None and out.exit_code is None
    obs = out.to_observation()
    assert obs.signal == 9 and obs.killed_by is None
    assert marked(a.token) == [] and session_members({a.pid}) == []


async def test_wall_clock_deadline(pm: ProcessManager, tmp_path: Path) -> None:
    spec = py(
        "import time, json\nwhile True:\n    print(json.dumps({'type':'tick'}), flush=True); time.sleep(0.05)",
        tmp_path,
        liveness=Liveness(stall_timeout=5, deadline=0.6, tick=0.05, grace=1.0),
    )
    out = await pm.run(spec)
    assert out.killed_by == "deadline" and out.event_count > 3
    assert out.to_observation().killed_by == "deadline"


async def test_hang_after_result_is_ended_but_counts_as_success(pm: ProcessManager, tmp_path: Path) -> None:
    code = (
        "import json, time, signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print(json.dumps({'type':'result','subtype':'success','is_error':False,'result':'done'}), flush=True)\n"
        "time.sleep(100)"
    )
    out = await pm.run(py(code, tmp_path, liveness=Liveness(exit_after_result=0.3, tick=0.05, grace=0.3)))
    assert out.killed_by == "deadline" and out.hung_after_result
    assert out.signal == signal.SIGKILL  # it ignored SIGTERM, so the grace period ended in SIGKILL
    assert out.succeeded
    obs = out.to_observation()
    assert obs.killed_by is None and obs.signal is None  # resurgo's cleanup is not the run's failure


async def test_cancelling_the_awaiting_task_ends_the_group_as_user(pm: ProcessManager, tmp_path: Path) -> None:
    a = await pm.start(sh("sleep 100 & sleep 100", tmp_path))
    waiter = asyncio.create_task(a.wait())
    await asyncio.sleep(0.2)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    # the cancelled waiter stopped the attempt before it gave up: the outcome is there, no stop() needed
    assert a.outcome is not None and a.outcome.killed_by == "user" and a.done()
    out = await a.wait()
    assert out is a.outcome and out.killed_by == "user" and out.cancelled
    assert marked(a.token) == []


async def test_attempt_outcome_is_set_when_the_attempt_finishes(pm: ProcessManager, tmp_path: Path) -> None:
    a = await pm.start(sh("sleep 0.3; echo '{\"type\":\"tick\"}'", tmp_path))
    await asyncio.sleep(0.05)
    assert a.outcome is None and not a.done()  # still running
    out = await a.wait()
    assert a.outcome is out and out.exit_code == 0 and out.event_count == 1
    missing = await pm.start(AttemptSpec(prompt="x", cwd=tmp_path, command=[str(tmp_path / "no-such-claude")]))
    out = await missing.wait()
    assert missing.outcome is out and out.exit_code == 127


async def test_shutdown_ends_everything_with_killed_by_shutdown(pm: ProcessManager, tmp_path: Path) -> None:
    attempts = [await pm.start(sh("sleep 100", tmp_path)) for _ in range(3)]
    await asyncio.sleep(0.2)
    outs = await pm.shutdown()
    assert sorted(o.killed_by or "" for o in outs) == ["shutdown"] * 3
    assert all(marked(a.token) == [] for a in attempts)
    with pytest.raises(RuntimeError, match="shutting down"):
        await pm.start(sh("true", tmp_path))


async def test_missing_binary_is_exit_127_with_the_exception_type(pm: ProcessManager, tmp_path: Path) -> None:
    spec = AttemptSpec(prompt="x", cwd=tmp_path, command=[str(tmp_path / "no-such-claude")])
    out = await pm.run(spec)
    assert out.exit_code == 127 and out.pid is None
    obs = out.to_observation()
    assert obs.exception_type == "FileNotFoundError" and "no-such-claude" in (obs.message or "")


async def test_event_iterator_and_a_failing_callback(pm: ProcessManager, tmp_path: Path) -> None:
    code = (
        "import json,time\nfor i in range(5):\n    print(json.dumps({'type':'n','i':i}), flush=True); time.sleep(0.05)"
    )

    def boom(ev: StreamEvent) -> None:
        raise RuntimeError("callback bug")

    a = await pm.start(py(code, tmp_path), on_event=boom)
    got = [e.data["i"] async for e in a.events() if e.data is not None]  # type: ignore[index]
    out = await a.wait()
    assert out.exit_code == 0 and out.event_count == 5
    assert got == list(range(len(got))) and len(got) >= 3  # subscribed right after the start


async def test_private_tmpdir_is_used_and_removed(pm: ProcessManager, tmp_path: Path) -> None:
    code = (
        "import os, tempfile\nopen(os.path.join(tempfile.gettempdir(), 'leak.txt'), 'w').write('x')\n"
        "print(tempfile.gettempdir())"
    )
    a = await pm.start(py(code, tmp_path))
    out = await a.wait()
    used = out.events[0].raw
    assert used == a.tmpdir and used.startswith(str(pm.tmp_root))
    assert not os.path.exists(used)


@pytest.mark.parametrize("where", ["file", "memory"])
async def test_events_and_process_are_recorded_in_the_store(tmp_path: Path, where: str) -> None:
    # ":memory:" shares one connection between the loop and the writer thread, under a lock
    jobs = JobStore(Store(tmp_path / "r.db" if where == "file" else ":memory:"))
    pm = ProcessManager(claude="/bin/true", jobs=jobs, tmp_root=tmp_path / "tmp")
    job = jobs.create_job("do it", cwd=str(tmp_path))
    aid = jobs.begin_attempt(job.id, kind="start")
    code = "import json\nfor i in range(1200):\n    print(json.dumps({'type':'n','i':i}))\nprint('garbage')"
    out = await pm.run(py(code, tmp_path, job_id=job.id, attempt_id=aid))
    jobs.finish_attempt(aid, out)
    assert jobs.event_count(job.id) == 1201
    evs = jobs.events(job.id)
    assert json.loads(evs[0].data_json) == {"type": "n", "i": 0} and evs[-1].data() == "garbage"
    procs = jobs.store.query("SELECT * FROM processes")
    assert len(procs) == 1 and procs[0]["pid"] == out.pid and procs[0]["ended_at"] is not None
    assert jobs.open_processes() == []
    att = jobs.attempts(job.id)[0]
    assert att.exit_code == 0 and att.pid == out.pid and att.outcome == "failed"  # no result event: not success
    assert jobs.require(job.id).state is JobState.PENDING


async def test_a_process_gone_before_its_start_time_was_read_is_still_recorded_as_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CLI that exits at once can be gone before psutil reads its start time.

    Its record then carries the supervisor's own start stamp; the end must name that stamp,
    or the record stays open for ever (3,000 of them after 3,000 instant jobs in the soak
    bench, each re-examined by every cleanup sweep).
    """
    import resurgo.supervise._process as process_mod

    monkeypatch.setattr(process_mod, "create_time", lambda pid: None)
    jobs = JobStore(Store(tmp_path / "r.db"))
    pm = ProcessManager(claude="/bin/true", jobs=jobs, tmp_root=tmp_path / "tmp")
    job = jobs.create_job("do it", cwd=str(tmp_path))
    aid = jobs.begin_attempt(job.id, kind="start")
    out = await pm.run(py("print('{}')", tmp_path, job_id=job.id, attempt_id=aid))
    procs = jobs.store.query("SELECT * FROM processes")
    assert len(procs) == 1 and procs[0]["pid"] == out.pid
    assert procs[0]["ended_at"] is not None
    assert jobs.open_processes() == []


LOCKED_SCRIPT = r"""
import json, os, sys, time
print(json.dumps({"type": "system", "subtype": "init", "session_id": "s-1"}), flush=True)
go = sys.argv[1]
while not os.path.exists(go):
    time.sleep(0.01)
for i in range(1200):
    print(json.dumps({"type": "n", "i": i}))
"""


async def test_a_store_locked_by_another_process_does_not_freeze_the_loop(tmp_path: Path) -> None:
    """Event batches are written off the loop: while another connection holds the write lock,
    the loop keeps running; the attempt's outcome waits until every event is stored."""
    db = tmp_path / "r.db"
    jobs = JobStore(Store(db))
    pm = ProcessManager(claude="/bin/true", jobs=jobs, tmp_root=tmp_path / "tmp")
    job = jobs.create_job("do it", cwd=str(tmp_path))
    aid = jobs.begin_attempt(job.id, kind="start")
    go = tmp_path / "go"
    seen: list[StreamEvent] = []
    spec = AttemptSpec(
        prompt="-",
        cwd=tmp_path,
        command=[sys.executable, "-c", LOCKED_SCRIPT, str(go)],
        liveness=Liveness(stall_timeout=30, tick=0.05, grace=1.0),
        job_id=job.id,
        attempt_id=aid,
    )
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    t_tick = asyncio.create_task(ticker())
    other = sqlite3.connect(db, isolation_level=None, timeout=10)
    run = asyncio.create_task(pm.run(spec, on_event=seen.append))
    try:
        async with asyncio.timeout(30):
            while not seen:  # the process row is written and the attempt is streaming
                await asyncio.sleep(0.01)
            other.execute("BEGIN IMMEDIATE")  # "another process" holds the write lock from here
            locked_at = time.monotonic()
            go.touch()
            while len(seen) < 1201:
                await asyncio.sleep(0.01)
            await asyncio.sleep(max(0.0, locked_at + 2.0 - time.monotonic()))
            # every event was read, full batches were due, none could be written: the writer
            # waits on the lock in its thread, and the outcome waits for the writer
            assert jobs.event_count(job.id) == 0
            assert not run.done()
            released_at = time.monotonic()
            other.execute("COMMIT")
            out = await run
    finally:
        if other.in_transaction:
            other.execute("ROLLBACK")
        other.close()
        t_tick.cancel()
        if not run.done():
            run.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await run
        await pm.shutdown()
    assert out.exit_code == 0 and out.event_count == 1201
    # the outcome is returned only once every event is stored, in order
    evs = jobs.events(job.id)
    assert len(evs) == 1201
    assert [json.loads(e.data_json).get("i") for e in evs[1:]] == list(range(1200))
    during = [t for t in ticks if locked_at <= t <= released_at]
    gaps = [b - a for a, b in itertools.pairwise(during)]
    # the ticker kept running for the whole ~2 s the lock was held (before the fix the loop
    # froze in the write until the lock was released); generous bounds for a busy CI machine
    assert len(during) >= 20 and max(gaps) < 1.0


# -- over-long stdout lines (issue 15, item 11) ----------------------------------------------


def test_line_splitter_caps_a_line_and_skips_to_the_next_newline() -> None:
    s = LineSplitter(1000, preview=10)
    out = s.feed(b"ok1\n" + b"a" * 600)
    out += s.feed(b"b" * 600)  # over the cap with no newline: buffered no more
    assert s.pending == 0
    out += s.feed(b"c" * 5000)
    assert s.pending == 0
    out += s.feed(b"c" * 100 + b"\nok2\n" + b"d" * 1500 + b"\nok3\n")  # a whole over-long line in one chunk too
    assert out[0] == b"ok1" and out[2] == b"ok2" and out[4] == b"ok3"
    first, second = out[1], out[3]
    assert isinstance(first, TruncatedLine) and first == b"a" * 10 and first.size == 600 + 600 + 5000 + 100
    assert isinstance(second, TruncatedLine) and second == b"d" * 10 and second.size == 1500
    tail = s.feed(b"e" * 2000)
    assert tail == [] and s.pending == 0
    last = s.close()  # the stream ended inside an over-long line
    assert isinstance(last, TruncatedLine) and last.size == 2000
    assert LineSplitter(1000).feed(b"x" * 1000 + b"\n") == [b"x" * 1000]  # exactly the cap is kept
    # the property this guards, broken: without a cap the same stream is buffered whole
    uncapped = LineSplitter(None)
    for _ in range(7):
        uncapped.feed(b"a" * 1000)
    assert uncapped.pending == 7000


HUGE_LINE_SCRIPT = r"""
import json, sys
w = sys.stdout.write
w(json.dumps({"type": "system", "subtype": "init", "session_id": "s-big"}) + "\n")
sys.stdout.flush()
chunk = "z" * 65536
for _ in range(64):  # 4 MiB without a newline, 64 times the cap below
    w(chunk)
w("\n")
w(json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": "ok", "session_id": "s-big"}) + "\n")
"""


async def test_a_huge_unterminated_stdout_line_is_capped_recorded_and_not_fatal(tmp_path: Path) -> None:
    jobs = JobStore(Store(tmp_path / "r.db"))
    pm = ProcessManager(claude="/bin/true", jobs=jobs, tmp_root=tmp_path / "tmp", max_line_bytes=64 << 10)
    job = jobs.create_job("big", cwd=str(tmp_path))
    aid = jobs.begin_attempt(job.id, kind="start")
    seen: list[StreamEvent] = []
    out = await pm.run(py(HUGE_LINE_SCRIPT, tmp_path, job_id=job.id, attempt_id=aid), on_event=seen.append)
    jobs.finish_attempt(aid, out)
    # the run goes on: the result after the over-long line is read, the attempt succeeds
    assert out.exit_code == 0 and out.succeeded and out.result is not None and out.session_id == "s-big"
    assert out.event_count == 3 and out.unparseable_count == 1
    big = seen[1]
    assert big.unparseable and big.raw.startswith("zzz") and "4194304 bytes" in big.raw
    assert len(big.raw) < 4000  # only a preview is kept, not the line
    notes = [e for e in jobs.events(job.id) if e.source == "supervisor" and e.type == "stdout_line_too_long"]
    assert len(notes) == 1 and notes[0].data()["bytes"] == 4 << 20 and notes[0].data()["limit"] == 64 << 10
    stored = [e for e in jobs.events(job.id) if e.source == "cli"]
    assert len(stored) == 3 and max(len(e.data_json) for e in stored) < 4000


def test_the_line_cap_is_a_validated_supervisor_setting() -> None:
    from resurgo.supervise import SupervisorConfig
    from resurgo.supervise._config import ConfigError

    assert SupervisorConfig().max_line_bytes == 64 << 20
    assert SupervisorConfig(max_line_bytes=4096).max_line_bytes == 4096
    for bad in (0, 100, True, 1.5e6, "64M"):
        with pytest.raises(ConfigError, match="max_line_bytes"):
            SupervisorConfig(max_line_bytes=bad)  # type: ignore[arg-type]


# -- the start gate ----------------------------------------------------------------------------


async def test_the_start_gate_spawns_the_next_cli_only_after_the_first_one_spoke(tmp_path: Path) -> None:
    """CLIs started all at once on a small machine each wait for all the others; gated, the first ones speak sooner."""
    pm = ProcessManager(claude="/bin/true", tmp_root=tmp_path / "tmp", start_concurrency=1)
    first = tmp_path / "a-spoke"
    spawned = tmp_path / "b-spawned"
    a = await pm.start(py(
        "import time, pathlib\n"
        "time.sleep(0.3)\n"  # a slow start: without the gate B is spawned meanwhile
        f"pathlib.Path({str(first)!r}).write_text(repr(time.time()))\n"
        "print('{\"type\":\"system\",\"subtype\":\"init\"}', flush=True)\n"
        "time.sleep(0.2)\n", tmp_path))
    b = await pm.start(py(f"import time, pathlib; pathlib.Path({str(spawned)!r}).write_text(repr(time.time()))",
                          tmp_path))
    ra, rb = await asyncio.gather(a.wait(), b.wait())
    assert ra.exit_code == 0 and rb.exit_code == 0
    assert float(spawned.read_text()) >= float(first.read_text())


async def test_a_cli_that_never_speaks_or_exits_at_once_gives_its_start_slot_back(tmp_path: Path) -> None:
    pm = ProcessManager(claude="/bin/true", tmp_root=tmp_path / "tmp", start_concurrency=1, start_hold=0.2)
    silent = await pm.start(py("import time; time.sleep(30)", tmp_path))
    quick = await pm.start(py("pass", tmp_path))  # gets the slot after start_hold, while `silent` still runs
    assert (await asyncio.wait_for(quick.wait(), 20)).exit_code == 0
    assert silent.outcome is None  # still running: the slot came back without it
    await silent.stop("user")
    dead = await pm.start(py("raise SystemExit(3)", tmp_path))  # exits without a word: the slot comes back
    after = await pm.start(py("pass", tmp_path))
    assert (await dead.wait()).exit_code == 3
    assert (await asyncio.wait_for(after.wait(), 20)).exit_code == 0
    assert pm.start_gate is not None and not pm.start_gate.locked()


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2"])
def test_start_concurrency_must_be_a_positive_integer(bad: object) -> None:
    with pytest.raises(ValueError, match="start_concurrency"):
        ProcessManager(claude="/bin/true", start_concurrency=bad)  # type: ignore[arg-type]
