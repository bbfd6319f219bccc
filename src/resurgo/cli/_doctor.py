"""``resurgo doctor``: check what usually goes wrong before a long run, and say how to fix each.

Every check is a plain function over a :class:`Context` (environment,
configuration, paths), returning :class:`Finding` s, so each failure mode is
tested on its own without touching the real machine.  ``fail`` means a run
would break (the command exits 1), ``warn`` that it would run but not as the
user probably expects, ``ok`` and ``skip`` are informational.

Secrets are never printed: the auth check says *which* variable or file holds
credentials, never their value.
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from resurgo.cli._common import console, print_json, state

#: The Claude Code CLI versions the test suite runs against (scripts/setup.sh installs both;
#: tests marked ``cli_versions`` run on each).  Older or newer versions may work, but their
#: messages and events have not been checked; keep in step with the README and docs/cli-versions.md.
TESTED_CLI_RANGE = ("2.1.197", "2.1.332")

#: Free space below which sessions and the store are at risk (transcripts and event rows grow
#: with every turn; SQLite needs room for its WAL).
DISK_FAIL_BYTES = 100 * 1024 * 1024
DISK_WARN_BYTES = 1024 * 1024 * 1024
INODES_FAIL = 1_000
INODES_WARN = 10_000

#: The CLI's default for CLAUDE_CODE_MAX_RETRIES; above this many of its own retries per turn,
#: resurgo's recoveries multiply them.
CLI_DEFAULT_MAX_RETRIES = 10
CLI_RETRIES_WARN_ABOVE = 3

_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")
_AUTH_VARS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    status: str  # ok | warn | fail | skip
    summary: str
    fix: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "status": self.status, "summary": self.summary, "fix": self.fix,
                "details": dict(self.details)}


@dataclass
class Context:
    """What the checks look at; built from the real process by :func:`context_from`, faked in tests."""

    environ: Mapping[str, str]
    settings: Any  # resurgo.config.Settings
    store_path: Path
    config_files: list[Path] = field(default_factory=list)
    run: Callable[[list[str]], tuple[int, str]] | None = None  # argv -> (status, output)
    tmpdir: Path | None = None
    uid: int = field(default_factory=os.geteuid)

    def job_env(self) -> dict[str, str]:
        """What a job's CLI sees: the environment with ``[supervisor] env`` on top."""
        extra = self.settings.get("supervisor", "env") or {}
        return {**self.environ, **{str(k): str(v) for k, v in extra.items()}}


def _run_cmd(argv: list[str]) -> tuple[int, str]:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired) as e:
        return 127, str(e)
    return p.returncode, (p.stdout + p.stderr).strip()


