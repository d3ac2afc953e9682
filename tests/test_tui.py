"""The console, driven by key presses through Textual's Pilot, on the sample course.

Each test runs the real app against the session sandbox (``sandbox_state``), waits for its
workers, and asserts on what the user sees: the rendered screen (text read back from the
public SVG screenshot) and the widgets' contents.
"""

from __future__ import annotations

import html
import re
from collections import defaultdict
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, TabbedContent
from textual.worker import WorkerFailed, WorkerState

import labtui.app as app_module
from labtui.app import LabApp
from labtui.context import Context
from labtui.course import Course, load
from labtui.errors import LabError, SandboxError
from labtui.events import LogLine
from labtui.screens.help import HelpScreen
from labtui.screens.main import VIEWS, MainScreen
from labtui.screens.rowtable import short_id
from labtui.services import tags
from labtui.state import StateDir

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_course.toml"
SIZE = (120, 40)
STUDENTS = ("Grace Hopper", "Ada Lovelace", "Alan Turing", "Katherine Johnson",
            "Edsger Dijkstra", "Barbara Liskov")


@pytest.fixture(scope="module")
def course() -> Course:
    return load(SAMPLE)


def make_app(course: Course, state: StateDir | Path | None, **opts: object) -> LabApp:
    root = state.root if isinstance(state, StateDir) else state
    return LabApp(course, sandbox=True, state_dir=str(root) if root else None,
                  **opts)  # type: ignore[arg-type]


def screen_text(app: LabApp) -> str:
    """The screen as the user sees it, one line per terminal row (from the SVG export)."""
    svg = app.export_screenshot()
    body = svg[svg.find('clip-path="url(#terminal-'):]
    cell = 12.2  # rich's export_svg: 0.61 x the 20 px font
    rows: dict[float, list[str]] = defaultdict(lambda: [" "] * app.size.width)
    for match in re.finditer(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>',
                             body):
        row = rows[float(match.group(2))]
        column = round(float(match.group(1)) / cell)
        for offset, char in enumerate(html.unescape(match.group(3)).replace("\xa0", " ")):
            if 0 <= column + offset < len(row):
                row[column + offset] = char
    return "\n".join("".join(row).rstrip() for _, row in sorted(rows.items()))


def busy(app: LabApp) -> bool:
    return any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in app.workers)


async def settle(pilot: Pilot, app: LabApp) -> None:
    """Wait until the app is connected (or failed to) and every worker has finished."""
    quiet = 0
    for _ in range(200):
        try:
            await app.workers.wait_for_complete()
        except WorkerFailed:
            pass  # the app's StateChanged handler reports it; tests assert on that
        await pilot.pause()
        done = app.ctx is not None or app.connect_error is not None
        quiet = quiet + 1 if done and not busy(app) and not app.events_pending else 0
        if quiet >= 2:
            return
    raise AssertionError("the app did not settle")


async def press(pilot: Pilot, app: LabApp, *keys: str) -> None:
    await pilot.press(*keys)
    await settle(pilot, app)


def record_calls(monkeypatch, owner: object, name: str) -> list[tuple]:  # noqa: ANN001
    """Every call of ``owner.name`` from now on, by its arguments after self (the method
    still runs); undone at the test's end."""
    calls: list[tuple] = []
    real = getattr(owner, name)

    def recorded(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls.append(args)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, recorded)
    return calls


def log_text(app: LabApp) -> str:
    return "\n".join(strip.text for strip in app.main.log_pane.lines)


def active(app: LabApp) -> str:
    return app.main.query_one(TabbedContent).active


def table(app: LabApp, table_id: str) -> DataTable:
    return app.main.query_one(f"#{table_id}", DataTable)


