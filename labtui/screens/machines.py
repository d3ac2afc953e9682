"""Machines: every seat of the course at a glance, live, with k9s habits for acting on them.

One row per seat (keyed by seat id, so a seat without a machine shows "absent"): its students,
machine state, region, instance, address, setup state and error; with [clusters], the state
of the seat's cluster (its first student's key: one ``clusterops.live`` per refresh, and the
ClusterChanged events); with [jupyter], the state of the seat's notebook server
(``notebookops.statuses``: every running seat asked at once over SSH, in a worker of its
own, at a refresh but at most every NOTEBOOKS_EVERY seconds, and at once on r). AWS is the
source of truth:
a quiet refresh (``lifecycle.status``: one describe_instances pager per region) runs every few
seconds in a thread worker that never stacks, and the events the work emits (SeatChanged,
Progress) update cells in between. Rows are only ever updated in place by key — update_cell,
add_row(key=...), remove_row — so the cursor, marks and scroll position survive every update.

Keys: ``/`` filters (seat, students, state, region, setup, error…; escape clears), space marks
rows; ``x`` exec, ``b`` reboot, ``s`` re-run setup, ``S`` stop, ``T`` start act on the marked
rows, or on the cursor row when none is marked; ``u`` up and ``D`` down act on the course.
Enter opens the seat's troubleshooting screen. Everything that launches, stops or destroys
asks first in the one ``ConfirmModal``; a read-only console refuses every action that changes
something (and exec and shell) with a notification.

The work runs in thread workers owned by the app (``LabApp.start_job``): the jobs in
``labtui.screens.jobs``, plain functions that call ``labtui.lifecycle`` and never touch a
widget.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, cast

from rich.cells import cell_len
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from textual import on
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import DataTable, Input, Static
from textual.worker import Worker, WorkerState

from labtui import clusterops, lifecycle, notebookops
from labtui.course import Course
from labtui.events import ClusterChanged, Event, LogLine, Progress, SeatChanged, StepDone
from labtui.lifecycle import SeatStatus
from labtui.screens.base import SummaryView, clock
from labtui.screens.confirm import ConfirmModal, PromptModal
from labtui.screens.host import Lab
from labtui.screens.jobs import (
    count,
    down_job,
    exec_job,
    names,
    one_line,
    reboot_job,
    setup_job,
    start_job,
    stop_job,
    up_job,
)
from labtui.screens.messages import NotebooksLoaded, SeatsLoaded
from labtui.screens.rowtable import REGION, Fit, RowTable, priority, short_id
from labtui.screens.steady import Steady
from labtui.services import tags

if TYPE_CHECKING:
    from labtui.context import Context
    from labtui.plan import Plan
    from labtui.services.inventory import Machine

COLUMNS = (("", "mark"), ("Seat", "seat"), ("Students", "students"), ("State", "state"),
           ("Region", "region"), ("Instance", "instance"), ("Address", "address"),
           ("Setup", "setup"), ("$ so far", "cost"), ("Error", "error"))
# How the columns give way in a narrow terminal (rowtable.Fit): seat, state, setup, error
# (and the cluster's state) always show; the address goes first, then $ so far, the instance
# id (shortened first), the students, the region (as use1 first), the notebook's state.
FITS = {"address": Fit(1), "cost": Fit(2), "instance": Fit(3, short_id), "students": Fit(4),
        "region": REGION, "notebook": Fit(6)}
# With [clusters]: the state of the seat's cluster (its first student's key) after setup.
CLUSTER_COLUMN = ("Cluster", "cluster")
# With [jupyter]: the seat's notebook server (Status.short), after the cluster's column.
NOTEBOOK_COLUMN = ("Notebook", "notebook")
NOTEBOOKS_EVERY = 30.0  # seconds: the quiet refreshes ask the notebook servers at most this often
NOTEBOOKS_GROUP = "notebooks"
UNKNOWN = "…"
NONE = "—"
MARK = "●"
REBUILD_AFTER = 8  # rows coming or going at once past which the filter lays the rows anew


def empty_text(course: Course) -> str:
    if course.machines is None:
        return ("This course has no [machines] section: no seat machines to show. "
                "Add one to the course file to give each student a machine.")
    return (f"No machines yet — press u (or `labtui up`) to launch one machine per seat: "
            f"{len(course.seats)} seats, {course.machines.instance_type}.")



def idle_warnings(machines: Iterable[Machine]) -> dict[str, str]:
    """Each running seat the schedule's tick warned as idle: "idle since HH:MM, warned:
    stopped at the next tick" (its machine's labtui:idle-* tags)."""
    from labtui.scheduleops import IDLE_SINCE, IDLE_WARNED

    out: dict[str, str] = {}
    for machine in machines:
        labels = tags.as_dict(machine.raw.get("Tags"))
        if machine.state == "running" and labels.get(IDLE_WARNED):
            since = labels.get(IDLE_SINCE, "")
            when = since[11:16] if len(since) >= 16 else "?"
            out[machine.seat] = (f"idle since {when} UTC, warned: stopped at the next tick "
                                 "unless used")
    return out


