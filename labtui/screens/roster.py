"""Roster: every student of the course file, with the seat (machine) each one uses."""

from __future__ import annotations

from collections.abc import Iterable

from textual.widget import Widget
from textual.widgets import Static

from labtui.course import Course
from labtui.screens.base import View, table

COLUMNS = (("ID", "id"), ("Name", "name"), ("Email", "email"), ("Group", "group"),
           ("Seat", "seat"))


def seat_of(course: Course) -> dict[str, str]:
    """Student id -> seat id."""
    return {student.id: seat.id for seat in course.seats for student in seat.students}


def summary(course: Course) -> str:
    groups = {s.group for s in course.students if s.group}
    text = f"{len(course.students)} students"
    if groups:
        text += f" in {len(groups)} groups"
    if course.machines is None:
        return text + "; the course has no [machines] section, so no seats get a machine."
    per = "group" if course.machines.per == "group" else "student"
    return text + f"; {len(course.seats)} seats — one machine per {per}."


class RosterView(View):
    VIEW_ID = "roster"
    TITLE = "Roster"
    KEY = "2"
    DESCRIPTION = "Every student of the course file and their seat"

    def compose_body(self) -> Iterable[Widget]:
        yield Static(summary(self.course), id="roster-summary", classes="note")
        students = table("roster-table", COLUMNS)
        seats = seat_of(self.course)
        for student in self.course.students:
            students.add_row(student.id, student.name, student.email, student.group or "—",
                             seats.get(student.id, "—"), key=student.id)
        yield students
