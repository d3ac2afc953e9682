"""down against an AWS that misbehaves: throttled calls, DependencyViolation on the network's
parts and the key pair, persistent spot requests, instances that do not terminate, listings
that fail, and course resources in regions the course file no longer names.

Faults are injected where AWS would answer them: botocore event hooks on labtui's own
clients raise the ClientError AWS would send, or moto's state is changed; nothing of labtui
is mocked."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

from botocore.exceptions import ClientError

from labtui import lifecycle
from labtui.course import load
from labtui.lifecycle import DownOptions
from labtui.sandbox import flavors
from labtui.sandbox.runtime import ACCOUNT_ID
from labtui.services import retries, tags, teardown
from labtui.services.keys import key_pair_name

from .courses import write_course

COURSE = "faults"
IMAGE = flavors.FLAVORS["ubuntu-24.04"].image_id
REGION = "us-east-1"


def course_file(tmp_path: Path, students: int = 1):
    return load(write_course(tmp_path, COURSE, students=students, machines='login = "key"'))


def refuse(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} (injected)"},
                        "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)


class Faults:
    """Raise ``code`` for calls of the given operations (all of a client's when empty):
    ``times`` times each, or every other call when ``alternate``."""

    def __init__(self, code: str, operations: tuple[str, ...] = (), *, times: int = 1,
                 alternate: bool = False) -> None:
        self.code, self.operations, self.times, self.alternate = (code, operations, times,
                                                                  alternate)
        self.calls: Counter[str] = Counter()
        self.raised: Counter[str] = Counter()
        self.on = True
        self._lock = threading.Lock()

    def attach(self, client) -> Faults:
        client.meta.events.register(f"before-call.{client.meta.service_model.service_name}",
                                    self)
        return self

    def __call__(self, model=None, **_kwargs) -> None:
        name = model.name
        if not self.on:
            return
        with self._lock:
            self.calls[name] += 1
            if self.operations and name not in self.operations:
                return
            if self.alternate:
                hit = self.calls[name] % 2 == 1
            else:
                hit = self.raised[name] < self.times
            if hit:
                self.raised[name] += 1
        if hit:
            raise refuse(self.code, name)


def down(ctx, regions=(REGION,), **kwargs) -> teardown.DownReport:
    slept: list[float] = []
    report = teardown.down(ctx.aws, COURSE, list(regions), ctx.sink, sleep=slept.append,
                           **kwargs)
    report.left = teardown.leftovers(ctx.aws, COURSE, list(regions), sleep=slept.append)
    return report


def plant_iam_and_bucket(ctx) -> None:
    iam = ctx.aws.client("iam", REGION)
    iam.create_user(UserName=f"{COURSE}-s01", Tags=tags.tags(COURSE, "s01"))
    iam.create_access_key(UserName=f"{COURSE}-s01")
    s3 = ctx.aws.client("s3", REGION)
    s3.create_bucket(Bucket=f"{COURSE}-data")
    s3.put_bucket_tagging(Bucket=f"{COURSE}-data", Tagging={"TagSet": tags.tags(COURSE)})
    s3.put_object(Bucket=f"{COURSE}-data", Key="a.txt", Body=b"a")


def test_every_describe_and_delete_that_aws_throttles_is_tried_again(ctx, tmp_path) -> None:
    course = course_file(tmp_path)
    lifecycle.up(ctx, course, skip_setup=True)
    ec2 = ctx.aws.client("ec2", REGION)
    ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1, TagSpecifications=[
        {"ResourceType": "volume", "Tags": tags.tags(COURSE)}])
    plant_iam_and_bucket(ctx)
    # every call is refused once before it is answered, as a busy account sees it
    faults = {"ec2": Faults("RequestLimitExceeded", alternate=True).attach(ec2),
              "iam": Faults("Throttling", alternate=True).attach(
                  ctx.aws.client("iam", REGION)),
              "s3": Faults("SlowDown", alternate=True).attach(ctx.aws.client("s3", REGION))}

    report = down(ctx, delete_buckets=True)
    for fault in faults.values():
        fault.on = False

    assert report.failed == [] and report.left == []
    assert report.removed["instances"] == 1 and report.removed["volumes"] == 1
    assert report.removed["VPCs"] == 1 and report.removed["subnets"] >= 1
    assert report.removed["internet gateways"] == 1 and report.removed["key pairs"] == 1
    assert report.removed["security groups"] == 1
    assert report.removed["IAM users"] == 1 and report.removed["buckets"] == 1
    throttled = {op for f in faults.values() for op in f.raised}
    assert {"DescribeInstances", "DescribeSpotInstanceRequests", "TerminateInstances",
            "DescribeVolumes", "DeleteVolume", "DescribeAddresses", "DescribeNatGateways",
            "DescribeVpcs", "DescribeSubnets", "DeleteSubnet", "DescribeRouteTables",
            "DescribeInternetGateways", "DetachInternetGateway", "DeleteInternetGateway",
            "DescribeSecurityGroups", "DeleteSecurityGroup", "DeleteVpc",
            "DescribeKeyPairs", "DeleteKeyPair", "ListUsers", "ListAccessKeys",
            "DeleteAccessKey", "DeleteUser", "ListBuckets", "GetBucketTagging",
            "ListObjectVersions", "DeleteObjects", "DeleteBucket"} <= throttled
    assert ec2.describe_vpcs(Filters=tags.course_filter(COURSE))["Vpcs"] == []


def test_a_call_throttled_past_the_retries_is_reported_and_the_rest_still_goes(
        ctx, tmp_path) -> None:
    course = course_file(tmp_path)
    lifecycle.up(ctx, course, skip_setup=True)
    ec2 = ctx.aws.client("ec2", REGION)
    volume = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1, TagSpecifications=[
        {"ResourceType": "volume", "Tags": tags.tags(COURSE)}])["VolumeId"]
    plant_iam_and_bucket(ctx)
    faults = Faults("RequestLimitExceeded", ("DescribeNatGateways",), times=100).attach(ec2)

    report = down(ctx)
    faults.on = False

    # tried a bounded number of times (the NAT step, the VPC's, the verification), named
    assert faults.calls["DescribeNatGateways"] == 3 * retries.RETRIES
    assert any(f.startswith(f"{REGION} NAT gateways: RequestLimitExceeded")
               and "describe_nat_gateways" in f for f in report.failed)
    # and everything that does not need it went
    assert report.removed["instances"] == 1 and report.removed["volumes"] == 1
    assert report.removed["key pairs"] == 1 and report.removed["IAM users"] == 1
    assert ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [volume]}])[
        "Volumes"] == []
    # the verification pass says it could not look, never that the region is empty
    assert [(left.kind, left.id) for left in report.left] == [("region", REGION)]
    assert "could not be verified" in report.left[0].why


def test_dependency_violation_on_gateway_route_table_and_key_pair_is_waited_out(
        ctx, tmp_path) -> None:
    course = course_file(tmp_path)
    lifecycle.up(ctx, course, skip_setup=True)
    ec2 = ctx.aws.client("ec2", REGION)
    vpc = ec2.describe_vpcs(Filters=tags.course_filter(COURSE))["Vpcs"][0]["VpcId"]
    subnet = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])[
        "Subnets"][0]["SubnetId"]
    table = ec2.create_route_table(VpcId=vpc, TagSpecifications=[
        {"ResourceType": "route-table", "Tags": tags.tags(COURSE)}])["RouteTable"][
        "RouteTableId"]
    ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
    # AWS: the gateway "has some mapped public address(es)", the table and the key pair
    # are still in use for a while after the instances went
    faults = Faults("DependencyViolation", ("DetachInternetGateway", "DeleteRouteTable",
                                            "DeleteKeyPair"), times=2).attach(ec2)

    report = down(ctx)
    faults.on = False

    assert report.failed == [] and report.left == []
    assert report.removed["internet gateways"] == 1 and report.removed["route tables"] == 1
    assert report.removed["key pairs"] == 1 and report.removed["VPCs"] == 1
    assert faults.calls["DetachInternetGateway"] == 3
    assert faults.calls["DeleteRouteTable"] == 3 and faults.calls["DeleteKeyPair"] == 3
    assert ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [
        key_pair_name(COURSE)]}])["KeyPairs"] == []


def test_a_key_pair_held_by_another_course_is_named_not_looped_on(ctx, tmp_path) -> None:
    course = course_file(tmp_path)
    lifecycle.up(ctx, course, skip_setup=True)
    ec2 = ctx.aws.client("ec2", REGION)
    other = ec2.run_instances(ImageId=IMAGE, MinCount=1, MaxCount=1,
                              KeyName=key_pair_name(COURSE), TagSpecifications=[{
                                  "ResourceType": "instance", "Tags": tags.tags("other")}])[
        "Instances"][0]["InstanceId"]
    faults = Faults("DependencyViolation", ("DeleteKeyPair",), times=100).attach(ec2)

    report = down(ctx)

    assert faults.calls["DeleteKeyPair"] == 1  # no retries against somebody else's machine
    named = [f for f in report.failed if "key pair" in f]
    assert named and other in named[0] and "course other" in named[0]
    assert ("key pair", key_pair_name(COURSE)) in {(left.kind, left.id)
                                                   for left in report.left}


def test_persistent_spot_requests_are_cancelled_before_their_instances(ctx) -> None:
    ec2 = ctx.aws.client("ec2", REGION)
    labels = tags.tags(COURSE, "s01")
    request = ec2.request_spot_instances(
        Type="persistent", InstanceCount=1, SpotPrice="0.05",
        LaunchSpecification={"ImageId": IMAGE, "InstanceType": "t3.small"},
        TagSpecifications=[{"ResourceType": kind, "Tags": labels}
                           for kind in ("spot-instances-request", "instance")],
    )["SpotInstanceRequests"][0]["SpotInstanceRequestId"]
    instance = ec2.describe_spot_instance_requests(SpotInstanceRequestIds=[request])[
        "SpotInstanceRequests"][0]["InstanceId"]
    order: list[tuple[str, list[str]]] = []
    events = ec2.meta.events
    events.register("before-parameter-build.ec2.CancelSpotInstanceRequests",
                    lambda params, **_: order.append(("cancel",
                                                      params["SpotInstanceRequestIds"])))
    events.register("before-parameter-build.ec2.TerminateInstances",
                    lambda params, **_: order.append(("terminate", params["InstanceIds"])))

    report = down(ctx)

    assert order == [("cancel", [request]), ("terminate", [instance])]
    assert report.removed["spot requests"] == 1 and report.removed["instances"] == 1
    assert report.failed == [] and report.left == []


def test_an_instance_whose_spot_request_stays_is_left_running_and_named(ctx) -> None:
    ec2 = ctx.aws.client("ec2", REGION)
    request = ec2.request_spot_instances(
        Type="persistent", InstanceCount=1,
        LaunchSpecification={"ImageId": IMAGE, "InstanceType": "t3.small"},
        TagSpecifications=[{"ResourceType": kind, "Tags": tags.tags(COURSE, "s01")}
                           for kind in ("spot-instances-request", "instance")],
    )["SpotInstanceRequests"][0]["SpotInstanceRequestId"]
    instance = ec2.describe_spot_instance_requests(SpotInstanceRequestIds=[request])[
        "SpotInstanceRequests"][0]["InstanceId"]
    faults = Faults("UnauthorizedOperation", ("CancelSpotInstanceRequests",),
                    times=100).attach(ec2)

    report = down(ctx)

    # terminating it would only make AWS launch it again: it stays, and down says why
    assert faults.calls["TerminateInstances"] == 0 and "instances" not in report.removed
    assert any(instance in f and request in f and "could not be cancelled" in f
               for f in report.failed)
    assert {("instance", instance), ("spot request", request)} <= {
        (left.kind, left.id) for left in report.left}


def _moto_instance(instance_id: str):
    from moto.ec2.models import ec2_backends  # the sandbox's moto runs in this process

    return ec2_backends[ACCOUNT_ID][REGION].get_instance(instance_id)


def test_an_instance_that_does_not_reach_terminated_is_reported_not_counted(
        ctx, tmp_path) -> None:
    course = course_file(tmp_path, students=2)
    machines = lifecycle.up(ctx, course, skip_setup=True).launched
    stuck = machines[0].instance_id
    ec2 = ctx.aws.client("ec2", REGION)

    def hang(**_kwargs) -> None:  # AWS took the request; this one hangs in shutting-down
        state = _moto_instance(stuck)._state
        state.name, state.code = "shutting-down", 32

    ec2.meta.events.register("after-call.ec2.TerminateInstances", hang)

    report = down(ctx, wait_config={"Delay": 0, "MaxAttempts": 2})

    assert report.removed["instances"] == 1
    assert any(f"instance {stuck}: still shutting-down" in f for f in report.failed)
    assert ("instance", stuck, "shutting-down") in {(left.kind, left.id, left.why)
                                                    for left in report.left}


def test_one_instance_that_refuses_termination_does_not_keep_the_others(
        ctx, tmp_path) -> None:
    course = course_file(tmp_path, students=3)
    lifecycle.up(ctx, course, skip_setup=True)
    ec2 = ctx.aws.client("ec2", REGION)
    listed = [i["InstanceId"] for r in ec2.describe_instances(Filters=tags.course_filter(
        COURSE))["Reservations"] for i in r["Instances"]]
    protected = listed[0]  # the first one asked for: the batch call fails on it
    ec2.modify_instance_attribute(InstanceId=protected, DisableApiTermination={"Value": True})
    try:
        report = down(ctx)
    finally:
        ec2.modify_instance_attribute(InstanceId=protected,
                                      DisableApiTermination={"Value": False})
    assert report.removed["instances"] == 2
    assert any(protected in f and "OperationNotPermitted" in f for f in report.failed)
    states = {i["InstanceId"]: i["State"]["Name"] for r in ec2.describe_instances(
        InstanceIds=listed)["Reservations"] for i in r["Instances"]}
    assert states.pop(protected) == "running" and set(states.values()) == {"terminated"}
    assert [(left.kind, left.id) for left in report.left if left.kind == "instance"] == [
        ("instance", protected)]


def test_down_finds_the_course_in_every_region_from_its_tags(ctx, tmp_path) -> None:
    labels = tags.tags(COURSE)
    planted = {}
    mumbai = ctx.aws.client("ec2", "ap-south-1")
    planted["ap-south-1"] = mumbai.allocate_address(Domain="vpc", TagSpecifications=[
        {"ResourceType": "elastic-ip", "Tags": labels}])["AllocationId"]
    stockholm = ctx.aws.client("ec2", "eu-north-1")
    vpc = stockholm.describe_vpcs()["Vpcs"][0]["VpcId"]  # a default VPC: not the course's
    planted["eu-north-1"] = stockholm.create_security_group(
        GroupName="left", Description="left", VpcId=vpc, TagSpecifications=[
            {"ResourceType": "security-group", "Tags": labels}])["GroupId"]
    planted["sa-east-1"] = ctx.aws.client("ec2", "sa-east-1").request_spot_instances(
        Type="one-time", InstanceCount=1, LaunchSpecification={"ImageId": IMAGE},
        TagSpecifications=[{"ResourceType": "spot-instances-request", "Tags": labels}])[
        "SpotInstanceRequests"][0]["SpotInstanceRequestId"]
    planted["ca-central-1"] = ctx.aws.client("ec2", "ca-central-1").create_key_pair(
        KeyName=key_pair_name(COURSE))["KeyName"]
    # one region answers once busy (found after the retry), one never (listed, not skipped)
    Faults("RequestLimitExceeded", times=1).attach(ctx.aws.client("ec2", "ap-south-1"))
    Faults("UnauthorizedOperation", times=100).attach(ctx.aws.client("ec2", "eu-west-3"))
    looked = ["us-east-1", "us-west-2", "ap-south-1", "eu-north-1", "sa-east-1",
              "ca-central-1", "eu-west-3", "eu-central-1"]

    found = teardown.course_regions(ctx.aws, COURSE, looked, sleep=lambda _s: None)

    assert sorted(found) == sorted([*planted, "eu-west-3"])

    course = course_file(tmp_path)  # names us-east-1 only
    report = lifecycle.down(ctx, course, DownOptions(save=False))
    assert report.removed["addresses"] == 1 and report.removed["security groups"] == 1
    assert report.removed["spot requests"] == 1 and report.removed["key pairs"] == 1
    assert [left for left in report.left if left.region in planted] == []