def status_cells(status: SeatStatus) -> dict[str, str]:
    """The AWS-derived cells of one seat's row."""
    has_machine = status.instance_id is not None
    return {
        "state": status.state, "region": status.region or NONE,
        "instance": status.instance_id or NONE, "address": status.address or NONE,
        "setup": status.setup if has_machine else NONE,
        "cost": NONE if status.cost_usd is None else f"{status.cost_usd:.2f}",
        "error": one_line(status.error) if status.error else "",
    }


class SeatRow:
    """What the view knows about one seat (visible in the table or filtered out)."""

    __slots__ = ("seat", "cells", "haystack", "shown", "event_at", "snapshot_at", "dirty",
                 "cluster_at", "_names")

    def __init__(self, seat: str, students: str, names: str, cluster: bool = False,
                 notebook: bool = False) -> None:
        self.seat = seat
        self.cells: dict[str, str] = {
            "mark": "", "seat": seat, "students": students, "state": UNKNOWN,
            "region": UNKNOWN, "instance": UNKNOWN, "address": UNKNOWN, "setup": UNKNOWN,
            **({"cluster": UNKNOWN} if cluster else {}),
            **({"notebook": UNKNOWN} if notebook else {}), "cost": UNKNOWN, "error": ""}
        self.haystack = ""
        self.shown: list[str] = []  # the cells as the table takes them (table_cells)
        self.event_at = 0.0      # when the newest event applied to this row was emitted
        self.snapshot_at = 0.0   # when the AWS snapshot applied to this row was started
        self.cluster_at = 0.0    # when the newest ClusterChanged for its cluster was emitted
        self.dirty: set[str] = set()  # columns changed since the table last showed them
        self._names = names
        self.reindex()

    def reindex(self) -> None:
        cells = self.cells
        self.haystack = " ".join((cells["seat"], cells["students"], self._names,
                                  cells["state"], cells["region"], cells["instance"],
                                  cells["address"], "setup:" + cells["setup"], cells["setup"],
                                  cells.get("cluster", ""), cells.get("notebook", ""),
                                  cells["error"])).lower()
        self.shown = [escape(value) for value in cells.values()]

    def table_cells(self) -> list[str]:
        """The cells as the table takes them: DataTable reads a str as markup, and an
        error from a remote command may hold anything in square brackets. Kept from the
        last ``reindex`` (the filter lays hundreds of rows anew per key)."""
        return self.shown

    def matches(self, words: Sequence[str]) -> bool:
        return all(word in self.haystack for word in words)

    @property
    def has_machine(self) -> bool:
        return self.cells["instance"] not in (UNKNOWN, NONE)


def cursor_key(rows: DataTable) -> str | None:
    """The key of the row under the cursor (None when the table has no rows)."""
    if rows.row_count == 0:
        return None
    return str(rows.coordinate_to_cell_key(rows.cursor_coordinate).row_key.value)


