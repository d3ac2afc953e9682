"""Rosters as instructors have them: labtui's own CSV, a list of names and emails, a Canvas
gradebook export or a Moodle participants export.

``read(path, shown, problems, taken)`` tells the format from the first line (column names
compared case-insensitively, whitespace trimmed) and yields one ``Entry`` per student; each
bad row is a Problem naming the file, the line and the fix, and a file in no known format
gets one that lists the formats and shows its first line. Any of them may be separated by
``,``, ``;`` or tabs (sniffed from the first line) and start with a UTF-8 byte-order mark.

- ``id,name,email[,group]``: labtui's own, read exactly as it always was.
- ``name,email[,group]``, with that header line or none: a first line with a cell that
  contains ``@`` is a student, not a header, and the columns are then name, email, group.
- A Canvas gradebook export (``Student, ID, SIS User ID, SIS Login ID, …, Section, …``, the
  assignments after): the "Points Possible" row, the row without a student that newer
  exports add ("Manual Posting") and Canvas's own Test Student are skipped; ``Last, First``
  becomes ``First Last``; the email is an ``Email`` column if one was added, else the
  ``SIS Login ID`` when it is an email address; the group is the ``Section``.
- A Moodle participants export (``First name, Last name, Email address``, maybe ``ID number``,
  ``Roles``, ``Groups`` …): the name is first name then last name; the group is ``Groups``
  ("No groups" is none).

Ids. A format without an id column derives each from the email's local part: accents
folded, lowercased, all but ASCII letters and digits dropped, ``s`` put in front when that
leaves nothing or starts with a digit, at most 63 characters, then made unique with a number
(``Ada.L@x.edu``, ``ada.l@y.edu`` -> ``adal``, ``adal2``); ids of the course file's
``[[roster.students]]`` count as taken. That is the one rule for every such format, Canvas
included: its SIS User ID is often a student number, personal data that would end up in tags
and machine names. Since an email gives the id, one email twice in such a file is a problem
(it would be two seats for one student).

Groups from Canvas sections and Moodle groups are names, not ids: they are folded the same
way into lowercase letters, digits and dashes (``CS 101 - Lab 3`` -> ``cs-101-lab-3``; at
most 63 characters); a student in several (listed comma-separated) gets one group named after
all of them. Groups matter only when machines or clusters are per group.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from labtui import checks
from labtui.csvinput import read_rows, records, sniff_delimiter
from labtui.errors import Problem

MAX_ID = 63  # checks.seat_id's limit

FORMATS = (
    "id,name,email[,group]",
    "name,email[,group] (with that header line or none)",
    "a Canvas gradebook export (Student, ID, SIS User ID, SIS Login ID, Section, ...)",
    "a Moodle participants export (First name, Last name, Email address[, Groups])",
)
KNOWN = "save it in one of the formats labtui reads: " + "; ".join(FORMATS)

# header names, lowercased
_EMAIL = ("email", "email address", "e-mail", "e-mail address")
_FIRST = ("first name", "firstname", "given name")
_LAST = ("last name", "lastname", "surname", "family name")
_GROUPS = ("groups", "group")

_CANVAS_EMAIL_FIX = ('add a column "Email" with each student\'s email address (labtui takes '
                     'the address from "SIS Login ID" only when that is one)')


@dataclass(frozen=True)
class Entry:
    """One student of a roster file, at its line."""

    line: int
    id: str
    name: str
    email: str
    group: str = ""


def _fold(text: str) -> str:
    """Lowercase ASCII: accents dropped (é -> e), other non-ASCII characters gone."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def id_from_email(email: str, taken: set[str]) -> str:
    """The student id derived from an email (see the module docstring); added to taken."""
    base = re.sub(r"[^a-z0-9]", "", _fold(email.rpartition("@")[0]))
    if not base or base[0].isdigit():
        base = "s" + base
    candidate, number = base[:MAX_ID], 1
    while candidate in taken:
        number += 1
        candidate = base[:MAX_ID - len(str(number))] + str(number)
    taken.add(candidate)
    return candidate


def group_of(name: str) -> str:
    """A Canvas section or Moodle group as a group id; "" when nothing of it is left."""
    return re.sub(r"[^a-z0-9]+", "-", _fold(name)).strip("-")[:MAX_ID].rstrip("-")


