"""The headless machine commands end to end on the sandbox, as a script would run them."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

import pytest

from .test_cli import json_lines, run
from .test_setup import course_file


@pytest.mark.timeout(300)  # a whole journey, several boots: 120 s bounds one step
def test_class_day_from_a_script(sandbox_state, tmp_path: Path) -> None:
    env = {"LABTUI_STATE_DIR": str(sandbox_state.root)}
    course = str(course_file(tmp_path, students=3))

    refused = run("up", course, "--sandbox", env=env)
    assert refused.returncode == 2 and "no terminal to ask. Fix: add --yes" in refused.stderr

    up = run("up", course, "--sandbox", "--yes", env=env, timeout=120)
    assert up.returncode == 0, up.stderr
    assert "up: 3 launched, 0 failed to launch; setup done 3/3, failed 0; 3 seats." in up.stdout
    assert "setup 3/3" in up.stdout  # progress counts as it goes

    status = json_lines(run("status", course, "--sandbox", "--json", env=env).stdout)
    assert [s["seat"] for s in status] == ["s01", "s02", "s03"]
    for seat in status:
        assert set(seat) >= {"seat", "students", "region", "instance_id", "state", "address",
                             "setup", "error"}
        assert seat["state"] == "running" and seat["setup"] == "done"
    # each machine has its own loopback address; as root, sshd listens on port 22 there
    addresses = [seat["address"].rsplit(":", 1) for seat in status]
    assert len({host for host, _ in addresses}) == 3
    assert all(ipaddress.ip_address(host).is_loopback for host, _ in addresses)
    if os.geteuid() == 0:
        assert {port for _, port in addresses} == {"22"}

    again = run("up", course, "--sandbox", "--yes", "--json", env=env, timeout=120)
    summary = json_lines(again.stdout)[-1]
    assert summary["type"] == "summary" and summary["launched"] == 0

    out = run("exec", course, "--all", "--sandbox", "--", "echo", "hello;", "echo", "careful",
              ">&2;", "test", "-e", "hello.txt", env=env)
    assert out.returncode == 0, out.stderr
    assert sorted(line for line in out.stdout.splitlines() if "|" in line) == [
        "s01 | hello", "s02 | hello", "s03 | hello"]
    assert sorted(line for line in out.stderr.splitlines() if "|" in line) == [
        "s01 | careful", "s02 | careful", "s03 | careful"]
    # the output also went to the course's event log, each line with its seat and stream
    logged = {(e["source"], e.get("stream"), e["text"]) for e in map(
        json.loads, sandbox_state.course("setup").event_log.read_text().splitlines())
        if e["type"] == "log_line"}
    assert {(s, "stdout", "hello") for s in ("s01", "s02", "s03")} <= logged
    assert {(s, "stderr", "careful") for s in ("s01", "s02", "s03")} <= logged
    failing = run("exec", course, "s02", "--sandbox", "--json", "--", "exit 4", env=env)
    assert failing.returncode == 1
    assert {"type": "exit", "seat": "s02", "status": 4, "error": ""} in json_lines(
        failing.stdout)

    missing = run("exec", course, "s09", "--sandbox", "--", "true", env=env)
    assert missing.returncode == 2 and "no seat named 's09'" in missing.stderr

    stopped = run("stop", course, "s01", "--sandbox", env=env)
    assert stopped.returncode == 0 and "s01: stopped" in stopped.stdout
    started = run("start", course, "--sandbox", env=env)
    assert "s01: started" in started.stdout

    rerun = run("rerun-setup", course, "s02", "--sandbox", env=env)
    assert rerun.returncode == 0 and "s02: setup done" in rerun.stdout
    reset = run("reset-password", course, "s03", "--sandbox", env=env)
    assert reset.returncode == 0 and "never printed" in reset.stdout

    down = run("down", course, "--sandbox", "--yes", env=env, timeout=120)
    assert down.returncode == 0, down.stderr
    assert "3 instances" in down.stdout and "1 VPCs" in down.stdout
    after = json_lines(run("status", course, "--sandbox", "--json", env=env).stdout)
    assert {s["state"] for s in after} == {"absent"}



def lifecycle_pin(state, course_id: str) -> str:
    """The one host key pinned for the course's (only) machine."""
    [key] = json.loads((state.root / "courses" / course_id / "secrets"
                        / "known_hosts.json").read_text()).values()
    return key


def test_ssh_and_console_for_one_seat(sandbox_state, tmp_path: Path) -> None:
    import shutil

    import pytest

    env = {"LABTUI_STATE_DIR": str(sandbox_state.root)}
    course = str(course_file(tmp_path, students=1))
    assert run("up", course, "--sandbox", "--yes", env=env, timeout=120).returncode == 0
    console = run("console", course, "s01", "--sandbox", env=env)
    assert console.returncode == 0
    # the machine's real console: cloud-init's output and the host key it installed
    assert "Cloud-init v." in console.stdout and "BEGIN SSH HOST KEY KEYS" in console.stdout
    pinned = lifecycle_pin(sandbox_state, "setup")
    assert pinned.split()[1] in console.stdout
    if shutil.which("ssh") is None:
        pytest.skip("OpenSSH client not installed")
    shell = run("ssh", course, "s01", "--sandbox", "--", "echo", "via-openssh", env=env)
    assert shell.returncode == 0, shell.stderr
    assert "via-openssh" in shell.stdout
    known = sandbox_state.root / "courses" / "setup" / "secrets" / "ssh_known_hosts"
    assert known.stat().st_mode & 0o077 == 0
    # port 22: known_hosts names the bare address, as for a machine on AWS
    entry = known.read_text().split()
    assert entry[1:] == pinned.split()[:2]
    if os.geteuid() == 0:
        assert ipaddress.ip_address(entry[0]).is_loopback
