"""Run one function on many hosts at once, with bounded concurrency and per-host results.

One slow or dead host never holds up the rest: each item gets its own worker slot and its
own deadline, and the result of every item (value or error) comes back. Connection attempts
to one address are paced with a per-address semaphore, so a stock sshd (MaxStartups
10:30:100) never starts dropping handshakes even when many seats share one host.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Generic, TypeVar

from labtui.events import EventSink, NullSink, Progress

T = TypeVar("T")
R = TypeVar("R")

HANDSHAKES_PER_ADDRESS = 8  # below sshd's MaxStartups start (10)


@dataclass(frozen=True)
class Outcome(Generic[R]):
    key: str
    value: R | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


class Pacer:
    """At most ``limit`` connection handshakes in flight per address."""

    def __init__(self, limit: int = HANDSHAKES_PER_ADDRESS) -> None:
        self.limit = limit
        self._sems: dict[Hashable, threading.Semaphore] = {}
        self._lock = threading.Lock()

    def slot(self, address: Hashable) -> threading.Semaphore:
        with self._lock:
            sem = self._sems.get(address)
            if sem is None:
                sem = self._sems[address] = threading.BoundedSemaphore(self.limit)
            return sem


def fan_out(items: Iterable[T], key: Callable[[T], str], work: Callable[[T], R], *,
            concurrency: int = 32, task: str = "work", sink: EventSink | None = None,
            cancelled: Callable[[], bool] = lambda: False) -> list[Outcome[R]]:
    """Run ``work`` on every item; return one Outcome per item in the order given.

    ``work`` raising an exception is that item's failure (its message is the error); the
    others go on. Progress events count done and failed items as they finish.
    """
    sink = sink or NullSink()
    todo = list(items)
    results: dict[str, Outcome[R]] = {}
    done = failed = 0
    sink.emit(Progress(task, 0, len(todo)))
    if not todo:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(todo))),
                            thread_name_prefix=f"labtui-{task}") as pool:
        futures = {}
        for item in todo:
            name = key(item)
            futures[pool.submit(_guarded, work, item, cancelled)] = name
        for future in as_completed(futures):
            name = futures[future]
            value, error = future.result()
            results[name] = Outcome(name, value, error)
            done += 1
            failed += bool(error)
            sink.emit(Progress(task, done, len(todo), failed))
    return [results[key(item)] for item in todo]


def _guarded(work: Callable[[T], R], item: T,
             cancelled: Callable[[], bool]) -> tuple[R | None, str]:
    if cancelled():
        return None, "cancelled"
    try:
        return work(item), ""
    except Exception as exc:  # noqa: BLE001 - each item's failure is reported, not raised
        return None, str(exc) or type(exc).__name__
