"""The class's machines from bring-up to take-down: the use cases both front ends call.

Each function takes a Context and a Course, reports progress through ``ctx.sink`` and finds
everything from tags, so the TUI and the headless commands share one code path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from labtui.context import Context
from labtui.course import Course
from labtui.errors import InputError, LabError, Problem
from labtui.events import LogLine, Progress, StepDone
from labtui.plan import Plan, instance_types, make_plan
from labtui.services import inventory, keys, machines, network, tags, teardown
from labtui.services.instance_types import vcpus
from labtui.services.inventory import Inventory, Machine

SETUP = "labtui:setup"          # pending | running | done | failed
SETUP_ERROR = "labtui:setup-error"


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

    def to_json(self) -> dict[str, Any]:
        return {"seat": self.seat, "students": list(self.students), "region": self.region,
                "instance_id": self.instance_id, "state": self.state, "address": self.address,
                "setup": self.setup, "error": self.error, "instance_type": self.instance_type,
                "launched": self.launched}


@dataclass
class UpResult:
    plan: Plan
    launched: list[Machine] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    moved: dict[str, tuple[str, str]] = field(default_factory=dict)
    cancelled: bool = False


def discover(ctx: Context, course: Course) -> Inventory:
    """The course's seat machines, adopting any whose seat tag was never written."""
    for region in course.regions:
        machines.adopt_untagged(ctx.aws, course.id, region, ctx.sink)
    return inventory.machines(ctx.aws, course.id, course.regions)


def plan(ctx: Context, course: Course, found: Inventory | None = None) -> Plan:
    found = found if found is not None else discover(ctx, course)
    table: dict[tuple[str, str], int] = {}
    types = instance_types(course)
    for region in course.regions:
        for itype, count in vcpus(ctx.aws, region, types).items():
            table[(region, itype)] = count
    return make_plan(course, found, table)


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
       confirm: Callable[[Plan], bool] = lambda _plan: True) -> UpResult:
    """Converge AWS to one machine per seat; never passes max_instances."""
    if course.machines is None:
        raise InputError(f"{course.path}: the course has no [machines] section. Fix: add one "
                         "(see sample_course.toml)")
    ctx.refuse_if_read_only("up")
    found = discover(ctx, course)
    the_plan = plan(ctx, course, found)
    result = UpResult(the_plan)
    to_create = {r.region: list(r.create) for r in the_plan.regions if r.create}
    count = sum(len(v) for v in to_create.values())
    if count == 0:
        ctx.sink.emit(LogLine(f"every seat has its machine ({len(course.seats)} seats)"))
        return result
    check_cap(ctx, course, count)
    if not confirm(the_plan):
        result.cancelled = True
        return result
    course_state = ctx.state.course(course.id)
    _, public = keys.course_key(course_state)
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

    ctx.sink.emit(Progress("launch", 0, count))
    outcome = machines.launch(ctx.aws, course, course_state, to_create, network_for,
                              key_name_for, ctx.sink)
    result.launched, result.failed, result.moved = (outcome.launched, outcome.failed,
                                                     outcome.moved)
    ctx.sink.emit(Progress("launch", len(outcome.launched), count, len(outcome.failed)))
    if outcome.launched:
        machines.wait_running(ctx.aws, outcome.launched)
        set_setup_state(ctx, outcome.launched, "pending")
        ctx.sink.emit(StepDone(f"{len(outcome.launched)} machine(s) running"))
    return result


def set_setup_state(ctx: Context, found: Iterable[Machine], state: str, error: str = "") -> None:
    by_region: dict[str, list[str]] = {}
    for machine in found:
        by_region.setdefault(machine.region, []).append(machine.instance_id)
    for region, ids in by_region.items():
        ec2 = ctx.aws.client("ec2", region)
        ec2.create_tags(Resources=ids, Tags=[{"Key": SETUP, "Value": state},
                                             {"Key": SETUP_ERROR, "Value": error[:250]}])


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
        out.append(SeatStatus(
            seat.id, students, machine.region, machine.instance_id, machine.state, address,
            labels.get(SETUP, "pending"), labels.get(SETUP_ERROR, ""),
            machine.instance_type, machine.launched))
    return out


def select(course: Course, found: Inventory, seats: Iterable[str] | None) -> list[Machine]:
    """The machines of the named seats (all seats when None); unknown names are bad input."""
    by_seat = found.by_seat()
    if seats is None:
        return [m for ms in by_seat.values() for m in ms if m.seat in {s.id for s in
                                                                        course.seats}]
    names = list(seats)
    problems = []
    out = []
    for name in names:
        try:
            course.seat(name)
        except LabError as exc:
            problems.extend(getattr(exc, "problems", []) or [Problem(str(course.path), None,
                                                                     "", str(exc))])
            continue
        if name not in by_seat:
            problems.append(Problem(str(course.path), None, "",
                                    f"seat {name!r} has no machine",
                                    "run `labtui up` first"))
            continue
        out.extend(by_seat[name])
    if problems:
        from labtui.errors import CourseError

        raise CourseError(problems)
    return out


def stop(ctx: Context, course: Course, seats: Iterable[str] | None = None) -> list[Machine]:
    ctx.refuse_if_read_only("stop")
    chosen = [m for m in select(course, discover(ctx, course), seats)
              if m.state in ("pending", "running")]
    if chosen:
        machines.stop(ctx.aws, chosen)
    ctx.sink.emit(StepDone(f"stopped {len(chosen)} machine(s)"))
    return chosen


def start(ctx: Context, course: Course, seats: Iterable[str] | None = None) -> list[Machine]:
    ctx.refuse_if_read_only("start")
    chosen = [m for m in select(course, discover(ctx, course), seats)
              if m.state in ("stopped", "stopping")]
    if chosen:
        machines.start(ctx.aws, chosen)
    ctx.sink.emit(StepDone(f"started {len(chosen)} machine(s)"))
    return chosen


def reboot(ctx: Context, course: Course, seats: Iterable[str]) -> list[Machine]:
    ctx.refuse_if_read_only("reboot")
    chosen = [m for m in select(course, discover(ctx, course), seats) if m.state == "running"]
    if chosen:
        machines.reboot(ctx.aws, chosen)
    ctx.sink.emit(StepDone(f"rebooted {len(chosen)} machine(s)"))
    return chosen


def down(ctx: Context, course: Course) -> teardown.DownReport:
    ctx.refuse_if_read_only("down")
    for region in course.regions:
        machines.adopt_untagged(ctx.aws, course.id, region, ctx.sink)
    return teardown.down(ctx.aws, course.id, course.regions, ctx.sink)
