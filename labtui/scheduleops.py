"""The class day for both front ends: what the schedule does next, and ``tick`` — what is
due now (machines started before a session and stopped after it, clusters started before
the day's first session and terminated after its last), then idle machines warned and
stopped. Meant for cron or a systemd timer: labtui runs no daemon of its own.

The time of the last tick is kept in the course's state folder (``schedule.json``); a seat's
idleness on AWS, in its machine's tags (``labtui:idle-since``, ``labtui:idle-warned``), so the
console shows it and any computer's tick continues it.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from labtui import clusterops, lifecycle
from labtui.context import Context
from labtui.course import Course
from labtui.errors import InputError, LabError
from labtui.events import LogLine, Problem, SeatChanged, StepDone
from labtui.schedule import Action, due, running_window, upcoming
from labtui.services import ssh, tags
from labtui.services.aws import translate_errors
from labtui.services.inventory import Machine
from labtui.state import read_json, write_json

IDLE_SINCE, IDLE_WARNED = "labtui:idle-since", "labtui:idle-warned"

PROBE = r"""
import json, os, subprocess, time
me = {os.getpid(), os.getppid()}
def ticks():
    total = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) not in me:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (OSError, IndexError, ValueError):
                pass
    return total
def sessions():
    count = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().split(b"\0")[0].decode("utf-8", "replace")
            except OSError:
                continue
            if cmd.startswith(("sshd:", "sshd-session:")) and "@" in cmd:
                count += 1
    return count
a, t0 = ticks(), time.monotonic()
time.sleep(2)
b, t1 = ticks(), time.monotonic()
cpu = 100.0 * (b - a) / os.sysconf("SC_CLK_TCK") / (t1 - t0) / (os.cpu_count() or 1)
busy = 0
if os.path.exists("/usr/local/bin/labtui-notebook"):
    out = subprocess.run(["/usr/local/bin/labtui-notebook", "status", "--json"],
                         capture_output=True, text=True).stdout
    try:
        busy = int(json.loads(out.splitlines()[-1]).get("busy") or 0)
    except (ValueError, IndexError):
        busy = 0
print(json.dumps({"cpu": round(max(cpu, 0.0), 2), "sessions": max(sessions() - 1, 0),
                  "busy_kernels": busy}))
"""


def require_schedule(course: Course) -> None:
    if course.schedule is None:
        raise InputError(f"{course.path}: the course has no [schedule] section. Fix: add one "
                         "with timezone and sessions (see sample_course.toml)")


def now_utc() -> datetime:
    return datetime.now(UTC)


def _state_file(ctx: Context, course: Course) -> Path:
    return ctx.state.course(course.id).root / "schedule.json"


def last_tick(ctx: Context, course: Course) -> datetime | None:
    data = read_json(_state_file(ctx, course))
    try:
        return datetime.fromisoformat(data["last_tick"]) if isinstance(data, dict) else None
    except (KeyError, ValueError, TypeError):
        return None


@dataclass
class Outlook:
    """What ``labtui schedule`` shows."""

    now: datetime
    timezone: str
    machines_should_run: bool
    clusters_should_run: bool
    next: list[Action]
    last_tick: datetime | None
    cron: str
    systemd: dict[str, str]

    def as_json(self) -> dict[str, Any]:
        return {"type": "schedule", "now": self.now.isoformat(), "timezone": self.timezone,
                "machines_should_run": self.machines_should_run,
                "clusters_should_run": self.clusters_should_run,
                "next": [a.as_json() for a in self.next],
                "last_tick": self.last_tick.isoformat() if self.last_tick else None,
                "cron": self.cron, "systemd": self.systemd}


def command_line(ctx: Context, course: Course) -> str:
    """The tick's command line, absolute, as cron or systemd should run it: this state
    folder, and the sandbox when this runs on it."""
    program = shutil.which("labtui") or f"{sys.executable} -m labtui"
    extra = " --sandbox" if ctx.aws.settings.sandbox else ""
    return (f"{program} tick {shlex.quote(str(course.path.resolve()))} --yes{extra} "
            f"--state-dir {shlex.quote(str(ctx.state.root))}")


def outlook(ctx: Context, course: Course, now: datetime | None = None) -> Outlook:
    require_schedule(course)
    assert course.schedule is not None
    now = now or now_utc()
    s = course.schedule
    log = ctx.state.course(course.id).root / "tick.log"
    line = command_line(ctx, course)
    name = f"labtui-tick-{course.id}"
    service = (f"[Unit]\nDescription=labtui's schedule for {course.id}\n\n[Service]\n"
               f"Type=oneshot\nExecStart={line}\n")
    timer = (f"[Unit]\nDescription=labtui's schedule for {course.id}, every 5 minutes\n\n"
             "[Timer]\nOnCalendar=*:0/5\nPersistent=true\n\n[Install]\nWantedBy=timers.target\n")
    return Outlook(now.astimezone(s.zone), s.timezone, running_window(s, now, "machines"),
                   running_window(s, now, "clusters"),
                   [Action(a.at.astimezone(s.zone), a.what, a.until.astimezone(s.zone), a.why)
                    for a in upcoming(s, now, count=12)
                    if course.clusters is not None or "clusters" not in a.what][:6],
                   last_tick(ctx, course),
                   f"*/5 * * * * {line} >> {shlex.quote(str(log))} 2>&1",
                   {f"{name}.service": service, f"{name}.timer": timer})



def describe(course: Course, found: Outlook) -> list[str]:
    """What ``labtui schedule`` prints and the console's schedule screen shows."""
    zone = found.timezone
    out = [f"{course.id}: now {found.now:%Y-%m-%d %H:%M} ({zone}); machines "
           f"{'should run' if found.machines_should_run else 'should be stopped'}, clusters "
           f"{'should run' if found.clusters_should_run else 'should be off'}"]
    last = found.last_tick
    out.append(f"last tick: {last.astimezone(found.now.tzinfo):%Y-%m-%d %H:%M}" if last
               else "last tick: never (install one of the lines below)")
    out.append("next:")
    out += [f"  {action.at:%a %Y-%m-%d %H:%M}  {action.what:<20} {action.why}"
            for action in found.next]
    if not found.next:
        out.append("  nothing: every session is over")
    out += ["", "run `labtui tick` every 5 minutes — with cron (`crontab -e`):",
            f"  {found.cron}",
            "or a systemd user timer (~/.config/systemd/user/, then "
            "`systemctl --user enable --now " + next(iter(found.systemd)).replace(
                ".service", ".timer") + "`):"]
    for name, text in found.systemd.items():
        out.append(f"  --- {name}")
        out += [f"  {line}" for line in text.splitlines()]
    return out

