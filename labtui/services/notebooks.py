"""Jupyter on every seat's machine (``[jupyter]``): the environment, the template notebooks,
the course data, and the notebook server run by ``labtui-notebook`` (labtui/data), a small
supervisor that restarts it and that cloud-init's per-boot hook starts at every boot.

The server listens on the machine's loopback only and is reached through an SSH tunnel over
the seat's pinned host key. Its token is the seat's own (kept 0600 under the course's
secrets, written 0600 on the machine, handed to the server in its environment); it is never
on a command line, in a log line or a tag: text from the machine passes :func:`redact`.

Templates are placed by one piece of code for setup and ``notebooks push``: a file the
student has changed is never overwritten — the new template lands beside it, named with its
digest — and a manifest on the machine (``WORKDIR/.labtui-templates.json``) remembers what
labtui last placed, so an untouched copy is updated in place.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import secrets
import select
import shlex
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import paramiko

from labtui.course import Course, Jupyter
from labtui.errors import LabError
from labtui.services import ssh
from labtui.services.aws import Aws, translate_errors
from labtui.services.inventory import Machine
from labtui.services.remote import Remote
from labtui.state import CourseState

ENV_DIR = "/opt/labtui/jupyter"
CONTROL = "/usr/local/bin/labtui-notebook"
CONFIG = "/etc/labtui/notebook.json"
PER_BOOT = "/var/lib/cloud/scripts/per-boot/labtui-notebook"
TOKEN_FILE = ".config/labtui/notebook.token"       # in the login user's home
MANIFEST = ".labtui-templates.json"
STAGING = ".labtui/templates-staging"


class NotebookError(LabError):
    pass


# ------------------------------------------------------------------------------ the token

def token_path(state: CourseState, seat: str) -> Path:
    return state.secrets / "jupyter" / f"{seat}.token"


def token(state: CourseState, seat: str) -> str | None:
    path = token_path(state, seat)
    return path.read_text(encoding="utf-8").strip() if path.exists() else None


def ensure_token(state: CourseState, seat: str) -> str:
    """The seat's token, made on first use and kept (0600): a rerun keeps the same one."""
    found = token(state, seat)
    if found:
        return found
    made = secrets.token_hex(24)
    state.write_secret(f"jupyter/{seat}.token", made + "\n")
    return made


def redact(text: str, *secrets_: str | None) -> str:
    for value in secrets_:
        if value:
            text = text.replace(value, "<token>")
    return text


# ------------------------------------------------------------------------- on the machine

def workdir_rel(cfg: Jupyter) -> str:
    """The working folder relative to the login user's home (SFTP paths are)."""
    return cfg.workdir[2:].rstrip("/") if cfg.workdir.startswith("~/") else cfg.workdir


def server_argv(cfg: Jupyter) -> list[str]:
    """The server's command line, but for ``--ip`` (the machine's loopback, known there)."""
    argv = shlex.split(cfg.command) if cfg.command else ["jupyter", cfg.server]
    argv += [f"--port={cfg.port}", "--no-browser", "--ServerApp.port_retries=0"]
    if cfg.server == "notebook" and not cfg.command:
        argv.append("--NotebookApp.port_retries=0")   # notebook 6 (7 is a ServerApp)
    return argv


def server_config(cfg: Jupyter, user: str) -> dict[str, Any]:
    """/etc/labtui/notebook.json: what labtui-notebook runs (no secret in it)."""
    return {"user": user, "port": cfg.port, "workdir": cfg.workdir, "argv": server_argv(cfg),
            "env": ENV_DIR, "token_file": "~/" + TOKEN_FILE}


def control_script() -> bytes:
    return resources.files("labtui").joinpath("data/labtui-notebook").read_bytes()


