"""Batch jobs on worker machines (``[jobs]``): the workers' role, their launch, the runner
started on each over SSH, and what every job is doing, read back from S3.

A worker is an instance tagged ``labtui:course`` and ``labtui:job`` (the job it runs, or a
pack's label with its jobs in ``labtui:jobs``) but no ``labtui:seat``, so it is never taken
for a seat. It carries the course's role for jobs (an instance profile whose only right is
``s3:PutObject`` under the jobs' output prefix): no key of anyone reaches it. It runs
``labtui-job`` (labtui/data), which writes each job's ``status.json``, output and results to
``s3://BUCKET/PREFIX/<job>/`` and powers the worker off at the end; the worker was launched
with InstanceInitiatedShutdownBehavior=terminate, so it terminates itself. The state of a
job is therefore on AWS only (tags and S3): any computer can follow, fetch or cancel it.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labtui.course import Course, Job, Jobs
from labtui.services import access, machinescripts, ssh, tags
from labtui.services.aws import Aws, AwsError, translate_errors
from labtui.services.hostkeys import HostKey
from labtui.services.inventory import Machine
from labtui.services.machines import (
    GONE_STATES,
    KnownHosts,
    machine_user_data,
    resolve_image,
    spot_market,
    to_machine,
)
from labtui.services.remote import Remote
from labtui.state import CourseState

JOB = "labtui:job"
JOBS = "labtui:jobs"
RUNNER = ".labtui/job/labtui-job"
SPEC = ".labtui/job/spec.json"
CODE = "job"                       # the code folder on the worker, in the login user's home
ENDED = ("done", "failed", "cancelled")
WORKER_STATES = ("pending", "running", "stopping", "stopped", "shutting-down")


def login_user(ami: str) -> str:
    """The login user of the workers' image, as its AMI family has it."""
    if ami.startswith("ubuntu"):
        return "ubuntu"
    if ami.startswith("debian"):
        return "admin"
    return "ec2-user"


def role_name(course: Course) -> str:
    return f"labtui-{course.id}-jobs"


def worker_policy(jobs: Jobs) -> dict[str, Any]:
    """What a worker may do: put objects under the jobs' output prefix, nothing else."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "PutResults", "Effect": "Allow", "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{jobs.bucket}/{jobs.prefix}*"}]}


def ensure_role(aws: Aws, course: Course) -> str:
    """The workers' role and instance profile (converges); its name."""
    assert course.jobs is not None
    name = role_name(course)
    access.ensure_role_for_machines(aws, course, name, worker_policy(course.jobs),
                                    tags.tags(course.id, role="jobs"))
    return name


# ------------------------------------------------------------------------------- workers

@dataclass(frozen=True)
class Worker:
    label: str                      # the job's name, or a pack's label
    jobs: tuple[str, ...]
    machine: Machine

    @property
    def state(self) -> str:
        return self.machine.state


def worker_tags(course_id: str, label: str, jobs: Iterable[str]) -> list[dict[str, str]]:
    names = " ".join(jobs)
    return (tags.tags(course_id) + [{"Key": JOB, "Value": label},
                                    {"Key": JOBS, "Value": names[:256]},
                                    {"Key": "Name", "Value": f"labtui-{course_id}-{label}"}])


def workers(aws: Aws, course: Course, region: str,
            states: Iterable[str] = WORKER_STATES) -> list[Worker]:
    """The course's job workers in ``region``, from their tags."""
    filters = tags.course_filter(course.id) + [
        {"Name": "tag-key", "Values": [JOB]},
        {"Name": "instance-state-name", "Values": list(states)}]
    found = []
    for reservation in aws.paginate("ec2", region, "describe_instances", "Reservations",
                                    Filters=filters):
        for instance in reservation["Instances"]:
            labels = tags.as_dict(instance.get("Tags"))
            label = labels[JOB]
            names = tuple(labels.get(JOBS, label).split()) or (label,)
            found.append(Worker(label, names, to_machine(instance, region, label)))
    return found


def client_token(course_id: str, label: str, run: str) -> str:
    text = f"{course_id}|job|{label}|{run}"
    return "labtui-" + hashlib.sha256(text.encode()).hexdigest()[:48]


