"""The class at a glance: what the dashboard shows, made from what the other views read.

A ``Dashboard`` holds one look at the class (``dashops.gather`` makes it): every seat's status
(the same ``SeatStatus`` rows as ``labtui status``), the clusters with their steps, the
notebook servers, the billing alarms, the vCPU quotas, the next scheduled action, the seats
warned as idle, and the $/hour samples of the day. ``lines`` turns it into the dashboard's
lines — each with a key (the row it updates in place), a label, its text, whether it is bad
news, and the view that explains it — so the console and ``labtui dashboard`` say the same.

Nothing here reads AWS; it is pure, and the tests feed it what the services return.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labtui.clusterops import ClusterStatus
    from labtui.lifecycle import SeatStatus
    from labtui.schedule import Action
    from labtui.services.billing import BillingState
    from labtui.services.notebooks import Status as NotebookStatus

CLUSTER_READY = ("WAITING", "RUNNING")
CLUSTER_ENDED = ("TERMINATING", "TERMINATED", "TERMINATED_WITH_ERRORS")
HOURS_PER_DAY = 24


@dataclass(frozen=True)
class QuotaUse:
    """vCPUs in use against one quota of one region."""

    region: str
    name: str
    in_use: float
    quota: float

    def as_json(self) -> dict[str, Any]:
        return {"region": self.region, "name": self.name, "in_use": self.in_use,
                "quota": self.quota}


@dataclass(frozen=True)
class Sample:
    """The class's $/hour and cost so far at one moment (the chart's points)."""

    at: float
    hourly_usd: float
    cost_usd: float

    def as_json(self) -> dict[str, float]:
        return {"at": self.at, "hourly_usd": round(self.hourly_usd, 4),
                "cost_usd": round(self.cost_usd, 4)}


@dataclass(frozen=True)
class Line:
    """One line of the dashboard: ``view`` is where Enter on it goes ("schedule": the
    schedule's own screen)."""

    key: str
    label: str
    text: str
    view: str
    bad: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "text": self.text, "view": self.view,
                "bad": self.bad}


@dataclass
class Dashboard:
    seats: list[SeatStatus]
    clusters: list[ClusterStatus] | None = None          # None: the course has none
    notebooks: Mapping[str, NotebookStatus] | None = None  # None: no [jupyter]
    billing: BillingState | None = None
    budget_usd: float | None = None                      # the course's budget per day
    quotas: list[QuotaUse] = field(default_factory=list)
    next_action: Action | None = None
    has_schedule: bool = False
    schedule_text: list[str] = field(default_factory=list)  # what `labtui schedule` prints
    idle: dict[str, str] = field(default_factory=dict)   # seat -> when it was warned
    history: list[Sample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)    # what could not be read, and why
    at: float = field(default_factory=time.time)

    # -- the counts ---------------------------------------------------------------------------

    @property
    def seats_ready(self) -> list[str]:
        return [s.seat for s in self.seats if s.state == "running" and s.setup == "done"]

    @property
    def setup_failed(self) -> list[tuple[str, str]]:
        return [(s.seat, s.error) for s in self.seats
                if s.instance_id is not None and s.setup == "failed"]

    @property
    def states(self) -> Counter[str]:
        return Counter(s.state for s in self.seats)

    @property
    def clusters_ready(self) -> list[str]:
        return [c.key for c in self.clusters or () if c.state in CLUSTER_READY]

    @property
    def steps_failing(self) -> list[tuple[str, int]]:
        return [(c.key, c.steps_failed) for c in self.clusters or ()
                if c.steps_failed and c.state not in CLUSTER_ENDED]

    @property
    def notebooks_up(self) -> list[str]:
        return [seat for seat, s in (self.notebooks or {}).items() if s.state == "up"]

    @property
    def hourly_usd(self) -> float:
        machines = sum(s.hourly_usd or 0.0 for s in self.seats if s.state == "running")
        clusters = sum(c.hourly_usd or 0.0 for c in self.clusters or ()
                       if c.state not in CLUSTER_ENDED)
        return machines + clusters

    @property
    def cost_usd(self) -> float:
        return (sum(s.cost_usd or 0.0 for s in self.seats)
                + sum(c.cost_usd or 0.0 for c in self.clusters or ()))

    def sample(self) -> Sample:
        return Sample(self.at, self.hourly_usd, self.cost_usd)

    def as_json(self) -> dict[str, Any]:
        billing = self.billing
        return {
            "type": "dashboard", "at": self.at,
            "seats": len(self.seats), "seats_ready": len(self.seats_ready),
            "states": dict(sorted(self.states.items())),
            "setup_failed": [{"seat": seat, "error": error}
                             for seat, error in self.setup_failed],
            "idle_warned": [{"seat": seat, "at": at} for seat, at in sorted(self.idle.items())],
            "clusters": None if self.clusters is None else len(self.clusters),
            "clusters_ready": None if self.clusters is None else len(self.clusters_ready),
            "steps_failing": [{"cluster": key, "failed": n} for key, n in self.steps_failing],
            "notebooks": None if self.notebooks is None else len(self.notebooks),
            "notebooks_up": None if self.notebooks is None else len(self.notebooks_up),
            "hourly_usd": round(self.hourly_usd, 4), "cost_usd": round(self.cost_usd, 4),
            "budget_usd": self.budget_usd,
            "alarms": None if billing is None else [
                {"alarm": name, "state": state} for name, state in alarm_states(billing)],
            "quotas": [q.as_json() for q in self.quotas],
            "next_action": None if self.next_action is None else self.next_action.as_json(),
            "problems": list(self.problems),
            "lines": [line.as_json() for line in lines(self)],
        }


