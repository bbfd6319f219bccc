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
    from resurgo.classifier import Classifier

    return Classifier(store=store)


@click.group("rules")
def rules_cmd() -> None:
    """Classification rules: learned signatures, and an audit of the CLI's vocabulary."""


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


def audit_report(texts: list[tuple[str, str]], *, classifier: Any = None) -> dict[str, Any]:
    """How the classifier judges each mined string: explicit rule, semantic family, or only the fallback.

    ``texts`` are (text, source) pairs.  Fallback strings are grouped by their
    topic (the words before a ``:``, else the first two words) so a new family of
    messages shows up as one group with a count, not as hundreds of lines.
    """
    import re

    from resurgo.classifier import Classifier

    clf = classifier if classifier is not None else Classifier(cache_size=0)
    explicit = semantic = 0
    groups: dict[str, list[str]] = {}
    for text, _src in texts:
        v = clf.classify({"message": text}, record=False)
        if v.rule == "fallback":
            head = text.split(":", 1)[0] if ":" in text[:40] else " ".join(re.findall(r"[A-Za-z][\w'-]*", text)[:2])
            groups.setdefault(head.strip().lower() or "?", []).append(text)
        elif v.rule.startswith("semantic."):
            semantic += 1
        else:
            explicit += 1
    fallback = sum(len(v) for v in groups.values())
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return {
        "strings": len(texts),
        "explicit_rule": explicit,
        "semantic_tier": semantic,
        "fallback_only": fallback,
        "fallback_rate": round(fallback / len(texts), 4) if texts else 0.0,
        "groups": [{"group": g, "count": len(items), "examples": sorted(items)[:5]} for g, items in ordered],
    }


@rules_cmd.command("audit")
@click.option("--claude", "claude", default=None,
              help="The Claude Code CLI to read (launcher, package folder or binary; else $RESURGO_CLAUDE, PATH).")
@click.option("--sdk", is_flag=True, help="Also read the installed claude_agent_sdk and anthropic Python packages.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=30, show_default=True, help="Groups to print.")
@json_option
def audit_cmd(claude: str | None, sdk: bool, limit: int, as_json: bool) -> None:
    """Which error messages of the installed CLI only the fallback classifies (grouped, with counts).

    Reads the CLI's own user-facing error strings (its JavaScript, or the native
    binary that embeds it) and classifies each one: after a CLI upgrade this shows
    at once which new messages resurgo does not recognise yet.  Exit status 0.
    """
    from resurgo.classifier._vocab import cli_version, installed_package, mine_cli, mine_python_package
    from resurgo.supervise._process import ClaudeNotFoundError, find_claude

    try:
        path = find_claude(claude)
    except ClaudeNotFoundError as e:
        fail(str(e))
    try:
        mined = mine_cli(path)
    except (OSError, ValueError) as e:
        fail(f"cannot read the Claude Code CLI at {path}: {e}")
    texts = [(m.text, m.source) for m in mined]
    if sdk:
        for name in ("claude_agent_sdk", "anthropic"):
            found = installed_package(name)
            if found is not None:
                texts.extend((m.text, m.source) for m in mine_python_package(found[0], name=name, version=found[1]))
    report = audit_report(texts)
    report = {"claude": path, "version": cli_version(path), **report}
    if as_json:
        print_json(report)
        return
    from rich.markup import escape

    out = console()
    out.print(
        f"Claude Code {report['version'] or '?'} at {escape(path)}: {report['strings']} error-like strings; "
        f"{report['explicit_rule']} matched by explicit rules, {report['semantic_tier']} by the semantic tier, "
        f"[bold]{report['fallback_only']}[/] only by the fallback ({report['fallback_rate']:.1%})."
    )
    for g in report["groups"][:limit]:
        out.print(f"[bold]{g['count']:5d}[/]  {escape(g['group'])}")
        for ex in g["examples"][:2]:
            out.print(f"       {escape(ex[:150])}", soft_wrap=True)
    rest = len(report["groups"]) - limit
    if rest > 0:
        out.print(f"… {rest} more groups (--limit, or --json for all)")


__all__ = ["audit_report", "rules_cmd"]
