"""Sweep: the whole account, every region — what any labtui course left, and untagged
resources that bill while idle, with their age and $/month.

The view ignores the console's course: ``fetch`` (a thread worker the app runs) calls
``labtui.lifecycle.sweep`` for every enabled region, and each region's findings arrive as a
message as soon as that region answers, so the table fills region by region. Rows are keyed
by region and resource id and updated in place; rows of resources no longer found go when
the sweep finishes. It sweeps when first shown (not on connect: it asks every region), and
again on ``r``.

``space`` marks a row, ``ctrl+a`` marks every row, ``D`` deletes the marked rows (or the
cursor's) after the one ``ConfirmModal`` names the count and $/month; the deletion runs as an
app job (one changing job at a time) through ``lifecycle.sweep_remove``, which looks again
afterwards, and the rows it removed go. A read-only console refuses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from rich.markup import escape
from textual import on
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable, Static

from labtui import lifecycle
from labtui.events import LogLine
from labtui.screens.base import View, table
from labtui.screens.confirm import ConfirmModal
from labtui.screens.host import Lab
from labtui.screens.rowtable import REGION, Fit, short_id
from labtui.services.sweep import Finding, Removal, age_text, total

if TYPE_CHECKING:
    from labtui.context import Context

COLUMNS = (("", "mark"), ("Region", "region"), ("Kind", "kind"), ("Id", "id"),
           ("Course", "course"), ("Age", "age"), ("$/month", "monthly"), ("What", "detail"))
# How the columns give way in a narrow terminal (rowtable.Fit): the kind, the $/month and
# what it is always show; the age goes first, then the course, the id (shortened first),
# the region (use1 first).
FITS = {"age": Fit(1), "course": Fit(2), "id": Fit(3, short_id), "region": REGION}
MARK = "●"


def money(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


def cells(finding: Finding, marked: bool) -> list[str]:
    return [MARK if marked else "", finding.region, finding.kind, finding.id,
            finding.course, age_text(finding.age_s), money(finding.monthly_usd),
            escape(finding.detail)]


@dataclass
class SweepStarted(Message):
    pass


@dataclass
class RegionSwept(Message):
    """One region's findings, as soon as it answered."""

    region: str
    findings: tuple[Finding, ...]


@dataclass
class SweepFinished(Message):
    keys: frozenset[str]
    regions: int
    seconds: float
    unread: dict[str, str]


@dataclass
class SweepRemoved(Message):
    removals: tuple[Removal, ...]
    left: tuple[Finding, ...]