def alarm_states(billing: BillingState) -> list[tuple[str, str]]:
    """(alarm name, state) of each of the course's billing alarms, by amount."""
    states = dict(billing.alarm_states)
    return [(name, states.get(name, "UNKNOWN")) for name in billing.alarms]


def _amount(name: str) -> str:
    """"labtui-c-bill-25usd" -> "$25"."""
    tail = name.rsplit("-", 1)[-1]
    return "$" + tail[:-3] if tail.endswith("usd") else name


def _listing(items: Iterable[str], limit: int = 4) -> str:
    items = list(items)
    shown = ", ".join(items[:limit])
    return shown + (f" +{len(items) - limit} more" if len(items) > limit else "")


def money(value: float) -> str:
    return f"${value:,.2f}"


def lines(board: Dashboard) -> list[Line]:
    """The dashboard's lines, in the order shown; a line for a part the course lacks is left
    out (no clusters: no cluster lines)."""
    out: list[Line] = []
    total = len(board.seats)
    ready = len(board.seats_ready)
    states = board.states
    others = ", ".join(f"{n} {state}" for state, n in sorted(states.items())
                       if state != "running")
    running_not_ready = sum(1 for s in board.seats if s.state == "running"
                            and s.setup in ("pending", "running"))
    text = f"{ready}/{total} set up"
    if running_not_ready:
        text += f" · {running_not_ready} setting up"
    if others:
        text += f" · {others}"
    out.append(Line("seats", "Seats ready", text, "machines", bad=False))
    failed = board.setup_failed
    if failed:
        seat, error = failed[0]
        first = error.splitlines()[0] if error else "no reason recorded"
        text = (f"{len(failed)}: {_listing(s for s, _ in failed)} — {seat}: {first}")
    else:
        text = "none"
    out.append(Line("failures", "Setup failures", text, "machines", bad=bool(failed)))
    if board.idle:
        out.append(Line("idle", "Idle, warned", f"{_listing(sorted(board.idle))} — stopped at "
                        "the next tick unless used", "machines", bad=True))
    if board.clusters is not None:
        cstates = Counter(c.state for c in board.clusters)
        ended_badly = [c.key for c in board.clusters if c.state == "TERMINATED_WITH_ERRORS"]
        rest = ", ".join(f"{n} {state.lower()}" for state, n in sorted(cstates.items())
                         if state not in CLUSTER_READY)
        text = f"{len(board.clusters_ready)}/{len(board.clusters)} ready"
        out.append(Line("clusters", "Clusters ready", text + (f" · {rest}" if rest else ""),
                        "clusters", bad=bool(ended_badly)))
        failing = board.steps_failing
        out.append(Line("steps", "Steps failed",
                        _listing(f"{key} {n}" for key, n in failing) if failing else "none",
                        "clusters", bad=bool(failing)))
    if board.notebooks is not None:
        running = sum(1 for s in board.seats if s.state == "running")
        busy = sum(s.busy for s in board.notebooks.values() if s.state == "up")
        down = [seat for seat, s in board.notebooks.items() if s.state != "up"]
        text = (f"{len(board.notebooks_up)}/{running} up" if running
                else "no machine is running")
        if busy:
            text += f" · {busy} busy kernel{'s' if busy != 1 else ''}"
        if down:
            text += f" · not up: {_listing(sorted(down))}"
        out.append(Line("notebooks", "Notebooks up", text, "machines", bad=bool(down)))
    hourly = board.hourly_usd
    text = f"{money(hourly)}/hour · {money(board.cost_usd)} so far"
    over = False
    if board.budget_usd is not None:
        day = hourly * HOURS_PER_DAY
        over = day > board.budget_usd
        text += (f" · {money(day)}/day against the budget of {money(board.budget_usd)}"
                 + (" — OVER" if over else ""))
    out.append(Line("cost", "Cost", text, "quotas", bad=over))
    if board.billing is not None:
        states_of = alarm_states(board.billing)
        firing = [name for name, state in states_of if state == "ALARM"]
        text = (" · ".join(f"{_amount(name)} {state}" for name, state in states_of)
                or "none in AWS (up creates them)")
        out.append(Line("alarms", "Billing alarms", text, "quotas", bad=bool(firing)))
    if board.quotas:
        most = max(board.quotas, key=lambda q: (q.in_use / q.quota if q.quota else 1.0,
                                                q.in_use))
        share = most.in_use / most.quota if most.quota else 1.0
        text = (f"{most.in_use:g}/{most.quota:g} {most.name} in {most.region} ({share:.0%})"
                + (f", the most used of {len(board.quotas)}"
                   if len(board.quotas) > 1 else ""))
        out.append(Line("quotas", "vCPUs in use", text, "quotas", bad=share >= 0.9))
    if board.has_schedule:
        action = board.next_action
        text = (f"{action.at:%a %H:%M} {action.what} ({action.why})" if action is not None
                else "nothing: every session is over")
        out.append(Line("schedule", "Next scheduled", text, "schedule"))
    for index, problem in enumerate(board.problems):
        out.append(Line(f"problem-{index}", "Not read", problem, "machines", bad=True))
    return out


def day_samples(samples: Iterable[Sample], now: float | None = None) -> list[Sample]:
    """The samples of the local day of ``now``, oldest first."""
    now = now if now is not None else time.time()
    today = datetime.fromtimestamp(now).date()
    return sorted((s for s in samples if datetime.fromtimestamp(s.at).date() == today),
                  key=lambda s: s.at)


def bar(used: float, total: float, width: int = 20) -> str:
    """A text bar of ``used`` against ``total``: "█████░░░░░"."""
    if total <= 0:
        return "·" * width
    filled = min(width, round(width * used / total))
    return "█" * filled + "░" * (width - filled)
