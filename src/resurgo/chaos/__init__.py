"""Fault injection for chaos runs: network faults, process kills, machine pressure, the report.

These are the building blocks of ``resurgo chaos``.  Each injector writes what
it did, and when, to a shared :class:`FaultLog`, so the report can separate
justified alarms from false positives.  Everything is loopback-only and
bounded in time, count and size: a chaos tool must never harm the machine or
reach another host.
"""

from resurgo.chaos._faults import FaultLog, FaultWindow
from resurgo.chaos._kill import Candidate, KillRecord, ProcessKiller
from resurgo.chaos._pressure import Pressure, PressurePlan, memory_cap_mb, stress_ng_path
from resurgo.chaos._proxy import FaultConfig, FaultMode, FaultProxy, ProxyStats
from resurgo.chaos._report import (
    BreakerEvent,
    ChaosReport,
    ClassificationRecord,
    IncidentRecord,
    JobRecord,
    LeftoverProcess,
    TargetCheck,
    compute_report,
    new_files,
    new_processes,
    percentile,
    render_report,
    snapshot_files,
    snapshot_processes,
)
from resurgo.chaos._runner import ChaosConfig, ChaosError, ChaosRunner, run_chaos

__all__ = [
    "BreakerEvent",
    "Candidate",
    "ChaosConfig",
    "ChaosError",
    "ChaosReport",
    "ChaosRunner",
    "ClassificationRecord",
    "FaultConfig",
    "FaultLog",
    "FaultMode",
    "FaultProxy",
    "FaultWindow",
    "IncidentRecord",
    "JobRecord",
    "KillRecord",
    "LeftoverProcess",
    "Pressure",
    "PressurePlan",
    "ProcessKiller",
    "ProxyStats",
    "TargetCheck",
    "compute_report",
    "memory_cap_mb",
    "new_files",
    "new_processes",
    "percentile",
    "render_report",
    "run_chaos",
    "snapshot_files",
    "snapshot_processes",
    "stress_ng_path",
]
