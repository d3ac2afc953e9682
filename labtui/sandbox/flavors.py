"""Which AMI names the sandbox can play, and how: all of them with its Debian base image.

What differs between the AMIs it stands in for is what the AMI's own cloud-init settings
decide on EC2: the login user made by ``default_user`` (``ubuntu`` on Ubuntu, ``admin`` on
Debian), with passwordless sudo. An image the sandbox cannot play (Amazon Linux: dnf, not
apt) is refused with a message naming what works.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Flavor:
    name: str
    image_id: str
    user: str
    gecos: str


FLAVORS = {f.name: f for f in (
    Flavor("ubuntu-24.04", "ami-0a11ab5a4d0e02404", "ubuntu", "Ubuntu"),
    Flavor("ubuntu-22.04", "ami-0a11ab5a4d0e02204", "ubuntu", "Ubuntu"),
    Flavor("debian-12", "ami-0a11ab5a4d0e0d012", "admin", "Debian"),
)}
BY_IMAGE = {f.image_id: f for f in FLAVORS.values()}
DEFAULT = FLAVORS["ubuntu-24.04"]  # an ami-... id the sandbox does not know
UNPLAYABLE = {"amazon-linux-2023": "Amazon Linux uses dnf and its own packages"}
PLAYED_BY = "Debian 12 (bookworm)"


def playable() -> str:
    return ", ".join(FLAVORS)


def image_for(name: str) -> str:
    """The sandbox's image id for an AMI name; ValueError with the reason when it has none."""
    if name in FLAVORS:
        return FLAVORS[name].image_id
    why = UNPLAYABLE.get(name, "it is not an image the sandbox knows")
    raise ValueError(f"the sandbox cannot play {name!r} ({why}); its machines are "
                     f"{PLAYED_BY} standing in for {playable()}")


def of_image(image_id: str | None) -> Flavor:
    return BY_IMAGE.get(image_id or "", DEFAULT)


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
