"""Headless subcommands for students' access and the roster: access, rotate, roster, ta. The
work is in labtui/accessops.py (the console calls the same functions)."""

from __future__ import annotations

import argparse
import json

from labtui import accessops
from labtui.context import Context
from labtui.course import Course
from labtui.headless import EXIT_OK, emit, with_course


@with_course
def cmd_access(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    document, cases = accessops.table(ctx, course, args.seat)
    seat = accessops.seat_id(course, args.seat)
    if args.json:
        emit(args, {"type": "policy", "seat": seat, "policy": document}, "")
        for case in cases:
            emit(args, {"type": "permission", "seat": seat, **case.to_json()}, "")
        return EXIT_OK
    from labtui.policy import user_name

    print(f"{seat}: IAM user {user_name(course, seat)}; its policy:")
    print(json.dumps(document, indent=2))
    print()
    width = max(len(c.what) for c in cases)
    print(f"{'what':<{width}}  {'decision':<9} action")
    for case in cases:
        word = case.decision.word + ("*" if case.decision.explicit_deny else "")
        print(f"{case.what:<{width}}  {word:<9} {case.action}")
    print("* denied explicitly: no other policy can allow it")
    return EXIT_OK


@with_course
def cmd_rotate(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    done = accessops.rotate(ctx, course, args.seat)
    where = ", ".join(done.installed_on) or "no machine"
    emit(args, {"type": "rotated", "seat": done.seat, "user": done.user,
                "access_key_id": done.access_key_id, "retired_key_id": done.retired_key_id,
                "installed_on": done.installed_on,
                "password_file": str(done.password_file) if done.password_file else None},
         f"{done.seat}: new key {done.access_key_id} for {done.user} installed on {where}"
         + (f"; old key {done.retired_key_id} deleted" if done.retired_key_id else "")
         + (f"; new password in {done.password_file}" if done.password_file else ""))
    return EXIT_OK


@with_course
def cmd_roster(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    result = accessops.roster(ctx, course)
    if args.json:
        for row in result.rows:
            emit(args, row.to_json(), "")
        emit(args, result.to_json(), "")
        return EXIT_OK
    print(f"{'student':<12}{'name':<24}{'seat':<12}{'machine':<12}{'cluster':<28}"
          f"{'keys':<6}handout")
    for r in result.rows:
        print(f"{r.student:<12}{r.name[:23]:<24}{r.seat:<12}{r.machine:<12}"
              f"{r.cluster[:27]:<28}{'yes' if r.credentials else 'no':<6}{r.handout}")
    print(f"{len(result.rows)} student(s) in {len({r.seat for r in result.rows})} seat(s).")
    for item in result.removed:
        print(f"not in the roster any more: {item} (`labtui down` removes it with the course)")
    return EXIT_OK


@with_course
def cmd_ta(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    done = accessops.ta(ctx, course, args.name, args.to)
    emit(args, done.to_json(),
         f"teaching assistant {done.name}: IAM user {done.user} (read-only), key "
         f"{done.access_key_id}; its credentials (0600) in {done.credentials_file}\n"
         f"Give the TA that file; they run:\n  {done.command}")
    return EXIT_OK
