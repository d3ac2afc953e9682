"""The class day: the schedule's actions as pure functions of time (missed ticks caught up
safely), `tick` on the sandbox's machines (started for a session, stopped after it), idle
machines warned then stopped while a busy one is kept, and the lines `schedule` prints."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from labtui import lifecycle, scheduleops
from labtui.course import load
from labtui.errors import CourseError
from labtui.schedule import due, running_window, upcoming

from .courses import write_course

T0 = datetime(2026, 7, 20, 7, 0, tzinfo=UTC)      # 09:00 in Paris (CEST, UTC+2)


def schedule_course(tmp_path, body: str, students: int = 2):
    return write_course(tmp_path, "sch", students=students, extra=f"[schedule]\n{body}")


def test_actions_of_a_day_and_missed_ticks(tmp_path) -> None:
    course = load(schedule_course(tmp_path, '''timezone = "Europe/Paris"
sessions = ["2026-07-20 09:00-11:00", "2026-07-20 14:00-16:00"]
lead_minutes = 15
cluster_lead_minutes = 30
'''))
    s = course.schedule
    assert [(a.at.astimezone(s.zone).strftime("%H:%M"), a.what) for a in upcoming(
        s, T0 - timedelta(hours=3))] == [
        ("08:30", "start clusters"), ("08:45", "start machines"), ("11:00", "stop machines"),
        ("13:45", "start machines"), ("16:00", "stop machines"),
        ("16:00", "terminate clusters")]
    # a tick during the lead time starts the machines
    assert [a.what for a in due(s, T0 - timedelta(minutes=20), T0 - timedelta(minutes=10))] \
        == ["start machines"]
    # ticks missed over the morning session: its start is never done late, its stop is
    assert [a.what for a in due(s, T0 - timedelta(hours=1), T0 + timedelta(hours=3))] == [
        "start clusters", "stop machines"]
    # between the sessions the clusters stay (the day is not over); machines do not run
    noon = T0 + timedelta(hours=3)
    assert running_window(s, noon, "clusters") and not running_window(s, noon, "machines")
    # a tick that missed the whole day: only the stops
    assert [a.what for a in due(s, T0 - timedelta(hours=2), T0 + timedelta(hours=10))] == [
        "stop machines", "terminate clusters"]


def test_weekly_rules_and_bad_schedules(tmp_path) -> None:
    course = load(schedule_course(tmp_path, '''timezone = "America/Chicago"
weekly = ["mon 09:00-10:30", "wed 13:00-14:00"]
from = "2026-09-07"
until = "2026-09-30"
'''))
    s = course.schedule
    starts = [a for a in upcoming(s, datetime(2026, 9, 1, tzinfo=UTC), count=12)
              if a.what == "start machines"]
    assert [a.at.astimezone(s.zone).strftime("%a %m-%d %H:%M") for a in starts][:3] == [
        "Mon 09-07 08:45", "Wed 09-09 12:45", "Mon 09-14 08:45"]
    bad = schedule_course(tmp_path, '''timezone = "Europe/Pariss"
sessions = ["2026-07-20 13:00-09:00", "monday 9-11"]
weekly = ["mon 09:00-11:00"]
idle_stop_minutes = -5
''')
    with pytest.raises(CourseError) as info:
        load(bad)
    text = "\n".join(str(p) for p in info.value.problems)
    assert "schedule.timezone: 'Europe/Pariss' is not a time zone. Fix: did you mean " \
           "'Europe/Paris'?" in text
    assert "schedule.sessions[0]: '2026-07-20 13:00-09:00' ends before it starts" in text
    assert "schedule.sessions[1]: 'monday 9-11' is not a session" in text
    assert "schedule.weekly: needs from and until" in text
    assert "schedule.idle_stop_minutes: must be at least 0" in text


@pytest.mark.timeout(300)
def test_tick_starts_and_stops_machines_and_stops_idle_ones(ctx, sandbox, tmp_path) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start, end = now - timedelta(minutes=1), now + timedelta(minutes=58)
    body = f'''timezone = "UTC"
sessions = ["{start:%Y-%m-%d %H:%M}-{end:%H:%M}"]
lead_minutes = 0
idle_stop_minutes = 10
'''
    if end.date() != start.date():
        pytest.skip("the test's session would cross midnight")
    course = load(schedule_course(tmp_path, body))
    assert sorted(lifecycle.up(ctx, course, setup_wait=60).set_up) == ["s01", "s02"]
    lifecycle.stop(ctx, course)
    # the session began a minute ago: the tick starts the machines
    first = scheduleops.tick(ctx, course, now=now)
    assert [a.what for a in first.done] == ["start machines"]
    assert {m.state for m in lifecycle.discover(ctx, course).machines} == {"running"}

    # idle: s01 has nobody on it; s02 has a student's SSH session running something
    remote = lifecycle.remote_for(ctx, course)
    s02 = next(m for m in lifecycle.discover(ctx, course).machines if m.seat == "s02")
    client = remote.connect(s02, wait=30)
    from labtui.services import ssh
    busy = threading.Thread(target=ssh.run, args=(client, "sleep 60"),
                            kwargs={"timeout": 90}, daemon=True)
    busy.start()
    try:
        t1 = now + timedelta(minutes=5)
        assert scheduleops.tick(ctx, course, now=t1).warned == []      # idle since t1
        t2 = t1 + timedelta(minutes=11)
        second = scheduleops.tick(ctx, course, now=t2)
        assert second.warned == ["s01"] and second.stopped_idle == []
        third = scheduleops.tick(ctx, course, now=t2 + timedelta(minutes=5))
        assert third.stopped_idle == ["s01"] and third.warned == []
    finally:
        client.close()
    states = {m.seat: m.state for m in lifecycle.discover(ctx, course).machines}
    assert states["s02"] == "running" and states["s01"] in ("stopping", "stopped")
    log = ctx.state.course("sch").root
    assert log  # the stops are in the event sink with their reason
    said = [str(e.human()) for e in ctx.sink.events]
    assert any("s01: idle" in line and "0 SSH session(s)" in line for line in said), said

    # the session ends: the next tick stops every machine, and never starts one again
    after = scheduleops.tick(ctx, course, now=end + timedelta(minutes=1))
    assert [a.what for a in after.done] == ["stop machines"]
    assert scheduleops.tick(ctx, course, now=end + timedelta(minutes=6)).done == []

    found = scheduleops.outlook(ctx, course, now=end + timedelta(minutes=6))
    assert "tick" in found.cron and str(course.path.resolve()) in found.cron
    assert found.cron.startswith("*/5 * * * * ")
    assert "OnCalendar=*:0/5" in found.systemd["labtui-tick-sch.timer"]
