"""Batch jobs for both front ends: check a job file, run it (launch workers within the
course's caps, start each runner, follow every job to its end), its status from tags and
S3 (from any computer), fetch results, cancel. The AWS and SSH work is in
labtui/services/jobs.py; the runner on each worker is labtui/data/labtui-job."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from labtui import clusterops, lifecycle
from labtui.context import Context
from labtui.course import Course, Job, read_jobs
from labtui.errors import CourseError, InputError, LabError, Problem
from labtui.events import JobChanged, LogLine, Progress, StepDone
from labtui.services import buckets, keys, quotas
from labtui.services import jobs as service
from labtui.services.aws import translate_errors
from labtui.services.instance_types import vcpus
from labtui.services.jobs import ENDED, JobState, Worker
from labtui.services.machines import KnownHosts
from labtui.services.pricing import Prices
from labtui.services.remote import Remote

POLL = 2.0


def require_jobs(course: Course) -> None:
    if course.jobs is None:
        raise InputError(f"{course.path}: the course has no [jobs] section. Fix: add one with "
                         "file and output (see sample_course.toml)")


def entries_of(ctx: Context, course: Course, csv: Path | None = None) -> list[Job]:
    """The jobs to run, every row checked first (CourseError: exit 2, nothing launched):
    the file's rows, and that each instance type is offered in the jobs' region."""
    require_jobs(course)
    assert course.jobs is not None
    problems: list[Problem] = []
    if csv is None:
        entries, shown = list(course.jobs.entries), str(course.jobs.file.name)
    else:
        shown = str(csv)
        entries = read_jobs(csv, shown, course.jobs.name, problems)
        if problems:
            raise CourseError(problems)
    if not entries and not problems:
        problems.append(Problem(shown, 1, "", "has no jobs", "add a row per job under the "
                                "header instance_type,command"))
    region = course.regions[0]
    types = sorted({e.instance_type for e in entries})
    if types:
        with translate_errors(f"ec2.DescribeInstanceTypeOfferings in {region}"):
            pages = ctx.aws.client("ec2", region).get_paginator(
                "describe_instance_type_offerings").paginate(
                LocationType="region", Filters=[{"Name": "instance-type", "Values": types}])
            offered = {o["InstanceType"] for p in pages for o in p["InstanceTypeOfferings"]}
        for entry in entries:
            if entry.instance_type not in offered:
                problems.append(Problem(shown, entry.line, "", f"{entry.instance_type} is not "
                                        f"offered in {region}", "choose a type offered there "
                                        "(`aws ec2 describe-instance-type-offerings`)"))
    if problems:
        raise CourseError(problems)
    return entries


@dataclass(frozen=True)
class Unit:
    """What one worker runs: one job, or (pack) several of one instance type in turn."""

    label: str
    instance_type: str
    entries: tuple[Job, ...]


def units(course: Course, entries: list[Job]) -> list[Unit]:
    assert course.jobs is not None
    if not course.jobs.pack:
        return [Unit(e.name, e.instance_type, (e,)) for e in entries]
    out = []
    for itype in sorted({e.instance_type for e in entries}):
        mine = [e for e in entries if e.instance_type == itype]
        machines = min(len(mine), course.jobs.max_parallel)
        for k in range(machines):
            out.append(Unit(f"{course.jobs.name}-{itype.replace('.', '-')}-{k + 1}", itype,
                            tuple(mine[k::machines])))
    return out


def states(ctx: Context, course: Course, entries: list[Job],
           found: list[Worker] | None = None) -> list[JobState]:
    """Every job's state, from its status.json in S3 and its worker's tags."""
    assert course.jobs is not None
    region = course.regions[0]
    found = found if found is not None else service.workers(ctx.aws, course, region)
    by_job: dict[str, Worker] = {}
    for w in sorted(found, key=lambda w: w.machine.launched):
        for name in w.jobs:
            by_job[name] = w
    return [service.merge(e, course.jobs.command_of(e),
                          service.read_status(ctx.aws, course.jobs, region, e.name),
                          by_job.get(e.name)) for e in entries]


@dataclass
class RunResult:
    jobs: list[JobState] = field(default_factory=list)
    launched: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)    # unit label -> why not started

    @property
    def failed(self) -> list[JobState]:
        return [j for j in self.jobs if j.state in ("failed", "cancelled")]


def counts(found: list[JobState]) -> str:
    """installed k/n (the command ran), done k/n, failed k."""
    installed = sum(1 for j in found if j.state in ("running", "uploading", "done")
                    or (j.state == "failed" and j.exit is not None))
    done = sum(1 for j in found if j.state == "done")
    failed = sum(1 for j in found if j.state in ("failed", "cancelled"))
    return f"installed {installed}/{len(found)}, done {done}/{len(found)}, failed {failed}"


def cost_so_far(ctx: Context, course: Course, found: list[JobState]) -> dict[str, float]:
    """$ per job so far: its runtime (or time since it started) at the type's hourly price."""
    prices = Prices(ctx.aws)
    region = course.regions[0]
    out: dict[str, float] = {}
    for j in found:
        if j.runtime is None:
            continue
        usd = prices.ec2(region, j.instance_type).usd
        if usd is not None:
            out[j.name] = usd * j.runtime / 3600
    return out


