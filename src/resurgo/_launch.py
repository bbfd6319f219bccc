"""How a Claude Code CLI attempt is launched: its command line, its environment, and an early start.

This module is deliberately light (a few standard-library modules; no dataclasses,
uuid, tempfile or psutil at import) so that
``resurgo run`` can start the CLI *before* it imports the supervisor, the
classifier and the breakers: the CLI needs a few hundred milliseconds to boot
and send its first event, and resurgo's own imports and set-up fit inside that
time instead of being added to it.  The supervisor builds every attempt from the
same functions (:func:`cli_argv`, :func:`attempt_env`), and adopts an early
start only when the command line, folder and environment it would have used are
exactly those of the process already running (:meth:`Prestarted.matches`); any
difference and the early process is ended and the attempt started as usual, so
the early start can cost time but never change what runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from resurgo._private_dir import default_tmp_root as _default_tmp_root
from resurgo._private_dir import ensure_private_dir

#: Prompts longer than this go through stdin: one argv string is capped at 128 KiB on Linux.
ARGV_PROMPT_LIMIT = 100_000
#: Environment marker every process of an attempt inherits; finds leftovers wherever they went.
ATTEMPT_ENV = "RESURGO_ATTEMPT"
#: The supervisor (``host:pid:start``) that started a process; lets a restarted one find strays.
OWNER_ENV = "RESURGO_SUPERVISOR"
#: What a standby CLI is sent at once so that it waits for its prompt past the CLI's 3 s stdin timeout
#: (see :func:`spawn_early`); the prompt then starts with it.
STANDBY_KEEPALIVE = b"\n"
#: Keys of an attempt's environment that are the attempt's own, not the job's (compared apart).
VOLATILE_ENV = (ATTEMPT_ENV, "TMPDIR")


class ClaudeNotFoundError(FileNotFoundError):
    """No Claude Code CLI where we looked; the message lists every place tried."""


def find_claude(explicit: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None) -> str:
    """Locate the CLI: ``explicit`` (``--claude PATH``), then ``$RESURGO_CLAUDE``, then ``PATH``.

    A missing or non-executable explicit path is an error rather than a silent
    fall-through, so a typo in ``--claude`` is reported instead of running
    whatever ``claude`` happens to be on ``PATH``.
    """
    env = os.environ if env is None else env
    tried: list[str] = []
    for origin, cand in (("explicit path", explicit), ("RESURGO_CLAUDE", env.get("RESURGO_CLAUDE"))):
        if cand:
            p = os.fspath(cand)
            resolved = p if os.sep in p else _which(p, env.get("PATH"))
            if resolved and os.path.isfile(resolved) and os.access(resolved, os.X_OK):
                return resolved
            raise ClaudeNotFoundError(f"Claude Code CLI given by {origin} is not an executable file: {p}")
        tried.append(f"{origin} (unset)")
    found = _which("claude", env.get("PATH"))
    if found:
        return found
    tried.append("PATH")
    raise ClaudeNotFoundError(
        "Claude Code CLI not found; tried "
        + ", ".join(tried)
        + ". Install @anthropic-ai/claude-code or pass --claude PATH / set RESURGO_CLAUDE."
    )


def _which(name: str, path: str | None) -> str | None:
    import shutil

    return shutil.which(name, path=path)


def uuid4() -> str:
    """A random (version 4) UUID in its usual text form, without importing :mod:`uuid`.

    Why: ``uuid`` imports ``platform`` and costs milliseconds on the path that
    starts the CLI; the bits are set exactly as :func:`uuid.uuid4` sets them.
    """
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_OWNER: tuple[int, str] | None = None


def _start_time() -> int:
    """This process's start time in whole seconds since the epoch (what ``psutil`` reports, truncated)."""
    try:  # Linux: field 22 of /proc/self/stat, in clock ticks since boot (read without psutil)
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        ticks = int(stat[stat.rindex(b")") + 2 :].split()[19])
        with open("/proc/stat", "rb") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
        return int(ticks / os.sysconf("SC_CLK_TCK") + btime)
    except (OSError, ValueError, IndexError, StopIteration):
        import psutil

        try:
            return int(psutil.Process().create_time())
        except psutil.Error:
            return 0


def owner_id() -> str:
    """``host:pid:start`` — who runs a job; the start time tells a reused pid apart.

    Computed once per process (a forked child computes its own).
    """
    global _OWNER
    pid = os.getpid()
    if _OWNER is None or _OWNER[0] != pid:
        _OWNER = (pid, f"{os.uname().nodename}:{pid}:{_start_time()}")
    return _OWNER[1]


def default_tmp_root() -> Path:
    """Where attempts' private temp folders live unless the caller chooses."""
    return _default_tmp_root()