def environment_step(cfg: Jupyter) -> tuple[str, str, str] | None:
    """(step name, command, remote file to upload first) installing the environment, or None
    when the course relies on the image."""
    if cfg.requirements is not None:
        remote = ".labtui/jupyter-requirements.txt"
        command = (
            "set -e\n"
            "if command -v apt-get >/dev/null 2>&1 && ! dpkg -s python3-venv >/dev/null 2>&1; "
            "then sudo apt-get update -q && sudo env DEBIAN_FRONTEND=noninteractive "
            "apt-get install -y -q python3-venv; fi\n"
            f"sudo mkdir -p {ENV_DIR} && sudo chown \"$(id -u):$(id -g)\" {ENV_DIR}\n"
            f"[ -x {ENV_DIR}/bin/pip ] || python3 -m venv {ENV_DIR}\n"
            f"{ENV_DIR}/bin/pip install --disable-pip-version-check -q -r ~/{remote}\n"
            f"{ENV_DIR}/bin/pip list --disable-pip-version-check 2>/dev/null | "
            "grep -i -E '^(jupyter|notebook)' || true")
        return "install the notebook environment (pip)", command, remote
    if cfg.environment is not None:
        remote = ".labtui/jupyter-environment.yml"
        command = (
            "set -e\n"
            "if command -v micromamba >/dev/null 2>&1; then "
            f"micromamba create -y -q -p {ENV_DIR} -f ~/{remote}\n"
            "else tool=; for t in mamba conda; do command -v $t >/dev/null 2>&1 && tool=$t "
            "&& break; done\n"
            "  if [ -z \"$tool\" ]; then echo 'environment.yml needs conda, mamba or "
            "micromamba on the machine (none is on this image). Fix: use [jupyter] "
            "requirements (pip), or an image with conda' >&2; exit 3; fi\n"
            f"  sudo mkdir -p {ENV_DIR} && sudo chown \"$(id -u):$(id -g)\" {ENV_DIR}\n"
            f"  $tool env update -q -p {ENV_DIR} -f ~/{remote}\nfi")
        return "install the notebook environment (conda)", command, remote
    return None


def data_command(cfg: Jupyter, item_dest: str, sha256: str | None) -> str:
    """Fetch one data file (its URL comes on standard input as a curl config line, so a
    presigned URL is never on a command line or in the log)."""
    dest = shlex.quote(posixpath.join(workdir_rel(cfg), item_dest))
    check = (f"echo {sha256}' '\"$part\" | sha256sum -c --status || {{ got=$(sha256sum "
             f"\"$part\" | cut -d' ' -f1); rm -f \"$part\"; echo \"checksum mismatch: "
             f"expected {sha256}, got $got\" >&2; exit 4; }}\n") if sha256 else ""
    have = (f"echo {sha256}' '{dest} | sha256sum -c --status" if sha256 else "true")
    return (f"cd ~ && mkdir -p \"$(dirname {dest})\"\n"
            f"if [ -e {dest} ] && {have}; then echo '(already there)'; exit 0; fi\n"
            f"part={dest}.part\n"
            "curl -fsS -L --retry 3 --connect-timeout 20 -K - -o \"$part\"\n"
            + check +
            f"mv \"$part\" {dest} && echo \"fetched $(stat -c %s {dest}) bytes\"")


def data_url(aws: Aws | None, region: str, source: str) -> str:
    """The URL a machine downloads ``source`` from: an s3:// object as a presigned GET
    valid one hour (no key reaches the machine), a URL as it is."""
    if not source.startswith("s3://"):
        return source
    if aws is None:
        raise NotebookError(f"{source}: fetching from S3 needs the course's AWS profile")
    bucket, _, key = source[5:].partition("/")
    with translate_errors(f"s3.GetObject {source} (presign)"):
        return aws.client("s3", region).generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=3600)


def curl_config(url: str) -> str:
    return 'url = "' + url.replace("\\", "\\\\").replace('"', '\\"') + '"\n'


