"""Fast checks of the chaos runner's own logic: configuration, per-attempt attribution, the command's options.

The attribution decides the ground truth of every gate, so its rules are
pinned here on hand-made records: a fault counts only for the attempt of the
job it hit (the injectors log the job's route), never for another job or
another attempt running at the same moment.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from click.testing import CliRunner

from resurgo.chaos import KillRecord
from resurgo.chaos._config import ChaosConfig, fault_bucket, fault_recoverable, job_prompt
from resurgo.chaos._score import AttemptRow, Attribution, FaultHit, attribute, hits_by_attempt, kills_of
from resurgo.cli._chaos import chaos_cmd


def _att(**kw: object) -> AttemptRow:
    base: dict[str, object] = {
        "id": 1, "job_id": "j1", "n": 1, "session_id": "s1", "pid": 100, "started_at": 100.0,
        "first_event_at": 100.5, "ended_at": 110.0, "signal": None, "killed_by": None, "outcome": "failed",
        "error": {"type": "resource"},
    }
    base.update(kw)
    return AttemptRow(**base)  # type: ignore[arg-type]


def _kill(pid: int, t: float, *, root: int, depth: int) -> KillRecord:
    return KillRecord(pid=pid, name="x", time=t, signal="SIGKILL", depth=depth, root=root, ok=True)


def _why(
    a: AttemptRow, hits: Sequence[FaultHit], kills: Sequence[KillRecord] = (), sup: Sequence[float] = ()
) -> Attribution | None:
    return attribute(a, hits=hits, kills=kills_of(a, kills), supervisor_kills=sup)


def test_config_rejects_bad_values_with_the_field_name() -> None:
    with pytest.raises(ValueError, match="fault_rate"):
        ChaosConfig(fault_rate=1.5)
    with pytest.raises(ValueError, match="concurrency"):
        ChaosConfig(concurrency=0)
    with pytest.raises(ValueError, match="nonretryable_jobs"):
        ChaosConfig(jobs=2, nonretryable_jobs=3)
    with pytest.raises(ValueError, match="supervisor"):
        ChaosConfig(supervisor=[("max_recoveries", 0)])  # type: ignore[arg-type]
    c = ChaosConfig(jobs=12, fault_rate=0.2, api_timeout_ms=6000)
    assert c.n_nonretryable == 1
    assert ChaosConfig(jobs=12, fault_rate=0.0).n_nonretryable == 0


def test_job_prompt_scripts_one_bash_call_per_step() -> None:
    p = job_prompt(3, 2, 1.0)
    assert p.count("[[bash:") == 2 and "sleep 1; echo job 3 step 2" in p and "[[text: job 3 done]]" in p


def test_recoverable_comes_from_the_fault_and_buckets_cover_every_kind() -> None:
    assert fault_recoverable("api:529") and fault_recoverable("kill:cli") and fault_recoverable("net:cut_all")
    assert not fault_recoverable("api:401")
    kinds = {c: fault_bucket(c) for c in ("kill:cli", "kill:supervisor", "api:hang", "api:429",
                                         "api:529", "api:500", "api:reset", "net:blackhole", "net:drop")}
    assert kinds == {"kill:cli": "kill", "kill:supervisor": "kill", "api:hang": "stall",
                     "api:429": "429", "api:529": "529", "api:500": "5xx", "api:reset": "network",
                     "net:blackhole": "stall", "net:drop": "network"}


def test_hits_go_to_the_attempt_of_their_job_running_then() -> None:
    a1 = _att(id=1, n=1, started_at=100.0, ended_at=110.0)
    a2 = _att(id=2, n=2, started_at=112.0, ended_at=None, outcome=None)
    other = _att(id=3, job_id="j2", started_at=100.0, ended_at=130.0)
    hits = [FaultHit(105.0, "j1", "api:529"), FaultHit(110.3, "j1", "api:reset"), FaultHit(113.0, "j1", "net:reset"),
            FaultHit(106.0, "j2", "api:500"), FaultHit(99.0, "j1", "api:500")]
    by = hits_by_attempt(hits, [a1, a2, other])
    # a request read just after the CLI died still belongs to the attempt that sent it, never to the next
    assert [h.cause for h in by[1]] == ["api:529", "api:reset"]
    assert [h.cause for h in by[2]] == ["net:reset"]
    assert [h.cause for h in by[3]] == ["api:500"]
    assert sum(len(v) for v in by.values()) == 4  # the hit before any attempt of j1 belongs to none


def test_a_fault_on_another_job_explains_nothing() -> None:
    a = _att()
    hits = hits_by_attempt([FaultHit(109.0, "j2", "api:529")], [a, _att(id=2, job_id="j2")])
    assert _why(a, hits.get(1, [])) is None


def test_the_latest_fault_on_the_attempt_wins() -> None:
    got = _why(_att(), [FaultHit(101.0, "j1", "api:cut"), FaultHit(109.0, "j1", "api:529")])
    assert got is not None and (got.cause, got.expected_type) == ("api:529", "resource")


def test_a_cli_that_died_of_our_sigkill_was_killed_whatever_the_stand_in_logged_after() -> None:
    a = _att(signal=9, error={"type": "process"})
    got = _why(a, [FaultHit(109.99, "j1", "api:reset")], kills=[_kill(100, 109.9, root=100, depth=0),
                                                               _kill(555, 109.95, root=555, depth=0)])
    assert got is not None and (got.cause, got.expected_type) == ("kill:cli", "process")


def test_a_killed_tool_child_has_no_type_to_compare() -> None:
    got = _why(_att(), [], kills=[_kill(101, 105.0, root=100, depth=1)])
    assert got is not None and got.cause == "kill:tool" and got.expected_type is None


def test_a_watchdog_kill_after_a_hang_is_the_hangs_timeout() -> None:
    a = _att(killed_by="stall_watchdog", ended_at=130.0)
    for cause in ("api:hang", "net:blackhole"):
        got = _why(a, [FaultHit(105.0, "j1", cause)])
        assert got is not None and (got.cause, got.expected_type) == (cause, "timeout")


def test_a_watchdog_kill_with_no_fault_on_the_attempt_is_unexplained_a_false_positive() -> None:
    """The property breaks when a watchdog (e.g. a too eager request watch) kills a healthy run: the
    attribution must then be None, so the run's false-positive gate counts it."""
    a = _att(killed_by="stall_watchdog", ended_at=130.0, error={"type": "timeout"})
    assert _why(a, []) is None
    assert _why(a, [FaultHit(105.0, "j1", "net:delay")]) is None  # a slow link explains no kill


