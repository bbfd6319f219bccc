"""Health in the store: what a running supervisor's :class:`HealthChecker` sees, visible from outside.

The checker lives in the supervisor's memory; ``resurgo status`` and the
dashboard are other processes.  So every supervisor keeps its latest state per
component in the ``health`` table, keyed by its owner id (``host:pid:start``,
the same id that marks the jobs it runs):

* a row is written the moment a component changes state (a component becoming
  unhealthy is also an alert, rate-limited like every alert), and all rows are
  refreshed at most every ``refresh`` seconds, so a row's age says how fresh
  the supervisor's view is;
* a component the checker forgets (a finished run's process) loses its row, so
  a live supervisor never shows a stale ``process:PID``;
* rows of a supervisor that died are not shown (readers check the owner with
  :func:`owner_alive`) and are deleted by the :class:`ResourceCleaner` at
  start-up.  A supervisor that shuts down cleanly removes its own rows.

Writes never raise into the health loop: a store error is logged and the next
round tries again.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from resurgo._redact import redact_text
from resurgo.clock import Clock
from resurgo.store import Store
from resurgo.supervise._alerts import HEALTH_UNHEALTHY, AlertManager
from resurgo.supervise._health import ComponentHealth, HealthState
from resurgo.supervise._jobstore import JobStore, owner_alive

log = logging.getLogger("resurgo.supervise")

_UPSERT = (
    "INSERT INTO health(owner, component, state, detail, ts) VALUES(?,?,?,?,?)"
    " ON CONFLICT(owner, component) DO UPDATE SET state=excluded.state, detail=excluded.detail, ts=excluded.ts"
)


@dataclass(frozen=True, slots=True)
class HealthRow:
    """One stored component state of one supervisor (``ts``: wall-clock time of its last check)."""

    owner: str
    component: str
    state: str
    detail: str
    ts: float

    def to_dict(self, now: float) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "component": self.component,
            "state": self.state,
            "detail": self.detail,
            "ts": self.ts,
            "age_s": max(0.0, now - self.ts),
        }


class HealthRecorder:
    """Writes a :class:`HealthChecker`'s states to the ``health`` table; raises the unhealthy alerts.

    Wire :meth:`on_change` and :meth:`on_round` into the checker's hooks of the
    same names.  ``refresh`` (seconds, default 5) bounds how often unchanged
    rows are rewritten; ``alerts`` (optional) receives a ``health_unhealthy``
    alert whenever a component becomes unhealthy.
    """

    def __init__(
        self,
        jobs: JobStore,
        *,
        alerts: AlertManager | None = None,
        refresh: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        if refresh <= 0:
            raise ValueError("HealthRecorder.refresh must be > 0")
        self.jobs = jobs
        self.alerts = alerts
        self.refresh = refresh
        self.clock = clock or jobs.clock
        self._last_refresh: float | None = None
        self._written: set[str] = set()
        #: rows written (for instrumentation and tests)
        self.writes = 0

    @property
    def owner(self) -> str:
        return self.jobs.owner

    def on_change(self, new: ComponentHealth, old: ComponentHealth | None) -> None:
        """A component changed state: store it now; alert when it became unhealthy."""
        try:
            self.jobs.store.execute(_UPSERT, self._row(new))
            self.writes += 1
            self._written.add(new.name)
        except Exception:
            log.exception("could not store the health of %s", new.name)
        if self.alerts is not None and new.state is HealthState.UNHEALTHY and not _run_ended(new):
            was = old.state.value if old is not None else "unknown"
            self.alerts.alert(
                HEALTH_UNHEALTHY,
                new.name,
                f"{new.name} is unhealthy (was {was}): {new.detail}",
                details={"component": new.name, "previous": was, "detail": new.detail, "owner": self.owner},
            )

    def on_round(self, snapshot: Mapping[str, ComponentHealth]) -> None:
        """After a check round: refresh every row if ``refresh`` has passed; drop forgotten components."""
        now = self.clock.monotonic()
        names = set(snapshot)
        due = self._last_refresh is None or now - self._last_refresh >= self.refresh
        if not due and names == self._written:
            return
        try:
            with self.jobs.store.transaction() as conn:
                if due:
                    conn.executemany(_UPSERT, [self._row(c) for c in snapshot.values()])
                    self.writes += len(snapshot)
                gone = self._stored_names(conn) - names
                conn.executemany(
                    "DELETE FROM health WHERE owner=? AND component=?", [(self.owner, n) for n in sorted(gone)]
                )
        except Exception:
            log.exception("could not refresh the stored health")
            return
        if due:
            self._last_refresh = now
        self._written = names

    def clear(self) -> None:
        """Remove this supervisor's rows (at a clean shutdown: nothing is watching any more)."""
        try:
            self.jobs.store.execute("DELETE FROM health WHERE owner=?", (self.owner,))
        except Exception:
            log.exception("could not remove the stored health")
        self._written = set()
        self._last_refresh = None

    def _stored_names(self, conn: sqlite3.Connection) -> set[str]:
        return {str(r[0]) for r in conn.execute("SELECT component FROM health WHERE owner=?", (self.owner,))}

    def _row(self, c: ComponentHealth) -> tuple[str, str, str, str, float]:
        return (self.owner, redact_text(c.name), c.state.value, redact_text(c.detail), c.checked_at)


def _run_ended(c: ComponentHealth) -> bool:
    """A CLI process found gone: the orchestrator classifies and recovers that (and alerts when it
    gives up), so an alert here would report every crash, and every normal exit caught between
    the process ending and its attempt being collected, a second time."""
    return c.name.startswith("process:") and c.metrics.get("alive") == 0.0


def read_health(
    store: Store,
    *,
    is_alive: Callable[[str | None], bool] = owner_alive,
) -> list[HealthRow]:
    """Stored component states of the supervisors that are alive, by owner then component (redacted)."""
    alive: dict[str, bool] = {}
    out: list[HealthRow] = []
    for r in store.query("SELECT owner, component, state, detail, ts FROM health ORDER BY owner, component"):
        owner = str(r["owner"])
        ok = alive.get(owner)
        if ok is None:
            ok = alive[owner] = is_alive(owner)
        if ok:
            # redacted again on the way out: rows may come from an older or foreign writer
            comp, detail = redact_text(str(r["component"])), redact_text(str(r["detail"] or ""))
            out.append(HealthRow(owner, comp, str(r["state"]), detail, float(r["ts"])))
    return out


def remove_dead_health(
    store: Store,
    *,
    keep: str | None = None,
    is_alive: Callable[[str | None], bool] = owner_alive,
) -> int:
    """Delete the rows of supervisors that are no longer alive (never ``keep``'s); returns how many."""
    owners = [str(r[0]) for r in store.query("SELECT DISTINCT owner FROM health")]
    dead = [o for o in owners if o != keep and not is_alive(o)]
    removed = 0
    for o in dead:
        cur = store.execute("DELETE FROM health WHERE owner=?", (o,))
        removed += max(0, int(cur.rowcount))
    return removed


def worst(states: list[str]) -> str | None:
    """The worst of some stored states (None when there are none): the one-word summary."""
    rank = {s.value: s.rank for s in HealthState}
    known = [s for s in states if s in rank]
    return max(known, key=rank.__getitem__) if known else None


__all__ = ["HealthRecorder", "HealthRow", "read_health", "remove_dead_health", "worst"]
