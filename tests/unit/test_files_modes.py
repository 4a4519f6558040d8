"""What evstore keeps on disk is its user's alone: 0700 folders, 0600 files, and a
runtime folder used only when it is the user's own."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from evstore.core.embedded import ensure_runtime_dir, private_dir, private_umask

from evstore import ConfigurationError

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another uid needs root")
OTHER_UID = 54321


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_private_dir_makes_every_missing_folder_0700(tmp_path: Path) -> None:
    made = private_dir(tmp_path / "home" / "logs")
    assert made == tmp_path / "home" / "logs"
    assert mode(tmp_path / "home") == 0o700 and mode(made) == 0o700


def test_private_dir_tightens_a_folder_of_ours(tmp_path: Path) -> None:
    folder = tmp_path / "redis"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    private_dir(folder)
    assert mode(folder) == 0o700


@as_root
def test_private_dir_refuses_a_folder_of_another_user(tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    folder.mkdir()
    os.chown(folder, OTHER_UID, OTHER_UID)
    with pytest.raises(ConfigurationError, match=f"belongs to uid {OTHER_UID}"):
        private_dir(folder)


def test_files_made_under_private_umask_are_0600(tmp_path: Path) -> None:
    with private_umask():
        (tmp_path / "f").write_text("x")
        (tmp_path / "d").mkdir()
    (tmp_path / "after").write_text("x")
    assert mode(tmp_path / "f") == 0o600 and mode(tmp_path / "d") == 0o700
    assert mode(tmp_path / "after") == 0o666 & ~_umask()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@pytest.fixture
def runtime_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)


def test_the_runtime_folder_is_made_0700(tmp_path: Path, runtime_env: None) -> None:
    folder = ensure_runtime_dir(tmp_path)
    assert folder == tmp_path / f"evstore-runtime-{os.getuid()}" and mode(folder) == 0o700
    assert os.environ["XDG_RUNTIME_DIR"] == str(folder)


def test_a_runtime_folder_of_ours_with_a_wrong_mode_is_fixed(tmp_path: Path, runtime_env: None) -> None:
    folder = tmp_path / f"evstore-runtime-{os.getuid()}"
    folder.mkdir()
    folder.chmod(0o777)
    assert ensure_runtime_dir(tmp_path) == folder and mode(folder) == 0o700


@as_root
def test_a_runtime_folder_of_another_user_is_refused(tmp_path: Path, runtime_env: None) -> None:
    folder = tmp_path / f"evstore-runtime-{os.getuid()}"
    folder.mkdir()
    folder.chmod(0o777)
    os.chown(folder, OTHER_UID, OTHER_UID)
    with pytest.raises(ConfigurationError, match=f"owned by uid {OTHER_UID}, not by this user"):
        ensure_runtime_dir(tmp_path)
    assert "XDG_RUNTIME_DIR" not in os.environ
    assert os.stat(folder).st_uid == OTHER_UID and mode(folder) == 0o777  # left as it was


def test_a_link_in_place_of_the_runtime_folder_is_refused(tmp_path: Path, runtime_env: None) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    (tmp_path / f"evstore-runtime-{os.getuid()}").symlink_to(target)
    with pytest.raises(ConfigurationError, match="not a folder"):
        ensure_runtime_dir(tmp_path)


def test_a_shared_xdg_runtime_dir_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(shared))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert ensure_runtime_dir() == tmp_path / f"evstore-runtime-{os.getuid()}"
