"""The regions and quotas views on the sandbox, driven by key presses (Textual's Pilot).

The sandbox serves EC2 vCPU quotas (settable per region) and the Price List API from
labtui's shipped price table, so the figures on screen are checked against a hand
computation: 4 students, a t3.small each (2 vCPUs, on-demand) and an EMR cluster each with an
m5.xlarge master (4 vCPUs, on-demand) and 2 spot m5.xlarge core nodes (8 vCPUs, bid $0.05).
Per seat: 6 on-demand vCPUs and 8 spot vCPUs.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, TabbedContent

from labtui.app import LabApp
from labtui.context import open_context
from labtui.course import load
from labtui.plan import Plan, RegionPlan
from labtui.screens.confirm import ConfirmModal
from labtui.screens.quotas import parse_desired
from labtui.screens.regions import totals_text, usd, zones_text
from labtui.services.quotas import Quota, read_quotas
from labtui.state import StateDir

from .courses import CLUSTER, write_course
from .test_tui import log_text, screen_text, settle

ON_DEMAND, SPOT = "L-1216C47A", "L-34B43A08"
SIZE = (140, 45)
REGIONS = ("us-east-1", "eu-west-1", "sa-east-1")

# us-east-1 prices (labtui/data/prices.json, served by the sandbox's Price List API)
T3_SMALL, M5_XLARGE, EMR_M5_XLARGE, BID = 0.0208, 0.192, 0.048, 0.05
# 2 seats there: 2 machines, 2 clusters of 1 master + 2 spot core nodes (at the bid)
US_EAST_1 = (2 * T3_SMALL + 2 * (M5_XLARGE + EMR_M5_XLARGE)
             + 2 * 2 * (BID + EMR_M5_XLARGE))
# eu-west-1 and sa-east-1: EC2 prices known, EMR not in the table (so "unpriced")
EU_WEST_1 = 0.0228 + 0.214 + 2 * BID
SA_EAST_1 = 0.0336 + 0.306 + 2 * BID


def course_file(tmp_path: Path, *, billing: bool = True) -> Path:
    section = ('[billing]\nalarms_usd = [25, 50]\nnotify = "teacher@example.edu"\n'
               'monthly_budget_usd = 300\n') if billing else ""
    return write_course(tmp_path, "regtui", students=4, regions=REGIONS, max_instances=100,
                        course_extra="budget_usd = 50", extra=CLUSTER + section)


def make_app(path: Path, state: StateDir, **opts: object) -> LabApp:
    return LabApp(load(path), sandbox=True, state_dir=str(state.root), refresh_every=None,
                  **opts)  # type: ignore[arg-type]




async def press(pilot: Pilot, app: LabApp, *keys: str) -> None:
    await pilot.press(*keys)
    await settle(pilot, app)


def table(app: LabApp, table_id: str) -> DataTable:
    return app.main.query_one(f"#{table_id}", DataTable)


def cell(app: LabApp, table_id: str, row: str, column: str) -> str:
    return str(table(app, table_id).get_cell(row, column))


def pending(sandbox_state: StateDir, region: str, code: str) -> list[tuple[float, str]]:
    ctx = open_context(None, sandbox=True, state_dir=str(sandbox_state.root))
    try:
        quota = read_quotas(ctx.aws, region, [code])[code]
    finally:
        ctx.close()
    return [(float(r["DesiredValue"]), r["Status"]) for r in quota.pending]


async def select_row(pilot: Pilot, app: LabApp, key: str) -> None:
    rows = table(app, "quotas-table")
    rows.focus()
    rows.move_cursor(row=rows.get_row_index(key))
    await pilot.pause()


async def test_regions_view_spills_the_class_over_three_regions(
        sandbox, sandbox_state: StateDir, tmp_path: Path) -> None:
    sandbox.quotas.set("us-east-1", 12, ON_DEMAND)   # 2 seats x 6 on-demand vCPUs
    sandbox.quotas.set("eu-west-1", 7, ON_DEMAND)    # 1 seat
    app = make_app(course_file(tmp_path), sandbox_state)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await press(pilot, app, "4")
        assert app.main.query_one(TabbedContent).active == "regions"
        assert cell(app, "regions-table", "us-east-1", "rank") == "1"
        assert cell(app, "regions-table", "us-east-1", "usable") == "yes"
        assert cell(app, "regions-table", "us-east-1", "zones") == "us-east-1a–f (6)"
        seats = {r: cell(app, "regions-table", r, "seats") for r in REGIONS}
        assert seats == {"us-east-1": "2 (2 new)", "eu-west-1": "1 (1 new)",
                         "sa-east-1": "1 (1 new)"}
        assert [cell(app, "regions-table", r, "clusters") for r in REGIONS] == ["2", "1", "1"]
        assert cell(app, "regions-table", "us-east-1", "vcpus") == (
            "on-demand 12/12, spot 16/256")
        assert cell(app, "regions-table", "eu-west-1", "vcpus") == (
            "on-demand 6/7, spot 8/256")
        assert cell(app, "regions-table", "sa-east-1", "vcpus") == (
            "on-demand 6/256, spot 8/256")
        assert cell(app, "regions-table", "us-east-1", "hourly") == f"${US_EAST_1:.4f}"
        assert cell(app, "regions-table", "eu-west-1", "hourly") == (
            f"${EU_WEST_1:.4f} + 1 unpriced")
        assert cell(app, "regions-table", "sa-east-1", "hourly") == (
            f"${SA_EAST_1:.4f} + 1 unpriced")

        shown = screen_text(app)
        total = US_EAST_1 + EU_WEST_1 + SA_EAST_1
        assert f"Plan total: ${total:.2f}/hour, ${total * 24:.2f}/day" in shown
        assert f"Budget: within budget_usd ($50.00/day; ${50 - total * 24:.2f} to spare)" \
            in shown
        assert "Unpriced (not in the totals): m5.xlarge (EMR) in eu-west-1, m5.xlarge (EMR) " \
               "in sa-east-1." in shown
        assert "Prices: AWS Price List API" in shown
        assert "does not fit" not in shown
        assert "regions/quotas issue" not in shown
        assert not app.main.query_one("#regions-shortfall").display
        status = app.main.view("regions").status_text
        assert "3 of 3 regions usable" in status and "4 of 4 seats placed in 3 region(s)" \
            in status


async def test_regions_view_names_the_shortfall(sandbox, sandbox_state: StateDir,
                                                tmp_path: Path) -> None:
    for region in REGIONS:
        sandbox.quotas.set(region, 8, ON_DEMAND)   # one seat each: the fourth fits nowhere
    app = make_app(course_file(tmp_path), sandbox_state)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await press(pilot, app, "4")
        assert [cell(app, "regions-table", r, "seats") for r in REGIONS] == ["1 (1 new)"] * 3
        shortfall = app.main.query_one("#regions-shortfall")
        assert shortfall.display
        shown = " ".join(screen_text(app).split())
        assert ("The class does not fit the vCPU quotas: 1 seat(s) fit in no region (s04); "
                "needed: 4 more On-Demand Standard vCPUs (L-1216C47A) in us-east-1 "
                "(free there: 2).") in shown
        assert "open Quotas (5), select the quota's row in us-east-1 and press i" in shown
        assert "(for the seats that fit)" in shown
        assert "1 fit nowhere" in app.main.view("regions").status_text

        # The quotas view says the same on the row concerned.
        await press(pilot, app, "5")
        assert cell(app, "quotas-table", f"us-east-1/{ON_DEMAND}", "needs") == "6 (4 short)"

        # The quota grows; r loads both views again and the rows change in place.
        sandbox.quotas.set("us-east-1", 24, ON_DEMAND)
        await press(pilot, app, "r")
        assert cell(app, "quotas-table", f"us-east-1/{ON_DEMAND}", "value") == "24"
        assert cell(app, "quotas-table", f"us-east-1/{ON_DEMAND}", "needs") == "24"
        await press(pilot, app, "4", "r")
        assert [cell(app, "regions-table", r, "seats") for r in REGIONS] == [
            "4 (4 new)", "0", "0"]
        assert cell(app, "regions-table", "eu-west-1", "hourly") == "—"
        assert not app.main.query_one("#regions-shortfall").display
        assert table(app, "regions-table").row_count == 3


async def test_quotas_view_and_an_increase_request(sandbox, sandbox_state: StateDir,
                                                   tmp_path: Path) -> None:
    sandbox.quotas.set("us-east-1", 12, ON_DEMAND)
    sandbox.quotas.set("eu-west-1", 7, ON_DEMAND)
    sandbox.quotas.request("eu-west-1", SPOT, 300.0)  # made earlier, still pending
    app = make_app(course_file(tmp_path), sandbox_state)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await press(pilot, app, "5")
        rows = table(app, "quotas-table")
        assert rows.row_count == 6  # 3 regions x (on-demand, spot)
        key = f"us-east-1/{ON_DEMAND}"
        assert [cell(app, "quotas-table", key, c) for c in (
            "region", "name", "value", "usage", "headroom", "needs", "source", "pending")] == [
            "us-east-1", "On-Demand Standard vCPUs", "12", "0", "12", "12", "Service Quotas",
            "—"]
        assert cell(app, "quotas-table", f"eu-west-1/{SPOT}", "pending") == "300 PENDING"
        assert cell(app, "quotas-table", f"sa-east-1/{SPOT}", "value") == "256"
        assert cell(app, "quotas-table", f"sa-east-1/{SPOT}", "needs") == "8"
        # The course facts stay: the cap, and the vCPUs of each kind of instance.
        shown = screen_text(app)
        assert "max_instances = 100" in shown and "runs 16 instances" in shown
        assert cell(app, "needs-table", "machines", "total") == "8"
        assert cell(app, "needs-table", "total", "total") == str(4 * 2 + 12 * 4)
        # The billing panel: nothing on AWS before `up`, and the reminder.
        billing = " ".join(str(app.main.query_one("#quotas-billing").render()).split())
        assert "Alarms: none on AWS yet (course file: $25, $50" in billing
        assert "Budget: none on AWS yet (course file: $300/month" in billing
        assert "Receive CloudWatch billing alerts" in billing and "us-east-1" in billing
        assert "6 quotas in 3 region(s); 1 pending increase request(s)" in (
            app.main.view("quotas").status_text)
        # The key shows in the footer while the view is active.
        assert "i Request increase" in screen_text(app).splitlines()[-1]

        # i, a bad answer (a clear message, the prompt stays), then 64 and y.
        await select_row(pilot, app, key)
        await press(pilot, app, "i")
        prompt = app.main.query_one("#quotas-ask-input", Input)
        assert prompt.has_focus
        await press(pilot, app, "1", "0", "enter")
        error = " ".join(str(app.main.query_one("#quotas-ask-error").render()).split())
        assert error == ("10 is not above the current quota (12 vCPUs). Type the new total, "
                         "more than 12.")
        assert app.main.query_one("#quotas-ask").display
        prompt.value = ""
        await press(pilot, app, "x", "enter")
        assert "“x” is not a whole number of vCPUs" in str(
            app.main.query_one("#quotas-ask-error").render())
        prompt.value = ""
        await press(pilot, app, "6", "4", "enter")
        assert isinstance(app.screen, ConfirmModal)
        body = str(app.screen.query_one("#confirm-body").render())
        assert "Now: 12 vCPUs" in body and "Requested: 64 vCPUs" in body
        await press(pilot, app, "y")
        assert not isinstance(app.screen, ConfirmModal)
        assert pending(sandbox_state, "us-east-1", ON_DEMAND) == [(64.0, "PENDING")]
        assert cell(app, "quotas-table", key, "pending") == "64 PENDING"
        assert "2 pending increase request(s)" in app.main.view("quotas").status_text
        assert "requested On-Demand Standard vCPUs (L-1216C47A) in us-east-1: 12 -> 64" \
            in log_text(app)

        # n in the modal cancels: nothing more is requested.
        await select_row(pilot, app, f"eu-west-1/{ON_DEMAND}")
        await press(pilot, app, "i", "3", "2", "enter")
        assert isinstance(app.screen, ConfirmModal)
        await press(pilot, app, "n")
        assert pending(sandbox_state, "eu-west-1", ON_DEMAND) == []
        assert cell(app, "quotas-table", f"eu-west-1/{ON_DEMAND}", "pending") == "—"
        assert "cancelled; nothing requested" in log_text(app)

        # escape closes the prompt without asking anything.
        await press(pilot, app, "i")
        assert app.main.query_one("#quotas-ask").display
        await press(pilot, app, "escape")
        assert not app.main.query_one("#quotas-ask").display
        assert table(app, "quotas-table").has_focus

        # The request is one of the app's jobs: while another runs, it waits its turn.
        release, notes, real_notify = threading.Event(), [], app.notify
        app.notify = lambda message, **kw: (notes.append(message),  # type: ignore[method-assign]
                                            real_notify(message, **kw))[1]
        app.start_job(lambda ctx: release.wait(30) and None, what="a long job",
                      refresh=False)
        await pilot.pause()
        await pilot.press("i", "3", "2", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("y")
        await pilot.pause()
        assert pending(sandbox_state, "eu-west-1", ON_DEMAND) == []
        assert any("a long job is still running" in note for note in notes), notes
        release.set()
        await settle(pilot, app)


async def test_read_only_console_refuses_a_quota_request(
        sandbox_state: StateDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(course_file(tmp_path, billing=False), sandbox_state, read_only=True)
    notes: list[tuple[str, str]] = []
    real_notify = app.notify

    def notify(message: str, *, title: str = "", severity: str = "information",
               **kwargs: object) -> None:
        notes.append((message, severity))
        real_notify(message, title=title, severity=severity, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(app, "notify", notify)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await press(pilot, app, "5")
        billing = " ".join(str(app.main.query_one("#quotas-billing").render()).split())
        assert "No [billing] section in the course file" in billing
        assert "Receive CloudWatch billing alerts" in billing
        await select_row(pilot, app, f"us-east-1/{ON_DEMAND}")
        await press(pilot, app, "i")
        assert not app.main.query_one("#quotas-ask").display
        assert not isinstance(app.screen, ConfirmModal)
        assert any("refused" in m and "--read-only" in m and s == "warning" for m, s in notes)
        assert pending(sandbox_state, "us-east-1", ON_DEMAND) == []


def test_figures_as_shown() -> None:
    assert [usd(x) for x in (0.9136, 1.69, 40.0, 0.05)] == ["$0.9136", "$1.69", "$40.00",
                                                              "$0.05"]
    assert zones_text("us-east-1", ("us-east-1a", "us-east-1b", "us-east-1c")) == (
        "us-east-1a–c (3)")
    assert zones_text("eu-west-1", ("eu-west-1a", "eu-west-1c")) == "eu-west-1a, c"
    assert zones_text("us-west-2", ("us-west-2a", "us-west-2-lax-1a")) == (
        "us-west-2a, us-west-2-lax-1a")
    assert zones_text("sa-east-1", ()) == "—"


def test_over_budget_is_said_in_red(tmp_path: Path) -> None:
    course = load(course_file(tmp_path))
    the_plan = Plan(course, (RegionPlan("us-east-1", hourly_usd=2.5),))
    text = totals_text(the_plan, ("price table of 2024-06-01",), "2024-06-01")
    assert "Budget: OVER budget_usd ($50.00/day) by $10.00/day" in text.plain
    assert any("red" in str(span.style) for span in text.spans)
    assert "Prices: price table of 2024-06-01." in text.plain


def test_desired_quota_must_be_a_whole_number_above_the_quota() -> None:
    quota = Quota("us-east-1", ON_DEMAND, 12.0, 4.0, "Service Quotas")
    assert parse_desired(" 64 ", quota) == (64, "")
    for text in ("12", "-3", "0"):
        desired, problem = parse_desired(text, quota)
        assert desired is None and "is not above the current quota (12 vCPUs)" in problem
    for text in ("", "64.5", "lots"):
        desired, problem = parse_desired(text, quota)
        assert desired is None and "is not a whole number of vCPUs" in problem
