"""The class timetable (``[schedule]``), as plain data and pure functions of a moment.

Sessions are given as dates with hours (``"2026-07-20 09:00-13:00"``) and/or weekly rules
(``"mon 09:00-11:00"`` between ``from`` and ``until``), in the course's time zone. From them:
machines run from ``lead_minutes`` before each session until its end; clusters run from
``cluster_lead_minutes`` before the first session of a day until the end of its last.

``due(schedule, since, now)`` lists the actions whose moment fell in ``(since, now]``, in
order, with catch-up rules that make a missed tick safe: a start whose window has already
ended is dropped (never start a machine after its session), a stop is always done.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SESSION = re.compile(r"(\d{4}-\d{2}-\d{2}) (\d{1,2}:\d{2})-(\d{1,2}:\d{2})")
WEEKLY = re.compile(r"(mon|tue|wed|thu|fri|sat|sun) (\d{1,2}:\d{2})-(\d{1,2}:\d{2})")
HORIZON_DAYS = 400


@dataclass(frozen=True)
class Weekly:
    day: int                         # 0 = Monday
    start: time
    end: time


@dataclass(frozen=True)
class Schedule:
    timezone: str
    sessions: tuple[tuple[datetime, datetime], ...] = ()    # aware, in the course's zone
    weekly: tuple[Weekly, ...] = ()
    first: date | None = None        # weekly rules apply from ...
    last: date | None = None         # ... until (inclusive)
    lead_minutes: int = 15
    cluster_lead_minutes: int = 30
    idle_stop_minutes: int = 0       # 0: never stop an idle machine
    idle_cpu_percent: float = 5.0

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, order=True)
class Action:
    at: datetime
    what: str                        # "start machines" | "stop machines" | "start clusters"
    until: datetime = field(compare=False)   # | "terminate clusters"; the window's end
    why: str = field(default="", compare=False)

    def as_json(self) -> dict[str, str]:
        return {"at": self.at.isoformat(), "action": self.what, "until": self.until.isoformat(),
                "why": self.why}


def parse_clock(text: str) -> time:
    hours, minutes = (int(x) for x in text.split(":"))
    return time(hours, minutes)


def sessions_between(s: Schedule, start: datetime, end: datetime
                     ) -> list[tuple[datetime, datetime]]:
    """Every session overlapping [start, end], sorted, the weekly rules expanded."""
    found = [w for w in s.sessions if w[1] >= start and w[0] <= end]
    if s.weekly:
        zone = s.zone
        day = max(start.astimezone(zone).date() - timedelta(days=1), s.first or date.min)
        stop = min(end.astimezone(zone).date() + timedelta(days=1), s.last or date.max)
        while day <= stop:
            for rule in s.weekly:
                if rule.day == day.weekday():
                    begin = datetime.combine(day, rule.start, zone)
                    finish = datetime.combine(day, rule.end, zone)
                    if finish >= start and begin <= end:
                        found.append((begin, finish))
            day += timedelta(days=1)
    return sorted(set(found))


def windows(s: Schedule, start: datetime, end: datetime) -> list[Action]:
    """The schedule's actions around [start, end] (a day's margin each side), sorted."""
    margin = timedelta(days=1)
    sessions = sessions_between(s, start - margin, end + margin)
    out: list[Action] = []
    lead = timedelta(minutes=s.lead_minutes)
    for begin, finish in sessions:
        label = f"session {begin:%Y-%m-%d %H:%M}-{finish:%H:%M}"
        out.append(Action(begin - lead, "start machines", finish, label))
        out.append(Action(finish, "stop machines", finish, label))
    by_day: dict[date, list[tuple[datetime, datetime]]] = {}
    for begin, finish in sessions:
        by_day.setdefault(begin.date(), []).append((begin, finish))
    cluster_lead = timedelta(minutes=s.cluster_lead_minutes)
    for day, day_sessions in sorted(by_day.items()):
        first = min(b for b, _ in day_sessions)
        last = max(f for _, f in day_sessions)
        label = f"class day {day:%Y-%m-%d}"
        out.append(Action(first - cluster_lead, "start clusters", last, label))
        out.append(Action(last, "terminate clusters", last, label))
    return sorted(out)


def due(s: Schedule, since: datetime, now: datetime) -> list[Action]:
    """What a tick at ``now`` does, the last tick having been at ``since``: every action
    of (since, now], a start only while its window is open (``until`` still ahead), and
    machines stopped after a session are not stopped again by an overlapping one still on."""
    todo = [a for a in windows(s, since, now) if since < a.at <= now]
    out = []
    for action in todo:
        if action.what.startswith("start") and action.until <= now:
            continue          # its session ended before this tick: never start it late
        if action.what == "stop machines" and running_window(s, now, "machines"):
            continue          # another session (or its lead time) is on: keep them
        if action.what == "terminate clusters" and running_window(s, now, "clusters"):
            continue
        out.append(action)
    # one of each kind is enough: the last one decides
    last: dict[str, Action] = {}
    for action in out:
        kind = action.what.split()[1]
        last[kind] = action
    return sorted(last.values())


def running_window(s: Schedule, now: datetime, kind: str) -> bool:
    """Whether ``now`` is inside a window where the ``kind`` ("machines", "clusters")
    should run."""
    starts = {"machines": "start machines", "clusters": "start clusters"}[kind]
    return any(a.what == starts and a.at <= now < a.until
               for a in windows(s, now, now))


def upcoming(s: Schedule, now: datetime, count: int = 6) -> list[Action]:
    """The next actions after ``now``."""
    horizon = now + timedelta(days=HORIZON_DAYS)
    step = timedelta(days=14)
    found: list[Action] = []
    start = now
    while start < horizon and len(found) < count:
        found += [a for a in windows(s, start, start + step) if a.at > now and a not in found]
        start += step
    return sorted(set(found))[:count]
