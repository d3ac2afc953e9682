"""plan: a pure function of (course, inventory, vCPU table) -> what ``up`` would do.

Seats that already have a machine stay where it is; new seats go to the course's regions in
order of preference (the first region until quota-aware placement arrives). A seat with more
than one machine, or a machine whose seat left the roster, is listed as surplus.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from labtui.course import Course
from labtui.services.inventory import Inventory, Machine


@dataclass(frozen=True)
class RegionPlan:
    region: str
    seats: tuple[str, ...] = ()
    create: tuple[str, ...] = ()      # seats whose machine is to be launched here
    keep: tuple[str, ...] = ()        # seats whose machine already runs here
    clusters: int = 0                 # EMR clusters to run here (one per student)
    instances: Counter[str] = field(default_factory=Counter)  # type -> count when all run
    vcpus: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "type": "region", "region": self.region, "seats": len(self.seats),
            "machines_to_create": len(self.create), "machines_existing": len(self.keep),
            "clusters_to_create": self.clusters, "instances": sum(self.instances.values()),
            "instance_types": dict(sorted(self.instances.items())), "vcpus": self.vcpus,
            "seat_ids": list(self.seats),
        }


@dataclass(frozen=True)
class Plan:
    course: Course
    regions: tuple[RegionPlan, ...]
    surplus: tuple[Machine, ...] = ()

    @property
    def instances(self) -> int:
        return sum(sum(r.instances.values()) for r in self.regions)

    @property
    def vcpus(self) -> int:
        return sum(r.vcpus for r in self.regions)

    @property
    def to_create(self) -> int:
        return sum(len(r.create) for r in self.regions)

    def summary_json(self) -> dict[str, object]:
        return {
            "type": "summary", "course": self.course.id, "seats": len(self.course.seats)
            if self.course.machines else 0, "students": len(self.course.students),
            "machines_to_create": self.to_create,
            "clusters_to_create": sum(r.clusters for r in self.regions),
            "instances": self.instances, "max_instances": self.course.max_instances,
            "vcpus": self.vcpus, "surplus": [m.instance_id for m in self.surplus],
        }


def instance_types(course: Course) -> set[str]:
    types = {course.machines.instance_type} if course.machines else set()
    if course.clusters:
        types |= {g.instance_type for g in course.clusters.groups}
    return types


def make_plan(course: Course, inventory: Inventory,
              vcpus: Mapping[tuple[str, str], int]) -> Plan:
    """``vcpus`` maps (region, instance type) to vCPUs for every type in every course region."""
    by_seat = inventory.by_seat()
    seat_ids = {s.id for s in course.seats}
    surplus = [m for seat, ms in by_seat.items() if seat not in seat_ids for m in ms]
    placed: dict[str, str] = {}
    keep: dict[str, list[str]] = {}
    create: dict[str, list[str]] = {}
    first = course.regions[0]
    if course.machines:
        for seat in course.seats:
            existing = sorted(by_seat.get(seat.id, []), key=lambda m: (m.launched, m.instance_id))
            if existing:
                placed[seat.id] = existing[0].region
                keep.setdefault(existing[0].region, []).append(seat.id)
                surplus.extend(existing[1:])
            else:
                placed[seat.id] = first
                create.setdefault(first, []).append(seat.id)
    student_region = {}
    for seat in course.seats:
        for student in seat.students:
            student_region[student.id] = placed.get(seat.id, first)
    clusters = Counter(student_region[s.id] if s.id in student_region else first
                       for s in course.students) if course.clusters else Counter()
    regions = []
    for region in course.regions:
        counts: Counter[str] = Counter()
        seats = tuple(s for s, r in placed.items() if r == region)
        if course.machines:
            counts[course.machines.instance_type] += len(seats)
        if course.clusters:
            for group in course.clusters.groups:
                counts[group.instance_type] += group.count * clusters[region]
        total = sum(vcpus[(region, t)] * n for t, n in counts.items() if n)
        regions.append(RegionPlan(
            region=region, seats=seats, create=tuple(create.get(region, [])),
            keep=tuple(keep.get(region, [])), clusters=clusters[region],
            instances=+counts, vcpus=total))
    return Plan(course, tuple(regions), tuple(surplus))
