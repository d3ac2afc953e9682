"""Headless subcommands for the class's machines: up, status, stop, start, reboot, down.

Each opens one Context, streams events as lines (or JSON lines with --json) and ends with
exit 0, or 1 naming each failed seat. Launching or deleting asks first on a terminal and
needs --yes without one.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labtui import lifecycle
from labtui.context import Context, open_context
from labtui.course import Course, load
from labtui.errors import InputError
from labtui.events import Event, StreamSink
from labtui.output import emit_json, stdout_closed
from labtui.plan import Plan

EXIT_OK, EXIT_PARTIAL = 0, 1


def write_out(write: Callable[[], None]) -> None:
    """Write to the terminal or a pipe; when the reader is gone (``| head -1``) the rest of
    the output is dropped and the work goes on (the event log still records it)."""
    try:
        write()
    except BrokenPipeError:
        stdout_closed()


class PipeSafeSink:
    """A StreamSink whose closed stdout never stops the work it reports on."""

    def __init__(self, sink: StreamSink) -> None:
        self._sink = sink

    def emit(self, event: Event) -> None:
        write_out(lambda: self._sink.emit(event))


def context_for(args: argparse.Namespace, course: Course) -> Context:
    sink = PipeSafeSink(StreamSink(as_json=args.json,
                                   seat_width=max((len(s.id) for s in course.seats), default=4)))
    return open_context(course, sandbox=args.sandbox, profile=args.profile,
                        state_dir=args.state_dir, sink=sink,
                        read_only=getattr(args, "read_only", False),
                        endpoint_url=getattr(args, "endpoint_url", None))


def confirm(args: argparse.Namespace, question: str) -> bool:
    """Ask on a terminal; without one, --yes is the only way to go ahead."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise InputError(f"{question} — no terminal to ask. Fix: add --yes to confirm")
    try:
        answer = input(f"{question} [y/N] ").strip().lower()
    except EOFError:  # Ctrl-D: no
        print(file=sys.stderr)
        return False
    return answer in ("y", "yes")


def plan_question(plan: Plan) -> str:
    parts = [f"{len(r.create)} in {r.region}" for r in plan.regions if r.create]
    types = {t for r in plan.regions for t in r.instances}
    budget = " — over the course's budget_usd" if plan.over_budget else ""
    what = f"{plan.to_create} machine(s) ({', '.join(parts) or 'none new'}"
    if plan.clusters_to_start:
        nodes = plan.course.clusters.nodes if plan.course.clusters else 0
        what += (f"; {len(plan.clusters_to_start)} EMR cluster(s) of {nodes} node(s): "
                 f"{', '.join(plan.clusters_to_start[:6])}"
                 + (" ..." if len(plan.clusters_to_start) > 6 else ""))
    return (f"Launch {what}; {', '.join(sorted(types))}) for {plan.course.id}? When "
            f"everything runs: about ${plan.hourly_usd:.2f}/hour, "
            f"${plan.daily_usd:.2f}/day{budget}.")


def emit(args: argparse.Namespace, obj: dict[str, Any], human: str) -> None:
    if args.json:
        write_out(lambda: emit_json(obj))
    else:
        write_out(lambda: print(human, flush=True))


def with_course(func: Callable[..., int]):
    def run(args: argparse.Namespace, *extra: Any) -> int:
        course = lifecycle.only_region(load(args.course), getattr(args, "only_region", None),
                                       any_region=args.command == "down")
        ctx = context_for(args, course)
        try:
            return func(args, course, ctx, *extra)
        finally:
            ctx.close()
    return run


