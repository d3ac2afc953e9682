"""Per-region network and the course key, on the sandbox: created once, found again by tag,
and SSH opened only from the course's CIDR."""

from __future__ import annotations

import stat

import pytest

from labtui.course import load
from labtui.services import keys, network
from labtui.services.aws import Aws, AwsSettings
from labtui.state import StateDir

from .conftest import SAMPLE


@pytest.fixture
def aws(sandbox) -> Aws:
    sandbox.reset()
    return Aws(AwsSettings(endpoint_url=sandbox.endpoint_url, sandbox=True))


def test_network_is_created_once_and_found_again(aws: Aws) -> None:
    course = load(SAMPLE)
    first = network.ensure_network(aws, course, "eu-west-1")
    assert first.created_vpc and len(first.subnets) == 3
    assert [zone for zone, _ in first.subnets] == ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    aws.calls.reset()
    again = network.ensure_network(aws, course, "eu-west-1")
    assert again == first
    assert not any(op.split(".")[1].startswith(("Create", "Authorize"))
                   for op in aws.calls.snapshot())

    ec2 = aws.client("ec2", "eu-west-1")
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:labtui:course",
                                       "Values": [course.id]}])["Vpcs"]
    assert [v["VpcId"] for v in vpcs] == [first.vpc_id]
    [group] = ec2.describe_security_groups(GroupIds=[first.security_group_id])["SecurityGroups"]
    ssh = [p for p in group["IpPermissions"] if p.get("FromPort") == 22]
    assert [r["CidrIp"] for r in ssh[0]["IpRanges"]] == ["203.0.113.0/24"]
    assert not any(r.get("CidrIp") == "0.0.0.0/0"
                   for p in group["IpPermissions"] for r in p.get("IpRanges", []))
    routes = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [first.vpc_id]}])
    assert any(r.get("DestinationCidrBlock") == "0.0.0.0/0" and r.get("GatewayId", "")
               .startswith("igw-") for t in routes["RouteTables"] for r in t["Routes"])


def test_course_key_is_private_and_imported_per_region(aws: Aws, tmp_path) -> None:
    state = StateDir.resolve(tmp_path / "state").ensure().course("cloud101-demo")
    private, public = keys.course_key(state)
    assert public.startswith("ssh-ed25519 ")
    path = state.secrets / keys.KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keys.course_key(state) == (private, public)  # made once
    for region in ("us-east-1", "sa-east-1"):
        name = keys.ensure_key_pair(aws, region, "cloud101-demo", public)
        assert keys.ensure_key_pair(aws, region, "cloud101-demo", public) == name
        pairs = aws.client("ec2", region).describe_key_pairs(KeyNames=[name])["KeyPairs"]
        assert len(pairs) == 1
