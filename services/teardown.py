"""down: remove everything labtui created for a course, found by its tags, region by region.

Order matters on AWS: instances (and their spot requests) first, then what they used (key
pair, security group), then the network. A security group still held by a terminating
instance answers DependencyViolation for a while; that one condition is retried with an
injectable sleep. Everything else that fails is reported, per resource, and the rest goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from labtui.errors import AwsError
from labtui.events import EventSink, LogLine, NullSink, Problem, StepDone
from labtui.services import tags
from labtui.services.aws import Aws, translate_errors
from labtui.services.keys import key_pair_name

LIVE = ["pending", "running", "stopping", "stopped", "shutting-down"]


@dataclass
class DownReport:
    removed: dict[str, int] = field(default_factory=dict)   # kind -> count
    failed: list[str] = field(default_factory=list)        # "region kind id: why"

    def count(self, kind: str, n: int = 1) -> None:
        self.removed[kind] = self.removed.get(kind, 0) + n


def down(aws: Aws, course_id: str, regions: Sequence[str], sink: EventSink | None = None,
         sleep: Callable[[float], None] = time.sleep, attempts: int = 20) -> DownReport:
    sink = sink or NullSink()
    report = DownReport()
    for region in regions:
        _region(aws, course_id, region, sink, report, sleep, attempts)
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(report.removed.items())) or "nothing"
    sink.emit(StepDone(f"down: removed {summary}", ok=not report.failed,
                       detail="; ".join(report.failed)))
    return report


def _try(report: DownReport, sink: EventSink, what: str, call: Callable[[], Any]) -> bool:
    try:
        with translate_errors(what):
            call()
        return True
    except AwsError as exc:
        report.failed.append(f"{what}: {exc.code or exc}")
        sink.emit(Problem(f"{what} failed: {exc}"))
        return False


def _region(aws: Aws, course_id: str, region: str, sink: EventSink, report: DownReport,
            sleep: Callable[[float], None], attempts: int) -> None:
    ec2 = aws.client("ec2", region)
    course = tags.course_filter(course_id)
    ids = [i["InstanceId"] for r in aws.paginate(
        "ec2", region, "describe_instances", "Reservations",
        Filters=course + [{"Name": "instance-state-name", "Values": LIVE}])
        for i in r["Instances"]]
    if ids:
        if _try(report, sink, f"{region} terminate {len(ids)} instance(s)",
                lambda: ec2.terminate_instances(InstanceIds=ids)):
            _try(report, sink, f"{region} wait for termination",
                 lambda: ec2.get_waiter("instance_terminated").wait(
                     InstanceIds=ids, WaiterConfig={"Delay": 5, "MaxAttempts": 120}))
            report.count("instances", len(ids))
            sink.emit(LogLine(f"{region}: terminated {len(ids)} instance(s)"))
    spot = [s["SpotInstanceRequestId"] for s in aws.paginate(
        "ec2", region, "describe_spot_instance_requests", "SpotInstanceRequests",
        Filters=course + [{"Name": "state", "Values": ["open", "active", "disabled"]}])]
    if spot and _try(report, sink, f"{region} cancel {len(spot)} spot request(s)",
                     lambda: ec2.cancel_spot_instance_requests(SpotInstanceRequestIds=spot)):
        report.count("spot requests", len(spot))
    name = key_pair_name(course_id)
    pairs = ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [name]}])["KeyPairs"]
    if pairs and _try(report, sink, f"{region} delete key pair {name}",
                      lambda: ec2.delete_key_pair(KeyName=name)):
        report.count("key pairs")
    for volume in aws.paginate("ec2", region, "describe_volumes", "Volumes",
                               Filters=course + [{"Name": "status", "Values": ["available"]}]):
        vid = volume["VolumeId"]
        if _try(report, sink, f"{region} delete volume {vid}",
                partial(ec2.delete_volume, VolumeId=vid)):
            report.count("volumes")
    for group in ec2.describe_security_groups(Filters=course)["SecurityGroups"]:
        gid = group["GroupId"]
        if _retry_dependency(partial(ec2.delete_security_group, GroupId=gid),
                             f"{region} delete security group {gid}", report, sink, sleep,
                             attempts):
            report.count("security groups")
    for vpc in ec2.describe_vpcs(Filters=course)["Vpcs"]:
        _delete_vpc(ec2, region, vpc["VpcId"], report, sink, sleep, attempts)


def _retry_dependency(call: Callable[[], Any], what: str, report: DownReport,
                      sink: EventSink, sleep: Callable[[float], None], attempts: int) -> bool:
    for attempt in range(attempts):
        try:
            with translate_errors(what):
                call()
            return True
        except AwsError as exc:
            if exc.code != "DependencyViolation" or attempt == attempts - 1:
                report.failed.append(f"{what}: {exc.code or exc}")
                sink.emit(Problem(f"{what} failed: {exc}"))
                return False
            sleep(min(2 ** attempt, 15))
    return False


def _delete_vpc(ec2: Any, region: str, vpc_id: str, report: DownReport, sink: EventSink,
                sleep: Callable[[float], None], attempts: int) -> None:
    in_vpc = [{"Name": "vpc-id", "Values": [vpc_id]}]
    for subnet in ec2.describe_subnets(Filters=in_vpc)["Subnets"]:
        sid = subnet["SubnetId"]
        if _retry_dependency(partial(ec2.delete_subnet, SubnetId=sid),
                             f"{region} delete subnet {sid}", report, sink, sleep, attempts):
            report.count("subnets")
    for gateway in ec2.describe_internet_gateways(
            Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}])["InternetGateways"]:
        gid = gateway["InternetGatewayId"]
        if _try(report, sink, f"{region} detach internet gateway {gid}",
                partial(ec2.detach_internet_gateway, InternetGatewayId=gid, VpcId=vpc_id)) \
                and _try(report, sink, f"{region} delete internet gateway {gid}",
                         partial(ec2.delete_internet_gateway, InternetGatewayId=gid)):
            report.count("internet gateways")
    for table in ec2.describe_route_tables(Filters=in_vpc)["RouteTables"]:
        if any(a.get("Main") for a in table.get("Associations", [])):
            continue
        tid = table["RouteTableId"]
        if _try(report, sink, f"{region} delete route table {tid}",
                partial(ec2.delete_route_table, RouteTableId=tid)):
            report.count("route tables")
    if _retry_dependency(lambda: ec2.delete_vpc(VpcId=vpc_id), f"{region} delete VPC {vpc_id}",
                         report, sink, sleep, attempts):
        report.count("VPCs")
        sink.emit(LogLine(f"{region}: deleted VPC {vpc_id}"))
