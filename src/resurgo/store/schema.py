"""Tables of supervised runs: the one record that the supervisor writes and metrics, the
dashboard and the command line read.

Kept in the store package (not in the supervisor) so that readers such as the
metrics and the dashboard depend on the schema, not on the supervisor's code.
Times are wall-clock epoch seconds (REAL); JSON columns hold text.
"""

from __future__ import annotations

from resurgo.store._sqlite import Migration, Store

COMPONENT = "runs"

MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE jobs (
        id            TEXT PRIMARY KEY,
        batch_id      TEXT,
        name          TEXT,
        idem_key      TEXT UNIQUE,          -- same batch line again -> same job (idempotent batches)
        prompt        TEXT NOT NULL,
        args_json     TEXT NOT NULL DEFAULT '[]',   -- extra claude arguments
        cwd           TEXT NOT NULL,
        env_json      TEXT NOT NULL DEFAULT '{}',   -- the job's environment overrides
        model         TEXT,
        endpoint      TEXT,                 -- ANTHROPIC_BASE_URL the job uses (breaker key)
        state         TEXT NOT NULL,        -- pending|running|recovering|waiting|succeeded|failed|cancelled|interrupted
        session_id    TEXT,                 -- newest session id (from init/result events)
        attempts      INTEGER NOT NULL DEFAULT 0,
        recoveries    INTEGER NOT NULL DEFAULT 0,
        created_at    REAL NOT NULL,
        started_at    REAL,
        finished_at   REAL,
        updated_at    REAL NOT NULL,
        result_text   TEXT,
        result_json   TEXT,                 -- the final result event
        error_json    TEXT,                 -- ErrorClass of the final failure
        reason        TEXT,                 -- why it failed / was cancelled, in words
        owner         TEXT                  -- supervisor instance (host:pid) running it
    );
    CREATE INDEX jobs_state ON jobs(state);
    CREATE INDEX jobs_batch ON jobs(batch_id);

    CREATE TABLE attempts (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id        TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        n             INTEGER NOT NULL,     -- 1-based attempt number within the job
        kind          TEXT NOT NULL,        -- start|resume|fork|restart
        session_id    TEXT,
        pid           INTEGER,
        started_at    REAL NOT NULL,
        first_event_at REAL,
        ended_at      REAL,
        exit_code     INTEGER,
        signal        INTEGER,
        killed_by     TEXT,
        outcome       TEXT,                 -- succeeded|failed|cancelled|lost
        error_json    TEXT
    );
    CREATE INDEX attempts_job ON attempts(job_id);

    CREATE TABLE events (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id        TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        attempt_id    INTEGER,
        ts            REAL NOT NULL,
        source        TEXT NOT NULL,        -- cli (a stream-json event) | supervisor (our own)
        type          TEXT,
        subtype       TEXT,
        data_json     TEXT NOT NULL
    );
    CREATE INDEX events_job ON events(job_id, id);

    CREATE TABLE recoveries (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id        TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        attempt_id    INTEGER,              -- the attempt that failed
        strategy      TEXT NOT NULL,
        error_type    TEXT,
        signature     TEXT,
        detected_at   REAL NOT NULL,        -- failure detected
        started_at    REAL,                 -- recovery action began (after waits/backoff)
        restored_at   REAL,                 -- first event of the recovered run
        waited_s      REAL NOT NULL DEFAULT 0,  -- time imposed by the server (reset / retry-after)
        succeeded     INTEGER,              -- 1/0, NULL while unknown
        reason        TEXT
    );
    CREATE INDEX recoveries_job ON recoveries(job_id);

    CREATE TABLE processes (
        pid           INTEGER NOT NULL,
        start_time    REAL NOT NULL,        -- psutil create_time(): tells a reused pid apart
        pgid          INTEGER,
        job_id        TEXT,
        attempt_id    INTEGER,
        owner_pid     INTEGER NOT NULL,     -- the supervisor process that started it
        started_at    REAL NOT NULL,
        ended_at      REAL,
        PRIMARY KEY (pid, start_time)
    );

    CREATE TABLE errors (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        ts            REAL NOT NULL,
        job_id        TEXT,
        type          TEXT NOT NULL,
        severity      TEXT,
        retryable     INTEGER NOT NULL,
        rule          TEXT,
        signature     TEXT,
        message       TEXT
    );
    CREATE INDEX errors_ts ON errors(ts);

    CREATE TABLE breaker_transitions (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        breaker       TEXT NOT NULL,
        ts            REAL NOT NULL,
        from_state    TEXT NOT NULL,
        to_state      TEXT NOT NULL,
        reason        TEXT,
        metrics_json  TEXT
    );
    CREATE INDEX breaker_transitions_ts ON breaker_transitions(breaker, ts);

    CREATE TABLE retries (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        ts            REAL NOT NULL,
        scope         TEXT NOT NULL,        -- what was retried (job id, endpoint, function name)
        attempts      INTEGER NOT NULL,
        succeeded     INTEGER NOT NULL,
        give_up_reason TEXT,
        slept_s       REAL NOT NULL DEFAULT 0
    );
    """,
    # 2: the latest health state per component per supervisor, so the command line and the
    # dashboard can show what a running supervisor's HealthChecker sees.  ``owner`` is the
    # JobStore owner id (host:pid:start); readers skip rows of owners that are no longer alive.
    """
    CREATE TABLE health (
        owner         TEXT NOT NULL,
        component     TEXT NOT NULL,        -- api:URL | process:PID | disk:PATH
        state         TEXT NOT NULL,        -- healthy|degraded|unhealthy
        detail        TEXT,
        ts            REAL NOT NULL,        -- when this state was last checked (refreshed periodically)
        PRIMARY KEY (owner, component)
    );
    """,
    # 3: where the time of a recovery went (``resurgo.store.runs.RecoveryPhases``): the fault's kind
    # and moment, resurgo's own back-off and retry-budget waits (``waited_s`` stays the imposed
    # wait: retry-after, quota reset, open breaker), when the lost work was done again, and how
    # many tool calls were lost.  Rows written before have NULLs: their phases read as unknown.
    """
    ALTER TABLE recoveries ADD COLUMN fault_kind TEXT;
    ALTER TABLE recoveries ADD COLUMN fault_at REAL;
    ALTER TABLE recoveries ADD COLUMN backoff_s REAL NOT NULL DEFAULT 0;
    ALTER TABLE recoveries ADD COLUMN budget_s REAL NOT NULL DEFAULT 0;
    ALTER TABLE recoveries ADD COLUMN caught_up_at REAL;
    ALTER TABLE recoveries ADD COLUMN lost_tools INTEGER;
    """,
    # 4: what an endpoint's answers took lately (``resurgo.supervise._requests.ResponseTimes``), so a
    # supervisor started on the store (after a crash, or the next batch) watches for hung requests
    # from its first request instead of after 20 answers: the delays as JSON lists, oldest first.
    """
    CREATE TABLE endpoint_times (
        endpoint      TEXT PRIMARY KEY,     -- the endpoint's name (no credentials)
        ts            REAL NOT NULL,        -- when they were saved
        first_json    TEXT NOT NULL,        -- request sent -> first answer event, seconds
        gap_json      TEXT NOT NULL         -- longest silence within an answer, seconds
    );
    """,
]


def ensure_schema(store: Store) -> None:
    """Create or upgrade the run tables; cheap when already current."""
    store.migrate(COMPONENT, MIGRATIONS)


__all__ = ["COMPONENT", "MIGRATIONS", "ensure_schema"]
