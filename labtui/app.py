"""The Textual app: the instructor's console for one course.

``LabApp`` opens the context (attach to or start the sandbox, or make AWS clients) in a thread
worker so the screen is up at once, shows "connecting…" meanwhile, then has each view load
its data. Every blocking call runs in a thread worker owned by the app, so one
``Worker.StateChanged`` handler sees every failure and turns it into a notification and a log
line (a ``LabError`` as its message, anything else as "unexpected error: ..."); nothing dies
silently and no traceback reaches the screen. Services report through ``ctx.sink``: a
``CallbackSink`` posts each event as a message, which the log pane shows.

The screens (``labtui.screens``) never import boto3 or paramiko; they call ``labtui.services``
from the workers the app runs for them.
"""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path

from textual import on, work
from textual.app import App
from textual.binding import Binding
from textual.worker import Worker, WorkerState

import labtui.screens
from labtui.context import Context, open_context
from labtui.course import Course
from labtui.errors import LabError
from labtui.events import CallbackSink, Event, LogLine
from labtui.screens.base import View
from labtui.screens.commands import LabCommands
from labtui.screens.help import HelpScreen
from labtui.screens.main import VIEW_IDS, MainScreen
from labtui.screens.messages import ContextReady, LabEvent

TCSS = Path(labtui.screens.__file__).with_name("labtui.tcss")
CONTEXT_GROUP = "context"
LOAD_GROUP = "load:"


def describe_error(error: BaseException | None) -> str:
    """What the user reads about a failure: our own message, or a one-line summary."""
    if error is None:
        return "unexpected error"
    if isinstance(error, LabError):
        return str(error) or type(error).__name__
    text = str(error).strip().splitlines()
    return f"unexpected error: {type(error).__name__}" + (f": {text[0]}" if text else "")


