"""Seat machines: launch one per seat, stop/start/reboot/terminate, console output.

Every seat gets its own ``run_instances`` call (MinCount = MaxCount = 1), run
``LAUNCH_CONCURRENCY`` at a time, with its own user-data (cloud-init installing that
machine's host key and no other) and its course, seat and Name tags from the first moment
(TagSpecifications on the instance, its volume and its spot request), so there is never an
untagged seat machine.

Each call carries a ClientToken derived from (course, seat, incarnation), the incarnation
being the id of the seat's most recent terminated machine in that region, or "first". A
retried call, a rerun after Ctrl-C and a second ``labtui up`` running at the same time all
send the same token, and EC2 makes one machine for it:

- the same request again (a retry) returns the same instance;
- another run's request (its own random host key, so other user-data) fails with
  IdempotentParameterMismatch: the seat's machine exists already and is found by its tags;
- a token whose instance has been terminated returns that terminated instance (or, once EC2
  no longer lists it, a mismatch with nothing to find): the next token is derived from it.

Whichever run created a machine, the pinned host key is read back from the instance's own
user-data, never taken from what this run generated. The first seat of each region is
launched alone, so a zone without capacity is found once and the other seats go straight to
the next zone or region.

A zone without capacity (InsufficientInstanceCapacity ...) sends a seat to the region's next
zone; a quota refusal (VcpuLimitExceeded, InstanceLimitExceeded) is the whole region's, so it
sends the seat to the course's next region, and a seat moving there takes its vCPUs from
that region's headroom (its quota, less what runs there and what its own seats still
launch): the seats that fit launch, the rest are named with the quota they need. Since every
seat is its own call, one refused seat never takes the others down with it.

The image comes from the AMI (DescribeImages): its architecture must be the instance
type's (an arm64 image for t4g, m7g ...; names such as ``ubuntu-24.04`` resolve to the
architecture's own image), and ``disk_gb`` sizes its root volume under the AMI's own
RootDeviceName (``/dev/sda1`` on Ubuntu, ``/dev/xvda`` on Debian and Amazon Linux), so the
root grows instead of an empty extra volume being attached.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from dataclasses import dataclass, field
from typing import Any

from labtui.course import Course
from labtui.errors import AwsError, InputError
from labtui.events import EventSink, LogLine, NullSink, Problem, Progress, SeatChanged
from labtui.policy import profile_name
from labtui.services import cloudinit, images, quotas, retries, tags
from labtui.services.aws import Aws, translate_errors
from labtui.services.hostkeys import HostKey
from labtui.services.instance_types import vcpus
from labtui.services.inventory import LIVE_STATES, Machine
from labtui.services.network import RegionNetwork
from labtui.state import CourseState, read_json, write_json

# Errors that mean "not in this zone, try the next one", not "the class failed".
ZONE_ERRORS = frozenset({
    "InsufficientInstanceCapacity", "InsufficientHostCapacity", "SpotMaxPriceTooLow",
    "InsufficientCapacity", "Unsupported",
})
# A quota is the region's: every zone of it refuses alike, so the seat tries the next region.
QUOTA_ERRORS = frozenset({
    "VcpuLimitExceeded", "InstanceLimitExceeded", "MaxSpotInstanceCountExceeded",
})
CAPACITY_ERRORS = ZONE_ERRORS | QUOTA_ERRORS
GONE_STATES = ("shutting-down", "terminated")
LAUNCH_CONCURRENCY = 16   # run_instances calls in flight at once
PROFILE_ATTEMPTS = 6      # RunInstances asked again while a new profile propagates or EC2 is busy
MAX_TOKENS = 8            # fresh ClientTokens tried for one seat before giving up

# Public SSM parameters naming the current image in every region; {arch} is the
# architecture as each publisher spells it.
_DEBIAN_ARCH = {"x86_64": "amd64", "arm64": "arm64"}
AMI_PARAMETERS: dict[str, tuple[str, dict[str, str]]] = {
    "ubuntu-24.04": ("/aws/service/canonical/ubuntu/server/24.04/stable/current/{arch}/hvm/"
                     "ebs-gp3/ami-id", _DEBIAN_ARCH),
    "ubuntu-22.04": ("/aws/service/canonical/ubuntu/server/22.04/stable/current/{arch}/hvm/"
                     "ebs-gp2/ami-id", _DEBIAN_ARCH),
    "debian-12": ("/aws/service/debian/release/12/latest/{arch}", _DEBIAN_ARCH),
    "amazon-linux-2023": ("/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-"
                          "{arch}", {"x86_64": "x86_64", "arm64": "arm64"}),
}
_architectures: dict[tuple[str, str], str] = {}
_architectures_lock = threading.Lock()


def all_course_instances(aws: Aws, course_id: str, region: str,
                         states: Sequence[str] = LIVE_STATES) -> list[dict[str, Any]]:
    """Every instance tagged with the course in ``region`` (seat machines and others)."""
    filters = tags.course_filter(course_id) + [
        {"Name": "instance-state-name", "Values": list(states)}]
    return [i for r in aws.paginate("ec2", region, "describe_instances", "Reservations",
                                    Filters=filters) for i in r["Instances"]]


def to_machine(instance: dict[str, Any], region: str, seat: str) -> Machine:
    return Machine(instance_id=instance["InstanceId"], seat=seat, region=region,
                   state=instance["State"]["Name"], instance_type=instance["InstanceType"],
                   public_ip=instance.get("PublicIpAddress"),
                   launched=str(instance.get("LaunchTime", "")), raw=instance)


def user_data(aws: Aws, region: str, instance_id: str) -> str | None:
    with translate_errors(f"ec2.DescribeInstanceAttribute {instance_id}"):
        reply = aws.client("ec2", region).describe_instance_attribute(
            InstanceId=instance_id, Attribute="userData")
    value = reply.get("UserData", {}).get("Value")
    return base64.b64decode(value).decode("utf-8", "replace") if value else None


def seat_tags(course_id: str, seat: str) -> list[dict[str, str]]:
    """The tags of a seat's machine (and its volume and spot request), set at launch."""
    return tags.tags(course_id, seat) + [{"Key": "Name", "Value": f"labtui-{course_id}-{seat}"}]


