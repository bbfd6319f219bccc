"""Learned rules: signatures nobody wrote a rule for, judged by what retries achieved.

Per signature the book keeps how many retries succeeded and failed.  A
signature that only the fallback could classify, and whose retries keep
succeeding, is learned as *transient* (retryable).  The engine consults learned
rules at tier 8, after every explicit rule, so learning can never turn an
auth, validation or billing verdict retryable.  Outcomes persist in the SQLite
store so that knowledge survives restarts, and can be listed and forgotten.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from resurgo.store import Store

FALLBACK_RULE = "fallback"

MIGRATIONS = [
    """
    CREATE TABLE classify_outcomes (
        signature  TEXT PRIMARY KEY,
        successes  INTEGER NOT NULL DEFAULT 0,
        failures   INTEGER NOT NULL DEFAULT 0,
        base_rule  TEXT,
        example    TEXT,
        first_seen REAL NOT NULL,
        last_seen  REAL NOT NULL
    );
    """,
]


@dataclass(frozen=True, slots=True)
class LearnedRule:
    """Outcomes recorded for one signature, and whether they made it a learned rule."""

    signature: str
    successes: int
    failures: int
    base_rule: str | None
    example: str
    first_seen: float
    last_seen: float
    learned: bool

    @property
    def success_ratio(self) -> float:
        n = self.successes + self.failures
        return self.successes / n if n else 0.0


@dataclass(slots=True)
class _Row:
    successes: int
    failures: int
    base_rule: str | None
    example: str
    first_seen: float
    last_seen: float


class OutcomeBook:
    """Retry outcomes per signature, in memory with write-through to the store (if any)."""

    def __init__(self, store: Store | None = None, *, min_successes: int = 3, min_ratio: float = 0.8) -> None:
        if min_successes < 1 or not 0.0 < min_ratio <= 1.0:
            raise ValueError("need min_successes >= 1 and 0 < min_ratio <= 1")
        self.min_successes = min_successes
        self.min_ratio = min_ratio
        self._store = store
        self._lock = threading.Lock()
        self._rows: dict[str, _Row] = {}
        self._learned: set[str] = set()
        if store is not None:
            store.migrate("classify", MIGRATIONS)
            for r in store.query(
                "SELECT signature, successes, failures, base_rule, example, first_seen, last_seen "
                "FROM classify_outcomes"
            ):
                row = _Row(int(r[1]), int(r[2]), r[3], r[4] or "", float(r[5]), float(r[6]))
                self._rows[str(r[0])] = row
                self._update(str(r[0]), row)

    def _qualifies(self, row: _Row) -> bool:
        n = row.successes + row.failures
        return (
            row.base_rule in (None, FALLBACK_RULE)
            and row.successes >= self.min_successes
            and n > 0
            and row.successes / n >= self.min_ratio
        )

    def _update(self, sig: str, row: _Row) -> None:
        if self._qualifies(row):
            self._learned.add(sig)
        else:
            self._learned.discard(sig)

    def is_learned(self, signature: str) -> bool:
        return signature in self._learned

    def record(
        self, signature: str, succeeded: bool, *, now: float, base_rule: str | None, example: str
    ) -> LearnedRule:
        return self.add(
            signature, successes=int(succeeded), failures=int(not succeeded), now=now, base_rule=base_rule,
            example=example,
        )

    def add(
        self, signature: str, *, successes: int, failures: int, now: float, base_rule: str | None, example: str
    ) -> LearnedRule:
        """Add counts at once (one store write): what :meth:`record` does, for outcomes seen elsewhere."""
        if successes < 0 or failures < 0:
            raise ValueError("outcome counts cannot be negative")
        with self._lock:
            row = self._rows.get(signature)
            if row is None:
                row = _Row(0, 0, base_rule, example[:300], now, now)
                self._rows[signature] = row
            elif base_rule is not None:
                row.base_rule = base_rule
            row.successes += successes
            row.failures += failures
            row.last_seen = now
            self._update(signature, row)
            if self._store is not None:
                self._store.execute(
                    "INSERT INTO classify_outcomes"
                    "(signature, successes, failures, base_rule, example, first_seen, last_seen) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(signature) DO UPDATE SET "
                    "successes=excluded.successes, failures=excluded.failures, "
                    "base_rule=excluded.base_rule, last_seen=excluded.last_seen",
                    (signature, row.successes, row.failures, row.base_rule, row.example, row.first_seen, row.last_seen),
                )
            return self._view(signature, row)

    def _view(self, sig: str, row: _Row) -> LearnedRule:
        return LearnedRule(
            signature=sig,
            successes=row.successes,
            failures=row.failures,
            base_rule=row.base_rule,
            example=row.example,
            first_seen=row.first_seen,
            last_seen=row.last_seen,
            learned=sig in self._learned,
        )

    def learned(self) -> list[LearnedRule]:
        with self._lock:
            return sorted((self._view(s, self._rows[s]) for s in self._learned), key=lambda r: r.signature)

    def outcomes(self) -> list[LearnedRule]:
        with self._lock:
            return sorted((self._view(s, r) for s, r in self._rows.items()), key=lambda r: r.signature)

    def forget(self, signature: str) -> int:
        """Forget one signature, or everything with ``"*"``; returns how many were forgotten."""
        with self._lock:
            if signature == "*":
                n = len(self._rows)
                self._rows.clear()
                self._learned.clear()
                if self._store is not None:
                    self._store.execute("DELETE FROM classify_outcomes")
                return n
            existed = self._rows.pop(signature, None) is not None
            self._learned.discard(signature)
            if self._store is not None:
                self._store.execute("DELETE FROM classify_outcomes WHERE signature=?", (signature,))
            return int(existed)


__all__ = ["FALLBACK_RULE", "MIGRATIONS", "LearnedRule", "OutcomeBook"]