def launch_worker(aws: Aws, course: Course, state: CourseState, region: str, label: str,
                  names: list[str], instance_type: str, subnet: str, group: str,
                  key_name: str, profile: str, run: str) -> Machine:
    """One worker (idempotent for one ``run`` of a label: a retry gets the same one)."""
    jobs = course.jobs
    assert jobs is not None
    image = resolve_image(aws, region, jobs.ami, instance_type)
    host = HostKey.generate()
    labels = worker_tags(course.id, label, names)
    spec: dict[str, Any] = dict(
        ImageId=image.image_id, InstanceType=instance_type, MinCount=1, MaxCount=1,
        KeyName=key_name, UserData=machine_user_data(course, host),
        NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet, "Groups": [group],
                            "AssociatePublicIpAddress": True}],
        BlockDeviceMappings=[{"DeviceName": image.root_device, "Ebs": {
            "VolumeSize": jobs.disk_gb, "VolumeType": "gp3", "DeleteOnTermination": True}}],
        MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled"},
        IamInstanceProfile={"Name": profile},
        InstanceInitiatedShutdownBehavior="terminate",
        TagSpecifications=[{"ResourceType": kind, "Tags": labels}
                           for kind in ("instance", "volume")])
    if jobs.market == "spot":
        spec["InstanceMarketOptions"] = spot_market(jobs.max_price, persistent=False)
        spec["TagSpecifications"].append({"ResourceType": "spot-instances-request",
                                          "Tags": labels})
    ec2 = aws.client("ec2", region)
    for attempt in range(6):
        try:
            with translate_errors(f"ec2.RunInstances job {label}: {instance_type} in {region}"):
                instance = ec2.run_instances(ClientToken=client_token(course.id, label, run),
                                             **spec)["Instances"][0]
            break
        except AwsError as exc:   # a new instance profile takes EC2 a moment to know
            if "Instance Profile" not in str(exc) or attempt == 5:
                raise
            time.sleep(min(2 ** attempt, 10))
    machine = to_machine(instance, region, label)
    KnownHosts(state).add({machine.instance_id: host.public_line})
    return machine


def spec_for(course: Course, region: str, entries: list[Job], instance_type: str,
             timeout: int | None, keep: bool) -> dict[str, Any]:
    jobs = course.jobs
    assert jobs is not None
    return {"jobs": [{"name": j.name, "command": jobs.command_of(j)} for j in entries],
            "code": f"~/{CODE}", "install": "~/.labtui/job/install.sh" if jobs.install else None,
            "install_timeout": jobs.install_timeout, "install_attempts": jobs.install_attempts,
            "timeout": timeout if timeout is not None else jobs.timeout,
            "results": jobs.results, "bucket": jobs.bucket, "prefix": jobs.prefix,
            "region": region, "instance_type": instance_type, "keep": keep}


def runner_script() -> bytes:
    return machinescripts.script("labtui-job")


def code_archive(folder: Path | None) -> bytes:
    """The code folder as a tar.gz (empty when the course names none)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        if folder is not None:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    tar.add(path, arcname=path.relative_to(folder).as_posix())
    return out.getvalue()


def start_runner(remote: Remote, machine: Machine, course: Course, spec: dict[str, Any],
                 wait: float = 300) -> None:
    """Copy the code, the install script, the runner and its spec to the worker and start
    the runner detached (setsid, nohup): it goes on without this connection."""
    jobs = course.jobs
    assert jobs is not None
    client = remote.connect(machine, wait=wait)
    try:
        ssh.run(client, f"mkdir -p ~/{CODE} ~/.labtui/job", timeout=60)
        ssh.put(client, code_archive(jobs.code), ".labtui/job/code.tar.gz")
        if jobs.install is not None:
            ssh.put(client, str(jobs.install), ".labtui/job/install.sh", mode=0o755)
        ssh.put(client, runner_script(), RUNNER, mode=0o755)
        ssh.put(client, json.dumps(spec, indent=1).encode(), SPEC, mode=0o600)
        lines: list[str] = []
        status = ssh.run(
            # the runner alone in the background, its every stream away from this channel,
            # so the command (and the connection) ends at once
            client, f"tar xzf ~/.labtui/job/code.tar.gz -C ~/{CODE} || exit 1\n"
                    f"setsid nohup python3 ~/{RUNNER} ~/{SPEC} >/dev/null 2>&1 </dev/null &\n"
                    "echo started", timeout=60, on_line=lambda _s, text: lines.append(text))
        if status != 0:
            raise ssh.SshError(f"{machine.seat}: the runner did not start (exit {status}): "
                               + " ".join(lines[-3:]))
    finally:
        client.close()


# ------------------------------------------------------------------------ state from S3

@dataclass
class JobState:
    name: str
    instance_type: str
    command: str
    state: str = "queued"           # queued launching installing running uploading done
    attempt: int | None = None      # failed cancelled
    attempts: int | None = None
    exit: int | None = None
    runtime: float | None = None
    reason: str | None = None
    instance_id: str | None = None
    started: str | None = None
    ended: str | None = None
    tail: list[str] = field(default_factory=list)

    @property
    def shown(self) -> str:
        if self.state == "installing" and self.attempt:
            return f"installing (attempt {self.attempt}/{self.attempts or '?'})"
        return self.state

    def as_json(self) -> dict[str, Any]:
        return {"type": "job", "job": self.name, "state": self.state,
                "instance_type": self.instance_type, "attempt": self.attempt,
                "exit": self.exit, "runtime": self.runtime, "reason": self.reason,
                "instance_id": self.instance_id, "tail": self.tail}


def read_status(aws: Aws, jobs: Jobs, region: str, name: str) -> dict[str, Any] | None:
    s3 = aws.client("s3", region)
    key = f"{jobs.prefix}{name}/status.json"
    try:
        body = s3.get_object(Bucket=jobs.bucket, Key=key)["Body"].read()
    except Exception as exc:  # noqa: BLE001 - NoSuchKey or NoSuchBucket: nothing yet
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "NoSuchBucket", "404"):
            return None
        raise AwsError(f"s3.GetObject s3://{jobs.bucket}/{key}: {exc}", code=code) from None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def write_status(aws: Aws, jobs: Jobs, region: str, name: str, data: dict[str, Any]) -> None:
    with translate_errors(f"s3.PutObject s3://{jobs.bucket}/{jobs.prefix}{name}/status.json"):
        aws.client("s3", region).put_object(
            Bucket=jobs.bucket, Key=f"{jobs.prefix}{name}/status.json",
            Body=json.dumps(data, indent=1).encode(), ContentType="application/json")


def merge(entry: Job, command: str, status: dict[str, Any] | None,
          worker: Worker | None) -> JobState:
    """A job's state from its status.json and its worker (either may be missing)."""
    found = JobState(entry.name, entry.instance_type, command)
    if status:
        found.state = str(status.get("state", "queued"))
        found.attempt, found.attempts = status.get("attempt"), status.get("attempts")
        found.exit, found.runtime = status.get("exit"), status.get("runtime")
        found.reason, found.instance_id = status.get("reason"), status.get("instance_id")
        found.started, found.ended = status.get("started"), status.get("ended")
        found.tail = list(status.get("install_tail") or status.get("stderr_tail") or [])
    if worker is not None:
        found.instance_id = found.instance_id or worker.machine.instance_id
        if not status:
            found.state = "launching" if worker.state in ("pending", "running") else "queued"
        if found.state not in ENDED and worker.state in GONE_STATES + ("shutting-down",):
            found.state, found.reason = "failed", found.reason or (
                f"its worker {worker.machine.instance_id} ended ({worker.state}) before the "
                "job did")
    elif status and found.state not in ENDED:
        found.state, found.reason = "failed", "its worker is gone and the job never ended"
    return found


