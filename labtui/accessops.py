"""Students' access, for both front ends: a seat's permissions table, key rotation, the
roster with what each seat has, and a teaching assistant's read-only identity. The IAM work
is in labtui/services/access.py."""

from __future__ import annotations

import os
import shlex
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from labtui import lifecycle, policy
from labtui.context import Context
from labtui.course import Course
from labtui.errors import InputError
from labtui.events import SeatChanged, StepDone
from labtui.services import access
from labtui.services.setup import install_aws_keys, reset_password, seat_log
from labtui.state import write_private


def require_access(course: Course) -> None:
    if not access.enabled(course):
        raise InputError(f"{course.path}: the course gives students no AWS identity. Fix: add "
                         "[access] users = true with the permissions students need (see "
                         "sample_course.toml)")


def seat_id(course: Course, name: str) -> str:
    """The seat of a seat id or a student id (a bad name is bad input, with a hint)."""
    return course.seat(name).id


def table(ctx: Context, course: Course, name: str) -> tuple[dict[str, Any], list[Any]]:
    """The seat's policy and its permissions table (each line decided by the evaluator),
    with the account's id in the ARNs when AWS tells it."""
    require_access(course)
    seat = seat_id(course, name)
    account = access.account_id(ctx.aws)
    return (policy.seat_policy(course, seat, account),
            policy.permissions_table(course, seat, account))


@dataclass
class Rotated:
    seat: str
    user: str
    access_key_id: str
    retired_key_id: str | None
    installed_on: list[str]
    password_file: Path | None


def rotate(ctx: Context, course: Course, name: str) -> Rotated:
    """New access keys and (with password login) a new password for the seat: the key is
    made, installed on every running machine that uses the identity, and only then is the
    old key deleted, so the seat is never without working keys."""
    ctx.refuse_if_read_only("rotate")
    require_access(course)
    seat = seat_id(course, name)
    machines = lifecycle.running_machines(ctx, course, [seat], strict=True, doing="rotate")
    if policy.shared(course):  # one key for the class: every running machine gets it
        machines = lifecycle.running_machines(ctx, course, None)
    state = ctx.state.course(course.id)
    remote = lifecycle.remote_for(ctx, course)
    if policy.uses_profiles(course):  # no key anywhere: the role's credentials rotate alone
        return Rotated(seat, policy.user_name(course, seat), "", None, [],
                       _new_password(ctx, course, remote, machines, seat))
    keys, old = access.rotate(ctx.aws, course, state, seat)
    installed = []
    for machine in machines:
        client = remote.connect(machine, wait=30)
        try:
            install_aws_keys(client, seat_log(state, machine.seat, ctx.sink), keys,
                             machine.region)
        finally:
            client.close()
        installed.append(machine.seat)
        ctx.sink.emit(SeatChanged(machine.seat, "keys rotated", keys.access_key_id))
    if old:
        access.retire(ctx.aws, keys.user, old)
    password_file = _new_password(ctx, course, remote, machines, seat)
    ctx.sink.emit(StepDone(f"{seat}: new keys on {len(installed)} machine(s)"
                           + ("; a new password" if password_file else "")
                           + (f"; old key {old} deleted" if old else "")))
    return Rotated(seat, keys.user, keys.access_key_id, old, installed, password_file)


def _handouts(ctx: Context, course: Course, found: Any) -> dict[str, str]:
    """Seat -> "sent <when>" or "changed since sent" (its card now differs from the one
    mailed, e.g. a new address after a restart), from labtui/services/handout.py's record;
    the cards are made from the machines the roster already read."""
    from labtui.services import handout

    records = handout.sent(ctx.state.course(course.id))
    mailed = [s.id for s in course.seats if s.id in records]
    if not mailed:
        return {}
    said = handout.deliveries(ctx, course, handout.cards(ctx, course, mailed, found=found))
    return {seat: f"sent {records[seat].get('at', '')}" if word == handout.SENT else word
            for seat, word in said.items()}


def _new_password(ctx: Context, course: Course, remote: Any, machines: list[Any],
                  seat: str) -> Path | None:
    if course.machines is None or course.machines.login != "password":
        return None
    machine = next(m for m in machines if m.seat == seat)
    return reset_password(remote, machine, ctx.state.course(course.id), ctx.sink,
                          course.machines.user)


@dataclass
class RosterRow:
    """One student of the roster and what their seat has."""

    student: str
    name: str
    email: str
    seat: str
    machine: str          # its state, or "-" when it has none
    cluster: str          # its id and state, or "-"
    credentials: bool     # an IAM user exists and its key is kept here
    handout: str          # when its card was mailed, "changed since sent", or "-"

    def to_json(self) -> dict[str, Any]:
        return {"type": "student", **asdict(self)}


