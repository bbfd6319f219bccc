"""resurgo's per-user temporary folder, and the check that it really is ours.

Each CLI attempt gets its own ``TMPDIR`` under a per-user root, so leftovers
of a killed attempt can be found and removed.  The root's name is predictable
(``/tmp/resurgo-<uid>``), so another local user could create it first — or
plant a symlink there — and then read or swap what our attempts write.  So
the root is created ``0700`` and, whether we created it or found it, must be a
real folder (not a symlink) owned by us; a folder of ours with a looser mode
(made by an older resurgo under ``umask 022``) is tightened to ``0700``, which
is safe because nobody else could write into it.  Anything else is refused
with an error that names the folder and the fix.

``$XDG_RUNTIME_DIR`` (``/run/user/<uid>``, made by the login manager, private
by construction) is not used by default: it is usually a small tmpfs, and a
tool run by the CLI may write large temporary files.  Set ``TMPDIR`` to move
the root elsewhere.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["UnsafeTempDirError", "default_tmp_root", "ensure_private_dir", "private_dir_problems"]


class UnsafeTempDirError(PermissionError):
    """The per-user temporary folder exists but is not safely ours."""


def default_tmp_root() -> Path:
    """``$TMPDIR/resurgo-<uid>`` (``/tmp/resurgo-<uid>``)."""
    return Path(_tempdir()) / f"resurgo-{os.geteuid()}"


def _tempdir() -> str:
    """The folder :func:`tempfile.gettempdir` would choose, found the same way but without importing tempfile.

    Why: ``resurgo run`` starts the CLI before anything else loads, and tempfile
    (with random and shutil behind it) costs milliseconds there.  Same order:
    ``$TMPDIR``, ``$TEMP``, ``$TMP``, then ``/tmp``, ``/var/tmp``, ``/usr/tmp``;
    a folder qualifies if we can create files in it.  Nothing qualifying: tempfile decides.
    """
    for d in (*(os.environ.get(n) for n in ("TMPDIR", "TEMP", "TMP")), "/tmp", "/var/tmp", "/usr/tmp"):
        if d and os.path.isdir(d) and os.access(d, os.W_OK | os.X_OK):
            return os.path.abspath(d)
    import tempfile

    return tempfile.gettempdir()


def private_dir_problems(path: str | os.PathLike[str]) -> list[str]:
    """Why ``path`` is not a safe private folder (empty: it is, or it does not exist yet).

    A folder of ours that is merely too open is not a problem here (it is
    tightened when used); for ``resurgo doctor`` and other checks.
    """
    p = Path(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return []
    except OSError as e:
        return [f"{p}: cannot inspect it: {e.strerror or e}"]
    me = os.geteuid()
    if stat.S_ISLNK(st.st_mode):
        return [f"{p} is a symbolic link, not a folder: someone may be redirecting resurgo's temporary files. "
                f"Fix: remove it (rm {p}) or set TMPDIR to a folder of your own"]
    if not stat.S_ISDIR(st.st_mode):
        return [f"{p} is not a folder. Fix: remove it, or set TMPDIR to a folder of your own"]
    if st.st_uid != me:
        return [f"{p} belongs to uid {st.st_uid}, not to you (uid {me}): another user created it first and "
                f"could read or replace what resurgo's runs write there. Fix: have it removed, or set TMPDIR "
                f"to a folder of your own"]
    return []


def ensure_private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (mode 0700) or check the existing one; returns it. Raises :class:`UnsafeTempDirError`."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(p, 0o700)
    except FileExistsError:
        pass
    problems = private_dir_problems(p)
    if problems:
        raise UnsafeTempDirError("; ".join(problems))
    st = os.lstat(p)
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(p, 0o700, follow_symlinks=False)
    return p
