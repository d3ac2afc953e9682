"""The machines view and a seat's troubleshooting screen, driven by key presses (Pilot).

Each test runs the real app on the session sandbox (``sandbox_state``) with a small course
written to tmp_path (``course_file`` from test_setup: course "setup", us-east-1, password
login, a file and one setup command), and asserts on what the user sees: table
cells, the status line, the log pane, the seat screen's panes, notifications, and on AWS itself.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from labtui import lifecycle
from labtui.app import LabApp
from labtui.course import Course, load
from labtui.events import Progress, SeatChanged
from labtui.screens.confirm import ConfirmModal, PromptModal
from labtui.screens.main import MainScreen
from labtui.screens.seat import SeatScreen
from labtui.services import passwords, tags
from labtui.state import StateDir

from .test_setup import course_file
from .test_tui import SIZE, log_text, make_app, press, record_calls, screen_text, settle

SEATS = ("s01", "s02", "s03")


@pytest.fixture
def course(tmp_path: Path) -> Course:
    return load(course_file(tmp_path, students=3))


def machines_table(app: LabApp) -> DataTable:
    return app.main.query_one("#machines-table", DataTable)


def shown_seats(app: LabApp) -> list[str]:
    rows = machines_table(app)
    return [str(rows.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(rows.row_count)]


def cell(app: LabApp, seat: str, column: str) -> str:
    return str(machines_table(app).get_cell(seat, column))


def status_line(app: LabApp) -> str:
    return app.machines.status_text


async def wait_until(pilot: Pilot, ok: Callable[[], object], what: str,
                     timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)
    await pilot.pause()  # a screen just pushed gets composed and painted


def record_notes(app: LabApp, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    notes: list[tuple[str, str]] = []
    real = app.notify

    def notify(message: str, *, severity: str = "information", **kwargs: object) -> None:
        notes.append((message, severity))
        real(message, severity=severity, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(app, "notify", notify)
    return notes


async def up(pilot: Pilot, app: LabApp) -> str:
    """Press u, read the confirmation, answer y, wait for launch and setup to finish."""
    await pilot.press("u")
    await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the up modal")
    modal_text = screen_text(app)
    await pilot.press("y")
    await settle(pilot, app)
    return modal_text


def exec_output(state: StateDir, course_id: str = "setup") -> set[tuple[str, str]]:
    """(seat, text) of every line of remote command output in the course's event log."""
    events = [json.loads(line) for line in
              state.course(course_id).event_log.read_text().splitlines()]
    return {(e["source"], e["text"]) for e in events
            if e["type"] == "log_line" and e.get("stream") in ("stdout", "stderr")}


def lines_after(text: str, marker: str) -> list[str]:
    lines = text.splitlines()
    start = max(i for i, line in enumerate(lines) if marker in line)
    return lines[start:]


