"""Dashboard (key 0): the class at a glance, the first view during class.

One line per thing the instructor watches — seats ready k/n, setup failures, seats warned as
idle, clusters ready, failed steps, notebooks up, $/hour and cost so far against the budget,
the billing alarms, vCPUs against the quotas, the next scheduled action — each from
``dashboard.lines`` (the same lines ``labtui dashboard`` prints), bad news in the error style.
Enter on a line shows the view that explains it (the schedule's line: what ``labtui
schedule`` says). Below: a progress bar while ``up``, setup, ``down`` or any counted work
runs; the day's $/hour and cost so far as a chart (textual-plotext); each quota as a bar.

Loading: ``dashops.gather`` when first shown, on r, and quietly every ~30 s while shown (the
app's poll never stacks). Between looks the lines follow the work's events, keyed: a seat's
SeatChanged moves it in the counts, a cluster's ClusterChanged too, each Progress moves the
bar — one cell update per changed line, not a new table.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import DataTable, ProgressBar, Static
from textual_plotext import PlotextPlot

from labtui import dashboard, dashops
from labtui.course import Course
from labtui.dashboard import Dashboard, Line
from labtui.events import ClusterChanged, Event, LogLine, Progress, SeatChanged
from labtui.screens.base import View, table
from labtui.screens.messages import DashboardLoaded
from labtui.screens.rowtable import Fit
from labtui.terminal import plain

if TYPE_CHECKING:
    from labtui.context import Context
    from labtui.lifecycle import SeatStatus

VIEW_TITLES = {"machines": "1 Machines", "clusters": "3 Clusters", "quotas": "5 Quotas",
               "schedule": "the schedule"}
BAR_WIDTH = 24


def seat_after(status: SeatStatus, event: SeatChanged) -> SeatStatus:
    """A seat's status moved by one of the work's events (as the machines view moves its
    row): launching, pending, setup, setup failed, ready."""
    state, detail = event.state, event.detail
    changes: dict[str, str] = {}
    if state == "launching":
        changes = {"state": "pending", "setup": "pending", "error": ""}
    elif state == "pending":
        changes = {"state": "pending"}
    elif state == "setup":
        changes = {"state": "running", "setup": "running", "error": ""}
    elif state == "setup failed":
        changes = {"state": "running", "setup": "failed", "error": detail}
    elif state == "ready":
        changes = {"state": "running", "setup": "done", "error": ""}
    elif state in ("running", "stopped", "stopping", "terminated", "shutting-down"):
        changes = {"state": state}
    return replace(status, **changes) if changes else status


class ScheduleScreen(ModalScreen[None]):
    """What ``labtui schedule`` says, from the dashboard's last look; escape closes it."""

    BINDINGS = [Binding("escape", "dismiss", "Close", id="schedule.close"),
                Binding("q", "dismiss", "Close", show=False, id="schedule.close_q")]

    def __init__(self, text: list[str]) -> None:
        super().__init__(id="schedule")
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical(id="schedule-box"):
            yield Static("Schedule", classes="view-title")
            yield VerticalScroll(Static("\n".join(self.text) or "No schedule was read yet.",
                                        id="schedule-text", markup=False))
            yield Static("escape closes this.", classes="note")


