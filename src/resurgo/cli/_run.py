"""``resurgo run`` and ``resurgo batch``: supervised runs with live progress.

A thin layer over :class:`resurgo.supervise.Supervisor`: every decision
(classification, backoff, breakers, budgets, resumption) is the supervisor's;
this module turns its typed events into lines a person can follow, parses
batch files, and maps the outcome to the documented exit statuses (see
:mod:`resurgo.cli._common`).  Progress goes to stderr and results to stdout, so
``resurgo run "..." > answer.txt`` keeps just the answer.

Ctrl-C: the first one cancels the running jobs — the supervisor ends their CLI
process groups and leaves the jobs ``interrupted`` (``resurgo resume`` or the
same batch again continues them); a second one forces: every child process is
killed at once and resurgo exits (the next supervisor start marks the jobs
interrupted).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from resurgo.cli._common import (
    EXIT_AUTH,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    EXIT_VALIDATION,
    STATE_STYLE,
    CliError,
    clock_time,
    console,
    human_seconds,
    open_store,
    print_json,
    settings,
    store_option,
    store_path,
    supervisor_config,
)

# -- live progress -------------------------------------------------------------------------------


def _esc(text: Any) -> str:
    from rich.markup import escape

    from resurgo.observe import redact

    return escape(redact(str(text)))


def _one_line(text: Any, n: int = 100) -> str:
    s = " ".join(str(text or "").split())
    return s if len(s) <= n else s[: n - 1] + "…"


def _styled(state: str) -> str:
    """A state in its colour (rich markup); an unknown state plain, never an empty ``[]`` tag."""
    style = STATE_STYLE.get(state)
    return f"[{style}]{_esc(state)}[/]" if style else _esc(state)


class Progress:
    """Turns the supervisor's typed events into a status line and a log of notable moments.

    Notable moments (failures, recoveries, waits, breaker changes, restorations,
    finished jobs) are printed as lines so they stay in the scroll-back and in
    logs; the current phase of each job (starting / working with the last tool /
    recovering / waiting until) is the live status line on a terminal, and a
    printed line otherwise.
    """

    def __init__(self, *, names: Mapping[str, str] | None = None, total: int = 1, quiet: bool = False) -> None:
        self.out = console(stderr=True)
        self.live_tty = self.out.is_terminal
        self.names = dict(names or {})
        self.total = total
        self.quiet = quiet
        self.phase: dict[str, str] = {}
        self.states: dict[str, str] = {}
        self.finished: dict[str, Any] = {}
        self._status: Any = None
        self._progress: Any = None
        self._task: Any = None

    # rich widgets ----------------------------------------------------------------------
    def __enter__(self) -> Progress:
        if self.quiet or not self.live_tty:
            return self
        if self.total > 1:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._progress = RichProgress(
                TextColumn("[bold]batch"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("{task.description}"), console=self.out, transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self._counts(), total=self.total)
        else:
            self._status = self.out.status("starting…")
            self._status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.stop()
        if self._progress is not None:
            self._progress.stop()

    def _counts(self) -> str:
        counts: dict[str, int] = {}
        for s in self.states.values():
            counts[s] = counts.get(s, 0) + 1
        return "  ".join(f"[{STATE_STYLE.get(s, '')}]{s} {n}[/]" for s, n in sorted(counts.items()))

    def _name(self, job_id: str) -> str:
        n = self.names.get(job_id)
        return _esc(n) if n else job_id[:8]

    def log(self, job_id: str, text: str) -> None:
        if self.quiet:
            return
        who = f"[dim]{clock_time(time.time())}[/] " + (f"[bold]{self._name(job_id)}[/] " if job_id else "")
        self.out.print(who + text, highlight=False)

    def alert(self, record: logging.LogRecord) -> None:
        """One concise line for an alert of the ``resurgo.alerts`` logger (nothing with ``-q``)."""
        a = getattr(record, "alert", None)
        if a is None:  # e.g. a webhook that failed: the logged text is already redacted
            self.log("", f"[red]alert[/]: {_esc(_one_line(record.getMessage(), 120))}")
            return
        d = a.to_dict()  # redacted
        jid = d["details"].get("job_id") if isinstance(d.get("details"), dict) else None
        if not isinstance(jid, str):
            jid = d["subject"][4:] if str(d["subject"]).startswith("job:") else ""
        more = f" (+{a.suppressed} similar)" if a.suppressed else ""
        self.log(jid, f"[red]alert[/] {_esc(a.kind)}: {_esc(_one_line(d['message'], 100))}{more}")

    def _set_phase(self, job_id: str, text: str, state: str, *, print_line: bool) -> None:
        self.phase[job_id] = text
        self.states[job_id] = state
        if self._status is not None:
            self._status.update(text)
        elif self._progress is not None:
            self._progress.update(self._task, description=self._counts())
        if print_line and not self.live_tty:
            self.log(job_id, text)

    # events ----------------------------------------------------------------------------------
    def on_event(self, ev: Any) -> None:
        kind = type(ev).__name__
        jid = getattr(ev, "job_id", "")
        if kind == "JobQueued":
            if getattr(ev, "name", None):
                self.names.setdefault(jid, ev.name)
            self.states.setdefault(jid, "pending")
        elif kind == "AttemptStarted":
            what = {"start": "starting", "resume": "resuming session", "fork": "forking session",
                    "restart": "restarting"}.get(ev.kind, ev.kind)
            self._set_phase(jid, f"{what} (attempt {ev.n})", "running", print_line=True)
        elif kind == "ToolStarted":
            self._set_phase(jid, f"working: {_esc(ev.name)} {_esc(_one_line(ev.summary, 60))}".rstrip(),
                            "running", print_line=True)
        elif kind == "CliEvent":
            e = ev.event
            if e.get("type") == "system" and e.get("subtype") == "init":
                self._set_phase(jid, "working", "running", print_line=False)
        elif kind == "FailureDetected":
            err = ev.error
            t = getattr(err.type, "value", err.type) or "error"
            self.log(jid, f"[red]attempt {ev.attempt} failed[/]: {_esc(t)} — {_esc(_one_line(err.description, 90))}")
        elif kind == "RecoveryPlanned":
            wait = f", after {human_seconds(ev.wait_s)}" if ev.wait_s else ""
            server = " (the server asked)" if ev.server_wait else ""
            self.log(jid, f"[yellow]recovering[/]: {_esc(ev.action)} — {_esc(_one_line(ev.reason, 90))}{wait}{server}")
            self._set_phase(jid, f"recovering: {_esc(_one_line(ev.action, 60))}", "recovering", print_line=False)
        elif kind == "Waiting":
            until = f"until {clock_time(ev.until_ts)}" if ev.until_ts else "until the endpoint recovers"
            text = f"waiting {until}: {_esc(_one_line(ev.reason, 80))}"
            self.log(jid, f"[magenta]{text}[/]")
            self._set_phase(jid, text, "waiting", print_line=False)
        elif kind == "BreakerStateChanged":
            colour = {"open": "red", "half_open": "yellow", "closed": "green"}.get(str(ev.to_state), "")
            self.log("", f"breaker {_esc(ev.breaker)}: {_esc(ev.from_state)} → [{colour}]{_esc(ev.to_state)}[/]"
                         f" ({_esc(_one_line(ev.reason, 80))})")
        elif kind == "Restored":
            self.log(jid, f"[green]restored[/] {human_seconds(ev.recovery_s)} after the failure")
            self._set_phase(jid, "working", "running", print_line=False)
        elif kind == "JobFinished":
            res = ev.result
            self.finished[jid] = res
            st = res.state.value
            self.states[jid] = st
            why = f" — {_esc(_one_line(res.reason, 90))}" if res.reason and not res.ok else ""
            self.log(jid, f"[{STATE_STYLE.get(st, '')}]{st}[/] after {res.attempts} attempt(s), "
                          f"{res.recoveries} recovery(ies), {human_seconds(res.duration_s)}{why}")
            if self._progress is not None:
                self._progress.update(self._task, completed=len(self.finished), description=self._counts())

    def on_fleet(self, job_id: str, state: str, *, worker: str | None, claims: int, reason: str | None,
                 final: bool) -> None:
        """A fleet job's state read from its Redis hash (``batch --redis``: no supervisor events here).

        Called on every change only; a job claimed again (its worker died or
        stopped) says so, because that is the moment a fleet earns its keep.
        """
        prev = self.states.get(job_id)
        self.states[job_id] = state
        st = _styled(state)
        if final:
            self.finished[job_id] = state
            why = f" — {_esc(_one_line(reason, 90))}" if reason and state != "succeeded" else ""
            by = f" by {_esc(worker)}" if worker else ""
            self.log(job_id, f"{st}{by} (claimed {claims}x){why}")
        elif state == "running" and claims > 1:
            self.log(job_id, f"[yellow]claimed again[/] by {_esc(worker or '?')} (claim {claims})"
                             + (f": {_esc(_one_line(reason, 80))}" if reason else ""))
        elif state == "queued" and prev == "running":
            self.log(job_id, "[yellow]back in the queue[/]" + (f": {_esc(_one_line(reason, 80))}" if reason else ""))
        elif not self.live_tty and state != prev:
            self.log(job_id, st + (f" on {_esc(worker)}" if worker and state == "running" else ""))
        if self._progress is not None:
            self._progress.update(self._task, completed=len(self.finished), description=self._counts())
        elif self._status is not None:
            self._status.update(f"{state}" + (f" on {_esc(worker)}" if worker and not final else ""))


# -- running the supervisor ----------------------------------------------------------------------


class _AlertLines(logging.Handler):
    """Routes the ``resurgo.alerts`` logger into the live progress while a command runs.

    Without it Python's last-resort handler would print every alert's log
    record to stderr, ``-q`` or not; the alerts are in the store regardless.
    """

    def __init__(self, progress: Progress) -> None:
        super().__init__(logging.INFO)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.progress.alert(record)
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def _alerts_to(progress: Progress) -> Iterator[None]:
    logger = logging.getLogger("resurgo.alerts")
    handler = _AlertLines(progress)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate



def concurrency_option(ctx: Any, param: Any, value: str | None) -> int | str | None:
    """``--concurrency``: an integer in [1, 1024] or ``auto`` (an adaptive limit per API endpoint)."""
    if value is None:
        return None
    if value.strip().lower() == "auto":
        return "auto"
    try:
        n = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither an integer nor 'auto'") from None
    if not 1 <= n <= 1024:
        raise click.BadParameter(f"{n} is not in the range 1-1024")
    return n


_CONCURRENCY_HELP = ("Jobs running at once, or 'auto': found per API endpoint from 429/529 answers, the CLI's "
                     "api_retry and rate_limit events and latency (default: [supervisor] concurrency, 4).")
_MAX_CONCURRENCY_HELP = "With --concurrency auto: the most jobs at once (default: [supervisor] max_concurrency, 32)."


def _make_supervisor(path: Path, *, concurrency: int | str | None = None, claude: str | None = None,
                     overrides: Mapping[str, Any] | None = None) -> Any:
    """A Supervisor configured from the merged settings, on the store at ``path``."""
    from resurgo.classify import RuleError
    from resurgo.supervise import ClaudeNotFoundError, Supervisor, find_claude

    given = dict(overrides or {})
    if claude is None:
        claude = given.get("claude", settings().get("supervisor", "claude"))
    store = open_store(path)
    try:  # before any job is created: a missing CLI is the user's to fix, not a failed job
        given["claude"] = find_claude(claude)
    except ClaudeNotFoundError as e:
        store.close()
        raise CliError(str(e)) from None
    if concurrency is not None:
        given["concurrency"] = concurrency
    try:
        return Supervisor(config=supervisor_config(store, given)), store
    except CliError:
        store.close()
        raise
    except (RuleError, ValueError, OSError) as e:  # [classify] rules changed since the configuration was checked
        store.close()
        raise CliError(f"cannot load the classification rules: {e}") from None


def _kill_children_now() -> None:
    """Second Ctrl-C: SIGKILL every descendant at once (they may be in sessions of their own)."""
    import psutil

    with contextlib.suppress(psutil.Error):
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child.kill()


def run_supervised(
    path: Path,
    work: Callable[[Any], Awaitable[Any]],
    *,
    as_json: bool = False,
    label: str = "run",
    concurrency: int | str | None = None,
    names: Mapping[str, str] | None = None,
    total: int = 1,
    quiet: bool = False,
    claude: str | None = None,
    on_done: Callable[[Any, Progress], int] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> int:
    """Run ``work(supervisor)`` with live progress and Ctrl-C handling; returns the exit status.

    ``work`` returns a JobResult (run, resume) or a list of them (batch);
    ``on_done`` prints them and picks the exit status (default: one result).
    """
    from resurgo.supervise import ClaudeNotFoundError

    try:
        sup, store = _make_supervisor(path, concurrency=concurrency, claude=claude, overrides=overrides)
    except ClaudeNotFoundError as e:
        raise CliError(str(e)) from None
    progress = Progress(names=names, total=total, quiet=quiet)
    interrupted = False

    async def main() -> Any:
        nonlocal interrupted
        loop = asyncio.get_running_loop()
        async with sup:
            consumer = asyncio.create_task(_consume(sup, progress))
            await asyncio.sleep(0)  # subscribe before the first job starts
            task = asyncio.ensure_future(work(sup))

            def on_sigint() -> None:
                nonlocal interrupted
                if interrupted:
                    progress.out.print("[red]forced stop[/]: killing every child process now")
                    _kill_children_now()
                    os._exit(EXIT_INTERRUPTED)
                interrupted = True
                progress.out.print("[yellow]stopping[/]: ending the CLI processes; the jobs stay resumable "
                                   "(Ctrl-C again to force)")
                for jid in list(progress.states):
                    h = sup.handle(jid)
                    if h is not None:
                        h.cancel(resumable=True, reason="interrupted by the user (Ctrl-C)")
                task.cancel()

            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, on_sigint)
            try:
                return await task
            except asyncio.CancelledError:
                if not interrupted:
                    raise
                return None
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
                await asyncio.sleep(0.05)  # let the last events reach the consumer
                consumer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await consumer

    try:
        with progress, _alerts_to(progress):
            result = asyncio.run(main())
    finally:
        store.close()
    if interrupted:
        _report_interrupted(progress, as_json)
        return EXIT_INTERRUPTED
    if on_done is not None:
        return on_done(result, progress)
    return _print_result(result, as_json=as_json)


async def _consume(sup: Any, progress: Progress) -> None:
    async for ev in sup.events():
        try:
            progress.on_event(ev)
        except Exception as e:  # a display bug must never stop the run
            progress.out.print(f"[dim](progress display error: {type(e).__name__}: {e})[/]")


def _report_interrupted(progress: Progress, as_json: bool) -> None:
    if as_json:
        print_json({"interrupted": True, "jobs": [r.to_dict() for r in progress.finished.values()]})
        return
    ids = [j for j, s in progress.states.items() if s == "interrupted"] or list(progress.states)
    click.echo("interrupted; continue with: " + "; ".join(f"resurgo resume {j[:12]}" for j in ids), err=True)


def _print_result(res: Any, *, as_json: bool) -> int:
    if as_json:
        print_json(res.to_dict())
        return int(res.exit_status)
    if res.ok:
        click.echo(res.result_text or "")
    else:
        err = res.error
        what = getattr(err.type, "value", None) if err is not None else None
        click.echo(f"resurgo: job {res.job_id} {res.state.value}" + (f" ({what})" if what else "")
                   + f": {res.reason or 'no reason recorded'}", err=True)
        if res.state.value == "interrupted":
            click.echo(f"continue with: resurgo resume {res.job_id[:12]}", err=True)
    return int(res.exit_status)


# -- run -----------------------------------------------------------------------------------------


@click.command("run", context_settings={"ignore_unknown_options": False})
@click.argument("prompt")
@click.argument("claude_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--cwd", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Folder the CLI works in (default: the current one).")
@click.option("--model", default=None, help="Model for the CLI (--model).")
@click.option("--name", default=None, help="A name for the job (shown in lists; `resurgo show NAME`).")
@click.option("--claude", "claude", default=None, help="Claude Code CLI to run (else config, $RESURGO_CLAUDE, PATH).")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print the job record as JSON instead of the answer.")
@click.option("--concurrency", default=None, callback=concurrency_option, metavar="N|auto", help=_CONCURRENCY_HELP)
@click.option("--max-concurrency", type=click.IntRange(1, 1024), default=None, help=_MAX_CONCURRENCY_HELP)
@store_option
def run_cmd(prompt: str, claude_args: tuple[str, ...], cwd: Path | None, model: str | None, name: str | None,
            claude: str | None, quiet: bool, as_json: bool, concurrency: int | str | None,
            max_concurrency: int | None, store_opt: Path | None) -> None:
    """Run PROMPT through the Claude Code CLI until it finishes, recovering from failures.

    Arguments after `--` go to the CLI as they are (e.g. `-- --allowedTools Bash`).
    Exit status: 0 success; 1 failed after recovery; 2 usage error; 3 auth;
    4 validation/billing/config; 5 interrupted (resumable); 6 internal error.
    """
    if not prompt.strip():
        raise click.BadParameter("the prompt is empty", param_hint="PROMPT")
    from resurgo.supervise import JobSpec

    spec = JobSpec(prompt, cwd=str((cwd or Path.cwd()).resolve()), model=model, claude_args=tuple(claude_args),
                   name=name)

    async def work(sup: Any) -> Any:
        return await sup.submit(spec).result()

    code = run_supervised(store_path(store_opt), work, as_json=as_json, quiet=quiet, claude=claude,
                          concurrency=concurrency,
                          overrides={"max_concurrency": max_concurrency} if max_concurrency else None)
    raise SystemExit(code)


# -- batch ---------------------------------------------------------------------------------------

_JOB_KEYS = ("prompt", "id", "name", "cwd", "model", "args", "claude_args", "env")


@dataclass(slots=True)
class BatchJob:
    where: str  # "line 3" / "jobs[2] (line 7)"
    spec: dict[str, Any]


@dataclass(slots=True)
class BatchFile:
    path: Path
    jobs: list[BatchJob] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _check_job(raw: Any, where: str, base: Path) -> tuple[dict[str, Any] | None, str | None]:
    """A job entry as JobSpec keywords, or why it is malformed."""
    from resurgo.config import suggest

    if isinstance(raw, str):
        raw = {"prompt": raw}
    if not isinstance(raw, Mapping):
        return None, f"{where}: a job must be an object with a \"prompt\", got {type(raw).__name__}"
    unknown = [k for k in raw if k not in _JOB_KEYS]
    if unknown:
        return None, f"{where}: unknown field {unknown[0]!r}" + suggest(str(unknown[0]), _JOB_KEYS)
    prompt = raw.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return None, f"{where}: \"prompt\" must be a non-empty string"
    for k in ("id", "name", "cwd", "model"):
        if k in raw and (isinstance(raw[k], bool) or not isinstance(raw[k], str | int) or raw[k] == ""):
            return None, f"{where}: \"{k}\" must be a non-empty string"
    args = raw.get("claude_args", raw.get("args", []))
    if isinstance(args, str) or not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        return None, f"{where}: \"args\" must be a list of strings"
    env = raw.get("env", {})
    if not isinstance(env, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        return None, f"{where}: \"env\" must be an object of string values"
    cwd = Path(os.path.expanduser(str(raw["cwd"]))) if "cwd" in raw else Path.cwd()
    if not cwd.is_absolute():
        cwd = base / cwd
    if not cwd.is_dir():
        return None, f"{where}: cwd {cwd} is not a folder"
    spec = {"prompt": prompt, "cwd": str(cwd.resolve()), "model": raw.get("model"), "claude_args": tuple(args),
            "env": dict(env), "name": str(raw["name"]) if "name" in raw else None}
    if "id" in raw:
        spec["id"] = str(raw["id"])
    return spec, None


def parse_batch(path: Path) -> BatchFile:
    """Read a batch file: JSONL (one job per line), a TOML ``[[jobs]]`` array, or a YAML list.

    A malformed entry is recorded with its line number and skipped, so one typo
    does not hold up a hundred good jobs; a file that cannot be read or parsed
    at all is a usage error.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"batch file not found: {path}") from None
    except IsADirectoryError:
        raise CliError(f"batch file {path} is a folder") from None
    except UnicodeDecodeError:
        raise CliError(f"batch file {path} is not UTF-8 text") from None
    except OSError as e:
        raise CliError(f"cannot read the batch file {path}: {e.strerror or e}") from None
    bf = BatchFile(path.resolve())
    base = bf.path.parent
    suffix = path.suffix.lower()
    entries: list[tuple[str, Any]] = []
    if suffix == ".toml":
        import tomllib

        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise CliError(f"{path}: invalid TOML: {e}") from None
        jobs = doc.get("jobs")
        extra = sorted(set(doc) - {"jobs"})
        if extra:
            bf.problems.append(f"unknown top-level key(s) {', '.join(extra)}; jobs go in [[jobs]] tables")
        if not isinstance(jobs, list):
            raise CliError(f"{path}: expected [[jobs]] tables (an array of tables named jobs)")
        entries = [(f"jobs[{i + 1}]", j) for i, j in enumerate(jobs)]
    elif suffix in (".yaml", ".yml"):
        entries = _yaml_entries(path, text)
    else:
        for n, line in enumerate(text.splitlines(), 1):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            try:
                entries.append((f"line {n}", json.loads(s)))
            except ValueError as e:
                msg = e.msg if isinstance(e, json.JSONDecodeError) else str(e)
                bf.problems.append(f"line {n}: not valid JSON ({msg})")
    for where, raw in entries:
        spec, problem = _check_job(raw, where, base)
        if problem:
            bf.problems.append(problem)
        elif spec is not None:
            bf.jobs.append(BatchJob(where, spec))
    return bf