async def test_up_filter_marks_exec_and_seat_screen(course: Course, sandbox_state: StateDir,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(course, sandbox_state, refresh_every=None)
    notes = record_notes(app, monkeypatch)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot, app)
        # Every seat is a row, keyed by seat, absent before up.
        assert shown_seats(app) == list(SEATS)
        assert {cell(app, s, "state") for s in SEATS} == {"absent"}
        assert "running 0/3 (absent 3)" in status_line(app)
        assert "press u (or `labtui up`)" in screen_text(app)

        # u: the one confirmation shows the plan's counts, types and vCPUs; y launches.
        modal = await up(pilot, app)
        assert "Launch 3 machines (3 in us-east-1)?" in modal
        assert "us-east-1" in modal and "3 × t3.small" in modal
        assert "3 instances, 6 vCPUs" in modal and "max_instances = 20" in modal
        # 3 x t3.small at the table's 0.0208 $/hour (served by the sandbox's Price List API)
        assert "about $0.06/hour, $1.50/day" in modal
        assert isinstance(app.screen, MainScreen)
        for seat in SEATS:
            assert cell(app, seat, "state") == "running", seat
            assert cell(app, seat, "setup") == "done", seat
            assert cell(app, seat, "region") == "us-east-1"
            assert cell(app, seat, "instance").startswith("i-")
            assert cell(app, seat, "address").startswith("127.")
            assert cell(app, seat, "error") == ""
            assert float(cell(app, seat, "cost")) >= 0  # $ so far, from the price table
        assert status_line(app).startswith("running 3/3 · setup done 3, failed 0")
        # 3 running t3.small at 0.0208 $/hour
        assert "$0.06/hour now" in status_line(app)
        assert any("Launched 3 of 3 machine(s). Set up 3." in m for m, _ in notes)
        assert "[s02] == wait for boot to finish" in log_text(app)
        # The app's sink also wrote the course's event log.
        event_log = sandbox_state.course("setup").event_log
        kinds = {json.loads(line)["type"] for line in event_log.read_text().splitlines()}
        assert {"seat_changed", "progress", "log_line", "step_done"} <= kinds

        # A second u: nothing to launch, no question asked.
        notes.clear()
        await press(pilot, app, "u")
        assert isinstance(app.screen, MainScreen)
        assert any("Nothing to launch: every seat has its machine (3 seats)." in m
                   for m, _ in notes)
        assert len(lifecycle.status(app.ctx, course)) == 3
        ec2 = app.ctx.aws.client("ec2", "us-east-1")
        live = [i for r in ec2.describe_instances(Filters=tags.course_filter("setup"))[
            "Reservations"] for i in r["Instances"] if i["State"]["Name"] != "terminated"]
        assert len(live) == 3

        # / filters: by seat, state, setup; escape clears.
        await pilot.press("slash", *"s02")
        await pilot.pause()
        assert shown_seats(app) == ["s02"]
        assert 'filter "s02": 1 of 3 shown' in status_line(app)
        await pilot.press("enter")  # keeps the filter, back to the table
        assert isinstance(app.focused, DataTable)
        await pilot.press("escape")
        await pilot.pause()
        assert shown_seats(app) == list(SEATS)
        await pilot.press("slash", *"absent")
        await pilot.pause()
        assert shown_seats(app) == []
        assert 'filter "absent": 0 of 3 shown' in status_line(app)
        await pilot.press("escape")
        await pilot.pause()
        assert shown_seats(app) == list(SEATS)
        assert not app.main.query_one("#machines-filter", Input).display

        # space marks s01 and s03; x runs a command on those two only.
        await pilot.press("space", "down", "down", "space")
        await pilot.pause()
        assert [cell(app, s, "mark") for s in SEATS] == ["●", "", "●"]
        assert "2 marked" in status_line(app)
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, PromptModal), "the prompt")
        assert "Run a command on s01, s03" in screen_text(app)
        await pilot.press(*"whoami;exit 3", "enter")
        await settle(pilot, app)
        after = lines_after(log_text(app), "exec on s01, s03:")
        assert any(line.endswith("[s01] ubuntu") for line in after)
        assert any(line.endswith("[s03] ubuntu") for line in after)
        assert any(line.endswith("[s01] exit 3") for line in after)
        assert any(line.endswith("[s03] exit 3") for line in after)
        assert not any("[s02]" in line for line in after)
        assert any("non-zero exit on s01, s03" in m for m, _ in notes)
        # The exec output went through the app's sink: the event log has it, seat by seat.
        assert {("s01", "ubuntu"), ("s03", "ubuntu")} <= exec_output(sandbox_state)
        assert not any(seat == "s02" for seat, _ in exec_output(sandbox_state))
        # escape (no filter) clears the marks
        await pilot.press("escape")
        await pilot.pause()
        assert [cell(app, s, "mark") for s in SEATS] == ["", "", ""]

        # Enter opens the seat's screen: details, the machine's console, setup log.
        await pilot.press("up", "enter")  # the cursor was on s03
        await wait_until(pilot, lambda: isinstance(app.screen, SeatScreen), "the seat screen")
        seat_screen = app.screen
        assert isinstance(seat_screen, SeatScreen) and seat_screen.seat == "s02"
        await settle(pilot, app)
        instance_id = cell(app, "s02", "instance")
        shown = screen_text(app)
        assert "Seat s02 — Student 2 (s02)" in shown
        assert instance_id in shown and "t3.small" in shown and "us-east-1" in shown
        assert "Setup     done" in shown and "labtui:seat=s02" in shown
        await wait_until(pilot, lambda: any("setup done" in line for line in
                                            seat_screen.pane("setup-log").lines),
                         "the setup log")
        setup_lines = seat_screen.pane("setup-log").lines
        assert any(line.endswith("== wait for boot to finish") for line in setup_lines)
        await pilot.press("c")
        await settle(pilot, app)
        console = "\n".join(seat_screen.pane("console").lines)
        assert "Cloud-init v." in console and "BEGIN SSH HOST KEY KEYS" in console
        # The command line: output streams in, then the exit status.
        await pilot.press("x", *"echo $((6*7))", "enter")
        await settle(pilot, app)
        output = list(seat_screen.pane("output").lines)
        assert output == ["» $ echo $((6*7))", "42", "» exit 0"]
        assert ("s02", "42") in exec_output(sandbox_state)
        # f tails a remote file into the output pane.
        await pilot.press("escape", "f")
        await wait_until(pilot, lambda: isinstance(app.screen, PromptModal), "the path prompt")
        await pilot.press(*"~/hello.txt", "enter")
        await settle(pilot, app)
        output = list(seat_screen.pane("output").lines)
        assert output[-3:] == ["» $ tail ~/hello.txt", "hello from the course", "» exit 0"]
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


