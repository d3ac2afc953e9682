"""Full garbage collections wait for an idle console (labtui/idlegc.py), with real gc."""

from __future__ import annotations

import gc

from labtui.idlegc import NEVER, IdleCollector


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_gen1_collections(n: int) -> None:
    for _ in range(n):
        gc.collect(1)


def test_no_full_collection_while_busy_one_when_idle_and_thresholds_back() -> None:
    saved = gc.get_threshold()
    clock = Clock()
    collector = IdleCollector(idle=0.5, most=30.0, clock=clock)
    collector.start()
    try:
        assert gc.get_threshold() == (saved[0], saved[1], NEVER)
        make_gen1_collections(saved[2] + 1)  # CPython would want a full collection now
        assert collector.due()
        collector.busy()
        clock.now += 0.2
        assert not collector.tick() and collector.collections == 0  # busy: it waits
        clock.now += 0.4                                              # 0.6 s idle
        assert collector.tick() and collector.collections == 1
        assert gc.get_count()[2] == 0 and not collector.due()
        clock.now += 5
        assert not collector.tick()        # idle, but nothing is due
        make_gen1_collections(1)
        collector.busy()
        clock.now += 30.0                  # never idle for long, yet 30 s passed
        collector.busy()
        assert collector.tick() and collector.collections == 2
    finally:
        collector.stop()
    assert gc.get_threshold() == saved
    assert not collector.tick()            # stopped: CPython collects on its own again


async def test_the_console_collects_when_idle(sandbox_state) -> None:
    from labtui.course import load

    from .conftest import SAMPLE
    from .test_tui import make_app, settle

    saved = gc.get_threshold()
    app = make_app(load(SAMPLE), sandbox_state, refresh_every=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        assert app.collector.started and gc.get_threshold()[2] == NEVER
        make_gen1_collections(saved[2] + 1)
        app.collector.idle = 0.05
        for _ in range(40):                 # the app's 0.25 s timer runs it
            await pilot.pause(0.05)
            if app.collector.collections:
                break
        assert app.collector.collections >= 1
        await pilot.press("down")          # a key makes it busy again
        assert app.collector.clock() - app.collector._last_busy < 1.0
    assert gc.get_threshold() == saved
