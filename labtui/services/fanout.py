"""Run one function on many hosts at once, with bounded concurrency and per-host results.

One slow or dead host never holds up the rest: each item gets its own worker slot and its
own deadline, and the result of every item (value or error) comes back. By default every
item runs at once (a class of 40 is one wave, not two), bounded only by what this computer
can hold (:func:`capacity`: open files and threads); ``concurrency`` lowers it. Connection
attempts are paced per address with a semaphore (:class:`Pacer`), since sshd's MaxStartups
(10:30:100) limits the handshakes in flight per server, not across servers: a stock sshd
never starts dropping handshakes even when many seats share one host.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from labtui.events import EventSink, NullSink, Progress

T = TypeVar("T")
R = TypeVar("R")

HANDSHAKES_PER_ADDRESS = 8  # below sshd's MaxStartups start (10)
FILES_PER_ITEM = 4          # an SSH socket, a channel's wake-up pipe (2), a port probe
FILES_KEPT = 64             # for everything else the process has open
THREADS_PER_ITEM = 2        # the worker and paramiko's transport thread
MAX_THREADS = 2048          # a sane ceiling where the OS sets none
CANCELLED = "cancelled"     # the error of an item that never started: it was cancelled
CANCEL_POLL = 0.2           # seconds between looks at ``cancelled`` while items run

_capacity_lock = threading.Lock()


def capacity(wanted: int = 0) -> int:
    """How many items this computer can work on at once: each connection holds open files
    (FILES_PER_ITEM) and threads (THREADS_PER_ITEM). When ``wanted`` items need more open
    files than the soft limit allows, the soft limit is raised toward the hard one first (as
    ``ulimit -n`` would; never past the hard limit)."""
    files = _open_files_limit(FILES_KEPT + FILES_PER_ITEM * max(0, wanted))
    threads = _threads_limit()
    return max(1, min((files - FILES_KEPT) // FILES_PER_ITEM, threads // THREADS_PER_ITEM))


def _open_files_limit(wanted: int) -> int:
    try:
        import resource
    except ImportError:  # not a Unix: Windows' C runtime allows 512 files by default
        return 512
    with _capacity_lock:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        unlimited = resource.RLIM_INFINITY
        if soft != unlimited and soft < wanted and (hard == unlimited or soft < hard):
            target = wanted if hard == unlimited else min(wanted, hard)
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (OSError, ValueError):  # e.g. macOS refuses above OPEN_MAX
                pass
        return MAX_THREADS * FILES_PER_ITEM if soft == unlimited else soft


def _threads_limit() -> int:
    limit = MAX_THREADS
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)  # processes and threads
        if soft != resource.RLIM_INFINITY:
            limit = min(limit, soft // 2)  # the user's other processes count too
    except (ImportError, AttributeError, OSError, ValueError):
        pass
    try:
        limit = min(limit, int(Path("/proc/sys/kernel/threads-max").read_text()) // 4)
    except (OSError, ValueError):
        pass
    return max(THREADS_PER_ITEM, limit - threading.active_count())


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


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a fan-out: the items that did not finish (queued ones never started,
    running ones were ended), and the outcomes of those that did."""

    def __init__(self, task: str, unfinished: list[str], finished: list[Outcome[Any]]) -> None:
        super().__init__(f"{task} interrupted")
        self.task, self.unfinished, self.finished = task, unfinished, finished


def fan_out(items: Iterable[T], key: Callable[[T], str], work: Callable[[T], R], *,
            concurrency: int | None = None, task: str = "work", sink: EventSink | None = None,
            cancelled: Callable[[], bool] = lambda: False,
            on_interrupt: Callable[[], None] | None = None,
            grace: float = 1.5) -> list[Outcome[R]]:
    """Run ``work`` on every item; return one Outcome per item in the order given.

    At most ``concurrency`` items run at once (default: all of them, up to
    :func:`capacity`). ``work`` raising an exception is that item's failure (its message is
    the error); the others go on. Progress events count done and failed items as they finish.

    Ctrl-C (KeyboardInterrupt in the calling thread): queued items never start,
    ``on_interrupt`` ends the running ones (e.g. closes their connections), and after at most
    ``grace`` seconds :class:`Interrupted` names the items that did not finish. ``cancelled``
    turning true does the same without the exception: queued items end "cancelled", and
    ``on_interrupt`` ends the running ones, which end as their work then fails.
    """
    sink = sink or NullSink()
    todo = list(items)
    results: dict[str, Outcome[R]] = {}
    done = failed = 0
    sink.emit(Progress(task, 0, len(todo)))
    if not todo:
        return []
    stop = threading.Event()
    workers = min(len(todo), capacity(len(todo)), concurrency or len(todo))
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=f"labtui-{task}")
    futures = {}

    def stopping() -> bool:
        return stop.is_set() or cancelled()

    ended = False   # on_interrupt called: the running items are being ended
    try:
        for item in todo:
            futures[pool.submit(_guarded, work, item, stopping)] = key(item)
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=CANCEL_POLL, return_when=FIRST_COMPLETED)
            for future in finished:
                name = futures[future]
                value, error = future.result()
                results[name] = Outcome(name, value, error)
                done += 1
                failed += bool(error)
                sink.emit(Progress(task, done, len(todo), failed))
            if pending and not ended and cancelled():
                # cancelled (the console closing, say): what runs is ended too, as Ctrl-C
                # ends it; queued items see cancelled() and never start
                ended = True
                if on_interrupt is not None:
                    on_interrupt()
    except KeyboardInterrupt:
        stop.set()
        for future in futures:
            future.cancel()
        if on_interrupt is not None and not ended:
            on_interrupt()
        wait([f for f in futures if not f.cancelled()], timeout=grace)
        for future, name in futures.items():  # what finished well while it was ending
            if name not in results and future.done() and not future.cancelled():
                value, error = future.result()
                if not error:
                    results[name] = Outcome(name, value)
        unfinished = [key(item) for item in todo if key(item) not in results]
        raise Interrupted(task, unfinished, list(results.values())) from None
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # done, or told to stop: never waits
    return [results[key(item)] for item in todo]


def _guarded(work: Callable[[T], R], item: T,
             cancelled: Callable[[], bool]) -> tuple[R | None, str]:
    if cancelled():
        return None, CANCELLED
    try:
        return work(item), ""
    except Exception as exc:  # noqa: BLE001 - each item's failure is reported, not raised
        return None, str(exc) or type(exc).__name__