async def test_reboot_asks_first(course: Course, sandbox_state: StateDir,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    real_reboot = lifecycle.reboot

    def reboot(ctx, course_, seats):  # noqa: ANN001, ANN202
        calls.append(list(seats))
        return real_reboot(ctx, course_, seats)

    monkeypatch.setattr(lifecycle, "reboot", reboot)
    app = make_app(course, sandbox_state, refresh_every=None)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot, app)
        await asyncio.to_thread(lifecycle.up, app.ctx, course, skip_setup=True)
        await press(pilot, app, "r")
        assert cell(app, "s01", "state") == "running"

        # n cancels: nothing happens.
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the modal")
        assert "Reboot 1 machine?" in screen_text(app)
        await press(pilot, app, "n")
        assert isinstance(app.screen, MainScreen)
        assert calls == []
        assert "reboot s01: cancelled; nothing changed" in log_text(app)
        # escape cancels too.
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the modal")
        await press(pilot, app, "escape")
        assert calls == []
        # y reboots the cursor's seat.
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the modal")
        await press(pilot, app, "y")
        assert calls == [["s01"]]
        assert "Rebooted 1 machine(s): s01." in log_text(app)

        # The seat screen's b goes through the same modal.
        await pilot.press("down", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, SeatScreen), "the seat screen")
        await settle(pilot, app)
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the modal")
        assert "Reboot s02's machine?" in screen_text(app)
        await press(pilot, app, "n")
        assert isinstance(app.screen, SeatScreen)
        assert calls == [["s01"]]


async def test_stop_start_down_ask_first(course: Course, sandbox_state: StateDir,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(course, sandbox_state, refresh_every=None)
    notes = record_notes(app, monkeypatch)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot, app)
        await asyncio.to_thread(lifecycle.up, app.ctx, course, skip_setup=True)
        await press(pilot, app, "r", "space", "down", "space")  # s01 and s02 marked

        await pilot.press("S")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the modal")
        assert "Stop 2 machines?" in screen_text(app) and "s01, s02" in screen_text(app)
        await press(pilot, app, "y")
        assert [cell(app, s, "state") for s in SEATS] == ["stopped", "stopped", "running"]
        assert ("Stopped 2 machine(s).", "information") in notes

        await pilot.press("T")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the modal")
        await press(pilot, app, "y")
        assert [cell(app, s, "state") for s in SEATS] == ["running"] * 3

        await pilot.press("D")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the modal")
        shown = screen_text(app)
        assert "Take setup down?" in shown and "seat machines: 3 in us-east-1" in shown
        assert "cannot be undone" in shown
        await press(pilot, app, "y")
        assert [cell(app, s, "state") for s in SEATS] == ["absent"] * 3, log_text(app)
        assert any(m.startswith("Down: removed") and "3 instances" in m for m, _ in notes)
        ec2 = app.ctx.aws.client("ec2", "us-east-1")
        assert {i["State"]["Name"] for r in ec2.describe_instances(
            Filters=tags.course_filter("setup"))["Reservations"] for i in r["Instances"]} \
            <= {"terminated", "shutting-down"}


