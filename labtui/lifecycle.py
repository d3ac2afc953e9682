"""The class's machines from bring-up to take-down: the use cases both front ends call.

Each function takes a Context and a Course, reports progress through ``ctx.sink`` and finds
everything from tags, so the TUI and the headless commands share one code path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labtui import clusterops, errors
from labtui.context import Context
from labtui.course import Course
from labtui.errors import CourseError, InputError, LabError
from labtui.events import LogLine, Problem, QuotaRequested, SeatChanged, StepDone
from labtui.plan import Facts, Plan, instance_types, make_plan, quota_codes
from labtui.policy import uses_profiles
from labtui.schema import did_you_mean
from labtui.services import (
    access,
    billing,
    bootevents,
    inventory,
    keys,
    machines,
    network,
    quotas,
    setup_state,
    ssh,
    tags,
    teardown,
)
from labtui.services import buckets as buckets_service
from labtui.services import clusters as clusters_service
from labtui.services.aws import translate_errors
from labtui.services.clusters import seat_clusters
from labtui.services.fanout import CANCELLED, Interrupted, Outcome, fan_out
from labtui.services.instance_types import vcpus
from labtui.services.inventory import Inventory, Machine
from labtui.services.remote import Remote
from labtui.services.setup import exec_on, reset_password, setup_seat

SETUP, SETUP_ERROR = setup_state.SETUP, setup_state.SETUP_ERROR


@dataclass(frozen=True)
class SeatStatus:
    seat: str
    students: tuple[str, ...]
    region: str | None
    instance_id: str | None
    state: str                  # "absent" when the seat has no machine
    address: str | None
    setup: str                  # pending | running | done | failed
    error: str = ""
    instance_type: str = ""
    launched: str = ""
    hourly_usd: float | None = None
    cost_usd: float | None = None     # since the machine last started

    def to_json(self) -> dict[str, Any]:
        return {"seat": self.seat, "students": list(self.students), "region": self.region,
                "instance_id": self.instance_id, "state": self.state, "address": self.address,
                "setup": self.setup, "error": self.error, "instance_type": self.instance_type,
                "launched": self.launched, "hourly_usd": self.hourly_usd,
                "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 4)}


@dataclass
class UpResult:
    plan: Plan
    launched: list[Machine] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    moved: dict[str, tuple[str, str]] = field(default_factory=dict)
    cancelled: bool = False
    set_up: list[str] = field(default_factory=list)
    setup_failed: dict[str, str] = field(default_factory=dict)
    clusters_started: list[str] = field(default_factory=list)
    clusters_failed: dict[str, str] = field(default_factory=dict)   # by cluster key


def only_region(course: Course, region: str | None, *, any_region: bool = False) -> Course:
    """The course as one command sees it with ``--region``: that region only. It must be one
    of the course's (``any_region``: any AWS region, for ``down`` to clear one the course
    file no longer names)."""
    from labtui import checks

    if region is None:
        return course
    listed = ", ".join(course.regions)
    if region not in checks.AWS_REGIONS:
        hint = did_you_mean(region, checks.AWS_REGIONS)
        raise InputError(f"--region {region!r} is not an AWS region. Fix: "
                         f"{hint or f'use one of the course regions: {listed}'}")
    if region not in course.regions and not any_region:
        raise InputError(f"--region {region} is not one of the course's regions ({listed}). "
                         f"Fix: use one of them, or add {region} to [course] regions in "
                         f"{course.path}")
    return replace(course, regions=(region,))


def discover(ctx: Context, course: Course) -> Inventory:
    """The course's seat machines, found by their tags (set at launch, so none is ever
    without its seat tag)."""
    return inventory.machines(ctx.aws, course.id, course.regions)


def facts(ctx: Context, course: Course, *, with_quotas: bool = True) -> tuple[Facts, dict]:
    """vCPUs, quota headroom and prices for every usable course region (a region the account
    has not enabled is left out, so the plan places nothing there); also the Quota objects."""
    from labtui.services.regions import list_regions

    types = instance_types(course)
    codes = quota_codes(course)
    enabled = list_regions(ctx.aws)
    sizes: dict[tuple[str, str], int] = {}
    headroom: dict[tuple[str, str], float] = {}
    found_quotas: dict[str, dict[str, quotas.Quota]] = {}
    ec2_price: dict[tuple[str, str], float | None] = {}
    emr_price: dict[tuple[str, str], float | None] = {}
    emr_types = {g.instance_type for g in course.clusters.groups} if course.clusters else set()
    for region in course.regions:
        if enabled.get(region, "not-opted-in") == "not-opted-in":
            ctx.sink.emit(Problem(f"region {region} is not enabled for this account; the plan "
                                  "leaves it out", fix="enable it, or remove it from "
                                  "[course] regions"))
            continue
        for itype, count in vcpus(ctx.aws, region, types).items():
            sizes[(region, itype)] = count
            ec2_price[(region, itype)] = ctx.prices.ec2(region, itype).usd
            if itype in emr_types:
                emr_price[(region, itype)] = ctx.prices.emr(region, itype).usd
        if with_quotas:
            found_quotas[region] = quotas.read_quotas(ctx.aws, region, codes)
            for code, quota in found_quotas[region].items():
                headroom[(region, code)] = quota.headroom
    return Facts(sizes, headroom if with_quotas else None, ec2_price, emr_price), found_quotas


@dataclass(frozen=True)
class PlanDetails:
    """The plan ``up`` would apply and what it was made from (both front ends show it)."""

    plan: Plan
    facts: Facts
    quotas: dict[str, dict[str, quotas.Quota]]   # region -> quota code -> Quota
    found: Inventory


def plan_details(ctx: Context, course: Course, found: Inventory | None = None) -> PlanDetails:
    """Read-only: the course's machines from their tags, vCPU sizes, quotas and prices, and
    the plan made of them."""
    found = found if found is not None else discover(ctx, course)
    the_facts, found_quotas = facts(ctx, course)
    return PlanDetails(make_plan(course, found, the_facts), the_facts, found_quotas, found)


def plan(ctx: Context, course: Course, found: Inventory | None = None) -> Plan:
    return plan_details(ctx, course, found).plan


@dataclass(frozen=True)
class QuotaIncrease:
    """A quota increase to ask AWS for, checked against the quota as it stands."""

    region: str
    code: str
    current: float
    desired: float

    @property
    def name(self) -> str:
        return quotas.NAMES.get(self.code, self.code)

    @property
    def question(self) -> str:
        return (f"Ask AWS to raise {self.name} ({self.code}) in {self.region} from "
                f"{self.current:g} to {self.desired:g} vCPUs?")


def quota_increase(ctx: Context, course: Course, region: str, desired: float, *,
                   code: str | None = None, instance_type: str | None = None,
                   spot: bool = False) -> QuotaIncrease:
    """The increase of the quota ``code`` (or the one that limits ``instance_type``, by
    default the course's machines') in ``region`` to ``desired`` vCPUs; bad input when that
    is no increase."""
    from labtui import checks

    if region not in checks.AWS_REGIONS:
        raise InputError(f"{region!r} is not an AWS region. Fix: use one of the course's "
                         f"regions: {', '.join(course.regions)}")
    if code is None:
        itype = instance_type or (course.machines.instance_type if course.machines
                                  else "m5.xlarge")
        code = quotas.quota_code(itype, "spot" if spot else "on-demand")
    current, _source = quotas.read_value(ctx.aws, region, code)
    if not desired > current:
        raise InputError(f"{desired:g} vCPUs is not above the current quota ({current:g} "
                         f"{quotas.NAMES.get(code, code)} in {region}). Fix: give the new "
                         "total you need")
    return QuotaIncrease(region, code, current, float(desired))


def request_quota(ctx: Context, increase: QuotaIncrease) -> tuple[QuotaRequested,
                                                                   quotas.Quota]:
    """Ask AWS for the increase (nothing is launched); reports it through the sink and
    returns it with the quota read again (now showing the request pending)."""
    ctx.refuse_if_read_only("a quota increase request")
    reply = quotas.request_increase(ctx.aws, increase.region, increase.code, increase.desired)
    done = QuotaRequested(increase.region, increase.code, increase.name, increase.current,
                          increase.desired, str(reply.get("Status", "?")),
                          str(reply.get("Id", "?")))
    ctx.sink.emit(done)
    return done, quotas.read_quotas(ctx.aws, increase.region, [increase.code])[increase.code]


def shortfall_message(the_plan: Plan) -> str:
    parts = [f"{s.vcpus:g} more {s.name} ({s.code}) in {s.region} (free there: "
             f"{s.headroom:g})" for s in the_plan.shortfall]
    seats = ", ".join(the_plan.unplaced)
    course = the_plan.course
    first = the_plan.shortfall[0] if the_plan.shortfall else None
    fix = (f" Fix: `labtui quota-request {course.path} {first.region} --vcpus N` (N = the new "
           "quota), add a region to the course, or shrink the class." if first else "")
    return (f"the class does not fit the vCPU quotas: {len(the_plan.unplaced)} seat(s) fit in "
            f"no region ({seats}); needed: {'; '.join(parts)}.{fix}")


def live_instances(ctx: Context, course: Course) -> int:
    """Every live instance carrying the course tag: seat machines and cluster nodes."""
    return sum(len(machines.all_course_instances(ctx.aws, course.id, region))
               for region in course.regions)


def check_cap(ctx: Context, course: Course, to_create: int) -> None:
    live = live_instances(ctx, course)
    if live + to_create > course.max_instances:
        raise InputError(
            f"{course.path}: course.max_instances is {course.max_instances}, the course has "
            f"{live} instance(s) running and up would add {to_create}. Nothing was created. "
            f"Fix: raise max_instances to {live + to_create} if that is really intended, or "
            "take seats out of the roster")


def up(ctx: Context, course: Course,
       confirm: Callable[[Plan], bool] = lambda _plan: True, *, skip_setup: bool = False,
       setup_wait: float = 300, concurrency: int | None = None,
       cluster_wait: float = 1800,
       cancelled: Callable[[], bool] = lambda: False) -> UpResult:
    """Converge AWS to one set-up machine per seat and one waiting cluster per cluster key;
    never passes max_instances."""
    if course.machines is None:
        raise InputError(f"{course.path}: the course has no [machines] section. Fix: add one "
                         "(see sample_course.toml)")
    ctx.refuse_if_read_only("up")
    found = discover(ctx, course)
    the_plan = plan(ctx, course, found)
    result = UpResult(the_plan)
    if the_plan.unplaced:
        raise LabError(shortfall_message(the_plan) + " Nothing was created.")
    if the_plan.over_budget:
        ctx.sink.emit(Problem(
            f"a day of class costs about ${the_plan.daily_usd:.2f}, over the course's "
            f"budget_usd of ${course.budget_usd:.2f}",
            fix="shrink instance types or the roster, or raise budget_usd"))
    to_create = {r.region: list(r.create) for r in the_plan.regions if r.create}
    count = sum(len(v) for v in to_create.values())
    keys = clusterops.missing_keys(ctx, course)
    the_plan = replace(the_plan, clusters_to_start=tuple(keys))
    result.plan = the_plan
    nodes = len(keys) * course.clusters.nodes if course.clusters else 0
    started: list[Any] = []
    if count == 0 and not keys:
        ctx.sink.emit(LogLine(f"every seat has its machine ({len(course.seats)} seats)"
                              + (" and every cluster runs" if course.clusters else "")))
        if course.storage is not None and course.storage.upload is not None:
            clusterops.check_buckets(ctx, course)   # data added to a running class
            clusterops.ensure_buckets(ctx, course)
            _upload_data(ctx, course)  # new or changed data files go up on any rerun
        new_keys = _ensure_identities(ctx, course)  # a changed policy or lost key converges
        channel = _ensure_boot(ctx, course)
    else:
        check_cap(ctx, course, count + nodes)
        clusterops.check_buckets(ctx, course)  # a taken bucket name: before anything else
        if count and bootevents.enabled(course):  # user-data too big: before anything else
            bootevents.check_size(course, ctx.state.course(course.id))
        if not confirm(the_plan):
            result.cancelled = True
            return result
        if count and course.machines.baked:  # the image in each region, before anything else
            from labtui import imageops
            imageops.ensure(ctx, course, list(to_create))
        if course.billing is not None:  # the alarms watch the bill before it grows
            billing.ensure_billing(ctx.aws, course, ctx.sink)
        clusterops.ensure_buckets(ctx, course)
        _upload_data(ctx, course)
        new_keys = _ensure_identities(ctx, course)
        channel = _ensure_boot(ctx, course)
        network_for, key_name_for = _per_region(ctx, course)
        if count:
            _launch(ctx, course, to_create, result, network_for, key_name_for, channel)
        if keys:
            started, result.clusters_failed = clusterops.start_missing(
                ctx, course, keys, the_plan.cluster_regions, _subnet_of(network_for),
                key_name_for)
            result.clusters_started = [c.cluster_id for c in started]
    if not skip_setup:
        # a seat whose cluster is new gets its ~/.mrjob.conf again, even when set up
        renewed = seats_of_keys(course, [c.seat for c in started]) + new_keys
        if channel is not None:  # setup_mode = "user-data": the machines report their boot
            outcomes = boot_setup(ctx, course, channel, wait=setup_wait,
                                  concurrency=concurrency, also=renewed, cancelled=cancelled)
        else:
            outcomes = setup(ctx, course, wait=setup_wait, concurrency=concurrency,
                             also=renewed, cancelled=cancelled)
        result.setup_failed = {o.key: o.error for o in outcomes if not o.ok}
        result.set_up = [o.key for o in outcomes if o.ok]
    if course.database is not None:   # the result store: made and waited for after setup
        from labtui import dbops
        dbops.ensure(ctx, course, _per_region(ctx, course)[0])
    if course.clusters is not None and not skip_setup:
        running = clusterops.live(ctx, course)
        running.update(clusterops.wait_ready(
            ctx, course, [c for c in running.values() if c.state not in clusters_service.READY],
            timeout=cluster_wait))
        result.clusters_failed.update({k: f"{c.state} {c.reason}".strip()
                                       for k, c in running.items()
                                       if c.state in clusters_service.ENDED})
        _say_ready(ctx, course, result, running)
    return result


def start_clusters(ctx: Context, course: Course) -> tuple[list[Any], dict[str, str]]:
    """Start the class's missing clusters without waiting for them (the schedule's tick;
    `up` does the same as one of its steps): (started, failed by key)."""
    ctx.refuse_if_read_only("start clusters")
    keys = clusterops.missing_keys(ctx, course)
    if not keys:
        return [], {}
    the_plan = plan(ctx, course)
    check_cap(ctx, course, len(keys) * course.clusters.nodes if course.clusters else 0)
    clusterops.check_buckets(ctx, course)
    clusterops.ensure_buckets(ctx, course)
    network_for, key_name_for = _per_region(ctx, course)
    return clusterops.start_missing(ctx, course, keys, the_plan.cluster_regions,
                                    _subnet_of(network_for), key_name_for)


def _upload_data(ctx: Context, course: Course) -> None:
    storage = course.storage
    if storage is None or storage.upload is None or not storage.data_bucket:
        return
    sent, skipped = buckets_service.upload_folder(ctx.aws, storage.data_bucket,
                                                  storage.upload, ctx.sink)
    ctx.sink.emit(StepDone(f"course data: {sent} file(s) sent to s3://{storage.data_bucket}/"
                           + (f", {skipped} unchanged" if skipped else "")))


def _ensure_identities(ctx: Context, course: Course) -> list[str]:
    """The course's student identities; returns the seats whose key is new (set up again,
    so their machine gets it)."""
    if not access.enabled(course):
        return []
    renewed = access.ensure(ctx.aws, course, ctx.state.course(course.id), ctx.sink)
    ctx.sink.emit(StepDone("student identities"))
    return renewed


def _ensure_boot(ctx: Context, course: Course) -> bootevents.Channel | None:
    """setup_mode = "user-data": the course's boot topic and queue, and the machines' right
    to publish (after the identities: seats' own roles get that right)."""
    if not bootevents.enabled(course):
        return None
    return bootevents.ensure(ctx.aws, course, ctx.sink)


def _say_ready(ctx: Context, course: Course, result: UpResult,
               running: dict[str, Any]) -> None:
    """A seat is ready when its machine is set up and its cluster waits for work."""
    for seat in result.set_up:
        key = clusterops.key_of(course, seat)
        cluster = running.get(key)
        if cluster is not None and cluster.state in clusters_service.READY:
            ctx.sink.emit(SeatChanged(seat, "ready", f"cluster {cluster.cluster_id}"))


def _per_region(ctx: Context, course: Course) -> tuple[Callable[[str], network.RegionNetwork],
                                                      Callable[[str], str]]:
    """The course's network and key pair of a region, made once when first asked for."""
    _, public = keys.course_key(ctx.state.course(course.id))
    networks: dict[str, network.RegionNetwork] = {}
    key_names: dict[str, str] = {}

    def network_for(region: str) -> network.RegionNetwork:
        if region not in networks:
            networks[region] = network.ensure_network(ctx.aws, course, region, ctx.sink)
            ctx.sink.emit(StepDone(f"network in {region}"))
        return networks[region]

    def key_name_for(region: str) -> str:
        if region not in key_names:
            key_names[region] = keys.ensure_key_pair(ctx.aws, region, course.id, public)
        return key_names[region]
    return network_for, key_name_for


def _subnet_of(network_for: Callable[[str], network.RegionNetwork]
               ) -> Callable[[str], str | None]:
    """A region's public subnet for its clusters: the course network's first."""
    def subnet_for(region: str) -> str | None:
        subnets = network_for(region).subnets
        return subnets[0][1] if subnets else None
    return subnet_for


def _launch(ctx: Context, course: Course, to_create: dict[str, list[str]],
            result: UpResult, network_for: Callable[[str], network.RegionNetwork],
            key_name_for: Callable[[str], str],
            channel: bootevents.Channel | None = None) -> None:
    course_state = ctx.state.course(course.id)
    boot = bootevents.launcher(course, course_state, channel) if channel else None
    outcome = machines.launch(ctx.aws, course, course_state, to_create, network_for,
                              key_name_for, ctx.sink,  # reports "launch" progress per seat
                              boot=boot)
    result.launched, result.failed, result.moved = (outcome.launched, outcome.failed,
                                                     outcome.moved)
    if outcome.launched:
        machines.wait_running(ctx.aws, outcome.launched)
        setup_state.mark(ctx.aws, outcome.launched, "pending")
        ctx.sink.emit(StepDone(f"{len(outcome.launched)} machine(s) running"))


def status(ctx: Context, course: Course, found: Inventory | None = None) -> list[SeatStatus]:
    """One line per seat, from one describe_instances pager per region."""
    found = found if found is not None else inventory.machines(ctx.aws, course.id,
                                                               course.regions)
    by_seat = found.by_seat()
    out = []
    for seat in course.seats:
        students = tuple(s.id for s in seat.students)
        candidates = sorted(by_seat.get(seat.id, []), key=lambda m: (m.launched, m.instance_id))
        if not candidates:
            out.append(SeatStatus(seat.id, students, None, None, "absent", None, "pending"))
            continue
        machine = candidates[0]
        labels = tags.as_dict(machine.raw.get("Tags"))
        address = None
        if machine.state == "running":
            where = ctx.resolver.address(machine.raw)
            address = f"{where[0]}:{where[1]}" if where else None
        hourly, cost = seat_cost(ctx, course, machine)
        out.append(SeatStatus(
            seat.id, students, machine.region, machine.instance_id, machine.state, address,
            labels.get(SETUP, "pending"), labels.get(SETUP_ERROR, ""),
            machine.instance_type, machine.launched, hourly, cost))
    return out


def seat_cost(ctx: Context, course: Course, machine: Machine) -> tuple[float | None,
                                                                        float | None]:
    """($/hour, $ so far since the machine last started): running hours x rate; a spot
    machine is counted at its max price when the course sets one."""
    cfg = course.machines
    if cfg is not None and cfg.market == "spot" and cfg.max_price is not None:
        hourly: float | None = cfg.max_price
    else:
        hourly = ctx.prices.ec2(machine.region, machine.instance_type).usd
    launched = machine.raw.get("LaunchTime")
    if hourly is None or machine.state != "running" or not isinstance(launched, datetime):
        return hourly, 0.0 if hourly is not None and machine.state != "running" else None
    hours = max(0.0, (datetime.now(UTC) - launched).total_seconds() / 3600)
    return hourly, hourly * hours


def select(course: Course, found: Inventory, seats: Iterable[str] | None) -> list[Machine]:
    """The machines of the named seats (all seats when None), each seat once in the order
    first named; unknown names are bad input."""
    by_seat = found.by_seat()
    if seats is None:
        return [m for ms in by_seat.values() for m in ms if m.seat in {s.id for s in
                                                                        course.seats}]
    names = list(dict.fromkeys(seats))
    problems: list[errors.Problem] = []
    out = []
    for name in names:
        try:
            course.seat(name)
        except LabError as exc:
            problems.extend(getattr(exc, "problems", []) or [
                errors.Problem(str(course.path), None, "", str(exc))])
            continue
        if name not in by_seat:
            problems.append(errors.Problem(str(course.path), None, "",
                                           f"seat {name!r} has no machine",
                                           "run `labtui up` first"))
            continue
        out.extend(by_seat[name])
    if problems:
        raise CourseError(problems)
    return out


def require_running(course: Course, found: Iterable[Machine], seats: Iterable[str] | None,
                    doing: str) -> None:
    """Refuse (LabError, exit 1) when a named seat has no running machine, saying what
    state it is in and how to start it; nothing is done to the others either."""
    if seats is None:
        return
    found = list(found)
    running = {m.seat for m in found if m.state == "running"}
    idle: dict[str, str] = {}
    for machine in found:
        if machine.seat not in running:
            idle.setdefault(machine.seat, machine.state)
    if not idle:
        return
    names = [n for n in dict.fromkeys(seats) if n in idle]
    what = ", ".join(f"{n} is {idle[n]}" for n in names)
    hint = ("wait until it runs, then try again" if all(idle[n] == "pending" for n in names)
            else f"start it with `labtui start {course.path} {' '.join(names)}`, then "
                 f"{doing} again")
    raise LabError(f"cannot {doing}: {what}. Fix: {hint}")


def _act(ctx: Context, course: Course, seats: Iterable[str] | None, name: str,
         states: tuple[str, ...], act: Callable[[Any, list[Machine]], None],
         verb: str, *, strict: bool = False) -> list[Machine]:
    """Apply one lifecycle action to the seats' machines that are in one of ``states``
    (``strict``: a named seat whose machine does not run is refused, see require_running)."""
    ctx.refuse_if_read_only(name)
    found = select(course, discover(ctx, course), seats)
    if strict:
        require_running(course, found, seats, name)
    chosen = [m for m in found if m.state in states]
    if chosen:
        act(ctx.aws, chosen)
    ctx.sink.emit(StepDone(f"{verb} {len(chosen)} machine(s)"))
    return chosen


def stop(ctx: Context, course: Course, seats: Iterable[str] | None = None) -> list[Machine]:
    return _act(ctx, course, seats, "stop", ("pending", "running"), machines.stop, "stopped")


def start(ctx: Context, course: Course, seats: Iterable[str] | None = None) -> list[Machine]:
    return _act(ctx, course, seats, "start", ("stopped", "stopping"), machines.start,
                "started")


def reboot(ctx: Context, course: Course, seats: Iterable[str], *,
           strict: bool = False) -> list[Machine]:
    return _act(ctx, course, seats, "reboot", ("running",), machines.reboot, "rebooted",
                strict=strict)


@dataclass
class DownOptions:
    save: bool = True                 # save each seat's work first (--no-save: don't)
    save_to: Path | None = None       # where saved work goes (default: the state folder)
    force: bool = False               # terminate seats whose save failed
    delete_buckets: bool = False
    delete_results: bool = False      # with delete_buckets: also those holding results/work
    all_regions: bool = True          # look for the course's tags in every enabled region
    final_snapshot: bool = True       # the database leaves a final snapshot
    images: bool = False              # also the baked images and their snapshots


def down_regions(ctx: Context, course: Course, all_regions: bool = True) -> list[str]:
    """The course's regions, then every other enabled region where its tags are found."""
    from labtui.services.regions import list_regions

    if not all_regions:
        return list(course.regions)
    enabled = [r for r, status in list_regions(ctx.aws).items()
               if status != "not-opted-in" and r not in course.regions]
    return list(course.regions) + teardown.course_regions(ctx.aws, course.id, enabled)


def save_work(ctx: Context, course: Course, options: DownOptions) -> list[Machine]:
    """Save every seat's work (stopped machines are started for it); the machines whose
    save failed (each named through the sink)."""
    from labtui.services.worksave import save_seat

    found = [m for m in discover(ctx, course).machines if m.state in ("running", "stopped",
                                                                        "stopping", "pending")]
    if not found:
        return []
    stopped = [m for m in found if m.state in ("stopped", "stopping")]
    if stopped:
        ctx.sink.emit(LogLine(f"starting {len(stopped)} stopped machine(s) to save their work"))
        machines.start(ctx.aws, stopped)
    remote = remote_for(ctx, course)
    cfg = course.teardown
    bucket = cfg.bucket or (course.storage.scratch_bucket if course.storage else None)
    root = options.save_to or ctx.state.course(course.id).root / "work"
    if bucket and not _bucket_exists(ctx, bucket):
        ctx.sink.emit(Problem(f"bucket {bucket} does not exist: the work is saved to {root} "
                              "only", fix="create it with `labtui up` (storage) or set "
                                          "[teardown] bucket to one that exists"))
        bucket = None

    def one(machine: Machine) -> str:
        saved = save_seat(remote, machine, cfg.save, root / machine.seat, ctx.aws, bucket)
        where = f"s3://{bucket}/{saved.bucket_prefix}" if saved.bucket_prefix else str(
            saved.folder)
        ctx.sink.emit(SeatChanged(machine.seat, "saved", f"{saved.files} file(s) to {where}"))
        return where

    outcomes = fan_out(found, lambda m: m.seat, one, task="save work", sink=ctx.sink,
                       on_interrupt=remote.stop)
    failed = [(machine, o.error) for machine, o in zip(found, outcomes, strict=True)
              if not o.ok]
    for machine, why in failed:
        ctx.sink.emit(Problem(f"{machine.seat}: its work was not saved: {why}",
                              seat=machine.seat,
                              fix="fix the machine and run down again, or --force to "
                                  "terminate it anyway (or --no-save)"))
    return [machine for machine, _ in failed]


def _bucket_exists(ctx: Context, name: str) -> bool:
    try:
        with translate_errors(f"s3.HeadBucket {name}"):
            ctx.aws.client("s3", "us-east-1").head_bucket(Bucket=name)
    except LabError:
        return False
    return True


def down(ctx: Context, course: Course,
         options: DownOptions | None = None) -> teardown.DownReport:
    """Remove everything of the course, saving the students' work first; ends with the
    verification pass (``report.left``)."""
    ctx.refuse_if_read_only("down")
    options = options or DownOptions()
    regions = down_regions(ctx, course, options.all_regions)
    unsaved = save_work(ctx, course, options) if options.save else []
    keep = set() if options.force else {m.instance_id for m in unsaved}
    report = teardown.down(ctx.aws, course.id, regions, ctx.sink, keep=keep,
                           delete_buckets=options.delete_buckets,
                           delete_results=options.delete_results,
                           final_snapshot=options.final_snapshot)
    report.failed.extend(billing.remove_billing(ctx.aws, course.id, ctx.sink))
    if course.machines is not None:
        from labtui import imageops
        try:
            kept = imageops.down_images(ctx, course, regions, remove=options.images)
        except LabError as exc:  # the rest is down: say what of the images failed
            report.failed.append(f"baked images: {exc}")
            ctx.sink.emit(Problem(f"baked images: {exc}"))
        else:
            if not options.images:
                report.kept.extend(f"{i.region} image {i.image_id}: baked, for the next "
                                   f"term (${i.monthly_usd:.2f}/month); `down --images` "
                                   "removes it" for i in kept)
    report.left = teardown.leftovers(ctx.aws, course.id, regions)
    if report.left:
        for left in report.left:
            ctx.sink.emit(Problem(f"still there: {left}"))
    else:
        ctx.sink.emit(StepDone(f"nothing of {course.id} is left in {len(regions)} region(s)"))
    return report


# -- over SSH ------------------------------------------------------------------------------

def remote_for(ctx: Context, course: Course) -> Remote:
    state = ctx.state.course(course.id)
    private, _ = keys.course_key(state)
    user = course.machines.user if course.machines else "ubuntu"
    return Remote(ctx.aws, ctx.resolver, machines.KnownHosts(state), private, user)


def setup(ctx: Context, course: Course, chosen: list[Machine] | None = None, *,
          concurrency: int | None = None, wait: float = 300,
          cancelled: Callable[[], bool] = lambda: False,
          also: Iterable[str] = (), after_boot: Iterable[str] = ()) -> list[Outcome]:
    """Set up the given machines (default: every running seat machine whose setup is not
    done, and the seats in ``also``) all at once; returns one Outcome per machine, failures
    named. Steps already done on a machine are skipped; the seats in ``after_boot`` ran the
    course's steps at boot and get only their own."""
    ctx.refuse_if_read_only("setup")
    if chosen is None:
        again = set(also)
        chosen = [m for m in discover(ctx, course).machines if m.state == "running"
                  and (tags.as_dict(m.raw.get("Tags")).get(SETUP) != "done"
                       or m.seat in again)]
    remote = remote_for(ctx, course)
    state = ctx.state.course(course.id)
    clusters = (seat_clusters(ctx.aws, course.id, course.regions)
                if course.clusters is not None and chosen else {})
    booted = set(after_boot)

    if chosen:
        setup_state.mark(ctx.aws, chosen, "running")

    def one(machine: Machine) -> None:
        try:
            public = (keys.seat_key(state, machine.seat)[1]
                      if course.machines and course.machines.login == "key" else None)
            cluster = _seat_cluster(course, machine.seat, clusters)
            setup_seat(remote, course, machine, state, ctx.sink, wait=wait,
                       seat_public_key=public,
                       cluster=(cluster.region, cluster.cluster_id) if cluster else None,
                       cloud_tmp_dir=_scratch_tmp(course, machine.seat),
                       aws_keys=(access.stored_keys(state, course, machine.seat)
                                 if access.enabled(course) and not uses_profiles(course)
                                 else None),
                       after_boot=machine.seat in booted)
        except Exception as exc:
            if remote.stopped:  # Ctrl-C ended it: not failed, the rerun takes it up
                setup_state.mark(ctx.aws, [machine], "pending", "interrupted")
                raise
            setup_state.mark(ctx.aws, [machine], "failed", setup_state.reason_of(exc))
            ctx.sink.emit(SeatChanged(machine.seat, "setup failed", str(exc)))
            raise
        setup_state.mark(ctx.aws, [machine], "done")
        cluster = _seat_cluster(course, machine.seat, clusters) if course.clusters else None
        if course.clusters is not None and (cluster is None
                                            or cluster.state not in clusters_service.READY):
            ctx.sink.emit(SeatChanged(machine.seat, "set up", "waiting for its cluster"))
        else:
            ctx.sink.emit(SeatChanged(machine.seat, "ready"))

    by_seat = {m.seat: m for m in chosen}
    try:
        outcomes = fan_out(chosen, lambda m: m.seat, one, concurrency=concurrency,
                           task="setup", sink=ctx.sink, cancelled=cancelled,
                           on_interrupt=remote.stop)
    except Interrupted as stop:
        # the seats that never began were tagged running with the rest: pending again
        _set_back(ctx, [by_seat[seat] for seat in stop.unfinished], "interrupted")
        raise
    _set_back(ctx, [by_seat[o.key] for o in outcomes if o.error == CANCELLED], CANCELLED)
    failed = [o.key for o in outcomes if not o.ok]
    ctx.sink.emit(StepDone(f"setup done {len(outcomes) - len(failed)}/{len(outcomes)}",
                           ok=not failed,
                           detail=f"failed: {', '.join(failed)}" if failed else ""))
    return outcomes


def _set_back(ctx: Context, machines: list[Machine], why: str) -> None:
    """Seats whose setup did not run to its end: pending, so a rerun takes them up (never
    left tagged as running). Best effort: the interruption is what gets reported."""
    if machines:
        with contextlib.suppress(LabError):
            setup_state.mark(ctx.aws, machines, "pending", why)


def boot_setup(ctx: Context, course: Course, channel: bootevents.Channel, *,
               wait: float = 300, concurrency: int | None = None,
               cancelled: Callable[[], bool] = lambda: False,
               also: Iterable[str] = ()) -> list[Outcome]:
    """setup_mode = "user-data": follow the booting seats through their events (``wait``:
    the boot deadline, for a machine's first event), then set their own steps over SSH when
    the course has any (passwords, keys, notebooks, ~/.mrjob.conf). A seat whose boot setup
    ended before (failed: a rerun goes over SSH), or whose machine has no boot robot, is set
    up over SSH as with setup_mode = "ssh". One Outcome per seat, failures named."""
    ctx.refuse_if_read_only("setup")
    again = set(also)
    running = [m for m in discover(ctx, course).machines if m.state == "running"]
    booting = [m for m in running if bootevents.is_booting(m)]
    others = [m for m in running if m not in booting
              and (tags.as_dict(m.raw.get("Tags")).get(SETUP) != "done" or m.seat in again)]
    state = ctx.state.course(course.id)
    follower = bootevents.Follower(ctx.aws, course, channel, state, ctx.sink,
                                   console=lambda m: console(ctx, m),
                                   secrets_of=lambda seat: _seat_secrets(ctx, course, seat))
    results = follower.follow(booting, wait, cancelled) if booting else {}
    done = [m for m in booting if results.get(m.seat) == ""]
    failed = [Outcome(seat, error=why) for seat, why in sorted(results.items()) if why]
    if booting:
        ctx.sink.emit(StepDone(f"boot setup done {len(done)}/{len(booting)}", ok=not failed,
                               detail=("failed: " + ", ".join(o.key for o in failed))
                               if failed else ""))
    after = done if bootevents.needs_ssh(course) else []
    outcomes: list[Outcome] = list(failed)
    for machine in done:
        if machine not in after:   # nothing of the seat's own: done at boot
            setup_state.mark(ctx.aws, [machine], "done")
            ctx.sink.emit(SeatChanged(machine.seat, "ready"))
            outcomes.append(Outcome(machine.seat))
    if after or others:
        outcomes += setup(ctx, course, after + others, concurrency=concurrency, wait=wait,
                          cancelled=cancelled, after_boot=[m.seat for m in after])
    return outcomes


def _seat_secrets(ctx: Context, course: Course, seat: str) -> list[str]:
    """What of the seat is secret and known here (masked in what its machine reports)."""
    from labtui.services import notebooks, passwords

    state = ctx.state.course(course.id)
    keys_of = access.stored_keys(state, course, seat) if access.enabled(course) else None
    return [s for s in (passwords.get(state, seat), notebooks.token(state, seat),
                        keys_of.secret_access_key if keys_of else None) if s]


def _seat_cluster(course: Course, seat_id: str, clusters: dict) -> Any:
    """The cluster a seat's machine submits to: its (first) student's, group's or the
    class's."""
    students = course.seat(seat_id).students
    return clusters.get(course.cluster_key(students[0])) if students else None


def seats_of_keys(course: Course, keys: Iterable[str]) -> list[str]:
    """The seats whose machine submits to those clusters."""
    wanted = set(keys)
    return [seat.id for seat in course.seats
            if seat.students and course.cluster_key(seat.students[0]) in wanted]


def replace_cluster(ctx: Context, course: Course, name: str) -> tuple[Any, Any]:
    """A new cluster for one seat (clusterops.replace), and the seats that use it told so in
    their ~/.mrjob.conf. Returns (old, new)."""
    network_for, key_name_for = _per_region(ctx, course)
    old, new = clusterops.replace(ctx, course, name, _subnet_of(network_for), key_name_for)
    if course.machines is not None:
        seats = set(seats_of_keys(course, [new.seat]))
        machines_of = [m for m in discover(ctx, course).machines
                       if m.state == "running" and m.seat in seats]
        if machines_of:
            setup(ctx, course, machines_of)
    return old, new


def _scratch_tmp(course: Course, seat_id: str) -> str | None:
    """mrjob's cloud_tmp_dir of a seat: under the seat's own scratch prefix (the one its
    identity may write, labtui/policy.py)."""
    storage = course.storage
    if storage is None or not storage.scratch_bucket:
        return None
    return f"s3://{storage.scratch_bucket}/{seat_id}/tmp/"


def running_machines(ctx: Context, course: Course, seats: Iterable[str] | None, *,
                     strict: bool = False, doing: str = "rerun-setup") -> list[Machine]:
    """The named seats' running machines (``strict``: a named seat that does not run is
    refused with how to start it, see require_running)."""
    found = select(course, discover(ctx, course), seats)
    if strict:
        require_running(course, found, seats, doing)
    return [m for m in found if m.state == "running"]


def exec_command(ctx: Context, course: Course, seats: Iterable[str] | None, command: str,
                 *, concurrency: int | None = None, timeout: float | None = None,
                 cancelled: Callable[[], bool] = lambda: False) -> list[Outcome]:
    """Run ``command`` on the seats' machines at once; each line of output goes through
    ``ctx.sink`` as a LogLine with the seat as source and its stream (stdout, stderr), so
    both front ends show it and the event log records it; each Outcome's value is that
    seat's exit status."""
    ctx.refuse_if_read_only("exec")
    remote = remote_for(ctx, course)
    found = select(course, discover(ctx, course), seats)
    chosen = [m for m in found if m.state == "running"]
    idle = {m.seat: m.state for m in found if m.seat not in {c.seat for c in chosen}}

    def one(machine: Machine) -> int:
        def line(stream: str, text: str) -> None:
            ctx.sink.emit(LogLine(text, source=machine.seat, stream=stream,
                                  level="warning" if stream == "stderr" else "info"))
        return exec_on(remote, machine, command, line, timeout=timeout)

    outcomes = fan_out(chosen, lambda m: m.seat, one, concurrency=concurrency, task="exec",
                       sink=ctx.sink, cancelled=cancelled, on_interrupt=remote.stop)
    return outcomes + [Outcome(seat, error=f"not running ({state})")
                       for seat, state in sorted(idle.items())]


def reset_seat_password(ctx: Context, course: Course, seat: str):
    ctx.refuse_if_read_only("reset-password")
    if course.machines is None or course.machines.login != "password":
        raise InputError(f"{course.path}: machines.login is not \"password\": seats log in "
                         "with keys. Fix: set login = \"password\" to use passwords")
    [machine] = running_machines(ctx, course, [seat])[:1] or [None]
    if machine is None:
        raise InputError(f"seat {seat!r} has no running machine. Fix: `labtui start` it")
    return reset_password(remote_for(ctx, course), machine, ctx.state.course(course.id),
                          ctx.sink, course.machines.user)


def console(ctx: Context, machine: Machine) -> str:
    """The machine's console output (what its boot and cloud-init printed)."""
    return machines.console_output(ctx.aws, machine)


def seat_machine(ctx: Context, course: Course, seat: str) -> Machine:
    found = select(course, discover(ctx, course), [seat])
    live = sorted(found, key=lambda m: (m.state != "running", m.launched))
    return live[0]


def ssh_command(ctx: Context, course: Course, seat: str) -> list[str]:
    """The `ssh` command line that opens a shell on the seat's machine with its pinned host
    key and the course key (a 0600 known_hosts file in the state folder, never a prompt to
    trust a key)."""
    import shutil

    from labtui.state import write_private

    machine = seat_machine(ctx, course, seat)
    require_running(course, [machine], [seat], "ssh")
    remote = remote_for(ctx, course)
    target = remote.target(machine, wait=10)
    state = ctx.state.course(course.id)
    name = target.host if target.port == 22 else f"[{target.host}]:{target.port}"
    known = write_private(state.secrets / "ssh_known_hosts", f"{name} {target.host_key}\n")
    config = write_private(state.secrets / "ssh_config", "# labtui: no user settings\n")
    key_path = state.secrets / keys.KEY_FILE
    binary = shutil.which("ssh")
    if binary is None:
        raise InputError("the `ssh` program is not installed. Fix: install an OpenSSH client")
    argv = ssh.openssh_argv(target.host, target.port, target.user, str(known),
                            identity=str(key_path))
    # -F: a config of labtui's own, so nothing in the user's ~/.ssh/config applies
    return [binary, "-F", str(config), *argv[1:]]


# -- sweep: what is left in the account, in every region -------------------------------------

@dataclass
class SweepOutcome:
    """What a sweep found, what it was asked to delete, and what is still there after."""

    scan: Any                                         # services.sweep.ScanResult
    chosen: list[Any] = field(default_factory=list)   # the findings to delete
    removals: list[Any] = field(default_factory=list)  # one services.sweep.Removal each
    left: list[Any] = field(default_factory=list)     # chosen findings found again after
    cancelled: bool = False

    @property
    def failed(self) -> list[Any]:
        return [r for r in self.removals if not r.ok]


def parse_regions(value: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """``None``/"all" means every enabled region; else "R,R" (or names) checked against the
    AWS region names, each bad one named with a fix (InputError, exit 2)."""
    from labtui import checks

    if value is None:
        return None
    names = ([n.strip() for n in value.split(",")] if isinstance(value, str)
             else [n.strip() for n in value])
    names = [n for n in names if n]
    if names == ["all"]:
        return None
    bad = [n for n in names if n not in checks.AWS_REGIONS]
    if bad or not names:
        shown = ", ".join(repr(n) for n in bad) or "nothing"
        raise InputError(f"--regions: {shown} {'is' if len(bad) <= 1 else 'are'} not an AWS "
                         "region. Fix: give `all` or a comma list of region names, e.g. "
                         "--regions us-east-1,eu-west-1")
    return tuple(dict.fromkeys(names))


def sweep_regions(ctx: Context, regions: str | Iterable[str] | None = None) -> list[str]:
    """The regions a sweep looks in: the named ones (each must be enabled for the account),
    or every region the account has enabled."""
    from labtui.services.regions import list_regions

    names = parse_regions(regions)
    known = list_regions(ctx.aws)
    if names is None:
        return sorted(r for r, status in known.items() if status != "not-opted-in")
    off = [n for n in names if known.get(n, "not-opted-in") == "not-opted-in"]
    if off:
        raise InputError(f"--regions: {', '.join(off)} {'is' if len(off) == 1 else 'are'} not "
                         "enabled for this account. Fix: enable it (AWS console, Account > "
                         "AWS Regions), or leave it out of --regions")
    return list(names)


def sweep(ctx: Context, regions: str | Iterable[str] | None = None, *, delete: bool = False,
          include_untagged: bool = False,
          confirm: Callable[[list[Any]], bool] = lambda _findings: True,
          on_region: Callable[[str, list[Any]], None] | None = None) -> SweepOutcome:
    """Look in every region (in parallel) for what any labtui course left and for untagged
    resources that bill while idle; with ``delete``, remove labtui's (and, with
    ``include_untagged``, the rest) after ``confirm(findings)``, then look again. Needs no
    course file. ``on_region(region, findings)`` is called as each region answers."""
    from labtui.services import sweep as sweeping

    if delete:
        ctx.refuse_if_read_only("sweep (deleting what it finds)")
    names = sweep_regions(ctx, regions)
    ctx.sink.emit(LogLine(f"sweep: looking in {len(names)} region(s) for {tags.COURSE} and "
                          "untagged idle resources"))
    found = sweeping.scan(ctx.aws, names, sink=ctx.sink, prices=ctx.prices,
                          on_region=on_region)
    labtui_count = sum(1 for f in found.findings if f.tagged)
    ctx.sink.emit(StepDone(
        f"sweep: {len(found.findings)} found in {len(names)} region(s) ({labtui_count} "
        f"labtui, {len(found.findings) - labtui_count} untagged), about "
        f"${found.monthly_usd:.2f}/month ({found.seconds:.1f} s)", ok=not found.failed,
        detail="unread: " + ", ".join(sorted(found.failed)) if found.failed else ""))
    outcome = SweepOutcome(found)
    if not delete:
        return outcome
    outcome.chosen = [f for f in found.findings if f.tagged or include_untagged]
    if not outcome.chosen:
        return outcome
    if not confirm(outcome.chosen):
        outcome.cancelled = True
        ctx.sink.emit(LogLine("sweep: cancelled; nothing was deleted"))
        return outcome
    outcome.removals, outcome.left = sweep_remove(ctx, outcome.chosen)
    return outcome


def sweep_remove(ctx: Context, findings: list[Any]) -> tuple[list[Any], list[Any]]:
    """Delete the findings in dependency order, then look again in their regions: returns
    (one Removal per finding, the findings still there)."""
    from labtui.services import sweep as sweeping

    ctx.refuse_if_read_only("deleting what sweep found")
    removals = sweeping.remove(ctx.aws, findings, sink=ctx.sink)
    again = sweeping.scan(ctx.aws, sorted({f.region for f in findings}), prices=ctx.prices)
    wanted = {f.key for f in findings}
    left = [f for f in again.findings if f.key in wanted]
    failed = [r for r in removals if not r.ok]
    ctx.sink.emit(StepDone(
        f"sweep: deleted {len(removals) - len(failed)} of {len(findings)}; "
        f"{len(left)} still there", ok=not failed and not left,
        detail="; ".join(f"{f.region} {f.kind} {f.id}" for f in left)))
    return removals, left
