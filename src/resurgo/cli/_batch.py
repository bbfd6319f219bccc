"""Batch files: parsing (JSONL, TOML, YAML), the identity of an entry, the summary and its exit status.

Shared by ``resurgo batch`` on this machine and ``resurgo batch --redis`` (the
fleet), so both identify an entry the same way and print the same summary.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resurgo.cli._common import (
    EXIT_AUTH,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    EXIT_VALIDATION,
    CliError,
    console,
    human_seconds,
    print_json,
)
from resurgo.cli._progress import esc as _esc
from resurgo.cli._progress import one_line as _one_line
from resurgo.cli._progress import styled as _styled

_JOB_KEYS = ("prompt", "id", "name", "cwd", "model", "args", "claude_args", "env")


@dataclass(slots=True)
class BatchJob:
    where: str  # "line 3" / "jobs[2] (line 7)"
    spec: dict[str, Any]


@dataclass(slots=True)
class BatchFile:
    path: Path
    jobs: list[BatchJob] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _check_job(raw: Any, where: str, base: Path) -> tuple[dict[str, Any] | None, str | None]:
    """A job entry as JobSpec keywords, or why it is malformed."""
    from resurgo.config import suggest

    if isinstance(raw, str):
        raw = {"prompt": raw}
    if not isinstance(raw, Mapping):
        return None, f"{where}: a job must be an object with a \"prompt\", got {type(raw).__name__}"
    unknown = [k for k in raw if k not in _JOB_KEYS]
    if unknown:
        return None, f"{where}: unknown field {unknown[0]!r}" + suggest(str(unknown[0]), _JOB_KEYS)
    prompt = raw.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return None, f"{where}: \"prompt\" must be a non-empty string"
    for k in ("id", "name", "cwd", "model"):
        if k in raw and (isinstance(raw[k], bool) or not isinstance(raw[k], str | int) or raw[k] == ""):
            return None, f"{where}: \"{k}\" must be a non-empty string"
    args = raw.get("claude_args", raw.get("args", []))
    if isinstance(args, str) or not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        return None, f"{where}: \"args\" must be a list of strings"
    env = raw.get("env", {})
    if not isinstance(env, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        return None, f"{where}: \"env\" must be an object of string values"
    cwd = Path(os.path.expanduser(str(raw["cwd"]))) if "cwd" in raw else Path.cwd()
    if not cwd.is_absolute():
        cwd = base / cwd
    if not cwd.is_dir():
        return None, f"{where}: cwd {cwd} is not a folder"
    spec = {"prompt": prompt, "cwd": str(cwd.resolve()), "model": raw.get("model"), "claude_args": tuple(args),
            "env": dict(env), "name": str(raw["name"]) if "name" in raw else None}
    if "id" in raw:
        spec["id"] = str(raw["id"])
    return spec, None


def parse_batch(path: Path) -> BatchFile:
    """Read a batch file: JSONL (one job per line), a TOML ``[[jobs]]`` array, or a YAML list.

    A malformed entry is recorded with its line number and skipped, so one typo
    does not hold up a hundred good jobs; a file that cannot be read or parsed
    at all is a usage error.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"batch file not found: {path}") from None
    except IsADirectoryError:
        raise CliError(f"batch file {path} is a folder") from None
    except UnicodeDecodeError:
        raise CliError(f"batch file {path} is not UTF-8 text") from None
    except OSError as e:
        raise CliError(f"cannot read the batch file {path}: {e.strerror or e}") from None
    bf = BatchFile(path.resolve())
    base = bf.path.parent
    suffix = path.suffix.lower()
    entries: list[tuple[str, Any]] = []
    if suffix == ".toml":
        import tomllib

        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise CliError(f"{path}: invalid TOML: {e}") from None
        jobs = doc.get("jobs")
        extra = sorted(set(doc) - {"jobs"})
        if extra:
            bf.problems.append(f"unknown top-level key(s) {', '.join(extra)}; jobs go in [[jobs]] tables")
        if not isinstance(jobs, list):
            raise CliError(f"{path}: expected [[jobs]] tables (an array of tables named jobs)")
        entries = [(f"jobs[{i + 1}]", j) for i, j in enumerate(jobs)]
    elif suffix in (".yaml", ".yml"):
        entries = _yaml_entries(path, text)
    else:
        for n, line in enumerate(text.splitlines(), 1):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            try:
                entries.append((f"line {n}", json.loads(s)))
            except ValueError as e:
                msg = e.msg if isinstance(e, json.JSONDecodeError) else str(e)
                bf.problems.append(f"line {n}: not valid JSON ({msg})")
    for where, raw in entries:
        spec, problem = _check_job(raw, where, base)
        if problem:
            bf.problems.append(problem)
        elif spec is not None:
            bf.jobs.append(BatchJob(where, spec))
    return bf


def _yaml_entries(path: Path, text: str) -> list[tuple[str, Any]]:
    try:
        import yaml
    except ImportError:
        raise CliError(f"{path}: YAML batch files need PyYAML (pip install pyyaml), "
                       "or use JSONL / TOML [[jobs]]") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise CliError(f"{path}: invalid YAML: {e}") from None
    if isinstance(doc, dict) and "jobs" in doc and node is not None:
        doc = doc["jobs"]
        node = next((v for k, v in node.value if k.value == "jobs"), None)
    if not isinstance(doc, list):
        raise CliError(f"{path}: expected a YAML list of jobs (or a mapping with a 'jobs' list)")
    lines = [item.start_mark.line + 1 for item in node.value] if node is not None else []
    return [(f"line {lines[i]}" if i < len(lines) else f"item {i + 1}", j) for i, j in enumerate(doc)]