@dataclass
class Roster:
    rows: list[RosterRow]
    removed: list[str]    # what AWS holds for seats no longer in the roster

    def to_json(self) -> dict[str, Any]:
        return {"type": "roster", "students": len(self.rows), "removed": self.removed}


def roster(ctx: Context, course: Course) -> Roster:
    """Every student with their seat's machine, cluster, credentials and handout; and the
    seats AWS still has that the roster no longer names (reported, never deleted here)."""
    from labtui import clusterops
    from labtui.services import inventory

    state = ctx.state.course(course.id)
    found = inventory.machines(ctx.aws, course.id, course.regions)
    by_seat = found.by_seat()
    live = clusterops.live(ctx, course) if course.clusters is not None else {}
    users = access.identity_names(ctx.aws, course) if access.enabled(course) else set()
    sent = _handouts(ctx, course, found)
    rows = []
    for seat in course.seats:
        machines = sorted(by_seat.get(seat.id, []), key=lambda m: m.state != "running")
        machine = machines[0].state if machines else "-"
        key = clusterops.key_of(course, seat.id) if course.clusters is not None else None
        cluster = live.get(key) if key else None
        has_keys = (access.enabled(course) and policy.user_name(course, seat) in users
                    and (policy.uses_profiles(course)
                         or access.stored_keys(state, course, seat.id) is not None))
        for student in seat.students:
            rows.append(RosterRow(student.id, student.name, student.email, seat.id, machine,
                                  f"{cluster.cluster_id} {cluster.state}" if cluster else "-",
                                  has_keys, sent.get(seat.id, "-")))
    known = {s.id for s in course.seats}
    removed = [f"seat {seat}: {len(ms)} machine(s) ({', '.join(m.instance_id for m in ms)})"
               for seat, ms in sorted(by_seat.items()) if seat and seat not in known]
    keys = set(course.cluster_units) if course.clusters is not None else set()
    removed += [f"cluster {c.cluster_id} of {k}" for k, c in sorted(live.items())
                if k not in keys]
    wanted = {policy.user_name(course, s) for s in course.seats}  # one name when shared
    removed += [f"IAM user {u}" for u in sorted(users - wanted)]
    return Roster(rows, removed)



@dataclass
class TeachingAssistant:
    """A teaching assistant's identity: its user, key id, credentials file and the command
    that opens the read-only console with it (never the secret)."""

    name: str
    user: str
    access_key_id: str
    credentials_file: Path
    command: str

    def to_json(self) -> dict[str, Any]:
        return {"type": "ta", "name": self.name, "user": self.user,
                "access_key_id": self.access_key_id,
                "credentials_file": str(self.credentials_file), "command": self.command}


def ta(ctx: Context, course: Course, name: str, to: str | None = None) -> TeachingAssistant:
    """Make (or keep) the teaching assistant ``name``'s IAM user with its read-only policy
    and key, and write that key as an AWS shared-credentials file (0600) with one profile
    named like the user: the default ``<course state folder>/ta/<NAME>.credentials``."""
    ctx.refuse_if_read_only("ta")
    user = policy.ta_user_name(course.id, name)
    if not policy.TA_NAME.fullmatch(name):
        raise InputError(f"teaching assistant name {name!r}: only letters, digits, - and _. "
                         "Fix: give a name such as `alice` or `ta_2`")
    if len(user) > 64:
        raise InputError(f"teaching assistant name {name!r}: the IAM user {user} would be "
                         f"{len(user)} characters, IAM allows 64. Fix: give a name of at most "
                         f"{64 - len(user) + len(name)} characters")
    target = Path(to).expanduser() if to else None
    if target is not None and not target.parent.is_dir():
        raise InputError(f"--to {to}: the folder {target.parent} does not exist. Fix: create "
                         "it, or leave out --to for the course's state folder")
    if target is not None and target.is_dir():
        raise InputError(f"--to {to} is a folder. Fix: name a file, e.g. {target / name}"
                         ".credentials")
    state = ctx.state.course(course.id)
    keys = access.ensure_ta(ctx.aws, course, state, name, ctx.sink)
    text = access.profile_file(user, keys)
    if target is None:
        target = write_private(state.root / "ta" / f"{name}.credentials", text)
    else:
        _write_0600(target, text)
    where = (f" --endpoint-url {shlex.quote(ctx.sandbox.endpoint_url)}"
             if ctx.sandbox is not None else "")
    command = (f"AWS_SHARED_CREDENTIALS_FILE={shlex.quote(str(target))} labtui --read-only "
               f"--profile {user}{where} {shlex.quote(str(course.path))}")
    ctx.sink.emit(StepDone(f"teaching assistant {name}: {user}, credentials in {target}"))
    return TeachingAssistant(name, user, keys.access_key_id, target, command)


def _write_0600(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically, in a folder the user named (whose
    own mode is left alone)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
