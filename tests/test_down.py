"""down on the sandbox: the students' work saved first, everything of the course removed in
every region where its tags are found, in dependency order, then proof that nothing is left;
never another course's resources; an interrupted down finishes on the second run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labtui import lifecycle
from labtui.course import load
from labtui.lifecycle import DownOptions
from labtui.services import tags, teardown

from .courses import write_course
from .test_cli import json_lines, run
from .test_setup import on_seat

TEARDOWN = """
[teardown]
save = ["~/work", "~/*.ipynb"]
bucket = "down-work"
"""


def course_file(tmp_path: Path, course_id: str = "down", students: int = 2,
                extra: str = TEARDOWN) -> Path:
    return write_course(tmp_path, course_id, students=students, machines='login = "key"',
                        extra=extra)


def plant(ctx, course_id: str, region: str = "us-east-1", vpc_subnet: str | None = None
          ) -> dict[str, str]:
    """Leftovers a class makes: a detached volume, an address, a NAT gateway, IAM users and
    roles — tagged with the course."""
    ec2 = ctx.aws.client("ec2", region)

    def tagged(kind: str) -> list[dict]:
        return [{"ResourceType": kind, "Tags": tags.tags(course_id)}]

    found = {"volume": ec2.create_volume(AvailabilityZone=f"{region}a", Size=1,
                                         TagSpecifications=tagged("volume"))["VolumeId"],
             "address": ec2.allocate_address(Domain="vpc", TagSpecifications=tagged(
                 "elastic-ip"))["AllocationId"]}
    if vpc_subnet:
        nat_ip = ec2.allocate_address(Domain="vpc")["AllocationId"]
        found["nat"] = ec2.create_nat_gateway(SubnetId=vpc_subnet, AllocationId=nat_ip,
                                              TagSpecifications=tagged("natgateway"))[
            "NatGateway"]["NatGatewayId"]
    iam = ctx.aws.client("iam", "us-east-1")
    user = f"{course_id}-s01"
    iam.create_user(UserName=user, Path=f"/labtui/{course_id}/", Tags=tags.tags(course_id, "s01"))
    iam.create_access_key(UserName=user)
    iam.create_login_profile(UserName=user, Password="Not-a-real-1")
    iam.put_user_policy(UserName=user, PolicyName="seat", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                                "Resource": "*"}]}))
    role = f"{course_id}-machines"
    iam.create_role(RoleName=role, AssumeRolePolicyDocument="{}", Tags=tags.tags(course_id))
    iam.create_instance_profile(InstanceProfileName=role, Tags=tags.tags(course_id))
    iam.add_role_to_instance_profile(InstanceProfileName=role, RoleName=role)
    return found


def bucket(ctx, name: str, course_id: str, holds: str | None = None) -> None:
    s3 = ctx.aws.client("s3", "us-east-1")
    s3.create_bucket(Bucket=name)
    labels = tags.tags(course_id) + ([{"Key": teardown.RESULTS_TAG, "Value": holds}]
                                      if holds else [])
    s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": labels})


def keys_in(ctx, name: str) -> list[str]:
    s3 = ctx.aws.client("s3", "us-east-1")
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=name).get("Contents", []))


def test_down_saves_work_removes_everything_and_verifies(ctx, tmp_path: Path) -> None:
    course = load(course_file(tmp_path))
    lifecycle.up(ctx, course, skip_setup=True)
    bucket(ctx, "down-work", "down", holds="work")
    for seat in ("s01", "s02"):
        assert on_seat(ctx, course, seat, f"mkdir -p work/sub && echo {seat} > work/sub/a.txt"
                       f" && echo nb > lab.ipynb && echo no > other.txt")[0] == 0
    subnet = ctx.aws.client("ec2", "us-east-1").describe_subnets(
        Filters=tags.course_filter("down"))["Subnets"][0]["SubnetId"]
    planted = plant(ctx, "down", vpc_subnet=subnet)
    far = plant_far(ctx, "down")

    report = lifecycle.down(ctx, course, DownOptions(save_to=tmp_path / "saved"))

    # the work came home and went to the bucket, before the machines went
    for seat in ("s01", "s02"):
        home = tmp_path / "saved" / seat
        assert (home / "work" / "sub" / "a.txt").read_text() == f"{seat}\n"
        assert (home / "lab.ipynb").read_text() == "nb\n"
        assert not (home / "other.txt").exists()
    assert keys_in(ctx, "down-work") == [
        "work/s01/lab.ipynb", "work/s01/work/sub/a.txt",
        "work/s02/lab.ipynb", "work/s02/work/sub/a.txt"]
    assert report.failed == []
    assert report.removed["instances"] == 2 and report.removed["VPCs"] == 1
    assert report.removed["volumes"] == 2  # here and in the far region
    assert report.removed["addresses"] == 1 and report.removed["NAT gateways"] == 1
    assert report.removed["IAM users"] == 1 and report.removed["roles"] == 1
    assert report.removed["instance profiles"] == 1
    assert report.left == []  # the verification pass found nothing
    assert any("bucket down-work" in k and "--delete-results" in k for k in report.kept)
    ec2 = ctx.aws.client("ec2", "us-east-1")
    left = {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]}
    assert planted["volume"] not in left
    far_ec2 = ctx.aws.client("ec2", far["region"])
    assert far_ec2.describe_volumes(Filters=tags.course_filter("down"))["Volumes"] == []
    iam = ctx.aws.client("iam", "us-east-1")
    assert [u["UserName"] for u in iam.list_users()["Users"]] == []
    assert iam.list_instance_profiles()["InstanceProfiles"] == []
    # each seat's work was saved before any machine was terminated
    events = [getattr(e, "text", "") + getattr(e, "state", "") for e in ctx.sink.events]
    saved = [i for i, e in enumerate(events) if e.startswith("saved")]
    terminated = [i for i, e in enumerate(events) if "terminated" in e and "instance" in e]
    assert len(saved) == 2 and terminated and max(saved) < min(terminated)
    # and a sweep of every region finds nothing of the course
    found = lifecycle.sweep(ctx).scan.findings
    assert [f for f in found if f.course == "down"] == []


def plant_far(ctx, course_id: str) -> dict[str, str]:
    """A tagged volume in a region the course file does not name (regions changed since)."""
    region = "ap-south-1"
    ec2 = ctx.aws.client("ec2", region)
    volume = ec2.create_volume(AvailabilityZone=f"{region}a", Size=1, TagSpecifications=[
        {"ResourceType": "volume", "Tags": tags.tags(course_id)}])["VolumeId"]
    return {"region": region, "volume": volume}


def test_down_never_touches_another_course_in_a_shared_vpc(ctx, tmp_path: Path) -> None:
    mine = load(course_file(tmp_path, students=1, extra=""))
    lifecycle.up(ctx, mine, skip_setup=True)
    ec2 = ctx.aws.client("ec2", "us-east-1")
    subnet = ec2.describe_subnets(Filters=tags.course_filter("down"))["Subnets"][0]
    other = ec2.run_instances(ImageId="ami-0a11ab5a4d0e02404", MinCount=1, MaxCount=1,
                              SubnetId=subnet["SubnetId"], TagSpecifications=[{
                                  "ResourceType": "instance", "Tags": tags.tags("other")}])
    other_id = other["Instances"][0]["InstanceId"]
    report = lifecycle.down(ctx, mine, DownOptions(save=False))
    state = ec2.describe_instances(InstanceIds=[other_id])["Reservations"][0]["Instances"][0]
    assert state["State"]["Name"] == "running"  # the other course's machine is untouched
    assert report.removed["instances"] == 1
    # the shared subnet/VPC stays, and down says who holds it (no endless retries)
    blocked = [f for f in report.failed if "DependencyViolation" in f]
    assert blocked and other_id in blocked[0] and "course other" in blocked[0]
    assert {(left.kind, left.why) for left in report.left} >= {("VPC", "exists")}


@pytest.mark.timeout(300)  # two downs and a save: 120 s bounds one step, not this
def test_a_seat_whose_work_was_not_saved_is_kept_unless_forced(ctx, tmp_path: Path) -> None:
    course = load(course_file(tmp_path, extra=""))
    lifecycle.up(ctx, course, skip_setup=True)
    # s02's work cannot be packed: the archive's path is taken by a folder
    assert on_seat(ctx, course, "s02", "mkdir -p /tmp/labtui-work-s02.tar.gz/x")[0] == 0
    report = lifecycle.down(ctx, course, DownOptions(save_to=tmp_path / "saved"))
    assert report.removed["instances"] == 1
    assert any("work was not saved" in k for k in report.kept)
    assert {left.kind for left in report.left} >= {"instance"}
    forced = lifecycle.down(ctx, course, DownOptions(save_to=tmp_path / "saved", force=True))
    assert forced.removed["instances"] == 1 and forced.left == []


def test_an_interrupted_down_finishes_on_the_second_run(ctx, tmp_path: Path,
                                                        monkeypatch) -> None:
    course = load(course_file(tmp_path, students=1, extra=""))
    lifecycle.up(ctx, course, skip_setup=True)
    original = teardown.Teardown.vpc

    def interrupted(self, region, vpc_id):  # Ctrl-C while the network goes
        raise KeyboardInterrupt

    monkeypatch.setattr(teardown.Teardown, "vpc", interrupted)
    with pytest.raises(KeyboardInterrupt):
        lifecycle.down(ctx, course, DownOptions(save=False))
    monkeypatch.setattr(teardown.Teardown, "vpc", original)
    report = lifecycle.down(ctx, course, DownOptions(save=False))
    assert report.removed["VPCs"] == 1 and "instances" not in report.removed
    assert report.left == [] and report.failed == []


def test_buckets_only_when_asked_and_results_only_when_asked_twice(ctx, tmp_path) -> None:
    course = load(course_file(tmp_path, students=1, extra=""))
    bucket(ctx, "down-data", "down")
    bucket(ctx, "down-results", "down", holds="results")
    ctx.aws.client("s3", "us-east-1").put_object(Bucket="down-results", Key="r.csv", Body=b"1")
    kept = lifecycle.down(ctx, course, DownOptions(save=False))
    assert "buckets" not in kept.removed and len(kept.kept) == 2
    some = lifecycle.down(ctx, course, DownOptions(save=False, delete_buckets=True))
    assert some.removed["buckets"] == 1 and any("down-results" in k for k in some.kept)
    every = lifecycle.down(ctx, course, DownOptions(save=False, delete_buckets=True,
                                                    delete_results=True))
    assert every.removed["buckets"] == 1 and every.kept == []


def test_down_from_the_command_line_says_what_is_left(sandbox_state, tmp_path) -> None:
    env = {"LABTUI_STATE_DIR": str(sandbox_state.root)}
    course = str(course_file(tmp_path, students=1, extra=""))
    bad = run("down", course, "--sandbox", "--yes", "--delete-results", env=env)
    assert bad.returncode == 2 and "--delete-results only applies with --delete-buckets" in \
        bad.stderr
    assert run("up", course, "--sandbox", "--yes", env=env, timeout=120).returncode == 0
    down = run("down", course, "--sandbox", "--yes", "--json", "--save-to",
               str(tmp_path / "saved"), env=env, timeout=120)
    assert down.returncode == 0, down.stderr
    lines = json_lines(down.stdout)
    assert {"type": "verified", "left": 0} in lines
    summary = next(line for line in lines if line["type"] == "summary")
    assert summary["removed"]["instances"] == 1 and summary["left"] == []


def test_a_foreign_peering_connection_is_named_not_looped_on(ctx, tmp_path: Path) -> None:
    course = load(course_file(tmp_path, students=1, extra=""))
    lifecycle.up(ctx, course, skip_setup=True)
    ec2 = ctx.aws.client("ec2", "us-east-1")
    mine = ec2.describe_vpcs(Filters=tags.course_filter("down"))["Vpcs"][0]["VpcId"]
    theirs = ec2.create_vpc(CidrBlock="10.99.0.0/16")["Vpc"]["VpcId"]
    peering = ec2.create_vpc_peering_connection(VpcId=theirs, PeerVpcId=mine)[
        "VpcPeeringConnection"]["VpcPeeringConnectionId"]
    report = lifecycle.down(ctx, course, DownOptions(save=False))
    assert report.removed["instances"] == 1
    assert any(peering in f and "not labtui's" in f for f in report.failed)
    assert ("VPC", mine) in {(left.kind, left.id) for left in report.left}


def test_a_missing_bucket_still_saves_locally_and_says_so(ctx, tmp_path: Path) -> None:
    course = load(course_file(tmp_path, students=1))  # [teardown] bucket does not exist
    lifecycle.up(ctx, course, skip_setup=True)
    assert on_seat(ctx, course, "s01", "mkdir -p work && echo x > work/x.txt")[0] == 0
    report = lifecycle.down(ctx, course, DownOptions(save_to=tmp_path / "saved"))
    assert (tmp_path / "saved" / "s01" / "work" / "x.txt").read_text() == "x\n"
    assert report.left == [] and report.removed["instances"] == 1
    problems = [e.message for e in ctx.sink.events if type(e).__name__ == "Problem"]
    assert any("bucket down-work does not exist" in p for p in problems)
