"""The command palette's labtui commands: every view and every action, by name.

The app runs them; this provider only lists them (``ctrl+p`` opens the palette).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from labtui.screens.main import VIEWS


class LabCommands(Provider):
    def commands(self) -> Iterator[tuple[str, Callable[[], Any], str]]:
        app: Any = self.app
        for view in VIEWS:
            yield (f"Show {view.TITLE.lower()}", partial(app.show_view, view.VIEW_ID),
                   f"{view.DESCRIPTION} (key {view.KEY})")
        yield ("Refresh the current view", app.action_refresh_view,
               "Load the current view again from AWS (key r)")
        yield ("Keys: list every key", app.action_help, "What each key does (key ?)")

    async def discover(self) -> Hits:
        for name, run, help_text in self.commands():
            yield DiscoveryHit(name, run, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, run, help_text in self.commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), run, help=help_text)
