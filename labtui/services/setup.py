"""Per-machine setup over SSH: password or key login, packages, files, setup commands,
~/.mrjob.conf. Every step is idempotent — a dropped connection or a rerun finishes the job
without redoing what is done (commands leave a marker under ~/.labtui/done on success).

Setup commands see LABTUI_COURSE and LABTUI_SEAT. The course-wide steps (``course_plan``)
are the same text over SSH and at boot (setup_mode = "user-data", services/bootevents.py).

Secrets never reach a log: a password travels on chpasswd's standard input, never on a
command line, and the seat log holds only command output.
"""

from __future__ import annotations

import hashlib
import posixpath
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko

from labtui.course import CopyFile, Course
from labtui.errors import LabError
from labtui.events import EventSink, LogLine, SeatChanged
from labtui.policy import profile_name
from labtui.services import access, notebooks, passwords, ssh
from labtui.services.inventory import Machine
from labtui.services.remote import Remote
from labtui.state import CourseState, append_private

MARKERS = ".labtui/done"
SSHD_DROPIN = "/etc/ssh/sshd_config.d/01-labtui.conf"  # first match wins in sshd_config


class SetupFailed(LabError):
    """A setup step exited non-zero. ``reason`` (the step and its exit status, never its
    command) is what the seat's setup tag says; the seat's log has the command and output."""

    def __init__(self, step: str, status: int, seat: str = "") -> None:
        self.step, self.status = step, status
        self.reason = f"{step}: exit {status}"
        fix = f" Fix: see the seat's log, then `labtui rerun-setup COURSE {seat or 'SEAT'}`"
        super().__init__(f"{step} failed (exit {status}).{fix}")


@dataclass
class SeatLog:
    """One seat's setup log, kept locally and streamed to the log pane."""

    path: Path
    seat: str
    sink: EventSink

    def line(self, text: str, level: str = "info") -> None:
        stamp = time.strftime("%H:%M:%S")
        append_private(self.path, f"{stamp} {text}\n")
        self.sink.emit(LogLine(text, source=self.seat, level=level))


def seat_log(state: CourseState, seat: str, sink: EventSink) -> SeatLog:
    return SeatLog(state.logs / f"{seat}.log", seat, sink)


BAKED_STEPS = "/etc/labtui/baked"   # on a baked image: one file per step it already holds


def marker(name: str, payload: str) -> str:
    digest = hashlib.sha256(payload.encode()).hexdigest()[:16]
    return f"{MARKERS}/{name}-{digest}"


def guarded(command: str, once: str) -> str:
    """``command`` run only when its marker ``once`` is not there yet, and leaving it on
    success (the same text over SSH and at boot, see labtui-boot)."""
    # The step on lines of its own, as in a script: a trailing `# comment`, a heredoc or
    # a `case` mean what they would there.
    # (a baked image lists the steps it was made with in BAKED_STEPS)
    baked = shlex.quote(f"{BAKED_STEPS}/{posixpath.basename(once)}")
    return (f"if [ -e {shlex.quote(once)} ]; then if [ -e {baked} ]; then echo "
            "'(already done: in the image)'; else echo '(already done)'; fi; else\n"
            f"(\n{command}\n) && mkdir -p {MARKERS} && touch {shlex.quote(once)}\nfi")


@dataclass(frozen=True)
class Step:
    """One step of the course's setup that is the same on every machine: a shell command of
    the login user's (``once``: its marker) or a course file to place."""

    name: str                      # heads the step in the seat's log (may hold the command)
    label: str                     # names it in an error and the setup tag (never the command)
    command: str = ""
    once: str | None = None
    file: CopyFile | None = None
    timeout: float = 900


def seat_environment(course: Course, seat: str | None) -> str:
    """The variables a setup command sees: LABTUI_COURSE, and LABTUI_SEAT on a seat's
    machine (so a course can make one seat differ)."""
    names = {"LABTUI_COURSE": course.id} | ({"LABTUI_SEAT": seat} if seat else {})
    return "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in names.items())


def course_plan(course: Course, seat: str | None = None) -> list[Step]:
    """Packages, files, setup commands, in the order they run (over SSH or at boot)."""
    cfg = course.machines
    assert cfg is not None
    out = []
    if cfg.packages:
        names = " ".join(shlex.quote(p) for p in cfg.packages)
        out.append(Step(
            f"install packages ({', '.join(cfg.packages)})", "install packages",
            "if command -v apt-get >/dev/null 2>&1; then "
            f"dpkg -s {names} >/dev/null 2>&1 || (sudo apt-get update -q && "
            "sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
            f"{names}); else sudo dnf install -y -q {names}; fi",
            once=marker("packages", names)))
    for copy in cfg.files:
        out.append(Step(f"copy {copy.source.name} to {copy.dest}", f"copy {copy.source.name}",
                        file=copy))
    environment = seat_environment(course, seat)
    for index, command in enumerate(cfg.setup, start=1):
        out.append(Step(f"setup {index}/{len(cfg.setup)}: {command}",
                        f"setup step {index}/{len(cfg.setup)}",
                        f"{environment}\n{command}", once=marker(f"setup{index}", command)))
    return out


