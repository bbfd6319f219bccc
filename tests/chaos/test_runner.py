"""Fast checks of the chaos runner's own logic: configuration, fault attribution, the command's options.

The attribution decides the ground truth of the classification accuracy, so
its precedence rules (exact evidence about *this* job first, latest first; a
proxy window only as a fallback) are pinned here on hand-made records.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from resurgo.chaos import FaultWindow, KillRecord
from resurgo.chaos._runner import ChaosConfig, _Attempt, attribute, job_prompt
from resurgo.cli._chaos import chaos_cmd


def _att(**kw: object) -> _Attempt:
    base: dict[str, object] = {
        "id": 1, "job_id": "j1", "n": 1, "session_id": "s1", "pid": 100, "started_at": 100.0,
        "first_event_at": 100.5, "ended_at": 110.0, "signal": None, "killed_by": None, "outcome": "failed",
        "error": {"type": "resource"},
    }
    base.update(kw)
    return _Attempt(**base)  # type: ignore[arg-type]


def _kill(pid: int, t: float, *, root: int, depth: int) -> KillRecord:
    return KillRecord(pid=pid, name="x", time=t, signal="SIGKILL", depth=depth, root=root, ok=True)


def test_config_rejects_bad_values_with_the_field_name() -> None:
    with pytest.raises(ValueError, match="fault_rate"):
        ChaosConfig(fault_rate=1.5)
    with pytest.raises(ValueError, match="concurrency"):
        ChaosConfig(concurrency=0)
    with pytest.raises(ValueError, match="nonretryable_jobs"):
        ChaosConfig(jobs=2, nonretryable_jobs=3)
    c = ChaosConfig(jobs=12, fault_rate=0.2, api_timeout_ms=6000)
    assert c.n_nonretryable == 1
    assert c.fp_grace == 8.0  # a hang shows only when the client's timeout fires
    assert ChaosConfig(jobs=12, fault_rate=0.0).n_nonretryable == 0


def test_job_prompt_scripts_one_bash_call_per_step() -> None:
    p = job_prompt(3, 2, 1.0)
    assert p.count("[[bash:") == 2 and "sleep 1; echo job 3 step 2" in p and "[[text: job 3 done]]" in p


def test_a_faulted_request_of_the_jobs_session_is_the_truth() -> None:
    a = _att()
    got = attribute(a, sessions={"s1"}, api_faults=[(109.0, "s1", "529"), (109.5, "other", "500")], kills=[],
                    supervisor_kills=[], windows=[])
    assert got is not None and (got.cause, got.expected_type) == ("api:529", "resource")


def test_the_latest_exact_cause_wins_and_other_jobs_faults_are_ignored() -> None:
    a = _att()
    got = attribute(a, sessions={"s1"}, api_faults=[(101.0, "s1", "cut")],
                    kills=[_kill(100, 109.9, root=100, depth=0), _kill(555, 109.95, root=555, depth=0)],
                    supervisor_kills=[], windows=[])
    assert got is not None and (got.cause, got.expected_type) == ("kill:cli", "process")


def test_a_killed_tool_child_has_no_type_to_compare() -> None:
    got = attribute(_att(), sessions={"s1"}, api_faults=[], kills=[_kill(101, 105.0, root=100, depth=1)],
                    supervisor_kills=[], windows=[])
    assert got is not None and got.cause == "kill:tool" and got.expected_type is None


def test_a_watchdog_kill_after_an_api_hang_is_the_hangs_timeout() -> None:
    a = _att(killed_by="stall_watchdog", ended_at=130.0)
    got = attribute(a, sessions={"s1"}, api_faults=[(105.0, "s1", "hang")], kills=[], supervisor_kills=[],
                    windows=[])
    assert got is not None and (got.cause, got.expected_type) == ("api:hang", "timeout")


def test_a_proxy_window_explains_only_when_nothing_exact_does() -> None:
    w = [FaultWindow(1, 104.0, 106.0, "net:blackhole", "proxy"), FaultWindow(2, 50.0, 60.0, "net:reset", "proxy")]
    got = attribute(_att(), sessions={"s1"}, api_faults=[], kills=[], supervisor_kills=[], windows=w)
    assert got is not None and (got.cause, got.expected_type) == ("net:blackhole", "timeout")
    got = attribute(_att(), sessions={"s1"}, api_faults=[(109.0, "s1", "500")], kills=[], supervisor_kills=[],
                    windows=w)
    assert got is not None and got.cause == "api:500"


def test_nothing_injected_means_unexplained() -> None:
    assert attribute(_att(), sessions={"s1"}, api_faults=[(50.0, "s1", "529")], kills=[], supervisor_kills=[],
                     windows=[]) is None


def test_the_command_rejects_bad_options_before_running_anything() -> None:
    r = CliRunner().invoke(chaos_cmd, ["--fault-rate", "2"])
    assert r.exit_code == 2 and "fault-rate" in r.output
    r = CliRunner().invoke(chaos_cmd, ["--concurrency", "0"])
    assert r.exit_code == 2


def test_a_cli_that_died_of_our_sigkill_was_killed_whatever_the_stand_in_logged_after() -> None:
    a = _att(signal=9, error={"type": "process"})
    got = attribute(a, sessions={"s1"}, api_faults=[(109.99, "s1", "reset")],
                    kills=[_kill(100, 109.9, root=100, depth=0)], supervisor_kills=[], windows=[])
    assert got is not None and (got.cause, got.expected_type) == ("kill:cli", "process")


def test_a_cut_of_live_connections_during_a_hang_is_what_ended_it() -> None:
    w = [FaultWindow(1, 107.0, 107.0, "net:cut_all", "proxy"), FaultWindow(2, 111.0, 111.0, "net:cut_all", "proxy")]
    got = attribute(_att(), sessions={"s1"}, api_faults=[(105.0, "s1", "hang")], kills=[], supervisor_kills=[],
                    windows=w)
    assert got is not None and (got.cause, got.expected_type) == ("net:cut_all", "network")
    # a cut after the attempt had already ended explains nothing
    got = attribute(_att(), sessions={"s1"}, api_faults=[(109.0, "s1", "529")], kills=[], supervisor_kills=[],
                    windows=w[1:])
    assert got is not None and got.cause == "api:529"


def test_a_cut_that_makes_the_cli_redial_into_a_blackhole_is_a_timeout() -> None:
    """The CLI retries a broken stream; into a blackhole that retry times out (seen in CI runs)."""
    cut = FaultWindow(1, 107.0, 107.0, "net:cut_all", "proxy")
    blackhole = FaultWindow(2, 106.99, 109.5, "net:blackhole", "proxy")
    reset = FaultWindow(3, 106.99, 109.5, "net:reset", "proxy")
    for armed, expected in ((blackhole, "timeout"), (reset, "network")):
        got = attribute(_att(), sessions={"s1"}, api_faults=[], kills=[], supervisor_kills=[], windows=[armed, cut])
        assert got is not None and (got.cause, got.expected_type) == ("net:cut_all", expected)


def test_an_attempt_lost_with_its_supervisor_is_blamed_on_the_supervisor_kill() -> None:
    a = _att(outcome="lost", error=None, ended_at=115.0)
    got = attribute(a, sessions={"s1"}, api_faults=[(112.0, "s1", "529")], kills=[], supervisor_kills=[108.0],
                    windows=[])
    assert got is not None and (got.cause, got.expected_type) == ("kill:supervisor", None)
