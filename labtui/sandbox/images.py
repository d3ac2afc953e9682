"""The sandbox's own AMIs: the disk a CreateImage captured, played again by the machines.

On EC2, CreateImage snapshots an instance's EBS volumes and registers an AMI over them; an
instance launched from that AMI gets a fresh volume made from the snapshot, so it boots with
the files of the machine the image was made from. moto only records the AMI. Here the
machine's disk is an overlayfs layer (``upper/`` of its instance folder, see
:mod:`labtui.sandbox.container`) over the base image, so an image is a stack of layers:

- **CreateImage** (moto's ``create_image``, hooked by :func:`install_moto_hooks`) copies the
  instance's upper layer (``cp -a``: owners, modes, xattrs, symlinks, overlayfs whiteouts;
  no device nodes, no sockets, not what the sandbox hands a machine at each boot: the NoCloud
  seed, its cloud-init settings file, resolv.conf) on top of the layers the instance itself
  was launched from. A running machine is captured as it runs, without the reboot EC2 does
  unless NoReboot: its processes are paused (SIGSTOP) and its filesystem synced for the copy,
  then they go on. The image keeps the flavor of the image the instance came from (login
  user, architecture, root device), so an image of an ubuntu-24.04 machine logs in as
  ``ubuntu``. moto makes the image ``available`` at once and the capture is done before
  CreateImage answers (AWS says ``pending`` for minutes first): the ``image_available``
  waiter passes on its first look. A capture that fails leaves the image ``failed``.
- **RunInstances** from such an AMI: at the instance's first boot its image's layers are
  hard-linked (``cp -al``; copied where hard links cannot be made) into its own folder, like
  the fresh EBS volume EC2 makes from the snapshot, and the machine boots with
  ``lowerdir=lower/0:lower/1:...:base`` and its own empty upper. cloud-init runs as on any new
  instance (a new instance-id in the seed): per-instance modules again, host keys replaced by
  the machine's own, the login user's settings.
- **CopyImage** hard-links the layers to the new AMI id in the destination region;
  **DeregisterImage** deletes the AMI's folder at once. Layers are never written after the
  capture, so hard links share them safely: an instance launched from an image keeps its own
  links and runs (stops, starts) on after the image is deregistered, as on EC2. Snapshots are
  moto's records; DeleteSnapshot deletes them (refused while an AMI uses one, as on AWS).
- moto itself gets what CreateImage does on AWS: one snapshot per EBS volume of the
  instance, with that volume's size and the ``snapshot`` TagSpecifications (moto raises
  NotImplementedError on those), named in the image's BlockDeviceMappings under the image's
  root device name; CopyImage makes new snapshots of the same sizes in its region.

The store, ``SANDBOX_DIR/images`` (0700 folders)::

    images/<region>/<ami-id>/image.json   {"image_id", "region", "flavor": {...}, "layers": n,
                                           "source_instance" or "source_image", "created"}
    images/<region>/<ami-id>/layers/0     the captured instance's upper layer (top)
    images/<region>/<ami-id>/layers/1...  the layers of the image that instance came from
    instances/<id>/image.json, lower/0... what an instance was launched from (first boot)

moto's state lives in memory, so the folders of AMIs moto no longer knows (after a reset,
in a new sandbox process) are deleted on the manager's next pass, when it starts and when it
stops. Nothing here is called by labtui itself: boto3's create_image, copy_image and
deregister_image are the interface.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import logging
import os
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from labtui.sandbox import flavors
from labtui.sandbox.flavors import Flavor
from labtui.state import write_private

log = logging.getLogger(__name__)
RECORD = "image.json"
# What the sandbox writes into a machine at every boot (launch.sh): EC2 hands it over, it is
# not on the disk an image captures.
RUNTIME_ONLY = (
    "var/lib/cloud/seed/nocloud/user-data",
    "var/lib/cloud/seed/nocloud/meta-data",
    "etc/cloud/cloud.cfg.d/90_labtui_sandbox.cfg",
    "etc/resolv.conf",
)
# overlayfs' bookkeeping about the upper it was written in (origins of copied-up files),
# meaningless in a lower layer; opaque directories, redirects and metacopy stay.
_DROPPED_XATTRS = ("trusted.overlay.origin", "trusted.overlay.impure", "trusted.overlay.nlink",
                   "trusted.overlay.upper", "trusted.overlay.uuid")
_patch_lock = threading.Lock()


class ImageHost(Protocol):
    """What the hooks need of the sandbox's machines (:class:`MachineManager`)."""

    images: ImageStore

    def capture_image(self, instance: Any, image_id: str) -> None: ...


