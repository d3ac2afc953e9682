"""Headless subcommands for Jupyter: `notebook` (a seat's tunnel command, URL and state, or
`--open` a tunnel until Ctrl-C) and `notebooks push|collect`. The work is in
labtui/notebookops.py (the console calls the same functions). The token is never printed:
it is on the seat's card and in its 0600 file, whose path is shown."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from labtui import notebookops
from labtui.context import Context
from labtui.course import Course
from labtui.headless import EXIT_OK, EXIT_PARTIAL, emit, with_course
from labtui.services import notebooks


def _token_hint(info: notebookops.Seat) -> str:
    return (f"the token is in {info.token_file} (0600) and on the seat's card"
            if info.token_file else "no token yet (the seat's setup makes it)")


@with_course
def cmd_notebook(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    if args.open:
        return _open(args, course, ctx)
    info = notebookops.seat_notebook(ctx, course, args.seat)
    up = info.status is not None and info.status.state == "up"
    if args.json:
        emit(args, info.as_json(), "")
        return EXIT_OK if up else EXIT_PARTIAL
    found = info.status
    if found is None:
        print(f"{info.seat}: notebook unknown — {info.note}")
    else:
        kernels = f"{found.kernels} kernel(s), {found.busy} busy" if found.state == "up" else ""
        print(f"{info.seat}: notebook {found.state}"
              + (f" ({kernels})" if kernels else "")
              + (f", restarted {found.restarts} time(s)" if found.restarts else ""))
        for line in found.log:
            print(f"  {line}")
    if info.tunnel_command:
        print(f"tunnel (the student runs it on their computer; keep it open):\n"
              f"  {info.tunnel_command}")
        print(f"then open {info.url} — {_token_hint(info)}")
    else:
        print("no tunnel yet: the machine has no address or the seat is not set up")
    return EXIT_OK if up else EXIT_PARTIAL


def _open(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    assert course.jupyter is not None
    tunnel = notebookops.open_tunnel(ctx, course, args.seat)
    seat = course.seat(args.seat).id
    info = notebookops.seat_notebook(ctx, course, seat, live=False)
    address = notebooks.url(tunnel.local_port, None, course.jupyter.server)
    last = None
    try:
        emit(args, {"type": "tunnel", "seat": seat, "local_port": tunnel.local_port,
                    "url": address, "token_file": info.token_file},
             f"{seat}: tunnel open — {address} ({_token_hint(info)}). Ctrl-C closes it.")
        while tunnel.is_open:
            check = tunnel.check()
            now = (check.answers, check.kernels, check.busy, check.error)
            if now != last:
                emit(args, {"type": "check", "seat": seat, "answers": check.answers,
                            "kernels": check.kernels, "busy": list(check.busy),
                            "error": check.error},
                     f"{seat}: " + (f"answers; {check.kernels} kernel(s), "
                                    f"{len(check.busy)} busy" if check.answers
                                    else f"does not answer ({check.error})"))
                last = now
            for _ in range(20):
                if not tunnel.is_open:
                    break
                time.sleep(0.25)
        emit(args, {"type": "closed", "seat": seat, "reason": "the SSH connection ended"},
             f"{seat}: the SSH connection ended; tunnel closed")
        return EXIT_PARTIAL
    except KeyboardInterrupt:
        emit(args, {"type": "closed", "seat": seat, "reason": "interrupted"},
             f"{seat}: tunnel closed")
        return EXIT_OK
    finally:
        tunnel.close()


@with_course
def cmd_notebooks(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    seats = args.seats or None
    if args.action == "push":
        outcomes = notebookops.push(ctx, course, seats)
        what = "pushed to"
    else:
        notebookops.require_jupyter(course)
        to = Path(args.to) if args.to else ctx.state.course(course.id).root / "notebooks"
        outcomes = notebookops.collect(ctx, course, to, seats, to_bucket=args.to_bucket)
        what = f"collected into {to} from"
    failed = [o for o in outcomes if not o.ok]
    for o in failed:
        emit(args, {"type": "failed", "seat": o.key, "error": o.error},
             f"{o.key}: FAILED — {o.error}")
    ok = len(outcomes) - len(failed)
    emit(args, {"type": "summary", "action": args.action, "done": ok,
                "failed": [o.key for o in failed]},
         f"notebooks {what} {ok} of {len(outcomes)} seat(s)"
         + (f"; failed: {' '.join(o.key for o in failed)}" if failed else ""))
    return EXIT_PARTIAL if failed else EXIT_OK
