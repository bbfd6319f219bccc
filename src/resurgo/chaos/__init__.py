"""Fault injection for chaos runs: network faults, process kills, machine pressure, the report.

These are the building blocks of ``resurgo chaos``: settings (``_config``),
one injector per fault kind (``_inject``), the timetable (``_schedule``), the
process machinery (``_runner``, ``_worker``), attribution and scoring
(``_score``) and the report (``_report``).  Each injector logs which job each
fault reached (the stand-in per base-URL route, the proxy per listening port,
the killer per pid), so every alarm is judged per job and per attempt; the
shared :class:`FaultLog` keeps *when*, for the post-mortem.  Everything is loopback-only and
bounded in time, count and size: a chaos tool must never harm the machine or
reach another host.
"""

from resurgo.chaos._config import ChaosConfig, ChaosError
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
from resurgo.chaos._runner import ChaosRunner, run_chaos

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
