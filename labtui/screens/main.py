"""The main screen: one screen holding every view, with a log pane that stays visible.

Layout, top to bottom: the header (course name and id; where labtui is connected), a
``TabbedContent`` with one pane per view (its ``ContentSwitcher`` shows one view at a time,
the tab strip shows which and how to reach the others), the log pane, the footer.

Why one screen with switched views rather than a screen per view (or Textual modes): the log
pane streams events from background workers and must be visible on every view, and a widget
can live on one screen only. With one screen there is one log pane, one footer, and switching
views is instant and keeps each view's table (and cursor) as it was.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Header, RichLog, TabbedContent, TabPane

from labtui.course import Course
from labtui.events import Event, LogLine, Problem, StepDone
from labtui.screens.base import View, clock
from labtui.screens.batch import BatchView
from labtui.screens.clusters import ClustersView
from labtui.screens.dashboard import DashboardView
from labtui.screens.database import DatabaseView
from labtui.screens.footer import KeyFooter
from labtui.screens.machines import MachinesView
from labtui.screens.quotas import QuotasView
from labtui.screens.regions import RegionsView
from labtui.screens.roster import RosterView
from labtui.screens.steady import Steady
from labtui.screens.sweep import SweepView
from labtui.terminal import plain

VIEWS: tuple[type[View], ...] = (DashboardView, MachinesView, RosterView, ClustersView,
                                 RegionsView, QuotasView, SweepView, BatchView, DatabaseView)
VIEW_IDS = tuple(view.VIEW_ID for view in VIEWS)
# where the console opens; `labtui COURSE --view dashboard` (or any view id) opens elsewhere
DEFAULT_VIEW = MachinesView.VIEW_ID


def level_of(event: Event) -> str:
    if isinstance(event, LogLine):
        return event.level
    if isinstance(event, Problem) or (isinstance(event, StepDone) and not event.ok):
        return "error"
    return "info"


STYLES = {"info": "", "warning": "yellow", "error": "bold red"}


class LogPane(Steady, RichLog):
    """Every event from the work, newest at the bottom; errors in red. Steady: a line
    written never lays the screen out (its height is set, its scrollbar always shown)."""

    def __init__(self) -> None:
        super().__init__(id="log", max_lines=2000, wrap=True, markup=False, highlight=False,
                         auto_scroll=True)
        self.border_title = "Log"

    def write_event(self, event: Event) -> None:
        self.write(line_of(event), expand=True, shrink=True)

    def write_events(self, events: Sequence[Event], limit: int) -> None:
        """A batch in one write (one render, one scroll): the last ``limit`` lines, and a
        line saying how many were left out (the course's event log keeps every one)."""
        lines = [line_of(event) for event in events[-limit:]]
        if len(events) > limit:
            lines.insert(0, Text.assemble(
                (clock(events[0].at) + " ", "dim"),
                (f"… {len(events) - limit} more lines not shown here (all are in the course's "
                 "event log; each seat's setup output is in its setup log)", "yellow")))
        self.write(Text("\n").join(lines), expand=True, shrink=True)


def line_of(event: Event) -> Text:
    stamp = clock(event.at)
    # a seat's output is shown as text: its escape sequences never reach the terminal
    return Text.assemble((stamp + " ", "dim"), (plain(event.human()), STYLES[level_of(event)]))


class MainScreen(Screen[None]):
    """Header, the views, the log pane, the footer."""

    BINDINGS = [
        # The tab strip shows the view keys ("1 Machines" …), so the footer keeps its room
        # for the keys of the view itself; ? and the palette list these too.
        *(Binding(view.KEY, f"show_view('{view.VIEW_ID}')", view.TITLE,
                  id=f"view.{view.VIEW_ID}", tooltip=view.DESCRIPTION, show=False)
          for view in VIEWS),
        Binding("r", "app.refresh_view", "Refresh", id="refresh",
                tooltip="Load the current view again from AWS"),
        Binding("L", "toggle_log", "Log", id="log.toggle", show=False,
                tooltip="Hide the log pane (the view takes its room) or show it again; "
                        "the course's event log keeps every line either way"),
    ]

    def __init__(self, course: Course, initial: str = DEFAULT_VIEW) -> None:
        super().__init__(id="main")
        self.course = course
        self.initial = initial if initial in VIEW_IDS else DEFAULT_VIEW
        # Made here, not in compose, so the app can log and set view states before mount.
        self._views = {view.VIEW_ID: view(course) for view in VIEWS}
        self._log_pane = LogPane()

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial=self.initial, id="views"):
            for view in VIEWS:
                with TabPane(f"{view.KEY} {view.TITLE}", id=view.VIEW_ID):
                    yield self._views[view.VIEW_ID]
        yield self._log_pane
        yield KeyFooter()

    def on_mount(self) -> None:
        self.current.focus_main()

    def on_resize(self, event: events.Resize) -> None:
        # Narrow terminals (80 columns) keep every footer key visible in the compact style.
        self.query_one(KeyFooter).compact = event.size.width < 100

    @property
    def log_pane(self) -> LogPane:
        return self._log_pane

    def action_toggle_log(self) -> None:
        self._log_pane.display = not self._log_pane.display

    @property
    def views(self) -> list[View]:
        return list(self._views.values())

    def view(self, view_id: str) -> View:
        return self._views[view_id]

    @property
    def current(self) -> View:
        if not self.is_mounted:
            return self.view(self.initial)
        active = self.query_one(TabbedContent).active or self.initial
        return self.view(active)

    def action_show_view(self, view_id: str) -> None:
        if view_id not in VIEW_IDS:
            return
        self.query_one(TabbedContent).active = view_id
        self.view(view_id).focus_main()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        pane_id = event.pane.id
        if pane_id is not None and pane_id in VIEW_IDS and self.focused is None:
            self.view(pane_id).focus_main()
