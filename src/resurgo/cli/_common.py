"""What every everyday command shares: settings, the store, exit statuses, output helpers.

Exit statuses (documented in the README; ``run``/``batch``/``resume`` follow the
supervisor contract, the other commands use the subset that applies):

* 0 — success;
* 1 — a job failed after recovery (retryable, but resurgo gave up);
  ``config check``: problems were found;
* 2 — usage error: unknown option, bad argument, missing or malformed input
  file, invalid configuration, a store that cannot be used, an unknown job;
* 3 — a job failed with a non-retryable authentication error;
* 4 — a job failed with a non-retryable validation / billing / configuration error;
* 5 — interrupted (Ctrl-C, cancelled): the job can be resumed;
* 6 — an internal error of resurgo itself.

Errors are printed as one clear line (or a list) on stderr and never carry a
secret: every message passes through the redaction used for stored text.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from rich.console import Console

    from resurgo.config import Settings
    from resurgo.store import Store

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_VALIDATION = 4
EXIT_INTERRUPTED = 5
EXIT_INTERNAL = 6


class CliError(click.ClickException):
    """A problem with the user's input or environment: one clear message, exit status 2 by default."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        from resurgo.observe import redact

        super().__init__(redact(message))
        # click >= 8.5 types ``exit_code`` as a ClassVar; click still reads it per instance.
        object.__setattr__(self, "exit_code", exit_code)

    def show(self, file: Any = None) -> None:
        click.echo(f"resurgo: error: {self.format_message()}", err=True)


@dataclass(slots=True)
class CliState:
    """Global options of the ``resurgo`` group, and what was loaded from them (once per process)."""

    config_file: str | None = None
    store: str | None = None
    settings: Settings | None = None


def state(ctx: click.Context | None = None) -> CliState:
    ctx = ctx or click.get_current_context()
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        given = root.obj if isinstance(root.obj, dict) else {}
        root.obj = CliState(config_file=given.get("config_file"), store=given.get("store"))
    return root.obj


def settings(ctx: click.Context | None = None, *, check: bool = True) -> Settings:
    """The merged configuration; invalid configuration stops the command with every problem listed."""
    from resurgo.config import load_settings

    st = state(ctx)
    if st.settings is None:
        st.settings = load_settings(config_file=st.config_file)
    if check and st.settings.problems:
        lines = "\n".join(f"  {p}" for p in st.settings.problems)
        raise CliError(f"invalid configuration ({len(st.settings.problems)} problem(s)):\n{lines}\n"
                       "Run `resurgo config check` for details.")
    return st.settings


def supervisor_config(store: Any, overrides: Mapping[str, Any] | None = None,
                      ctx: click.Context | None = None) -> Any:
    """The ``SupervisorConfig`` of every command that runs jobs (run, batch, resume, demo, worker).

    One place, so each of them honours the same settings: ``[supervisor]``,
    ``[breaker]``, ``[alerts] webhook`` and ``[classify] rules`` (via
    :meth:`Settings.supervisor_kwargs`), with the command's own options
    (``overrides``) on top.  ``store`` is a Store or a path.
    """
    from resurgo.supervise import SupervisorConfig

    kw = settings(ctx).supervisor_kwargs()
    kw.update(overrides or {})
    try:
        return SupervisorConfig(store=store, **kw)
    except ValueError as e:
        raise CliError(f"invalid supervisor configuration: {e}") from None


def store_path(store_opt: str | os.PathLike[str] | None = None, ctx: click.Context | None = None) -> Path:
    """``--store`` on the command, else ``resurgo --store``, else ``[store] path``, else the default."""
    st = state(ctx)
    override = store_opt if store_opt is not None else st.store
    return settings(ctx).store_path(override)


