"""The clusters view, a cluster's screen and the machines view's cluster column, driven by key
presses (Pilot) on the session sandbox, which plays EMR (labtui/sandbox/emr.py: STARTING
until the node has booted, then WAITING; steps run on the master and end COMPLETED or
FAILED).

One small class for the whole module (two students, one cluster each, of a single master
node) and one cluster, started once by ``clusterops.replace`` for s01 (s02 has none): a
cluster's node is a real machine in the sandbox, so the tests share it rather than boot one
each, and wait for states rather than assume timings. Near the end, t terminates it and R
starts another.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from labtui import clusterops, lifecycle
from labtui.app import LabApp
from labtui.context import Context, open_context
from labtui.course import Course, load
from labtui.events import ClusterChanged, ListSink
from labtui.sandbox.container import runtime_problem
from labtui.sandbox.runtime import Sandbox, serve_record
from labtui.screens.cluster import ClusterScreen
from labtui.screens.confirm import ConfirmModal, PromptModal
from labtui.screens.help import HelpScreen
from labtui.screens.main import MainScreen
from labtui.services import clusters as emr
from labtui.state import StateDir

from .courses import write_course
from .test_tui import SIZE, log_text, screen_text, settle

pytestmark = pytest.mark.skipif(runtime_problem() is not None,
                                reason=f"no sandbox machines here: {runtime_problem()}")

MASTER_ONLY = """
[clusters]
release = "emr-7.2.0"
applications = ["Spark"]
idle_timeout_minutes = 30
[clusters.master]
instance_type = "m5.xlarge"
[[clusters.configurations]]
classification = "spark-defaults"
properties = { "spark.executor.memory" = "1g" }
"""
LIVE = tuple(emr.LIVE)
ENDED = tuple(emr.ENDED)


@dataclass
class EmrClass:
    course: Course
    state: StateDir
    ctx: Context
    cluster_id: str

    def app(self, refresh_every: float | None = None, **opts: object) -> LabApp:
        return LabApp(self.course, sandbox=True, state_dir=str(self.state.root),
                      refresh_every=refresh_every, **opts)  # type: ignore[arg-type]

    def steps(self) -> list[emr.StepInfo]:
        return clusterops.steps(self.ctx, self.course, "s01")[1]


@pytest.fixture(scope="module")
def emr_class(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmrClass]:
    with pytest.MonkeyPatch.context() as env:  # (fake_aws is per test; this runs first)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            env.setenv(name, "/dev/null")
        folder = tmp_path_factory.mktemp("tui-clusters")
        course = load(write_course(folder, "tuiemr", students=2, extra=MASTER_ONLY))
        sandbox.reset()
        state = StateDir.resolve(folder / "state").ensure()
        state.sandbox_dir.mkdir(parents=True, exist_ok=True)
        serve_record(state, sandbox)
        ctx = open_context(None, sandbox=True, state_dir=str(state.root), sink=ListSink())
        try:
            _, cluster = lifecycle.replace_cluster(ctx, course, "s01")
            clusterops.wait_ready(ctx, course, [cluster], timeout=90)
            yield EmrClass(course, state, ctx, cluster.cluster_id)
        finally:
            try:
                clusterops.terminate(ctx, course, wait=False)  # (the next reset ends it)
            finally:
                ctx.close()


async def wait_until(pilot: Pilot, ok: Callable[[], object], what: str,
                     timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)
    await pilot.pause()


def cell(app: LabApp, table_id: str, row: str, column: str) -> str:
    return str(app.screen.query_one(f"#{table_id}", DataTable).get_cell(row, column))


def rows_of(app: LabApp, table_id: str) -> list[str]:
    return [str(key.value) for key in app.screen.query_one(f"#{table_id}", DataTable).rows]


def static_text(app: LabApp, widget_id: str) -> str:
    return str(app.screen.query_one(f"#{widget_id}", Static).render())


def record_notes(app: LabApp, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    notes: list[tuple[str, str]] = []
    real = app.notify

    def notify(message: str, *, severity: str = "information", **kwargs: object) -> None:
        notes.append((message, severity))
        real(message, severity=severity, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(app, "notify", notify)
    return notes


async def open_clusters(pilot: Pilot, app: LabApp) -> None:
    await settle(pilot, app)
    await pilot.press("3")
    await settle(pilot, app)


async def test_the_clusters_view_lists_the_class_live(emr_class: EmrClass) -> None:
    app = emr_class.app()
    async with app.run_test(size=SIZE) as pilot:
        await open_clusters(pilot, app)
        # One row per cluster key, keyed by it: s01's cluster, s02 without one.
        assert rows_of(app, "clusters-table") == ["s01", "s02"]
        assert cell(app, "clusters-table", "s01", "cluster") == emr_class.cluster_id
        assert cell(app, "clusters-table", "s01", "state") in LIVE
        assert cell(app, "clusters-table", "s01", "region") == "us-east-1"
        assert cell(app, "clusters-table", "s01", "failed") == "0"
        assert cell(app, "clusters-table", "s02", "state") == "absent"
        shown = screen_text(app)
        assert "emr-7.2.0 · Spark · idle timeout 30 minutes" in shown
        assert "one cluster per student: 2 clusters × 1 node = 2 nodes" in shown
        assert "MASTER 1 × m5.xlarge on-demand" in shown
        assert "spark-defaults: spark.executor.memory=1g" in shown
        assert "comes later" not in shown and "comes with" not in shown
        assert emr_class.cluster_id in shown
        assert "clusters: 1 running for 2 cluster keys" in log_text(app)
        status = app.main.view("clusters").status_text
        assert status.startswith(("ready 1/2 (absent 1)", "ready 0/2"))

        # The machines view: each seat's cluster state, from the same refresh.
        assert cell(app, "machines-table", "s01", "cluster") in LIVE
        assert cell(app, "machines-table", "s02", "cluster") == "absent"

        # An event changes the rows at once, in place, in both views.
        keys = list(app.screen.query_one("#clusters-table", DataTable).rows)
        app.ctx.sink.emit(ClusterChanged("s02", "j-EVENTONLY", "STARTING", "started in us-east-1"))
        await settle(pilot, app)
        assert cell(app, "clusters-table", "s02", "state") == "STARTING"
        assert cell(app, "clusters-table", "s02", "cluster") == "j-EVENTONLY"
        assert cell(app, "clusters-table", "s02", "note") == "started in us-east-1"
        assert cell(app, "machines-table", "s02", "cluster") == "STARTING"
        assert all(a is b for a, b in zip(
            app.screen.query_one("#clusters-table", DataTable).rows, keys, strict=True))

        # A refresh (r) asks AWS again, which knows better than that event.
        await pilot.press("r")
        await settle(pilot, app)
        assert cell(app, "clusters-table", "s02", "state") == "absent"
        assert cell(app, "clusters-table", "s01", "cluster") == emr_class.cluster_id


async def test_the_cluster_screen_shows_steps_and_a_adds_one(emr_class: EmrClass) -> None:
    before = len(emr_class.steps())
    app = emr_class.app()
    async with app.run_test(size=SIZE) as pilot:
        await open_clusters(pilot, app)
        await pilot.press("enter")  # the cursor is on s01
        await wait_until(pilot, lambda: isinstance(app.screen, ClusterScreen), "its screen")
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, ClusterScreen) and screen.key == "s01"
        details = static_text(app, "cluster-details")
        assert emr_class.cluster_id in details and "us-east-1" in details
        assert "Master" in details
        spec = static_text(app, "cluster-spec")
        assert "MASTER 1 × m5.xlarge" in spec and "spark.executor.memory=1g" in spec
        assert "Log URI" in spec  # (none: this course names no bucket)
        assert len(rows_of(app, "cluster-steps")) == before

        # a: the arguments, split as a shell splits them, run by command-runner.jar.
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, PromptModal), "the prompt")
        await pilot.press(*'bash -c "echo hi"', "enter")
        await settle(pilot, app)
        assert app.screen is screen
        found = emr_class.steps()
        assert len(found) == before + 1
        newest = found[0]
        assert newest.args == ("bash", "-c", "echo hi")
        assert rows_of(app, "cluster-steps")[0] == newest.step_id  # newest first
        assert cell(app, "cluster-steps", newest.step_id, "name") == "bash -c echo hi"
        assert cell(app, "cluster-steps", newest.step_id, "state") in (
            "PENDING", "RUNNING", "COMPLETED")
        assert f"Step {newest.step_id} added to {emr_class.cluster_id}" in log_text(app)
        screen.query_one("#cluster-steps", DataTable).move_cursor(row=0)
        await pilot.pause()
        assert "bash -c 'echo hi'" in static_text(app, "cluster-cause")

        # The help lists the screen's keys, the palette its actions.
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        listed = {str(row[0]): str(row[1]) for row in (
            app.screen.query_one("#help-keys", DataTable).get_row_at(i)
            for i in range(app.screen.query_one("#help-keys", DataTable).row_count))}
        assert listed["a"] == "Add step" and listed["t"] == "Terminate"
        assert listed["R"] == "Replace" and listed["esc"] == "Back"
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.press(*"cluster of s01")
        await pilot.pause(0.3)
        palette = screen_text(app)
        for action in ("add step", "terminate", "replace", "reload"):
            assert f"Cluster of s01: {action}" in palette
        await pilot.press("escape")
        await pilot.pause()

        # escape goes back to the clusters view, whose row counts the new step.
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert cell(app, "clusters-table", "s01", "steps") == str(before + 1)


async def test_a_failed_step_explains_itself(emr_class: EmrClass) -> None:
    ctx, course = emr_class.ctx, emr_class.course
    _, step_id = clusterops.submit(ctx, course, "s01",
                                   ["bash", "-c", "echo 'no such table: visits' >&2; exit 3"])
    deadline = time.monotonic() + 60  # it runs on the master once the steps before it end
    while (state := next(s.state for s in emr_class.steps() if s.step_id == step_id)) \
            != "FAILED":
        assert state in ("PENDING", "RUNNING") and time.monotonic() < deadline, state
        time.sleep(0.3)

    app = emr_class.app()
    async with app.run_test(size=SIZE) as pilot:
        await open_clusters(pilot, app)
        assert cell(app, "clusters-table", "s01", "failed") == "1"
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ClusterScreen), "its screen")
        await settle(pilot, app)
        # The cursor starts on the newest failed step; its cause is read in a worker.
        assert cell(app, "cluster-steps", step_id, "state") == "FAILED"
        cause = static_text(app, "cluster-cause")
        assert f"{step_id} " in cause and "FAILED" in cause
        assert "Could not read" not in cause
        assert ("Probable cause of failure" in cause and "no such table: visits" in cause) \
            or "not in S3 yet" in cause or "no log of the step" in cause, cause


async def test_read_only_refuses_the_cluster_actions(emr_class: EmrClass,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    app = emr_class.app(read_only=True)
    notes = record_notes(app, monkeypatch)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_clusters(pilot, app)
        for key in ("t", "R", "a"):
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, MainScreen)  # no confirmation, no prompt
        refused = [m for m, severity in notes if "refused" in m and severity == "warning"]
        assert [m.split(" is refused")[0] for m in refused] == [
            "Terminating a cluster", "Replacing a cluster", "Adding a step (submit)"]
        assert "--read-only" in refused[0]
        # On the cluster's screen too.
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ClusterScreen), "its screen")
        await pilot.press("t")
        await pilot.pause()
        assert isinstance(app.screen, ClusterScreen)
        assert len([m for m, _ in notes if "refused" in m]) == 4
        # The palette lists the view's actions (and refuses them the same way).
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.press(*"clusters:")
        await pilot.pause(0.3)
        palette = screen_text(app)
        for action in ("add step", "terminate", "replace"):
            assert f"Clusters: {action}" in palette
        await pilot.press("escape")
        await settle(pilot, app)
    live = clusterops.live(emr_class.ctx, emr_class.course)
    assert live["s01"].cluster_id == emr_class.cluster_id  # nothing changed


async def test_the_view_follows_aws_quietly_while_shown(emr_class: EmrClass) -> None:
    app = emr_class.app(refresh_every=0.3)
    async with app.run_test(size=SIZE) as pilot:
        view = app.main.view("clusters")
        await wait_until(pilot, lambda: view.loaded_at is not None, "the first load")
        await pilot.press("3")
        first = view.loaded_at
        assert first is not None
        await wait_until(pilot, lambda: (view.loaded_at or 0) > first, "a quiet refresh")
        assert cell(app, "clusters-table", "s01", "cluster") == emr_class.cluster_id
        # Hidden, it waits for events (and for being shown again).
        await pilot.press("2")
        await wait_until(pilot, lambda: not app.running("load:clusters"), "the last refresh")
        hidden_at = view.loaded_at
        await pilot.pause(1.0)
        assert view.loaded_at == hidden_at
        assert log_text(app).count("clusters: looking for") == 1  # the refreshes are quiet


async def test_t_asks_then_terminates(emr_class: EmrClass) -> None:
    """(It ends the module's cluster; the next test starts another.)"""
    app = emr_class.app()
    async with app.run_test(size=SIZE) as pilot:
        await open_clusters(pilot, app)
        # R asks what it would do; n changes nothing.
        await pilot.press("R")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), "R's question")
        asked = screen_text(app)
        assert "Replace the cluster of s01?" in asked
        assert f"Terminates {emr_class.cluster_id}" in asked and "us-east-1" in asked
        await pilot.press("n")
        await settle(pilot, app)
        assert "replace the cluster of s01: cancelled; nothing changed" in log_text(app)

        # t asks with counts; y terminates, and the row follows.
        await pilot.press("t")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), "t's question")
        asked = screen_text(app)
        assert "Terminate the cluster of s01?" in asked
        assert f"1 cluster: {emr_class.cluster_id}" in asked
        assert "Nodes: 1 (MASTER 1 × m5.xlarge on-demand)." in asked and "Steps: " in asked
        await pilot.press("y")
        await wait_until(pilot, lambda: cell(app, "clusters-table", "s01", "state")
                         in ("TERMINATING", "TERMINATED"), "the row to show it ending")
        assert cell(app, "clusters-table", "s01", "note") in ("terminated by you", "")
        await settle(pilot, app)
        assert cell(app, "clusters-table", "s01", "state") in ENDED
        assert cell(app, "machines-table", "s01", "cluster") in (
            "TERMINATING", "TERMINATED", "absent")
        assert "Terminated the cluster of s01" in log_text(app)
        assert emr.describe(emr_class.ctx.aws, "us-east-1",
                            emr_class.cluster_id).state in ENDED
        # The row after a refresh: the ended cluster and why.
        await pilot.press("r")
        await settle(pilot, app)
        assert cell(app, "clusters-table", "s01", "cluster") == emr_class.cluster_id
        assert cell(app, "clusters-table", "s01", "state") in ENDED
        # t again: nothing to terminate, said plainly.
        await pilot.press("t")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