def test_a_cut_of_the_attempts_connection_is_a_network_failure_unless_the_redial_was_blackholed() -> None:
    got = _why(_att(), [FaultHit(105.0, "j1", "api:hang"), FaultHit(107.0, "j1", "net:cut_all")])
    assert got is not None and (got.cause, got.expected_type) == ("net:cut_all", "network")
    got = _why(_att(), [FaultHit(107.0, "j1", "net:cut_all"), FaultHit(107.2, "j1", "net:blackhole")])
    assert got is not None and (got.cause, got.expected_type) == ("net:blackhole", "timeout")


def test_a_delay_explains_no_failure() -> None:
    assert _why(_att(), [FaultHit(105.0, "j1", "net:delay")]) is None


def test_an_attempt_lost_with_its_supervisor_is_blamed_on_the_supervisor_kill() -> None:
    a = _att(outcome="lost", error=None, ended_at=115.0)
    got = _why(a, [FaultHit(112.0, "j1", "api:529")], sup=[108.0])
    assert got is not None and (got.cause, got.expected_type) == ("kill:supervisor", None)


def test_nothing_injected_means_unexplained() -> None:
    assert _why(_att(), []) is None


def test_the_command_rejects_bad_options_before_running_anything() -> None:
    r = CliRunner().invoke(chaos_cmd, ["--fault-rate", "2"])
    assert r.exit_code == 2 and "fault-rate" in r.output
    r = CliRunner().invoke(chaos_cmd, ["--concurrency", "0"])
    assert r.exit_code == 2


def test_config_round_trips_to_json() -> None:
    d = ChaosConfig(supervisor={"breaker": {"min_calls": 5}}).to_dict()
    assert json.loads(json.dumps(d))["supervisor"] == {"breaker": {"min_calls": 5}}
