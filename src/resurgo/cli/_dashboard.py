"""``resurgo dashboard``: serve the live dashboard and ``/metrics`` over a run store."""

from __future__ import annotations

import os
import secrets
import signal
from pathlib import Path

import click

from resurgo.store import Store, StoreError


@click.command("dashboard")
@click.option(
    "--store",
    "store_opt",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Run store to show [resurgo --store, [store] path, $RESURGO_HOME/resurgo.db or the XDG state folder].",
)
@click.option("--host", default=None, help="Address to listen on [[dashboard] host, 127.0.0.1].")
@click.option("--port", default=None, type=click.IntRange(0, 65535),
              help="Port to listen on, 0 picks a free one [[dashboard] port, 8765].")
@click.option(
    "--token",
    default=None,
    help="Access token [[dashboard] token, also $RESURGO_DASHBOARD_TOKEN]. Required when --host is not "
    "loopback; 'generate' makes a random one and prints it.",
)
def dashboard_cmd(store_opt: Path | None, host: str | None, port: int | None, token: str | None) -> None:
    """Serve the live dashboard (and Prometheus /metrics) for a run store.

    Defaults come from the ``[dashboard]`` and ``[store]`` configuration
    (``resurgo config show``); options given here win.  On a non-loopback
    address a token is required, because the dashboard shows prompts, job
    names and errors to whoever can reach it.
    """
    from resurgo.cli._common import settings, store_path
    from resurgo.dashboard import Dashboard, DashboardError

    cfg = settings()  # invalid configuration: every problem listed, exit status 2
    host = host if host is not None else str(cfg.get("dashboard", "host"))
    port = port if port is not None else int(cfg.get("dashboard", "port"))
    given = token is not None
    token = token if token is not None else cfg.get("dashboard", "token")
    generated = token == "generate"
    if generated:
        token = secrets.token_urlsafe(24)
    path = store_path(store_opt)
    try:
        store = Store(os.fspath(path))
    except StoreError as e:
        raise click.ClickException(str(e)) from e
    try:
        dash = Dashboard(store, host=host, port=port, token=token)
    except DashboardError as e:
        store.close()
        raise click.ClickException(str(e)) from e
    # the token never goes into the announced address (terminal scroll-back, logs of service managers)
    click.echo(f"resurgo dashboard on {dash.url}  (store: {path}; Prometheus: {dash.url}metrics)", err=True)
    if generated:
        click.echo(f"access token (generated, shown once): {token}\n"
                   "  open the page and add ?token=<that token> once (it is then kept in a cookie), "
                   "or send Authorization: Bearer <token>", err=True)
    elif token:
        where = "--token" if given else cfg.source("dashboard", "token")
        click.echo(f"access token: the one from {where} (add ?token=... once, or send Authorization: Bearer)",
                   err=True)
    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # SIGTERM (service managers, tests) ends the server as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        dash.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        dash.shutdown()
        store.close()