async def test_every_view_by_key(course: Course, sandbox_state: StateDir) -> None:
    app = make_app(course, sandbox_state)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.title == "Cloud Computing 101 (demo) (cloud101-demo)"
        assert app.sub_title.startswith("sandbox http://127.0.0.1:")
        assert isinstance(app.screen, MainScreen)

        # Machines (the default view): every seat, none with a machine before `up`, and
        # the view says how to launch them.
        assert active(app) == "machines"
        shown = screen_text(app)
        assert "No machines yet — press u (or `labtui up`) to launch one machine per seat" \
            in shown
        machines = table(app, "machines-table")
        assert machines.row_count == len(course.seats) == 6
        assert [str(key.value) for key in machines.rows] == [s.id for s in course.seats]
        assert {machines.get_cell(s.id, "state") for s in course.seats} == {"absent"}
        assert machines.get_cell("ta01", "students") == "ta01"
        assert "running 0/6 (absent 6) · setup done 0, failed 0" in shown

        # Roster: every student of the course file, with their seat.
        await press(pilot, app, "2")
        assert active(app) == "roster"
        roster = table(app, "roster-table")
        assert roster.row_count == 6
        assert [roster.get_cell(s.id, "name") for s in course.students] == list(STUDENTS)
        assert roster.get_cell("s01", "seat") == "s01"
        assert roster.get_cell("s01", "group") == "team-a"
        shown = screen_text(app)
        assert "Ada Lovelace" in shown and "ada@example.edu" in shown
        assert "6 students in 3 groups" in shown

        # Clusters: the spec from the course file above every cluster of the class, live
        # (none started yet: one row per student, absent).
        await press(pilot, app, "3")
        assert active(app) == "clusters"
        shown = screen_text(app)
        assert "emr-7.2.0" in shown and "Hadoop, Spark" in shown
        assert "MASTER" in shown and "CORE" in shown and "m5.xlarge" in shown
        clusters = table(app, "clusters-table")
        assert [str(key.value) for key in clusters.rows] == [s.id for s in course.students]
        assert {clusters.get_cell(s.id, "state") for s in course.students} == {"absent"}
        assert "ready 0/6 (absent 6)" in shown

        # Regions: in order of preference, opt-in status and zones from AWS.
        await press(pilot, app, "4")
        assert active(app) == "regions"
        regions = table(app, "regions-table")
        assert [regions.get_cell(r, "region") for r in course.regions] == list(course.regions)
        assert regions.get_cell("us-east-1", "opt_in") == "opt-in-not-required"
        assert "us-east-1a" in str(regions.get_cell("us-east-1", "zones"))
        shown = screen_text(app)
        assert "us-east-1" in shown and "us-east-1a" in shown
        assert "…" not in str(regions.get_row("sa-east-1"))

        # Quotas: the cap and the instance count from the file, vCPUs from AWS.
        await press(pilot, app, "5")
        assert active(app) == "quotas"
        shown = screen_text(app)
        # (6 machines and 6 clusters of a master and one core node)
        assert "max_instances = 30" in shown and "runs 18 instances" in shown
        needs = table(app, "needs-table")
        assert needs.get_cell("machines", "vcpus") == "2"  # t3.small
        assert needs.get_cell("machines", "total") == "12"
        assert needs.get_cell("total", "total") == str(6 * 2 + 12 * 4)

        # Back to machines with 1.
        await press(pilot, app, "1")
        assert active(app) == "machines"

        # The log pane got lines from the workers, and is on screen.
        logged = log_text(app)
        assert "connected: sandbox http://127.0.0.1:" in logged
        assert "regions: 3 regions" in logged
        assert "machines: 0 found for 6 seats" in logged
        assert "quotas: vCPUs per type" in logged
        assert "Log" in screen_text(app)
        # The tab strip shows the view keys, the footer the machines view's own keys.
        lines = screen_text(app).splitlines()
        for view in VIEWS:
            assert f"{view.KEY} {view.TITLE}" in lines[1]
        footer = lines[-1]
        for item in ("⏎ Open", "/ Filter", "space Mark", "x Exec", "u Up", "r Refresh",
                     "q Quit", "? Help"):
            assert item in footer


