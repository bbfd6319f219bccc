"""``resurgo chaos``: a batch through the real CLI and the supervisor while faults rain on it.

The runner wires the building blocks together on loopback only:

    claude (real CLI) --ANTHROPIC_BASE_URL=http://127.0.0.1:<job's port>/j/<job>/-->
        FaultProxy (one listening port per job) --> MockServer (the stand-in)
         ^ started, watched, killed, resumed by the Supervisor (in a worker process)

Every job has its own route: its own proxy port (so each network fault is
known per job) and its own base-URL path (the CLI keeps it, so the stand-in
logs each faulted request per job).  ``RESURGO_ENDPOINT`` keeps one shared
breaker and budget for all of them, as for one real API.

The parts live in their own modules: settings (:mod:`._config`), one injector
per fault kind (:mod:`._inject`), the timetable (:mod:`._schedule`),
attribution and scoring (:mod:`._score`), the report (:mod:`._report`).  This
module owns the processes: the stand-ins, the proxy, the supervisor worker
(:mod:`._supervisor_proc`; killing it must be real, and the runner keeps measuring
whatever happens to it), the collection of the records after the run, and the
clean-up of everything, on success and on failure.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psutil

from resurgo.chaos._config import ChaosConfig, ChaosError, find_claude_cli, job_prompt, job_route
from resurgo.chaos._faults import FaultLog
from resurgo.chaos._inject import RunContext, build_injectors
from resurgo.chaos._pressure import Pressure
from resurgo.chaos._proxy import FaultProxy
from resurgo.chaos._report import (
    BreakerEvent,
    ChaosReport,
    new_files,
    new_processes,
    snapshot_files,
    snapshot_processes,
)
from resurgo.chaos._schedule import Scheduler
from resurgo.chaos._score import AttemptRow, FaultHit, RecoveryRow, RunArtifacts, score

log = logging.getLogger("resurgo.chaos")


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
        self._ctx: RunContext | None = None
        self._routes: dict[str, str] = {}  # route -> idem key of its job
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

    def _spec(self, root: Path, claude: str, proxy: FaultProxy, auth_url: str | None) -> dict[str, Any]:
        c = self.config
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(root / "home"),
            "LANG": "C.UTF-8",
            "ANTHROPIC_API_KEY": "sk-chaos-not-a-real-key",
            "ANTHROPIC_BASE_URL": proxy.url,
            # every job has its own route, yet all of them share one breaker and budget
            "RESURGO_ENDPOINT": proxy.url,
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
            route = job_route(i)
            idem = f"chaos-{c.seed}-{i}"
            self._routes[route] = idem
            j: dict[str, Any] = {
                "prompt": job_prompt(i, c.steps, c.step_sleep),
                "cwd": str(d),
                "idem_key": idem,
                "name": f"chaos-{i}",
                "env": {"ANTHROPIC_BASE_URL": f"{proxy.route_url(route)}/j/{route}/"},
                "expected_failure": False,
            }
            if i in bad and auth_url is not None:
                # its own endpoint: an auth failure forces a breaker open, which must not be the others'
                j["env"] = {"ANTHROPIC_BASE_URL": f"{auth_url}/j/{route}/", "RESURGO_ENDPOINT": auth_url}
                j["name"] = f"chaos-{i}-auth"
                j["expected_failure"] = True
            jobs.append(j)
        config: dict[str, Any] = {
            "stall_timeout": c.stall_timeout,
            "kill_grace": 1.0,
            "backoff_base": 0.2,
            "backoff_cap": 2.0,
            "cli_max_retries": 0,
            "max_recoveries": c.max_recoveries,
            "recovery_period": 600.0,
            "health_interval": 2.0,
            "claude_args": ["--allowedTools", "Bash"],
        }
        config.update(dict(c.supervisor))
        from resurgo.supervise import SupervisorConfig

        try:  # a bad override is the caller's error, reported before anything runs
            SupervisorConfig.from_dict({**config, "claude": claude, "store": str(root / "store.db")})
        except Exception as e:
            raise ChaosError(f"chaos: bad supervisor settings: {e}") from e
        return {
            "store": str(root / "store.db"),
            "claude": claude,
            "env": env,
            "concurrency": c.concurrency,
            "config": config,
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
            [sys.executable, "-m", "resurgo.chaos._supervisor_proc", str(spec_path)],
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
        """The supervisor's CLI runs right now: its direct children that the store records as an attempt's.

        A standby CLI (booted ahead, waiting for a prompt; ``SupervisorConfig.standby``)
        is a child too but runs no job: a SIGKILL meant for a run must not be
        spent on it, or the supervisor's own standbys would thin out the faults
        the run injects.
        """
        pid = self._worker_pid()
        if pid is None:
            return []
        try:
            kids = [p.pid for p in psutil.Process(pid).children() if p.status() != psutil.STATUS_ZOMBIE]
        except psutil.Error:
            return []
        runs = self._attempt_pids()
        return kids if runs is None else [k for k in kids if k in runs]

    def _attempt_pids(self) -> set[int] | None:
        """Pids of the attempts' CLIs the store has as running (None: the store cannot be read now)."""
        assert self.root is not None
        try:
            con = sqlite3.connect(f"file:{self.root / 'store.db'}?mode=ro", uri=True, timeout=0.5)
        except sqlite3.Error:
            return None
        try:
            return {int(r[0]) for r in con.execute("SELECT pid FROM processes WHERE ended_at IS NULL")}
        except sqlite3.Error:
            return None
        finally:
            con.close()

    def _kill_supervisor(self, spec_path: Path) -> None:
        """SIGKILL the supervisor worker, then start a new one on the same store (its restart)."""
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
        self.art.supervisor_down.append((t, time.time()))
        self._start_worker(spec_path)
        self.faults.close(wid)

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
        # SIGTERM (a CI timeout, `kill`) would end Python without running the clean-up below and leave
        # the supervisor, its CLIs and the fault proxy running: turn it into an exit that unwinds
        prev_term = None
        if threading.current_thread() is threading.main_thread():
            def _on_term(signum: int, frame: object) -> None:
                raise SystemExit(128 + signum)

            prev_term = signal.signal(signal.SIGTERM, _on_term)
        try:
            return self._run(claude)
        finally:
            aio_log.setLevel(aio_level)
            if prev_term is not None:
                signal.signal(signal.SIGTERM, prev_term)

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
            for i in range(c.jobs):
                proxy.add_route(job_route(i))
            spec = self._spec(root, claude, proxy, auth_srv.url if auth_srv else None)
            self.art.expected_failure_ids = {j["idem_key"] for j in spec["jobs"] if j["expected_failure"]}
            self.art.jobs_expected = c.jobs
            spec_path = root / "spec.json"
            spec_path.write_text(json.dumps(spec, indent=1))
            self._progress(
                f"chaos: {c.jobs} job(s) x {c.steps} step(s), concurrency {c.concurrency}, {c.duration:g} s of faults, "
                f"kill every {c.kill_every or 0:g} s, fault rate {c.fault_rate:g}, seed {c.seed} (in {root})"
            )
            started = time.time()
            self._start_worker(spec_path)
            t0 = time.monotonic()
            ctx = self._ctx = RunContext(
                config=c, rng=self._rng, faults=self.faults, armed=self.armed, progress=self._progress,
                stand_in=srv, proxy=proxy, cli_pids=self._cli_pids,
                kill_supervisor=lambda: self._kill_supervisor(spec_path), t0=t0,
                breaker_opened_since=lambda t: _breaker_opened_since(root / "breaker.jsonl", t),
            )
            Scheduler(
                build_injectors(ctx), duration=c.duration, t0=t0, stop=self._stop,
                done=lambda: self._worker is not None and self._worker.poll() is not None,
            ).run()
            self.faults.close_all()
            self.armed.close_all()
            self._progress("chaos: fault injection over; waiting for the batch to finish")
            self._drain()
            completed = True
        finally:
            ended = time.time()
            self._stop.set()
            self._end_worker()
            pressure = self._ctx.pressure if self._ctx is not None else None
            if pressure is not None:
                with contextlib.suppress(Exception):
                    pressure.stop()
            self.faults.close_all()
            self.armed.close_all()
            try:
                self._collect(root, srv, auth_srv, proxy)
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
                self._leftovers(root, procs_before, files_before, pressure)
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
    def _collect(self, root: Path, srv: Any, auth_srv: Any, proxy: FaultProxy | None) -> None:
        """Read every record of the run: the store, the injectors' per-job logs, the breaker log."""
        from resurgo.store import Store

        db = root / "store.db"
        idem_to_job: dict[str, str] = {}
        if db.exists():
            store = Store(str(db))
            try:
                self._read_store(store)
            finally:
                store.close()
            idem_to_job = {j["idem_key"]: j["id"] for j in self.art.jobs}
        route_job = {r: idem_to_job.get(k) for r, k in self._routes.items()}
        ctx = self._ctx
        if ctx is not None:
            self.art.kills = list(ctx.kills)
            self.art.storms = list(ctx.storms)

        def hit(at: float, route: str | None, cause: str) -> None:
            jid = route_job.get(route) if route is not None else None
            if jid is None:
                self.art.unrouted_faults += 1
            else:
                self.art.hits.append(FaultHit(at, jid, cause))

        for s in (srv, auth_srv):
            if s is None:
                continue
            for r in s.requests:
                if r.fault is None or r.path != "/v1/messages":
                    continue
                hit(r.time, r.route, f"api:{r.fault}")
                if r.fault == "hang":
                    # a hang shows when the client's timeout fires, not when the request arrived
                    wid = self.faults.open("api:hang", f"route {r.route}", at=r.time)
                    self.faults.close(wid, at=r.time + self.config.api_timeout_ms / 1000.0)
                else:
                    self.faults.instant(f"api:{r.fault}", f"route {r.route}", at=r.time)
        if proxy is not None:
            for pf in proxy.fault_events():
                hit(pf.at, pf.route, f"net:{pf.mode}")
        self.art.hits.sort(key=lambda h: h.at)
        blog = root / "breaker.jsonl"
        if blog.exists():
            for line in blog.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    d = json.loads(line)
                    self.art.breaker_events.append(BreakerEvent(float(d["at"]), str(d["breaker"]), d["kind"]))

    def _read_store(self, store: Any) -> None:
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
            self.art.attempts.append(AttemptRow(
                id=r["id"], job_id=r["job_id"], n=r["n"], session_id=r["session_id"], pid=r["pid"],
                started_at=r["started_at"], first_event_at=r["first_event_at"], ended_at=r["ended_at"],
                signal=r["signal"], killed_by=r["killed_by"], outcome=r["outcome"], error=err,
            ))
        for r in store.query(
            "SELECT ts, data_json FROM events WHERE source = 'supervisor' AND type = 'waiting' ORDER BY ts"
        ):
            # "breaker endpoint:URL is open": a job's next attempt refused by the breaker
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                reason = str(json.loads(r["data_json"]).get("reason") or "")
                if reason.startswith("breaker ") and " is " in reason:
                    name = reason[len("breaker "):].rsplit(" is ", 1)[0]
                    self.art.job_rejections.append(BreakerEvent(float(r["ts"]), name, "rejected"))
        phases = _stored_phases(store)
        for r in store.query(
            "SELECT id, job_id, attempt_id, strategy, detected_at, started_at, restored_at, waited_s, fault_at,"
            " error_type FROM recoveries"
        ):
            self.art.recoveries.append(RecoveryRow(
                job_id=r["job_id"], attempt_id=r["attempt_id"], strategy=r["strategy"],
                detected_at=r["detected_at"], started_at=r["started_at"], restored_at=r["restored_at"],
                waited_s=float(r["waited_s"] or 0.0), phases=phases.get(r["id"]),
                fault_at=r["fault_at"], error_type=r["error_type"],
            ))

    def _leftovers(
        self, root: Path, procs_before: Mapping[int, float], files_before: set[str], pressure: Pressure | None
    ) -> None:
        r = str(root)
        pressure_pids = pressure.seen_pids() if pressure is not None else set()

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
        return score(
            self.art,
            seed=c.seed,
            config={k: v for k, v in c.to_dict().items() if k not in ("workdir",)},
            fault_windows=self.faults,
            extra={"armed": self.armed.to_list()},
        )


def _breaker_opened_since(path: Path, since: float) -> bool:
    """Whether the worker's breaker log has an opening at or after ``since`` (wall-clock)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return False
    for line in reversed(lines):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            d = json.loads(line)
            if float(d["at"]) < since:
                return False
            if d["kind"] == "opened":
                return True
    return False


def _stored_phases(store: Any) -> dict[int, dict[str, float | None]]:
    """The phases the supervisor stored for each recovery (``Store.recovery_phases``), by recovery id."""
    read = getattr(store, "recovery_phases", None)
    if read is None:  # a store without the phase columns: the scorer derives what it can
        return {}
    out: dict[int, dict[str, float | None]] = {}
    for p in read():
        out[int(p.id)] = {name: getattr(p, name, None) for name in (
            "detect_s", "imposed_s", "backoff_s", "budget_s", "overhead_s", "start_s", "redo_s")}
    return out


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


#: ChaosConfig and ChaosError live in ._config; named here too for callers of the runner module.
__all__ = ["ChaosConfig", "ChaosError", "ChaosRunner", "run_chaos"]