async def test_read_only_refuses_and_launches_nothing(course: Course, sandbox_state: StateDir,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(course, sandbox_state, read_only=True, refresh_every=None)
    notes = record_notes(app, monkeypatch)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot, app)
        # The footer still lists the keys; pressing them is refused, naming --read-only.
        assert "u Up" in screen_text(app).splitlines()[-1]
        await press(pilot, app, "u")
        assert isinstance(app.screen, MainScreen)
        assert notes and "--read-only" in notes[-1][0] and notes[-1][0].startswith("Up")
        await press(pilot, app, "space", "x")
        assert isinstance(app.screen, MainScreen)
        assert "--read-only" in notes[-1][0] and notes[-1][0].startswith("Exec")
        for key in ("b", "s", "S", "T", "D"):
            notes.clear()
            await press(pilot, app, key)
            assert isinstance(app.screen, MainScreen), key
            assert len(notes) == 1 and "--read-only" in notes[0][0], key
        assert "Read-only" in screen_text(app)  # the toast's title
        # The command palette has every machines action, and refuses the same way.
        notes.clear()
        await pilot.press("ctrl+p", *"machines: up")
        await pilot.pause(0.3)
        assert "Machines: up" in screen_text(app)
        await press(pilot, app, "enter")
        assert isinstance(app.screen, MainScreen)
        assert len(notes) == 1 and "--read-only" in notes[0][0]

        # The seat screen opens (views are fine) and refuses commands and the shell.
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, SeatScreen), "the seat screen")
        await settle(pilot, app)
        assert "absent — the seat has no machine" in screen_text(app)
        for key in ("exclamation_mark", "s", "p", "b", "f"):
            notes.clear()
            await press(pilot, app, key)
            assert isinstance(app.screen, SeatScreen), key
            assert len(notes) == 1 and "--read-only" in notes[0][0], key
        notes.clear()
        await press(pilot, app, "x", *"uptime", "enter")
        assert "--read-only" in notes[-1][0] and notes[-1][0].startswith("Exec")

        # Nothing was launched: AWS has no instance of the course.
        assert {s.state for s in lifecycle.status(app.ctx, course)} == {"absent"}
        ec2 = app.ctx.aws.client("ec2", "us-east-1")
        assert ec2.describe_instances(Filters=tags.course_filter("setup"))["Reservations"] == []


async def test_seat_shell_setup_and_password(course: Course, sandbox_state: StateDir,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[list[str]] = []
    suspended: list[bool] = []
    asked: list[str] = []
    real_ssh_command = lifecycle.ssh_command

    def ssh_command(ctx, course_, seat):  # noqa: ANN001, ANN202
        asked.append(seat)
        return real_ssh_command(ctx, course_, seat)

    class Suspended:
        def __enter__(self) -> None:
            suspended.append(True)

        def __exit__(self, *_: object) -> None:
            suspended.append(False)

    monkeypatch.setattr(lifecycle, "ssh_command", ssh_command)
    monkeypatch.setattr(App, "suspend", lambda self: Suspended())
    monkeypatch.setattr("subprocess.call", lambda argv: ran.append(list(argv)) or 0)
    app = make_app(course, sandbox_state, refresh_every=None)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot, app)
        await asyncio.to_thread(lifecycle.up, app.ctx, course, skip_setup=True)
        await press(pilot, app, "r", "down", "down")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, SeatScreen), "the seat screen")
        await settle(pilot, app)
        await press(pilot, app, "exclamation_mark")
        assert asked == ["s03"]
        assert suspended == [True, False]
        [argv] = ran
        assert Path(argv[0]).name == "ssh" and "StrictHostKeyChecking=yes" in argv
        assert argv[-1].startswith("ubuntu@127.")
        assert "shell on s03 ended (exit 0" in log_text(app)
        seat_screen = app.screen
        assert isinstance(seat_screen, SeatScreen)

        # Setup never ran on this seat: the setup log pane says so, then follows a re-run.
        def setup_log() -> str:
            return "\n".join(seat_screen.pane("setup-log").lines)

        assert "No setup log yet" in setup_log()
        await pilot.press("s")
        await wait_until(pilot, lambda: "setup done" in setup_log(), "the setup log")
        assert "No setup log yet" not in setup_log() and "== set the seat password" in setup_log()
        await settle(pilot, app)
        assert cell(app, "s03", "setup") == "done"

        # Reset password: confirmed first; says where the new one is kept, never shows it.
        notes = record_notes(app, monkeypatch)
        await pilot.press("p")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the modal")
        assert "Reset the password of s03?" in screen_text(app)
        await press(pilot, app, "y")
        state = sandbox_state.course("setup")
        password = passwords.get(state, "s03")
        assert password
        where = str(passwords.path_of(state, "s03"))
        assert any(where in m and "not shown" in m for m, _ in notes)
        assert password not in screen_text(app) and password not in log_text(app)
        assert not any(password in m for m, _ in notes)


