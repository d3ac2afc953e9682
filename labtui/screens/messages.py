"""The messages labtui's widgets exchange, in one place.

Thread workers report back with ``post_message`` (thread-safe) and these dataclass messages;
handlers run on the UI thread, where widgets may be touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from labtui.clusterops import ClusterStatus
    from labtui.context import Context
    from labtui.dashboard import Dashboard
    from labtui.lifecycle import SeatStatus
    from labtui.services.clusters import Cluster
    from labtui.services.database import Check as DatabaseCheck
    from labtui.services.inventory import Machine
    from labtui.services.jobs import JobState
    from labtui.services.notebooks import Check, Status, Tunnel
    from labtui.services.regions import RegionInfo


class EventsPending(Message):
    """Events wait in the app's buffer: the handler takes them all at once, so a flood of
    events (500 seats setting up) costs one table update and one log write per batch."""


@dataclass
class ContextReady(Message):
    """The context (sandbox or AWS) is open; views may load their data."""

    ctx: Context


@dataclass
class RegionsLoaded(Message):
    regions: tuple[RegionInfo, ...]


@dataclass
class VcpusLoaded(Message):
    """vCPUs per instance type, as AWS describes the types."""

    region: str
    vcpus: dict[str, int]


@dataclass
class SeatsLoaded(Message):
    """Every seat of the course as AWS has it; ``started`` is when the fetch began (events
    newer than that win over this snapshot)."""

    seats: list[SeatStatus]
    started: float
    # the state of each cluster key's live cluster (one clusterops.live per refresh); None
    # when the course has no clusters
    clusters: dict[str, str] | None = None
    # the machines found (for the notebook servers' look, which asks the running ones) and
    # whether the load was a quiet periodic refresh (False: the refresh key, or the first)
    machines: tuple[Machine, ...] = ()
    quiet: bool = True


@dataclass
class NotebooksLoaded(Message):
    """Each running seat's notebook server (``notebookops.statuses``); ``started`` as in
    SeatsLoaded."""

    statuses: dict[str, Status]
    started: float


@dataclass
class TunnelChecked(Message):
    """What the seat screen's notebook tunnel found (``Tunnel.check``), or why it closed."""

    tunnel: Tunnel
    check: Check | None
    url: str = ""               # the local URL, without the token
    token_file: str | None = None


@dataclass
class SeatLoaded(Message):
    """One seat's machine (None when it has none) for the troubleshooting screen."""

    status: SeatStatus | None
    machine: Machine | None


@dataclass
class SeatText(Message):
    """Text for one of the seat screen's panes: the console output."""

    pane: str
    text: str


@dataclass
class ShellReady(Message):
    """The `ssh` command line that opens a shell on the seat's machine."""

    argv: list[str]


@dataclass
class ClustersLoaded(Message):
    """Every cluster of the class (``clusterops.status``); ``started`` as in SeatsLoaded."""

    clusters: list[ClusterStatus]
    started: float


@dataclass
class ClusterLoaded(Message):
    """One cluster for its screen: its line and the cluster (None when its key has had
    none)."""

    status: ClusterStatus
    cluster: Cluster | None
    started: float  # when the load began (the clusters view takes its line too)


@dataclass
class StepCause(Message):
    """What the cluster screen says of one step: its probable cause, or why there is none."""

    step_id: str
    text: str
    final: bool  # True when it will not change (a cause was found): kept, not asked again


@dataclass
class JobsLoaded(Message):
    """Every batch job of the course (``jobops.status``) and $ so far per job
    (``jobops.cost_so_far``); ``started`` as in SeatsLoaded."""

    jobs: list[JobState]
    costs: dict[str, float]
    started: float


@dataclass
class JobLogLoaded(Message):
    """One batch job's log files (``jobops.job_log``: None for a file not written yet)."""

    job: str
    logs: dict[str, str | None]


@dataclass
class DatabaseLoaded(Message):
    """The course's result store (``dbops.status``): ``live`` when its two users were tried
    over MySQL (the first load and r), False for the quiet look that only describes the
    instance; ``started`` is when the fetch began."""

    check: DatabaseCheck
    live: bool
    started: float


@dataclass
class DashboardLoaded(Message):
    """One look at the class (``dashops.gather``); ``started`` as in SeatsLoaded."""

    board: Dashboard
    started: float
