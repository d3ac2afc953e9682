"""Jupyter for both front ends: a seat's notebook (tunnel command, URL, state), the tunnel
the instructor opens, restart, push of templates and collect of every seat's notebooks.
The work on the machine is in labtui/services/notebooks.py; collect packs and brings home
with the same code as teardown's save (labtui/services/worksave.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labtui import lifecycle
from labtui.context import Context
from labtui.course import Course
from labtui.errors import InputError
from labtui.events import LogLine, SeatChanged
from labtui.services import handout, notebooks, ssh
from labtui.services.fanout import Outcome, fan_out
from labtui.services.inventory import Machine
from labtui.services.worksave import save_seat


def require_jupyter(course: Course) -> None:
    if course.jupyter is None or course.machines is None:
        raise InputError(f"{course.path}: the course has no [jupyter] section. Fix: add one "
                         "with port and templates (see sample_course.toml)")


@dataclass(frozen=True)
class Seat:
    """What ``labtui notebook COURSE SEAT`` shows: never the token itself, which is on the
    seat's card (0600) and in ``token_file``."""

    seat: str
    tunnel_command: str | None
    url: str                       # without the token
    token_file: str | None
    status: notebooks.Status | None
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"type": "notebook", "seat": self.seat, "tunnel": self.tunnel_command,
                "url": self.url, "token_file": self.token_file, "note": self.note or None,
                "status": self.status.as_json() if self.status else None}


def seat_notebook(ctx: Context, course: Course, name: str, *, live: bool = True) -> Seat:
    require_jupyter(course)
    assert course.jupyter is not None
    seat = course.seat(name).id
    [card] = handout.cards(ctx, course, [seat])
    state = ctx.state.course(course.id)
    path = notebooks.token_path(state, seat)
    found = None
    note = ""
    if card.state != "running":
        note = f"the machine is {card.state}; `labtui start {course.path.name} {seat}`"
    elif live:
        try:
            found = notebooks.status(lifecycle.remote_for(ctx, course),
                                     lifecycle.seat_machine(ctx, course, seat), state)
        except ssh.SshError as e:
            note = str(e)
    return Seat(seat, card.tunnel_command, notebooks.url(course.jupyter.port, None,
                                                         course.jupyter.server),
                str(path) if path.exists() else None, found, note)


def open_tunnel(ctx: Context, course: Course, name: str) -> notebooks.Tunnel:
    require_jupyter(course)
    seat = course.seat(name).id
    machine = lifecycle.seat_machine(ctx, course, seat)
    if machine.state != "running":
        raise InputError(f"{seat}'s machine is {machine.state}. Fix: `labtui start "
                         f"{course.path.name} {seat}`")
    return notebooks.open_tunnel(lifecycle.remote_for(ctx, course), machine, course,
                                 ctx.state.course(course.id))


def restart(ctx: Context, course: Course, name: str) -> int:
    """Restart the seat's notebook server (its lines go to the sink); the exit status."""
    require_jupyter(course)
    ctx.refuse_if_read_only("restart the notebook server")
    seat = course.seat(name).id
    [machine] = lifecycle.running_machines(ctx, course, [seat], strict=True,
                                           doing="restart its notebook server")

    def line(stream: str, text: str) -> None:
        ctx.sink.emit(LogLine(text, source=seat, stream=stream,
                              level="warning" if stream == "stderr" else "info"))
    return notebooks.restart(lifecycle.remote_for(ctx, course), machine,
                             ctx.state.course(course.id), line)


def statuses(ctx: Context, course: Course,
             machines: list[Machine] | None = None) -> dict[str, notebooks.Status]:
    """Every running seat's notebook state, asked on all machines at once."""
    require_jupyter(course)
    running = [m for m in (machines if machines is not None
                           else lifecycle.discover(ctx, course).machines)
               if m.state == "running"]
    remote = lifecycle.remote_for(ctx, course)
    state = ctx.state.course(course.id)
    outcomes = fan_out(running, lambda m: m.seat,
                       lambda m: notebooks.status(remote, m, state), task="notebooks")
    return {o.key: o.value if o.ok and o.value else notebooks.Status(o.key, "unknown",
                                                                     error=o.error)
            for o in outcomes}


def push(ctx: Context, course: Course, seats: list[str] | None = None) -> list[Outcome]:
    """New or updated templates to every running seat; a copy the student changed stays."""
    require_jupyter(course)
    ctx.refuse_if_read_only("notebooks push")
    assert course.jupyter is not None
    cfg = course.jupyter
    remote = lifecycle.remote_for(ctx, course)
    found = lifecycle.select(course, lifecycle.discover(ctx, course), seats)
    running = [m for m in found if m.state == "running"]

    def one(machine: Machine) -> list[notebooks.Placed]:
        client = remote.connect(machine, wait=30)
        try:
            placed = notebooks.place_templates(client, cfg)
        finally:
            client.close()
        ctx.sink.emit(SeatChanged(machine.seat, "notebooks",
                                  notebooks.describe_placed(placed) or "no templates"))
        return placed

    outcomes = fan_out(running, lambda m: m.seat, one, task="notebooks push", sink=ctx.sink,
                       on_interrupt=remote.stop)
    return outcomes + [Outcome(m.seat, error=f"not running ({m.state})")
                       for m in found if m.state != "running"]


def collect(ctx: Context, course: Course, to: Path, seats: list[str] | None = None, *,
            to_bucket: bool = False) -> list[Outcome]:
    """Every running seat's notebooks (``*.ipynb`` under the working folder) into
    ``to/<seat>/`` and, with ``to_bucket``, to ``s3://SCRATCH/notebooks/<seat>/``."""
    require_jupyter(course)
    assert course.jupyter is not None
    bucket = None
    if to_bucket:
        if course.storage is None or not course.storage.scratch_bucket:
            raise InputError(f"{course.path}: --to-bucket needs [storage] scratch_bucket. "
                             "Fix: add it, or collect without --to-bucket")
        bucket = course.storage.scratch_bucket
    base = course.jupyter.workdir.rstrip("/")
    remote = lifecycle.remote_for(ctx, course)
    found = lifecycle.select(course, lifecycle.discover(ctx, course), seats)
    running = [m for m in found if m.state == "running"]

    def one(machine: Machine) -> str:
        saved = save_seat(remote, machine, ("**/*.ipynb",), to / machine.seat, ctx.aws,
                          bucket, base=base, prefix="notebooks")
        where = str(saved.folder) + (f" and s3://{bucket}/{saved.bucket_prefix}"
                                     if saved.bucket_prefix else "")
        ctx.sink.emit(SeatChanged(machine.seat, "collected", f"{saved.files} file(s) to "
                                                             f"{where}"))
        return where

    outcomes = fan_out(running, lambda m: m.seat, one, task="notebooks collect",
                       sink=ctx.sink, on_interrupt=remote.stop)
    return outcomes + [Outcome(m.seat, error=f"not running ({m.state})")
                       for m in found if m.state != "running"]