def _yaml_entries(path: Path, text: str) -> list[tuple[str, Any]]:
    try:
        import yaml
    except ImportError:
        raise CliError(f"{path}: YAML batch files need PyYAML (pip install pyyaml), "
                       "or use JSONL / TOML [[jobs]]") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise CliError(f"{path}: invalid YAML: {e}") from None
    if isinstance(doc, dict) and "jobs" in doc and node is not None:
        doc = doc["jobs"]
        node = next((v for k, v in node.value if k.value == "jobs"), None)
    if not isinstance(doc, list):
        raise CliError(f"{path}: expected a YAML list of jobs (or a mapping with a 'jobs' list)")
    lines = [item.start_mark.line + 1 for item in node.value] if node is not None else []
    return [(f"line {lines[i]}" if i < len(lines) else f"item {i + 1}", j) for i, j in enumerate(doc)]


def idem_key(path: Path, spec: Mapping[str, Any], occurrence: int) -> str:
    """Identity of a batch entry: the same entry of the same file is the same job.

    An explicit ``id`` wins (edit the prompt and keep the job); otherwise the
    entry's content and how many identical entries came before it, so adding
    or reordering lines does not re-run the others.
    """
    if "id" in spec:
        ident = "id:" + str(spec["id"])
    else:
        content = {k: v for k, v in spec.items() if k != "id"}
        ident = "content:" + json.dumps(content, sort_keys=True, default=list) + f"#{occurrence}"
    return "batch:" + hashlib.sha256(f"{path}\0{ident}".encode()).hexdigest()[:32]


