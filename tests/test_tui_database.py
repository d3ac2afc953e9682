"""The console's Database view (key 8), driven by key presses (Pilot) on the sandbox, whose
DB instances are real MariaDB servers: the course's [database] spec, the instance's state and
endpoint, the server's collation and the live check (pipeline writes, api's INSERT refused),
checked live when first shown and on r and quietly (no MySQL connection) by the poll; a
grant changed by hand shows as a problem in the error style; no password is ever on screen;
a course without [database] says how to add one. The class is tests/test_database.py's."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual.widgets import Static

from labtui import dbops, lifecycle
from labtui.course import load
from labtui.screens import database as screen
from labtui.screens.database import DatabaseView
from labtui.services import database
from labtui.state import StateDir

from .courses import write_course
from .test_database import db_course
from .test_tui import SIZE, active, log_text, make_app, press, screen_text, settle


def db_view(app) -> DatabaseView:
    view = app.main.view(DatabaseView.VIEW_ID)
    assert isinstance(view, DatabaseView)
    return view


def check_line(app, index: int) -> Static:
    return app.main.query_one(f"#database-check-{index}", Static)


def spy_on_status(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """The ``live`` of every dbops.status call the view makes (the real one answers)."""
    calls: list[bool] = []
    real = dbops.status

    def status(ctx, course, live=True):
        calls.append(live)
        return real(ctx, course, live=live)
    monkeypatch.setattr(screen.dbops, "status", status)
    return calls


@pytest.mark.timeout(300)
async def test_the_database_view_checks_the_store_live(ctx, sandbox_state: StateDir,
                                                       tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from labtui.sandbox.rds import mariadb_problem
    if mariadb_problem():
        pytest.skip(mariadb_problem())
    course = load(db_course(tmp_path))
    lifecycle.up(ctx, course, setup_wait=60)
    state = ctx.state.course(course.id)
    secrets = [database.password(state, user)
               for user in ("pipeline", "api", database.MASTER)]
    calls = spy_on_status(monkeypatch)
    app = make_app(course, sandbox_state, refresh_every=None)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert calls == []  # loaded when first shown, not on connect

        # 8: the spec, the instance, and the live check of both users.
        await press(pilot, app, "8")
        assert active(app) == "database"
        assert calls == [True]
        shown = screen_text(app)
        assert "8 Database" in shown.splitlines()[1]
        assert "mariadb 10.11 · db.t3.micro · 20 GB · database results · utf8mb4 / " \
               "utf8mb4_bin" in shown
        assert "pipeline: creates databases, tables and indexes; any DML" in shown
        assert "api: only reads (SELECT)" in shown
        assert "state available" in shown
        endpoint = next(line for line in shown.splitlines() if "endpoint " in line)
        assert "endpoint 127.0.0.1:" in endpoint, endpoint
        assert "collation utf8mb4_bin" in shown
        assert "pipeline: writes (checked at " in shown
        assert "api: read only — its INSERT was refused (checked at " in shown
        assert "No problems." in shown
        assert not check_line(app, 0).has_class("error")
        assert not check_line(app, 1).has_class("error")
        assert db_view(app).status_text.startswith("Updated ")
        assert "database: available, ok" in log_text(app)
        for secret in secrets:
            assert secret not in shown and secret not in log_text(app)

        # the quiet poll (every ~30 s while shown): the instance only, no MySQL connection;
        # the last live check stays with its time.
        checked = str(check_line(app, 0).render())
        db_view(app).loaded_at = time.time() - 31
        app.refresh_every = 5.0
        app.poll_shown()
        await settle(pilot, app)
        assert calls == [True, False]
        assert str(check_line(app, 0).render()) == checked
        assert "state available" in screen_text(app)
        app.poll_shown()  # loaded just now: not again
        await settle(pilot, app)
        assert calls == [True, False]

        # a grant changed by hand: r checks live again and shows what failed, in red.
        host, port = database.endpoint(database.describe(ctx.aws, course.id, "us-east-1"))
        conn = database.connect(host, port, database.MASTER,
                                database.password(state, database.MASTER))
        with conn.cursor() as cur:
            cur.execute("GRANT INSERT ON *.* TO 'api'@'%'")
        conn.close()
        await press(pilot, app, "r")
        assert calls == [True, False, True]
        shown = screen_text(app)
        assert "api: COULD WRITE — its INSERT was accepted; it must only read" in shown
        assert "problem: api could write: it must only read" in shown
        assert check_line(app, 1).has_class("error")
        assert not check_line(app, 0).has_class("error")
        assert app.main.query_one("#database-problems", Static).has_class("error")
        assert db_view(app).status_text.endswith("1 problem.")
        for secret in secrets:
            assert secret not in screen_text(app) and secret not in log_text(app)


async def test_a_course_without_a_database_says_how_to_add_one(
        sandbox_state: StateDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    course = load(write_course(tmp_path, "nodb", students=1))
    assert course.database is None
    calls = spy_on_status(monkeypatch)
    app = make_app(course, sandbox_state, refresh_every=None)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot, app)
        await press(pilot, app, "8")
        assert active(app) == "database"
        assert not app.main.query("#database-state")
        shown = " ".join(screen_text(app).split())
        assert "This course has no result store. To add one, give the course file a " \
               "[database] section" in shown
        await press(pilot, app, "r")  # nothing to load from AWS
        assert calls == []
