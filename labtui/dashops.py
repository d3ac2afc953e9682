"""The dashboard for both front ends: one look at the class (``gather``) and the day's
$/hour samples it leaves in the course's state folder for the chart.

``gather`` reads what the other views read, each part once and the independent parts at
once: the seats (``lifecycle.status``, one describe_instances pager per region), the clusters
with their steps, the notebook servers (over SSH, all machines at once), the billing alarms,
the vCPU quotas and the schedule's next action. A part that cannot be read (AWS refused, a
quota API unreachable) is named in ``problems``; the rest still shows.

Each look appends its $/hour and cost so far to ``dashboard.jsonl`` (0600) in the course's
state folder; the chart draws the local day's samples. Older days are dropped as it grows.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from labtui import dashboard, lifecycle
from labtui.dashboard import Dashboard, QuotaUse, Sample
from labtui.errors import LabError
from labtui.services import tags
from labtui.state import append_private, write_private

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from labtui.context import Context
    from labtui.course import Course
    from labtui.services.inventory import Inventory

HISTORY = "dashboard.jsonl"
HISTORY_KEEP = 2000   # samples kept (a look every 30 s for a long day is ~1500)


def gather(ctx: Context, course: Course, *, notebooks: bool = True) -> Dashboard:
    """One look at the class; ``notebooks=False`` leaves the notebook servers out (their
    look is over SSH)."""
    from labtui.scheduleops import IDLE_WARNED

    found = lifecycle.discover(ctx, course)
    seats = lifecycle.status(ctx, course, found)
    board = Dashboard(seats, budget_usd=course.budget_usd,
                      has_schedule=course.schedule is not None)
    for machine in found.machines:
        warned = tags.as_dict(machine.raw.get("Tags")).get(IDLE_WARNED)
        if warned and machine.state == "running":
            board.idle[machine.seat] = warned
    parts: dict[str, Callable[[], Any]] = {}
    if course.clusters is not None:
        parts["clusters"] = lambda: _clusters(ctx, course)
    if course.jupyter is not None and notebooks:
        parts["notebooks"] = lambda: _notebooks(ctx, course, found)
    if course.billing is not None:
        parts["billing alarms"] = lambda: _billing(ctx, course)
    if course.machines is not None:
        parts["quotas"] = lambda: _quotas(ctx, course, found)
    if course.schedule is not None:
        parts["schedule"] = lambda: _next_action(ctx, course)
    if parts:
        with ThreadPoolExecutor(max_workers=len(parts),
                                thread_name_prefix="dashboard") as pool:
            futures = {name: pool.submit(part) for name, part in parts.items()}
            results: dict[str, Any] = {}
            for name, future in futures.items():
                try:
                    results[name] = future.result()
                except LabError as exc:
                    board.problems.append(f"{name}: {exc}")
        if "clusters" in results:
            board.clusters = results["clusters"]
        if "notebooks" in results:
            board.notebooks = results["notebooks"]
        board.billing = results.get("billing alarms")
        board.quotas = results.get("quotas", [])
        board.next_action, board.schedule_text = results.get("schedule", (None, []))
    board.history = record(ctx.state.course(course.id).root, board.sample())
    return board


def _clusters(ctx: Context, course: Course) -> Any:
    from labtui import clusterops

    return clusterops.status(ctx, course, with_steps=True)


def _notebooks(ctx: Context, course: Course, found: Inventory) -> Any:
    from labtui import notebookops

    if not any(m.state == "running" for m in found.machines):
        return {}
    return notebookops.statuses(ctx, course, list(found.machines))


def _billing(ctx: Context, course: Course) -> Any:
    from labtui.services import billing

    return billing.billing_state(ctx.aws, course)


def _quotas(ctx: Context, course: Course, found: Inventory) -> list[QuotaUse]:
    details = lifecycle.plan_details(ctx, course, found)
    return [QuotaUse(region, quota.name, quota.usage, quota.value)
            for region in course.regions
            for _code, quota in sorted(details.quotas.get(region, {}).items())]


def _next_action(ctx: Context, course: Course) -> Any:
    from labtui import scheduleops

    found = scheduleops.outlook(ctx, course)
    return (found.next[0] if found.next else None), scheduleops.describe(course, found)


def record(folder: Path, sample: Sample) -> list[Sample]:
    """Add ``sample`` to the course's history; return the local day's samples."""
    path = folder / HISTORY
    samples = read_history(path)
    samples.append(sample)
    if len(samples) > HISTORY_KEEP:
        samples = samples[-HISTORY_KEEP // 2:]
        write_private(path, "".join(json.dumps(s.as_json()) + "\n" for s in samples))
    else:
        append_private(path, json.dumps(sample.as_json()) + "\n")
    return dashboard.day_samples(samples, sample.at)


def read_history(path: Path) -> list[Sample]:
    out: list[Sample] = []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        try:
            data = json.loads(line)
            out.append(Sample(float(data["at"]), float(data["hourly_usd"]),
                              float(data["cost_usd"])))
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a crash: the next ones still count
    return out