def idem_key(path: Path, spec: Mapping[str, Any], occurrence: int) -> str:
    """Identity of a batch entry: the same entry of the same file is the same job.

    An explicit ``id`` wins (edit the prompt and keep the job); otherwise the
    entry's content and how many identical entries came before it, so adding
    or reordering lines does not re-run the others.
    """
    if "id" in spec:
        ident = "id:" + str(spec["id"])
    else:
        content = {k: v for k, v in spec.items() if k != "id"}
        ident = "content:" + json.dumps(content, sort_keys=True, default=list) + f"#{occurrence}"
    return "batch:" + hashlib.sha256(f"{path}\0{ident}".encode()).hexdigest()[:32]


_SEVERITY = (EXIT_INTERRUPTED, EXIT_AUTH, EXIT_VALIDATION, EXIT_FAILED)


def batch_exit_status(statuses: Sequence[int], *, malformed: bool) -> int:
    """The worst job status (interrupted > auth > validation > failed), else 2 for malformed lines."""
    for code in _SEVERITY:
        if code in statuses:
            return code
    other = [s for s in statuses if s != EXIT_OK]
    if other:
        return max(other)
    return EXIT_USAGE if malformed else EXIT_OK


def batch_specs(file: Path, bf: BatchFile) -> list[dict[str, Any]]:
    """Each valid entry as JobSpec keywords (``prompt`` included) with its idempotency key.

    Shared by the local run and ``--redis`` so both identify a batch entry the
    same way: the fleet dedups on the same ``idem_key`` the store does.
    """
    seen: dict[str, int] = {}
    specs = []
    for job in bf.jobs:
        content = json.dumps({k: v for k, v in job.spec.items() if k != "id"}, sort_keys=True, default=list)
        occ = seen.get(content, 0)
        seen[content] = occ + 1
        kw = {k: v for k, v in job.spec.items() if k != "id"}
        kw["name"] = kw.get("name") or f"{file.name} {job.where}"
        kw["idem_key"] = idem_key(bf.path, job.spec, occ)
        specs.append(kw)
    return specs


def load_batch(file: Path) -> tuple[BatchFile, list[dict[str, Any]]]:
    """Parse FILE, report its malformed entries on stderr, and refuse a file with no valid job."""
    bf = parse_batch(file)
    err = console(stderr=True)
    for p in bf.problems:
        err.print(f"[red]{_esc(file)}: {_esc(p)}[/] (skipped)")
    if not bf.jobs:
        raise CliError(f"{file}: no valid jobs to run" + (f" ({len(bf.problems)} malformed)" if bf.problems else ""))
    return bf, batch_specs(file, bf)


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """One line of the batch summary, whoever ran the job (this machine or a fleet worker).

    ``worker`` and ``claims`` are set for fleet jobs only (they add two columns);
    ``None`` figures are shown as ``-`` (a fleet job that never finished has none).
    """

    job_id: str
    name: str
    state: str
    attempts: int | None
    recoveries: int | None
    duration_s: float | None
    text: str
    exit_status: int
    worker: str | None = None
    claims: int | None = None


def print_batch_summary(rows: Sequence[SummaryRow], records: Sequence[Mapping[str, Any]], bf: BatchFile, *,
                        as_json: bool, fleet: bool = False, note: str | None = None) -> int:
    """The summary table (or ``{"jobs": records, "malformed": [...]}``) and the batch's exit status."""
    if as_json:
        print_json({"jobs": list(records), "malformed": bf.problems})
    else:
        from rich.table import Table

        t = Table(title=f"batch {bf.path.name}", title_justify="left")
        cols = ["#", "job", "name", "state", *(("worker", "claims") if fleet else ()), "att", "rec", "took",
                "result / reason"]
        for col in cols:
            t.add_column(col)
        for i, r in enumerate(rows, 1):
            fleet_cols = (_esc(r.worker or "-"), "-" if r.claims is None else str(r.claims)) if fleet else ()
            t.add_row(str(i), r.job_id[:12], _esc(r.name), _styled(r.state),
                      *fleet_cols, "-" if r.attempts is None else str(r.attempts),
                      "-" if r.recoveries is None else str(r.recoveries), human_seconds(r.duration_s),
                      _esc(_one_line(r.text, 60)))
        out = console()
        out.print(t)
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.state] = counts.get(r.state, 0) + 1
        out.print("  ".join(f"{s}: {n}" for s, n in sorted(counts.items()))
                  + (f"  malformed entries: {len(bf.problems)}" if bf.problems else ""))
        if note:
            out.print(note)
    return batch_exit_status([r.exit_status for r in rows], malformed=bool(bf.problems))


__all__ = [
    "BatchFile",
    "BatchJob",
    "SummaryRow",
    "batch_exit_status",
    "batch_specs",
    "idem_key",
    "load_batch",
    "parse_batch",
    "print_batch_summary",
]
