"""Whether a configuration file may be believed.

A ``resurgo.toml`` decides which program resurgo executes, with which
arguments and environment, where the API key is sent (``ANTHROPIC_BASE_URL``
in ``[supervisor] env``, ``fallback_endpoints``), where alerts go and on which
address the dashboard listens.  A file another local user could write is
therefore as good as a shell on your account, so resurgo reads only files that

* are owned by you (or by root, which could change anything anyway), and
* are not writable by other users: not world-writable, and group-writable only
  when the group is your own private group (``umask 002`` systems give every
  user a group of their own);
* sit in a folder that others cannot use to swap the file (a folder writable
  by group/others is allowed only with the sticky bit, as ``/tmp`` has).

The upward search for a project ``resurgo.toml`` stops at the root of the
repository (a folder holding ``.git``), at ``$HOME``, and before the first
folder that is not yours: a file planted in a shared parent such as ``/tmp``
(or any folder others can write to) is never even looked at.  (As git does with ``safe.directory``, we prefer
"not found" over "found, and refused" there: a planted file must not be able
to break every run below it either.)

These are plain functions so other commands (``resurgo doctor``) can run the
same checks: :func:`trust_problems` returns the reasons a file is refused.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Mapping
from pathlib import Path

PROJECT_FILE = "resurgo.toml"


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _private_group(gid: int, uid: int) -> bool:
    """The group is this user's own (named after them, no other members): group-writable is harmless."""
    try:
        g = grp.getgrgid(gid)
        me = pwd.getpwuid(uid)
    except KeyError:
        return False
    return g.gr_name == me.pw_name and me.pw_gid == gid and all(m == me.pw_name for m in g.gr_mem)


def _shared(st: os.stat_result, me: int) -> bool:
    mode = stat.S_IMODE(st.st_mode)
    return bool(mode & stat.S_IWOTH or (mode & stat.S_IWGRP and not _private_group(st.st_gid, me)))


def trust_problems(path: str | os.PathLike[str], *, uid: int | None = None) -> list[str]:
    """Why ``path`` must not be trusted as resurgo configuration (empty: it may be).

    Each reason names the file and says how to fix it.  A missing file has no
    problems here (reading it reports that).  ``uid`` defaults to the
    effective user.
    """
    me = os.geteuid() if uid is None else uid
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return []
    out: list[str] = []
    if st.st_uid not in (me, 0):
        out.append(
            f"{p} is owned by {_user_name(st.st_uid)}, not by you ({_user_name(me)}): a configuration another "
            f"user controls could choose the program resurgo runs and where your API key goes. Fix: delete it, "
            f"or copy it to a file you own (cp {p} ~/resurgo.toml) and pass that with --config"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & stat.S_IWOTH or (mode & stat.S_IWGRP and not _private_group(st.st_gid, me)):
        who = "everyone" if mode & stat.S_IWOTH else "its group"
        out.append(
            f"{p} is writable by {who} (mode {mode:04o}): another user could change what resurgo runs. "
            f"Fix: chmod go-w {p}"
        )
    try:
        dst = p.resolve().parent.stat()
    except OSError:
        return out
    dmode = stat.S_IMODE(dst.st_mode)
    if dst.st_uid not in (me, 0) and not dmode & stat.S_ISVTX and dmode & (stat.S_IWGRP | stat.S_IWOTH):
        out.append(
            f"{p} is in a folder owned by {_user_name(dst.st_uid)} that others can write to (mode {dmode:04o}), "
            f"so the file can be replaced. Fix: keep resurgo configuration in a folder only you can write to"
        )
    elif dst.st_uid in (me, 0) and not dmode & stat.S_ISVTX and (
        dmode & stat.S_IWOTH or (dmode & stat.S_IWGRP and not _private_group(dst.st_gid, me))
    ):
        out.append(
            f"{p} is in a folder writable by other users (mode {dmode:04o}), so the file can be replaced. "
            f"Fix: chmod go-w {p.resolve().parent}"
        )
    return out


def search_folders(start: str | os.PathLike[str] | None = None, *,
                   environ: Mapping[str, str] | None = None) -> list[Path]:
    """The folders searched for a project ``resurgo.toml``, nearest first.

    From ``start`` upward, stopping after a repository root (a folder with
    ``.git``) or ``$HOME``, and before any folder not owned by you or writable
    by others: ``/tmp`` and other users' folders are never searched.
    """
    env = os.environ if environ is None else environ
    me = os.geteuid()
    home_s = env.get("HOME")
    home = Path(home_s).resolve() if home_s else None
    here = Path(start or os.getcwd()).resolve()
    out: list[Path] = []
    for d in (here, *here.parents):
        try:
            st = d.stat()
        except OSError:
            break
        if st.st_uid != me or _shared(st, me):
            break  # another user's folder, or a shared one such as /tmp: whatever lies there is not ours
        out.append(d)
        if d == home or (d / ".git").exists():
            break
    return out


def find_project_config(start: str | os.PathLike[str] | None = None, *,
                        environ: Mapping[str, str] | None = None) -> Path | None:
    """The nearest ``resurgo.toml`` in the folders :func:`search_folders` allows."""
    for d in search_folders(start, environ=environ):
        cand = d / PROJECT_FILE
        if cand.is_file():
            return cand
    return None


__all__ = ["find_project_config", "search_folders", "trust_problems"]