def fetch(aws: Aws, jobs: Jobs, region: str, name: str, folder: Path) -> tuple[int, int]:
    """Download a job's objects into ``folder`` (skipping files already there with the same
    size); (downloaded, skipped)."""
    s3 = aws.client("s3", region)
    prefix = f"{jobs.prefix}{name}/"
    got = skipped = 0
    with translate_errors(f"s3.ListObjectsV2 s3://{jobs.bucket}/{prefix}"):
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=jobs.bucket, Prefix=prefix)
        objects = [o for page in pages for o in page.get("Contents", [])]
    for obj in objects:
        rel = obj["Key"][len(prefix):]
        if not rel or rel.endswith("/") or ".." in rel.split("/"):
            continue
        target = folder / rel
        if target.exists() and target.stat().st_size == obj["Size"]:
            skipped += 1
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with translate_errors(f"s3.GetObject s3://{jobs.bucket}/{obj['Key']}"):
            s3.download_file(jobs.bucket, obj["Key"], str(target))
        got += 1
    return got, skipped


def terminate(aws: Aws, found: list[Worker]) -> None:
    by_region: dict[str, list[str]] = {}
    for w in found:
        by_region.setdefault(w.machine.region, []).append(w.machine.instance_id)
    for region, ids in by_region.items():
        with translate_errors(f"ec2.TerminateInstances {' '.join(ids)}"):
            aws.client("ec2", region).terminate_instances(InstanceIds=ids)



def output_text(aws: Aws, jobs: Jobs, region: str, name: str, file: str,
                most: int = 64 * 1024) -> str | None:
    """The end (``most`` bytes) of one of a job's outputs in S3 (stdout.txt, stderr.txt,
    install.log), or None while there is none."""
    key = f"{jobs.prefix}{name}/{file}"
    s3 = aws.client("s3", region)
    try:
        head = s3.head_object(Bucket=jobs.bucket, Key=key)
    except Exception:  # noqa: BLE001 - 404: not written yet
        return None
    size = int(head.get("ContentLength", 0))
    extra = {"Range": f"bytes={size - most}-"} if size > most else {}
    with translate_errors(f"s3.GetObject s3://{jobs.bucket}/{key}"):
        body = s3.get_object(Bucket=jobs.bucket, Key=key, **extra)["Body"].read()
    return body.decode("utf-8", "replace")
