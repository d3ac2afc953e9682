"""The sandbox plays images: CreateImage captures a machine's disk, an instance launched from
the image boots with those files (and the source image's login user), CopyImage carries it
to another region, DeregisterImage and DeleteSnapshot leave nothing behind; moto records one
tagged snapshot per volume, as AWS does.

Driven with boto3 against the session sandbox, machines reached over SSH as a user would
(the ``launch`` fixture and ``Seat`` of test_sandbox_machines).
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import time
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from labtui.sandbox import flavors, images
from labtui.sandbox.container import runtime_problem
from labtui.services import cloudinit, ssh
from labtui.services.hostkeys import HostKey

from .test_sandbox_machines import Seat, launch  # noqa: F401  (launch: the fixture)

pytestmark = pytest.mark.skipif(runtime_problem() is not None,
                                reason=f"no sandbox machines here: {runtime_problem()}")
DEBIAN = flavors.FLAVORS["debian-12"]  # login user "admin", root device /dev/xvda
TAGS = [{"Key": "labtui:course", "Value": "bakery"}]


def wait_until(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def run_on(client, command: str) -> tuple[int, list[str]]:
    out: list[str] = []
    status = ssh.run(client, command, timeout=120,
                     on_line=lambda stream, text: out.append(text) if stream == "stdout"
                     else None)
    return status, out


# ------------------------------------------------------------------ layers, without machines


def test_a_captured_layer_keeps_files_owners_links_and_whiteouts_only(tmp_path):
    upper = tmp_path / "upper"
    (upper / "opt/baked").mkdir(parents=True)
    (upper / "opt/baked/hello").write_text("hello\n")
    os.chown(upper / "opt/baked/hello", 1000, 1000)
    os.chmod(upper / "opt/baked/hello", 0o640)
    (upper / "opt/baked/link").symlink_to("hello")
    (upper / "etc").mkdir()
    os.mknod(upper / "etc/motd", stat.S_IFCHR | 0o000, os.makedev(0, 0))  # a whiteout
    os.mknod(upper / "etc/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a real device
    (upper / "srv").mkdir()
    os.setxattr(upper / "srv", "trusted.overlay.opaque", b"y")
    os.setxattr(upper / "opt/baked/hello", "trusted.overlay.origin", b"\x00\xfb")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(upper / "opt/baked/sock"))
    seed = upper / "var/lib/cloud/seed/nocloud"
    seed.mkdir(parents=True)
    (seed / "user-data").write_text("#cloud-config\n{\"ssh_keys\": \"the old machine's\"}\n")
    (upper / "var/lib/cloud/kept").write_text("kept\n")

    layer = tmp_path / "layer"
    images.copy_layer(upper, layer)

    hello = layer / "opt/baked/hello"
    assert hello.read_text() == "hello\n"
    info = os.stat(hello)
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (1000, 1000, 0o640)
    assert os.readlink(layer / "opt/baked/link") == "hello"
    motd = os.lstat(layer / "etc/motd")
    assert stat.S_ISCHR(motd.st_mode) and motd.st_rdev == 0
    assert not (layer / "etc/null").exists() and not (layer / "opt/baked/sock").exists()
    assert os.getxattr(layer / "srv", "trusted.overlay.opaque") == b"y"
    assert "trusted.overlay.origin" not in os.listxattr(hello)
    assert not (layer / "var/lib/cloud/seed/nocloud/user-data").exists()
    assert (layer / "var/lib/cloud/kept").read_text() == "kept\n"

    # stacked as a machine's disk is (own mount namespace: the host sees no mount), the
    # image's layer wins over what is under it and its whiteout hides the file below
    base = tmp_path / "base"
    (base / "etc").mkdir(parents=True)
    (base / "etc/motd").write_text("base motd\n")
    (base / "etc/issue").write_text("base issue\n")
    (base / "srv").mkdir()
    (base / "srv/under").write_text("hidden by the opaque folder\n")
    (base / "opt/baked").mkdir(parents=True)
    (base / "opt/baked/hello").write_text("base hello\n")
    linked = tmp_path / "linked"
    images.link_tree(layer, linked)  # what an instance of the image gets
    assert os.stat(linked / "opt/baked/hello").st_ino == info.st_ino
    for name in ("upper2", "work", "merged"):
        (tmp_path / name).mkdir()
    script = (f"mount -t overlay overlay -o lowerdir={linked}:{base},upperdir="
              f"{tmp_path / 'upper2'},workdir={tmp_path / 'work'} {tmp_path / 'merged'} && "
              f"cd {tmp_path / 'merged'} && cat opt/baked/hello etc/issue && ls srv && "
              "(test -e etc/motd && echo motd-there || echo motd-gone)")
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           script], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["hello", "base issue", "motd-gone"]


def test_a_machine_is_paused_while_its_disk_is_copied(tmp_path):
    """Every process of the machine's PID namespace stops for the copy, then goes on."""
    log = tmp_path / "log"
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--kill-child", "sh", "-c",
         f"(while :; do echo x >> {log}; sleep 0.02; done) & wait"],
        stdin=subprocess.DEVNULL)
    try:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        init = int(wait_until(lambda: children.read_text().split(), 10)[0])
        assert wait_until(lambda: log.exists() and log.stat().st_size > 0, 10)
        with images.paused(init):
            size = log.stat().st_size
            time.sleep(0.3)
            assert log.stat().st_size == size
        assert wait_until(lambda: log.stat().st_size > size, 10)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_the_store_forgets_images_moto_does_not_know(tmp_path):
    store = images.ImageStore(tmp_path / "images")
    for region, ami in (("us-east-1", "ami-0aaa"), ("us-east-1", "ami-0bbb"),
                        ("eu-west-1", "ami-0ccc")):
        folder = store.path(region, ami)
        (folder / "layers" / "0").mkdir(parents=True)
        (folder / "image.json").write_text(json.dumps({
            "flavor": images.flavor_json(DEBIAN), "layers": 1}))
    (store.root / "us-east-1" / ".ami-0ddd.123").mkdir()  # a capture cut short
    gone = store.prune(lambda region, ami: ami == "ami-0bbb", scan=True)
    assert gone == ["eu-west-1/ami-0ccc", "us-east-1/ami-0aaa"]
    assert sorted(p.name for p in (store.root / "us-east-1").iterdir()) == ["ami-0bbb"]
    assert not (store.root / "eu-west-1").exists()
    kept = store.resolve("us-east-1", "ami-0bbb")
    assert kept.flavor.user == "admin"
    assert kept.layers == (store.path("us-east-1", "ami-0bbb") / "layers" / "0",)
    assert store.resolve("us-east-1", "ami-0aaa").flavor == flavors.DEFAULT


