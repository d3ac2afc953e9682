"""The command palette's labtui commands: every view and every action, by name.

The app runs them; this provider only lists them (``ctrl+p`` opens the palette). The
machines, clusters, roster and sweep actions and the seat and cluster screens' actions come
from those classes' bindings, so a key and its palette command can never drift apart. A
seat's (a cluster's) actions are listed when the palette is opened on its screen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from labtui.screens.batch import BatchView
from labtui.screens.cluster import ClusterScreen
from labtui.screens.clusters import ClustersView
from labtui.screens.machines import MachinesView
from labtui.screens.main import VIEWS
from labtui.screens.roster import RosterView
from labtui.screens.seat import SeatScreen
from labtui.screens.sweep import SweepView


def described(bindings: list[Any]) -> Iterator[Binding]:
    for binding in bindings:
        if isinstance(binding, Binding) and binding.description and binding.action != "back":
            yield binding


def view_action(app: Any, view_id: str, action: str) -> None:
    """Show the view, then run one of its actions (from the palette)."""
    app.show_view(view_id)
    getattr(app.main.view(view_id), f"action_{action}")()


class LabCommands(Provider):
    def commands(self) -> Iterator[tuple[str, Callable[[], Any], str]]:
        app: Any = self.app
        screen = self.screen
        for view in VIEWS:
            yield (f"Show {view.TITLE.lower()}", partial(app.show_view, view.VIEW_ID),
                   f"{view.DESCRIPTION} (key {view.KEY})")
        yield ("Refresh the current view", app.action_refresh_view,
               "Load the current view again from AWS (key r)")
        yield ("Keys: list every key", app.action_help, "What each key does (key ?)")
        if isinstance(screen, SeatScreen):
            for binding in described(SeatScreen.BINDINGS):
                yield (f"Seat {screen.seat}: {binding.description.lower()}",
                       partial(getattr(screen, f"action_{binding.action}")),
                       f"{binding.tooltip} (key {app.get_key_display(binding)})")
        elif isinstance(screen, ClusterScreen):
            for binding in described(ClusterScreen.BINDINGS):
                yield (f"Cluster of {screen.key}: {binding.description.lower()}",
                       partial(getattr(screen, f"action_{binding.action}")),
                       f"{binding.tooltip} (key {app.get_key_display(binding)})")
        else:
            for binding in described(MachinesView.BINDINGS):
                yield (f"Machines: {binding.description.lower()}",
                       partial(app.machines_action, binding.action),
                       f"{binding.tooltip} (key {app.get_key_display(binding)})")
            if app.course.clusters is not None:
                for binding in described(ClustersView.BINDINGS):
                    yield (f"Clusters: {binding.description.lower()}",
                           partial(view_action, app, ClustersView.VIEW_ID, binding.action),
                           f"{binding.tooltip} (key {app.get_key_display(binding)} on the "
                           "clusters view)")
            if app.course.jobs is not None:
                for binding in described(BatchView.BINDINGS):
                    yield (f"Jobs: {binding.description.lower()}",
                           partial(view_action, app, BatchView.VIEW_ID, binding.action),
                           f"{binding.tooltip} (key {app.get_key_display(binding)} on the jobs "
                           "view)")
            for binding in described(RosterView.BINDINGS):
                yield (f"Roster: {binding.description.lower()}",
                       partial(view_action, app, RosterView.VIEW_ID, binding.action),
                       f"{binding.tooltip} (key {app.get_key_display(binding)} on the roster "
                       "view)")
            for binding in described(SweepView.BINDINGS):
                yield (f"Sweep: {binding.description.lower()}",
                       partial(view_action, app, SweepView.VIEW_ID, binding.action),
                       f"{binding.tooltip} (key {app.get_key_display(binding)})")
            yield ("Sweep: look again in every region",
                   partial(view_action, app, SweepView.VIEW_ID, "again"),
                   "Sweep the whole account again (key r on the sweep view)")

    async def discover(self) -> Hits:
        for name, run, help_text in self.commands():
            yield DiscoveryHit(name, run, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, run, help_text in self.commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), run, help=help_text)
