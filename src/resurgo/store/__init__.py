"""Persistence: the SQLite store (default) that every component writes through.

:class:`RunStore` (``resurgo.store.runs``) holds every write to the run tables.
"""

from resurgo.store._sqlite import Migration, Store, StoreError, default_store_path
from resurgo.store.runs import FAULT_KINDS, RecoveryPhases, RunStore, summarize_phases

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