async def test_seat_keys_palette_and_shell_without_suspend(
        course: Course, sandbox_state: StateDir, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pilot's headless driver cannot suspend: the screen says so and shows the command."""
    monkeypatch.setattr("subprocess.call", lambda argv: pytest.fail("no shell without suspend"))
    app = make_app(course, sandbox_state, refresh_every=None)
    notes = record_notes(app, monkeypatch)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot, app)
        await asyncio.to_thread(lifecycle.up, app.ctx, course, skip_setup=True)
        await press(pilot, app, "r")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, SeatScreen), "the seat screen")
        await settle(pilot, app)
        await press(pilot, app, "exclamation_mark")
        assert any("cannot hand over to a shell" in m and "ssh" in m for m, _ in notes)

        # On a seat's screen, ? lists its keys and the palette has its actions.
        await pilot.press("question_mark")
        await pilot.pause()
        shown = screen_text(app)
        for key, what in (("x", "Command"), ("f", "Tail file"), ("p", "Reset password"),
                          ("b", "Reboot"), ("!", "Shell"), ("c", "Console")):
            assert f" {key}          {what}" in shown, key
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("ctrl+p", *"s01: c")
        await pilot.pause(0.3)
        assert "Seat s01: console" in screen_text(app)
        await press(pilot, app, "enter")
        assert isinstance(app.screen, SeatScreen)
        assert "labtui sandbox machine" in "\n".join(app.screen.pane("console").lines)


async def test_events_update_cells_and_refresh_runs_by_itself(
        course: Course, sandbox_state: StateDir) -> None:
    app = make_app(course, sandbox_state, refresh_every=None)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        rows = machines_table(app)
        keys = list(rows.rows)
        # Events from the work update cells in place.
        app.ctx.sink.emit(SeatChanged("s02", "launching", "us-east-1 us-east-1a"))
        app.ctx.sink.emit(SeatChanged("s02", "setup failed", "install packages failed (exit "
                                                             "100)"))
        app.ctx.sink.emit(Progress("setup", 2, 3, 1))
        # Remote output may hold anything, square brackets too: shown as text, not markup.
        app.ctx.sink.emit(SeatChanged("s03", "setup failed", "grep: [/bold] [Errno 5]"))
        await pilot.pause(0.2)
        assert cell(app, "s02", "setup") == "failed"
        assert cell(app, "s02", "error") == "install packages failed (exit 100)"
        assert "setup 2/3, failed 1" in status_line(app)
        assert list(rows.rows) == keys  # the same rows, updated in place
        assert "grep: [/bold] [Errno 5]" in screen_text(app)

        # A machine launched behind the app's back shows up without a key press, from the
        # quiet periodic refresh (the app runs it every 5 s; here every 0.3 s).
        app.set_interval(0.3, app.poll_machines)
        ec2 = app.ctx.aws.client("ec2", "us-east-1")
        ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1,
                          InstanceType="t3.small", TagSpecifications=[
                              {"ResourceType": "instance", "Tags": tags.tags("setup", "s01")}])
        await wait_until(pilot, lambda: cell(app, "s01", "state") in ("pending", "running"),
                         "the periodic refresh", timeout=10)
        assert cell(app, "s01", "instance").startswith("i-")
        assert list(rows.rows) == keys
        # AWS is the source of truth: the refresh replaced what the events said about s02.
        assert cell(app, "s02", "state") == "absent" and cell(app, "s02", "error") == ""
        assert log_text(app).count("machines: looking for") == 1  # quiet refreshes
        # A filter the user types is text too.
        await pilot.press("slash", *"[/b")
        await pilot.pause()
        assert 'filter "[/b": 0 of 3 shown' in screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
        assert app.is_running and shown_seats(app) == list(SEATS)


