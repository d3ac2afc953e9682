"""Roster: every student of the course file, live, with what their seat has on AWS.

One row per student (keyed by student id): id, name, email, group and seat from the course
file, then what AWS and labtui's state folder hold for the seat — the machine's state, the
seat's cluster, whether its AWS identity has keys here, and its handout card (when it was
mailed, "changed since sent" when the card differs from the one mailed, or —). A column the
course gives no meaning (no [machines], no [clusters], no [access]) says so in its cells
rather than showing a value. ``accessops.roster`` loads the rows in a thread worker when the
console connects, on r, and quietly every few seconds while the view is shown; rows are only
ever updated in place by key. The status line counts students, seats, seats with keys and
handouts sent, and names what AWS still holds for seats the roster no longer has (reported,
never deleted here: ``labtui down`` removes it with the course).

Keys: ``/`` filters by words (id, name, email, group, seat, machine state…; escape clears);
``h`` writes every seat's handout card to files, ``m`` mails each seat's students their card
(after confirming), ``k`` gives the cursor's seat new AWS keys (after confirming). All three
are refused in a read-only console. The headless ``labtui roster`` / ``handout`` / ``mail`` /
``rotate`` do the same work (labtui/accessops.py, labtui/services/handout.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, cast

from rich.markup import escape
from textual import on
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input

from labtui import accessops, policy
from labtui.course import Course
from labtui.errors import InputError
from labtui.events import LogLine
from labtui.screens import base
from labtui.screens.base import SummaryView
from labtui.screens.confirm import ConfirmModal
from labtui.screens.host import Lab
from labtui.screens.jobs import count, names
from labtui.screens.machines import FilterInput, cursor_key, show_only
from labtui.screens.rowtable import Fit, RowTable, show_cells
from labtui.services import access

if TYPE_CHECKING:
    from labtui.accessops import Roster, RosterRow
    from labtui.context import Context

COLUMNS = (("ID", "id"), ("Name", "name"), ("Email", "email"), ("Group", "group"),
           ("Seat", "seat"), ("Machine", "machine"), ("Cluster", "cluster"), ("Keys", "keys"),
           ("Handout", "handout"))
# How the columns give way in a narrow terminal (rowtable.Fit): the student's id, seat,
# machine and cluster always show; the email goes first, then the keys, the group, the
# handout, the name.
FITS = {"email": Fit(1), "keys": Fit(2), "group": Fit(3), "handout": Fit(4), "name": Fit(5)}
UNKNOWN = "…"
NONE = "—"
CHANGED = "changed since sent"
HANDOUT_FILES = "cards.csv, cards.md, cards.html"


@dataclass
class RosterLoaded(Message):
    """The roster as AWS and the state folder have it (``accessops.roster``)."""

    roster: Roster
    started: float


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def seat_of(course: Course) -> dict[str, str]:
    """Student id -> seat id."""
    return {student.id: seat.id for seat in course.seats for student in seat.students}


def meaningless(course: Course) -> dict[str, str]:
    """The columns the course gives no meaning, and what their cells say instead."""
    out = {}
    if course.machines is None:
        out["machine"] = out["handout"] = "no [machines]"
    if course.clusters is None:
        out["cluster"] = "no [clusters]"
    if not access.enabled(course):
        out["keys"] = "no [access]"
    return out


def handout_text(value: str) -> str:
    """"sent <ISO time>" as the console shows times (local, to the minute); "changed since
    sent" as it is; "-" (never mailed) as —."""
    if value in ("-", ""):
        return NONE
    if value.startswith("sent "):
        try:
            at = datetime.fromisoformat(value.removeprefix("sent "))
        except ValueError:
            return value
        return f"sent {at.astimezone().strftime('%Y-%m-%d %H:%M')}"
    return value


def loaded_cells(row: RosterRow, fixed: dict[str, str]) -> dict[str, str]:
    """The AWS-derived cells of one student's row."""
    cells = {"machine": "absent" if row.machine == "-" else row.machine,
             "cluster": "absent" if row.cluster == "-" else row.cluster,
             "keys": "yes" if row.credentials else "no",
             "handout": handout_text(row.handout)}
    cells.update(fixed)
    return cells


