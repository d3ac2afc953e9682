"""Which AMI names the sandbox can play, and how: all of them with its Debian base image.

What differs between the AMIs it stands in for is what the AMI's own cloud-init settings
decide on EC2: the login user made by ``default_user`` (``ubuntu`` on Ubuntu, ``admin`` on
Debian), with passwordless sudo. An image the sandbox cannot play (Amazon Linux: dnf, not
apt) is refused with a message naming what works.

Each name has an x86_64 and an arm64 image (a t4g or m7g course gets the arm64 one, as on
EC2), registered with the sandbox's moto like the AMIs moto ships, so DescribeImages tells
their architecture and root device name (``/dev/sda1`` on Ubuntu, ``/dev/xvda`` on Debian)
as it does on AWS. Both are played by the same x86 container.

The nodes of an EMR cluster (``EMR_NODE``, launched by the sandbox's EMR player, never by a
course) are played by the same image with EMR's login user, ``hadoop``.

An AMI made by CreateImage (or CopyImage) in the sandbox is not in ``BY_IMAGE``: it keeps the
flavor of the image its instance came from, recorded with its layers by
:mod:`labtui.sandbox.images`, which the machines ask first; ``of_image`` answers the rest.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Flavor:
    name: str
    image_id: str
    user: str
    gecos: str
    root_device: str = "/dev/sda1"
    architecture: str = "x86_64"


FLAVORS = {f.name: f for f in (
    Flavor("ubuntu-24.04", "ami-0a11ab5a4d0e02404", "ubuntu", "Ubuntu"),
    Flavor("ubuntu-22.04", "ami-0a11ab5a4d0e02204", "ubuntu", "Ubuntu"),
    Flavor("debian-12", "ami-0a11ab5a4d0e0d012", "admin", "Debian", "/dev/xvda"),
)}
ARM64 = {f.name: f for f in (
    Flavor("ubuntu-24.04", "ami-0a11ab5a4d0ea2404", "ubuntu", "Ubuntu", architecture="arm64"),
    Flavor("ubuntu-22.04", "ami-0a11ab5a4d0ea2204", "ubuntu", "Ubuntu", architecture="arm64"),
    Flavor("debian-12", "ami-0a11ab5a4d0ead012", "admin", "Debian", "/dev/xvda", "arm64"),
)}
# The nodes of an EMR cluster: EMR's own image (Amazon Linux 2023 on AWS), whose login user
# is ``hadoop`` with passwordless sudo; not a course image (``image_for`` never names it).
EMR_NODE = Flavor("emr-node", "ami-0a11ab5a4d0ee7000", "hadoop", "EMR node", "/dev/xvda")
BY_IMAGE = {f.image_id: f for f in (*FLAVORS.values(), *ARM64.values(), EMR_NODE)}
DEFAULT = FLAVORS["ubuntu-24.04"]  # an ami-... id the sandbox does not know
UNPLAYABLE = {"amazon-linux-2023": "Amazon Linux uses dnf and its own packages"}
PLAYED_BY = "Debian 12 (bookworm)"
OWNER = "137112412989"  # an AWS-owned account id, as for the AMIs moto ships: never "self"


def playable() -> str:
    return ", ".join(FLAVORS)


def image_for(name: str, architecture: str = "x86_64") -> str:
    """The sandbox's image id for an AMI name on that architecture; ValueError with the
    reason when it has none."""
    if name in FLAVORS:
        if architecture == "arm64":
            return ARM64[name].image_id
        if architecture == "x86_64":
            return FLAVORS[name].image_id
        raise ValueError(f"the sandbox has no {architecture} image of {name!r} "
                         "(it has x86_64 and arm64)")
    why = UNPLAYABLE.get(name, "it is not an image the sandbox knows")
    raise ValueError(f"the sandbox cannot play {name!r} ({why}); its machines are "
                     f"{PLAYED_BY} standing in for {playable()}")


def of_image(image_id: str | None) -> Flavor:
    return BY_IMAGE.get(image_id or "", DEFAULT)


def moto_images() -> list[dict]:
    """The sandbox's images in the form of moto's own AMI list (moto.ec2.models.amis)."""
    return [{"ami_id": f.image_id, "name": f"labtui-sandbox/{f.name}-{f.architecture}",
             "description": f"{f.name} ({f.architecture}) played by {PLAYED_BY}",
             "owner_id": OWNER, "owner_alias": "amazon", "public": True,
             "virtualization_type": "hvm", "architecture": f.architecture,
             "state": "available", "platform": None, "image_type": "machine",
             "hypervisor": "xen", "root_device_name": f.root_device,
             "root_device_type": "ebs", "sriov": "simple"} for f in BY_IMAGE.values()]


def register_with_moto() -> None:
    """Make moto list the sandbox's images in every region (in this process): in the list
    each region's backend loads when made (after a reset too), and in those made already."""
    from moto.ec2.models import amis, ec2_backends

    known = {a["ami_id"] for a in amis.AMIS}
    amis.AMIS.extend(i for i in moto_images() if i["ami_id"] not in known)
    for regions in list(ec2_backends.values()):  # never makes a backend that is not there
        for backend in list(dict.values(regions)):
            for image in moto_images():
                if image["ami_id"] not in backend.amis:
                    backend.amis[image["ami_id"]] = amis.Ami(backend, **image)


def cloud_config(flavor: Flavor) -> dict:
    """The AMI's own cloud-init settings (/etc/cloud/cloud.cfg.d), as the sandbox plays it:
    the NoCloud seed as datasource, the network left to the host, the default user."""
    return {
        "datasource_list": ["NoCloud", "None"],
        "network": {"config": "disabled"},
        "locale": "C.UTF-8",
        "manage_etc_hosts": True,
        "system_info": {"default_user": {
            "name": flavor.user, "lock_passwd": True, "gecos": flavor.gecos,
            "groups": ["adm", "sudo"], "sudo": ["ALL=(ALL) NOPASSWD:ALL"],
            "shell": "/bin/bash"}},
    }
