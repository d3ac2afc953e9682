"""A class with EMR clusters on the sandbox, from `up` to `down`: the clusters are created with
the course's exact spec (one per group here, none twice), their nodes are real machines that
ran the bootstrap action, steps run on the master, a failed one explains itself, and `down`
leaves no cluster and no node."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import pytest

from labtui import clusterops, lifecycle
from labtui.course import load
from labtui.events import ClusterChanged
from labtui.sandbox.container import runtime_problem
from labtui.services import handout, tags

from .test_cli import json_lines, run
from .test_setup import on_seat

pytestmark = pytest.mark.skipif(runtime_problem() is not None,
                                reason=f"no sandbox machines here: {runtime_problem()}")

COURSE = """
[course]
id = "emr"
name = "EMR"
regions = ["us-east-1"]
max_instances = 12

[[roster.students]]
id = "s01"
name = "One"
email = "one@example.edu"
group = "red"
[[roster.students]]
id = "s02"
name = "Two"
email = "two@example.edu"
group = "red"
[[roster.students]]
id = "s03"
name = "Three"
email = "three@example.edu"
group = "blue"

[machines]
instance_type = "t3.small"
login = "key"
packages = ["python3-boto3"]    # what the students' own code calls AWS with, from the seat

[network]
ssh_cidr = "198.51.100.0/24"

[storage]
data_bucket = "emr-course-data"
scratch_bucket = "emr-course-scratch"

[access]
users = true
permissions = ["submit-steps", "view-clusters", "read-data", "write-scratch"]

[clusters]
per = "group"
release = "emr-7.2.0"
applications = ["Hadoop", "Spark"]
idle_timeout_minutes = 60
[clusters.master]
instance_type = "m5.xlarge"
[clusters.core]
instance_type = "m5.xlarge"
count = 1
market = "spot"
bid_price = 0.10
[[clusters.configurations]]
classification = "spark-defaults"
properties = { "spark.executor.memory" = "2g" }
[[clusters.bootstrap]]
name = "course environment"
path = "bootstrap.sh"
args = ["emr-course-data"]
[[clusters.steps]]
name = "warm-up"
args = ["bash", "-lc", "echo warm-up on $(hostname) with $COURSE_DATA"]
"""

BOOTSTRAP = """#!/bin/bash
set -euo pipefail
echo "export COURSE_DATA=s3://$1/" | sudo tee /etc/profile.d/course.sh >/dev/null
echo "course environment set on $(hostname)"
"""


# Run on a seat as its student: the seat's own AWS identity (~/.aws/credentials, written by
# setup) against the sandbox's endpoint, as on AWS. Debian's botocore predates
# AWS_ENDPOINT_URL, so the endpoint is passed on.
STUDENT = """
import os, boto3
from botocore.exceptions import ClientError
url = os.environ["AWS_ENDPOINT_URL"]
emr, ec2 = boto3.client("emr", endpoint_url=url), boto3.client("ec2", endpoint_url=url)
step = [{{"Name": "from the seat", "ActionOnFailure": "CONTINUE", "HadoopJarStep": {{
    "Jar": "command-runner.jar", "Args": ["bash", "-c", "echo from the seat"]}}}}]
def attempt(label, call):
    try:
        print(label, call())
    except ClientError as exc:
        print(label, exc.response["Error"]["Code"])
attempt("own", lambda: emr.add_job_flow_steps(JobFlowId="{own}", Steps=step)["StepIds"][0])
attempt("other", lambda: emr.add_job_flow_steps(JobFlowId="{other}", Steps=step))
attempt("describe-own", lambda: emr.describe_cluster(ClusterId="{own}")["Cluster"]["Id"])
attempt("run-instances", lambda: ec2.run_instances(ImageId="ami-12c6146b", MinCount=1,
        MaxCount=1, InstanceType="t3.micro"))
attempt("run-job-flow", lambda: emr.run_job_flow(Name="mine", ReleaseLabel="emr-7.2.0",
        Instances={{"MasterInstanceType": "m5.xlarge", "InstanceCount": 1}},
        JobFlowRole="labtui-emr-emr-ec2", ServiceRole="labtui-emr-emr-service"))
