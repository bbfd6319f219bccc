"""``resurgo classify``: a stable line-oriented interface other tools call in loops.

One JSON observation per input line, one JSON verdict per output line, same
order, flushed per line so it works as a co-process in a pipe.  Bad lines never
stop the stream: they yield ``{"error": null, "invalid": "<reason>"}``.  Blank
lines are skipped without output (they carry no observation, and echoing
nothing keeps ``grep``/``sed``-produced inputs aligned with what they meant).
Only imports the classifier (not the supervisor), so it starts fast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from typing import IO, Any

import click

#: A line longer than this is rejected as invalid rather than parsed (memory bound).
MAX_LINE = 8 * 1024 * 1024


def _lines(sources: tuple[str, ...]) -> Iterator[str]:
    if not sources:
        yield from sys.stdin
        return
    for src in sources:
        if src == "-":
            yield from sys.stdin
            continue
        with open(src, encoding="utf-8", errors="replace") as fh:
            yield from fh


def _process(line: str, classifier: Any, explain: bool) -> dict[str, Any] | None:
    from resurgo.classifier import ObservationError

    if not line.strip():
        return None
    if len(line) > MAX_LINE:
        return {"error": None, "invalid": f"line longer than {MAX_LINE} characters"}
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as e:
        msg = e.msg if isinstance(e, json.JSONDecodeError) else "nested too deeply"
        return {"error": None, "invalid": f"not JSON: {msg}"}
    if not isinstance(obj, dict):
        return {"error": None, "invalid": f"not a JSON object (got {type(obj).__name__})"}
    try:
        verdict = classifier.classify(obj)
    except ObservationError as e:
        return {"error": None, "invalid": str(e)}
    out: dict[str, Any] = verdict.to_dict(explain=explain)
    return out


@click.command("classify")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--explain", is_flag=True, help="Add the evidence that decided each verdict.")
@click.option(
    "--rules",
    "rules_file",
    type=click.Path(dir_okay=False),
    help="A TOML file of extra rules ([[rule]] tables), validated before any input is read.",
)
def classify_cmd(files: tuple[str, ...], explain: bool, rules_file: str | None) -> None:
    """Classify observations: one JSON object per line in, one JSON verdict per line out.

    Reads FILES in order (or stdin when none, or for "-"). A line that is not a
    JSON object yields {"error": null, "invalid": "..."}; blank lines are skipped.
    Exit status is 0 unless the input (or the rules file) could not be read.
    """
    from resurgo.classifier import Classifier, RuleError

    try:
        classifier = Classifier.from_config(rules_file) if rules_file else Classifier()
    except RuleError as e:
        raise click.ClickException(str(e)) from None
    for f in files:  # fail before any output when an input file is missing
        if f != "-":
            try:
                with open(f, "rb"):
                    pass
            except OSError as e:
                raise click.ClickException(f"cannot read {f}: {e.strerror or e}") from None
    out: IO[str] = sys.stdout
    try:
        for line in _lines(files):
            res = _process(line, classifier, explain)
            if res is None:
                continue
            out.write(json.dumps(res, ensure_ascii=False, separators=(",", ":")) + "\n")
            out.flush()
    except BrokenPipeError:  # the reader went away: stop quietly, like other filters
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps interpreter exit quiet
        except OSError:
            pass
    except OSError as e:
        raise click.ClickException(f"cannot read input: {e.strerror or e}") from None


__all__ = ["classify_cmd"]