def open_store(path: Path, *, create: bool = True) -> Store:
    """Open the run store with its schema, turning every failure into a clear usage error.

    A file that is not a database is refused before anything is written to it:
    SQLite reads the header first, so the user's file is left exactly as it was.
    """
    from resurgo.store import Store, StoreError
    from resurgo.store.schema import ensure_schema

    if not create and not path.exists():
        raise CliError(f"no run store at {path} (nothing has run yet, or pass --store PATH)")
    if path.exists() and path.is_dir():
        raise CliError(f"the store path {path} is a folder, not a file")
    try:
        store = Store(os.fspath(path))
    except StoreError as e:
        raise CliError(f"cannot use the run store: {e}") from None
    try:
        ensure_schema(store)
    except Exception as e:  # sqlite3 errors: read-only file, disk full, corrupt pages
        store.close()
        raise CliError(f"cannot use the run store {path}: {e}") from None
    return store


def store_option(f: Any) -> Any:
    """``--store PATH`` on a sub-command (same meaning as ``resurgo --store PATH``)."""
    return click.option(
        "--store",
        "store_opt",
        type=click.Path(path_type=Path),
        default=None,
        help="Run store (default: resurgo --store, [store] path, $RESURGO_HOME or the XDG state folder).",
    )(f)


def json_option(f: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of tables.")(f)


def console(*, stderr: bool = False) -> Console:
    """The console of every command's human output.

    ``soft_wrap=True``: rich never inserts line breaks into printed text.  When
    stdout is not a terminal rich assumes 80 columns, and a store path or a
    command in a hint would be split across two lines and could not be copied
    (a terminal still wraps long lines visually, without breaking them).
    Tables keep their own layout.
    """
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def print_json(obj: Any) -> None:
    """JSON on stdout, secrets redacted (by key and by content), one document."""
    from resurgo.observe import redact_obj

    sys.stdout.write(json.dumps(redact_obj(obj), indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    raise CliError(message, code)


def ago(ts: float | None, now: float | None = None) -> str:
    """``"3m ago"``: how people read times in a job list."""
    if ts is None:
        return "-"
    d = max(0.0, (now or time.time()) - ts)
    return f"{human_seconds(d)} ago"


def human_seconds(d: float | None) -> str:
    if d is None:
        return "-"
    if d < 1:
        return f"{d * 1000:.0f}ms"
    if d < 60:
        return f"{d:.1f}s"
    if d < 3600:
        return f"{int(d // 60)}m{int(d % 60):02d}s"
    if d < 86400:
        return f"{int(d // 3600)}h{int(d % 3600 // 60):02d}m"
    return f"{int(d // 86400)}d{int(d % 86400 // 3600):02d}h"


def clock_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts % 1 * 1000):03d}"


def resolve_job(store: Store, ref: str) -> str:
    """A full job id from an id, a unique id prefix (ids are long) or a unique job name."""
    rows = store.query("SELECT id FROM jobs WHERE id = ?", (ref,))
    if rows:
        return str(rows[0][0])
    like = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = store.query("SELECT id FROM jobs WHERE id LIKE ? ESCAPE '\\' LIMIT 3", (like,))
    if len(rows) == 1:
        return str(rows[0][0])
    if len(rows) > 1:
        fail(f"job id prefix {ref!r} is ambiguous; give more characters")
    rows = store.query("SELECT id FROM jobs WHERE name = ? LIMIT 3", (ref,))
    if len(rows) == 1:
        return str(rows[0][0])
    if len(rows) > 1:
        fail(f"several jobs are named {ref!r}; use the job id")
    fail(f"no job {ref!r} in the store {store.path} (see `resurgo jobs`)")


STATE_STYLE = {
    "pending": "dim",
    "queued": "dim",
    "running": "cyan",
    "recovering": "yellow",
    "waiting": "magenta",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "bright_black",
    "interrupted": "yellow",
    "lost": "red",  # a fleet job whose record vanished from Redis (batch --redis)
}

__all__ = [
    "EXIT_AUTH",
    "EXIT_FAILED",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "EXIT_VALIDATION",
    "CliError",
    "CliState",
    "ago",
    "console",
    "fail",
    "open_store",
    "print_json",
    "resolve_job",
    "settings",
    "state",
    "store_option",
    "store_path",
    "supervisor_config",
]
