"""The embedded store: WAL, per-component migrations, clear errors, safe across threads."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from resurgo.store import Store, StoreError, default_store_path
from resurgo.store.schema import COMPONENT, MIGRATIONS, ensure_schema


def test_file_store_uses_wal_and_applies_migrations_once(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "r.db"
    with Store(db) as s:
        assert s.query("PRAGMA journal_mode")[0][0] == "wal"
        assert s.migrate("demo", ["CREATE TABLE t (x INTEGER)"]) == 1
        s.execute("INSERT INTO t VALUES (1)")
        # a second migration is applied on top; the first is not run again
        assert s.migrate("demo", ["CREATE TABLE t (x INTEGER)", "ALTER TABLE t ADD COLUMN y TEXT"]) == 2
        assert s.version("demo") == 2
        assert [tuple(r) for r in s.query("SELECT x, y FROM t")] == [(1, None)]
    with Store(db) as s:  # reopening keeps everything
        assert s.version("demo") == 2


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_new_store_file_is_private_to_its_owner(tmp_path: Path) -> None:
    """Events hold tool output: the database, its WAL and shared-memory files get mode 0600."""
    old = os.umask(0o022)  # a typical umask that would give 0644
    try:
        with Store(tmp_path / "new.db") as s:
            s.migrate("demo", ["CREATE TABLE t (x INTEGER)"])
            s.execute("INSERT INTO t VALUES (1)")
            files = [tmp_path / n for n in ("new.db", "new.db-wal", "new.db-shm")]
            assert all(f.exists() for f in files)
            assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}
        # an existing file keeps the mode its owner chose
        shared = tmp_path / "shared.db"
        Store(shared).close()
        shared.chmod(0o640)
        Store(shared).close()
        assert stat.S_IMODE(shared.stat().st_mode) == 0o640
    finally:
        os.umask(old)


def test_components_are_versioned_independently(tmp_path: Path) -> None:
    with Store(tmp_path / "r.db") as s:
        ensure_schema(s)
        s.migrate("other", ["CREATE TABLE o (a)"])
        assert s.version(COMPONENT) == len(MIGRATIONS) and s.version("other") == 1


def test_a_store_from_a_newer_resurgo_is_refused_not_misread(tmp_path: Path) -> None:
    with Store(tmp_path / "r.db") as s:
        s.migrate("demo", ["CREATE TABLE a (x)", "CREATE TABLE b (x)"])
        with pytest.raises(StoreError, match="newer than this resurgo knows"):
            s.migrate("demo", ["CREATE TABLE a (x)"])


def test_a_failing_migration_rolls_back_and_leaves_the_version(tmp_path: Path) -> None:
    with Store(tmp_path / "r.db") as s:
        s.migrate("demo", ["CREATE TABLE a (x)"])
        with pytest.raises(sqlite3.OperationalError):
            s.migrate("demo", ["CREATE TABLE a (x)", "CREATE TABLE c (x)", "THIS IS NOT SQL"])
        assert s.version("demo") == 1
        assert not s.query("SELECT name FROM sqlite_master WHERE name='c'")


def test_a_file_that_is_not_a_database_is_a_clear_error_and_is_left_alone(tmp_path: Path) -> None:
    bad = tmp_path / "notes.db"
    bad.write_bytes(b"these are my notes, not a database\n" * 100)
    before = bad.read_bytes()
    with pytest.raises(StoreError, match="not a usable resurgo store"):
        Store(bad)
    assert bad.read_bytes() == before


def test_an_unwritable_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create the store's folder"):
        Store(blocker / "sub" / "r.db")


def test_writers_in_many_threads_lose_nothing(tmp_path: Path) -> None:
    with Store(tmp_path / "r.db") as s:
        s.migrate("demo", ["CREATE TABLE n (i INTEGER)"])

        def write(k: int) -> None:
            for i in range(50):
                with s.transaction() as c:
                    c.execute("INSERT INTO n VALUES (?)", (k * 1000 + i,))

        threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert s.query("SELECT COUNT(*) FROM n")[0][0] == 200


def test_memory_store_and_default_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = Store(":memory:")
    ensure_schema(s)
    assert s.version(COMPONENT) == len(MIGRATIONS)
    monkeypatch.setenv("RESURGO_HOME", str(tmp_path))
    assert default_store_path() == tmp_path / "resurgo.db"