class DashboardView(View):
    VIEW_ID = "dashboard"
    TITLE = "Dashboard"
    KEY = "0"
    DESCRIPTION = ("The class at a glance: seats ready, failures, clusters, steps, notebooks, "
                   "cost against the budget, alarms, quotas, the next scheduled action")
    NEEDS_AWS = True
    LOAD_ON_CONNECT = False  # loaded when first shown (and on r)
    REFRESH_WHEN_SHOWN: ClassVar[bool] = True
    REFRESH_EVERY: ClassVar[float] = 30.0

    BINDINGS = [
        Binding("enter", "open_line", "Open", id="dashboard.open",
                tooltip="Show the view that explains the line under the cursor"),
    ]

    def __init__(self, course: Course) -> None:
        super().__init__(course)
        self.board: Dashboard | None = None
        self.lines: dict[str, Line] = {}
        self.progress: dict[str, Progress] = {}
        self._stale = False   # events moved the look while the dashboard was not on screen

    # -- layout --------------------------------------------------------------------------------

    @property
    def composed(self) -> bool:
        """Mounted with its widgets (a pane not shown yet may be mounted before them)."""
        return self.is_mounted and bool(self.query("#dashboard-work"))

    def compose_body(self) -> Iterable[Widget]:
        rows = table("dashboard-lines", [("", "flag"), ("What", "label"), ("Now", "text"),
                                         ("Explained in", "view")],
                     fits={"view": Fit(1), "text": Fit(2, hide=False)})
        rows.show_header = False
        yield rows
        yield Horizontal(Static("", id="dashboard-progress-label", markup=False),
                         ProgressBar(id="dashboard-progress", show_eta=False),
                         id="dashboard-work", classes="hidden")
        yield Horizontal(PlotextPlot(id="dashboard-chart"),
                         Static("", id="dashboard-quotas", markup=False),
                         id="dashboard-pictures")

    # -- loading (thread worker) ----------------------------------------------------------------

    def fetch(self, ctx: Context, quiet: bool = False) -> None:
        started = time.time()
        board = dashops.gather(ctx, self.course)
        if not quiet:
            bad = sum(1 for line in dashboard.lines(board) if line.bad)
            ctx.sink.emit(LogLine(f"dashboard: {len(board.seats_ready)}/{len(board.seats)} "
                                  f"seats ready, {bad} line(s) of bad news "
                                  f"({time.time() - started:.1f} s)"))
        self.deliver(DashboardLoaded(board, started))

    # -- on the UI thread -----------------------------------------------------------------------

    def on_mount(self) -> None:
        self._show_lines()   # a look (or events) that came before the widgets
        self._show_chart()
        self._show_quotas()
        self._show_progress()

    @on(DashboardLoaded)
    def show_board(self, message: DashboardLoaded) -> None:
        self.board = message.board
        self._show_lines()
        self._show_chart()
        self._show_quotas()
        self.done()

    def apply_events(self, events: Iterable[Event]) -> None:
        """The work's events between looks: seats and clusters move in the counts, the
        progress bar follows the newest counted work. While another view is shown only the
        copy moves; the widgets catch up when the dashboard is shown again (a hidden
        widget's update still lays the whole screen out anew, each batch of events)."""
        board = self.board
        seats_changed = clusters_changed = progress_changed = False
        seat_at = ({seat.seat: index for index, seat in enumerate(board.seats)}
                   if board is not None else {})
        for event in events:
            if isinstance(event, Progress):
                self.progress[event.task] = event
                progress_changed = True
            elif board is None or event.at < board.at:
                continue  # the last look already holds it
            elif isinstance(event, SeatChanged):
                index = seat_at.get(event.seat)
                if index is not None:
                    board.seats[index] = seat_after(board.seats[index], event)
                    seats_changed = True
            elif isinstance(event, ClusterChanged) and board.clusters is not None:
                for index, cluster in enumerate(board.clusters):
                    if cluster.key == event.key:
                        board.clusters[index] = replace(cluster, state=event.state,
                                                        cluster_id=event.cluster_id)
                        clusters_changed = True
        if not (seats_changed or clusters_changed or progress_changed):
            return
        if not self.is_on_screen:
            self._stale = True
            return
        if seats_changed or clusters_changed:
            self._show_lines()
        if progress_changed:
            self._show_progress()

    def on_show(self) -> None:
        if self._stale:
            self._stale = False
            self._show_lines()
            self._show_progress()

    def _cells(self, line: Line) -> dict[str, str]:
        """The row's cells as markup (the table keys its drawn rows by their cells)."""
        text = escape(plain(line.text))
        return {"flag": "[bold red]![/]" if line.bad else "[dim]·[/]",
                "label": escape(line.label),
                "text": f"[bold red]{text}[/]" if line.bad else text,
                "view": f"[dim]→ {escape(VIEW_TITLES.get(line.view, line.view))}[/]"}

    def _show_lines(self) -> None:
        if self.board is None or not self.composed:
            return
        found = {line.key: line for line in dashboard.lines(self.board)}
        rows = self.query_one("#dashboard-lines", DataTable)
        if list(found) != list(self.lines):  # a line came or went: the rows in their order
            cursor = rows.cursor_row
            rows.clear()
            for key, line in found.items():
                rows.add_row(*self._cells(line).values(), key=key)
            if rows.row_count:
                rows.move_cursor(row=min(cursor, rows.row_count - 1))
        else:
            for key, line in found.items():
                if line != self.lines[key]:
                    for column, value in self._cells(line).items():
                        rows.update_cell(key, column, value)
        self.lines = found

    def _show_progress(self) -> None:
        if not self.composed:
            return
        for task, progress in list(self.progress.items()):
            if progress.done >= progress.total:
                del self.progress[task]
        work = self.query_one("#dashboard-work")
        if not self.progress:
            work.add_class("hidden")
            return
        progress = list(self.progress.values())[-1]   # the newest counted work
        work.remove_class("hidden")
        self.query_one("#dashboard-progress-label", Static).update(progress.human())
        self.query_one("#dashboard-progress", ProgressBar).update(
            total=max(1, progress.total), progress=progress.done)

    def _show_chart(self) -> None:
        if self.board is None or not self.composed:
            return
        chart = self.query_one("#dashboard-chart", PlotextPlot)
        plt = chart.plt
        plt.clear_data()
        plt.clear_figure()
        samples = self.board.history
        plt.title("$/hour and $ so far today")
        if samples:
            plt.date_form("H:M")
            stamps = [time.strftime("%H:%M", time.localtime(s.at)) for s in samples]
            marker = "braille" if len(samples) > 1 else "dot"
            plt.plot(stamps, [s.hourly_usd for s in samples], label="$/hour", marker=marker)
            plt.plot(stamps, [s.cost_usd for s in samples], label="$ so far", marker=marker,
                     yside="right")
        chart.refresh()

    def _show_quotas(self) -> None:
        if self.board is None or not self.composed:
            return
        quotas = self.board.quotas
        text = "\n".join(
            f"{q.region} {q.name}\n{dashboard.bar(q.in_use, q.quota, BAR_WIDTH)} "
            f"{q.in_use:g}/{q.quota:g}" for q in quotas) or "No vCPU quota read."
        self.query_one("#dashboard-quotas", Static).update(
            "vCPUs against each quota\n" + text)

    # -- keys -----------------------------------------------------------------------------------

    @on(DataTable.RowSelected, "#dashboard-lines")
    def row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self._open(event.row_key.value)

    def action_open_line(self) -> None:
        rows = self.query_one("#dashboard-lines", DataTable)
        if rows.row_count:
            self._open(rows.coordinate_to_cell_key(rows.cursor_coordinate).row_key.value)

    def _open(self, key: str | None) -> None:
        line = self.lines.get(key or "")
        if line is None:
            return
        if line.view == "schedule":
            self.app.push_screen(ScheduleScreen(self.board.schedule_text if self.board else []))
            return
        show = getattr(self.screen, "action_show_view", None)
        if show is not None:
            show(line.view)

