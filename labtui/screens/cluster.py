"""One EMR cluster's screen, and the cluster actions it shares with the clusters view.

Enter on a row of the clusters view pushes this screen; escape goes back. It shows the
cluster (id, state, region, master address or why it ended, its timeline, steps and cost),
the course's spec of it (release, applications, node groups, configurations, bootstrap
actions, the course's steps, the log URI), its steps (id, name, state, start, end, reason;
newest first, as EMR lists them) and, for the step under the cursor, what happened to it:
for a failed one its probable cause, read from its logs in a worker
(``clusterops.step_log``: S3, else the master node over SSH), or the note saying why there
is none yet.

Keys (here and on the clusters view, for the cursor's cluster): ``a`` adds a step (its
arguments, split as a shell would, run by command-runner.jar on the master), ``t``
terminates the cluster, ``R`` replaces it (terminate, wait, start a new one for the same
key); ``t`` and ``R`` ask first in the one ``ConfirmModal``, and a read-only console
refuses all three. Every AWS call runs in a thread worker owned by the app; the screen loads
again when a ClusterChanged event names its cluster, after a step is added, and every few
seconds while it is open (never two loads at once).
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from rich.markup import escape
from rich.text import Text
from textual import events, on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static
from textual.worker import NoActiveWorker, get_current_worker

from labtui import clusterops, lifecycle
from labtui.course import Clusters, Course, EmrConfiguration
from labtui.events import ClusterChanged, Event
from labtui.screens.confirm import ConfirmModal, PromptModal
from labtui.screens.footer import KeyFooter
from labtui.screens.host import Lab
from labtui.screens.jobs import Job, count, names, one_line
from labtui.screens.messages import ClusterLoaded, ClustersLoaded, StepCause
from labtui.screens.rowtable import RowTable
from labtui.services import clusters as emr

if TYPE_CHECKING:
    from labtui.clusterops import ClusterStatus
    from labtui.context import Context
    from labtui.services.clusters import Cluster, StepInfo

CLUSTER_GROUP = "cluster:"   # the worker group of a cluster screen's loads (and ":cause")
RELOAD_EVERY = 5.0           # seconds between quiet loads while open (the app's poll if set)
FAILED = ("FAILED", "CANCELLED", "INTERRUPTED")  # the step states step_log explains
READY = ("WAITING", "RUNNING")
NONE = "—"
UNKNOWN = "…"
STEP_COLUMNS = (("Step", "id"), ("Name", "name"), ("State", "state"), ("Started", "start"),
                ("Ended", "end"), ("Reason", "reason"))
EXAMPLE_STEP = 'bash -c "echo hi"'
LABEL = 10  # the width of the labels of the details and the spec


# -- wording shared with the clusters view ----------------------------------------------------

def per_text(course: Course, clusters: Clusters) -> str:
    units = len(course.cluster_units)
    who = {"student": "one cluster per student", "group": "one cluster per group",
           "shared": "one cluster for the whole class"}.get(clusters.per, clusters.per)
    plural = "" if units == 1 else "s"
    return (f"{who}: {units} cluster{plural} × {clusters.nodes} node"
            f"{'' if clusters.nodes == 1 else 's'} = {units * clusters.nodes} nodes")


def nodes_text(clusters: Clusters) -> str:
    parts = []
    for g in clusters.groups:
        text = f"{g.role} {g.count} × {g.instance_type} {g.market}"
        extra = [f"bid ${g.bid_price:.2f}/h"] if g.bid_price is not None else []
        extra += [f"{g.ebs_gb} GB EBS"] if g.ebs_gb else []
        parts.append(text + (f" ({', '.join(extra)})" if extra else ""))
    return " · ".join(parts) or NONE


def configuration_lines(confs: Iterable[EmrConfiguration], depth: int = 0) -> Iterator[str]:
    for conf in confs:
        props = ", ".join(f"{k}={v}" for k, v in conf.properties.items())
        yield "  " * depth + f"{conf.classification}: {props or NONE}"
        yield from configuration_lines(conf.configurations, depth + 1)


def spec_lines(course: Course, key: str | None = None,
               cluster: Cluster | None = None) -> list[tuple[str, str]]:
    """(label, text) lines of the course's cluster spec; with a key, its log URI."""
    spec = course.clusters
    assert spec is not None
    lines = [("Release", f"{spec.release} · {', '.join(spec.applications) or 'no applications'}"
                         f" · idle timeout {spec.idle_timeout_minutes} minutes"),
             ("Per", per_text(course, spec)),
             ("Nodes", nodes_text(spec))]
    lines += [("Config" if i == 0 else "", line)
              for i, line in enumerate(configuration_lines(spec.configurations))]
    lines += [("Bootstrap" if i == 0 else "", f"{b.name}: {shlex.join([b.path, *b.args])}")
              for i, b in enumerate(spec.bootstrap)]
    lines += [("Steps" if i == 0 else "",
               f"{s.name}: {shlex.join([s.script] if s.script else [])}"
               f"{' ' if s.script and s.args else ''}{shlex.join(s.args)} "
               f"(on failure {s.on_failure})")
              for i, s in enumerate(spec.steps)]
    if key is not None:
        uri = (cluster.log_uri if cluster is not None and cluster.log_uri
               else emr.log_uri(course, key))
        lines.append(("Log URI", uri or "none: the course names no bucket, so the logs "
                                       "go when the cluster does"))
    return lines


