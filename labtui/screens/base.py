"""What every view of the main screen shares: a title, a status line, a way to load data.

A view shows real data only. Data that needs AWS is loaded by ``fetch`` — a plain ``def`` the
app runs in a thread worker (so the one ``Worker.StateChanged`` handler on the app sees every
failure). ``fetch`` never touches a widget: it reports with ``self.post_message`` (thread-safe)
and logs through ``ctx.sink``; the view's message handlers update its widgets in place.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, ClassVar

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable, Static
from textual.worker import NoActiveWorker, get_current_worker

from labtui.course import Course
from labtui.screens.rowtable import Fit, RowTable

if TYPE_CHECKING:
    from labtui.context import Context


class View(Vertical):
    """One view of the main screen (regions, quotas, roster, machines, clusters)."""

    VIEW_ID: ClassVar[str] = ""
    TITLE: ClassVar[str] = ""
    KEY: ClassVar[str] = ""
    DESCRIPTION: ClassVar[str] = ""
    NEEDS_AWS: ClassVar[bool] = False
    # False: loaded when first shown (and on r), not when the console connects
    LOAD_ON_CONNECT: ClassVar[bool] = True
    DEFAULT_CLASSES = "view"

    def __init__(self, course: Course) -> None:
        super().__init__(id=f"view-{self.VIEW_ID}")
        self.course = course
        self.loaded_at: float | None = None
        self._status = ("Waiting for the connection…" if self.NEEDS_AWS else self.source(),
                        False)

    def compose(self) -> ComposeResult:
        yield Static(self.TITLE, classes="view-title")
        text, error = self._status
        # markup=False: a status may quote an AWS error or a filter the user typed.
        yield Static(text, classes="status error" if error else "status", markup=False)
        yield from self.compose_body()

    def compose_body(self) -> Iterable[Widget]:
        return ()

    def source(self) -> str:
        return f"From the course file {self.course.path.name}."

    # -- called on the UI thread by the app ---------------------------------------------------

    @property
    def status_text(self) -> str:
        return self._status[0]

    def set_status(self, text: str, *, error: bool = False) -> None:
        before, was_error = self._status
        if (text, error) == (before, was_error):
            return
        self._status = (text, error)
        try:
            status = self.query_one(".status", Static)
        except NoMatches:
            return
        # A new layout (a repaint of the whole screen) only when the line count may change:
        # the machines view rewrites its status line on every batch of events.
        width = max(1, status.content_size.width)
        layout = (error != was_error or width <= 1
                  or -(-len(text) // width) != -(-len(before) // width))
        status.update(text, layout=layout)
        status.set_class(error, "error")

    def waiting(self, where: str) -> None:
        if self.NEEDS_AWS:
            self.set_status(f"Connecting to {where}…")

    def show_loading(self) -> None:  # not `loading`: Widget.loading is a reactive
        self.set_status("Loading…" if self.loaded_at is None else
                        f"Refreshing… (last updated {clock(self.loaded_at)})")

    def done(self, text: str = "") -> None:
        self.loaded_at = time.time()
        self.set_status(f"Updated {clock(self.loaded_at)}." + (f" {text}" if text else ""))

    def failed(self, message: str) -> None:
        self.set_status(f"Could not load: {message}", error=True)

    def focus_main(self) -> None:
        tables = [t for t in self.query(DataTable) if t.display]
        if tables:
            tables[0].focus()
        else:
            self.focus()

    # -- runs in a thread worker ----------------------------------------------------------------

    def fetch(self, ctx: Context) -> None:
        """Load this view's data; runs in a thread worker. Views without AWS data skip it."""
        return None

    def deliver(self, message: Message) -> None:
        """Post a result to this view from ``fetch``, unless a newer load replaced this one
        (a thread cannot be interrupted: a cancelled worker must not post stale data)."""
        try:
            if get_current_worker().is_cancelled:
                return
        except NoActiveWorker:
            pass
        self.post_message(message)


def clock(at: float) -> str:
    """A time as every screen shows it (the log pane, "Updated …")."""
    return time.strftime("%H:%M:%S", time.localtime(at))


def table(table_id: str, columns: Iterable[tuple[str, str]],
          fits: Mapping[str, Fit] | None = None, **kwargs: object) -> RowTable:
    """A table with keyed columns (label, key), ready for add_row(key=...)/update_cell;
    ``fits`` says how columns give way in a narrow terminal (rowtable.Fit)."""
    widget = RowTable(id=table_id, cursor_type="row", zebra_stripes=True, **kwargs)
    for label, key in columns:
        widget.add_column(label, key=key, fit=(fits or {}).get(key))
    return widget


class SummaryView(View):
    """A live view whose status line is its own summary of what it shows (counts, $/hour,
    when it was updated), drawn again as rows change rather than "Updated hh:mm"."""

    loaded = False

    def summary(self) -> str:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def show_status(self) -> None:
        self.set_status(self.summary())

    def show_loading(self) -> None:
        if not self.loaded:
            self.set_status("Loading…")

    def done(self, text: str = "") -> None:
        self.show_status()