@dataclass
class TickResult:
    done: list[Action] = field(default_factory=list)
    warned: list[str] = field(default_factory=list)
    stopped_idle: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def tick(ctx: Context, course: Course, now: datetime | None = None) -> TickResult:
    """Do what the schedule says is due now (and what missed ticks left, safely), then stop
    idle machines; every action logged with its reason."""
    require_schedule(course)
    ctx.refuse_if_read_only("tick")
    assert course.schedule is not None
    now = now or now_utc()
    since = last_tick(ctx, course) or now - timedelta(days=1)
    result = TickResult()
    for action in due(course.schedule, since, now):
        if "clusters" in action.what and course.clusters is None:
            continue
        why = f"{action.why} (due {action.at.astimezone(course.schedule.zone):%Y-%m-%d %H:%M})"
        ctx.sink.emit(LogLine(f"schedule: {action.what} — {why}"))
        try:
            if action.what == "start machines":
                lifecycle.start(ctx, course)
            elif action.what == "stop machines":
                lifecycle.stop(ctx, course)
            elif action.what == "start clusters" and course.clusters is not None:
                _, failed = lifecycle.start_clusters(ctx, course)
                result.failed += [f"cluster {k}: {why}" for k, why in failed.items()]
            elif action.what == "terminate clusters" and course.clusters is not None:
                clusterops.terminate(ctx, course, wait=False)
        except LabError as exc:
            result.failed.append(f"{action.what}: {exc}")
            ctx.sink.emit(Problem(f"schedule: {action.what} failed: {exc}"))
            continue
        result.done.append(action)
    if course.schedule.idle_stop_minutes and course.machines is not None:
        _idle(ctx, course, now, result)
    write_json(_state_file(ctx, course), {"last_tick": now.isoformat()})
    ctx.sink.emit(StepDone(f"tick: {len(result.done)} scheduled action(s), "
                           f"{len(result.warned)} idle seat(s) warned, "
                           f"{len(result.stopped_idle)} stopped",
                           ok=not result.failed, detail="; ".join(result.failed)))
    return result


# -------------------------------------------------------------------------- idle machines

@dataclass(frozen=True)
class Idleness:
    seat: str
    cpu: float
    sessions: int
    busy_kernels: int

    def idle(self, threshold: float) -> bool:
        return self.sessions == 0 and self.busy_kernels == 0 and self.cpu < threshold

    def reason(self) -> str:
        return (f"{self.sessions} SSH session(s), {self.busy_kernels} busy kernel(s), "
                f"CPU {self.cpu:.1f}%")