def labelled(lines: Iterable[tuple[str, str]], styles: dict[str, str] | None = None) -> Text:
    text = Text()
    for index, (label, value) in enumerate(lines):
        if index:
            text.append("\n")
        text.append(f"{label:<{LABEL}}", style="bold")
        text.append(value, style=(styles or {}).get(label, ""))
    return text


def when(stamp: str) -> str:
    """A time from EMR as the tables show it (local, to the second), or — ."""
    if not stamp:
        return NONE
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp[:19]
    if moment.tzinfo is not None:
        moment = moment.astimezone()
    return moment.strftime("%m-%d %H:%M:%S")


def money(value: float | None) -> str:
    return NONE if value is None else f"{value:.2f}"


def who_uses(course: Course, key: str) -> str:
    students = course.cluster_units.get(key, ())
    return names([f"{s.id} ({s.name})" for s in students], limit=4) or NONE


def live(status: ClusterStatus | None) -> bool:
    return status is not None and status.state in emr.LIVE


def terminate_question(course: Course, status: ClusterStatus) -> tuple[str, str]:
    """The confirmation for t: what goes, what it runs, what it costs."""
    spec = course.clusters
    assert spec is not None
    question = f"Terminate the cluster of {status.key}?"
    running = status.steps_running
    lines = [
        f"{count([status.key], 'cluster')}: {status.cluster_id}, {status.state} in "
        f"{status.region}.",
        f"Nodes: {spec.nodes} ({nodes_text(spec)}).",
        f"Steps: {status.steps_total} in all, {running} running"
        + (" (it stops)" if running == 1 else " (they stop)" if running else "") + ".",
        f"Cost: ${money(status.hourly_usd)}/hour; ${money(status.cost_usd)} so far.",
        f"Used by {who_uses(course, status.key)}: their HDFS data and running work are "
        "lost; logs in S3 stay.",
        "R (replace) or `labtui up` starts a new one.",
    ]
    return question, "\n".join(lines)


def replace_question(course: Course, key: str,
                     status: ClusterStatus | None) -> tuple[str, str, str]:
    """The confirmation for R: (question, body, the yes button's label)."""
    spec = course.clusters
    assert spec is not None
    new = (f"a new cluster in {status.region if live(status) and status else course.regions[0]}"
           f": {spec.nodes} node{'s' if spec.nodes != 1 else ''} ({nodes_text(spec)}), "
           f"{spec.release}")
    cost = ""
    if live(status) and status is not None and status.hourly_usd is not None:
        cost = f" About ${status.hourly_usd:.2f}/hour, as now."
    if live(status) and status is not None:
        lines = [f"Terminates {status.cluster_id} ({status.state}, {status.steps_total} steps, "
                 f"{status.steps_running} running) and waits until it is gone, then starts "
                 f"{new}.{cost}",
                 f"Used by {who_uses(course, key)}: their HDFS data and running work are "
                 "lost; logs in S3 stay. No other cluster is touched."]
        return f"Replace the cluster of {key}?", "\n".join(lines), "Replace"
    ended = (f" Its last one, {status.cluster_id}, is {status.state}"
             + (f": {status.reason}" if status.reason else "") + "."
             if status is not None and status.cluster_id else "")
    lines = [f"{key} has no running cluster.{ended}", f"Starts {new}.",
             f"Used by {who_uses(course, key)}. No other cluster is touched."]
    return f"Start a cluster for {key}?", "\n".join(lines), "Start"