_SEVERITY = (EXIT_INTERRUPTED, EXIT_AUTH, EXIT_VALIDATION, EXIT_FAILED)


def batch_exit_status(statuses: Sequence[int], *, malformed: bool) -> int:
    """The worst job status (interrupted > auth > validation > failed), else 2 for malformed lines."""
    for code in _SEVERITY:
        if code in statuses:
            return code
    other = [s for s in statuses if s != EXIT_OK]
    if other:
        return max(other)
    return EXIT_USAGE if malformed else EXIT_OK


def batch_specs(file: Path, bf: BatchFile) -> list[dict[str, Any]]:
    """Each valid entry as JobSpec keywords (``prompt`` included) with its idempotency key.

    Shared by the local run and ``--redis`` so both identify a batch entry the
    same way: the fleet dedups on the same ``idem_key`` the store does.
    """
    seen: dict[str, int] = {}
    specs = []
    for job in bf.jobs:
        content = json.dumps({k: v for k, v in job.spec.items() if k != "id"}, sort_keys=True, default=list)
        occ = seen.get(content, 0)
        seen[content] = occ + 1
        kw = {k: v for k, v in job.spec.items() if k != "id"}
        kw["name"] = kw.get("name") or f"{file.name} {job.where}"
        kw["idem_key"] = idem_key(bf.path, job.spec, occ)
        specs.append(kw)
    return specs