_PLACE = r"""
import hashlib, json, os, shutil, sys
spec = json.load(sys.stdin)
work = os.path.expanduser(spec["workdir"])
staging = os.path.expanduser(spec["staging"])
manifest_path = os.path.join(work, spec["manifest"])
try:
    with open(manifest_path) as f:
        manifest = json.load(f)
except (OSError, ValueError):
    manifest = {}
def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
out = []
for item in spec["files"]:
    rel, new = item["dest"], item["sha256"]
    dest = os.path.join(work, rel)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    src = os.path.join(staging, item["staged"])
    if not os.path.exists(dest):
        shutil.copyfile(src, dest); manifest[rel] = new; out.append([rel, "new", rel]); continue
    have = sha(dest)
    if have == new:
        manifest[rel] = new; out.append([rel, "unchanged", rel]); continue
    if manifest.get(rel) == have:
        shutil.copyfile(src, dest); manifest[rel] = new; out.append([rel, "updated", rel])
        continue
    stem, ext = os.path.splitext(rel)
    beside = f"{stem}.{new[:8]}{ext}"
    if not os.path.exists(os.path.join(work, beside)):
        shutil.copyfile(src, os.path.join(work, beside))
    out.append([rel, "kept", beside])
with open(manifest_path + ".new", "w") as f:
    json.dump(manifest, f, indent=1, sort_keys=True)
os.replace(manifest_path + ".new", manifest_path)
shutil.rmtree(staging, ignore_errors=True)
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Placed:
    """One template's fate on one seat: new, updated (an untouched copy), unchanged, or
    kept (the student changed it; the new template is ``beside``)."""

    name: str
    outcome: str
    beside: str


def place_templates(client: paramiko.SSHClient, cfg: Jupyter,
                    day: str | None = None) -> list[Placed]:
    """Copy the course's templates into the working folder (``WORKDIR/<day>/`` with
    ``daily``), never over a copy the student changed."""
    files = cfg.template_files()
    if not files:
        return []
    prefix = f"{day or time.strftime('%Y-%m-%d')}/" if cfg.daily else ""
    entries = []
    ssh.run(client, f"mkdir -p {STAGING}", timeout=60)
    for index, (path, name) in enumerate(files):
        staged = f"{index}-{posixpath.basename(name)}"
        ssh.put(client, str(path), f"{STAGING}/{staged}")
        entries.append({"dest": prefix + name, "staged": staged,
                        "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    spec = {"workdir": cfg.workdir, "staging": "~/" + STAGING, "manifest": MANIFEST,
            "files": entries}
    lines: list[str] = []
    status = ssh.run(client, "python3 -c " + shlex.quote(_PLACE), stdin=json.dumps(spec),
                     timeout=120, on_line=lambda _s, text: lines.append(text))
    if status != 0:
        raise NotebookError("placing the templates failed (exit "
                            f"{status}): {' '.join(lines[-3:])}")
    return [Placed(*row) for row in json.loads(lines[-1])]


def describe_placed(placed: list[Placed]) -> str:
    counts: dict[str, int] = {}
    for p in placed:
        counts[p.outcome] = counts.get(p.outcome, 0) + 1
    text = ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))
    kept = [f"{p.name} (changed by the student; the new one is {p.beside})"
            for p in placed if p.outcome == "kept"]
    return text + ("; kept " + "; ".join(kept) if kept else "")


def install_server(client: paramiko.SSHClient, cfg: Jupyter, user: str, seat_token: str,
                   log: Callable[[str, str], None], wait: float = 120) -> int:
    """The token (0600), labtui-notebook, its settings and per-boot hook; then the server,
    started (or restarted when its settings or token changed). Returns the exit status of
    ``labtui-notebook start --wait``; its lines go to ``log`` (redacted)."""
    ssh.run(client, "mkdir -p ~/.config/labtui ~/.labtui && chmod 700 ~/.config/labtui",
            timeout=60)
    ssh.put(client, (seat_token + "\n").encode(), TOKEN_FILE, mode=0o600)
    ssh.put(client, control_script(), ".labtui/labtui-notebook", mode=0o755)
    config = json.dumps(server_config(cfg, user), indent=1) + "\n"
    hook = f"#!/bin/sh\n# labtui: the notebook server at every boot\nexec {CONTROL} start\n"
    command = (f"set -e\nsudo install -m 0755 ~/.labtui/labtui-notebook {CONTROL}\n"
               f"sudo mkdir -p /etc/labtui {posixpath.dirname(PER_BOOT)}\n"
               f"sudo tee {CONFIG} >/dev/null\nsudo chmod 0644 {CONFIG}\n"
               f"printf %s {shlex.quote(hook)} | sudo tee {PER_BOOT} >/dev/null\n"
               f"sudo chmod 0755 {PER_BOOT}\n"
               f"mkdir -p {shlex.quote(workdir_rel(cfg))}\n"
               f"{CONTROL} start --wait {wait:g}")
    return ssh.run(client, command, stdin=config, timeout=wait + 60,
                   on_line=lambda stream, text: log(stream, redact(text, seat_token)))


# ------------------------------------------------------------------------ status, restart

@dataclass(frozen=True)
class Status:
    seat: str
    state: str                 # up, starting, failing, down, refuses the token, unknown
    kernels: int = 0
    busy: int = 0
    restarts: int = 0
    address: str | None = None
    port: int | None = None
    log: tuple[str, ...] = ()
    error: str | None = None

    @property
    def short(self) -> str:
        if self.state == "up":
            return f"up, {self.busy} busy" if self.busy else "up"
        return self.state

    def as_json(self) -> dict[str, Any]:
        return {"seat": self.seat, "state": self.state, "kernels": self.kernels,
                "busy": self.busy, "restarts": self.restarts, "address": self.address,
                "port": self.port, "log": list(self.log), "error": self.error}


def parse_status(seat: str, text: str, seat_token: str | None = None) -> Status:
    try:
        data = json.loads(text)
    except ValueError:
        return Status(seat, "unknown", error=redact(text.strip()[-200:], seat_token))
    return Status(seat, str(data.get("state", "unknown")), int(data.get("kernels") or 0),
                  int(data.get("busy") or 0), int(data.get("restarts") or 0),
                  data.get("address"), data.get("port"),
                  tuple(redact(str(line), seat_token) for line in data.get("log") or ()))


def status(remote: Remote, machine: Machine, state: CourseState) -> Status:
    """What the seat's notebook server is doing, asked on the machine (one SSH command)."""
    client = remote.connect(machine, wait=10)
    lines: list[str] = []
    try:
        code = ssh.run(client, f"if [ -x {CONTROL} ]; then {CONTROL} status --json; else "
                               "echo '{\"state\": \"not installed\"}'; fi", timeout=30,
                       on_line=lambda _s, text: lines.append(text))
    finally:
        client.close()
    found = parse_status(machine.seat, lines[-1] if lines else "", token(state, machine.seat))
    if code not in (0, 3) and found.state == "unknown":
        return Status(machine.seat, "unknown", error=f"labtui-notebook exited {code}")
    return found


