"""paramiko against a real OpenSSH sshd on loopback: pinned host keys, streamed exec, SFTP,
and setup that a dropped connection interrupts and a rerun completes.

sshd runs as this user with a ForceCommand wrapper that puts HOME (and SFTP) in a temporary
folder, so nothing here writes outside the test's own folder; the setup uses key login and no
sudo, so nothing on this machine changes.
"""

from __future__ import annotations

import dataclasses
import getpass
import time
from pathlib import Path

import pytest

from labtui.course import load
from labtui.events import ListSink
from labtui.services import ssh
from labtui.services.hostkeys import HostKey
from labtui.services.inventory import Machine
from labtui.services.machines import KnownHosts
from labtui.services.remote import Remote
from labtui.services.setup import SetupFailed, setup_seat
from labtui.state import StateDir

SFTP_SERVERS = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                "/usr/lib/ssh/sftp-server")


@pytest.fixture
def jail_sshd(sshd, tmp_path: Path):
    """The sshd fixture, restarted with HOME and SFTP confined to a temporary folder."""
    import subprocess

    server = next((p for p in SFTP_SERVERS if Path(p).exists()), None)
    if server is None:
        pytest.skip("sftp-server not found")
    home = tmp_path / "home"
    home.mkdir()
    wrapper = tmp_path / "force.sh"
    wrapper.write_text(f"""#!/bin/sh
export HOME={home}
cd {home}
case "$SSH_ORIGINAL_COMMAND" in
  "") exec bash -i ;;
  internal-sftp|sftp|*sftp-server*) exec {server} -d {home} ;;
  *) exec bash -c "$SSH_ORIGINAL_COMMAND" ;;
esac
""")
    wrapper.chmod(0o755)
    config = sshd["folder"] / "sshd_config"
    config.write_text(config.read_text() + f"ForceCommand {wrapper}\n")
    sshd["proc"].terminate()
    sshd["proc"].wait(timeout=5)
    import re
    import socket

    from .conftest import _free_port
    for _attempt in range(3):
        proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        sshd["proc"] = proc  # the sshd fixture's teardown ends this one
        deadline = time.monotonic() + 30
        up = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", sshd["port"]), timeout=0.2):
                    up = True
                    break
            except OSError:
                time.sleep(0.05)
        if up:
            break
        # the port was taken meanwhile (the old sshd let it go; any connection may get it
        # as its local port): a new one
        proc.kill()
        proc.wait(timeout=5)
        sshd["port"] = _free_port()
        config.write_text(re.sub(r"(?m)^Port \d+$", f"Port {sshd['port']}",
                                 config.read_text()))
    else:
        pytest.fail("the confined sshd did not come up on three ports")
    return {**sshd, "home": home}


def target(server, host_key: str | None = None) -> ssh.SshTarget:
    key = ssh.load_private_key(Path(server["client_key"]).read_text())
    return ssh.SshTarget(server["host"], server["port"], server["user"],
                         host_key or server["host_key"], pkey=key)


def test_streamed_exec_and_exit_status(jail_sshd) -> None:
    client = ssh.connect(target(jail_sshd))
    arrivals: list[tuple[float, str]] = []
    status = ssh.run(client, "for i in 1 2 3; do echo line$i; sleep 0.3; done; exit 5",
                     on_line=lambda _s, text: arrivals.append((time.monotonic(), text)))
    client.close()
    assert status == 5
    assert [text for _t, text in arrivals] == ["line1", "line2", "line3"]
    assert arrivals[2][0] - arrivals[0][0] > 0.4  # they came as printed, not at the end


def test_sftp_upload_download_in_home(jail_sshd) -> None:
    client = ssh.connect(target(jail_sshd))
    ssh.put(client, b"payload\n", "file.txt", mode=0o600)
    assert (jail_sshd["home"] / "file.txt").read_bytes() == b"payload\n"
    assert ssh.get(client, "file.txt") == b"payload\n"
    client.close()


def test_wrong_host_key_is_refused(jail_sshd) -> None:
    impostor = HostKey.generate().public_line
    with pytest.raises(ssh.SshError, match="host key"):
        ssh.connect(target(jail_sshd, impostor), attempts=1)


class FixedAddress:
    loopback_only = True

    def __init__(self, port: int) -> None:
        self.port = port

    def address(self, instance):
        return ("127.0.0.1", self.port)


def test_dropped_connection_mid_setup_then_rerun_completes(jail_sshd, tmp_path: Path) -> None:
    home = jail_sshd["home"]
    course_path = tmp_path / "course.toml"
    course_path.write_text("""
[course]
id = "real-sshd"
name = "Real sshd"
regions = ["us-east-1"]
max_instances = 2
[[roster.students]]
id = "s01"
name = "One"
email = "one@example.edu"
[machines]
instance_type = "t3.small"
user = "student"
login = "key"
setup = [
  "echo first >> steps.log",
  "if [ -e drop-once ]; then rm drop-once; kill -9 $PPID; exit 1; fi; echo second >> steps.log",
  "echo third >> steps.log",
]
[network]
ssh_cidr = "198.51.100.0/24"
""")
    # the sshd logs in as whoever runs the suite, which may be root: a course file may not say
    # user = "root", so the loaded course gets that user here
    course = load(course_path)
    assert course.machines
    course = dataclasses.replace(
        course, machines=dataclasses.replace(course.machines, user=getpass.getuser()))
    state = StateDir.resolve(tmp_path / "state").ensure().course(course.id)
    known = KnownHosts(state)
    known.add({"i-real": jail_sshd["host_key"]})
    remote = Remote(aws=None, resolver=FixedAddress(jail_sshd["port"]),  # type: ignore[arg-type]
                    known=known, private_key=Path(jail_sshd["client_key"]).read_text(),
                    user=getpass.getuser())
    machine = Machine("i-real", "s01", "us-east-1", "running", "t3.small", None, "")
    (home / "drop-once").write_text("")
    sink = ListSink()
    with pytest.raises((SetupFailed, ssh.SshError)):
        setup_seat(remote, course, machine, state, sink, wait=5)
    assert (home / "steps.log").read_text() == "first\n"
    setup_seat(remote, course, machine, state, sink, wait=5)
    # the first step was not redone; the interrupted one and the rest finished
    assert (home / "steps.log").read_text() == "first\nsecond\nthird\n"
    log = (state.logs / "s01.log").read_text()
    assert "(already done)" in log and "setup done" in log


def _alive(pid: int) -> bool:
    import os
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for every purpose here
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[-1][:1] != "Z"


def _started(folder: Path, names: tuple[str, ...], timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while not all((folder / n).exists() and (folder / n).read_text().strip() for n in names):
        assert time.monotonic() < deadline, "the command did not start"
        time.sleep(0.02)
    return [int((folder / n).read_text()) for n in names]


# A step as setup runs one: a shell whose child runs on (a subshell, then `sleep`).
LONG_STEP = "echo $$ > {d}/shell; (sleep 300 & echo $! > {d}/child; wait); echo never"


def test_closing_a_connection_alone_leaves_its_command_running(sshd, tmp_path: Path) -> None:
    """Why ssh.end_commands exists: without a terminal, OpenSSH leaves a command running when
    its client closes the connection (tests/test_ending.py ends them on a real machine)."""
    client = ssh.connect(target(sshd))
    chan = client.get_transport().open_session()
    chan.exec_command(LONG_STEP.format(d=tmp_path))
    shell, child = _started(tmp_path, ("shell", "child"))
    client.close()
    time.sleep(0.5)
    try:
        assert _alive(shell) and _alive(child)
    finally:
        import os
        import signal
        for pid in (child, shell):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)

