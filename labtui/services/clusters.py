"""The course's EMR clusters: the spec from the course, the roles they run as, launch, steps,
status and termination. A cluster is found by its tags: ``labtui:course`` and ``labtui:seat``
(the student's id, the group's, or ``class`` for the one shared cluster)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from labtui.course import Course, EmrConfiguration, InstanceGroup
from labtui.errors import AwsError, InputError
from labtui.events import EventSink, LogLine
from labtui.services import buckets, tags
from labtui.services.aws import Aws, translate_errors

LIVE = ["STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING"]
ENDED = ["TERMINATING", "TERMINATED", "TERMINATED_WITH_ERRORS"]
READY = ("WAITING", "RUNNING")
COMMAND_RUNNER = "command-runner.jar"
SCRIPT_RUNNER = "s3://{region}.elasticmapreduce/libs/script-runner/script-runner.jar"
# What `aws emr create-default-roles` attaches (the roles here are the course's own, so
# `down` can delete them without touching another course's or the account's defaults).
SERVICE_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonElasticMapReduceRole"
INSTANCE_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonElasticMapReduceforEC2Role"


def _trust(service: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]})


@dataclass(frozen=True)
class Cluster:
    cluster_id: str
    seat: str                  # the cluster's key: student id, group, or "class"
    region: str
    state: str
    name: str
    reason: str = ""           # the state change reason, e.g. why it terminated
    created: str = ""
    ready: str = ""            # when it first was WAITING (ReadyDateTime)
    ended: str = ""
    log_uri: str = ""
    normalized_hours: int = 0
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def live(self) -> bool:
        return self.state in LIVE


def _cluster(region: str, cluster: dict[str, Any], static: dict[str, Any] | None = None
             ) -> Cluster:
    """From describe_cluster, or from a list_clusters summary plus what describe_cluster
    said once of the same cluster (``static``: its tags and log URI do not change)."""
    static = static or cluster
    labels = tags.as_dict(static.get("Tags"))
    status = cluster.get("Status", {})
    timeline = status.get("Timeline", {})
    reason = status.get("StateChangeReason", {})
    return Cluster(
        cluster["Id"], labels.get(tags.SEAT, ""), region, status.get("State", "?"),
        cluster.get("Name", ""),
        " ".join(str(v) for v in (reason.get("Code"), reason.get("Message")) if v),
        str(timeline.get("CreationDateTime", "")), str(timeline.get("ReadyDateTime", "")),
        str(timeline.get("EndDateTime", "")), str(static.get("LogUri") or ""),
        int(cluster.get("NormalizedInstanceHours") or 0), cluster)


# (region, cluster id) -> the describe_cluster answer of a cluster, for its tags and log URI:
# a refresh of the class lists clusters once per region instead of describing each again.
_STATIC: dict[tuple[str, str], dict[str, Any]] = {}


def course_clusters(aws: Aws, course_id: str, regions: Iterable[str],
                    states: list[str] | None = None) -> list[Cluster]:
    """The course's clusters in those states (default: live) in every region, newest first:
    one list_clusters pager per region, each cluster described once in the process's life.
    A cluster is taken once even if an emulator lists it under several regions."""
    found: dict[str, Cluster] = {}
    for region in regions:
        emr = aws.client("emr", region)
        for summary in aws.paginate("emr", region, "list_clusters", "Clusters",
                                    ClusterStates=states or LIVE):
            if summary["Id"] in found:
                continue
            static = _STATIC.get((region, summary["Id"]))
            if static is None:
                with translate_errors(f"emr.DescribeCluster {summary['Id']} in {region}"):
                    static = emr.describe_cluster(ClusterId=summary["Id"])["Cluster"]
                _STATIC[(region, summary["Id"])] = static
            labels = tags.as_dict(static.get("Tags"))
            if labels.get(tags.COURSE) != course_id or tags.SEAT not in labels:
                continue
            found[summary["Id"]] = _cluster(region, summary, static)
    return sorted(found.values(), key=lambda c: c.created, reverse=True)


def seat_clusters(aws: Aws, course_id: str, regions: Iterable[str]) -> dict[str, Cluster]:
    """Live clusters of the course by their key (the newest when a key has two)."""
    out: dict[str, Cluster] = {}
    for cluster in course_clusters(aws, course_id, regions):
        out.setdefault(cluster.seat, cluster)
    return out


def last_ended(aws: Aws, course_id: str, regions: Iterable[str]) -> dict[str, Cluster]:
    """The most recently ended cluster of each key (why a seat's cluster went)."""
    out: dict[str, Cluster] = {}
    for cluster in course_clusters(aws, course_id, regions, ENDED):
        out.setdefault(cluster.seat, cluster)
    return out


def describe(aws: Aws, region: str, cluster_id: str) -> Cluster:
    with translate_errors(f"emr.DescribeCluster {cluster_id} in {region}"):
        return _cluster(region, aws.client("emr", region).describe_cluster(
            ClusterId=cluster_id)["Cluster"])


# ------------------------------------------------------------------ the spec


def bucket_of(course: Course) -> str | None:
    """Where the course's cluster scripts and (by default) logs go."""
    clusters, storage = course.clusters, course.storage
    if clusters and clusters.bucket:
        return clusters.bucket
    if storage:
        return storage.data_bucket or storage.scratch_bucket
    return None


def log_uri(course: Course, key: str) -> str | None:
    """The cluster's LogUri: the course's own, or ``emr-logs/<key>/`` in the scratch bucket
    (else the course's bucket): one prefix per cluster key, so a student's read access is
    limited to their own cluster's logs. Never in the data bucket when there is a scratch
    bucket, since every student may read all of the data bucket."""
    assert course.clusters is not None
    base = course.clusters.log_uri
    if base is None:
        storage = course.storage
        bucket = (storage.scratch_bucket if storage and storage.scratch_bucket
                  else bucket_of(course))
        if bucket is None:
            return None
        base = f"s3://{bucket}/emr-logs/"
    return base.rstrip("/") + f"/{key}/"


def script_uri(course: Course, path: str) -> str:
    """An s3:// path as it is; a file of the course at its place in the course's bucket."""
    if path.startswith("s3://"):
        return path
    bucket = bucket_of(course)
    if bucket is None:  # validate refuses local scripts without a bucket
        raise InputError(f"{course.path}: clusters need a bucket for {path}. Fix: add "
                         "[clusters] bucket")
    return f"s3://{bucket}/labtui/scripts/{PurePosixPath(path).as_posix().lstrip('/')}"


def _group(group: InstanceGroup) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "Name": group.role.lower(), "InstanceRole": group.role,
        "InstanceType": group.instance_type, "InstanceCount": group.count,
        "Market": "SPOT" if group.market == "spot" else "ON_DEMAND"}
    if group.market == "spot" and group.bid_price is not None:
        spec["BidPrice"] = f"{group.bid_price:g}"
    if group.ebs_gb:
        spec["EbsConfiguration"] = {"EbsBlockDeviceConfigs": [{
            "VolumeSpecification": {"VolumeType": "gp3", "SizeInGB": group.ebs_gb},
            "VolumesPerInstance": 1}]}
    return spec