async def test_refresh_updates_machines_in_place(course: Course,
                                                 sandbox_state: StateDir) -> None:
    app = make_app(course, sandbox_state)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.ctx is not None
        ec2 = app.ctx.aws.client("ec2", "us-east-1")
        launched = ec2.run_instances(
            ImageId="ami-12345678", MinCount=1, MaxCount=1, InstanceType="t3.small",
            TagSpecifications=[{"ResourceType": "instance",
                                "Tags": tags.tags(course.id, "s01")}])
        instance_id = launched["Instances"][0]["InstanceId"]

        await press(pilot, app, "r")
        machines = table(app, "machines-table")
        assert machines.row_count == 6  # one row per seat, keyed by seat
        assert machines.get_cell("s01", "instance") == instance_id
        assert machines.get_cell("s01", "state") in ("pending", "running")
        assert machines.get_cell("s01", "region") == "us-east-1"
        assert machines.get_cell("s02", "state") == "absent"
        # At 120 columns the id shows in full or, when the other cells (an address, the
        # notebook and cost of a machine already running) take the room, as i-…xxxx.
        text = screen_text(app)
        assert instance_id in text or short_id(instance_id) in text, "\n" + text
        assert "No machines yet" not in screen_text(app)
        row_keys = list(machines.rows)

        ec2.stop_instances(InstanceIds=[instance_id])
        await press(pilot, app, "r")
        assert list(machines.rows) == row_keys  # the same rows, updated in place
        assert all(a is b for a, b in zip(machines.rows, row_keys, strict=True))
        assert machines.get_cell("s01", "state") in ("stopping", "stopped")
        assert machines.get_cell("s01", "address") == "—"

        ec2.terminate_instances(InstanceIds=[instance_id])
        await press(pilot, app, "r")
        assert list(machines.rows) == row_keys
        assert machines.get_cell("s01", "state") == "absent"
        assert machines.get_cell("s01", "instance") == "—"
        assert "No machines yet" in screen_text(app)
        assert "machines: 1 found" in log_text(app) and "machines: 0 found" in log_text(app)


async def test_command_palette_switches_view(course: Course, sandbox_state: StateDir) -> None:
    app = make_app(course, sandbox_state, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.sub_title.startswith("read-only · sandbox http://127.0.0.1:")
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"show roster")
        await pilot.pause(0.3)
        assert "Show roster" in screen_text(app)
        await pilot.press("enter")
        await settle(pilot, app)
        assert isinstance(app.screen, MainScreen)
        assert active(app) == "roster"
        assert "Ada Lovelace" in screen_text(app)

        # Typing q in the palette is text, not Quit.
        await pilot.press("ctrl+p")
        await pilot.press(*"quotas")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot, app)
        assert app.is_running
        assert active(app) == "quotas"

        # Every view is in the palette.
        await pilot.press("ctrl+p")
        await pilot.press(*"show")
        await pilot.pause(0.3)
        shown = screen_text(app)
        for view in VIEWS:
            assert f"Show {view.TITLE.lower()}" in shown
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)

        # and the roster's actions, by name
        await pilot.press("ctrl+p")
        await pilot.press(*"roster")
        await pilot.pause(0.3)
        shown = screen_text(app)
        for action in ("Roster: handouts", "Roster: mail cards", "Roster: rotate keys"):
            assert action in shown
        await pilot.press("escape")
        await pilot.pause()


async def test_help_lists_every_key(course: Course, sandbox_state: StateDir) -> None:
    app = make_app(course, sandbox_state)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        keys = app.screen.query_one("#help-keys", DataTable)
        rows = [(str(keys.get_row_at(i)[0]), str(keys.get_row_at(i)[1]))
                for i in range(keys.row_count)]
        listed = dict(rows)
        # The footer's keys come first, then the palette, then labtui's other keys (the
        # views, then the machines view's), then the widgets' own keys.
        assert [key for key, _ in rows[:9]] == ["⏎", "/", "space", "x", "u", "r", "q", "?",
                                                "^p"]
        assert [key for key, _ in rows[9:26]] == ["0", "1", "2", "3", "4", "5", "6", "7",
                                                  "8", "L", "b", "s", "S", "T", "D", "^a",
                                                  "esc"]
        for view in VIEWS:
            assert listed[view.KEY] == view.TITLE
        assert listed["r"] == "Refresh"
        assert listed["q"] == "Quit"
        assert listed["?"] == "Help"
        assert listed["^p"].startswith("Command palette")
        assert listed["u"] == "Up" and listed["D"] == "Down" and listed["x"] == "Exec"
        assert listed["esc"] == "Clear filter/marks"
        assert listed["L"] == "Log"
        shown = screen_text(app)
        assert "Roster" in shown and "Command palette" in shown
        assert "Launch the missing machines" in shown  # the details column
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        # The palette can open the help too.
        app.action_help()
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


