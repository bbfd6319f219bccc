"""The quick start of ``resurgo run``: the CLI is spawned before click, the configuration and the supervisor load.

Why: people call ``resurgo run`` in loops, and a trivial ``claude -p`` run
lasts about half a second.  Python, click and the validated configuration
take tens of milliseconds before resurgo knows what to launch, and that time
was added to every run.  So the last successful ``resurgo run`` remembers its
*launch plan* (the CLI's path, the configured CLI arguments and environment)
together with a fingerprint of everything the plan was derived from: the
configuration files that were and were not there (their inode, size, times,
owner and mode, and their folders'), the environment variables the
configuration reads, and the CLI binary itself.  The next run with the same
folder and options checks the fingerprint (a few dozen ``stat`` calls), and
if nothing changed it starts the CLI at once, importing only this module and
:mod:`resurgo._launch`.

Safety does not rest on the fingerprint.  The normal path then loads and
validates the configuration as always, computes the plan again, and adopts the
early process only if its command line, folder and environment are exactly
what the first attempt would run (:meth:`resurgo._launch.Prestarted.matches`);
any difference, or a configuration that is now invalid, and the early process
is killed (its whole process group) before it has reached the API.  So the
quick start can cost time, never change what runs.

Not cached (the normal path runs): OpenTelemetry on (each attempt needs its
own trace context), environment overrides whose names look like secrets (the
plan file would hold them), prompts too long for argv, and any command line
this small parser does not fully understand.  ``RESURGO_EARLY_START=0`` turns
the early start off altogether.  The plans live in
``$XDG_CACHE_HOME/resurgo/launch-plans`` (a 0700 folder, a 0600 file).
"""

from __future__ import annotations

import contextlib
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from resurgo._launch import Prestarted

#: Cached plans kept (one per folder and option set); the oldest are dropped.
MAX_PLANS = 32
#: Environment variables the configuration and the CLI lookup read (exactly, or by prefix).
_ENV_NAMES = ("HOME", "PATH", "TMPDIR", "TEMP", "TMP")
_ENV_PREFIXES = ("RESURGO_", "XDG_", "OTEL_")
#: ``run`` options that take a value, and flags; anything else means "not understood here".
_RUN_VALUE_OPTS = frozenset({"--cwd", "--model", "--name", "--claude", "--concurrency", "--max-concurrency", "--store"})
_RUN_FLAGS = frozenset({"--quiet", "-q", "--json"})
_GROUP_VALUE_OPTS = frozenset({"--config", "--store"})

#: The process started by :func:`start` for this invocation, until the ``run`` command takes it.
_started: Prestarted | None = None


def enabled() -> bool:
    return os.environ.get("RESURGO_EARLY_START", "1").strip().lower() not in ("0", "false", "no", "off")


def cache_path(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".cache")
    return os.path.join(base, "resurgo", "launch-plans")


def plan_key(*, workdir: str, config_file: str | None, claude: str | None) -> tuple[str, str, str]:
    """What, besides the fingerprint, selects a plan: the folder and the options that change the plan."""
    return (workdir, os.path.abspath(config_file) if config_file else "", claude or "")


def _sig(path: str) -> str:
    """What matters of ``path`` for the plan: a file's identity, content times, owner and mode; a folder's
    identity, owner and mode only (its times change whenever anything is created in it, e.g. in /tmp)."""
    try:
        st = os.stat(path)
    except OSError:
        return "-"
    if st.st_mode & 0o170000 == 0o040000:
        return f"d{st.st_ino},{st.st_mode},{st.st_uid},{st.st_gid}"
    return f"{st.st_ino},{st.st_size},{st.st_mtime_ns},{st.st_ctime_ns},{st.st_mode},{st.st_uid},{st.st_gid}"


def watched_paths(workdir: str, files: Sequence[str]) -> list[str]:
    """Every path whose change could change the plan: each folder from ``workdir`` up, with its
    ``resurgo.toml`` and ``.git`` (the project search and where it stops), and each given file with its folder."""
    out: list[str] = []
    d = workdir
    while True:
        out += [d, os.path.join(d, "resurgo.toml"), os.path.join(d, ".git")]
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    for f in files:
        out += [f, os.path.dirname(f)]
    return out