def test_a_copy_of_a_plain_image_keeps_its_user_and_a_reset_forgets_it(sandbox,
                                                                         sandbox_state):
    west = boto3.client("ec2", "eu-west-1", endpoint_url=sandbox.endpoint_url)
    copy = west.copy_image(SourceImageId=DEBIAN.image_id, SourceRegion="us-east-1",
                           Name="debian-copy")["ImageId"]
    image = west.describe_images(ImageIds=[copy])["Images"][0]
    assert (image["RootDeviceName"], image["Architecture"]) == ("/dev/xvda", "x86_64")
    folder = sandbox.folder / "images" / "eu-west-1" / copy
    record = json.loads((folder / "image.json").read_text())
    assert record["flavor"]["user"] == "admin" and record["layers"] == 0
    assert stat.S_IMODE(os.stat(sandbox.folder / "images").st_mode) == 0o700

    sandbox.reset()  # moto forgets every AMI: the store follows on the manager's next pass
    assert wait_until(lambda: not folder.exists()), "the layer of a forgotten AMI stayed"


# ------------------------------------------------------------------ the real path


def snapshot_of(image: dict) -> dict:
    [mapping] = image["BlockDeviceMappings"]
    return mapping


@pytest.mark.timeout(300)
def test_an_image_of_a_machine_boots_with_its_files_everywhere_it_is_copied(
        launch, sandbox, tmp_path):  # noqa: F811
    ec2 = boto3.client("ec2", "us-east-1", endpoint_url=sandbox.endpoint_url)
    west = boto3.client("ec2", "eu-west-1", endpoint_url=sandbox.endpoint_url)
    source = launch(image=DEBIAN.image_id)
    assert source.user == "admin"

    # The baker: a file, a base file deleted (a whiteout), the host keys cleaned away.
    client = source.connect()
    try:
        status, out = run_on(client, (
            "sudo cloud-init status --wait >/dev/null; sudo mkdir -p /opt/baked && "
            "echo hello | sudo tee /opt/baked/hello >/dev/null && sudo rm /etc/issue && "
            "sudo rm -f /etc/ssh/ssh_host_* && echo prepared"))
        assert (status, out) == (0, ["prepared"])
        ami = ec2.create_image(
            InstanceId=source.id, Name="bakery-image", NoReboot=True,
            TagSpecifications=[{"ResourceType": "image", "Tags": TAGS},
                               {"ResourceType": "snapshot", "Tags": TAGS}])["ImageId"]
        ec2.get_waiter("image_available").wait(
            ImageIds=[ami], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        # captured running, its processes paused for the copy: it goes on afterwards
        assert run_on(client, "cat /opt/baked/hello") == (0, ["hello"])
    finally:
        client.close()

    image = ec2.describe_images(ImageIds=[ami])["Images"][0]
    assert image["State"] == "available" and image["Tags"] == TAGS
    assert (image["RootDeviceName"], image["RootDeviceType"], image["Architecture"]) == \
        (DEBIAN.root_device, "ebs", DEBIAN.architecture)
    mapping = snapshot_of(image)
    assert mapping["DeviceName"] == DEBIAN.root_device
    [snapshot] = ec2.describe_snapshots(SnapshotIds=[mapping["Ebs"]["SnapshotId"]])["Snapshots"]
    assert snapshot["Tags"] == TAGS and snapshot["VolumeSize"] == mapping["Ebs"]["VolumeSize"]
    assert snapshot["VolumeSize"] > 0
    store = sandbox.folder / "images"
    layer = store / "us-east-1" / ami / "layers" / "0"
    assert (layer / "opt/baked/hello").read_text() == "hello\n"
    assert not (layer / "var/lib/cloud/seed/nocloud/user-data").exists()
    record = json.loads((store / "us-east-1" / ami / "image.json").read_text())
    assert record["source_instance"] == source.id and record["flavor"]["user"] == "admin"

    # An instance of the image: the files, the source's login user (no "ubuntu", the
    # sandbox's default), a new instance for cloud-init and its own pinned host key.
    baked = launch(image=ami)
    baked.user = "admin"
    status, out, err = baked.run(
        "sudo cloud-init status --wait | tail -1; cat /opt/baked/hello; id -un; "
        "getent passwd ubuntu || echo no-ubuntu; test -e /etc/issue || echo no-issue; "
        "ls /etc/ssh | grep host_; cat /var/lib/cloud/data/instance-id")
    assert status == 0, err
    assert out.splitlines() == ["status: done", "hello", "admin", "no-ubuntu", "no-issue",
                                "ssh_host_ed25519_key", "ssh_host_ed25519_key.pub", baked.id]

    # An image of that machine, stopped (as labtui's bake images its template), stacks its
    # own layer on the layers it was launched from.
    ec2.stop_instances(InstanceIds=[baked.id])
    assert wait_until(lambda: baked.id not in json.loads(sandbox.hosts_file.read_text()), 60)
    second = ec2.create_image(InstanceId=baked.id, Name="bakery-second")
    second = second["ImageId"]
    record = json.loads((store / "us-east-1" / second / "image.json").read_text())
    assert (record["layers"], record["flavor"]["user"]) == (2, "admin")
    layers = store / "us-east-1" / second / "layers"
    assert (layers / "1/opt/baked/hello").read_text() == "hello\n"
    assert not (layers / "0/opt/baked/hello").exists()  # never written by the second machine
    assert (layers / "0/var/lib/cloud/data/instance-id").read_text().strip() == baked.id
    second_snapshot = snapshot_of(ec2.describe_images(ImageIds=[second])["Images"][0])
    ec2.deregister_image(ImageId=second)
    ec2.delete_snapshot(SnapshotId=second_snapshot["Ebs"]["SnapshotId"])
    assert not (store / "us-east-1" / second).exists()

    # CopyImage to another region; an instance there boots with the files too.
    copy = west.copy_image(SourceImageId=ami, SourceRegion="us-east-1",
                           Name="bakery-image")["ImageId"]
    assert copy != ami
    west.get_waiter("image_available").wait(
        ImageIds=[copy], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    copied = west.describe_images(ImageIds=[copy])["Images"][0]
    copied_snapshot = snapshot_of(copied)["Ebs"]["SnapshotId"]
    assert copied["RootDeviceName"] == DEBIAN.root_device
    assert copied_snapshot != mapping["Ebs"]["SnapshotId"]
    assert west.describe_snapshots(SnapshotIds=[copied_snapshot])["Snapshots"]
    west.import_key_pair(KeyName="course",
                         PublicKeyMaterial=source.course_key.public_line.encode())
    host = HostKey.generate()
    reply = west.run_instances(
        ImageId=copy, MinCount=1, MaxCount=1, KeyName="course", InstanceType="t3.small",
        UserData=cloudinit.user_data(host.private_openssh(), host.public_line))
    there = Seat(sandbox, west, reply["Instances"][0]["InstanceId"], host.public_line,
                 source.course_key, "admin")
    status, out, err = there.run("cat /opt/baked/hello; id -un")
    assert (status, out.splitlines()) == (0, ["hello", "admin"]), err

    # Deregistered and its snapshots deleted: nothing is left of either image...
    with pytest.raises(ClientError, match="InvalidSnapshot.InUse"):
        ec2.delete_snapshot(SnapshotId=mapping["Ebs"]["SnapshotId"])
    ec2.deregister_image(ImageId=ami)
    west.deregister_image(ImageId=copy)
    ec2.delete_snapshot(SnapshotId=mapping["Ebs"]["SnapshotId"])
    west.delete_snapshot(SnapshotId=copied_snapshot)
    assert not (store / "us-east-1" / ami).exists() and not (store / "eu-west-1" / copy).exists()
    for client_, image_id, snapshot_id in ((ec2, ami, mapping["Ebs"]["SnapshotId"]),
                                           (west, copy, copied_snapshot)):
        assert image_id not in {i["ImageId"] for i in
                                client_.describe_images(Owners=["self"])["Images"]}
        assert snapshot_id not in {s["SnapshotId"] for s in
                                   client_.describe_snapshots(OwnerIds=["self"])["Snapshots"]}

    # ...but the instances launched from them run on, through a reboot too: their disks
    # are their own, as an EBS volume made from a snapshot is.
    west.reboot_instances(InstanceIds=[there.id])
    assert wait_until(lambda: "rebooting" in (there.sandbox.folder / "instances" / there.id
                                             / "console.log").read_text(), 60)
    assert there.run("cat /opt/baked/hello")[:2] == (0, "hello")
