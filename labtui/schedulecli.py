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
    zone = found.timezone
    print(f"{course.id}: now {found.now:%Y-%m-%d %H:%M} ({zone}); machines "
          f"{'should run' if found.machines_should_run else 'should be stopped'}, clusters "
          f"{'should run' if found.clusters_should_run else 'should be off'}")
    last = found.last_tick
    print(f"last tick: {last.astimezone(found.now.tzinfo):%Y-%m-%d %H:%M}" if last
          else "last tick: never (install one of the lines below)")
    print("next:")
    for action in found.next:
        print(f"  {action.at:%a %Y-%m-%d %H:%M}  {action.what:<20} {action.why}")
    if not found.next:
        print("  nothing: every session is over")
    print("\nrun `labtui tick` every 5 minutes — with cron (`crontab -e`):")
    print(f"  {found.cron}")
    print("or a systemd user timer (~/.config/systemd/user/, then "
          "`systemctl --user enable --now " + next(iter(found.systemd)).replace(
              ".service", ".timer") + "`):")
    for name, text in found.systemd.items():
        print(f"  --- {name}")
        for line in text.splitlines():
            print(f"  {line}")
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
