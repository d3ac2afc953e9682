"""Headless subcommands for batch jobs: `jobs run|status|fetch|cancel`. The work is in
labtui/jobops.py (the console calls the same functions)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from labtui import jobops
from labtui.context import Context
from labtui.course import Course
from labtui.errors import InputError
from labtui.headless import EXIT_OK, EXIT_PARTIAL, confirm, emit, with_course


def _table(args: argparse.Namespace, found: list, cost: dict[str, float]) -> None:
    if args.json:
        for j in found:
            emit(args, j.as_json() | {"cost_usd": cost.get(j.name)}, "")
        return
    print(f"{'job':<20}{'type':<12}{'state':<28}{'exit':>5}{'runtime':>9}{'cost':>8}  detail")
    for j in found:
        runtime = ("" if j.runtime is None else f"{j.runtime:.1f}s" if j.runtime < 60
                   else f"{j.runtime / 60:.1f}m")
        usd = f"${cost[j.name]:.3f}" if j.name in cost else ""
        exit_ = "" if j.exit is None else str(j.exit)
        print(f"{j.name:<20}{j.instance_type:<12}{j.shown:<28}{exit_:>5}{runtime:>9}"
              f"{usd:>8}  {j.reason or ''}")
        for line in j.tail[-5:] if j.state == "failed" else []:
            print(f"{'':<20}| {line}")


@with_course
def cmd_jobs(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    jobops.require_jobs(course)
    action = args.action
    if action == "run":
        if len(args.names) > 1:
            raise InputError("jobs run takes one job file at most. Fix: `labtui jobs run "
                             "COURSE [JOBS.csv]`")
        csv = Path(args.names[0]) if args.names else None
        if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
            raise InputError(f"--timeout {args.timeout:g} is not a positive number of seconds."
                             " Fix: e.g. --timeout 3600")
        result = jobops.run(ctx, course, csv, timeout=None if args.timeout is None
                            else math.ceil(args.timeout), keep=args.keep,
                            wait=not args.no_wait)
        _table(args, result.jobs, jobops.cost_so_far(ctx, course, result.jobs))
        emit(args, {"type": "summary", "counts": jobops.counts(result.jobs),
                    "failed": [j.name for j in result.failed]},
             f"jobs: {jobops.counts(result.jobs)}"
             + (f"; see `labtui jobs status {args.course}`" if result.failed else ""))
        return EXIT_PARTIAL if result.failed else EXIT_OK
    if action == "status":
        found = jobops.status(ctx, course)
        _table(args, found, jobops.cost_so_far(ctx, course, found))
        emit(args, {"type": "summary", "counts": jobops.counts(found)},
             f"jobs: {jobops.counts(found)}")
        return EXIT_OK
    if action == "fetch":
        if not args.to:
            raise InputError("jobs fetch needs --to DIR. Fix: `labtui jobs fetch COURSE --to "
                             "results/`")
        got = jobops.fetch(ctx, course, Path(args.to), args.names or None)
        total = sum(g for g, _ in got.values())
        emit(args, {"type": "summary", "downloaded": total, "jobs": len(got)},
             f"fetched {total} file(s) of {len(got)} job(s) into {args.to}")
        return EXIT_OK
    names = args.names or None
    what = f"{len(names)} job(s)" if names else "every job"
    if not confirm(args, f"Cancel {what} of {course.id} (their workers are terminated)?"):
        emit(args, {"type": "cancelled"}, "nothing was cancelled.")
        return EXIT_OK
    done = jobops.cancel(ctx, course, names)
    emit(args, {"type": "summary", "cancelled": done},
         f"cancelled {len(done)} job(s)" + (f": {' '.join(done)}" if done else ""))
    return EXIT_OK
