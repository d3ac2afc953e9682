"""Headless `labtui dashboard`: the console's dashboard as lines (or one JSON object). The
look is ``dashops.gather``; the lines are ``dashboard.lines``, the same the console shows."""

from __future__ import annotations

import argparse

from labtui import dashboard, dashops
from labtui.context import Context
from labtui.course import Course
from labtui.headless import EXIT_OK, EXIT_PARTIAL, emit, with_course
from labtui.terminal import plain


@with_course
def cmd_dashboard(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    board = dashops.gather(ctx, course)
    found = dashboard.lines(board)
    width = max(len(line.label) for line in found)
    text = "\n".join(f"{'!' if line.bad else ' '} {line.label:<{width}}  {plain(line.text)}"
                     for line in found)
    for quota in board.quotas:
        text += (f"\n  {quota.region} {quota.name}: {dashboard.bar(quota.in_use, quota.quota)} "
                 f"{quota.in_use:g}/{quota.quota:g} vCPUs")
    emit(args, board.as_json(), text)
    return EXIT_PARTIAL if any(line.bad for line in found) else EXIT_OK
