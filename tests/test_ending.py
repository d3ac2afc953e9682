"""Ending the commands labtui runs on a real machine (the sandbox's Debian OpenSSH, a
non-root login as on AWS): Ctrl-C and a timeout end the command and its children there,
since closing the connection alone would leave them running (tests/test_openssh.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from labtui import lifecycle
from labtui.course import load
from labtui.services import ssh

from .courses import write_course
from .test_lifecycle import eventually

# A step as setup runs one: a shell whose child runs on (a subshell, then `sleep`).
LONG_STEP = "echo $$ > ~/shell; (sleep 300 & echo $! > ~/child; wait); echo never"
ALIVE = ("for f in shell child; do p=$(cat ~/$f 2>/dev/null) || continue; "
         "ps -o stat= -p \"$p\" | grep -qv Z && echo \"$f\"; done; true")


@pytest.fixture
def seat(ctx, tmp_path: Path):
    """A booted seat and a way to log in to it."""
    course = load(write_course(tmp_path, "ending", students=1, machines='login = "key"\n'))
    lifecycle.up(ctx, course, skip_setup=True)
    eventually(lambda: lifecycle.status(ctx, course), lambda s: all(x.address for x in s))
    machine = lifecycle.seat_machine(ctx, course, "s01")

    def login() -> ssh.paramiko.SSHClient:
        return lifecycle.remote_for(ctx, course).connect(machine, wait=60)

    return login


def alive(login) -> set[str]:
    """Which of the step's shell and child still run on the machine."""
    client = login()
    try:
        lines: list[str] = []
        ssh.run(client, ALIVE, on_line=lambda _s, text: lines.append(text), timeout=30)
        return set(lines)
    finally:
        client.close()


def started(login) -> None:
    client = login()
    try:
        deadline = time.monotonic() + 20
        while ssh.run(client, "test -s ~/shell && test -s ~/child", timeout=30) != 0:
            assert time.monotonic() < deadline, "the step did not start"
            time.sleep(0.05)
    finally:
        client.close()


def test_end_commands_ends_a_running_step_and_its_children(seat) -> None:
    client = seat()
    lines: list[str] = []
    result: dict[str, object] = {}

    def running() -> None:
        try:
            result["status"] = ssh.run(client, LONG_STEP,
                                       on_line=lambda _s, text: lines.append(text))
        except ssh.SshError as e:
            result["error"] = str(e)

    worker = threading.Thread(target=running)
    worker.start()
    started(seat)
    assert alive(seat) == {"shell", "child"}
    began = time.monotonic()
    assert ssh.end_commands([client]) == 1
    worker.join(timeout=5)
    assert not worker.is_alive(), "run() did not return after its command was ended"
    print(f"ended in {time.monotonic() - began:.2f} s")  # shown with -s
    assert result.get("status") not in (0, None) or "error" in result, result
    assert "never" not in lines
    assert eventually(lambda: alive(seat), lambda left: not left, timeout=5) == set()
    # no new command starts on that connection
    with pytest.raises(ssh.SshError, match="interrupted"):
        ssh.run(client, "touch ~/later", timeout=30)
    client.close()
    assert ssh.run(later := seat(), "test -e ~/later", timeout=30) == 1
    later.close()


def test_a_step_past_its_timeout_is_ended_on_the_machine(seat) -> None:
    client = seat()
    began = time.monotonic()
    with pytest.raises(ssh.SshError, match="timed out after 2 s"):
        ssh.run(client, LONG_STEP, timeout=2)
    assert time.monotonic() - began < 4
    client.close()
    assert eventually(lambda: alive(seat), lambda left: not left, timeout=5) == set()
