"""Shared fixtures: fake AWS credentials, a private state folder, the sandbox, OpenSSH sshd.

Every test runs with pytest-socket allowing only 127.0.0.1 and ::1 (see pyproject addopts),
so nothing here can reach a real AWS endpoint or an address moto reports for an instance.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from labtui.sandbox.runtime import Sandbox, serve_record
from labtui.state import StateDir

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SAMPLE = ROOT / "sample_course.toml"
_RUN = pytest.StashKey[str]()


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may ever use real credentials or reach real AWS."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN",
                 "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "state"
    monkeypatch.setenv("LABTUI_STATE_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory):
    """One sandbox for the session (moto state is process-wide anyway); reset per test."""
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    box = Sandbox(tmp_path_factory.mktemp("sandbox")).start(print)  # builds the image once
    yield box
    box.stop()


@pytest.fixture
def sandbox_state(sandbox: Sandbox, state_dir: Path) -> StateDir:
    """A state folder whose sandbox record points at the session sandbox, freshly reset,
    so ``--sandbox`` commands (in process or in a subprocess) attach to it."""
    sandbox.reset()
    state = StateDir.resolve(state_dir).ensure()
    state.sandbox_dir.mkdir(parents=True, exist_ok=True)
    serve_record(state, sandbox)
    return state


@pytest.fixture
def ctx(sandbox_state: StateDir):
    """A sandbox Context on the reset session sandbox, its events kept in a ListSink."""
    from labtui.context import open_context
    from labtui.events import ListSink

    context = open_context(None, sandbox=True, state_dir=str(sandbox_state.root),
                           sink=ListSink())
    yield context
    context.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)


@pytest.fixture
def sshd(tmp_path: Path):
    """A real OpenSSH server on 127.0.0.1 with its own host key and one authorized key.

    Yields a dict with host, port, user, host_key (public line), client_key (path of the
    private key), folder. Skipped where sshd is not installed (CI installs it).
    """
    if SSHD is None:
        pytest.skip("OpenSSH sshd is not installed (apt-get install openssh-server)")
    import getpass

    folder = tmp_path / "sshd"
    folder.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(folder / "host_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(folder / "client_key")], check=True)
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    port = _free_port()
    config = folder / "sshd_config"
    config.write_text("\n".join([
        "ListenAddress 127.0.0.1",
        f"Port {port}",
        f"HostKey {folder / 'host_key'}",
        f"AuthorizedKeysFile {folder / 'authorized_keys'}",
        "StrictModes no",
        "UsePAM no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin yes",
        f"PidFile {folder / 'sshd.pid'}",
        "Subsystem sftp internal-sftp",
        "MaxStartups 100:30:200",
        "MaxSessions 50",
        "",
    ]))
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"sshd exited: {proc.stderr.read().decode()[-500:]}")
            time.sleep(0.05)
    host_key = (folder / "host_key.pub").read_text().split()
    info = {
        "host": "127.0.0.1", "port": port, "user": getpass.getuser(),
        "host_key": f"{host_key[0]} {host_key[1]}",
        "client_key": folder / "client_key", "folder": folder, "proc": proc,
    }
    try:
        yield info
    finally:
        # the sshd running now: a test may have restarted it (info["proc"] is the new one)
        for running in {id(p): p for p in (proc, info["proc"])}.values():
            running.terminate()
            try:
                running.wait(timeout=5)
            except subprocess.TimeoutExpired:
                running.kill()


# -- the suite ends what it starts (tests/leftovers.py) ------------------------------------

def pytest_sessionstart(session: pytest.Session) -> None:
    from . import leftovers

    session.config.stash[_RUN] = leftovers.mark_session()


def pytest_unconfigure(config: pytest.Config) -> None:
    # The run is over: freeze what it made, so the interpreter's final full collection
    # (over moto's state, every app's widgets...) skips it; it took 40 s of the exit.
    import gc

    gc.freeze()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from . import leftovers

    token = session.config.stash.get(_RUN, None)
    if token is None:
        return
    deadline = time.monotonic() + 5  # what a teardown just ended may still be exiting
    found = leftovers.left_behind(token)
    while found and time.monotonic() < deadline:
        time.sleep(0.2)
        found = leftovers.left_behind(token)
    if not found:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"  pid {pid}: {cmd}" for pid, cmd in found]
    message = ("processes the test run started are still running after its last test "
               "(ended now):\n" + "\n".join(lines))
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_line(message, red=True)
    leftovers.end([pid for pid, _ in found])
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