@pytest.mark.parametrize(("error", "shown"), [
    (LabError("ec2.DescribeRegions: Throttling. Fix: wait a minute and press r"),
     "ec2.DescribeRegions: Throttling. Fix: wait a minute and press r"),
    (RuntimeError("boom"), "unexpected error: RuntimeError: boom"),
])
async def test_failing_worker_is_reported(course: Course, sandbox_state: StateDir,
                                          monkeypatch: pytest.MonkeyPatch,
                                          error: Exception, shown: str) -> None:
    def fail(*_: object, **__: object) -> None:
        raise error

    monkeypatch.setattr("labtui.services.regions.course_regions", fail)
    app = make_app(course, sandbox_state)
    notes: list[tuple[str, str, str]] = []
    real_notify = app.notify

    def notify(message: str, *, title: str = "", severity: str = "information",
               **kwargs: object) -> None:
        notes.append((message, title, severity))
        real_notify(message, title=title, severity=severity, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(app, "notify", notify)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot, app)
        assert (shown, "Loading regions failed", "error") in notes
        assert f"loading regions failed: {shown}" in log_text(app)
        await press(pilot, app, "4")
        text = screen_text(app)
        assert f"Could not load: {shown}" in text
        assert "Loading regions failed" in text  # the toast
        assert "Traceback" not in text and "File \"" not in text
        # The other views loaded regardless.
        assert "machines: 0 found" in log_text(app)
        # A refresh that fails again says so again.
        notes.clear()
        await press(pilot, app, "r")
        assert [n[2] for n in notes] == ["error"]


async def test_connection_failure_is_reported(course: Course, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> Context:
        raise SandboxError("port 4566 on 127.0.0.1 is already in use. Fix: choose another")

    monkeypatch.setattr(app_module, "open_context", refuse)
    app = make_app(course, tmp_path / "state", read_only=True)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot, app)
        assert app.ctx is None
        assert app.sub_title == "read-only · not connected (the sandbox)"
        text = screen_text(app)
        assert "Could not connect to the sandbox" in text  # the toast
        assert "Could not load: not connected — port 4566" in text
        assert "could not connect to the sandbox: port 4566" in log_text(app)
        # The course file's views still work.
        await press(pilot, app, "2")
        assert "Ada Lovelace" in screen_text(app)
        # Refreshing an AWS view repeats why it cannot.
        await press(pilot, app, "4")
        await press(pilot, app, "r")
        assert "Could not connect to the sandbox: port 4566" in screen_text(app)


async def test_context_is_closed_on_exit(course: Course, sandbox_state: StateDir,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[Context] = []
    real_close = Context.close

    def close(self: Context) -> None:
        closed.append(self)
        real_close(self)

    monkeypatch.setattr(Context, "close", close)
    app = make_app(course, sandbox_state)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        ctx = app.ctx
        assert ctx is not None
        await pilot.press("q")
        await pilot.pause()
    assert closed == [ctx]
    assert app.ctx is None
    app.close_context()  # idempotent
    assert closed == [ctx]


async def test_private_sandbox_stops_with_the_app(course: Course, state_dir: Path) -> None:
    """With no running sandbox, the app starts a private one and stops it when it ends."""
    app = make_app(course, state_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.ctx is not None and app.ctx.sandbox is not None
        handle = app.ctx.sandbox
        assert handle.owned is not None and handle.private_root is not None
        private_root = handle.private_root
        assert table(app, "regions-table").get_cell("us-east-1", "opt_in") != "…"
    assert handle.owned is None
    assert not private_root.exists()


async def test_a_seats_escape_sequences_show_as_text(course: Course,
                                                     sandbox_state: StateDir) -> None:
    """Output a seat prints (here: a clear-screen, a window title and a clipboard write)
    reaches the log pane as its text only: no escape byte gets to the terminal."""
    app = make_app(course, sandbox_state)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        app.ctx.sink.emit(LogLine("one\x1b[2J\x1b]0;owned\x07\x1b]52;c;aGk=\x07two",
                                  source="s01", stream="stdout"))
        await settle(pilot, app)
        text = log_text(app)
        assert "[s01] onetwo" in text and "\x1b" not in text and "owned" not in text