def _configuration(c: EmrConfiguration) -> dict[str, Any]:
    out: dict[str, Any] = {"Classification": c.classification,
                           "Properties": dict(c.properties)}
    if c.configurations:
        out["Configurations"] = [_configuration(inner) for inner in c.configurations]
    return out


def step_spec(course: Course, region: str, name: str, args: Iterable[str],
              jar: str = COMMAND_RUNNER, on_failure: str = "CONTINUE",
              script: str | None = None) -> dict[str, Any]:
    if script is not None:
        jar, args = SCRIPT_RUNNER.format(region=region), [script_uri(course, script), *args]
    return {"Name": name, "ActionOnFailure": on_failure,
            "HadoopJarStep": {"Jar": jar, "Args": list(args)}}


def job_flow(course: Course, key: str, region: str, *, subnet_id: str | None,
             key_name: str | None, service_role: str, instance_profile: str) -> dict[str, Any]:
    """The run_job_flow request of the cluster ``key`` (pure: a test reads it whole)."""
    spec = course.clusters
    assert spec is not None
    instances: dict[str, Any] = {
        "InstanceGroups": [_group(g) for g in spec.groups],
        "KeepJobFlowAliveWhenNoSteps": spec.keep_alive, "TerminationProtected": False}
    if subnet_id:
        instances["Ec2SubnetId"] = subnet_id
    if key_name:
        instances["Ec2KeyName"] = key_name
    request: dict[str, Any] = {
        "Name": f"{course.id}-{key}", "ReleaseLabel": spec.release,
        "Applications": [{"Name": a} for a in spec.applications],
        "Instances": instances,
        "Configurations": [_configuration(c) for c in spec.configurations],
        "BootstrapActions": [{"Name": b.name, "ScriptBootstrapAction": {
            "Path": script_uri(course, b.path), "Args": list(b.args)}} for b in spec.bootstrap],
        "Steps": [step_spec(course, region, s.name, s.args, s.jar, s.on_failure, s.script)
                  for s in spec.steps],
        "JobFlowRole": instance_profile, "ServiceRole": service_role,
        "VisibleToAllUsers": spec.visible_to_all_users,
        "AutoTerminationPolicy": {"IdleTimeout": spec.idle_timeout_minutes * 60},
        "Tags": tags.tags(course.id, key) + [{"Key": "Name", "Value": f"{course.id}-{key}"}],
    }
    uri = log_uri(course, key)
    if uri:
        request["LogUri"] = uri
    return request


