"""Key-press latency of the machines view: 500 seats, with and without a flood of live events.

BENCHMARK HARNESS — the seats, machines and events here are synthetic, made up by this script
to load the table; nothing is read from AWS or the sandbox and nothing here is shown as real
data. The app is the real ``LabApp`` (same MachinesView, same event path: the sink callback,
the batched ``EventsPending`` flush, ``update_cell`` by key) with its connection replaced by a
no-op, in a headless terminal.

For each key it measures the time from sending the key to the first frame the app renders after
the key's effect is in the widgets (cursor moved, filter applied, row marked): what a user
waits for. Under load, a thread feeds SeatChanged events (and as many seat log lines) at
--rate per second through the sink, as 500 seats setting up at once would.

    python bench/tui_latency.py [--seats 500] [--rate 2000] [--presses 120]

Prints median / p95 / max in milliseconds; no assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual import events  # noqa: E402

from labtui.app import LabApp  # noqa: E402
from labtui.course import Course, load  # noqa: E402
from labtui.events import LogLine, Progress, SeatChanged  # noqa: E402
from labtui.lifecycle import SeatStatus  # noqa: E402
from labtui.screens.messages import SeatsLoaded  # noqa: E402

SIZE = (160, 50)
STATES = (("setup", "running"), ("ready", ""), ("setup failed", "setup 1/2 failed (exit 1)"),
          ("setup", "waiting for SSH"), ("ready", ""))


def bench_course(folder: Path, seats: int) -> Course:
    rows = "\n".join(f'[[roster.students]]\nid = "b{i:03}"\nname = "Bench Seat {i}"\n'
                     f'email = "b{i}@bench.invalid"\n' for i in range(1, seats + 1))
    path = folder / "bench_course.toml"
    path.write_text(f"""
[course]
id = "bench-tui"
name = "Benchmark harness (synthetic seats)"
regions = ["us-east-1", "eu-west-1"]
max_instances = {seats + 10}