def restart(remote: Remote, machine: Machine, state: CourseState,
            on_line: Callable[[str, str], None], wait: float = 120) -> int:
    """Restart the seat's notebook server and wait until it answers."""
    client = remote.connect(machine, wait=10)
    seat_token = token(state, machine.seat)
    try:
        return ssh.run(client, f"{CONTROL} restart --wait {wait:g}", timeout=wait + 30,
                       on_line=lambda s, text: on_line(s, redact(text, seat_token)))
    finally:
        client.close()


# ------------------------------------------------------------------------------- tunnels

def listen_host(remote: Remote, machine: Machine) -> str:
    """Where the server listens, seen from the machine: 127.0.0.1 on EC2; the sandbox's
    machines share one loopback, so there it is the machine's own address."""
    if remote.resolver.loopback_only:
        where = remote.resolver.address(machine.raw)
        if where:
            return where[0]
    return "127.0.0.1"


def url(port: int, seat_token: str | None, server: str = "lab") -> str:
    path = {"lab": "lab", "notebook": "tree"}.get(server, "")
    base = f"http://127.0.0.1:{port}/{path}"
    return base + (f"?token={seat_token}" if seat_token else "")


@dataclass
class Check:
    answers: bool
    kernels: int = 0
    busy: tuple[str, ...] = ()
    error: str | None = None


