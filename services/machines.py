"""Seat machines: launch in batches, adopt, stop/start/reboot/terminate, console output.

One ``run_instances`` call per region, instance type and zone for a whole batch of seats.
Each batch carries a fresh ClientToken (so a retried call never doubles on AWS) and the
course and batch tags from the first moment; the seat tags follow per instance. Before every
launch the course's machines are found again by tags, and machines whose seat tag was never
written (a crash between launch and tagging) are adopted from their user-data, so neither a
retry, a Ctrl-C nor a second laptop ever doubles a seat.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from labtui.course import Course
from labtui.errors import AwsError
from labtui.events import EventSink, LogLine, NullSink, Problem, SeatChanged
from labtui.services import tags
from labtui.services.aws import Aws, translate_errors
from labtui.services.hostkeys import MAX_BATCH, HostKey, batch_user_data, parse_user_data
from labtui.services.inventory import LIVE_STATES, Machine
from labtui.services.network import RegionNetwork
from labtui.state import CourseState, read_json, write_json

# Errors that mean "not here, try the next zone or region", not "the class failed".
CAPACITY_ERRORS = frozenset({
    "InsufficientInstanceCapacity", "InsufficientHostCapacity", "SpotMaxPriceTooLow",
    "MaxSpotInstanceCountExceeded", "InsufficientCapacity", "Unsupported",
    "InstanceLimitExceeded", "VcpuLimitExceeded",
})
BATCH = "labtui:batch"

AMI_PARAMETERS = {  # public SSM parameters that name the current image in every region
    "ubuntu-24.04": "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/"
                    "ebs-gp3/ami-id",
    "ubuntu-22.04": "/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/"
                    "ebs-gp2/ami-id",
    "debian-12": "/aws/service/debian/release/12/latest/amd64",
    "amazon-linux-2023": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-"
                         "x86_64",
}
SANDBOX_AMI = "ami-12c6146b"  # an image the emulator knows in every region


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


def adopt_untagged(aws: Aws, course_id: str, region: str,
                   sink: EventSink | None = None) -> list[Machine]:
    """Give a seat tag to batch machines that lack one, from their user-data; return them."""
    sink = sink or NullSink()
    adopted = []
    for instance in all_course_instances(aws, course_id, region):
        labels = tags.as_dict(instance.get("Tags"))
        if tags.SEAT in labels or BATCH not in labels:
            continue
        info = parse_user_data(user_data(aws, region, instance["InstanceId"]))
        seat = info.seat_of(int(instance.get("AmiLaunchIndex", -1))) if info else None
        if seat is None:
            continue
        tag_seat(aws, region, course_id, instance["InstanceId"], seat)
        sink.emit(LogLine(f"{seat}: adopted {instance['InstanceId']} in {region} "
                          "(launched before an interruption; seat tag restored)"))
        adopted.append(to_machine(instance, region, seat))
    return adopted


def tag_seat(aws: Aws, region: str, course_id: str, instance_id: str, seat: str) -> None:
    with translate_errors(f"ec2.CreateTags {instance_id}"):
        aws.client("ec2", region).create_tags(Resources=[instance_id], Tags=[
            {"Key": tags.SEAT, "Value": seat},
            {"Key": "Name", "Value": f"labtui-{course_id}-{seat}"}])


class KnownHosts:
    """Pinned host keys by instance id: a local cache of what the user-data holds."""

    def __init__(self, state: CourseState) -> None:
        self.path = state.secrets / "known_hosts.json"

    def all(self) -> dict[str, str]:
        data = read_json(self.path)
        return data if isinstance(data, dict) else {}

    def add(self, entries: dict[str, str]) -> None:
        write_json(self.path, self.all() | entries)

    def get(self, aws: Aws, machine: Machine) -> str | None:
        """The pinned public key; recovered from AWS (user-data) when not cached here."""
        known = self.all().get(machine.instance_id)
        if known:
            return known
        info = parse_user_data(user_data(aws, machine.region, machine.instance_id))
        key = info.key_of(int(machine.raw.get("AmiLaunchIndex", -1))) if info else None
        if key is None:
            return None
        self.add({machine.instance_id: key.public_line})
        return key.public_line


def resolve_ami(aws: Aws, region: str, ami: str) -> str:
    if ami.startswith("ami-"):
        return ami
    if aws.settings.sandbox:
        return SANDBOX_AMI
    name = AMI_PARAMETERS[ami]
    with translate_errors(f"ssm.GetParameter {name} in {region}"):
        return aws.client("ssm", region).get_parameter(Name=name)["Parameter"]["Value"]


@dataclass
class LaunchOutcome:
    launched: list[Machine] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)   # seat -> why
    moved: dict[str, tuple[str, str]] = field(default_factory=dict)  # seat -> (from, to)


def launch(aws: Aws, course: Course, state: CourseState, seats_by_region: dict[str, list[str]],
           network_for: Callable[[str], RegionNetwork], key_name_for: Callable[[str], str],
           sink: EventSink | None = None) -> LaunchOutcome:
    """Launch one machine per seat, trying each region's zones in order, then the course's
    next regions. ``network_for`` and ``key_name_for`` make sure a region is ready (they are
    called only for regions actually used)."""
    sink = sink or NullSink()
    outcome = LaunchOutcome()
    known = KnownHosts(state)
    regions = list(course.regions)
    for region, seats in seats_by_region.items():
        for start in range(0, len(seats), MAX_BATCH):
            pending = list(seats[start:start + MAX_BATCH])
            order = regions[regions.index(region):] if region in regions else [region]
            last_error = ""
            for target in order:
                if not pending:
                    break
                if target != region:
                    sink.emit(LogLine(
                        f"moving {len(pending)} seat(s) from {region} to {target}: "
                        f"{last_error}", level="warning"))
                net = network_for(target)
                key_name = key_name_for(target)
                for zone, subnet in net.subnets:
                    try:
                        machines = _run_batch(aws, course, target, zone, subnet, net, key_name,
                                              pending, known, sink)
                    except AwsError as exc:
                        if exc.code not in CAPACITY_ERRORS:
                            raise
                        last_error = f"{exc.code} in {zone}"
                        sink.emit(LogLine(f"{len(pending)} seat(s): {exc.code} in {zone}; "
                                          "trying the next zone", level="warning"))
                        continue
                    for machine in machines:
                        if target != region:
                            outcome.moved[machine.seat] = (region, target)
                    outcome.launched.extend(machines)
                    pending = []
                    break
            for seat in pending:
                why = f"no capacity in any zone of {', '.join(order)} ({last_error})"
                outcome.failed[seat] = why
                sink.emit(Problem(why, seat=seat,
                                  fix="add a region to the course, or try another instance "
                                      "type"))
    return outcome


def _run_batch(aws: Aws, course: Course, region: str, zone: str, subnet: str,
               net: RegionNetwork, key_name: str, seats: list[str], known: KnownHosts,
               sink: EventSink) -> list[Machine]:
    machines_cfg = course.machines
    assert machines_cfg is not None
    batch = uuid.uuid4().hex
    keys = [HostKey.generate() for _ in seats]
    course_tags = tags.tags(course.id) + [{"Key": BATCH, "Value": batch}]
    spec: dict[str, Any] = dict(
        ImageId=resolve_ami(aws, region, machines_cfg.ami),
        InstanceType=machines_cfg.instance_type,
        MinCount=len(seats), MaxCount=len(seats),
        KeyName=key_name,
        ClientToken=batch,
        UserData=batch_user_data(course.id, batch, seats, keys),
        NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet, "Groups": [
            net.security_group_id], "AssociatePublicIpAddress": True}],
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {
            "VolumeSize": machines_cfg.disk_gb, "VolumeType": "gp3",
            "DeleteOnTermination": True}}],
        MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled"},
        TagSpecifications=[{"ResourceType": kind, "Tags": course_tags}
                           for kind in ("instance", "volume")],
    )
    if machines_cfg.market == "spot":
        options: dict[str, Any] = {"SpotInstanceType": "persistent",
                                   "InstanceInterruptionBehavior": "stop"}
        if machines_cfg.max_price is not None:
            options["MaxPrice"] = f"{machines_cfg.max_price:.4f}"
        spec["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": options}
        spec["TagSpecifications"].append(
            {"ResourceType": "spot-instances-request", "Tags": course_tags})
    for seat in seats:
        sink.emit(SeatChanged(seat, "launching", f"{region} {zone}"))
    with translate_errors(f"ec2.RunInstances {len(seats)} x {machines_cfg.instance_type} "
                          f"in {zone}"):
        reply = aws.client("ec2", region).run_instances(**spec)
    instances = sorted(reply["Instances"], key=lambda i: i.get("AmiLaunchIndex", 0))
    out = []
    pins = {}
    for instance in instances:
        index = int(instance.get("AmiLaunchIndex", 0))
        seat = seats[index]
        tag_seat(aws, region, course.id, instance["InstanceId"], seat)
        pins[instance["InstanceId"]] = keys[index].public_line
        out.append(to_machine(instance, region, seat))
        sink.emit(SeatChanged(seat, "pending", instance["InstanceId"]))
    known.add(pins)
    return out


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