# account -> the managers serving it, newest last: a private sandbox started (and stopped)
# while another runs in the same process must not take the images of the other away
HOSTS: dict[str, list[ImageHost]] = {}


def host_of(account: str) -> ImageHost | None:
    hosts = HOSTS.get(account)
    return hosts[-1] if hosts else None


def register(account: str, host: ImageHost) -> None:
    hosts = HOSTS.setdefault(account, [])
    if host not in hosts:
        hosts.append(host)


def unregister(account: str, host: ImageHost) -> None:
    hosts = HOSTS.get(account, [])
    if host in hosts:
        hosts.remove(host)


@dataclasses.dataclass(frozen=True)
class Launch:
    """What a machine boots from: its flavor and its image's layers (top first)."""

    flavor: Flavor
    layers: tuple[Path, ...] = ()


def flavor_json(flavor: Flavor) -> dict[str, str]:
    return dataclasses.asdict(flavor)


def flavor_of(data: Any) -> Flavor | None:
    if not isinstance(data, dict):
        return None
    fields = {f.name for f in dataclasses.fields(Flavor)}
    try:
        return Flavor(**{k: str(v) for k, v in data.items() if k in fields})
    except TypeError:
        return None


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _safe(name: str) -> str:
    if not name or "/" in name or name.startswith(".") or ":" in name or "," in name:
        raise ValueError(f"bad name for the image store: {name!r}")
    return name


