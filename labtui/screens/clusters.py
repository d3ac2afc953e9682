"""Clusters: every EMR cluster of the class, live, under the course's spec of them.

The spec from the course file (release, applications, node groups, per student / group /
class) is a few lines on top; below, one row per cluster key (a student, a group or
"class"; a key without a cluster shows "absent"): its cluster id, state, region, steps
(running, failed, in all), idle minutes, $ so far, and the master's address while it runs
or why it ended. AWS is the source of truth: ``clusterops.status`` loads the rows in a
thread worker when the console connects, on r, and quietly every few seconds while the view
is shown (the app's poll never stacks); ClusterChanged events from the work (up, terminate,
replace) change a row at once in between. Rows are keyed by cluster key and only ever
updated in place.

Enter opens the cluster's screen (``screens/cluster.py``: its spec, its steps, why a step
failed); ``a`` adds a step, ``t`` terminates, ``R`` replaces the cursor's cluster (``t`` and
``R`` after the one confirmation; all three refused in a read-only console).

A course without [clusters] shows a line saying so, and nothing is read from AWS for it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar

from rich.markup import escape
from textual import on
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import DataTable, Static

from labtui import clusterops
from labtui.course import Course, Student
from labtui.events import ClusterChanged, Event, LogLine
from labtui.screens.base import SummaryView, clock
from labtui.screens.cluster import (
    NONE,
    READY,
    UNKNOWN,
    ClusterActions,
    ClusterScreen,
    labelled,
    money,
    spec_lines,
)
from labtui.screens.jobs import one_line
from labtui.screens.messages import ClustersLoaded
from labtui.screens.rowtable import REGION, Fit, RowTable, set_cells, short_id, show_cells
from labtui.services import tags

if TYPE_CHECKING:
    from labtui.clusterops import ClusterStatus
    from labtui.context import Context

ENDED = ("TERMINATING", "TERMINATED", "TERMINATED_WITH_ERRORS")
KEY_LABEL = {"student": "Student", "group": "Group", "shared": "For"}
# How the columns give way in a narrow terminal (rowtable.Fit): the seat or group, the state
# and the master / why it ended always show; $ so far goes first, then the cluster id
# (shortened first), the students, the step counts, idle minutes, the region (use1 first).
FITS = {"cost": Fit(1), "cluster": Fit(2, short_id), "students": Fit(3), "steps": Fit(4),
        "idle": Fit(4), "failed": Fit(4), "running": Fit(4), "region": REGION}


def columns(course: Course) -> tuple[tuple[str, str], ...]:
    per = course.clusters.per if course.clusters else "student"
    return ((KEY_LABEL.get(per, "Seat"), "key"),
            ("Name" if per == "student" else "Students", "students"),
            ("Cluster", "cluster"), ("State", "state"), ("Region", "region"),
            ("Run", "running"), ("Failed", "failed"), ("Steps", "steps"), ("Idle", "idle"),
            ("$ so far", "cost"), ("Master / why it ended", "note"))


def students_text(students: Sequence[Student]) -> str:
    """Who uses a cluster: a student by name (the key is their id), a group by ids."""
    if len(students) == 1:
        return students[0].name
    return one_line(", ".join(s.id for s in students), 40)


def status_cells(status: ClusterStatus) -> dict[str, str]:
    """The AWS-derived cells of one cluster's row."""
    if status.cluster_id is None:
        return {"cluster": NONE, "state": "absent", "region": NONE, "running": NONE,
                "failed": NONE, "steps": NONE, "idle": NONE, "cost": NONE, "note": ""}
    return {
        "cluster": status.cluster_id, "state": status.state, "region": status.region or NONE,
        "running": str(status.steps_running), "failed": str(status.steps_failed),
        "steps": str(status.steps_total),
        "idle": NONE if status.idle_minutes is None else f"{status.idle_minutes:.0f}m",
        "cost": money(status.cost_usd),
        "note": one_line(status.master or status.reason or ""),
    }


