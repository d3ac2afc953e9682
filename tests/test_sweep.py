"""sweep on the sandbox: leftovers planted by the test are found in every region (labtui's
with their course, untagged idle ones as "untagged"), deleted with --yes (labtui's) and
--include-untagged (the rest), and a sweep afterwards finds nothing; the sweep view shows the
same rows and deletes a marked one through the confirmation."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from labtui.app import LabApp
from labtui.screens.confirm import ConfirmModal
from labtui.services import sweep, tags
from labtui.state import StateDir

from .courses import write_course
from .test_cli import json_lines, run
from .test_tui import screen_text, settle

ZONE = "us-east-1a"
SECOND = "eu-west-1"


def plant(ctx) -> dict[str, tuple[str, str]]:
    """Leftovers of two courses and two untagged idle resources: id -> (kind, course)."""
    ec2 = ctx.aws.client("ec2", "us-east-1")
    out: dict[str, tuple[str, str]] = {}

    def spec(kind: str, course: str) -> list[dict]:
        return [{"ResourceType": kind, "Tags": tags.tags(course)}]

    volume = ec2.create_volume(Size=8, AvailabilityZone=ZONE,
                               TagSpecifications=spec("volume", "sweep-a"))
    out[volume["VolumeId"]] = ("volume", "sweep-a")
    spot = ec2.request_spot_instances(
        SpotPrice="0.02", LaunchSpecification={"ImageId": "ami-12345678",
                                               "InstanceType": "t3.nano"},
        TagSpecifications=spec("spot-instances-request", "sweep-a"))
    out[spot["SpotInstanceRequests"][0]["SpotInstanceRequestId"]] = ("spot-request", "sweep-a")
    address = ec2.allocate_address(Domain="vpc", TagSpecifications=spec("elastic-ip",
                                                                        "sweep-a"))
    out[address["AllocationId"]] = ("address", "sweep-a")
    bare_volume = ec2.create_volume(Size=20, AvailabilityZone=ZONE)
    out[bare_volume["VolumeId"]] = ("volume", sweep.UNTAGGED)
    bare_address = ec2.allocate_address(Domain="vpc")
    out[bare_address["AllocationId"]] = ("address", sweep.UNTAGGED)
    # Another course, in a second region: a volume and an EMR cluster kept alive.
    other = ctx.aws.client("ec2", SECOND)
    other_volume = other.create_volume(Size=4, AvailabilityZone=f"{SECOND}a",
                                       TagSpecifications=spec("volume", "sweep-b"))
    out[other_volume["VolumeId"]] = ("volume", "sweep-b")
    cluster = ctx.aws.client("emr", SECOND).run_job_flow(
        Name="left-behind", ReleaseLabel="emr-7.2.0", JobFlowRole="EMR_EC2_DefaultRole",
        ServiceRole="EMR_DefaultRole", Tags=tags.tags("sweep-b"),
        Instances={"MasterInstanceType": "m5.xlarge", "InstanceCount": 1,
                   "KeepJobFlowAliveWhenNoSteps": True})
    out[cluster["JobFlowId"]] = ("emr-cluster", "sweep-b")
    return out


def sweep_cli(*extra: str) -> tuple[int, list[dict]]:
    done = run("sweep", "--sandbox", "--json", *extra, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json_lines(done.stdout)


def findings_of(lines: list[dict]) -> dict[str, dict]:
    found = [line for line in lines if line["type"] == "finding"]
    ids = [line["id"] for line in found]
    assert len(ids) == len(set(ids)), f"reported twice: {ids}"
    return {line["id"]: line for line in found}


@pytest.mark.timeout(300)  # a whole journey, several boots: 120 s bounds one step
def test_sweep_finds_the_leftovers_and_removes_them(ctx, capsys) -> None:
    planted = plant(ctx)

    started = time.monotonic()
    code, lines = sweep_cli()
    wall = time.monotonic() - started
    [summary] = [line for line in lines if line["type"] == "summary"]
    with capsys.disabled():
        print(f"\nsweep of {summary['regions']} sandbox regions: {summary['seconds']:.2f} s "
              f"in the sweep, {wall:.2f} s for the whole `labtui sweep` process")
    assert code == 1  # a dry run that found something
    found = findings_of(lines)
    for rid, (kind, course) in planted.items():
        assert rid in found, f"{kind} {rid} of {course} not found"
        assert (found[rid]["kind"], found[rid]["course"]) == (kind, course)
    assert set(found) == set(planted)  # nothing else: moto's own snapshots/images/VPCs
    assert summary["found"] == len(planted) and summary["untagged"] == 2
    assert summary["regions"] > 10 and not summary["unread_regions"]
    assert found[next(r for r, (k, _) in planted.items() if k == "address")][
        "monthly_usd"] == 3.65
    assert all(line["delete"].startswith("aws --region ") for line in found.values())
    assert summary["monthly_usd"] > 0

    # --yes: labtui's own go; the untagged stay.
    code, lines = sweep_cli("--yes")
    assert code == 0, lines
    removed = {line["id"] for line in lines if line["type"] == "removed"}
    assert removed == {rid for rid, (_, course) in planted.items()
                       if course != sweep.UNTAGGED}
    code, lines = sweep_cli()
    assert set(findings_of(lines)) == {rid for rid, (_, course) in planted.items()
                                       if course == sweep.UNTAGGED}

    # --include-untagged: the rest, --yes answering the question (no terminal).
    code, lines = sweep_cli("--include-untagged", "--yes")
    assert code == 0, lines
    assert {line["id"] for line in lines if line["type"] == "removed"} == {
        rid for rid, (_, course) in planted.items() if course == sweep.UNTAGGED}
    code, lines = sweep_cli()
    assert code == 0 and not findings_of(lines)
    # the spot request's machine went with it
    ec2 = ctx.aws.client("ec2", "us-east-1")
    live = [i for r in ec2.describe_instances(Filters=[{
        "Name": "instance-state-name", "Values": ["pending", "running", "stopped"]}])[
        "Reservations"] for i in r["Instances"]]
    assert not live


def test_sweep_human_table_and_untagged_question(ctx) -> None:
    ec2 = ctx.aws.client("ec2", "us-east-1")
    volume = ec2.create_volume(Size=10, AvailabilityZone=ZONE)["VolumeId"]
    done = run("sweep", "--sandbox", "--regions", "us-east-1")
    assert done.returncode == 1
    assert "region" in done.stdout and "$/month" in done.stdout
    assert f"us-east-1       volume            {volume}" in done.stdout
    assert "total: 1 found (0 labtui, 1 untagged) in 1 region(s), about $1.00/month" \
        in done.stdout
    # Untagged without a terminal: --yes is the only answer.
    done = run("sweep", "--sandbox", "--regions", "us-east-1", "--include-untagged")
    assert done.returncode == 2
    assert "Delete 1 resource(s) (0 labtui, 1 untagged) in 1 region(s), about $1.00/month" \
        in done.stderr and "Fix: add --yes" in done.stderr
    assert ec2.describe_volumes(VolumeIds=[volume])["Volumes"]


def test_bad_regions_is_one_line_with_a_fix() -> None:
    done = run("sweep", "--regions", "xx-nowhere-1")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "'xx-nowhere-1' is not an AWS region" in lines[0]
    assert "Fix:" in lines[0] and "Traceback" not in done.stderr


def test_moto_default_snapshots_are_not_orphans(ctx) -> None:
    """~1,200 default snapshots per region back moto's images and belong to other
    accounts; a snapshot of ours whose volume is gone is an orphan."""
    ec2 = ctx.aws.client("ec2", "us-east-1")
    volume = ec2.create_volume(Size=2, AvailabilityZone=ZONE)["VolumeId"]
    snapshot = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    kept = ec2.create_snapshot(VolumeId=ec2.create_volume(
        Size=3, AvailabilityZone=ZONE)["VolumeId"])["SnapshotId"]
    ec2.delete_volume(VolumeId=volume)
    result = sweep.scan(ctx.aws, ["us-east-1"])
    snapshots = [f.id for f in result.findings if f.kind == "snapshot"]
    assert snapshots == [snapshot] and kept not in snapshots


# -- the console's sweep view -----------------------------------------------------------------

async def test_sweep_view_shows_rows_and_deletes_a_marked_one(ctx, sandbox_state: StateDir,
                                                              tmp_path: Path) -> None:
    planted = plant(ctx)
    path = write_course(tmp_path, "sweeptui")
    from labtui.course import load

    app = LabApp(load(path), sandbox=True, state_dir=str(sandbox_state.root),
                 refresh_every=None)
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot, app)
        view = app.main.view("sweep")
        assert view.loaded_at is None  # not swept on connect
        await pilot.press("6")
        await settle(pilot, app)
        rows = view.rows
        keys = {str(k.value).split("/", 1)[1] for k in rows.rows}
        assert keys == set(planted)
        shown = screen_text(app)
        assert "6 Sweep" in shown and "sweep-b" in shown and "untagged" in shown
        assert "7 found (5 labtui, 2 untagged)" in view.status_text

        target = next(rid for rid, (kind, course) in planted.items()
                      if kind == "volume" and course == sweep.UNTAGGED)
        key = f"us-east-1/{target}"
        rows.move_cursor(row=rows.get_row_index(key))
        await pilot.press("space")
        await pilot.press("D")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal)
        assert "Delete 1 resource(s), about $2.00/month?" in screen_text(app)
        await pilot.press("y")
        await settle(pilot, app)
        assert key not in rows.rows
        assert rows.row_count == len(planted) - 1
        ec2 = ctx.aws.client("ec2", "us-east-1")
        assert not [v for v in ec2.describe_volumes()["Volumes"] if v["VolumeId"] == target]
        assert "sweep: deleted 1 of 1" in "\n".join(s.text for s in app.main.log_pane.lines)


@pytest.mark.parametrize("seconds,text", [(30, "0m"), (7200, "2h"), (3 * 86400, "3d"),
                                          (None, "?")])
def test_age_text(seconds, text) -> None:
    assert sweep.age_text(seconds) == text
