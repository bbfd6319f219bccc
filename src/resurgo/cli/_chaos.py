"""``resurgo chaos``: run a batch through the real CLI while injecting faults, then score it.

Exit status (so CI can gate on it):

* 0 -- every one of the seed's targets passed (classification accuracy >= 95 %,
  automatic recovery >= 90 %, mean recovery time < 30 s, breaker reaction
  < 1 s, false positives < 5 %, availability >= 99 %); with ``--strict`` also
  resurgo's own bar (0 lost jobs, 0 leaked processes and temp files, recovery
  >= 99 %, availability >= 99.9 %);
* 1 -- a target failed, or had no data (a run that provoked no breaker opening
  or no incident proved nothing, so it does not pass);
* 2 -- bad options (click);
* 6 -- the run could not be set up or crashed (no CLI found, ...); the
  message says why, and nothing is left running.

``--json`` prints the whole report as one JSON document on stdout (progress
lines stay on stderr), for scripts and CI; the exit status is the same.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command("chaos")
@click.option("--duration", type=click.FloatRange(min=1.0), default=45.0, show_default=True,
              help="Seconds of fault injection (the batch may finish earlier).")
@click.option("--jobs", type=click.IntRange(min=1), default=12, show_default=True, help="Jobs in the batch.")
@click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True, help="Jobs at once.")
@click.option("--kill-every", type=click.FloatRange(min=0.0), default=4.0, show_default=True,
              help="Mean seconds between SIGKILLs of a CLI run or a tool child (0: none).")
@click.option("--fault-rate", type=click.FloatRange(0.0, 1.0), default=0.2, show_default=True,
              help="Probability that an API request fails (0 also turns off network faults).")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of every random choice.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("chaos-report.json"), show_default=True, help="Where to save the JSON report.")
@click.option("--kill-supervisor", is_flag=True, help="Also SIGKILL the supervisor and restart it on the same store.")
@click.option("--pressure", is_flag=True, help="Add bounded CPU and memory pressure (stress-ng when installed).")
@click.option("--steps", type=click.IntRange(1, 50), default=3, show_default=True,
              help="Bash tool calls per job (each sleeps --step-sleep seconds).")
@click.option("--step-sleep", type=click.FloatRange(0.0, 60.0), default=1.0, show_default=True)
@click.option("--claude", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The Claude Code CLI (default: $RESURGO_CLAUDE, the repo's install, PATH).")
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Where the run's files go (default: a new temp dir).")
@click.option("--keep", is_flag=True, help="Keep the run's directory (store, logs) for a post-mortem.")
@click.option("--strict", is_flag=True, help="Exit 1 unless resurgo's higher bar is met too.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the target lines.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the report as JSON on stdout (progress stays on stderr); the exit status is unchanged.")
def chaos_cmd(
    duration: float,
    jobs: int,
    concurrency: int,
    kill_every: float,
    fault_rate: float,
    seed: int,
    report_path: Path,
    kill_supervisor: bool,
    pressure: bool,
    steps: int,
    step_sleep: float,
    claude: str | None,
    workdir: str | None,
    keep: bool,
    strict: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Run a batch through the real Claude Code CLI under chaos and check the availability targets.

    Everything stays on loopback: the CLI talks to resurgo's Messages API
    stand-in through resurgo's TCP fault proxy.  Exit 0 when the seed's
    targets are met (see the module docs for the other statuses).
    """
    from rich.console import Console

    from resurgo.chaos import render_report
    from resurgo.chaos._config import ChaosConfig, ChaosError
    from resurgo.chaos._runner import ChaosRunner

    # soft_wrap: the report and run-directory paths stay on one line in a pipe or a CI log (copyable)
    console = Console(stderr=False, soft_wrap=True)
    err = Console(stderr=True, soft_wrap=True)
    try:
        cfg = ChaosConfig(
            duration=duration, jobs=jobs, concurrency=concurrency, kill_every=kill_every or None,
            fault_rate=fault_rate, seed=seed, kill_supervisor=kill_supervisor, pressure=pressure, steps=steps,
            step_sleep=step_sleep, claude=claude, workdir=workdir, keep=keep,
        )
    except ValueError as e:
        raise click.BadParameter(str(e)) from e
    runner = ChaosRunner(cfg, progress=(lambda s: None) if quiet else (lambda s: err.print(s, highlight=False)))
    try:
        report = runner.run()
    except ChaosError as e:
        err.print(f"[red]resurgo chaos: {e}[/]")
        sys.exit(6)
    except KeyboardInterrupt:
        err.print("[yellow]resurgo chaos: interrupted; everything it started has been ended[/]")
        sys.exit(5)
    saved = report.save(report_path)
    ok = report.passed if strict else report.passed_seed()
    if as_json:
        # one JSON document on stdout and nothing else, so `resurgo chaos --json | jq` works
        click.echo(report.to_json())
        err.print(f"report saved to {saved}", highlight=False)
        sys.exit(0 if ok else 1)
    if not quiet:
        console.print(render_report(report))
        if keep and runner.root is not None:
            err.print(f"run directory kept: {runner.root}")
    for line in report.check_lines():
        console.print(line, highlight=False, markup=False)
    console.print(f"report saved to {saved}", highlight=False)
    sys.exit(0 if ok else 1)