def show_only(rows: RowTable, wanted: Sequence[str], cells: Callable[[str], Sequence[str]],
              column: str, order: Mapping[str, int]) -> None:
    """Make a filtered table show exactly the rows ``wanted`` (their keys, in order), each
    row's cells from ``cells(key)`` (escaped), sorted by ``column`` whose value is the key.
    A few rows coming or going are removed and added by key (the rows that stay are not
    touched); more than a few, and the rows are laid anew in order, which costs less than
    many remove_row calls (each renumbers every row) and a sort. The cursor stays on its
    row when the row stays. The machines and the roster views filter with it."""
    wanted_set = set(wanted)
    present = rows.rows
    gone = [str(key.value) for key in present if str(key.value) not in wanted_set]
    missing = [key for key in wanted if key not in present]
    if not gone and not missing:
        return
    cursor = cursor_key(rows)
    if len(gone) + len(missing) > REBUILD_AFTER:
        rows.replace_rows((key, cells(key)) for key in wanted)
        if cursor in wanted_set:
            rows.move_cursor(row=rows.get_row_index(cursor))
        return
    for key in gone:
        rows.remove_row(key)
    for key in missing:
        rows.add_row(*cells(key), key=key)
    if missing:
        rows.sort(column, key=order.__getitem__)
    if cursor in wanted_set:
        rows.move_cursor(row=rows.get_row_index(cursor), scroll=False)


