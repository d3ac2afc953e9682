"""Students' policies, decided by a real IAM evaluator (PMapper's local policy simulation):
what a seat may do with its own cluster, bucket prefix and machine, and what it may never do
— a classmate's things, allocating machines or clusters, IAM writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labtui import policy
from labtui.course import load

ACCOUNT = "123456789012"
COURSE = """
[course]
id = "pol"
name = "Policies"
regions = ["us-east-1"]
max_instances = 20

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

[network]
ssh_cidr = "198.51.100.0/24"

[storage]
data_bucket = "pol-data"
scratch_bucket = "pol-scratch"

[clusters]
release = "emr-7.2.0"
applications = ["Hadoop"]
[clusters.master]
instance_type = "m5.xlarge"

[access]
users = true
permissions = ["submit-steps", "view-clusters", "read-data", "write-scratch", "start-stop-own"]
"""
ARN = f"arn:aws:iam::{ACCOUNT}:user/labtui/pol/labtui-pol-s01"
CLUSTER = f"arn:aws:elasticmapreduce:us-east-1:{ACCOUNT}:cluster/j-1ABCDEF"
INSTANCE = f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0123456789abcdef0"


def _course(tmp_path: Path, text: str = COURSE):
    path = tmp_path / "course.toml"
    path.write_text(text)
    return load(path)


def _tagged(seat: str, course: str = "pol") -> dict[str, str]:
    return {"elasticmapreduce:ResourceTag/labtui:seat": seat,
            "elasticmapreduce:ResourceTag/labtui:course": course}


CASES = [
    ("own cluster: add a step", "elasticmapreduce:AddJobFlowSteps", CLUSTER, _tagged("s01"),
     True),
    ("own cluster: describe", "elasticmapreduce:DescribeCluster", CLUSTER, _tagged("s01"), True),
    ("own cluster: list steps", "elasticmapreduce:ListSteps", CLUSTER, _tagged("s01"), True),
    ("a classmate's cluster: add a step", "elasticmapreduce:AddJobFlowSteps", CLUSTER,
     _tagged("s02"), False),
    ("own seat's name in another course", "elasticmapreduce:AddJobFlowSteps", CLUSTER,
     _tagged("s01", "other-course"), False),
    ("an untagged cluster", "elasticmapreduce:AddJobFlowSteps", CLUSTER, {}, False),
    ("terminate own cluster", "elasticmapreduce:TerminateJobFlows", CLUSTER, _tagged("s01"),
     False),
    ("list clusters (no resource-level permission)", "elasticmapreduce:ListClusters", "*", {},
     True),
    ("start a cluster", "elasticmapreduce:RunJobFlow", "*", {}, False),
    ("launch a machine", "ec2:RunInstances", INSTANCE, {}, False),
    ("request spot", "ec2:RequestSpotInstances", "*", {}, False),
    ("stop own machine", "ec2:StopInstances", INSTANCE,
     {"aws:ResourceTag/labtui:seat": "s01", "aws:ResourceTag/labtui:course": "pol"}, True),
    ("stop a classmate's machine", "ec2:StopInstances", INSTANCE,
     {"aws:ResourceTag/labtui:seat": "s02", "aws:ResourceTag/labtui:course": "pol"}, False),
    ("read user-data, even its own", "ec2:DescribeInstanceAttribute", INSTANCE,
     {"aws:ResourceTag/labtui:seat": "s01", "aws:ResourceTag/labtui:course": "pol"}, False),
    ("own scratch prefix: write", "s3:PutObject", "arn:aws:s3:::pol-scratch/s01/out/part-0",
     {}, True),
    ("own scratch prefix: read", "s3:GetObject", "arn:aws:s3:::pol-scratch/s01/out/part-0",
     {}, True),
    ("own scratch prefix: list", "s3:ListBucket", "arn:aws:s3:::pol-scratch",
     {"s3:prefix": "s01/out/"}, True),
    ("a classmate's scratch: write", "s3:PutObject", "arn:aws:s3:::pol-scratch/s02/x", {}, False),
    ("a prefix that only starts like its own", "s3:PutObject",
     "arn:aws:s3:::pol-scratch/s011/x", {}, False),
    ("a classmate's scratch: list", "s3:ListBucket", "arn:aws:s3:::pol-scratch",
     {"s3:prefix": "s02/"}, False),
    ("the whole scratch bucket: list", "s3:ListBucket", "arn:aws:s3:::pol-scratch", {}, False),
    ("course data: read", "s3:GetObject", "arn:aws:s3:::pol-data/week1/a.csv", {}, True),
    ("course data: list", "s3:ListBucket", "arn:aws:s3:::pol-data", {}, True),
    ("course data: write", "s3:PutObject", "arn:aws:s3:::pol-data/week1/a.csv", {}, False),
    ("course data: delete", "s3:DeleteObject", "arn:aws:s3:::pol-data/week1/a.csv", {}, False),
    ("own cluster's logs", "s3:GetObject",
     "arn:aws:s3:::pol-scratch/emr-logs/s01/j-1ABCDEF/steps/s-1/stderr.gz", {}, True),
    ("a classmate's cluster logs", "s3:GetObject",
     "arn:aws:s3:::pol-scratch/emr-logs/s02/j-2/steps/s-1/stderr.gz", {}, False),
    ("create an IAM user", "iam:CreateUser", f"arn:aws:iam::{ACCOUNT}:user/x", {}, False),
    ("give itself a policy", "iam:AttachUserPolicy", ARN, {}, False),
    ("pass a role", "iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/admin", {}, False),
]


@pytest.mark.parametrize("what,action,resource,context,allowed", CASES,
                         ids=[c[0] for c in CASES])
def test_the_evaluator_decides_each_case(tmp_path: Path, what, action, resource, context,
                                         allowed) -> None:
    course = _course(tmp_path)
    document = policy.seat_policy(course, "s01", ACCOUNT)
    decision = policy.decide(ARN, [document], action, resource, context)
    assert decision.allowed is allowed, what


def test_allocation_is_denied_explicitly_so_no_other_policy_can_allow_it(tmp_path) -> None:
    course = _course(tmp_path)
    admin = {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    document = policy.seat_policy(course, "s01", ACCOUNT)
    for action in ("ec2:RunInstances", "elasticmapreduce:RunJobFlow", "iam:CreateAccessKey",
                   "ec2:DescribeInstanceAttribute"):
        decision = policy.decide(ARN, [admin, document], action, "*")
        assert not decision.allowed and decision.explicit_deny, action
    assert policy.decide(ARN, [admin, document], "s3:PutObject",
                         "arn:aws:s3:::pol-data/x").allowed  # the admin policy alone allows


def test_permissions_follow_the_course(tmp_path: Path) -> None:
    course = _course(tmp_path, COURSE.replace(
        '"submit-steps", "view-clusters", "read-data", "write-scratch", "start-stop-own"',
        '"view-clusters", "read-data"'))
    document = policy.seat_policy(course, "s01", ACCOUNT)
    assert not policy.decide(ARN, [document], "elasticmapreduce:AddJobFlowSteps", CLUSTER,
                             _tagged("s01")).allowed
    assert policy.decide(ARN, [document], "elasticmapreduce:DescribeCluster", CLUSTER,
                         _tagged("s01")).allowed
    assert not policy.decide(ARN, [document], "s3:PutObject",
                             "arn:aws:s3:::pol-scratch/s01/x").allowed
    assert not policy.decide(ARN, [document], "ec2:StopInstances", INSTANCE, {
        "aws:ResourceTag/labtui:seat": "s01", "aws:ResourceTag/labtui:course": "pol"}).allowed


def test_a_group_cluster_is_its_students_and_a_shared_identity_any_seats(tmp_path) -> None:
    grouped = COURSE.replace('email = "one@example.edu"', 'email = "one@example.edu"\n'
                             'group = "red"').replace('email = "two@example.edu"',
                             'email = "two@example.edu"\ngroup = "blue"').replace(
        '[clusters]\n', '[clusters]\nper = "group"\n')
    course = _course(tmp_path, grouped)
    document = policy.seat_policy(course, "s01", ACCOUNT)
    assert policy.decide(ARN, [document], "elasticmapreduce:AddJobFlowSteps", CLUSTER,
                         _tagged("red")).allowed
    assert not policy.decide(ARN, [document], "elasticmapreduce:AddJobFlowSteps", CLUSTER,
                             _tagged("blue")).allowed
    shared = _course(tmp_path, COURSE.replace("users = true", 'users = true\nidentity = "shared"'))
    assert policy.user_name(shared, "s01") == policy.user_name(shared, "s02") == \
        "labtui-pol-students"
    document = policy.seat_policy(shared, "s01", ACCOUNT)
    assert policy.decide(ARN, [document], "elasticmapreduce:AddJobFlowSteps", CLUSTER,
                         _tagged("s02")).allowed
    assert not policy.decide(ARN, [document], "elasticmapreduce:AddJobFlowSteps", CLUSTER,
                             _tagged("s02", "other-course")).allowed
    assert not policy.decide(ARN, [document], "ec2:RunInstances", INSTANCE).allowed


def test_the_policy_fits_a_managed_policy_and_the_table_says_what_the_evaluator_says(
        tmp_path: Path) -> None:
    course = _course(tmp_path)
    document = policy.seat_policy(course, "s01", ACCOUNT)
    assert len(json.dumps(document, separators=(",", ":"))) <= 6144
    rows = {c.what: c for c in policy.permissions_table(course, "s01", ACCOUNT)}
    assert rows["add a step to its own cluster (s01)"].decision.allowed
    assert not rows["add a step to a classmate's cluster (s02)"].decision.allowed
    assert rows["launch a machine"].decision.explicit_deny
    assert rows["write its own scratch (s3://pol-scratch/s01/)"].decision.allowed
    assert not rows["write a classmate's scratch (s3://pol-scratch/s02/)"].decision.allowed
    assert rows["read the course data (s3://pol-data/)"].decision.allowed
    assert not rows["write to the course data (s3://pol-data/)"].decision.allowed