def machine_user_data(course: Course, key: HostKey,
                      boot: cloudinit.SeatBoot | None = None) -> str:
    """One machine's cloud-init user-data: its own host key, password login on or off, and
    with ``boot`` the seat's setup at boot (never a secret: user-data is readable)."""
    password = course.machines is not None and course.machines.login == "password"
    text = cloudinit.user_data(key.private_openssh(), key.public_line,
                               boot.authorized_keys if boot else (),
                               extra={"ssh_pwauth": password,
                                      **(boot.cloud_config if boot else {})})
    if len(text.encode()) > cloudinit.USER_DATA_MOST:
        raise InputError(f"{course.path}: the machines' user-data would be "
                         f"{len(text.encode())} bytes, over EC2's {cloudinit.USER_DATA_MOST}. "
                         "Fix: smaller or fewer [[machines.files]] (they travel in it, "
                         'compressed), or setup_mode = "ssh"')
    return text


def spot_market(max_price: float | None, *, persistent: bool) -> dict[str, Any]:
    """RunInstances' InstanceMarketOptions for spot: persistent and stopped when reclaimed
    (a seat's machine), or one-time and terminated (a job's worker)."""
    options: dict[str, Any] = (
        {"SpotInstanceType": "persistent", "InstanceInterruptionBehavior": "stop"} if persistent
        else {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"})
    if max_price is not None:
        options["MaxPrice"] = f"{max_price:.4f}"
    return {"MarketType": "spot", "SpotOptions": options}


def client_token(course_id: str, seat: str, incarnation: str, salt: int = 0) -> str:
    """The ClientToken of a seat's launch: the same for every run that launches the same
    incarnation of the seat (at most 64 ASCII characters, as EC2 requires)."""
    text = f"{course_id}|{seat}|{incarnation}" + (f"|{salt}" if salt else "")
    return "labtui-" + hashlib.sha256(text.encode()).hexdigest()[:48]


def incarnations(aws: Aws, course_id: str, region: str) -> dict[str, str]:
    """Seat -> id of its most recent terminated (or shutting-down) machine in ``region``."""
    latest: dict[str, tuple[str, str]] = {}
    for instance in all_course_instances(aws, course_id, region, GONE_STATES):
        seat = tags.as_dict(instance.get("Tags")).get(tags.SEAT)
        if seat is None:
            continue
        when = (str(instance.get("LaunchTime", "")), instance["InstanceId"])
        if seat not in latest or when > latest[seat]:
            latest[seat] = when
    return {seat: when[1] for seat, when in latest.items()}


class KnownHosts:
    """Pinned host keys by instance id: a local cache of what the user-data holds."""

    _lock = threading.Lock()  # one writer at a time in this process (launches run in threads)

    def __init__(self, state: CourseState) -> None:
        self.path = state.secrets / "known_hosts.json"

    def all(self) -> dict[str, str]:
        data = read_json(self.path)
        return data if isinstance(data, dict) else {}

    def add(self, entries: dict[str, str]) -> None:
        if not entries:
            return
        with self._lock:
            write_json(self.path, self.all() | entries)

    def get(self, aws: Aws, machine: Machine) -> str | None:
        """The pinned public key; recovered from AWS (the instance's own cloud-config
        user-data, ``ssh_keys.ed25519_public``) when not cached here."""
        known = self.all().get(machine.instance_id)
        if known:
            return known
        key = cloudinit.host_public(user_data(aws, machine.region, machine.instance_id))
        if key is None:
            return None
        self.add({machine.instance_id: key})
        return key


def architecture(aws: Aws, region: str, instance_type: str) -> str:
    """The architecture an instance type runs (x86_64 or arm64), asked once per region."""
    key = (region, instance_type)
    with _architectures_lock:
        known = _architectures.get(key)
    if known:
        return known
    with translate_errors(f"ec2.DescribeInstanceTypes {instance_type} in {region}"):
        found = aws.client("ec2", region).describe_instance_types(
            InstanceTypes=[instance_type])["InstanceTypes"]
    if not found:
        raise AwsError(f"{region} does not offer instance type {instance_type}. Fix: pick a "
                       "type the region offers (aws ec2 describe-instance-types).")
    supported = found[0].get("ProcessorInfo", {}).get("SupportedArchitectures") or ["x86_64"]
    arch = "x86_64" if "x86_64" in supported else supported[0]
    with _architectures_lock:
        _architectures[key] = arch
    return arch


@dataclass(frozen=True)
class Image:
    """The AMI a region's seats launch: what DescribeImages says of it."""

    image_id: str
    architecture: str
    root_device: str                 # RootDeviceName: where disk_gb goes
    root_gb: int | None = None       # the size of the AMI's own root snapshot


def resolve_image(aws: Aws, region: str, ami: str, instance_type: str) -> Image:
    """The course's image in ``region`` for ``instance_type``: an AMI name resolves to the
    image of the type's architecture; an AMI id must be of that architecture."""
    arch = architecture(aws, region, instance_type)
    image_id = _image_id(aws, region, ami, arch)
    try:
        with translate_errors(f"ec2.DescribeImages {image_id} in {region}"):
            images = aws.client("ec2", region).describe_images(ImageIds=[image_id])["Images"]
    except AwsError as exc:
        if not exc.code.startswith("InvalidAMIID"):
            raise
        images = []
    if not images:
        raise InputError(f"machines.ami = {ami!r}: image {image_id} does not exist in {region}"
                         " (or is not shared with this account). Fix: AMI ids differ per "
                         "region: use that region's id, or a name such as "
                         "\"ubuntu-24.04\"")
    image = images[0]
    if image.get("Architecture", arch) != arch:
        raise InputError(f"machines.ami = {ami!r} is an {image['Architecture']} image, and "
                         f"instance type {instance_type} runs {arch}. Fix: use an {arch} image "
                         f"(or an AMI name, which resolves to the right one), or an instance "
                         f"type for {image['Architecture']}")
    root = image.get("RootDeviceName") or "/dev/sda1"
    size = next((m.get("Ebs", {}).get("VolumeSize") for m in image.get(
        "BlockDeviceMappings", []) if m.get("DeviceName") == root), None)
    return Image(image_id, arch, root, int(size) if size else None)


def _image_id(aws: Aws, region: str, ami: str, arch: str) -> str:
    if ami.startswith("ami-"):
        return ami
    if aws.settings.sandbox:  # the images the sandbox's machines can play
        from labtui.sandbox import flavors

        try:
            return flavors.image_for(ami, arch)
        except ValueError as exc:
            raise InputError(f"machines.ami = {ami!r}: {exc}. Fix: use one of "
                             f"{flavors.playable()} in the sandbox") from None
    template, names = AMI_PARAMETERS[ami]
    if arch not in names:
        raise InputError(f"machines.ami = {ami!r} has no {arch} image. Fix: pick an x86_64 or "
                         "arm64 instance type")
    name = template.format(arch=names[arch])
    with translate_errors(f"ssm.GetParameter {name} in {region}"):
        return aws.client("ssm", region).get_parameter(Name=name)["Parameter"]["Value"]


@dataclass
class LaunchOutcome:
    launched: list[Machine] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)   # seat -> why
    moved: dict[str, tuple[str, str]] = field(default_factory=dict)  # seat -> (from, to)


def launch(aws: Aws, course: Course, state: CourseState, seats_by_region: dict[str, list[str]],
           network_for: Callable[[str], RegionNetwork], key_name_for: Callable[[str], str],
           sink: EventSink | None = None, *,
           concurrency: int = LAUNCH_CONCURRENCY,
           boot: Callable[[str], cloudinit.SeatBoot] | None = None) -> LaunchOutcome:
    """Launch one machine per seat, trying each region's zones in order, then the course's
    next regions. ``network_for`` and ``key_name_for`` make sure a region is ready (they are
    called once, and only for regions actually used).

    A seat that finds no capacity anywhere is failed with the reason; any other AWS error
    stops the launch: the calls under way finish (their machines are tagged, so the next
    ``up`` sees them), the host keys found so far are pinned, and the error is raised.
    ``boot(seat)``: what a seat's machine gets for setup at boot (its user-data's robot,
    its instance profile, tags)."""
    run = _Launch(aws, course, network_for, key_name_for, sink or NullSink(), seats_by_region)
    run.boot = boot
    groups = [(region, list(seats)) for region, seats in seats_by_region.items() if seats]
    pilots = [(region, seats[0]) for region, seats in groups]
    rest = [(region, seat) for region, seats in groups for seat in seats[1:]]
    run.sink.emit(Progress("launch", 0, run.total))
    pool = ThreadPoolExecutor(max_workers=max(1, min(concurrency, max(len(pilots), len(rest)))),
                              thread_name_prefix="labtui-launch")
    try:
        for phase in (pilots, rest):
            if run.error is not None:
                break
            wait_all([pool.submit(run.seat, origin, seat) for origin, seat in phase])
    except BaseException:
        run.stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        KnownHosts(state).add(run.pins)
    if run.error is not None:
        raise run.error
    return run.outcome


class _NoCapacity(Exception):
    """No zone of any region left to try has capacity (or quota) for the seat."""

    def __init__(self, message: str, quota: bool = False) -> None:
        super().__init__(message)
        self.quota = quota


class _Stopped(Exception):
    """Another seat's launch failed (or Ctrl-C): this one stops before its next call."""


@dataclass
class _Region:
    network: RegionNetwork
    key_name: str
    image: Image
    incarnations: dict[str, str]


class _Launch:
    """The shared state of one ``launch``: regions made ready once, zones found full,
    per-seat outcomes, pins. Its ``seat`` method runs in the pool's threads."""

    def __init__(self, aws: Aws, course: Course, network_for: Callable[[str], RegionNetwork],
                 key_name_for: Callable[[str], str], sink: EventSink,
                 seats_by_region: dict[str, list[str]]) -> None:
        assert course.machines is not None
        self.aws, self.course, self.sink = aws, course, sink
        self.boot: Callable[[str], cloudinit.SeatBoot] | None = None
        self.network_for, self.key_name_for = network_for, key_name_for
        self.outcome = LaunchOutcome()
        self.pins: dict[str, str] = {}
        self.total = sum(len(s) for s in seats_by_region.values())
        self.left = {region: len(seats) for region, seats in seats_by_region.items()}
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self.full: dict[tuple[str, str], str] = {}   # (region, zone) -> capacity error code
        self.quota_full: dict[str, str] = {}          # region -> quota error code
        self.headroom: dict[str, float] = {}          # region -> vCPUs left for seats moving in
        self.seat_vcpus: dict[str, float] = {}        # region -> vCPUs of one seat's machine
        self.moves_told: set[tuple[str, str]] = set()
        self.regions: dict[str, _Region] = {}
        self.region_locks: dict[str, threading.Lock] = {}
        self.done = 0
        # AWS lists a new instance a moment after launching it; the sandbox at once
        self.settle = 1 if aws.settings.sandbox else 5

    # ------------------------------------------------------------------ per seat

    def seat(self, origin: str, seat: str) -> None:
        if self.stop.is_set():
            return
        try:
            machine, target = self._place(origin, seat)
        except _Stopped:
            return
        except _NoCapacity as exc:
            with self.lock:
                self.outcome.failed[seat] = str(exc)
            self.sink.emit(Problem(str(exc), seat=seat, fix=(
                f"ask for more vCPUs (`labtui quota-request {self.course.path} {origin} "
                "--vcpus N`), or add a region to the course") if exc.quota else (
                "add a region to the course, or try another instance type")))
        except BaseException as exc:  # noqa: BLE001 - kept, and raised by launch()
            with self.lock:
                self.error = self.error or exc
            self.stop.set()
            return
        else:
            with self.lock:
                self.outcome.launched.append(machine)
                if target != origin:
                    self.outcome.moved[seat] = (origin, target)
        with self.lock:
            self.left[origin] -= 1
            self.done += 1
            progress = Progress("launch", self.done, self.total, len(self.outcome.failed))
        self.sink.emit(progress)

    def _place(self, origin: str, seat: str) -> tuple[Machine, str]:
        """Launch the seat's machine in the first zone with capacity, from ``origin`` on:
        a zone without capacity sends it to the next zone, a quota refusal to the next
        region, where it must fit that region's headroom."""
        regions = list(self.course.regions)
        order = regions[regions.index(origin):] if origin in regions else [origin]
        why: list[str] = []
        quota = False
        for target in order:
            if self.stop.is_set():
                raise _Stopped()
            if target in self.quota_full:
                why.append(f"{self.quota_full[target]} in {target}")
                quota = True
                continue
            moved = target != origin
            if moved:
                short = self._reserve(target)
                if short:
                    why.append(short)
                    quota = True
                    continue
                self._tell_move(origin, target, why[-1] if why else "")
            placed = None
            try:
                placed = self._in_zones(origin, target, seat, why)
            except InputError as exc:
                if not moved:
                    raise
                why.append(str(exc))  # e.g. an AMI id of the first region only: not here
                continue
            finally:
                if moved and placed is None:
                    self._release(target)
            if placed is not None:
                return placed, target
            quota = quota or target in self.quota_full
        where = ("no capacity or vCPU quota left for it in " if quota
                 else "no capacity in any zone of ")
        raise _NoCapacity(f"{where}{', '.join(order)} ({'; '.join(why)})", quota)

    def _in_zones(self, origin: str, region: str, seat: str, why: list[str]) -> Machine | None:
        """The seat's machine in the region's first zone with capacity; None (the reason
        added to ``why``) when every zone is full or the region's quota refuses it."""
        ready = self._region(region)
        for zone, subnet in ready.network.subnets:
            if self.stop.is_set():
                raise _Stopped()
            code = self.full.get((region, zone))
            if code is None:
                try:
                    return self._launch_one(seat, region, zone, subnet, ready)
                except AwsError as exc:
                    if exc.code in QUOTA_ERRORS:  # the region's quota: no other zone helps
                        self._tell_quota(origin, region, exc.code)
                        why.append(f"{exc.code} in {region}")
                        return None
                    if exc.code not in ZONE_ERRORS:
                        raise
                    code = exc.code
                    self._tell_full(origin, region, zone, code)
            why.append(f"{code} in {zone}")
        return None

    def _reserve(self, region: str) -> str | None:
        """Take one seat's vCPUs from the headroom of ``region`` for a seat moving there;
        the reason it does not fit, or None. The headroom is read once per region: its
        quota, less what runs there, less what its own seats have still to launch."""
        with self.lock:
            lock = self.region_locks.setdefault(f"quota:{region}", threading.Lock())
        with lock:
            if region not in self.headroom:
                self.headroom[region], self.seat_vcpus[region] = self._free_vcpus(region)
        with self.lock:
            need, free = self.seat_vcpus[region], self.headroom[region]
            if free >= need:
                self.headroom[region] = free - need
                return None
        machines_cfg = self.course.machines
        assert machines_cfg is not None
        code = quotas.quota_code(machines_cfg.instance_type, machines_cfg.market)
        return (f"{region} has {max(free, 0):g} vCPUs of {quotas.NAMES.get(code, code)} "
                f"({code}) free for seats moving in, a seat needs {need:g}")

    def _release(self, region: str) -> None:
        with self.lock:
            if region in self.headroom:
                self.headroom[region] += self.seat_vcpus[region]

    def _free_vcpus(self, region: str) -> tuple[float, float]:
        machines_cfg = self.course.machines
        assert machines_cfg is not None
        itype = machines_cfg.instance_type
        size = float(vcpus(self.aws, region, [itype])[itype])
        code = quotas.quota_code(itype, machines_cfg.market)
        try:
            free = quotas.headroom(self.aws, region, code)
        except AwsError as exc:  # unknown: let AWS say whether the seat fits
            self.sink.emit(LogLine(f"{region}: the {code} quota could not be read ({exc}); "
                                   "seats move there unchecked", level="warning"))
            return float("inf"), size
        with self.lock:
            own = self.left.get(region, 0)   # the region's own seats not launched yet
        return free - own * size, size

    def _launch_one(self, seat: str, region: str, zone: str, subnet: str,
                    ready: _Region) -> Machine:
        machines_cfg = self.course.machines
        assert machines_cfg is not None
        boot = self.boot(seat) if self.boot is not None else None
        labels = seat_tags(self.course.id, seat) + [
            {"Key": k, "Value": v} for k, v in (boot.tags if boot else ())]
        spec: dict[str, Any] = dict(
            ImageId=ready.image.image_id,
            InstanceType=machines_cfg.instance_type,
            MinCount=1, MaxCount=1,
            KeyName=ready.key_name,
            UserData=machine_user_data(self.course, HostKey.generate(), boot),
            NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet, "Groups": [
                ready.network.security_group_id], "AssociatePublicIpAddress": True}],
            BlockDeviceMappings=[{"DeviceName": ready.image.root_device, "Ebs": {
                "VolumeSize": machines_cfg.disk_gb, "VolumeType": "gp3",
                "DeleteOnTermination": True}}],
            MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled"},
            TagSpecifications=[{"ResourceType": kind, "Tags": labels}
                               for kind in ("instance", "volume")],
        )
        profile = profile_name(self.course, seat) or (boot.profile if boot else None)
        if profile:  # the seat's own role (or its boot's): AWS without a key on the machine
            spec["IamInstanceProfile"] = {"Name": profile}
        if machines_cfg.market == "spot":   # a seat's machine stops, never goes, when reclaimed
            spec["InstanceMarketOptions"] = spot_market(machines_cfg.max_price, persistent=True)
            spec["TagSpecifications"].append(
                {"ResourceType": "spot-instances-request", "Tags": labels})
        self.sink.emit(SeatChanged(seat, "launching", f"{region} {zone}"))
        ec2 = self.aws.client("ec2", region)
        incarnation, salt = ready.incarnations.get(seat, "first"), 0
        for _ in range(MAX_TOKENS):
            token = client_token(self.course.id, seat, incarnation, salt)
            try:
                instance = self._run(ec2, token, spec,
                                     f"ec2.RunInstances {seat}: {machines_cfg.instance_type} "
                                     f"in {zone}")
            except AwsError as exc:
                if exc.code != "IdempotentParameterMismatch":
                    raise
                instance = self._holder(region, seat, token)
                if instance is None:  # the token's machine is gone from EC2's lists
                    salt += 1
                    continue
                if instance["State"]["Name"] not in GONE_STATES:
                    self.sink.emit(LogLine(
                        f"{seat}: another labtui run launched {instance['InstanceId']} for "
                        "this seat at the same time; using it"))
            if instance["State"]["Name"] in GONE_STATES:  # an old token: launch anew
                incarnation, salt = instance["InstanceId"], 0
                continue
            machine = to_machine(instance, region, seat)
            self._pin(machine)
            self.sink.emit(SeatChanged(seat, "pending", machine.instance_id))
            return machine
        raise AwsError(f"{seat}: every ClientToken tried in {region} belongs to a terminated "
                       "machine; launch it again later", code="ClientTokenExhausted")

    def _run(self, ec2: Any, token: str, spec: dict[str, Any], doing: str) -> dict[str, Any]:
        """RunInstances; a new instance profile takes EC2 some seconds to know (IAM is
        eventually consistent): "Invalid IAM Instance Profile" is asked again a few times.
        A busy EC2 (a throttle, a 5xx, an answer that is not a reply) is asked again too,
        with the same client token: EC2 makes the seat's instance at most once."""
        attempt = 0
        while True:
            try:
                with translate_errors(doing):
                    return ec2.run_instances(ClientToken=token, **spec)["Instances"][0]
            except AwsError as exc:
                attempt += 1
                profile = exc.code == "InvalidParameterValue" and "Instance Profile" in str(exc)
                if not (profile or retries.transient(exc)) or attempt >= PROFILE_ATTEMPTS:
                    raise
                time.sleep(min(2 ** attempt, 10))

    def _holder(self, region: str, seat: str, token: str) -> dict[str, Any] | None:
        """The instance EC2 made for ``token`` (another run's launch of this seat): the
        seat's machine with that token, live ones first; else any live machine of the seat."""
        filters = tags.course_filter(self.course.id) + [
            {"Name": f"tag:{tags.SEAT}", "Values": [seat]}]
        for attempt in range(self.settle):
            if attempt:
                time.sleep(2 ** attempt)
            found = [i for r in self.aws.paginate("ec2", region, "describe_instances",
                                                  "Reservations", Filters=filters)
                     for i in r["Instances"]]
            own = [i for i in found if i.get("ClientToken") == token]
            live = [i for i in found if i["State"]["Name"] not in GONE_STATES]
            pick = ([i for i in own if i in live] or own or live)
            if pick:
                return sorted(pick, key=lambda i: (str(i.get("LaunchTime", "")),
                                                   i["InstanceId"]))[0]
        return None

    def _pin(self, machine: Machine) -> None:
        """Pin the host key the instance's own user-data installs (whichever run made it)."""
        for attempt in range(self.settle):
            if attempt:
                time.sleep(2 ** attempt)
            try:
                key = cloudinit.host_public(user_data(self.aws, machine.region,
                                                      machine.instance_id))
            except AwsError as exc:
                if exc.code == "InvalidInstanceID.NotFound":
                    continue
                key = None
            if key is not None:
                with self.lock:
                    self.pins[machine.instance_id] = key
                return
            break
        self.sink.emit(LogLine(f"{machine.seat}: the user-data of {machine.instance_id} could "
                               "not be read yet; its host key is pinned on first connection",
                               level="warning"))

    # ------------------------------------------------------------------ shared

    def _region(self, region: str) -> _Region:
        """Make ``region`` ready once (network, key pair, image, seat incarnations)."""
        with self.lock:
            lock = self.region_locks.setdefault(region, threading.Lock())
        with lock:
            ready = self.regions.get(region)
            if ready is None:
                assert self.course.machines is not None
                machines_cfg = self.course.machines
                ami = (images.baked_image_id(self.aws, self.course, region)
                       if machines_cfg.baked else machines_cfg.ami)
                image = resolve_image(self.aws, region, ami, machines_cfg.instance_type)
                if image.root_gb and machines_cfg.disk_gb < image.root_gb:
                    raise InputError(
                        f"machines.disk_gb = {machines_cfg.disk_gb} is smaller than the root "
                        f"of image {image.image_id} in {region} ({image.root_gb} GiB). Fix: "
                        f"set disk_gb = {image.root_gb} or more")
                ready = _Region(self.network_for(region), self.key_name_for(region), image,
                                incarnations(self.aws, self.course.id, region))
                self.regions[region] = ready
            return ready

    def _tell_full(self, origin: str, region: str, zone: str, code: str) -> None:
        with self.lock:
            if (region, zone) in self.full:
                return
            self.full[(region, zone)] = code
            left = self.left[origin]
        self.sink.emit(LogLine(f"{code} in {zone}: {left} seat(s) try the next zone",
                               level="warning"))

    def _tell_quota(self, origin: str, region: str, code: str) -> None:
        with self.lock:
            if region in self.quota_full:
                return
            self.quota_full[region] = code
            left = self.left[origin]
        self.sink.emit(LogLine(f"{code} in {region}: its quota is used up; {left} seat(s) "
                               "try the course's next region", level="warning"))

    def _tell_move(self, origin: str, target: str, last_error: str) -> None:
        with self.lock:
            if (origin, target) in self.moves_told:
                return
            self.moves_told.add((origin, target))
            left = self.left[origin]
        self.sink.emit(LogLine(f"moving {left} seat(s) from {origin} to {target}: "
                               f"{last_error}", level="warning"))