# ------------------------------------------------------------------ roles and files


def role_names(course_id: str) -> tuple[str, str]:
    """(service role, instance role = its instance profile) of the course's clusters."""
    return f"labtui-{course_id}-emr-service", f"labtui-{course_id}-emr-ec2"


def ensure_roles(aws: Aws, course_id: str, sink: EventSink) -> tuple[str, str]:
    """The EMR service role and the nodes' instance role and profile, created when missing
    (as `aws emr create-default-roles` makes them) and tagged with the course."""
    iam = aws.client("iam")
    service, instance = role_names(course_id)
    labels = tags.tags(course_id)
    for name, principal, policy in ((service, "elasticmapreduce.amazonaws.com", SERVICE_POLICY),
                                    (instance, "ec2.amazonaws.com", INSTANCE_POLICY)):
        with translate_errors(f"iam.CreateRole {name}"):
            try:
                iam.get_role(RoleName=name)
            except iam.exceptions.NoSuchEntityException:
                iam.create_role(RoleName=name, AssumeRolePolicyDocument=_trust(principal),
                                Description=f"EMR clusters of labtui course {course_id}",
                                Tags=labels)
                sink.emit(LogLine(f"created IAM role {name}"))
            attached = {p["PolicyArn"] for p in iam.list_attached_role_policies(
                RoleName=name)["AttachedPolicies"]}
            if policy not in attached:
                iam.attach_role_policy(RoleName=name, PolicyArn=policy)
    with translate_errors(f"iam.CreateInstanceProfile {instance}"):
        try:
            profile = iam.get_instance_profile(InstanceProfileName=instance)["InstanceProfile"]
        except iam.exceptions.NoSuchEntityException:
            profile = iam.create_instance_profile(InstanceProfileName=instance,
                                                  Tags=labels)["InstanceProfile"]
        if not any(r["RoleName"] == instance for r in profile.get("Roles", [])):
            iam.add_role_to_instance_profile(InstanceProfileName=instance, RoleName=instance)
    return service, instance


def upload_scripts(aws: Aws, course: Course, sink: EventSink) -> int:
    """Send the course's bootstrap and step scripts to its bucket (unchanged ones skipped)."""
    assert course.clusters is not None
    sent = 0
    for path in course.clusters.local_files():
        uri = script_uri(course, path)
        bucket, key = uri[5:].split("/", 1)
        if buckets.upload(aws, bucket, key, course.path.parent / path):
            sent += 1
            sink.emit(LogLine(f"uploaded {path} to {uri}"))
    return sent


