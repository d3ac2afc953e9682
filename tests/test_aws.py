"""services/aws.py and the read-only services, against the sandbox's emulator."""

from __future__ import annotations

import pytest

from labtui.errors import AwsError
from labtui.services import inventory, regions, tags
from labtui.services.aws import Aws, AwsSettings
from labtui.services.instance_types import vcpus


@pytest.fixture
def aws(sandbox) -> Aws:
    sandbox.reset()
    return Aws(AwsSettings(endpoint_url=sandbox.endpoint_url, sandbox=True))


def test_clients_are_cached_per_service_and_region(aws: Aws) -> None:
    assert aws.client("ec2", "us-east-1") is aws.client("ec2", "us-east-1")
    assert aws.client("ec2", "eu-west-1") is not aws.client("ec2", "us-east-1")
    assert aws.client("ec2").meta.config.retries["mode"] == "adaptive"
    assert aws.client("ec2").meta.endpoint_url.startswith("http://127.0.0.1:")


def test_every_api_call_is_counted(aws: Aws) -> None:
    aws.client("ec2").describe_regions()
    aws.client("ec2", "eu-west-1").describe_availability_zones()
    aws.client("sts").get_caller_identity()
    assert aws.calls.snapshot() == {"ec2.DescribeRegions": 1,
                                    "ec2.DescribeAvailabilityZones": 1,
                                    "sts.GetCallerIdentity": 1}
    assert aws.calls.total == 3
    aws.calls.reset()
    assert aws.calls.total == 0


def test_unknown_profile_is_an_actionable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AwsError, match="profile 'no-such-profile' is not configured. Fix:"):
        Aws(AwsSettings(profile="no-such-profile"))


def test_course_regions_with_zones(aws: Aws) -> None:
    found = regions.course_regions(aws, ("eu-west-1", "us-east-1"))
    assert [r.name for r in found] == ["eu-west-1", "us-east-1"]
    assert "us-east-1a" in found[1].zones and all(r.usable for r in found)


def test_vcpus_and_a_missing_type(aws: Aws) -> None:
    assert vcpus(aws, "us-east-1", ["t3.small", "m5.xlarge"]) == {"m5.xlarge": 4, "t3.small": 2}
    calls = aws.calls.total
    vcpus(aws, "us-east-1", ["t3.small"])
    assert aws.calls.total == calls  # cached
    with pytest.raises(AwsError, match="does not offer instance type"):
        vcpus(aws, "us-east-1", ["zz9.huge"])


def test_inventory_finds_seat_machines_by_tag_only(aws: Aws) -> None:
    ec2 = aws.client("ec2", "eu-west-1")

    def launch(tag_list):
        spec = [{"ResourceType": "instance", "Tags": tag_list}] if tag_list else []
        return ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1,
                                 InstanceType="t3.small",
                                 TagSpecifications=spec)["Instances"][0]["InstanceId"]

    seat = launch(tags.tags("inv-course", "s01"))
    launch(tags.tags("inv-course"))                       # course tag, no seat: not a seat
    launch(tags.tags("other-course", "s01"))              # another course
    launch([])                                            # untagged (e.g. an EMR node)
    found = inventory.machines(aws, "inv-course", ("us-east-1", "eu-west-1"))
    assert [(m.instance_id, m.seat, m.region, m.state) for m in found.machines] == [
        (seat, "s01", "eu-west-1", "running")]
    ec2.terminate_instances(InstanceIds=[seat])
    assert inventory.machines(aws, "inv-course", ("eu-west-1",)).machines == ()
