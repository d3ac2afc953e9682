"""HostManager: one sandbox SSH listener per running instance of the in-process moto EC2.

moto runs in the same process (``ThreadedMotoServer``), so the manager reads its EC2
backends directly and reconciles every ``poll_interval`` seconds:

- a running instance without a listener gets one on 127.0.0.1, random port — a new port on
  every (re)start, like a real machine's new public IP after stop/start;
- an instance that is no longer running (stopped, terminated, or gone because moto was reset)
  loses its listener; its connections drop and its processes are killed.

``SANDBOX_DIR/hosts.json`` (replaced atomically) maps instance id -> {"host", "port",
"region", "state"} for every instance with a listener. ``SANDBOX_DIR/instances/<id>/``
holds ``root/`` (the instance's "/", kept across stop/start) and ``journal.log``.

First boot (like cloud-init, once per instance): the host key comes from the user-data
(``#cloud-config`` + JSON, ``ssh_keys.ed25519_private``; rsa/ecdsa entries are used too) and
is written to ``root/etc/ssh/ssh_host_<type>_key``; without one (user-data absent or not
JSON — e.g. EMR nodes made by ``run_job_flow``, which get a listener too) a random ed25519
key is generated and the journal says so. The key pair's public key (``KeyName``) and the
cloud-config's ``ssh_authorized_keys`` are saved to
``root/var/lib/labtui/authorized_keys`` and accepted for any user name. Later boots reuse
what first boot wrote (the key pair may have been deleted since, as on AWS).

A stop + start can happen between two polls; so that it still yields a new port, the
manager wraps moto's ``Instance.start`` (once per process) to count boots of a stopped
instance, and reopens a listener whose boot count is out of date.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import paramiko

from labtui.sandbox import confine
from labtui.sandbox.sshd import InstanceSshd, load_private_key
from labtui.services.cloudinit import parse_user_data

log = logging.getLogger(__name__)
logging.getLogger("werkzeug").setLevel(logging.ERROR)

_KEY_TYPES = {"ed25519": paramiko.Ed25519Key, "ecdsa": paramiko.ECDSAKey,
              "rsa": paramiko.RSAKey}
_BOOTS_ATTR = "_labtui_boots"
_patch_lock = threading.Lock()


def _install_boot_counter() -> None:
    """Make moto's Instance.start count starts of a non-running instance (idempotent)."""
    from moto.ec2.models.instances import Instance

    with _patch_lock:
        if getattr(Instance, "_labtui_counts_boots", False):
            return
        original = Instance.start

        def start(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            was_running = getattr(self, "state", None) == "running"
            result = original(self, *args, **kwargs)
            if not was_running:
                setattr(self, _BOOTS_ATTR, getattr(self, _BOOTS_ATTR, 0) + 1)
            return result

        Instance.start = start
        Instance._labtui_counts_boots = True


def _boots(inst: Any) -> int:
    return int(getattr(inst, _BOOTS_ATTR, 0))


class HostManager:
    """Runs and tracks the SSH listeners of the sandbox's running instances."""

    def __init__(self, sandbox_dir: Path, account_id: str = "123456789012",
                 poll_interval: float = 0.2) -> None:
        self.sandbox_dir = Path(sandbox_dir)
        self.account_id = account_id
        self.poll_interval = poll_interval
        self.hosts_file = self.sandbox_dir / "hosts.json"
        self._servers: dict[str, InstanceSshd] = {}
        self._regions: dict[str, str] = {}
        self._last_port: dict[str, int] = {}
        self._booted: dict[str, int] = {}
        _install_boot_counter()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._written: dict[str, Any] | None = None

    # ---------------------------------------------------------------- public

    def start(self) -> None:
        """One reconciliation now, then keep reconciling in a daemon thread."""
        self._mkdir(self.sandbox_dir)
        self._stop.clear()
        self.sync()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, daemon=True,
                                            name="labtui-sandbox-hosts")
            self._thread.start()

    def stop(self) -> None:
        """Stop reconciling, close every listener (killing their processes), empty hosts.json."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self._thread = None
        with self._lock:
            for iid in list(self._servers):
                self._close(iid, "sandbox stopped")
            self._write_hosts()

    def sync(self) -> None:
        """One synchronous reconciliation pass against moto's EC2 backends."""
        with self._lock:
            running, unknown_regions = self._running_instances()
            for iid in list(self._servers):
                if iid in running:
                    if _boots(running[iid][2]) != self._booted.get(iid, 0):
                        self._close(iid, "instance was stopped and started again")
                elif self._regions.get(iid) not in unknown_regions:
                    self._close(iid, "instance is no longer running")
            for iid, (region, backend, inst) in running.items():
                if iid not in self._servers:
                    try:
                        self._open(iid, region, backend, inst)
                    except Exception as e:  # one broken instance must not stop the others
                        # (info, not warning: Python's last-resort handler would print a
                        # warning over the terminal UI)
                        log.info("sandbox: no SSH listener for %s: %s", iid, type(e).__name__)
                        with contextlib.suppress(Exception):
                            confine.journal(self.instance_dir(iid) / "journal.log",
                                            f"sshd: could not start ({type(e).__name__})")
            self._write_hosts()

    def port_for(self, instance_id: str) -> int | None:
        with self._lock:
            server = self._servers.get(instance_id)
            return server.port if server is not None else None

    def instance_dir(self, instance_id: str) -> Path:
        if not instance_id or "/" in instance_id or instance_id.startswith("."):
            raise ValueError("bad instance id")
        return self.sandbox_dir / "instances" / instance_id

    def hosts(self) -> dict[str, dict[str, Any]]:
        """What hosts.json holds right now."""
        with self._lock:
            return {iid: {"host": s.bind, "port": s.port, "region": self._regions[iid],
                          "state": "running"} for iid, s in sorted(self._servers.items())}

    def __enter__(self) -> HostManager:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- internals

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.sync()
            except Exception as e:  # keep serving; the next pass may succeed
                log.debug("sandbox hosts sync failed: %s", type(e).__name__)

    def _running_instances(self) -> tuple[dict[str, tuple[str, Any, Any]], set[str]]:
        from moto.ec2.models import ec2_backends

        running: dict[str, tuple[str, Any, Any]] = {}
        unknown: set[str] = set()
        # dict.get / dict.items: never trigger moto's lazy creation of accounts or regions.
        account = dict.get(ec2_backends, self.account_id)
        if account is None:
            return running, unknown
        for region, backend in list(dict.items(account)):
            try:
                instances = list(backend.all_instances())
            except RuntimeError:  # moto changed the dict under us; try again next pass
                unknown.add(region)
                continue
            for inst in instances:
                if getattr(inst, "state", None) == "running":
                    running[inst.id] = (region, backend, inst)
        return running, unknown

    def _mkdir(self, path: Path) -> None:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _open(self, iid: str, region: str, backend: Any, inst: Any) -> None:
        idir = self.instance_dir(iid)
        self._mkdir(idir)
        root = idir / "root"
        journal_path = idir / "journal.log"
        first_boot = not (root / "var/lib/cloud/instance/boot-finished").exists()
        confine.prepare_root(root, _hostname(inst))
        with contextlib.suppress(OSError):
            os.chmod(root, 0o700)

        def note(text: str) -> None:
            with contextlib.suppress(OSError):
                confine.journal(journal_path, text, root=root)

        note(f"boot: instance {iid} ({region}) is running")
        if first_boot:
            self._first_boot(inst, backend, root, note)
        host_keys = _load_host_keys(root)
        if not host_keys:  # root folder tampered with: behave like a fresh host key
            pem, _pub = _generate_ed25519()
            _write_host_key(root, "ed25519", pem)
            host_keys = _load_host_keys(root)
            note("boot: host key files missing; generated a new ed25519 host key")
        auth = _read_lines(confine.state_dir(root) / "authorized_keys")
        server = InstanceSshd(iid, idir, [k for _t, k in host_keys], auth)
        port = server.start()
        for _ in range(5):
            if port != self._last_port.get(iid):
                break
            old = server
            server = InstanceSshd(iid, idir, [k for _t, k in host_keys], auth)
            port = server.start()
            old.close()
        self._servers[iid] = server
        self._regions[iid] = region
        self._booted[iid] = _boots(inst)
        self._last_port[iid] = port
        note(f"sshd: listening on {server.bind}:{port} (host key "
             + ", ".join(f"{k.get_name()} {_fingerprint(k)}" for _t, k in host_keys) + ")")

    def _first_boot(self, inst: Any, backend: Any, root: Path, note: Any) -> None:
        text = _user_data_text(inst)
        config = parse_user_data(text)
        ssh_keys = (config or {}).get("ssh_keys") if isinstance(config, dict) else None
        wrote = False
        if isinstance(ssh_keys, dict):
            for kind in _KEY_TYPES:
                pem = ssh_keys.get(f"{kind}_private")
                if not isinstance(pem, str):
                    continue
                try:
                    key = load_private_key(pem)
                except ValueError:
                    note(f"boot: cloud-init: unusable {kind}_private in user-data; ignored")
                    continue
                _write_host_key(root, kind, pem, key)
                note(f"boot: cloud-init: host key from user-data ({key.get_name()} "
                     f"{_fingerprint(key)})")
                wrote = True
        if not wrote:
            pem, _pub = _generate_ed25519()
            _write_host_key(root, "ed25519", pem)
            why = "no user-data" if inst.user_data is None else (
                "user-data is not #cloud-config JSON" if config is None else
                "no ssh_keys in the cloud-config")
            note(f"boot: {why}; generated a random ed25519 host key "
                 "(see /etc/ssh/ssh_host_ed25519_key.pub)")
        keys: list[str] = []
        key_name = getattr(inst, "key_name", None)
        if key_name:
            pair = getattr(backend, "key_pairs", {}).get(key_name)
            material = getattr(pair, "material_public", None)
            if material:
                line = material.decode() if isinstance(material, bytes) else str(material)
                keys.append(line.strip())
                note(f"boot: cloud-init: authorized key from key pair {key_name}")
            else:
                note(f"boot: key pair {key_name} not found; no key from it")
        extra = (config or {}).get("ssh_authorized_keys") if isinstance(config, dict) else None
        if isinstance(extra, list):
            keys += [k.strip() for k in extra if isinstance(k, str) and k.strip()]
            if extra:
                note(f"boot: cloud-init: {len(extra)} key(s) from ssh_authorized_keys")
        confine._write_atomic(confine.state_dir(root) / "authorized_keys",
                              "".join(k + "\n" for k in keys), 0o600)
        marker = root / "var/lib/cloud/instance/boot-finished"
        marker.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        marker.write_text("labtui sandbox first boot done\n")

    def _close(self, iid: str, why: str) -> None:
        server = self._servers.pop(iid, None)
        self._regions.pop(iid, None)
        self._booted.pop(iid, None)
        if server is None:
            return
        server.close()
        with contextlib.suppress(OSError):
            confine.journal(server.journal_path, f"shutdown: {why}; sshd stopped",
                            root=server.root)

    def _write_hosts(self) -> None:
        data = self.hosts()
        if data == self._written and self.hosts_file.exists():
            return
        self._mkdir(self.sandbox_dir)
        confine._write_atomic(self.hosts_file, json.dumps(data, indent=1, sort_keys=True),
                              0o600)
        self._written = data


