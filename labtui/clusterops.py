"""The class's EMR clusters: the use cases both front ends call (up's part of them, status,
steps and their logs, terminate, replace). Clusters are found by their tags; a seat names
its cluster by its student, its group or the class (``Course.cluster_key``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from labtui.context import Context
from labtui.course import Course, Student
from labtui.errors import InputError, LabError
from labtui.events import ClusterChanged, Problem, Progress, StepDone
from labtui.schema import did_you_mean
from labtui.services import buckets, clusters, steplogs
from labtui.services.clusters import Cluster, StepInfo


def require_clusters(course: Course) -> None:
    if course.clusters is None:
        raise InputError(f"{course.path}: the course has no [clusters] section. Fix: add one "
                         "(see sample_course.toml)")


def live(ctx: Context, course: Course) -> dict[str, Cluster]:
    """The live cluster of each key."""
    return clusters.seat_clusters(ctx.aws, course.id, course.regions)


def key_of(course: Course, name: str) -> str:
    """The cluster key a name stands for: a cluster key itself, a seat or a student."""
    require_clusters(course)
    units = course.cluster_units
    if name in units:
        return name
    for student in course.students:
        if student.id == name:
            return course.cluster_key(student)
    for seat in course.seats:
        if seat.id == name and seat.students:
            return course.cluster_key(seat.students[0])
    hint = did_you_mean(name, list(units) + [s.id for s in course.students])
    raise InputError(f"{name!r} is no seat, student or cluster of {course.id}. Fix: "
                     f"{hint or 'run `labtui clusters COURSE` to list them'}")


def find(ctx: Context, course: Course, name: str) -> Cluster:
    """The live cluster of a seat, student or key; an error naming how to get one."""
    found = latest(ctx, course, key_of(course, name))
    if found is None or not found.live:
        why = f" (its last, {found.cluster_id}, ended: {found.reason or found.state})" \
            if found else ""
        raise LabError(f"{name} has no running cluster{why}. Fix: `labtui up {course.path}` "
                       "starts one")
    return found


def bucket_names(course: Course) -> list[str]:
    names = [clusters.bucket_of(course)] if course.clusters else []
    if course.storage:
        names += [course.storage.data_bucket, course.storage.scratch_bucket]
    return [n for n in dict.fromkeys(names) if n]


def check_buckets(ctx: Context, course: Course) -> None:
    """Before anything is created: every bucket name is free or the course's already."""
    names = bucket_names(course)
    if names:
        buckets.check_free(ctx.aws, course.id, names)


def ensure_buckets(ctx: Context, course: Course) -> None:
    """The course's buckets in its first region (scratch expiring, holding students' work)."""
    region = course.regions[0]
    storage = course.storage
    for name in bucket_names(course):
        scratch = storage is not None and name == storage.scratch_bucket
        if buckets.ensure_bucket(ctx.aws, course.id, name, region,
                                 expire_days=storage.scratch_expire_days if scratch and storage
                                 else None, holds="work" if scratch else None):
            ctx.sink.emit(StepDone(f"bucket {name} in {region}"))


def missing_keys(ctx: Context, course: Course) -> list[str]:
    """The cluster keys of the class without a live cluster."""
    if course.clusters is None:
        return []
    running = live(ctx, course)
    return [key for key in course.cluster_units if key not in running]


def start_missing(ctx: Context, course: Course, keys: list[str], regions: dict[str, str],
                  subnet_for: Callable[[str], str | None],
                  key_name_for: Callable[[str], str]) -> tuple[list[Cluster], dict[str, str]]:
    """Start a cluster for each key (in the plan's region of its seat); a key whose cluster
    ended says why it gets a new one. Returns the started clusters and the failures by key."""
    started: list[Cluster] = []
    failed: dict[str, str] = {}
    if not keys:
        return started, failed
    roles = clusters.ensure_roles(ctx.aws, course.id, ctx.sink)
    clusters.upload_scripts(ctx.aws, course, ctx.sink)
    ended = clusters.last_ended(ctx.aws, course.id, course.regions)
    for done, key in enumerate(keys, start=1):
        region = regions.get(key, course.regions[0])
        try:
            cluster = clusters.start(ctx.aws, course, key, region,
                                     subnet_id=subnet_for(region),
                                     key_name=key_name_for(region), roles=roles)
        except LabError as exc:
            failed[key] = str(exc)
            ctx.sink.emit(Problem(f"{key}: the cluster did not start: {exc}"))
            continue
        before = ended.get(key)
        detail = (f"replaces {before.cluster_id}, which ended: {before.reason or before.state}"
                  if before else f"started in {region}")
        ctx.sink.emit(ClusterChanged(key, cluster.cluster_id, cluster.state, detail))
        ctx.sink.emit(Progress("clusters started", done, len(keys), len(failed)))
        started.append(cluster)
    return started, failed