# -- the jobs (thread workers run by the app; they never touch a widget) ----------------------

def _cancelled() -> Callable[[], bool]:
    try:
        worker: Any = get_current_worker()
    except NoActiveWorker:
        return lambda: False
    return lambda: bool(worker.is_cancelled)


def step_job(course: Course, key: str, args: list[str],
             after: Callable[[Context], None]) -> Job:
    def run(ctx: Context) -> str:
        cluster, step_id = clusterops.submit(ctx, course, key, args)
        after(ctx)
        return f"Step {step_id} added to {cluster.cluster_id} ({key}): {shlex.join(args)}"
    return run


def terminate_job(course: Course, key: str) -> Job:
    def run(ctx: Context) -> str:
        done = clusterops.terminate(ctx, course, [key])
        return (f"Terminated the cluster of {key} ({', '.join(c.cluster_id for c in done)})."
                if done else f"{key} had no running cluster: nothing terminated.")
    return run


def replace_job(course: Course, key: str, watch: Callable[[Cluster], None]) -> Job:
    """Replace the key's cluster (terminate, wait, start; its seats' ~/.mrjob.conf then
    name the new one, as `labtui replace-cluster` does); then ``watch(new)`` hands the wait
    for it to be ready to a worker of its own, so other jobs need not wait for it."""
    def run(ctx: Context) -> str:
        old, new = lifecycle.replace_cluster(ctx, course, key)
        watch(new)
        return (f"{key}: new cluster {new.cluster_id}"
                + (f" (replaces {old.cluster_id})" if old else "")
                + f", {new.state}; the clusters view shows when it is ready.")
    return run


def ready_job(course: Course, cluster: Cluster) -> Job:
    def run(ctx: Context) -> str:
        last = clusterops.wait_ready(ctx, course, [cluster], cancelled=_cancelled())
        now = last.get(cluster.seat, cluster)
        return f"The cluster of {cluster.seat}, {cluster.cluster_id}, is {now.state}" + (
            f": {now.reason}" if now.reason and now.state not in READY else "") + "."
    return run


class ClusterActions:
    """a, t and R for one key's cluster, from the clusters view or the cluster screen:
    refused in read-only mode, asked in the one ConfirmModal, run as the app's jobs."""

    def __init__(self, app: App[Any], course: Course, key: str, status: ClusterStatus | None,
                 after_step: Callable[[Context], None]) -> None:
        self.app, self.lab = app, cast("Lab", app)
        self.course, self.key, self.status = course, key, status
        self.after_step = after_step

    def _running(self, what: str) -> bool:
        status = self.status
        if status is None:
            self.lab.notify("The clusters are still loading; try again in a moment.",
                            severity="warning")
            return False
        if not live(status):
            ended = (f" (its last, {status.cluster_id}, is {status.state}"
                     + (f": {status.reason}" if status.reason else "") + ")"
                     if status.cluster_id else "")
            self.lab.notify(f"{what}: {self.key} has no running cluster{ended}. R starts "
                            "one.", severity="warning", markup=False)
            return False
        return True

    def add_step(self) -> None:
        if self.lab.refused("adding a step (submit)") or not self._running("add a step"):
            return
        status = self.status
        assert status is not None
        key, course = self.key, self.course

        def chosen(text: str | None) -> None:
            if not text:
                return
            try:
                args = shlex.split(text)
            except ValueError as exc:
                self.lab.notify(f"Could not read the arguments: {exc}. Fix: close the quote "
                                "(they are split as a shell would).", severity="error",
                                markup=False)
                return
            if args:
                self.lab.start_job(step_job(course, key, args, self.after_step),
                                   what=f"step on {key}'s cluster", group=f"step:{key}",
                                   refresh=False)

        self.app.push_screen(PromptModal(
            f"Add a step to {status.cluster_id} ({key})", placeholder=EXAMPLE_STEP,
            note="The arguments run on the master by command-runner.jar, split as a shell "
                 f"would (e.g. {EXAMPLE_STEP}) · enter adds · escape cancels"), chosen)

    def terminate(self) -> None:
        if self.lab.refused("terminating a cluster") or not self._running("terminate"):
            return
        status = self.status
        assert status is not None
        question, body = terminate_question(self.course, status)
        self.lab.confirm_then_job(ConfirmModal(question, body, yes="Terminate", danger=True),
                                  terminate_job(self.course, self.key),
                                  what=f"terminate the cluster of {self.key}")

    def replace(self) -> None:
        if self.lab.refused("replacing a cluster"):
            return
        if self.status is None:
            self._running("replace")
            return
        question, body, yes = replace_question(self.course, self.key, self.status)
        app, course, key, lab = self.app, self.course, self.key, self.lab

        def watch(new: Cluster) -> None:  # from the replace job's thread
            app.call_from_thread(lab.start_job, ready_job(course, new),
                                 what=f"waiting for {key}'s new cluster",
                                 group=f"cluster-ready:{key}", refresh=False)

        lab.confirm_then_job(ConfirmModal(question, body, yes=yes, danger=True),
                             replace_job(course, key, watch),
                             what=f"{yes.lower()} the cluster of {key}")