def wait_running(aws: Aws, machines: Iterable[Machine]) -> None:
    for region, ids in _by_region(machines).items():
        with translate_errors(f"waiting for {len(ids)} machine(s) in {region}"):
            aws.client("ec2", region).get_waiter("instance_running").wait(
                InstanceIds=ids, WaiterConfig={"Delay": 5, "MaxAttempts": 60})


def _by_region(machines: Iterable[Machine]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for machine in machines:
        out.setdefault(machine.region, []).append(machine.instance_id)
    return out


def _lifecycle(aws: Aws, machines: Iterable[Machine], action: str, waiter: str | None) -> None:
    for region, ids in _by_region(machines).items():
        ec2 = aws.client("ec2", region)
        with translate_errors(f"ec2.{action} {len(ids)} machine(s) in {region}"):
            getattr(ec2, action)(InstanceIds=ids)
            if waiter:
                ec2.get_waiter(waiter).wait(InstanceIds=ids,
                                            WaiterConfig={"Delay": 5, "MaxAttempts": 120})


def stop(aws: Aws, machines: Iterable[Machine], wait: bool = True) -> None:
    _lifecycle(aws, machines, "stop_instances", "instance_stopped" if wait else None)


def start(aws: Aws, machines: Iterable[Machine], wait: bool = True) -> None:
    _lifecycle(aws, machines, "start_instances", "instance_running" if wait else None)


def reboot(aws: Aws, machines: Iterable[Machine]) -> None:
    _lifecycle(aws, machines, "reboot_instances", None)


def terminate(aws: Aws, machines: Iterable[Machine], wait: bool = True) -> None:
    _lifecycle(aws, machines, "terminate_instances", "instance_terminated" if wait else None)


def console_output(aws: Aws, machine: Machine) -> str:
    with translate_errors(f"ec2.GetConsoleOutput {machine.instance_id}"):
        reply = aws.client("ec2", machine.region).get_console_output(
            InstanceId=machine.instance_id, Latest=True)
    text = reply.get("Output") or ""
    try:  # AWS answers base64; the emulator plain text
        decoded = base64.b64decode(text, validate=True).decode("utf-8")
        return decoded
    except (ValueError, UnicodeDecodeError):
        return text


def describe(aws: Aws, machine: Machine) -> dict[str, Any]:
    with translate_errors(f"ec2.DescribeInstances {machine.instance_id}"):
        reply = aws.client("ec2", machine.region).describe_instances(
            InstanceIds=[machine.instance_id])
    return reply["Reservations"][0]["Instances"][0]