def load_batch(file: Path) -> tuple[BatchFile, list[dict[str, Any]]]:
    """Parse FILE, report its malformed entries on stderr, and refuse a file with no valid job."""
    bf = parse_batch(file)
    err = console(stderr=True)
    for p in bf.problems:
        err.print(f"[red]{_esc(file)}: {_esc(p)}[/] (skipped)")
    if not bf.jobs:
        raise CliError(f"{file}: no valid jobs to run" + (f" ({len(bf.problems)} malformed)" if bf.problems else ""))
    return bf, batch_specs(file, bf)


@click.command("batch")
@click.argument("file", type=click.Path(dir_okay=True, path_type=Path))
@click.option("--concurrency", "-j", default=None, callback=concurrency_option, metavar="N|auto",
              help=_CONCURRENCY_HELP)
@click.option("--max-concurrency", type=click.IntRange(1, 1024), default=None, help=_MAX_CONCURRENCY_HELP)
@click.option("--claude", "claude", default=None, help="Claude Code CLI to run (else config, $RESURGO_CLAUDE, PATH).")
@click.option("--redis", "redis_url", metavar="URL", default=None,
              help="Submit the jobs to the fleet at this Redis (run by `resurgo worker --redis URL`) instead of "
                   "running them here (default: [redis] url if set, else run here).")
