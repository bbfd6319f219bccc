"""``resurgo worker [--redis URL]``: one member of a fleet that runs jobs queued in Redis.

Kept apart from ``run``/``batch`` because it is a long-running service with
its own life cycle: it serves until SIGTERM or Ctrl-C, then stops taking jobs,
lets running ones finish for ``--grace`` seconds and hands the rest back to
the fleet (a second signal shortens the grace to nothing).  The Redis is
``--redis``, else the ``[redis] url`` configuration key (the one ``resurgo
batch`` submits to), so a host configured once needs no option.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import click


@click.command("worker")
@click.option("--redis", "redis_url", default=None, metavar="URL",
              help="Redis of the fleet (redis://host:6379/0) [the [redis] url configuration key].")
@click.option("--concurrency", "-c", default=None, metavar="N|auto",
              help="Jobs run at once, or 'auto': one adaptive limit per API endpoint shared by the whole fleet "
                   "through Redis [the supervisor's concurrency, 4].")
@click.option("--max-concurrency", type=click.IntRange(1, 1024), default=None,
              help="With --concurrency auto: the most jobs this worker runs at once [max_concurrency, 32].")
@click.option("--name", default=None, help="Consumer name in the fleet [host:pid].")
@click.option("--store", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="This worker's local SQLite store [[store] path, else resurgo's default store].")
@click.option("--prefix", default="resurgo", show_default=True, help="Key prefix (one fleet per prefix).")
@click.option("--lease", type=click.FloatRange(min=0.5), default=30.0, show_default=True,
              help="Seconds a silent worker keeps its jobs before others reclaim them.")
@click.option("--grace", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="On SIGTERM, seconds running jobs get to finish before they are handed back.")
@click.option("--transcript-interval", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              help="Seconds between uploads of a growing session transcript.")
@click.option("--claude", default=None, help="Path of the claude CLI [RESURGO_CLAUDE, else PATH].")
@click.option("--no-share-state", is_flag=True, help="Do not share breakers, budgets and learned rules.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True)
def worker_cmd(
    redis_url: str | None, concurrency: str | None, max_concurrency: int | None, name: str | None,
    store: Path | None, prefix: str, lease: float,
    grace: float, transcript_interval: float, claude: str | None, no_share_state: bool, log_level: str,
) -> None:
    """Run jobs from the fleet's queue in Redis until SIGTERM / Ctrl-C."""
    from resurgo.cli._common import CliError, settings, store_path, supervisor_config
    from resurgo.distributed._fleet_worker import FleetWorker

    if redis_url is None:
        redis_url = settings().get("redis", "url")  # validated (scheme included) by the configuration
        if redis_url is None:
            raise CliError("no Redis to serve: pass --redis URL or set `url` in the [redis] section of the "
                           "configuration (see `resurgo config`)")
    elif not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise click.BadParameter("must start with redis://, rediss:// or unix://", param_hint="--redis")

    logging.basicConfig(level=getattr(logging, log_level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # the same settings as run/batch ([supervisor], [breaker], [alerts], [classify] rules, [store] path)
    given: dict[str, object] = {}
    if claude is not None:
        given["claude"] = claude
    from resurgo.cli._concurrency import concurrency_option

    conc = concurrency_option(None, None, concurrency)
    if conc is not None:
        given["concurrency"] = conc
    if max_concurrency is not None:
        given["max_concurrency"] = max_concurrency
    cfg = supervisor_config(str(store_path(store)), given)
    from resurgo.distributed._policy import WorkerPolicy
    from resurgo.distributed._transcripts import TranscriptCodec, TranscriptError

    s = settings()
    # what this worker accepts from Redis: the [worker] section (resurgo.distributed._policy)
    policy = WorkerPolicy.create(cwd_roots=s.get("worker", "cwd_roots") or None,
                                 allow_env=s.get("worker", "allow_env"),
                                 allow_claude_args=s.get("worker", "allow_claude_args"))
    try:
        codec = TranscriptCodec(s.get("worker", "transcripts"), key=s.get("worker", "transcript_key"))
    except TranscriptError as e:
        raise CliError(f"[worker] transcripts: {e}") from None
    worker = FleetWorker(
        redis_url, config=cfg, prefix=prefix, name=name, concurrency=conc if isinstance(conc, int) else None,
        lease=lease, grace=grace,
        transcript_interval=transcript_interval, share_state=not no_share_state, policy=policy,
        transcripts=codec,
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        signals = 0

        def on_signal() -> None:
            nonlocal signals
            signals += 1
            worker.stop(now=signals > 1)  # asked twice: hand the running jobs back now

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        await worker.run()

    asyncio.run(main())