def first_last(name: str) -> str:
    """Canvas's sortable "Last, First" as "First Last"; a name without a comma as it is."""
    last, comma, first = name.partition(",")
    return f"{first.strip()} {last.strip()}".strip() if comma else name


def _index(names: Sequence[str], choices: Iterable[str]) -> int | None:
    for choice in choices:
        if choice in names:
            return names.index(choice)
    return None


class _Students:
    """Checks rows of one file and gives derived ids; reports problems at their lines."""

    def __init__(self, shown: str, problems: list[Problem], taken: Collection[str]) -> None:
        self.shown = shown
        self.problems = problems
        self.taken = set(taken)
        self.emails: dict[str, int] = {}  # lowercased email -> its line

    def report(self, line: int, message: str, fix: str) -> None:
        self.problems.append(Problem(self.shown, line, "", message, fix))

    def valid(self, line: int, name: str, email: str, group: str) -> bool:
        """Whether name, email and (an id-like) group are usable; reports each that is not."""
        good = True
        message = checks.email(email) if email else "email is empty"
        if message:
            self.report(line, message, "fix the email on this line")
            good = False
        if not name:
            self.report(line, "name is empty", "give the student's name")
            good = False
        if group and checks.seat_id(group):
            self.report(line, checks.seat_id(group) or "", "fix the group on this line")
            good = False
        return good

    def derived(self, line: int, name: str, email: str, group: str) -> Entry | None:
        """The student with an id from the email, unless a value is bad or the email is
        already in the file."""
        if not self.valid(line, name, email, group):
            return None
        key = email.lower()
        if key in self.emails:
            self.report(line, f"email {email!r} is already used at {self.shown}:"
                        f"{self.emails[key]}",
                        "list each student once (the id comes from the email, so this would "
                        "be a second seat for the same student)")
            return None
        self.emails[key] = line
        return Entry(line, id_from_email(email, self.taken), name, email, group)


def read(path: Path, shown: str, problems: list[Problem],
         taken: Collection[str] = ()) -> Iterator[Entry]:
    """Yield the students of a roster file in any known format; append a Problem for each
    bad row (see the module docstring). ``taken``: ids a derived id must not be."""
    delimiter = sniff_delimiter(path)
    before = len(problems)
    rows = records(path, shown, problems, delimiter=delimiter)
    first = next(rows, None)
    if first is None:
        if len(problems) == before:  # nothing in it, rather than unreadable
            problems.append(Problem(shown, 1, "", "is empty",
                                    "start it with the header line id,name,email,group"))
        return
    header = [cell.strip() for cell in first[1]]
    names = [cell.lower() for cell in header]
    students = _Students(shown, problems, taken)
    if any("@" in cell for cell in header):
        yield from _headerless(itertools.chain([first], rows), students)
    elif names[:1] == ["student"] and "id" in names:  # Canvas starts Student, ID, …
        yield from _canvas(rows, names, students)
    elif "id" in names:  # labtui's own; its header problems said as they always were
        rows.close()
        yield from _own(read_rows(path, shown, ("id", "name", "email"), ("group",), problems,
                                  delimiter=delimiter), students)
    elif _index(names, _FIRST) is not None and _index(names, _LAST) is not None:
        yield from _moodle(rows, names, students)
    elif "name" in names and "email" in names:
        rows.close()
        for line, row in read_rows(path, shown, ("name", "email"), ("group",), problems,
                                   delimiter=delimiter):
            entry = students.derived(line, row["name"], row["email"], row.get("group", ""))
            if entry:
                yield entry
    else:
        rows.close()
        shown_header = ", ".join(repr(cell) for cell in header[:8]) or "empty"
        if len(header) > 8:
            shown_header += f", ... ({len(header)} columns)"
        problems.append(Problem(shown, 1, "", "is in no roster format labtui knows (its "
                                f"first line is {shown_header})", KNOWN))


def _own(rows: Iterable[tuple[int, dict[str, str]]], students: _Students) -> Iterator[Entry]:
    """labtui's own id,name,email[,group]: every value checked, as written."""
    for line, row in rows:
        bad = False
        message = checks.seat_id(row["id"]) if row["id"] else "id is empty"
        if message:
            students.report(line, message, "fix the id on this line")
            bad = True
        if not students.valid(line, row["name"], row["email"], row.get("group", "")):
            bad = True
        if not bad:
            yield Entry(line, row["id"], row["name"], row["email"], row.get("group", ""))


