"""Full garbage collections when the console is idle, not in the middle of a flood of events.

CPython runs a full (generation 2) collection on its own every ten generation-1 collections
once enough objects have survived. The console allocates fast while a class sets up (each
batch of events, each frame), so under 2000 events a second a full collection came about
every 0.7 s and held the event loop 45–95 ms each time: most of the key-press tails measured
by ``bench/tui_latency.py``. What startup made is frozen out of the collector already
(``gc.freeze`` in the app); this takes the automatic full collections off the busy moments.

:class:`IdleCollector` keeps generations 0 and 1 as they are (they find nearly all of the
cyclic garbage, cheaply) and runs the full collection itself: when the console has been idle
(no key, no batch of events) for ``idle`` seconds and CPython would have wanted one, or after
``most`` seconds in any case, so a console that is never idle still collects (one pause per
``most`` seconds instead of one or two per second). Pure Python, no Textual: the app calls
:meth:`busy` on each key and batch and :meth:`tick` from a timer.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

NEVER = 1 << 30   # a generation-2 threshold CPython never reaches on its own


class IdleCollector:
    def __init__(self, idle: float = 0.5, most: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.idle, self.most, self.clock = idle, most, clock
        self._saved: tuple[int, int, int] | None = None
        self._last_busy = self._last_full = clock()
        self.collections = 0   # full collections run here (the tests read it)

    @property
    def started(self) -> bool:
        return self._saved is not None

    def start(self) -> None:
        if self._saved is not None:
            return
        self._saved = gc.get_threshold()
        first, second, _ = self._saved
        gc.set_threshold(first, second, NEVER)
        self._last_busy = self._last_full = self.clock()

    def stop(self) -> None:
        """CPython's own thresholds again (a process may run several apps: the tests do)."""
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None

    def busy(self) -> None:
        self._last_busy = self.clock()

    def due(self) -> bool:
        """Whether CPython would have run a full collection by now (its count of
        generation-1 collections since the last full one reached its threshold)."""
        if self._saved is None:
            return False
        return gc.get_count()[2] >= self._saved[2]

    def tick(self) -> bool:
        """Run the full collection if it is time; whether it ran."""
        if self._saved is None:
            return False
        now = self.clock()
        waited = now - self._last_full
        if not (waited >= self.most or (now - self._last_busy >= self.idle and self.due())):
            return False
        gc.collect(2)
        self._last_full = self.clock()
        self.collections += 1
        return True
