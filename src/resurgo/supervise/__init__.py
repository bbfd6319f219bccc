"""Supervised Claude Code runs: the Supervisor API, its configuration, results and typed events.

Everything public is re-exported here; the modules behind it are private.
``events`` is the module of typed events (``from resurgo.supervise import events``).
"""

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
from resurgo.supervise._jobs import JobState, JobStoreError
from resurgo.supervise._process import ClaudeNotFoundError, find_claude
from resurgo.supervise._supervisor import JobHandle, JobSpec, Supervisor, SyncSupervisor

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
