"""A real short chaos run with a deliberately wrong classifier: the gates it breaks must fail.

The real CLI, the real supervisor, real injected faults; only the classifier
is sabotaged by a user rule that calls every failure with a message a
non-retryable validation error.  The supervisor then gives up on jobs hit by
transient faults, and the report must say so: classification accuracy,
automatic recovery and availability all fail -- a transient fault is
recoverable because of what was injected, whatever the classifier said.
(The other broken set-ups are scored from recorded runs in ``test_score.py``,
and run for real under ``-m slow`` below.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from resurgo.chaos import ChaosReport
from resurgo.chaos._config import ChaosConfig
from resurgo.chaos._runner import ChaosRunner

pytestmark = pytest.mark.integration

WRONG_RULES = """
[[rule]]
id = "test.deliberately_wrong"
tier = "specific"
message = ['.']
type = "validation"
retryable = false
strategy = "abort"
weight = 1000
"""


def _run(claude_bin: str, tmp_path: Path, **kw: object) -> ChaosReport:
    cfg = ChaosConfig(claude=claude_bin, workdir=str(tmp_path), **kw)  # type: ignore[arg-type]
    report = ChaosRunner(cfg, progress=print).run()
    print("\n".join(report.check_lines()))
    return report


def _status(r: ChaosReport) -> dict[tuple[str, str], str]:
    return {(c.name, c.bar): c.status for c in r.checks()}


@pytest.mark.timeout(150)
def test_a_deliberately_wrong_classifier_fails_its_gates(claude_bin: str, tmp_path: Path) -> None:
    rules = tmp_path / "wrong.toml"
    rules.write_text(WRONG_RULES)
    r = _run(claude_bin, tmp_path, duration=12.0, jobs=4, concurrency=2, kill_every=None, fault_rate=0.5,
             network=False, storm=False, bursts=False, nonretryable_jobs=0, steps=2, step_sleep=0.5, seed=5,
             supervisor={"classify_rules": str(rules)}, drain_timeout=30.0)
    att = r.attribution
    assert sum(att["api_faults_injected"].values()) >= 1 and r.incidents >= 1, att
    assert att["unexplained_count"] == 0, att["unexplained"]
    s = _status(r)
    assert s[("classification accuracy", "seed")] == "fail", r.check_lines()
    assert s[("automatic recovery rate", "seed")] == "fail", r.check_lines()
    assert s[("availability", "seed")] == "fail", r.check_lines()
    assert not r.passed_seed()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_breaker_that_never_opens_fails_the_reaction_gate(claude_bin: str, tmp_path: Path) -> None:
    # jobs long enough to be running at 30% of the run, when the storm comes (steps=4 ended before it
    # once recovery got faster: then there is no storm and the test would check nothing)
    r = _run(claude_bin, tmp_path, duration=20.0, jobs=4, concurrency=4, kill_every=None, fault_rate=0.05,
             network=False, bursts=False, storm_s=5.0, nonretryable_jobs=0, steps=12, seed=7,
             supervisor={"breaker": {"failure_rate": 1.0, "min_calls": 100_000, "consecutive_failures": None}})
    assert r.storms == 1 and r.breaker_openings == 0
    assert _status(r)[("breaker reaction max (s)", "seed")] == "fail", r.check_lines()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_supervisor_that_does_not_recover_fails_the_recovery_gate(claude_bin: str, tmp_path: Path) -> None:
    r = _run(claude_bin, tmp_path, duration=20.0, jobs=4, concurrency=2, kill_every=2.0, fault_rate=0.0,
             bursts=False, nonretryable_jobs=0, steps=4, seed=3, supervisor={"max_recoveries": 0})
    assert r.attribution["kills"]["cli"] >= 1
    assert _status(r)[("automatic recovery rate", "seed")] == "fail", r.check_lines()
