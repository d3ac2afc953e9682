"""Database (key 8): the course's result store (``[database]``), its spec and a live check.

On top, the spec from the course file: engine and version, instance class, storage, the
database's name, the two users and what each may do (``pipeline`` creates databases, tables
and indexes and runs any DML; ``api`` only reads), utf8mb4 with the binary collation. Below,
what AWS and the server say (``dbops.status``): the instance's state, its endpoint, the
server's collation, and the live check as two lines — the pipeline user wrote a row, the
api user's INSERT was refused — each with when it was checked, or what failed (in the error
style); then every problem the check found.

Loading: ``dbops.status(live=True)`` (the MySQL connections) when the view is first shown
and on r; quietly every ~30 s while it is shown ``live=False`` (the instance only: its state
and endpoint), so the poll never opens a MySQL connection; the app's poll never stacks. The
last live check stays on screen, with its time, until the next one (or until the instance is
gone). Passwords are never read here: the services use them inside the MySQL protocol only.

A course without [database] shows how to add one, and nothing is read from AWS for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from labtui import dbops
from labtui.course import Course
from labtui.events import LogLine
from labtui.screens.base import View, clock
from labtui.screens.messages import DatabaseLoaded
from labtui.terminal import plain

if TYPE_CHECKING:
    from labtui.context import Context
    from labtui.services.database import Check

CHARSET, COLLATION = "utf8mb4", "utf8mb4_bin"  # what services/database.py sets on the server
NONE = "—"
UNKNOWN = "…"
GONE = ("absent", "deleting", "deleted")
NO_DATABASE = ("This course has no result store. To add one, give the course file a [database] "
               "section (engine = \"mysql\" or \"mariadb\", version, instance_class, storage_gb, "
               "name): up then makes an RDS instance in the course's VPC with a pipeline user "
               "(tables, indexes, any DML) and a read-only api user.")


def spec_lines(course: Course) -> list[str]:
    """The course file's [database], as the view's top lines."""
    cfg = course.database
    assert cfg is not None
    return [
        f"{cfg.engine} {cfg.version} · {cfg.instance_class} · {cfg.storage_gb} GB · database "
        f"{cfg.name} · {CHARSET} / {COLLATION} · in {course.regions[0]}",
        f"{cfg.pipeline_user}: creates databases, tables and indexes; any DML (SELECT, INSERT, "
        "UPDATE, DELETE)",
        f"{cfg.api_user}: only reads (SELECT)",
    ]


def _problem_of(check: Check, user: str) -> str | None:
    """The check's problem about ``user`` (``"user: why"``), without the user's name."""
    for problem in check.problems:
        if problem.startswith(f"{user}: "):
            return problem[len(user) + 2:]
    return None


def check_lines(course: Course, check: Check | None, at: float | None,
                state: str | None) -> list[tuple[str, bool]]:
    """The live check as two (line, is_error) pairs: the pipeline user's, the api user's."""
    cfg = course.database
    assert cfg is not None
    pipeline, api = cfg.pipeline_user, cfg.api_user
    if state is None:
        return [(f"{pipeline}: {UNKNOWN}", False), (f"{api}: {UNKNOWN}", False)]
    if check is None or at is None:
        why = (f"the database is {state}" if state != "available"
               else "press r to check it live")
        return [(f"{pipeline}: not checked ({why})", False),
                (f"{api}: not checked ({why})", False)]
    when = f"(checked at {clock(at)})"
    lines: list[tuple[str, bool]] = []
    if check.pipeline_writes is True:
        lines.append((f"{pipeline}: writes {when}", False))
    elif check.pipeline_writes is False:
        why = _problem_of(check, pipeline) or "its row did not read back"
        lines.append((f"{pipeline}: could not write — {why} {when}", True))
    else:
        not_live = next((p for p in check.problems if p.startswith("not checked live")), "")
        lines.append((f"{pipeline}: {not_live or 'not checked'} {when}", bool(not_live)))
    if check.api_refused is True:
        lines.append((f"{api}: read only — its INSERT was refused {when}", False))
    elif check.api_refused is False:
        why = _problem_of(check, api)
        lines.append((f"{api}: its INSERT failed unexpectedly — {why} {when}" if why else
                      f"{api}: COULD WRITE — its INSERT was accepted; it must only read {when}",
                      True))
    else:
        why = _problem_of(check, api)
        if why:
            lines.append((f"{api}: could not check — {why} {when}", True))
        else:
            not_live = next((p for p in check.problems if p.startswith("not checked live")),
                            "")
            lines.append((f"{api}: {not_live or 'not checked'} {when}", bool(not_live)))
    return lines


class DatabaseView(View):
    VIEW_ID = "database"
    TITLE = "Database"
    KEY = "8"
    DESCRIPTION = ("The course's result store: its spec, state, endpoint, and a live check that "
                   "pipeline writes and api only reads")
    NEEDS_AWS = True
    LOAD_ON_CONNECT = False  # loaded when first shown (and on r)
    REFRESH_WHEN_SHOWN: ClassVar[bool] = True
    REFRESH_EVERY: ClassVar[float] = 30.0  # the quiet look (no MySQL connection) this often

    def __init__(self, course: Course) -> None:
        super().__init__(course)
        if course.database is None:
            self.NEEDS_AWS = False  # type: ignore[misc]
            self._status = (self.source(), False)
        self.found: Check | None = None     # the last look (live or quiet)
        self.live: Check | None = None      # the last live check
        self.live_at: float | None = None

    # -- layout --------------------------------------------------------------------------------

    def compose_body(self) -> Iterable[Widget]:
        if self.course.database is None:
            yield Static(NO_DATABASE, id="database-none", classes="empty", markup=False)
            return
        yield VerticalScroll(
            Static("Spec (course file)", classes="database-heading"),
            Static("\n".join(spec_lines(self.course)), id="database-spec",
                   classes="database-block", markup=False),
            Static("On AWS", classes="database-heading"),
            Static(self._state_text(), id="database-state", classes="database-block",
                   markup=False),
            Static("Live check", classes="database-heading"),
            *(Static(line, id=f"database-check-{index}",
                     classes="database-check error" if error else "database-check",
                     markup=False)
              for index, (line, error) in enumerate(self._check_lines())),
            Static(self._problems_text(), id="database-problems", markup=False,
                   classes="database-problems error" if self._problems() else
                   "database-problems"),
            id="database-body", classes="body")

    def focus_main(self) -> None:
        if self.course.database is None:
            super().focus_main()
            return
        self.query_one("#database-body", VerticalScroll).focus()

    # -- loading (thread worker) ----------------------------------------------------------------

    def fetch(self, ctx: Context, quiet: bool = False) -> None:
        """``dbops.status``: live (the two users over MySQL) unless quiet."""
        if self.course.database is None:
            return
        started = time.time()
        found = dbops.status(ctx, self.course, live=not quiet)
        if not quiet:
            verdict = "ok" if found.ok else f"{len(found.problems)} problem(s)"
            ctx.sink.emit(LogLine(f"database: {found.state}, {verdict} "
                                  f"({time.time() - started:.1f} s)",
                                  level="info" if found.ok or found.state != "available"
                                  else "warning"))
        self.deliver(DatabaseLoaded(found, not quiet, started))

    # -- updates on the UI thread ---------------------------------------------------------------

    @on(DatabaseLoaded)
    def show_database(self, message: DatabaseLoaded) -> None:
        found = message.check
        self.found = found
        if message.live:
            self.live, self.live_at = found, message.started
        elif found.state in GONE:
            self.live, self.live_at = None, None  # a check of an instance no longer there
        self._show()
        problems = self._problems()
        self.done(f"{len(problems)} problem{'s' if len(problems) != 1 else ''}."
                  if problems else "")

    def _problems(self) -> list[str]:
        seen: list[str] = []
        for check in (self.live, self.found):
            for problem in check.problems if check is not None else ():
                if problem not in seen:
                    seen.append(problem)
        return seen

    def _problems_text(self) -> str:
        problems = self._problems()
        if not problems:
            return "No problems." if self.live is not None else ""
        return "\n".join(f"problem: {plain(p)}" for p in problems)

    def _state_text(self) -> str:
        found = self.found
        if found is None:
            return f"state {UNKNOWN}"
        if found.state == "absent":
            return ("state absent: no DB instance yet (up makes it: u on the machines view, or "
                    "labtui up)")
        collation = self.live.collation if self.live is not None else None
        lines = [f"state {found.state}",
                 f"endpoint {found.endpoint or NONE}",
                 f"engine {found.engine or NONE} · {found.instance_class or NONE} · "
                 f"{found.storage_gb if found.storage_gb is not None else NONE} GB",
                 f"collation {collation or NONE}"
                 + (f" (not {COLLATION})" if collation and collation != COLLATION else "")]
        return "\n".join(plain(line) for line in lines)

    def _check_lines(self) -> list[tuple[str, bool]]:
        state = self.found.state if self.found is not None else None
        return check_lines(self.course, self.live, self.live_at, state)

    def _show(self) -> None:
        if not self.is_mounted or self.course.database is None:
            return
        self.query_one("#database-state", Static).update(self._state_text())
        for index, (line, error) in enumerate(self._check_lines()):
            widget = self.query_one(f"#database-check-{index}", Static)
            widget.update(plain(line))
            widget.set_class(error, "error")
        problems = self.query_one("#database-problems", Static)
        problems.update(self._problems_text())
        problems.set_class(bool(self._problems()), "error")