# ------------------------------------------------------------------ launch and wait


def start(aws: Aws, course: Course, key: str, region: str, *, subnet_id: str | None,
          key_name: str | None, roles: tuple[str, str]) -> Cluster:
    request = job_flow(course, key, region, subnet_id=subnet_id, key_name=key_name,
                       service_role=roles[0], instance_profile=roles[1])
    emr = aws.client("emr", region)
    # A role just created takes a few seconds to be usable by EMR: retried, as the CLI does.
    for attempt in range(6):
        try:
            with translate_errors(f"emr.RunJobFlow {request['Name']} in {region}"):
                reply = emr.run_job_flow(**request)
            break
        except AwsError as exc:
            if exc.code != "ValidationException" or "role" not in str(exc).lower() \
                    or attempt == 5:
                raise
            time.sleep(2 + attempt * 2)
    return describe(aws, region, reply["JobFlowId"])


def wait_ready(aws: Aws, clusters: Iterable[Cluster], on_change: Callable[[Cluster], None],
               *, timeout: float = 1800, poll: float = 5.0,
               cancelled: Callable[[], bool] = lambda: False) -> dict[str, Cluster]:
    """Poll the clusters until each is WAITING/RUNNING or ended; ``on_change`` hears each
    new state. Returns the last seen state of each, by id."""
    last = {c.cluster_id: c for c in clusters}
    deadline = time.monotonic() + timeout
    while True:
        pending = [c for c in last.values() if c.state not in READY and c.state not in ENDED]
        if not pending or time.monotonic() > deadline or cancelled():
            return last
        for cluster in pending:
            now = describe(aws, cluster.region, cluster.cluster_id)
            if now.state != cluster.state:
                on_change(now)
            last[cluster.cluster_id] = now
        if any(c.state not in READY and c.state not in ENDED for c in last.values()):
            time.sleep(poll if not aws.local else min(poll, 0.5))


def terminate(aws: Aws, clusters: Iterable[Cluster]) -> None:
    by_region: dict[str, list[str]] = {}
    for c in clusters:
        by_region.setdefault(c.region, []).append(c.cluster_id)
    for region, ids in by_region.items():
        with translate_errors(f"emr.TerminateJobFlows {', '.join(ids)} in {region}"):
            aws.client("emr", region).terminate_job_flows(JobFlowIds=ids)


def wait_terminated(aws: Aws, clusters: Iterable[Cluster], timeout: float = 1200) -> None:
    for c in clusters:
        waiter = aws.client("emr", c.region).get_waiter("cluster_terminated")
        delay = 1 if aws.local else 15
        with translate_errors(f"waiting for {c.cluster_id} to terminate"):
            waiter.wait(ClusterId=c.cluster_id,
                        WaiterConfig={"Delay": delay, "MaxAttempts": int(timeout / delay)})


# ------------------------------------------------------------------ what runs on it


@dataclass(frozen=True)
class StepInfo:
    step_id: str
    name: str
    state: str
    started: str = ""
    ended: str = ""
    reason: str = ""           # FailureDetails: reason and message
    log_file: str = ""
    args: tuple[str, ...] = ()
    on_failure: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"type": "step", "step_id": self.step_id, "name": self.name,
                "state": self.state, "started": self.started, "ended": self.ended,
                "reason": self.reason, "log_file": self.log_file, "args": list(self.args),
                "action_on_failure": self.on_failure}


