"""Headless subcommands for the class's machines: up, status, stop, start, reboot, down.

Each opens one Context, streams events as lines (or JSON lines with --json) and ends with
exit 0, or 1 naming each failed seat. Launching or deleting asks first on a terminal and
needs --yes without one.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from labtui import lifecycle
from labtui.context import Context, open_context
from labtui.course import Course, load
from labtui.errors import InputError
from labtui.events import FanoutSink, JsonlFileSink, StreamSink
from labtui.plan import Plan

EXIT_OK, EXIT_PARTIAL = 0, 1


def context_for(args: argparse.Namespace, course: Course) -> Context:
    sink = StreamSink(as_json=args.json)
    ctx = open_context(course, sandbox=args.sandbox, profile=args.profile,
                       state_dir=args.state_dir, sink=sink,
                       read_only=getattr(args, "read_only", False))
    ctx.sink = FanoutSink([sink, JsonlFileSink(ctx.state.course(course.id).event_log)])
    return ctx


def confirm(args: argparse.Namespace, question: str) -> bool:
    """Ask on a terminal; without one, --yes is the only way to go ahead."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise InputError(f"{question} — no terminal to ask. Fix: add --yes to confirm")
    answer = input(f"{question} [y/N] ").strip().lower()
    return answer in ("y", "yes")


def plan_question(plan: Plan) -> str:
    parts = [f"{len(r.create)} in {r.region}" for r in plan.regions if r.create]
    types = {t for r in plan.regions for t in r.instances}
    return (f"Launch {plan.to_create} machine(s) ({', '.join(parts)}; "
            f"{', '.join(sorted(types))}) for {plan.course.id}?")


def emit(args: argparse.Namespace, obj: dict[str, Any], human: str) -> None:
    if args.json:
        from labtui.cli import emit_json

        emit_json(obj)
    else:
        print(human, flush=True)


def with_course(func: Callable[..., int]):
    def run(args: argparse.Namespace, *extra: Any) -> int:
        course = load(args.course)
        ctx = context_for(args, course)
        try:
            return func(args, course, ctx, *extra)
        finally:
            ctx.close()
    return run


