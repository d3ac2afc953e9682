"""plan: a pure function of (course, inventory, facts) -> what ``up`` would do.

Seats that already have a machine stay where it is. New seats fill the course's regions in
order of preference, each within the region's vCPU headroom (quota minus what the account
already runs) for its machine and the EMR clusters of its students together. Seats that fit
nowhere are listed with the shortfall per quota and a suggested increase. A seat with more
than one machine, or a machine whose seat left the roster, is listed as surplus.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from labtui.course import Course, Seat
from labtui.model import NAMES, Inventory, Machine, quota_code

HOURS_PER_DAY = 24


@dataclass(frozen=True)
class Facts:
    """What the plan needs to know about AWS, gathered beforehand (see lifecycle.plan)."""

    vcpus: Mapping[tuple[str, str], int]                 # (region, type) -> vCPUs
    headroom: Mapping[tuple[str, str], float] | None = None  # (region, code) -> free vCPUs
    ec2_price: Mapping[tuple[str, str], float | None] = field(default_factory=dict)
    emr_price: Mapping[tuple[str, str], float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class RegionPlan:
    region: str
    seats: tuple[str, ...] = ()
    create: tuple[str, ...] = ()      # seats whose machine is to be launched here
    keep: tuple[str, ...] = ()        # seats whose machine already runs here
    clusters: int = 0                 # EMR clusters to run here
    cluster_keys: tuple[str, ...] = ()  # their labtui:seat tags (student, group or "class")
    instances: Counter[str] = field(default_factory=Counter)  # type -> count when all run
    vcpus: int = 0                    # when all run
    new_vcpus: dict[str, float] = field(default_factory=dict)   # quota code -> to be added
    headroom: dict[str, float] = field(default_factory=dict)    # quota code -> free before
    hourly_usd: float = 0.0
    unpriced: tuple[str, ...] = ()    # "t3.small (EC2)" with no known price

    def to_json(self) -> dict[str, object]:
        return {
            "type": "region", "region": self.region, "seats": len(self.seats),
            "machines_to_create": len(self.create), "machines_existing": len(self.keep),
            "clusters_to_create": self.clusters, "instances": sum(self.instances.values()),
            "instance_types": dict(sorted(self.instances.items())), "vcpus": self.vcpus,
            "new_vcpus": self.new_vcpus, "headroom": self.headroom,
            "hourly_usd": round(self.hourly_usd, 4),
            "daily_usd": round(self.hourly_usd * HOURS_PER_DAY, 2),
            "unpriced": list(self.unpriced), "seat_ids": list(self.seats),
        }


@dataclass(frozen=True)
class Shortfall:
    code: str
    vcpus: float          # missing vCPUs for the seats that fit nowhere
    region: str           # the preferred region, where an increase would help most
    headroom: float       # what that region has free now

    @property
    def name(self) -> str:
        return NAMES.get(self.code, self.code)


@dataclass(frozen=True)
class Plan:
    course: Course
    regions: tuple[RegionPlan, ...]
    surplus: tuple[Machine, ...] = ()
    unplaced: tuple[str, ...] = ()          # seats that fit in no region's headroom
    shortfall: tuple[Shortfall, ...] = ()
    clusters_to_start: tuple[str, ...] = ()  # cluster keys without a live cluster (up fills it)

    @property
    def instances(self) -> int:
        return sum(sum(r.instances.values()) for r in self.regions)

    @property
    def vcpus(self) -> int:
        return sum(r.vcpus for r in self.regions)

    @property
    def to_create(self) -> int:
        return sum(len(r.create) for r in self.regions)

    @property
    def cluster_regions(self) -> dict[str, str]:
        """Where each cluster of the class goes (its seat tag -> region)."""
        return {key: r.region for r in self.regions for key in r.cluster_keys}

    @property
    def hourly_usd(self) -> float:
        return sum(r.hourly_usd for r in self.regions)

    @property
    def daily_usd(self) -> float:
        return self.hourly_usd * HOURS_PER_DAY

    @property
    def unpriced(self) -> tuple[str, ...]:
        return tuple(sorted({f"{x} in {r.region}" for r in self.regions for x in r.unpriced}))

    @property
    def over_budget(self) -> bool:
        budget = self.course.budget_usd
        return budget is not None and self.daily_usd > budget

    def summary_json(self) -> dict[str, object]:
        return {
            "type": "summary", "course": self.course.id,
            "seats": len(self.course.seats) if self.course.machines else 0,
            "students": len(self.course.students), "machines_to_create": self.to_create,
            "clusters_to_create": sum(r.clusters for r in self.regions),
            "instances": self.instances, "max_instances": self.course.max_instances,
            "vcpus": self.vcpus, "surplus": [m.instance_id for m in self.surplus],
            "unplaced": list(self.unplaced),
            "shortfall": [{"quota": s.code, "name": s.name, "vcpus": s.vcpus,
                           "region": s.region, "headroom": s.headroom}
                          for s in self.shortfall],
            "hourly_usd": round(self.hourly_usd, 4), "daily_usd": round(self.daily_usd, 2),
            "budget_usd": self.course.budget_usd, "over_budget": self.over_budget,
            "unpriced": list(self.unpriced),
        }


def instance_types(course: Course) -> set[str]:
    types = {course.machines.instance_type} if course.machines else set()
    if course.clusters:
        types |= {g.instance_type for g in course.clusters.groups}
    return types


def quota_codes(course: Course) -> set[str]:
    codes = set()
    if course.machines:
        codes.add(quota_code(course.machines.instance_type, course.machines.market))
    if course.clusters:
        codes |= {quota_code(g.instance_type, g.market) for g in course.clusters.groups}
    return codes


def _machine_demand(course: Course, region: str, facts: Facts) -> Counter[str]:
    demand: Counter[str] = Counter()
    if course.machines:
        m = course.machines
        code = quota_code(m.instance_type, m.market)
        demand[code] += facts.vcpus.get((region, m.instance_type), 0)
    return demand


def _cluster_demand(course: Course, region: str, clusters: int, facts: Facts) -> Counter[str]:
    demand: Counter[str] = Counter()
    if course.clusters:
        for g in course.clusters.groups:
            demand[quota_code(g.instance_type, g.market)] += (
                facts.vcpus.get((region, g.instance_type), 0) * g.count * clusters)
    return demand


def _fits(demand: Counter[str], free: Mapping[str, float]) -> bool:
    return all(free.get(code, 0.0) >= need for code, need in demand.items())


def make_plan(course: Course, inventory: Inventory, facts: Facts) -> Plan:
    by_seat = inventory.by_seat()
    seat_ids = {s.id for s in course.seats}
    surplus = [m for seat, ms in by_seat.items() if seat not in seat_ids for m in ms]
    unlimited = float("inf")  # headroom not known: place everything in the first region
    free: dict[str, dict[str, float]] = {
        r: {c: (facts.headroom.get((r, c), 0.0) if facts.headroom is not None else unlimited)
            for c in quota_codes(course)}
        for r in course.regions}
    before = {r: dict(free[r]) if facts.headroom is not None else {} for r in course.regions}
    placed: dict[str, str] = {}
    keep: dict[str, list[str]] = defaultdict(list)
    create: dict[str, list[str]] = defaultdict(list)
    new_demand: dict[str, Counter[str]] = defaultdict(Counter)
    unplaced: list[Seat] = []

    def take(region: str, demand: Counter[str]) -> None:
        for code, need in demand.items():
            free[region][code] -= need
        new_demand[region].update(demand)

    types = instance_types(course)
    usable = [r for r in course.regions if all((r, t) in facts.vcpus for t in types)]
    seats = course.seats if course.machines else ()
    for seat in seats:
        existing = sorted(by_seat.get(seat.id, []), key=lambda m: (m.launched, m.instance_id))
        if existing:
            region = existing[0].region
            placed[seat.id] = region
            keep[region].append(seat.id)
            surplus.extend(existing[1:])
            take(region, _cluster_demand(course, region, len(course.clusters_of_seat(seat)),
                                         facts))
            continue
        for region in usable:
            demand = _machine_demand(course, region, facts) + _cluster_demand(
                course, region, len(course.clusters_of_seat(seat)), facts)
            if _fits(demand, free[region]):
                placed[seat.id] = region
                create[region].append(seat.id)
                take(region, demand)
                break
        else:
            unplaced.append(seat)

    # each cluster goes with the seat of its first student; without machines, placed alone
    cluster_regions: dict[str, list[str]] = defaultdict(list)
    for seat in course.seats if course.machines else ():
        if seat.id in placed:
            cluster_regions[placed[seat.id]].extend(course.clusters_of_seat(seat))
    if course.clusters and not course.machines:
        for key, students in course.cluster_units.items():
            for region in usable:
                demand = _cluster_demand(course, region, 1, facts)
                if _fits(demand, free[region]):
                    take(region, demand)
                    cluster_regions[region].append(key)
                    break
            else:
                unplaced.append(Seat(key, students))

    regions = []
    for region in course.regions:
        counts: Counter[str] = Counter()
        here = tuple(s for s, r in placed.items() if r == region)
        clusters = len(cluster_regions[region]) if course.clusters else 0
        if course.machines:
            counts[course.machines.instance_type] += len(here)
        if course.clusters:
            for group in course.clusters.groups:
                counts[group.instance_type] += group.count * clusters
        hourly, unpriced = _hourly(course, region, len(here), clusters, facts)
        regions.append(RegionPlan(
            region=region, seats=here, create=tuple(create[region]),
            keep=tuple(keep[region]), clusters=clusters,
            cluster_keys=tuple(cluster_regions[region]), instances=+counts,
            vcpus=sum(facts.vcpus.get((region, t), 0) * n for t, n in counts.items() if n),
            new_vcpus=dict(new_demand[region]), headroom=before[region],
            hourly_usd=hourly, unpriced=unpriced))
    return Plan(course, tuple(regions), tuple(surplus), tuple(s.id for s in unplaced),
                _shortfall(course, unplaced, free, facts))


def _shortfall(course: Course, unplaced: list[Seat], free: dict[str, dict[str, float]],
               facts: Facts) -> tuple[Shortfall, ...]:
    usable = [r for r in course.regions if r in free and any(
        (r, t) in facts.vcpus for t in instance_types(course))]
    if not unplaced or facts.headroom is None or not usable:
        return ()
    first = usable[0]
    need: Counter[str] = Counter()
    for seat in unplaced:
        if course.machines:
            need += _machine_demand(course, first, facts)
        need += _cluster_demand(course, first, len(course.clusters_of_seat(seat))
                                if course.machines else 1, facts)
    return tuple(Shortfall(code, max(0.0, vcpus - max(0.0, free[first].get(code, 0.0))), first,
                           max(0.0, free[first].get(code, 0.0)))
                 for code, vcpus in sorted(need.items())
                 if vcpus > max(0.0, free[first].get(code, 0.0)))


def _hourly(course: Course, region: str, machines: int, clusters: int,
            facts: Facts) -> tuple[float, tuple[str, ...]]:
    total = 0.0
    unpriced = []

    def ec2(itype: str, market: str, cap: float | None) -> float | None:
        if market == "spot" and cap is not None:
            return cap  # spot costs at most the max price
        return facts.ec2_price.get((region, itype))

    if course.machines and machines:
        m = course.machines
        price = ec2(m.instance_type, m.market, m.max_price)
        if price is None:
            unpriced.append(f"{m.instance_type} (EC2)")
        else:
            total += price * machines
    if course.clusters and clusters:
        for g in course.clusters.groups:
            price = ec2(g.instance_type, g.market, g.bid_price)
            surcharge = facts.emr_price.get((region, g.instance_type))
            if price is None:
                unpriced.append(f"{g.instance_type} (EC2)")
            else:
                total += price * g.count * clusters
            if surcharge is None:
                unpriced.append(f"{g.instance_type} (EMR)")
            else:
                total += surcharge * g.count * clusters
    return total, tuple(sorted(set(unpriced)))
