"""``resurgo rules list|forget``: the failure signatures resurgo learned to retry.

Learned rules change behaviour silently (an unknown error becomes retryable
after it was retried successfully a few times), so people need to see them and
to take one back when it was learned from a fluke.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from resurgo.cli._common import console, fail, json_option, open_store, print_json, store_option, store_path


def _classifier(store: Any) -> Any:
    from resurgo.classify import Classifier

    return Classifier(store=store)


@click.group("rules")
def rules_cmd() -> None:
    """Learned classification rules (signatures retried successfully often enough)."""


@rules_cmd.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also signatures with outcomes that are not learned (yet).")
@store_option
@json_option
def list_cmd(show_all: bool, store_opt: Path | None, as_json: bool) -> None:
    """Show learned rules: signature, retry successes/failures, the rule it overrides, last seen."""
    from rich.markup import escape

    from resurgo.observe import redact

    path = store_path(store_opt)
    if not path.exists():
        if as_json:
            print_json([])
        else:
            click.echo(f"no learned rules: the store {path} does not exist")
        return
    store = open_store(path)
    try:
        clf = _classifier(store)
        rows = clf.outcomes() if show_all else clf.learned_rules()
    finally:
        store.close()
    data = [
        {"signature": r.signature, "learned": r.learned, "successes": r.successes, "failures": r.failures,
         "success_ratio": round(r.success_ratio, 3), "base_rule": r.base_rule, "example": r.example,
         "first_seen": r.first_seen, "last_seen": r.last_seen}
        for r in rows
    ]
    if as_json:
        print_json(data)
        return
    if not data:
        click.echo("no learned rules" if not show_all else "no recorded retry outcomes")
        return
    from rich.table import Table

    t = Table()
    for col in ("signature", "learned", "ok", "failed", "base rule", "last seen"):
        t.add_column(col)
    for d in data:
        t.add_row(escape(redact(d["signature"])), "yes" if d["learned"] else "no", str(d["successes"]),
                  str(d["failures"]), escape(d["base_rule"] or "-"),
                  time.strftime("%Y-%m-%d %H:%M", time.localtime(d["last_seen"])))
    console().print(t)


@rules_cmd.command("forget")
@click.argument("signature", required=False)
@click.option("--all", "forget_all", is_flag=True, help="Forget every recorded signature.")
@store_option
def forget_cmd(signature: str | None, forget_all: bool, store_opt: Path | None) -> None:
    """Forget the outcomes of SIGNATURE (or of all with --all); it is classified by the rules again."""
    if forget_all == (signature is not None):
        raise click.UsageError("give exactly one of SIGNATURE or --all")
    store = open_store(store_path(store_opt), create=False)
    try:
        n = _classifier(store).forget("*" if forget_all else str(signature))
    finally:
        store.close()
    if not forget_all and n == 0:
        fail(f"no recorded signature {signature!r} (see `resurgo rules list --all`)")
    click.echo(f"forgot {n} signature(s)")


__all__ = ["rules_cmd"]