def _headerless(rows: Iterable[tuple[int, list[str]]], students: _Students) -> Iterator[Entry]:
    """name,email[,group] without a header line: the first line is a student."""
    width = 0
    for line, fields in rows:
        if not any(f.strip() for f in fields):
            continue
        cells = [f.strip() for f in fields]
        if not width:
            if len(cells) not in (2, 3) or "@" not in cells[1]:
                students.report(line, "has no header line (a cell of its first line holds an "
                                "@), and that line is not name,email or name,email,group",
                                "write each student as name,email (optionally a third "
                                "column, the group), or start the file with a header line")
                return
            width = len(cells)
        if len(cells) != width:
            students.report(line, f"has {len(cells)} fields but the first line has {width}",
                            "give every line the columns name,email" + (
                                ",group" if width == 3 else "")
                            + " (quote a value that contains the separator)")
            continue
        entry = students.derived(line, cells[0], cells[1], cells[2] if width == 3 else "")
        if entry:
            yield entry


def _cells(fields: list[str], line: int, wanted: Sequence[int | None], width: int,
           students: _Students) -> list[str] | None:
    """The wanted columns of an export's row ("" for a column the file lacks), or None and a
    problem when the row is too short to have them."""
    last = max(i for i in wanted if i is not None)
    if len(fields) <= last:
        students.report(line, f"has {len(fields)} fields but the header has {width}",
                        "give every row the header's columns (quote a value that contains "
                        "the separator)")
        return None
    return [fields[i].strip() if i is not None else "" for i in wanted]


def _canvas(rows: Iterable[tuple[int, list[str]]], names: list[str],
            students: _Students) -> Iterator[Entry]:
    """A Canvas gradebook export (see the module docstring)."""
    email_at = _index(names, _EMAIL)
    login_at = _index(names, ("sis login id",))
    if email_at is None and login_at is None:
        students.report(1, "is a Canvas gradebook export without email addresses (no Email "
                        "or SIS Login ID column)", _CANVAS_EMAIL_FIX)
        return
    wanted = (names.index("student"), names.index("id"),
              email_at if email_at is not None else login_at, _index(names, ("section",)))
    found: list[tuple[int, str, str, str]] = []
    for line, fields in rows:
        if not any(f.strip() for f in fields):
            continue
        cells = _cells(fields, line, wanted, len(names), students)
        if cells is None:
            continue
        student, canvas_id, email, section = cells
        if student.lower() == "points possible":  # "    Points Possible" in real exports
            continue
        if not student and not canvas_id:  # no student: the "Manual Posting" row
            continue
        if student in ("Student, Test", "Test Student") and not email:  # Canvas's Student View
            continue
        found.append((line, first_last(student), email, group_of(section)))
    if email_at is None:
        logins = [email for _, _, email, _ in found]
        if logins and not any("@" in login for login in logins):
            example = next((login for login in logins if login), "")
            holds = f"holds logins such as {example!r}" if example else "is empty"
            students.report(1, "is a Canvas gradebook export without email addresses (its "
                            f"SIS Login ID column {holds})", _CANVAS_EMAIL_FIX)
            return
    for line, name, email, group in found:
        if email_at is None and "@" not in email:  # a login, not a mistyped address
            what = f"SIS Login ID {email!r} is not" if email else "SIS Login ID is empty, not"
            students.report(line, f"{what} an email address", _CANVAS_EMAIL_FIX)
            continue
        entry = students.derived(line, name, email, group)
        if entry:
            yield entry


def _moodle(rows: Iterable[tuple[int, list[str]]], names: list[str],
            students: _Students) -> Iterator[Entry]:
    """A Moodle participants export (see the module docstring)."""
    email_at = _index(names, _EMAIL)
    if email_at is None:
        students.report(1, "is a Moodle participants export without the column 'Email "
                        "address'", "export it again with email addresses shown, or add "
                        "an 'Email address' column with each student's address")
        return
    wanted = (_index(names, _FIRST), _index(names, _LAST), email_at, _index(names, _GROUPS))
    for line, fields in rows:
        if not any(f.strip() for f in fields):
            continue
        cells = _cells(fields, line, wanted, len(names), students)
        if cells is None:
            continue
        first, last, email, groups = cells
        group = "" if groups.lower() == "no groups" else group_of(groups)
        entry = students.derived(line, f"{first} {last}".strip(), email, group)
        if entry:
            yield entry
