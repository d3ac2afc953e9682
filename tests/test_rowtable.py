"""RowTable draws its rows itself (one cached line per row version): what it draws must be
what Textual's DataTable draws for the same cells — text, colours, zebra, cursor, hover and
the row/column meta the mouse handlers read — and a changed cell must show at once."""

from __future__ import annotations

import pytest
from rich.markup import escape
from textual.app import App, ComposeResult
from textual.coordinate import Coordinate
from textual.geometry import Region
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist

from labtui.screens.rowtable import RowTable, plain

COLUMNS = (("", "mark"), ("Seat", "seat"), ("Students", "students"), ("State", "state"),
           ("Error", "error"))
ROWS = [
    ("●", "s01", "Ana, Bo", "running", "grep: [/bold] [Errno 5]"),
    ("", "s02", "張偉", "pending", ""),
    ("", "s03", "Zoë", "absent", "exit 100 [red]not red[/red]"),
    ("●", "s04", "", "setup failed", "x" * 30),
    ("", "s05", "Eve", "running", ""),
]
SIZE = (90, 24)


class Pair(App[None]):
    CSS = "DataTable { height: 9; }"

    def compose(self) -> ComposeResult:
        for table in (RowTable(id="fast", cursor_type="row", zebra_stripes=True),
                      DataTable(id="stock", cursor_type="row", zebra_stripes=True)):
            for label, key in COLUMNS:
                table.add_column(label, key=key, width=1 if key == "mark" else None)
            for row in ROWS:
                table.add_row(*(escape(cell) for cell in row), key=row[1])
            yield table


def lines(table: DataTable) -> list[list[tuple[str, object]]]:
    width, height = table.size
    return [[(segment.text, segment.style) for segment in strip]
            for strip in table.render_lines(Region(0, 0, width, height))]


async def same(pilot, fast: DataTable, stock: DataTable) -> None:  # noqa: ANN001
    await pilot.pause()
    assert lines(fast) == lines(stock)


async def test_rows_draw_as_datatable_draws_them() -> None:
    app = Pair()
    async with app.run_test(size=SIZE) as pilot:
        fast = app.query_one("#fast", RowTable)
        stock = app.query_one("#stock", DataTable)
        await pilot.pause()
        assert fast.size == stock.size and fast.size.height == 9
        app.set_focus(None)
        await same(pilot, fast, stock)
        # The text shown is the text escaped, not markup.
        shown = "".join(text for line in lines(fast) for text, _ in line)
        assert "grep: [/bold] [Errno 5]" in shown and "[red]not red[/red]" in shown

        for table in (fast, stock):
            table.move_cursor(row=2)
        await same(pilot, fast, stock)

        # The hover highlight (the mouse over a row) too.
        for table in (fast, stock):
            table._show_hover_cursor = True
            table.hover_coordinate = Coordinate(3, 1)
        await same(pilot, fast, stock)

        # Focused, the cursor takes the :focus style; each table in turn.
        fast.focus()
        await pilot.pause()
        focused_fast = lines(fast)
        stock.focus()
        await pilot.pause()
        assert focused_fast == lines(stock)
        app.set_focus(None)

        # A changed cell shows at once; a wider value widens its column as in DataTable.
        for table in (fast, stock):
            table.update_cell("s02", "state", "running")
            table.update_cell("s05", "error", escape("setup 1/2 failed (exit 1) [x]"),
                              update_width=True)
        await same(pilot, fast, stock)
        assert "setup 1/2 failed (exit 1) [x]" in "".join(
            text for line in lines(fast) for text, _ in line)

        # Rows removed, added and sorted by key.
        for table in (fast, stock):
            table.remove_row("s03")
            table.add_row("", "s00", "New", "launching", "", key="s00")
            table.sort("seat")
        await same(pilot, fast, stock)


async def test_update_rows_sets_several_rows_and_refuses_unknown_cells() -> None:
    app = Pair()
    async with app.run_test(size=SIZE) as pilot:
        fast = app.query_one("#fast", RowTable)
        await pilot.pause()
        fast.update_rows([("s01", {"state": "stopped", "error": ""}),
                          ("s04", {"mark": ""})])
        await pilot.pause()
        assert fast.get_cell("s01", "state") == "stopped"
        assert fast.get_cell("s01", "error") == ""
        assert fast.get_cell("s04", "mark") == ""
        row_texts = ["".join(text for text, _ in line) for line in lines(fast)]
        assert "stopped" in row_texts[1] and "Errno" not in row_texts[1]
        with pytest.raises(CellDoesNotExist):
            fast.update_cell("s99", "state", "running")
        with pytest.raises(CellDoesNotExist):
            fast.update_rows([("s01", {"nope": "x"})])


async def test_a_click_selects_the_row_under_the_mouse() -> None:
    app = Pair()
    async with app.run_test(size=SIZE) as pilot:
        fast = app.query_one("#fast", RowTable)
        await pilot.pause()
        assert fast.cursor_row == 0
        # The header is line 0: line 4 is the fourth seat.
        await pilot.click("#fast", offset=(8, 4))
        await pilot.pause()
        assert fast.cursor_row == 3
        assert fast.coordinate_to_cell_key(fast.cursor_coordinate).row_key.value == "s04"


def controls(text: str) -> list[str]:
    return [c for c in text if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0]


def test_control_characters_never_reach_the_terminal() -> None:
    shown = plain("boom \x1b[2J\x1b]0;owned\x07 done")
    assert shown.startswith("boom ?[2J?]0;owned") and shown.endswith(" done")
    assert controls(shown) == []
    assert plain("tab\there\x1bc") == "tab?here?c"
    assert plain(escape("[bold]x[/bold]")) == "[bold]x[/bold]"
    assert plain("\x9b31m") == "?31m"
    assert plain(None) == ""
