"""Secrets and terminals (issue 8, item 6): logs and the event log are 0600, a state folder
labtui did not make keeps its mode (one others can write is refused), headless output never
carries a terminal control sequence from a seat or a course file, and `labtui new` never
opens password login to the whole internet."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from labtui.course import load
from labtui.events import JsonlFileSink, LogLine, NullSink
from labtui.services.setup import seat_log
from labtui.state import StateDir
from labtui.terminal import plain

from .courses import write_course
from .test_cli import run
from .test_cli_hardening import launched, one_error_line  # noqa: F401 - fixture

ESCAPES = "\x1b[2J\x1b]0;pwned\x07\x1b]52;c;aGk=\x07\x9b6n"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_logs_and_the_event_log_are_0600_under_any_umask(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state").ensure().course("c1")
    old = os.umask(0o022)
    try:
        JsonlFileSink(state.event_log).emit(LogLine("hello"))
        log = seat_log(state, "s01", NullSink())
        log.line("== step")
        # a log an older labtui left world-readable is tightened at the next line
        log.path.chmod(0o644)
        log.line("again")
    finally:
        os.umask(old)
    assert mode(state.event_log) == 0o600 and mode(log.path) == 0o600
    assert log.path.read_text().splitlines()[-1].endswith(" again")
    assert '"text": "hello"' in state.event_log.read_text()


def test_a_headless_command_writes_its_event_log_0600(sandbox_state, tmp_path: Path) -> None:
    path = write_course(tmp_path, "evlog", students=1)
    state = sandbox_state.root
    result = run("down", str(path), "--yes", "--sandbox", env={"LABTUI_STATE_DIR": str(state)},
                 timeout=120)
    assert result.returncode == 0, result.stderr
    found = list((state / "courses").rglob("*"))
    assert state / "courses" / "evlog" / "events.jsonl" in found
    for each in [state, state / "courses", *found]:
        assert mode(each) & 0o077 == 0, (each, oct(mode(each)))


def test_a_state_folder_it_did_not_make_keeps_its_mode(sandbox_state, tmp_path: Path) -> None:
    path = write_course(tmp_path, "statemode", students=1)
    mine = sandbox_state.root
    mine.chmod(0o750)  # as its owner may have made it
    result = run("down", str(path), "--yes", "--sandbox", env={"LABTUI_STATE_DIR": str(mine)},
                 timeout=120)
    assert result.returncode == 0, result.stderr
    assert mode(mine) == 0o750 and mode(mine / "courses" / "statemode") == 0o700


def test_a_state_folder_others_can_write_is_refused(tmp_path: Path) -> None:
    path = write_course(tmp_path, "statemode", students=1)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    result = run("status", str(path), "--state-dir", str(shared), timeout=30)
    assert result.returncode == 2
    line = one_error_line(result)
    assert str(shared) in line and "written by others" in line and "Fix:" in line
    assert mode(shared) == 0o777 and list(shared.iterdir()) == []


def test_plain_drops_every_control_sequence() -> None:
    assert plain(f"a{ESCAPES}b\r\x08c\td\n") == "abc\td\n"
    assert plain("Müller 日本 — ok") == "Müller 日本 — ok"


def test_headless_prints_a_seats_output_as_text(launched) -> None:  # noqa: F811
    path, env = launched
    payload = "printf 'one\\033[2J\\033]52;c;aGk=\\007two\\n'; printf '\\033[31mred\\n' >&2"
    result = run("exec", str(path), "--all", "--sandbox", "--", payload, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout + result.stderr
    assert "s01 | onetwo" in result.stdout and "s01 | red" in result.stderr
    as_json = run("exec", str(path), "--all", "--sandbox", "--json", "--", payload, env=env,
                  timeout=120)
    assert "\x1b" not in as_json.stdout and "\\u001b" in as_json.stdout  # escaped, as JSON is


@pytest.mark.parametrize(("flags", "login", "cidr"), [
    ([], "key", "0.0.0.0/0"),
    (["--ssh-cidr", "203.0.113.0/24"], "password", "203.0.113.0/24"),
    (["--ssh-cidr", "203.0.113.0/24", "--login", "key"], "key", "203.0.113.0/24"),
])
def test_new_pairs_password_login_only_with_a_range(tmp_path: Path, flags, login, cidr) -> None:
    path = tmp_path / "new.toml"
    result = run("new", str(path), *flags, timeout=30)
    assert result.returncode == 0, result.stderr
    course = load(path)
    assert course.machines.login == login and course.network.ssh_cidr == cidr


@pytest.mark.parametrize("flags", [["--login", "password"],
                                   ["--login", "password", "--ssh-cidr", "0.0.0.0/0"],
                                   ["--login", "password", "--ssh-cidr", "::/0"],
                                   ["--ssh-cidr", "not-a-network"]])
def test_new_refuses_password_login_open_to_all(tmp_path: Path, flags) -> None:
    path = tmp_path / "new.toml"
    result = run("new", str(path), *flags, timeout=30)
    assert result.returncode == 2
    assert "Fix:" in one_error_line(result)
    assert not path.exists()
