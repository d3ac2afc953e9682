"""Quotas: every EC2 vCPU quota the course uses, per region, against what the plan needs.

One thread worker (``fetch``) reads the quotas (``labtui.lifecycle.facts``: Service Quotas,
or AWS's default when the account's value cannot be read, and what the account already
runs), works out the plan ``up`` would apply (read-only), and reads the course's billing
guard (``labtui.services.billing.billing_state``). Rows are keyed "region/code" and updated in
place; the course facts (``max_instances`` against the instances the class runs) stay on top.

``i`` on a selected row asks for an increase: a one-line prompt for the new total (a whole
number above the current quota), then the ``ConfirmModal``, then
``lifecycle.request_quota`` as one of the app's jobs (one at a time; its one
``Worker.StateChanged`` handler reports a failure); the row is read again so the pending
request shows. A read-only console refuses, with a notification.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual import on
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable, Input, Static

from labtui import lifecycle
from labtui.course import Course
from labtui.errors import LabError
from labtui.events import LogLine
from labtui.plan import Plan, quota_codes
from labtui.screens.base import View, table
from labtui.screens.confirm import ConfirmModal
from labtui.screens.host import Lab
from labtui.screens.rowtable import Fit, region_code
from labtui.services import billing
from labtui.services.billing import BillingState
from labtui.services.quotas import NAMES, Quota

if TYPE_CHECKING:
    from labtui.context import Context

COLUMNS = (("Region", "region"), ("Quota", "name"), ("Code", "code"), ("Quota vCPUs", "value"),
           ("In use", "usage"), ("Free", "headroom"), ("Plan needs", "needs"),
           ("Source", "source"), ("Pending requests", "pending"))
# How the columns give way in a narrow terminal (rowtable.Fit): the numbers always show;
# where the number comes from goes first, then the quota's long name (its code stays), the
# region as use1.
FITS = {"source": Fit(1), "name": Fit(2), "code": Fit(3, hide=False),
        "region": Fit(5, region_code, hide=False),
        "vcpus": Fit(1)}
NEED_COLUMNS = (("What", "what"), ("Instances", "count"), ("Instance type", "type"),
                ("vCPUs each", "vcpus"), ("vCPUs", "total"))


@dataclass(frozen=True)
class Need:
    key: str
    what: str
    count: int
    instance_type: str


def needs(course: Course) -> list[Need]:
    """What the class runs at once, one row per kind of instance (from the course file)."""
    out = []
    if course.machines is not None:
        out.append(Need("machines", f"Seat machines (one per {course.machines.per})",
                        len(course.seats), course.machines.instance_type))
    if course.clusters is not None:
        students = len(course.students)
        for index, group in enumerate(course.clusters.groups):
            out.append(Need(f"cluster-{index}",
                            f"Cluster {group.role} nodes ({group.count} × {students} clusters)",
                            group.count * students, group.instance_type))
    return out


def cap_text(course: Course) -> str:
    count, cap = course.instance_count, course.max_instances
    verdict = (f"within the cap ({cap - count} to spare)" if count <= cap
               else f"OVER the cap by {count - cap}: `up` will refuse")
    return (f"max_instances = {cap} (a hard cap `up` never passes). The class runs "
            f"{count} instances at once: {verdict}.")


def row_key(region: str, code: str) -> str:
    return f"{region}/{code}"


def keys_of(course: Course) -> list[tuple[str, str]]:
    """(region, quota code) for every row, in the course's order of regions."""
    codes = sorted(quota_codes(course))
    return [(region, code) for region in course.regions for code in codes]


def pending_text(quota: Quota) -> str:
    return ", ".join(f"{_number(r.get('DesiredValue'))} {r.get('Status', '?')}"
                     for r in quota.pending) or "—"


def _number(value: Any) -> str:
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return str(value)


def parse_desired(text: str, quota: Quota) -> tuple[int | None, str]:
    """The new total vCPUs typed by the user, or None and what is wrong with it."""
    text = text.strip()
    try:
        desired = int(text)
    except ValueError:
        shown = f"“{text}”" if text else "Nothing"
        return None, (f"{shown} is not a whole number of vCPUs. Type the new total quota, "
                      f"more than {quota.value:g} (e.g. {_suggest(quota):g}).")
    if desired <= quota.value:
        return None, (f"{desired} is not above the current quota ({quota.value:g} vCPUs). "
                      f"Type the new total, more than {quota.value:g}.")
    return desired, ""


def _suggest(quota: Quota) -> float:
    return max(quota.value * 2, quota.value + 8)


