"""The roster view and a seat's permissions, driven by key presses (Pilot) on the session
sandbox.

One class of two for the whole module, with students' AWS identities ([access] users =
true) and [storage] buckets, brought up once (two machines, set up, each seat's IAM user and
key): the tests share it and wait for what they assert rather than assume timings. The
roster shows each seat's machine and keys; / filters; k rotates the cursor's seat's key
(the IAM user's key id changes); h writes the handout cards; m without [mail] says why it
cannot; a read-only console refuses all three; a student removed from the course file is
reported, not deleted; the seat screen's permissions pane says what the identity may do.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from textual.widgets import DataTable, Input

from labtui import lifecycle
from labtui.app import LabApp
from labtui.context import Context, open_context
from labtui.course import Course, load
from labtui.events import ListSink
from labtui.sandbox.container import runtime_problem
from labtui.sandbox.runtime import Sandbox, serve_record
from labtui.screens.confirm import ConfirmModal
from labtui.screens.main import MainScreen
from labtui.screens.rowtable import plain
from labtui.screens.seat import SeatScreen
from labtui.services import handout
from labtui.state import StateDir

from .test_handout import Collect, _free_port
from .test_tui import SIZE, log_text, screen_text, settle
from .test_tui_clusters import record_notes, wait_until

pytestmark = pytest.mark.skipif(runtime_problem() is not None,
                                reason=f"no sandbox machines here: {runtime_problem()}")

COURSE = """
[course]
id = "tuiros"
name = "Roster Class"
regions = ["us-east-1"]
max_instances = 4

[[roster.students]]
id = "s01"
name = "Ada Lovelace"
email = "ada@example.edu"
group = "red"
[[roster.students]]
id = "s02"
name = "Grace Hopper"
email = "grace@example.edu"
group = "blue"

[machines]
instance_type = "t3.small"
login = "key"

[network]
ssh_cidr = "198.51.100.0/24"

[storage]
data_bucket = "tuiros-data"
scratch_bucket = "tuiros-scratch"