def run_step(client: paramiko.SSHClient, log: SeatLog, name: str, command: str, *,
             stdin: str | None = None, once: str | None = None, timeout: float = 900,
             step: str | None = None) -> None:
    """Run one step; with ``once`` (a marker path) skip it when done before. ``name`` heads
    the step in the seat's log; ``step`` (default ``name``) names it in the error."""
    if once:
        command = guarded(command, once)
    log.line(f"== {name}")
    status = ssh.run(client, command, stdin=stdin, timeout=timeout,
                     on_line=lambda stream, text: log.line(
                         text, "warning" if stream == "stderr" else "info"))
    if status != 0:
        raise SetupFailed(step or name, status, log.seat)


def setup_seat(remote: Remote, course: Course, machine: Machine, state: CourseState,
               sink: EventSink, *, wait: float = 300,
               cluster: tuple[str, str] | None = None,
               seat_public_key: str | None = None,
               cloud_tmp_dir: str | None = None,
               aws_keys: access.Keys | None = None, after_boot: bool = False) -> None:
    """Bring one machine to the course's setup; raises SetupFailed or SshError.
    ``after_boot``: its boot ran the course's steps (setup_mode = "user-data"), so only the
    seat's own ones (password, keys, notebooks, ~/.mrjob.conf) are left."""
    cfg = course.machines
    assert cfg is not None
    log = seat_log(state, machine.seat, sink)
    sink.emit(SeatChanged(machine.seat, "setup", "waiting for SSH"))
    client = remote.connect(machine, wait=wait)
    try:
        sink.emit(SeatChanged(machine.seat, "setup", "running"))
        run_step(client, log, "wait for boot to finish",
                 # cloud-init writes result.json (under /run, cleared at each boot) when
                 # it is done: only a machine still booting waits for it
                 "if [ ! -e /run/cloud-init/result.json ] && command -v cloud-init "
                 ">/dev/null 2>&1; then sudo cloud-init status --wait >/dev/null || true; "
                 "fi; echo ready")
        if cfg.login == "password":
            password = passwords.ensure(state, machine.seat)
            run_step(client, log, "set the seat password", "sudo chpasswd",
                     stdin=f"{cfg.user}:{password}\n")
            run_step(client, log, "allow password login",
                     f"if ! grep -qx 'PasswordAuthentication yes' {SSHD_DROPIN} 2>/dev/null; "
                     f"then echo 'PasswordAuthentication yes' | sudo tee {SSHD_DROPIN} "
                     ">/dev/null && (sudo systemctl reload ssh || sudo systemctl reload sshd "
                     "|| true); fi; echo 'password login enabled'")
        elif seat_public_key:
            quoted = shlex.quote(seat_public_key.strip())
            run_step(client, log, "install the seat's key",
                     f"mkdir -p ~/.ssh && chmod 700 ~/.ssh && touch ~/.ssh/authorized_keys && "
                     f"(grep -qxF {quoted} ~/.ssh/authorized_keys || echo {quoted} >> "
                     "~/.ssh/authorized_keys) && chmod 600 ~/.ssh/authorized_keys")
        if after_boot:   # the machine's user-data ran them (labtui-boot)
            log.line("== packages, files and setup commands: done at boot (user-data)")
        else:
            course_steps(client, log, course, machine.seat)
        if aws_keys is not None:
            install_aws_keys(client, log, aws_keys, machine.region)
        elif profile_name(course, machine.seat):
            ssh.run(client, "mkdir -p ~/.aws && chmod 700 ~/.aws", timeout=60)
            ssh.put(client, access.config_file(machine.region).encode(), ".aws/config",
                    mode=0o600)
            log.line(f"== wrote ~/.aws/config ({machine.region}); AWS credentials come from "
                     f"the machine's role {profile_name(course, machine.seat)}, no key")
        elif access.enabled(course):
            log.line("== no AWS keys for this seat yet (its identity is made by `up`)")
        if course.jupyter is not None:
            setup_notebooks(client, log, course, machine, state, remote)
        if course.clusters is not None:
            if cluster:
                region, cluster_id = cluster
                ssh.put(client, mrjob_conf(region, cluster_id, cloud_tmp_dir).encode(),
                        ".mrjob.conf", mode=0o600)
                log.line(f"== wrote ~/.mrjob.conf for cluster {cluster_id} ({region})")
            else:
                log.line("== ~/.mrjob.conf waits for the seat's cluster (none running yet)")
        log.line("setup done")
    finally:
        client.close()