@dataclass
class Tunnel:
    """A local port (127.0.0.1, chosen free) forwarded over the seat's SSH connection to its
    notebook server (paramiko ``direct-tcpip``), until :meth:`close`."""

    client: paramiko.SSHClient
    target: tuple[str, int]
    seat_token: str = field(repr=False)
    local_port: int = 0
    _server: socket.socket | None = field(default=None, init=False, repr=False)
    _closed: threading.Event = field(default_factory=threading.Event, init=False, repr=False)

    def start(self) -> Tunnel:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.local_port))
        server.listen(16)
        self._server = server
        self.local_port = server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name="notebook-tunnel").start()
        return self

    def _accept(self) -> None:
        assert self._server is not None
        while not self._closed.is_set():
            try:
                conn, peer = self._server.accept()
            except OSError:
                return
            transport = self.client.get_transport()
            try:
                if transport is None:
                    raise paramiko.SSHException("the SSH connection is closed")
                chan = transport.open_channel("direct-tcpip", self.target, peer, timeout=15)
            except (paramiko.SSHException, OSError, EOFError):
                conn.close()
                continue
            threading.Thread(target=_pump, args=(conn, chan, self._closed), daemon=True).start()

    @property
    def is_open(self) -> bool:
        transport = self.client.get_transport()
        return not self._closed.is_set() and transport is not None and transport.is_active()

    def check(self, timeout: float = 5.0) -> Check:
        """Ask the server through the tunnel (with the token) which kernels run."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        request = urllib.request.Request(f"http://127.0.0.1:{self.local_port}/api/kernels",
                                         headers={"Authorization": f"token {self.seat_token}"})
        try:
            with opener.open(request, timeout=timeout) as answer:
                kernels = json.loads(answer.read().decode() or "[]")
        except urllib.error.HTTPError as e:
            return Check(False, error=f"the server answered HTTP {e.code}")
        except (OSError, ValueError) as e:
            return Check(False, error=redact(f"no answer through the tunnel: {e}",
                                             self.seat_token))
        busy = tuple(str(k.get("name", "?")) for k in kernels
                     if isinstance(k, dict) and k.get("execution_state") == "busy")
        return Check(True, len(kernels) if isinstance(kernels, list) else 0, busy)

    def close(self) -> None:
        self._closed.set()
        if self._server is not None:
            self._server.close()
        self.client.close()


def _pump(conn: socket.socket, chan: paramiko.Channel, closed: threading.Event) -> None:
    try:
        while not closed.is_set():
            ready, _, _ = select.select([conn, chan], [], [], 0.5)
            if conn in ready:
                data = conn.recv(65536)
                if not data:
                    break
                chan.sendall(data)
            if chan in ready:
                data = chan.recv(65536)
                if not data:
                    break
                conn.sendall(data)
    except (OSError, EOFError, paramiko.SSHException):
        pass
    finally:
        chan.close()
        conn.close()


def open_tunnel(remote: Remote, machine: Machine, course: Course, state: CourseState,
                local_port: int = 0) -> Tunnel:
    """A tunnel to the seat's notebook server (SshError when the machine is unreachable,
    NotebookError when the seat has no token: its setup has not run)."""
    assert course.jupyter is not None
    seat_token = token(state, machine.seat)
    if not seat_token:
        raise NotebookError(f"{machine.seat}: no notebook token yet (its setup has not run). "
                            f"Fix: `labtui rerun-setup {course.path.name} {machine.seat}`")
    client = remote.connect(machine, wait=10)
    target = (listen_host(remote, machine), course.jupyter.port)
    return Tunnel(client, target, seat_token, local_port).start()
