"""The console's Jobs view (key 7), driven by key presses (Pilot) on the sandbox's real
machines: every job of the course's jobs file as a row, R (confirmed) runs them and the rows
follow each job to its end (state, exit, cost, why one failed), enter opens a job's log, C
(confirmed) cancels; a read-only console refuses R and C; a course without [jobs] says how
to add one. The class is tests/test_jobs.py's (``jobs_course``): one good job, one failing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from labtui.course import load
from labtui.screens.batch import RUN_GROUP, BatchView, JobLogScreen
from labtui.screens.confirm import ConfirmModal
from labtui.screens.help import HelpScreen
from labtui.screens.main import MainScreen
from labtui.services import jobs as service
from labtui.state import StateDir

from .courses import write_course
from .test_jobs import jobs_course
from .test_lifecycle import eventually
from .test_tui import SIZE, active, log_text, make_app, press, screen_text, settle
from .test_tui_machines import record_notes, wait_until

JOBS = ("run1-1", "run1-2")
ROWS = "t3.small,python3 run.py --seed 1\nt3.micro,python3 run.py fail\n"


def jobs_table(app) -> DataTable:
    return app.main.query_one("#jobs-table", DataTable)


def cell(app, job: str, column: str) -> str:
    return str(jobs_table(app).get_cell(job, column))


def jobs_view(app) -> BatchView:
    view = app.main.view(BatchView.VIEW_ID)
    assert isinstance(view, BatchView)
    return view


@pytest.mark.timeout(180)
async def test_jobs_run_live_and_a_failed_jobs_stderr(ctx, sandbox_state: StateDir,
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    course = load(jobs_course(tmp_path, ROWS))
    app = make_app(course, sandbox_state, refresh_every=None)
    notes = record_notes(app, monkeypatch)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot, app)
        # 7: every job of the file, queued (nothing has run), read from AWS when shown.
        await press(pilot, app, "7")
        assert active(app) == "jobs"
        assert [str(k.value) for k in jobs_table(app).rows] == list(JOBS)
        assert [cell(app, j, "state") for j in JOBS] == ["queued", "queued"]
        assert [cell(app, j, "type") for j in JOBS] == ["t3.small", "t3.micro"]
        shown = screen_text(app)
        assert "7 Jobs" in shown.splitlines()[1]
        assert "run1-1" in shown and "queued" in shown
        assert "installed 0/2, done 0/2, failed 0 · $0.00 so far" in jobs_view(app).status_text
        assert "installed 0/2, done 0/2, failed 0" in shown

        # R asks first, naming the count; y runs every job to its end.
        await pilot.press("R")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the run modal")
        modal = screen_text(app)
        assert "Run the 2 jobs of run1?" in modal
        assert "1 × t3.small, 1 × t3.micro" in modal
        await pilot.press("y")
        await wait_until(pilot, lambda: app.running(RUN_GROUP), "the run to start")
        # live: the rows move (JobChanged events) while the run still follows the jobs
        await wait_until(pilot, lambda: cell(app, "run1-1", "state") != "queued"
                         and app.running(RUN_GROUP), "a job's row to move", timeout=60)
        seen = {cell(app, "run1-1", "state")}
        lines = {jobs_view(app).status_text}
        deadline = time.monotonic() + 120
        while app.running(RUN_GROUP) and time.monotonic() < deadline:
            seen.update(cell(app, j, "state") for j in JOBS)
            lines.add(jobs_view(app).status_text)
            await pilot.pause(0.05)
        await settle(pilot, app)
        assert not app.running(RUN_GROUP), "the run did not end in 120 s"
        assert seen - {"queued", "done", "failed"}, seen  # states in between were shown
        assert (cell(app, "run1-1", "state"), cell(app, "run1-1", "exit")) == ("done", "0")
        assert (cell(app, "run1-2", "state"), cell(app, "run1-2", "exit")) == ("failed", "1")
        assert cell(app, "run1-2", "detail") == "ValueError: seed must be positive"
        assert cell(app, "run1-1", "runtime").endswith("s")
        assert cell(app, "run1-1", "cost") != "—"
        status = jobs_view(app).status_text
        assert status.startswith("installed 2/2, done 1/2, failed 1 · $"), status
        assert " so far" in status and "running" not in status
        assert any(" · running" in line for line in lines), lines
        assert "installed 2/2, done 1/2, failed 1" in screen_text(app)
        assert any("Jobs run1: installed 2/2, done 1/2, failed 1." in n for n, _ in notes)
        assert "job run1-2: failed" in log_text(app)

        # enter on the failed job: its install log, stdout and stderr; escape closes.
        await press(pilot, app, "down")
        assert jobs_table(app).cursor_row == 1
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, JobLogScreen), "the log modal")
        await settle(pilot, app)
        stderr = str(app.screen.query_one("#joblog-stderr", Static).render())
        assert stderr == "ValueError: seed must be positive"
        shown = screen_text(app)
        assert "Job run1-2" in shown and "ValueError: seed must be positive" in shown
        assert "about to fail" in shown  # its stdout
        assert "install attempt 2" in shown  # its install log
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)

        # C on an ended job, confirmed: nothing left to cancel, and the view says so.
        await pilot.press("C")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), "cancel modal")
        assert "Cancel 1 job?" in screen_text(app)
        await pilot.press("y")
        await settle(pilot, app)
        assert any("Nothing to cancel: run1-2 had ended already." in n for n, _ in notes)
        assert cell(app, "run1-2", "state") == "failed"

    # every worker ended itself
    left = eventually(lambda: [w for w in service.workers(ctx.aws, course, "us-east-1")
                               if w.state not in ("terminated", "shutting-down")],
                      lambda v: not v, timeout=60)
    assert left == []


async def test_read_only_refuses_run_and_cancel(sandbox_state: StateDir, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    course = load(jobs_course(tmp_path, ROWS))
    app = make_app(course, sandbox_state, refresh_every=None, read_only=True)
    notes = record_notes(app, monkeypatch)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot, app)
        await press(pilot, app, "7")
        assert [cell(app, j, "state") for j in JOBS] == ["queued", "queued"]
        # r reads the jobs from AWS again (a read-only console may)
        loads = log_text(app).count("jobs: installed 0/2, done 0/2, failed 0")
        await press(pilot, app, "r")
        assert log_text(app).count("jobs: installed 0/2, done 0/2, failed 0") == loads + 1
        # the app's poll reads the shown jobs view again only every ~10 s
        app.poll_shown()
        assert not app.running("load:jobs")
        jobs_view(app).loaded_at -= BatchView.REFRESH_EVERY
        app.poll_shown()
        assert app.running("load:jobs")
        await settle(pilot, app)
        for key, what in (("R", "Running the jobs"), ("C", "Cancelling jobs")):
            await press(pilot, app, key)
            assert isinstance(app.screen, MainScreen), key
            assert any(n.startswith(f"{what} (jobs ") and "refused" in n
                       for n, _ in notes), notes
        assert not app.running(RUN_GROUP)
        # the help lists the view's keys, the palette its actions
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        keys = app.screen.query_one("#help-keys", DataTable)
        listed = {str(keys.get_row_at(i)[0]): str(keys.get_row_at(i)[1])
                  for i in range(keys.row_count)}
        assert listed["7"] == "Jobs"
        assert listed["R"] == "Run" and listed["C"] == "Cancel"
        assert listed["space"] == "Mark" and listed["⏎"] == "Log"
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.press(*"jobs")
        await pilot.pause(0.3)
        shown = screen_text(app)
        assert "Show jobs" in shown and "Jobs: run" in shown and "Jobs: cancel" in shown
        await pilot.press("escape")


async def test_a_course_without_jobs_says_how_to_add_them(sandbox_state: StateDir,
                                                          tmp_path: Path) -> None:
    course = load(write_course(tmp_path, "nojobs", students=1))
    assert course.jobs is None
    app = make_app(course, sandbox_state, refresh_every=None)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await press(pilot, app, "7")
        assert active(app) == "jobs"
        assert not app.main.query("#jobs-table")
        shown = " ".join(screen_text(app).split())
        assert "This course has no batch jobs. To add some, give the course file a [jobs] " \
               "section" in shown
        await press(pilot, app, "R")
        assert isinstance(app.screen, MainScreen)
