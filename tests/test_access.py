"""Students' identities on the sandbox: `up` gives each seat its own IAM user (in the course's
path, tagged) holding the policy labtui writes, and puts that user's key — and nothing of the
instructor's — on the seat's machine, 0600 and owned by the login user; a rerun converges;
`rotate` replaces one seat's key and password and deletes the old key; `down` removes the
users and their policies."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from labtui import accessops, lifecycle, policy
from labtui.course import load
from labtui.sandbox.container import runtime_problem
from labtui.services import access, passwords

from .test_cli import json_lines, run
from .test_setup import on_seat

pytestmark = pytest.mark.skipif(runtime_problem() is not None,
                                reason=f"no sandbox machines here: {runtime_problem()}")

# The instructor's (fake) credentials: distinctive, so a leak onto a machine is found.
ADMIN_KEY = "AKIAINSTRUCTOR7EXAMPLE"
ADMIN_SECRET = "instructor-secret-never-on-a-seat-0123456789"

COURSE = """
[course]
id = "acc"
name = "Access"
regions = ["us-east-1"]
max_instances = 4

[[roster.students]]
id = "s01"
name = "One"
email = "one@example.edu"
[[roster.students]]
id = "s02"
name = "Two"
email = "two@example.edu"

[machines]
instance_type = "t3.small"
login = "password"

[network]
ssh_cidr = "198.51.100.0/24"

[storage]
data_bucket = "acc-course-data"
scratch_bucket = "acc-course-scratch"

