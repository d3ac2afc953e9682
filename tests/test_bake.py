"""Baked images (issue 14 items 1 and 4) on the sandbox's real machines: `labtui bake` sets
up a template machine once, cleans it, images it (image and snapshots tagged with the course
and the setup's digest) and terminates it; `up` with ami = "baked" boots every seat from it
— the files the setup made are there and the seat's setup log says which steps the image
already had —; a changed setup makes the image stale (listed as such, never used: up refuses
with the fix, nothing created); `up` copies the image to a region that lacks it; `down
--images` leaves no image or snapshot of the course."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labtui import imageops, lifecycle
from labtui.course import load
from labtui.errors import InputError
from labtui.services import images, machines, tags

from .courses import write_course

SETUP = ('setup = ["sudo mkdir -p /opt/course && echo baked-$((6*7)) | '
         'sudo tee /opt/course/marker", "touch ~/from-setup"]')


def cli(capsys, *args: str) -> tuple[int, str, str]:
    from labtui.cli import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def baked_course(tmp_path: Path, setup: str = SETUP) -> Path:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "notes.txt").write_text("read me\n")
    return write_course(tmp_path, "bake", students=2, regions=("us-east-1", "eu-west-1"),
                        machines=f'ami = "baked"\nbake_from = "ubuntu-24.04"\n{setup}\n'
                                 '[[machines.files]]\nsource = "notes.txt"\n'
                                 'dest = "~/notes.txt"\n')


def course_images_everywhere(ctx, course_id: str) -> list:
    return [i for region in ("us-east-1", "eu-west-1")
            for i in images.course_images(ctx.aws, course_id, region)]


def tagged_snapshots(ctx, course_id: str, region: str) -> list[dict]:
    return ctx.aws.client("ec2", region).describe_snapshots(
        OwnerIds=["self"], Filters=tags.course_filter(course_id))["Snapshots"]


@pytest.mark.timeout(400)
def test_bake_then_up_from_the_image(ctx, sandbox_state, tmp_path, capsys) -> None:
    path = baked_course(tmp_path)
    course = load(path)
    digest = images.setup_digest(course)

    # Before a bake, up refuses with the fix and makes nothing.
    with pytest.raises(InputError, match="no baked image there yet.*labtui bake"):
        lifecycle.up(ctx, course)
    assert lifecycle.discover(ctx, course).machines == ()

    code, out, err = cli(capsys, "bake", str(path), "--sandbox", "--json")
    assert code == 0, err
    baked = json.loads(out.splitlines()[-1])  # after the events, the result
    assert baked["reused"] is False and baked["state"] == "available"
    assert baked["setup_digest"] == digest and baked["region"] == "us-east-1"
    image_id = baked["image_id"]
    ec2 = ctx.aws.client("ec2", "us-east-1")
    image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
    labels = tags.as_dict(image["Tags"])
    assert labels[tags.COURSE] == "bake" and labels[images.DIGEST] == digest
    snapshots = [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if "Ebs" in m]
    assert snapshots
    assert {s["SnapshotId"] for s in tagged_snapshots(ctx, "bake", "us-east-1")} \
        >= set(snapshots)
    # the template is gone; its log says what the image holds and that it was cleaned
    template = [r["Instances"][0] for r in ec2.describe_instances(Filters=[
        *tags.course_filter("bake"), {"Name": "tag:labtui:role", "Values": ["bake"]}])[
            "Reservations"]]
    assert template and all(i["State"]["Name"] in ("shutting-down", "terminated")
                            for i in template)
    bake_log = (ctx.state.course("bake").logs / "bake.log").read_text()
    assert "cleaned for imaging: 2 step(s) recorded" in bake_log
    # a second bake of the same setup reuses the image
    code, out, err = cli(capsys, "bake", str(path), "--sandbox")
    assert code == 0 and f"\nreused {image_id} in us-east-1" in out, (out, err)

    # up: every seat boots from the image; the setup's files are there; the log says so.
    result = lifecycle.up(ctx, course, setup_wait=90)
    assert sorted(result.set_up) == ["s01", "s02"], result.setup_failed
    found = lifecycle.discover(ctx, course).machines
    assert {m.raw["ImageId"] for m in found} == {image_id}
    outcomes = lifecycle.exec_command(ctx, course, ["s01"],
                                      "cat /opt/course/marker; ls ~/from-setup ~/notes.txt; "
                                      "ls /etc/ssh/ssh_host_ed25519_key.pub")
    assert [o.value for o in outcomes] == [0], outcomes
    seat_log = (ctx.state.course("bake").logs / "s01.log").read_text()
    assert seat_log.count("(already done: in the image)") == 2, seat_log
    # the template's host key did not travel: each seat has its own, pinned by up (and the
    # exec above logged in with strict host-key checking against it)
    pinned = machines.KnownHosts(ctx.state.course("bake")).all()
    seat_keys = {pinned[m.instance_id] for m in found}
    assert len(seat_keys) == 2 and pinned[template[0]["InstanceId"]] not in seat_keys

    # The setup changes: the image is stale — listed so, never used.
    changed = load(baked_course(tmp_path / "v2", SETUP.replace("from-setup", "from-v2")))
    code, out, err = cli(capsys, "images", str(changed.path), "--sandbox", "--json")
    assert code == 0, err
    listed = [json.loads(line) for line in out.splitlines()]
    assert [(i["image_id"], i["stale"]) for i in listed] == [(image_id, True)]
    assert listed[0]["size_gb"] > 0 and listed[0]["monthly_usd"] > 0
    with pytest.raises(InputError, match="older setup"):
        imageops.ensure(ctx, changed, ["us-east-1"])

    # A region the class reaches without an image gets a copy, tagged.
    copies = imageops.ensure(ctx, course, ["us-east-1", "eu-west-1"])
    assert copies["us-east-1"] == image_id and copies["eu-west-1"] != image_id
    copy = ctx.aws.client("ec2", "eu-west-1").describe_images(
        ImageIds=[copies["eu-west-1"]])["Images"][0]
    assert tags.as_dict(copy["Tags"])[images.DIGEST] == digest
    assert imageops.ensure(ctx, course, ["eu-west-1"]) == {"eu-west-1": copies["eu-west-1"]}

    # down keeps the images (and says so); down --images removes them and their snapshots.
    code, out, err = cli(capsys, "down", str(path), "--sandbox", "--yes", "--no-save")
    assert code == 0, (out, err)
    assert "kept 2 baked image(s)" in out + err
    assert f"kept — us-east-1 image {image_id}: baked, for the next term" in out
    assert "verified: nothing of bake is left but what is kept above." in out
    assert len(course_images_everywhere(ctx, "bake")) == 2
    code, out, err = cli(capsys, "down", str(path), "--sandbox", "--yes", "--no-save",
                         "--images")
    assert code == 0, (out, err)
    assert course_images_everywhere(ctx, "bake") == []
    for region in ("us-east-1", "eu-west-1"):
        assert tagged_snapshots(ctx, "bake", region) == []
        left = ctx.aws.client("ec2", region).describe_images(
            Owners=["self"], Filters=tags.course_filter("bake"))["Images"]
        assert left == []