[access]
users = true
permissions = ["read-data", "write-scratch", "start-stop-own"]
"""


@dataclass
class RosterClass:
    course: Course
    path: Path
    state: StateDir
    ctx: Context

    def app(self, course: Course | None = None, **opts: object) -> LabApp:
        return LabApp(course or self.course, sandbox=True, state_dir=str(self.state.root),
                      refresh_every=None, **opts)  # type: ignore[arg-type]

    def key_id(self, seat: str) -> str:
        iam = self.ctx.aws.client("iam")
        [meta] = iam.list_access_keys(UserName=f"labtui-tuiros-{seat}")["AccessKeyMetadata"]
        return meta["AccessKeyId"]


@pytest.fixture(scope="module")
def klass(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RosterClass]:
    with pytest.MonkeyPatch.context() as env:  # (fake_aws is per test; this runs first)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            env.setenv(name, "/dev/null")
        folder = tmp_path_factory.mktemp("tui-roster")
        path = folder / "course.toml"
        path.write_text(COURSE)
        course = load(path)
        sandbox.reset()
        state = StateDir.resolve(folder / "state").ensure()
        state.sandbox_dir.mkdir(parents=True, exist_ok=True)
        serve_record(state, sandbox)
        ctx = open_context(None, sandbox=True, state_dir=str(state.root), sink=ListSink())
        try:
            result = lifecycle.up(ctx, course, setup_wait=60)
            assert sorted(result.set_up) == ["s01", "s02"], result
            yield RosterClass(course, path, state, ctx)
        finally:
            ctx.close()


def roster(app: LabApp) -> DataTable:
    return app.main.query_one("#roster-table", DataTable)


def cell(app: LabApp, student: str, column: str) -> str:
    """A cell as it shows (the table holds escaped markup)."""
    return plain(roster(app).get_cell(student, column))


def shown(app: LabApp) -> list[str]:
    rows = roster(app)
    return [str(rows.coordinate_to_cell_key((i, 0)).row_key.value)
            for i in range(rows.row_count)]


async def test_roster_filter_rotate_and_handouts(klass: RosterClass,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    app = klass.app()
    notes = record_notes(app, monkeypatch)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot, app)
        await pilot.press("2")
        await settle(pilot, app)
        # One row per student, keyed by id: the course file's columns and what AWS has.
        assert shown(app) == ["s01", "s02"]
        for student in ("s01", "s02"):
            assert cell(app, student, "seat") == student
            assert cell(app, student, "machine") == "running"
            assert cell(app, student, "keys") == "yes"
            assert cell(app, student, "cluster") == "no [clusters]"
            assert cell(app, student, "handout") == "—"
        assert cell(app, "s02", "group") == "blue"
        status = app.main.view("roster").status_text
        assert status.startswith("2 students in 2 groups · 2 seats · with keys 2/2 · "
                                 "handouts sent 0/2"), status
        assert "not in the roster" not in status
        text = screen_text(app)
        assert "Grace Hopper" in text and "grace@example.edu" in text
        assert "roster: 2 student(s) in 2 seat(s)" in log_text(app)

        # / filters by words (here a name); escape clears. Rows stay keyed by student.
        await pilot.press("slash", *"hopper")
        await pilot.pause()
        assert isinstance(app.focused, Input)
        assert shown(app) == ["s02"]
        assert 'filter "hopper": 1 of 2 shown' in app.main.view("roster").status_text
        await pilot.press("enter", "escape")
        await pilot.pause()
        assert shown(app) == ["s01", "s02"]

        # k: the cursor's seat — s02: the cursor stayed on its row through the filter —
        # after the one confirmation; its IAM key changes, the other seat's does not.
        before = klass.key_id("s01"), klass.key_id("s02")
        await pilot.press("k")
        await wait_until(pilot, lambda: "Rotate the AWS keys of s02?" in screen_text(app),
                         "the modal")
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("y")
        await settle(pilot, app)
        assert isinstance(app.screen, MainScreen)
        after = klass.key_id("s02")
        assert after != before[1] and klass.key_id("s01") == before[0]
        assert any(f"s02: new key {after} for labtui-tuiros-s02 installed on s02; old key "
                   f"{before[1]} deleted" in m for m, _ in notes), notes
        assert cell(app, "s02", "keys") == "yes"

        # h: every seat's card written to files; the log and a notification say where.
        await pilot.press("h")
        await settle(pilot, app)
        folder = klass.state.course("tuiros").root / "handout"
        assert sorted(p.name for p in folder.iterdir() if p.name in handout.FILES) == sorted(
            handout.FILES)
        said = f"Wrote 2 card(s) to {folder} (cards.csv, cards.md, cards.html; 0600"
        assert any(said in m for m, _ in notes), notes
        assert said in " ".join(log_text(app).split())
        assert "## Seat s02" in (folder / "cards.md").read_text()

        # m: no [mail] in this course, so nothing is asked and the notification says why.
        await pilot.press("m")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert any("no [mail] section" in m and s == "warning" for m, s in notes), notes

        # The help lists the roster's keys with what they do.
        keys = {key: what for key, what, _ in app.keys()}
        assert keys["h"] == "Handouts" and keys["m"] == "Mail cards"
        assert keys["k"] == "Rotate keys" and keys["/"] == "Filter"


async def test_read_only_refuses_and_a_removed_student_is_reported(
        klass: RosterClass, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The course file without s02: its machine and IAM user are reported, never deleted.
    fewer = tmp_path / "course.toml"
    fewer.write_text(klass.path.read_text().replace(
        '[[roster.students]]\nid = "s02"\nname = "Grace Hopper"\nemail = "grace@example.edu"'
        '\ngroup = "blue"\n', ""))
    app = klass.app(load(fewer), read_only=True)
    notes = record_notes(app, monkeypatch)
    before = klass.key_id("s01")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot, app)
        await pilot.press("2")
        await settle(pilot, app)
        assert shown(app) == ["s01"]
        status = app.main.view("roster").status_text
        assert "1 student in 1 group · 1 seat · with keys 1/1" in status
        assert "not in the roster any more: seat s02: 1 machine(s) (i-" in status
        assert "IAM user labtui-tuiros-s02" in status
        for key in ("k", "h", "m"):
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, MainScreen)
        refusals = [m for m, s in notes if "is refused: labtui runs read-only" in m]
        assert len(refusals) == 3, notes
    assert klass.key_id("s01") == before
    assert klass.key_id("s02")  # still there: the roster reports, down removes


async def test_the_seat_screen_shows_its_permissions(klass: RosterClass) -> None:
    app = klass.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("enter")  # the machines view's cursor is on s01
        await wait_until(pilot, lambda: isinstance(app.screen, SeatScreen), "its screen")
        await settle(pilot, app)
        await pilot.press("a")
        await wait_until(pilot, lambda: app.screen.query_one(
            "#seat-permissions", DataTable).row_count > 0, "the permissions")
        text = screen_text(app)
        assert "s01: IAM user labtui-tuiros-s01" in text
        rows = app.screen.query_one("#seat-permissions", DataTable)
        table = {str(rows.get_cell(key, "what")): str(rows.get_cell(key, "decision"))
                 for key in rows.rows}
        assert table["launch a machine"].startswith("denied"), table
        assert table["stop its own machine"] == "allowed", table
        assert table["write its own scratch (s3://tuiros-scratch/s01/)"] == "allowed"
        assert table["write a classmate's scratch (s3://tuiros-scratch/s02/)"].startswith(
            "denied")
        launch = next(line for line in text.splitlines() if "launch a machine" in line)
        assert "denied" in launch and "ec2:RunInstances" in launch


@pytest.fixture
def smtp() -> Iterator[Collect]:
    """A real SMTP server on 127.0.0.1 (a free port), without a login."""
    handler = Collect(set())
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port,
                            server_hostname="localhost")
    controller.start()
    handler.port = port  # type: ignore[attr-defined]
    try:
        yield handler
    finally:
        controller.stop()


async def test_m_mails_each_seat_its_card(klass: RosterClass, smtp: Collect,
                                          tmp_path: Path) -> None:
    path = tmp_path / "course.toml"
    path.write_text(klass.path.read_text() + f"""
[mail]
from = "instructor@example.edu"
smtp_host = "127.0.0.1"
smtp_port = {smtp.port}
starttls = false
""")  # type: ignore[attr-defined]
    app = klass.app(load(path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("2")
        await settle(pilot, app)
        await pilot.press("m")
        await wait_until(pilot, lambda: "Mail 2 cards, one per seat, to 2 students?"
                         in screen_text(app), "the modal")
        text = screen_text(app)
        assert f"SMTP 127.0.0.1:{smtp.port} (no TLS)" in text  # type: ignore[attr-defined]
        await pilot.press("y")
        await wait_until(pilot, lambda: "Mail: 2 of 2 card(s) sent." in log_text(app),
                         "the mail job")
        await settle(pilot, app)
        assert sorted(tuple(e.rcpt_tos) for e in smtp.envelopes) == [
            ("ada@example.edu",), ("grace@example.edu",)]
        # The roster says when each card went out.
        for student in ("s01", "s02"):
            assert cell(app, student, "handout").startswith("sent 20"), (
                student, cell(app, student, "handout"))
        assert "handouts sent 2/2" in app.main.view("roster").status_text
