"""Jobs (key 7): the course's batch jobs (``[jobs]``), live, and each job's log.

One row per job of the course's jobs file, keyed by the job's name: its instance type,
state (``installing (attempt 2/3)``…), exit status, runtime, $ so far, and a detail (why it
failed: the last line of its stderr or install log, else its reason). The status line is
``jobops.counts`` (installed k/n, done k/n, failed k) and the $ spent so far. AWS is the
source of truth: ``jobops.status`` (the workers' tags and each job's status.json in S3)
loads the rows in a thread worker when the view is first shown, on r, and quietly every
~10 s while it is shown (the app's poll never stacks); JobChanged events from a run change a
row at once in between, and a job that ends has its row read again (exit, runtime, cost,
stderr). Rows are only ever updated in place.

Keys: ``R`` runs the course's jobs file (``jobops.run``, every job to its end, in a thread
worker owned by the app: the log pane follows it; a job already ended is not run again),
``C`` cancels the marked jobs or the cursor's (``jobops.cancel``), both after the one
``ConfirmModal`` and both refused in a read-only console; ``space`` marks; ``enter`` opens the
job's log (install log, stdout, stderr as S3 holds them) in a modal, escape closes it.

"Job" here is a batch job of the course file; the machines view's background work (up,
exec…) is ``screens/jobs.py``.

A course without [jobs] shows how to add one, and nothing is read from AWS for it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, ClassVar, cast

from rich.markup import escape
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import DataTable, Static
from textual.worker import get_current_worker

from labtui import jobops
from labtui.course import Course
from labtui.events import Event, JobChanged, LogLine, Progress
from labtui.screens.base import SummaryView, clock
from labtui.screens.confirm import ConfirmModal
from labtui.screens.host import Lab
from labtui.screens.jobs import count, names, one_line
from labtui.screens.machines import cursor_key
from labtui.screens.messages import JobLogLoaded, JobsLoaded
from labtui.screens.rowtable import Fit, RowTable, set_cells, show_cells
from labtui.terminal import plain

if TYPE_CHECKING:
    from labtui.context import Context
    from labtui.services.jobs import JobState

RUN_GROUP = "batch:run"        # one run of the jobs file at a time
CANCEL_GROUP = "batch:cancel"  # a cancel may run while the run follows its jobs
LOG_GROUP = "batch:log:"       # a job's log, for its modal
ENDED = ("done", "failed", "cancelled")
NONE = "—"
UNKNOWN = "…"
MARK = "●"
COLUMNS = (("", "mark"), ("Job", "job"), ("Type", "type"), ("State", "state"),
           ("Exit", "exit"), ("Runtime", "runtime"), ("$ so far", "cost"),
           ("Detail", "detail"))
# How the columns give way in a narrow terminal (rowtable.Fit): the job, its state and why
# it failed always show; $ so far goes first, then the runtime, the instance type, the exit.
FITS = {"cost": Fit(1), "runtime": Fit(2), "type": Fit(3), "exit": Fit(4)}
EXIT = re.compile(r"^exit (-?\d+)$")
NO_JOBS = ("This course has no batch jobs. To add some, give the course file a [jobs] section "
           "with file (a CSV with the header instance_type,command; one row per job) and "
           "output (s3://bucket/prefix/ for the results), as sample_course.toml does.")
LOG_TITLES = {"install.log": "Install log", "stdout.txt": "stdout", "stderr.txt": "stderr"}


def runtime_text(seconds: float | None) -> str:
    if seconds is None:
        return NONE
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def detail_of(job: JobState) -> str:
    """What the row says beside the state: for a failed job the last line of its stderr (or
    install log), else its reason; for a live one its worker."""
    if job.state == "failed":
        lines = [line for line in job.tail if line.strip()]
        if lines:
            return one_line(plain(lines[-1]))
    if job.reason:
        return one_line(plain(job.reason))
    if job.state not in ENDED and job.state != "queued" and job.instance_id:
        return job.instance_id
    return ""


def job_cells(job: JobState, cost: float | None) -> dict[str, str]:
    return {"state": job.shown, "exit": NONE if job.exit is None else str(job.exit),
            "runtime": runtime_text(job.runtime),
            "cost": NONE if cost is None else "<0.01" if 0 < cost < 0.005 else f"{cost:.2f}",
            "detail": detail_of(job)}


class JobRow:
    """What the view knows of one job."""

    __slots__ = ("name", "cells", "event_at", "job", "cost")

    def __init__(self, name: str, instance_type: str) -> None:
        self.name = name
        self.cells: dict[str, str] = {key: UNKNOWN for _, key in COLUMNS}
        self.cells.update(mark="", job=name, type=instance_type, detail="")
        self.event_at = 0.0             # when the newest event applied to this row was emitted
        self.job: JobState | None = None  # the last snapshot, with the events since applied
        self.cost: float | None = None


class BatchTable(RowTable):
    """The course's jobs; enter opens the log of the one under the cursor."""

    BINDINGS = [
        Binding("enter", "select_cursor", "Log", id="batch.open",
                tooltip="Open the log of the job under the cursor: its install log, stdout "
                        "and stderr"),
    ]


