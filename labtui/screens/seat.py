"""One seat's troubleshooting screen: a student raised a hand.

Enter on a seat of the machines view pushes this screen; escape goes back. It shows the
seat's machine (instance, type, region, address, state, launch time, setup state and error,
students, tags), and four panes: the setup log (the local file, tailed while the screen is
open), the console output (what the boot and cloud-init printed; ``c`` reloads it), the
output of commands, and the seat's AWS permissions (``a``: what its identity may and may not
do, each line decided by IAM's policy evaluation, ``accessops.table``, loaded once in the
screen's worker; or a line saying the course gives students no AWS identity). Keys: ``x``
the command line (output streams in line by line, then the exit status), ``f`` tail a
remote file, ``s`` re-run setup, ``p`` reset the password (confirmed; the screen says where
the new one is stored and never shows it), ``b`` reboot (confirmed), ``!`` an interactive
shell (the app suspends and runs OpenSSH with the pinned host key). With [jupyter]: ``n``
opens a tunnel to the seat's notebook server (``notebookops.open_tunnel``, in a worker) and
shows its local URL, where the token is kept (never the token), whether the server answers
and which kernels are busy, checked again every few seconds; ``n`` again or leaving the
screen closes it. ``N`` restarts the notebook server (confirmed; its lines in the Output
pane).

A read-only console shows all of it and refuses every key that changes something, and also
commands, file tails and the shell: a TA's console is for looking.
"""

from __future__ import annotations

import shlex
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from rich.table import Table
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult, SuspendNotSupported
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import (
    DataTable,
    Header,
    Input,
    Log,
    Static,
    TabbedContent,
    TabPane,
)

from labtui import accessops, lifecycle, notebookops, policy
from labtui.course import Course
from labtui.errors import LabError
from labtui.events import Event, LogLine, SeatChanged
from labtui.screens.base import clock
from labtui.screens.confirm import ConfirmModal, PromptModal
from labtui.screens.footer import KeyFooter
from labtui.screens.host import SEAT_GROUP, Lab
from labtui.screens.jobs import Job, reboot_job, setup_job
from labtui.screens.messages import SeatLoaded, SeatText, ShellReady, TunnelChecked
from labtui.services import access, inventory, notebooks, tags
from labtui.terminal import plain

if TYPE_CHECKING:
    from textual.worker import Worker

    from labtui.context import Context
    from labtui.lifecycle import SeatStatus
    from labtui.policy import Case
    from labtui.services.inventory import Machine
    from labtui.services.notebooks import Tunnel

TAIL_BYTES = 64 * 1024      # how much of the setup log to show at first
TAIL_EVERY = 1.0            # seconds between looks at the setup log
REMOTE_TAIL_LINES = 200
OUTPUT_PREFIX = {"stderr": "! ", "labtui": "» "}  # a command's lines in the output pane
PERMISSION_COLUMNS = (("What", "what"), ("Decision", "decision"), ("Action", "action"))
CHECK_EVERY = 3.0           # seconds between looks through an open notebook tunnel
NO_JUPYTER = ("The course has no [jupyter] section: its seats run no notebook server. Add "
              "one to the course file (see sample_course.toml).")


@dataclass
class PermissionsLoaded(Message):
    """The seat's permissions table (``accessops.table``), or why it could not be read."""

    user: str | None
    cases: list[Case]
    error: str = ""


def remote_path(path: str) -> str:
    """A path for the remote shell: quoted, with a leading ~/ left to expand."""
    if path == "~":
        return "~"
    if path.startswith("~/"):
        return "~/" + shlex.quote(path[2:])
    return shlex.quote(path)