class ImageStore:
    """The layers of the sandbox's AMIs, under ``root`` (``SANDBOX_DIR/images``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.RLock()
        self._known: set[tuple[str, str]] = set()  # (region, ami) with a folder here

    def path(self, region: str, image_id: str) -> Path:
        return self.root / _safe(region) / _safe(image_id)

    def images(self) -> list[tuple[str, str]]:
        """(region, ami) of every image in the store."""
        with self._lock:
            return sorted(self._known)

    def load(self) -> None:
        """Know the images already on disk (and drop half-written ones)."""
        with self._lock:
            self._known.clear()
            for region in self._regions():
                for folder in list(region.iterdir()):
                    if folder.name.startswith("."):
                        shutil.rmtree(folder, ignore_errors=True)
                    elif (folder / RECORD).is_file():
                        self._known.add((region.name, folder.name))
                    else:
                        shutil.rmtree(folder, ignore_errors=True)

    def _regions(self) -> list[Path]:
        try:
            return [p for p in self.root.iterdir() if p.is_dir()]
        except OSError:
            return []

    def record(self, region: str, image_id: str) -> dict[str, Any] | None:
        with self._lock:
            if (region, image_id) not in self._known:
                return None
            return _read(self.path(region, image_id) / RECORD)

    def resolve(self, region: str, image_id: str | None) -> Launch:
        """What an instance of that AMI in that region boots from: a stored image's flavor
        and layers, else the sandbox's plain image of that id (flavors.of_image)."""
        if image_id:
            with self._lock:
                data = self.record(region, image_id)
                flavor = flavor_of(data.get("flavor")) if data else None
                if data is not None and flavor is not None:
                    folder = self.path(region, image_id) / "layers"
                    count = int(data.get("layers", 0))
                    return Launch(flavor, tuple(folder / str(i) for i in range(count)))
        return Launch(flavors.of_image(image_id))

    # ------------------------------------------------------------ an instance's disk

    def launch(self, folder: Path, region: str, image_id: str | None) -> Launch:
        """What the instance whose folder this is boots from. The first time, its image's
        layers are linked into ``folder/lower`` and recorded in ``folder/image.json``; later
        boots (a start after a stop) use those, whatever became of the image."""
        mine = instance_launch(folder)
        if mine is not None:
            return mine
        with self._lock:
            source = self.resolve(region, image_id)
            staging = folder / ".lower"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(mode=0o700, parents=True)
            for i, layer in enumerate(source.layers):
                link_tree(layer, staging / str(i))
        shutil.rmtree(folder / "lower", ignore_errors=True)
        staging.rename(folder / "lower")
        write_private(folder / RECORD, json.dumps({
            "image_id": image_id, "region": region, "flavor": flavor_json(source.flavor),
            "layers": len(source.layers)}))
        return Launch(source.flavor,
                      tuple(folder / "lower" / str(i) for i in range(len(source.layers))))

    def capture(self, region: str, image_id: str, *, instance_id: str, folder: Path,
                fallback: Launch, pause: Callable[[], contextlib.AbstractContextManager[Any]]
                ) -> Path:
        """Store the image ``image_id`` made of the instance whose folder this is: its upper
        layer (copied under ``pause``) over the layers it was launched from."""
        launched = instance_launch(folder) or fallback
        with self._staging(region, image_id) as staging:
            upper = folder / "upper"
            if upper.is_dir():
                with pause():
                    _syncfs(upper)
                    copy_layer(upper, staging / "layers" / "0")
            else:  # no machine ever ran: the volume is the image's as launched
                (staging / "layers" / "0").mkdir(mode=0o755)
            for i, layer in enumerate(launched.layers, start=1):
                link_tree(layer, staging / "layers" / str(i))
            write_private(staging / RECORD, json.dumps({
                "image_id": image_id, "region": region, "source_instance": instance_id,
                "flavor": flavor_json(launched.flavor), "layers": 1 + len(launched.layers),
                "created": time.time()}, indent=1))
        return self.path(region, image_id)

    def copy(self, source_region: str, source_id: str, region: str, image_id: str,
             flavor: Flavor | None = None) -> Path | None:
        """CopyImage: the source's layers, linked, under the new id (a copy of a plain
        sandbox image records its flavor only). None when there is nothing to record."""
        with self._lock:
            data = self.record(source_region, source_id)
            if data is None and flavor is None:
                return None
            with self._staging(region, image_id) as staging:
                count = int(data.get("layers", 0)) if data else 0
                for i in range(count):
                    link_tree(self.path(source_region, source_id) / "layers" / str(i),
                              staging / "layers" / str(i))
                kept = data["flavor"] if data else flavor_json(flavor)  # type: ignore[arg-type]
                record = {"image_id": image_id, "region": region,
                          "source_image": f"{source_region}/{source_id}",
                          "flavor": kept, "layers": count, "created": time.time()}
                write_private(staging / RECORD, json.dumps(record, indent=1))
            return self.path(region, image_id)

    @contextlib.contextmanager
    def _staging(self, region: str, image_id: str) -> Iterator[Path]:
        """A private folder to build the image in: when the block ends well it becomes the
        image (replacing one of that id, under the lock); either way the staging goes."""
        target = self.path(region, image_id)
        staging = target.parent / f".{image_id}.{os.getpid()}.{threading.get_ident()}"
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "layers").mkdir(mode=0o700, parents=True)
        os.chmod(target.parent, 0o700)
        os.chmod(self.root, 0o700)
        try:
            yield staging
            with self._lock:
                shutil.rmtree(target, ignore_errors=True)
                staging.rename(target)
                self._known.add((region, image_id))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def remove(self, region: str, image_id: str) -> None:
        with self._lock:
            self._known.discard((region, image_id))
            with contextlib.suppress(ValueError):
                shutil.rmtree(self.path(region, image_id), ignore_errors=True)

    def prune(self, known: Callable[[str, str], bool], *, scan: bool = False) -> list[str]:
        """Delete the images moto no longer knows (``known(region, ami)`` says); ``scan``
        looks at the folders on disk too, not only at the images this store made."""
        with self._lock:
            if scan:
                self.load()
            gone = [(r, i) for r, i in self._known if not known(r, i)]
            for region, image_id in gone:
                self.remove(region, image_id)
            for region in self._regions():
                with contextlib.suppress(OSError):
                    region.rmdir()  # only when empty
            return [f"{r}/{i}" for r, i in sorted(gone)]


def instance_launch(folder: Path) -> Launch | None:
    """What an instance was launched from, as recorded at its first boot."""
    data = _read(folder / RECORD)
    flavor = flavor_of(data.get("flavor")) if data else None
    if data is None or flavor is None:
        return None
    count = int(data.get("layers", 0))
    return Launch(flavor, tuple(folder / "lower" / str(i) for i in range(count)))


# ------------------------------------------------------------------ copying layers


