"""Reaching a seat's machine (services/remote.py) against a real OpenSSH sshd on loopback:
a machine whose address is known is logged in to at once (no port probe first, which would
cost its sshd one more connection); one that does not answer yet is waited for."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from labtui.services import remote as remote_module
from labtui.services import ssh
from labtui.services.inventory import Machine
from labtui.services.machines import KnownHosts
from labtui.services.remote import Remote
from labtui.state import StateDir

MACHINE = Machine("i-real", "s01", "us-east-1", "running", "t3.small", None, "")


class Addresses:
    """The seam from instance to address: answers the given ports in turn (the last one
    from then on), as a machine that gets its SSH server later would."""

    loopback_only = True

    def __init__(self, *ports: int) -> None:
        self.ports = list(ports)
        self.asked = 0

    def address(self, instance):
        self.asked += 1
        return ("127.0.0.1", self.ports[min(self.asked, len(self.ports)) - 1])


def closed_port() -> int:
    with socket.socket() as sock:  # bound, then closed: nothing listens there
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def remote_for(sshd, tmp_path: Path, resolver: Addresses) -> Remote:
    state = StateDir.resolve(tmp_path / "state").ensure().course("remote")
    known = KnownHosts(state)
    known.add({MACHINE.instance_id: sshd["host_key"]})
    return Remote(aws=None, resolver=resolver, known=known,  # type: ignore[arg-type]
                  private_key=Path(sshd["client_key"]).read_text(), user=sshd["user"],
                  sleep=lambda _s: None)


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []
    real = remote_module._port_open

    def probe(where: tuple[str, int]) -> bool:
        seen.append(where)
        return real(where)

    monkeypatch.setattr(remote_module, "_port_open", probe)
    return seen


def test_a_known_address_is_logged_in_to_without_a_probe(sshd, tmp_path, probes) -> None:
    remote = remote_for(sshd, tmp_path, Addresses(sshd["port"]))
    client = remote.connect(MACHINE, wait=30)
    try:
        lines: list[str] = []
        assert ssh.run(client, "echo here", on_line=lambda _s, t: lines.append(t)) == 0
        assert lines == ["here"]
    finally:
        client.close()
    assert probes == []


def test_no_server_yet_is_waited_for(sshd, tmp_path, probes) -> None:
    # the first address refuses; then the machine's sshd is there
    resolver = Addresses(closed_port(), sshd["port"])
    client = remote_for(sshd, tmp_path, resolver).connect(MACHINE, wait=30)
    client.close()
    assert probes == [("127.0.0.1", sshd["port"])]  # the wait probed, then logged in


def test_no_server_without_a_wait_is_refused_at_once(sshd, tmp_path, probes) -> None:
    port = closed_port()
    remote = remote_for(sshd, tmp_path, Addresses(port))
    with pytest.raises(ssh.SshUnreachable, match=f"127.0.0.1:{port} refused"):
        remote.connect(MACHINE)
    assert probes == []
    with pytest.raises(ssh.SshError, match="SSH is not reachable"):
        remote.connect(MACHINE, wait=0.5)  # refused, then the wait ran out
    assert probes and set(probes) == {("127.0.0.1", port)}


def test_a_server_that_restarts_between_the_probe_and_the_login_is_waited_for(
        sshd, tmp_path, monkeypatch) -> None:
    # cloud-init restarts sshd on a first boot (ssh_pwauth): the port answered the probe,
    # then refused the login a moment later; within the wait that is tried again
    gone = closed_port()
    answered: list[tuple[str, int]] = []

    def probe(where: tuple[str, int]) -> bool:
        answered.append(where)
        return True

    monkeypatch.setattr(remote_module, "_port_open", probe)
    resolver = Addresses(gone, gone, sshd["port"])
    client = remote_for(sshd, tmp_path, resolver).connect(MACHINE, wait=30)
    client.close()
    assert answered == [("127.0.0.1", gone), ("127.0.0.1", sshd["port"])]
    # without a wait left, the refusal is the answer
    with pytest.raises(ssh.SshUnreachable, match=f"127.0.0.1:{gone} refused"):
        remote_for(sshd, tmp_path, Addresses(gone)).connect(MACHINE, wait=0.01)
