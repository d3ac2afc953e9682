"""The one seam that turns an instance into an SSH address.

On AWS that is the instance's public IP on port 22. In the sandbox it is the machine's own
loopback address (127.x.y.z; port 22 where the sandbox runs as root), read from the
sandbox's hosts file — never the fake IP the emulator reports, which may belong to someone real.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any, Protocol


class Resolver(Protocol):
    loopback_only: bool

    def address(self, instance: dict[str, Any]) -> tuple[str, int] | None:
        """(host, port) to SSH to, or None while the instance has no address yet."""


class PublicAddress:
    """AWS: the public IP (or, failing that, the private one when reachable over a VPN)."""

    loopback_only = False

    def __init__(self, use_private: bool = False) -> None:
        self.use_private = use_private

    def address(self, instance: dict[str, Any]) -> tuple[str, int] | None:
        key = "PrivateIpAddress" if self.use_private else "PublicIpAddress"
        host = instance.get(key)
        return (host, 22) if host else None


class SandboxAddress:
    """The sandbox: the machine's own loopback address and its sshd's port."""

    loopback_only = True

    def __init__(self, hosts_file: Path) -> None:
        self.hosts_file = hosts_file

    def hosts(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.hosts_file.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def address(self, instance: dict[str, Any]) -> tuple[str, int] | None:
        entry = self.hosts().get(instance.get("InstanceId", ""))
        if not entry:
            return None
        host = str(entry.get("host", "127.0.0.1"))
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"sandbox host {host} is not a loopback address")
        return host, int(entry["port"])