def run(ctx: Context, course: Course, csv: Path | None = None, *, timeout: int | None = None,
        keep: bool = False, wait: bool = True, poll: float = POLL,
        boot_wait: float = 300, deadline: float | None = None,
        should_stop: Callable[[], bool] = lambda: False) -> RunResult:
    """Run the course's jobs (or ``csv``'s) to their end: a job already done or failed is
    not run again, a worker already running is followed (a rerun resumes)."""
    ctx.refuse_if_read_only("jobs run")
    entries = entries_of(ctx, course, csv)
    assert course.jobs is not None
    jobs_cfg = course.jobs
    region = course.regions[0]
    result = RunResult()
    current = {j.name: j for j in states(ctx, course, entries)}
    by_label = {u.label: u for u in units(course, entries)}   # made once, not per poll
    todo = [u for u in by_label.values()
            if any(current[e.name].state == "queued" for e in u.entries)]
    alive = [w for w in service.workers(ctx.aws, course, region)
             if w.state in ("pending", "running")]
    room = course.max_instances - lifecycle.live_instances(ctx, course)
    limit = max(0, min(jobs_cfg.max_parallel, room + len(alive)))
    if todo and limit == 0:
        raise LabError(f"no room for job workers: the course runs {course.max_instances} "
                       "instances (max_instances) already. Fix: raise max_instances, or "
                       "stop some machines")
    ctx.sink.emit(LogLine(f"jobs {jobs_cfg.name}: {len(entries)} job(s), {len(todo)} to "
                          f"launch on {len(todo)} worker(s), at most {limit} at once, "
                          f"{jobs_cfg.market} in {region}; results to {jobs_cfg.output}"))
    if todo:
        _prepare(ctx, course)
    profile = service.ensure_role(ctx.aws, course) if todo else ""
    network_for, key_name_for = lifecycle._per_region(ctx, course)
    if todo or alive:   # made here, once: the launches run in threads
        network_for(region)
        key_name_for(region)
    state = ctx.state.course(course.id)
    remote = Remote(ctx.aws, ctx.resolver, KnownHosts(state), keys.course_key(state)[0],
                    service.login_user(jobs_cfg.ami))
    pool = ThreadPoolExecutor(max_workers=max(1, min(16, limit or 1)),
                              thread_name_prefix="labtui-jobs")
    starting: dict[str, Future] = {}
    started_here: set[str] = set()
    lock = threading.Lock()

    def bring_up(unit: Unit, machine=None) -> None:
        if machine is None:
            net = network_for(region)
            zone, subnet = net.subnets[0]
            machine = service.launch_worker(
                ctx.aws, course, ctx.state.course(course.id), region, unit.label,
                [e.name for e in unit.entries], unit.instance_type, subnet,
                net.security_group_id, key_name_for(region), profile, "1")
            with lock:
                result.launched.append(machine.instance_id)
            for e in unit.entries:
                ctx.sink.emit(JobChanged(e.name, "launching", f"{machine.instance_id} "
                                                              f"({unit.instance_type})"))
        spec = service.spec_for(course, region, list(unit.entries), unit.instance_type,
                                timeout, keep)
        service.start_runner(remote, machine, course, spec, wait=boot_wait)

    quota = VcpuBudget(ctx, course, region, todo) if todo else None
    pending = list(todo)
    shown: dict[str, str] = {n: j.shown for n, j in current.items()}
    for j in current.values():
        ctx.sink.emit(JobChanged(j.name, j.shown, j.reason or ""))
    stop_at = None if deadline is None else time.monotonic() + deadline
    last_progress: tuple[int, int] | None = None
    try:
        while True:
            found_workers = service.workers(ctx.aws, course, region)
            live = [w for w in found_workers if w.state in ("pending", "running")]
            # a live worker whose jobs never reported: its runner is (re)started
            for w in live:
                quiet = all(current.get(n) is None or current[n].state in ("queued",
                                                                           "launching")
                            for n in w.jobs)
                if quiet and w.label not in starting and w.label not in started_here:
                    unit = by_label.get(w.label)
                    if unit is not None:
                        starting[w.label] = pool.submit(bring_up, unit, w.machine)
                        started_here.add(w.label)
            labels_live = {w.label for w in live}
            if quota is not None:
                quota.settle(labels_live | set(_running(starting)))
            while pending and len(labels_live | set(_running(starting))) < limit:
                unit = pending[0]
                if unit.label in labels_live:
                    pending.pop(0)
                    continue
                if quota is not None and not quota.take(unit):
                    break      # waits for a worker to end and give its vCPUs back
                pending.pop(0)
                starting[unit.label] = pool.submit(bring_up, unit)
                started_here.add(unit.label)
            for label, future in list(starting.items()):
                if future.done():
                    error = future.exception()
                    if error is not None:
                        result.errors[label] = str(error)
                        unit = by_label[label]
                        for e in unit.entries:
                            ctx.sink.emit(JobChanged(e.name, "failed", str(error)))
                    del starting[label]
            now = {j.name: j for j in states(ctx, course, entries, found_workers)}
            for label, why in result.errors.items():
                unit = by_label[label]
                for e in unit.entries:
                    if now[e.name].state in ("queued", "launching"):
                        now[e.name].state, now[e.name].reason = "failed", why
            for name, j in now.items():
                if shown.get(name) != j.shown:
                    shown[name] = j.shown
                    detail = j.reason or (f"exit {j.exit}" if j.exit is not None else "")
                    ctx.sink.emit(JobChanged(name, j.shown, detail))
            current = now
            ended = sum(1 for j in now.values() if j.state in ENDED)
            progress = Progress("jobs", ended, len(now), sum(
                1 for j in now.values() if j.state != "done" and j.state in ENDED))
            if (progress.done, progress.failed) != last_progress:
                last_progress = (progress.done, progress.failed)
                ctx.sink.emit(progress)
            if not wait and not pending and not starting:
                break
            if ended == len(now) and not starting:
                break
            if should_stop() or (stop_at is not None and time.monotonic() > stop_at):
                break
            time.sleep(poll)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    result.jobs = list(current.values())
    ctx.sink.emit(StepDone(f"jobs {jobs_cfg.name}", ok=not result.failed,
                           detail=counts(result.jobs)))
    return result