class SeatScreen(Screen[None]):
    """Troubleshoot one seat from the keyboard."""

    BINDINGS = [
        Binding("escape", "back", "Back", id="seat.back",
                tooltip="Back to the machines (from the command line: leave it first)"),
        Binding("x", "command", "Command", id="seat.command",
                tooltip="Type a command to run on the seat's machine; output streams below"),
        # The tab labels name c and l, so the footer leaves them out.
        Binding("c", "console", "Console", id="seat.console", show=False,
                tooltip="Show the console output (reloaded from AWS)"),
        Binding("l", "setup_log", "Setup log", id="seat.setup_log", show=False,
                tooltip="Show the seat's setup log (kept locally, followed live)"),
        Binding("o", "output", "Output", id="seat.output", show=False,
                tooltip="Show the output of the commands run here"),
        Binding("a", "permissions", "Permissions", id="seat.permissions", show=False,
                tooltip="Show what the seat's AWS identity may and may not do"),
        Binding("f", "tail_file", "Tail file", id="seat.tail",
                tooltip=f"Show the last {REMOTE_TAIL_LINES} lines of a file on the machine"),
        Binding("s", "setup", "Re-run setup", id="seat.setup",
                tooltip="Run the course's setup again on this machine (idempotent)"),
        Binding("exclamation_mark", "shell", "Shell", id="seat.shell", key_display="!",
                tooltip="Open an interactive shell on the machine (OpenSSH, pinned host key)"),
        Binding("p", "reset_password", "Reset password", id="seat.password", show=False,
                tooltip="Give the seat a new password (after confirming); it is stored, "
                        "never shown"),
        Binding("b", "reboot", "Reboot", id="seat.reboot", show=False,
                tooltip="Reboot the seat's machine (after confirming)"),
        Binding("r", "reload", "Reload", id="seat.reload", show=False,
                tooltip="Load the details and the console output again"),
        Binding("n", "notebook_tunnel", "Open notebook tunnel", id="seat.notebook_tunnel",
                show=False,
                tooltip="Forward a local port to the seat's notebook server ([jupyter]): its "
                        "URL, whether it answers, busy kernels; n again closes it"),
        Binding("N", "restart_notebook", "Restart notebook server", id="seat.notebook_restart",
                show=False,
                tooltip="Restart the seat's notebook server (after confirming); its lines go "
                        "to the Output pane"),
    ]

    def __init__(self, course: Course, seat: str) -> None:
        super().__init__(id=f"seat-{seat}", classes="seat-screen")
        self.course = course
        self.seat = seat
        self.students = course.seat(seat).students
        self.status: SeatStatus | None = None
        self.machine: Machine | None = None
        self.loaded = False
        self._log_path: Path | None = None
        self._log_offset = 0
        self._log_rest = b""
        self._log_said_missing = False
        self._reload_timer: Timer | None = None
        self.permissions_loaded = False
        # The notebook tunnel: set by its worker thread and closed from the UI thread, so
        # both under the lock (a tunnel opened after the screen closed is closed at once).
        self._tunnel_lock = threading.Lock()
        self._tunnel: Tunnel | None = None
        self._tunnel_wanted = False
        self._tunnel_timer: Timer | None = None
        self._check_worker: Worker | None = None
        self._tunnel_url = ""
        self._token_file: str | None = None

    @property
    def lab(self) -> Lab:
        return cast("Lab", self.app)

    # -- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="seat-top"):
            who = ", ".join(f"{s.name} ({s.id})" for s in self.students)
            yield Static(f"Seat {self.seat} — {who}", classes="view-title", markup=False)
            yield Static("Loading…", id="seat-details", markup=False)
            notebook = Static("", id="seat-notebook", markup=False)
            notebook.display = False
            yield notebook
        with TabbedContent(initial="seat-log-pane", id="seat-tabs"):
            with TabPane("Setup log (l)", id="seat-log-pane"):
                yield Log(id="seat-setup-log", max_lines=5000)
            with TabPane("Console (c)", id="seat-console-pane"):
                yield Log(id="seat-console", max_lines=5000)
            with TabPane("Output (x, f)", id="seat-output-pane"):
                yield Log(id="seat-output", max_lines=5000)
            with TabPane("Permissions (a)", id="seat-permissions-pane"):
                yield from self.compose_permissions()
        yield Input(placeholder=f"x: a command to run on {self.seat} (enter runs it, escape "
                                "leaves the line)", id="seat-command")
        yield KeyFooter()

    def compose_permissions(self) -> ComposeResult:
        if not access.enabled(self.course):
            yield Static("The course gives students no AWS identity, so the seat has no AWS "
                         "permissions: [access] users = true in the course file gives each "
                         "seat its own IAM user (see sample_course.toml).",
                         id="seat-permissions-note", classes="note", markup=False)
            return
        yield Static("Loading the seat's permissions…", id="seat-permissions-note",
                     classes="note", markup=False)
        rows: DataTable = DataTable(id="seat-permissions", cursor_type="row",
                                    zebra_stripes=True)
        for label, key in PERMISSION_COLUMNS:
            rows.add_column(label, key=key)
        yield rows

    def on_mount(self) -> None:
        self.title = self.app.title
        self.sub_title = f"seat {self.seat}"
        self.query_one("#seat-setup-log", Log).focus()
        self.reload()
        self.tail_setup_log()
        self.set_interval(TAIL_EVERY, self.tail_setup_log, name="tail setup log")

    def on_unmount(self) -> None:
        self.close_tunnel(quiet=True)

    def on_resize(self, event: events.Resize) -> None:
        self.query_one(KeyFooter).compact = event.size.width < 100

    def pane(self, name: str) -> Log:
        return self.query_one(f"#seat-{name}", Log)

    def show_pane(self, pane_id: str) -> None:
        self.query_one("#seat-tabs", TabbedContent).active = pane_id

    # -- loading --------------------------------------------------------------------------------

    def reload(self) -> None:
        ctx = self.lab.ctx
        if ctx is None:
            self.failed(self.lab.connect_error or "not connected yet")
            return
        self.lab.run_worker(lambda: self.fetch(ctx), name=f"{SEAT_GROUP}{self.seat}",
                            group=f"{SEAT_GROUP}{self.seat}", thread=True, exclusive=True,
                            exit_on_error=False, description=f"loading seat {self.seat}")

    def fetch(self, ctx: Context) -> None:
        """Runs in a thread worker: the seat's machine, then its console output."""
        found = inventory.machines(ctx.aws, self.course.id, self.course.regions)
        status = next(s for s in lifecycle.status(ctx, self.course, found)
                      if s.seat == self.seat)
        machine = next((m for m in found.machines if m.instance_id == status.instance_id),
                       None)
        self.post_message(SeatLoaded(status, machine))
        if machine is None:
            self.post_message(SeatText("console", "The seat has no machine: no console."))
        else:
            self.post_message(SeatText("console", lifecycle.console(ctx, machine)))
        if access.enabled(self.course) and not self.permissions_loaded:
            self.fetch_permissions(ctx)

    def fetch_permissions(self, ctx: Context) -> None:
        """In the thread worker: the seat's permissions table (one STS call for the
        account's id, then the policy evaluated locally)."""
        try:
            _, cases = accessops.table(ctx, self.course, self.seat)
        except LabError as exc:
            self.post_message(PermissionsLoaded(None, [], f"Could not load the seat's "
                                                          f"permissions: {exc}"))
            return
        self.post_message(PermissionsLoaded(policy.user_name(self.course, self.seat), cases))

    @on(PermissionsLoaded)
    def show_permissions(self, message: PermissionsLoaded) -> None:
        note = self.query_one("#seat-permissions-note", Static)
        if message.error:
            note.update(Text(message.error, style="bold red"))
            return
        self.permissions_loaded = True
        note.update(f"{self.seat}: IAM user {message.user}. Each line is decided by IAM's "
                    "policy evaluation of the seat's policy; * denied explicitly (no other "
                    "policy can allow it). `labtui access COURSE "
                    f"{self.seat}` prints the policy.")
        rows = self.query_one("#seat-permissions", DataTable)
        rows.clear()
        for index, case in enumerate(message.cases):
            decision = case.decision
            word = decision.word + ("*" if decision.explicit_deny else "")
            rows.add_row(Text(case.what), Text(word, style="green" if decision.allowed
                                               else "bold red"),
                         Text(case.action), key=str(index))

    @on(SeatLoaded)
    def show_seat(self, message: SeatLoaded) -> None:
        self.status, self.machine, self.loaded = message.status, message.machine, True
        self.query_one("#seat-details", Static).update(self.details())

    def details(self) -> Table:
        status, machine = self.status, self.machine
        students = ", ".join(f"{s.id} ({s.name}, {s.email})" for s in self.students)
        lines: list[tuple[str, str]] = [("Students", students)]
        if status is None or machine is None:
            lines.append(("Machine", "absent — the seat has no machine; press u on the "
                                     "machines view (or run `labtui up`) to launch it"))
        else:
            lines += [
                ("Instance", f"{machine.instance_id} · {machine.instance_type} · "
                             f"{machine.region}"),
                ("State", f"{status.state} · launched {status.launched[:19] or '—'}"),
                ("Address", status.address or "— (not running, or not reachable yet)"),
                ("Setup", status.setup + (f" — {status.error}" if status.error else "")),
                ("Tags", ", ".join(f"{k}={v}" for k, v in sorted(
                    tags.as_dict(machine.raw.get("Tags")).items()))),
            ]
        # Label and value side by side: a long error or tag list wraps under its value
        # (an 80-column terminal shows all of it), never under the labels.
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold", no_wrap=True, min_width=9)
        grid.add_column(overflow="fold")
        for label, value in lines:
            style = "red" if label == "Setup" and status and status.setup == "failed" else ""
            grid.add_row(label, Text(value, style=style))
        return grid

    def failed(self, message: str) -> None:
        self.query_one("#seat-details", Static).update(
            Text(f"Could not load the seat: {message}", style="bold red"))

    @on(SeatText)
    def show_text(self, message: SeatText) -> None:
        pane = self.pane(message.pane)
        pane.clear()
        pane.write_lines(plain(message.text).splitlines() or ["(empty)"])

    def apply_events(self, events: list[Event]) -> None:
        """Called by the app with each batch of events: show this seat's command output;
        reload when this seat changed."""
        self.show_output(events)
        if any(isinstance(e, SeatChanged) and e.seat == self.seat for e in events):
            if self._reload_timer is None:
                self._reload_timer = self.set_timer(0.5, self._reload_now)

    def _reload_now(self) -> None:
        self._reload_timer = None
        self.reload()

    # -- the setup log, followed while the screen is open ----------------------------------------

    def tail_setup_log(self) -> None:
        ctx = self.lab.ctx
        if ctx is None:
            return
        if self._log_path is None:
            self._log_path = ctx.state.course(self.course.id).logs / f"{self.seat}.log"
        log = self.pane("setup-log")
        try:
            size = self._log_path.stat().st_size
        except FileNotFoundError:
            if not self._log_said_missing:
                log.write_line("No setup log yet: setup has not run on this seat from this "
                               "computer (each seat's log is kept in the course's state "
                               "folder).")
                self._log_said_missing = True
            return
        if size < self._log_offset:  # the file was replaced
            log.clear()
            self._log_offset, self._log_rest = 0, b""
        if size == self._log_offset:
            return
        if self._log_said_missing:
            log.clear()
            self._log_said_missing = False
        first = self._log_offset == 0
        start = max(0, size - TAIL_BYTES) if first else self._log_offset
        with self._log_path.open("rb") as stream:
            stream.seek(start)
            data = self._log_rest + stream.read(size - start)
        self._log_offset = size
        *lines, self._log_rest = data.split(b"\n")
        if first and start and lines:
            lines = lines[1:]  # the tail starts in the middle of a line
        log.write_lines([plain(line.decode("utf-8", "replace")) for line in lines])

    # -- actions --------------------------------------------------------------------------------

    def action_back(self) -> None:
        if isinstance(self.focused, Input):
            pane = self.query_one("#seat-tabs", TabbedContent).active_pane
            if pane is not None:
                self.set_focus(pane.query_one(Log))
            return
        self.close_tunnel(quiet=True)
        self.dismiss(None)

    def action_console(self) -> None:
        self.show_pane("seat-console-pane")
        self.pane("console").clear()
        self.pane("console").write_line("Loading the console output…")
        self.reload()

    def action_setup_log(self) -> None:
        self.show_pane("seat-log-pane")

    def action_output(self) -> None:
        self.show_pane("seat-output-pane")

    def action_permissions(self) -> None:
        self.show_pane("seat-permissions-pane")

    def action_reload(self) -> None:
        self.reload()

    def action_command(self) -> None:
        self.set_focus(self.query_one("#seat-command", Input))  # at once: keys follow x

    def _has_machine(self, what: str) -> bool:
        if not self.loaded:
            self.notify("The seat is still loading; try again in a moment.",
                        severity="warning")
            return False
        if self.machine is None:
            self.notify(f"{what}: seat {self.seat} has no machine (press u on the machines "
                        "view to launch it).", severity="warning", markup=False)
            return False
        return True

    def run_command(self, command: str, title: str | None = None) -> None:
        if self.lab.refused("exec") or not self._has_machine("exec"):
            return
        self.show_pane("seat-output-pane")
        self.lab.start_job(self.exec_job(command, title), what=f"{title or command} on "
                           f"{self.seat}", group=f"exec:{self.seat}", refresh=False)

    def exec_job(self, command: str, title: str | None) -> Job:
        course, seat = self.course, self.seat

        def run(ctx: Context) -> None:
            # Everything goes through ctx.sink, in order: the command, its output (events
            # exec_command emits) and its end reach this seat's output pane (apply_events),
            # the log pane and the event log alike.
            ctx.sink.emit(LogLine(f"$ {title or command}", source=seat, stream="labtui"))
            outcomes = lifecycle.exec_command(ctx, course, [seat], command)
            if not outcomes:
                ctx.sink.emit(LogLine("not run: the machine is not running", source=seat,
                                      stream="labtui", level="warning"))
                return
            outcome = outcomes[0]
            text = f"exit {outcome.value}" if outcome.ok else f"failed: {outcome.error}"
            ctx.sink.emit(LogLine(text, source=seat, stream="labtui",
                                  level="info" if outcome.ok and outcome.value == 0
                                  else "warning"))
        return run

    def show_output(self, events: list[Event]) -> None:
        """This seat's command lines from a batch of events, in one write."""
        lines = [f"{OUTPUT_PREFIX.get(e.stream, '')}{plain(e.text)}" for e in events
                 if isinstance(e, LogLine) and e.source == self.seat and e.stream]
        if lines:
            self.pane("output").write_lines(lines)

    @on(Input.Submitted, "#seat-command")
    def command_submitted(self, event: Input.Submitted) -> None:
        command = event.value.strip()
        if not command:
            return
        event.input.value = ""
        self.run_command(command)

    def action_tail_file(self) -> None:
        if self.lab.refused("exec (tail a file)") or not self._has_machine("tail"):
            return

        def chosen(path: str | None) -> None:
            if path:
                self.run_command(f"tail -n {REMOTE_TAIL_LINES} -- {remote_path(path)}",
                                 title=f"tail {path}")

        self.app.push_screen(PromptModal(f"Tail a file on {self.seat}",
                                         placeholder="/var/log/syslog or ~/notes.txt",
                                         note=f"The last {REMOTE_TAIL_LINES} lines show in "
                                              "the Output pane · escape cancels"), chosen)

    def action_setup(self) -> None:
        if self.lab.refused("re-run setup") or not self._has_machine("setup"):
            return
        self.show_pane("seat-log-pane")
        self.lab.start_job(setup_job(self.course, [self.seat]), what=f"setup on {self.seat}")

    def action_reboot(self) -> None:
        if self.lab.refused("reboot") or not self._has_machine("reboot"):
            return
        self.lab.confirm_then_job(
            ConfirmModal(f"Reboot {self.seat}'s machine?",
                         f"{self.machine.instance_id if self.machine else ''}: the students "
                         "on it lose their open sessions; files on disk stay.",
                         yes="Reboot", danger=True),
            reboot_job(self.course, [self.seat]), what=f"reboot {self.seat}")

    def action_reset_password(self) -> None:
        if self.lab.refused("reset password") or not self._has_machine("reset password"):
            return
        seat = self.seat
        course = self.course

        def run(ctx: Context) -> str:
            path = lifecycle.reset_seat_password(ctx, course, seat)
            return (f"New password for {seat} set on the machine and stored in {path} "
                    "(readable by you only). It is not shown here.")

        self.lab.confirm_then_job(
            ConfirmModal(f"Reset the password of {seat}?",
                         "A new password is generated, set on the machine and stored in "
                         "labtui's state folder (a 0600 file); it is never shown on screen. "
                         "The old password stops working at once.", yes="Reset"),
            run, what=f"reset password of {seat}")

    def action_shell(self) -> None:
        if self.lab.refused("shell") or not self._has_machine("shell"):
            return
        course, seat = self.course, self.seat

        def run(ctx: Context) -> None:
            self.post_message(ShellReady(lifecycle.ssh_command(ctx, course, seat)))

        self.lab.start_job(run, what=f"shell on {seat}", group=f"shell:{seat}",
                           refresh=False)

    @on(ShellReady)
    def open_shell(self, message: ShellReady) -> None:
        started = time.monotonic()
        try:
            with self.app.suspend():
                status = subprocess.call(message.argv)
        except SuspendNotSupported:
            self.notify("This terminal cannot hand over to a shell. Run it yourself: "
                        f"{shlex.join(message.argv)}", title="No shell here",
                        severity="warning", timeout=15, markup=False)
            return
        self.lab.log_event(LogLine(f"shell on {self.seat} ended (exit {status}, "
                                   f"{time.monotonic() - started:.0f} s)"))
        self.reload()

    # -- the notebook server ([jupyter]) -------------------------------------------------------

    @property
    def tunnel_group(self) -> str:
        return f"notebook:{self.seat}"

    def _has_jupyter(self) -> bool:
        if self.course.jupyter is None:
            self.notify(NO_JUPYTER, severity="warning", markup=False)
            return False
        return True

    def show_notebook(self, text: Text | str) -> None:
        line = self.query_one("#seat-notebook", Static)
        line.update(text)
        line.display = True

    def action_notebook_tunnel(self) -> None:
        """Open the tunnel (in a worker), or close it when it is open or opening."""
        if not self._has_jupyter():
            return
        if self._tunnel_wanted:
            self.close_tunnel()
            return
        # the tunnel reaches a student's running kernels: like exec, not for a TA's console
        if self.lab.refused("notebook tunnel") or not self._has_machine("notebook tunnel"):
            return
        ctx = self.lab.connected()
        if ctx is None:
            return
        self._tunnel_wanted = True
        self.show_notebook("Notebook  opening a tunnel to the seat's notebook server… "
                           "(n cancels)")
        self.lab.run_worker(lambda: self.open_tunnel(ctx), name=self.tunnel_group,
                            group=self.tunnel_group, thread=True, exclusive=True,
                            exit_on_error=False,
                            description=f"opening the notebook tunnel to {self.seat}")

    def open_tunnel(self, ctx: Context) -> None:
        """In a thread worker: the tunnel, kept only if the screen still wants it, and its
        first look at the server."""
        assert self.course.jupyter is not None
        tunnel = notebookops.open_tunnel(ctx, self.course, self.seat)
        with self._tunnel_lock:
            keep = self._tunnel_wanted and self._tunnel is None
            if keep:
                self._tunnel = tunnel
        if not keep:  # closed (n again, or the screen left) while it was opening
            tunnel.close()
            return
        path = notebooks.token_path(ctx.state.course(self.course.id), self.seat)
        self.post_message(TunnelChecked(
            tunnel, tunnel.check(),
            notebooks.url(tunnel.local_port, None, self.course.jupyter.server),
            str(path) if path.exists() else None))

    def check_tunnel(self) -> None:
        """Every CHECK_EVERY seconds while the tunnel is open: one look through it, in a
        worker (never two at once)."""
        tunnel = self._tunnel
        worker = self._check_worker
        if tunnel is None or (worker is not None and not worker.is_finished):
            return

        def look() -> None:
            check = tunnel.check(timeout=CHECK_EVERY) if tunnel.is_open else None
            self.post_message(TunnelChecked(tunnel, check))

        self._check_worker = self.lab.run_worker(
            look, name=f"{self.tunnel_group}:check", group=f"{self.tunnel_group}:check",
            thread=True, exit_on_error=False,
            description=f"looking through the notebook tunnel to {self.seat}")

    @on(TunnelChecked)
    def tunnel_checked(self, message: TunnelChecked) -> None:
        if message.tunnel is not self._tunnel:
            return  # a tunnel closed since
        if message.url:
            self._tunnel_url, self._token_file = message.url, message.token_file
            if self._tunnel_timer is None:
                self._tunnel_timer = self.set_interval(CHECK_EVERY, self.check_tunnel,
                                                       name="check the notebook tunnel")
        if message.check is None:
            self.close_tunnel(quiet=True)
            self.show_notebook(Text("Notebook  the tunnel's SSH connection closed; n opens "
                                    "it again", style="red"))
            return
        check = message.check
        text = Text()
        text.append(f"{'Notebook':<9} ", style="bold")
        text.append(self._tunnel_url, style="bold")
        text.append("  (tunnel open; n closes it) · ")
        if check.answers:
            text.append("answers", style="green")
            text.append(f" · {check.kernels} kernel(s)")
            if check.busy:
                text.append(" · busy: ")
                text.append(", ".join(check.busy), style="yellow")
            else:
                text.append(" · none busy")
        else:
            text.append(f"does not answer: {check.error or 'no answer'}", style="red")
        text.append(f" · checked {clock(time.time())}\n")
        text.append(f"{'Token':<9} ", style="bold")
        text.append(f"in {self._token_file} (not shown here)" if self._token_file else
                    "no token file on this computer yet (setup has not run from here)")
        self.show_notebook(text)

    def close_tunnel(self, *, quiet: bool = False) -> None:
        """Close the tunnel (or forget one still opening: its worker closes it)."""
        with self._tunnel_lock:
            tunnel, self._tunnel = self._tunnel, None
            was_wanted, self._tunnel_wanted = self._tunnel_wanted, False
        if self._tunnel_timer is not None:
            self._tunnel_timer.stop()
            self._tunnel_timer = None
        if tunnel is not None:
            tunnel.close()
        if not quiet and was_wanted:
            self.show_notebook("Notebook  tunnel closed" + (
                f": port {tunnel.local_port} no longer forwarded" if tunnel else "")
                + " · n opens it again")

    def worker_failed(self, group: str, message: str) -> None:
        """The app reports a failed worker of this screen's (the notification is its)."""
        if group == self.tunnel_group:
            self.close_tunnel(quiet=True)
            self.show_notebook(Text(f"Notebook  could not open the tunnel: {message}",
                                    style="red"))

    def action_restart_notebook(self) -> None:
        if not self._has_jupyter():
            return
        if (self.lab.refused("restart the notebook server")
                or not self._has_machine("restart notebook server")):
            return
        course, seat = self.course, self.seat

        def run(ctx: Context) -> str:
            ctx.sink.emit(LogLine("$ restart the notebook server", source=seat,
                                  stream="labtui"))
            code = notebookops.restart(ctx, course, seat)
            machine = lifecycle.seat_machine(ctx, course, seat)
            found = notebookops.statuses(ctx, course, [machine]).get(seat)
            state = found.short if found else "unknown"
            ctx.sink.emit(LogLine(f"exit {code}: the notebook server is {state}", source=seat,
                                  stream="labtui", level="info" if code == 0 else "warning"))
            if code != 0:
                raise LabError(f"the notebook server of {seat} did not restart (exit {code}); "
                               f"it is {state}. Its lines are in the seat's Output pane.")
            return f"Notebook server of {seat} restarted: {state}."

        self.show_pane("seat-output-pane")
        self.lab.confirm_then_job(
            ConfirmModal(f"Restart the notebook server of {seat}?",
                         "Its running kernels stop (what they hold in memory is lost); saved "
                         "notebooks stay. The students reconnect with the same URL and token.",
                         yes="Restart"),
            run, what=f"restart the notebook server of {seat}")
