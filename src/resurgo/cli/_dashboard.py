"""``resurgo dashboard``: serve the live dashboard and ``/metrics`` over a run store."""

from __future__ import annotations

import os
import secrets
import signal
from pathlib import Path

import click

from resurgo.store import Store, StoreError, default_store_path


@click.command("dashboard")
@click.option(
    "--store",
    "store_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Run store to show (default: $RESURGO_HOME/resurgo.db or the XDG state folder).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0 picks a free one).")
@click.option(
    "--token",
    default=None,
    envvar="RESURGO_DASHBOARD_TOKEN",
    help="Access token (also $RESURGO_DASHBOARD_TOKEN). Required when --host is not loopback; "
    "'generate' makes a random one and prints it.",
)
def dashboard_cmd(store_path: Path | None, host: str, port: int, token: str | None) -> None:
    """Serve the live dashboard (and Prometheus /metrics) for a run store.

    On a non-loopback address a token is required, because the dashboard shows
    prompts, job names and errors to whoever can reach it.
    """
    from resurgo.dashboard import Dashboard, DashboardError

    if token == "generate":
        token = secrets.token_urlsafe(24)
    path = store_path or default_store_path()
    try:
        store = Store(os.fspath(path))
    except StoreError as e:
        raise click.ClickException(str(e)) from e
    try:
        dash = Dashboard(store, host=host, port=port, token=token)
    except DashboardError as e:
        store.close()
        raise click.ClickException(str(e)) from e
    url = dash.url + (f"?token={token}" if token else "")
    click.echo(f"resurgo dashboard on {url}  (store: {path}; Prometheus: {dash.url}metrics)", err=True)
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
