"""Hints meant to be copied are never wrapped; the demo says in words what happened to its recoveries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from resurgo.cli._demo import _figures, describe_recoveries, recovery_outcomes
from resurgo.store import Store
from resurgo.store.schema import ensure_schema
from resurgo.supervise import JobState

SRC = Path(__file__).resolve().parents[2] / "src"


def test_a_long_path_in_a_hint_stays_on_one_line_when_stdout_is_a_pipe(tmp_path: Path) -> None:
    long_dir = tmp_path / ("a-rather-long-folder-name-" * 4) / "store.db"
    code = (
        "from resurgo.cli._common import console\n"
        f"console().print('Open the dashboard on this run: [bold]resurgo dashboard --store {long_dir}[/]')\n"
    )
    # COLUMNS=80 as in a pipe, CI log or `| tee`
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(SRC), "COLUMNS": "80", "PATH": "/usr/bin:/bin"}).stdout
    assert len(str(long_dir)) > 80
    assert f"resurgo dashboard --store {long_dir}\n" in out
    assert out.count("\n") == 1


def test_the_old_console_setting_would_have_split_the_path(tmp_path: Path) -> None:
    """The gate failing: with soft_wrap off (as before) the same hint breaks inside the path."""
    from io import StringIO

    from rich.console import Console

    long_dir = tmp_path / ("a-rather-long-folder-name-" * 4) / "store.db"
    buf = StringIO()
    Console(file=buf, width=80, soft_wrap=False).print(f"Open it: resurgo dashboard --store {long_dir}")
    assert f"--store {long_dir}" not in buf.getvalue()


def _store(tmp_path: Path, recoveries: list[tuple[str, int | None]]) -> Path:
    path = tmp_path / "demo.db"
    st = Store(str(path))
    ensure_schema(st)
    for jid in {j for j, _ in recoveries}:
        st.execute("INSERT INTO jobs(id, prompt, cwd, state, created_at, updated_at) VALUES(?,?,?,?,?,?)",
                   (jid, "p", "/tmp", "succeeded", 100.0, 200.0))
    for i, (jid, ok) in enumerate(recoveries):
        st.execute("INSERT INTO recoveries(job_id, strategy, detected_at, restored_at, succeeded)"
                   " VALUES(?,?,?,?,?)", (jid, "resume_session", 110.0 + i, 111.0 + i if ok else None, ok))
    st.close()
    return path


def test_a_recovery_killed_again_and_retried_is_not_a_failure(tmp_path: Path) -> None:
    path = _store(tmp_path, [("crash", 0), ("crash", 1), ("other", 1), ("gave-up", 0)])
    with Store(str(path)) as st:
        assert recovery_outcomes(st, start=0) == (1, 1)
    assert describe_recoveries(2, 1, 1) == (
        "2 restored; 1 recovery was interrupted by a second fault and retried; 1 failed"
    )
    assert describe_recoveries(3, 2, 0) == "3 restored; 2 recoveries were interrupted by a second fault and retried"
    assert describe_recoveries(1, 0, 0) == "1 restored"


def test_demo_figures_say_it_in_words(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _store(tmp_path, [("crash", 0), ("crash", 1)])

    class R:
        name, job_id, state, attempts, recoveries, duration_s = "crash-me", "crash", JobState.SUCCEEDED, 3, 2, 5.0
        result_text, reason, ok = "report built", None, True

    _figures(path, [R()], started=0.0)
    out = capsys.readouterr().out
    assert "1 recovery was interrupted by a second fault and retried" in out
    assert "failed" not in out.split("recoveries")[1].splitlines()[0]
