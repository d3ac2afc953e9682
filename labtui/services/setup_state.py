"""Where a seat's setup stands, kept on its instance as two tags every front end reads.

``labtui:setup`` is pending | running | done | failed; ``labtui:setup-error`` is a short
reason (which step, its exit status or what broke), never the step's command text: tags are
visible to anyone who may describe instances, and a course's commands can hold secrets.
"""

from __future__ import annotations

from collections.abc import Iterable

from labtui.services.aws import Aws, translate_errors
from labtui.services.inventory import Machine
from labtui.terminal import plain

SETUP = "labtui:setup"
SETUP_ERROR = "labtui:setup-error"
STATES = ("pending", "running", "done", "failed")
REASON_CHARS = 120


def mark(aws: Aws, found: Iterable[Machine], state: str, reason: str = "") -> None:
    """Tag the machines with their setup state (one call per region)."""
    assert state in STATES, state
    by_region: dict[str, list[str]] = {}
    for machine in found:
        by_region.setdefault(machine.region, []).append(machine.instance_id)
    for region, ids in by_region.items():
        with translate_errors(f"ec2.CreateTags (setup {state}) in {region}"):
            aws.client("ec2", region).create_tags(
                Resources=ids, Tags=[{"Key": SETUP, "Value": state},
                                     {"Key": SETUP_ERROR, "Value": short(reason)}])


def reason_of(exc: BaseException) -> str:
    """What a failed setup tag says: the step and its exit status for a failed step (see
    services.setup.SetupFailed.reason), else the error's first line."""
    reason = getattr(exc, "reason", None)
    return short(reason if isinstance(reason, str) else str(exc) or type(exc).__name__)


def short(text: str) -> str:
    line = plain(text.strip().splitlines()[0] if text.strip() else "")
    return line if len(line) <= REASON_CHARS else line[:REASON_CHARS - 1] + "…"
