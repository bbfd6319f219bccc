"""The proof the issue asks for: accuracy over every labelled corpus in tests/corpus/."""

from __future__ import annotations

import pytest
from tests.classify._corpus import correct, exception_rows, jsonl_rows

from resurgo.classifier import Classifier


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier()


@pytest.fixture(scope="module")
def exc_rows() -> list:
    return exception_rows()


def _report(misses: list[str]) -> str:
    return "\n".join(misses[:40])


def test_jsonl_corpora_are_well_formed() -> None:
    rows = jsonl_rows()
    assert rows, "no corpus found"
    ids = set()
    for r in rows:
        assert set(r) >= {"id", "source", "observation", "expect"}, r["_file"]
        assert r["source"], r["_file"]
        assert set(r["expect"]) == {"error", "type", "retryable"}, r["_file"]
        assert (r["id"], r["_file"].split(":")[0]) not in ids, f"duplicate id {r['id']}"
        ids.add((r["id"], r["_file"].split(":")[0]))


def test_observation_corpus_accuracy(clf: Classifier) -> None:
    rows = [r for r in jsonl_rows() if r["expect"]["error"]]
    misses = []
    for r in rows:
        v = clf.classify(r["observation"], record=False)
        if not correct(v, r["expect"]):
            misses.append(f"{r['_file']} {r['id']}: got {v.type}/{v.retryable} via {v.rule}, want {r['expect']}")
    accuracy = 1 - len(misses) / len(rows)
    assert accuracy >= 0.95, f"accuracy {accuracy:.3f} over {len(rows)} errors\n{_report(misses)}"


def test_non_errors_are_rarely_flagged(clf: Classifier) -> None:
    rows = [r for r in jsonl_rows() if not r["expect"]["error"]]
    assert len(rows) >= 15, "the corpus needs plenty of non-error observations"
    flagged = [r["id"] for r in rows if clf.classify(r["observation"], record=False).is_error]
    assert len(flagged) / len(rows) < 0.02, f"{len(flagged)}/{len(rows)} non-errors flagged: {flagged}"


def test_real_exception_corpus_accuracy(clf: Classifier, exc_rows: list) -> None:
    errors = [(i, e, x) for i, e, x in exc_rows if x["error"]]
    misses = []
    for id_, exc, expect in errors:
        v = clf.classify(exc, record=False)
        if not correct(v, expect):
            misses.append(f"{id_} {type(exc).__module__}.{type(exc).__name__}: got {v.type}/{v.retryable} via {v.rule}")
    accuracy = 1 - len(misses) / len(errors)
    assert accuracy >= 0.95, f"accuracy {accuracy:.3f} over {len(errors)}\n{_report(misses)}"
    non_errors = [e for _, e, x in exc_rows if not x["error"]]
    assert non_errors and not any(clf.classify(e, record=False).is_error for e in non_errors)


def test_real_exceptions_come_from_the_libraries(exc_rows: list) -> None:
    modules = {type(e).__module__.split(".")[0] for _, e, _ in exc_rows}
    assert {"httpx", "requests", "anthropic", "urllib", "builtins", "subprocess"} <= modules
    assert any(type(e).__module__.startswith("anthropic") for _, e, _ in exc_rows)