class ClusterRow:
    """What the view knows about one cluster key."""

    __slots__ = ("key", "cells", "event_at", "status")

    def __init__(self, key: str, students: str, names: list[str]) -> None:
        self.key = key
        self.cells: dict[str, str] = {name: UNKNOWN for name in names}
        self.cells.update(key=key, students=students, note="")
        self.event_at = 0.0     # when the newest event applied to this row was emitted
        self.status: ClusterStatus | None = None  # the last AWS snapshot of it


class ClusterTable(RowTable):
    """The clusters of the class; enter opens the one under the cursor."""

    BINDINGS = [
        Binding("enter", "select_cursor", "Open", id="clusters.open",
                tooltip="Open the cluster under the cursor: its spec, its steps, why a step "
                        "failed"),
    ]


class ClustersView(SummaryView):
    VIEW_ID = "clusters"
    TITLE = "Clusters"
    KEY = "3"
    DESCRIPTION = "The class's EMR clusters, live: state, steps, idle time, cost"
    NEEDS_AWS = True
    # Loaded again quietly at the app's poll while shown (the app reads this).
    REFRESH_WHEN_SHOWN: ClassVar[bool] = True

    BINDINGS = [
        Binding("a", "add_step", "Add step", id="clusters.add_step",
                tooltip="Add a step to the cursor's cluster: its arguments run on the master "
                        "by command-runner.jar"),
        Binding("t", "terminate", "Terminate", id="clusters.terminate",
                tooltip="Terminate the cursor's cluster (after confirming)"),
        Binding("R", "replace", "Replace", id="clusters.replace",
                tooltip="Terminate the cursor's cluster and start a new one for its seat "
                        "(after confirming)"),
    ]

    def __init__(self, course: Course) -> None:
        super().__init__(course)
        if course.clusters is None:
            # Nothing to read from AWS: the view says the course defines none.
            self.NEEDS_AWS = False  # type: ignore[misc]
            self._status = (self.source(), False)
        self.columns = columns(course)
        names = [key for _, key in self.columns]
        self.rows_by_key: dict[str, ClusterRow] = {
            key: ClusterRow(key, students_text(students), names)
            for key, students in course.cluster_units.items()}
        self.loaded = False

    # -- layout --------------------------------------------------------------------------------

    def compose_body(self) -> Iterable[Widget]:
        if self.course.clusters is None:
            yield Static("This course defines no clusters (no [clusters] section in the "
                         "course file).", id="clusters-none", classes="empty")
            return
        yield Static(labelled(spec_lines(self.course)), id="clusters-overview", markup=False)
        rows = ClusterTable(id="clusters-table", cursor_type="row", zebra_stripes=True)
        for label, key in self.columns:
            rows.add_column(label, key=key, fit=FITS.get(key))
        for row in self.rows_by_key.values():
            rows.add_row(*(escape(value) for value in row.cells.values()), key=row.key)
        yield rows

    @property
    def table(self) -> ClusterTable:
        return self.query_one("#clusters-table", ClusterTable)

    # -- loading (thread worker) ----------------------------------------------------------------

    def fetch(self, ctx: Context, quiet: bool = False) -> None:
        if self.course.clusters is None:
            return
        started = time.time()
        if not quiet:
            ctx.sink.emit(LogLine(f"clusters: looking for {tags.COURSE}={self.course.id} in "
                                  f"{len(self.course.regions)} regions"))
        found = clusterops.status(ctx, self.course)
        if not quiet:
            running = sum(1 for s in found if s.state not in ENDED and s.cluster_id)
            ctx.sink.emit(LogLine(f"clusters: {running} running for {len(found)} cluster "
                                  f"keys ({time.time() - started:.1f} s)"))
        self.deliver(ClustersLoaded(found, started))

    # -- updates on the UI thread ---------------------------------------------------------------

    @on(ClustersLoaded)
    def show_clusters(self, message: ClustersLoaded) -> None:
        changes: dict[str, dict[str, str]] = {}
        for status in message.clusters:
            row = self.rows_by_key.get(status.key)
            if row is None:
                continue
            if row.event_at > message.started:
                continue  # an event newer than this snapshot knows better
            row.status = status
            changes[row.key] = set_cells(row.cells, status_cells(status))
        self.loaded = True
        self.loaded_at = time.time()
        self._show(changes)
        self.show_status()

    def apply_events(self, events: Iterable[Event]) -> None:
        """Events from the work, in order, on the UI thread: a ClusterChanged changes its
        key's row at once (each changed row is drawn once per batch)."""
        changes: dict[str, dict[str, str]] = {}
        for event in events:
            if not isinstance(event, ClusterChanged):
                continue
            row = self.rows_by_key.get(event.key)
            if row is None:
                continue
            row.event_at = event.at
            if row.status is not None:  # what a, t and R go by until the next snapshot
                row.status = replace(row.status, cluster_id=event.cluster_id,
                                     state=event.state)
            cells = {"cluster": event.cluster_id, "state": event.state}
            if row.cells["cluster"] != event.cluster_id:  # a new cluster for the key
                cells.update(region=UNKNOWN, running=UNKNOWN, failed=UNKNOWN, steps=UNKNOWN,
                             idle=UNKNOWN, cost=UNKNOWN)
            if event.state not in ("WAITING",):
                cells["idle"] = NONE
            if event.detail:
                cells["note"] = one_line(event.detail)
            changes.setdefault(row.key, {}).update(set_cells(row.cells, cells))
        if changes:
            self._show(changes)
            self.show_status()

    def _show(self, changes: dict[str, dict[str, str]]) -> None:
        if self.is_mounted and self.course.clusters is not None:
            show_cells(self.table, changes)

    # -- the status line ------------------------------------------------------------------------

    def summary(self) -> str:
        if not self.loaded:
            return "Loading…"
        rows = list(self.rows_by_key.values())
        states = Counter(row.cells["state"] for row in rows)
        ready = sum(states.pop(state, 0) for state in READY)
        parts = [f"ready {ready}/{len(rows)}"]
        others = ", ".join(f"{state} {n}" for state, n in sorted(states.items()))
        if others:
            parts[0] += f" ({others})"
        statuses = [row.status for row in rows if row.status is not None]
        parts.append(f"steps running {sum(s.steps_running for s in statuses)}, failed "
                     f"{sum(s.steps_failed for s in statuses)}")
        hourly = sum(s.hourly_usd or 0.0 for s in statuses
                     if s.cluster_id and s.state not in ENDED)
        spent = sum(s.cost_usd or 0.0 for s in statuses)
        if hourly or spent:
            parts.append(f"${hourly:.2f}/hour now, ${spent:.2f} so far")
        if self.loaded_at:
            parts.append(f"updated {clock(self.loaded_at)}")
        return " · ".join(parts)

    # -- opening a cluster, acting on it --------------------------------------------------------

    def cursor_key(self) -> str | None:
        if self.course.clusters is None:
            return None
        rows = self.table
        if rows.row_count == 0:
            return None
        return str(rows.coordinate_to_cell_key(rows.cursor_coordinate).row_key.value)

    @on(DataTable.RowSelected, "#clusters-table")
    def row_selected(self, event: DataTable.RowSelected) -> None:
        self.open_cluster(str(event.row_key.value))

    def open_cluster(self, key: str) -> None:
        self.app.push_screen(ClusterScreen(self.course, key))

    def actions(self) -> ClusterActions | None:
        if self.course.clusters is None:
            self.app.notify("This course defines no clusters (no [clusters] section in the "
                            "course file).", severity="warning")
            return None
        key = self.cursor_key()
        if key is None:
            return None
        row = self.rows_by_key[key]

        def after(ctx: Context) -> None:  # from the step job's thread
            self.fetch(ctx, quiet=True)
        return ClusterActions(self.app, self.course, key, row.status, after)

    def action_add_step(self) -> None:
        if (actions := self.actions()) is not None:
            actions.add_step()

    def action_terminate(self) -> None:
        if (actions := self.actions()) is not None:
            actions.terminate()

    def action_replace(self) -> None:
        if (actions := self.actions()) is not None:
            actions.replace()
