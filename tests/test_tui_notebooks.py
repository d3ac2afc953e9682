"""Jupyter in the console, driven by key presses (Pilot) on the sandbox's real machines: the
machines view's Notebook column (every running seat asked over SSH in a worker), and the
seat screen's notebook tunnel (its local URL, that it answers, the busy kernels, never the
token) and restart of the notebook server. The class runs the stand-in server of
tests/test_notebooks.py (``stand_in_course``)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from textual.widgets import Log, Static

from labtui import lifecycle
from labtui.course import load
from labtui.screens.commands import LabCommands
from labtui.screens.confirm import ConfirmModal
from labtui.screens.main import MainScreen
from labtui.screens.seat import SeatScreen
from labtui.services import notebooks
from labtui.state import StateDir

from .test_notebooks import get_kernels, stand_in_course, web  # noqa: F401  (web: a fixture)
from .test_setup import course_file, on_seat
from .test_tui import SIZE, log_text, make_app, press, screen_text, settle
from .test_tui_machines import (
    cell,
    machines_table,
    record_notes,
    shown_seats,
    status_line,
    wait_until,
)

SEATS = ("s01", "s02")


def notebook_line(app) -> str:
    return str(app.screen.query_one("#seat-notebook", Static).render())


@pytest.mark.timeout(180)
async def test_notebook_column_tunnel_and_restart(ctx, sandbox_state: StateDir, tmp_path: Path,
                                                  web, monkeypatch: pytest.MonkeyPatch  # noqa: F811
                                                  ) -> None:
    course = load(stand_in_course(tmp_path, *web, students=2))
    result = lifecycle.up(ctx, course, setup_wait=90)
    assert sorted(result.set_up) == list(SEATS), result.setup_failed
    token = notebooks.token(ctx.state.course(course.id), "s01")
    assert token

    app = make_app(course, sandbox_state, refresh_every=None)
    notes = record_notes(app, monkeypatch)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot, app)
        # The Notebook column: each running seat's server, asked over SSH in a worker.
        assert "notebook" in machines_table(app).columns
        assert "Notebook" in screen_text(app)
        for seat in SEATS:
            assert cell(app, seat, "notebook") == "up", seat
        assert "notebooks up 2/2 ·" in status_line(app)

        # A busy kernel on s01; r asks again at once (not waiting for the 30 s).
        code, _ = await asyncio.to_thread(
            on_seat, ctx, course, "s01",
            "echo '[{\"name\": \"python3\", \"execution_state\": \"busy\"}]' "
            "> ~/.standin-kernels.json")
        assert code == 0
        await press(pilot, app, "r")
        assert cell(app, "s01", "notebook") == "up, 1 busy"
        assert cell(app, "s02", "notebook") == "up"
        assert "up, 1 busy" in screen_text(app)
        assert "notebooks up 2/2, 1 with busy kernels" in status_line(app)
        # the filter finds the seats by their notebook's state too
        await press(pilot, app, "slash", *"busy", "enter")
        assert shown_seats(app) == ["s01"]
        await press(pilot, app, "escape")
        assert shown_seats(app) == list(SEATS)

        # The seat screen: n opens the tunnel and shows its local URL, never the token.
        machines_table(app).focus()
        await press(pilot, app, "enter")
        assert isinstance(app.screen, SeatScreen) and app.screen.seat == "s01"
        # both actions are listed with the seat's other keys (help) and in the palette
        described = {what for _, what, _ in app.keys(app.screen)}
        assert {"Open notebook tunnel", "Restart notebook server"} <= described
        commands = {name for name, _, _ in LabCommands(app.screen).commands()}
        assert {"Seat s01: open notebook tunnel",
                "Seat s01: restart notebook server"} <= commands
        await pilot.press("n")
        await wait_until(pilot, lambda: "answers" in notebook_line(app), "the tunnel's check")
        line = notebook_line(app)
        match = re.search(r"http://127\.0\.0\.1:(\d+)/lab\b", line)
        assert match, line
        port = int(match.group(1))
        assert "busy: python3" in line and "1 kernel(s)" in line
        token_file = str(notebooks.token_path(ctx.state.course(course.id), "s01"))
        assert f"in {token_file}" in line
        text = screen_text(app)
        assert f"http://127.0.0.1:{port}/lab" in text and "answers" in text
        assert token not in text and token not in line
        # The port answers with the seat's token, as a browser on this computer would.
        assert await asyncio.to_thread(get_kernels, port, token) == 200

        # It is checked again every few seconds: the kernel goes idle, the screen follows.
        await asyncio.to_thread(on_seat, ctx, course, "s01",
                                "echo '[]' > ~/.standin-kernels.json")
        await wait_until(pilot, lambda: "none busy" in notebook_line(app),
                         "the next check", timeout=15)

        # N restarts the server (confirmed), its lines in the Output pane, then a note.
        await pilot.press("N")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the confirm")
        assert "Restart the notebook server of s01?" in screen_text(app)
        await press(pilot, app, "y")
        assert isinstance(app.screen, SeatScreen)
        assert any(m == "Notebook server of s01 restarted: up." for m, _ in notes), notes
        output = "\n".join(app.screen.query_one("#seat-output", Log).lines)
        assert "» exit 0: the notebook server is up" in output, output
        assert token not in output and token not in screen_text(app)
        await wait_until(pilot, lambda: "answers" in notebook_line(app), "the tunnel after "
                         "the restart", timeout=15)

        # Leaving the seat screen closes the tunnel: the port answers no more.
        await press(pilot, app, "escape")
        assert isinstance(app.screen, MainScreen)
        assert await asyncio.to_thread(get_kernels, port, token) is None
        assert token not in log_text(app) and token not in screen_text(app)
        assert not [n for n in notes if n[1] == "error"], notes

        # A seat whose machine is not running has no notebook state: "—".
        await asyncio.to_thread(lifecycle.stop, ctx, course, ["s02"])
        await press(pilot, app, "r")
        assert cell(app, "s02", "state") != "running"
        assert cell(app, "s02", "notebook") == "—"
        assert cell(app, "s01", "notebook") == "up"
        assert "notebooks up 1/1 ·" in status_line(app)


async def test_a_course_without_jupyter(sandbox_state: StateDir, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """No [jupyter]: no Notebook column, and n / N on a seat say why nothing happens."""
    course = load(course_file(tmp_path, students=1))
    app = make_app(course, sandbox_state, refresh_every=None)
    notes = record_notes(app, monkeypatch)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot, app)
        assert "notebook" not in machines_table(app).columns
        assert "Notebook" not in screen_text(app)
        machines_table(app).focus()
        await press(pilot, app, "enter")
        assert isinstance(app.screen, SeatScreen)
        await press(pilot, app, "n", "N")
        said = [m for m, severity in notes if severity == "warning"]
        assert said.count("The course has no [jupyter] section: its seats run no notebook "
                          "server. Add one to the course file (see sample_course.toml).") == 2
        assert not app.screen.query_one("#seat-notebook", Static).display