def probe(ctx: Context, course: Course, machine: Machine) -> Idleness:
    """What the machine is doing, measured on it (its own processes over two seconds)."""
    remote = lifecycle.remote_for(ctx, course)
    client = remote.connect(machine, wait=10)
    lines: list[str] = []
    try:
        code = ssh.run(client, "python3 -c " + shlex.quote(PROBE), timeout=60,
                       on_line=lambda _s, text: lines.append(text))
    finally:
        client.close()
    if code != 0 or not lines:
        raise ssh.SshError(f"{machine.seat}: measuring idleness failed (exit {code})")
    data = json.loads(lines[-1])
    return Idleness(machine.seat, float(data["cpu"]), int(data["sessions"]),
                    int(data["busy_kernels"]))


def _busy_otherwise(ctx: Context, course: Course) -> dict[str, str]:
    """Seats that must not be stopped whatever their machine says: setup running, a step
    of their cluster running."""
    out = {s.seat: "its setup is running" for s in lifecycle.status(ctx, course)
           if s.setup == "running"}
    if course.clusters is not None:
        for c in clusterops.status(ctx, course):
            if c.steps_running:
                for seat in lifecycle.seats_of_keys(course, [c.key]):
                    out.setdefault(seat, "a step of its cluster is running")
    return out


def _tag(ctx: Context, machine: Machine, values: dict[str, str | None]) -> None:
    ec2 = ctx.aws.client("ec2", machine.region)
    put = [{"Key": k, "Value": v} for k, v in values.items() if v is not None]
    drop = [{"Key": k} for k, v in values.items() if v is None]
    with translate_errors(f"ec2.CreateTags {machine.instance_id}"):
        if put:
            ec2.create_tags(Resources=[machine.instance_id], Tags=put)
        if drop:
            ec2.delete_tags(Resources=[machine.instance_id], Tags=drop)


def _idle(ctx: Context, course: Course, now: datetime, result: TickResult) -> None:
    s = course.schedule
    assert s is not None
    limit = timedelta(minutes=s.idle_stop_minutes)
    keep = _busy_otherwise(ctx, course)
    for machine in lifecycle.discover(ctx, course).machines:
        if machine.state != "running":
            continue
        labels = tags.as_dict(machine.raw.get("Tags"))
        if machine.seat in keep:
            if IDLE_SINCE in labels:
                _tag(ctx, machine, {IDLE_SINCE: None, IDLE_WARNED: None})
            continue
        try:
            found = probe(ctx, course, machine)
        except (ssh.SshError, LabError, ValueError, KeyError) as exc:
            result.failed.append(f"{machine.seat}: {exc}")
            continue
        if not found.idle(s.idle_cpu_percent):
            if IDLE_SINCE in labels:
                _tag(ctx, machine, {IDLE_SINCE: None, IDLE_WARNED: None})
            continue
        since = _when(labels.get(IDLE_SINCE)) or now
        if IDLE_SINCE not in labels:
            _tag(ctx, machine, {IDLE_SINCE: now.isoformat()})
        if now - since < limit:
            continue
        minutes = int((now - since).total_seconds() // 60)
        if IDLE_WARNED not in labels:
            _warn(ctx, course, machine, minutes)
            _tag(ctx, machine, {IDLE_WARNED: now.isoformat()})
            result.warned.append(machine.seat)
            ctx.sink.emit(SeatChanged(machine.seat, "idle", f"idle {minutes} min "
                                      f"({found.reason()}); stops at the next tick"))
            continue
        lifecycle.machines.stop(ctx.aws, [machine], wait=False)
        _tag(ctx, machine, {IDLE_SINCE: None, IDLE_WARNED: None})
        result.stopped_idle.append(machine.seat)
        ctx.sink.emit(SeatChanged(machine.seat, "stopping", f"idle {minutes} min, warned at "
                                  f"{labels[IDLE_WARNED][11:16]} UTC ({found.reason()})"))


def _when(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _warn(ctx: Context, course: Course, machine: Machine, minutes: int) -> None:
    """A wall message on the machine (anyone logged in sees it)."""
    message = (f"labtui: this machine has been idle for {minutes} minutes and will be "
               "stopped at the next check. Log in or run something to keep it.")
    remote = lifecycle.remote_for(ctx, course)
    try:
        client = remote.connect(machine, wait=10)
        try:
            ssh.run(client, 'msg=$(cat); if command -v wall >/dev/null 2>&1; then '
                    'printf "%s\\n" "$msg" | sudo wall; else for t in /dev/pts/[0-9]*; do '
                    '[ -e "$t" ] && printf "%s\\n" "$msg" | sudo tee "$t" >/dev/null; done; fi',
                    stdin=message + "\n", timeout=30)
        finally:
            client.close()
    except ssh.SshError as exc:
        ctx.sink.emit(LogLine(f"{machine.seat}: could not send the idle warning: {exc}",
                              level="warning"))