@with_course
def cmd_plan(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    the_plan = lifecycle.plan(ctx, course)
    if args.json:
        for region in the_plan.regions:
            emit(args, region.to_json(), "")
        emit(args, the_plan.summary_json() | {"where": ctx.where}, "")
        return EXIT_PARTIAL if the_plan.unplaced else EXIT_OK
    print(f"Plan for {course.name} ({course.id}) on {ctx.where}")
    print(f"{'region':<16}{'seats':>6}{'new':>5}{'kept':>5}{'clusters':>9}{'instances':>10}"
          f"{'vCPUs':>7}  {'new vCPUs / free':<24}{'$/hour':>9}")
    for r in the_plan.regions:
        quota = ", ".join(f"{r.new_vcpus.get(c, 0):g}/{r.headroom[c]:g}" for c in r.headroom)
        print(f"{r.region:<16}{len(r.seats):>6}{len(r.create):>5}{len(r.keep):>5}"
              f"{r.clusters:>9}{sum(r.instances.values()):>10}{r.vcpus:>7}  {quota:<24}"
              f"{r.hourly_usd:>9.2f}")
    print(f"{'total':<16}{sum(len(r.seats) for r in the_plan.regions):>6}"
          f"{the_plan.to_create:>5}{sum(len(r.keep) for r in the_plan.regions):>5}"
          f"{sum(r.clusters for r in the_plan.regions):>9}{the_plan.instances:>10}"
          f"{the_plan.vcpus:>7}  {'':<24}{the_plan.hourly_usd:>9.2f}")
    cost = (f"about ${the_plan.hourly_usd:.2f}/hour, ${the_plan.daily_usd:.2f}/day "
            "(spot at its max price)")
    if the_plan.unpriced:
        cost += f"; no price known for {', '.join(the_plan.unpriced)} (not counted)"
    print(f"cost: {cost}.")
    if course.budget_usd is not None:
        verdict = "OVER" if the_plan.over_budget else "within"
        print(f"budget: ${course.budget_usd:.2f}/day — a day of class is {verdict} it.")
    print(f"max_instances {course.max_instances}: "
          f"{'within the cap' if the_plan.instances <= course.max_instances else 'OVER'}.")
    for machine in the_plan.surplus:
        print(f"surplus: {machine.instance_id} ({machine.seat}, {machine.region}) is not "
              "needed by the course")
    if the_plan.unplaced:
        print(f"DOES NOT FIT: {lifecycle.shortfall_message(the_plan)}")
        return EXIT_PARTIAL
    return EXIT_OK


@with_course
def cmd_quotas(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    _, found = lifecycle.facts(ctx, course)
    for region in course.regions:
        for quota in found[region].values():
            pending = ", ".join(f"{r.get('DesiredValue'):g} {r.get('Status')}"
                                for r in quota.pending)
            emit(args, quota.to_json(),
                 f"{region:<16}{quota.name:<28}{quota.value:>8g}{quota.usage:>8g} used"
                 f"{quota.headroom:>8g} free" + (f"  requested: {pending}" if pending else "")
                 + ("" if not quota.from_default else f"  ({quota.source})"))
    return EXIT_OK


@with_course
def cmd_quota_request(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    increase = lifecycle.quota_increase(ctx, course, args.region, args.vcpus,
                                        instance_type=args.instance_type, spot=args.spot)
    ctx.refuse_if_read_only("quota-request")
    if not confirm(args, increase.question):
        return EXIT_OK
    lifecycle.request_quota(ctx, increase)  # the sink prints what was asked
    return EXIT_OK


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
    for key, why in sorted(result.clusters_failed.items()):
        emit(args, {"type": "cluster_failed", "key": key, "error": why},
             f"{key}: cluster FAILED — {why}")
    seats = len(course.seats)
    done = len(result.set_up)
    tried = done + len(result.setup_failed)
    clusters = (f" clusters: {len(result.clusters_started)} started, "
                f"{len(result.clusters_failed)} failed." if course.clusters else "")
    emit(args, {"type": "summary", "launched": len(result.launched),
                "failed": sorted(result.failed), "set_up": done,
                "setup_failed": sorted(result.setup_failed), "seats": seats,
                "clusters_started": result.clusters_started,
                "clusters_failed": sorted(result.clusters_failed)},
         f"up: {len(result.launched)} launched, {len(result.failed)} failed to launch; "
         f"setup done {done}/{tried}, failed {len(result.setup_failed)}; {seats} seats."
         + clusters)
    if result.setup_failed:
        emit(args, {"type": "hint", "rerun": sorted(result.setup_failed)},
             "rerun the failed seats with: labtui rerun-setup "
             f"{args.course} {' '.join(sorted(result.setup_failed))}")
    return (EXIT_PARTIAL if result.failed or result.setup_failed or result.clusters_failed
            else EXIT_OK)


@with_course
def cmd_rerun_setup(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    chosen = lifecycle.running_machines(ctx, course, args.seats, strict=True)
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
    if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
        raise InputError(f"--timeout {args.timeout:g} is not a number of seconds above 0. "
                         "Fix: give one, e.g. --timeout 60, or leave it out to wait as long "
                         "as the command runs")
    args.command_text = command
    return _exec(args)


@with_course
def _exec(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    # The output comes as LogLine events through ctx.sink: printed `seat | text` (stderr
    # lines on stderr) or as JSON lines, and kept in the event log.
    outcomes = lifecycle.exec_command(ctx, course, None if args.all else args.seats,
                                      args.command_text, timeout=args.timeout,
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
          f"{'$ so far':>9}  error")
    for s in seats:
        cost = "-" if s.cost_usd is None else f"{s.cost_usd:.2f}"
        print(f"{s.seat:<12}{s.state:<10}{s.region or '-':<12}{s.instance_id or '-':<22}"
              f"{s.address or '-':<22}{s.setup:<9}{cost:>9}  {s.error}")
    running = sum(1 for s in seats if s.state == "running")
    spent = sum(s.cost_usd or 0.0 for s in seats)
    hourly = sum(s.hourly_usd or 0.0 for s in seats if s.state == "running")
    print(f"{running}/{len(seats)} running, "
          f"{sum(1 for s in seats if s.setup == 'done')} set up, "
          f"{sum(1 for s in seats if s.setup == 'failed')} failed; machines cost "
          f"${hourly:.2f}/hour now, ${spent:.2f} since they last started.")
    return EXIT_OK


def _lifecycle_command(action: str, verb: str, **options: Any):
    @with_course
    def run(args: argparse.Namespace, course: Course, ctx: Context) -> int:
        seats = args.seats or None
        chosen = getattr(lifecycle, action)(ctx, course, seats, **options)
        for machine in chosen:
            emit(args, {"type": verb, "seat": machine.seat, "instance_id": machine.instance_id},
                 f"{machine.seat}: {verb} ({machine.instance_id})")
        emit(args, {"type": "summary", verb: len(chosen)}, f"{verb} {len(chosen)} machine(s).")
        return EXIT_OK
    return run


cmd_stop = _lifecycle_command("stop", "stopped")
cmd_start = _lifecycle_command("start", "started")
cmd_reboot = _lifecycle_command("reboot", "rebooted", strict=True)


@with_course
def cmd_down(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    if args.delete_results and not args.delete_buckets:
        raise InputError("--delete-results only applies with --delete-buckets. Fix: add "
                         "--delete-buckets, or drop --delete-results")
    save_to = Path(args.save_to).expanduser() if args.save_to else None
    if save_to is not None and save_to.exists() and not save_to.is_dir():
        raise InputError(f"--save-to {args.save_to}: is not a folder. Fix: name a folder "
                         "(it is created when missing)")
    if not confirm(args, f"Delete every resource of {course.id} (machines, clusters, "
                         f"network, key pairs, alarms, users) in {', '.join(course.regions)} "
                         "and wherever else its tags are found?"):
        emit(args, {"type": "cancelled"}, "cancelled; nothing was deleted.")
        return EXIT_OK
    options = lifecycle.DownOptions(save=not args.no_save, save_to=save_to, force=args.force,
                                    images=args.images,
                                    delete_buckets=args.delete_buckets,
                                    delete_results=args.delete_results,
                                    all_regions=args.only_region is None,
                                    final_snapshot=not args.no_final_snapshot)
    report = lifecycle.down(ctx, course, options)
    emit(args, {"type": "summary", "removed": report.removed, "failed": report.failed,
                "kept": report.kept, "left": [str(left) for left in report.left]},
         "down: " + (", ".join(f"{n} {k}" for k, n in sorted(report.removed.items()))
                     or "nothing to remove") + ".")
    for failure in report.failed:
        emit(args, {"type": "failed", "error": failure}, f"FAILED — {failure}")
    for kept in report.kept:
        emit(args, {"type": "kept", "what": kept}, f"kept — {kept}")
    for left in report.left:
        emit(args, {"type": "left", "region": left.region, "kind": left.kind, "id": left.id,
                    "why": left.why}, f"still there — {left}")
    if not report.left:
        emit(args, {"type": "verified", "left": 0},
             f"verified: nothing of {course.id} is left"
             + (" but what is kept above." if report.kept else "."))
    return EXIT_PARTIAL if report.failed or report.left else EXIT_OK


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


def cmd_sweep(args: argparse.Namespace) -> int:
    """`labtui sweep`: no course file; a dry run unless --yes / --include-untagged."""
    lifecycle.parse_regions(args.regions)  # a bad name is exit 2 before anything starts
    # Progress and log lines go to stderr, so stdout holds the findings alone.
    ctx = open_context(None, sandbox=args.sandbox, profile=args.profile,
                       state_dir=args.state_dir, sink=StreamSink(sys.stderr, as_json=args.json))
    try:
        return _sweep(args, ctx)
    finally:
        ctx.close()


def sweep_question(findings: list[Any]) -> str:
    from labtui.services.sweep import total

    untagged = sum(1 for f in findings if not f.tagged)
    return (f"Delete {len(findings)} resource(s) ({len(findings) - untagged} labtui, "
            f"{untagged} untagged) in {len({f.region for f in findings})} region(s), about "
            f"${total(findings):.2f}/month?")


def _sweep(args: argparse.Namespace, ctx: Context) -> int:
    from labtui.services.sweep import PRICE_DATE, age_text

    delete = args.yes or args.include_untagged

    def ask(findings: list[Any]) -> bool:
        if not args.include_untagged:
            return True  # --yes: labtui's own, as asked
        return confirm(args, sweep_question(findings))

    outcome = lifecycle.sweep(ctx, args.regions, delete=delete,
                              include_untagged=args.include_untagged, confirm=ask)
    scan = outcome.scan
    if args.json:
        for finding in scan.findings:
            emit(args, finding.to_json(), "")
    else:
        print(f"{'region':<16}{'kind':<18}{'id':<28}{'course':<18}{'age':>6}{'$/month':>10}")
        for f in scan.findings:
            money = "?" if f.monthly_usd is None else f"{f.monthly_usd:.2f}"
            print(f"{f.region:<16}{f.kind:<18}{f.id:<28}{f.course:<18}{age_text(f.age_s):>6}"
                  f"{money:>10}")
    for removal in outcome.removals:
        f = removal.finding
        emit(args, {"type": "removed" if removal.ok else "failed", "region": f.region,
                    "kind": f.kind, "id": f.id, "course": f.course, "error": removal.error},
             f"{f.region} {f.kind} {f.id}: " + ("deleted" if removal.ok else
                                               f"FAILED — {removal.error}"))
    for f in outcome.left:
        emit(args, {"type": "left", "region": f.region, "kind": f.kind, "id": f.id},
             f"{f.region} {f.kind} {f.id}: still there")
    labtui_count = sum(1 for f in scan.findings if f.tagged)
    unpriced = sum(1 for f in scan.findings if f.monthly_usd is None)
    deleted = sum(1 for r in outcome.removals if r.ok)
    emit(args, {"type": "summary", "found": len(scan.findings), "labtui": labtui_count,
                "untagged": len(scan.findings) - labtui_count,
                "monthly_usd": round(scan.monthly_usd, 2), "unpriced": unpriced,
                "prices_of": PRICE_DATE, "regions": len(scan.regions),
                "unread_regions": scan.failed, "seconds": round(scan.seconds, 2),
                "deleted": deleted, "failed": len(outcome.failed), "left": len(outcome.left),
                "cancelled": outcome.cancelled},
         f"total: {len(scan.findings)} found ({labtui_count} labtui, "
         f"{len(scan.findings) - labtui_count} untagged) in {len(scan.regions)} region(s), "
         f"about ${scan.monthly_usd:.2f}/month (estimate, prices of {PRICE_DATE}"
         + (f"; {unpriced} unpriced" if unpriced else "") + f"); {scan.seconds:.1f} s."
         + (f" {len(scan.failed)} region(s) could not be read." if scan.failed else ""))
    if outcome.cancelled:
        emit(args, {"type": "cancelled"}, "cancelled; nothing was deleted.")
        return EXIT_OK
    if not delete:
        if scan.findings and not args.json:
            print("To delete labtui's: `labtui sweep --yes`; the untagged too: add "
                  "--include-untagged.")
        return EXIT_PARTIAL if scan.findings or scan.failed else EXIT_OK
    if outcome.removals and not args.json:
        print(f"deleted {deleted} of {len(outcome.chosen)}; {len(outcome.failed)} failed, "
              f"{len(outcome.left)} still there.")
    return EXIT_PARTIAL if outcome.failed or outcome.left or scan.failed else EXIT_OK
