"""The shipped rule packs are compiled on the first question, not when a Classifier is made.

A supervised run that succeeds never classifies anything, so `resurgo run`
should not pay for compiling every pack; mistakes must still surface at once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from resurgo.classifier import Classifier, ErrorType, RuleError, load_rules


def test_packs_are_compiled_on_first_use_only() -> None:
    clf = Classifier()
    assert clf._loaded is False and clf._pack_rules == []
    v = clf.classify("API Error: 529 Overloaded", record=False)
    assert clf._loaded is True and len(clf._pack_rules) > 50
    assert v.type is ErrorType.RESOURCE and v.retryable


def test_rules_property_loads_the_packs() -> None:
    assert len(Classifier().rules) > 50


def test_an_unknown_pack_is_refused_at_construction() -> None:
    with pytest.raises(RuleError, match="unknown rule pack 'nope'"):
        Classifier(packs=["http", "nope"])


def test_user_rules_are_checked_at_construction(tmp_path: Path) -> None:
    f = tmp_path / "rules.toml"
    f.write_text('[[rule]]\nid = "http.429"\nmessage = "slow down"\ntype = "resource"\nretryable = true\n')
    rules = load_rules(f)
    with pytest.raises(RuleError, match="defined twice"):
        Classifier(rules)  # clashes with a shipped rule id: reported now, not at the first failure
