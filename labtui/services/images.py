"""The course's baked images on AWS: made from a template machine, found by the digest of the
setup they hold, copied to the regions the class spans, listed with their snapshots, removed.

An image is tagged like everything of the course (``labtui:course``) plus
``labtui:setup-digest`` — the digest of what setup puts on every machine alike (the base
image, login user, packages, files and their contents, setup commands, the notebook
environment) — and its snapshots carry the same tags, so ``down --images`` and ``sweep``
find both. ``up`` with ``ami = "baked"`` uses the newest available image whose digest is the
course's now: an image of an older setup is *stale*, reported and never used.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from labtui.errors import InputError, LabError
from labtui.events import EventSink, LogLine, NullSink, Progress
from labtui.services import tags
from labtui.services.aws import Aws, translate_errors
from labtui.services.retries import retrying

if TYPE_CHECKING:
    from labtui.course import Course

DIGEST = "labtui:setup-digest"
SNAPSHOT_GB_MONTH = 0.05   # USD per GB-month of EBS snapshot storage (us-east-1 list price)
WAIT_EVERY = 3.0           # seconds between looks at a pending image


def setup_digest(course: Course) -> str:
    """What every machine's setup makes alike, as 16 hex digits."""
    cfg = course.machines
    assert cfg is not None
    spec: dict[str, Any] = {
        "ami": cfg.base_ami, "user": cfg.user, "packages": list(cfg.packages),
        "setup": list(cfg.setup),
        "files": [{"dest": f.dest, "mode": f.mode,
                   "sha256": hashlib.sha256(f.source.read_bytes()).hexdigest()}
                  for f in cfg.files]}
    jupyter = course.jupyter
    if jupyter is not None:
        for name in ("requirements", "environment"):
            path = getattr(jupyter, name, None)
            if path is not None:
                spec[f"jupyter_{name}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    text = json.dumps(spec, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class BakedImage:
    region: str
    image_id: str
    name: str
    state: str                       # pending | available | failed ...
    digest: str
    created: str
    snapshots: tuple[tuple[str, int], ...] = ()   # (snapshot id, GiB)
    copied_from: str = ""

    @property
    def size_gb(self) -> int:
        return sum(size for _, size in self.snapshots)

    @property
    def monthly_usd(self) -> float:
        return self.size_gb * SNAPSHOT_GB_MONTH

    def as_json(self, current: str | None = None) -> dict[str, Any]:
        return {"type": "image", "region": self.region, "image_id": self.image_id,
                "name": self.name, "state": self.state, "setup_digest": self.digest,
                "stale": current is not None and self.digest != current,
                "created": self.created, "copied_from": self.copied_from or None,
                "snapshots": [{"snapshot_id": sid, "size_gb": size}
                              for sid, size in self.snapshots],
                "size_gb": self.size_gb, "monthly_usd": round(self.monthly_usd, 4)}


def image_tags(course_id: str, digest: str, **extra: str) -> list[dict[str, str]]:
    return tags.tags(course_id, **extra) + [{"Key": DIGEST, "Value": digest}]


def course_images(aws: Aws, course_id: str, region: str) -> list[BakedImage]:
    """The course's baked images in ``region``, newest first."""
    found = retrying(f"ec2.DescribeImages (course {course_id}) in {region}", lambda: list(
        aws.paginate("ec2", region, "describe_images", "Images", Owners=["self"],
                     Filters=tags.course_filter(course_id)
                     + [{"Name": "tag-key", "Values": [DIGEST]}])))
    sizes: dict[str, int] = {}
    wanted = [m["Ebs"]["SnapshotId"] for image in found for m in image.get(
        "BlockDeviceMappings", []) if m.get("Ebs", {}).get("SnapshotId")]
    if wanted:
        for snap in retrying(f"ec2.DescribeSnapshots (course {course_id}) in {region}",
                             lambda: list(aws.paginate("ec2", region, "describe_snapshots",
                                                       "Snapshots", SnapshotIds=wanted))):
            sizes[snap["SnapshotId"]] = int(snap.get("VolumeSize") or 0)
    out = []
    for image in found:
        labels = tags.as_dict(image.get("Tags"))
        snaps = tuple((m["Ebs"]["SnapshotId"], sizes.get(m["Ebs"]["SnapshotId"],
                                                        int(m["Ebs"].get("VolumeSize") or 0)))
                      for m in image.get("BlockDeviceMappings", [])
                      if m.get("Ebs", {}).get("SnapshotId"))
        out.append(BakedImage(region, image["ImageId"], image.get("Name", ""),
                              image.get("State", "?"), labels.get(DIGEST, ""),
                              image.get("CreationDate", ""), snaps,
                              labels.get("labtui:copied-from", "")))
    return sorted(out, key=lambda i: i.created, reverse=True)


def newest(images: Iterable[BakedImage], digest: str) -> BakedImage | None:
    for image in images:   # newest first
        if image.digest == digest and image.state == "available":
            return image
    return None


def wait_available(aws: Aws, region: str, image_id: str, sink: EventSink | None = None, *,
                   timeout: float = 3600) -> None:
    """Until the image is available (progress on the sink every look); an image that
    fails raises with its state reason."""
    sink = sink or NullSink()
    started = time.monotonic()
    ec2 = aws.client("ec2", region)
    while True:
        with translate_errors(f"ec2.DescribeImages {image_id} in {region}"):
            images = ec2.describe_images(ImageIds=[image_id])["Images"]
        state = images[0].get("State", "pending") if images else "pending"
        elapsed = time.monotonic() - started
        if state == "available":
            sink.emit(Progress(f"image {image_id}", 1, 1))
            sink.emit(LogLine(f"image {image_id} in {region}: available ({elapsed:.0f} s)"))
            return
        if state in ("failed", "invalid", "deregistered", "error"):
            reason = images[0].get("StateReason", {}).get("Message", "") if images else ""
            raise LabError(f"image {image_id} in {region} is {state}"
                           + (f": {reason}" if reason else "")
                           + ". Fix: run `labtui bake` again")
        sink.emit(Progress(f"image {image_id}", 0, 1))
        sink.emit(LogLine(f"image {image_id} in {region}: {state} ({elapsed:.0f} s)"))
        if elapsed > timeout:
            raise LabError(f"image {image_id} in {region} is still {state} after "
                           f"{timeout:.0f} s. Fix: look at it in the EC2 console; rerun "
                           "`labtui bake` (it uses the image once it is available)")
        time.sleep(WAIT_EVERY)


def create(aws: Aws, course: Course, region: str, instance_id: str, digest: str,
           sink: EventSink | None = None) -> str:
    """An image of the (stopped) template machine, tagged with its snapshots."""
    name = f"labtui-{course.id}-{digest}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    labels = image_tags(course.id, digest)
    with translate_errors(f"ec2.CreateImage of {instance_id} in {region}"):
        image_id = aws.client("ec2", region).create_image(
            InstanceId=instance_id, Name=name,
            Description=f"labtui course {course.id}, setup {digest}",
            TagSpecifications=[{"ResourceType": kind, "Tags": labels}
                               for kind in ("image", "snapshot")])["ImageId"]
    (sink or NullSink()).emit(LogLine(f"image {image_id} ({name}) in {region}: created"))
    return image_id


def copy_to(aws: Aws, course: Course, source: BakedImage, region: str,
            sink: EventSink | None = None) -> str:
    """A copy of ``source`` in ``region``, tagged (the image and its snapshots) as the
    source, waited for."""
    sink = sink or NullSink()
    with translate_errors(f"ec2.CopyImage {source.image_id} {source.region} -> {region}"):
        ec2 = aws.client("ec2", region)
        image_id = ec2.copy_image(SourceImageId=source.image_id, SourceRegion=source.region,
                                  Name=source.name,
                                  Description=f"labtui course {course.id}, setup "
                                              f"{source.digest} (from {source.region})")["ImageId"]
    sink.emit(LogLine(f"image {source.image_id}: copying to {region} as {image_id}"))
    labels = image_tags(course.id, source.digest, **{"labtui:copied-from":
                                                     f"{source.region}/{source.image_id}"})
    with translate_errors(f"ec2.CreateTags {image_id} in {region}"):
        ec2.create_tags(Resources=[image_id], Tags=labels)
    wait_available(aws, region, image_id, sink)
    with translate_errors(f"ec2.DescribeImages {image_id} in {region}"):
        image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
    snapshots = [m["Ebs"]["SnapshotId"] for m in image.get("BlockDeviceMappings", [])
                 if m.get("Ebs", {}).get("SnapshotId")]
    if snapshots:
        with translate_errors(f"ec2.CreateTags {', '.join(snapshots)} in {region}"):
            ec2.create_tags(Resources=snapshots, Tags=labels)
    return image_id


def remove(aws: Aws, image: BakedImage, sink: EventSink | None = None) -> None:
    """Deregister the image, then delete its snapshots (AWS keeps them otherwise)."""
    ec2 = aws.client("ec2", image.region)
    retrying(f"ec2.DeregisterImage {image.image_id} in {image.region}",
             lambda: ec2.deregister_image(ImageId=image.image_id))
    for snapshot_id, _size in image.snapshots:
        retrying(f"ec2.DeleteSnapshot {snapshot_id} in {image.region}",
                 partial(ec2.delete_snapshot, SnapshotId=snapshot_id))
    (sink or NullSink()).emit(LogLine(
        f"image {image.image_id} in {image.region}: deregistered, "
        f"{len(image.snapshots)} snapshot(s) deleted"))


def baked_image_id(aws: Aws, course: Course, region: str) -> str:
    """The image ``up`` launches in ``region`` for ``ami = "baked"``: the newest one of the
    course's current setup. None there yet, or only stale ones: one message with the fix."""
    digest = setup_digest(course)
    found = course_images(aws, course.id, region)
    image = newest(found, digest)
    if image is None:
        raise missing(course, region, found, digest)
    return image.image_id


def missing(course: Course, region: str, found: Iterable[BakedImage],
            digest: str) -> InputError:
    stale = [i.image_id for i in found if i.digest != digest]
    why = (f"its images there are of an older setup ({', '.join(stale)}; the setup changed "
           f"since: digest {digest})" if stale else "it has no baked image there yet")
    return InputError(f"{course.path}: machines.ami = \"baked\" but {why} in {region}. Fix: "
                      f"run `labtui bake {course.path.name}` (up copies the image to the "
                      "other regions)")
