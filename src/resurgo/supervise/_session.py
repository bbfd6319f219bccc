"""Sessions: where the CLI keeps a transcript, and whether the next attempt resumes, forks or starts over.

The CLI can only resume a session whose transcript it finds, and it looks for
it under the *same* config dir and cwd it ran with
(``<config>/projects/<cwd with every non-alphanumeric char as '-'>/<id>.jsonl``,
verified against 2.1.197).  Deciding from the transcript on disk, rather than
from whether an init event was seen, is what makes "crash before the first
turn" (start over with the original prompt) and "killed mid-tool" (resume)
come out right.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from resurgo._continuation import (
    DEFAULT_CONTINUATION,
    PLACEHOLDERS,
    ContinuationError,
    check_continuation,
    render_continuation,
)

if TYPE_CHECKING:
    from resurgo.classifier import ErrorClass
    from resurgo.supervise._process import AttemptOutcome, AttemptSpec, Liveness, Mode


#: Messages that say the CLI could not use the session it was asked to resume.
_NOT_FOUND = re.compile(r"No conversation found with session ID", re.IGNORECASE)
_ORPHAN_TOOL_USE = re.compile(r"tool_use.{0,40}ids were found without.{0,20}tool_result", re.IGNORECASE)
_IN_USE = re.compile(r"Session ID .{0,60}is already in use", re.IGNORECASE)

SessionFailure = Literal["not_found", "orphan_tool_use", "in_use"]


def project_dir_name(cwd: str | os.PathLike[str]) -> str:
    """The CLI's folder name for a cwd: every character that is not ASCII alphanumeric becomes '-'."""
    return re.sub(r"[^A-Za-z0-9]", "-", os.fspath(cwd))


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$CLAUDE_CONFIG_DIR``, else ``$HOME/.claude`` — of the environment the CLI runs with."""
    env = os.environ if env is None else env
    cfg = env.get("CLAUDE_CONFIG_DIR")
    if cfg:
        return Path(cfg).expanduser()
    home = env.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".claude"


@dataclass(frozen=True, slots=True)
class NextRun:
    """The session part of the next attempt; ``mode`` and ``session_id`` go into an AttemptSpec."""

    mode: Mode
    session_id: str
    prompt: str
    reason: str
    #: this run is the one-off fallback after a resume failed (fork or fresh start)
    fallback: bool = False


class SessionManager:
    """Finds transcripts and plans how the next attempt continues a job's conversation.

    ``continuation`` is the prompt of a resumed run, a template in the
    convention of :mod:`resurgo._continuation` (``{reason}``, ``{description}``,
    ``{category}``, ``{type}``; checked here, so an unknown placeholder is a
    :class:`ContinuationError` at construction).  Stateless apart from
    configuration, so one instance serves every job.
    """

    def __init__(self, *, continuation: str = DEFAULT_CONTINUATION) -> None:
        self.continuation = check_continuation(continuation)

    # -- transcripts -----------------------------------------------------------------------
    def transcript_path(
        self, session_id: str, cwd: str | os.PathLike[str], *, env: Mapping[str, str] | None = None
    ) -> Path:
        """Where the CLI writes the transcript of ``session_id`` run in ``cwd`` with ``env``.

        The CLI names the folder after the *resolved* cwd (a symlinked cwd is
        seen through its target; verified with 2.1.197).
        """
        try:
            cwd = os.path.realpath(os.fspath(cwd))
        except OSError:
            cwd = os.fspath(cwd)
        return config_dir(env) / "projects" / project_dir_name(cwd) / f"{session_id}.jsonl"

    def find_transcript(
        self, session_id: str, cwd: str | os.PathLike[str], *, env: Mapping[str, str] | None = None
    ) -> Path | None:
        """The transcript if it exists and holds at least one line.

        Tries the resolved cwd's folder and the cwd as given, then any project
        folder (a long cwd may be shortened by the CLI); the id is a UUID, so a
        match elsewhere is the one.
        """
        cands = [
            self.transcript_path(session_id, cwd, env=env),
            config_dir(env) / "projects" / project_dir_name(cwd) / f"{session_id}.jsonl",
        ]
        for c in cands:
            if _nonempty(c):
                return c
        projects = config_dir(env) / "projects"
        try:
            for d in projects.iterdir():
                c = d / f"{session_id}.jsonl"
                if _nonempty(c):
                    return c
        except OSError:
            pass
        return None

    def has_transcript(
        self, session_id: str | None, cwd: str | os.PathLike[str], *, env: Mapping[str, str] | None = None
    ) -> bool:
        return bool(session_id) and self.find_transcript(str(session_id), cwd, env=env) is not None

    # -- failures of the session itself ------------------------------------------------------
    @staticmethod
    def session_failure(outcome: AttemptOutcome) -> SessionFailure | None:
        """Did the attempt fail because of its session (not the API, not the process)?"""
        texts: list[str] = [outcome.stderr_tail]
        r = outcome.result
        if r is not None:
            texts.append(str(r.get("result") or ""))
            errs = r.get("errors")
            if isinstance(errs, list):
                texts += [str(e) for e in errs]
        for ev in outcome.events:
            if ev.type == "assistant" and ev.data is not None and "error" in ev.data:
                texts.append(ev.raw[:4000])
        blob = "\n".join(texts)
        if _NOT_FOUND.search(blob):
            return "not_found"
        if _ORPHAN_TOOL_USE.search(blob):
            return "orphan_tool_use"
        if _IN_USE.search(blob):
            return "in_use"
        return None

    # -- planning --------------------------------------------------------------------------
    def continuation_prompt(self, reason: str, *, error: ErrorClass | None = None) -> str:
        """The configured template rendered for one resume (``error``: the classifier's verdict, if known)."""
        return render_continuation(self.continuation, reason=reason, error=error)

    def plan(
        self,
        *,
        prompt: str,
        cwd: str | os.PathLike[str],
        env: Mapping[str, str] | None,
        session_id: str | None,
        last: AttemptOutcome | None = None,
        reason: str = "",
        fallback_used: bool = False,
    ) -> NextRun | None:
        """How the next attempt should run, or None when the session cannot be continued at all.

        * no session or no transcript -> start over with the original prompt and a new id
          (the previous id may be half-registered, and ``--session-id`` refuses a used id);
        * the last attempt failed *because of its session* -> once: fork it when the history
          has an orphan ``tool_use`` (keeps the work done), else start fresh with the original
          prompt (the CLI cannot find or use the conversation); a second such failure -> None;
        * otherwise -> resume with the continuation prompt.

        ``env`` is the environment the CLI runs with (``HOME``/``CLAUDE_CONFIG_DIR``
        decide where transcripts are); None means ``os.environ``.
        """
        failure = self.session_failure(last) if last is not None and last.mode != "start" else None
        if last is not None and last.mode == "start" and self.session_failure(last) == "in_use":
            failure = "in_use"
        if failure is not None:
            if fallback_used:
                return None
            if failure == "orphan_tool_use" and session_id and self.has_transcript(session_id, cwd, env=env):
                # the history is worth keeping; the CLI repairs a dangling tool_use while loading it
                return NextRun(
                    "fork",
                    session_id,
                    self.continuation_prompt(reason),
                    "resuming failed (orphan tool_use); forking the session",
                    fallback=True,
                )
            return NextRun(
                "start",
                str(uuid.uuid4()),
                prompt,
                f"resuming failed ({failure}); starting a fresh session with the original prompt",
                fallback=True,
            )
        if last is not None and last.mode == "fork" and last.session_id:
            session_id = last.session_id  # continue the fork, not its parent
        if not session_id or not self.has_transcript(session_id, cwd, env=env):
            return NextRun("start", str(uuid.uuid4()), prompt, "no transcript: starting over with the original prompt")
        return NextRun("resume", session_id, self.continuation_prompt(reason), "resuming the session")

    def spec(
        self,
        nxt: NextRun,
        *,
        cwd: str | os.PathLike[str],
        claude_args: tuple[str, ...] | list[str] = (),
        env: Mapping[str, str] | None = None,
        model: str | None = None,
        liveness: Liveness | None = None,
        job_id: str | None = None,
        attempt_id: int | None = None,
    ) -> AttemptSpec:
        """An :class:`AttemptSpec` for ``nxt`` from the same cwd and config dir as before."""
        # imported here: keeps this module light for the few callers that need only session rules
        # and must not load the process machinery (resurgo run starts the CLI before that)
        from resurgo.supervise._process import AttemptSpec, Liveness

        return AttemptSpec(
            prompt=nxt.prompt,
            cwd=cwd,
            mode=nxt.mode,
            session_id=nxt.session_id,
            claude_args=tuple(claude_args),
            env=dict(env or {}),
            model=model,
            liveness=liveness or Liveness(),
            job_id=job_id,
            attempt_id=attempt_id,
        )


def _nonempty(p: Path) -> bool:
    try:
        return p.is_file() and p.stat().st_size > 0
    except OSError:
        return False


__all__ = [
    "DEFAULT_CONTINUATION",
    "PLACEHOLDERS",
    "ContinuationError",
    "NextRun",
    "SessionFailure",
    "SessionManager",
    "check_continuation",
    "config_dir",
    "project_dir_name",
    "render_continuation",
]
