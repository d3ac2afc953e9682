"""Start, find and stop the sandbox: an AWS emulator and real machines, all on loopback.

``labtui sandbox`` runs one in the foreground and records where it listens in the state
folder; any other command given ``--sandbox`` attaches to that one, or starts a private
sandbox for the life of its own process when none runs.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labtui.errors import SandboxError
from labtui.state import StateDir, private_dir, read_json, write_json

ACCOUNT_ID = "123456789012"
LOOPBACK = "127.0.0.1"


def quiet_loggers() -> None:
    """werkzeug and paramiko log to stderr, which would write over the Textual screen."""
    for name in ("werkzeug", "paramiko", "moto", "botocore", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)


class Sandbox:
    """The emulator (moto's ThreadedMotoServer), one machine per running instance, the
    EMR player (``emr.py``) that runs the clusters' bootstrap actions and steps on them, and
    a MariaDB server per MySQL or MariaDB DB instance (``rds.py``)."""

    def __init__(self, folder: Path, port: int = 0, *,
                 vcpu_quotas: dict[str, float] | None = None,
                 spot_vcpu_quotas: dict[str, float] | None = None,
                 approve_quota_requests: bool = False) -> None:
        from labtui.sandbox.emulator import PriceBook, QuotaBook

        self.folder = private_dir(folder)
        self.port = port
        self.quotas = QuotaBook(approve=approve_quota_requests)
        self.prices = PriceBook()
        self._initial = ({**(vcpu_quotas or {})}, {**(spot_vcpu_quotas or {})})
        self._apply_quotas()
        self._moto: Any = None
        self._hosts: Any = None
        self._emr: Any = None
        self._rds: Any = None

    def _apply_quotas(self) -> None:
        on_demand, spot = self._initial
        for region, value in on_demand.items():
            self.quotas.set(region, value, "L-1216C47A")
        for region, value in spot.items():
            self.quotas.set(region, value, "L-34B43A08")

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def machines(self) -> str:
        """What plays the instances, said in the console's header and in status."""
        from labtui.sandbox import flavors

        problem = self._hosts.problem if self._hosts is not None else None
        rds = self._rds.problem if self._rds is not None else None
        databases = "; DB instances are records only (no MariaDB here)" if rds else ""
        if problem:
            return f"no machines: {problem}{databases}"
        return f"machines: {flavors.PLAYED_BY} containers for {flavors.playable()}{databases}"

    @property
    def hosts_file(self) -> Path:
        return self.folder / "hosts.json"

    def start(self, progress: Callable[[str], None] = lambda _line: None) -> Sandbox:
        """Serve the emulator and run the machines; the machines' base image is built first
        when it is not cached yet (a minute, once; ``progress`` gets its lines)."""
        quiet_loggers()
        os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
        from labtui.sandbox.emr import EmrPlayer
        from labtui.sandbox.emulator import make_server_class, serve_managed_policies
        from labtui.sandbox.machines import MachineManager
        from labtui.sandbox.rds import DatabaseServers

        if self.port and _listening(self.port):
            raise SandboxError(
                f"port {self.port} on {LOOPBACK} is already in use. Fix: choose another with "
                "--port, or omit --port to take a free one.")
        serve_managed_policies()  # the AWS managed policies EMR's roles attach
        self._moto = make_server_class()(ip_address=LOOPBACK, port=self.port, verbose=False,
                                         quotas=self.quotas, prices=self.prices)
        try:
            self._moto.start()
        except OSError as exc:
            raise SandboxError(f"cannot listen on {LOOPBACK}:{self.port}: {exc}") from exc
        self.port = self._moto.get_host_and_port()[1]
        self._hosts = MachineManager(self.folder, self.endpoint_url, account_id=ACCOUNT_ID)
        if self._hosts.problem:
            progress(f"sandbox: instances get no machine here: {self._hosts.problem}")
        else:
            try:
                self._hosts.image.ensure(progress)
            except SandboxError:
                self.stop()
                raise
        self._hosts.start()
        self._emr = EmrPlayer(self._hosts, account_id=ACCOUNT_ID).start()
        # says once, at the first MySQL/MariaDB DB instance, when MariaDB is missing here
        self._rds = DatabaseServers(self.folder, account_id=ACCOUNT_ID, say=progress).start()
        return self

    def reset(self) -> None:
        """Forget every AWS resource (moto's reset) and close every SSH listener."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        # a bound, not an estimate: the reset takes a quarter of a second, but a loaded
        # machine (two test workers and their machines' boots) has made it wait ten
        with urllib.request.urlopen(request, timeout=120):
            pass
        self.quotas.reset()
        self._apply_quotas()
        if self._emr is not None:
            self._emr.sync()  # the clusters' steps and bootstrap actions end with them
        if self._hosts is not None:
            self._hosts.sync()
        if self._rds is not None:
            self._rds.sync()  # the DB instances' servers end with their records

    def stop(self) -> None:
        if self._rds is not None:
            self._rds.stop()
            self._rds = None
        if self._emr is not None:
            self._emr.stop()
            self._emr = None
        if self._hosts is not None:
            self._hosts.stop()
            self._hosts = None
        if self._moto is not None:
            self._moto.stop()
            self._moto = None


def _listening(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class SandboxHandle:
    """What a command needs of a sandbox: where AWS calls go and where SSH hosts are."""

    endpoint_url: str
    hosts_file: Path
    folder: Path
    owned: Sandbox | None = None  # a private sandbox this process started
    private_root: Path | None = None
    machines: str = ""            # what plays the instances (for headers and status)

    @property
    def shared(self) -> bool:
        return self.owned is None

    def close(self) -> None:
        if self.owned is not None:
            self.owned.stop()
            self.owned = None
        if self.private_root is not None:
            shutil.rmtree(self.private_root, ignore_errors=True)
            self.private_root = None


def running(state: StateDir) -> dict | None:
    """The record of a running ``labtui sandbox`` if its process is alive and answering."""
    info = read_json(state.sandbox_file)
    if not isinstance(info, dict):
        return None
    try:
        pid, port = int(info["pid"]), int(info["port"])
    except (KeyError, TypeError, ValueError):
        return None
    if not _pid_alive(pid) or not _listening(port):
        return None
    return info


def serve_record(state: StateDir, sandbox: Sandbox) -> None:
    write_json(state.sandbox_file, {
        "pid": os.getpid(), "port": sandbox.port, "endpoint_url": sandbox.endpoint_url,
        "folder": str(sandbox.folder), "hosts_file": str(sandbox.hosts_file),
        "machines": sandbox.machines,
    })


def clear_record(state: StateDir) -> None:
    info = read_json(state.sandbox_file)
    if isinstance(info, dict) and info.get("pid") == os.getpid():
        state.sandbox_file.unlink(missing_ok=True)


def attach(state: StateDir,
           progress: Callable[[str], None] = lambda _line: None) -> SandboxHandle:
    """Use the running sandbox, or start a private one for this process."""
    info = running(state)
    if info is not None:
        return SandboxHandle(str(info["endpoint_url"]), Path(info["hosts_file"]),
                             Path(info["folder"]), machines=str(info.get("machines", "")))
    state.ensure()
    root = Path(tempfile.mkdtemp(prefix="private-sandbox-", dir=state.root))
    sandbox = Sandbox(root).start(progress)
    return SandboxHandle(sandbox.endpoint_url, sandbox.hosts_file, sandbox.folder,
                         owned=sandbox, private_root=root, machines=sandbox.machines)
