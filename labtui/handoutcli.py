"""Headless subcommands for the handout: `handout` writes every seat's card to files,
`mail` sends each seat's students their own card. The work is in
labtui/services/handout.py (and mailer.py); passwords are on the cards only, never printed."""

from __future__ import annotations

import argparse
from pathlib import Path

from labtui.context import Context
from labtui.course import Course
from labtui.headless import EXIT_OK, EXIT_PARTIAL, confirm, emit, with_course
from labtui.services import handout, mailer


@with_course
def cmd_handout(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    cards = handout.cards(ctx, course)
    paths = handout.write(ctx, course, Path(args.to) if args.to else None, found=cards)
    status = handout.deliveries(ctx, course, cards)
    for card in cards:
        emit(args, {"type": "card", "seat": card.seat, "state": card.state,
                    "address": card.address, "delivery": status[card.seat]},
             f"{card.seat:<12}{card.machine_short:<34}card {status[card.seat]}")
    changed = [seat for seat, said in status.items() if said == handout.CHANGED]
    folder = paths[0].parent
    emit(args, {"type": "written", "folder": str(folder), "files": [str(p) for p in paths],
                "cards": len(cards), "changed_since_sent": changed},
         f"wrote {len(cards)} card(s) to {folder} ({', '.join(p.name for p in paths)}; "
         "0600, readable by you only)."
         + (f" Changed since mailed: {' '.join(changed)} — send again with `labtui mail "
            f"{args.course} {' '.join(changed)}`." if changed else ""))
    return EXIT_OK


@with_course
def cmd_mail(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    ctx.refuse_if_read_only("mail")
    mailer.prepare(ctx, course)   # bad [mail] is exit 2 before anything is asked or built
    seats = handout.chosen_seats(course, args.seats)
    students = sum(len({s.email for s in seat.students if s.email}) for seat in seats)
    if not confirm(args, f"Mail {len(seats)} card(s), one per seat, to {students} "
                         f"student(s) of {course.id} by {mailer.describe(course)}?"):
        emit(args, {"type": "cancelled"}, "cancelled; nothing was sent.")
        return EXIT_OK
    # each seat's outcome is a CardMailed event, printed by the context's sink
    result = handout.mail(ctx, course, [s.id for s in seats])
    for seat, why in sorted(result.failed.items()):
        emit(args, {"type": "failed", "seat": seat, "error": why}, f"{seat}: FAILED — {why}")
    emit(args, {"type": "summary", "sent": sorted(result.sent), "failed": sorted(result.failed),
                "seats": len(seats)},
         f"mail: {len(result.sent)} of {len(seats)} card(s) sent"
         + (f", {len(result.failed)} failed ({' '.join(sorted(result.failed))}); send "
            f"those again with `labtui mail {args.course} {' '.join(sorted(result.failed))}`"
            if result.failed else "") + ".")
    return EXIT_PARTIAL if result.failed else EXIT_OK
