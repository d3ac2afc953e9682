"""The small event interface between the work and the front ends.

Services report progress by calling ``sink.emit(event)`` with one of the typed events below;
they never import textual. The TUI turns events into messages for its widgets, the headless
mode prints them as lines or JSON lines, and the state folder keeps them in an event log.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from labtui.state import append_private


def _now() -> float:
    return time.time()


@dataclass(frozen=True)
class Event:
    at: float = field(default_factory=_now, kw_only=True)

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_json(self) -> dict[str, Any]:
        kind = re.sub(r"(?<!^)(?=[A-Z])", "_", self.kind).lower()  # SeatChanged -> seat_changed
        return {"type": kind, **dataclasses.asdict(self)}

    def human(self) -> str:  # pragma: no cover - every subclass overrides
        return self.kind


@dataclass(frozen=True)
class LogLine(Event):
    """A line of text for the log pane: from labtui itself or from a seat's remote output.

    A line of a command's output on a seat (exec) has that seat as its ``source`` and the
    stream it came from as ``stream`` (stdout or stderr); a line labtui writes about a seat's
    command (``$ cmd``, its exit status) has ``stream`` "labtui"; every other line has none.
    """

    text: str
    source: str = "labtui"
    level: str = "info"  # info | warning | error
    stream: str = ""  # "" | stdout | stderr | labtui

    @property
    def is_output(self) -> bool:
        """A line of a seat's remote output (stdout or stderr)."""
        return self.stream in ("stdout", "stderr")

    def human(self) -> str:
        return self.text if self.source == "labtui" else f"[{self.source}] {self.text}"


@dataclass(frozen=True)
class SeatChanged(Event):
    """A seat (student or group) moved to a new state: pending, launching, running, ..."""

    seat: str
    state: str
    detail: str = ""

    def human(self) -> str:
        return f"{self.seat}: {self.state}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class ClusterChanged(Event):
    """An EMR cluster of the class moved to a new state (STARTING, BOOTSTRAPPING, WAITING,
    TERMINATED ...); ``key`` is its seat tag: a student, a group or "class"."""

    key: str
    cluster_id: str
    state: str
    detail: str = ""

    def human(self) -> str:
        return (f"cluster {self.cluster_id} of {self.key}: {self.state}"
                + (f" ({self.detail})" if self.detail else ""))


@dataclass(frozen=True)
class JobChanged(Event):
    """A batch job moved to a new state: queued, launching, installing (attempt k), running,
    uploading, done, failed, cancelled, fetched."""

    job: str
    state: str
    detail: str = ""

    def human(self) -> str:
        return f"job {self.job}: {self.state}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class Progress(Event):
    """Counts for a long piece of work, e.g. setup done 37/40, failed 1."""

    task: str
    done: int
    total: int
    failed: int = 0

    def human(self) -> str:
        text = f"{self.task} {self.done}/{self.total}"
        return text + (f", failed {self.failed}" if self.failed else "")


@dataclass(frozen=True)
class StepDone(Event):
    """One named step of a piece of work finished, well or not."""

    step: str
    ok: bool = True
    detail: str = ""

    def human(self) -> str:
        mark = "done" if self.ok else "FAILED"
        return f"{self.step}: {mark}" + (f" — {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class Problem(Event):
    """Something the user must know about: a failed seat, a refused action."""

    message: str
    seat: str = ""
    fix: str = ""

    def human(self) -> str:
        where = f"{self.seat}: " if self.seat else ""
        return f"problem: {where}{self.message}" + (f" Fix: {self.fix}" if self.fix else "")


@dataclass(frozen=True)
class QuotaRequested(Event):
    """A quota increase was asked of AWS (it reviews it: minutes to days)."""

    region: str
    code: str
    name: str
    current: float
    desired: float
    status: str
    request_id: str

    def to_json(self) -> dict[str, Any]:
        return {"type": "quota_request", "region": self.region, "code": self.code,
                "name": self.name, "from": self.current, "to": self.desired,
                "status": self.status, "id": self.request_id, "at": self.at}

    def human(self) -> str:
        return (f"requested {self.name} ({self.code}) in {self.region}: {self.current:g} -> "
                f"{self.desired:g} vCPUs (status {self.status}, id {self.request_id}; "
                "`labtui quotas` shows its progress)")


@dataclass(frozen=True)
class CardMailed(Event):
    """A seat's handout card was mailed to its students (``to``), or could not be (``ok``
    false, ``detail`` says why and names the addresses refused)."""

    seat: str
    to: tuple[str, ...] = ()
    ok: bool = True
    detail: str = ""

    def human(self) -> str:
        if self.ok:
            return f"{self.seat}: card mailed to {', '.join(self.to)}"
        return f"{self.seat}: card NOT mailed — {self.detail}"


class EventSink(Protocol):
    def emit(self, event: Event) -> None: ...


class NullSink:
    def emit(self, event: Event) -> None:
        return None


class ListSink:
    """Keeps every event; for tests and for replaying into a pane."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)


class CallbackSink:
    """Calls a function for each event (the TUI posts a message from it)."""

    def __init__(self, callback: Callable[[Event], None]) -> None:
        self._callback = callback

    def emit(self, event: Event) -> None:
        self._callback(event)


class StreamSink:
    """Headless output: one human line or one JSON object per event.

    A seat's remote output reads ``seat | text`` (seats padded to ``seat_width``), its
    stderr lines on stderr, as a script expects of a command's streams."""

    def __init__(self, stream: IO[str] | None = None, *, as_json: bool = False,
                 seat_width: int = 0) -> None:
        self._stream = stream
        self._json = as_json
        self._width = seat_width
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        output = event if isinstance(event, LogLine) and event.is_output else None
        to_stderr = isinstance(event, Problem) or (output is not None
                                                   and output.stream == "stderr")
        stream = self._stream or (sys.stderr if to_stderr else sys.stdout)
        if self._json:
            line = json.dumps(event.to_json())
        elif output is not None:
            line = f"{output.source:<{self._width}} | {output.text}"
        else:
            line = event.human()
        with self._lock:
            stream.write(line + "\n")
            stream.flush()


class JsonlFileSink:
    """Appends every event to the course's event log (one JSON object per line)."""

    def __init__(self, path: Any) -> None:
        self._path = path
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        with self._lock:
            append_private(self._path, json.dumps(event.to_json()) + "\n")


class FanoutSink:
    def __init__(self, sinks: Iterable[EventSink]) -> None:
        self._sinks = list(sinks)

    def emit(self, event: Event) -> None:
        for sink in self._sinks:
            sink.emit(event)
