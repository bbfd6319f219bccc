"""Persistence: the SQLite store (default) that every component writes through.

:class:`RunStore` (``resurgo.store.runs``) holds every write to the run tables.
Names are imported on first use (see ``resurgo._lazy``): the configuration
schema reads :class:`Store` without loading the run tables' code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from resurgo import _lazy

if TYPE_CHECKING:
    from resurgo.store._sqlite import Migration, Store, StoreError, default_store_path
    from resurgo.store.runs import FAULT_KINDS, RecoveryPhases, RunStore, summarize_phases

_EXPORTS: dict[str, str] = {
    "FAULT_KINDS": "resurgo.store.runs",
    "Migration": "resurgo.store._sqlite",
    "RecoveryPhases": "resurgo.store.runs",
    "RunStore": "resurgo.store.runs",
    "Store": "resurgo.store._sqlite",
    "StoreError": "resurgo.store._sqlite",
    "default_store_path": "resurgo.store._sqlite",
    "summarize_phases": "resurgo.store.runs",
}

__all__ = [
    "FAULT_KINDS",
    "Migration",
    "RecoveryPhases",
    "RunStore",
    "Store",
    "StoreError",
    "default_store_path",
    "summarize_phases",
]


def __getattr__(name: str) -> Any:
    return _lazy.load(__name__, _EXPORTS, name, globals())


def __dir__() -> list[str]:
    return sorted(__all__)
