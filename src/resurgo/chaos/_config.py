"""Configuration of a chaos run: the knobs, their validation, and the truth table of fault kinds.

Kept apart from the runner so the scorer, the injectors and the command line
share one definition of what each injected fault *is* (its true error type,
whether a supervisor can recover from it, which recovery-breakdown bucket it
belongs to) without importing the process machinery.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from resurgo.mockapi._shapes import tool_wait

#: True error type of each fault kind the stand-in can inject (``RequestRecord.fault``).
API_FAULT_TYPES: dict[str, str] = {
    "529": "resource",
    "503": "resource",
    "429": "resource",
    "500": "internal",
    "502": "network",
    "504": "timeout",
    "408": "timeout",
    "401": "auth",
    "403": "auth",
    "400": "validation",
    "reset": "network",
    "cut": "network",
    "hang": "timeout",
}

#: True error type of each proxy fault mode (what the CLI sees when it hits it).
NET_FAULT_TYPES: dict[str, str | None] = {
    "reset": "network",
    "drop": "network",
    "cut": "network",
    "blackhole": "timeout",
    "delay": None,  # slow, not broken: should cause no failure at all
    "bandwidth": None,
}

#: The reset time (``retry-after``, seconds) the stand-in sends with each rate/overload fault the
#: run injects: a wait the server imposes, which the recovery time "excluding imposed waits" leaves out.
API_RETRY_AFTER: dict[str, float] = {"429": 2.0, "529": 1.0}

#: API fault kinds rotated through the run (one kind armed at a time, at ``fault_rate``).
API_PHASES: tuple[str, ...] = ("529", "429", "500", "hang", "cut", "reset")

#: Proxy faults rotated through the run: (mode, probability, delay).
NET_PHASES: tuple[tuple[str, float, float], ...] = (
    ("reset", 0.5, 0.0),
    ("drop", 0.5, 0.0),
    ("blackhole", 0.4, 0.0),
    ("delay", 1.0, 0.3),
)


class ChaosError(RuntimeError):
    """The chaos run could not be set up (no CLI, a bad setting); nothing was left running."""


@dataclass(frozen=True, kw_only=True)
class ChaosConfig:
    """A validated chaos run.  Defaults are the short acceptance run's.

    duration:
        Seconds of fault injection (the batch may finish earlier: the run then
        ends).  Jobs still running afterwards get ``drain_timeout`` seconds to
        finish without faults; what is still unfinished then is *lost*.
    jobs / concurrency:
        The batch size and how many jobs run at once.
    kill_every:
        Mean seconds between SIGKILLs of a CLI run or one of its tool children
        (None or 0: no kills).  Jittered +-50 % with the seed.
    fault_rate:
        Probability that any one API request fails (the kind rotates every
        ``phase_s`` seconds through 529, 429 with a reset time, 500, hang, cut
        stream, reset).  0 turns off API faults, network faults and the storm.
    seed:
        Seeds every random choice (victims, phases, the stand-in's dice).
    kill_supervisor:
        SIGKILL the supervisor once (twice in runs >= 120 s) and start a new
        one on the same store, which must finish the interrupted jobs.
    pressure:
        CPU (one busy worker per core at 60 %) and memory (<= 256 MB, capped by
        the machine) pressure for a quarter of the run.
    network / bursts / storm:
        Proxy faults every ~``net_every`` s; one burst (every CLI killed at once
        plus a cut of every live connection); one 529 storm of ``storm_s``
        seconds (every request fails), which is what opens the breaker; it
        goes on until the breaker has opened, up to ``3 * storm_s``.
    nonretryable_jobs:
        Jobs pointed at a second stand-in that answers 401: they must fail
        fast and clearly (auth, not retried); availability leaves them out.
        None: one when ``jobs >= 10`` and ``fault_rate > 0``, else none.
    steps / step_sleep:
        Bash tool calls per job (a wait of ``step_sleep`` s, see
        :func:`resurgo.mockapi.tool_wait`, then ``echo step N``): runs last
        a few seconds and have tool children to kill.
    api_timeout_ms / stall_timeout:
        The CLI's request timeout (a hang shows as "Request timed out") and the
        supervisor's no-output watchdog.
    max_recoveries:
        The supervisor's restart intensity per job.  A 20 % per-request fault
        rate with a kill every few seconds is far beyond production weather,
        so the default (5 per 10 min) would give up on jobs that are making
        progress; the value used is recorded in the report.
    supervisor:
        Overrides of the supervisor's settings (``SupervisorConfig`` fields:
        ``breaker`` thresholds, ``classify_rules``, ``max_recoveries``...),
        applied over the run's own.  The tests use it to break the supervisor on
        purpose -- a breaker that never opens, a deliberately wrong classifier,
        a supervisor that does not recover -- and show each gate failing.
    claude / workdir / keep:
        The CLI (default: ``$RESURGO_CLAUDE``, the repo's install, ``PATH``);
        where the run's files go (default: a new temp dir); keep it afterwards.
    """

    duration: float = 45.0
    jobs: int = 12
    concurrency: int = 4
    kill_every: float | None = 4.0
    fault_rate: float = 0.2
    seed: int = 1
    kill_supervisor: bool = False
    pressure: bool = False
    network: bool = True
    bursts: bool = True
    storm: bool = True
    storm_s: float = 4.0
    net_every: float = 9.0
    phase_s: float = 6.0
    nonretryable_jobs: int | None = None
    steps: int = 3
    step_sleep: float = 1.0
    api_timeout_ms: int = 6000
    stall_timeout: float = 20.0
    max_recoveries: int = 30
    drain_timeout: float | None = None
    supervisor: Mapping[str, Any] = field(default_factory=dict)
    claude: str | None = None
    workdir: str | None = None
    keep: bool = False

    def __post_init__(self) -> None:
        def num(name: str, lo: float, hi: float | None = None, *, none: bool = False) -> None:
            v = getattr(self, name)
            if v is None and none:
                return
            if isinstance(v, bool) or not isinstance(v, int | float) or v < lo or (hi is not None and v > hi):
                rng = f">= {lo}" if hi is None else f"within [{lo}, {hi}]"
                raise ValueError(f"chaos: {name} must be a number {rng}, got {v!r}")

        num("duration", 1.0, 24 * 3600.0)
        num("jobs", 1, 10_000)
        num("concurrency", 1, 64)
        num("kill_every", 0.0, none=True)
        num("fault_rate", 0.0, 1.0)
        num("storm_s", 0.5, 120.0)
        num("net_every", 1.0)
        num("phase_s", 0.5)
        num("nonretryable_jobs", 0, none=True)
        num("steps", 1, 50)
        num("step_sleep", 0.0, 60.0)
        num("api_timeout_ms", 500, 600_000)
        num("stall_timeout", 1.0)
        num("max_recoveries", 0)
        num("drain_timeout", 1.0, none=True)
        for name in ("jobs", "concurrency", "steps", "api_timeout_ms", "max_recoveries", "seed"):
            if not isinstance(getattr(self, name), int) or isinstance(getattr(self, name), bool):
                raise ValueError(f"chaos: {name} must be an integer, got {getattr(self, name)!r}")
        if self.nonretryable_jobs is not None and self.nonretryable_jobs > self.jobs:
            raise ValueError("chaos: nonretryable_jobs cannot exceed jobs")
        if not isinstance(self.supervisor, Mapping):
            raise ValueError(f"chaos: supervisor must be a mapping of supervisor settings, got {self.supervisor!r}")

    @property
    def kills(self) -> bool:
        return bool(self.kill_every)

    @property
    def n_nonretryable(self) -> int:
        if self.nonretryable_jobs is not None:
            return self.nonretryable_jobs
        return 1 if self.jobs >= 10 and self.fault_rate > 0 else 0

    @property
    def drain(self) -> float:
        return self.drain_timeout if self.drain_timeout is not None else max(60.0, self.duration)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["supervisor"] = dict(self.supervisor)
        return d


# ---------------------------------------------------------------------- helpers


def find_claude_cli(explicit: str | None = None) -> str:
    """The real CLI: explicit, ``$RESURGO_CLAUDE``, the repo's npm install, then ``PATH``."""
    cands = [explicit, os.environ.get("RESURGO_CLAUDE")]
    here = Path(__file__).resolve()
    cands += [str(p / ".tools/npm/node_modules/.bin/claude") for p in here.parents]
    cands.append(shutil.which("claude"))
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    raise ChaosError("the Claude Code CLI was not found: pass --claude, set RESURGO_CLAUDE, or put claude on PATH")


def job_prompt(i: int, steps: int, step_sleep: float) -> str:
    """A scripted job for the stand-in: ``steps`` Bash tool calls, then a final text."""
    # tool_wait: a long leading `sleep` is refused by newer CLIs (docs/cli-versions.md)
    calls = " ".join(f"[[bash: {tool_wait(step_sleep)}; echo job {i} step {k}]]" for k in range(1, steps + 1))
    return f"chaos job {i}: run these steps in order. {calls} [[text: job {i} done]]"


#: Faults a supervisor cannot recover from by retrying: the job must fail, clearly.
#: "Recoverable" is decided by the injected fault, never by the classifier's verdict.
NONRECOVERABLE_FAULTS: frozenset[str] = frozenset({"api:401", "api:403", "api:400"})

#: Faults that slow a run without breaking it: they explain no failure.
HARMLESS_FAULTS: frozenset[str] = frozenset({"net:delay", "net:bandwidth"})


def fault_recoverable(cause: str | None) -> bool:
    """Whether a run hit by ``cause`` (``"api:529"``, ``"kill:cli"``, ...) should recover by itself."""
    return cause not in NONRECOVERABLE_FAULTS


def fault_bucket(cause: str | None) -> str:
    """The recovery-breakdown bucket of a cause: kill, stall, 429, 529, 5xx, network, auth or other."""
    if cause is None:
        return "other"
    if cause.startswith("kill:") or cause == "burst":
        return "kill"
    if cause in ("api:hang", "net:blackhole"):
        return "stall"
    if cause == "api:429":
        return "429"
    if cause in ("api:529", "api:503"):
        return "529"
    if cause in ("api:500", "api:502", "api:504", "api:408"):
        return "5xx"
    if cause in ("api:reset", "api:cut") or cause.startswith("net:"):
        return "network"
    if cause in NONRECOVERABLE_FAULTS:
        return "auth"
    return "other"


#: The buckets in the order the report shows them.
FAULT_BUCKETS: tuple[str, ...] = ("kill", "stall", "429", "529", "5xx", "network", "auth", "other")


def job_route(i: int) -> str:
    """The route (fault-proxy listener and base-URL path prefix) of job ``i``."""
    return f"job-{i:03d}"


__all__ = [
    "API_FAULT_TYPES",
    "API_PHASES",
    "API_RETRY_AFTER",
    "FAULT_BUCKETS",
    "HARMLESS_FAULTS",
    "NET_FAULT_TYPES",
    "NET_PHASES",
    "NONRECOVERABLE_FAULTS",
    "ChaosConfig",
    "ChaosError",
    "fault_bucket",
    "fault_recoverable",
    "find_claude_cli",
    "job_prompt",
    "job_route",
]
