"""Machines: the class's seat machines, found on AWS by their tags.

AWS is the source of truth: every refresh asks ``labtui.services.inventory`` (one
describe_instances pager per region, in a thread worker) and updates the table in place by
instance id — new rows added, changed cells updated, vanished rows removed — never cleared.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual import on
from textual.widget import Widget
from textual.widgets import DataTable, Static

from labtui.course import Course
from labtui.events import LogLine
from labtui.screens.base import View, table
from labtui.screens.messages import MachinesLoaded
from labtui.services import inventory as inventory_service
from labtui.services import tags

if TYPE_CHECKING:
    from labtui.context import Context
    from labtui.services.inventory import Machine

COLUMNS = (("Seat", "seat"), ("Instance", "instance"), ("Region", "region"),
           ("State", "state"), ("Type", "type"), ("Public IP", "ip"), ("Launched", "launched"))


def cells(machine: Machine) -> dict[str, str]:
    return {
        "seat": machine.seat, "instance": machine.instance_id, "region": machine.region,
        "state": machine.state, "type": machine.instance_type,
        "ip": machine.public_ip or "—", "launched": machine.launched[:19],
    }


def empty_text(course: Course) -> str:
    if course.machines is None:
        return ("This course has no [machines] section: no seat machines to show. "
                "Add one to the course file to give each student a machine.")
    return (f"No machines yet — `labtui up` (coming with the machines issue) launches one per "
            f"seat: {len(course.seats)} seats, {course.machines.instance_type}.")


class MachinesView(View):
    VIEW_ID = "machines"
    TITLE = "Machines"
    KEY = "1"
    DESCRIPTION = "The class's machines, found on AWS by tag"
    NEEDS_AWS = True

    def compose_body(self) -> Iterable[Widget]:
        yield Static(f"Instances tagged {tags.COURSE}={self.course.id} and {tags.SEAT}, in "
                     f"{', '.join(self.course.regions)}.", classes="note")
        empty = Static(empty_text(self.course), id="machines-empty", classes="empty")
        empty.display = False  # not until AWS has answered: "none yet" must be a fact
        yield empty
        rows = table("machines-table", COLUMNS)
        rows.display = False
        yield rows

    def fetch(self, ctx: Context) -> None:
        started = time.monotonic()
        ctx.sink.emit(LogLine(f"machines: looking for {tags.COURSE}={self.course.id} in "
                              f"{len(self.course.regions)} regions"))
        found = inventory_service.machines(ctx.aws, self.course.id, self.course.regions)
        ctx.sink.emit(LogLine(f"machines: {len(found.machines)} found "
                              f"({time.monotonic() - started:.1f} s)"))
        self.deliver(MachinesLoaded(found))

    @on(MachinesLoaded)
    def show_machines(self, message: MachinesLoaded) -> None:
        rows = self.query_one("#machines-table", DataTable)
        wanted = {m.instance_id: m for m in message.inventory.machines}
        for key in [k for k in rows.rows if k.value not in wanted]:
            rows.remove_row(key)
        changed = False
        for instance_id, machine in wanted.items():
            values = cells(machine)
            if instance_id in rows.rows:
                for column, value in values.items():
                    if rows.get_cell(instance_id, column) != value:
                        rows.update_cell(instance_id, column, value, update_width=True)
            else:
                rows.add_row(*values.values(), key=instance_id)
                changed = True
        if changed:
            rows.sort("seat", "instance")
        have = bool(wanted)
        rows.display = have
        self.query_one("#machines-empty", Static).display = not have
        states: dict[str, int] = {}
        for machine in wanted.values():
            states[machine.state] = states.get(machine.state, 0) + 1
        self.done(", ".join(f"{n} {state}" for state, n in sorted(states.items()))
                  or "No machines.")
