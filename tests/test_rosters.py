"""Rosters as instructors have them (issue 10, item 5): name,email lists with or without a
header, Canvas gradebook and Moodle participants exports, `;` or tab separators, a UTF-8 BOM.
Each file is written next to a course that names it and the course is loaded; a bad one is
one problem naming the file, the line and the fix (exit 2 from `labtui validate`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from labtui import course as course_mod
from labtui import rosters
from labtui.course import Student
from labtui.errors import CourseError

from .courses import write_course

CANVAS_HEADER = ("Student,ID,SIS User ID,SIS Login ID,Integration ID,Section,"
                 "Lab 1 (1021),Lab 2 (1022),Current Score,Final Score\n")
POINTS = "    Points Possible,,,,,,10.00,10.00,(read only),(read only)\n"
CANVAS_FIX = ('Fix: add a column "Email" with each student\'s email address (labtui takes the '
              'address from "SIS Login ID" only when that is one).')


def course_with(tmp_path: Path, roster: str | bytes, *, inline: int = 0,
                name: str = "roster.csv") -> Path:
    """A course whose [roster] file is ``roster`` (and ``inline`` inline students)."""
    path = write_course(tmp_path, "rosters", students=inline,
                        extra=f'[roster]\nfile = "{name}"\n')
    target = tmp_path / name
    if isinstance(roster, bytes):
        target.write_bytes(roster)
    else:
        target.write_text(roster, encoding="utf-8")
    return path


def students(tmp_path: Path, roster: str | bytes, **kwargs: int) -> list[Student]:
    return list(course_mod.load(course_with(tmp_path, roster, **kwargs)).students)


def problems(tmp_path: Path, roster: str | bytes) -> list[str]:
    with pytest.raises(CourseError) as info:
        course_mod.load(course_with(tmp_path, roster))
    return [str(p) for p in info.value.problems]


def test_name_email_without_a_header(tmp_path: Path) -> None:
    assert students(tmp_path, "Ada Lovelace,ada@example.edu\n"
                              "Alan Turing, alan.turing@example.edu \n\n"
                              "Grace Hopper,grace@example.edu\n") == [
        Student("ada", "Ada Lovelace", "ada@example.edu"),
        Student("alanturing", "Alan Turing", "alan.turing@example.edu"),
        Student("grace", "Grace Hopper", "grace@example.edu")]


def test_name_email_with_a_header_and_groups(tmp_path: Path) -> None:
    assert students(tmp_path, " Name , EMAIL ,Group\nAda Lovelace,ada@example.edu,team-a\n"
                              "Alan Turing,alan@example.edu,\n") == [
        Student("ada", "Ada Lovelace", "ada@example.edu", "team-a"),
        Student("alan", "Alan Turing", "alan@example.edu")]


def test_canvas_gradebook_export(tmp_path: Path) -> None:
    roster = (CANVAS_HEADER + POINTS
              + '"Lovelace, Ada",101,S0001,ada@example.edu,,CS 101 - Lab 1,9,8,85,85\n'
              + '"Turing, Alan",102,S0002,Alan.Turing@example.edu,,CS 101 - Lab 2,,,0,0\n'
              + '"Student, Test",999,,,,CS 101 - Lab 1,,,,\n'  # Canvas's Student View user
              + "Plato,103,S0003,plato@example.edu,,,,,,\n")
    assert students(tmp_path, roster) == [
        Student("ada", "Ada Lovelace", "ada@example.edu", "cs-101-lab-1"),
        Student("alanturing", "Alan Turing", "Alan.Turing@example.edu", "cs-101-lab-2"),
        Student("plato", "Plato", "plato@example.edu")]


def test_canvas_export_with_a_manual_posting_row_and_an_added_email_column(
        tmp_path: Path) -> None:
    roster = ("Student,ID,SIS User ID,SIS Login ID,Section,Email,Lab 1 (1021)\n"
              ",,,,,,Manual Posting\n" + "    Points Possible,,,,,,10.00\n"
              '"Lovelace, Ada",101,S0001,alovelace,CS 101,ada@example.edu,9\n')
    assert students(tmp_path, roster) == [
        Student("ada", "Ada Lovelace", "ada@example.edu", "cs-101")]


def test_canvas_export_without_emails_names_the_column_to_add(tmp_path: Path) -> None:
    no_login = ("Student,ID,SIS User ID,Section,Lab 1 (1021)\n" + "    Points Possible,,,,10\n"
                + '"Lovelace, Ada",101,S0001,CS 101,9\n')
    assert problems(tmp_path, no_login) == [
        "roster.csv:1: is a Canvas gradebook export without email addresses (no Email or SIS "
        f"Login ID column). {CANVAS_FIX}"]
    netids = (CANVAS_HEADER + POINTS + '"Lovelace, Ada",101,S0001,alovelace,,CS 101,9,8,85,85\n'
              + '"Turing, Alan",102,S0002,aturing,,CS 101,9,8,85,85\n')
    assert problems(tmp_path, netids) == [
        "roster.csv:1: is a Canvas gradebook export without email addresses (its SIS Login "
        f"ID column holds logins such as 'alovelace'). {CANVAS_FIX}"]
    mixed = (CANVAS_HEADER + POINTS + '"Lovelace, Ada",101,S0001,ada@example.edu,,A,9,8,85,85\n'
             + '"Turing, Alan",102,S0002,aturing,,A,9,8,85,85\n')
    assert problems(tmp_path, mixed) == [
        f"roster.csv:4: SIS Login ID 'aturing' is not an email address. {CANVAS_FIX}"]


def test_moodle_participants_export_with_groups(tmp_path: Path) -> None:
    roster = ('"First name","Last name","ID number","Email address","Roles","Groups",'
              '"Last access to course"\n'
              'Ada,Lovelace,1001,ada@example.edu,Student,"Team A",2 days\n'
              'José,Núñez,1002,jose.nunez@example.edu,Student,"No groups",Never\n'
              'Alan,Turing,1003,alan@example.edu,Student,"Team A, Team B",1 hour\n')
    assert students(tmp_path, roster) == [
        Student("ada", "Ada Lovelace", "ada@example.edu", "team-a"),
        Student("josenunez", "José Núñez", "jose.nunez@example.edu"),
        Student("alan", "Alan Turing", "alan@example.edu", "team-a-team-b")]


def test_moodle_export_without_groups_column(tmp_path: Path) -> None:
    assert students(tmp_path, "First name,Surname,Email address\nAda,Lovelace,"
                              "ada@example.edu\n") == [
        Student("ada", "Ada Lovelace", "ada@example.edu")]


@pytest.mark.parametrize("separator", [";", "\t"])
def test_semicolons_or_tabs_and_a_bom(tmp_path: Path, separator: str) -> None:
    own = separator.join(["id", "name", "email", "group"]) + "\n" + separator.join(
        ["s01", "Lovelace, Ada", "ada@example.edu", "team-a"]) + "\n"
    assert students(tmp_path, "\ufeff" + own) == [
        Student("s01", "Lovelace, Ada", "ada@example.edu", "team-a")]
    moodle = separator.join(["First name", "Last name", "Email address", "Groups"]) + "\n" + (
        separator.join(["Ada", "Lovelace", "ada@example.edu", "Team A"])) + "\n"
    assert students(tmp_path, b"\xef\xbb\xbf" + moodle.encode()) == [
        Student("ada", "Ada Lovelace", "ada@example.edu", "team-a")]


def test_derived_ids_are_unique_and_valid(tmp_path: Path) -> None:
    roster = ("Ada Lovelace,ada@x.edu\nAda King,Ada@y.edu\nAnon,2024001@x.edu\n"
              "Plus,+@x.edu\nSam,s2024001@y.edu\n")
    assert [s.id for s in students(tmp_path, roster)] == [
        "ada", "ada2", "s2024001", "s", "s20240012"]
    # an inline student's id is taken: the file's Ada becomes ada2
    path = course_with(tmp_path, "Ada Lovelace,ada@x.edu\n", inline=1)
    path.write_text(path.read_text().replace('id = "s01"', 'id = "ada"'))
    assert [s.id for s in course_mod.load(path).students] == ["ada", "ada2"]


def test_derived_id_rule() -> None:
    taken: set[str] = set()
    assert [rosters.id_from_email(e, taken) for e in (
        "Ada.Lovelace+cs101@x.edu", "ada_lovelace@y.edu", "Zoë@x.edu", "9@x.edu",
        "x" * 80 + "@x.edu", "X" * 80 + "@y.edu")] == [
        "adalovelacecs101", "adalovelace", "zoe", "s9", "x" * 63, "x" * 62 + "2"]
    assert rosters.first_last("  de la Cruz, María José ") == "María José de la Cruz"
    assert rosters.group_of("  Sección 01 / Lab ") == "seccion-01-lab"


def test_bad_rows_name_the_file_and_line(tmp_path: Path) -> None:
    assert problems(tmp_path, "Ada Lovelace,ada@example.edu\nAlan Turing,alan-at-example\n"
                              ",grace@example.edu\nAda again,ADA@example.edu\n"
                              "Too,many@example.edu,g1,x\n") == [
        "roster.csv:2: 'alan-at-example' is not an email address. "
        "Fix: fix the email on this line.",
        "roster.csv:3: name is empty. Fix: give the student's name.",
        "roster.csv:4: email 'ADA@example.edu' is already used at roster.csv:1. Fix: list "
        "each student once (the id comes from the email, so this would be a second seat for "
        "the same student).",
        "roster.csv:5: has 4 fields but the first line has 2. Fix: give every line the "
        "columns name,email (quote a value that contains the separator)."]
    assert problems(tmp_path, "name;email;gruop\nAda;ada@example.edu;a\n") == [
        "roster.csv:1: unknown column 'gruop' in the header. Fix: did you mean 'group'?"]


def test_an_unknown_format_lists_the_known_ones(tmp_path: Path) -> None:
    assert problems(tmp_path, "Nom,Courriel\nAda,ada@example.edu\n") == [
        "roster.csv:1: is in no roster format labtui knows (its first line is 'Nom', "
        "'Courriel'). Fix: save it in one of the formats labtui reads: id,name,email[,group]; "
        "name,email[,group] (with that header line or none); a Canvas gradebook export "
        "(Student, ID, SIS User ID, SIS Login ID, Section, ...); a Moodle participants export "
        "(First name, Last name, Email address[, Groups])."]
    assert problems(tmp_path, "ada@example.edu,Ada Lovelace\n") == [
        "roster.csv:1: has no header line (a cell of its first line holds an @), and that "
        "line is not name,email or name,email,group. Fix: write each student as name,email "
        "(optionally a third column, the group), or start the file with a header line."]
    assert problems(tmp_path, "\nid,name,email\n")[0].startswith(
        "roster.csv:1: is in no roster format labtui knows (its first line is empty).")
    assert problems(tmp_path, "") == [
        "roster.csv:1: is empty. Fix: start it with the header line id,name,email,group."]


def test_validate_exits_2_naming_the_line(tmp_path: Path) -> None:
    path = course_with(tmp_path, CANVAS_HEADER + POINTS
                       + '"Lovelace, Ada",101,S0001,ada@example,,A,9,8,85,85\n'
                       + '"Turing, Alan",102,S0002,alan@example.edu,,A,9,8,85,85\n')
    done = subprocess.run([sys.executable, "-m", "labtui", "validate", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    assert "error: roster.csv:3: 'ada@example' is not an email address. Fix: fix the email " \
        "on this line." in done.stderr.splitlines()