@dataclass
class QuotasLoaded(Message):
    """The course's quotas per region, the plan against them, and the billing guard."""

    quotas: dict[str, dict[str, Quota]]
    plan: Plan
    vcpus: dict[str, int]
    billing: BillingState | None = None
    billing_error: str = ""


@dataclass
class QuotaRequested(Message):
    """A request went to AWS; ``quota`` is the row read again (now with it pending)."""

    quota: Quota
    status: str
    desired: float


class QuotasView(View):
    VIEW_ID = "quotas"
    TITLE = "Quotas"
    KEY = "5"
    DESCRIPTION = "vCPU quotas per region against the plan, increase requests, billing guard"
    NEEDS_AWS = True

    BINDINGS = [
        Binding("i", "request_increase", "Request increase", id="quotas.request_increase",
                tooltip="Ask AWS (Service Quotas) to raise the selected vCPU quota"),
        Binding("escape", "cancel_ask", "Cancel", id="quotas.cancel_ask",
                tooltip="Close the quota increase prompt (shown only while it is open)"),
    ]

    DEFAULT_CSS = """
    QuotasView #quotas-body {
        height: 1fr;
    }
    QuotasView #quotas-body DataTable {
        height: auto;
        max-height: 20;
    }
    QuotasView #quotas-ask {
        height: auto;
        border: round $accent;
        padding: 0 1;
        margin: 1 0 0 0;
    }
    QuotasView #quotas-ask-error {
        height: auto;
        color: $error;
        text-style: bold;
    }
    QuotasView #needs-table {
        margin-top: 1;
    }
    QuotasView #quotas-billing {
        height: auto;
        margin-top: 1;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        padding: 0 1;
    }
    """

    def __init__(self, course: Course) -> None:
        super().__init__(course)
        self.quotas: dict[str, Quota] = {}
        self.plan: Plan | None = None
        self.asking: Quota | None = None

    def compose_body(self) -> Iterable[Widget]:
        with VerticalScroll(id="quotas-body"):
            yield Static(cap_text(self.course), id="quotas-cap", classes="note")
            rows = table("quotas-table", COLUMNS, FITS)
            for region, code in keys_of(self.course):
                rows.add_row(region, NAMES.get(code, code), code,
                             *("…" for _ in COLUMNS[3:]), key=row_key(region, code))
            yield rows
            with Vertical(id="quotas-ask") as ask:
                ask.display = False
                yield Static("", id="quotas-ask-label", markup=False)
                yield Input(placeholder="new total vCPUs", id="quotas-ask-input")
                yield Static("", id="quotas-ask-error", markup=False)
            yield Static("Plan needs: the vCPUs `up` would add to each quota (seat machines "
                         "and their students' clusters). i on a row asks AWS for a higher "
                         "quota.", classes="note")
            needs_table = table("needs-table", NEED_COLUMNS, FITS)
            for need in needs(self.course):
                needs_table.add_row(need.what, str(need.count), need.instance_type, "…", "…",
                                    key=need.key)
            needs_table.add_row("Total", str(self.course.instance_count), "", "", "…",
                                key="total")
            yield needs_table
            panel = Static("Billing: loading…", id="quotas-billing", markup=False)
            panel.border_title = "Billing (us-east-1)"
            yield panel

    @property
    def lab(self) -> Lab:
        return cast("Lab", self.app)

    # -- runs in a thread worker ----------------------------------------------------------------

    def fetch(self, ctx: Context) -> None:
        started = time.monotonic()
        course = self.course
        details = lifecycle.plan_details(ctx, course)
        facts, found, the_plan = details.facts, details.quotas, details.plan
        first = course.regions[0]
        sizes = {itype: n for (region, itype), n in facts.vcpus.items() if region == first}
        if sizes:
            ctx.sink.emit(LogLine("quotas: vCPUs per type " + ", ".join(
                f"{t}={n}" for t, n in sorted(sizes.items()))))
        state: BillingState | None = None
        problem = ""
        if course.billing is not None:
            try:
                state = billing.billing_state(ctx.aws, course)
            except LabError as exc:  # the quotas still show; the panel says what failed
                problem = str(exc)
                ctx.sink.emit(LogLine(f"quotas: billing state unreadable: {problem}",
                                      level="warning"))
        count = sum(len(q) for q in found.values())
        pending = sum(len(q.pending) for qs in found.values() for q in qs.values())
        ctx.sink.emit(LogLine(f"quotas: {count} quotas in {len(found)} regions, {pending} "
                              f"pending request(s) ({time.monotonic() - started:.1f} s)"))
        self.deliver(QuotasLoaded(found, the_plan, sizes, state, problem))

    # -- on the UI thread -----------------------------------------------------------------------

    @on(QuotasLoaded)
    def show_quotas(self, message: QuotasLoaded) -> None:
        self.plan = message.plan
        for region_quotas in message.quotas.values():
            for quota in region_quotas.values():
                self.show_quota(quota)
        self.show_needs(message.vcpus)
        self.query_one("#quotas-billing", Static).update(
            billing_text(self.course, message.billing, message.billing_error))
        self.done(self.counts())

    def show_quota(self, quota: Quota) -> None:
        key = row_key(quota.region, quota.code)
        self.quotas[key] = quota
        rows = self.query_one("#quotas-table", DataTable)
        if key not in rows.rows:
            rows.add_row(quota.region, quota.name, quota.code, *("" for _ in COLUMNS[3:]),
                         key=key)
        values = {"name": quota.name, "value": f"{quota.value:g}", "usage": f"{quota.usage:g}",
                  "headroom": f"{quota.headroom:g}", "needs": self.needs_text(quota),
                  "source": quota.source, "pending": pending_text(quota)}
        for column, value in values.items():
            rows.update_cell(key, column, value, update_width=True)

    def needs_text(self, quota: Quota) -> str:
        if self.plan is None:
            return "…"
        need = next((r.new_vcpus.get(quota.code, 0) for r in self.plan.regions
                     if r.region == quota.region), 0)
        short = [s for s in self.plan.shortfall
                 if s.region == quota.region and s.code == quota.code]
        return f"{need:g}" + (f" ({short[0].vcpus:g} short)" if short else "")

    def show_needs(self, sizes: dict[str, int]) -> None:
        rows = self.query_one("#needs-table", DataTable)
        total = 0
        for need in needs(self.course):
            each = sizes.get(need.instance_type)
            if each is None:
                continue
            total += each * need.count
            rows.update_cell(need.key, "vcpus", str(each), update_width=True)
            rows.update_cell(need.key, "total", str(each * need.count), update_width=True)
        rows.update_cell("total", "total", str(total), update_width=True)

    def counts(self) -> str:
        regions = {q.region for q in self.quotas.values()}
        pending = sum(len(q.pending) for q in self.quotas.values())
        defaults = sum(1 for q in self.quotas.values() if q.from_default)
        text = (f"{len(self.quotas)} quotas in {len(regions)} region(s); {pending} pending "
                "increase request(s)")
        if defaults:
            text += f"; {defaults} from AWS defaults (the account's value was unreadable)"
        if self.plan is not None and self.plan.unplaced:
            text += f"; {len(self.plan.unplaced)} seat(s) fit no region's quota"
        return text + "."

    # -- asking for an increase -----------------------------------------------------------------

    def selected(self) -> Quota | None:
        rows = self.query_one("#quotas-table", DataTable)
        if rows.row_count == 0:
            return None
        key = rows.coordinate_to_cell_key(rows.cursor_coordinate).row_key.value
        return self.quotas.get(str(key))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel_ask":
            return self.asking is not None
        return True

    def action_request_increase(self) -> None:
        lab = self.lab
        if lab.refused("requesting a quota increase"):
            return
        if lab.connected() is None:
            return
        quota = self.selected()
        if quota is None:
            self.app.notify("The quotas are not loaded yet: wait for them (or press r), "
                            "then select a row and press i.", severity="warning",
                            markup=False)
            return
        self.asking = quota
        self.query_one("#quotas-ask-label", Static).update(
            f"New total for {quota.name} ({quota.code}) in {quota.region}: now "
            f"{quota.value:g} vCPUs, {quota.usage:g} in use. Type a whole number above "
            f"{quota.value:g}; enter asks, escape cancels.")
        self.query_one("#quotas-ask-error", Static).update("")
        prompt = self.query_one("#quotas-ask-input", Input)
        prompt.value = ""
        prompt.placeholder = f"more than {quota.value:g}, e.g. {_suggest(quota):g}"
        self.query_one("#quotas-ask").display = True
        prompt.focus()
        self.refresh_bindings()

    def action_cancel_ask(self) -> None:
        self.close_ask()

    def close_ask(self) -> None:
        self.asking = None
        self.query_one("#quotas-ask").display = False
        self.query_one("#quotas-table", DataTable).focus()
        self.refresh_bindings()

    @on(Input.Submitted, "#quotas-ask-input")
    def asked(self, event: Input.Submitted) -> None:
        event.stop()
        quota = self.asking
        if quota is None:
            return
        desired, problem = parse_desired(event.value, quota)
        if desired is None:
            self.query_one("#quotas-ask-error", Static).update(problem)
            return
        self.close_ask()
        modal = ConfirmModal(
            f"Request a higher {quota.name} quota in {quota.region}?",
            f"Region: {quota.region}\n"
            f"Quota: {quota.name} ({quota.code})\n"
            f"Now: {quota.value:g} vCPUs ({quota.usage:g} in use)\n"
            f"Requested: {desired} vCPUs\n\n"
            "AWS reviews the request (minutes to days); nothing is launched now. "
            "The request shows in this table while it is pending.",
            yes="Request")

        def answered(yes: bool | None) -> None:
            if yes:
                self.request(quota, desired)
            else:
                self.lab.log_event(LogLine(
                    f"quota increase for {quota.name} in {quota.region}: cancelled; "
                    "nothing requested"))

        self.app.push_screen(modal, answered)

    def request(self, quota: Quota, desired: int) -> None:
        """The request is a job of the app's: one at a time, refused read-only, its failure
        reported by the app (lifecycle.quota_increase checks it again against AWS)."""
        course = self.course

        def work(ctx: Context) -> str:
            increase = lifecycle.quota_increase(ctx, course, quota.region, desired,
                                                code=quota.code)
            done, fresh = lifecycle.request_quota(ctx, increase)
            self.deliver(QuotaRequested(fresh, done.status, done.desired))
            return ""  # the request's event is in the log; the view notifies

        self.lab.start_job(work, what=f"quota increase request for {quota.name} in "
                           f"{quota.region}", refresh=False)

    @on(QuotaRequested)
    def requested(self, message: QuotaRequested) -> None:
        quota = message.quota
        self.show_quota(quota)
        self.app.notify(f"{quota.name} in {quota.region}: asked for "
                        f"{_number(message.desired)} vCPUs, status "
                        f"{message.status}. Press r later to see its progress.",
                        title="Quota increase requested", timeout=8, markup=False)
        self.done(self.counts())