print("me", boto3.client("sts", endpoint_url=url).get_caller_identity()["Arn"])
"""


def _object(s3, uri: str) -> str:
    bucket, key = uri[5:].split("/", 1)
    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return gzip.decompress(data).decode() if data[:2] == b"\x1f\x8b" else data.decode()


def _wait_step(ctx, course, seat: str, step_id: str, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while True:
        _, found = clusterops.steps(ctx, course, seat)
        state = next(s.state for s in found if s.step_id == step_id)
        if state in ("COMPLETED", "FAILED", "CANCELLED") or time.monotonic() > deadline:
            return state
        time.sleep(0.5)


def _waiting(emr, cluster_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        described = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
        if described["Status"]["State"] != "RUNNING" or time.monotonic() > deadline:
            return described
        time.sleep(0.5)


@pytest.mark.timeout(300)  # a whole journey, several boots: 120 s bounds one step
def test_a_class_with_clusters_from_up_to_down(ctx, sandbox, sandbox_state,
                                               tmp_path: Path) -> None:
    (tmp_path / "bootstrap.sh").write_text(BOOTSTRAP)
    path = tmp_path / "course.toml"
    path.write_text(COURSE)
    course = load(path)
    result = lifecycle.up(ctx, course, setup_wait=60, cluster_wait=180)
    assert result.setup_failed == {} and result.clusters_failed == {}
    assert len(result.clusters_started) == 2

    emr = ctx.aws.client("emr", "us-east-1")
    s3 = ctx.aws.client("s3", "us-east-1")
    ec2 = ctx.aws.client("ec2", "us-east-1")
    running = clusterops.live(ctx, course)
    assert sorted(running) == ["blue", "red"]
    subnet = ec2.describe_subnets(Filters=tags.course_filter("emr"))["Subnets"][0]["SubnetId"]
    for key, cluster in running.items():
        described = _waiting(emr, cluster.cluster_id)  # RUNNING (ready) while warm-up runs
        assert described["Status"]["State"] == "WAITING"
        assert described["ReleaseLabel"] == "emr-7.2.0"
        assert {a["Name"] for a in described["Applications"]} >= {"Hadoop", "Spark"}
        assert described["LogUri"] == f"s3://emr-course-scratch/emr-logs/{key}/"
        assert described["VisibleToAllUsers"] is True
        assert described["Ec2InstanceAttributes"]["Ec2SubnetId"] == subnet
        assert described["Ec2InstanceAttributes"]["Ec2KeyName"] == "labtui-emr"
        assert described["ServiceRole"] == "labtui-emr-emr-service"
        assert tags.as_dict(described["Tags"])[tags.SEAT] == key
        assert emr.get_auto_termination_policy(ClusterId=cluster.cluster_id)[
            "AutoTerminationPolicy"] == {"IdleTimeout": 3600}
        groups = {g["InstanceGroupType"]: g for g in emr.list_instance_groups(
            ClusterId=cluster.cluster_id)["InstanceGroups"]}
        assert groups["MASTER"]["InstanceType"] == "m5.xlarge"
        assert groups["MASTER"]["Market"] == "ON_DEMAND"
        assert groups["CORE"]["Market"] == "SPOT" and groups["CORE"]["BidPrice"] == "0.1"
        assert groups["CORE"]["RequestedInstanceCount"] == 1
        (action,) = emr.list_bootstrap_actions(ClusterId=cluster.cluster_id)["BootstrapActions"]
        assert action["ScriptPath"] == "s3://emr-course-data/labtui/scripts/bootstrap.sh"
        assert action["Args"] == ["emr-course-data"]
        # the bootstrap action ran on every node, each a real machine
        nodes = emr.list_instances(ClusterId=cluster.cluster_id)["Instances"]
        assert len(nodes) == 2
        for node in nodes:
            out = _object(s3, f"{described['LogUri']}{cluster.cluster_id}/node/"
                              f"{node['Ec2InstanceId']}/bootstrap-actions/1/stdout.gz")
            assert out.startswith("course environment set on ")
        # and the course's warm-up step ran on the master, after it
        (warm,) = clusterops.steps(ctx, course, key)[1]
        assert warm.state == "COMPLETED"
        out = _object(s3, f"{described['LogUri']}{cluster.cluster_id}/steps/{warm.step_id}/"
                          "stdout.gz")
        assert out.startswith("warm-up on ") and "with s3://emr-course-data/" in out

    # every seat's mrjob config names its group's cluster; cluster nodes are no seats
    assert [s.seat for s in lifecycle.status(ctx, course)] == ["s01", "s02", "s03"]
    for seat, key in (("s02", "red"), ("s03", "blue")):
        conf = on_seat(ctx, course, seat, "cat .mrjob.conf")[1]
        assert f"cluster_id: {running[key].cluster_id}" in conf
        assert f"cloud_tmp_dir: s3://emr-course-scratch/{seat}/tmp/" in conf
    again = lifecycle.up(ctx, course, setup_wait=60, cluster_wait=60)
    assert again.clusters_started == []                    # never a second cluster

    # a student's step: one that works, one that fails and says why
    env = {"LABTUI_STATE_DIR": str(sandbox_state.root)}
    good = json_lines(run("submit", str(path), "s01", "--sandbox", "--json", "--", "bash",
                          "-c", "echo hello from the cluster", env=env).stdout)[-1]
    bad = json_lines(run("submit", str(path), "s01", "--sandbox", "--json", "--name", "broken",
                         "--", "python3", "-c", "import nosuchmodule", env=env).stdout)[-1]
    assert good["cluster_id"] == bad["cluster_id"] == running["red"].cluster_id
    assert _wait_step(ctx, course, "s01", good["step_id"]) == "COMPLETED"
    assert _wait_step(ctx, course, "s01", bad["step_id"]) == "FAILED"
    listed = json_lines(run("steps", str(path), "red", "--sandbox", "--json", env=env).stdout)
    assert [s["state"] for s in listed][:2] == ["FAILED", "COMPLETED"]
    explained = run("step-log", str(path), "s02", bad["step_id"], "--sandbox", env=env)
    assert explained.returncode == 0, explained.stderr
    assert "Probable cause of failure" in explained.stdout
    assert "ModuleNotFoundError: No module named 'nosuchmodule'" in explained.stdout
    # until EMR copies the logs to S3 (minutes after the step), they are read on the master
    # over SSH (as hadoop, its host key pinned from its console)
    uri = running["red"].log_uri
    bucket, prefix = uri[5:].split("/", 1)
    for item in s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}{running['red'].cluster_id}"
                                   f"/steps/{bad['step_id']}/").get("Contents", []):
        s3.delete_object(Bucket=bucket, Key=item["Key"])
    found = clusterops.step_log(ctx, course, "s01", bad["step_id"])
    assert found.note == "read on the master node (the logs are not in S3 yet)"
    assert found.cause is not None and found.cause.source.startswith("/mnt/var/log/hadoop/")
    assert "No module named 'nosuchmodule'" in found.cause.render()
    rows = {r.key: r for r in clusterops.status(ctx, course)}
    assert rows["red"].steps_failed == 1 and rows["red"].steps_total == 3
    assert rows["blue"].steps_failed == 0 and rows["blue"].master

    # from a seat, as its student: their own cluster takes a step, a classmate's refuses it,
    # and neither a machine nor a cluster can be started from there
    script = STUDENT.format(own=running["red"].cluster_id, other=running["blue"].cluster_id)
    status, out = on_seat(ctx, course, "s01", f"python3 - <<'EOF'\n{script}\nEOF")
    assert status == 0, out
    said = dict(line.split(" ", 1) for line in out.splitlines())
    assert said["own"].startswith("s-")
    assert said["other"] == "AccessDeniedException"
    assert said["describe-own"] == running["red"].cluster_id
    assert said["run-instances"] == "UnauthorizedOperation"
    assert said["run-job-flow"] == "AccessDeniedException"
    assert said["me"].endswith(":user/labtui/emr/labtui-emr-s01")
    assert _wait_step(ctx, course, "s01", said["own"]) == "COMPLETED"
    assert len(clusterops.live(ctx, course)) == 2
    # each seat's handout card names its group's cluster, and only its own identity
    cards = {c.seat: c for c in handout.cards(ctx, course)}
    for seat, key in (("s01", "red"), ("s02", "red"), ("s03", "blue")):
        assert cards[seat].cluster_texts() == [
            f"{running[key].cluster_id} in us-east-1 ({key})"]
        assert cards[seat].identity == f"labtui-emr-{seat}"

    # idle clusters end by their auto-termination policy (the sandbox's clock moved on an
    # hour); the next up gives each group a new one and says why
    idle = {key: c.cluster_id for key, c in running.items()}
    sandbox._emr.now = lambda: time.monotonic() + 3601
    try:
        deadline = time.monotonic() + 60
        while any(emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"]
                  != "TERMINATED" for cid in idle.values()) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        sandbox._emr.now = time.monotonic
    for cid in idle.values():
        ended = emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]
        assert ended["State"] == "TERMINATED"
        assert ended["StateChangeReason"]["Code"] == "ALL_STEPS_COMPLETED"
    third = lifecycle.up(ctx, course, setup_wait=60, cluster_wait=180)
    assert len(third.clusters_started) == 2 and third.clusters_failed == {}
    running = clusterops.live(ctx, course)
    for key, cluster in running.items():
        said = [e.detail for e in ctx.sink.events
                if isinstance(e, ClusterChanged) and e.cluster_id == cluster.cluster_id]
        assert said[0].startswith(f"replaces {idle[key]}, which ended: ALL_STEPS_COMPLETED "
                                  "The cluster was idle")
    assert f"cluster_id: {running['red'].cluster_id}" in on_seat(ctx, course, "s01",
                                                                 "cat .mrjob.conf")[1]

    # replace one group's cluster; the other keeps its own
    old, new = lifecycle.replace_cluster(ctx, course, "s03")
    assert old is not None and old.cluster_id == running["blue"].cluster_id
    assert clusterops.live(ctx, course)["red"].cluster_id == running["red"].cluster_id
    assert clusterops.live(ctx, course)["blue"].cluster_id == new.cluster_id
    assert f"cluster_id: {new.cluster_id}" in on_seat(ctx, course, "s03", "cat .mrjob.conf")[1]

    report = lifecycle.down(ctx, course, lifecycle.DownOptions(
        save=False, delete_buckets=True, delete_results=True))
    assert report.failed == [] and report.left == []
    assert report.removed["clusters"] == 2 and report.removed["roles"] == 2
    assert clusterops.live(ctx, course) == {}
    live_nodes = [i for r in ec2.describe_instances(Filters=[
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping",
                                                   "stopped"]}])["Reservations"]
                  for i in r["Instances"]]
    assert live_nodes == []                                 # no machine, no node
