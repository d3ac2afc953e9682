"""Per-machine SSH host keys and the cloud-init user-data that installs them.

labtui generates each machine's host key locally, hands it to the instance in its user-data
(cloud-init ``ssh_keys``), stores it, and pins it on every SSH connection — never trust on
first use. The user-data is ``#cloud-config`` followed by a JSON body: JSON is valid YAML, so
real cloud-init reads it, and the sandbox SSH server parses it with ``json``.

With setup at boot (``setup_mode = "user-data"``) it also installs the boot robot and its
config (``write_files``, gzip+base64 so the course's files fit EC2's 16 KB) and runs it once
(``runcmd``); see :mod:`labtui.services.bootevents`.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from labtui.services.hostkeys import HostKey

CLOUD_CONFIG_HEADER = "#cloud-config"
USER_DATA_MOST = 16384        # EC2's limit on user-data, before base64
ROBOT_PATH = "/usr/local/lib/labtui/labtui-boot"
ROBOT_CONFIG = "/etc/labtui/boot.json"


@dataclass(frozen=True)
class SeatBoot:
    """What a seat's machine gets at launch for setup at boot (setup_mode = "user-data"):
    cloud-config keys merged into its user-data, login keys for its default user, the
    instance profile it carries and tags for the instance. Nothing in it is secret."""

    cloud_config: dict[str, Any] = field(default_factory=dict)
    authorized_keys: tuple[str, ...] = ()
    profile: str | None = None
    tags: tuple[tuple[str, str], ...] = ()


def packed(data: bytes) -> str:
    """``data`` as write_files' ``gz+b64`` content (the same bytes every time)."""
    return base64.b64encode(gzip.compress(data, mtime=0)).decode()


def robot_config(robot: bytes, config: dict[str, Any]) -> dict[str, Any]:
    """The cloud-config keys that install the boot robot and its config (root's, 0600) and
    run it once, in cloud-init's final stage (runcmd), so `cloud-init status --wait` waits
    for it."""
    return {
        "write_files": [
            {"path": ROBOT_PATH, "owner": "root:root", "permissions": "0755",
             "encoding": "gz+b64", "content": packed(robot)},
            {"path": ROBOT_CONFIG, "owner": "root:root", "permissions": "0600",
             "encoding": "gz+b64",
             "content": packed(json.dumps(config, separators=(",", ":")).encode())},
        ],
        "runcmd": [["python3", ROBOT_PATH, ROBOT_CONFIG]],
    }


def robot_of(text: str | bytes | None) -> dict[str, Any] | None:
    """The boot robot's config that user-data made with :func:`robot_config` carries (None
    if it carries none)."""
    config = parse_user_data(text)
    for item in (config or {}).get("write_files") or []:
        if isinstance(item, dict) and item.get("path") == ROBOT_CONFIG:
            try:
                found = json.loads(gzip.decompress(base64.b64decode(item["content"])))
            except (KeyError, ValueError, OSError):
                return None
            return found if isinstance(found, dict) else None
    return None


def new_host_key() -> tuple[str, str]:
    """A fresh ed25519 host key: (private key in OpenSSH PEM, public "ssh-ed25519 AAAA...")."""
    key = HostKey.generate()
    return key.private_openssh(), key.public_line


def user_data(host_private: str, host_public: str, authorized_keys: Iterable[str] = (),
              extra: dict[str, Any] | None = None) -> str:
    """cloud-init user-data installing the given ed25519 host key (and nothing else).

    ``ssh_deletekeys`` + ``ssh_genkeytypes: [ed25519]`` (the given key exists, so none is
    generated) make the pinned key the machine's only host key, so no client can be offered
    another type. ``authorized_keys`` go to the default user (``ssh_authorized_keys``).
    ``extra`` is merged into the top level last.
    """
    if not host_public.startswith("ssh-ed25519 "):
        raise ValueError("host_public must be an 'ssh-ed25519 ...' public key line")
    if "PRIVATE KEY" not in host_private:
        raise ValueError("host_private must be a private key in PEM/OpenSSH form")
    config: dict[str, Any] = {
        "ssh_deletekeys": True,
        "ssh_genkeytypes": ["ed25519"],
        "ssh_keys": {
            "ed25519_private": host_private,
            "ed25519_public": host_public.strip(),
        },
    }
    keys = [k.strip() for k in authorized_keys if k and k.strip()]
    if keys:
        config["ssh_authorized_keys"] = keys
    if extra:
        config.update(extra)
    return CLOUD_CONFIG_HEADER + "\n" + json.dumps(config, indent=1) + "\n"


def parse_user_data(text: str | bytes | None) -> dict[str, Any] | None:
    """The cloud-config dict of user-data made by :func:`user_data` (None if not such)."""
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    head, _, body = text.partition("\n")
    if head.strip() != CLOUD_CONFIG_HEADER:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def host_public(text: str | bytes | None) -> str | None:
    """The ed25519 host key (``ssh-ed25519 AAAA...``, no comment) that user-data made by
    :func:`user_data` installs; None if it installs none."""
    config = parse_user_data(text)
    keys = config.get("ssh_keys") if config else None
    public = keys.get("ed25519_public") if isinstance(keys, dict) else None
    if not isinstance(public, str) or not public.startswith("ssh-ed25519 "):
        return None
    return " ".join(public.split()[:2])
