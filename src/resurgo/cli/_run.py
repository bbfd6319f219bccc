"""``resurgo run`` and ``resurgo batch``: supervised runs with live progress.

A thin layer over :class:`resurgo.supervise.Supervisor`: every decision
(classification, backoff, breakers, budgets, resumption) is the supervisor's;
progress lines come from :mod:`resurgo.cli._progress`, batch files are read
by :mod:`resurgo.cli._batch`; this module runs the supervisor and maps the outcome to the documented exit statuses (see
:mod:`resurgo.cli._common`).  Progress goes to stderr and results to stdout, so
``resurgo run "..." > answer.txt`` keeps just the answer.

Ctrl-C: the first one cancels the running jobs — the supervisor ends their CLI
process groups and leaves the jobs ``interrupted`` (``resurgo resume`` or the
same batch again continues them); a second one forces: every child process is
killed at once and resurgo exits (the next supervisor start marks the jobs
interrupted).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from resurgo.cli._common import (
    EXIT_INTERRUPTED,
    CliError,
    console,
    open_store,
    print_json,
    settings,
    state,
    store_option,
    store_path,
    supervisor_config,
)
from resurgo.cli._concurrency import CONCURRENCY_HELP, MAX_CONCURRENCY_HELP, concurrency_option

if TYPE_CHECKING:
    from resurgo.cli._progress import Progress

# -- running the supervisor ----------------------------------------------------------------------


def _make_supervisor(path: Path, *, concurrency: int | str | None = None, claude: str | None = None,
                     overrides: Mapping[str, Any] | None = None, prestarted: Any = None) -> Any:
    """A Supervisor configured from the merged settings, on the store at ``path``.

    ``prestarted``: a CLI already started for the first attempt (``resurgo run``),
    handed to the process manager, which adopts it only if it is exactly the
    process the attempt would start.
    """
    from resurgo.classifier import RuleError
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
        sup = Supervisor(config=supervisor_config(store, given))
        if prestarted is not None:  # the supervisor's own manager, built as always, adopts it
            sup.manager.offer_prestarted(prestarted)
        return sup, store
    except CliError:
        store.close()
        raise
    except (RuleError, ValueError, OSError) as e:  # [classify] rules changed since the configuration was checked
        store.close()
        raise CliError(f"cannot load the classification rules: {e}") from None


def _early_start(prompt: str, cwd: str, model: str | None, claude_args: Sequence[str], claude: str | None) -> Any:
    """Start the CLI for ``resurgo run`` before importing the supervisor; ``None`` when it does not apply.

    The CLI takes a few hundred milliseconds to boot; resurgo's imports and
    set-up run meanwhile instead of before it.  The command line and
    environment are built by the same functions the supervisor uses
    (:mod:`resurgo._launch`) from the same settings, and the supervisor adopts
    the process only if they are exactly what its first attempt would run.
    The console script may have started the CLI even earlier, from the plan
    the last run remembered (:mod:`resurgo._quick`): that process is kept only
    if it is exactly the one this function would start, and the plan is
    remembered again for the next run.  ``RESURGO_EARLY_START=0`` turns both off.
    """
    from resurgo import _quick

    quick = _quick.take()
    try:
        pre = _plan_and_start(prompt, cwd, model, claude_args, claude, quick)
    except BaseException:
        if quick is not None:
            quick.discard()
        raise
    if quick is not None and pre is not quick:
        quick.discard()  # started from a plan that no longer holds: end it before it reaches the API
    return pre


def _plan_and_start(prompt: str, cwd: str, model: str | None, claude_args: Sequence[str], claude: str | None,
                    quick: Any) -> Any:
    from resurgo import _quick

    if not _quick.enabled():
        return None
    from resurgo._launch import ClaudeNotFoundError, attempt_env, cli_argv, find_claude, prestart, watch_args

    cfg = settings()
    if cfg.get("otel", "enabled"):
        return None  # each attempt gets its own trace context (TRACEPARENT), known only once its span exists
    kw = cfg.supervisor_kwargs()
    try:
        exe = find_claude(claude if claude is not None else kw.get("claude"))
    except ClaudeNotFoundError:
        return None  # reported by _make_supervisor in its usual words
    env = {str(k): str(v) for k, v in dict(kw.get("env") or {}).items()}
    if kw.get("cli_max_retries") is not None:
        env["CLAUDE_CODE_MAX_RETRIES"] = str(kw["cli_max_retries"])
    # what the supervisor's first attempt will run (request watching adds a flag), else no adoption
    configured = list(watch_args([str(a) for a in kw.get("claude_args") or ()],
                                 enabled=bool(kw.get("request_watch", True))))
    args = (*configured, *claude_args)
    pre = None
    if quick is not None:
        argv, stdin = cli_argv(exe, prompt=prompt, session_id=quick.session_id, model=model, claude_args=args)
        want = attempt_env(env, token=quick.token, owner=quick.owner, tmpdir=quick.tmpdir)
        if stdin is None and quick.matches(argv, cwd, want) is None:
            pre = quick
    if pre is None:
        pre = prestart(exe, prompt=prompt, cwd=cwd, model=model, claude_args=args, env_overrides=env)
    _remember_plan(cwd, claude, exe=exe, claude_args=configured, env=env)  # after the start: it is not urgent
    return pre


def _remember_plan(cwd: str, claude: str | None, *, exe: str, claude_args: list[str], env: dict[str, str]) -> None:
    """Let the next ``resurgo run`` here start the CLI before loading anything (:mod:`resurgo._quick`).

    Not when an environment override looks like a secret: the plan file would hold it.
    """
    from resurgo import _quick
    from resurgo._redact import is_secret_name
    from resurgo.config import user_config_path

    if any(is_secret_name(k) for k in env):
        return
    config_file = state().config_file
    files = [str(user_config_path()), exe]
    if config_file:
        files.append(os.path.abspath(config_file))
    _quick.remember(_quick.plan_key(workdir=cwd, config_file=config_file, claude=claude),
                    exe=exe, claude_args=claude_args, env=env, paths=_quick.watched_paths(cwd, files))


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
    prestarted: Any = None,
) -> int:
    """Run ``work(supervisor)`` with live progress and Ctrl-C handling; returns the exit status.

    ``work`` returns a JobResult (run, resume) or a list of them (batch);
    ``on_done`` prints them and picks the exit status (default: one result).
    """
    import asyncio

    from resurgo.cli._progress import Progress, alerts_to
    from resurgo.supervise import ClaudeNotFoundError

    try:
        sup, store = _make_supervisor(path, concurrency=concurrency, claude=claude, overrides=overrides,
                                      prestarted=prestarted)
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
                # events are queued as they happen; closing the supervisor ends the queue, so the
                # consumer prints every last one and returns (no fixed pause at the end of a run)
                await sup.aclose()
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(consumer, 2.0)

    try:
        with progress, alerts_to(progress):
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
@click.option("--concurrency", default=None, callback=concurrency_option, metavar="N|auto", help=CONCURRENCY_HELP)
@click.option("--max-concurrency", type=click.IntRange(1, 1024), default=None, help=MAX_CONCURRENCY_HELP)
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
    path = store_path(store_opt)  # also checks the configuration before anything starts
    workdir = str((cwd or Path.cwd()).resolve())
    pre = _early_start(prompt, workdir, model, claude_args, claude)
    try:
        from resurgo.supervise import JobSpec

        spec = JobSpec(prompt, cwd=workdir, model=model, claude_args=tuple(claude_args), name=name,
                       session_id=pre.session_id if pre is not None else None)

        async def work(sup: Any) -> Any:
            return await sup.submit(spec).result()

        code = run_supervised(path, work, as_json=as_json, quiet=quiet, claude=claude, prestarted=pre,
                              concurrency=concurrency,
                              overrides={"max_concurrency": max_concurrency} if max_concurrency else None)
    finally:
        if pre is not None:
            pre.discard()  # not adopted (a different command line, an error before the job): end it
    raise SystemExit(code)


# -- batch ---------------------------------------------------------------------------------------

@click.command("batch")
@click.argument("file", type=click.Path(dir_okay=True, path_type=Path))
@click.option("--concurrency", "-j", default=None, callback=concurrency_option, metavar="N|auto",
              help=CONCURRENCY_HELP)
@click.option("--max-concurrency", type=click.IntRange(1, 1024), default=None, help=MAX_CONCURRENCY_HELP)
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
    from resurgo.supervise._jobstore import JobStore

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

    from resurgo.cli._batch import SummaryRow, load_batch, print_batch_summary

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


__all__ = ["batch_cmd", "run_cmd", "run_supervised"]
