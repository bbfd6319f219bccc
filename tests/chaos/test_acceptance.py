"""The seed's availability targets, measured on a short chaos run with the REAL Claude Code CLI.

Every number comes from the run itself (the store, the stand-in's request log,
the killer's records, the breakers' events); nothing is assumed.  The run is
kept short (about a minute) so the default suite stays fast; ``bench/bench_chaos.py``
is the long version with resurgo's higher bar.

Before the targets are checked, each test makes sure the chaos really
happened (kills, API faults, incidents): a quiet run would pass vacuously.
The runner ends every process and port it started, even when it fails, and
the report's leak check is one of the assertions.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resurgo.chaos import ChaosReport
from resurgo.chaos._config import ChaosConfig
from resurgo.chaos._runner import ChaosRunner

pytestmark = pytest.mark.integration


def _run(claude_bin: str, tmp_path: Path, **kw: object) -> ChaosReport:
    cfg = ChaosConfig(claude=claude_bin, workdir=str(tmp_path), **kw)  # type: ignore[arg-type]
    report = ChaosRunner(cfg, progress=print).run()
    report.save(tmp_path / "report.json")
    # what a post-mortem needs when an assertion below fails
    print("\n".join(report.check_lines()))
    print(json.dumps({k: v for k, v in report.attribution.items() if k not in ("armed", "incidents")}, default=str))
    return report


def _why(r: ChaosReport) -> str:
    bad = [i for i in r.attribution.get("incidents", []) if i["expected"] not in (None, i["got"])]
    return f"checks={r.check_lines()} misclassified={bad} unexplained={r.attribution.get('unexplained')}"


@pytest.mark.timeout(300)
def test_short_chaos_run_meets_the_seed_targets(claude_bin: str, tmp_path: Path) -> None:
    # long enough for ~40+ classified failures: one ambiguous attribution must not decide the 95% gate.
    # The storm comes at 30 % of ``duration``: with 75 s it came after the batch (about 22 s now) was done
    r = _run(claude_bin, tmp_path, duration=40.0, jobs=20, concurrency=4, kill_every=3.0, fault_rate=0.2, seed=7)
    att = r.attribution
    # the chaos happened
    assert att["kills"]["cli"] >= 3, att["kills"]
    assert sum(att["api_faults_injected"].values()) >= 5, att["api_faults_injected"]
    assert r.incidents >= 8 and r.classified >= 8, _why(r)
    assert r.jobs_submitted == 20 and r.jobs_expected_failures == 1
    # the seed's targets
    assert r.classification_accuracy is not None and r.classification_accuracy >= 0.95, _why(r)
    assert r.auto_recovery_rate is not None and r.auto_recovery_rate >= 0.90, _why(r)
    assert r.mttr is not None and r.mttr < 30.0, _why(r)
    assert r.false_positive_rate is not None and r.false_positive_rate < 0.05, _why(r)
    assert r.availability is not None and r.availability >= 0.99, _why(r)
    # resurgo's bar on what must never happen
    assert r.jobs_lost == 0, _why(r)
    assert r.leaked_processes == [], r.leaked_processes
    assert r.leaked_temp_files == [], r.leaked_temp_files
    assert att["unexplained_count"] == 0, att["unexplained"]
    # the job meant to fail (401) failed clearly and was classified as auth
    assert "auth -> auth" in att["confusion"], att["confusion"]
    # the breaker: the run's 529 storm must trip it, and a job's next call must be refused within the
    # seed's second of the crossing (the jobs' own calls, not a probe): a failed job whose endpoint
    # breaker is open asks it before any other wait (tests/chaos/test_gates_fail.py shows the gate failing)
    assert r.storms == 1
    assert r.breaker_openings >= 1 and r.breaker_reactions >= 1, _why(r)
    assert r.breaker_reaction_max is not None and r.breaker_reaction_max < 1.0, _why(r)
    # both availabilities are reported, with the imposed waits taken out of the second
    assert r.availability_time is not None and r.availability_time_excl_imposed is not None
    assert r.availability_time_excl_imposed >= r.availability_time


@pytest.mark.timeout(240)
def test_supervisor_killed_mid_batch_is_restarted_and_finishes_every_job(claude_bin: str, tmp_path: Path) -> None:
    r = _run(claude_bin, tmp_path, duration=20.0, jobs=6, concurrency=3, kill_every=None, fault_rate=0.0,
             kill_supervisor=True, bursts=False, steps=4, seed=3)
    att = r.attribution
    assert att["supervisor_kills"] == 1
    assert att["worker_exit_codes"][0] == -9 and att["worker_exit_codes"][-1] == 0, att["worker_exit_codes"]
    interrupted = att["causes"].get("kill:supervisor", 0)
    assert interrupted >= 1, att["causes"]  # jobs were running when it died
    assert r.jobs_succeeded == 6 and r.jobs_lost == 0 and r.jobs_failed == 0, _why(r)
    assert r.recovered_automatically == r.recoverable_incidents == r.incidents, _why(r)
    assert r.leaked_processes == [] and r.leaked_temp_files == [], (r.leaked_processes, r.leaked_temp_files)
