"""Handout cards: one per seat (a student's machine, or a group's), written as files and
mailed to the seat's own students.

A card says who sits at the seat, where its machine is (through the one address seam,
``Remote.address``: a loopback host:port on the sandbox, never the emulator's fake IP), the
exact ``ssh`` command with the machine's pinned host key, the login user and the seat's
password (or the path of its private key file with ``login = "key"``), the seat's EMR
cluster, its AWS identity and where its keys are on the machine, and what that identity may
and may not do (``labtui.policy.permissions_table``). A card holds its own seat's secret and
no other seat's: each is built from that seat's files alone.

``write`` puts every card in CSV, Markdown and HTML files (0600, in a 0700 folder); ``mail``
sends each seat's students their card (SMTP or SES, labtui/services/mailer.py) and records
what went out in ``handout/sent.json``, so a card that changed since (a new address after a
restart, a new password) shows as "changed since sent" and can be sent again.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import os
import re
import shlex
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labtui.course import Course, Seat
from labtui.errors import InputError, LabError
from labtui.schema import did_you_mean
from labtui.services import passwords, ssh
from labtui.services.inventory import Machine
from labtui.state import CourseState, private_dir, read_json, write_json, write_private

if TYPE_CHECKING:
    from labtui.context import Context

FILES = ("cards.csv", "cards.md", "cards.html")
SENT_FILE = "sent.json"
CREDENTIALS = "~/.aws/credentials"
# How a student's OpenSSH trusts the machine: only the pinned key, no prompt, no agent.
NOT_SENT, SENT, CHANGED = "not sent", "sent", "changed since sent"


@dataclass(frozen=True)
class ClusterLine:
    key: str
    cluster_id: str | None
    region: str | None
    state: str = "absent"
    reason: str = ""


@dataclass(frozen=True)
class Card:
    """One seat's card. ``password`` is the seat's own secret: never in a repr or a log."""

    course_id: str
    course_name: str
    seat: str
    students: tuple[tuple[str, str], ...]          # (name, email)
    state: str                                     # the machine's: running, stopped, absent
    user: str
    login: str                                     # "password" | "key"
    host: str | None = None
    port: int | None = None
    note: str = ""                                 # why there is no address
    password: str | None = field(default=None, repr=False)
    key_file: str | None = None
    host_key: str | None = None                    # the pinned public line
    fingerprint: str | None = None
    clusters: tuple[ClusterLine, ...] = ()
    identity: str | None = None
    role: bool = False                             # the identity is the machine's role
    allowed: tuple[str, ...] = ()
    denied: tuple[str, ...] = ()
    notebook_host: str | None = None               # where the server listens on the machine
    notebook_port: int | None = None
    notebook_url: str | None = field(default=None, repr=False)   # holds the seat's token

    @property
    def address(self) -> str | None:
        if self.host is None or self.port is None:
            return None
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def emails(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(email for _, email in self.students if email))

    @property
    def known_hosts_file(self) -> str:
        return f"{self.course_id}-{self.seat}.known_hosts"

    @property
    def key_name(self) -> str:
        """The name the seat's private key has beside its card (mailed as an attachment)."""
        return f"{self.course_id}-{self.seat}.key"

    @property
    def known_hosts_line(self) -> str | None:
        if self.host is None or self.port is None or not self.host_key:
            return None
        return f"{ssh._host_key_name(self.host, self.port)} {self.host_key}"

    @property
    def ssh_argv(self) -> list[str] | None:
        if self.host is None or self.port is None or not self.host_key:
            return None
        return ssh.openssh_argv(self.host, self.port, self.user, self.known_hosts_file,
                                self.key_name if self.login == "key" else None)

    @property
    def ssh_command(self) -> str | None:
        argv = self.ssh_argv
        return shlex.join(argv) if argv else None

    @property
    def tunnel_argv(self) -> list[str] | None:
        """OpenSSH forwarding the notebook's port to the student's own computer, trusting
        only the pinned host key (no prompt, no StrictHostKeyChecking=no)."""
        argv = self.ssh_argv
        if argv is None or self.notebook_port is None or self.notebook_host is None:
            return None
        forward = f"{self.notebook_port}:{self.notebook_host}:{self.notebook_port}"
        return [argv[0], "-N", "-L", forward, *argv[1:]]

    @property
    def tunnel_command(self) -> str | None:
        argv = self.tunnel_argv
        return shlex.join(argv) if argv else None

    @property
    def machine_text(self) -> str:
        if self.address:
            return f"running at {self.address}"
        if self.state == "running":
            return f"running; {self.note or 'no address yet'}"
        what = "no machine yet" if self.state == "absent" else f"not running ({self.state})"
        return (f"{what}; its address appears on the next `labtui handout` after it "
                "starts")

    @property
    def machine_short(self) -> str:
        if self.address:
            return f"running at {self.address}"
        if self.state == "running":
            return "running, SSH not answering yet"
        return "no machine yet" if self.state == "absent" else self.state

    @property
    def secret_text(self) -> str:
        if self.login == "key":
            return self.key_file or "no key yet (it is made when the machine is set up)"
        return self.password or "not set yet (it is set when the machine is set up)"

    def cluster_texts(self) -> list[str]:
        out = []
        for c in self.clusters:
            if c.cluster_id is None:
                out.append(f"{c.key}: no cluster yet")
            elif c.state in ("TERMINATING", "TERMINATED", "TERMINATED_WITH_ERRORS"):
                out.append(f"{c.cluster_id} in {c.region} ({c.key}): ended"
                           + (f" — {c.reason}" if c.reason else ""))
            else:
                out.append(f"{c.cluster_id} in {c.region} ({c.key})")
        return out

    def facts(self) -> dict[str, Any]:
        """What the student relies on (the digest covers these: a new address, password,
        host key or cluster is a changed card; a cluster going from STARTING to WAITING
        is not)."""
        return {"seat": self.seat, "students": [list(s) for s in self.students],
                "address": self.address, "user": self.user, "login": self.login,
                "password": self.password, "key_file": self.key_file,
                "host_key": self.host_key,
                "clusters": [[c.key, c.cluster_id, c.region] for c in self.clusters],
                "identity": self.identity, "role": self.role, "allowed": list(self.allowed),
                "denied": list(self.denied), "notebook": self.notebook_url,
                "notebook_port": self.notebook_port}

    def digest(self) -> str:
        raw = json.dumps(self.facts(), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(raw.encode()).hexdigest()

    def lines(self) -> list[tuple[str, str]]:
        """(label, value) in the order every format shows them."""
        out = [("Seat", self.seat),
               ("Students", ", ".join(f"{n} <{e}>" if e else n for n, e in self.students)),
               ("Machine", self.machine_text),
               ("Login user", self.user),
               ("Key file" if self.login == "key" else "Password", self.secret_text)]
        if self.host_key:
            out.append(("Host key", f"{self.host_key}"
                        + (f" ({self.fingerprint})" if self.fingerprint else "")))
        if self.known_hosts_line:
            out.append(("known_hosts line", self.known_hosts_line))
        if self.ssh_command:
            out.append(("Connect", f"save the known_hosts line as {self.known_hosts_file} "
                                   "in the folder you run ssh from (ssh then trusts this "
                                   "machine's key and no other), then run:"))
            out.append(("", self.ssh_command))
        for text in self.cluster_texts():
            out.append(("EMR cluster", text))
        if self.notebook_port is not None:
            if self.tunnel_command and self.notebook_url:
                out.append(("Notebook", "with the known_hosts line saved as above, run this "
                                        "and keep it open (it forwards the notebook to your "
                                        "computer):"))
                out.append(("", self.tunnel_command))
                out.append(("Notebook URL", self.notebook_url))
            else:
                out.append(("Notebook", "not ready yet (it is set up with the machine); it "
                                        "appears on the next `labtui handout`"))
        if self.identity and self.role:
            out.append(("AWS identity", f"{self.identity}, the machine's own role (instance "
                                        "profile): the AWS CLI and SDKs on the machine use "
                                        "it by themselves; there are no keys to keep"))
        elif self.identity:
            out.append(("AWS identity", f"{self.identity}; its keys are in {CREDENTIALS} "
                                        "on the machine"))
        if self.allowed:
            out.append(("May", "; ".join(self.allowed)))
        if self.denied:
            out.append(("May not", "; ".join(self.denied)))
        return out


# ------------------------------------------------------------------------- building cards

def chosen_seats(course: Course, names: Iterable[str] | None) -> list[Seat]:
    """The seats named (a seat or one of its students), each once in the order named; all
    seats when None or empty. An unknown name is bad input naming the course file."""
    names = list(names or [])
    if not names:
        return list(course.seats)
    by_id = {s.id: s for s in course.seats}
    of_student = {st.id: seat for seat in course.seats for st in seat.students}
    out: dict[str, Seat] = {}
    for name in names:
        seat = by_id.get(name) or of_student.get(name)
        if seat is None:
            hint = did_you_mean(name, list(by_id) + list(of_student))
            raise InputError(f"{course.path}: {name!r} is no seat or student of {course.id}. "
                             f"Fix: {hint or 'run `labtui status COURSE` to list the seats'}")
        out.setdefault(seat.id, seat)
    return list(out.values())


def cards(ctx: Context, course: Course, seats: Iterable[str] | None = None, *,
          found: Any = None) -> list[Card]:
    """The cards of the seats named (seats or students; every seat when None), from one
    look at the machines (``found``: an Inventory the caller already has) and one at the
    clusters."""
    from labtui.services import inventory

    if course.machines is None:
        raise InputError(f"{course.path}: the course has no [machines] section, so there is "
                         "no machine to hand out. Fix: add one (see sample_course.toml)")
    if seats is not None:
        seats = list(seats)
        if not seats:
            return []
    chosen = chosen_seats(course, seats)
    state = ctx.state.course(course.id)
    by_seat = (found or inventory.machines(ctx.aws, course.id, course.regions)).by_seat()
    clusters = _clusters(ctx, course)
    remote = _remote(ctx, course, state)
    # a machine's pinned host key may need its user-data read once: seats side by side
    with ThreadPoolExecutor(max_workers=min(16, max(1, len(chosen)))) as pool:
        return list(pool.map(lambda seat: _card(ctx, course, state, seat,
                                                by_seat.get(seat.id, []), clusters, remote),
                             chosen))


def _remote(ctx: Context, course: Course, state: CourseState) -> Any:
    """The seam to a machine's address and pinned key (it never logs in here, so it needs
    no private key)."""
    from labtui.services.machines import KnownHosts
    from labtui.services.remote import Remote

    user = course.machines.user if course.machines else "ubuntu"
    return Remote(ctx.aws, ctx.resolver, KnownHosts(state), "", user)


def _clusters(ctx: Context, course: Course) -> dict[str, Any]:
    """Each cluster key's live cluster, else the last that ended (clusterops.latest, for
    every key at once)."""
    if course.clusters is None:
        return {}
    from labtui import clusterops
    from labtui.services import clusters as clusters_service

    found = dict(clusterops.live(ctx, course))
    if any(key not in found for key in course.cluster_units):
        for key, cluster in clusters_service.last_ended(ctx.aws, course.id,
                                                        course.regions).items():
            found.setdefault(key, cluster)
    return found


def _card(ctx: Context, course: Course, state: CourseState, seat: Seat, machines: list[Machine],
          clusters: dict[str, Any], remote: Any) -> Card:
    from labtui import policy
    from labtui.services import access

    cfg = course.machines
    assert cfg is not None
    live = sorted(machines, key=lambda m: (m.state != "running", m.launched))
    machine = live[0] if live else None
    host = port = None
    host_key = fingerprint = None
    note = ""
    if machine is not None and machine.state == "running":
        # where the machine is, from what EC2 says (the sandbox: its loopback address);
        # no connection to it: the roster builds cards at every refresh
        where = remote.resolver.address(machine.raw)
        if where is None:
            note = "no address yet (it may still be booting)"
        else:
            host, port = where
        host_key = remote.known.get(ctx.aws, machine)
        fingerprint = _fingerprint(host_key)
    key_file = None
    password = None
    if cfg.login == "key":
        path = state.secrets / "seat_keys" / seat.id   # keys.seat_key's file
        key_file = str(path) if path.exists() else None
    else:
        password = passwords.get(state, seat.id)
    keys = dict.fromkeys(course.cluster_key(s) for s in seat.students) if course.clusters \
        else {}
    lines = []
    for key in keys:
        c = clusters.get(key)
        lines.append(ClusterLine(key, c.cluster_id, c.region, c.state, c.reason) if c
                     else ClusterLine(key, None, None))
    identity = None
    # [access] credentials = "instance-profile": a role on the machine instead of keys
    role = getattr(course.access, "credentials", "keys") == "instance-profile"
    allowed: list[str] = []
    denied: list[str] = []
    if access.enabled(course):
        identity = policy.user_name(course, seat)
        for case in policy.permissions_table(course, seat.id):
            (allowed if case.decision.allowed else denied).append(case.what)
    nb_host = nb_port = nb_url = None
    if course.jupyter is not None:
        from labtui.services import notebooks

        nb_port = course.jupyter.port
        seat_token = notebooks.token(state, seat.id)
        if host is not None and seat_token:
            nb_host = notebooks.listen_host(remote, machine) if machine else None
            nb_url = notebooks.url(nb_port, seat_token, course.jupyter.server)
    return Card(course.id, course.name, seat.id,
                tuple((s.name, s.email) for s in seat.students),
                machine.state if machine else "absent", cfg.user, cfg.login, host, port, note,
                password, key_file, host_key, fingerprint, tuple(lines), identity,
                role and identity is not None, tuple(allowed), tuple(denied), nb_host,
                nb_port, nb_url)


def _fingerprint(line: str | None) -> str | None:
    if not line:
        return None
    import base64

    try:
        blob = base64.b64decode(line.split()[1], validate=True)
    except (IndexError, ValueError):
        return None
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


# ------------------------------------------------------------------------------ formats

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _flat(text: str) -> str:
    """One line of text: control characters (a newline in a roster name) become spaces."""
    return _CONTROL.sub(" ", text)


def text(card: Card) -> str:
    """The card as plain text (the body of its mail)."""
    head = f"{card.course_name} ({card.course_id}) — your machine"
    width = max(len(label) for label, _ in card.lines())
    body = [f"{label + ':' if label else '':<{width + 1}} {_flat(value)}"
            for label, value in card.lines()]
    return "\n".join([head, "=" * len(head), *body, ""]) + "\n"


def csv_text(found: list[Card]) -> str:
    columns = ["seat", "students", "emails", "machine", "address", "user", "login",
               "password", "key_file", "host_key", "known_hosts", "ssh_command", "clusters",
               "identity", "credentials", "may", "may_not", "notebook_tunnel", "notebook_url"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for c in found:
        row = [c.seat, "; ".join(n for n, _ in c.students), "; ".join(c.emails),
               c.machine_text, c.address or "", c.user, c.login, c.password or "",
               c.key_file or "", c.host_key or "", c.known_hosts_line or "",
               c.ssh_command or "", "; ".join(c.cluster_texts()), c.identity or "",
               "instance profile" if c.role else CREDENTIALS if c.identity else "",
               "; ".join(c.allowed), "; ".join(c.denied), c.tunnel_command or "",
               c.notebook_url or ""]
        writer.writerow([_cell(_flat(v)) for v in row])
    return out.getvalue()


def _cell(value: str) -> str:
    """A spreadsheet never runs a cell as a formula (a roster name "=HYPERLINK(...)")."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


_MD_SPECIAL = re.compile(r"([\\`*_\[\]#!|~<>&])")  # what could start markup mid-line


def _md(value: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", _flat(value))


def _md_code(value: str) -> str:
    value = _flat(value)
    ticks = "`" * (max((len(m) for m in re.findall(r"`+", value)), default=0) + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{ticks}{pad}{value}{pad}{ticks}"


_CODE = ("Password", "Key file", "Host key", "known_hosts line", "", "Login user",
         "Notebook URL")


def markdown(found: list[Card]) -> str:
    if not found:
        return "# Handout\n\nNo seats.\n"
    out = [f"# {_md(found[0].course_name)} ({_md(found[0].course_id)}) — handout", ""]
    for c in found:
        out += [f"## Seat {_md(c.seat)}", ""]
        for label, value in c.lines():
            shown = _md_code(value) if label in _CODE else _md(value)
            out.append(f"- **{_md(label)}:** {shown}" if label else f"  {shown}")
        out.append("")
    return "\n".join(out)


_STYLE = """
body { font-family: sans-serif; margin: 1cm; }
.card { border: 1px solid #444; border-radius: 6px; padding: 0.6cm; margin-bottom: 1cm;
        page-break-inside: avoid; break-inside: avoid; }
.card + .card { page-break-before: always; break-before: page; }
h1 { font-size: 1.2em; margin: 0 0 0.4cm 0; }
th { text-align: left; vertical-align: top; padding-right: 1em; white-space: nowrap; }
td code { word-break: break-all; }
@media print { .card + .card { margin-top: 0; } }
"""


def html_card(card: Card) -> str:
    e = html.escape
    rows = []
    for label, value in card.lines():
        cell = f"<code>{e(_flat(value))}</code>" if label in _CODE else e(_flat(value))
        rows.append(f"<tr><th>{e(label)}</th><td>{cell}</td></tr>")
    return (f'<section class="card" id="seat-{e(card.seat)}">\n'
            f"<h1>{e(card.course_name)} ({e(card.course_id)}) — seat {e(card.seat)}</h1>\n"
            "<table>\n" + "\n".join(rows) + "\n</table>\n</section>\n")


def html_page(found: list[Card]) -> str:
    title = (f"{found[0].course_name} ({found[0].course_id}) — handout" if found
             else "handout")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
            + "".join(html_card(c) for c in found) + "</body>\n</html>\n")


# ------------------------------------------------------------------------------ writing

def folder_of(ctx: Context, course: Course) -> Path:
    return ctx.state.course(course.id).root / "handout"


def _private_folder(path: Path, given: bool) -> Path:
    """The folder the cards go to, 0700. A folder given with --to that others may read, or
    that is not the user's, is refused rather than changed (it may be their Desktop)."""
    if given and path.exists():
        if not path.is_dir():
            raise InputError(f"--to {path}: is not a folder. Fix: name a folder (it is "
                             "created 0700 when missing)")
        info = path.stat()
        if info.st_uid != os.geteuid() or info.st_mode & 0o077:
            who = ("belongs to another user" if info.st_uid != os.geteuid()
                   else f"can be read by others (mode {info.st_mode & 0o777:o})")
            raise InputError(f"--to {path}: {who}, and the cards hold passwords. Fix: name "
                             f"a new folder (labtui creates it 0700) or `chmod 700 {path}`")
        return path
    try:
        return private_dir(path)
    except OSError as exc:
        raise InputError(f"--to {path}: cannot be created "
                         f"({exc.strerror or type(exc).__name__}). Fix: name a folder you "
                         "may write to") from None


def write(ctx: Context, course: Course, to: Path | None = None,
          found: list[Card] | None = None) -> list[Path]:
    """Write every seat's card as CSV, Markdown and HTML (each 0600, in a 0700 folder:
    ``to``, else the course's state folder's ``handout/``); returns the three paths."""
    found = cards(ctx, course) if found is None else found
    folder = _private_folder(Path(to).expanduser() if to else folder_of(ctx, course),
                             given=to is not None)
    bodies = (csv_text(found), markdown(found), html_page(found))
    return [write_private(folder / name, body) for name, body in zip(FILES, bodies,
                                                                      strict=True)]


# ------------------------------------------------------------------------------ sending

@dataclass
class MailResult:
    """What ``mail`` did: the seats whose card went out (to whom) and those that failed
    (why); ``cards`` are the cards it tried."""

    sent: dict[str, tuple[str, ...]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    cards: list[Card] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return not self.failed


def sent(state: CourseState) -> dict[str, dict[str, Any]]:
    """What went out, by seat: ``{"to": [...], "at": ISO time, "digest": "sha256:..."}``
    (the roster reads this)."""
    data = read_json(state.root / "handout" / SENT_FILE)
    return data if isinstance(data, dict) else {}


def delivery(card: Card, record: dict[str, Any] | None) -> str:
    """"not sent", "sent" (this very card), or "changed since sent"."""
    if not record:
        return NOT_SENT
    return SENT if record.get("digest") == card.digest() else CHANGED


def deliveries(ctx: Context, course: Course, found: list[Card] | None = None
               ) -> dict[str, str]:
    """Each seat's "not sent", "sent" or "changed since sent" (its card now against the
    digest of the one that went out)."""
    records = sent(ctx.state.course(course.id))
    return {c.seat: delivery(c, records.get(c.seat))
            for c in (cards(ctx, course) if found is None else found)}


def _record(state: CourseState, card: Card, to: tuple[str, ...]) -> None:
    records = sent(state)
    records[card.seat] = {"to": list(to), "at": datetime.now(UTC).isoformat(timespec="seconds"),
                          "digest": card.digest()}
    private_dir(state.root / "handout")
    write_json(state.root / "handout" / SENT_FILE, records)


def mail(ctx: Context, course: Course, seats: list[str] | None = None,
         found: list[Card] | None = None) -> MailResult:
    """Send each chosen seat's students their own card: one message per seat, addressed to
    its students. Everything that would stop every message (no [mail], no SMTP password,
    an unverified SES sender, no server) is refused before the first goes out; a seat that
    fails is named and the others still go."""
    from labtui.events import Progress
    from labtui.services import mailer

    ctx.refuse_if_read_only("mail")
    transport = mailer.prepare(ctx, course)   # raises before anything is sent
    found = cards(ctx, course, seats) if found is None else found
    state = ctx.state.course(course.id)
    result = MailResult(cards=found)
    with transport:
        for done, card in enumerate(found, 1):
            _send(ctx, course, state, transport, card, result)
            ctx.sink.emit(Progress("mail", done, len(found), len(result.failed)))
    return result


def _send(ctx: Context, course: Course, state: CourseState, transport: Any, card: Card,
          result: MailResult) -> None:
    """One seat's message; its outcome in ``result``, an event, and sent.json."""
    from labtui.events import CardMailed
    from labtui.services import mailer

    if not card.emails:
        why = "no email address in the roster. Fix: add the students' emails"
        result.failed[card.seat] = why
        ctx.sink.emit(CardMailed(card.seat, (), ok=False, detail=why))
        return
    try:
        delivered, refused = transport.send(card.emails, mailer.message(course, card))
    except LabError as exc:
        result.failed[card.seat] = str(exc)
        ctx.sink.emit(CardMailed(card.seat, card.emails, ok=False, detail=str(exc)))
        return
    if delivered:
        result.sent[card.seat] = delivered
        _record(state, card, delivered)
    if not refused:
        ctx.sink.emit(CardMailed(card.seat, delivered))
        return
    why = "refused by the mail server: " + "; ".join(f"{to} ({reason})"
                                                     for to, reason in refused.items())
    result.failed[card.seat] = why + (f" (sent to {', '.join(delivered)})" if delivered
                                      else "")
    ctx.sink.emit(CardMailed(card.seat, tuple(refused), ok=False,
                             detail=result.failed[card.seat]))
