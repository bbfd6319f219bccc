"""Loading the labelled corpora (every tests/corpus/*.jsonl, plus the real-exception corpus)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

CORPUS_DIR = Path(__file__).resolve().parents[1] / "corpus"


def jsonl_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in sorted(CORPUS_DIR.glob("*.jsonl")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                row = json.loads(line)
                row["_file"] = f"{path.name}:{n}"
                rows.append(row)
    return rows


def exception_rows() -> list[tuple[str, BaseException | None, dict[str, Any]]]:
    spec = importlib.util.spec_from_file_location("resurgo_exception_corpus", CORPUS_DIR / "exceptions.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows: list[tuple[str, BaseException | None, dict[str, Any]]] = mod.collect()
    return rows


def correct(verdict: Any, expect: dict[str, Any]) -> bool:
    if verdict.is_error != expect["error"]:
        return False
    if not expect["error"]:
        return True
    return verdict.type == expect["type"] and verdict.retryable == expect["retryable"]


def split_of(row: dict[str, Any]) -> str:
    """Development or held-out half of a labelled row, fixed by a hash (decided before any rule was written).

    Catalogue rows hash their message, hand-labelled rows their id; ``scripts/label_catalogue.py``
    uses the same function of the message, so a string is in the same half wherever it appears.
    """
    import hashlib

    obs = row.get("observation") or {}
    key = obs.get("message") if row.get("family") else row["id"]
    return "dev" if hashlib.sha256(str(key).encode("utf-8")).digest()[0] % 2 == 0 else "heldout"


def catalogue_rows() -> list[dict[str, Any]]:
    """The mined CLI/SDK vocabulary, labelled by family (tests/corpus/catalogue/catalogue.jsonl).

    Kept apart from the hand-labelled corpora: its labels are rules of thumb per family
    (scripts/label_catalogue.py), so it is measured and reported on its own.
    """
    path = CORPUS_DIR / "catalogue" / "catalogue.jsonl"
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            row = json.loads(line)
            row["_file"] = f"catalogue.jsonl:{n}"
            rows.append(row)
    return rows


def split_rows(half: str, *, catalogue: bool = True) -> list[dict[str, Any]]:
    """Rows of every labelled corpus (hand-labelled + catalogue) in one half ("dev" or "heldout")."""
    rows = jsonl_rows() + (catalogue_rows() if catalogue else [])
    return [r for r in rows if split_of(r) == half]