# -- the screen -------------------------------------------------------------------------------

class StepTable(RowTable):
    """The cluster's steps; the cursor's step is explained below."""


class ClusterScreen(Screen[None]):
    """One cluster of the class: what runs on it and why a step failed."""

    BINDINGS = [
        Binding("escape", "back", "Back", id="cluster.back", tooltip="Back to the clusters"),
        Binding("a", "add_step", "Add step", id="cluster.add_step",
                tooltip="Add a step: its arguments run on the master by command-runner.jar "
                        f"(e.g. {EXAMPLE_STEP})"),
        Binding("t", "terminate", "Terminate", id="cluster.terminate",
                tooltip="Terminate this cluster (after confirming)"),
        Binding("R", "replace", "Replace", id="cluster.replace",
                tooltip="Terminate this cluster and start a new one for the same seat "
                        "(after confirming)"),
        Binding("r", "reload", "Reload", id="cluster.reload", show=False,
                tooltip="Load the cluster and its steps again; a failed step's logs too"),
    ]

    def __init__(self, course: Course, key: str) -> None:
        super().__init__(id=f"cluster-{key}", classes="cluster-screen")
        self.course = course
        self.key = key
        self.status: ClusterStatus | None = None
        self.cluster: Cluster | None = None
        self.steps: dict[str, StepInfo] = {}
        self.causes: dict[str, str] = {}   # step id -> its probable cause, once found
        self.shown_cause: tuple[str, str] | None = None  # (step id, state) in the pane
        self.loaded = False
        self._reload_timer: Any = None

    @property
    def lab(self) -> Lab:
        return cast("Lab", self.app)

    @property
    def group(self) -> str:
        return f"{CLUSTER_GROUP}{self.key}"

    # -- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="cluster-top"):
            yield Static(f"Cluster of {self.key} — {who_uses(self.course, self.key)}",
                         classes="view-title", markup=False)
            yield Static("Loading…", id="cluster-details", markup=False)
            yield Static(labelled(spec_lines(self.course, self.key)), id="cluster-spec",
                         markup=False)
        steps = StepTable(id="cluster-steps", cursor_type="row", zebra_stripes=True)
        for label, column in STEP_COLUMNS:
            steps.add_column(label, key=column)
        yield steps
        with VerticalScroll(id="cluster-cause-box"):
            yield Static("", id="cluster-cause", markup=False)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.title = self.app.title
        self.sub_title = f"cluster of {self.key}"
        self.query_one("#cluster-cause-box").border_title = "The step under the cursor"
        self.query_one("#cluster-steps", StepTable).focus()
        self.reload()
        every = getattr(self.app, "refresh_every", RELOAD_EVERY)  # the app's poll, or none
        if every:
            self.set_interval(every, self.reload_quietly, name="reload cluster")

    def on_resize(self, event: events.Resize) -> None:
        self.query_one(KeyFooter).compact = event.size.width < 100

    # -- loading --------------------------------------------------------------------------------

    def reload(self) -> None:
        ctx = self.lab.ctx
        if ctx is None:
            self.failed(self.lab.connect_error or "not connected yet")
            return
        self.lab.run_worker(lambda: self.fetch(ctx), name=self.group, group=self.group,
                            thread=True, exclusive=True, exit_on_error=False,
                            description=f"loading the cluster of {self.key}")

    def reload_quietly(self) -> None:
        """The periodic load: skipped while one runs (never stacks)."""
        if not any(w.group == self.group and not w.is_finished for w in self.app.workers):
            self.reload()

    def fetch(self, ctx: Context) -> None:
        """Runs in a thread worker: the cluster's line and its steps."""
        started = time.time()
        status, cluster = clusterops.status_of(ctx, self.course, self.key)
        self.post_message(ClusterLoaded(status, cluster, started))

    @on(ClusterLoaded)
    def show_cluster(self, message: ClusterLoaded) -> None:
        first = not self.loaded
        self.status, self.cluster, self.loaded = message.status, message.cluster, True
        self.query_one("#cluster-details", Static).update(self.details())
        self.query_one("#cluster-spec", Static).update(
            labelled(spec_lines(self.course, self.key, message.cluster)))
        self.show_steps(message.status.steps)
        rows = self.query_one("#cluster-steps", StepTable)
        failed = [s.step_id for s in message.status.steps if s.state in FAILED]
        if first and failed:
            rows.move_cursor(row=rows.get_row_index(failed[0]))  # the newest failed step
        self.show_cause()
        # The clusters view's row of this key is as new as this load.
        for screen in self.app.screen_stack:
            for view in screen.query("#view-clusters"):
                view.post_message(ClustersLoaded([message.status], message.started))

    def details(self) -> Text:
        status, cluster = self.status, self.cluster
        if status is None:
            return Text("Loading…")
        lines: list[tuple[str, str]] = []
        if cluster is None:
            lines.append(("Cluster", f"none — {self.key} has had no cluster yet; press R "
                                     "(or run `labtui up`) to start one"))
            return labelled(lines)
        lines.append(("Cluster", f"{cluster.cluster_id} · {cluster.state} · {cluster.region}"
                                 f" · {cluster.name}"))
        if cluster.live:
            lines.append(("Master", f"{status.master} (ssh as hadoop)" if status.master
                          else "no address yet"))
        if cluster.reason and not (cluster.live and cluster.state in READY):
            lines.append(("Why", cluster.reason))
        lines.append(("Timeline", f"created {when(cluster.created)} · ready "
                                  f"{when(cluster.ready)} · ended {when(cluster.ended)}"))
        idle = (f" · idle {status.idle_minutes:.0f} minutes"
                if status.idle_minutes is not None else "")
        lines.append(("Steps", f"{status.steps_total} in all: {status.steps_running} running, "
                               f"{status.steps_failed} failed{idle}"))
        lines.append(("Cost", f"${money(status.hourly_usd)}/hour · ${money(status.cost_usd)} "
                              f"so far · {status.normalized_hours} normalized instance hours"))
        return labelled(lines, {"Why": "red"} if cluster.state not in READY else None)

    def show_steps(self, found: Iterable[StepInfo]) -> None:
        """Rows keyed by step id, updated in place; newest first, as EMR lists them."""
        rows = self.query_one("#cluster-steps", StepTable)
        found = list(found)
        order = {s.step_id: index for index, s in enumerate(found)}
        present = {str(key.value) for key in rows.rows}
        for gone in present - order.keys():
            rows.remove_row(gone)
        changes = []
        added = False
        for step in found:
            cells = {"id": step.step_id, "name": one_line(step.name, 40), "state": step.state,
                     "start": when(step.started), "end": when(step.ended),
                     "reason": one_line(step.reason, 60) if step.reason else ""}
            escaped = {column: escape(value) for column, value in cells.items()}
            if step.step_id in present:
                old = self.steps.get(step.step_id)
                if old != step:
                    changes.append((step.step_id, escaped))
            else:
                rows.add_row(*escaped.values(), key=step.step_id)
                added = True
        if changes:
            rows.update_rows(changes, wider=[(key, column) for key, cells in changes
                                             for column in cells])
        if added and len(order) > 1:
            rows.sort("id", key=lambda step_id: order.get(str(step_id), 0))
        self.steps = {s.step_id: s for s in found}

    def failed(self, message: str) -> None:
        self.query_one("#cluster-details", Static).update(
            Text(f"Could not load the cluster: {message}", style="bold red"))

    def worker_failed(self, group: str, message: str) -> None:
        """The app reports a failed worker of this screen's (the notification is its)."""
        if group == self.group:
            self.failed(message)
        elif group == f"{self.group}:cause":
            self.shown_cause = None
            self.query_one("#cluster-cause", Static).update(
                Text(f"Could not read the step's logs: {message}", style="red"))

    def apply_events(self, events: list[Event]) -> None:
        """Called by the app with each batch of events: load again when this cluster
        changed (once per batch, half a second later)."""
        if any(isinstance(e, ClusterChanged) and e.key == self.key for e in events) \
                and self._reload_timer is None:
            self._reload_timer = self.set_timer(0.5, self._reload_now)

    def _reload_now(self) -> None:
        self._reload_timer = None
        self.reload()

    # -- the step under the cursor --------------------------------------------------------------

    def cursor_step(self) -> StepInfo | None:
        rows = self.query_one("#cluster-steps", StepTable)
        if rows.row_count == 0:
            return None
        key = rows.coordinate_to_cell_key(rows.cursor_coordinate).row_key.value
        return self.steps.get(str(key))

    @on(DataTable.RowHighlighted, "#cluster-steps")
    def step_highlighted(self, _: DataTable.RowHighlighted) -> None:
        self.show_cause()

    def show_cause(self) -> None:
        pane = self.query_one("#cluster-cause", Static)
        step = self.cursor_step()
        if step is None:
            self.shown_cause = None
            if self.status is None:
                pane.update("")
            elif self.status.cluster_id is None:
                pane.update(f"No cluster, so no steps. R starts one for {self.key}.")
            else:
                pane.update(f"No steps on {self.status.cluster_id} yet. a adds one (e.g. "
                            f"{EXAMPLE_STEP}).")
            return
        if self.shown_cause == (step.step_id, step.state):
            return
        self.shown_cause = (step.step_id, step.state)
        head = f"{step.step_id} {step.name!r}: {step.state}"
        if step.state not in FAILED:
            args = shlex.join(step.args) if step.args else NONE
            pane.update(f"{head} — nothing failed.\nArguments: {args}"
                        + (f"\nOn failure: {step.on_failure}" if step.on_failure else ""))
            return
        if step.step_id in self.causes:
            pane.update(self.causes[step.step_id])
            return
        pane.update(f"{head}" + (f" — {step.reason}" if step.reason else "")
                    + "\nLooking for its probable cause in its logs…")
        ctx = self.lab.ctx
        if ctx is None:
            return
        course, key, step_id = self.course, self.key, step.step_id

        def look() -> None:
            found = clusterops.step_log(ctx, course, key, step_id)
            self.post_message(StepCause(step_id, found.human(), final=found.cause is not None))

        self.lab.run_worker(look, name=f"{self.group}:cause", group=f"{self.group}:cause",
                            thread=True, exclusive=True, exit_on_error=False,
                            description=f"reading the logs of step {step_id}")

    @on(StepCause)
    def cause_found(self, message: StepCause) -> None:
        if message.final:
            self.causes[message.step_id] = message.text
        step = self.cursor_step()
        if step is not None and step.step_id == message.step_id:
            self.query_one("#cluster-cause", Static).update(message.text)

    # -- actions --------------------------------------------------------------------------------

    def actions(self) -> ClusterActions:
        def after(ctx: Context) -> None:  # from the step job's thread
            self.fetch(ctx)
        return ClusterActions(self.app, self.course, self.key,
                              self.status if self.loaded else None, after)

    def action_back(self) -> None:
        self.dismiss(None)

    def action_reload(self) -> None:
        self.causes.clear()
        self.shown_cause = None
        self.reload()

    def action_add_step(self) -> None:
        self.actions().add_step()

    def action_terminate(self) -> None:
        self.actions().terminate()

    def action_replace(self) -> None:
        self.actions().replace()