class SweepView(View):
    VIEW_ID = "sweep"
    TITLE = "Sweep"
    KEY = "6"
    DESCRIPTION = ("The whole account, every region: what any labtui course left and "
                   "untagged idle resources, with $/month")
    NEEDS_AWS = True
    LOAD_ON_CONNECT = False

    BINDINGS = [
        Binding("space", "toggle_mark", "Mark", id="sweep.mark",
                tooltip="Mark or unmark the resource under the cursor; D deletes the marked"),
        Binding("D", "delete", "Delete marked", id="sweep.delete",
                tooltip="Delete the marked resources (or the cursor's), after confirming"),
        Binding("ctrl+a", "mark_all", "Mark all", id="sweep.mark_all", show=False,
                tooltip="Mark every resource the sweep found"),
        Binding("escape", "clear", "Clear marks", id="sweep.clear", show=False,
                tooltip="Unmark every resource"),
    ]

    def __init__(self, course: Any) -> None:
        super().__init__(course)
        self.findings: dict[str, Finding] = {}
        self.marked: set[str] = set()
        self.swept = 0

    def compose_body(self) -> Iterable[Widget]:
        yield Static("Every enabled region, whatever course this console has open: labtui's "
                     "resources (tag labtui:course) and untagged ones that bill while idle. "
                     "$/month is an estimate.", classes="note")
        yield table("sweep-table", COLUMNS, FITS)
        yield Static("", id="sweep-total", markup=False)

    def waiting(self, where: str) -> None:
        self.set_status(f"Sweeps the whole account ({where}) when shown; r sweeps again.")

    @property
    def lab(self) -> Lab:
        return cast("Lab", self.app)

    @property
    def rows(self) -> DataTable:
        return self.query_one("#sweep-table", DataTable)

    # -- runs in a thread worker ----------------------------------------------------------------

    def fetch(self, ctx: Context) -> None:
        self.deliver(SweepStarted())
        outcome = lifecycle.sweep(ctx, None, on_region=lambda region, found: self.deliver(
            RegionSwept(region, tuple(found))))
        scan = outcome.scan
        self.deliver(SweepFinished(frozenset(f.key for f in scan.findings), len(scan.regions),
                                   scan.seconds, dict(scan.failed)))

    def again(self) -> None:
        if self.lab.connected() is not None:
            self.lab.load_view(self)

    # -- on the UI thread -----------------------------------------------------------------------

    @on(SweepStarted)
    def started(self, _: SweepStarted) -> None:
        self.swept = 0
        self.set_status("Sweeping every region…")

    @on(RegionSwept)
    def region_swept(self, message: RegionSwept) -> None:
        self.swept += 1
        for finding in message.findings:
            self.show(finding)
        self.set_status(f"Sweeping… {self.swept} region(s) answered; {self.counts()}")

    def show(self, finding: Finding) -> None:
        key = finding.key
        self.findings[key] = finding
        values = cells(finding, key in self.marked)
        rows = self.rows
        if key not in rows.rows:
            rows.add_row(*values, key=key)
            return
        for (_, column), value in zip(COLUMNS, values, strict=True):
            rows.update_cell(key, column, value, update_width=True)

    def drop(self, key: str) -> None:
        self.findings.pop(key, None)
        self.marked.discard(key)
        if key in self.rows.rows:
            self.rows.remove_row(key)

    @on(SweepFinished)
    def finished(self, message: SweepFinished) -> None:
        for key in [k for k in self.findings if k not in message.keys]:
            self.drop(key)
        unread = (f" {len(message.unread)} region(s) could not be read: "
                  f"{', '.join(sorted(message.unread))}." if message.unread else "")
        self.lab.log_event(LogLine(f"sweep: {message.regions} regions swept in "
                                   f"{message.seconds:.1f} s"))
        self.done(f"{message.regions} regions swept; {self.counts()}{unread}")
        self.show_total()

    def counts(self) -> str:
        found = list(self.findings.values())
        untagged = sum(1 for f in found if not f.tagged)
        text = (f"{len(found)} found ({len(found) - untagged} labtui, {untagged} untagged), "
                f"about ${total(found):.2f}/month")
        return text + (f"; {len(self.marked)} marked" if self.marked else "") + "."

    def show_total(self) -> None:
        self.query_one("#sweep-total", Static).update(
            "Nothing left: no labtui resource and nothing idle that bills."
            if not self.findings else
            "space marks, D deletes the marked (after confirming); r sweeps again.")

    # -- marks and delete -----------------------------------------------------------------------

    def cursor_key(self) -> str | None:
        rows = self.rows
        if rows.row_count == 0:
            return None
        return str(rows.coordinate_to_cell_key(rows.cursor_coordinate).row_key.value)

    def _mark(self, key: str, on_: bool) -> None:
        if on_:
            self.marked.add(key)
        else:
            self.marked.discard(key)
        self.rows.update_cell(key, "mark", MARK if on_ else "")

    def action_toggle_mark(self) -> None:
        key = self.cursor_key()
        if key is None:
            return
        self._mark(key, key not in self.marked)
        self.set_status(self.counts())

    def action_mark_all(self) -> None:
        for key in self.findings:
            self._mark(key, True)
        self.set_status(self.counts())

    def action_clear(self) -> None:
        for key in list(self.marked):
            self._mark(key, False)
        self.set_status(self.counts())

    def action_again(self) -> None:
        self.again()

    def action_delete(self) -> None:
        if self.lab.refused("deleting what sweep found"):
            return
        keys = sorted(self.marked) or [k for k in [self.cursor_key()] if k]
        chosen = [self.findings[k] for k in keys if k in self.findings]
        if not chosen:
            self.app.notify("Nothing to delete: the sweep found nothing, or it has not run "
                            "yet (r).", severity="warning", markup=False)
            return
        untagged = sum(1 for f in chosen if not f.tagged)
        lines = [f"{f.region}  {f.kind}  {f.id}  ({f.course}, ${money(f.monthly_usd)}/month)"
                 for f in chosen[:15]]
        if len(chosen) > 15:
            lines.append(f"… and {len(chosen) - 15} more")
        lines.append("")
        lines.append(f"{len(chosen) - untagged} labtui, {untagged} untagged, in "
                     f"{len({f.region for f in chosen})} region(s). Deleted in dependency "
                     "order; this cannot be undone.")
        modal = ConfirmModal(f"Delete {len(chosen)} resource(s), about "
                             f"${total(chosen):.2f}/month?", "\n".join(lines), yes="Delete",
                             danger=True)
        self.lab.confirm_then_job(modal, self.delete_job(chosen),
                                  what=f"sweep: delete {len(chosen)} resource(s)")

    def delete_job(self, chosen: list[Finding]) -> Any:
        def run(ctx: Context) -> str:
            removals, left = lifecycle.sweep_remove(ctx, chosen)
            self.deliver(SweepRemoved(tuple(removals), tuple(left)))
            failed = sum(1 for r in removals if not r.ok)
            return (f"sweep: deleted {len(removals) - failed} of {len(chosen)}"
                    + (f", {failed} failed" if failed else "")
                    + (f", {len(left)} still there" if left else ""))
        return run

    @on(SweepRemoved)
    def removed(self, message: SweepRemoved) -> None:
        still = {f.key for f in message.left}
        for removal in message.removals:
            key = removal.finding.key
            if removal.ok and key not in still:
                self.drop(key)
        self.set_status(self.counts())
        self.show_total()
