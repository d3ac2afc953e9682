"""The machines view's jobs: what up, exec, setup, reboot, stop, start and down do when the
console runs them, and the one-line summary each leaves in a notification and the log.

Each job is a plain function of the context (``Job``), run by ``LabApp.start_job`` in a
thread worker; it calls ``labtui.lifecycle`` — the same use cases the headless commands call —
reports through ``ctx.sink`` and never touches a widget. Nothing here imports boto3 or
paramiko (lifecycle and the services do that), and nothing here shows anything: a job that
needs an answer (up's confirmation) takes it as a callback from the view.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from labtui import lifecycle
from labtui.course import Course
from labtui.events import LogLine, StepDone

if TYPE_CHECKING:
    from labtui.context import Context
    from labtui.plan import Plan

ERROR_WIDTH = 60


# -- wording ---------------------------------------------------------------------------------

def one_line(text: str, width: int = ERROR_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def names(seats: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(seats[:limit])
    return shown + (f" and {len(seats) - limit} more" if len(seats) > limit else "")


def count(seats: Sequence[str], noun: str) -> str:
    return f"{len(seats)} {noun}{'' if len(seats) == 1 else 's'}"


# -- the jobs ---------------------------------------------------------------------------------

Job = Callable[["Context"], str | None]


def up_job(course: Course, confirm: Callable[[Plan], bool]) -> Job:
    """Launch the missing machines and set them up; ``confirm(plan)`` answers (from the
    worker's thread) whether to launch what the plan shows."""
    def run(ctx: Context) -> str:
        result = lifecycle.up(ctx, course, confirm=confirm, cancelled=_cancelled_or())
        return describe_up(result)
    return run


def describe_up(result: lifecycle.UpResult) -> str:
    if result.cancelled:
        return "Up cancelled: nothing was launched."
    seats = len(result.plan.course.seats)
    if result.plan.to_create == 0:
        text = f"Nothing to launch: every seat has its machine ({seats} seats)."
    else:
        text = f"Launched {len(result.launched)} of {result.plan.to_create} machine(s)."
    if result.failed:
        text += " Could not launch: " + "; ".join(
            f"{seat} ({one_line(why, 80)})" for seat, why in sorted(result.failed.items())) + "."
    for seat, (origin, target) in sorted(result.moved.items()):
        text += f" {seat} moved from {origin} to {target} (no capacity)."
    if result.set_up or result.setup_failed:
        text += f" Set up {len(result.set_up)}"
        if result.setup_failed:
            text += f", setup failed on {names(sorted(result.setup_failed))}"
        text += "."
    return text


def exec_job(course: Course, seats: list[str], command: str) -> Job:
    def run(ctx: Context) -> str:
        ctx.sink.emit(LogLine(f"exec on {names(seats)}: {command}"))
        outcomes = lifecycle.exec_command(ctx, course, seats, command,  # output as events
                                          cancelled=_cancelled_or())
        ran = {o.key for o in outcomes}
        for outcome in outcomes:
            if outcome.ok:
                ctx.sink.emit(LogLine(f"exit {outcome.value}", source=outcome.key,
                                      level="info" if outcome.value == 0 else "warning"))
            else:
                ctx.sink.emit(LogLine(f"failed: {outcome.error}", source=outcome.key,
                                      level="error"))
        skipped = [s for s in seats if s not in ran]
        for seat in skipped:
            ctx.sink.emit(LogLine("not running — skipped", source=seat, level="warning"))
        zero = sum(1 for o in outcomes if o.ok and o.value == 0)
        text = f"exec: exit 0 on {zero} of {len(seats)} seat(s)"
        nonzero = [o.key for o in outcomes if o.ok and o.value != 0]
        failed = [o.key for o in outcomes if not o.ok]
        if nonzero:
            text += f"; non-zero exit on {names(nonzero)}"
        if failed:
            text += f"; failed on {names(failed)}"
        if skipped:
            text += f"; not running: {names(skipped)}"
        ctx.sink.emit(StepDone(text, ok=not (nonzero or failed or skipped)))
        return text
    return run


def setup_job(course: Course, seats: list[str],
              cancelled: Callable[[], bool] = lambda: False) -> Job:
    def run(ctx: Context) -> str:
        chosen = lifecycle.running_machines(ctx, course, seats)
        skipped = sorted(set(seats) - {m.seat for m in chosen}, key=seats.index)
        if skipped:
            ctx.sink.emit(LogLine(f"setup: not running, skipped: {names(skipped)}",
                                  level="warning"))
        if not chosen:
            return f"Setup: no running machine among {names(seats)}."
        outcomes = lifecycle.setup(ctx, course, chosen, cancelled=_cancelled_or(cancelled))
        failed = [o.key for o in outcomes if not o.ok]
        text = f"Setup done on {len(outcomes) - len(failed)} of {len(outcomes)} machine(s)"
        return text + (f"; failed on {names(failed)}." if failed else ".")
    return run


def reboot_job(course: Course, seats: list[str]) -> Job:
    def run(ctx: Context) -> str:
        done = lifecycle.reboot(ctx, course, seats)
        return f"Rebooted {len(done)} machine(s): {names([m.seat for m in done]) or 'none'}."
    return run


def stop_job(course: Course, seats: list[str]) -> Job:
    def run(ctx: Context) -> str:
        done = lifecycle.stop(ctx, course, seats)
        return f"Stopped {len(done)} machine(s)."
    return run


def start_job(course: Course, seats: list[str]) -> Job:
    def run(ctx: Context) -> str:
        done = lifecycle.start(ctx, course, seats)
        return f"Started {len(done)} machine(s)."
    return run


def down_job(course: Course) -> Job:
    def run(ctx: Context) -> str:
        report = lifecycle.down(ctx, course)
        removed = ", ".join(f"{n} {kind}" for kind, n in sorted(report.removed.items()))
        text = f"Down: removed {removed or 'nothing'}."
        if report.failed:
            text += f" Could not remove {len(report.failed)}: " + "; ".join(report.failed[:5])
        if report.kept:
            text += f" Kept {len(report.kept)}: " + "; ".join(report.kept[:5])
        text += (f" Still there: {len(report.left)} (" + "; ".join(
            str(left) for left in report.left[:5]) + ")." if report.left
            else f" Verified: nothing of {course.id} is left.")
        return text
    return run


def _cancelled_or(cancelled: Callable[[], bool] = lambda: False) -> Callable[[], bool]:
    """``cancelled``, or the worker running this job cancelled (q, the console closing)."""
    from textual.worker import NoActiveWorker, get_current_worker

    try:
        worker: Any = get_current_worker()
    except NoActiveWorker:
        return cancelled
    return lambda: cancelled() or worker.is_cancelled
