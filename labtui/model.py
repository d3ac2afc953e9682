"""What labtui knows of a course's machines and quotas, as plain data: no AWS client here.

The plan (labtui/plan.py) is made from these and never imports boto3; the services fill them
from AWS (services/inventory.py finds the machines, services/quotas.py reads the quotas).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LIVE_STATES = ("pending", "running", "stopping", "stopped")


@dataclass(frozen=True)
class Machine:
    instance_id: str
    seat: str
    region: str
    state: str
    instance_type: str
    public_ip: str | None
    launched: str
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)


@dataclass(frozen=True)
class Inventory:
    machines: tuple[Machine, ...] = ()

    def by_seat(self) -> dict[str, list[Machine]]:
        out: dict[str, list[Machine]] = {}
        for machine in self.machines:
            out.setdefault(machine.seat, []).append(machine)
        return out


# instance family class -> (on-demand quota code, spot quota code)
CLASSES = {
    "standard": ("L-1216C47A", "L-34B43A08"),
    "g": ("L-DB2E81BA", "L-3819A6DF"),
    "p": ("L-417A185B", "L-7212CCBC"),
    "x": ("L-7295265B", "L-E3A00192"),
    "f": ("L-74FC7D96", "L-88CF9481"),
    "inf": ("L-1945791B", "L-B5D1601B"),
}
NAMES = {
    "L-1216C47A": "On-Demand Standard vCPUs", "L-34B43A08": "Spot Standard vCPUs",
    "L-DB2E81BA": "On-Demand G and VT vCPUs", "L-3819A6DF": "Spot G and VT vCPUs",
    "L-417A185B": "On-Demand P vCPUs", "L-7212CCBC": "Spot P vCPUs",
    "L-7295265B": "On-Demand X vCPUs", "L-E3A00192": "Spot X vCPUs",
    "L-74FC7D96": "On-Demand F vCPUs", "L-88CF9481": "Spot F vCPUs",
    "L-1945791B": "On-Demand Inf vCPUs", "L-B5D1601B": "Spot Inf vCPUs",
}
# What AWS gives a new account when Service Quotas cannot be read at all.
FALLBACK = {"L-1216C47A": 5.0, "L-34B43A08": 5.0}


def quota_class(instance_type: str) -> str:
    family = instance_type.split(".", 1)[0]
    if family.startswith("inf"):
        return "inf"
    if family.startswith(("g", "vt")):
        return "g"
    if family[:1] in ("p", "x", "f"):
        return family[0]
    return "standard"


def quota_code(instance_type: str, market: str = "on-demand") -> str:
    on_demand, spot = CLASSES[quota_class(instance_type)]
    return spot if market == "spot" else on_demand