class BatchView(SummaryView):
    VIEW_ID = "jobs"
    TITLE = "Jobs"
    KEY = "7"
    DESCRIPTION = "The course's batch jobs, live: state, exit, runtime, cost, why one failed"
    NEEDS_AWS = True
    LOAD_ON_CONNECT = False  # loaded when first shown (and on r)
    REFRESH_WHEN_SHOWN: ClassVar[bool] = True
    REFRESH_EVERY: ClassVar[float] = 10.0  # the app's poll loads it at most this often

    BINDINGS = [
        Binding("space", "toggle_mark", "Mark", id="batch.mark",
                tooltip="Mark or unmark the job under the cursor; C cancels the marked jobs"),
        Binding("R", "run_jobs", "Run", id="batch.run",
                tooltip="Run the course's jobs file: every job not yet ended, each to its end "
                        "(after confirming)"),
        Binding("C", "cancel_jobs", "Cancel", id="batch.cancel",
                tooltip="Cancel the marked jobs (or the cursor's): their workers are "
                        "terminated (after confirming)"),
    ]

    def __init__(self, course: Course) -> None:
        super().__init__(course)
        if course.jobs is None:
            self.NEEDS_AWS = False  # type: ignore[misc]
            self._status = (self.source(), False)
        entries = course.jobs.entries if course.jobs is not None else ()
        self.rows_by_name: dict[str, JobRow] = {
            e.name: JobRow(e.name, e.instance_type) for e in entries}
        self.marked: set[str] = set()
        self.loaded = False
        self._reload_wanted = False
        self.run_active = False           # a run started here follows its jobs
        self.progress: tuple[int, int] | None = None  # its jobs ended, of all

    @property
    def lab(self) -> Lab:
        return cast("Lab", self.app)

    # -- layout --------------------------------------------------------------------------------

    def compose_body(self) -> Iterable[Widget]:
        if self.course.jobs is None:
            yield Static(NO_JOBS, id="jobs-none", classes="empty", markup=False)
            return
        jobs = self.course.jobs
        yield Static(f"{jobs.name}: {count(list(self.rows_by_name), 'job')} from "
                     f"{jobs.file.name} · {jobs.market} in {self.course.regions[0]} · at most "
                     f"{jobs.max_parallel} at once · results to {jobs.output}",
                     id="jobs-overview", classes="note", markup=False)
        rows = BatchTable(id="jobs-table", cursor_type="row", zebra_stripes=True)
        for label, key in COLUMNS:
            rows.add_column(label, key=key, width=1 if key == "mark" else None,
                            fit=FITS.get(key))
        for row in self.rows_by_name.values():
            rows.add_row(*(escape(value) for value in row.cells.values()), key=row.name)
        yield rows

    @property
    def table(self) -> BatchTable:
        return self.query_one("#jobs-table", BatchTable)

    # -- loading (thread worker) ----------------------------------------------------------------

    def fetch(self, ctx: Context, quiet: bool = False) -> None:
        if self.course.jobs is None:
            return
        started = time.time()
        found = jobops.status(ctx, self.course)
        costs = jobops.cost_so_far(ctx, self.course, found)
        if not quiet:
            ctx.sink.emit(LogLine(f"jobs: {jobops.counts(found)} "
                                  f"({time.time() - started:.1f} s)"))
        self.deliver(JobsLoaded(found, costs, started))

    # -- updates on the UI thread ---------------------------------------------------------------

    @on(JobsLoaded)
    def show_jobs(self, message: JobsLoaded) -> None:
        changes: dict[str, dict[str, str]] = {}
        for job in message.jobs:
            row = self.rows_by_name.get(job.name)
            if row is None or row.event_at > message.started:
                continue  # not of this file, or an event newer than this snapshot knows better
            row.job, row.cost = job, message.costs.get(job.name)
            changes[row.name] = set_cells(row.cells, job_cells(job, row.cost))
        self.loaded = True
        self.loaded_at = time.time()
        self._show(changes)
        self.show_status()

    def apply_events(self, events: Iterable[Event]) -> None:
        """JobChanged events, in order: the job's state (and exit, detail) change at once; a
        job that ended is read again soon (its runtime, cost and stderr)."""
        changes: dict[str, dict[str, str]] = {}
        ended = False
        progressed = False
        for event in events:
            if isinstance(event, Progress) and event.task == "jobs":
                self.progress, progressed = (event.done, event.total), True
                continue
            if not isinstance(event, JobChanged) or event.state == "fetched":
                continue
            row = self.rows_by_name.get(event.job)
            if row is None:
                continue
            row.event_at = event.at
            state = event.state.split(" ", 1)[0]
            cells = {"state": event.state}
            found = EXIT.match(event.detail)
            if found:
                cells["exit"] = found.group(1)
            elif event.detail or state == "queued":
                cells["detail"] = one_line(plain(event.detail))
            if row.job is not None:  # what the status line counts until the next snapshot
                row.job = replace(row.job, state=state,
                                  exit=int(found.group(1)) if found else row.job.exit)
            if state in ENDED:
                ended = True
            changes.setdefault(row.name, {}).update(set_cells(row.cells, cells))
        if changes:
            self._show(changes)
        if changes or progressed:
            self.show_status()
        if ended:
            self.reload_soon()

    def reload_soon(self) -> None:
        if self._reload_wanted or not self.is_mounted:
            return
        self._reload_wanted = True

        def reload() -> None:
            self._reload_wanted = False
            self.lab.load_view(self, quiet=True)
        self.set_timer(0.5, reload)

    def _show(self, changes: dict[str, dict[str, str]]) -> None:
        if self.is_mounted and self.course.jobs is not None:
            show_cells(self.table, changes)

    # -- the status line ------------------------------------------------------------------------

    def summary(self) -> str:
        if not self.loaded:
            return "Loading…"
        jobs = [row.job for row in self.rows_by_name.values() if row.job is not None]
        spent = sum(row.cost or 0.0 for row in self.rows_by_name.values())
        parts = [jobops.counts(jobs), f"${spent:.2f} so far"]
        if self.run_active:
            parts.append("running" if self.progress is None
                         else f"running: {self.progress[0]}/{self.progress[1]} ended")
        if self.marked:
            parts.append(f"{len(self.marked)} marked")
        if self.loaded_at:
            parts.append(f"updated {clock(self.loaded_at)}")
        return " · ".join(parts)

    def _busy(self, group: str) -> bool:
        return bool(self.lab.running(group))

    # -- marks, the cursor ------------------------------------------------------------------

    def cursor_job(self) -> str | None:
        if self.course.jobs is None:
            return None
        return cursor_key(self.table)

    def targets(self) -> list[str]:
        """The marked jobs in file order, or the cursor's job when none is marked."""
        if self.marked:
            return [name for name in self.rows_by_name if name in self.marked]
        name = self.cursor_job()
        return [name] if name else []

    def action_toggle_mark(self) -> None:
        name = self.cursor_job()
        if name is None:
            return
        on_ = name not in self.marked
        if on_:
            self.marked.add(name)
        else:
            self.marked.discard(name)
        row = self.rows_by_name[name]
        self._show({name: set_cells(row.cells, {"mark": MARK if on_ else ""})})
        self.show_status()

    @on(DataTable.RowSelected, "#jobs-table")
    def row_selected(self, event: DataTable.RowSelected) -> None:
        self.open_log(str(event.row_key.value))

    def open_log(self, name: str) -> None:
        if self.lab.connected() is None:
            return
        self.app.push_screen(JobLogScreen(self.course, name))

    # -- run, cancel ----------------------------------------------------------------------------

    def _no_jobs(self) -> bool:
        if self.course.jobs is None:
            self.lab.notify(NO_JOBS, severity="warning", markup=False)
            return True
        return False

    def action_run_jobs(self) -> None:
        if self._no_jobs() or self.lab.refused("running the jobs (jobs run)"):
            return
        if self.lab.connected() is None:
            return
        if self._busy(RUN_GROUP):
            self.lab.notify("The jobs are running already; the view follows them (C cancels "
                            "some).", severity="warning", markup=False)
            return
        jobs = self.course.jobs
        assert jobs is not None
        rows = list(self.rows_by_name.values())
        types: dict[str, int] = {}
        for row in rows:
            types[row.cells["type"]] = types.get(row.cells["type"], 0) + 1
        ended = [row.name for row in rows
                 if row.job is not None and row.job.state in ENDED]
        body = (f"{jobs.file.name}: " + ", ".join(f"{n} × {t}" for t, n in types.items())
                + f"\n{jobs.market} in {self.course.regions[0]}, at most {jobs.max_parallel} "
                f"worker(s) at once (and within max_instances {self.course.max_instances})"
                f"\nresults to {jobs.output}\nEach worker terminates itself when its job "
                "ends; the log pane and this view follow every job.")
        if ended:
            body += (f"\n{count(ended, 'job')} ended already ({names(ended)}) and will not "
                     "run again.")
        question = f"Run the {count([row.name for row in rows], 'job')} of {jobs.name}?"
        self.app.push_screen(ConfirmModal(question, body, yes="Run"),
                             partial(self._answered_run, [row.name for row in rows]))

    def _answered_run(self, chosen: list[str], yes: bool | None) -> None:
        if not yes:
            self.lab.log_event(LogLine("jobs run: cancelled; nothing launched"))
            return
        course = self.course

        def work(ctx: Context) -> str:
            worker = get_current_worker()
            try:
                result = jobops.run(ctx, course, should_stop=lambda: worker.is_cancelled)
                self.fetch(ctx, quiet=True)
            finally:
                if not worker.is_cancelled:  # (cancelled: the app is closing)
                    self.app.call_from_thread(self.run_ended)
            text = f"Jobs {course.jobs.name if course.jobs else ''}: {jobops.counts(result.jobs)}."
            if result.errors:
                text += " Could not start: " + "; ".join(
                    f"{label} ({one_line(why, 80)})" for label, why in result.errors.items())
            return text
        if self.lab.start_job(work, what=f"jobs run ({count(chosen, 'job')})",
                              group=RUN_GROUP, refresh=False) is not None:
            self.run_active, self.progress = True, None
            self.show_status()

    def run_ended(self) -> None:
        self.run_active, self.progress = False, None
        self.show_status()

    def action_cancel_jobs(self) -> None:
        if self._no_jobs() or self.lab.refused("cancelling jobs (jobs cancel)"):
            return
        if self.lab.connected() is None:
            return
        chosen = self.targets()
        if not chosen:
            self.lab.notify("No job selected: move the cursor to a job or mark some with "
                            "space.", severity="warning")
            return
        body = "\n".join(f"{name}: {self.rows_by_name[name].cells['state']}"
                         for name in chosen[:12])
        if len(chosen) > 12:
            body += f"\n… and {len(chosen) - 12} more"
        body += ("\nTheir workers are terminated; a job not ended is marked cancelled (a "
                 "later run does not run it again).")
        self.app.push_screen(
            ConfirmModal(f"Cancel {count(chosen, 'job')}?", body, yes="Cancel the jobs",
                         no="Keep them", danger=True),
            partial(self._answered_cancel, chosen))

    def _answered_cancel(self, chosen: list[str], yes: bool | None) -> None:
        if not yes:
            self.lab.log_event(LogLine("jobs cancel: cancelled; nothing changed"))
            return
        course = self.course

        def work(ctx: Context) -> str:
            cancelled = jobops.cancel(ctx, course, chosen)
            self.fetch(ctx, quiet=True)
            if not cancelled:
                return f"Nothing to cancel: {names(chosen)} had ended already."
            return f"Cancelled {count(cancelled, 'job')}: {names(cancelled)}."
        if self.lab.start_job(work, what=f"jobs cancel ({count(chosen, 'job')})",
                              group=CANCEL_GROUP, refresh=False) is not None:
            for name in list(self.marked):
                self.marked.discard(name)
                self._show({name: set_cells(self.rows_by_name[name].cells, {"mark": ""})})
            self.show_status()


