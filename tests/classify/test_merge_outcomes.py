"""``Classifier.merge_outcomes``: outcomes observed elsewhere (a fleet) count as if recorded here."""

from __future__ import annotations

from pathlib import Path

import pytest

from resurgo.classifier import Classifier
from resurgo.clock import FakeClock
from resurgo.store import Store


def test_merged_outcomes_teach_like_local_ones_and_persist(tmp_path: Path) -> None:
    clock = FakeClock()
    db = tmp_path / "r.db"
    here = Classifier(clock=clock, store=Store(db))
    flaky = RuntimeError("widget 17 wobbled")
    sig = here.signature(flaky)
    there = Classifier(clock=clock)
    there.record_outcome(flaky, True)
    (theirs,) = there.outcomes()
    assert here.classify(flaky).rule == "fallback"
    r = here.merge_outcomes(sig, successes=2, failures=0, base_rule=theirs.base_rule, example="sk-ant-api03-XYZXYZXYZ1")
    assert (r.successes, r.failures, r.learned) == (2, 0, False)
    here.record_outcome(flaky, True)  # the third success, seen here: now learned from both
    assert here.classify(flaky).rule == "learned"
    assert "sk-ant-api03-XYZXYZXYZ1" not in r.example
    again = Classifier(clock=clock, store=Store(db))  # written through to the store
    assert again.classify(flaky).rule == "learned"


def test_merged_outcomes_never_teach_past_an_explicit_rule_and_reject_bad_counts() -> None:
    c = Classifier(clock=FakeClock())
    auth = {"http_status": 401, "message": "invalid x-api-key"}
    sig = c.signature(auth)
    base = c.classify(auth, record=False).rule
    c.merge_outcomes(sig, successes=50, base_rule=base)
    assert not c.classify(auth).retryable
    with pytest.raises(ValueError, match="negative"):
        c.merge_outcomes(sig, successes=-1)
    with pytest.raises(ValueError, match="signature"):
        c.merge_outcomes("", successes=1)