class VcpuBudget:
    """The vCPUs the region's quotas leave for this run's workers (read once; what runs
    already is counted by AWS's usage): a worker is launched only when it fits, and gives
    its vCPUs back when it ends. A job that could never fit is refused before anything is
    launched, with the quota to raise."""

    def __init__(self, ctx: Context, course: Course, region: str, todo: list[Unit]) -> None:
        assert course.jobs is not None
        market = course.jobs.market
        types = sorted({u.instance_type for u in todo})
        self.size = {t: float(vcpus(ctx.aws, region, [t])[t]) for t in types}
        self.code = {t: quotas.quota_code(t, market) for t in types}
        self.free: dict[str, float] = {}
        for code in set(self.code.values()):
            try:
                self.free[code] = quotas.headroom(ctx.aws, region, code)
            except LabError as exc:
                ctx.sink.emit(LogLine(f"{region}: the {code} quota could not be read ({exc}); "
                                      "workers are launched unchecked", level="warning"))
                self.free[code] = float("inf")
        self.held: dict[str, tuple[str, float]] = {}      # label -> (code, vCPUs)
        self.seen: set[str] = set()
        for t in types:
            if self.size[t] > self.free[self.code[t]]:
                name = quotas.NAMES.get(self.code[t], self.code[t])
                raise LabError(
                    f"a {t} worker needs {self.size[t]:g} vCPUs and {region} has "
                    f"{max(self.free[self.code[t]], 0):g} of {name} ({self.code[t]}) free. "
                    f"Nothing was launched. Fix: `labtui quota-request {course.path.name} "
                    f"{region} --vcpus N`, or stop machines")

    def take(self, unit: Unit) -> bool:
        code, size = self.code[unit.instance_type], self.size[unit.instance_type]
        if self.free[code] < size:
            return False
        self.free[code] -= size
        self.held[unit.label] = (code, size)
        return True

    def settle(self, alive: set[str]) -> None:
        """Workers seen alive and gone since give their vCPUs back (one not listed yet,
        as EC2 lists a new instance a moment late, keeps them)."""
        self.seen |= alive & set(self.held)
        for label in [k for k in self.held if k in self.seen and k not in alive]:
            code, size = self.held.pop(label)
            self.free[code] += size


