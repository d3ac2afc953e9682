"""The Textual app: the instructor's console for one course.

``LabApp`` opens the context (attach to or start the sandbox, or make AWS clients) in a thread
worker so the screen is up at once, shows "connecting…" meanwhile, then has each view load
its data. Every blocking call runs in a thread worker owned by the app, so one
``Worker.StateChanged`` handler sees every failure and turns it into a notification and a log
line (a ``LabError`` as its message, anything else as "unexpected error: ..."); nothing dies
silently and no traceback reaches the screen. Services report through ``ctx.sink``: a
``CallbackSink`` buffers each event and posts one ``EventsPending`` message per batch (so 500
seats setting up cost one table update per batch, not one per line); the handler writes them
to the log pane and hands them to the machines view and any open seat screen. The same sink
appends every event to the course's event log (``events.jsonl`` in the state folder).

Jobs — up, down, stop, start, reboot, setup, exec — run through ``start_job``: a thread worker
owned by the app (so the one failure handler sees it), refused with a notification in a
read-only console, one changing job at a time, and followed by a quiet refresh of the
machines. Everything that launches, stops or destroys is confirmed in ``ConfirmModal`` first;
``up`` asks from inside its worker (``ask_from_thread``) because the plan it shows is the one
``lifecycle.up`` is about to apply.

The screens (``labtui.screens``) never import boto3 or paramiko; they call ``labtui.services``
from the workers the app runs for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from functools import partial
from pathlib import Path

from textual import on, work
from textual.app import App
from textual.binding import Binding
from textual.events import Event as TextualEvent
from textual.events import Key
from textual.screen import Screen
from textual.widgets import TabbedContent
from textual.worker import NoActiveWorker, Worker, WorkerState, get_current_worker

import labtui.screens
from labtui.context import Context, open_context
from labtui.course import Course
from labtui.errors import LabError
from labtui.events import CallbackSink, Event, LogLine
from labtui.idlegc import IdleCollector
from labtui.screens.base import View
from labtui.screens.batch import JobLogScreen
from labtui.screens.cluster import ClusterScreen
from labtui.screens.commands import LabCommands
from labtui.screens.confirm import ConfirmModal
from labtui.screens.help import HelpScreen
from labtui.screens.host import SEAT_GROUP
from labtui.screens.machines import MachinesView
from labtui.screens.main import DEFAULT_VIEW, VIEW_IDS, MainScreen
from labtui.screens.messages import ContextReady, EventsPending
from labtui.screens.seat import SeatScreen

TCSS = Path(labtui.screens.__file__).with_name("labtui.tcss")
CONTEXT_GROUP = "context"
LOAD_GROUP = "load:"
JOB_GROUP = "job"          # jobs that change AWS: one at a time
QUIT_WAIT = 5.0            # seconds q waits for a stopped job to end its work
REFRESH_EVERY = 5.0        # seconds between quiet refreshes of the machines
FLUSH_EVERY = 0.1          # seconds: events reach the widgets in batches, at most 10/s
LOG_BATCH = 40             # at most this many lines per batch reach the log pane


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
                 state_dir: str | None = None, read_only: bool = False,
                 refresh_every: float | None = REFRESH_EVERY,
                 endpoint_url: str | None = None, view: str | None = None) -> None:
        super().__init__()
        self.refresh_every = refresh_every
        self._events: list[Event] = []
        self._events_lock = threading.Lock()
        self._flush_posted = False
        self._flush_timer = False
        self._last_flush = 0.0
        self.collector = IdleCollector()   # full collections when idle (labtui/idlegc.py)
        self.last_key_at = 0.0             # monotonic time of the last key (screens/footer.py)
        self._jobs_lock = threading.Lock()
        self._jobs_running = 0             # job threads still running (q waits for them)
        self.course = course
        self.sandbox = sandbox
        self.profile = profile
        self.state_dir = state_dir
        self.read_only = read_only
        self.endpoint_url = endpoint_url
        self.ctx: Context | None = None
        self.connect_error: str | None = None
        self._ctx_lock = threading.Lock()
        self._closed = False
        self.main = MainScreen(course, view or DEFAULT_VIEW)
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
        # What startup made (Textual, rich, boto3...; then the context: clients, the
        # sandbox's emulator) lives as long as the app. Frozen, a full collection no longer
        # walks it: under a flood of events it held the event loop ~80 ms every few seconds.
        gc.freeze()
        self.collector.start()
        self.set_interval(0.25, self.collector.tick, name="full collections when idle")
        for view in self.main.views:
            view.waiting(self.where_wanted)
        self.log_event(LogLine(f"connecting to {self.where_wanted}…"))
        self.connect()

    async def on_event(self, event: TextualEvent) -> None:
        if isinstance(event, Key):
            self.collector.busy()   # no full collection right behind a key
            self.last_key_at = time.monotonic()   # the footer waits for the keyboard to rest
        await super().on_event(event)

    @work(thread=True, exclusive=True, exit_on_error=False, group=CONTEXT_GROUP,
          description="connecting")
    def connect(self) -> None:
        callback = CallbackSink(self._post_event)
        ctx = open_context(self.course, sandbox=self.sandbox, profile=self.profile,
                           state_dir=self.state_dir, sink=callback, read_only=self.read_only,
                           endpoint_url=self.endpoint_url)
        with self._ctx_lock:
            if self._closed:  # the app ended while we were connecting
                ctx.close()
                return
            self.ctx = ctx
        self.post_message(ContextReady(ctx))

    def _post_event(self, event: Event) -> None:
        """The sink's callback: any thread may call it. Events wait in a buffer; one
        ``EventsPending`` message is in flight at a time and its handler takes them all."""
        with self._events_lock:
            self._events.append(event)
            if self._flush_posted:
                return
            self._flush_posted = True
        self.post_message(EventsPending())

    @on(ContextReady)
    def context_ready(self, message: ContextReady) -> None:
        gc.freeze()  # and what connecting made (see on_mount)
        self.sub_title = self._with_mode(message.ctx.where)
        self.log_event(LogLine(f"connected: {message.ctx.where}"))
        for view in self.main.views:
            if view.NEEDS_AWS and (view.LOAD_ON_CONNECT or view is self.main.current):
                self.load_view(view)
        if self.refresh_every:
            self.set_interval(self.refresh_every, self.poll_machines, name="poll machines")
            self.set_interval(self.refresh_every, self.poll_shown, name="poll the shown view")

    def close_context(self) -> None:
        """Close the context once (a private sandbox stops); safe to call again."""
        with self._ctx_lock:
            self._closed = True
            ctx, self.ctx = self.ctx, None
        if ctx is not None:
            ctx.close()

    def on_unmount(self) -> None:
        self.close_context()
        self.collector.stop()
        gc.unfreeze()  # collectable again (a process may run several apps: the tests do)

    # -- loading views ------------------------------------------------------------------------

    @property
    def machines(self) -> MachinesView:
        view = self.main.view(MachinesView.VIEW_ID)
        assert isinstance(view, MachinesView)
        return view

    def load_view(self, view: View, *, quiet: bool = False) -> None:
        """Run the view's ``fetch`` in a thread worker (one at a time per view)."""
        ctx = self.ctx
        if ctx is None:
            return
        fetch = partial(view.fetch, ctx)
        if quiet:
            fetch = partial(view.fetch, ctx, quiet=True)  # type: ignore[call-arg]
        else:
            view.show_loading()
        self.run_worker(fetch, name=f"{LOAD_GROUP}{view.VIEW_ID}",
                        group=f"{LOAD_GROUP}{view.VIEW_ID}", thread=True, exclusive=True,
                        exit_on_error=False, description=f"loading {view.TITLE.lower()}")

    @on(TabbedContent.TabActivated)
    def view_shown(self, event: TabbedContent.TabActivated) -> None:
        """A view that loads when first shown (the sweep) loads now, once connected."""
        view_id = event.pane.id
        if view_id is None or view_id not in VIEW_IDS or self.ctx is None:
            return
        view = self.main.view(view_id)
        if not view.NEEDS_AWS or self.running(f"{LOAD_GROUP}{view_id}"):
            return
        if not view.LOAD_ON_CONNECT and view.loaded_at is None:
            self.load_view(view)
        elif (getattr(view, "REFRESH_WHEN_SHOWN", False) and self.refresh_every
              and view.loaded_at is not None
              and time.time() - view.loaded_at >= self.refresh_every):
            self.load_view(view, quiet=True)  # shown again after a while: bring it up to date

    def running(self, group: str) -> list[Worker]:
        return [w for w in self.workers if w.group == group
                and w.state in (WorkerState.PENDING, WorkerState.RUNNING)]

    def poll_machines(self) -> None:
        """The periodic quiet refresh: skipped while the last one still runs (never
        stacks), so a slow AWS answer costs one thread, not a pile of them."""
        if self.ctx is None or self.running(f"{LOAD_GROUP}{MachinesView.VIEW_ID}"):
            return
        self.load_view(self.machines, quiet=True)

    def poll_shown(self) -> None:
        """The quiet refresh of a view that follows AWS only while it is shown (the
        clusters: EMR's API allows fewer calls than EC2's); never stacks either."""
        view = self.main.current
        if (self.ctx is None or self.screen is not self.main or not view.NEEDS_AWS
                or not getattr(view, "REFRESH_WHEN_SHOWN", False) or view.loaded_at is None
                or self.running(f"{LOAD_GROUP}{view.VIEW_ID}")):
            return
        every = getattr(view, "REFRESH_EVERY", None)  # a view read less often (the jobs)
        if every and time.time() - view.loaded_at < every - (self.refresh_every or 0) / 2:
            return
        self.load_view(view, quiet=True)

    def action_refresh_view(self) -> None:
        view = self.main.current
        if not view.NEEDS_AWS:
            self.notify(f"{view.TITLE} comes from the course file; nothing to load from AWS.",
                        timeout=4)
            return
        if self.connected() is None:
            return
        self.load_view(view)

    # -- jobs: the work that changes things ----------------------------------------------------

    def refused(self, what: str) -> bool:
        """In a read-only console, say (with a notification naming --read-only) that
        ``what`` is refused and return True."""
        if not self.read_only:
            return False
        self.notify(f"{what[:1].upper()}{what[1:]} is refused: labtui runs read-only "
                    "(--read-only), which shows the views only. Ask the instructor, or run "
                    "labtui without --read-only.", title="Read-only", severity="warning",
                    timeout=8, markup=False)
        self.log_event(LogLine(f"{what}: refused (--read-only)", level="warning"))
        return True

    def connected(self) -> Context | None:
        if self.ctx is None:
            self.notify(self.connect_error or f"Still connecting to {self.where_wanted}…",
                        severity="warning" if self.connect_error is None else "error",
                        markup=False)
        return self.ctx

    def start_job(self, work: Callable[[Context], str | None], *, what: str,
                  group: str = JOB_GROUP, refresh: bool = True) -> Worker | None:
        """Run ``work(ctx)`` in a thread worker; notify its summary, then refresh the
        machines quietly (also after a failure: some seats may have changed)."""
        ctx = self.connected()
        if ctx is None:
            return None
        if group == JOB_GROUP:
            busy = self.running(JOB_GROUP)
            if busy:
                self.notify(f"{busy[0].description} is still running; wait for it to finish "
                            "(the log shows its progress).", severity="warning", markup=False)
                return None

        def job() -> None:
            with self._jobs_lock:
                self._jobs_running += 1
            try:
                self._job(ctx, work, refresh, what)
            finally:
                with self._jobs_lock:
                    self._jobs_running -= 1

        self.log_event(LogLine(f"{what}: started"))
        return self.run_worker(job, name=what, group=group, thread=True,
                               exit_on_error=False, description=what)

    def _job(self, ctx: Context, work: Callable[[Context], str | None], refresh: bool,
             what: str) -> None:
        try:
            summary = work(ctx)
        except BaseException:
            if refresh:
                with contextlib.suppress(Exception):  # the next refresh reports trouble
                    self.machines.fetch(ctx, quiet=True)
            raise
        if refresh:
            self.machines.fetch(ctx, quiet=True)
        if summary:
            ctx.sink.emit(LogLine(summary))
            self.notify(summary, title=what[:1].upper() + what[1:], timeout=8,
                        markup=False)

    async def action_quit(self) -> None:
        """q: quit at once when no job runs; while one runs (setup, exec, up…), ask first,
        and on yes end it as Ctrl-C ends it headless (queued seats never start, the steps
        running on the machines are ended) before the console closes."""
        if self.running("quit"):
            return   # stopping the job already; the console closes when it has ended
        busy = self.running(JOB_GROUP)
        if not busy:
            self.exit()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._end_jobs_then_exit(busy), group="quit",
                                description="quitting")
            else:
                self.log_event(LogLine("quit: cancelled; the work goes on"))

        self.push_screen(ConfirmModal(
            f"{busy[0].description} is still running. Quit and stop it?",
            "Queued seats do not start, and the steps running on the machines now are "
            "ended. Nothing done is undone; running it again finishes the rest.",
            yes="Stop and quit", no="Keep working", danger=True), answered)

    async def _end_jobs_then_exit(self, jobs: list[Worker]) -> None:
        self.log_event(LogLine(f"quit: stopping {jobs[0].description}…"))
        for worker in jobs:
            worker.cancel()   # the job's fan-out sees it and ends what runs
        deadline = time.monotonic() + QUIT_WAIT
        while self._jobs_running and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.exit()

    def confirm_then_job(self, modal: ConfirmModal, work: Callable[[Context], str | None], *,
                         what: str) -> None:
        """Ask first; on yes run the job, on no or escape say nothing happened."""
        if self.connected() is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.start_job(work, what=what)
            else:
                self.log_event(LogLine(f"{what}: cancelled; nothing changed"))

        self.push_screen(modal, answered)

    def ask_from_thread(self, modal: ConfirmModal) -> bool:
        """Show ``modal`` from a worker thread and wait for the answer (False if the worker
        is cancelled meanwhile, e.g. because the app is closing)."""
        answer: Future[bool] = Future()
        def answered(yes: bool | None) -> None:
            if not answer.done():
                answer.set_result(bool(yes))

        self.call_from_thread(self.push_screen, modal, answered)
        try:
            worker = get_current_worker()
        except NoActiveWorker:
            worker = None
        while True:
            try:
                return answer.result(timeout=0.2)
            except FutureTimeout:
                if worker is not None and worker.is_cancelled:
                    return False

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
        elif worker.group and worker.group.startswith(SEAT_GROUP):
            for screen in self.screen_stack:
                failed = getattr(screen, "failed", None)
                if failed is not None and getattr(screen, "seat", None) == worker.group[
                        len(SEAT_GROUP):]:
                    failed(message)
        elif worker.group:
            for screen in self.screen_stack:  # a screen that says which loads are its own
                owner = getattr(screen, "worker_failed", None)
                if owner is not None:
                    owner(worker.group, message)

    # -- log pane, views, help ----------------------------------------------------------------

    @property
    def events_pending(self) -> bool:
        """Events wait for the next batch (tests wait for this to be False)."""
        return self._flush_posted

    @on(EventsPending)
    def flush_events(self, _: EventsPending | None = None) -> None:
        """Hand the buffered events to the widgets, at most every FLUSH_EVERY seconds: each
        batch costs one repaint of the table and one write to the log pane, however many
        events it holds."""
        wait = self._last_flush + FLUSH_EVERY - time.monotonic()
        if wait > 0:
            if not self._flush_timer:
                self._flush_timer = True
                self.set_timer(wait, self._flush_later)
            return
        self._last_flush = time.monotonic()
        self.collector.busy()
        with self._events_lock:
            events, self._events = self._events, []
            self._flush_posted = False
        if not events:
            return
        self.main.log_pane.write_events(events, limit=LOG_BATCH)
        for view in self.main.views:  # the machines and the clusters
            apply_view = getattr(view, "apply_events", None)
            if apply_view is not None:
                apply_view(events)
        for screen in self.screen_stack:
            apply = getattr(screen, "apply_events", None)
            if apply is not None:
                apply(events)

    def _flush_later(self) -> None:
        self._flush_timer = False
        self.flush_events()

    def log_event(self, event: Event) -> None:
        self.main.log_pane.write_event(event)

    def show_view(self, view_id: str) -> None:
        """Back to the main screen (closing the help or a seat's screen), on ``view_id``."""
        while self.screen is not self.main and isinstance(self.screen, HelpScreen | SeatScreen
                                                          | ClusterScreen | JobLogScreen):
            self.pop_screen()
        self.main.action_show_view(view_id)

    def machines_action(self, action: str) -> None:
        """Run a machines-view action by name (from the command palette)."""
        self.show_view(MachinesView.VIEW_ID)
        getattr(self.machines, f"action_{action}")()

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen | ConfirmModal):
            return
        self.push_screen(HelpScreen(self.keys(self.screen)))

    def keys(self, screen: Screen | None = None) -> list[tuple[str, str, str]]:
        """Every key of the screen (the main screen by default) and the app with what it
        does: the footer's keys first, then the command palette, then labtui's other keys
        (the screen's before the view's), then the keys of the widgets themselves (cursor
        movement, focus, copy)."""
        footer: list[tuple[str, str, str]] = []
        palette: list[tuple[str, str, str]] = []
        screen_keys: list[tuple[str, str, str]] = []
        view_keys: list[tuple[str, str, str]] = []
        generic: list[tuple[str, str, str]] = []
        seen: set[str] = set()
        screen = screen or self.main
        for key, active in screen.active_bindings.items():
            binding = active.binding
            if not binding.description or key in seen:
                continue
            seen.add(key)
            item = (self.get_key_display(binding), binding.description,
                    binding.tooltip if binding.id else "")
            if binding.action == "command_palette":
                palette.append((item[0], "Command palette: every view and action by name",
                                ""))
            elif binding.show:
                footer.append(item)
            elif binding.id is None:
                generic.append(item)
            elif active.node is screen or active.node is self:
                screen_keys.append(item)
            else:
                view_keys.append(item)
        return footer + palette + screen_keys + view_keys + generic


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