def _env_subset(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if environ is None else environ
    return {k: v for k, v in sorted(env.items()) if k in _ENV_NAMES or k.startswith(_ENV_PREFIXES)}


class _Entry:
    """One remembered plan: its key, the plan, and the fingerprint it was derived under."""

    __slots__ = ("claude_args", "env", "exe", "files", "key", "seen_env")

    def __init__(self, key: tuple[str, str, str], exe: str, claude_args: list[str], env: dict[str, str],
                 seen_env: dict[str, str], files: dict[str, str]) -> None:
        self.key = key
        self.exe = exe
        self.claude_args = claude_args
        self.env = env
        self.seen_env = seen_env
        self.files = files

    def tokens(self) -> list[str]:
        out = ["E", *self.key, self.exe, str(len(self.claude_args)), *self.claude_args]
        for d in (self.env, self.seen_env, self.files):
            out.append(str(len(d)))
            for k, v in d.items():
                out += [k, v]
        return out

    def same(self, other: _Entry) -> bool:
        return self.tokens() == other.tokens()


# The file is NUL-separated text: no argv string, environment entry or path can contain NUL, so
# nothing needs escaping, and reading it needs neither json (and re) nor anything that could run code.
_MAGIC = "resurgo-launch-plans-1"


def _encode(entries: Sequence[_Entry]) -> bytes:
    tokens = [_MAGIC]
    for e in entries:
        tokens += e.tokens()
    return "\0".join(tokens).encode("utf-8", "surrogateescape")


def _decode(data: bytes) -> list[_Entry]:
    """The entries of a plan file; ``[]`` for anything malformed (the normal path then runs)."""
    try:
        tokens = data.decode("utf-8", "surrogateescape").split("\0")
        if not tokens or tokens[0] != _MAGIC:
            return []
        pos = 1

        def take(n: int) -> list[str]:
            nonlocal pos
            if n < 0 or pos + n > len(tokens):
                raise ValueError("truncated")
            out = tokens[pos : pos + n]
            pos += n
            return out

        def mapping() -> dict[str, str]:
            flat = take(2 * int(take(1)[0]))
            return dict(zip(flat[::2], flat[1::2], strict=True))

        entries: list[_Entry] = []
        while pos < len(tokens):
            tag, k1, k2, k3, exe = take(5)
            if tag != "E":
                return []
            args = take(int(take(1)[0]))
            entries.append(_Entry((k1, k2, k3), exe, args, mapping(), mapping(), mapping()))
        return entries
    except (ValueError, IndexError, UnicodeError):
        return []


def _load(path: str) -> list[_Entry]:
    try:
        with open(path, "rb") as f:
            return _decode(f.read(4 << 20))
    except OSError:
        return []


def remember(key: tuple[str, str, str], *, exe: str, claude_args: Sequence[str], env: Mapping[str, str],
             paths: Sequence[str]) -> None:
    """Store the plan under ``key`` with the fingerprint of ``paths``; quietly does nothing if it cannot.

    Written only when it changed, atomically (a concurrent run reads the old or
    the new file, never half of one), into a private folder.
    """
    path = cache_path()
    entry = _Entry(key, exe, list(claude_args), dict(env), _env_subset(), {p: _sig(p) for p in paths})
    entries = _load(path)
    if any(e.key == key and e.same(entry) for e in entries):
        return
    entries = [*[e for e in entries if e.key != key][-(MAX_PLANS - 1):], entry]
    try:
        blob = _encode(entries)
    except UnicodeError:  # text that cannot be written back as it came (a lone surrogate)
        return
    folder = os.path.dirname(path)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        st = os.lstat(folder)
        if st.st_uid != os.geteuid() or (st.st_mode & 0o077):
            return  # not a private folder of ours: do not leave a plan where others could read or swap it
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def lookup(key: tuple[str, str, str]) -> _Entry | None:
    """The plan stored under ``key`` if everything it was derived from is unchanged."""
    path = cache_path()
    try:
        st = os.stat(path)
    except OSError:
        return None
    if st.st_uid != os.geteuid() or st.st_mode & 0o077:
        return None  # someone else's file, or readable by others: not ours to trust
    for e in _load(path):
        if e.key == key:
            if e.seen_env != _env_subset() or any(_sig(p) != sig for p, sig in e.files.items()):
                return None
            return e
    return None


class RunArgs:
    """What a launch depends on in a ``resurgo run`` command line."""

    __slots__ = ("claude", "claude_args", "config", "cwd", "model", "prompt")

    def __init__(self) -> None:
        self.config: str | None = None
        self.cwd: str | None = None
        self.model: str | None = None
        self.claude: str | None = None
        self.claude_args: tuple[str, ...] = ()
        self.prompt: str | None = None


def parse_run_argv(args: Sequence[str]) -> RunArgs | None:
    """``[--config F] [--store S] run PROMPT [options] [-- CLAUDE_ARGS]``, or ``None``.

    ``None`` for anything else or anything unusual (help, combined short
    flags, extra arguments): click parses the real command line later, and a
    misread here could only waste an early start.
    """
    out = RunArgs()
    i, n = 0, len(args)
    while i < n and args[i] != "run":  # the group's own options
        name, v, i = _option(args, i)
        if name not in _GROUP_VALUE_OPTS or v is None:
            return None
        if name == "--config":
            out.config = v
    if i >= n:
        return None
    i += 1
    while i < n:
        a = args[i]
        if a == "--":
            if out.prompt is None:
                return None
            out.claude_args = tuple(args[i + 1 :])
            break
        if a.startswith("-") and a != "-":
            if a in _RUN_FLAGS:
                i += 1
                continue
            name, v, i = _option(args, i)
            if name not in _RUN_VALUE_OPTS or v is None:
                return None
            if name == "--cwd":
                out.cwd = v
            elif name == "--model":
                out.model = v
            elif name == "--claude":
                out.claude = v
            continue
        if out.prompt is not None:
            return None
        out.prompt = a
        i += 1
    if not out.prompt or not out.prompt.strip():
        return None
    return out


def _option(args: Sequence[str], i: int) -> tuple[str, str | None, int]:
    """``(name, value, next index)`` of the option at ``args[i]`` (``--name=value`` or ``--name value``)."""
    a = args[i]
    if "=" in a:
        name, v = a.split("=", 1)
        return name, v, i + 1
    if i + 1 < len(args):
        return a, args[i + 1], i + 2
    return a, None, i + 1


def start(argv: Sequence[str]) -> Prestarted | None:
    """Start the CLI for ``resurgo run`` from a remembered plan, before anything else loads; ``None`` if not."""
    global _started
    if not enabled() or "run" not in argv:
        return None
    try:
        parsed = parse_run_argv(argv)
        if parsed is None or parsed.prompt is None:
            return None
        workdir = os.path.realpath(parsed.cwd or os.getcwd())
        if not os.path.isdir(workdir):
            return None
        plan = lookup(plan_key(workdir=workdir, config_file=parsed.config, claude=parsed.claude))
        if plan is None:
            return None
        from resurgo._launch import prestart

        _started = prestart(plan.exe, prompt=parsed.prompt, cwd=workdir, model=parsed.model,
                            claude_args=(*plan.claude_args, *parsed.claude_args), env_overrides=plan.env)
        return _started
    except Exception:  # never let the shortcut break the command: the normal path reports real problems
        return None


def take() -> Prestarted | None:
    """The process :func:`start` started for this invocation (once)."""
    global _started
    pre, _started = _started, None
    return pre


def discard_untaken() -> None:
    """End a quick-started process nobody took (the command failed before ``run`` looked at it)."""
    pre = take()
    if pre is not None:
        pre.discard()


__all__ = ["MAX_PLANS", "RunArgs", "cache_path", "discard_untaken", "enabled", "lookup",
           "parse_run_argv", "plan_key", "remember", "start", "take", "watched_paths"]
