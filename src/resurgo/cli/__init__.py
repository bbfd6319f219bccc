"""The ``resurgo`` command: a thin layer over the library and the supervisor.

Sub-commands live in their own modules and are imported only when invoked, so
``resurgo classify`` (called by other tools in loops) starts fast and does not
load the supervisor, the dashboard or the mock API.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import click

# command name -> "module:attribute" of a click.Command
_COMMANDS: dict[str, str] = {
    "classify": "resurgo.cli._classify:classify_cmd",
    "mock-api": "resurgo.cli._mockapi:mock_api_cmd",
    "run": "resurgo.cli._run:run_cmd",
    "batch": "resurgo.cli._run:batch_cmd",
    "status": "resurgo.cli._jobs_cmds:status_cmd",
    "jobs": "resurgo.cli._jobs_cmds:jobs_cmd",
    "show": "resurgo.cli._jobs_cmds:show_cmd",
    "resume": "resurgo.cli._jobs_cmds:resume_cmd",
    "cancel": "resurgo.cli._jobs_cmds:cancel_cmd",
    "cleanup": "resurgo.cli._jobs_cmds:cleanup_cmd",
    "rules": "resurgo.cli._rules:rules_cmd",
    "config": "resurgo.cli._config:config_cmd",
    "demo": "resurgo.cli._demo:demo_cmd",
    "dashboard": "resurgo.cli._dashboard:dashboard_cmd",
    "chaos": "resurgo.cli._chaos:chaos_cmd",
    "worker": "resurgo.cli._worker_cmd:worker_cmd",
    "doctor": "resurgo.cli._doctor:doctor_cmd",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n in _COMMANDS if _available(n))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        mod_name, attr = target.split(":")
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            if e.name == mod_name:
                return None
            raise
        cmd: Any = getattr(mod, attr)
        return cmd  # type: ignore[no-any-return]

    def invoke(self, ctx: click.Context) -> Any:
        """Turn an unexpected exception into exit status 6 (internal error) with one clear line.

        Scripts rely on the documented statuses; a Python traceback exiting 1
        would read as "the job failed after recovery".  Set RESURGO_DEBUG=1 for
        the traceback.
        """
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except Exception as e:
            import os
            import traceback

            if os.environ.get("RESURGO_DEBUG"):
                traceback.print_exc()
            from resurgo.observe import redact

            click.echo(f"resurgo: internal error: {type(e).__name__}: {redact(str(e))}"
                       " (set RESURGO_DEBUG=1 for the traceback; please report it)", err=True)
            ctx.exit(6)


def _available(name: str) -> bool:
    mod_name = _COMMANDS[name].split(":")[0]
    return importlib.util.find_spec(mod_name) is not None


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="resurgo")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Extra configuration file, above the user config and the project resurgo.toml.",
)
@click.option(
    "--store",
    "store",
    type=click.Path(),
    default=None,
    help="Run store (SQLite file) for every command (default: [store] path, then $RESURGO_HOME or XDG state).",
)
@click.pass_context
def main(ctx: click.Context, config_file: str | None, store: str | None) -> None:
    """Make headless Claude Code runs finish anyway, and say clearly when they cannot."""
    # Only remembered here: loading the configuration is left to the commands that need
    # it, so `resurgo classify` in a loop stays fast.
    ctx.obj = {"config_file": config_file, "store": store}


__all__ = ["main"]