class JobLogScreen(ModalScreen[None]):
    """One job's install log, stdout and stderr as S3 holds them; escape closes, r reloads."""

    BINDINGS = [
        Binding("escape", "dismiss", "Close", id="joblog.close"),
        Binding("r", "reload", "Reload", id="joblog.reload",
                tooltip="Read the job's log files from S3 again"),
    ]

    def __init__(self, course: Course, name: str) -> None:
        super().__init__(id="joblog")
        self.course = course
        self.job = name

    @property
    def lab(self) -> Lab:
        return cast("Lab", self.app)

    def compose(self) -> ComposeResult:
        with Vertical(id="joblog-box"):
            yield Static(f"Job {self.job}", classes="view-title", markup=False)
            yield Static("Loading…", id="joblog-status", classes="status", markup=False)
            with VerticalScroll(id="joblog-files"):
                for file, title in LOG_TITLES.items():
                    yield Static(title, classes="joblog-title", markup=False)
                    yield Static(UNKNOWN, id=f"joblog-{file.split('.')[0]}",
                                 classes="joblog-text", markup=False)
            yield Static("escape closes · r reads the files again", classes="note")

    def on_mount(self) -> None:
        self.query_one("#joblog-files", VerticalScroll).focus()
        self.action_reload()

    def action_reload(self) -> None:
        ctx = self.lab.connected()
        if ctx is None:
            return
        self.lab.run_worker(partial(self.fetch, ctx), name=f"{LOG_GROUP}{self.job}",
                            group=f"{LOG_GROUP}{self.job}", thread=True, exclusive=True,
                            exit_on_error=False,
                            description=f"reading the log of job {self.job}")

    def fetch(self, ctx: Context) -> None:
        logs = jobops.job_log(ctx, self.course, self.job)
        if not get_current_worker().is_cancelled:
            self.post_message(JobLogLoaded(self.job, logs))

    @on(JobLogLoaded)
    def show_log(self, message: JobLogLoaded) -> None:
        if message.job != self.job:
            return
        for file in LOG_TITLES:
            text = message.logs.get(file)
            shown: Text | str
            if text is None:
                shown = Text("(not written yet: the worker uploads it when the job ends)",
                             style="dim")
            elif not text.strip():
                shown = Text("(empty)", style="dim")
            else:
                shown = plain(text.rstrip("\n"))
            self.query_one(f"#joblog-{file.split('.')[0]}", Static).update(shown)
        self.query_one("#joblog-status", Static).update(
            f"From {self.folder()} · read {clock(time.time())}")

    def folder(self) -> str:
        output = self.course.jobs.output if self.course.jobs else "S3"
        return f"{output.rstrip('/')}/{self.job}/"

    def worker_failed(self, group: str, message: str) -> None:
        if group == f"{LOG_GROUP}{self.job}":
            status = self.query_one("#joblog-status", Static)
            status.update(f"Could not read the log: {message}")
            status.add_class("error")