class FilterInput(Steady, Input):
    """The filter line. Input's virtual size follows its text; the filter's own size never
    depends on its text (width 100%, fixed height), so a key typed repaints the line and
    moves its horizontal scroll, and never lays the screen out (:class:`Steady`). Its
    editing keys are priority bindings, for the reason the table's cursor keys are
    (:class:`RowTable`): run as the key arrives, not after it bubbled up the screen."""

    BINDINGS = priority(Input.BINDINGS)

    def __init__(self, *, on_change: Callable[[str], object] | None = None,
                 **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._on_change = on_change

    def watch_value(self, value: str) -> None:
        # The view filters in this same turn: Input.Changed would reach it only after a
        # trip through this widget's queue and its parents'.
        if self._on_change is not None:
            self._on_change(value)


class SeatTable(Steady, RowTable):
    """The machines table; enter opens the seat under the cursor. A RowTable: a changed
    cell redraws its row only, so 500 seats under a flood of events stay smooth. Steady:
    its height is set and its scrollbar always shown, so a filter that changes how many
    rows it holds never lays the screen out."""

    BINDINGS = [
        Binding("enter", "select_cursor", "Open", id="machines.open",
                tooltip="Troubleshoot the seat under the cursor: details, console, setup "
                        "log, a command line, a shell"),
    ]


class MachinesView(SummaryView):
    VIEW_ID = "machines"
    TITLE = "Machines"
    KEY = "1"
    DESCRIPTION = "Every seat of the class: machine, address, setup — live"
    NEEDS_AWS = True

    BINDINGS = [
        Binding("slash", "filter", "Filter", id="machines.filter", key_display="/",
                tooltip="Show only the seats matching words (seat, student, state, region, "
                        "setup, error); escape clears"),
        Binding("space", "toggle_mark", "Mark", id="machines.mark",
                tooltip="Mark or unmark the seat under the cursor; actions apply to the "
                        "marked seats"),
        Binding("x", "exec", "Exec", id="machines.exec",
                tooltip="Run a command on the marked seats (or the cursor's); output streams "
                        "into the log, prefixed by seat"),
        Binding("u", "up", "Up", id="machines.up",
                tooltip="Launch the missing machines (after confirming) and set them up"),
        Binding("b", "reboot", "Reboot", id="machines.reboot", show=False,
                tooltip="Reboot the marked seats' machines (after confirming)"),
        Binding("s", "setup", "Re-run setup", id="machines.setup", show=False,
                tooltip="Run setup again on the marked seats' machines (idempotent)"),
        Binding("S", "stop", "Stop", id="machines.stop", show=False,
                tooltip="Stop the marked seats' machines (after confirming); disks stay"),
        Binding("T", "start", "Start", id="machines.start", show=False,
                tooltip="Start the marked seats' stopped machines (after confirming)"),
        Binding("D", "down", "Down", id="machines.down", show=False,
                tooltip="Remove everything labtui created for the course (after confirming)"),
        Binding("ctrl+a", "mark_all", "Mark all shown", id="machines.mark_all", show=False,
                tooltip="Mark every seat the filter shows"),
        Binding("escape", "clear", "Clear filter/marks", id="machines.clear", show=False,
                tooltip="Clear the filter; pressed again, clear the marks"),
    ]

    def __init__(self, course: Course) -> None:
        super().__init__(course)
        self.order = {seat.id: index for index, seat in enumerate(course.seats)}
        has_clusters = course.clusters is not None
        self.has_jupyter = course.jupyter is not None
        self.seats: dict[str, SeatRow] = {
            seat.id: SeatRow(seat.id, ", ".join(s.id for s in seat.students),
                             " ".join(s.name for s in seat.students), has_clusters,
                             self.has_jupyter)
            for seat in course.seats}
        self.notebooks_asked = 0.0  # time.monotonic() of the last look at the notebooks
        self._notebooks_worker: Worker | None = None
        # The cluster key of each seat (its first student's) and the seats of each key.
        self.cluster_key: dict[str, str] = {
            seat.id: course.cluster_key(seat.students[0])
            for seat in course.seats if has_clusters and seat.students}
        self.cluster_seats: dict[str, list[str]] = {}
        for seat_id, key in self.cluster_key.items():
            self.cluster_seats.setdefault(key, []).append(seat_id)
        self.marked: set[str] = set()
        self.filter_words: tuple[str, ...] = ()
        self.progress: dict[str, Progress] = {}
        self.loaded = False
        self.spend = (0.0, 0.0)  # $/hour of the running machines, $ since they started

    # -- layout --------------------------------------------------------------------------------

    def compose_body(self) -> Iterable[Widget]:
        empty = Static(empty_text(self.course), id="machines-empty", classes="empty")
        empty.display = False  # not until AWS has answered: "none yet" must be a fact
        yield empty
        search = FilterInput(placeholder="filter: words matching seat, student, state, region, "
                                   "setup, error — enter keeps it, escape clears",
                             id="machines-filter", on_change=self._apply_filter)
        search.display = False
        yield search
        rows = SeatTable(id="machines-table", cursor_type="row", zebra_stripes=True)
        columns = list(COLUMNS)
        if self.course.clusters is not None:
            columns.insert(columns.index(("Setup", "setup")) + 1, CLUSTER_COLUMN)
        if self.has_jupyter:
            after = CLUSTER_COLUMN if CLUSTER_COLUMN in columns else ("Setup", "setup")
            columns.insert(columns.index(after) + 1, NOTEBOOK_COLUMN)
        for label, key in columns:
            rows.add_column(label, key=key, width=1 if key == "mark" else None,
                            fit=FITS.get(key))
        rows.display = self.course.machines is not None  # rows come when AWS has answered
        yield rows

    @property
    def rows(self) -> SeatTable:
        return self.query_one("#machines-table", SeatTable)

    @property
    def lab(self) -> Lab:
        return cast("Lab", self.app)

    # -- loading (thread worker) ----------------------------------------------------------------

    def fetch(self, ctx: Context, quiet: bool = False) -> None:
        started = time.time()
        if not quiet:
            ctx.sink.emit(LogLine(f"machines: looking for {tags.COURSE}={self.course.id} in "
                                  f"{len(self.course.regions)} regions"))
        machines = lifecycle.discover(ctx, self.course)
        seats = lifecycle.status(ctx, self.course, machines)
        # One look at the class's live clusters per refresh (not one per seat).
        states = ({key: cluster.state for key, cluster in clusterops.live(ctx, self.course)
                   .items()} if self.course.clusters is not None else None)
        if not quiet:
            found = sum(1 for s in seats if s.instance_id)
            ctx.sink.emit(LogLine(f"machines: {found} found for {len(seats)} seats "
                                  f"({time.time() - started:.1f} s)"))
        self.deliver(SeatsLoaded(seats, started, states, machines.machines, quiet))

    def fetch_notebooks(self, ctx: Context, machines: tuple[Machine, ...]) -> None:
        """In a thread worker of its own: every running seat's notebook server, asked at
        once over SSH (a slow machine never holds up the machines' refresh)."""
        started = time.time()
        found = notebookops.statuses(ctx, self.course, list(machines))
        self.deliver(NotebooksLoaded(found, started))

    def ask_notebooks(self, machines: tuple[Machine, ...], *, now: bool) -> None:
        """Start the look at the notebook servers: ``now`` (the refresh key, the first
        load) at once, replacing one under way; otherwise when the last look is
        NOTEBOOKS_EVERY seconds old and none is under way."""
        ctx = self.lab.ctx
        if ctx is None or not self.has_jupyter:
            return
        if not any(m.state == "running" for m in machines):
            return
        worker = self._notebooks_worker
        under_way = worker is not None and worker.state in (WorkerState.PENDING,
                                                             WorkerState.RUNNING)
        if not now and (under_way or
                        time.monotonic() - self.notebooks_asked < NOTEBOOKS_EVERY):
            return
        self.notebooks_asked = time.monotonic()
        self._notebooks_worker = self.lab.run_worker(
            lambda: self.fetch_notebooks(ctx, machines), name=NOTEBOOKS_GROUP,
            group=NOTEBOOKS_GROUP, thread=True, exclusive=True, exit_on_error=False,
            description="asking the notebook servers")

    @on(NotebooksLoaded)
    def show_notebooks(self, message: NotebooksLoaded) -> None:
        changed = []
        for seat, found in message.statuses.items():
            row = self.seats.get(seat)
            # a seat stopped since the look began shows "—" (show_seats), not its last state
            if row is not None and row.cells["state"] == "running" and self._set(
                    row, {"notebook": found.short}):
                changed.append(row)
        self._show(changed)
        if self.filter_words and changed:
            self._sync_rows()
        self.show_status()

    # -- updates on the UI thread ---------------------------------------------------------------

    @on(SeatsLoaded)
    def show_seats(self, message: SeatsLoaded) -> None:
        changed = []
        clusters = message.clusters
        idle = idle_warnings(message.machines)
        for status in message.seats:
            row = self.seats.get(status.seat)
            if row is None:
                continue
            # an event newer than this snapshot knows better
            fresh = row.event_at <= message.started
            if fresh:
                row.snapshot_at = message.started
            values = status_cells(status) if fresh else {}
            if fresh and status.seat in idle and not values.get("error"):
                values["error"] = idle[status.seat]  # the schedule's tick stops it next
            if clusters is not None and row.cluster_at <= message.started:
                key = self.cluster_key.get(row.seat)
                values["cluster"] = clusters.get(key, "absent") if key else NONE
            if self.has_jupyter and status.state != "running":
                values["notebook"] = NONE
            elif self.has_jupyter and row.cells["notebook"] == NONE:
                values["notebook"] = UNKNOWN  # running again: asked at the next look
            if values and self._set(row, values):
                changed.append(row)
        running = [s for s in message.seats if s.state == "running"]
        self.spend = (sum(s.hourly_usd or 0.0 for s in running),
                      sum(s.cost_usd or 0.0 for s in message.seats))
        self.loaded = True
        self.loaded_at = time.time()
        self._show(changed)
        self._sync_rows()
        self._show_empty()
        self.show_status()
        self.ask_notebooks(message.machines, now=not message.quiet)

    def _show_empty(self) -> None:
        """"No machines yet" while no seat has a machine (a launch's events end it)."""
        have = any(row.has_machine for row in self.seats.values())
        self.query_one("#machines-empty", Static).display = not have
        self.rows.display = self.course.machines is not None or have

    def apply_events(self, events: Iterable[Event]) -> None:
        """Events from the work (any seat, any task), in order, already on the UI thread.

        Each event changes the seat's row in the model, in order; the table then shows each
        changed seat once with its latest cells, so a batch holding 40 events of one seat
        costs one row update, not 40."""
        touched = False
        changed: dict[str, SeatRow] = {}
        for event in events:
            if isinstance(event, SeatChanged):
                row = self.seats.get(event.seat)
                if row is not None and event.at >= row.snapshot_at:
                    # (an event older than the last AWS snapshot is already in it)
                    row.event_at = event.at
                    if self._set(row, self._cells_for(row, event)):
                        changed[row.seat] = row
                    touched = True
            elif isinstance(event, ClusterChanged):
                for seat in self.cluster_seats.get(event.key, ()):
                    row = self.seats[seat]
                    row.cluster_at = event.at
                    if self._set(row, {"cluster": event.state}):
                        changed[row.seat] = row
                    touched = True
            elif isinstance(event, Progress):
                self.progress[event.task] = event
                touched = True
            elif isinstance(event, StepDone):
                touched = True
        if touched:
            self._show(changed.values())
            if self.filter_words and changed:
                self._sync_rows()
            if changed and self.loaded and self.is_mounted:
                self._show_empty()
            self.show_status()

    @staticmethod
    def _cells_for(row: SeatRow, event: SeatChanged) -> dict[str, str]:
        state, detail = event.state, event.detail
        if state == "launching":
            return {"state": "launching", "region": detail.split()[0] if detail else NONE,
                    "setup": "pending", "error": ""}
        if state == "pending":
            return {"state": "pending", "instance": detail or row.cells["instance"]}
        booted = {} if row.cells["state"] == "running" else {"state": "running"}
        if state == "setup":
            return {**booted, "setup": "running", "error": ""}
        if state == "setup failed":
            return {**booted, "setup": "failed", "error": one_line(detail)}
        if state == "ready":
            return {**booted, "setup": "done", "error": ""}
        return {"state": state}

    @staticmethod
    def _set(row: SeatRow, values: dict[str, str]) -> bool:
        """Change the seat's row in the model (not yet in the table: ``_show`` does);
        True when a cell changed."""
        cells = row.cells
        changed = False
        for column, value in values.items():
            if cells[column] != value:
                cells[column] = value
                row.dirty.add(column)
                changed = True
        return changed

    def _show(self, changed: Iterable[SeatRow]) -> None:
        """Bring the changed cells of these seats into the table (the rows it shows; a row
        the filter hides gets its cells when it comes back) and into the filter's index."""
        rows = self.rows if self.is_mounted else None
        updates: list[tuple[str, dict[str, str]]] = []
        wider: list[tuple[str, str]] = []
        for row in changed:
            if not row.dirty:
                continue
            row.reindex()
            if rows is not None and row.seat in rows.rows:
                cells = {column: escape(row.cells[column]) for column in row.dirty}
                updates.append((row.seat, cells))
                for column, value in cells.items():
                    # Widening a column re-lays the table out: only when the value needs it.
                    spec = rows.columns[column]  # type: ignore[index]
                    if spec.auto_width and cell_len(value) > spec.content_width:
                        wider.append((row.seat, column))
            row.dirty.clear()
        if updates and rows is not None:
            rows.update_rows(updates, wider)

    def _sync_rows(self) -> None:
        """Make the table show exactly the seats the filter lets through, in course order
        (``show_only``)."""
        if not self.loaded or not self.is_mounted:
            return
        words = self.filter_words
        show_only(self.rows, [seat for seat, row in self.seats.items() if row.matches(words)],
                  lambda seat: self.seats[seat].table_cells(), "seat", self.order)

    # -- the status line ------------------------------------------------------------------------

    def summary(self) -> str:
        if not self.loaded:
            return "Loading…"
        rows = list(self.seats.values())
        total = len(rows)
        states = Counter(row.cells["state"] for row in rows)
        parts = [f"running {states.pop('running', 0)}/{total}"]
        others = ", ".join(f"{state} {n}" for state, n in sorted(states.items()))
        if others:
            parts[0] += f" ({others})"
        setups = Counter(row.cells["setup"] for row in rows if row.has_machine)
        parts.append(f"setup done {setups['done']}, failed {setups['failed']}")
        if self.has_jupyter:
            servers = [row.cells["notebook"] for row in rows if row.cells["state"] == "running"]
            if any(value != UNKNOWN for value in servers):
                up = sum(1 for value in servers if value.startswith("up"))
                busy = sum(1 for value in servers if value.endswith(" busy"))
                parts.append(f"notebooks up {up}/{len(servers)}"
                             + (f", {busy} with busy kernels" if busy else ""))
        for task, progress in list(self.progress.items()):
            if progress.done >= progress.total:
                del self.progress[task]
                continue
            parts.append(progress.human())
        if self.marked:
            hidden = sum(1 for seat in self.marked if seat not in self.rows.rows)
            parts.append(f"{len(self.marked)} marked" + (f" ({hidden} hidden by the filter)"
                                                          if hidden else ""))
        if self.filter_words:
            parts.append(f"filter \"{' '.join(self.filter_words)}\": "
                         f"{self.rows.row_count} of {total} shown")
        hourly, spent = self.spend
        if hourly or spent:
            parts.append(f"${hourly:.2f}/hour now, ${spent:.2f} so far")
        if self.loaded_at:
            parts.append(f"updated {clock(self.loaded_at)}")
        return " · ".join(parts)

    # -- selection ------------------------------------------------------------------------------

    def cursor_seat(self) -> str | None:
        return cursor_key(self.rows)

    def targets(self) -> list[str]:
        """The marked seats in course order, or the cursor's seat when none is marked."""
        if self.marked:
            return sorted(self.marked, key=self.order.__getitem__)
        seat = self.cursor_seat()
        return [seat] if seat else []

    def _mark(self, seat: str, on_: bool) -> None:
        if on_:
            self.marked.add(seat)
        else:
            self.marked.discard(seat)
        row = self.seats[seat]
        if self._set(row, {"mark": MARK if on_ else ""}):
            self._show([row])

    def action_toggle_mark(self) -> None:
        seat = self.cursor_seat()
        if seat is None:
            return
        self._mark(seat, seat not in self.marked)
        self.show_status()

    def action_mark_all(self) -> None:
        for key in self.rows.rows:
            self._mark(str(key.value), True)
        self.show_status()

    def action_clear(self) -> None:
        search = self.query_one("#machines-filter", Input)
        if self.filter_words or search.display:
            search.value = ""
            search.display = False
            self._apply_filter("")
        elif self.marked:
            for seat in list(self.marked):
                self._mark(seat, False)
        self.show_status()
        self.rows.focus()

    # -- the filter -----------------------------------------------------------------------------

    def action_filter(self) -> None:
        search = self.query_one("#machines-filter", Input)
        search.display = True
        # At once, not after the next message (focus() defers): keys typed right after /
        # (or pasted with it) belong to the filter.
        self.screen.set_focus(search)

    @on(Input.Submitted, "#machines-filter")
    def filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            self.query_one("#machines-filter", Input).display = False
        self.rows.focus()

    def _apply_filter(self, text: str) -> None:
        words = tuple(text.lower().split())
        if words == self.filter_words:
            return
        self.filter_words = words
        self._sync_rows()
        self.show_status()

    # -- opening a seat -------------------------------------------------------------------------

    @on(DataTable.RowSelected, "#machines-table")
    def row_selected(self, event: DataTable.RowSelected) -> None:
        self.open_seat(str(event.row_key.value))

    def action_open(self) -> None:
        seat = self.cursor_seat()
        if seat is not None:
            self.open_seat(seat)

    def open_seat(self, seat: str) -> None:
        from labtui.screens.seat import SeatScreen

        self.app.push_screen(SeatScreen(self.course, seat))

    # -- actions --------------------------------------------------------------------------------

    def _chosen(self, what: str) -> list[str] | None:
        """The seats an action applies to, or None (and a notification) when there are
        none or the console is read-only."""
        if self.lab.refused(what):
            return None
        if not self.loaded:
            self.app.notify("The machines are still loading; try again in a moment.",
                            severity="warning")
            return None
        seats = self.targets()
        if not seats:
            self.app.notify("No seat selected: move the cursor to a seat or mark some with "
                            "space.", severity="warning")
            return None
        return seats

    def _with_machines(self, seats: list[str], what: str) -> list[str]:
        """Drop the seats that have no machine, saying so; may return []."""
        absent = [s for s in seats if not self.seats[s].has_machine]
        if absent:
            self.app.notify(f"{what}: {names(absent)} ha{'s' if len(absent) == 1 else 've'} "
                            "no machine — skipped (press u to launch).", severity="warning",
                            markup=False)
        return [s for s in seats if s not in absent]

    def action_exec(self) -> None:
        seats = self._chosen("exec")
        if not seats:
            return
        seats = self._with_machines(seats, "exec")
        if not seats:
            return

        def run(command: str | None) -> None:
            if command:
                self.lab.start_job(exec_job(self.course, seats, command),
                                   what=f"exec on {names(seats)}", group="exec",
                                   refresh=False)

        self.app.push_screen(PromptModal(f"Run a command on {names(seats)}",
                                         placeholder="a shell command, e.g. df -h /",
                                         note="Output streams into the log, prefixed by "
                                              "seat · enter runs · escape cancels"), run)

    def action_setup(self) -> None:
        seats = self._chosen("re-run setup")
        if seats and (seats := self._with_machines(seats, "setup")):
            self.lab.start_job(setup_job(self.course, seats),
                               what=f"setup on {names(seats)}")

    def action_reboot(self) -> None:
        seats = self._chosen("reboot")
        if seats and (seats := self._with_machines(seats, "reboot")):
            self.lab.confirm_then_job(
                ConfirmModal(f"Reboot {count(seats, 'machine')}?",
                             f"Seats: {names(seats, limit=20)}.\nStudents on them lose "
                             "their open sessions; files on disk stay.", yes="Reboot",
                             danger=True),
                reboot_job(self.course, seats), what=f"reboot {names(seats)}")

    def action_stop(self) -> None:
        seats = self._chosen("stop")
        if seats and (seats := self._with_machines(seats, "stop")):
            self.lab.confirm_then_job(
                ConfirmModal(f"Stop {count(seats, 'machine')}?",
                             f"Seats: {names(seats, limit=20)}.\nStudents on them lose "
                             "their sessions; disks stay (and are billed). T starts them "
                             "again.", yes="Stop", danger=True),
                stop_job(self.course, seats), what=f"stop {names(seats)}")

    def action_start(self) -> None:
        seats = self._chosen("start")
        if seats and (seats := self._with_machines(seats, "start")):
            self.lab.confirm_then_job(
                ConfirmModal(f"Start {count(seats, 'machine')}?",
                             f"Seats: {names(seats, limit=20)}.\nRunning machines are billed "
                             "by the hour (the regions view shows the class's $/hour).",
                             yes="Start"),
                start_job(self.course, seats), what=f"start {names(seats)}")

    def action_up(self) -> None:
        if self.lab.refused("up (launching machines)"):
            return
        if self.course.machines is None:
            self.app.notify(empty_text(self.course), severity="warning", markup=False)
            return
        ask = self.lab.ask_from_thread

        def confirm(plan: Plan) -> bool:  # from the job's thread
            question, body = up_question(plan)
            return ask(ConfirmModal(question, body, yes="Launch", danger=True))

        self.lab.start_job(up_job(self.course, confirm), what="up (launch and set up)")

    def action_down(self) -> None:
        if self.lab.refused("down (removing the course's resources)"):
            return
        self.lab.confirm_then_job(
            ConfirmModal(f"Take {self.course.id} down?", self.down_body(), yes="Remove all",
                         danger=True),
            down_job(self.course), what="down (removing everything)")

    def down_body(self) -> RenderableType:
        per_region = Counter(row.cells["region"] for row in self.seats.values()
                             if row.has_machine)
        lines = [f"Removes everything labtui created for course {self.course.id}, found by "
                 f"the tag {tags.COURSE}={self.course.id} in "
                 f"{', '.join(self.course.regions)}:"]
        if per_region:
            lines.append("  seat machines: " + ", ".join(
                f"{n} in {region}" for region, n in sorted(per_region.items())))
        else:
            lines.append("  seat machines: none that this view knows of")
        lines.append("  and their disks, networks, security groups, key pairs.")
        lines.append("This cannot be undone: files on the machines are lost.")
        return "\n".join(lines)


# -- helpers ---------------------------------------------------------------------------------

def up_question(plan: Plan) -> tuple[str, RenderableType]:
    """The confirmation for up: counts per region, instance types, vCPUs from the plan."""
    course = plan.course
    where = ", ".join(f"{len(r.create)} in {r.region}" for r in plan.regions if r.create)
    question = f"Launch {plan.to_create} machine{'s' if plan.to_create != 1 else ''} ({where})?"
    table = Table(box=None, padding=(0, 2, 0, 0), header_style="bold")
    for header in ("Region", "Launch", "Keep", "When all run", "vCPUs", "$/hour"):
        table.add_column(header)
    for region in plan.regions:
        if not (region.create or region.keep or region.instances):
            continue
        running = ", ".join(f"{n} × {itype}" for itype, n in sorted(region.instances.items()))
        table.add_row(region.region, str(len(region.create)), str(len(region.keep)),
                      running or NONE, str(region.vcpus), f"{region.hourly_usd:.2f}")
    machines = course.machines
    assert machines is not None
    notes = Text("\n".join([
        "",
        f"New machines: {machines.instance_type} ({machines.market}), one per {machines.per}.",
        "Then setup runs on every machine at once.",
        f"When everything runs: {plan.instances} instances, {plan.vcpus} vCPUs (machines and "
        "cluster nodes).",
        f"Hard cap: max_instances = {course.max_instances}.",
        f"Cost when everything runs: about ${plan.hourly_usd:.2f}/hour, "
        f"${plan.daily_usd:.2f}/day (spot at its max price)"
        + (f"; no price known for {', '.join(plan.unpriced)}" if plan.unpriced else "") + ".",
    ] + ([f"Over the course's budget of ${course.budget_usd:.2f}/day."]
         if plan.over_budget and course.budget_usd is not None else [])))
    return question, Group(table, notes)