class StudentRow:
    """What the view knows about one student (visible in the table or filtered out)."""

    __slots__ = ("student", "cells", "haystack", "shown")

    def __init__(self, student: str, cells: dict[str, str]) -> None:
        self.student = student
        self.cells = cells
        self.haystack = ""
        self.shown: list[str] = []
        self.reindex()

    def reindex(self) -> None:
        self.haystack = " ".join(self.cells.values()).lower()
        self.shown = [escape(value) for value in self.cells.values()]

    def matches(self, words: Sequence[str]) -> bool:
        return all(word in self.haystack for word in words)


class RosterTable(RowTable):
    """The roster: one row per student, keyed by student id."""


class RosterView(SummaryView):
    VIEW_ID = "roster"
    TITLE = "Roster"
    KEY = "2"
    DESCRIPTION = "Every student of the course file and their seat"
    NEEDS_AWS = True
    # Loaded again quietly at the app's poll while shown (the app reads this).
    REFRESH_WHEN_SHOWN: ClassVar[bool] = True

    BINDINGS = [
        Binding("slash", "filter", "Filter", id="roster.filter", key_display="/",
                tooltip="Show only the students matching words (id, name, email, group, "
                        "seat, machine state…); escape clears"),
        Binding("h", "handout", "Handouts", id="roster.handout",
                tooltip="Write every seat's handout card (machine, login, cluster, AWS "
                        "identity) to files, 0600, in the course's state folder"),
        Binding("m", "mail", "Mail cards", id="roster.mail",
                tooltip="Mail each seat's students their own card (after confirming)"),
        Binding("k", "rotate", "Rotate keys", id="roster.rotate",
                tooltip="Give the cursor's seat new AWS keys, installed on its machine, "
                        "and delete the old ones (after confirming)"),
        Binding("escape", "clear", "Clear filter", id="roster.clear", show=False,
                tooltip="Clear the filter"),
    ]

    def __init__(self, course: Course) -> None:
        super().__init__(course)
        seats = seat_of(course)
        self.fixed = meaningless(course)
        self.order = {student.id: index for index, student in enumerate(course.students)}
        self.students: dict[str, StudentRow] = {}
        for student in course.students:
            cells = {"id": student.id, "name": student.name, "email": student.email,
                     "group": student.group or NONE, "seat": seats.get(student.id, NONE),
                     "machine": UNKNOWN, "cluster": UNKNOWN, "keys": UNKNOWN,
                     "handout": UNKNOWN}
            cells.update(self.fixed)
            self.students[student.id] = StudentRow(student.id, cells)
        self.removed: list[str] = []
        self.snapshot_at = 0.0  # when the load shown last began
        self.filter_words: tuple[str, ...] = ()
        self.loaded = False
        self._status = (self.summary(), False)

    # -- layout --------------------------------------------------------------------------------

    def compose_body(self) -> Iterable[Widget]:
        search = FilterInput(placeholder="filter: words matching id, name, email, group, "
                                         "seat, machine… — enter keeps it, escape clears",
                             id="roster-filter", on_change=self._apply_filter)
        search.display = False
        yield search
        rows = RosterTable(id="roster-table", cursor_type="row", zebra_stripes=True)
        for label, key in COLUMNS:
            rows.add_column(label, key=key, fit=FITS.get(key))
        for row in self.students.values():
            rows.add_row(*row.shown, key=row.student)
        yield rows

    @property
    def table(self) -> RosterTable:
        return self.query_one("#roster-table", RosterTable)

    @property
    def lab(self) -> Lab:
        return cast("Lab", self.app)

    # -- loading (thread worker) ----------------------------------------------------------------

    def fetch(self, ctx: Context, quiet: bool = False) -> None:
        started = time.time()
        found = accessops.roster(ctx, self.course)
        if not quiet:
            ctx.sink.emit(LogLine(f"roster: {len(found.rows)} student(s) in "
                                  f"{len({r.seat for r in found.rows})} seat(s) "
                                  f"({time.time() - started:.1f} s)"))
        self.deliver(RosterLoaded(found, started))

    def show_loading(self) -> None:
        if not self.loaded:
            self.set_status(self.summary())

    def waiting(self, where: str) -> None:
        self.set_status(self.summary(f"connecting to {where}…"))

    # -- updates on the UI thread ---------------------------------------------------------------

    @on(RosterLoaded)
    def show_roster(self, message: RosterLoaded) -> None:
        if message.started < self.snapshot_at:
            return  # a job's load and the poll's crossed: the newer one is already shown
        self.snapshot_at = message.started
        changed: list[StudentRow] = []
        updates: dict[str, dict[str, str]] = {}
        for found in message.roster.rows:
            row = self.students.get(found.student)
            if row is None:
                continue
            cells = {column: value for column, value in loaded_cells(found, self.fixed).items()
                     if row.cells[column] != value}
            if cells:
                row.cells.update(cells)
                row.reindex()
                changed.append(row)
                updates[row.student] = cells
        self.removed = list(message.roster.removed)
        self.loaded = True
        self.loaded_at = time.time()
        self._show(updates)
        if self.filter_words and changed:
            self._sync_rows()
        self.show_status()

    def _show(self, updates: dict[str, dict[str, str]]) -> None:
        """The changed cells to the table (the rows it shows), each changed row drawn once."""
        if updates and self.is_mounted:
            show_cells(self.table, updates)

    def _sync_rows(self) -> None:
        if not self.is_mounted:
            return
        words = self.filter_words
        show_only(self.table, [key for key, row in self.students.items() if row.matches(words)],
                  lambda key: self.students[key].shown, "id", self.order)

    # -- the status line ------------------------------------------------------------------------

    def summary(self, pending: str | None = None) -> str:
        course = self.course
        students = len(course.students)
        groups = {s.group for s in course.students if s.group}
        seats = {row.cells["seat"] for row in self.students.values()} - {NONE}
        parts = [plural(students, "student")
                 + (f" in {plural(len(groups), 'group')}" if groups else "")
                 + f" · {plural(len(seats), 'seat')}"]
        if course.machines is None:
            parts.append("no [machines] section: no seat gets a machine")
        if not self.loaded:
            parts.append(pending or "loading what the seats have…")
            return " · ".join(parts)
        by_seat = {row.cells["seat"]: row.cells for row in self.students.values()}
        if access.enabled(course):
            keys = sum(1 for cells in by_seat.values() if cells["keys"] == "yes")
            parts.append(f"with keys {keys}/{len(by_seat)}")
        else:
            parts.append("no [access] section: students get no AWS identity")
        if course.machines is not None:
            sent = [cells["handout"] for cells in by_seat.values()
                    if cells["handout"] not in (NONE, UNKNOWN)]
            changed = sum(1 for value in sent if value == CHANGED)
            parts.append(f"handouts sent {len(sent)}/{len(by_seat)}"
                         + (f" ({changed} changed since)" if changed else ""))
        if self.filter_words:
            parts.append(f"filter \"{' '.join(self.filter_words)}\": "
                         f"{self.table.row_count} of {students} shown")
        if self.loaded_at:
            # (base.clock, looked up when called: the snapshot tests hold it still)
            parts.append(f"updated {base.clock(self.loaded_at)}")
        text = " · ".join(parts)
        if self.removed:
            # (one paragraph: the status line's height follows its length)
            text += (" · not in the roster any more: " + "; ".join(self.removed)
                     + " (`labtui down` removes it with the course)")
        return text

    # -- the filter -----------------------------------------------------------------------------

    def action_filter(self) -> None:
        search = self.query_one("#roster-filter", Input)
        search.display = True
        self.screen.set_focus(search)  # at once: keys typed right after / belong to it

    @on(Input.Submitted, "#roster-filter")
    def filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            self.query_one("#roster-filter", Input).display = False
        self.table.focus()

    def action_clear(self) -> None:
        search = self.query_one("#roster-filter", Input)
        search.value = ""
        search.display = False
        self._apply_filter("")
        self.table.focus()

    def _apply_filter(self, text: str) -> None:
        words = tuple(text.lower().split())
        if words == self.filter_words:
            return
        self.filter_words = words
        self._sync_rows()
        self.show_status()

    # -- actions --------------------------------------------------------------------------------

    def cursor_seat(self) -> str | None:
        key = cursor_key(self.table)
        return self.students[key].cells["seat"] if key is not None else None

    def _refetch(self, ctx: Context) -> None:
        """From a job's thread, when the job is done: the roster again."""
        self.fetch(ctx, quiet=True)

    def _needs_machines(self, what: str) -> bool:
        if self.course.machines is None:
            self.app.notify(f"{what}: the course has no [machines] section, so there is no "
                            "machine to hand out.", severity="warning", markup=False)
            return False
        return True

    def action_handout(self) -> None:
        if self.lab.refused("writing the handouts") or not self._needs_machines("Handouts"):
            return
        course = self.course

        def run(ctx: Context) -> str:
            from labtui.services import handout

            cards = handout.cards(ctx, course)
            paths = handout.write(ctx, course, found=cards)
            records = handout.sent(ctx.state.course(course.id))
            changed = [c.seat for c in cards
                       if handout.delivery(c, records.get(c.seat)) == handout.CHANGED]
            self._refetch(ctx)
            return (f"Wrote {len(cards)} card(s) to {paths[0].parent} "
                    f"({', '.join(p.name for p in paths)}; 0600, readable by you only)."
                    + (f" Changed since mailed: {' '.join(changed)} — m mails them again."
                       if changed else ""))

        self.lab.start_job(run, what="handouts", refresh=False)

    def action_mail(self) -> None:
        if self.lab.refused("mailing the cards") or not self._needs_machines("Mail"):
            return
        course = self.course
        try:
            from labtui.services import mailer

            how = mailer.describe(course)  # no [mail]: its message, before anything is asked
        except (InputError, ImportError) as exc:
            self.app.notify(str(exc), title="Cannot mail the cards", severity="warning",
                            timeout=12, markup=False)
            return
        seats = [seat.id for seat in course.seats]
        emails = {seat.id: {s.email for s in seat.students if s.email}
                  for seat in course.seats}
        recipients = sum(len(found) for found in emails.values())
        without = [seat for seat, found in emails.items() if not found]

        def run(ctx: Context) -> str:
            from labtui.services import handout

            result = handout.mail(ctx, course, seats)
            self._refetch(ctx)
            failed = sorted(result.failed)
            return (f"Mail: {len(result.sent)} of {len(seats)} card(s) sent"
                    + (f", {len(failed)} failed ({' '.join(failed)}; the log says why)"
                       if failed else "") + ".")

        body = (f"Each seat's students get their own card (its machine, login, cluster and "
                f"AWS identity) by {how}.\nSeats: {names(seats, limit=20)}."
                + (f"\nNo email address in the roster for {names(without)}: not sent."
                   if without else "")
                + "\nA card mailed before is sent again.")
        self.lab.confirm_then_job(
            ConfirmModal(f"Mail {count(seats, 'card')}, one per seat, to {recipients} "
                         f"student{'s' if recipients != 1 else ''}?", body, yes="Send"),
            run, what="mail the cards")

    def action_rotate(self) -> None:
        if self.lab.refused("rotating keys"):
            return
        try:
            accessops.require_access(self.course)
        except InputError as exc:
            self.app.notify(str(exc), title="No keys to rotate", severity="warning",
                            timeout=12, markup=False)
            return
        seat = self.cursor_seat()
        if seat is None or seat == NONE:
            self.app.notify("No seat under the cursor.", severity="warning")
            return
        course = self.course
        shared = policy.shared(course)
        password = course.machines is not None and course.machines.login == "password"
        body = ("A new access key is made for "
                + ("the class's shared identity and installed on every running machine"
                   if shared else f"{seat}'s identity and installed on its running machine")
                + "; then the old key is deleted, so the seat is never without working keys."
                + ("\nThe seat gets a new password too (stored in labtui's state folder, "
                   "never shown); the old one stops working." if password else ""))

        def run(ctx: Context) -> str:
            done = accessops.rotate(ctx, course, seat)
            self._refetch(ctx)
            where = ", ".join(done.installed_on) or "no machine"
            return (f"{done.seat}: new key {done.access_key_id} for {done.user} installed "
                    f"on {where}"
                    + (f"; old key {done.retired_key_id} deleted" if done.retired_key_id
                       else "")
                    + (f"; new password in {done.password_file}" if done.password_file
                       else ""))

        self.lab.confirm_then_job(
            ConfirmModal(f"Rotate the AWS keys of {seat}?", body, yes="Rotate"),
            run, what=f"rotate the keys of {seat}")
