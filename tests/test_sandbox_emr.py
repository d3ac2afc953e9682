"""The sandbox plays EMR: a cluster's nodes are real machines, its bootstrap actions and
steps real processes on them, its states, logs and termination those of EMR.

Every test drives the real path with boto3 against the session sandbox and asserts what AWS
would show. Four small clusters (five nodes in all) are launched at once by one module
fixture and looked at by the tests in turn: A (eu-west-1, a master and a core node, a
bootstrap action, steps, a log URI, an idle policy), B (a failing bootstrap action), C (a
step failing with TERMINATE_CLUSTER) and D (steps cancelled, then TerminateJobFlows while a
step runs). Nodes are reached over SSH as ``hadoop`` with the cluster's key, the host key
pinned from the node's console output, as one would on AWS.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from labtui.sandbox import emr as player
from labtui.sandbox.container import runtime_problem
from labtui.services import ssh
from labtui.services.hostkeys import HostKey
from labtui.services.ssh import SshTarget

pytestmark = pytest.mark.skipif(runtime_problem() is not None,
                                reason=f"no sandbox machines here: {runtime_problem()}")
REGION = "eu-west-1"
OTHER = "us-east-1"
MASTER = {"InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1}
CORE = {"InstanceRole": "CORE", "InstanceType": "m5.xlarge", "InstanceCount": 1,
        "Market": "SPOT"}
CAPS = "grep -E '^Cap(Bnd|Eff)' /proc/self/status; sudo grep -E '^Cap(Bnd|Eff)' /proc/self/status"
MARK = """#!/bin/sh
# a bootstrap action: runs on every node as hadoop, with its args
sleep 1
echo "bootstrap ran with $1 as $(id -un)"
echo "$1" > "$HOME/marker"
"""
FAIL = "#!/bin/sh\necho 'about to fail' >&2\nexit 3\n"
WORDS = "#!/bin/sh\necho \"script-runner got: $*\"\n"
CRASH = "raise ValueError('the input had no words')"


def step(name: str, args: list[str], on_failure: str = "CONTINUE",
         jar: str = "command-runner.jar") -> dict[str, Any]:
    return {"Name": name, "ActionOnFailure": on_failure,
            "HadoopJarStep": {"Jar": jar, "Args": args}}


def aws(service: str, region: str, url: str):
    """A client of the sandbox with its fake credentials (the module's fixture is made
    before the per-test fake_aws fixture sets them in the environment)."""
    return boto3.client(service, region, endpoint_url=url, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def sleeper(marker: str) -> list[str]:
    """A step that runs for minutes; its process's command line holds ``marker``."""
    return ["python3", "-c", f"import time; time.sleep(300)  # {marker}"]


