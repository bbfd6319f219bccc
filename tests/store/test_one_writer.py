"""Every write to the run tables lives in ``resurgo.store.runs``: a schema change has one home."""

from __future__ import annotations

import re
from pathlib import Path

import resurgo

RUN_TABLES = ("jobs", "attempts", "events", "recoveries", "errors", "retries", "breaker_transitions", "processes")
_WRITE = re.compile(
    r"\b(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|UPDATE|DELETE\s+FROM)\s+(" + "|".join(RUN_TABLES) + r")\b", re.IGNORECASE
)
#: the one module allowed to write them (and the schema, which creates them)
ALLOWED = {"store/runs.py", "store/schema.py"}


def writers(root: Path) -> dict[str, list[str]]:
    """Source files under ``root`` (other than the allowed ones) that write a run table, with the tables."""
    found: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel in ALLOWED:
            continue
        hits = sorted({m.group(1).lower() for m in _WRITE.finditer(path.read_text(encoding="utf-8"))})
        if hits:
            found[rel] = hits
    return found


def test_only_the_run_store_writes_the_run_tables() -> None:
    root = Path(resurgo.__file__).parent
    assert writers(root) == {}


def test_the_check_finds_a_module_that_writes_its_own_sql(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "runs.py").write_text('SQL = "UPDATE jobs SET state=?"\n')
    (tmp_path / "rogue.py").write_text('store.execute("INSERT INTO recoveries(job_id) VALUES(?)", (j,))\n')
    (tmp_path / "reader.py").write_text('store.query("SELECT * FROM jobs")\n')
    assert writers(tmp_path) == {"rogue.py": ["recoveries"]}
