"""The dashboard (issue 16 item 3) on the sandbox's real machines: `labtui dashboard` and the
console's Dashboard view (key 0) count what `labtui status --json` says — seats ready, the
seat whose setup failed (with its reason), cost — and show the billing alarms' states from
CloudWatch, the vCPU quotas as bars, and the next scheduled action; Enter on a line shows the
view that explains it; the work's events move the counts and the progress bar between looks;
the day's $/hour samples land 0600 in the course's state folder for the chart."""

from __future__ import annotations

import json
import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from textual.widgets import ProgressBar, Static

from labtui import dashboard, dashops, lifecycle
from labtui.course import load
from labtui.events import Progress, SeatChanged
from labtui.scheduleops import IDLE_SINCE, IDLE_WARNED
from labtui.screens.dashboard import DashboardView, ScheduleScreen

from .courses import write_course
from .test_tui import SIZE, active, make_app, press, screen_text, settle


def cli(capsys, *args: str) -> tuple[int, str, str]:
    from labtui.cli import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def day_course(tmp_path: Path) -> Path:
    """Three seats whose setup fails where ~/fail exists, a billing alarm at $5 and $50, a
    budget of $40 a day, and a session tomorrow."""
    start = (datetime.now(UTC) + timedelta(days=1)).replace(hour=9, minute=0)
    end = start + timedelta(hours=1)
    return write_course(
        tmp_path, "dash", students=3, course_extra="budget_usd = 40",
        machines='setup = ["test ! -e ~/fail"]',
        extra=f"""
[billing]
alarms_usd = [5, 50]
notify = "prof@example.edu"

[schedule]
timezone = "UTC"
sessions = ["{start:%Y-%m-%d %H:%M}-{end:%H:%M}"]
lead_minutes = 10
""")


def dash_view(app) -> DashboardView:
    view = app.main.view(DashboardView.VIEW_ID)
    assert isinstance(view, DashboardView)
    return view