def _step(step: dict[str, Any]) -> StepInfo:
    status = step.get("Status", {})
    timeline = status.get("Timeline", {})
    failure = status.get("FailureDetails") or {}
    reason = " ".join(str(v) for v in (failure.get("Reason"), failure.get("Message")) if v)
    if not reason and status.get("StateChangeReason", {}).get("Message"):
        reason = str(status["StateChangeReason"]["Message"])
    return StepInfo(step["Id"], step.get("Name", ""), status.get("State", "?"),
                    str(timeline.get("StartDateTime", "") or ""),
                    str(timeline.get("EndDateTime", "") or ""), reason,
                    str(failure.get("LogFile") or ""),
                    tuple(step.get("Config", {}).get("Args", [])),
                    str(step.get("ActionOnFailure", "")))


def steps(aws: Aws, cluster: Cluster) -> list[StepInfo]:
    """The cluster's steps, newest first (as EMR lists them)."""
    with translate_errors(f"emr.ListSteps {cluster.cluster_id}"):
        return [_step(s) for s in aws.paginate("emr", cluster.region, "list_steps", "Steps",
                                               ClusterId=cluster.cluster_id)]


def add_step(aws: Aws, cluster: Cluster, spec: dict[str, Any]) -> str:
    with translate_errors(f"emr.AddJobFlowSteps {cluster.cluster_id}"):
        return str(aws.client("emr", cluster.region).add_job_flow_steps(
            JobFlowId=cluster.cluster_id, Steps=[spec])["StepIds"][0])


# (region, cluster id) -> its master node: a refresh of the class asks for it each time, and
# a cluster keeps its master (and its address) for life.
_MASTERS: dict[tuple[str, str], dict[str, Any]] = {}


def master_node(aws: Aws, cluster: Cluster) -> dict[str, Any] | None:
    """The cluster's (first) master node as an instance for the address seam: its EC2 id
    and addresses."""
    known = _MASTERS.get((cluster.region, cluster.cluster_id))
    if known is not None:
        return known
    with translate_errors(f"emr.ListInstances {cluster.cluster_id}"):
        for node in aws.paginate("emr", cluster.region, "list_instances", "Instances",
                                 ClusterId=cluster.cluster_id, InstanceGroupTypes=["MASTER"]):
            if node.get("Status", {}).get("State") != "TERMINATED":
                found = {"InstanceId": node["Ec2InstanceId"],
                         "PublicIpAddress": node.get("PublicIpAddress"),
                         "PrivateIpAddress": node.get("PrivateIpAddress")}
                if found["PublicIpAddress"] or found["PrivateIpAddress"]:
                    _MASTERS[(cluster.region, cluster.cluster_id)] = found
                return found
    return None


def idle_minutes(cluster: Cluster, step_list: list[StepInfo],
                 now: datetime | None = None) -> float | None:
    """Minutes since the cluster last had work (WAITING only): since its last step ended,
    or since it became ready."""
    if cluster.state != "WAITING":
        return None
    now = now or datetime.now(UTC)
    marks = [s.ended for s in step_list if s.ended] + [cluster.ready or cluster.created]
    times = [parse_time(m) for m in marks if m]
    times = [t for t in times if t is not None]
    return max(0.0, (now - max(times)).total_seconds() / 60) if times else None


def parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


KEYS_BEGIN, KEYS_END = "-----BEGIN SSH HOST KEY KEYS-----", "-----END SSH HOST KEY KEYS-----"


def console_host_key(console: str, kind: str = "ssh-ed25519") -> str | None:
    """The host key a machine printed on its console at first boot (cloud-init's
    ``emit_keys_to_console``, on EMR's nodes as on any EC2 machine): how a node that labtui
    did not give a key is pinned without trusting the first connection."""
    inside = False
    found = None
    for line in console.splitlines():
        text = line.strip()
        if KEYS_BEGIN in text:
            inside = True
        elif KEYS_END in text:
            inside = False
        elif inside and text.startswith(kind + " "):
            found = " ".join(text.split()[:2])
    return found


def master_host_key(aws: Aws, region: str, instance_id: str) -> str | None:
    with translate_errors(f"ec2.GetConsoleOutput {instance_id}"):
        output = aws.client("ec2", region).get_console_output(
            InstanceId=instance_id, Latest=True).get("Output") or ""
    return console_host_key(output)