@with_course
def cmd_up(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    result = lifecycle.up(ctx, course, confirm=lambda plan: confirm(args, plan_question(plan)),
                          concurrency=args.concurrency)
    if result.cancelled:
        emit(args, {"type": "cancelled"}, "cancelled; nothing was created.")
        return EXIT_OK
    for seat, (origin, target) in sorted(result.moved.items()):
        emit(args, {"type": "moved", "seat": seat, "from": origin, "to": target},
             f"{seat}: moved from {origin} to {target} (no capacity)")
    for seat, why in sorted(result.failed.items()):
        emit(args, {"type": "failed", "seat": seat, "error": why}, f"{seat}: FAILED — {why}")
    for seat, why in sorted(result.setup_failed.items()):
        emit(args, {"type": "setup_failed", "seat": seat, "error": why},
             f"{seat}: setup FAILED — {why}")
    seats = len(course.seats)
    done = len(result.set_up)
    tried = done + len(result.setup_failed)
    emit(args, {"type": "summary", "launched": len(result.launched),
                "failed": sorted(result.failed), "set_up": done,
                "setup_failed": sorted(result.setup_failed), "seats": seats},
         f"up: {len(result.launched)} launched, {len(result.failed)} failed to launch; "
         f"setup done {done}/{tried}, failed {len(result.setup_failed)}; {seats} seats.")
    if result.setup_failed:
        emit(args, {"type": "hint", "rerun": sorted(result.setup_failed)},
             "rerun the failed seats with: labtui rerun-setup "
             f"{args.course} {' '.join(sorted(result.setup_failed))}")
    return EXIT_PARTIAL if result.failed or result.setup_failed else EXIT_OK


@with_course
def cmd_rerun_setup(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    chosen = lifecycle.running_machines(ctx, course, args.seats)
    outcomes = lifecycle.setup(ctx, course, chosen, concurrency=args.concurrency)
    for outcome in outcomes:
        emit(args, {"type": "setup", "seat": outcome.key, "ok": outcome.ok,
                    "error": outcome.error},
             f"{outcome.key}: setup {'done' if outcome.ok else 'FAILED — ' + outcome.error}")
    return EXIT_OK if all(o.ok for o in outcomes) else EXIT_PARTIAL


@with_course
def cmd_reset_password(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    path = lifecycle.reset_seat_password(ctx, course, args.seat)
    emit(args, {"type": "password_reset", "seat": args.seat, "stored_in": str(path)},
         f"{args.seat}: new password set on the machine; it is in {path} (0600). "
         "It is never printed.")
    return EXIT_OK


def cmd_exec(args: argparse.Namespace) -> int:
    command = " ".join(args.remote) if args.remote else ""
    if not command:
        raise InputError("exec needs a command after `--`. Fix: labtui exec COURSE SEAT -- "
                         "uname -a")
    if args.all and args.seats:
        raise InputError("give seats or --all, not both. Fix: drop the seat names or --all")
    if not args.all and not args.seats:
        raise InputError("exec needs seat names or --all. Fix: labtui exec COURSE s01 -- CMD")
    args.command_text = command
    return _exec(args)


@with_course
def _exec(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    width = max((len(s.id) for s in course.seats), default=4)

    def on_line(seat: str, stream: str, text: str) -> None:
        if args.json:
            emit(args, {"type": "line", "seat": seat, "stream": stream, "text": text}, "")
        else:
            out = sys.stderr if stream == "stderr" else sys.stdout
            print(f"{seat:<{width}} | {text}", file=out, flush=True)

    outcomes = lifecycle.exec_command(ctx, course, None if args.all else args.seats,
                                      args.command_text, on_line, timeout=args.timeout,
                                      concurrency=args.concurrency)
    bad = 0
    for outcome in outcomes:
        status = outcome.value if outcome.ok else None
        bad += status != 0
        emit(args, {"type": "exit", "seat": outcome.key, "status": status,
                    "error": outcome.error},
             f"{outcome.key}: exit {status}" if outcome.ok else
             f"{outcome.key}: FAILED — {outcome.error}")
    return EXIT_PARTIAL if bad else EXIT_OK


@with_course
def cmd_status(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    seats = lifecycle.status(ctx, course)
    if args.json:
        for seat in seats:
            emit(args, seat.to_json(), "")
        return EXIT_OK
    print(f"{'seat':<12}{'state':<10}{'region':<12}{'instance':<22}{'address':<22}{'setup':<9}"
          "error")
    for s in seats:
        print(f"{s.seat:<12}{s.state:<10}{s.region or '-':<12}{s.instance_id or '-':<22}"
              f"{s.address or '-':<22}{s.setup:<9}{s.error}")
    running = sum(1 for s in seats if s.state == "running")
    print(f"{running}/{len(seats)} running, "
          f"{sum(1 for s in seats if s.setup == 'done')} set up, "
          f"{sum(1 for s in seats if s.setup == 'failed')} failed.")
    return EXIT_OK


def _lifecycle_command(action: str, verb: str):
    @with_course
    def run(args: argparse.Namespace, course: Course, ctx: Context) -> int:
        seats = args.seats or None
        chosen = getattr(lifecycle, action)(ctx, course, seats)
        for machine in chosen:
            emit(args, {"type": verb, "seat": machine.seat, "instance_id": machine.instance_id},
                 f"{machine.seat}: {verb} ({machine.instance_id})")
        emit(args, {"type": "summary", verb: len(chosen)}, f"{verb} {len(chosen)} machine(s).")
        return EXIT_OK
    return run


cmd_stop = _lifecycle_command("stop", "stopped")
cmd_start = _lifecycle_command("start", "started")
cmd_reboot = _lifecycle_command("reboot", "rebooted")


@with_course
def cmd_down(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    if not confirm(args, f"Delete every resource of {course.id} in "
                         f"{', '.join(course.regions)} (machines, network, key pair)?"):
        emit(args, {"type": "cancelled"}, "cancelled; nothing was deleted.")
        return EXIT_OK
    report = lifecycle.down(ctx, course)
    emit(args, {"type": "summary", "removed": report.removed, "failed": report.failed},
         "down: " + (", ".join(f"{n} {k}" for k, n in sorted(report.removed.items()))
                     or "nothing to remove") + ".")
    for failure in report.failed:
        emit(args, {"type": "failed", "error": failure}, f"FAILED — {failure}")
    return EXIT_PARTIAL if report.failed else EXIT_OK


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 1000")
    return value


def concurrency(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", type=positive, default=32, metavar="N",
                        help="machines worked on at once (default 32)")


@with_course
def cmd_ssh(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    import subprocess

    argv = lifecycle.ssh_command(ctx, course, args.seat) + list(args.remote)
    return subprocess.call(argv)


@with_course
def cmd_console(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    machine = lifecycle.seat_machine(ctx, course, args.seat)
    text = lifecycle.console(ctx, machine)
    if args.json:
        emit(args, {"type": "console", "seat": args.seat, "instance_id": machine.instance_id,
                    "text": text}, "")
    else:
        print(text)
    return EXIT_OK


def add_parsers(sub: Any, common: Callable[..., None]) -> dict[str, Callable[..., int]]:
    p = sub.add_parser("up", help="launch one machine per seat and set each up",
                       description="Create the network, key pair and one machine per seat "
                                   "that lacks one, then set up every machine not yet set "
                                   "up; rerunning converges and never doubles a seat.")
    common(p)
    concurrency(p)
    p = sub.add_parser("status", help="every seat: machine, state, address, setup",
                       description="One line (or JSON object) per seat, found from tags.")
    common(p)
    for name, text in (("stop", "stop machines (all seats or the named ones)"),
                       ("start", "start stopped machines (all seats or the named ones)")):
        p = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        common(p)
        p.add_argument("seats", nargs="*", metavar="SEAT", help="seat ids (default: all)")
    p = sub.add_parser("reboot", help="reboot the named seats' machines",
                       description="Reboot the machines of the named seats.")
    common(p)
    p.add_argument("seats", nargs="+", metavar="SEAT", help="seat ids")
    p = sub.add_parser("down", help="delete every resource of the course",
                       description="Terminate the class's machines, cancel spot requests, "
                                   "delete the key pair, security group and network labtui "
                                   "created.")
    common(p)
    p = sub.add_parser("rerun-setup", help="run setup again on the named seats",
                       description="Run the machine setup again; steps already done are "
                                   "skipped, so it finishes what a dropped connection left.")
    common(p)
    concurrency(p)
    p.add_argument("seats", nargs="+", metavar="SEAT", help="seat ids")
    p = sub.add_parser("reset-password", help="give a seat a new password",
                       description="Generate a new password, set it on the seat's machine "
                                   "and keep it in the state folder (0600); never printed.")
    common(p)
    p.add_argument("seat", metavar="SEAT", help="seat id")
    p = sub.add_parser("exec", help="run a command on seats' machines, output streamed",
                       description="Run a command on the named seats (or --all) at once; "
                                   "each line is prefixed by its seat; exit 1 if any seat's "
                                   "command failed.",
                       usage="labtui exec COURSE (SEAT ... | --all) [options] -- COMMAND ...")
    common(p)
    p.add_argument("seats", nargs="*", metavar="SEAT", help="seat ids")
    concurrency(p)
    p.add_argument("--all", action="store_true", help="every seat with a running machine")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="give up on a seat's command after this long")
    p = sub.add_parser("ssh", help="open a shell on a seat's machine (pinned host key)",
                       description="Run ssh to the seat's machine with its pinned host key and "
                                   "the course key; anything after -- is the remote command.")
    common(p)
    p.add_argument("seat", metavar="SEAT", help="seat id")
    p = sub.add_parser("console", help="a seat machine's console output",
                       description="Print the console output of the seat's machine (in the "
                                   "sandbox followed by its journal).")
    common(p)
    p.add_argument("seat", metavar="SEAT", help="seat id")
    return {"ssh": cmd_ssh, "console": cmd_console, "up": cmd_up,
            "rerun-setup": cmd_rerun_setup, "reset-password": cmd_reset_password,
            "exec": cmd_exec, "status": cmd_status, "stop": cmd_stop, "start": cmd_start,
            "reboot": cmd_reboot, "down": cmd_down}
