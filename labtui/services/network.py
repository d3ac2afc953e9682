"""Per-region network for a course: VPC, public subnets, internet gateway, route, security
group. Uses the course's own VPC when [network] names one; otherwise finds the VPC it made
before by tag, or makes one. Every call is idempotent, so a rerun after a crash converges."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from labtui.course import Course
from labtui.errors import AwsError
from labtui.events import EventSink, LogLine, NullSink
from labtui.services import tags
from labtui.services.aws import Aws, translate_errors

VPC_CIDR = "10.42.0.0/16"
MAX_SUBNETS = 3  # one per availability zone, so capacity errors can move to the next zone


@dataclass(frozen=True)
class RegionNetwork:
    region: str
    vpc_id: str
    subnets: tuple[tuple[str, str], ...]  # (availability zone, subnet id), in order of use
    security_group_id: str
    created_vpc: bool  # labtui made the VPC (and so `down` removes it)


def security_group_name(course_id: str) -> str:
    return f"labtui-{course_id}"


def _tag_spec(resource: str, course_id: str) -> list[dict[str, Any]]:
    return [{"ResourceType": resource,
             "Tags": tags.tags(course_id) + [{"Key": "Name", "Value": f"labtui-{course_id}"}]}]


def ensure_network(aws: Aws, course: Course, region: str,
                   sink: EventSink | None = None) -> RegionNetwork:
    sink = sink or NullSink()
    ec2 = aws.client("ec2", region)
    net = course.network
    if net.vpc_id:
        vpc_id, created = net.vpc_id, False
        subnets = _given_subnets(ec2, region, vpc_id, net.subnet_id)
    else:
        vpc_id, created = _course_vpc(ec2, course.id, region, sink)
        subnets = _course_subnets(ec2, course.id, region, vpc_id, sink)
    group = _security_group(ec2, course, region, vpc_id, sink)
    return RegionNetwork(region, vpc_id, subnets, group, created)


def _course_vpc(ec2: Any, course_id: str, region: str, sink: EventSink) -> tuple[str, bool]:
    with translate_errors(f"ec2.DescribeVpcs in {region}"):
        found = ec2.describe_vpcs(Filters=tags.course_filter(course_id))["Vpcs"]
    if found:
        return sorted(v["VpcId"] for v in found)[0], True
    with translate_errors(f"ec2.CreateVpc in {region}"):
        vpc_id = ec2.create_vpc(CidrBlock=VPC_CIDR,
                                TagSpecifications=_tag_spec("vpc", course_id))["Vpc"]["VpcId"]
        ec2.get_waiter("vpc_available").wait(VpcIds=[vpc_id])
        ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
        gateway = ec2.create_internet_gateway(
            TagSpecifications=_tag_spec("internet-gateway", course_id)
        )["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc_id)
        tables = ec2.describe_route_tables(
            Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                     {"Name": "association.main", "Values": ["true"]}])["RouteTables"]
        ec2.create_route(RouteTableId=tables[0]["RouteTableId"],
                         DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway)
    sink.emit(LogLine(f"{region}: created VPC {vpc_id} with internet gateway {gateway}"))
    return vpc_id, True


def _course_subnets(ec2: Any, course_id: str, region: str, vpc_id: str,
                    sink: EventSink) -> tuple[tuple[str, str], ...]:
    with translate_errors(f"ec2.DescribeSubnets in {region}"):
        existing = {s["AvailabilityZone"]: s["SubnetId"] for s in ec2.describe_subnets(
            Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]}
        zones = sorted(z["ZoneName"] for z in ec2.describe_availability_zones(
            Filters=[{"Name": "state", "Values": ["available"]}])["AvailabilityZones"])
    blocks = list(ipaddress.ip_network(VPC_CIDR).subnets(new_prefix=20))
    out = []
    for index, zone in enumerate(zones[:MAX_SUBNETS]):
        subnet = existing.get(zone)
        if subnet is None:
            with translate_errors(f"ec2.CreateSubnet in {zone}"):
                subnet = ec2.create_subnet(
                    VpcId=vpc_id, CidrBlock=str(blocks[index]), AvailabilityZone=zone,
                    TagSpecifications=_tag_spec("subnet", course_id))["Subnet"]["SubnetId"]
                ec2.modify_subnet_attribute(SubnetId=subnet,
                                            MapPublicIpOnLaunch={"Value": True})
            sink.emit(LogLine(f"{region}: created subnet {subnet} in {zone}"))
        out.append((zone, subnet))
    return tuple(out)


def _given_subnets(ec2: Any, region: str, vpc_id: str,
                   subnet_id: str | None) -> tuple[tuple[str, str], ...]:
    filters = [{"Name": "vpc-id", "Values": [vpc_id]}]
    with translate_errors(f"ec2.DescribeSubnets in {region}"):
        subnets = ec2.describe_subnets(Filters=filters)["Subnets"]
    if subnet_id:
        subnets = [s for s in subnets if s["SubnetId"] == subnet_id]
    if not subnets:
        raise AwsError(f"{region}: VPC {vpc_id} has no subnet"
                       + (f" {subnet_id}" if subnet_id else "")
                       + ". Fix: give [network] subnet_id of a public subnet in that VPC.")
    return tuple(sorted((s["AvailabilityZone"], s["SubnetId"]) for s in subnets))


def wanted_rules(course: Course, group_id: str) -> list[dict[str, Any]]:
    """SSH (and only the course's open ports) from the course's CIDR, all traffic inside."""
    cidr = course.network.ssh_cidr
    rules = [{"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
              "IpRanges": [{"CidrIp": cidr, "Description": "labtui"}]}
             for port in sorted({22, *course.network.open_ports})]
    rules.append({"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group_id}]})
    return rules


def _security_group(ec2: Any, course: Course, region: str, vpc_id: str,
                    sink: EventSink) -> str:
    name = security_group_name(course.id)
    with translate_errors(f"ec2.DescribeSecurityGroups in {region}"):
        found = ec2.describe_security_groups(Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "group-name", "Values": [name]}])["SecurityGroups"]
    if found:
        group_id = found[0]["GroupId"]
        have = found[0]["IpPermissions"]
    else:
        with translate_errors(f"ec2.CreateSecurityGroup in {region}"):
            group_id = ec2.create_security_group(
                GroupName=name, Description=f"labtui course {course.id}", VpcId=vpc_id,
                TagSpecifications=_tag_spec("security-group", course.id))["GroupId"]
        sink.emit(LogLine(f"{region}: created security group {group_id} ({name})"))
        have = []
    missing = [rule for rule in wanted_rules(course, group_id) if not _has(have, rule)]
    if missing:
        with translate_errors(f"ec2.AuthorizeSecurityGroupIngress in {region}"):
            ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=missing)
    return group_id


def _has(existing: list[dict[str, Any]], rule: dict[str, Any]) -> bool:
    for perm in existing:
        if perm.get("IpProtocol") != rule["IpProtocol"]:
            continue
        if rule["IpProtocol"] != "-1" and (perm.get("FromPort"), perm.get("ToPort")) != (
                rule["FromPort"], rule["ToPort"]):
            continue
        if "IpRanges" in rule and any(r.get("CidrIp") == rule["IpRanges"][0]["CidrIp"]
                                      for r in perm.get("IpRanges", [])):
            return True
        if "UserIdGroupPairs" in rule and any(
                p.get("GroupId") == rule["UserIdGroupPairs"][0]["GroupId"]
                for p in perm.get("UserIdGroupPairs", [])):
            return True
    return False