def billing_text(course: Course, state: BillingState | None, problem: str) -> Text:
    out = Text()
    wanted = course.billing
    if wanted is None:
        out.append("No [billing] section in the course file: labtui sets no billing alarms "
                   "and no budget. Add one (see sample_course.toml) to be mailed before the "
                   "bill grows.\n", style="yellow")
    elif problem:
        out.append(f"Could not read the billing alarms and budget: {problem}\n",
                   style="bold red")
    elif state is not None:
        prefix = billing.alarm_prefix(course.id)
        have = [f"${name[len(prefix):-3]}" for name in state.alarms]
        want = ", ".join(f"${amount:g}" for amount in wanted.alarms_usd) or "none"
        if have:
            out.append(f"Alarms (estimated charges): {', '.join(have)} "
                       f"(course file: {want}).\n")
        if state.firing:
            passed = ", ".join(f"${name[len(prefix):-3]}" for name in state.firing)
            out.append(f"ALARM: the estimated charges have passed {passed}. Check what runs "
                       "(labtui sweep) and stop what is not needed.\n", style="bold red")
        else:
            out.append(f"Alarms: none on AWS yet (course file: {want}; `up` creates them).\n")
        if state.topic_arn is None:
            out.append("Topic: none yet (`up` creates it).\n")
        elif not wanted.notify:
            out.append(f"Topic: {billing.topic_name(course.id)}; no notify address in the "
                       "course file, so the alarms mail no one.\n", style="yellow")
        else:
            says = {billing.CONFIRMED: "confirmed",
                    billing.PENDING: "PENDING confirmation: its owner must click \"Confirm "
                                     "subscription\" in the mail from AWS Notifications",
                    billing.NONE: "not subscribed (`up` subscribes it)"}
            out.append(f"Topic: {billing.topic_name(course.id)} mails {wanted.notify}: "
                       f"{says.get(state.subscription, state.subscription)}.\n",
                       style="" if state.subscription == billing.CONFIRMED else "yellow")
        if state.budget is not None and state.budget_limit_usd is not None:
            out.append(f"Budget: {state.budget}, ${state.budget_limit_usd:g}/month.\n")
        elif wanted.monthly_budget_usd is not None:
            out.append(f"Budget: none on AWS yet (course file: "
                       f"${wanted.monthly_budget_usd:g}/month; `up` creates it).\n")
        else:
            out.append("Budget: none (no monthly_budget_usd in the course file).\n")
    out.append(billing.reminder(), style="dim")
    return out
