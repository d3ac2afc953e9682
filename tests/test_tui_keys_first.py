"""The console answers keys first, under a flood of events (bench/tui_latency.py measures how
fast): cursor and filter keys act as they arrive even while the table is busy, a batch of
events draws only the rows it changed, the log pane's lines never lay the screen out, and
the footer never rebuilds while keys are being typed."""

from __future__ import annotations

import asyncio
import time

from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Static

from labtui.events import LogLine
from labtui.screens.footer import REST, KeyFooter
from labtui.screens.machines import FilterInput
from labtui.screens.main import LogPane
from labtui.screens.rowtable import RowTable

from .test_tui import record_calls

CSS = """
RowTable { height: 12; overflow-y: scroll; }
#log { height: 8; overflow-y: scroll; overflow-x: hidden; }
"""


class Hold(Message):
    """Keeps the widget it is sent to busy until ``release`` is set."""

    def __init__(self, release: asyncio.Event) -> None:
        super().__init__()
        self.release = release


class BusyTable(RowTable):
    async def on_hold(self, message: Hold) -> None:
        await message.release.wait()


class BusyInput(FilterInput):
    async def on_hold(self, message: Hold) -> None:
        await message.release.wait()


class Tables(App[None]):
    CSS = CSS

    def compose(self) -> ComposeResult:
        table = BusyTable(id="t", cursor_type="row")
        table.add_column("Seat", key="seat")
        table.add_column("State", key="state")
        for index in range(200):
            table.add_row(f"s{index:03}", "running", key=f"s{index:03}")
        yield table
        yield BusyInput(id="f")
        yield LogPane()


def send(app: App[None], key: str) -> None:
    """A key as the terminal sends it (Pilot's press would wait for every widget to be
    idle, which a held widget never is)."""
    assert app._driver is not None
    app._driver.send_message(events.Key(key, None))


async def within(ok, seconds: float = 2.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while not ok():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def test_cursor_and_filter_keys_act_while_their_widget_is_busy() -> None:
    """The table's cursor keys and the filter's editing keys run as the key arrives: not
    after it went through the widget's queue and bubbled back up the screen."""
    app = Tables()
    async with app.run_test(size=(80, 30)) as pilot:
        table = app.query_one(BusyTable)
        table.focus()
        await pilot.pause()
        release = asyncio.Event()
        table.post_message(Hold(release))
        await asyncio.sleep(0.05)
        try:
            for _ in range(3):
                send(app, "down")
            # while the table's own queue is still held
            assert await within(lambda: table.cursor_row == 3), table.cursor_row
        finally:
            release.set()
        await pilot.pause()

        line = app.query_one(BusyInput)
        line.focus()
        await pilot.pause()
        line.value = "s12x"
        line.cursor_position = 4   # (after the focus, which selects the whole line)
        await pilot.pause()
        release = asyncio.Event()
        line.post_message(Hold(release))
        await asyncio.sleep(0.05)
        try:
            send(app, "backspace")
            assert await within(lambda: line.value == "s12"), line.value
        finally:
            release.set()
        await pilot.pause()


async def test_a_batch_draws_only_the_changed_rows_in_view(monkeypatch) -> None:  # noqa: ANN001
    app = Tables()
    async with app.run_test(size=(80, 30)) as pilot:
        table = app.query_one(BusyTable)
        await pilot.pause()
        drawn = record_calls(monkeypatch, RowTable, "render_line")
        table.update_rows([("s150", {"state": "pending"}), ("s180", {"state": "ready"})])
        await pilot.pause()
        await pilot.pause()
        assert drawn == []          # out of view: nothing drawn
        table.update_rows([("s002", {"state": "pending"}), ("s003", {"state": "ready"})])
        await pilot.pause()
        await pilot.pause()
        header = table.header_height
        assert sorted({y for (y,) in drawn}) == [header + 2, header + 3]
        assert table.get_cell("s003", "state") == "ready"


async def test_log_pane_lines_never_lay_the_screen_out(monkeypatch) -> None:  # noqa: ANN001
    """Each batch grows the pane's content; the screen's layout is left alone, and the
    pane's scrollbar still follows (scrolled to the newest line, sized to every line)."""
    from textual._compositor import Compositor

    app = Tables()
    async with app.run_test(size=(80, 30)) as pilot:
        pane = app.query_one(LogPane)
        await pilot.pause()
        layouts = record_calls(monkeypatch, Compositor, "reflow")
        for batch in range(3):
            pane.write_events([LogLine(f"batch {batch} line {n}") for n in range(70)],
                              limit=40)
            await pilot.pause()
        await pilot.pause()
        assert layouts == []
        # each batch: a line naming what it left out, then its last 40 lines
        texts = [strip.text for strip in pane.lines]
        shown = [t for t in texts if " line " in t and "batch" in t]
        assert len(shown) == 3 * 40
        assert shown[-40].endswith("batch 2 line 30") and shown[-1].endswith("batch 2 line 69")
        assert sum("… 30 more lines not shown here" in t for t in texts) == 3
        assert pane.scroll_y == pane.max_scroll_y > 0
        bar = pane.vertical_scrollbar
        assert bar.window_virtual_size == len(texts)
        assert bar.position == pane.scroll_y


class Keyed(Static, can_focus=True):
    pass


class Alpha(Keyed):
    BINDINGS = [Binding("a", "noop", "Alpha")]


class AlsoAlpha(Keyed):
    BINDINGS = [Binding("a", "noop", "Alpha")]


class Beta(Keyed):
    BINDINGS = [Binding("b", "noop", "Beta")]


class Footed(App[None]):
    last_key_at = 0.0

    def compose(self) -> ComposeResult:
        yield Alpha("a", id="alpha")
        yield AlsoAlpha("also", id="also")
        yield Beta("b", id="beta")
        yield KeyFooter()


def footer_text(app: App[None]) -> str:
    return " ".join(str(key.render()) for key in app.query("FooterKey"))


async def test_footer_rebuilds_only_for_other_keys_and_not_while_typing() -> None:
    app = Footed()
    async with app.run_test(size=(80, 10)) as pilot:
        footer = app.query_one(KeyFooter)
        app.query_one("#alpha").focus()
        await pilot.pause(REST + 0.3)
        assert "Alpha" in footer_text(app)
        rebuilt: list[int] = []
        real = footer.recompose

        async def recompose():  # noqa: ANN202
            rebuilt.append(1)
            return await real()

        footer.recompose = recompose  # type: ignore[method-assign]
        # the same keys shown: no rebuild at all
        app.query_one("#also").focus()
        await pilot.pause(REST + 0.3)
        assert rebuilt == [] and "Alpha" in footer_text(app)
        # other keys while keys are being typed: the footer waits for a rest
        app.query_one("#beta").focus()
        for _ in range(6):
            app.last_key_at = time.monotonic()
            await pilot.pause(0.1)
        assert rebuilt == [] and "Alpha" in footer_text(app)
        await pilot.pause(REST + 0.3)
        assert rebuilt == [1]
        assert "Beta" in footer_text(app) and "Alpha" not in footer_text(app)