def _parse_version(text: str) -> tuple[int, int, int] | None:
    m = _VERSION.search(text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


# -- the checks ---------------------------------------------------------------------------------
def check_cli(ctx: Context) -> list[Finding]:
    from resurgo._launch import ClaudeNotFoundError, find_claude

    explicit = ctx.settings.get("supervisor", "claude")
    try:
        path = find_claude(explicit, env=ctx.environ)
    except ClaudeNotFoundError as e:
        return [Finding("cli", "fail", str(e),
                        f"npm install -g @anthropic-ai/claude-code@{TESTED_CLI_RANGE[1]}, or set RESURGO_CLAUDE "
                        "/ [supervisor] claude to its path")]
    status, out = (ctx.run or _run_cmd)([path, "--version"])
    lo, hi = (_parse_version(v) for v in TESTED_CLI_RANGE)
    tested = f"{TESTED_CLI_RANGE[0]} to {TESTED_CLI_RANGE[1]}"
    v = _parse_version(out) if status == 0 else None
    details = {"path": path, "version": ".".join(map(str, v)) if v else None, "tested_range": list(TESTED_CLI_RANGE)}
    if v is None:
        return [Finding("cli", "fail", f"{path} does not run (`claude --version` exited {status}: {out[:200]})",
                        "reinstall it (npm's postinstall links the native binary; run `node install.cjs` in "
                        "node_modules/@anthropic-ai/claude-code if it was skipped)", details)]
    shown = ".".join(map(str, v))
    assert lo is not None and hi is not None
    if v < lo:
        return [Finding("cli", "warn", f"claude {shown} at {path} is older than the versions resurgo is tested "
                        f"with ({tested})",
                        f"npm install -g @anthropic-ai/claude-code@{TESTED_CLI_RANGE[1]}", details)]
    if v > hi:
        return [Finding("cli", "warn", f"claude {shown} at {path} is newer than the versions resurgo is tested "
                        f"with ({tested}): events and error wording may have changed",
                        "watch for failures classified as `unknown` (resurgo jobs --state failed) and report them; "
                        f"or pin @anthropic-ai/claude-code@{TESTED_CLI_RANGE[1]}", details)]
    return [Finding("cli", "ok", f"claude {shown} at {path} (tested: {tested})", None, details)]


def _config_dir(env: Mapping[str, str]) -> Path:
    c = env.get("CLAUDE_CONFIG_DIR")
    return Path(c) if c else Path(env.get("HOME") or os.path.expanduser("~")) / ".claude"


def check_auth(ctx: Context) -> list[Finding]:
    env = ctx.job_env()
    found = [k for k in _AUTH_VARS if env.get(k, "").strip()]
    extra = ctx.settings.get("supervisor", "env") or {}
    where = [f"{k} ({'[supervisor] env' if k in extra else 'environment'})" for k in found]
    cred = _config_dir(env) / ".credentials.json"
    try:
        has_file = cred.is_file() and cred.stat().st_size > 0
    except OSError:
        has_file = False
    if has_file:
        where.append(f"the CLI's login ({cred})")
    if not where:
        return [Finding("auth", "fail", "no credentials: the CLI will stop at once with an authentication error",
                        "set ANTHROPIC_API_KEY (or CLAUDE_CODE_OAUTH_TOKEN from `claude setup-token`), or run "
                        "`claude` once and log in")]
    return [Finding("auth", "ok", "credentials present in " + ", ".join(where) + " (values not shown)",
                    details={"sources": found + (["credentials_file"] if has_file else [])})]


def check_cli_retries(ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    env = ctx.job_env()
    set_by_resurgo = ctx.settings.get("supervisor", "cli_max_retries")
    max_rec = ctx.settings.get("supervisor", "max_recoveries")
    if set_by_resurgo is not None:
        n, origin = int(set_by_resurgo), "[supervisor] cli_max_retries"
    else:
        raw = env.get("CLAUDE_CODE_MAX_RETRIES")
        if raw is None or not raw.strip():
            n, origin = CLI_DEFAULT_MAX_RETRIES, "the CLI's default"
        else:
            try:
                n, origin = int(raw), "CLAUDE_CODE_MAX_RETRIES"
            except ValueError:
                return [Finding("cli-retries", "warn", f"CLAUDE_CODE_MAX_RETRIES={raw!r} is not a number; the CLI "
                                "ignores it and retries 10 times",
                                "set [supervisor] cli_max_retries = 2 in resurgo.toml")]
    calls = (n + 1) * (int(max_rec) + 1)
    if n > CLI_RETRIES_WARN_ABOVE:
        out.append(Finding(
            "cli-retries", "warn",
            f"the CLI retries each API call {n} times itself ({origin}) and resurgo recovers up to {max_rec} times: "
            f"up to {calls} API calls per turn during an outage, and failures stay hidden from resurgo's breaker "
            "and budget for minutes",
            "let one layer own retries: [supervisor] cli_max_retries = 2 in resurgo.toml",
            {"cli_max_retries": n, "source": origin, "max_recoveries": max_rec, "worst_case_calls": calls},
        ))
    else:
        out.append(Finding("cli-retries", "ok", f"the CLI retries {n} times itself ({origin}); resurgo owns the rest",
                           details={"cli_max_retries": n, "source": origin}))
    wd = env.get("CLAUDE_CODE_RETRY_WATCHDOG", "").strip().lower()
    if wd in _TRUE:
        cap = env.get("CLAUDE_CODE_RETRY_WATCHDOG_MAX_WAIT_MS")
        out.append(Finding(
            "cli-retries", "warn",
            "CLAUDE_CODE_RETRY_WATCHDOG is on: the CLI retries 429/529 indefinitely"
            + (f" (up to {cap} ms)" if cap else " (no cap)")
            + ", so resurgo sees only api_retry events: no breaker opens, no quota reset is honoured, "
            "a job can wait for hours",
            "unset CLAUDE_CODE_RETRY_WATCHDOG (or set CLAUDE_CODE_RETRY_WATCHDOG_MAX_WAIT_MS) and let resurgo wait",
            {"watchdog": True, "max_wait_ms": cap},
        ))
    return out


def check_store(ctx: Context) -> list[Finding]:
    from resurgo.store.schema import COMPONENT, MIGRATIONS

    p = ctx.store_path
    want = len(MIGRATIONS)
    if p.is_dir():
        return [Finding("store", "fail", f"the store path {p} is a folder", "pass --store FILE or set [store] path")]
    if not p.exists():
        parent = next((d for d in (p.parent, *p.parent.parents) if d.exists()), None)
        if parent is None or not os.access(parent, os.W_OK | os.X_OK):
            return [Finding("store", "fail", f"the store {p} cannot be created: {parent} is not writable",
                            "pass --store PATH in a folder you can write, or set RESURGO_HOME")]
        return [Finding("store", "ok", f"no store yet at {p}; it will be created (folder writable)",
                        details={"path": str(p), "exists": False})]
    if not os.access(p, os.R_OK | os.W_OK) or not os.access(p.parent, os.W_OK | os.X_OK):
        return [Finding("store", "fail", f"the store {p} (or its folder, which holds the WAL) is not writable",
                        f"fix the permissions (chmod u+rw {p}) or pass --store PATH", {"path": str(p)})]
    try:
        conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT version FROM schema_versions WHERE component=?", (COMPONENT,)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error as e:
        if "no such table" in str(e):
            row = None
        else:
            return [Finding("store", "fail", f"the store {p} cannot be read as a resurgo store: {e}",
                            "move it aside (resurgo creates a new one) or pass --store PATH", {"path": str(p)})]
    have = int(row[0]) if row else 0
    details = {"path": str(p), "schema": have, "current": want}
    if have > want:
        return [Finding("store", "fail", f"the store {p} is at schema version {have}, newer than this resurgo "
                        f"({want})", "upgrade resurgo, or use another --store", details)]
    if have < want:
        return [Finding("store", "ok", f"store {p} writable; schema {have} will be upgraded to {want} on the next run",
                        details=details)]
    return [Finding("store", "ok", f"store {p} writable, schema current ({want})", details=details)]


def check_config(ctx: Context) -> list[Finding]:
    s = ctx.settings
    out: list[Finding] = []
    problems = list(s.problems)
    refused = [p for p in problems if str(p.message).startswith("refused:")]
    others = [p for p in problems if p not in refused]
    trust = _trust_fn()
    extra_trust: list[str] = []
    if trust is not None:
        for f in ctx.config_files:
            if not any(str(p.file) == str(f) for p in refused):
                extra_trust += [f"{f}: {why}" for why in trust(f)]
    if refused or extra_trust:
        out.append(Finding("config-trust", "fail",
                           "configuration another user can change: " + "; ".join(
                               [str(p) for p in refused] + extra_trust),
                           "see each message (chmod go-w FILE, or keep configuration in a folder only you can write)",
                           {"problems": [str(p) for p in refused] + extra_trust}))
    elif trust is not None:
        out.append(Finding("config-trust", "ok",
                           "configuration files trusted: " + (", ".join(map(str, ctx.config_files)) or "none found")))
    else:
        out.append(Finding("config-trust", "skip", "this resurgo cannot check who may write configuration files"))
    if others:
        out.append(Finding("config", "fail", f"{len(others)} configuration problem(s): "
                           + "; ".join(str(p) for p in others),
                           "fix them (resurgo config check lists each with its file and key)",
                           {"problems": [str(p) for p in others]}))
    else:
        out.append(Finding("config", "ok", "configuration valid"
                           + (f" ({', '.join(map(str, ctx.config_files))})" if ctx.config_files else " (defaults)")))
    return out


def _trust_fn() -> Callable[[Path], list[str]] | None:
    try:
        from resurgo.config import trust_problems
    except ImportError:
        return None
    fn: Callable[[Path], list[str]] = trust_problems
    return fn


def check_redis(ctx: Context) -> list[Finding]:
    url = ctx.settings.get("redis", "url")
    if not url:
        return [Finding("redis", "skip", "no Redis configured ([redis] url): breakers and budgets are per process")]
    from resurgo.config import redact_url

    shown = redact_url(url)
    try:
        import redis
    except ImportError:
        return [Finding("redis", "fail", f"[redis] url is {shown} but the redis package is not installed",
                        "pip install 'resurgo[redis]'")]
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as e:
        from resurgo._redact import redact_text

        return [Finding("redis", "fail", f"Redis at {shown} is not reachable: {redact_text(str(e))[:200]}",
                        "start it, fix [redis] url, or run with --local; workers carry on locally while it is down, "
                        "but `resurgo batch` cannot submit")]
    return [Finding("redis", "ok", f"Redis at {shown} answers")]


def _nearest_existing(p: Path) -> Path:
    for d in (p, *p.parents):
        if d.exists():
            return d
    return Path("/")


def check_disk(ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    places = {"store": ctx.store_path.parent, "sessions": _config_dir(ctx.job_env()) / "projects"}
    seen: set[int] = set()
    for what, p in places.items():
        d = _nearest_existing(p)
        try:
            st = os.statvfs(d)
            dev = os.stat(d).st_dev
        except OSError as e:
            out.append(Finding("disk", "warn", f"cannot check free space for {what} ({d}): {e}"))
            continue
        if dev in seen:
            continue
        seen.add(dev)
        free = st.f_bavail * st.f_frsize
        inodes = st.f_favail if st.f_files else None
        details = {"path": str(d), "free_bytes": free, "free_inodes": inodes}
        gib = free / 1024**3
        if free < DISK_FAIL_BYTES or (inodes is not None and inodes < INODES_FAIL):
            out.append(Finding("disk", "fail", f"{what} ({d}): only {gib:.2f} GiB"
                               + (f" and {inodes} inodes" if inodes is not None else "") + " free: transcripts and "
                               "the store's WAL will fail to write mid-run",
                               "free space there, or move the store (--store) / CLAUDE_CONFIG_DIR", details))
        elif free < DISK_WARN_BYTES or (inodes is not None and inodes < INODES_WARN):
            out.append(Finding("disk", "warn", f"{what} ({d}): {gib:.2f} GiB"
                               + (f", {inodes} inodes" if inodes is not None else "")
                               + " free; a long batch may fill it",
                               "free space there before a long run", details))
        else:
            out.append(Finding("disk", "ok", f"{what} ({d}): {gib:.1f} GiB"
                               + (f", {inodes} inodes" if inodes is not None else "") + " free", details=details))
    return out


def temp_problems(tmp: Path, *, uid: int) -> list[str]:
    """Why the temp folder (and resurgo's per-user folder in it) is unsafe for attempts' private temp dirs."""
    out: list[str] = []
    try:
        st = tmp.stat()
    except OSError as e:
        return [f"temp folder {tmp} is missing: {e}. Fix: set TMPDIR to a folder you own"]
    mode = stat.S_IMODE(st.st_mode)
    if not os.access(tmp, os.W_OK | os.X_OK):
        out.append(f"temp folder {tmp} is not writable. Fix: set TMPDIR to a folder you own")
    if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
        out.append(f"temp folder {tmp} is writable by everyone without the sticky bit (mode {mode:04o}): other users "
                   f"can delete or replace your files. Fix: chmod +t {tmp}, or set TMPDIR to a folder you own")
    mine = tmp / f"resurgo-{uid}"
    try:
        mst = mine.lstat()
    except FileNotFoundError:
        return out
    except OSError as e:
        return [*out, f"cannot inspect {mine}: {e}"]
    mmode = stat.S_IMODE(mst.st_mode)
    if stat.S_ISLNK(mst.st_mode) or not stat.S_ISDIR(mst.st_mode):
        out.append(f"{mine} is not a plain folder (a link or a file someone planted). Fix: remove it")
    elif mst.st_uid != uid:
        out.append(f"{mine} is owned by uid {mst.st_uid}, not you: another user prepared it. Fix: remove it "
                   f"(rm -rf {mine}) or set TMPDIR to a folder you own")
    elif mmode & (stat.S_IWGRP | stat.S_IWOTH):
        out.append(f"{mine} is writable by others (mode {mmode:04o}). Fix: chmod 700 {mine}")
    return out


def check_temp(ctx: Context) -> list[Finding]:
    tmp = ctx.tmpdir or Path(tempfile.gettempdir())
    problems = temp_problems(tmp, uid=ctx.uid)
    shared = _private_dir_fn()
    if shared is not None and ctx.uid == os.geteuid():
        # the supervisor's own check of its per-user folder (resurgo._private_dir): the same words as its error
        mine = tmp / f"resurgo-{ctx.uid}"
        problems = [p for p in problems if str(mine) not in p] + shared(mine)
    if problems:
        return [Finding("temp", "fail", "; ".join(problems), "see the message", {"path": str(tmp)})]
    return [Finding("temp", "ok", f"temp folder {tmp} is safe", details={"path": str(tmp)})]


def _private_dir_fn() -> Callable[[Path], list[str]] | None:
    """``resurgo._private_dir.private_dir_problems`` when this resurgo has it."""
    try:
        from resurgo._private_dir import private_dir_problems
    except ImportError:
        return None
    fn: Callable[[Path], list[str]] = private_dir_problems
    return fn


CHECKS: tuple[Callable[[Context], list[Finding]], ...] = (
    check_cli, check_auth, check_cli_retries, check_store, check_config, check_redis, check_disk, check_temp,
)


def run_checks(ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    for chk in CHECKS:
        try:
            out += chk(ctx)
        except Exception as e:  # one broken check must not hide the others
            name = chk.__name__.removeprefix("check_")
            out.append(Finding(name, "fail", f"the check itself failed: {type(e).__name__}: {e}"))
    return out


def context_from(config_file: str | None, store: str | None) -> Context:
    from resurgo.config import find_project_config, load_settings, user_config_path

    settings = load_settings(config_file=config_file)
    files = [p for p in (user_config_path(), find_project_config()) if p is not None and p.is_file()]
    if config_file:
        files.append(Path(config_file))
    try:
        store_path = settings.store_path(store)
    except Exception:
        from resurgo.store import default_store_path

        store_path = default_store_path()
    return Context(environ=dict(os.environ), settings=settings, store_path=Path(store_path), config_files=files)


_MARK = {"ok": "[green]ok  [/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]", "skip": "[dim]skip[/]"}


@click.command("doctor")
@click.option("--store", "store_opt", type=click.Path(), default=None, help="Run store to check.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON for scripts.")
def doctor_cmd(store_opt: str | None, as_json: bool) -> None:
    """Check the CLI, credentials, retry settings, store, configuration, Redis, disk and temp folder.

    Exit status 1 when something would break a run (a FAIL line), else 0.
    """
    st = state()
    ctx = context_from(st.config_file, store_opt if store_opt is not None else st.store)
    findings = run_checks(ctx)
    failed = any(f.status == "fail" for f in findings)
    if as_json:
        print_json({"ok": not failed, "tested_cli_range": list(TESTED_CLI_RANGE),
                    "checks": [f.to_dict() for f in findings]})
    else:
        from rich.markup import escape

        out = console()
        for f in findings:
            out.print(f"{_MARK[f.status]} {f.check:<13} {escape(f.summary)}", overflow="ignore", crop=False)
            if f.fix and f.status in ("warn", "fail"):
                out.print(f"     {'':<13} fix: {escape(f.fix)}", overflow="ignore", crop=False)
        n_fail = sum(f.status == "fail" for f in findings)
        n_warn = sum(f.status == "warn" for f in findings)
        out.print(f"\n{n_fail} problem(s) that would break a run, {n_warn} warning(s).")
    raise SystemExit(1 if failed else 0)
