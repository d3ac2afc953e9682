"""Regions: the course's regions in order of preference, as the account sees them.

Opt-in status and availability zones come from AWS (``labtui.services.regions``) in a thread
worker; the rows are the course's regions, keyed by name and filled in place.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual import on
from textual.widget import Widget
from textual.widgets import DataTable, Static

from labtui.events import LogLine, Problem
from labtui.screens.base import View, table
from labtui.screens.messages import RegionsLoaded
from labtui.services import regions as regions_service

if TYPE_CHECKING:
    from labtui.context import Context

COLUMNS = (("#", "rank"), ("Region", "region"), ("Opt-in status", "opt_in"),
           ("Usable", "usable"), ("Availability zones", "zones"))
LATER = ("vCPU quotas, usage and $/hour per region come with the regions/quotas issue; "
         "they are not shown rather than guessed.")


class RegionsView(View):
    VIEW_ID = "regions"
    TITLE = "Regions"
    KEY = "4"
    DESCRIPTION = "The course's regions with opt-in status and zones"
    NEEDS_AWS = True

    def compose_body(self) -> Iterable[Widget]:
        yield Static("In order of preference: seats fill the first region, then spill into "
                     "the next.", classes="note")
        rows = table("regions-table", COLUMNS)
        for rank, name in enumerate(self.course.regions, start=1):
            rows.add_row(str(rank), name, "…", "…", "…", key=name)
        yield rows
        yield Static(LATER, id="regions-later", classes="note later")

    def fetch(self, ctx: Context) -> None:
        started = time.monotonic()
        names = self.course.regions
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
        self.deliver(RegionsLoaded(tuple(found)))

    @on(RegionsLoaded)
    def show_regions(self, message: RegionsLoaded) -> None:
        rows = self.query_one("#regions-table", DataTable)
        for info in message.regions:
            if info.name not in rows.rows:
                continue
            rows.update_cell(info.name, "opt_in", info.opt_in, update_width=True)
            rows.update_cell(info.name, "usable", "yes" if info.usable else "NO — not enabled",
                             update_width=True)
            rows.update_cell(info.name, "zones", ", ".join(info.zones) or "—",
                             update_width=True)
        usable = sum(1 for info in message.regions if info.usable)
        self.done(f"{usable} of {len(message.regions)} regions usable.")
