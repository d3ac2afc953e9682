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
from textual.widgets.data_table import CellDoesNotExist, DuplicateKey

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


def test_escape_sequences_never_reach_the_terminal() -> None:
    assert plain("boom \x1b[2J\x1b]0;owned\x07 done") == "boom  done"
    assert plain(escape("[bold]x[/bold]") + "\x9b31m!") == "[bold]x[/bold]!"
    assert plain("tab\there\nnext\x00") == "tab here next"
    assert plain(None) == ""


async def test_replace_rows_shows_exactly_those_rows_as_add_row_would() -> None:
    app = Pair()
    async with app.run_test(size=SIZE) as pilot:
        fast = app.query_one("#fast", RowTable)
        stock = app.query_one("#stock", DataTable)
        await pilot.pause()
        app.set_focus(None)
        fresh = [("", f"t{i:02}", f"Student {i}", "absent", "") for i in range(12)]
        fast.replace_rows((row[1], [escape(cell) for cell in row]) for row in fresh)
        stock.clear()
        for row in fresh:
            stock.add_row(*(escape(cell) for cell in row), key=row[1])
        await same(pilot, fast, stock)
        assert [key.value for key in fast.rows] == [row[1] for row in fresh]
        assert fast.row_count == 12 and fast.cursor_row == 0
        assert fast.get_cell("t03", "students") == "Student 3"
        with pytest.raises(DuplicateKey):
            fast.replace_rows([("a", ["", "a"]), ("a", ["", "a"])])


async def test_more_or_fewer_rows_move_the_scrollbar_and_the_scroll() -> None:
    """The row count changes the scrollbars and the scroll range without a layout of the
    screen: the table keeps its size, the scrollbar comes and goes with the rows."""
    app = Pair()
    async with app.run_test(size=SIZE) as pilot:
        fast = app.query_one("#fast", RowTable)
        await pilot.pause()
        size = fast.size
        assert not fast.show_vertical_scrollbar  # 5 rows and a header in 9 lines
        many = [(f"m{i:02}", ["", f"m{i:02}", "x", "running", ""]) for i in range(40)]
        fast.replace_rows(many)
        await pilot.pause()
        assert fast.virtual_size.height == 41 and fast.size == size
        assert fast.show_vertical_scrollbar and fast.max_scroll_y == 41 - 9
        fast.move_cursor(row=39)
        await pilot.pause()
        assert fast.scroll_y == fast.max_scroll_y == 32
        fast.replace_rows(many[:20])  # the scrollbar stays, its range shrinks
        await pilot.pause()
        assert fast.show_vertical_scrollbar and fast.max_scroll_y == 21 - 9
        assert fast.vertical_scrollbar.window_virtual_size == 21
        assert fast.scroll_y == 0  # as after clear(): the view puts the cursor back
        fast.replace_rows(many[:3])
        await pilot.pause()
        assert fast.virtual_size.height == 4 and fast.size == size
        assert not fast.show_vertical_scrollbar and fast.scroll_y == 0
        shown = ["".join(text for text, _ in line) for line in lines(fast)]
        assert [line.split()[0] for line in shown[1:4]] == ["m00", "m01", "m02"]
