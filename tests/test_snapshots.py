"""Snapshots of every view and the seat screen (pytest-textual-snapshot): the real app on the
session sandbox, a class of three with no machines yet, at 120x36 with the log pane hidden
(L, as a user with a small terminal would); the same class with [clusters] (none started
yet) for the clusters view and a cluster's screen. What changes from run to run is held still:
the clock every screen uses (screens.base.clock) and the sandbox's port in the header.
Record again after a deliberate change: pytest tests/test_snapshots.py --snapshot-update."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot

from labtui.app import LabApp
from labtui.course import load
from labtui.screens import base, batch, clusters, database, machines, main
from labtui.state import StateDir

from .test_tui import settle
from .test_tui_narrow import launch_events

COURSE = Path(__file__).resolve().parent / "data" / "snapshot_course.toml"
SIZE = (120, 36)
CLUSTERS = """
[clusters]
release = "emr-7.2.0"
applications = ["Hadoop", "Spark"]
idle_timeout_minutes = 45
bucket = "snap-class-data"
[clusters.master]
instance_type = "m5.xlarge"
[clusters.core]
instance_type = "m5.xlarge"
count = 1
market = "spot"
bid_price = 0.10
[[clusters.configurations]]
classification = "spark-defaults"
properties = { "spark.executor.memory" = "2g" }
[[clusters.bootstrap]]
name = "course environment"
path = "s3://snap-class-data/bootstrap.sh"
args = ["snap"]
[[clusters.steps]]
name = "warm-up"
args = ["bash", "-lc", "echo warm-up on $(hostname)"]
"""

JOBS = """
[jobs]
name = "sweep1"
file = "jobs.csv"
output = "s3://snap-class-results/sweep1/"
market = "on-demand"
max_parallel = 2
"""


def held_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (base, main, machines, clusters, batch, database):
        monkeypatch.setattr(module, "clock", lambda at: "09:00:00")


@pytest.fixture
def app(sandbox_state: StateDir, monkeypatch: pytest.MonkeyPatch) -> LabApp:
    held_clock(monkeypatch)
    return LabApp(load(COURSE), sandbox=True, state_dir=str(sandbox_state.root),
                  refresh_every=None)


@pytest.fixture
def clusters_app(sandbox_state: StateDir, monkeypatch: pytest.MonkeyPatch,
                 tmp_path: Path) -> LabApp:
    """The snapshot class with one cluster per student, none started."""
    held_clock(monkeypatch)
    path = tmp_path / "snapshot_course.toml"
    path.write_text(COURSE.read_text() + CLUSTERS)
    return LabApp(load(path), sandbox=True, state_dir=str(sandbox_state.root),
                  refresh_every=None)


@pytest.fixture
def jobs_app(sandbox_state: StateDir, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> LabApp:
    """The snapshot class with a jobs file of three jobs, none run yet."""
    held_clock(monkeypatch)
    (tmp_path / "jobs.csv").write_text("instance_type,command,name\n"
                                       "t3.small,python3 train.py --seed 1,seed-1\n"
                                       "t3.small,python3 train.py --seed 2,seed-2\n"
                                       "t3.micro,python3 report.py,report\n")
    path = tmp_path / "snapshot_course.toml"
    path.write_text(COURSE.read_text() + JOBS)
    return LabApp(load(path), sandbox=True, state_dir=str(sandbox_state.root),
                  refresh_every=None)


def ready(*keys: str):
    async def run_before(pilot: Pilot) -> None:
        app = pilot.app
        await settle(pilot, app)
        await pilot.press("L", *keys)
        await settle(pilot, app)
        app.sub_title = "sandbox (its port differs per run)"
        await pilot.pause()
    return run_before


@pytest.mark.parametrize("key", ["1", "2", "3", "4", "5", "6", "7", "8"],
                         ids=["machines", "roster", "clusters", "regions", "quotas", "sweep",
                              "jobs", "database"])
def test_each_view(app: LabApp, snap_compare, key: str) -> None:
    assert snap_compare(app, terminal_size=SIZE, run_before=ready(key))


def test_the_seat_screen(app: LabApp, snap_compare) -> None:
    assert snap_compare(app, terminal_size=SIZE, run_before=ready("1", "enter"))


def test_the_help_screen(app: LabApp, snap_compare) -> None:
    assert snap_compare(app, terminal_size=SIZE, run_before=ready("question_mark"))


def test_the_clusters_view_of_a_class_with_clusters(clusters_app: LabApp, snap_compare) -> None:
    assert snap_compare(clusters_app, terminal_size=SIZE, run_before=ready("3"))


def test_the_cluster_screen(clusters_app: LabApp, snap_compare) -> None:
    assert snap_compare(clusters_app, terminal_size=SIZE, run_before=ready("3", "enter"))


def test_the_jobs_view_of_a_class_with_jobs(jobs_app: LabApp, snap_compare) -> None:
    assert snap_compare(jobs_app, terminal_size=SIZE, run_before=ready("7"))


def seats_ready(*keys: str):
    """As ``ready``, after s02 launched in eu-west-1 and its setup failed with a long error
    (the events the work emits)."""
    async def run_before(pilot: Pilot) -> None:
        app = pilot.app
        await settle(pilot, app)
        await pilot.press("L")
        launch_events(app)  # type: ignore[arg-type]
        await pilot.pause(0.3)
        await pilot.press(*keys)
        await settle(pilot, app)
        app.sub_title = "sandbox (its port differs per run)"
        await pilot.pause()
    return run_before


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_the_machines_view_with_seats(app: LabApp, snap_compare, size: tuple[int, int]) -> None:
    """At 80x24 seat, state, setup and error show (the region as euw1, the rest gives
    way); at 160x48 every column."""
    assert snap_compare(app, terminal_size=size, run_before=seats_ready("1"))


@pytest.mark.parametrize("key", ["2", "4", "5", "6", "7"],
                         ids=["roster", "regions", "quotas", "sweep", "jobs"])
def test_each_table_view_at_80x24(jobs_app: LabApp, snap_compare, key: str) -> None:
    assert snap_compare(jobs_app, terminal_size=(80, 24), run_before=ready(key))


def test_the_clusters_view_at_80x24(clusters_app: LabApp, snap_compare) -> None:
    assert snap_compare(clusters_app, terminal_size=(80, 24), run_before=ready("3"))


def test_the_seat_screen_at_80x24(app: LabApp, snap_compare) -> None:
    """The details wrap under their values, never past the right edge."""
    assert snap_compare(app, terminal_size=(80, 24), run_before=ready("1", "enter"))