def copy_layer(source: Path, target: Path) -> None:
    """A machine's upper layer as an image layer: ``cp -a`` (owners, modes, times, xattrs,
    symlinks, hard links, whiteouts), then without device nodes, sockets, overlayfs'
    bookkeeping of the upper and what the sandbox writes at each boot."""
    _cp(["-a"], source, target)
    for rel in RUNTIME_ONLY:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target / rel)
    clean_layer(target)


def clean_layer(root: Path) -> None:
    _drop_xattrs(root)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            mode = os.lstat(path)
            if stat.S_ISSOCK(mode.st_mode) or stat.S_ISBLK(mode.st_mode) or (
                    stat.S_ISCHR(mode.st_mode) and mode.st_rdev != 0):
                os.unlink(path)  # a char device 0/0 is a whiteout: a deleted file, kept
                continue
            if not stat.S_ISLNK(mode.st_mode):
                _drop_xattrs(Path(path))


def _drop_xattrs(path: Path) -> None:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return
    for name in names:
        if name in _DROPPED_XATTRS:
            with contextlib.suppress(OSError):
                os.removexattr(path, name, follow_symlinks=False)


def link_tree(source: Path, target: Path) -> None:
    """``target`` as ``source``'s twin: hard links (layers are never written), a copy where
    links cannot be made (another filesystem)."""
    try:
        _cp(["-a", "-l"], source, target)
    except OSError:
        shutil.rmtree(target, ignore_errors=True)
        _cp(["-a"], source, target)


def _cp(options: list[str], source: Path, target: Path) -> None:
    proc = subprocess.run(["cp", *options, "--no-target-directory", "--", str(source),
                           str(target)], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=600)
    if proc.returncode != 0:
        raise OSError(f"cp {' '.join(options)} {source} failed: {proc.stderr.strip()[-300:]}")


def _syncfs(path: Path) -> None:
    """Flush the filesystem ``path`` is on (syncfs(2)); every filesystem where it is missing."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syncfs(fd) != 0:
            os.sync()
    except (OSError, AttributeError):
        os.sync()
    finally:
        os.close(fd)


# ------------------------------------------------------------------ pausing a machine


@contextlib.contextmanager
def paused(init_pid: int | None, timeout: float = 5.0) -> Iterator[None]:
    """Every process of the machine whose init this is stopped (SIGSTOP) for the block, then
    continued: a copy of its disk taken meanwhile is one moment of it."""
    if init_pid is None:
        yield
        return
    try:
        namespace = os.readlink(f"/proc/{init_pid}/ns/pid")
    except OSError:
        yield
        return
    stopped: list[int] = []
    try:
        for _ in range(10):  # until no process forked meanwhile is left running
            fresh = [p for p in _pids_in(namespace) if p not in stopped]
            if not fresh:
                break
            for pid in fresh:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 19)  # SIGSTOP
                    stopped.append(pid)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not all(_stopped(p) for p in fresh):
                time.sleep(0.01)
        yield
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 18)  # SIGCONT


def _pids_in(namespace: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{entry.name}/ns/pid") == namespace:
                    found.append(int(entry.name))
    return found


def _stopped(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # gone
    return text.rsplit(")", 1)[-1].split()[0] in ("T", "t", "Z", "X")


# ------------------------------------------------------------------ moto


def install_moto_hooks() -> None:
    """Make moto's CreateImage, CopyImage and DeregisterImage do what AWS does to the disks
    (once per process); called by :func:`labtui.sandbox.machines.install_moto_hooks`."""
    from moto.ec2.models.amis import Ami, AmiBackend

    with _patch_lock:
        if getattr(AmiBackend, "_labtui_images", False):
            return
        original_create = AmiBackend.create_image
        original_copy = AmiBackend.copy_image
        original_deregister = AmiBackend.deregister_image
        original_mappings = Ami.block_device_mappings

        def create_image(self, instance_id, name, description,  # type: ignore[no-untyped-def]
                         tag_specifications):
            specs = list(tag_specifications or [])
            snapshot_tags = [tag for spec in specs if spec.get("ResourceType") == "snapshot"
                             for tag in spec.get("Tags", [])]
            rest = [spec for spec in specs if spec.get("ResourceType") != "snapshot"]
            ami = original_create(self, instance_id, name, description,
                                  tag_specifications=rest)
            instance = self.get_instance(instance_id)
            ami.root_device_name = instance.root_device_name
            ami.root_device_type = "ebs"
            _snapshot_volumes(self, ami, instance, snapshot_tags)
            host = host_of(self.account_id)
            if host is not None:
                try:
                    host.capture_image(instance, ami.id)
                except Exception as e:  # AWS reports a failed image, not a failed call
                    log.info("sandbox: the image %s of %s failed: %s", ami.id, instance_id, e)
                    ami.state = "failed"
            return ami

        def copy_image(self, source_image_id, source_region,  # type: ignore[no-untyped-def]
                       name=None, description=None):
            from moto.ec2.models import ec2_backends

            ami = original_copy(self, source_image_id, source_region, name, description)
            source = ec2_backends[self.account_id][source_region].amis.get(source_image_id)
            if source is not None:
                ami.root_device_name = source.root_device_name
                ami.root_device_type = source.root_device_type
                _copy_snapshots(self, ami, source, source_region)
            host = host_of(self.account_id)
            if host is not None:
                plain = flavors.BY_IMAGE.get(source_image_id)
                host.images.copy(source_region, source_image_id, self.region_name, ami.id,
                                 flavor=plain)
            return ami

        def deregister_image(self, ami_id):  # type: ignore[no-untyped-def]
            original_deregister(self, ami_id)
            host = host_of(self.account_id)
            if host is not None:
                host.images.remove(self.region_name, ami_id)

        def block_device_mappings(self):  # type: ignore[no-untyped-def]
            mine = getattr(self, "_labtui_mappings", None)
            return mine if mine is not None else original_mappings.fget(self)

        AmiBackend.create_image = create_image
        AmiBackend.copy_image = copy_image
        AmiBackend.deregister_image = deregister_image
        Ami.block_device_mappings = property(block_device_mappings)
        AmiBackend._labtui_images = True


def _replace_snapshots(backend: Any, ami: Any, mappings: list[dict[str, Any]]) -> None:
    """The image's own snapshots instead of the one moto made of a blank 15 GiB volume."""
    if not mappings:
        return
    backend.snapshots.pop(ami.ebs_snapshot.id, None)
    root = next((m for m in mappings if m["DeviceName"] == ami.root_device_name), mappings[0])
    ami.ebs_snapshot = backend.snapshots[root["Ebs"]["SnapshotId"]]
    ami._labtui_mappings = mappings


