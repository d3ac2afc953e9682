"""Baked images for both front ends: ``bake`` (a template machine set up once and imaged),
``ensure`` (``up``'s image in every region it launches in, copied there when missing),
``images`` (what exists, with snapshots and $/month, stale ones marked) and ``remove``
(``down --images``).

The bake: one machine from ``machines.bake_from`` in the course's first region, tagged with
the course and ``labtui:role = bake`` (no seat: no view takes it for one), the course-wide
setup over SSH (``setup.course_steps``: packages, files, setup commands — never a seat's
password, key, AWS keys or notebook token), then cleaned for imaging: the steps it holds
listed in ``/etc/labtui/baked`` (so a seat's setup log says "already done: in the image"),
``cloud-init clean --logs --seed`` (its user-data held the template's host key), host keys,
authorized keys, shell histories and logs removed. Then it is stopped, imaged (image and
snapshots tagged with the course and the setup's digest), the image waited for with
progress, recorded in the course's state folder (``images.json``), and the template
terminated — also when a step failed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from labtui import lifecycle
from labtui.context import Context
from labtui.course import Course
from labtui.errors import InputError, LabError
from labtui.events import LogLine, Progress, StepDone
from labtui.services import images, machines, ssh, tags
from labtui.services.aws import translate_errors
from labtui.services.hostkeys import HostKey
from labtui.services.images import BakedImage
from labtui.services.inventory import Machine
from labtui.services.setup import BAKED_STEPS, MARKERS, course_steps, run_step, seat_log
from labtui.state import read_json, write_json

TEMPLATE = "bake"   # the template machine's label (its log is logs/bake.log)
ROLE = "bake"

CLEAN = f"""set -e
sudo mkdir -p {BAKED_STEPS}
for f in ~/{MARKERS}/*; do [ -e "$f" ] && sudo touch "{BAKED_STEPS}/$(basename "$f")"; done
if command -v cloud-init >/dev/null 2>&1; then sudo cloud-init clean --logs --seed; fi
sudo rm -f /etc/ssh/ssh_host_*
rm -f ~/.ssh/authorized_keys ~/.bash_history
sudo rm -f /root/.bash_history /root/.ssh/authorized_keys
sudo find /var/log -type f \\( -name '*.log' -o -name '*.gz' -o -name '*.[0-9]' \\) -delete
sudo rm -rf /tmp/* /var/tmp/* 2>/dev/null || true
sync
echo "cleaned for imaging: $(ls {BAKED_STEPS} | wc -l) step(s) recorded"
"""


def require_machines(course: Course) -> None:
    if course.machines is None:
        raise InputError(f"{course.path}: the course has no [machines] section: there is "
                         "nothing to bake. Fix: add one (see sample_course.toml)")


@dataclass
class BakeResult:
    image: BakedImage | None
    reused: bool = False


def bake(ctx: Context, course: Course, *, force: bool = False,
         wait: float = 300) -> BakeResult:
    """Bake the course's setup into an image in its first region (idempotent: an image of
    this setup is reused unless ``force``)."""
    require_machines(course)
    ctx.refuse_if_read_only("bake")
    assert course.machines is not None
    digest = images.setup_digest(course)
    region = course.regions[0]
    current = images.newest(images.course_images(ctx.aws, course.id, region), digest)
    if current is not None and not force:
        ctx.sink.emit(LogLine(f"bake: image {current.image_id} in {region} already holds this "
                              f"setup (digest {digest}); nothing to do (--force bakes again)"))
        return BakeResult(current, reused=True)
    network_for, key_name_for = lifecycle._per_region(ctx, course)
    template = _launch_template(ctx, course, region, network_for(region),
                                key_name_for(region), digest)
    try:
        ctx.sink.emit(Progress("bake", 1, 5))
        machines.wait_running(ctx.aws, [template])
        template = _refreshed(ctx, template)
        _set_up(ctx, course, template, wait)
        ctx.sink.emit(Progress("bake", 2, 5))
        machines.stop(ctx.aws, [template], wait=True)
        ctx.sink.emit(StepDone("template set up, cleaned and stopped"))
        ctx.sink.emit(Progress("bake", 3, 5))
        image_id = images.create(ctx.aws, course, region, template.instance_id, digest,
                                 ctx.sink)
        images.wait_available(ctx.aws, region, image_id, ctx.sink)
        ctx.sink.emit(Progress("bake", 4, 5))
    finally:
        machines.terminate(ctx.aws, [template], wait=False)
        ctx.sink.emit(LogLine(f"bake: template {template.instance_id} terminated"))
    made = next(i for i in images.course_images(ctx.aws, course.id, region)
                if i.image_id == image_id)
    _record(ctx, course, made)
    ctx.sink.emit(Progress("bake", 5, 5))
    ctx.sink.emit(StepDone(f"baked {image_id} in {region} (setup {digest}, "
                           f"{made.size_gb} GiB)"))
    return BakeResult(made)


def _launch_template(ctx: Context, course: Course, region: str, net: Any, key_name: str,
                     digest: str) -> Machine:
    cfg = course.machines
    assert cfg is not None
    image = machines.resolve_image(ctx.aws, region, cfg.base_ami, cfg.instance_type)
    host = HostKey.generate()
    labels = tags.tags(course.id) + [{"Key": tags.ROLE, "Value": ROLE},
                                     {"Key": images.DIGEST, "Value": digest},
                                     {"Key": "Name", "Value": f"labtui-{course.id}-bake"}]
    with translate_errors(f"ec2.RunInstances bake template {cfg.instance_type} in {region}"):
        instance = ctx.aws.client("ec2", region).run_instances(
            ImageId=image.image_id, InstanceType=cfg.instance_type, MinCount=1, MaxCount=1,
            KeyName=key_name, UserData=machines.machine_user_data(course, host),
            NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": net.subnets[0][1],
                                "Groups": [net.security_group_id],
                                "AssociatePublicIpAddress": True}],
            BlockDeviceMappings=[{"DeviceName": image.root_device, "Ebs": {
                "VolumeSize": max(cfg.disk_gb, image.root_gb or 0), "VolumeType": "gp3",
                "DeleteOnTermination": True}}],
            MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled"},
            TagSpecifications=[{"ResourceType": kind, "Tags": labels}
                               for kind in ("instance", "volume")])["Instances"][0]
    machine = machines.to_machine(instance, region, TEMPLATE)
    machines.KnownHosts(ctx.state.course(course.id)).add(
        {machine.instance_id: host.public_line})
    ctx.sink.emit(LogLine(f"bake: template {machine.instance_id} ({cfg.instance_type}, "
                          f"{cfg.base_ami}) launched in {region}"))
    return machine


def _refreshed(ctx: Context, machine: Machine) -> Machine:
    raw = machines.describe(ctx.aws, machine)
    return machines.to_machine(raw, machine.region, machine.seat)


def _set_up(ctx: Context, course: Course, machine: Machine, wait: float) -> None:
    state = ctx.state.course(course.id)
    log = seat_log(state, TEMPLATE, ctx.sink)
    client = lifecycle.remote_for(ctx, course).connect(machine, wait=wait)
    try:
        run_step(client, log, "wait for boot to finish",
                 "if command -v cloud-init >/dev/null 2>&1; then sudo cloud-init status "
                 "--wait >/dev/null || true; fi; echo ready")
        course_steps(client, log, course)
        run_step(client, log, "clean for imaging", CLEAN)
    except ssh.SshError as exc:
        raise LabError(f"bake: the template machine {machine.instance_id}: {exc}") from None
    finally:
        client.close()


def _record(ctx: Context, course: Course, image: BakedImage) -> None:
    path = ctx.state.course(course.id).root / "images.json"
    found = read_json(path) or {}
    found.setdefault("images", []).append({"region": image.region, "image_id": image.image_id,
                                           "setup_digest": image.digest, "at": time.time()})
    write_json(path, found)


def ensure(ctx: Context, course: Course, regions: list[str]) -> dict[str, str]:
    """For ``ami = "baked"``: the image of the course's current setup in each region,
    copied from a region that has one where missing. No such image anywhere (or only stale
    ones): an InputError with the fix, before anything is made."""
    digest = images.setup_digest(course)
    spans = list(dict.fromkeys([*regions, *course.regions]))
    found = {region: images.course_images(ctx.aws, course.id, region) for region in spans}
    current = {region: images.newest(found[region], digest) for region in spans}
    source = next((image for image in current.values() if image is not None), None)
    if source is None:
        first = course.regions[0]
        raise images.missing(course, first, found[first], digest)
    for region in spans:
        for image in found[region]:
            if image.digest != digest:
                ctx.sink.emit(LogLine(f"image {image.image_id} in {region} is stale (setup "
                                      f"{image.digest}, now {digest}): not used; "
                                      "`labtui down --images` removes it", level="warning"))
    out: dict[str, str] = {}
    for region in regions:
        image = current.get(region)
        if image is None:
            out[region] = images.copy_to(ctx.aws, course, source, region, ctx.sink)
        else:
            out[region] = image.image_id
    return out


def list_images(ctx: Context, course: Course,
                regions: list[str] | None = None) -> tuple[str, list[BakedImage]]:
    """(the current setup digest, every baked image of the course in every region)."""
    require_machines(course)
    regions = regions if regions is not None else lifecycle.down_regions(ctx, course)
    return images.setup_digest(course), [image for region in regions
                                         for image in images.course_images(
                                             ctx.aws, course.id, region)]


def down_images(ctx: Context, course: Course, regions: list[str], *,
                remove: bool) -> list[BakedImage]:
    """``down``'s step: with ``remove`` (``--images``) every baked image of the course is
    deregistered and its snapshots deleted; without, they are kept (the next term's ``up``
    uses them) and said so with their $/month. Returns the images removed or kept."""
    _, found = list_images(ctx, course, regions)
    if not found:
        return []
    if not remove:
        monthly = sum(i.monthly_usd for i in found)
        ctx.sink.emit(LogLine(f"kept {len(found)} baked image(s) "
                              f"({', '.join(i.image_id for i in found)}; ${monthly:.2f}/month "
                              "of snapshots): `labtui down --images` removes them",
                              level="warning"))
        return found
    ctx.refuse_if_read_only("remove images")
    for image in found:
        images.remove(ctx.aws, image, ctx.sink)
    ctx.sink.emit(StepDone(f"{len(found)} baked image(s) and their snapshots removed"))
    return found