async def test_r_starts_a_new_cluster_and_waits_for_it(emr_class: EmrClass) -> None:
    app = emr_class.app()
    async with app.run_test(size=SIZE) as pilot:
        await open_clusters(pilot, app)
        assert cell(app, "clusters-table", "s01", "state") in ENDED
        await pilot.press("R")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), "R's question")
        asked = screen_text(app)
        assert "Start a cluster for s01?" in asked
        assert f"Its last one, {emr_class.cluster_id}, is TERMINATED" in asked
        await pilot.press("y")
        await settle(pilot, app)  # the replace job, then the wait for the new cluster
        new = clusterops.live(emr_class.ctx, emr_class.course)["s01"]
        assert new.cluster_id != emr_class.cluster_id and new.state in ("WAITING", "RUNNING")
        assert cell(app, "clusters-table", "s01", "cluster") == new.cluster_id
        assert cell(app, "clusters-table", "s01", "state") == new.state
        assert cell(app, "machines-table", "s01", "cluster") == new.state
        logged = log_text(app)
        assert f"s01: new cluster {new.cluster_id}" in logged
        assert f"The cluster of s01, {new.cluster_id}, is {new.state}." in logged


def test_the_module_course_has_the_cluster_column_only_with_clusters(tmp_path: Path) -> None:
    """The machines view shows a cluster column only for a course with [clusters]."""
    from labtui.screens.machines import MachinesView

    plain = load(write_course(tmp_path, "plain", students=1))
    assert "cluster" not in MachinesView(plain).seats["s01"].cells
    (tmp_path / "with").mkdir()
    with_clusters = load(write_course(tmp_path / "with", "withc", students=1,
                                      extra=MASTER_ONLY))
    assert MachinesView(with_clusters).seats["s01"].cells["cluster"] == "…"