def _snapshot_volumes(backend: Any, ami: Any, instance: Any,
                      tags: list[dict[str, str]]) -> None:
    """One snapshot per EBS volume of the instance, as CreateImage makes them on AWS."""
    devices = dict(instance.block_device_mapping.items())
    root_volume = instance.root_device_name if instance.root_device_name in devices \
        else "/dev/sda1"  # where moto attaches every instance's root volume
    mappings = []
    for device, attached in sorted(devices.items(), key=lambda d: d[0] != root_volume):
        volume = backend.get_volume(attached.volume_id)
        snapshot = backend.create_snapshot(
            volume.id, f"Created by CreateImage({instance.id}) for {ami.id}",
            ami.owner_id, from_ami=ami.id)
        for tag in tags:
            snapshot.add_tag(tag["Key"], tag["Value"])
        mappings.append({
            "DeviceName": ami.root_device_name if device == root_volume else device,
            "Ebs": {"SnapshotId": snapshot.id, "VolumeSize": volume.size,
                    "DeleteOnTermination": bool(attached.delete_on_termination),
                    "VolumeType": volume.volume_type or "gp2",
                    "Encrypted": bool(volume.encrypted)}})
    _replace_snapshots(backend, ami, mappings)


def _copy_snapshots(backend: Any, ami: Any, source: Any, source_region: str) -> None:
    """CopyImage copies the image's snapshots into its region (new ids, same sizes)."""
    mappings = []
    zone = backend.region_name + "a"
    for mapping in source.block_device_mappings:
        ebs = mapping.get("Ebs")
        if not ebs:
            continue
        volume = backend.create_volume(size=int(ebs.get("VolumeSize") or 8), zone_name=zone)
        snapshot = backend.create_snapshot(
            volume.id, f"Copied for DestinationAmi {ami.id} from SourceAmi {source.id} for "
            f"SourceSnapshot {ebs.get('SnapshotId')} ({source_region})", ami.owner_id,
            from_ami=ami.id)
        backend.delete_volume(volume.id)
        mappings.append({"DeviceName": mapping["DeviceName"],
                         "Ebs": {**ebs, "SnapshotId": snapshot.id}})
    _replace_snapshots(backend, ami, mappings)
