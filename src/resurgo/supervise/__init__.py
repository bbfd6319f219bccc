"""Supervised Claude Code runs: the Supervisor API, its configuration, results and typed events.

Everything public is re-exported here; the modules behind it are private.
``events`` is the module of typed events (``from resurgo.supervise import events``).
Names are imported on first use (``resurgo._lazy``), so importing one private module (the
configuration schema reads ``resurgo.supervise._config``; ``resurgo run``
starts the CLI before loading the rest) does not load the whole supervisor.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from resurgo import _lazy

if TYPE_CHECKING:
    from resurgo.supervise import _events as events
    from resurgo.supervise._alerts import Alert, AlertManager
    from resurgo.supervise._config import ConfigError, SupervisorConfig, default_breaker_thresholds
    from resurgo.supervise._events import (
        EXIT_AUTH,
        EXIT_FAILED,
        EXIT_INTERNAL,
        EXIT_INTERRUPTED,
        EXIT_NOT_RETRYABLE,
        EXIT_OK,
        EXIT_USAGE,
        AttemptStarted,
        BreakerStateChanged,
        BudgetBypassed,
        CliEvent,
        FailureDetected,
        JobFailedError,
        JobFinished,
        JobQueued,
        JobResult,
        RecoveryPlanned,
        Restored,
        SupervisorEvent,
        ToolStarted,
        Waiting,
        exit_status_for,
    )
    from resurgo.supervise._jobstore import JobState, JobStoreError
    from resurgo.supervise._process import ClaudeNotFoundError, find_claude
    from resurgo.supervise._supervisor import JobHandle, JobSpec, Supervisor, SyncSupervisor

_EXPORTS: dict[str, str] = {
    "Alert": "resurgo.supervise._alerts",
    "AlertManager": "resurgo.supervise._alerts",
    "AttemptStarted": "resurgo.supervise._events",
    "BreakerStateChanged": "resurgo.supervise._events",
    "BudgetBypassed": "resurgo.supervise._events",
    "ClaudeNotFoundError": "resurgo.supervise._process",
    "CliEvent": "resurgo.supervise._events",
    "ConfigError": "resurgo.supervise._config",
    "EXIT_AUTH": "resurgo.supervise._events",
    "EXIT_FAILED": "resurgo.supervise._events",
    "EXIT_INTERNAL": "resurgo.supervise._events",
    "EXIT_INTERRUPTED": "resurgo.supervise._events",
    "EXIT_NOT_RETRYABLE": "resurgo.supervise._events",
    "EXIT_OK": "resurgo.supervise._events",
    "EXIT_USAGE": "resurgo.supervise._events",
    "FailureDetected": "resurgo.supervise._events",
    "JobFailedError": "resurgo.supervise._events",
    "JobFinished": "resurgo.supervise._events",
    "JobHandle": "resurgo.supervise._supervisor",
    "JobQueued": "resurgo.supervise._events",
    "JobResult": "resurgo.supervise._events",
    "JobSpec": "resurgo.supervise._supervisor",
    "JobState": "resurgo.supervise._jobstore",
    "JobStoreError": "resurgo.supervise._jobstore",
    "RecoveryPlanned": "resurgo.supervise._events",
    "Restored": "resurgo.supervise._events",
    "Supervisor": "resurgo.supervise._supervisor",
    "SupervisorConfig": "resurgo.supervise._config",
    "SupervisorEvent": "resurgo.supervise._events",
    "SyncSupervisor": "resurgo.supervise._supervisor",
    "ToolStarted": "resurgo.supervise._events",
    "Waiting": "resurgo.supervise._events",
    "default_breaker_thresholds": "resurgo.supervise._config",
    "events": "resurgo.supervise._events",
    "exit_status_for": "resurgo.supervise._events",
    "find_claude": "resurgo.supervise._process",
}


def __getattr__(name: str) -> Any:
    if name == "events":  # the module itself, not a name in it
        globals()[name] = module = importlib.import_module(_EXPORTS[name])
        return module
    return _lazy.load(__name__, _EXPORTS, name, globals())


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "EXIT_AUTH",
    "EXIT_FAILED",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_RETRYABLE",
    "EXIT_OK",
    "EXIT_USAGE",
    "Alert",
    "AlertManager",
    "AttemptStarted",
    "BreakerStateChanged",
    "BudgetBypassed",
    "ClaudeNotFoundError",
    "CliEvent",
    "ConfigError",
    "FailureDetected",
    "JobFailedError",
    "JobFinished",
    "JobHandle",
    "JobQueued",
    "JobResult",
    "JobSpec",
    "JobState",
    "JobStoreError",
    "RecoveryPlanned",
    "Restored",
    "Supervisor",
    "SupervisorConfig",
    "SupervisorEvent",
    "SyncSupervisor",
    "ToolStarted",
    "Waiting",
    "default_breaker_thresholds",
    "events",
    "exit_status_for",
    "find_claude",
]
