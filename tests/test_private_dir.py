"""The per-user temporary folder is created private and refused when someone else owns it (issue 15, item 7)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from resurgo._private_dir import UnsafeTempDirError, ensure_private_dir, private_dir_problems


def test_created_0700_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        p = ensure_private_dir(tmp_path / "resurgo-1000")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o700


def test_an_own_folder_that_is_too_open_is_tightened(tmp_path: Path) -> None:
    p = tmp_path / "r"
    p.mkdir()
    p.chmod(0o777)
    ensure_private_dir(p)
    assert stat.S_IMODE(p.stat().st_mode) == 0o700


def test_a_folder_someone_else_made_first_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "resurgo-1000"
    p.mkdir()
    p.chmod(0o777)
    real = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: real + 4242)  # as seen by another user
    with pytest.raises(UnsafeTempDirError, match="not to you") as e:
        ensure_private_dir(p)
    assert str(p) in str(e.value) and "TMPDIR" in str(e.value)
    assert stat.S_IMODE(p.stat().st_mode) == 0o777  # not touched


def test_a_planted_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "theirs"
    target.mkdir()
    link = tmp_path / "resurgo-1000"
    link.symlink_to(target)
    assert private_dir_problems(link) and "symbolic link" in private_dir_problems(link)[0]
    with pytest.raises(UnsafeTempDirError, match="symbolic link"):
        ensure_private_dir(link)


def test_the_cleaner_removes_nothing_in_a_root_that_is_not_ours(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from resurgo.store import Store
    from resurgo.supervise._cleanup import ResourceCleaner
    from resurgo.supervise._jobstore import JobStore

    root = tmp_path / "resurgo-1000"
    leaked = root / "att-999999-x"
    leaked.mkdir(parents=True)
    store = Store(tmp_path / "s.db")
    try:
        cleaner = ResourceCleaner(JobStore(store), tmp_root=root, tmp_max_age=0)
        real = os.geteuid()
        monkeypatch.setattr(os, "geteuid", lambda: real + 4242)
        assert cleaner.remove_leaked_tmp() == [] and leaked.exists()
        monkeypatch.setattr(os, "geteuid", lambda: real)
        assert cleaner.remove_leaked_tmp() == [str(leaked)]
    finally:
        store.close()


async def test_an_attempt_refuses_a_planted_temp_root_with_a_clear_error(tmp_path: Path) -> None:
    from tests.supervise._helpers import py

    from resurgo.supervise._process import ProcessManager

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    root = tmp_path / "resurgo-1000"
    root.symlink_to(theirs)  # what another local user could plant at the predictable name
    pm = ProcessManager(claude="/bin/true", tmp_root=root)
    out = await pm.run(py("print('ran')", tmp_path))
    assert out.pid is None and out.exit_code != 0  # never started
    assert "symbolic link" in (out.to_observation().message or "")
    assert list(theirs.iterdir()) == []
    # and a root of our own is created private
    pm2 = ProcessManager(claude="/bin/true", tmp_root=tmp_path / "mine")
    assert (await pm2.run(py("print('ran')", tmp_path))).exit_code == 0
    assert stat.S_IMODE((tmp_path / "mine").stat().st_mode) == 0o700
