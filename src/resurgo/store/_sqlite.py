"""The embedded default store: one SQLite file in WAL mode, with per-component migrations.

Each concern (classifier, supervisor, breaker history, ...) owns its tables and
registers an ordered list of migrations under its own component name.  The
store records the applied version per component, so packages evolve their
schema independently and the general library never needs to know the
supervisor's tables.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from resurgo.store.runs import RecoveryPhases

Migration = str | Callable[[sqlite3.Connection], None]


class StoreError(RuntimeError):
    """The store cannot be opened or used (not a database, unwritable, newer schema)."""


_BASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_versions (
    component TEXT PRIMARY KEY,
    version   INTEGER NOT NULL,
    applied_at REAL NOT NULL DEFAULT (strftime('%s','now'))
);
"""


def default_store_path() -> Path:
    """``$RESURGO_HOME/resurgo.db``, else ``$XDG_STATE_HOME/resurgo/resurgo.db``."""
    home = os.environ.get("RESURGO_HOME")
    if home:
        return Path(home) / "resurgo.db"
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "resurgo" / "resurgo.db"


class Store:
    """A thread-safe handle on the SQLite store.

    Connections are per thread (SQLite connections must not be shared across
    threads without serialising them); WAL lets readers such as the dashboard
    run while the supervisor writes.  ``":memory:"`` gives a private in-memory
    store shared by all threads of this object, for tests and library use.
    """

    def __init__(self, path: str | os.PathLike[str] = ":memory:", *, timeout: float = 10.0) -> None:
        self.path = str(path)
        self._timeout = timeout
        self._local = threading.local()
        self._lock = threading.RLock()
        self._memory = self.path == ":memory:"
        self._shared: sqlite3.Connection | None = None
        self._all: list[sqlite3.Connection] = []
        if not self._memory:
            parent = Path(self.path).parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(f"cannot create the store's folder {parent}: {e.strerror or e}") from e
            _create_private(self.path)
        conn = self._connect()
        try:
            with self._lock:
                conn.executescript(_BASE_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path} is not a usable resurgo store: {e}") from e

    # -- connections -----------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the store {self.path}: {e}") from e
        conn.row_factory = sqlite3.Row
        try:
            conn.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")
            if not self._memory:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(f"{self.path}: SQLite refused WAL mode (got {mode})")
                conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as e:
            conn.close()
            raise StoreError(f"{self.path} is not a usable resurgo store: {e}") from e
        self._all.append(conn)
        return conn

    def _connect(self) -> sqlite3.Connection:
        if self._memory:
            if self._shared is None:
                self._shared = self._open()
            return self._shared
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        return self._connect()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``: writers take the lock up front, so no upgrade deadlocks."""
        conn = self._connect()
        lock = self._lock if self._memory else _NullLock()
        with lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        conn = self._connect()
        if self._memory:
            with self._lock:
                return conn.execute(sql, params)
        return conn.execute(sql, params)

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        conn = self._connect()
        if self._memory:
            with self._lock:
                return conn.execute(sql, params).fetchall()
        return conn.execute(sql, params).fetchall()

    # -- migrations ------------------------------------------------------------------
    def version(self, component: str) -> int:
        row = self.query("SELECT version FROM schema_versions WHERE component=?", (component,))
        return int(row[0][0]) if row else 0

    def migrate(self, component: str, migrations: Sequence[Migration]) -> int:
        """Apply the migrations of ``component`` not applied yet; returns the new version.

        A store written by a newer resurgo (more migrations than this code knows)
        is refused rather than silently misread.
        """
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT version FROM schema_versions WHERE component=?", (component,)
            ).fetchone()
            current = int(row[0]) if row else 0
            if current > len(migrations):
                raise StoreError(
                    f"{self.path}: component {component!r} is at schema version {current}, "
                    f"newer than this resurgo knows ({len(migrations)}); upgrade resurgo"
                )
            for i in range(current, len(migrations)):
                m = migrations[i]
                if callable(m):
                    m(conn)
                else:
                    for stmt in _split_sql(m):
                        conn.execute(stmt)
            if len(migrations) != current:
                conn.execute(
                    "INSERT INTO schema_versions(component, version) VALUES(?, ?) "
                    "ON CONFLICT(component) DO UPDATE SET version=excluded.version, "
                    "applied_at=strftime('%s','now')",
                    (component, len(migrations)),
                )
            return len(migrations)

    def recovery_phases(self, job_id: str | None = None) -> list[RecoveryPhases]:
        """Every recovery (of ``job_id``, or all) broken into phases (``resurgo.store.runs.RecoveryPhases``)."""
        from resurgo.store.runs import read_recovery_phases

        return read_recovery_phases(self, job_id)

    def close(self) -> None:
        with self._lock:
            for c in self._all:
                try:
                    c.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
            self._shared = None
            self._local = threading.local()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.path!r})"


def _create_private(path: str) -> None:
    """Create a missing store file readable by its owner only (mode 0600).

    Events hold what the CLI printed, tool output included, and redaction is a
    best effort; a store under a shared home must not be world-readable.  An
    empty file is a valid new SQLite database, and SQLite gives the ``-wal`` and
    ``-shm`` files the mode of the main file, so creating it first covers all
    three.  An existing file keeps the mode its owner chose.
    """
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0), 0o600)
    except FileExistsError:
        return
    except OSError as e:
        raise StoreError(f"cannot create the store {path}: {e.strerror or e}") from e
    os.close(fd)


class _NullLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (``sqlite3.complete_statement`` aware)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