def course_steps(client: paramiko.SSHClient, log: SeatLog, course: Course,
                 seat: str | None = None) -> None:
    """What setup makes alike on every machine: packages, files, setup commands (each
    command once: a marker under ~/.labtui/done; a baked image holds them)."""
    for step in course_plan(course, seat):
        if step.file is not None:
            copy = step.file
            log.line(f"== {step.name}")
            dest = copy.dest[2:] if copy.dest.startswith("~/") else copy.dest
            folder = posixpath.dirname(dest)
            if folder:
                ssh.run(client, f"mkdir -p {shlex.quote(folder)}", timeout=60)
            ssh.put(client, str(copy.source), dest, mode=int(copy.mode, 8))
        else:
            run_step(client, log, step.name, step.command, once=step.once, step=step.label,
                     timeout=step.timeout)


def setup_notebooks(client: paramiko.SSHClient, log: SeatLog, course: Course, machine: Machine,
                    state: CourseState, remote: Remote) -> None:
    """[jupyter]: the environment, the templates, the data, then the server (answering)."""
    cfg, user = course.jupyter, course.machines.user if course.machines else "ubuntu"
    assert cfg is not None
    step = notebooks.environment_step(cfg)
    if step is not None:
        name, command, remote_file = step
        source = cfg.requirements or cfg.environment
        assert source is not None
        ssh.run(client, "mkdir -p ~/.labtui", timeout=60)
        ssh.put(client, str(source), remote_file)
        run_step(client, log, name, command, once=marker("jupyter-env", source.read_text()),
                 timeout=1800, step="notebook environment")
    ssh.run(client, f"mkdir -p {shlex.quote(notebooks.workdir_rel(cfg))}", timeout=60)
    log.line(f"== notebook templates into {cfg.workdir}")
    try:
        placed = notebooks.place_templates(client, cfg)
    except notebooks.NotebookError as e:
        log.line(str(e), "error")
        raise SetupFailed("notebook templates", 1, machine.seat) from None
    log.line(notebooks.describe_placed(placed) if placed else "(no templates)")
    for index, item in enumerate(cfg.data, start=1):
        # presigned in the buckets' region (the course's first), where S3 checks the signature
        url = notebooks.data_url(remote.aws, course.regions[0], item.source)
        run_step(client, log, f"notebook data {index}/{len(cfg.data)}: {item.source} -> "
                 f"{cfg.workdir}/{item.dest}", notebooks.data_command(cfg, item.dest, item.sha256),
                 stdin=notebooks.curl_config(url), step=f"notebook data {index}", timeout=1800)
    seat_token = notebooks.ensure_token(state, machine.seat)
    log.line(f"== notebook server on port {cfg.port} (127.0.0.1 only; token kept in "
             f"{notebooks.token_path(state, machine.seat)})")
    status = notebooks.install_server(
        client, cfg, user, seat_token,
        lambda stream, text: log.line(text, "warning" if stream == "stderr" else "info"))
    if status != 0:
        raise SetupFailed("notebook server", status, machine.seat)


def install_aws_keys(client: paramiko.SSHClient, log: SeatLog, keys: access.Keys,
                     region: str) -> None:
    """The seat's own identity as the login user's default AWS profile (0600 files)."""
    ssh.run(client, "mkdir -p ~/.aws && chmod 700 ~/.aws", timeout=60)
    ssh.put(client, access.credentials_file(keys).encode(), ".aws/credentials", mode=0o600)
    ssh.put(client, access.config_file(region).encode(), ".aws/config", mode=0o600)
    log.line(f"== wrote ~/.aws/credentials ({keys.user}, key {keys.access_key_id}) and "
             f"~/.aws/config ({region})")


def mrjob_conf(region: str, cluster_id: str, cloud_tmp_dir: str | None = None) -> str:
    """mrjob 0.7's config: its EMR runner submits to the seat's own cluster (``-r emr``)."""
    text = ("runners:\n  emr:\n"
            f"    region: {region}\n"
            f"    cluster_id: {cluster_id}\n")
    return text + (f"    cloud_tmp_dir: {cloud_tmp_dir}\n" if cloud_tmp_dir else "")


def reset_password(remote: Remote, machine: Machine, state: CourseState, sink: EventSink,
                   user: str) -> Path:
    """A new password for the seat, set on the machine; returns where it is kept (0600)."""
    log = seat_log(state, machine.seat, sink)
    client = remote.connect(machine, wait=30)
    try:
        password = passwords.generate()
        run_step(client, log, "reset the seat password", "sudo chpasswd",
                 stdin=f"{user}:{password}\n")
        # Kept only once the machine took it: a failed chpasswd leaves the old one valid
        # (and shown) on both sides.
        passwords.store(state, machine.seat, password)
    finally:
        client.close()
    return passwords.path_of(state, machine.seat)


def exec_on(remote: Remote, machine: Machine, command: str,
            on_line: Callable[[str, str], None], timeout: float | None = None) -> int:
    client = remote.connect(machine, wait=10)
    try:
        return ssh.run(client, command, on_line=on_line, timeout=timeout)
    finally:
        client.close()
