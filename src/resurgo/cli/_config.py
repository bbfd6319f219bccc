"""``resurgo config show|check``: what is in effect, where it came from, and what is wrong.

``check`` exists because a config is usually written once and then trusted for
months: it reports every problem of every layer in one go (``file:section.key:
message``) and exits 1 when there is any, so it fits a pre-commit hook or CI.
``show`` prints each effective value with its source, secrets redacted, so
"why is the stall timeout 60?" has an answer.
"""

from __future__ import annotations

import json
from typing import Any

import click

from resurgo.cli._common import EXIT_FAILED, console, json_option, print_json, state


@click.group("config")
def config_cmd() -> None:
    """Show the effective configuration or check it for problems.

    Layers, lowest first: defaults; $XDG_CONFIG_HOME/resurgo/config.toml; the
    nearest resurgo.toml at or above the current folder; resurgo --config FILE;
    RESURGO_<SECTION>_<KEY> environment variables; command-line options.
    """


def _load() -> Any:
    from resurgo.config import load_settings

    return load_settings(config_file=state().config_file)


@config_cmd.command("show")
@click.option("--section", "sections", multiple=True, help="Only this section (repeatable).")
@json_option
def show_cmd(sections: tuple[str, ...], as_json: bool) -> None:
    """Print every effective setting with the file or variable it came from (secrets redacted)."""
    from resurgo.config import suggest

    s = _load()
    for sec in sections:
        if sec not in s.values:
            raise click.BadParameter(f"unknown section {sec!r}" + suggest(sec, s.values), param_hint="--section")
    data = s.to_dict()
    if sections:
        data = {k: v for k, v in data.items() if k in sections}
    if as_json:
        print_json({"files": [lay.name for lay in s.layers if lay.name not in ("environment", "command line")],
                    "settings": data, "dangerous": s.dangerous(), "problems": [p.to_dict() for p in s.problems]})
        return
    from rich.table import Table
    from rich.text import Text

    out = console()
    files = [lay.name for lay in s.layers if lay.name not in ("environment", "command line")]
    out.print(f"[bold]files read[/]: {', '.join(files) if files else '(none; defaults only)'}")
    for sec, keys in data.items():
        t = Table(title=Text(f"[{sec}]", style="bold"), title_justify="left", show_header=False, box=None,
                  pad_edge=False)
        t.add_column("key", style="bold")
        t.add_column("value")
        t.add_column("source", style="dim")
        for k, v in keys.items():
            t.add_row(k, _fmt(v["value"]), v["source"])
        out.print(t)
    risky = s.dangerous()
    if risky:
        # what a planted or borrowed config would change first: the program run, its arguments and
        # environment, where the API key and alerts go, who can reach the dashboard
        out.print("[bold]settings that choose what runs or where data goes[/], and who set them:")
        for d in risky:
            out.print(f"  {d['setting']} = {_fmt(d['value'])}  [dim]set by {d['source']}[/]",
                      markup=True, highlight=False)
    if s.problems:
        out.print(f"[red]{len(s.problems)} problem(s)[/]; run `resurgo config check`")


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v if len(v) <= 80 else v[:77] + "..."
    text = json.dumps(v, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


@config_cmd.command("check")
@json_option
def check_cmd(as_json: bool) -> None:
    """Validate every layer; print every problem (file:section.key: message); exit 1 if any."""
    s = _load()
    files = [lay.name for lay in s.layers if lay.name not in ("environment", "command line")]
    if as_json:
        print_json({"ok": not s.problems, "files": files, "problems": [p.to_dict() for p in s.problems]})
    elif s.problems:
        for p in s.problems:
            click.echo(str(p))
        click.echo(f"{len(s.problems)} problem(s) in the configuration", err=True)
    else:
        click.echo(f"configuration OK ({', '.join(files) if files else 'defaults only'})")
    if s.problems:
        raise SystemExit(EXIT_FAILED)


__all__ = ["config_cmd"]