@click.option("--local", is_flag=True, help="Run here on the SQLite store even if [redis] url is set.")
@click.option("--prefix", default="resurgo", show_default=True, help="With --redis: key prefix of the fleet "
              "(the workers' --prefix).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="With --redis: stop waiting after SECONDS (the jobs keep running in the fleet; "
                   "run the same batch again to wait for them) [wait until all are finished].")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"jobs": [job records], "malformed": [problems]} as JSON instead of the table.')
@store_option
def batch_cmd(file: Path, concurrency: int | str | None, max_concurrency: int | None, claude: str | None,
              redis_url: str | None, local: bool,
              prefix: str, timeout: float | None, quiet: bool, as_json: bool, store_opt: Path | None) -> None:
    """Run every job of FILE (JSONL, TOML [[jobs]] or YAML list) sharing breakers and retry budgets.

    Each job: {"prompt": "...", "id"?, "name"?, "cwd"?, "model"?, "args"?: [...], "env"?: {...}}.
    Running the same file again skips finished jobs and resumes unfinished ones
    (a job is identified by its "id", else by its content). Malformed entries
    are reported with their line numbers and the others still run.

    With --redis URL (or [redis] url) the jobs go to the fleet's queue and
    `resurgo worker` processes run them; this command shows their progress and
    the summary (with the worker that finished each job and how many times it
    was claimed). Submitting the same file again queues nothing new.

    Exit status: the worst job status (5 interrupted, or still unfinished
    with --redis; 3 auth; 4 validation; 1 failed), else 2 if some entries were
    malformed, else 0. An unreachable Redis is a usage error (2): nothing is
    submitted.
    """
    from resurgo.supervise import JobSpec
    from resurgo.supervise._jobs import JobStore

    if redis_url is not None and local:
        raise click.UsageError("--redis and --local exclude each other")
    source = "--redis"
    if redis_url is None and not local:
        cfg = settings()
        redis_url = cfg.get("redis", "url")
        source = f"[redis] url ({cfg.source('redis', 'url')})"
    if redis_url is not None:
        ignored = [o for o, v in (("--concurrency", concurrency), ("--max-concurrency", max_concurrency),
                                  ("--claude", claude), ("--store", store_opt))
                   if v is not None]
        if ignored:
            verb = "applies" if len(ignored) == 1 else "apply"
            raise click.UsageError(f"{', '.join(ignored)} {verb} to runs on this machine; with Redis ({source}) "
                                   "each `resurgo worker` has its own (or pass --local)")
        from resurgo.cli._batch_redis import batch_via_redis

        raise SystemExit(batch_via_redis(redis_url, file, prefix=prefix, timeout=timeout, quiet=quiet,
                                         as_json=as_json, source=source))
    if timeout is not None:
        raise click.UsageError("--timeout applies to --redis batches only")

    bf, kws = load_batch(file)
    specs = [JobSpec(kw["prompt"], **{k: v for k, v in kw.items() if k != "prompt"}) for kw in kws]
    keys = [kw["idem_key"] for kw in kws]
    err = console(stderr=True)
    path = store_path(store_opt)
    store = open_store(path)
    try:
        js = JobStore(store)
        before = {k: js.by_idem_key(k) for k in keys}
    finally:
        store.close()
    done = sum(1 for r in before.values() if r is not None and r.state.terminal)
    again = sum(1 for r in before.values() if r is not None and not r.state.terminal)
    if (done or again) and not quiet:
        err.print(f"{len(specs)} job(s): {done} already finished (skipped), {again} to resume, "
                  f"{len(specs) - done - again} new")
    names = {r.id: (r.name or f"#{i + 1}") for i, r in enumerate(before.values()) if r is not None}

    async def work(sup: Any) -> Any:
        return await sup.run_many(specs)  # the configuration holds --concurrency (N, or auto: max_concurrency)

    def done_cb(results: Any, progress: Progress) -> int:
        rows = [SummaryRow(job_id=r.job_id, name=r.name or job.where, state=r.state.value, attempts=r.attempts,
                           recoveries=r.recoveries, duration_s=r.duration_s,
                           text=(r.result_text if r.ok else r.reason) or "", exit_status=int(r.exit_status))
                for job, r in zip(bf.jobs, results, strict=True)]
        return print_batch_summary(rows, [r.to_dict() for r in results], bf, as_json=as_json)

    code = run_supervised(path, work, as_json=as_json, concurrency=concurrency, names=names, total=len(specs),
                          quiet=quiet, claude=claude, on_done=done_cb,
                          overrides={"max_concurrency": max_concurrency} if max_concurrency else None)
    raise SystemExit(code)


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """One line of the batch summary, whoever ran the job (this machine or a fleet worker).

    ``worker`` and ``claims`` are set for fleet jobs only (they add two columns);
    ``None`` figures are shown as ``-`` (a fleet job that never finished has none).
    """

    job_id: str
    name: str
    state: str
    attempts: int | None
    recoveries: int | None
    duration_s: float | None
    text: str
    exit_status: int
    worker: str | None = None
    claims: int | None = None