{rows}
[machines]
instance_type = "t3.small"
[network]
ssh_cidr = "198.51.100.0/24"
""")
    return load(path)


def synthetic_statuses(course: Course) -> list[SeatStatus]:
    out = []
    for index, seat in enumerate(course.seats):
        region = "us-east-1" if index % 3 else "eu-west-1"
        out.append(SeatStatus(seat.id, tuple(s.id for s in seat.students), region,
                              f"i-bench{index:012x}", "running",
                              f"203.0.113.{index % 250}:22", "done", "", "t3.small",
                              "2026-01-01 08:00:00"))
    return out


class BenchApp(LabApp):
    """LabApp without a connection: the harness feeds it rows and events itself."""

    def connect(self) -> None:  # type: ignore[override]
        return None


class Feeder(threading.Thread):
    """Offers SeatChanged + LogLine pairs at ``rate`` events per second through the sink.

    It keeps to a schedule (events due = rate x time since start), so a busy UI thread that
    holds the GIL delays events but does not lower the rate offered: what was not sent on
    time is sent as soon as the thread runs again."""

    def __init__(self, app: LabApp, seats: list[str], rate: int) -> None:
        super().__init__(daemon=True)
        self.app, self.seats, self.rate = app, seats, rate
        self.stop_event = threading.Event()
        self.sent = 0
        self.started = 0.0
        self.stopped = 0.0

    def run(self) -> None:
        emit = self.app._post_event  # the CallbackSink's callback: the real path
        index = 0
        self.started = time.perf_counter()
        while not self.stop_event.is_set():
            due = int((time.perf_counter() - self.started) * self.rate / 2)
            while index < due:
                seat = self.seats[index % len(self.seats)]
                state, detail = STATES[(index // len(self.seats)) % len(STATES)]
                emit(SeatChanged(seat, state, detail))
                emit(LogLine(f"== step {index % 7}: synthetic output line", source=seat))
                index += 1
                self.sent += 2
                if index % 97 == 0:
                    emit(Progress("setup", index % len(self.seats), len(self.seats)))
                    self.sent += 1
            time.sleep(0.002)
        self.stopped = time.perf_counter()


class Absorbed:
    """Counts the events the app hands to the machines view (each batch's flush) and how
    long after its emission each one got there."""

    def __init__(self, app: LabApp) -> None:
        self.count = 0
        self.lags: list[float] = []
        view = app.machines
        original = view.apply_events

        def apply_events(events):  # noqa: ANN001, ANN202
            now = time.time()
            self.count += len(events)
            self.lags.extend(now - event.at for event in events[:: max(1, len(events) // 20)])
            return original(events)

        view.apply_events = apply_events  # type: ignore[method-assign]


class Frames:
    """Timestamps of the frames the app renders (headless: rendered, not written)."""

    def __init__(self, app: LabApp) -> None:
        self.times: list[float] = []
        self.watched: Callable[[], bool] | None = None
        self.shown_at: float | None = None   # the first frame drawn with the effect in it
        original = app._display

        def display(screen, renderable):  # noqa: ANN001, ANN202
            effect = self.watched is not None and self.shown_at is None and self.watched()
            original(screen, renderable)
            if renderable is not None:
                self.times.append(time.perf_counter())
                if effect:  # the widgets held the effect when this frame was drawn
                    self.shown_at = self.times[-1]

        app._display = display  # type: ignore[method-assign]


async def timed_key(app: LabApp, frames: Frames, key: str, done: Callable[[], bool],
                    timeout: float = 5.0) -> float:
    """Send ``key``; return seconds until the first frame drawn while ``done()`` held (the
    check runs as each frame is drawn: a frame drawn from widgets that hold the key's effect
    shows it). Polling ``done()`` from this coroutine instead noticed an effect only when
    the event loop came back to it, often after the frame that showed it, and then waited
    for the next frame: up to a frame and a batch of events too much."""
    char = key if len(key) == 1 else (" " if key == "space" else None)
    frames.watched, frames.shown_at = done, None
    start = time.perf_counter()
    assert app._driver is not None
    try:
        app._driver.send_message(events.Key(key, char))
        while time.perf_counter() - start < timeout:
            if frames.shown_at is not None:
                return frames.shown_at - start
            await asyncio.sleep(0.0005)
        return float("nan")
    finally:
        frames.watched = None


def summary(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples if s == s)
    if not ms:
        return f"  {name:<34} no samples"
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return (f"  {name:<34} n={len(ms):<4} median {statistics.median(ms):6.1f} ms   "
            f"p95 {p95:6.1f} ms   max {ms[-1]:6.1f} ms")


async def scenario(app: LabApp, frames: Frames, presses: int) -> list[str]:
    view = app.machines
    rows = view.rows
    lines = []

    # cursor down
    samples = []
    for _ in range(presses):
        before = rows.cursor_row
        target = before + 1 if before + 1 < rows.row_count else before
        if target == before:
            rows.move_cursor(row=0)
            await asyncio.sleep(0.02)
            before, target = 0, 1
        samples.append(await timed_key(app, frames, "down",
                                       lambda t=target: rows.cursor_row == t))
    lines.append(summary("cursor down", samples))

    # space marks the row under the cursor
    samples = []
    for _ in range(min(presses, 40)):
        count = len(view.marked)
        samples.append(await timed_key(app, frames, "space",
                                       lambda c=count: len(view.marked) != c))
    lines.append(summary("space (mark/unmark)", samples))

    # / then typing a filter (narrowing 500 -> few rows), then deleting it (back to 500)
    typing, widening = [], []
    for round_ in range(max(1, presses // 12)):
        await timed_key(app, frames, "slash", lambda: view.query_one("#machines-filter")
                        .has_focus)
        text = f"b{(round_ % 4) + 1}"
        typed = ""
        for char in text + "2":
            typed += char
            typing.append(await timed_key(app, frames, char,
                                          lambda t=typed: view.filter_words == (t,)))
        while typed:
            typed = typed[:-1]
            widening.append(await timed_key(
                app, frames, "backspace",
                lambda t=typed: view.filter_words == ((t,) if t else ())))
        await timed_key(app, frames, "escape", lambda: rows.has_focus)
    lines.append(summary("filter: typing a character", typing))
    lines.append(summary("filter: backspace (rows come back)", widening))
    if view.marked:
        await timed_key(app, frames, "escape", lambda: not view.marked)
    return lines


async def run(seats: int, rate: int, presses: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        course = bench_course(Path(folder), seats)
        app = BenchApp(course, state_dir=str(Path(folder) / "state"), refresh_every=None)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            app.sub_title = f"benchmark harness: {seats} synthetic seats, no AWS"
            app.machines.post_message(SeatsLoaded(synthetic_statuses(course), time.time()))
            await pilot.pause(0.3)
            app.machines.rows.focus()
            await pilot.pause(0.1)
            frames = Frames(app)
            print(f"machines view: {app.machines.rows.row_count} rows "
                  f"(synthetic), terminal {SIZE[0]}x{SIZE[1]}, headless")

            print("\nidle (no events):")
            for line in await scenario(app, frames, presses):
                print(line)

            feeder = Feeder(app, [s.id for s in course.seats], rate)
            absorbed = Absorbed(app)
            applied_before = len(frames.times)
            feeder.start()
            await asyncio.sleep(0.5)
            print(f"\nunder load ({rate} events/s offered: SeatChanged + a seat log line "
                  "each):")
            for line in await scenario(app, frames, presses):
                print(line)
            feeder.stop_event.set()
            feeder.join()
            elapsed = feeder.stopped - feeder.started
            deadline = time.perf_counter() + 10
            while (app.events_pending or absorbed.count < feeder.sent) and \
                    time.perf_counter() < deadline:
                await asyncio.sleep(0.02)
            fps = (len(frames.times) - applied_before) / elapsed
            lags = sorted(absorbed.lags) or [float("nan")]
            print(f"  events offered {feeder.sent} in {elapsed:.1f} s "
                  f"({feeder.sent / elapsed:.0f}/s), absorbed by the view {absorbed.count} "
                  f"({absorbed.count / elapsed:.0f}/s); emission to the view: median "
                  f"{statistics.median(lags) * 1000:.0f} ms, max {lags[-1] * 1000:.0f} ms; "
                  f"frames rendered {fps:.0f}/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seats", type=int, default=500)
    parser.add_argument("--rate", type=int, default=2000, help="events per second offered")
    parser.add_argument("--presses", type=int, default=120,
                        help="cursor moves per round; marks: up to 40; filter rounds: 1 per 12")
    args = parser.parse_args()
    print("BENCHMARK HARNESS — synthetic seats and events, no AWS; figures only.")
    asyncio.run(run(args.seats, args.rate, args.presses))


if __name__ == "__main__":
    main()