async def test_a_batch_of_events_shows_each_seat_once_with_its_latest_state(
        tmp_path: Path, sandbox_state: StateDir, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many events of the same seats in one batch: the table takes one update per seat
    (not one per event) and shows what the last event said, including a seat the filter
    hides, which shows its latest cells when it comes back."""
    course = load(course_file(tmp_path, students=20))
    app = make_app(course, sandbox_state, refresh_every=None)
    async with app.run_test(size=(200, 40)) as pilot:  # wide: every column on screen
        await settle(pilot, app)
        rows = machines_table(app)
        assert len(shown_seats(app)) == 20
        await pilot.press("slash", *"s1")
        await pilot.pause()
        assert shown_seats(app) == [f"s{i}" for i in range(10, 20)]

        updates: list[list[str]] = []
        real = rows.update_rows

        def update_rows(changes, wider=()):  # noqa: ANN001, ANN202
            changes = list(changes)
            updates.append([str(seat) for seat, _ in changes])
            return real(changes, wider)

        monkeypatch.setattr(rows, "update_rows", update_rows)
        sink = app.ctx.sink
        for seat in ("s12", "s05"):
            sink.emit(SeatChanged(seat, "launching", "eu-west-1 eu-west-1b"))
            sink.emit(SeatChanged(seat, "pending", f"i-0123456789abcdef{seat[1:]}"))
            for step in range(20):
                sink.emit(SeatChanged(seat, "setup", f"step {step}"))
            sink.emit(SeatChanged(seat, "setup failed", "step 3/4 failed (exit 2)\n[/red]"))
        await wait_until(pilot, lambda: not app.events_pending, "the batch")
        assert updates == [["s12"]]  # one batch, one update of the one seat shown
        assert (cell(app, "s12", "state"), cell(app, "s12", "region"),
                cell(app, "s12", "instance"), cell(app, "s12", "setup")) == (
            "running", "eu-west-1", "i-0123456789abcdef12", "failed")
        assert "step 3/4 failed (exit 2) [/red]" in screen_text(app)

        # The filter follows the events: "failed" shows the two seats that failed.
        await pilot.press("escape", "slash", *"failed")
        await pilot.pause()
        assert shown_seats(app) == ["s05", "s12"]
        assert cell(app, "s05", "instance") == "i-0123456789abcdef05"
        assert app.machines.seats["s05"].cells["error"] == "step 3/4 failed (exit 2) [/red]"
        assert screen_text(app).count("step 3/4 failed (exit 2) [/red]") == 2
        sink.emit(SeatChanged("s05", "ready", ""))
        await wait_until(pilot, lambda: shown_seats(app) == ["s12"], "s05 to leave the filter")
        assert 'filter "failed": 1 of 20 shown' in status_line(app)


async def test_filter_lays_rows_anew_in_order_and_marks_survive_it_and_a_refresh(
        tmp_path: Path, sandbox_state: StateDir) -> None:
    course = load(course_file(tmp_path, students=20))
    app = make_app(course, sandbox_state, refresh_every=None)
    seats = [f"s{i:02}" for i in range(1, 21)]
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        rows = machines_table(app)
        # Mark s03 and s15; the cursor stays on s15.
        await pilot.press("down", "down", "space")
        for _ in range(12):
            await pilot.press("down")
        await pilot.press("space")
        await pilot.pause()
        assert app.machines.marked == {"s03", "s15"}
        assert app.machines.cursor_seat() == "s15"

        # Narrowing 20 -> 2 rows, and widening back, each past the few rows that are
        # removed or added by key: the rows are laid anew, in course order.
        await pilot.press("slash", *"s15")
        await pilot.pause()
        assert shown_seats(app) == ["s15"]
        assert cell(app, "s15", "mark") == "●"
        assert "2 marked (1 hidden by the filter)" in status_line(app)
        await pilot.press("backspace", "backspace")
        await pilot.pause()
        assert shown_seats(app) == seats
        assert app.machines.cursor_seat() == "s15"  # the cursor kept its seat
        assert [cell(app, s, "mark") for s in ("s03", "s15", "s04")] == ["●", "●", ""]
        await pilot.press("backspace", "enter")  # an empty filter: back to the table
        await pilot.pause()
        assert app.machines.filter_words == () and rows.has_focus

        # A refresh from AWS rewrites the cells it knows; the marks are the user's.
        keys = list(rows.rows)
        await press(pilot, app, "r")
        assert list(rows.rows) == keys
        assert [cell(app, s, "mark") for s in ("s03", "s15", "s04")] == ["●", "●", ""]
        assert "2 marked" in status_line(app)
        assert {cell(app, s, "state") for s in seats} == {"absent"}


async def test_typing_in_the_filter_repaints_it_without_a_layout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A key typed into the filter line changes its text and its scroll, not the screen's
    layout (a layout repaints every widget: 500 seats under load felt it on every key)."""
    from textual.app import ComposeResult
    from textual.geometry import Region
    from textual.screen import Screen

    from labtui.screens.machines import FilterInput

    class One(App[None]):
        CSS = "FilterInput { width: 24; }"

        def compose(self) -> ComposeResult:
            yield FilterInput(id="f")

    app = One()
    async with app.run_test(size=(60, 10)) as pilot:
        line = app.query_one("#f", FilterInput)
        line.focus()
        await pilot.pause()
        layouts = record_calls(monkeypatch, Screen, "_refresh_layout")
        text = "seat s1 failed in eu-west-1 with exit 100"
        await pilot.press(*text)
        await pilot.pause()
        assert line.value == text
        assert layouts == []
        # Longer than the line: it scrolls to keep the cursor in view, as Input does.
        assert line.virtual_size.width > line.content_size.width
        assert line.scroll_x > 0
        width, height = line.outer_size
        shown = [strip.text for strip in line.render_lines(Region(0, 0, width, height))]
        assert text[-10:] in shown[1] and text[:4] not in shown[1]


async def test_quit_while_setup_runs_asks_then_ends_the_steps_on_the_machines(
        ctx, sandbox_state: StateDir, tmp_path: Path) -> None:
    """q while a job runs asks first; "Keep working" keeps it; yes ends it as Ctrl-C does
    headless: the step running on the machine is ended, the seat is pending again, and the
    console closes."""
    from .courses import write_course
    from .test_lifecycle import eventually
    from .test_setup import on_seat

    course = load(write_course(tmp_path, "quit", students=1, machines='login = "key"\n'
                               'setup = ["test -e ~/.quick || sleep 60"]'))
    lifecycle.up(ctx, course, skip_setup=True)
    eventually(lambda: lifecycle.status(ctx, course), lambda s: all(x.address for x in s))
    app = make_app(course, sandbox_state)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("s")   # re-run setup on the cursor's seat
        sleeping = lambda: on_seat(ctx, course, "s01", "pgrep -xc sleep || true")[1]  # noqa: E731
        await wait_until(pilot, lambda: sleeping().strip() == "1", "the step to run",
                         timeout=30)
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the question")
        assert "is still running. Quit and stop it?" in screen_text(app)
        await pilot.press("n")   # keep working: nothing stops
        await pilot.pause(0.5)
        assert app.is_running and sleeping().strip() == "1"
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the question")
        began = time.monotonic()
        await pilot.press("y")
        await wait_until(pilot, lambda: not app.is_running, "the console to close", timeout=10)
        took = time.monotonic() - began
    print(f"closed {took:.2f} s after yes")   # shown with -s
    assert eventually(sleeping, lambda c: c.strip() in ("", "0"), timeout=5).strip() in ("", "0")
    [seat] = lifecycle.status(ctx, course)
    assert (seat.setup, seat.error) == ("pending", "interrupted")
