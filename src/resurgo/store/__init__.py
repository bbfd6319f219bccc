"""Persistence: the SQLite store (default) that every component writes through."""

from resurgo.store._sqlite import Migration, Store, StoreError, default_store_path

__all__ = ["Migration", "Store", "StoreError", "default_store_path"]
