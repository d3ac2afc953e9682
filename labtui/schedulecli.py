"""Headless subcommands for the class day: `schedule` (what happens next, and the lines to
install for cron or a systemd timer) and `tick` (do what is due now). The work is in
labtui/scheduleops.py."""

from __future__ import annotations

import argparse

from labtui import scheduleops
from labtui.context import Context
from labtui.course import Course
from labtui.headless import EXIT_OK, EXIT_PARTIAL, emit, with_course


@with_course
def cmd_schedule(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    found = scheduleops.outlook(ctx, course)
    if args.json:
        emit(args, found.as_json(), "")
        return EXIT_OK
    print("\n".join(scheduleops.describe(course, found)))
    return EXIT_OK


@with_course
def cmd_tick(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    result = scheduleops.tick(ctx, course)
    emit(args, {"type": "tick", "done": [a.as_json() for a in result.done],
                "warned": result.warned, "stopped_idle": result.stopped_idle,
                "failed": result.failed},
         f"tick: {', '.join(a.what for a in result.done) or 'nothing scheduled was due'}"
         + (f"; idle warned: {' '.join(result.warned)}" if result.warned else "")
         + (f"; idle stopped: {' '.join(result.stopped_idle)}" if result.stopped_idle else ""))
    return EXIT_PARTIAL if result.failed else EXIT_OK