#: The CLI flag that makes it report each API request and every event of its answer: the
#: supervisor's request watch needs it (``resurgo.supervise._requests``), and it drops those
#: events again from what it stores and prints unless the job asked for them itself.
PARTIAL_FLAG = "--include-partial-messages"


def watch_args(args: Sequence[str], *, enabled: bool) -> tuple[str, ...]:
    """``args`` plus :data:`PARTIAL_FLAG` when request watching is on and it is not there yet.

    Here, beside :func:`cli_argv`, because the early start builds the same command line.
    """
    out = tuple(args)
    if enabled and PARTIAL_FLAG not in out:
        out += (PARTIAL_FLAG,)
    return out


def cli_argv(
    claude: str,
    *,
    prompt: str | None,
    mode: str = "start",
    session_id: str | None = None,
    fork_session_id: str | None = None,
    model: str | None = None,
    claude_args: Sequence[str] = (),
) -> tuple[list[str], bytes | None]:
    """The command line and, for very long prompts, the stdin bytes carrying the prompt.

    The prompt goes last, after ``--``: ``--allowedTools`` takes several
    values and would otherwise swallow it, and a prompt starting with ``-``
    must not be read as an option.  ``prompt=None``: the command line of a
    standby (:func:`spawn_early`), whose prompt comes on stdin later.
    """
    argv = [claude, "-p", "--output-format", "stream-json", "--verbose"]
    if mode == "start":
        assert session_id is not None, "a start needs its session id chosen up front"
        argv += ["--session-id", session_id]
    else:
        assert session_id is not None
        argv += ["--resume", session_id]
        if mode == "fork":
            argv.append("--fork-session")
            if fork_session_id:
                argv += ["--session-id", fork_session_id]
    if model:
        argv += ["--model", model]
    argv += list(claude_args)
    if prompt is None:
        return argv, None
    data = prompt.encode()
    if len(data) > ARGV_PROMPT_LIMIT:
        return argv, data
    argv += ["--", prompt]
    return argv, None


