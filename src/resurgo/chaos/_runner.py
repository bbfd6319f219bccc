"""``resurgo chaos``: a batch through the real CLI and the supervisor while faults rain on it.

The runner wires the building blocks together on loopback only:

    claude (real CLI) --ANTHROPIC_BASE_URL--> FaultProxy --> MockServer (stand-in)
         ^ started, watched, killed, resumed by the Supervisor (in a worker process)

and, on a seeded schedule bounded by ``duration``, injects every fault the
issue names: SIGKILL of CLI runs and of their Bash tool children, network
faults in the proxy (reset, drop, blackhole, delay, cuts of live connections),
API faults in the stand-in at ``fault_rate`` (529 storms, 429 with reset times,
500s, hangs, cut streams, resets), CPU and memory pressure, bursts of
simultaneous failures and -- with ``kill_supervisor`` -- the supervisor itself
SIGKILLed and started again on the same store.

Why the supervisor lives in a worker process (:mod:`resurgo.chaos._worker`):
killing it must be real, and whatever happens to it the runner keeps measuring.

The report is computed from the ground truth of the run, never from what the
supervisor says about itself alone:

* jobs and attempts come from the store (it outlives supervisor crashes);
* each failed attempt is matched to the fault that caused it, *for that job*:
  a faulted request of the job's session in the stand-in's request log, a kill
  of the attempt's CLI, a watchdog kill after a hang, the supervisor's death,
  or (coarser) a proxy fault active during the attempt.  The injected fault's
  true error type is compared with the classifier's verdict: that is the
  classification accuracy;
* breaker threshold crossings and rejections come from a listener in the
  worker (nothing else records rejections);
* every actual fault (each faulted request, each kill) is a window in the
  :class:`FaultLog`, so an alarm with no fault nearby is a false positive;
* leftover processes and temp files are found by comparing snapshots.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from resurgo.chaos._faults import FaultLog, FaultWindow
from resurgo.chaos._kill import Candidate, KillRecord, ProcessKiller
from resurgo.chaos._pressure import Pressure, memory_cap_mb
from resurgo.chaos._proxy import FaultProxy
from resurgo.chaos._report import (
    BreakerEvent,
    ChaosReport,
    IncidentRecord,
    JobRecord,
    LeftoverProcess,
    _breaker_reactions,
    compute_report,
    new_files,
    new_processes,
    percentile,
    snapshot_files,
    snapshot_processes,
)
from resurgo.mockapi._shapes import tool_wait

log = logging.getLogger("resurgo.chaos")

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
        seconds (every request fails), which is what opens the breaker.
    nonretryable_jobs:
        Jobs pointed at a second stand-in that answers 401: they must fail
        fast and clearly (auth, not retried); availability leaves them out.
        None: one when ``jobs >= 10`` and ``fault_rate > 0``, else none.
    steps / step_sleep:
        Bash tool calls per job (a wait of ``step_sleep`` s, then ``echo step N``;
        see :func:`resurgo.mockapi.tool_wait`): runs last
        a few seconds and have tool children to kill.
    api_timeout_ms / stall_timeout:
        The CLI's request timeout (a hang shows as "Request timed out") and the
        supervisor's no-output watchdog.
    max_recoveries:
        The supervisor's restart intensity per job.  A 20 % per-request fault
        rate with a kill every few seconds is far beyond production weather,
        so the default (5 per 10 min) would give up on jobs that are making
        progress; the value used is recorded in the report.
    grace:
        Seconds after a fault in which an alarm is still blamed on it; at least
        the API timeout plus 2 s, since a hang shows only when the timeout fires.
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
    grace: float | None = None
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
        num("grace", 0.0, none=True)
        for name in ("jobs", "concurrency", "steps", "api_timeout_ms", "max_recoveries", "seed"):
            if not isinstance(getattr(self, name), int) or isinstance(getattr(self, name), bool):
                raise ValueError(f"chaos: {name} must be an integer, got {getattr(self, name)!r}")
        if self.nonretryable_jobs is not None and self.nonretryable_jobs > self.jobs:
            raise ValueError("chaos: nonretryable_jobs cannot exceed jobs")

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

    @property
    def fp_grace(self) -> float:
        return self.grace if self.grace is not None else max(5.0, self.api_timeout_ms / 1000.0 + 2.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


@dataclass
class _Attempt:
    id: int
    job_id: str
    n: int
    session_id: str | None
    pid: int | None
    started_at: float
    first_event_at: float | None
    ended_at: float | None
    signal: int | None
    killed_by: str | None
    outcome: str | None
    error: dict[str, Any] | None


@dataclass
class Attribution:
    """Why one failed attempt failed, as far as the injected faults tell."""

    cause: str
    expected_type: str | None
    at: float


@dataclass
class RunArtifacts:
    """The raw records of a run, kept for scoring and for the post-mortem."""

    started_at: float = 0.0
    ended_at: float = 0.0
    jobs: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[_Attempt] = field(default_factory=list)
    expected_failure_ids: set[str] = field(default_factory=set)
    api_faults: list[tuple[float, str | None, str]] = field(default_factory=list)  # (time, session, kind)
    kills: list[KillRecord] = field(default_factory=list)
    supervisor_kills: list[float] = field(default_factory=list)
    breaker_events: list[BreakerEvent] = field(default_factory=list)
    job_breaker_events: list[BreakerEvent] = field(default_factory=list)  # without the worker's probes
    leaked_processes: list[LeftoverProcess] = field(default_factory=list)
    leaked_temp_files: list[str] = field(default_factory=list)
    worker_exits: list[int | None] = field(default_factory=list)


# ---------------------------------------------------------------------- attribution


def attribute(
    a: _Attempt,
    *,
    sessions: set[str],
    api_faults: Iterable[tuple[float, str | None, str]],
    kills: Iterable[KillRecord],
    supervisor_kills: Iterable[float],
    windows: Iterable[FaultWindow],
    slack: float = 1.0,
) -> Attribution | None:
    """The injected fault that ended attempt ``a`` (of a job whose sessions are ``sessions``).

    A SIGKILL we sent to the attempt's own CLI, which then died of SIGKILL, is
    certain and wins outright.  Otherwise exact evidence about *this* job wins, latest first (a faulted request of
    its session, a kill of its CLI or tool, its watchdog firing after a hang,
    the supervisor's death); only without any does a proxy fault active during
    the attempt explain it (the proxy does not know which job a connection
    serves).  None: nothing injected explains the failure.
    """
    windows = list(windows)  # walked more than once below
    start = a.started_at - slack
    end = (a.ended_at if a.ended_at is not None else float("inf")) + slack
    exact: list[Attribution] = []
    for t, sid, kind in api_faults:
        if sid is not None and sid in sessions and start <= t <= end:
            exact.append(Attribution(f"api:{kind}", API_FAULT_TYPES.get(kind), t))
    for k in kills:
        if not k.ok or not start <= k.time <= end or a.pid is None:
            continue
        if k.pid == a.pid:
            exact.append(Attribution("kill:cli", "process", k.time))
        elif k.root == a.pid:
            # a tool child died: the CLI reports it to the model and carries on; if the
            # attempt failed anyway there is no clean truth to compare with
            exact.append(Attribution("kill:tool", None, k.time))
    for t in supervisor_kills:
        if start <= t <= end:
            exact.append(Attribution("kill:supervisor", None, t))
    for w in windows:
        # a cut of every live connection is time-exact; it counts only before the attempt ended
        if w.kind == "net:cut_all" and a.started_at <= w.start <= (a.ended_at if a.ended_at is not None else w.start):
            exact.append(Attribution("net:cut_all", _after_cut(w, windows), w.start))
    if a.killed_by == "stall_watchdog" and a.ended_at is not None:
        exact.append(Attribution("watchdog:hang", "timeout", a.ended_at - 1e-3))
    sup = [x for x in exact if x.cause == "kill:supervisor"]
    if sup and a.outcome == "lost":
        # the orphaned CLI may go on (and meet faults) until the next supervisor ends it; the
        # attempt was lost when its supervisor died
        return sup[0]
    cli_kills = [x for x in exact if x.cause == "kill:cli"]
    if cli_kills and a.signal == signal.SIGKILL:
        # we SIGKILLed this very process and it died of SIGKILL: nothing else can have ended it,
        # even if a faulted request was logged a moment later (the stand-in stamps a request
        # when it has read it, which can trail the kill)
        return cli_kills[-1]
    if exact:
        # the API fault that makes the CLI hang is the cause of the watchdog kill, not a rival
        best = max(exact, key=lambda x: x.at)
        if best.cause == "watchdog:hang":
            hangs = [x for x in exact if x.cause in ("api:hang",)]
            if hangs:
                return Attribution("api:hang", "timeout", hangs[-1].at)
        return best
    coarse: list[Attribution] = []
    for w in windows:
        if not w.kind.startswith("net:") or w.kind == "net:cut_all":
            continue
        mode = w.kind.split(":", 1)[1]
        w_end = w.end if w.end is not None else float("inf")
        if w.start <= end and w_end >= start:
            exp = NET_FAULT_TYPES.get(mode)
            coarse.append(Attribution(w.kind, exp, min(w_end, end)))
    if coarse:
        typed = [c for c in coarse if c.expected_type is not None]
        pool = typed or coarse
        return max(pool, key=lambda x: x.at)
    return None


def _after_cut(cut: FaultWindow, windows: Iterable[FaultWindow]) -> str:
    """The true type of a failure that follows a cut of every live connection.

    A cut makes the CLI dial again (it retries a broken stream once by itself),
    into whatever mode the proxy was armed with at that moment: into a
    blackhole the retry hangs until the CLI's request timeout, so the run fails
    with a timeout, not a network error; into resets or drops it is a network
    failure, as it is when nothing else is armed.
    """
    for w in windows:
        if not w.kind.startswith("net:") or w.kind == "net:cut_all":
            continue
        if w.start <= cut.start + 0.5 and (w.end is None or w.end >= cut.start):
            t = NET_FAULT_TYPES.get(w.kind.split(":", 1)[1])
            if t is not None:
                return t
    return "network"


# ---------------------------------------------------------------------- the runner


class ChaosRunner:
    """One chaos run; :meth:`run` returns the :class:`ChaosReport` (and always cleans up).

    ``progress`` receives short human-readable lines (the CLI prints them).
    """

    def __init__(self, config: ChaosConfig | None = None, *, progress: Callable[[str], None] | None = None) -> None:
        self.config = config or ChaosConfig()
        self._progress = progress or (lambda s: log.info("%s", s))
        self._rng = random.Random(self.config.seed)
        self.faults = FaultLog()
        self.armed = FaultLog()  # when each API fault kind was armed (for the post-mortem)
        self.art = RunArtifacts()
        self._worker: subprocess.Popen[bytes] | None = None
        self._worker_logs: list[Any] = []
        self._worker_n = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.root: Path | None = None
        self._pressure: Pressure | None = None
        self.report: ChaosReport | None = None

    # -- set-up -------------------------------------------------------------------------------------
    def _dirs(self) -> Path:
        c = self.config
        if c.workdir:
            root = Path(c.workdir).resolve()
            root.mkdir(parents=True, exist_ok=True)
            root = Path(tempfile.mkdtemp(prefix="chaos-", dir=root))
        else:
            root = Path(tempfile.mkdtemp(prefix="resurgo-chaos-"))
        for d in ("home", "tmp", "jobs", "logs"):
            (root / d).mkdir()
        return root

    def _spec(self, root: Path, claude: str, base_url: str, auth_url: str | None) -> dict[str, Any]:
        c = self.config
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(root / "home"),
            "LANG": "C.UTF-8",
            "ANTHROPIC_API_KEY": "sk-chaos-not-a-real-key",
            "ANTHROPIC_BASE_URL": base_url,
            "API_TIMEOUT_MS": str(c.api_timeout_ms),
            "DISABLE_TELEMETRY": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
        }
        jobs = []
        n_bad = c.n_nonretryable
        # spread the non-retryable jobs through the batch, deterministically from the seed
        bad = set(self._rng.sample(range(c.jobs), n_bad)) if n_bad else set()
        for i in range(c.jobs):
            d = root / "jobs" / f"job-{i:03d}"
            d.mkdir()
            j: dict[str, Any] = {
                "prompt": job_prompt(i, c.steps, c.step_sleep),
                "cwd": str(d),
                "idem_key": f"chaos-{c.seed}-{i}",
                "name": f"chaos-{i}",
                "env": {},
            }
            if i in bad and auth_url is not None:
                j["env"] = {"ANTHROPIC_BASE_URL": auth_url}
                j["name"] = f"chaos-{i}-auth"
            jobs.append(j)
        return {
            "store": str(root / "store.db"),
            "claude": claude,
            "env": env,
            "concurrency": c.concurrency,
            "config": {
                "stall_timeout": c.stall_timeout,
                "kill_grace": 1.0,
                "backoff_base": 0.2,
                "backoff_cap": 2.0,
                "cli_max_retries": 0,
                "max_recoveries": c.max_recoveries,
                "recovery_period": 600.0,
                "health_interval": 2.0,
                "claude_args": ["--allowedTools", "Bash"],
            },
            "jobs": jobs,
            "breaker_log": str(root / "breaker.jsonl"),
            "results": str(root / "results.jsonl"),
        }

    # -- the worker (supervisor) process ---------------------------------------------------------------
    def _start_worker(self, spec_path: Path) -> None:
        assert self.root is not None
        self._worker_n += 1
        out = open(self.root / "logs" / f"worker-{self._worker_n}.log", "wb")  # noqa: SIM115 (closed in _cleanup)
        self._worker_logs.append(out)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_"))}
        env["TMPDIR"] = str(self.root / "tmp")  # the attempts' private temp dirs go here: leaks are visible
        env["PYTHONUNBUFFERED"] = "1"
        self._worker = subprocess.Popen(  # noqa: S603 (our own interpreter and module, no shell)
            [sys.executable, "-m", "resurgo.chaos._worker", str(spec_path)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(self.root),
            start_new_session=True,  # Ctrl-C of the runner must not reach it; we end it ourselves
        )

    def _worker_pid(self) -> int | None:
        w = self._worker
        return w.pid if w is not None and w.poll() is None else None

    def _cli_pids(self) -> list[int]:
        """The supervisor's CLI runs right now (its direct children)."""
        pid = self._worker_pid()
        if pid is None:
            return []
        try:
            return [p.pid for p in psutil.Process(pid).children() if p.status() != psutil.STATUS_ZOMBIE]
        except psutil.Error:
            return []

    def _kill_supervisor(self, spec_path: Path) -> None:
        w = self._worker
        if w is None or w.poll() is not None:
            return
        t = time.time()
        w.kill()
        w.wait(10)
        self.art.worker_exits.append(w.returncode)
        self.art.supervisor_kills.append(t)
        self.faults.instant("kill:supervisor", f"pid {w.pid}", at=t)
        wid = self.faults.open("supervisor:down", "supervisor", detail="between the kill and the restart")
        self._progress(f"chaos: supervisor (pid {w.pid}) SIGKILLed; restarting it on the same store")
        time.sleep(1.0)
        self._start_worker(spec_path)
        self.faults.close(wid)

    # -- the schedule ---------------------------------------------------------------------------------
    def _schedule(self, spec_path: Path, srv: Any, proxy: FaultProxy) -> None:
        """Inject faults until ``duration`` passes or the batch is done; runs in the calling thread."""
        from resurgo.mockapi import Faults

        c = self.config
        rng = self._rng
        t0 = time.monotonic()
        end = t0 + c.duration

        def tick_in(mean: float) -> float:
            return time.monotonic() + mean * rng.uniform(0.5, 1.5)

        cli_killer = ProcessKiller(
            self._cli_pids, include_roots=True, match=lambda cd: cd.depth == 0, duration=c.duration + 1,
            seed=rng.randrange(1 << 30), fault_log=self.faults,
        )
        tool_killer = ProcessKiller(
            self._cli_pids, include_roots=False, match=_is_tool, duration=c.duration + 1,
            seed=rng.randrange(1 << 30), fault_log=self.faults,
        )
        next_kill = tick_in(c.kill_every) if c.kills and c.kill_every else float("inf")
        api_on = c.fault_rate > 0
        phases = list(API_PHASES)
        rng.shuffle(phases)
        phase_i = 0
        next_phase = time.monotonic()
        api_wid: int | None = None
        net_on = c.network and c.fault_rate > 0
        next_net = tick_in(c.net_every) if net_on else float("inf")
        net_end: float | None = None
        net_i = 0
        storm_at = t0 + c.duration * 0.3 if c.storm and api_on else float("inf")
        storm_end: float | None = None
        burst_at = t0 + c.duration * 0.6 if c.bursts else float("inf")
        sup_kills: list[float] = []
        if c.kill_supervisor:
            n = 2 if c.duration >= 120 else 1
            sup_kills = [t0 + c.duration * (k + 1) / (n + 1) * 0.9 for k in range(n)]
        pressure: Pressure | None = None
        pressure_at = t0 + c.duration * 0.2 if c.pressure else float("inf")

        def arm(kind: str, *, probability: float) -> None:
            nonlocal api_wid
            if api_wid is not None:
                self.armed.close(api_wid)
                api_wid = None
            seed = rng.randrange(1 << 30)
            if kind == "off":
                srv.clear_faults()
                return
            kw: dict[str, Any] = {"probability": probability, "seed": seed}
            if kind.isdigit():
                kw["status"] = int(kind)
                if kind in ("429", "529"):
                    kw["retry_after"] = 2.0 if kind == "429" else 1.0
            elif kind == "hang":
                kw["hang"] = True
            elif kind == "cut":
                kw["cut_after"] = 2
            elif kind == "reset":
                kw["reset"] = True
            srv.set_faults(Faults(**kw))
            api_wid = self.armed.open(f"api:{kind}", "stand-in", detail=f"p={probability}")

        try:
            while not self._stop.is_set():
                now = time.monotonic()
                w = self._worker
                if w is not None and w.poll() is not None:
                    break  # the batch is done (or the supervisor died on its own: the report will say)
                if now >= end:
                    break
                # supervisor kill
                if sup_kills and now >= sup_kills[0]:
                    sup_kills.pop(0)
                    self._kill_supervisor(spec_path)
                    continue
                # API fault phases and the storm
                if api_on:
                    if storm_end is None and now >= storm_at:
                        storm_end = now + c.storm_s
                        storm_at = float("inf")
                        arm("529", probability=1.0)
                        self._progress(f"chaos: 529 storm for {c.storm_s:g} s")
                    elif storm_end is not None and now >= storm_end:
                        storm_end = None
                        next_phase = now
                    if storm_end is None and now >= next_phase:
                        arm(phases[phase_i % len(phases)], probability=c.fault_rate)
                        phase_i += 1
                        next_phase = now + c.phase_s
                # network faults
                if net_on:
                    if net_end is not None and now >= net_end:
                        proxy.clear()
                        net_end = None
                        next_net = tick_in(c.net_every)
                    elif net_end is None and now >= next_net:
                        mode, p, delay = NET_PHASES[net_i % len(NET_PHASES)]
                        net_i += 1
                        proxy.set_mode(mode, probability=p, delay=delay)
                        n_cut = proxy.cut_all()  # the CLI keeps connections alive: make it dial again
                        if n_cut:
                            self.faults.instant("net:cut_all", proxy.name, detail=f"{n_cut} connection(s)")
                        net_end = now + rng.uniform(2.0, 3.0)
                # kills
                if now >= next_kill:
                    next_kill = tick_in(c.kill_every or 1.0)
                    first, second = (cli_killer, tool_killer) if rng.random() < 0.65 else (tool_killer, cli_killer)
                    rec = first.kill_one() or second.kill_one()
                    if rec is not None and rec.ok:
                        self.art.kills.append(rec)
                # a burst of simultaneous failures
                # (postponed while fewer than two runs are alive: a breaker may hold every job back)
                if now >= burst_at and len(self._cli_pids()) >= min(2, c.concurrency):
                    burst_at = float("inf")
                    with self.faults.window("burst", "all CLI runs", detail="every CLI killed + live connections cut"):
                        n = 0
                        for _ in range(c.concurrency + 2):
                            rec = cli_killer.kill_one()
                            if rec is None:
                                break
                            if rec.ok:
                                self.art.kills.append(rec)
                                n += 1
                        n_cut = proxy.cut_all()
                        if n_cut:
                            self.faults.instant("net:cut_all", proxy.name, detail=f"burst: {n_cut} connection(s)")
                    self._progress(f"chaos: burst: {n} CLI run(s) killed at once, {n_cut} connection(s) cut")
                # pressure
                if now >= pressure_at:
                    pressure_at = float("inf")
                    mem = min(256, memory_cap_mb())
                    pressure = Pressure(
                        cpu_workers=os.cpu_count() or 1, cpu_load=60, memory_mb=mem,
                        duration=max(2.0, c.duration / 4), fault_log=self.faults,
                    ).start()
                    self._pressure = pressure
                    self._progress(f"chaos: {pressure.backend} pressure: {pressure.plan.cpu_workers} CPU worker(s), "
                                   f"{pressure.plan.memory_mb} MB for {pressure.plan.duration:g} s")
                self._stop.wait(0.1)
        finally:
            arm("off", probability=0.0)
            proxy.clear()
            if pressure is not None:
                pressure.stop()

    # -- the run ----------------------------------------------------------------------------------------
    def run(self) -> ChaosReport:
        """Run the chaos batch and score it; every process and port is ended, even on failure."""
        c = self.config
        claude = find_claude_cli(c.claude)
        # The proxy and the stand-in write to sockets the chaos just broke; asyncio warns
        # "socket.send() raised exception." for each: expected here, noise on the console.
        aio_log = logging.getLogger("asyncio")
        aio_level = aio_log.level
        aio_log.setLevel(logging.ERROR)
        try:
            return self._run(claude)
        finally:
            aio_log.setLevel(aio_level)

    def _run(self, claude: str) -> ChaosReport:
        from resurgo.mockapi import Faults, MockServer

        c = self.config
        self.root = root = self._dirs()
        procs_before = snapshot_processes()
        files_before = snapshot_files([root / "tmp"])
        srv = MockServer(host="127.0.0.1", port=0, record_bodies=False)
        auth_srv: MockServer | None = None
        proxy: FaultProxy | None = None
        started = time.time()
        completed = False
        try:
            srv.start()
            if c.n_nonretryable:
                auth_srv = MockServer(host="127.0.0.1", port=0, record_bodies=False, faults=Faults(status=401))
                auth_srv.start()
            proxy = FaultProxy(upstream=("127.0.0.1", srv.port), seed=c.seed, fault_log=self.faults, name="proxy")
            proxy.start()
            spec = self._spec(root, claude, proxy.url, auth_srv.url if auth_srv else None)
            self.art.expected_failure_ids = {j["idem_key"] for j in spec["jobs"] if j["env"]}
            spec_path = root / "spec.json"
            spec_path.write_text(json.dumps(spec, indent=1))
            self._progress(
                f"chaos: {c.jobs} job(s) x {c.steps} step(s), concurrency {c.concurrency}, {c.duration:g} s of faults, "
                f"kill every {c.kill_every or 0:g} s, fault rate {c.fault_rate:g}, seed {c.seed} (in {root})"
            )
            started = time.time()
            self._start_worker(spec_path)
            self._schedule(spec_path, srv, proxy)
            self.faults.close_all()
            self.armed.close_all()
            self._progress("chaos: fault injection over; waiting for the batch to finish")
            self._drain()
            completed = True
        finally:
            ended = time.time()
            self._stop.set()
            self._end_worker()
            if self._pressure is not None:
                with contextlib.suppress(Exception):
                    self._pressure.stop()
            self.faults.close_all()
            self.armed.close_all()
            try:
                self._collect(root, srv, auth_srv)
            finally:
                if proxy is not None:
                    with contextlib.suppress(Exception):
                        proxy.stop()
                for s in (srv, auth_srv):
                    if s is not None:
                        with contextlib.suppress(Exception):
                            s.stop()
                for f in self._worker_logs:
                    with contextlib.suppress(Exception):
                        f.close()
                # also on failure: whatever the run left (a CLI orphaned by a supervisor kill that
                # was never followed by a restart) is found and ended here
                self._leftovers(root, procs_before, files_before)
                try:
                    if completed:  # a failed run propagates its error; a half-collected score would hide it
                        self.art.started_at, self.art.ended_at = started, ended
                        self.report = self._score()
                finally:
                    if not c.keep:
                        shutil.rmtree(root, ignore_errors=True)
        assert self.report is not None
        return self.report

    def _drain(self) -> None:
        w = self._worker
        if w is None:
            return
        try:
            w.wait(self.config.drain)
        except subprocess.TimeoutExpired:
            self._progress(f"chaos: the batch did not finish within {self.config.drain:g} s of the end; stopping it")

    def _end_worker(self) -> None:
        """SIGTERM (the supervisor closes cleanly, jobs stay resumable), then SIGKILL."""
        w = self._worker
        if w is None:
            return
        if w.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                w.send_signal(signal.SIGTERM)
            try:
                w.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(w.pid, signal.SIGKILL)
                w.wait(5)
        self.art.worker_exits.append(w.returncode)

    # -- collection -------------------------------------------------------------------------------------
    def _collect(self, root: Path, srv: Any, auth_srv: Any) -> None:
        from resurgo.store import Store

        for s in (srv, auth_srv):
            if s is None:
                continue
            for r in s.requests:
                if r.fault is not None and r.path == "/v1/messages":
                    self.art.api_faults.append((r.time, r.session_id, r.fault))
        for t, sid, kind in self.art.api_faults:
            if kind == "hang":
                # a hang shows when the client's timeout fires, not when the request arrived
                wid = self.faults.open(f"api:{kind}", f"session {sid}", at=t)
                self.faults.close(wid, at=t + self.config.api_timeout_ms / 1000.0)
            else:
                self.faults.instant(f"api:{kind}", f"session {sid}", at=t)
        blog = root / "breaker.jsonl"
        if blog.exists():
            for line in blog.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    d = json.loads(line)
                    ev = BreakerEvent(float(d["at"]), str(d["breaker"]), d["kind"])
                    self.art.breaker_events.append(ev)
                    if not d.get("probe"):
                        self.art.job_breaker_events.append(ev)
        db = root / "store.db"
        if not db.exists():
            return
        store = Store(str(db))
        try:
            self.art.jobs = [dict(r) for r in store.query(
                "SELECT id, idem_key, name, state, created_at, started_at, finished_at, attempts, recoveries,"
                " error_json FROM jobs"
            )]
            for r in store.query(
                "SELECT id, job_id, n, session_id, pid, started_at, first_event_at, ended_at, signal, killed_by,"
                " outcome, error_json FROM attempts ORDER BY job_id, n, id"
            ):
                err = None
                with contextlib.suppress(ValueError, TypeError):
                    err = json.loads(r["error_json"]) if r["error_json"] else None
                self.art.attempts.append(_Attempt(
                    id=r["id"], job_id=r["job_id"], n=r["n"], session_id=r["session_id"], pid=r["pid"],
                    started_at=r["started_at"], first_event_at=r["first_event_at"], ended_at=r["ended_at"],
                    signal=r["signal"], killed_by=r["killed_by"], outcome=r["outcome"], error=err,
                ))
        finally:
            store.close()

    def _leftovers(self, root: Path, procs_before: Mapping[int, float], files_before: set[str]) -> None:
        r = str(root)
        pressure_pids = self._pressure.seen_pids() if self._pressure is not None else set()

        def ours(p: psutil.Process) -> bool:
            if p.pid in pressure_pids:
                return True
            try:
                cwd = p.cwd()
            except psutil.Error:
                cwd = ""
            try:
                cmd = " ".join(p.cmdline())
            except psutil.Error:
                cmd = ""
            return cwd.startswith(r) or r in cmd

        # give processes that are exiting right now a moment (a SIGTERMed tool, a reaped zombie)
        deadline = time.monotonic() + 5.0
        left = new_processes(procs_before, match=ours)
        while left and time.monotonic() < deadline:
            time.sleep(0.25)
            left = new_processes(procs_before, match=ours)
        self.art.leaked_processes = left
        for lp in left:  # report them, then end them: a chaos run must not leave them to the next test
            with contextlib.suppress(psutil.Error):
                psutil.Process(lp.pid).kill()
        self.art.leaked_temp_files = new_files(files_before, [root / "tmp"])

    # -- scoring ----------------------------------------------------------------------------------------
    def _score(self) -> ChaosReport:
        c = self.config
        art = self.art
        expected_fail = {j["id"] for j in art.jobs if j["idem_key"] in art.expected_failure_ids}
        jobs: list[JobRecord] = []
        for j in art.jobs:
            state = j["state"]
            outcome = state if state in ("succeeded", "failed") else None
            jobs.append(JobRecord(
                job_id=j["id"], submitted_at=j["created_at"], outcome=outcome,
                finished_at=j["finished_at"], attempts=max(1, j["attempts"] or 1),
                expected_failure=j["id"] in expected_fail, started_at=j["started_at"],
            ))
        missing = c.jobs - len(jobs)  # jobs the store never saw (the supervisor died before creating them)
        for i in range(max(0, missing)):
            jobs.append(JobRecord(job_id=f"never-created-{i}", submitted_at=art.started_at))
        sessions: dict[str, set[str]] = {}
        for a in art.attempts:
            if a.session_id:
                sessions.setdefault(a.job_id, set()).add(a.session_id)
        windows = self.faults.windows()
        incidents: list[IncidentRecord] = []
        causes: dict[str, int] = {}
        confusion: dict[str, int] = {}
        unexplained: list[dict[str, Any]] = []
        details: list[dict[str, Any]] = []
        per_job: dict[str, list[_Attempt]] = {}
        for a in art.attempts:
            per_job.setdefault(a.job_id, []).append(a)
        for jid, atts in per_job.items():
            for i, a in enumerate(atts):
                later = atts[i + 1:]
                if a.outcome == "failed":
                    at = a.ended_at if a.ended_at is not None else a.started_at
                elif a.outcome in (None, "lost") and (later or a.outcome == "lost"):
                    # its supervisor died under it: the failure happened at the kill, not at the
                    # restart that noticed it
                    ks = [t for t in art.supervisor_kills if a.started_at <= t <= (a.ended_at or float("inf"))]
                    at = ks[0] if ks else (a.ended_at if a.ended_at is not None else a.started_at)
                else:
                    continue  # succeeded, cancelled at shutdown, or still running when the run ended
                err = a.error or {}
                got = str(err.get("type") or ("interrupted" if a.outcome != "failed" else "unknown"))
                attr = attribute(
                    a, sessions=sessions.get(jid, set()), api_faults=art.api_faults, kills=art.kills,
                    supervisor_kills=art.supervisor_kills, windows=windows,
                )
                cause = attr.cause if attr is not None else "unexplained"
                causes[cause] = causes.get(cause, 0) + 1
                detail = {"job_id": jid, "attempt": a.n, "at": round(at, 3), "cause": cause,
                          "expected": attr.expected_type if attr is not None else None, "got": got,
                          "rule": err.get("rule"), "description": str(err.get("description") or "")[:160],
                          "killed_by": a.killed_by, "signal": a.signal}
                details.append(detail)
                if attr is None:
                    unexplained.append(detail)
                # only a failure the classifier judged has a verdict to compare with the truth
                exp = attr.expected_type if attr is not None and a.outcome == "failed" else None
                if exp is not None:
                    key = f"{exp} -> {got}"
                    confusion[key] = confusion.get(key, 0) + 1
                nxt = next((b.first_event_at for b in later if b.first_event_at is not None), None)
                if nxt is not None and nxt < at:
                    nxt = at
                recoverable = bool(err.get("retryable", True)) and jid not in expected_fail
                incidents.append(IncidentRecord(
                    job_id=jid, at=at, error_type=got, expected_type=exp, recovered_at=nxt,
                    automatic=True, recoverable=recoverable,
                ))
        report = compute_report(
            started_at=art.started_at,
            ended_at=art.ended_at,
            jobs=jobs,
            incidents=incidents,
            breaker_events=art.breaker_events,
            fault_log=self.faults,
            leaked_processes=art.leaked_processes,
            leaked_temp_files=art.leaked_temp_files,
            grace=c.fp_grace,
            seed=c.seed,
            config={k: v for k, v in c.to_dict().items() if k not in ("workdir",)},
        )
        report.attribution = {
            "causes": dict(sorted(causes.items())),
            "confusion": dict(sorted(confusion.items())),
            "unexplained": unexplained[:50],
            "unexplained_count": len(unexplained),
            "api_faults_injected": _count(k for _, _, k in art.api_faults),
            "kills": {"cli": sum(1 for k in art.kills if k.depth == 0), "tool": sum(1 for k in art.kills if k.depth)},
            "supervisor_kills": len(art.supervisor_kills),
            "worker_exit_codes": art.worker_exits,
            "breaker_job_reaction": _job_reaction(art.job_breaker_events),
            "armed": self.armed.to_list(),
            "incidents": details[:500],
        }
        return report


def _is_tool(c: Candidate) -> bool:
    """A process the CLI's Bash tool started (not the CLI's own helpers, whose death says little)."""
    return c.depth >= 1 and c.name in ("bash", "sh", "sleep", "dash", "zsh")


def _job_reaction(events: list[BreakerEvent]) -> dict[str, Any]:
    """Crossing -> first rejected *job* call: includes the jobs' backoff, so shown apart from the target."""
    reactions, unmeasured, _ = _breaker_reactions(events)
    return {
        "n": len(reactions),
        "unmeasured": unmeasured,
        "p50": percentile(reactions, 50),
        "max": max(reactions) if reactions else None,
    }


def _count(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return dict(sorted(out.items()))


def run_chaos(
    duration: float = 45.0,
    jobs: int = 12,
    concurrency: int = 4,
    kill_every: float | None = 4.0,
    fault_rate: float = 0.2,
    seed: int = 1,
    *,
    progress: Callable[[str], None] | None = None,
    **kw: Any,
) -> ChaosReport:
    """Run one chaos batch (see :class:`ChaosConfig` for every knob) and return its report."""
    cfg = ChaosConfig(
        duration=duration, jobs=jobs, concurrency=concurrency, kill_every=kill_every, fault_rate=fault_rate,
        seed=seed, **kw,
    )
    return ChaosRunner(cfg, progress=progress).run()


__all__ = [
    "API_FAULT_TYPES",
    "NET_FAULT_TYPES",
    "Attribution",
    "ChaosConfig",
    "ChaosError",
    "ChaosRunner",
    "attribute",
    "find_claude_cli",
    "job_prompt",
    "run_chaos",
]
