"""SDK runs land in the same recovery phases as supervised jobs, through the one run store."""

from __future__ import annotations

from resurgo.classifier._types import ErrorClass, ErrorType, Severity
from resurgo.clock import FakeClock
from resurgo.sdk._store import RunRecorder
from resurgo.store import Store


def test_an_sdk_recovery_is_filed_by_fault_kind_with_imposed_wait_and_own_back_off() -> None:
    store = Store()
    clock = FakeClock()
    rec = RunRecorder(store, clock, name="sdk.query", prompt="hi", cwd="/", endpoint="http://x", model=None)
    rec.attempt(1, "start", None)
    ec = ErrorClass(ErrorType.RESOURCE, Severity.MEDIUM, "overloaded", "529", True, retry_after=1.0)
    rec.attempt_end(ok=False, ec=ec, message="API Error: 529 Overloaded", exit_code=1, session_id="s")
    clock.advance(3.0)  # the retrier waited 3 s: 1 s the server asked for, 2 s its own back-off
    rec.recovery(strategy="resume", ec=ec, message="API Error: 529 Overloaded", detected_at=clock.time() - 3.0,
                 waited=3.0)
    rec.attempt(2, "resume", "s")
    clock.advance(0.5)
    rec.first_event()
    rec.attempt_end(ok=True, ec=None, message="", exit_code=0, session_id="s")
    (ph,) = store.recovery_phases(rec.job_id)
    assert ph.fault_kind == "529" and ph.imposed_s == 1.0 and ph.backoff_s == 2.0
    assert ph.start_s == 0.5 and ph.succeeded is True
    assert ph.recovery_excl_imposed_s == 2.5
    (a1, a2) = store.query("SELECT n, outcome FROM attempts ORDER BY n")
    assert (a1["n"], a1["outcome"], a2["n"], a2["outcome"]) == (1, "failed", 2, "succeeded")
    assert store.query("SELECT state, recoveries, attempts FROM jobs")[0][:] == ("running", 1, 2)