[access]
users = true
permissions = ["read-data", "write-scratch", "start-stop-own"]
"""


@pytest.fixture
def instructor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ADMIN_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ADMIN_SECRET)


def _keys_on(ctx, course, seat: str) -> dict[str, str]:
    status, text = on_seat(ctx, course, seat, "cat ~/.aws/credentials")
    assert status == 0
    pairs = (line.split(" = ", 1) for line in text.splitlines() if " = " in line)
    return dict(pairs)


def test_each_seat_gets_its_own_identity_and_only_its_key(instructor, ctx, sandbox_state,
                                                          tmp_path: Path) -> None:
    path = tmp_path / "course.toml"
    path.write_text(COURSE)
    course = load(path)
    result = lifecycle.up(ctx, course, setup_wait=60)
    assert sorted(result.set_up) == ["s01", "s02"] and result.setup_failed == {}

    iam = ctx.aws.client("iam")
    users = {u["UserName"]: u for u in iam.list_users(PathPrefix="/labtui/acc/")["Users"]}
    assert sorted(users) == ["labtui-acc-s01", "labtui-acc-s02"]
    account = access.account_id(ctx.aws)
    for seat in ("s01", "s02"):
        name = f"labtui-acc-{seat}"
        labels = {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName=name)["Tags"]}
        assert labels == {"labtui:course": "acc", "labtui:seat": seat}
        [attached] = iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]
        version = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"]
        document = iam.get_policy_version(PolicyArn=attached["PolicyArn"],
                                          VersionId=version)["PolicyVersion"]["Document"]
        assert document == policy.seat_policy(course, seat, account)
        # the key on the machine is this seat's user's, and the only one it has
        on_machine = _keys_on(ctx, course, seat)
        [meta] = iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
        assert on_machine["aws_access_key_id"] == meta["AccessKeyId"]
        status, text = on_seat(ctx, course, seat, "stat -c '%a %U' ~/.aws/credentials "
                               "~/.aws/config ~/.aws; cat ~/.aws/config")
        assert status == 0 and text.splitlines() == [
            "600 ubuntu", "600 ubuntu", "700 ubuntu", "[default]", "region = us-east-1"]
        # kept locally 0600, with the secret the machine has
        kept = access.stored_keys(ctx.state.course("acc"), course, seat)
        assert kept is not None and kept.secret_access_key == on_machine["aws_secret_access_key"]
        secret_file = ctx.state.course("acc").secrets / "aws" / f"{seat}.json"
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert _keys_on(ctx, course, "s01") != _keys_on(ctx, course, "s02")
    # nothing of the instructor's on any machine, anywhere a file could hold it
    for seat in ("s01", "s02"):
        status, text = on_seat(ctx, course, seat, (
            f"sudo grep -rIlE '{ADMIN_KEY}|{ADMIN_SECRET}' /home /root /etc /tmp /var/lib/cloud "
            "/var/log /run 2>/dev/null; sudo cat /proc/1/environ | tr '\\0' '\\n' | "
            f"grep -cE '{ADMIN_KEY}|{ADMIN_SECRET}' || true"))
        assert text.strip() == "0", f"the instructor's key is on {seat}: {text}"

    # a rerun converges: the same users, the same single key each
    before = {s: _keys_on(ctx, course, s) for s in ("s01", "s02")}
    lifecycle.up(ctx, course, setup_wait=60)
    assert {s: _keys_on(ctx, course, s) for s in ("s01", "s02")} == before
    assert all(len(iam.list_access_keys(UserName=f"labtui-acc-{s}")["AccessKeyMetadata"]) == 1
               for s in ("s01", "s02"))

    # rotate one seat: a new key and password there, the old key gone, the other untouched
    old_password = passwords.get(ctx.state.course("acc"), "s01")
    done = accessops.rotate(ctx, course, "s01")
    assert done.retired_key_id == before["s01"]["aws_access_key_id"]
    after = _keys_on(ctx, course, "s01")
    [meta] = iam.list_access_keys(UserName="labtui-acc-s01")["AccessKeyMetadata"]
    assert after["aws_access_key_id"] == meta["AccessKeyId"] == done.access_key_id
    assert after["aws_access_key_id"] != before["s01"]["aws_access_key_id"]
    assert passwords.get(ctx.state.course("acc"), "s01") != old_password
    assert _keys_on(ctx, course, "s02") == before["s02"]

    # the table a user reads, from the command line
    shown = run("access", str(path), "s01", "--sandbox", "--json",
                "--state-dir", str(sandbox_state.root))
    assert shown.returncode == 0, shown.stderr
    lines = json_lines(shown.stdout)
    assert lines[0]["policy"] == policy.seat_policy(course, "s01", account)
    table = {line["what"]: line["allowed"] for line in lines[1:]}
    assert table["launch a machine"] is False and table["stop its own machine"] is True
    assert table["write its own scratch (s3://acc-course-scratch/s01/)"] is True
    assert table["write a classmate's scratch (s3://acc-course-scratch/s02/)"] is False
    assert ADMIN_SECRET not in shown.stdout + shown.stderr
    assert before["s02"]["aws_secret_access_key"] not in shown.stdout + shown.stderr

    # another computer (its state folder lacks s02's secret) runs up: s02 gets a new key,
    # and its machine, set up long ago, gets that key too, not a dead one
    (ctx.state.course("acc").secrets / "aws" / "s02.json").unlink()
    lifecycle.up(ctx, course, setup_wait=60)
    [meta] = iam.list_access_keys(UserName="labtui-acc-s02")["AccessKeyMetadata"]
    assert meta["AccessKeyId"] != before["s02"]["aws_access_key_id"]
    assert _keys_on(ctx, course, "s02")["aws_access_key_id"] == meta["AccessKeyId"]

    report = lifecycle.down(ctx, course)
    assert report.left == []
    assert iam.list_users(PathPrefix="/labtui/acc/")["Users"] == []
    assert iam.list_policies(Scope="Local", PathPrefix="/labtui/acc/")["Policies"] == []


def test_access_refuses_a_course_without_identities(sandbox_state, tmp_path: Path) -> None:
    path = tmp_path / "course.toml"
    path.write_text(COURSE.replace("[access]\nusers = true", "[access]\nusers = false"))
    shown = run("access", str(path), "s01", "--sandbox", "--state-dir", str(sandbox_state.root))
    assert shown.returncode == 2
    assert "[access] users = true" in shown.stderr and "Traceback" not in shown.stderr


def test_buckets_are_private_encrypted_expiring_and_the_data_goes_up_once(
        ctx, sandbox_state, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "week1").mkdir(parents=True)
    (data / "week1" / "a.csv").write_text("x,y\n1,2\n")
    big = data / "big.bin"
    big.write_bytes(bytes(range(256)) * (9 * 4096 + 7))   # over one part: uploaded in parts
    path = tmp_path / "course.toml"
    path.write_text(COURSE.replace('scratch_bucket = "acc-course-scratch"',
                                   'scratch_bucket = "acc-course-scratch"\n'
                                   'scratch_expire_days = 9\nupload = "data/"'))
    course = load(path)
    lifecycle.up(ctx, course, skip_setup=True)
    s3 = ctx.aws.client("s3")
    for name in ("acc-course-data", "acc-course-scratch"):
        block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
        assert all(block.values()) and len(block) == 4
        [rule] = s3.get_bucket_encryption(Bucket=name)[
            "ServerSideEncryptionConfiguration"]["Rules"]
        assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        labels = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=name)["TagSet"]}
        assert labels["labtui:course"] == "acc"
    [rule] = s3.get_bucket_lifecycle_configuration(Bucket="acc-course-scratch")["Rules"]
    assert rule["Status"] == "Enabled" and rule["Expiration"]["Days"] == 9
    objects = {o["Key"]: o for o in s3.list_objects_v2(Bucket="acc-course-data")["Contents"]}
    assert sorted(objects) == ["big.bin", "week1/a.csv"]
    assert objects["big.bin"]["Size"] == big.stat().st_size
    assert objects["big.bin"]["ETag"].strip('"').endswith("-2")   # it went in two parts
    events = ctx.sink.events
    assert any("2 file(s) sent to s3://acc-course-data/" in e.human() for e in events)

    # a rerun sends only what changed
    (data / "week1" / "a.csv").write_text("x,y\n1,3\n")
    ctx.sink.events.clear()
    lifecycle.up(ctx, course, skip_setup=True)
    assert any("1 file(s) sent to s3://acc-course-data/, 1 unchanged" in e.human()
               for e in ctx.sink.events)
    body = s3.get_object(Bucket="acc-course-data", Key="week1/a.csv")["Body"].read()
    assert body == b"x,y\n1,3\n"
    lifecycle.down(ctx, course)


def test_a_taken_bucket_name_is_refused_before_anything_is_created(ctx, sandbox_state,
                                                                  tmp_path: Path) -> None:
    s3 = ctx.aws.client("s3")
    s3.create_bucket(Bucket="acc-course-data")   # someone else's: no course tag
    path = tmp_path / "course.toml"
    path.write_text(COURSE)
    with pytest.raises(Exception) as caught:
        lifecycle.up(ctx, load(path), skip_setup=True)
    assert "acc-course-data" in str(caught.value)
    assert ctx.aws.client("ec2").describe_instances()["Reservations"] == []
    assert ctx.aws.client("iam").list_users(PathPrefix="/labtui/acc/")["Users"] == []
    assert "acc-course-scratch" not in {b["Name"] for b in s3.list_buckets()["Buckets"]}


def test_a_late_student_gets_a_seat_and_a_removed_one_is_reported(ctx, sandbox_state,
                                                                  tmp_path: Path) -> None:
    path = tmp_path / "course.toml"
    path.write_text(COURSE)
    lifecycle.up(ctx, load(path), skip_setup=True)
    before = {s.seat: s.instance_id for s in lifecycle.status(ctx, load(path))}
    late = COURSE.replace('[machines]', '[[roster.students]]\nid = "s03"\nname = "Three"\n'
                          'email = "three@example.edu"\n\n[machines]')
    path.write_text(late)
    course = load(path)
    lifecycle.up(ctx, course, skip_setup=True)
    now = {s.seat: s.instance_id for s in lifecycle.status(ctx, course)}
    assert {k: now[k] for k in before} == before and now["s03"] is not None
    iam = ctx.aws.client("iam")
    assert iam.get_user(UserName="labtui-acc-s03")["User"]["Path"] == "/labtui/acc/"

    # s02 leaves the roster: reported with what AWS still holds for it, nothing deleted
    path.write_text(late.replace('[[roster.students]]\nid = "s02"\nname = "Two"\n'
                                 'email = "two@example.edu"\n', ""))
    course = load(path)
    assert [s.id for s in course.students] == ["s01", "s03"]
    shown = run("roster", str(path), "--sandbox", "--json",
                "--state-dir", str(sandbox_state.root))
    assert shown.returncode == 0, shown.stderr
    lines = json_lines(shown.stdout)
    rows = {line["student"]: line for line in lines if line["type"] == "student"}
    assert sorted(rows) == ["s01", "s03"]
    assert rows["s03"]["machine"] in ("pending", "running") and rows["s03"]["credentials"]
    [summary] = [line for line in lines if line["type"] == "roster"]
    assert summary["removed"] == [f"seat s02: 1 machine(s) ({before['s02']})",
                                  "IAM user labtui-acc-s02"]
    human = run("roster", str(path), "--sandbox", "--state-dir", str(sandbox_state.root))
    assert "not in the roster any more: seat s02" in human.stdout
    assert iam.get_user(UserName="labtui-acc-s02")["User"]["UserName"] == "labtui-acc-s02"
    lifecycle.down(ctx, course)


# Run on a seat: AWS from the machine itself, with the credentials of its instance profile
# (the sandbox's metadata service hands them out, as EC2's does).
FROM_THE_MACHINE = """
import os, boto3
from botocore.exceptions import ClientError
url = os.environ["AWS_ENDPOINT_URL"]
s3, ec2 = boto3.client("s3", endpoint_url=url), boto3.client("ec2", endpoint_url=url)
def attempt(label, call):
    try:
        call()
        print(label, "allowed")
    except ClientError as exc:
        print(label, exc.response["Error"]["Code"])
