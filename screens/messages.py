"""The messages labtui's widgets exchange, in one place.

Thread workers report back with ``post_message`` (thread-safe) and these dataclass messages;
handlers run on the UI thread, where widgets may be touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

from labtui.events import Event

if TYPE_CHECKING:
    from labtui.context import Context
    from labtui.services.inventory import Inventory
    from labtui.services.regions import RegionInfo


@dataclass
class LabEvent(Message):
    """An event a service emitted through ``ctx.sink``: it goes to the log pane."""

    event: Event


@dataclass
class ContextReady(Message):
    """The context (sandbox or AWS) is open; views may load their data."""

    ctx: Context


@dataclass
class RegionsLoaded(Message):
    regions: tuple[RegionInfo, ...]


@dataclass
class MachinesLoaded(Message):
    inventory: Inventory


@dataclass
class VcpusLoaded(Message):
    """vCPUs per instance type, as AWS describes the types."""

    region: str
    vcpus: dict[str, int]
