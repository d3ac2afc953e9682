"""Clusters: the course's EMR cluster definition (one cluster per student), from the file.

Which clusters run and the state of their steps comes with the clusters issue; this view says
so instead of showing invented rows.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from labtui.course import Clusters, Course
from labtui.screens.base import View, table

GROUP_COLUMNS = (("Role", "role"), ("Instance type", "type"), ("Count", "count"),
                 ("Market", "market"), ("Bid $/h", "bid"))
LATER = ("Live cluster state (which clusters run, their steps and errors) comes with the "
         "clusters issue; nothing here is read from AWS yet.")


def overview(course: Course, clusters: Clusters) -> str:
    students = len(course.students)
    return "\n".join([
        f"Release      {clusters.release}",
        f"Applications {', '.join(clusters.applications) or '—'}",
        f"Idle timeout {clusters.idle_timeout_minutes} minutes",
        f"Per class    one cluster per student: {students} clusters × {clusters.nodes} nodes "
        f"= {students * clusters.nodes} nodes",
    ])


def details(clusters: Clusters) -> str:
    lines = []
    if clusters.configurations:
        lines.append("Configurations")
        for conf in clusters.configurations:
            props = ", ".join(f"{k}={v}" for k, v in conf.properties.items())
            lines.append(f"  {conf.classification}: {props}")
    if clusters.bootstrap:
        lines.append("Bootstrap actions")
        for action in clusters.bootstrap:
            lines.append(f"  {action.name}: {' '.join([action.path, *action.args])}")
    if clusters.steps:
        lines.append("Steps (submitted to every cluster)")
        for step in clusters.steps:
            lines.append(f"  {step.name}: {' '.join(step.args)}  (on failure: "
                         f"{step.on_failure})")
    return "\n".join(lines)


class ClustersView(View):
    VIEW_ID = "clusters"
    TITLE = "Clusters"
    KEY = "3"
    DESCRIPTION = "The course's EMR cluster definition"

    def compose_body(self) -> Iterable[Widget]:
        clusters = self.course.clusters
        if clusters is None:
            yield Static("This course defines no clusters (no [clusters] section in the "
                         "course file).", id="clusters-none", classes="empty")
            return
        with VerticalScroll(classes="body"):
            yield Static(overview(self.course, clusters), id="clusters-overview")
            groups = table("clusters-groups", GROUP_COLUMNS)
            for index, group in enumerate(clusters.groups):
                bid = f"{group.bid_price:.2f}" if group.bid_price is not None else "—"
                groups.add_row(group.role, group.instance_type, str(group.count), group.market,
                               bid, key=f"group-{index}")
            yield groups
            text = details(clusters)
            if text:
                yield Static(text, id="clusters-details")
            yield Static(LATER, id="clusters-later", classes="note later")
