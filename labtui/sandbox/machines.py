"""The sandbox's machines: one Linux container per running instance of the in-process moto.

moto runs in the same process (``ThreadedMotoServer``), so the manager reads its EC2
backends directly and reconciles, from one long-lived thread (a machine dies with the thread
that started it, see :mod:`labtui.sandbox.container`):

- a running instance without a machine boots one: the base image plus the instance's own
  layer, its user-data exactly as EC2 holds it handed to the real cloud-init through a NoCloud
  seed (meta-data: instance-id, local-hostname, launch index, the key pair's public key), its
  own loopback address (a new one on every start, like a new public IP; port 22 where it can
  be bound), its own metadata service;
- a stopped instance's machine shuts down and keeps its layer; a terminated (or forgotten,
  after a reset) one is deleted; a rebooted one restarts at the same address;
- a machine that powers itself off (`poweroff`, `shutdown -h now` ...) stops its instance, or
  terminates it when its InstanceInitiatedShutdownBehavior is "terminate", as EC2 does; one
  that reboots itself (`reboot`) boots again at its address, its instance still running.

``SANDBOX_DIR/hosts.json`` (replaced atomically) maps instance id -> {"host", "port",
"region", "state"} for every running machine (a machine that is stopping or being deleted
leaves it before it shuts down); ``instances/<id>/console.log`` is what the
emulator answers to GetConsoleOutput.

CreateImage captures a machine's disk and an instance of that AMI boots with it; CopyImage
and DeregisterImage copy and delete it (``images/``, see :mod:`labtui.sandbox.images`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import random
import shutil
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labtui.sandbox import flavors, images
from labtui.sandbox.container import Container, runtime_problem
from labtui.sandbox.image import BaseImage, host_ca_certs
from labtui.sandbox.imds import MetadataServer, role_credentials
from labtui.state import append_private, write_private

log = logging.getLogger(__name__)
_BOOTS_ATTR = "_labtui_boots"
_REBOOTS_ATTR = "_labtui_reboots"
_patch_lock = threading.Lock()
CONSOLE_LIMIT = 64 * 1024  # EC2 keeps the last 64 KB
# instance id -> console file, for the emulator's GetConsoleOutput (moto state is per process)
CONSOLES: dict[str, Path] = {}
# Held by whoever makes instances in this process that must be configured before they boot
# (the EMR player's RunJobFlow hook tags and keys a cluster's nodes under it): the manager
# lists instances under it, so it never boots a node that is not what EMR would launch.
LAUNCH_LOCK = threading.Lock()
# The exit status of a machine's init (guest/init.py's REBOOT_STATUS) when it was asked to
# reboot from inside; any other exit is a power-off.
GUEST_REBOOT = 82


def install_moto_hooks() -> None:
    """Count starts and reboots of moto's instances, serve their real console, capture and
    copy the images made of them (once)."""
    from moto.core.utils import utcnow
    from moto.ec2.models.instances import Instance
    from moto.ec2.responses.general import General
    from moto.ec2.responses.instances import InstanceResponse
    from moto.ec2.utils import Base64EncodedString

    with _patch_lock:
        if getattr(Instance, "_labtui_hooks", False):
            return
        original_start, original_reboot = Instance.start, Instance.reboot

        def start(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            was_running = getattr(self, "state", None) == "running"
            result = original_start(self, *args, **kwargs)
            if not was_running:
                setattr(self, _BOOTS_ATTR, getattr(self, _BOOTS_ATTR, 0) + 1)
            return result

        def reboot(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            result = original_reboot(self, *args, **kwargs)
            setattr(self, _REBOOTS_ATTR, getattr(self, _REBOOTS_ATTR, 0) + 1)
            return result

        def get_console_output(self):  # type: ignore[no-untyped-def]
            instance = self.ec2_backend.get_instance(self._get_param("InstanceId"))
            return _console_result(instance.id, utcnow(), Base64EncodedString)

        original_dot_value = InstanceResponse._dot_value_instance_attribute_handler

        def dot_value(self):  # type: ignore[no-untyped-def]
            # ModifyInstanceAttribute(InstanceInitiatedShutdownBehavior={"Value": ...}): moto
            # ignores it (and falls through to emptying the security groups)
            value = self._get_param("InstanceInitiatedShutdownBehavior.Value")
            if value is None:
                return original_dot_value(self)
            self.error_on_dryrun()
            self.ec2_backend.modify_instance_attribute(
                self._get_param("InstanceId"), "instance_initiated_shutdown_behavior", value)
            return True

        Instance.start, Instance.reboot = start, reboot
        InstanceResponse._dot_value_instance_attribute_handler = dot_value
        General.get_console_output = get_console_output
        flavors.register_with_moto()  # DescribeImages knows the sandbox's images
        images.install_moto_hooks()  # CreateImage / CopyImage / DeregisterImage play disks
        Instance._labtui_hooks = True


def _console_result(instance_id: str, now: Any, encoded: Any) -> Any:
    from moto.core.responses import ActionResult

    path = CONSOLES.get(instance_id)
    try:
        with open(path, "rb") as f:  # type: ignore[arg-type]
            f.seek(max(0, os.path.getsize(path) - CONSOLE_LIMIT))  # type: ignore[arg-type]
            text = f.read().decode("utf-8", "replace")
    except (OSError, TypeError):
        text = ""
    return ActionResult({"InstanceId": instance_id, "Timestamp": now,
                         "Output": encoded.from_raw_string(text)})


def _count(inst: Any, attr: str) -> int:
    return int(getattr(inst, attr, 0))


def user_data_bytes(inst: Any) -> bytes | None:
    """The user-data as EC2 holds it (moto keeps it base64-encoded), byte for byte: plain,
    gzip or multipart all reach cloud-init as given."""
    ud = getattr(inst, "user_data", None)
    if isinstance(ud, list):
        ud = ud[0] if ud else None
    if ud is None:
        return None
    raw = ud if isinstance(ud, (str, bytes)) else str(ud)
    try:
        return base64.b64decode(raw, validate=False)
    except (binascii.Error, ValueError):
        return raw.encode() if isinstance(raw, str) else raw


class Addresses:
    """Loopback addresses for machines, a new one for every boot (127.100.0.0 and up);
    port 22 where it can be bound (root), else a free port on that address."""

    def __init__(self) -> None:
        self._next = random.randrange(0, 200_000)
        self._lock = threading.Lock()

    def take(self) -> tuple[str, int]:
        with self._lock:
            for _ in range(1000):
                n = self._next
                self._next = (self._next + 1) % 6_000_000
                host = f"127.{100 + n // 62500}.{n // 250 % 250 + 1}.{n % 250 + 1}"
                port = _bindable(host)
                if port:
                    return host, port
        raise OSError("no free loopback address for a sandbox machine")


def _bindable(host: str) -> int | None:
    for port in (22, 0):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return sock.getsockname()[1]
    return None


@dataclass
class Machine:
    instance_id: str
    region: str
    container: Container
    address: tuple[str, int] = ("", 0)
    imds: MetadataServer | None = None
    boots: int = 0
    reboots: int = 0


class MachineManager:
    """Runs and tracks the containers of the sandbox's running instances."""

    def __init__(self, sandbox_dir: Path, endpoint_url: str,
                 account_id: str = "123456789012", poll_interval: float = 0.2,
                 image: BaseImage | None = None) -> None:
        self.sandbox_dir = Path(sandbox_dir)
        self.endpoint_url = endpoint_url
        self.account_id = account_id
        self.poll_interval = poll_interval
        self.hosts_file = self.sandbox_dir / "hosts.json"
        self.image = image or BaseImage()
        self.images = images.ImageStore(self.sandbox_dir / "images")
        self.problem = runtime_problem()
        # what every machine is handed of the host's package setup (read once)
        self._pip_conf, self._ca_certs = host_pip_conf(), host_ca_certs()
        self._machines: dict[str, Machine] = {}
        self._addresses = Addresses()
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._passes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._written: dict[str, Any] | None = None
        self._said: set[str] = set()
        install_moto_hooks()

    # ---------------------------------------------------------------- public

    def start(self) -> None:
        self.sandbox_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Layers of an earlier run belong to instances the emulator no longer knows (its
        # state lives in memory): nothing can start them again, so they go.
        for stale in (self.sandbox_dir / "instances").glob("i-*"):
            shutil.rmtree(stale, ignore_errors=True)
        # and so do images moto does not know (their AMIs died with an earlier emulator)
        self.images.prune(self._image_known, scan=True)
        images.register(self.account_id, self)
        self._stop.clear()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, daemon=True,
                                            name="labtui-sandbox-machines")
            self._thread.start()
        self.sync()

    def stop(self) -> None:
        """Shut every machine down (layers kept), stop reconciling, empty hosts.json."""
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=60)
        self._thread = None
        images.unregister(self.account_id, self)
        with contextlib.suppress(Exception):
            self.images.prune(self._image_known, scan=True)

    def sync(self, timeout: float = 30.0) -> None:
        """Wait until the reconciling thread has made a full pass from now."""
        with self._wake:
            if self._thread is None or not self._thread.is_alive():
                return
            target = self._passes + 2
            self._wake.notify_all()
            self._wake.wait_for(lambda: self._passes >= target or self._stop.is_set(),
                                timeout=timeout)

    def hosts(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {iid: {"host": m.address[0], "port": m.address[1], "region": m.region,
                          "state": "running"}
                    for iid, m in sorted(self._machines.items()) if m.container.running}

    def init_pid(self, instance_id: str) -> int | None:
        """The host's pid of the init of the instance's running machine (None: no machine
        runs for it now)."""
        with self._lock:
            machine = self._machines.get(instance_id)
            if machine is None or not machine.container.running:
                return None
            return machine.container.init_pid()

    def instance_dir(self, instance_id: str) -> Path:
        if not instance_id or "/" in instance_id or instance_id.startswith("."):
            raise ValueError("bad instance id")
        return self.sandbox_dir / "instances" / instance_id

    def capture_image(self, instance: Any, image_id: str) -> None:
        """CreateImage of ``instance`` (called by moto's hooked create_image): its disk as it
        is now, taken with its machine's processes paused, stored as the image's top layer."""
        with self._lock:  # no boot, stop or delete of the machine meanwhile
            machine = self._machines.get(instance.id)
            pid = machine.container.init_pid() if machine is not None else None
            self.images.capture(
                instance.region_name, image_id, instance_id=instance.id,
                folder=self.instance_dir(instance.id),
                fallback=self.images.resolve(instance.region_name, instance.image_id),
                pause=lambda: images.paused(pid))

    def _image_known(self, region: str, image_id: str) -> bool:
        """Whether moto holds the AMI (never makes a backend; a backend being reset keeps
        its images for now)."""
        from moto.ec2.models import ec2_backends

        account = dict.get(ec2_backends, self.account_id)
        backend = dict.get(account, region) if account is not None else None
        if backend is None:
            return False
        held = getattr(backend, "amis", None)
        return held is None or image_id in held

    def __enter__(self) -> MachineManager:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- the loop

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._reconcile()
            except Exception as e:  # keep serving; the next pass may succeed
                log.info("sandbox machines: reconcile failed: %s: %s", type(e).__name__, e)
            with self._wake:
                self._passes += 1
                self._wake.notify_all()
                self._wake.wait(self.poll_interval)
        # Here, in the thread that started them: a machine dies with its starting thread.
        with self._lock:
            self._shutdown(list(self._machines.values()))
            self._machines.clear()
            self._write_hosts()

    def _reconcile(self) -> None:
        instances, unknown_regions = self._instances()
        with self._lock:
            to_stop: list[tuple[Machine, bool]] = []
            for iid, machine in list(self._machines.items()):
                inst = instances.get(iid)
                state = getattr(inst, "state", None)
                if inst is None and machine.region in unknown_regions:
                    continue
                if state == "running":
                    if _count(inst, _BOOTS_ATTR) != machine.boots:
                        to_stop.append((machine, False))       # stopped and started again
                    elif _count(inst, _REBOOTS_ATTR) != machine.reboots:
                        self._reboot(machine, inst)
                    elif (status := machine.container.exited()) is not None:
                        if status == GUEST_REBOOT:
                            self._rebooted_itself(machine, inst)
                        else:
                            self._powered_off(machine, inst)
                    continue
                to_stop.append((machine, state in (None, "terminated", "shutting-down")))
            if to_stop:
                # Out of hosts.json first: nobody logs in to a machine that is going (EC2
                # says "stopping" meanwhile; moto says "stopped" at once).
                for machine, _delete in to_stop:
                    self._machines.pop(machine.instance_id, None)
                self._write_hosts()
                # A stopped machine shuts down as an OS does (its disk is kept); a
                # terminated or vanished one (its disk is deleted next) is powered off.
                self._shutdown([m for m, delete in to_stop if not delete])
                self._shutdown([m for m, delete in to_stop if delete], grace=0.0)
                for machine, delete in to_stop:
                    if delete:
                        CONSOLES.pop(machine.instance_id, None)
                        shutil.rmtree(self.instance_dir(machine.instance_id),
                                      ignore_errors=True)
            for iid, inst in instances.items():
                if getattr(inst, "state", None) == "running" and iid not in self._machines:
                    try:
                        self._boot(inst)
                    except Exception as e:  # one broken machine must not stop the others
                        log.info("sandbox: %s did not boot: %s", iid, e)
                        self._note(iid, f"labtui sandbox: the machine did not boot: {e}")
            self._write_hosts()
            self.images.prune(self._image_known)  # what a reset or a deregister left

    def _instances(self) -> tuple[dict[str, Any], set[str]]:
        from moto.ec2.models import ec2_backends

        found: dict[str, Any] = {}
        unknown: set[str] = set()
        # dict.get / dict.items: never trigger moto's lazy creation of accounts or regions.
        account = dict.get(ec2_backends, self.account_id)
        if account is None:
            return found, unknown
        with LAUNCH_LOCK:  # no instance half made (an EMR node not yet tagged and keyed)
            for region, backend in list(dict.items(account)):
                try:
                    for inst in list(backend.all_instances()):
                        found[inst.id] = inst
                except RuntimeError:  # moto changed the dict under us; try again next pass
                    unknown.add(region)
        return found, unknown

    # ---------------------------------------------------------------- one machine

    def _note(self, iid: str, text: str) -> None:
        """A line on the instance's console (once per text)."""
        if (iid, text) in self._said:
            return
        self._said.add((iid, text))  # type: ignore[arg-type]
        folder = self.instance_dir(iid)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        CONSOLES[iid] = folder / "console.log"
        append_private(folder / "console.log", text + "\n")

    def _boot(self, inst: Any, address: tuple[str, int] | None = None) -> None:
        iid = inst.id
        if self.problem:
            self._note(iid, f"labtui sandbox: no machine: {self.problem}")
            return
        folder = self.instance_dir(iid)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        CONSOLES[iid] = folder / "console.log"
        base = self.image.ensure(lambda line: self._note(iid, f"labtui sandbox: {line}"))
        launched = self.images.launch(folder, inst.region_name, inst.image_id)
        flavor = launched.flavor
        host, port = address or self._addresses.take()
        machine = Machine(iid, inst.region_name, Container(folder, base, launched.layers),
                          (host, port),
                          boots=_count(inst, _BOOTS_ATTR), reboots=_count(inst, _REBOOTS_ATTR))
        account = inst.owner_id
        machine.imds = MetadataServer(
            host, instance=lambda: self._live(inst.region_name, iid),
            credentials=lambda role: role_credentials(account, role)).start()
        hostname = _hostname(inst)
        env = {"AWS_ENDPOINT_URL": self.endpoint_url,
               "AWS_EC2_METADATA_SERVICE_ENDPOINT": machine.imds.endpoint,
               "AWS_DEFAULT_REGION": inst.region_name,
               # the machines share the host's loopback: a service EC2 would bind to
               # 127.0.0.1 (labtui's notebook server) binds to the machine's own address
               "LABTUI_SANDBOX_LOOPBACK": host}
        machine.container.boot(
            hostname=hostname,
            boot={"instance_id": iid, "address": host, "port": port, "env": env,
                  "image": _image_label(inst.image_id, flavor, launched.layers),
                  "pip_conf": self._pip_conf, "ca_certs": self._ca_certs},
            user_data=user_data_bytes(inst) or b"",
            meta_data=self._meta_data(inst, hostname),
            cloud_config=flavors.cloud_config(flavor))
        self._machines[iid] = machine

    def _meta_data(self, inst: Any, hostname: str) -> dict[str, Any]:
        meta: dict[str, Any] = {"instance-id": inst.id, "local-hostname": hostname,
                                "ami-launch-index": int(inst.ami_launch_index or 0)}
        key_name = getattr(inst, "key_name", None)
        pair = inst.ec2_backend.key_pairs.get(key_name) if key_name else None
        material = getattr(pair, "material_public", None)
        if material:
            line = material.decode() if isinstance(material, bytes) else str(material)
            meta["public-keys"] = [line.strip()]
        return meta

    def _live(self, region: str, iid: str) -> Any:
        """The instance as moto holds it now (None once gone): its own region only."""
        from moto.ec2.models import ec2_backends

        account = dict.get(ec2_backends, self.account_id)
        backend = dict.get(account, region) if account is not None else None
        if backend is None:
            return None
        for inst in list(backend.all_instances()):
            if inst.id == iid:
                return inst
        return None

    def _reboot(self, machine: Machine, inst: Any) -> None:
        self._shutdown([machine])
        self._machines.pop(machine.instance_id, None)
        self._note_boot(machine.instance_id)
        self._boot(inst, address=machine.address)

    def _note_boot(self, iid: str) -> None:
        with contextlib.suppress(OSError):
            append_private(self.instance_dir(iid) / "console.log", "labtui sandbox: rebooting\n")

    def _rebooted_itself(self, machine: Machine, inst: Any) -> None:
        """The OS rebooted (`reboot` inside): on EC2 the instance stays running and boots
        again, at the same address."""
        self._reboot(machine, inst)

    def _powered_off(self, machine: Machine, inst: Any) -> None:
        """The OS shut itself down: EC2 stops the instance, or terminates it when its
        InstanceInitiatedShutdownBehavior says so (even with DisableApiTermination, as
        EC2 does); a terminated instance's disk is deleted."""
        self._shutdown([machine])
        iid = machine.instance_id
        self._machines.pop(iid, None)
        terminate = getattr(inst, "instance_initiated_shutdown_behavior", None) == "terminate"
        with contextlib.suppress(Exception):
            if terminate:
                inst.terminate()
            else:
                inst.stop()
            from moto.ec2.models.instances import StateReason

            code = "Client.InstanceInitiatedShutdown"
            inst.state_reason = StateReason(f"{code}: Instance initiated shutdown", code)
        if terminate:
            CONSOLES.pop(iid, None)
            shutil.rmtree(self.instance_dir(iid), ignore_errors=True)

    def _shutdown(self, machines: list[Machine], grace: float | None = None) -> None:
        def one(machine: Machine) -> None:
            with contextlib.suppress(Exception):
                if grace is None:
                    machine.container.shutdown()
                else:
                    machine.container.shutdown(grace=grace)
            if machine.imds is not None:
                with contextlib.suppress(Exception):
                    machine.imds.close()
        if len(machines) == 1:
            one(machines[0])
        elif machines:
            with ThreadPoolExecutor(max_workers=min(16, len(machines))) as pool:
                list(pool.map(one, machines))

    def _write_hosts(self) -> None:
        data = self.hosts()
        if data == self._written and self.hosts_file.exists():
            return
        write_private(self.hosts_file, json.dumps(data, indent=1, sort_keys=True))
        self._written = data


def host_pip_conf() -> str | None:
    """The host's pip index settings (http/https only: a local path of the host means nothing
    on the machine), as a pip.conf for the machine; None when the host uses pip's default."""
    import configparser

    parser = configparser.ConfigParser()
    parser.read([Path("/etc/pip.conf"), Path("/etc/xdg/pip/pip.conf"),
                 Path.home() / ".config/pip/pip.conf", Path.home() / ".pip/pip.conf"])

    def setting(env: str, key: str) -> list[str]:
        value = os.environ.get(env) or parser.get("global", key, fallback="")
        return [v for v in value.split() if v.startswith(("http://", "https://"))]

    index, extra = setting("PIP_INDEX_URL", "index-url"), setting("PIP_EXTRA_INDEX_URL",
                                                                     "extra-index-url")
    trusted = (os.environ.get("PIP_TRUSTED_HOST")
               or parser.get("global", "trusted-host", fallback="")).split()
    if not index and not extra:
        return None
    lines = ["# the package index of the host that runs the sandbox", "[global]"]
    if index:
        lines.append(f"index-url = {index[0]}")
    if extra:
        lines.append("extra-index-url = " + " ".join(extra))
    if trusted:
        lines.append("trusted-host = " + " ".join(trusted))
    return "\n".join(lines) + "\n"


def _image_label(image_id: str | None, flavor: flavors.Flavor, layers: tuple) -> str:
    if layers:
        return f"{image_id} (an image of a {flavor.name} machine) played by {flavors.PLAYED_BY}"
    return f"{flavor.name} played by {flavors.PLAYED_BY}"


def _hostname(inst: Any) -> str:
    ip = getattr(inst, "private_ip", None)
    if isinstance(ip, str) and ip.count(".") == 3:
        return "ip-" + ip.replace(".", "-")
    return "ip-" + inst.id.replace("i-", "")[:8]