def wait_for(what: str, check, timeout: float = 90.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


class Watch:
    """Every cluster state a client polling DescribeCluster would see, in order."""

    def __init__(self, client, cluster_id: str) -> None:
        self.client, self.id = client, cluster_id
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            state = self.client.describe_cluster(ClusterId=self.id)["Cluster"]["Status"][
                "State"]
            if not self.seen or self.seen[-1] != state:
                self.seen.append(state)
            if state.startswith("TERMINATED"):
                return
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture(scope="module")
def world(sandbox):
    tag = uuid.uuid4().hex[:8]
    url = sandbox.endpoint_url
    ec2, emr, s3 = (aws(s, REGION, url) for s in ("ec2", "emr", "s3"))
    home_emr, home_ec2 = aws("emr", OTHER, url), aws("ec2", OTHER, url)
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24",
                               AvailabilityZone=f"{REGION}b")["Subnet"]["SubnetId"]
    key = HostKey.generate()
    key_name = f"emr-{tag}"
    ec2.import_key_pair(KeyName=key_name, PublicKeyMaterial=key.public_line.encode())
    bucket = f"labtui-emr-{tag}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    for name, body in (("mark.sh", MARK), ("fail.sh", FAIL), ("words.sh", WORDS)):
        s3.put_object(Bucket=bucket, Key=f"scripts/{name}", Body=body.encode())
    labels = [{"Key": "labtui:course", "Value": f"emr-{tag}"},
              {"Key": "labtui:seat", "Value": "s01"}]

    def launch(client, name: str, groups: list[dict], **extra) -> str:
        instances = {"InstanceGroups": groups, "KeepJobFlowAliveWhenNoSteps": True,
                     **extra.pop("instances", {})}
        return client.run_job_flow(
            Name=f"{name}-{tag}", ReleaseLabel="emr-7.2.0", Instances=instances,
            JobFlowRole="EMR_EC2_DefaultRole", ServiceRole="EMR_DefaultRole", Tags=labels,
            **extra)["JobFlowId"]

    a = launch(emr, "a", [MASTER, CORE], LogUri=f"s3://{bucket}/logs/",
               instances={"Ec2KeyName": key_name, "Ec2SubnetId": subnet},
               AutoTerminationPolicy={"IdleTimeout": 900},
               BootstrapActions=[{"Name": "mark", "ScriptBootstrapAction": {
                   "Path": f"s3://{bucket}/scripts/mark.sh", "Args": [f"hello-{tag}"]}}],
               Steps=[step("hello", ["bash", "-c", f"echo hello from $(hostname) {tag}"]),
                      step("crash", ["python3", "-c", CRASH]),
                      step("words", [f"s3://{bucket}/scripts/words.sh", "one", "two"],
                           jar="s3://us-east-1.elasticmapreduce/libs/script-runner/"
                               "script-runner.jar"),
                      step("caps", ["bash", "-c", CAPS]),
                      step("java", ["org.example.Main"], jar=f"s3://{bucket}/jobs/wc.jar")])
    watch = Watch(emr, a)
    b = launch(home_emr, "b", [MASTER], BootstrapActions=[{
        "Name": "fails", "ScriptBootstrapAction": {"Path": f"s3://{bucket}/scripts/fail.sh"}}])
    c = launch(home_emr, "c", [MASTER], LogUri=f"s3://{bucket}/logs",
               Steps=[step("fails", ["sh", "-c", "echo no input >&2; exit 2"],
                           "TERMINATE_CLUSTER"),
                      step("never", ["true"])])
    d = launch(home_emr, "d", [MASTER], Steps=[step("long", sleeper(f"long-{tag}")),
                                               step("queued", ["true"])])
    clusters = {"a": (emr, a), "b": (home_emr, b), "c": (home_emr, c), "d": (home_emr, d)}
    try:
        yield SimpleNamespace(tag=tag, ec2=ec2, emr=emr, s3=s3, home_emr=home_emr,
                              home_ec2=home_ec2, a=a, b=b,
                              c=c, d=d, subnet=subnet, key=key, key_name=key_name,
                              bucket=bucket, watch=watch, sandbox=sandbox)
    finally:
        watch.stop()
        for client, cid in clusters.values():
            state = client.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"]
            if not state.startswith("TERMINATED"):
                client.terminate_job_flows(JobFlowIds=[cid])
        for client, cid in clusters.values():
            wait_for(f"{cid} to end", lambda c=client, i=cid: c.describe_cluster(
                ClusterId=i)["Cluster"]["Status"]["State"].startswith("TERMINATED"), 60)
        sandbox._emr.now = time.monotonic


def cluster(client, cid: str) -> dict[str, Any]:
    return client.describe_cluster(ClusterId=cid)["Cluster"]


def state_of(client, cid: str) -> str:
    return cluster(client, cid)["Status"]["State"]


def steps_of(client, cid: str) -> dict[str, dict[str, Any]]:
    return {s["Name"]: s for s in client.list_steps(ClusterId=cid)["Steps"]}


def nodes_of(ec2, cid: str) -> list[dict[str, Any]]:
    reply = ec2.describe_instances(Filters=[
        {"Name": f"tag:{player.JOB_FLOW_TAG}", "Values": [cid]}])
    return [i for r in reply["Reservations"] for i in r["Instances"]]


