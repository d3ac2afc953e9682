"""A teaching assistant's own identity (`labtui ta`): an IAM user in the course's path, tagged
``labtui:role = ta``, whose policy may read what the read-only console reads and is denied
every change — checked with the evaluator that decides the students' policies, then on the
sandbox with the assistant's own key: describing works, terminating and launching are
refused, the read-only console's status works through the credentials file, and `down`
removes the user."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from labtui import lifecycle, policy
from labtui.course import load
from labtui.sandbox.container import runtime_problem
from labtui.services import access

from .courses import CLUSTER, write_course

ACCOUNT = "123456789012"
STORAGE = """
[storage]
data_bucket = "tac-data"
scratch_bucket = "tac-scratch"
"""
ARN = f"arn:aws:iam::{ACCOUNT}:user/labtui/tac/labtui-tac-ta-alice"
CLUSTER_ARN = f"arn:aws:elasticmapreduce:us-east-1:{ACCOUNT}:cluster/j-1ABCDEF"
INSTANCE = f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0123456789abcdef0"
OURS = {"elasticmapreduce:ResourceTag/labtui:course": "tac",
        "elasticmapreduce:ResourceTag/labtui:seat": "s01"}
THEIRS = {"elasticmapreduce:ResourceTag/labtui:course": "other"}


def _decide(course, action: str, resource: str = "*", context: dict | None = None):
    return policy.decide(ARN, [policy.ta_policy(course, ACCOUNT)], action, resource,
                         context)


@pytest.mark.parametrize(("action", "resource", "context"), [
    ("ec2:DescribeInstances", "*", {}),
    ("ec2:DescribeVpcs", "*", {}),
    ("ec2:GetConsoleOutput", INSTANCE, {}),
    ("elasticmapreduce:DescribeCluster", CLUSTER_ARN, OURS),
    ("elasticmapreduce:ListSteps", CLUSTER_ARN, OURS),
    ("elasticmapreduce:DescribeStep", CLUSTER_ARN, OURS),
    ("elasticmapreduce:ListClusters", "*", {}),
    ("s3:GetObject", "arn:aws:s3:::tac-scratch/emr-logs/s01/steps/s-1/stderr.gz", {}),
    ("s3:GetObject", "arn:aws:s3:::tac-data/lecture1.csv", {}),
    ("s3:ListBucket", "arn:aws:s3:::tac-scratch", {"s3:prefix": "s02/"}),
    ("servicequotas:GetServiceQuota", "*", {}),
    ("pricing:GetProducts", "*", {}),
    ("cloudwatch:DescribeAlarms", "*", {}),
    ("budgets:ViewBudget", "*", {}),
    ("rds:DescribeDBInstances", "*", {}),
    ("sts:GetCallerIdentity", "*", {}),
    ("iam:ListUsers", "*", {}),
    ("iam:GetPolicyVersion", f"arn:aws:iam::{ACCOUNT}:policy/labtui/tac/labtui-tac-s01", {}),
])
def test_a_teaching_assistant_may_read_the_course(tmp_path: Path, action, resource,
                                                  context) -> None:
    course = load(write_course(tmp_path, "tac", extra=STORAGE + CLUSTER))
    assert _decide(course, action, resource, context).allowed, action


@pytest.mark.parametrize(("action", "resource", "context"), [
    ("ec2:RunInstances", INSTANCE, {}),
    ("ec2:TerminateInstances", INSTANCE, {}),
    ("ec2:StopInstances", INSTANCE, {}),
    ("ec2:StartInstances", INSTANCE, {}),
    ("ec2:RebootInstances", INSTANCE, {}),
    ("ec2:CreateSecurityGroup", "*", {}),
    ("ec2:ModifyInstanceAttribute", INSTANCE, {}),
    ("ec2:DescribeInstanceAttribute", INSTANCE, {}),   # user-data: the host's private key
    ("elasticmapreduce:RunJobFlow", "*", {}),
    ("elasticmapreduce:AddJobFlowSteps", CLUSTER_ARN, OURS),
    ("elasticmapreduce:TerminateJobFlows", CLUSTER_ARN, OURS),
    ("elasticmapreduce:GetClusterSessionCredentials", CLUSTER_ARN, OURS),
    ("s3:PutObject", "arn:aws:s3:::tac-scratch/s01/out.txt", {}),
    ("s3:DeleteObject", "arn:aws:s3:::tac-data/lecture1.csv", {}),
    ("s3:GetObject", "arn:aws:s3:::tac-scratch/labtui/database.json", {}),
    ("iam:CreateUser", f"arn:aws:iam::{ACCOUNT}:user/someone", {}),
    ("iam:CreateAccessKey", f"arn:aws:iam::{ACCOUNT}:user/labtui/tac/labtui-tac-s01", {}),
    ("iam:AttachUserPolicy", f"arn:aws:iam::{ACCOUNT}:user/labtui/tac/labtui-tac-ta-alice",
     {}),
    ("rds:DeleteDBInstance", "*", {}),
    ("ssm:SendCommand", "*", {}),
    ("ec2-instance-connect:SendSSHPublicKey", INSTANCE, {}),
    ("sts:AssumeRole", f"arn:aws:iam::{ACCOUNT}:role/labtui/tac/labtui-tac-s01", {}),
])
def test_a_teaching_assistant_changes_nothing(tmp_path: Path, action, resource,
                                             context) -> None:
    course = load(write_course(tmp_path, "tac", extra=STORAGE + CLUSTER))
    decision = _decide(course, action, resource, context)
    assert not decision.allowed and decision.explicit_deny, action


def test_only_the_courses_clusters_and_buckets(tmp_path: Path) -> None:
    course = load(write_course(tmp_path, "tac", extra=STORAGE + CLUSTER))
    assert not _decide(course, "elasticmapreduce:DescribeCluster", CLUSTER_ARN,
                       THEIRS).allowed
    assert not _decide(course, "s3:GetObject", "arn:aws:s3:::someone-else/x").allowed
    assert not _decide(course, "iam:GetUser", f"arn:aws:iam::{ACCOUNT}:user/admin").allowed
    text = json.dumps(policy.ta_policy(course, ACCOUNT), separators=(",", ":"))
    assert len(text) <= 6144   # a managed policy's limit


# ------------------------------------------------------------------------------ sandbox

sandboxed = pytest.mark.skipif(runtime_problem() is not None,
                               reason=f"no sandbox machines here: {runtime_problem()}")
ONCE = Config(retries={"max_attempts": 1})


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    from labtui.cli import main

    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _code(call, *args, **kwargs) -> str:
    try:
        call(*args, **kwargs)
    except ClientError as exc:
        return exc.response["Error"]["Code"]
    return "allowed"


@sandboxed
@pytest.mark.timeout(300)
def test_a_teaching_assistant_reads_the_class_with_its_own_key(
        ctx, sandbox, sandbox_state, tmp_path: Path, capsys,
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_course(tmp_path, "tac", students=2, extra=STORAGE)
    course = load(path)
    lifecycle.up(ctx, course, skip_setup=True)
    root = str(sandbox_state.root)

    # bad names: exit 2 with a fix, nothing made
    code, out, err = _cli(capsys, "ta", str(path), "al ice", "--sandbox", "--state-dir", root)
    assert code == 2 and "Fix:" in err and "Traceback" not in err
    iam = ctx.aws.client("iam")
    assert [u["UserName"] for u in iam.list_users(PathPrefix="/labtui/tac/")["Users"]] == []

    code, out, err = _cli(capsys, "ta", str(path), "alice", "--sandbox", "--state-dir", root)
    assert code == 0, err
    user = "labtui-tac-ta-alice"
    made = iam.get_user(UserName=user)["User"]
    assert made["Path"] == "/labtui/tac/"
    labels = {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName=user)["Tags"]}
    assert labels == {"labtui:course": "tac", "labtui:role": "ta"}
    [attached] = iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]
    version = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=attached["PolicyArn"],
                                      VersionId=version)["PolicyVersion"]["Document"]
    assert document == policy.ta_policy(course, access.account_id(ctx.aws))

    state = ctx.state.course("tac")
    kept = access.stored_ta_keys(state, "alice")
    assert kept is not None and kept.user == user
    assert stat.S_IMODE((state.secrets / "aws" / "ta-alice.json").stat().st_mode) == 0o600
    credentials = state.root / "ta" / "alice.credentials"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert credentials.read_text().startswith(f"[{user}]\n")
    assert kept.secret_access_key in credentials.read_text()
    assert kept.secret_access_key not in out + err
    assert (f"AWS_SHARED_CREDENTIALS_FILE={credentials} labtui --read-only --profile {user}"
            in out)
    assert sandbox.endpoint_url in out   # --sandbox ignores a profile: the endpoint instead

    # a rerun keeps the key, and writes it where --to says (0600)
    elsewhere = tmp_path / "alice.credentials"
    code, out, err = _cli(capsys, "ta", str(path), "alice", "--to", str(elsewhere),
                          "--json", "--sandbox", "--state-dir", root)
    assert code == 0, err
    [said] = [json.loads(line) for line in out.splitlines() if line.startswith("{")
              and json.loads(line).get("type") == "ta"]
    assert said["access_key_id"] == kept.access_key_id and said["user"] == user
    assert said["credentials_file"] == str(elsewhere)
    assert kept.secret_access_key not in out + err
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o600
    assert elsewhere.read_text() == credentials.read_text()
    [meta] = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    assert meta["AccessKeyId"] == kept.access_key_id

    # with the assistant's key: describing works, changing is refused and changes nothing
    def client(service: str):
        return boto3.client(service, "us-east-1", endpoint_url=sandbox.endpoint_url,
                            aws_access_key_id=kept.access_key_id,
                            aws_secret_access_key=kept.secret_access_key, config=ONCE)
    ec2 = client("ec2")
    seen = [i["InstanceId"] for r in ec2.describe_instances()["Reservations"]
            for i in r["Instances"]]
    assert len(seen) == 2
    assert _code(ec2.terminate_instances, InstanceIds=seen[:1]) == "UnauthorizedOperation"
    assert _code(ec2.stop_instances, InstanceIds=seen[:1]) == "UnauthorizedOperation"
    assert _code(ec2.run_instances, ImageId="ami-12c6146b", MinCount=1, MaxCount=1,
                 InstanceType="t3.micro") == "UnauthorizedOperation"
    s3 = client("s3")
    ctx.aws.client("s3").put_object(Bucket="tac-data", Key="lecture1.csv", Body=b"x,y\n")
    assert s3.get_object(Bucket="tac-data", Key="lecture1.csv")["Body"].read() == b"x,y\n"
    assert _code(s3.put_object, Bucket="tac-scratch", Key="s01/a", Body=b"1") == "AccessDenied"
    assert _code(client("iam").create_user, UserName="mallory") == "AccessDenied"
    states = {i["InstanceId"]: i["State"]["Name"] for r in ctx.aws.client(
        "ec2").describe_instances()["Reservations"] for i in r["Instances"]}
    assert states[seen[0]] in ("pending", "running")

    # the read-only console, through the credentials file and the profile it prints
    from labtui.context import open_context

    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    as_ta = open_context(course, profile=user, endpoint_url=sandbox.endpoint_url,
                         state_dir=str(tmp_path / "ta-state"), read_only=True)
    try:
        me = as_ta.aws.client("sts").get_caller_identity()["Arn"]
        assert me.endswith(f":user/labtui/tac/{user}")
        rows = lifecycle.status(as_ta, course)
        assert sorted(r.seat for r in rows) == ["s01", "s02"]
        assert all(r.instance_id in seen for r in rows)
    finally:
        as_ta.close()

    # no local secret (another computer): a new key, the old one deleted
    (state.secrets / "aws" / "ta-alice.json").unlink()
    code, out, err = _cli(capsys, "ta", str(path), "alice", "--sandbox", "--state-dir", root)
    assert code == 0, err
    [meta] = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    assert meta["AccessKeyId"] != kept.access_key_id
    assert access.stored_ta_keys(state, "alice").access_key_id == meta["AccessKeyId"]

    report = lifecycle.down(ctx, course)
    assert report.left == []
    assert iam.list_users(PathPrefix="/labtui/tac/")["Users"] == []
    assert iam.list_policies(Scope="Local", PathPrefix="/labtui/tac/")["Policies"] == []
