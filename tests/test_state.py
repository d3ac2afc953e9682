"""Local state: where it lives, and that secrets are private."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from labtui.errors import InputError
from labtui.state import StateDir, default_state_dir, write_private


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_env_var_overrides_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LABTUI_STATE_DIR", str(tmp_path / "s"))
    assert default_state_dir() == tmp_path / "s"
    assert StateDir.resolve().root == (tmp_path / "s").resolve()


def test_flag_beats_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LABTUI_STATE_DIR", str(tmp_path / "env"))
    assert StateDir.resolve(tmp_path / "flag").root == (tmp_path / "flag").resolve()


def test_default_is_platformdirs_user_data(monkeypatch: pytest.MonkeyPatch) -> None:
    import platformdirs

    monkeypatch.delenv("LABTUI_STATE_DIR", raising=False)
    assert default_state_dir() == Path(platformdirs.user_data_dir("labtui", appauthor=False))


def test_folders_0700_secrets_0600(tmp_path: Path) -> None:
    state = StateDir.resolve(tmp_path / "state").ensure()
    course = state.course("cs101")
    secret = course.write_secret("s01.password", "correct-horse")
    assert mode(state.root) == 0o700
    assert mode(course.root) == 0o700
    assert mode(course.secrets) == 0o700
    assert mode(secret) == 0o600
    assert course.read_secret("s01.password") == "correct-horse"
    assert course.read_secret("missing") is None


def test_an_existing_folder_keeps_its_mode_and_what_labtui_makes_is_private(
        tmp_path: Path) -> None:
    readable = tmp_path / "readable"
    readable.mkdir()
    readable.chmod(0o755)
    course = StateDir.resolve(readable).ensure().course("cs101")
    assert mode(readable) == 0o755  # not labtui's to change
    assert mode(readable / "courses") == mode(course.root) == 0o700


@pytest.mark.parametrize("loose", [0o777, 0o775, 0o1777])
def test_a_folder_others_can_write_is_refused(tmp_path: Path, loose: int) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(loose)
    with pytest.raises(InputError, match="can be written by others"):
        StateDir.resolve(shared).ensure()
    assert mode(shared) == loose and not (shared / "courses").exists()


def test_write_private_replaces_atomically(tmp_path: Path) -> None:
    target = tmp_path / "d" / "key"
    write_private(target, b"one")
    target.chmod(0o644)  # someone loosened it
    write_private(target, b"two")
    assert target.read_bytes() == b"two" and mode(target) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["key"]
