"""Every view reads at 80x24: the columns that matter in class stay on screen and the others
give way (rowtable.Fit), and come back when the terminal grows. The real app on the session
sandbox with the snapshot class (three seats, no machines); a seat's launch, instance and
failed setup come as the events the work emits, as in test_tui_machines."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable

from labtui.app import LabApp
from labtui.course import load
from labtui.events import SeatChanged
from labtui.screens.rowtable import region_code, short_id
from labtui.state import StateDir

from .test_tui import screen_text, settle

COURSE = Path(__file__).resolve().parent / "data" / "snapshot_course.toml"
LONG_ERROR = ("install packages failed (exit 100): E: Unable to locate package "
              "python3-notapackage; the package lists may be out of date, run apt-get update")


def launch_events(app: LabApp) -> None:
    """s02 launches in eu-west-1 and its setup fails with a long error."""
    sink = app.ctx.sink
    sink.emit(SeatChanged("s02", "launching", "eu-west-1 eu-west-1b"))
    sink.emit(SeatChanged("s02", "pending", "i-0123456789abcdef0"))
    sink.emit(SeatChanged("s02", "setup failed", LONG_ERROR))


def header(app: LabApp) -> list[str]:
    """The labels of the machines table's columns the user sees."""
    rows = app.main.query_one("#machines-table", DataTable)
    hidden = set(rows.hidden_columns())  # type: ignore[attr-defined]
    return [str(c.label) for c in rows.ordered_columns if str(c.key.value) not in hidden]


def test_region_codes_and_short_ids() -> None:
    assert [region_code(r) for r in ("us-east-1", "eu-west-1", "ap-southeast-2",
                                     "eu-central-1", "ap-northeast-1", "us-gov-west-1",
                                     "sa-east-1", "—")] == [
        "use1", "euw1", "apse2", "euc1", "apne1", "usgw1", "sae1", "—"]
    assert short_id("i-0123456789abcdef0") == "i-…def0"
    assert short_id("j-2AXXXXXXGAPLF") == "j-…APLF"
    assert short_id("—") == "—" and short_id("not an id") == "not an id"


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
async def test_the_machines_view_keeps_seat_state_setup_and_error(
        sandbox_state: StateDir, size: tuple[int, int]) -> None:
    app = LabApp(load(COURSE), sandbox=True, state_dir=str(sandbox_state.root),
                 refresh_every=None)
    async with app.run_test(size=size) as pilot:
        await settle(pilot, app)
        await pilot.press("L")
        launch_events(app)
        await pilot.pause(0.3)
        text = screen_text(app)
        lines = text.splitlines()
        head = next(line for line in lines if " Seat " in line)
        for label in ("Seat", "State", "Setup", "Error"):
            assert label in head and label in header(app)
        for seat in ("s01", "s02", "s03"):
            assert seat in text
        assert "failed" in text and "install packages failed" in text
        if size == (80, 24):
            assert "Instance" not in head or "i-…def0" in text
            assert "i-0123456789abcdef0" not in text
            assert all(len(line.rstrip()) <= 80 for line in lines)
        else:
            assert "Instance" in head and "i-0123456789abcdef0" in text
            assert "eu-west-1" in text
        # The data is whole: the filter and get_cell see the full values.
        rows = app.main.query_one("#machines-table", DataTable)
        assert str(rows.get_cell("s02", "instance")) == "i-0123456789abcdef0"
        assert str(rows.get_cell("s02", "region")) == "eu-west-1"


async def test_the_columns_come_back_when_the_terminal_grows(sandbox_state: StateDir) -> None:
    app = LabApp(load(COURSE), sandbox=True, state_dir=str(sandbox_state.root),
                 refresh_every=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        await pilot.press("L")
        launch_events(app)
        await pilot.pause(0.3)
        narrow = header(app)
        print(screen_text(app))
        assert "Address" not in narrow
        await pilot.resize_terminal(200, 48)
        await pilot.pause(0.3)
        print(screen_text(app))
        wide = header(app)
        assert {"Instance", "Address", "Region", "$ so far", "Students"} <= set(wide)
        assert "i-0123456789abcdef0" in screen_text(app)
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.3)
        assert header(app) == narrow


async def test_the_seat_screen_wraps_its_details_at_80x24(sandbox_state: StateDir) -> None:
    app = LabApp(load(COURSE), sandbox=True, state_dir=str(sandbox_state.root),
                 refresh_every=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        await pilot.press("L", "enter")
        await settle(pilot, app)
        lines = screen_text(app).splitlines()
        machine = next(i for i, line in enumerate(lines) if line.startswith(" Machine "))
        # The sentence goes on under its value, not under the label, and all of it shows.
        assert lines[machine + 1].startswith(" " * 11) and "to launch it" in lines[machine + 1]
        assert all(len(line.rstrip()) <= 80 for line in lines)


async def test_the_clusters_view_keeps_each_clusters_state_at_80x24(
        sandbox_state: StateDir, tmp_path: Path) -> None:
    from .test_snapshots import CLUSTERS

    path = tmp_path / "snapshot_course.toml"
    path.write_text(COURSE.read_text() + CLUSTERS)
    app = LabApp(load(path), sandbox=True, state_dir=str(sandbox_state.root),
                 refresh_every=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        await pilot.press("L", "3")
        await settle(pilot, app)
        rows = app.main.query_one("#clusters-table", DataTable)
        hidden = set(rows.hidden_columns())  # type: ignore[attr-defined]
        assert {"key", "state", "note"}.isdisjoint(hidden)
        assert "cost" in hidden
        head = next(line for line in screen_text(app).splitlines() if " Student " in line)
        assert "State" in head and "Master / why it ended" in head
        await pilot.resize_terminal(200, 40)
        await pilot.pause(0.3)
        assert rows.hidden_columns() == []  # type: ignore[attr-defined]