def attempt_env(
    overrides: Mapping[str, str],
    *,
    token: str,
    owner: str,
    tmpdir: str | None,
    inherit: bool = True,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of one attempt: the caller's (``inherit``), the job's overrides, and resurgo's markers."""
    env = dict(os.environ if base is None else base) if inherit else {}
    env.update({str(k): str(v) for k, v in overrides.items()})
    env[ATTEMPT_ENV] = token
    env[OWNER_ENV] = owner
    if tmpdir is not None:
        env["TMPDIR"] = tmpdir
    return env


def make_tmpdir(root: Path) -> str:
    """A fresh private temp folder for one attempt (mode 0700, as mkdtemp makes it).

    The root has a predictable name in a shared folder: it must be ours and
    0700 (:func:`resurgo._private_dir.ensure_private_dir` raises
    ``UnsafeTempDirError``, naming the folder and the fix, otherwise).
    """
    ensure_private_dir(root)
    for _ in range(100):  # what tempfile.mkdtemp does, without importing it (and random) on the start path
        path = os.path.join(root, f"att-{os.getpid()}-{os.urandom(6).hex()}")
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free attempt folder name in {root}")


class Prestarted:
    """A CLI started before the supervisor existed, waiting to be adopted by the attempt it was started for.

    ``env`` is the whole environment the process got; the attempt compares it
    with its own (``token`` and ``tmpdir`` are the process's and are taken over).
    A plain class, not a dataclass: creating a dataclass costs a millisecond of
    import time on the path that starts the CLI.
    """

    __slots__ = ("adopted", "argv", "cwd", "env", "mismatch", "owner", "popen", "session_id", "started_at",
                 "tmpdir", "token")

    def __init__(self, *, popen: subprocess.Popen[bytes], argv: tuple[str, ...], cwd: str, env: Mapping[str, str],
                 session_id: str, token: str, owner: str, tmpdir: str | None, started_at: float,
                 adopted: bool = False, mismatch: str | None = None) -> None:
        self.popen = popen
        self.argv = argv
        self.cwd = cwd
        self.env = env
        self.session_id = session_id
        self.token = token
        self.owner = owner
        self.tmpdir = tmpdir
        self.started_at = started_at
        self.adopted = adopted
        self.mismatch = mismatch

    def __repr__(self) -> str:
        return f"Prestarted(pid={self.popen.pid}, session_id={self.session_id!r}, adopted={self.adopted})"

    @property
    def pid(self) -> int:
        return self.popen.pid

    def matches(self, argv: Sequence[str], cwd: str, env: Mapping[str, str]) -> str | None:
        """Why this process is *not* the one the attempt would start (``None``: it is)."""
        if tuple(argv) != self.argv:
            return "command line differs"
        if os.path.realpath(cwd) != os.path.realpath(self.cwd):
            return "working folder differs"
        mine = {k: v for k, v in self.env.items() if k not in VOLATILE_ENV}
        theirs = {k: v for k, v in env.items() if k not in VOLATILE_ENV}
        if mine != theirs:
            diff = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
            return "environment differs: " + ", ".join(diff[:5])
        return None

    @property
    def alive(self) -> bool:
        """Still running (a standby may have been killed, or have exited on its own, while it waited)."""
        return self.popen.poll() is None

    def feed(self, data: bytes) -> None:
        """Give a standby its prompt: written to its stdin, which is then closed (the CLI reads to EOF).

        A prompt larger than the pipe's buffer blocks until the CLI reads it:
        call this off the event loop for those (the caller does).
        """
        stdin = self.popen.stdin
        assert stdin is not None, "only a standby (spawn_early(standby=True)) takes its prompt on stdin"
        try:
            stdin.write(data)
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def discard(self) -> None:
        """End the early process if nobody adopted it (its whole group: it may have started tools)."""
        if self.adopted:
            return
        self.adopted = True  # never twice
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            self.popen.wait(timeout=5)
        for f in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
        if self.tmpdir is not None:
            import shutil

            shutil.rmtree(self.tmpdir, ignore_errors=True)


def prestart(
    claude: str,
    *,
    prompt: str,
    cwd: str,
    model: str | None = None,
    claude_args: Sequence[str] = (),
    env_overrides: Mapping[str, str] | None = None,
    session_id: str | None = None,
    owner: str | None = None,
    tmp_root: Path | None = None,
) -> Prestarted | None:
    """Start the CLI for a fresh job now, as the supervisor's first attempt would; ``None`` if it cannot.

    Only a plain first start qualifies (a prompt short enough for argv); a
    spawn error is left to the supervisor, which reports it in its usual words.
    """
    sid = session_id or uuid4()
    argv, stdin = cli_argv(claude, prompt=prompt, session_id=sid, model=model, claude_args=claude_args)
    if stdin is not None:
        return None
    token = os.urandom(16).hex()
    own = owner or owner_id()
    try:
        tmpdir = make_tmpdir(tmp_root or default_tmp_root())
    except OSError:  # an unsafe temp folder included: the supervisor's attempt reports it
        return None
    env = attempt_env(env_overrides or {}, token=token, owner=own, tmpdir=tmpdir)
    return spawn_early(argv, cwd=cwd, env=env, session_id=sid, token=token, owner=own, tmpdir=tmpdir)


def spawn_early(
    argv: Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    session_id: str,
    token: str,
    owner: str,
    tmpdir: str | None,
    standby: bool = False,
) -> Prestarted | None:
    """Start a CLI before its attempt exists; ``None`` (and its temp folder removed) if it cannot start.

    ``standby``: its stdin is a pipe and its prompt is not on the command line.
    The CLI boots (~0.35 s of CPU, most of a restart's time) and then waits
    for the prompt; it reads the session from disk only once the prompt has
    come, so a standby started while the job's current attempt is still
    writing the session resumes from wherever that attempt stopped (checked
    with the CLI: a turn written after the standby started is the new turn's
    parent).  :meth:`Prestarted.feed` hands it the prompt.
    """
    started = time.time()
    try:
        popen = subprocess.Popen(  # noqa: S603 - argv list built by cli_argv, no shell
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.PIPE if standby else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError:
        if tmpdir is not None:
            import shutil

            shutil.rmtree(tmpdir, ignore_errors=True)
        return None
    if standby:
        # the CLI gives up on a stdin that stays silent for 3 s ("no stdin data received in 3s,
        # proceeding without it") and exits for want of a prompt; once a byte has come it waits for
        # EOF however long it takes.  A newline is that byte: the prompt then starts with it, which
        # changes nothing the model reads (checked with 2.1.197 and 2.1.332).
        assert popen.stdin is not None
        try:
            if STANDBY_KEEPALIVE:
                popen.stdin.write(STANDBY_KEEPALIVE)
                popen.stdin.flush()
        except OSError:
            pass  # it died at once: the attempt finds it dead and starts as usual
    return Prestarted(
        popen=popen,
        argv=tuple(argv),
        cwd=cwd,
        env=env,
        session_id=session_id,
        token=token,
        owner=owner,
        tmpdir=tmpdir,
        started_at=started,
    )


__all__ = [
    "ARGV_PROMPT_LIMIT",
    "ATTEMPT_ENV",
    "OWNER_ENV",
    "PARTIAL_FLAG",
    "STANDBY_KEEPALIVE",
    "ClaudeNotFoundError",
    "Prestarted",
    "attempt_env",
    "cli_argv",
    "default_tmp_root",
    "find_claude",
    "make_tmpdir",
    "owner_id",
    "prestart",
    "spawn_early",
    "uuid4",
    "watch_args",
]
