"""Distributed mode: many supervisors on many hosts sharing state through Redis.

Optional (``pip install resurgo[redis]``); SQLite stays the default.  Shared
breakers (:class:`RedisBreakerSync`), a shared retry budget
(:class:`RedisRetryBudget`), shared learned rules (:class:`RedisLearning`),
all over one :class:`RedisLink` that keeps workers running on local state
while Redis is unreachable; and a fleet job queue on Redis Streams
(:class:`FleetQueue`, :class:`FleetWorker`, :func:`run_batch_via_redis`).

Names are loaded lazily so ``import resurgo.distributed`` does not import
redis-py or the supervisor until they are used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "RedisLink": "_link",
    "RedisBreakerSync": "_shared_breaker",
    "SharedBreakerState": "_shared_breaker",
    "RedisRetryBudget": "_budget",
    "RedisLearning": "_shared_learning",
    "FleetQueue": "_queue",
    "FleetJob": "_queue",
    "FleetResult": "_queue",
    "FleetWorker": "_fleet_worker",
    "run_batch_via_redis": "_queue",
}

if TYPE_CHECKING:
    from resurgo.distributed._budget import RedisRetryBudget
    from resurgo.distributed._fleet_worker import FleetWorker
    from resurgo.distributed._link import RedisLink
    from resurgo.distributed._queue import FleetJob, FleetQueue, FleetResult, run_batch_via_redis
    from resurgo.distributed._shared_breaker import RedisBreakerSync, SharedBreakerState
    from resurgo.distributed._shared_learning import RedisLearning


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'resurgo.distributed' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"resurgo.distributed.{mod}"), name)
    globals()[name] = value
    return value


__all__ = [
    "FleetJob",
    "FleetQueue",
    "FleetResult",
    "FleetWorker",
    "RedisBreakerSync",
    "RedisLearning",
    "RedisLink",
    "RedisRetryBudget",
    "SharedBreakerState",
    "run_batch_via_redis",
]