# -------------------------------------------------------------------------------- helpers


def _hostname(inst: Any) -> str:
    ip = getattr(inst, "private_ip_address", None) or getattr(inst, "private_ip", None)
    if isinstance(ip, str) and ip.count(".") == 3:
        return "ip-" + ip.replace(".", "-")
    return "ip-" + inst.id.replace("i-", "")[:8]


def _user_data_text(inst: Any) -> str | None:
    """moto keeps user-data base64-encoded (Base64EncodedString); decode, un-gzip."""
    ud = getattr(inst, "user_data", None)
    if isinstance(ud, list):
        ud = ud[0] if ud else None
    if ud is None:
        return None
    raw = ud if isinstance(ud, (str, bytes)) else str(ud)
    try:
        data = base64.b64decode(raw, validate=False)
    except (binascii.Error, ValueError):
        data = raw.encode() if isinstance(raw, str) else raw
    if data[:2] == b"\x1f\x8b":
        with contextlib.suppress(OSError, EOFError):
            data = gzip.decompress(data)
    return data.decode("utf-8", "replace")


def _generate_ed25519() -> tuple[str, str]:
    from labtui.services.cloudinit import new_host_key

    return new_host_key()


def _write_host_key(root: Path, kind: str, pem: str, key: paramiko.PKey | None = None) -> None:
    key = key or load_private_key(pem)
    ssh = root / "etc" / "ssh"
    ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
    confine._write_atomic(ssh / f"ssh_host_{kind}_key", pem if pem.endswith("\n")
                          else pem + "\n", 0o600)
    confine._write_atomic(ssh / f"ssh_host_{kind}_key.pub",
                          f"{key.get_name()} {key.get_base64()} root@sandbox\n", 0o644)


def _load_host_keys(root: Path) -> list[tuple[str, paramiko.PKey]]:
    out = []
    for kind in _KEY_TYPES:
        path = root / "etc" / "ssh" / f"ssh_host_{kind}_key"
        try:
            out.append((kind, load_private_key(path.read_text())))
        except (OSError, ValueError):
            continue
    return out


def _fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _read_lines(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return []