def _running(starting: dict[str, Future]) -> list[str]:
    return [label for label, f in starting.items() if not f.done()]


def _prepare(ctx: Context, course: Course) -> None:
    """The output bucket (a course bucket is made with its own settings)."""
    assert course.jobs is not None
    bucket = course.jobs.bucket
    if bucket in clusterops.bucket_names(course):
        clusterops.check_buckets(ctx, course)
        clusterops.ensure_buckets(ctx, course)
    elif buckets.ensure_bucket(ctx.aws, course.id, bucket, course.regions[0], holds="results"):
        ctx.sink.emit(StepDone(f"bucket {bucket} in {course.regions[0]}"))


def status(ctx: Context, course: Course, csv: Path | None = None) -> list[JobState]:
    require_jobs(course)
    entries = list(course.jobs.entries) if csv is None and course.jobs else entries_of(
        ctx, course, csv)
    return states(ctx, course, entries)


def fetch(ctx: Context, course: Course, to: Path, names: list[str] | None = None
          ) -> dict[str, tuple[int, int]]:
    """Every (named) job's outputs into ``to/<job>/``, skipping files already there."""
    require_jobs(course)
    assert course.jobs is not None
    chosen = _chosen(course, names)
    out = {}
    for e in chosen:
        out[e.name] = service.fetch(ctx.aws, course.jobs, course.regions[0], e.name,
                                    to / e.name)
        got, skipped = out[e.name]
        ctx.sink.emit(JobChanged(e.name, "fetched", f"{got} file(s) to {to / e.name}"
                                 + (f", {skipped} already there" if skipped else "")))
    return out


def cancel(ctx: Context, course: Course, names: list[str] | None = None) -> list[str]:
    """Terminate the workers of the named jobs (all without names); each job not ended is
    marked cancelled in its status.json. Returns the jobs cancelled."""
    ctx.refuse_if_read_only("jobs cancel")
    require_jobs(course)
    assert course.jobs is not None
    chosen = {e.name for e in _chosen(course, names)}
    region = course.regions[0]
    found = [w for w in service.workers(ctx.aws, course, region) if set(w.jobs) & chosen]
    current = {j.name: j for j in states(ctx, course, [e for e in course.jobs.entries
                                                      if e.name in chosen], found)}
    if found:
        service.terminate(ctx.aws, found)
    cancelled = []
    for name, j in current.items():
        if j.state in ENDED:
            continue
        data = service.read_status(ctx.aws, course.jobs, region, name) or {"job": name}
        data.update(state="cancelled", reason="cancelled by labtui jobs cancel")
        service.write_status(ctx.aws, course.jobs, region, name, data)
        cancelled.append(name)
        ctx.sink.emit(JobChanged(name, "cancelled", j.instance_id or ""))
    return cancelled


def _chosen(course: Course, names: list[str] | None) -> list[Job]:
    assert course.jobs is not None
    if not names:
        return list(course.jobs.entries)
    known = {e.name: e for e in course.jobs.entries}
    unknown = [n for n in names if n not in known]
    if unknown:
        from labtui.schema import did_you_mean
        hint = did_you_mean(unknown[0], known)
        raise InputError(f"no job named {unknown[0]!r} in {course.jobs.file.name}. Fix: "
                         + (hint or f"use one of {', '.join(list(known)[:8])}"))
    return [known[n] for n in dict.fromkeys(names)]


LOG_FILES = ("install.log", "stdout.txt", "stderr.txt")


def job_log(ctx: Context, course: Course, name: str) -> dict[str, str | None]:
    """A job's install log, stdout and stderr as S3 holds them (None: not written yet; the
    runner writes them when the job ends, and status.json at every change)."""
    require_jobs(course)
    assert course.jobs is not None
    [entry] = _chosen(course, [name])
    return {file: service.output_text(ctx.aws, course.jobs, course.regions[0], entry.name,
                                      file) for file in LOG_FILES}
