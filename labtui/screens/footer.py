"""The footer: Textual's, rebuilt only when the keys it shows change, and not while keys are
being typed.

Textual's Footer rebuilds every key widget whenever the screen's bindings may have changed,
which is on every focus change (into the filter and out of it, say), whether or not the keys
shown differ; the rebuild lays the whole screen out again (12-24 ms with 500 seats under a
flood of events, measured with bench/tui_latency.py), and the key typed right after `/`
waited for it. This one rebuilds only when what it would show differs from what it shows,
and only once the keyboard has rested for ``REST`` seconds (the app tells when the last key
came: ``last_key_at``), so typing never waits for the footer; it follows at the first pause.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Footer

REST = 0.3   # seconds without a key before the footer follows a change of focus


class KeyFooter(Footer):
    """A Footer that rebuilds when its keys change, at the keyboard's first rest."""

    _shown: tuple[Any, ...] | None = None
    _waiting: Timer | None = None

    @staticmethod
    def shown_keys(screen: Screen[Any]) -> tuple[Any, ...]:
        """What the footer shows for ``screen``: each key, its label, action, state and
        tooltip, in order (compose draws exactly these), and the palette's key."""
        app = screen.app
        bindings = screen.active_bindings
        keys = tuple((binding.key, app.get_key_display(binding), binding.description,
                      binding.action, enabled, tooltip, binding.group)
                     for (_node, binding, enabled, tooltip) in bindings.values()
                     if binding.show)
        palette = bindings.get(app.COMMAND_PALETTE_BINDING)
        return keys, None if palette is None else (palette[1].key, palette[2])

    def compose(self) -> Iterator[Widget]:  # type: ignore[override]
        if self._bindings_ready:
            self._shown = self.shown_keys(self.screen)
        yield from super().compose()

    def bindings_changed(self, screen: Screen[Any]) -> None:
        if not (self._bindings_ready and self.is_attached and screen is self.screen):
            super().bindings_changed(screen)   # the first time: at once
        elif self._waiting is None:
            self._waiting = self.set_interval(0.1, self._follow, name="footer follows keys")

    def _follow(self) -> None:
        last = getattr(self.app, "last_key_at", None)
        if last is not None and time.monotonic() - last < REST:
            return
        if self._waiting is not None:
            self._waiting.stop()
            self._waiting = None
        if self.is_attached and self.shown_keys(self.screen) != self._shown:
            super().bindings_changed(self.screen)
