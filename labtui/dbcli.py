"""Headless subcommand for the result store: `labtui db COURSE [--json]`. The work is in
labtui/dbops.py (the console calls the same function). Passwords are never printed: they
are kept 0600 in the course's state folder (secrets/db/<user>)."""

from __future__ import annotations

import argparse

from labtui import dbops
from labtui.context import Context
from labtui.course import Course
from labtui.headless import EXIT_OK, EXIT_PARTIAL, emit, with_course


def _word(value: bool | None, yes: str, no: str) -> str:
    return "not checked" if value is None else yes if value else no


@with_course
def cmd_db(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    found = dbops.status(ctx, course)
    if args.json:
        emit(args, found.as_json(), "")
        return EXIT_OK if found.ok else EXIT_PARTIAL
    assert course.database is not None
    print(f"database {course.database.name} of {course.id}: {found.state}")
    if found.state != "absent":
        print(f"  endpoint   {found.endpoint}")
        print(f"  engine     {found.engine}, {found.instance_class}, {found.storage_gb} GB")
        print(f"  collation  {found.collation or 'not checked'}")
        print(f"  users      {course.database.pipeline_user}: "
              f"{_word(found.pipeline_writes, 'writes (checked now)', 'CANNOT write')}; "
              f"{course.database.api_user}: "
              f"{_word(found.api_refused, 'read only (its INSERT refused now)', 'CAN WRITE')}")
    for problem in found.problems:
        print(f"  problem: {problem}")
    if found.state == "absent":
        print(f"  `labtui up {args.course}` creates it")
    return EXIT_OK if found.ok else EXIT_PARTIAL
