"""The help modal: every key the user can press right now, with what it does."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static


class HelpScreen(ModalScreen[None]):
    """Lists (key, what it does, details) rows; escape, q or ? closes it."""

    BINDINGS = [
        Binding("escape", "dismiss", "Close", id="help.close"),
        Binding("q", "dismiss", "Close", show=False, id="help.close_q"),
        Binding("question_mark", "dismiss", "Close", show=False, id="help.close_help"),
    ]

    def __init__(self, keys: Iterable[tuple[str, ...]]) -> None:
        super().__init__(id="help")
        self.keys = list(keys)

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Static("Keys", classes="view-title")
            rows: DataTable = DataTable(id="help-keys", cursor_type="none", show_header=True)
            rows.add_column("Key", key="key")
            rows.add_column("What it does", key="what")
            rows.add_column("", key="details")
            for key, what, *details in self.keys:
                rows.add_row(key, what, details[0] if details else "")
            yield rows
            yield Static("escape closes this list.", classes="note")
