"""The adaptive concurrency record: the limit over time, overload signals and queue waits.

A component of its own (``concurrency``) rather than a step in the run
schema's list, so it upgrades independently of the run tables and readers can
create it on demand in stores written before it existed.  Times are
wall-clock epoch seconds.
"""

from __future__ import annotations

from resurgo.store._sqlite import Migration, Store

COMPONENT = "concurrency"

MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE concurrency_samples (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        ts            REAL NOT NULL,
        endpoint      TEXT NOT NULL,        -- the limiter's name (endpoint:URL)
        kind          TEXT NOT NULL,        -- limit | overload | pause | wait
        limit_value   INTEGER NOT NULL,     -- the limit after this row
        inflight      INTEGER NOT NULL,
        waiting       INTEGER NOT NULL DEFAULT 0,
        value         REAL,                 -- limit: the old limit; wait: seconds waited; pause: until (epoch)
        detail        TEXT,                 -- overload: dropped|latency|paused (+ reason); limit: reason
        owner         TEXT
    );
    CREATE INDEX concurrency_samples_ts ON concurrency_samples(endpoint, ts);
    """,
]


def ensure_limits_schema(store: Store) -> None:
    """Create or upgrade the table; cheap when already current."""
    store.migrate(COMPONENT, MIGRATIONS)


__all__ = ["COMPONENT", "MIGRATIONS", "ensure_limits_schema"]
