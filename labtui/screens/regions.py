"""Regions: the course's regions in order of preference, and how the plan fills them.

One thread worker (``fetch``) asks AWS twice over: first the opt-in status and availability
zones of each region (``labtui.services.regions``), shown as soon as they arrive; then the
plan ``up`` would apply (``labtui.lifecycle.facts`` + ``labtui.plan.make_plan`` on the
course's machines as tagged on AWS): seats per region (new or kept), clusters, the vCPUs they
need against each quota's headroom, and $/hour. Rows are keyed by region and filled in place.

Below the table: the plan's total $/hour and $/day against ``budget_usd``, what has no known
price, where the prices come from (and the date of labtui's price table when it is used),
and, when the class does not fit the quotas, the shortfall in red with the way out.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable, Static

from labtui import lifecycle
from labtui.course import Course
from labtui.events import LogLine, Problem
from labtui.plan import HOURS_PER_DAY, Plan, RegionPlan, instance_types
from labtui.screens.base import View, table
from labtui.screens.rowtable import Fit, region_code
from labtui.services import regions as regions_service
from labtui.services.quotas import NAMES

if TYPE_CHECKING:
    from labtui.context import Context
    from labtui.services.regions import RegionInfo

COLUMNS = (("#", "rank"), ("Region", "region"), ("Opt-in status", "opt_in"),
           ("Usable", "usable"), ("Availability zones", "zones"), ("Seats", "seats"),
           ("Clusters", "clusters"), ("vCPUs needed/free", "vcpus"), ("$/hour", "hourly"))
# How the columns give way in a narrow terminal (rowtable.Fit): the rank, the region (as
# use1 when short of room), the seats, vCPUs and $/hour always show; the opt-in status
# goes first, then the zones, whether it is usable, the clusters.
FITS = {"opt_in": Fit(1), "zones": Fit(2), "usable": Fit(3), "clusters": Fit(4),
        "region": Fit(6, region_code, hide=False)}
PLAN_COLUMNS = ("seats", "clusters", "vcpus", "hourly")
TABLE_SOURCE = "price table of "


def usd(value: float) -> str:
    """Dollars with the cents and no trailing zeros beyond them: $0.9136, $1.69, $40.56."""
    text = f"{value:.4f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


def per_day(value: float) -> str:
    return f"${value:,.2f}"


def zones_text(region: str, zones: tuple[str, ...]) -> str:
    """"us-east-1a–f (6)" for consecutive zone letters, else the names (the first in full)."""
    if not zones:
        return "—"
    suffixes = [z.removeprefix(region) for z in zones]
    if not all(len(s) == 1 and z.startswith(region) for s, z in zip(suffixes, zones,
                                                                     strict=True)):
        return ", ".join(zones)
    if len(zones) > 2 and [ord(s) for s in suffixes] == list(
            range(ord(suffixes[0]), ord(suffixes[0]) + len(suffixes))):
        return f"{zones[0]}–{suffixes[-1]} ({len(zones)})"
    return ", ".join([zones[0], *suffixes[1:]])


def quota_label(code: str) -> str:
    """A short name for a vCPU quota: "on-demand", "spot", "on-demand G and VT" …"""
    name = NAMES.get(code)
    if name is None:
        return code
    market, _, family = name.removesuffix(" vCPUs").partition(" ")
    family = "" if family == "Standard" else f" {family}"
    return f"{market.lower()}{family}"


def seats_text(region: RegionPlan) -> str:
    if not region.seats:
        return "0"
    parts = [f"{len(region.create)} new"] if region.create else []
    if region.keep:
        parts.append(f"{len(region.keep)} kept")
    return f"{len(region.seats)} ({', '.join(parts)})"


def vcpus_text(region: RegionPlan) -> str:
    """"on-demand 12/12, spot 16/256": what the plan adds to each quota / what it has free."""
    codes = sorted(set(region.headroom) | set(region.new_vcpus))
    return ", ".join(f"{quota_label(code)} {region.new_vcpus.get(code, 0):g}/"
                     f"{region.headroom.get(code, 0):g}" for code in codes) or "—"


def hourly_text(region: RegionPlan) -> str:
    if not region.seats and not region.clusters:
        return "—"
    text = usd(region.hourly_usd)
    return f"{text} + {len(region.unpriced)} unpriced" if region.unpriced else text


@dataclass
class RegionsFound(Message):
    """Opt-in status and zones of the course's regions, in the course's order."""

    regions: tuple[RegionInfo, ...]


@dataclass
class RegionsPlanned(Message):
    """The plan ``up`` would apply, and where each price came from."""

    plan: Plan
    price_sources: tuple[str, ...]
    table_date: str


class RegionsView(View):
    VIEW_ID = "regions"
    TITLE = "Regions"
    KEY = "4"
    DESCRIPTION = "The course's regions: zones, seats placed, vCPUs against quota, $/hour"
    NEEDS_AWS = True

    DEFAULT_CSS = """
    RegionsView #regions-totals {
        height: auto;
        margin-top: 1;
    }
    RegionsView #regions-shortfall {
        height: auto;
        margin-top: 1;
        color: $error;
        text-style: bold;
    }
    """

    def __init__(self, course: Course) -> None:
        super().__init__(course)
        self.plan: Plan | None = None
        self.found: tuple[RegionInfo, ...] = ()

    def compose_body(self) -> Iterable[Widget]:
        yield Static("In order of preference: seats fill the first region, then spill into "
                     "the next. vCPUs: what the plan adds to each quota / what the quota "
                     "has free now.", classes="note")
        rows = table("regions-table", COLUMNS, FITS)
        for rank, name in enumerate(self.course.regions, start=1):
            rows.add_row(str(rank), name, *("…" for _ in COLUMNS[2:]), key=name)
        yield rows
        yield Static("", id="regions-totals", markup=False)
        shortfall = Static("", id="regions-shortfall", markup=False)
        shortfall.display = False
        yield shortfall

    # -- runs in a thread worker ----------------------------------------------------------------

    def fetch(self, ctx: Context) -> None:
        started = time.monotonic()
        course = self.course
        names = course.regions
        ctx.sink.emit(LogLine(f"regions: asking AWS about {', '.join(names)}"))
        found = regions_service.course_regions(ctx.aws, names)
        for info in found:
            if not info.usable:
                ctx.sink.emit(Problem(
                    f"region {info.name} is not enabled for this account",
                    fix="enable it (AWS console, Account > AWS Regions) or remove it from "
                        "[course] regions"))
        zones = sum(len(info.zones) for info in found)
        ctx.sink.emit(LogLine(f"regions: {len(found)} regions, {zones} availability zones "
                              f"({time.monotonic() - started:.1f} s)"))
        self.deliver(RegionsFound(tuple(found)))

        the_plan = lifecycle.plan_details(ctx, course).plan  # read-only, from tags
        prices = ctx.prices
        emr_types = {g.instance_type for g in course.clusters.groups} if course.clusters \
            else set()
        sources = set()
        for region in names:
            for itype in instance_types(course):
                sources.add(prices.ec2(region, itype).source)
                if itype in emr_types:
                    sources.add(prices.emr(region, itype).source)
        ctx.sink.emit(LogLine(
            f"regions: plan {len(course.seats) - len(the_plan.unplaced)} of "
            f"{len(course.seats)} seats placed, {usd(the_plan.hourly_usd)}/hour "
            f"({time.monotonic() - started:.1f} s)"))
        self.deliver(RegionsPlanned(the_plan, tuple(sorted(sources)), prices.table_date))

    # -- on the UI thread -----------------------------------------------------------------------

    @on(RegionsFound)
    def show_regions(self, message: RegionsFound) -> None:
        self.found = message.regions
        rows = self.query_one("#regions-table", DataTable)
        for info in message.regions:
            if info.name not in rows.rows:
                continue
            rows.update_cell(info.name, "opt_in", info.opt_in, update_width=True)
            rows.update_cell(info.name, "usable", "yes" if info.usable else "NO — not enabled",
                             update_width=True)
            rows.update_cell(info.name, "zones", zones_text(info.name, info.zones),
                             update_width=True)
        self.set_status(f"{self.usable_text()} Working out the plan (quotas, prices)…")

    def usable_text(self) -> str:
        usable = sum(1 for info in self.found if info.usable)
        zones = sum(len(info.zones) for info in self.found)
        return (f"{usable} of {len(self.found)} regions usable, {zones} availability zones.")

    @on(RegionsPlanned)
    def show_plan(self, message: RegionsPlanned) -> None:
        the_plan = self.plan = message.plan
        rows = self.query_one("#regions-table", DataTable)
        for region in the_plan.regions:
            if region.region not in rows.rows:
                continue
            for column, value in zip(PLAN_COLUMNS, (
                    seats_text(region), str(region.clusters), vcpus_text(region),
                    hourly_text(region)), strict=True):
                rows.update_cell(region.region, column, value, update_width=True)
        self.query_one("#regions-totals", Static).update(
            totals_text(the_plan, message.price_sources, message.table_date))
        shortfall = self.query_one("#regions-shortfall", Static)
        if the_plan.unplaced:
            text = lifecycle.shortfall_message(the_plan)
            where = the_plan.shortfall[0].region if the_plan.shortfall else "a region"
            shortfall.update(f"{text[:1].upper()}{text[1:]}\nTo ask AWS for more: open "
                             f"Quotas (5), select the quota's row in {where} and press i.")
        shortfall.display = bool(the_plan.unplaced)
        seats = len(self.course.seats) if self.course.machines else 0
        placed = sum(len(r.seats) for r in the_plan.regions)
        used = sum(1 for r in the_plan.regions if r.seats or r.clusters)
        fit = (f"{placed} of {seats} seats placed in {used} region(s)" if self.course.machines
               else f"{sum(r.clusters for r in the_plan.regions)} clusters placed")
        self.done(f"{self.usable_text()} {fit}"
                  + (f"; {len(the_plan.unplaced)} fit nowhere." if the_plan.unplaced else "."))


def totals_text(the_plan: Plan, sources: tuple[str, ...], table_date: str) -> Text:
    course = the_plan.course
    out = Text()
    out.append("Plan total: ", style="bold")
    out.append(f"{usd(the_plan.hourly_usd)}/hour, {per_day(the_plan.daily_usd)}/day "
               f"({HOURS_PER_DAY} h) while everything runs")
    if the_plan.unplaced:
        out.append(" (for the seats that fit)")
    out.append(".\n")
    if course.budget_usd is None:
        out.append("Budget: no budget_usd in the course file.\n", style="dim")
    elif the_plan.over_budget:
        out.append(f"Budget: OVER budget_usd ({per_day(course.budget_usd)}/day) by "
                   f"{per_day(the_plan.daily_usd - course.budget_usd)}/day: `up` warns "
                   "before it launches.\n", style="bold red")
    else:
        out.append(f"Budget: within budget_usd ({per_day(course.budget_usd)}/day; "
                   f"{per_day(course.budget_usd - the_plan.daily_usd)} to spare).\n")
    if the_plan.unpriced:
        out.append("Unpriced (not in the totals): " + ", ".join(the_plan.unpriced) + ".\n",
                   style="yellow")
    shown = [s for s in sources if s != "no price known"]
    text = ", ".join(shown) or "no source knew any price"
    if any(s.startswith(TABLE_SOURCE) for s in shown) and table_date not in text:
        text += f" (table of {table_date})"
    out.append(f"Prices: {text}. Spot capacity is counted at the course's max/bid price where "
               "it sets one, else at the on-demand price.", style="dim")
    return out