def labels(instance: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


def hosts(sandbox) -> dict[str, Any]:
    return json.loads(sandbox.hosts_file.read_text() or "{}")


def log_text(world, key: str) -> str:
    body = world.s3.get_object(Bucket=world.bucket, Key=key)["Body"].read()
    return gzip.decompress(body).decode()


def host_key_from_console(ec2, instance_id: str) -> str:
    """The node's ed25519 host key as its console printed it at first boot (cloud-init's
    SSH HOST KEY KEYS block): the pin, read through the EC2 API as on AWS."""
    def found() -> str | None:
        text = ec2.get_console_output(InstanceId=instance_id, Latest=True).get("Output", "")
        if "-----END SSH HOST KEY KEYS-----" not in text:
            return None
        block = text.split("-----BEGIN SSH HOST KEY KEYS-----", 1)[1].split(
            "-----END SSH HOST KEY KEYS-----", 1)[0]
        lines = [line.split() for line in block.splitlines() if line.startswith("ssh-ed25519")]
        return " ".join(lines[0][:2]) if lines else None
    return wait_for(f"{instance_id}'s host keys on its console", found, 60)


def on_node(world, instance_id: str, command: str) -> tuple[int, str]:
    entry = hosts(world.sandbox)[instance_id]
    target = SshTarget(entry["host"], int(entry["port"]), "hadoop",
                       host_key_from_console(world.ec2, instance_id),
                       pkey=ssh.load_private_key(world.key.private_openssh()))
    client = ssh.connect(target, timeout=10, attempts=3)
    out: list[str] = []
    try:
        status = ssh.run(client, command, timeout=60, on_line=lambda _s, text: out.append(text))
    finally:
        client.close()
    return status, "\n".join(out)


def a_is_settled(world) -> dict[str, dict[str, Any]]:
    """A is WAITING with every step ended."""
    def settled():
        steps = steps_of(world.emr, world.a)
        done = all(s["Status"]["State"] in ("COMPLETED", "FAILED") for s in steps.values())
        return steps if done and state_of(world.emr, world.a) == "WAITING" else None
    return wait_for("cluster A's steps to end", settled, 100)


# ------------------------------------------------------------------------------ region, nodes


def test_a_cluster_lives_in_its_region_with_its_nodes_in_its_subnet(world):
    described = cluster(world.emr, world.a)
    assert described["ClusterArn"] == (
        f"arn:aws:elasticmapreduce:{REGION}:123456789012:cluster/{world.a}")
    assert world.a in {c["Id"] for c in world.emr.list_clusters()["Clusters"]}
    assert world.a not in {c["Id"] for c in world.home_emr.list_clusters()["Clusters"]}
    assert world.b in {c["Id"] for c in world.home_emr.list_clusters()["Clusters"]}
    attributes = described["Ec2InstanceAttributes"]
    assert attributes["Ec2SubnetId"] == world.subnet
    assert attributes["Ec2AvailabilityZone"] == f"{REGION}b"
    nodes = nodes_of(world.ec2, world.a)
    assert len(nodes) == 2
    roles = sorted(labels(n)[player.ROLE_TAG] for n in nodes)
    assert roles == ["CORE", "MASTER"]
    for node in nodes:
        assert node["SubnetId"] == world.subnet and node["KeyName"] == world.key_name
        assert "Platform" not in node  # Linux, not moto's Windows-looking example AMI
        spot = labels(node)[player.ROLE_TAG] == "CORE"  # the core group is a SPOT one
        assert node.get("InstanceLifecycle") == ("spot" if spot else None)
        tags = labels(node)
        assert tags["labtui:course"] == f"emr-{world.tag}" and tags["labtui:seat"] == "s01"
        assert tags[player.JOB_FLOW_TAG] == world.a
        wanted = attributes["EmrManagedMasterSecurityGroup" if tags[player.ROLE_TAG] ==
                            "MASTER" else "EmrManagedSlaveSecurityGroup"]
        assert [g["GroupId"] for g in node["SecurityGroups"]] == [wanted]
    # listed in no other region, and EMR's instance list names the same EC2 instances
    assert not nodes_of(world.home_ec2,
                        world.a)
    listed = world.emr.list_instances(ClusterId=world.a)["Instances"]
    assert {i["Ec2InstanceId"] for i in listed} == {n["InstanceId"] for n in nodes}
    # the cluster's tags follow it to its nodes, as on AWS
    world.emr.add_tags(ResourceId=world.a, Tags=[{"Key": "extra", "Value": world.tag}])
    assert all(labels(n).get("extra") == world.tag for n in nodes_of(world.ec2, world.a))
    world.emr.remove_tags(ResourceId=world.a, TagKeys=["extra"])
    assert all("extra" not in labels(n) for n in nodes_of(world.ec2, world.a))


def test_states_go_from_starting_through_bootstrapping_to_waiting(world):
    steps = a_is_settled(world)
    seen = world.watch.seen
    wait_for("the watch to see WAITING", lambda: seen[-1] == "WAITING", 10)
    assert seen[0] == "STARTING" and seen[-1] == "WAITING", seen
    assert [s for s in ("STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING") if s in seen] == \
        ["STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING"], seen
    assert seen.index("BOOTSTRAPPING") < seen.index("RUNNING")
    timeline = cluster(world.emr, world.a)["Status"]["Timeline"]
    assert timeline["ReadyDateTime"] > timeline["CreationDateTime"]
    assert "EndDateTime" not in timeline
    first = min(s["Status"]["Timeline"]["StartDateTime"] for s in steps.values())
    assert first >= timeline["ReadyDateTime"]
    groups = world.emr.list_instance_groups(ClusterId=world.a)["InstanceGroups"]
    assert {g["Status"]["State"] for g in groups} == {"RUNNING"}
    assert all(i["Status"]["State"] == "RUNNING"
               for i in world.emr.list_instances(ClusterId=world.a)["Instances"])


def test_the_bootstrap_action_ran_on_every_node_as_hadoop(world):
    a_is_settled(world)
    for node in nodes_of(world.ec2, world.a):
        iid = node["InstanceId"]
        status, out = on_node(world, iid, "cat ~/marker; stat -c %U ~/marker; sudo -n id -un")
        assert status == 0 and out.splitlines() == [f"hello-{world.tag}", "hadoop", "root"]
        folder = f"logs/{world.a}/node/{iid}/bootstrap-actions/1"
        assert log_text(world, f"{folder}/stdout.gz") == \
            f"bootstrap ran with hello-{world.tag} as hadoop\n"
        assert "Execution ended with ret val 0" in log_text(world, f"{folder}/controller.gz")


# ------------------------------------------------------------------------------ steps


def test_steps_run_on_the_master_in_order_and_their_logs_land_in_s3(world):
    steps = a_is_settled(world)
    hello, crash, words, caps, java = (steps[n] for n in ("hello", "crash", "words", "caps",
                                                          "java"))
    assert hello["Status"]["State"] == "COMPLETED"
    assert "FailureDetails" not in hello["Status"]
    folder = f"logs/{world.a}/steps/{hello['Id']}"
    assert log_text(world, f"{folder}/stdout.gz").startswith("hello from ")
    assert world.tag in log_text(world, f"{folder}/stdout.gz")
    controller = log_text(world, f"{folder}/controller.gz")
    assert "startExec 'bash -c" in controller
    assert "Step succeeded with exitCode 0" in controller
    log_text(world, f"{folder}/syslog.gz")
    # one at a time, in order: each starts after the one before ended
    ordered = [hello, crash, words, caps, java]
    for before, after in zip(ordered, ordered[1:], strict=False):
        assert after["Status"]["Timeline"]["StartDateTime"] >= \
            before["Status"]["Timeline"]["EndDateTime"]

    # a failing step with CONTINUE: FAILED, its error in FailureDetails and stderr.gz
    assert crash["Status"]["State"] == "FAILED"
    details = crash["Status"]["FailureDetails"]
    assert details["Message"] == "ValueError: the input had no words"
    assert details["Reason"]
    assert details["LogFile"] == f"s3://{world.bucket}/logs/{world.a}/steps/{crash['Id']}/" \
                                 "stderr.gz"
    stderr = log_text(world, f"logs/{world.a}/steps/{crash['Id']}/stderr.gz")
    assert stderr.startswith("Traceback (most recent call last):")
    assert "Step failed with exitCode 1" in log_text(
        world, f"logs/{world.a}/steps/{crash['Id']}/controller.gz")

    # the cluster went on: script-runner fetched the script from S3 and ran it with its args
    assert words["Status"]["State"] == "COMPLETED"
    assert log_text(world, f"logs/{world.a}/steps/{words['Id']}/stdout.gz") == \
        "script-runner got: one two\n"
    # a jar of its own: the sandbox runs no Java, and says so
    assert java["Status"]["State"] == "FAILED"
    assert "runs no Java" in java["Status"]["FailureDetails"]["Message"]

    # the live logs are on the master, where EMR keeps them
    master = next(n for n in nodes_of(world.ec2, world.a)
                  if labels(n)[player.ROLE_TAG] == "MASTER")
    status, out = on_node(world, master["InstanceId"],
                          f"cat /mnt/var/log/hadoop/steps/{hello['Id']}/stdout; "
                          f"tail -1 /mnt/var/log/hadoop/steps/{crash['Id']}/stderr")
    assert status == 0 and world.tag in out
    assert out.splitlines()[-1] == "ValueError: the input had no words"
    # a step can do no more than a process on the machine: an SSH session's capabilities,
    # its own and under sudo (the machine's bounding set)
    status, session = on_node(world, master["InstanceId"], CAPS)
    assert status == 0 and "CapEff:\t0000000000000000" in session
    assert log_text(world, f"logs/{world.a}/steps/{caps['Id']}/stdout.gz").splitlines() == \
        session.splitlines()


def test_a_step_failing_with_terminate_cluster_ends_the_cluster(world):
    wait_for("cluster C to end", lambda: state_of(world.home_emr, world.c).startswith(
        "TERMINATED"), 100)
    status = cluster(world.home_emr, world.c)["Status"]
    assert status["State"] == "TERMINATED_WITH_ERRORS"
    assert status["StateChangeReason"]["Code"] == "STEP_FAILURE"
    assert status["Timeline"]["EndDateTime"] >= status["Timeline"]["ReadyDateTime"]
    steps = steps_of(world.home_emr, world.c)
    assert steps["fails"]["Status"]["State"] == "FAILED"
    assert steps["fails"]["Status"]["FailureDetails"]["Message"] == "no input"
    assert steps["never"]["Status"]["State"] == "CANCELLED"
    [node] = nodes_of(world.home_ec2,
                      world.c)
    assert node["State"]["Name"] == "terminated"
    assert node["InstanceId"] not in hosts(world.sandbox)
    with pytest.raises(world.home_emr.exceptions.ClientError, match="may not be modified"):
        world.home_emr.add_job_flow_steps(JobFlowId=world.c, Steps=[step("late", ["true"])])


def test_a_failing_bootstrap_action_ends_the_cluster(world):
    wait_for("cluster B to end", lambda: state_of(world.home_emr, world.b).startswith(
        "TERMINATED"), 100)
    status = cluster(world.home_emr, world.b)["Status"]
    [node] = nodes_of(world.home_ec2,
                      world.b)
    assert status["State"] == "TERMINATED_WITH_ERRORS"
    assert status["StateChangeReason"] == {
        "Code": "BOOTSTRAP_FAILURE",
        "Message": f"On the master instance ({node['InstanceId']}), bootstrap action 1 "
                   "returned a non-zero return code"}
    assert "ReadyDateTime" not in status["Timeline"]
    assert node["State"]["Name"] == "terminated"


# ------------------------------------------------------------------------------ termination


def test_steps_are_cancelled_and_terminate_job_flows_ends_the_running_one(world, sandbox):
    emr = world.home_emr
    wait_for("D's first step to run", lambda: steps_of(emr, world.d)["long"]["Status"][
        "State"] == "RUNNING", 100)
    ids = {name: s["Id"] for name, s in steps_of(emr, world.d).items()}
    reply = emr.cancel_steps(ClusterId=world.d, StepIds=[ids["queued"]])
    assert reply["CancelStepsInfoList"] == [{"StepId": ids["queued"], "Status": "SUBMITTED"}]
    assert steps_of(emr, world.d)["queued"]["Status"]["State"] == "CANCELLED"
    # a running step, killed: CANCELLED, and ActionOnFailure is not taken
    emr.cancel_steps(ClusterId=world.d, StepIds=[ids["long"]],
                     StepCancellationOption="TERMINATE_PROCESS")
    wait_for("the running step to be cancelled", lambda: steps_of(emr, world.d)["long"][
        "Status"]["State"] == "CANCELLED", 30)
    wait_for("D to wait", lambda: state_of(emr, world.d) == "WAITING", 30)
    assert not _processes_with(f"long-{world.tag}")

    sid = emr.add_job_flow_steps(JobFlowId=world.d, Steps=[
        step("again", sleeper(f"again-{world.tag}"))])["StepIds"][0]
    wait_for("the new step to run", lambda: emr.describe_step(
        ClusterId=world.d, StepId=sid)["Step"]["Status"]["State"] == "RUNNING", 30)
    wait_for("its process", lambda: _processes_with(f"again-{world.tag}"), 10)
    [node] = nodes_of(world.home_ec2, world.d)
    assert node["InstanceId"] in hosts(sandbox)
    emr.terminate_job_flows(JobFlowIds=[world.d])
    assert state_of(emr, world.d) == "TERMINATING"  # at once; TERMINATED once its node is gone
    wait_for("D to be terminated", lambda: state_of(emr, world.d) == "TERMINATED", 30)
    status = cluster(emr, world.d)["Status"]
    assert status["StateChangeReason"] == {"Code": "USER_REQUEST",
                                           "Message": "Terminated by user request"}
    assert emr.describe_step(ClusterId=world.d, StepId=sid)["Step"]["Status"]["State"] == \
        "CANCELLED"
    assert not _processes_with(f"again-{world.tag}")
    [node] = nodes_of(world.home_ec2, world.d)
    assert node["State"]["Name"] == "terminated"
    assert node["InstanceId"] not in hosts(sandbox)  # its machine is gone
    assert not (sandbox.folder / "instances" / node["InstanceId"]).exists()


def test_an_idle_cluster_terminates_after_its_idle_timeout(world, sandbox):
    a_is_settled(world)
    emr = world.emr
    assert emr.get_auto_termination_policy(ClusterId=world.a)["AutoTerminationPolicy"] == {
        "IdleTimeout": 900}
    emr.put_auto_termination_policy(ClusterId=world.a,
                                    AutoTerminationPolicy={"IdleTimeout": 120})
    assert emr.get_auto_termination_policy(ClusterId=world.a)["AutoTerminationPolicy"] == {
        "IdleTimeout": 120}
    with pytest.raises(emr.exceptions.ClientError, match="IdleTimeout"):
        emr.put_auto_termination_policy(ClusterId=world.a,
                                        AutoTerminationPolicy={"IdleTimeout": 10})
    nodes = [n["InstanceId"] for n in nodes_of(world.ec2, world.a)]
    assert set(nodes) <= set(hosts(sandbox))
    time.sleep(0.5)
    assert state_of(emr, world.a) == "WAITING"  # not idle long enough yet
    sandbox._emr.now = lambda: time.monotonic() + 121  # the player's clock, 121 s later
    wait_for("A to be terminated", lambda: state_of(emr, world.a) == "TERMINATED", 30)
    status = cluster(emr, world.a)["Status"]
    assert status["StateChangeReason"] == {
        "Code": player.IDLE_CODE, "Message": player.IDLE_MESSAGE.format(seconds=120)}
    assert status["Timeline"]["EndDateTime"] > status["Timeline"]["ReadyDateTime"]
    assert all(n["State"]["Name"] == "terminated" for n in nodes_of(world.ec2, world.a))
    assert not set(nodes) & set(hosts(sandbox))
    assert not any((sandbox.folder / "instances" / iid).exists() for iid in nodes)
    groups = emr.list_instance_groups(ClusterId=world.a)["InstanceGroups"]
    assert {g["Status"]["State"] for g in groups} == {"ENDED"}
    assert {g["RunningInstanceCount"] for g in groups} == {0}
    assert all(i["Status"]["State"] == "TERMINATED"
               for i in emr.list_instances(ClusterId=world.a)["Instances"])


def _processes_with(word: str) -> list[int]:
    """Host pids of live processes whose command line holds ``word``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if word.encode() in cmd and state != "Z" and b"pytest" not in cmd:
            found.append(int(proc.name))
    return found