attempt("own-scratch", lambda: s3.put_object(Bucket="acc-course-scratch", Key="s01/a", Body=b"1"))
attempt("other-scratch", lambda: s3.put_object(Bucket="acc-course-scratch", Key="s02/a",
        Body=b"1"))
attempt("run-instances", lambda: ec2.run_instances(ImageId="ami-12c6146b", MinCount=1,
        MaxCount=1, InstanceType="t3.micro"))
print("me", boto3.client("sts", endpoint_url=url).get_caller_identity()["Arn"])
"""


@pytest.mark.timeout(300)  # a whole journey, several boots: 120 s bounds one step
def test_an_instance_profile_replaces_keys(ctx, sandbox_state, tmp_path: Path) -> None:
    path = tmp_path / "course.toml"
    path.write_text(COURSE.replace('login = "password"', 'login = "password"\n'
                                   'packages = ["python3-boto3"]').replace(
        "users = true", 'users = true\ncredentials = "instance-profile"'))
    course = load(path)
    result = lifecycle.up(ctx, course, setup_wait=60)
    assert result.setup_failed == {}
    iam, ec2 = ctx.aws.client("iam"), ctx.aws.client("ec2")
    assert iam.list_users(PathPrefix="/labtui/acc/")["Users"] == []
    for seat in ("s01", "s02"):
        machine = lifecycle.seat_machine(ctx, course, seat)
        [instance] = ec2.describe_instances(InstanceIds=[machine.instance_id])[
            "Reservations"][0]["Instances"]
        assert instance["IamInstanceProfile"]["Arn"].endswith(
            f":instance-profile/labtui/acc/labtui-acc-{seat}")
        status, text = on_seat(ctx, course, seat, "ls -a ~/.aws; cat ~/.aws/config")
        assert text.split() == [".", "..", "config", "[default]", "region", "=", "us-east-1"]
    status, out = on_seat(ctx, course, "s01", f"python3 - <<'EOF'\n{FROM_THE_MACHINE}\nEOF")
    assert status == 0, out
    said = dict(line.split(" ", 1) for line in out.splitlines())
    assert said == {"own-scratch": "allowed", "other-scratch": "AccessDenied",
                    "run-instances": "UnauthorizedOperation",
                    "me": said["me"]} and ":assumed-role/labtui-acc-s01/" in said["me"]
    rows = {r.student: r for r in accessops.roster(ctx, course).rows}
    assert rows["s01"].credentials and rows["s02"].credentials
    report = lifecycle.down(ctx, course)
    assert report.left == []
    assert iam.list_roles(PathPrefix="/labtui/acc/")["Roles"] == []
    assert iam.list_instance_profiles(PathPrefix="/labtui/acc/")["InstanceProfiles"] == []