def print_batch_summary(rows: Sequence[SummaryRow], records: Sequence[Mapping[str, Any]], bf: BatchFile, *,
                        as_json: bool, fleet: bool = False, note: str | None = None) -> int:
    """The summary table (or ``{"jobs": records, "malformed": [...]}``) and the batch's exit status."""
    if as_json:
        print_json({"jobs": list(records), "malformed": bf.problems})
    else:
        from rich.table import Table

        t = Table(title=f"batch {bf.path.name}", title_justify="left")
        cols = ["#", "job", "name", "state", *(("worker", "claims") if fleet else ()), "att", "rec", "took",
                "result / reason"]
        for col in cols:
            t.add_column(col)
        for i, r in enumerate(rows, 1):
            fleet_cols = (_esc(r.worker or "-"), "-" if r.claims is None else str(r.claims)) if fleet else ()
            t.add_row(str(i), r.job_id[:12], _esc(r.name), _styled(r.state),
                      *fleet_cols, "-" if r.attempts is None else str(r.attempts),
                      "-" if r.recoveries is None else str(r.recoveries), human_seconds(r.duration_s),
                      _esc(_one_line(r.text, 60)))
        out = console()
        out.print(t)
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.state] = counts.get(r.state, 0) + 1
        out.print("  ".join(f"{s}: {n}" for s, n in sorted(counts.items()))
                  + (f"  malformed entries: {len(bf.problems)}" if bf.problems else ""))
        if note:
            out.print(note)
    return batch_exit_status([r.exit_status for r in rows], malformed=bool(bf.problems))


__all__ = [
    "Progress",
    "SummaryRow",
    "batch_cmd",
    "batch_exit_status",
    "batch_specs",
    "idem_key",
    "load_batch",
    "parse_batch",
    "print_batch_summary",
    "run_cmd",
    "run_supervised",
]
