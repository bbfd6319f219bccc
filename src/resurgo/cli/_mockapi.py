"""``resurgo mock-api``: run the Messages API stand-in in the foreground.

For demos and manual chaos: point a real ``claude`` at the printed URL and
switch faults at runtime with ``POST /_resurgo/faults`` (same fields as
``--fault``), e.g.
``curl -d '{"status": 529, "count": 3}' http://127.0.0.1:PORT/_resurgo/faults``.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import typing
from typing import Any

import click

from resurgo.mockapi import Capacity, Faults, MockServer

_SHORTHANDS = {"reset": ("reset", True), "hang": ("hang", True)}


def parse_fault_options(items: tuple[str, ...]) -> Faults:
    """Turn ``--fault`` items into a :class:`Faults`.

    Accepts ``KEY=VALUE`` for any Faults field, plus shorthands: a bare status
    (``529``), ``reset``, ``hang`` and ``cut=N``.
    """
    hints = typing.get_type_hints(Faults)
    fields = {f.name for f in dataclasses.fields(Faults)}
    kwargs: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            if key.isdigit():
                kwargs["status"] = int(key)
                continue
            if key in _SHORTHANDS:
                name, val = _SHORTHANDS[key]
                kwargs[name] = val
                continue
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE, a status, 'reset' or 'hang'")
        if key == "cut":
            key = "cut_after"
        if key not in fields:
            raise click.BadParameter(f"{item!r}: unknown field {key!r}; known: {', '.join(sorted(fields))}")
        kwargs[key] = _convert(key, raw.strip(), str(hints[key]))
    try:
        return Faults(**kwargs)
    except (TypeError, ValueError) as e:
        raise click.BadParameter(str(e)) from e


def _convert(key: str, raw: str, hint: str) -> Any:
    try:
        if raw.lower() in ("none", "null", ""):
            return None
        if "bool" in hint:
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("1", "true", "yes")
        if "tuple" in hint:
            return tuple(p for p in raw.split(",") if p)
        if "float" in hint:
            return float(raw)
        if "int" in hint:
            return int(raw)
        return raw
    except ValueError as e:
        raise click.BadParameter(f"{key}={raw!r} is not a valid {hint}") from e


@click.command("mock-api")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", "-p", default=0, show_default=True, type=int, help="Port; 0 picks a free one.")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="KEY=VALUE",
    help="A Faults field (status=529, count=3, probability=0.2, seed=1, reset=true, hang=true, "
    "cut_after=4, retry_after=30, event_delay=0.5, session_id=..., nth=2); repeatable. "
    "Shorthands: 529, reset, hang, cut=N.",
)
@click.option("--max-inflight", type=click.IntRange(min=1), default=None,
              help="Capacity: at most K Messages requests at once; more are refused with 529 overloaded_error.")
@click.option("--rate", type=click.IntRange(min=1), default=None,
              help="Capacity: at most N Messages requests per --rate-window; more get 429 with retry-after.")
@click.option("--rate-window", type=click.FloatRange(min=0.001), default=60.0, show_default=True,
              help="Seconds of one request-rate window.")
@click.option("--latency", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="Seconds added to every admitted Messages request (while it holds its slot).")
def mock_api_cmd(host: str, port: int, faults: tuple[str, ...], max_inflight: int | None, rate: int | None,
                 rate_window: float, latency: float) -> None:
    """Run the fault-injecting Messages API stand-in until Ctrl-C.

    The capacity model (--max-inflight, --rate, --latency) can be changed while it runs:
    POST /_resurgo/capacity with a JSON object of the same fields (max_inflight, rate,
    rate_window, latency); GET /_resurgo/capacity shows it with its counters.
    """
    # Ctrl-C must stop it even when started by a parent that ignores SIGINT (a background job of a
    # non-interactive shell does; Python then installs no handler of its own), and so must SIGTERM
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    plan = parse_fault_options(faults)
    cap = Capacity(max_inflight=max_inflight, rate=rate, rate_window=rate_window, latency=latency)
    srv = MockServer(host=host, port=port, faults=plan, capacity=cap)
    srv.start()
    click.echo(srv.url, nl=True)
    click.echo(
        f"ANTHROPIC_BASE_URL={srv.url}  faults: {plan.kinds or 'none'}  capacity: {cap.to_dict()}  "
        f"control: POST {srv.url}/_resurgo/faults, GET {srv.url}/_resurgo/stats",
        err=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
        click.echo(f"served {len(srv.requests)} request(s)", err=True)