def wait_ready(ctx: Context, course: Course, waiting: Iterable[Cluster], *,
               timeout: float = 1800,
               cancelled: Callable[[], bool] = lambda: False) -> dict[str, Cluster]:
    """Wait until each cluster is WAITING (or ended), reporting each change; by key."""
    waiting = list(waiting)
    if not waiting:
        return {}
    total = len(waiting)

    def changed(cluster: Cluster) -> None:
        ctx.sink.emit(ClusterChanged(cluster.seat, cluster.cluster_id, cluster.state,
                                     cluster.reason))
    last = clusters.wait_ready(ctx.aws, waiting, changed, timeout=timeout, cancelled=cancelled)
    ready = sum(1 for c in last.values() if c.state in clusters.READY)
    bad = [c for c in last.values() if c.state in clusters.ENDED]
    ctx.sink.emit(Progress("clusters ready", ready, total, len(bad)))
    ctx.sink.emit(StepDone(f"clusters ready {ready}/{total}", ok=not bad, detail="; ".join(
        f"{c.seat}: {c.state} {c.reason}".strip() for c in bad)))
    return {c.seat: c for c in last.values()}


# ------------------------------------------------------------------ status


@dataclass(frozen=True)
class ClusterStatus:
    key: str
    students: tuple[str, ...]
    cluster_id: str | None
    region: str | None
    state: str                    # "absent" when the key has no cluster
    reason: str = ""
    master: str | None = None     # the master's SSH address
    steps_running: int = 0
    steps_failed: int = 0
    steps_total: int = 0
    idle_minutes: float | None = None
    normalized_hours: int = 0
    hourly_usd: float | None = None
    cost_usd: float | None = None
    steps: tuple[StepInfo, ...] = field(default=(), compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"type": "cluster", "key": self.key, "students": list(self.students),
                "cluster_id": self.cluster_id, "region": self.region, "state": self.state,
                "reason": self.reason, "master": self.master,
                "steps_running": self.steps_running, "steps_failed": self.steps_failed,
                "steps": self.steps_total,
                "idle_minutes": None if self.idle_minutes is None
                else round(self.idle_minutes, 1),
                "normalized_instance_hours": self.normalized_hours,
                "hourly_usd": self.hourly_usd,
                "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 4)}


def hourly(ctx: Context, course: Course, region: str) -> float | None:
    """What one of the course's clusters costs an hour in ``region`` (EC2 + EMR per node)."""
    assert course.clusters is not None
    total = 0.0
    for g in course.clusters.groups:
        ec2, emr = ctx.prices.ec2(region, g.instance_type).usd, \
            ctx.prices.emr(region, g.instance_type).usd
        if ec2 is None or emr is None:
            return None
        total += (ec2 + emr) * g.count
    return total


def _hours(cluster: Cluster) -> float:
    start = clusters.parse_time(cluster.created)
    end = clusters.parse_time(cluster.ended) if cluster.ended else datetime.now(UTC)
    if start is None or end is None:
        return 0.0
    return max(0.0, (end - start).total_seconds() / 3600)


def status(ctx: Context, course: Course, *, with_steps: bool = True) -> list[ClusterStatus]:
    """One line per cluster of the class: its live cluster, else the last that ended."""
    require_clusters(course)
    found = live(ctx, course)
    if any(key not in found for key in course.cluster_units):  # why those have none
        for key, cluster in clusters.last_ended(ctx.aws, course.id, course.regions).items():
            found.setdefault(key, cluster)
    return [_status(ctx, course, key, students, found.get(key), with_steps)
            for key, students in course.cluster_units.items()]


def latest(ctx: Context, course: Course, key: str) -> Cluster | None:
    """The key's live cluster, else the last of its that ended."""
    return live(ctx, course).get(key) or clusters.last_ended(
        ctx.aws, course.id, course.regions).get(key)


def status_of(ctx: Context, course: Course,
              name: str) -> tuple[ClusterStatus, Cluster | None]:
    """One cluster's line as ``status`` has it (a seat, student or key: its live cluster,
    else the last that ended), and that cluster (None when the key has had none)."""
    key = key_of(course, name)
    cluster = latest(ctx, course, key)
    return _status(ctx, course, key, course.cluster_units.get(key, ()), cluster,
                   True), cluster


def _status(ctx: Context, course: Course, key: str, students: Iterable[Student],
            cluster: Cluster | None, with_steps: bool) -> ClusterStatus:
    ids = tuple(s.id for s in students)
    if cluster is None:
        return ClusterStatus(key, ids, None, None, "absent")
    step_list = clusters.steps(ctx.aws, cluster) if with_steps else []
    price = hourly(ctx, course, cluster.region)
    master = None
    if cluster.live:
        node = clusters.master_node(ctx.aws, cluster)
        where = ctx.resolver.address(node) if node else None
        master = f"{where[0]}:{where[1]}" if where else None
    return ClusterStatus(
        key, ids, cluster.cluster_id, cluster.region, cluster.state, cluster.reason,
        master, sum(s.state == "RUNNING" for s in step_list),
        sum(s.state == "FAILED" for s in step_list), len(step_list),
        clusters.idle_minutes(cluster, step_list), cluster.normalized_hours, price,
        None if price is None else price * _hours(cluster), tuple(step_list))


# ------------------------------------------------------------------ steps


def submit(ctx: Context, course: Course, name: str, args: list[str], *,
           step_name: str | None = None, jar: str | None = None,
           on_failure: str = "CONTINUE") -> tuple[Cluster, str]:
    """Add a step to a seat's cluster (command-runner.jar unless ``jar``)."""
    ctx.refuse_if_read_only("submit")
    if not args:
        raise InputError("submit needs the step's arguments after `--`. Fix: labtui submit "
                         "COURSE SEAT -- spark-submit s3://bucket/job.py")
    cluster = find(ctx, course, name)
    spec = clusters.step_spec(course, cluster.region, step_name or " ".join(args)[:200], args,
                              jar or clusters.COMMAND_RUNNER, on_failure)
    step_id = clusters.add_step(ctx.aws, cluster, spec)
    ctx.sink.emit(StepDone(f"step {step_id} added to {cluster.cluster_id} ({cluster.seat})"))
    return cluster, step_id


def steps(ctx: Context, course: Course, name: str) -> tuple[Cluster, list[StepInfo]]:
    """A seat's cluster and its steps (its live one, else the last that ended)."""
    cluster = latest(ctx, course, key_of(course, name))
    if cluster is None:
        raise LabError(f"{name} has no cluster. Fix: `labtui up {course.path}` starts one")
    return cluster, clusters.steps(ctx.aws, cluster)


@dataclass(frozen=True)
class StepLog:
    cluster: Cluster
    step: StepInfo
    cause: steplogs.Cause | None
    note: str = ""   # where it came from, or why there is none

    def to_json(self) -> dict[str, Any]:
        return {"type": "step_log", "key": self.cluster.seat,
                "cluster_id": self.cluster.cluster_id, "step": self.step.to_json(),
                "cause": self.cause.as_dict() if self.cause else None, "note": self.note}

    def human(self) -> str:
        head = f"{self.step.step_id} {self.step.name!r}: {self.step.state}"
        if self.step.reason:
            head += f" — {self.step.reason}"
        body = self.cause.render() if self.cause else ""
        return "\n".join(x for x in (head, body, self.note) if x)


def step_log(ctx: Context, course: Course, name: str, step_id: str) -> StepLog:
    """A step of a seat's cluster and the probable cause of its failure: from the logs in
    S3, or from the master node over SSH while S3 has none yet."""
    cluster, found = steps(ctx, course, name)
    chosen = next((s for s in found if s.step_id == step_id), None)
    if chosen is None:
        hint = did_you_mean(step_id, [s.step_id for s in found])
        raise InputError(f"{cluster.cluster_id} ({cluster.seat}) has no step {step_id!r}. Fix: "
                         f"{hint or f'`labtui steps {course.path} {name}` lists them'}")
    if chosen.state not in ("FAILED", "CANCELLED", "INTERRUPTED"):
        return StepLog(cluster, chosen, None, f"the step is {chosen.state}: nothing failed")
    cause = None
    if cluster.log_uri:
        cause = steplogs.probable_cause_in_s3(ctx.aws, cluster.region, cluster.log_uri,
                                              cluster.cluster_id, step_id)
    if cause is not None:
        return StepLog(cluster, chosen, cause)
    if cluster.live:
        cause, note = _from_master(ctx, course, cluster, step_id)
        return StepLog(cluster, chosen, cause, note)
    why = steplogs.NOT_YET if cluster.log_uri else (
        "the cluster has no log URI and has ended, so its logs are gone. Fix: give the "
        "course a bucket ([clusters] bucket or [storage]) so clusters keep their logs")
    return StepLog(cluster, chosen, None, why)


def _from_master(ctx: Context, course: Course, cluster: Cluster,
                 step_id: str) -> tuple[steplogs.Cause | None, str]:
    from labtui.services import keys, ssh

    node = clusters.master_node(ctx.aws, cluster)
    where = ctx.resolver.address(node) if node else None
    if node is None or where is None:
        return None, steplogs.NOT_YET + " (the master node has no address yet)"
    host_key = clusters.master_host_key(ctx.aws, cluster.region, node["InstanceId"])
    if host_key is None:
        return None, (steplogs.NOT_YET + " The master's console shows no host key to pin, "
                      "so labtui does not log in to it.")
    private, _ = keys.course_key(ctx.state.course(course.id))
    client = ssh.connect(ssh.SshTarget(where[0], where[1], "hadoop", host_key,
                                       pkey=ssh.load_private_key(private)))
    try:
        sftp = client.open_sftp()
        try:
            cause = steplogs.probable_cause(steplogs.SftpReader(sftp),
                                            steplogs.master_log_dirs(step_id))
        finally:
            sftp.close()
    finally:
        client.close()
    if cause is None:
        return None, "no log of the step on the master node either"
    return cause, "read on the master node (the logs are not in S3 yet)"


# ------------------------------------------------------------------ terminate, replace


def chosen_clusters(ctx: Context, course: Course, names: Iterable[str] | None) -> list[Cluster]:
    running = live(ctx, course)
    if names is None:
        return list(running.values())
    keys = list(dict.fromkeys(key_of(course, n) for n in names))
    absent = [k for k in keys if k not in running]
    if absent:
        raise LabError(f"no running cluster for {', '.join(absent)}. Fix: `labtui clusters "
                       f"{course.path}` lists them")
    return [running[k] for k in keys]


def terminate(ctx: Context, course: Course, names: Iterable[str] | None = None, *,
              wait: bool = True) -> list[Cluster]:
    """Terminate the named seats' clusters (default: every one of the class), then wait."""
    ctx.refuse_if_read_only("terminate")
    chosen = chosen_clusters(ctx, course, names)
    if not chosen:
        return []
    clusters.terminate(ctx.aws, chosen)
    for c in chosen:
        ctx.sink.emit(ClusterChanged(c.seat, c.cluster_id, "TERMINATING", "terminated by you"))
    if wait:
        clusters.wait_terminated(ctx.aws, chosen)
        for c in chosen:
            ctx.sink.emit(ClusterChanged(c.seat, c.cluster_id, "TERMINATED"))
    return chosen


def replace(ctx: Context, course: Course, name: str,
            subnet_for: Callable[[str], str | None],
            key_name_for: Callable[[str], str]) -> tuple[Cluster | None, Cluster]:
    """A new cluster for one seat: its live one (if any) terminated first, waited for; the
    new one in the same region, no other seat touched. Returns (old, new)."""
    ctx.refuse_if_read_only("replace")
    key = key_of(course, name)
    old = live(ctx, course).get(key)
    region = old.region if old else course.regions[0]
    if old is not None:
        terminate(ctx, course, [key])
    started, failed = start_missing(ctx, course, [key], {key: region}, subnet_for,
                                    key_name_for)
    if failed:
        raise LabError(f"{key}: the new cluster did not start: {failed[key]}")
    return old, started[0]
