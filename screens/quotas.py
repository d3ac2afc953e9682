"""Quotas: what the class runs at once against the course's hard cap, with vCPUs from AWS.

The instance counts come from the course file; the vCPUs of each instance type come from AWS
(``labtui.services.instance_types``) in a thread worker. Service Quotas (the account's vCPU
limits per region) come with the regions/quotas issue: the view says so rather than guessing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual import on
from textual.widget import Widget
from textual.widgets import DataTable, Static

from labtui.course import Course
from labtui.events import LogLine
from labtui.screens.base import View, table
from labtui.screens.messages import VcpusLoaded
from labtui.services import instance_types

if TYPE_CHECKING:
    from labtui.context import Context

COLUMNS = (("What", "what"), ("Instances", "count"), ("Instance type", "type"),
           ("vCPUs each", "vcpus"), ("vCPUs", "total"))
LATER = ("Service Quotas (the account's vCPU limits per region and what is in use) come with "
         "the regions/quotas issue; no quota figures are shown until then.")


@dataclass(frozen=True)
class Need:
    key: str
    what: str
    count: int
    instance_type: str


def needs(course: Course) -> list[Need]:
    """What the class runs at once, one row per kind of instance (from the course file)."""
    out = []
    if course.machines is not None:
        out.append(Need("machines", f"Seat machines (one per {course.machines.per})",
                        len(course.seats), course.machines.instance_type))
    if course.clusters is not None:
        students = len(course.students)
        for index, group in enumerate(course.clusters.groups):
            out.append(Need(f"cluster-{index}",
                            f"Cluster {group.role} nodes ({group.count} × {students} clusters)",
                            group.count * students, group.instance_type))
    return out


def cap_text(course: Course) -> str:
    count, cap = course.instance_count, course.max_instances
    verdict = (f"within the cap ({cap - count} to spare)" if count <= cap
               else f"OVER the cap by {count - cap}: `up` will refuse")
    return (f"max_instances = {cap} (a hard cap `up` never passes). The class runs "
            f"{count} instances at once: {verdict}.")


class QuotasView(View):
    VIEW_ID = "quotas"
    TITLE = "Quotas"
    KEY = "5"
    DESCRIPTION = "Instances and vCPUs the class needs against max_instances"
    NEEDS_AWS = True

    def compose_body(self) -> Iterable[Widget]:
        yield Static(cap_text(self.course), id="quotas-cap", classes="note")
        rows = table("quotas-table", COLUMNS)
        for need in needs(self.course):
            rows.add_row(need.what, str(need.count), need.instance_type, "…", "…",
                         key=need.key)
        rows.add_row("Total", str(self.course.instance_count), "", "", "…", key="total")
        yield rows
        yield Static(LATER, id="quotas-later", classes="note later")

    def fetch(self, ctx: Context) -> None:
        wanted = {need.instance_type for need in needs(self.course)}
        if not wanted:
            self.deliver(VcpusLoaded(self.course.regions[0], {}))
            return
        started = time.monotonic()
        region = self.course.regions[0]
        found = instance_types.vcpus(ctx.aws, region, wanted)
        ctx.sink.emit(LogLine(
            "quotas: vCPUs per type " + ", ".join(f"{t}={n}" for t, n in sorted(found.items()))
            + f" ({time.monotonic() - started:.1f} s)"))
        self.deliver(VcpusLoaded(region, found))

    @on(VcpusLoaded)
    def show_vcpus(self, message: VcpusLoaded) -> None:
        rows = self.query_one("#quotas-table", DataTable)
        total = 0
        for need in needs(self.course):
            each = message.vcpus.get(need.instance_type)
            if each is None:
                continue
            total += each * need.count
            rows.update_cell(need.key, "vcpus", str(each), update_width=True)
            rows.update_cell(need.key, "total", str(each * need.count), update_width=True)
        rows.update_cell("total", "total", str(total), update_width=True)
        self.done(f"vCPUs per instance type as {message.region} describes them.")