class LabApp(App[int]):
    """The console for one course: views of its machines, roster, clusters, regions, quotas."""

    CSS_PATH = TCSS
    TITLE = "labtui"
    COMMANDS = App.COMMANDS | {LabCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit", id="quit", priority=False),
        Binding("question_mark", "help", "Help", id="help", key_display="?"),
    ]

    def __init__(self, course: Course, *, sandbox: bool = False, profile: str | None = None,
                 state_dir: str | None = None, read_only: bool = False) -> None:
        super().__init__()
        self.course = course
        self.sandbox = sandbox
        self.profile = profile
        self.state_dir = state_dir
        self.read_only = read_only
        self.ctx: Context | None = None
        self.connect_error: str | None = None
        self._ctx_lock = threading.Lock()
        self._closed = False
        self.main = MainScreen(course)
        self.title = f"{course.name} ({course.id})"
        self.sub_title = self._with_mode(f"connecting to {self.where_wanted}…")

    # -- connection -------------------------------------------------------------------------

    @property
    def where_wanted(self) -> str:
        if self.sandbox:
            return "the sandbox"
        profile = self.profile or self.course.profile
        return f"AWS (profile {profile or 'default'})"

    def _with_mode(self, text: str) -> str:
        return f"read-only · {text}" if self.read_only else text

    def get_default_screen(self) -> MainScreen:
        return self.main

    def on_mount(self) -> None:
        for view in self.main.views:
            view.waiting(self.where_wanted)
        self.log_event(LogLine(f"connecting to {self.where_wanted}…"))
        self.connect()

    @work(thread=True, exclusive=True, exit_on_error=False, group=CONTEXT_GROUP,
          description="connecting")
    def connect(self) -> None:
        ctx = open_context(self.course, sandbox=self.sandbox, profile=self.profile,
                           state_dir=self.state_dir, sink=CallbackSink(self._post_event),
                           read_only=self.read_only)
        with self._ctx_lock:
            if self._closed:  # the app ended while we were connecting
                ctx.close()
                return
            self.ctx = ctx
        self.post_message(ContextReady(ctx))

    def _post_event(self, event: Event) -> None:
        """The sink's callback: any thread may call it."""
        self.post_message(LabEvent(event))

    @on(ContextReady)
    def context_ready(self, message: ContextReady) -> None:
        self.sub_title = self._with_mode(message.ctx.where)
        self.log_event(LogLine(f"connected: {message.ctx.where}"))
        for view in self.main.views:
            if view.NEEDS_AWS:
                self.load_view(view)

    def close_context(self) -> None:
        """Close the context once (a private sandbox stops); safe to call again."""
        with self._ctx_lock:
            self._closed = True
            ctx, self.ctx = self.ctx, None
        if ctx is not None:
            ctx.close()

    def on_unmount(self) -> None:
        self.close_context()

    # -- loading views ------------------------------------------------------------------------

    def load_view(self, view: View) -> None:
        """Run the view's ``fetch`` in a thread worker (one at a time per view)."""
        ctx = self.ctx
        if ctx is None:
            return
        view.loading()
        self.run_worker(partial(view.fetch, ctx), name=f"{LOAD_GROUP}{view.VIEW_ID}",
                        group=f"{LOAD_GROUP}{view.VIEW_ID}", thread=True, exclusive=True,
                        exit_on_error=False, description=f"loading {view.TITLE.lower()}")

    def action_refresh_view(self) -> None:
        view = self.main.current
        if not view.NEEDS_AWS:
            self.notify(f"{view.TITLE} comes from the course file; nothing to load from AWS.",
                        timeout=4)
            return
        if self.ctx is None:
            self.notify(self.connect_error or f"Still connecting to {self.where_wanted}…",
                        severity="warning" if self.connect_error is None else "error")
            return
        self.load_view(view)

    # -- failures -----------------------------------------------------------------------------

    @on(Worker.StateChanged)
    def worker_changed(self, event: Worker.StateChanged) -> None:
        """The one place a failed worker becomes a notification and a log line."""
        if event.state != WorkerState.ERROR:
            return
        worker = event.worker
        message = describe_error(worker.error)
        if worker.group == CONTEXT_GROUP:
            headline = f"could not connect to {self.where_wanted}"
        else:
            headline = f"{worker.description or worker.name or 'background work'} failed"
        self.notify(message, title=headline[:1].upper() + headline[1:], severity="error",
                    timeout=10, markup=False)
        self.log_event(LogLine(f"{headline}: {message}", level="error"))
        if worker.group == CONTEXT_GROUP:
            self.connect_error = f"Could not connect to {self.where_wanted}: {message}"
            self.sub_title = self._with_mode(f"not connected ({self.where_wanted})")
            for view in self.main.views:
                if view.NEEDS_AWS:
                    view.failed(f"not connected — {message}")
        elif worker.group and worker.group.startswith(LOAD_GROUP):
            view_id = worker.group.removeprefix(LOAD_GROUP)
            if view_id in VIEW_IDS:
                self.main.view(view_id).failed(message)

    # -- log pane, views, help ----------------------------------------------------------------

    @on(LabEvent)
    def lab_event(self, message: LabEvent) -> None:
        self.log_event(message.event)

    def log_event(self, event: Event) -> None:
        self.main.log_pane.write_event(event)

    def show_view(self, view_id: str) -> None:
        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss(None)
        self.main.action_show_view(view_id)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.keys()))

    def keys(self) -> list[tuple[str, str]]:
        """Every key of the main screen and the app with what it does: the footer's keys
        first, then the command palette, then the keys of the focused widget."""
        footer: list[tuple[str, str]] = []
        palette: list[tuple[str, str]] = []
        other: list[tuple[str, str]] = []
        seen: set[str] = set()
        for key, active in self.main.active_bindings.items():
            binding = active.binding
            if not binding.description or key in seen:
                continue
            seen.add(key)
            display = self.get_key_display(binding)
            if binding.action == "command_palette":
                palette.append((display, "Command palette: every view and action by name"))
            else:
                (footer if binding.show else other).append((display, binding.description))
        return footer + palette + other


def run_app(course: Course, **opts: object) -> int:
    """Run the console until the user quits; return the process exit code."""
    app = LabApp(course, **opts)  # type: ignore[arg-type]
    try:
        result = app.run()
    finally:
        app.close_context()
    if isinstance(result, int):
        return result
    return app.return_code or 0
