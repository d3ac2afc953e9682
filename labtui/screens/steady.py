"""Scrolling widgets whose content never changes the screen's layout.

Textual's Widget lays the whole screen out again whenever a widget's virtual size (the size
of its content) changes. For a widget whose own size never depends on its content (a set
height, its vertical scrollbar always shown) that pass finds nothing to move, and costs
15-25 ms with 500 seats under a flood of events (bench/tui_latency.py): the log pane grows
with every batch, the machines table with every filter key. With :class:`Steady` first in
its bases, a new virtual size updates the widget's scrollbars only, as a layout pass would
for a widget whose region stayed the same (a scrollbar that appears or goes still lays the
screen out: Textual does that itself).
"""

from __future__ import annotations

from textual.geometry import Size
from textual.reactive import Reactive


class Steady:
    """Mix in first: ``class LogPane(Steady, RichLog)``. Only for widgets whose height is
    set (not ``auto``) and whose width does not follow their content."""

    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=False, repaint=True)

    def watch_virtual_size(self, size: Size) -> None:
        # A widget with no scrollbar shown (a line of input) keeps its own scroll.
        if self.show_vertical_scrollbar or self.show_horizontal_scrollbar:  # type: ignore[attr-defined]
            self._scroll_update(size)  # type: ignore[attr-defined]