@pytest.mark.timeout(300)
async def test_the_dashboard_counts_what_status_says(ctx, sandbox_state, tmp_path, capsys) -> None:
    path = day_course(tmp_path)
    course = load(path)
    result = lifecycle.up(ctx, course, skip_setup=True)
    assert not result.failed
    lifecycle.exec_command(ctx, course, ["s02"], "touch ~/fail")
    outcomes = lifecycle.setup(ctx, course, wait=60)
    assert sorted(o.key for o in outcomes if o.ok) == ["s01", "s03"]
    # CloudWatch puts the $5 alarm in ALARM (the bill passed it)
    ctx.aws.client("cloudwatch").set_alarm_state(
        AlarmName="labtui-dash-billing-5usd", StateValue="ALARM", StateReason="test")

    # The schedule's tick warned s03 as idle (its tags, as scheduleops writes them).
    s03 = next(m for m in lifecycle.discover(ctx, course).machines if m.seat == "s03")
    ctx.aws.client("ec2", "us-east-1").create_tags(Resources=[s03.instance_id], Tags=[
        {"Key": IDLE_SINCE, "Value": "2026-12-01T09:05:00+00:00"},
        {"Key": IDLE_WARNED, "Value": "2026-12-01T09:35:00+00:00"}])

    # Headless: the same counts as status --json, bad news named, exit 1.
    code, out, err = cli(capsys, "status", str(path), "--sandbox", "--json")
    assert code == 0, err
    seats = [json.loads(line) for line in out.splitlines()]
    ready = [s["seat"] for s in seats if s["state"] == "running" and s["setup"] == "done"]
    failed = {s["seat"]: s["error"] for s in seats if s["setup"] == "failed"}
    assert ready == ["s01", "s03"] and list(failed) == ["s02"]
    code, out, err = cli(capsys, "dashboard", str(path), "--sandbox", "--json")
    assert code == 1, err  # a seat failed and an alarm fires: bad news
    board = json.loads(out)
    assert board["seats"] == len(seats) == 3
    assert board["seats_ready"] == len(ready) == 2
    assert board["states"] == {"running": 3}
    assert board["setup_failed"] == [{"seat": "s02", "error": failed["s02"]}]
    assert board["hourly_usd"] == pytest.approx(sum(s["hourly_usd"] for s in seats))
    assert board["cost_usd"] == pytest.approx(sum(s["cost_usd"] for s in seats), abs=0.01)
    assert board["alarms"] == [{"alarm": "labtui-dash-billing-5usd", "state": "ALARM"},
                               {"alarm": "labtui-dash-billing-50usd",
                                "state": "OK"}]
    assert board["clusters"] is None and board["notebooks"] is None
    assert board["next_action"]["action"] == "start machines"
    # (the sandbox is shared with the worker's other tests: at least this class's 3 x 2)
    assert any(q["region"] == "us-east-1" and q["name"] == "On-Demand Standard vCPUs"
               and q["in_use"] >= 6 for q in board["quotas"]), board["quotas"]
    assert board["problems"] == []
    assert board["idle_warned"] == [{"seat": "s03", "at": "2026-12-01T09:35:00+00:00"}]
    code, out, err = cli(capsys, "dashboard", str(path), "--sandbox")
    assert code == 1, err
    lines = {line[2:18].strip(): line for line in out.splitlines() if line[:1] in "! "}
    assert lines["Seats ready"].startswith("  Seats ready     2/3 set up"), out
    assert lines["Setup failures"].startswith("! Setup failures  1: s02 — s02: "), out
    assert "$5 ALARM · $50 OK" in lines["Billing alarms"]
    assert lines["Billing alarms"].startswith("!")
    assert "against the budget of $40.00" in lines["Cost"]
    assert "start machines" in lines["Next scheduled"]
    assert lines["Idle, warned"].startswith("! Idle, warned    s03 — stopped at the next tick")
    assert re.search(r"us-east-1 On-Demand Standard vCPUs: [█░]{20} \d+/\d+ vCPUs", out), out

    # Each look left its sample, 0600, for the chart.
    history = ctx.state.course(course.id).root / dashops.HISTORY
    assert stat.S_IMODE(history.stat().st_mode) == 0o600
    assert len(dashops.read_history(history)) == 2

    # The console: the same lines; Enter shows the view that explains one.
    app = make_app(course, sandbox_state, refresh_every=None, view="dashboard")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert active(app) == "dashboard"
        view = dash_view(app)
        assert view.board is not None
        shown = screen_text(app)
        assert "0 Dashboard" in shown.splitlines()[1]
        assert "Seats ready     2/3 set up" in shown
        assert "Setup failures  1: s02 — s02: " in shown
        assert "$5 ALARM · $50 OK" in shown
        assert "$/hour and $ so far today" in shown       # the chart's title
        quotas = str(app.main.query_one("#dashboard-quotas", Static).content)
        assert re.search(r"us-east-1 On-Demand Standard vCPUs\n[█░]{24} \d+/\d+", quotas)
        assert [line.key for line in dashboard.lines(view.board)] == list(view.lines)
        assert view.lines["failures"].bad and not view.lines["seats"].bad

        # The work's events move the counts between looks, keyed.
        app.ctx.sink.emit(SeatChanged("s02", "setup"))
        await settle(pilot, app)
        assert view.lines["failures"].text == "none"
        assert view.lines["seats"].text.startswith("2/3 set up · 1 setting up")
        app.ctx.sink.emit(SeatChanged("s02", "ready"))
        app.ctx.sink.emit(Progress("setup", 1, 3))
        await settle(pilot, app)
        assert view.lines["seats"].text.startswith("3/3 set up")
        work = app.main.query_one("#dashboard-work")
        assert not work.has_class("hidden")
        assert app.main.query_one("#dashboard-progress", ProgressBar).percentage == \
            pytest.approx(1 / 3)
        assert "setup 1/3" in screen_text(app)
        app.ctx.sink.emit(Progress("setup", 3, 3))
        await settle(pilot, app)
        assert work.has_class("hidden")

        # r looks again: AWS still says s02 failed.
        await press(pilot, app, "r")
        assert view.lines["failures"].text.startswith("1: s02")

        # Enter on "Setup failures" shows the machines; on "Next scheduled" the schedule.
        rows = app.main.query_one("#dashboard-lines")
        rows.focus()
        rows.move_cursor(row=list(view.lines).index("failures"))
        await press(pilot, app, "enter")
        assert active(app) == "machines"
        machines = app.main.query_one("#machines-table")
        assert machines.get_cell("s03", "error") == ("idle since 09:05 UTC, warned: stopped "
                                                     "at the next tick unless used")
        # Events while another view is shown move only the dashboard's copy (drawing a
        # hidden widget laid the whole screen out anew); it draws them when shown again.
        app.ctx.sink.emit(SeatChanged("s02", "setup"))
        await settle(pilot, app)
        assert view._stale and view.lines["failures"].text.startswith("1: s02")
        await press(pilot, app, "0")
        assert not view._stale and view.lines["failures"].text == "none"
        rows.move_cursor(row=list(view.lines).index("schedule"))
        await press(pilot, app, "enter")
        assert isinstance(app.screen, ScheduleScreen)
        assert "start machines" in screen_text(app)
        assert "*/5 * * * *" in screen_text(app)   # the cron line, as `labtui schedule` says
        await press(pilot, app, "escape")
        assert active(app) == "dashboard"


def test_lines_say_what_each_part_lacks() -> None:
    """A course without clusters, notebooks, billing or schedule: only the lines it has."""
    from labtui.lifecycle import SeatStatus

    board = dashboard.Dashboard([SeatStatus("s01", ("s01",), None, None, "absent", None,
                                            "pending")])
    assert [line.key for line in dashboard.lines(board)] == ["seats", "failures", "cost"]
    assert dashboard.lines(board)[0].text == "0/1 set up · 1 absent"
    assert dashboard.bar(3, 4, 8) == "██████░░"
    assert dashboard.bar(0, 0, 4) == "····"
