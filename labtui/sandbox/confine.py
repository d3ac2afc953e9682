"""Keep a sandbox instance's commands inside the instance's own folder.

Every sandbox instance has a folder ``instances/<id>/`` holding ``root/`` (the instance's "/")
and ``journal.log``. Commands arriving over SSH run in a *real* shell on this machine (as
whatever user labtui runs as — often root), so this module does two things before and while
they run:

1. **Rewriting the command text** (:func:`rewrite_command`). Absolute paths under the system
   folders a setup writes to (``/etc``, ``/home``, ``/root``, ``/opt``, ``/srv``, ``/var``,
   ``/tmp``, ``/mnt``, ``/media``, ``/run``, ``/boot``, ``/data``, ``/swapfile``,
   ``/usr/local``, ``/snap``) are moved under the instance root; absolute invocations of
   intercepted programs (``/usr/bin/apt-get``, ``/usr/sbin/chpasswd``, ``/sbin/reboot``, ...)
   become the shim; ``python3 -m pip`` and any ``.../pip`` become the pip shim. Paths already
   inside the instance, the shims folder and this Python installation are left alone, so the
   rewrite is idempotent.
2. **Shims** (``shims/<name>``, first on PATH; each is a two-line ``sh`` script that runs this
   file as ``python -I -S confine.py <name> ...``). They write a journal line and simulate the
   effect labtui must see: sudo/su (journal, then run the rest with the shims still first on
   PATH), apt/apt-get/apt-cache/dpkg/dpkg-query/yum/dnf/rpm/snap/pip/pip3 (a package list in
   ``root/var/lib/labtui/packages.txt``; nothing is downloaded or installed), systemctl/service
   (unit states in ``root/var/lib/labtui/services.json``), passwd/chpasswd (salted PBKDF2
   hashes in ``root/etc/shadow``; the journal never holds a password), useradd/adduser/usermod/
   groupadd (``root/etc/passwd`` and ``root/etc/group``), reboot/shutdown/poweroff/halt,
   hostname/hostnamectl, whoami/id (answer as the SSH user, or root under sudo), bash/sh (a
   script file, ``-c`` string or script on stdin is rewritten like the command text), curl/wget
   (only loopback URLs reach the real tool) and a few system tools that are journaled and do
   nothing (timedatectl, ufw, iptables, mount, umount, modprobe, swapon, swapoff, sysctl,
   locale-gen, update-locale, update-alternatives, chsh, userdel, crontab).

Privileged shims behave like the real tools for a non-root user: ``apt-get install``,
``systemctl restart``, ``chpasswd``, ``useradd`` ... fail unless run through ``sudo`` (or by
logging in as root), so a setup that forgets ``sudo`` fails in the sandbox as on AWS.
Simulated failures for tests: a package named ``labtui-missing-*`` (or containing
``nonexistent``) cannot be found by apt/yum/dnf/pip.

The environment of an instance command is built from scratch (:func:`instance_env`): no host
variables (credentials!) leak in; ``http(s)_proxy`` point at a dead loopback port,
``PIP_NO_INDEX=1`` and ``GIT_ALLOW_PROTOCOL=file`` so tools that were not intercepted still
cannot reach the network.

Login shells (``bash -l``, ``sudo -i``, ``su -``) read the instance's profile files, never
the host's ``/etc/profile`` (which may reset PATH and drop the shims).

Limits — this is a harness for labtui's own setup, intercepting by *name*, **not a security
boundary against a hostile course file**: a path assembled at run time (``"/e""tc"``), a
relative path after ``cd /``, a program that writes files itself (a Python script run from a
file, an executable ``./script.sh`` not started through sudo/bash/sh), a command run with a
PATH that no longer starts with the shims (``env -i``, ``PATH=/usr/bin:/bin apt-get ...``),
or an un-intercepted privileged tool reached some other way, does run on the host. File
writes under the rewritten folders are not permission-checked (``echo x > /etc/f`` works
without sudo). The commands run as the user running labtui (often root on a CI machine).

This module imports only the standard library: shims execute it directly as a script.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import hashlib
import hmac
import json
import os
import posixpath
import re
import secrets
import shlex
import sys
import time
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path

SHIMS_DIR = Path(__file__).resolve().parent / "shims"
CONFINE_PY = Path(__file__).resolve()

# Top-level folders whose absolute paths are moved under the instance root.
CONFINED_PREFIXES = (
    "usr/local", "etc", "home", "root", "opt", "srv", "var", "tmp", "mnt", "media", "run",
    "boot", "data", "swapfile", "snap",
)

# Programs with a shim (file name in shims/).
SHIM_NAMES = (
    "sudo", "su", "apt", "apt-get", "apt-cache", "dpkg", "dpkg-query", "yum", "dnf", "rpm",
    "snap", "pip", "pip3", "systemctl", "service", "passwd", "chpasswd", "useradd", "adduser",
    "usermod", "groupadd", "userdel", "reboot", "shutdown", "poweroff", "halt", "hostnamectl",
    "hostname", "timedatectl", "whoami", "id", "bash", "sh", "curl", "wget", "ufw", "iptables",
    "mount", "umount", "modprobe", "swapon", "swapoff", "sysctl", "locale-gen",
    "update-locale", "update-alternatives", "chsh", "crontab",
)

USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEAD_PROXY = "http://127.0.0.1:9"

# -------------------------------------------------------------------------------- layout


def state_dir(root: Path) -> Path:
    return Path(root) / "var" / "lib" / "labtui"


def home_rel(user: str) -> str:
    """The instance-absolute home folder of ``user`` ("/root" or "/home/<user>")."""
    return "/root" if user == "root" else f"/home/{user}"


def home_dir(root: Path, user: str) -> Path:
    return Path(root) / home_rel(user).lstrip("/")


def valid_user(user: str) -> bool:
    return bool(USER_RE.match(user or ""))


_OS_RELEASE = """PRETTY_NAME="Ubuntu 24.04 LTS (labtui sandbox)"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=noble
"""

_SSHD_CONFIG = """# labtui sandbox: this instance's OpenSSH server configuration.
# As with OpenSSH, the first value obtained for a keyword wins.
Include /etc/ssh/sshd_config.d/*.conf

KbdInteractiveAuthentication no
#PasswordAuthentication yes
UsePAM yes
X11Forwarding yes
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
"""


def prepare_root(root: Path, hostname: str) -> None:
    """Create the instance's folders and seed files that are missing (never overwrites)."""
    root = Path(root)
    for sub in ("", "etc", "etc/ssh", "etc/ssh/sshd_config.d", "home", "root", "tmp", "opt",
                "srv", "mnt", "run", "var", "var/log", "var/lib", "var/lib/labtui",
                "usr", "usr/local", "usr/local/bin", "usr/local/sbin"):
        d = root / sub
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
    seeds = {
        "etc/hostname": hostname + "\n",
        "etc/hosts": f"127.0.0.1 localhost\n127.0.1.1 {hostname}\n",
        "etc/os-release": _OS_RELEASE,
        "etc/passwd": "root:x:0:0:root:/root:/bin/bash\n",
        "etc/group": "root:x:0:\nsudo:x:27:\n",
        "etc/shadow": "root:*:19700:0:99999:7:::\n",
        "etc/motd": "",
        "etc/ssh/sshd_config": _SSHD_CONFIG,
    }
    for rel, text in seeds.items():
        p = root / rel
        if not p.exists():
            _write_atomic(p, text, 0o600 if rel == "etc/shadow" else 0o644)


def _write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _state_lock(root: Path) -> Iterator[None]:
    import fcntl

    d = state_dir(root)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(d / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def ensure_user(root: Path, user: str) -> Path:
    """Make ``user`` exist on the instance (passwd/group entry and home). Returns the home."""
    if not valid_user(user):
        raise ValueError("invalid user name")
    root = Path(root)
    home = home_dir(root, user)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    if user != "root":
        with _state_lock(root):
            _add_passwd_entry(root, user)
    return home


def _read_lines(path: Path) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


def _add_passwd_entry(root: Path, user: str, shell: str = "/bin/bash") -> bool:
    passwd = Path(root) / "etc" / "passwd"
    lines = _read_lines(passwd)
    if any(line.split(":", 1)[0] == user for line in lines):
        return False
    uids = [int(p[2]) for p in (line.split(":") for line in lines) if len(p) > 2
            and p[2].isdigit()]
    uid = max([999] + [u for u in uids if u < 60000]) + 1
    lines.append(f"{user}:x:{uid}:{uid}::{home_rel(user)}:{shell}")
    _write_atomic(passwd, "\n".join(lines) + "\n")
    group = Path(root) / "etc" / "group"
    glines = _read_lines(group)
    if not any(g.split(":", 1)[0] == user for g in glines):
        glines.append(f"{user}:x:{uid}:")
        _write_atomic(group, "\n".join(glines) + "\n")
    shadow = Path(root) / "etc" / "shadow"
    slines = _read_lines(shadow)
    if not any(s.split(":", 1)[0] == user for s in slines):
        slines.append(f"{user}:!:{_days()}:0:99999:7:::")
        _write_atomic(shadow, "\n".join(slines) + "\n", 0o600)
    return True


def _uid_of(root: Path | None, user: str) -> int:
    if user == "root":
        return 0
    if root is not None:
        for line in _read_lines(Path(root) / "etc" / "passwd"):
            p = line.split(":")
            if len(p) > 3 and p[0] == user and p[2].isdigit():
                return int(p[2])
    return 1000


def _days() -> int:
    return int(time.time() // 86400)


# -------------------------------------------------------------------------------- journal


def journal(journal_path: Path | str, text: str, *, root: Path | str | None = None) -> None:
    """Append one line ``<UTC timestamp> <text>`` to the journal (passwords redacted)."""
    import fcntl

    line = redact(display(text, root)).replace("\n", " ").replace("\r", " ")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    data = f"{stamp} {line}\n".encode("utf-8", "replace")
    fd = os.open(journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, data)
    finally:
        os.close(fd)


def display(text: str, root: Path | str | None = None) -> str:
    """Show host paths of the instance as the instance sees them (for the journal)."""
    if root:
        r = str(root).rstrip("/")
        text = text.replace(r + "/", "/").replace(r, "/")
    text = text.replace(str(SHIMS_DIR) + "/", "")
    return text


_REDACT_PAIR = re.compile(r"(\b[a-z_][a-z0-9_.-]*):(?!\*\*\*)([^\s:'\"|;&]+)")
_REDACT_OPT = re.compile(r"(--?(?:p|password|passwd)(?:=|\s+))(\S+)", re.I)


def redact(text: str) -> str:
    """Hide anything that looks like a password in a command line about passwords."""
    if re.search(r"passw|chpasswd|\bpw\b|secret", text, re.I):
        text = _REDACT_PAIR.sub(r"\1:***", text)
        text = _REDACT_OPT.sub(r"\1***", text)
    return text


# -------------------------------------------------------------------------------- rewriting

_BOUNDARY_BEFORE = r"(?:^|(?<=[\s'\"=<>();|&:,`{}\[]))"
_AFTER_CHARS = r"\s'\"`;|&()<>:,}\]"
_END = rf"(?=$|[{_AFTER_CHARS}])"
_END_OR_SLASH = rf"(?=/|$|[{_AFTER_CHARS}])"


@lru_cache(maxsize=64)
def _rewriter(root: str, shims: str, keep: tuple[str, ...]) -> re.Pattern[str]:
    keep_alts = "|".join(re.escape(k) for k in sorted(set(keep), key=len, reverse=True) if k)
    names = "|".join(re.escape(n) for n in sorted(SHIM_NAMES, key=len, reverse=True))
    prefixes = "|".join(re.escape(p) for p in CONFINED_PREFIXES)
    alts = []
    if keep_alts:
        alts.append(rf"(?P<keep>(?:{keep_alts}){_END_OR_SLASH}[^{_AFTER_CHARS}]*)")
    alts.append(rf"(?P<prog>(?:/usr)?(?:/local)?/s?bin/(?P<progname>{names})){_END}")
    alts.append(rf"(?P<pymod>(?:[\w./~-]*/)?python(?:3(?:\.\d+)?)?\s+-m\s+pip3?){_END}")
    alts.append(rf"(?P<pip>[\w./~-]*/pip3?(?:\.\d+)?|pip3\.\d+){_END}")
    alts.append(rf"(?P<path>/(?:{prefixes})){_END_OR_SLASH}")
    return re.compile(_BOUNDARY_BEFORE + "(?:" + "|".join(alts) + ")")


def _keep_paths(root: Path | str) -> tuple[str, ...]:
    """Paths the rewrite leaves alone: the instance itself, the shims, this Python."""
    import sysconfig

    keep = {str(root).rstrip("/"), str(Path(root).parent), str(SHIMS_DIR),
            str(CONFINE_PY.parent), sys.executable, os.path.realpath(sys.executable),
            sysconfig.get_paths().get("stdlib", ""), sysconfig.get_paths().get("purelib", "")}
    if os.path.basename(sys.prefix.rstrip("/")) not in ("usr", "local", ""):
        keep.add(sys.prefix)  # e.g. a virtualenv or pyenv folder, never /usr or /usr/local
    extra = os.environ.get("LABTUI_KEEP_PATHS", "")
    keep.update(p for p in extra.split(":") if p.startswith("/"))
    out = set()
    for k in keep:
        k = k.rstrip("/")
        # never keep a whole confined folder (or a parent of one)
        if not k or any(("/" + c).startswith(k + "/") or "/" + c == k
                        for c in CONFINED_PREFIXES):
            continue
        out.add(k)
    return tuple(sorted(out))


def rewrite_command(text: str, root: Path | str, shims: Path | str = SHIMS_DIR) -> str:
    """Rewrite a shell command so it acts on the instance root instead of the host."""
    root_s = str(root).rstrip("/")
    shims_s = str(shims).rstrip("/")
    rx = _rewriter(root_s, shims_s, _keep_paths(root_s))

    def sub(m: re.Match[str]) -> str:
        if m.group("keep"):
            return m.group(0)
        if m.group("prog"):
            return f"{shims_s}/{m.group('progname')}"
        if m.group("pymod") or m.group("pip"):
            return f"{shims_s}/pip"
        return root_s + m.group("path")

    return rx.sub(sub, text)


def to_instance_path(host_path: str, root: Path | str) -> str:
    r = str(root).rstrip("/")
    if host_path == r:
        return "/"
    if host_path.startswith(r + "/"):
        return host_path[len(r):]
    return host_path


# -------------------------------------------------------------------------------- SFTP paths


def confine_path(root: Path | str, path: str, user: str, *, follow: bool = True) -> Path:
    """Map an instance path (absolute, or relative to the user's home) to a host path.

    ``..`` cannot climb above the instance's "/" (chroot semantics). The result, with
    symlinks resolved (all of them if ``follow``, else all but the last component), must lie
    inside the instance root; otherwise PermissionError.
    """
    root_real = os.path.realpath(str(root))
    if not path.startswith("/"):
        path = posixpath.join(home_rel(user), path)
    norm = posixpath.normpath("/" + path.lstrip("/"))
    norm = norm.lstrip("/")
    candidate = os.path.join(root_real, norm) if norm and norm != "." else root_real
    if follow or candidate == root_real:
        real = os.path.realpath(candidate)
    else:
        parent, name = os.path.split(candidate)
        real = os.path.join(os.path.realpath(parent), name)
    if real != root_real and not real.startswith(root_real + os.sep):
        raise PermissionError(13, "Permission denied", path)
    return Path(real)


def instance_path(root: Path | str, host_path: str | Path) -> str:
    """The instance-absolute form of a host path inside the root."""
    root_real = os.path.realpath(str(root))
    p = str(host_path)
    if p == root_real:
        return "/"
    if p.startswith(root_real + os.sep):
        return p[len(root_real):]
    raise PermissionError(13, "Permission denied", p)


# -------------------------------------------------------------------------------- passwords

_HASH_TAG = "$labtui-pbkdf2-sha256$"
_ITERATIONS = 120_000


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    dk = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, _ITERATIONS)
    return (f"{_HASH_TAG}{_ITERATIONS}${base64.b64encode(salt).decode()}$"
            f"{base64.b64encode(dk).decode()}")


def _verify_hash(stored: str, password: str) -> bool:
    if not stored.startswith(_HASH_TAG):
        return False
    try:
        iters_s, salt_b, dk_b = stored[len(_HASH_TAG):].split("$")
        salt = base64.b64decode(salt_b)
        want = base64.b64decode(dk_b)
        got = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, int(iters_s))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(want, got)


def set_password_hash(root: Path, user: str, hashed: str) -> None:
    """Store an already-hashed password field for ``user`` in the instance's /etc/shadow."""
    shadow = Path(root) / "etc" / "shadow"
    with _state_lock(root):
        lines = _read_lines(shadow)
        out, found = [], False
        for line in lines:
            parts = line.split(":")
            if parts and parts[0] == user:
                parts += [""] * (9 - len(parts))
                parts[1], parts[2] = hashed, str(_days())
                line, found = ":".join(parts[:9]), True
            out.append(line)
        if not found:
            out.append(f"{user}:{hashed}:{_days()}:0:99999:7:::")
        _write_atomic(shadow, "\n".join(out) + "\n", 0o600)


def set_password(root: Path, user: str, password: str) -> None:
    set_password_hash(root, user, hash_password(password))


def _shadow_field(root: Path, user: str) -> str | None:
    for line in _read_lines(Path(root) / "etc" / "shadow"):
        parts = line.split(":")
        if len(parts) > 1 and parts[0] == user:
            return parts[1]
    return None


def check_password(root: Path, user: str, password: str) -> bool:
    field = _shadow_field(root, user)
    return bool(field) and _verify_hash(field, password)


def password_auth_enabled(root: Path) -> bool:
    """Whether the instance's sshd_config enables passwords (first value wins, as in sshd)."""
    value = _sshd_option(Path(root), "etc/ssh/sshd_config", "passwordauthentication", depth=0)
    return (value or "no").lower() == "yes"


def _sshd_option(root: Path, rel: str, key: str, depth: int) -> str | None:
    if depth > 8:
        return None
    for raw in _read_lines(root / rel):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.replace("=", " ", 1).split(None, 1)
        word = parts[0].lower()
        if word == "match":
            return None  # only the global section
        if word == "include" and len(parts) > 1:
            for pattern in parts[1].split():
                if not pattern.startswith("/"):
                    pattern = "/etc/ssh/" + pattern
                import glob

                base = str(root)
                for hit in sorted(glob.glob(base + pattern)):
                    v = _sshd_option(root, os.path.relpath(hit, base), key, depth + 1)
                    if v is not None:
                        return v
            continue
        if word == key and len(parts) > 1:
            return parts[1].strip().split()[0]
    return None


# -------------------------------------------------------------------------------- packages

_MANAGERS = {"apt": "apt", "apt-get": "apt", "dpkg": "apt", "yum": "rpm", "dnf": "rpm",
             "rpm": "rpm", "snap": "snap", "pip": "pip", "pip3": "pip"}


def _pkg_file(root: Path) -> Path:
    return state_dir(root) / "packages.txt"


def installed_packages(root: Path, manager: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in _read_lines(_pkg_file(root)):
        parts = line.split("\t")
        if len(parts) == 3 and parts[0] == manager:
            out[parts[1]] = parts[2]
    return out


def _update_packages(root: Path, manager: str, add: dict[str, str] | None = None,
                     remove: Iterable[str] = ()) -> None:
    with _state_lock(root):
        rows = [line.split("\t") for line in _read_lines(_pkg_file(root))]
        rows = [r for r in rows if len(r) == 3]
        drop = set(remove) | set(add or {})
        key = (lambda r: r[1].lower()) if manager == "pip" else (lambda r: r[1])
        norm = {d.lower() if manager == "pip" else d for d in drop}
        rows = [r for r in rows if not (r[0] == manager and key(r) in norm)]
        for name, ver in (add or {}).items():
            rows.append([manager, name, ver])
        _write_atomic(_pkg_file(root), "".join("\t".join(r) + "\n" for r in rows))


def _missing(name: str) -> bool:
    return name.startswith("labtui-missing") or "nonexistent" in name


# -------------------------------------------------------------------------------- environment


def instance_env(root: Path | str, user: str, journal_path: Path | str, *,
                 shims: Path | str = SHIMS_DIR, term: str | None = None,
                 extra: dict[str, str] | None = None) -> dict[str, str]:
    """The complete environment of a command on the instance (nothing from the host)."""
    root = Path(root)
    home = home_dir(root, user)
    host_path = os.environ.get("PATH") or DEFAULT_PATH
    parts = [str(shims), str(root / "usr/local/sbin"), str(root / "usr/local/bin")]
    parts += [p for p in host_path.split(":") if p and p != str(shims)]
    env = {
        "HOME": str(home),
        "USER": user,
        "LOGNAME": user,
        "SHELL": "/bin/bash",
        "PATH": ":".join(parts),
        "LANG": "C.UTF-8",
        "TMPDIR": str(root / "tmp"),
        "LABTUI_INSTANCE_ROOT": str(root),
        "LABTUI_JOURNAL": str(journal_path),
        "LABTUI_SHIMS": str(shims),
        "LABTUI_PYTHON": sys.executable,
        "LABTUI_CONFINE": str(CONFINE_PY),
        "LABTUI_LOGIN_USER": user,
        # Nothing that escaped interception may reach the network.
        "http_proxy": DEAD_PROXY, "https_proxy": DEAD_PROXY, "ftp_proxy": DEAD_PROXY,
        "HTTP_PROXY": DEAD_PROXY, "HTTPS_PROXY": DEAD_PROXY, "all_proxy": DEAD_PROXY,
        "no_proxy": "127.0.0.1,localhost,::1", "NO_PROXY": "127.0.0.1,localhost,::1",
        "PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull,
        "GIT_ALLOW_PROTOCOL": "file",
        "DEBIAN_FRONTEND": "noninteractive",
    }
    if term:
        env["TERM"] = term
    if extra:
        env.update(extra)
    return env


# ================================================================================ shims
# Everything below runs inside a shim process: ``python -I -S confine.py <name> args...``.


class _Ctx:
    def __init__(self, name: str) -> None:
        self.name = name
        self.root = Path(os.environ.get("LABTUI_INSTANCE_ROOT") or "/nonexistent-labtui-root")
        self.journal_path = os.environ.get("LABTUI_JOURNAL") or str(self.root.parent /
                                                                    "journal.log")
        self.shims = os.environ.get("LABTUI_SHIMS") or str(SHIMS_DIR)
        self.user = os.environ.get("USER") or "ubuntu"
        self.via_sudo = os.environ.pop("LABTUI_VIA_SUDO", "") == "1"

    @property
    def is_root(self) -> bool:
        return self.user == "root"

    def log(self, text: str) -> None:
        prefix = "sudo " if self.via_sudo else ""
        with contextlib.suppress(OSError):
            journal(self.journal_path, prefix + text, root=self.root)

    def cmdline(self, args: list[str]) -> str:
        return shlex.join([self.name, *args])

    def need_root(self, args: list[str], message: str, code: int = 1) -> int | None:
        if self.is_root:
            return None
        self.log(f"{self.cmdline(args)} (refused: not root)")
        err(message)
        return code


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _real(name: str, shims: str) -> str | None:
    for d in (os.environ.get("PATH") or DEFAULT_PATH).split(":") + DEFAULT_PATH.split(":"):
        if not d or os.path.realpath(d) == os.path.realpath(shims):
            continue
        p = os.path.join(d, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def _exec(argv: list[str], env: dict[str, str] | None = None) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        if env is None:
            os.execvp(argv[0], argv)
        os.execvpe(argv[0], argv, env)
    except FileNotFoundError:
        err(f"{argv[0]}: command not found")
        return 127
    except PermissionError:
        err(f"{argv[0]}: Permission denied")
        return 126
    except OSError as e:
        err(f"unable to execute {argv[0]}: {e.strerror}")
        return 126
    return 0  # pragma: no cover


# -------------------------------------------------------------------------------- sudo / su


def _shebang_shell(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            first = f.readline(200)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode("utf-8", "replace").split()
    if not words:
        return None
    prog = os.path.basename(words[0])
    if prog == "env" and len(words) > 1:
        prog = os.path.basename(words[1])
    return prog if prog in ("bash", "sh", "dash") else None


def _become(ctx: _Ctx, user: str, env: dict[str, str]) -> dict[str, str]:
    login = os.environ.get("LABTUI_LOGIN_USER") or ctx.user
    env = dict(env)
    env["USER"] = env["LOGNAME"] = user
    home = home_dir(ctx.root, user)
    with contextlib.suppress(OSError, ValueError):
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
    env["HOME"] = str(home)
    if user == "root":
        env["SUDO_USER"] = login
        env["SUDO_UID"] = str(_uid_of(ctx.root, login))
    return env


def _run_as(ctx: _Ctx, argv: list[str], env: dict[str, str], journal_text: str) -> int:
    prog = argv[0]
    base = os.path.basename(prog)
    shim_dir = os.path.realpath(ctx.shims)
    resolved = prog if "/" in prog else (_which(prog, env.get("PATH", "")) or prog)
    is_shim = os.path.realpath(os.path.dirname(resolved)) == shim_dir and base in SHIM_NAMES
    if is_shim and base not in ("bash", "sh", "su", "sudo"):
        env["LABTUI_VIA_SUDO"] = "1"
    else:
        ctx.log(journal_text)
    if not is_shim and os.path.isfile(resolved):
        shell = _shebang_shell(resolved)
        if shell:
            # An executable shell script: rewrite it like any command text.
            return _exec([os.path.join(ctx.shims, "bash" if shell == "bash" else "sh"),
                          resolved, *argv[1:]], env)
    return _exec(argv, env)


def _which(name: str, path: str) -> str | None:
    for d in path.split(":"):
        p = os.path.join(d or ".", name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def shim_sudo(ctx: _Ctx, args: list[str]) -> int:
    target, login_shell, shell_mode, only = "root", False, False, None
    env = dict(os.environ)
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        if a in ("-u", "--user", "-g", "--group", "-p", "--prompt", "-C", "-h", "--host",
                 "-r", "-t", "-T", "-D", "--chdir"):
            if a in ("-u", "--user") and i + 1 < len(args):
                target = args[i + 1]
            i += 2
            continue
        if a.startswith("--user="):
            target = a.split("=", 1)[1]
        elif a.startswith("-u") and len(a) > 2:
            target = a[2:]
        elif a in ("-i", "--login"):
            login_shell = True
        elif a in ("-s", "--shell"):
            shell_mode = True
        elif a in ("-v", "--validate", "-k", "-K", "--reset-timestamp", "--remove-timestamp"):
            only = only or "ok"
        elif a in ("-l", "--list"):
            only = "list"
        elif a in ("-V", "--version"):
            only = "version"
        elif a == "-S" or a == "--stdin":
            if not sys.stdin.isatty():
                with contextlib.suppress(OSError):
                    sys.stdin.readline()  # the password; sudo is passwordless here
        # -E, -H, -n, -b, -P, --preserve-env[=...]: accepted, nothing to do
        elif a.startswith("-") and not a.startswith("--") and len(a) > 2:
            # combined short flags such as -nE, -iu ubuntu is not combined in practice
            flags = a[1:]
            if "i" in flags:
                login_shell = True
            if "s" in flags:
                shell_mode = True
            if flags.endswith("u") and i + 1 < len(args):
                target = args[i + 1]
                i += 1
        i += 1
    rest = args[i:]
    if target.startswith("#"):
        target = "root" if target == "#0" else "ubuntu"
    if not valid_user(target):
        err(f"sudo: unknown user {target}")
        return 1
    if only == "version":
        out("Sudo version 1.9.15p5 (labtui sandbox)")
        return 0
    if only == "list" and not rest:
        out(f"User {ctx.user} may run the following commands on this host:\n"
            "    (ALL : ALL) NOPASSWD: ALL")
        return 0
    if only and not rest:
        return 0
    while rest and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", rest[0]):
        k, v = rest.pop(0).split("=", 1)
        env[k] = v
    env = _become(ctx, target, env)
    line = "sudo " + (shlex.join(rest) if rest else ("-i" if login_shell else "-s"))
    if target != "root":
        line = f"sudo -u {target} " + line[5:]
    if login_shell or shell_mode:
        sh = os.path.join(ctx.shims, "bash")
        argv = [sh] + (["-l"] if login_shell else [])
        if rest:
            argv += ["-c", " ".join(rest)]
        ctx.log(line)
        if login_shell:
            with contextlib.suppress(OSError):
                os.chdir(env["HOME"])
        return _exec(argv, env)
    if not rest:
        err("usage: sudo [-u user] [-E] [-n] [-i|-s] command")
        return 1
    return _run_as(ctx, rest, env, line)


def shim_su(ctx: _Ctx, args: list[str]) -> int:
    target, command, login = "root", None, False
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-", "-l", "--login"):
            login = True
        elif a in ("-c", "--command") and i + 1 < len(args):
            command = args[i + 1]
            i += 1
        elif a.startswith("--command="):
            command = a.split("=", 1)[1]
        elif a in ("-s", "--shell") and i + 1 < len(args):
            i += 1
        elif a in ("-m", "-p", "--preserve-environment"):
            pass
        elif not a.startswith("-"):
            target = a
        i += 1
    if not ctx.is_root and target != ctx.user:
        ctx.log(f"{ctx.cmdline(args)} (refused: not root)")
        err("su: Authentication failure")
        return 1
    if not valid_user(target):
        err(f"su: user {target} does not exist or the user entry does not contain all the "
            "required fields")
        return 1
    env = _become(ctx, target, dict(os.environ))
    env.pop("SUDO_USER", None)
    ctx.log(ctx.cmdline(args))
    argv = [os.path.join(ctx.shims, "bash")] + (["-l"] if login else [])
    if command is not None:
        argv += ["-c", command]
    if login:
        with contextlib.suppress(OSError):
            os.chdir(env["HOME"])
    return _exec(argv, env)


# -------------------------------------------------------------------------------- bash / sh


def _real_shell(name: str) -> str:
    for p in (f"/bin/{name}", f"/usr/bin/{name}"):
        if os.path.exists(p):
            return p
    return "/bin/sh"


_SHELL_OPTS_WITH_ARG = {"-o", "+o", "-O", "+O", "--rcfile", "--init-file"}


def shim_shell(ctx: _Ctx, args: list[str]) -> int:
    real = _real_shell("bash" if ctx.name == "bash" else "sh")
    root = str(ctx.root)
    opts: list[str] = []
    i, has_c, has_s = 0, False, False
    while i < len(args):
        a = args[i]
        if a == "--":
            opts.append(a)
            i += 1
            break
        if a in _SHELL_OPTS_WITH_ARG and i + 1 < len(args):
            opts += [a, args[i + 1]]
            i += 2
            continue
        if (a.startswith("-") or a.startswith("+")) and len(a) > 1:
            if not a.startswith("--"):
                has_c = has_c or "c" in a[1:]
                has_s = has_s or "s" in a[1:]
            opts.append(a)
            i += 1
            continue
        break
    rest = args[i:]
    # A login shell would read the HOST's /etc/profile, which may reset PATH and drop the
    # shims: run the instance's profile files instead, then make sure the shims lead PATH.
    login = any(o == "--login" or (o.startswith("-") and not o.startswith("--")
                                   and "l" in o[1:]) for o in opts)
    if login:
        opts = [o for o in opts if o != "--login"]
        opts = [o.replace("l", "") if o.startswith("-") and not o.startswith("--") else o
                for o in opts]
        opts = [o for o in opts if o not in ("-", "+")]
    prelude = _login_prelude(root, ctx.shims, ctx.name) if login else ""
    if has_c:
        if rest:
            rest[0] = prelude + rewrite_command(rest[0], root, ctx.shims)
        return _exec([real, *opts, *rest])
    if rest and not has_s:
        script = rest[0]
        try:
            with open(script, encoding="utf-8", errors="surrogateescape") as f:
                body = f.read()
        except OSError:
            return _exec([real, *opts, *rest])  # the real shell reports the error
        return _exec([real, *opts, "-c", prelude + rewrite_command(body, root, ctx.shims),
                      *rest])
    if sys.stdin.isatty():
        # An interactive shell (sudo -i, su -, bash, sh): always bash with the rcfile that
        # rewrites each typed command line; the user's --norc/--rcfile cannot turn it off.
        rc = interactive_rcfile(Path(root), ctx.shims, login=login)
        keep = [o for o in opts if o not in ("-i", "--norc", "--noprofile", "--")
                and not (o.startswith("-") and not o.startswith("--") and "c" in o)]
        keep = [o for k, o in enumerate(keep) if o not in ("--rcfile", "--init-file") and
                not (k and keep[k - 1] in ("--rcfile", "--init-file"))]
        return _exec([_real_shell("bash"), "--rcfile", rc, "-i", *keep])
    body = sys.stdin.read()
    opts = [o for o in opts if o != "-s"]
    opts = [o.replace("s", "") if o.startswith("-") and not o.startswith("--") else o
            for o in opts]
    opts = [o for o in opts if o not in ("-", "+")]
    return _exec([real, *opts, "-c", prelude + rewrite_command(body, root, ctx.shims),
                  ctx.name, *rest])


def _login_prelude(root: str, shims: str, shell: str) -> str:
    profiles = ("~/.bash_profile", "~/.bash_login", "~/.profile") if shell == "bash" \
        else ("~/.profile",)
    chain = "if " + "; elif ".join(f"[ -r {p} ]; then . {p}" for p in profiles) + "; fi"
    q = shlex.quote
    return (f"[ -r {q(root + '/etc/profile')} ] && . {q(root + '/etc/profile')}; {chain}; "
            f'case ":$PATH:" in *:{q(shims)}:*) ;; *) PATH={q(shims)}:"$PATH";; esac\n')


def interactive_rcfile(root: Path, shims: Path | str = SHIMS_DIR, *, login: bool = False,
                       folder: Path | None = None) -> str:
    """Write (if needed) and return the bash rcfile of an interactive shell on the instance.

    Every command line typed is rewritten (a readline hook on Enter calls
    ``confine.py --rewrite``) before bash runs it, and the shims stay first on PATH.
    """
    root = Path(root)
    folder = Path(folder) if folder else root.parent
    path = folder / (".labtui-bashrc-login" if login else ".labtui-bashrc")
    q = shlex.quote
    host = _hostname(root)
    start = (_login_prelude(str(root), str(shims), "bash") if login
             else '[ -r ~/.bashrc ] && . ~/.bashrc\n')
    text = (
        "# labtui sandbox: interactive shell on an instance (command lines are rewritten)\n"
        + start
        + f'case ":$PATH:" in *:{q(str(shims))}:*) ;; *) PATH={q(str(shims))}:"$PATH";; esac\n'
        + f'if [ "$USER" = root ]; then PS1="root@{host}:\\w# "; '
        + f'else PS1="$USER@{host}:\\w\\$ "; fi\n'
        + "__labtui_rewrite() {\n"
        + '  READLINE_LINE=$("$LABTUI_PYTHON" -I -S "$LABTUI_CONFINE" --rewrite '
        + '"$READLINE_LINE")\n'
        + "  READLINE_POINT=${#READLINE_LINE}\n}\n"
        + "bind -x '\"\\C-x\\C-l\": __labtui_rewrite' 2>/dev/null\n"
        + "bind '\"\\C-x\\C-a\": accept-line' 2>/dev/null\n"
        + "bind '\"\\C-m\": \"\\C-x\\C-l\\C-x\\C-a\"' 2>/dev/null\n"
        + "bind '\"\\C-j\": \"\\C-x\\C-l\\C-x\\C-a\"' 2>/dev/null\n"
    )
    try:
        current = path.read_text(encoding="utf-8")
    except OSError:
        current = None
    if current != text:
        with contextlib.suppress(OSError):
            _write_atomic(path, text, 0o600)
    return str(path)


# -------------------------------------------------------------------------------- packages


def _apt_names(args: list[str]) -> tuple[list[str], dict[str, str]]:
    names: list[str] = []
    versions: dict[str, str] = {}
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a in _APT_OPTS_WITH_ARG:
            skip = True
            continue
        if a.startswith("-"):
            continue
        if a.endswith(".deb"):
            base = os.path.basename(a)[:-4]
            name, _, rest = base.partition("_")
            versions[name] = rest.partition("_")[0] or "1.0"
            names.append(name)
            continue
        name, _, ver = a.partition("=")
        name = name.split("/")[0].split(":")[0]
        if ver:
            versions[name] = ver
        names.append(name)
    return names, versions


_APT_HEAD = ["Reading package lists... Done", "Building dependency tree... Done",
             "Reading state information... Done"]


_APT_OPTS_WITH_ARG = {"-o", "-c", "-t", "--target-release", "--option", "--config-file",
                      "--default-release"}


def _apt_sub(args: list[str]) -> tuple[str, list[str]]:
    """The sub-command and the arguments after it (option values are not sub-commands)."""
    i = 0
    while i < len(args):
        a = args[i]
        if a in _APT_OPTS_WITH_ARG:
            i += 2
            continue
        if not a.startswith("-"):
            return a, args[:i] + args[i + 1:]
        i += 1
    return "", list(args)


def shim_apt(ctx: _Ctx, args: list[str]) -> int:
    sub, sub_args = _apt_sub(args)
    if ctx.name == "apt-cache":
        return _apt_cache(ctx, sub, sub_args)
    db = installed_packages(ctx.root, "apt")
    if sub in ("", "help"):
        out(f"{ctx.name} 2.7.14 (amd64) — labtui sandbox simulation")
        return 0
    if sub == "list":
        out("Listing... Done")
        for n, v in sorted(db.items()):
            out(f"{n}/noble,now {v} amd64 [installed]")
        return 0
    if sub in ("show", "policy", "search"):
        return _apt_cache(ctx, sub, sub_args)
    if sub in ("update", "upgrade", "dist-upgrade", "full-upgrade", "install", "reinstall",
               "remove", "purge", "autoremove", "clean", "autoclean"):
        refused = ctx.need_root(
            args, "E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: "
            "Permission denied)\nE: Unable to acquire the dpkg frontend lock "
            "(/var/lib/dpkg/lock-frontend), are you root?", 100)
        if refused is not None:
            return refused
    if sub == "update":
        out("Hit:1 http://archive.ubuntu.com/ubuntu noble InRelease (labtui sandbox)")
        out("Reading package lists... Done")
        if ctx.name == "apt":
            out("All packages are up to date.")
        ctx.log(f"{ctx.cmdline(args)} (simulated)")
        return 0
    if sub in ("upgrade", "dist-upgrade", "full-upgrade"):
        out("\n".join(_APT_HEAD))
        out("Calculating upgrade... Done")
        out("0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.")
        ctx.log(f"{ctx.cmdline(args)} (simulated: nothing to upgrade)")
        return 0
    if sub in ("clean", "autoclean", "autoremove"):
        if sub == "autoremove":
            out("\n".join(_APT_HEAD))
            out("0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.")
        ctx.log(f"{ctx.cmdline(args)} (simulated)")
        return 0
    names, versions = _apt_names(sub_args)
    if sub in ("install", "reinstall"):
        out("\n".join(_APT_HEAD))
        for n in names:
            if _missing(n):
                err(f"E: Unable to locate package {n}")
                ctx.log(f"{ctx.cmdline(args)} (simulated: failed, no package {n})")
                return 100
        new = [n for n in names if n not in db or sub == "reinstall"]
        for n in names:
            if n not in new:
                out(f"{n} is already the newest version ({db[n]}).")
        if new:
            out("The following NEW packages will be installed:")
            out("  " + " ".join(new))
        out(f"0 upgraded, {len(new)} newly installed, 0 to remove and 0 not upgraded.")
        for n in new:
            out(f"Setting up {n} ({versions.get(n, '1.0-labtui')}) ...")
        _update_packages(ctx.root, "apt", {n: versions.get(n, "1.0-labtui") for n in new})
        what = " ".join(new) if new else "nothing new"
        ctx.log(f"{ctx.cmdline(args)} (simulated: installed {what})")
        return 0
    if sub in ("remove", "purge"):
        out("\n".join(_APT_HEAD))
        gone = [n for n in names if n in db]
        for n in names:
            if n not in db:
                out(f"Package '{n}' is not installed, so not removed")
        out(f"0 upgraded, 0 newly installed, {len(gone)} to remove and 0 not upgraded.")
        for n in gone:
            out(f"Removing {n} ({db[n]}) ...")
        _update_packages(ctx.root, "apt", remove=gone)
        ctx.log(f"{ctx.cmdline(args)} (simulated: removed {' '.join(gone) or 'nothing'})")
        return 0
    ctx.log(f"{ctx.cmdline(args)} (simulated)")
    return 0


def _apt_cache(ctx: _Ctx, sub: str, args: list[str]) -> int:
    db = installed_packages(ctx.root, "apt")
    names = [a for a in args if not a.startswith("-")]
    if sub == "policy":
        for n in names:
            out(f"{n}:\n  Installed: {db.get(n, '(none)')}\n  Candidate: "
                f"{'(none)' if _missing(n) else db.get(n, '1.0-labtui')}")
        return 0
    if sub == "show":
        rc = 0
        for n in names:
            if _missing(n):
                err(f"E: No packages found for {n}")
                rc = 100
            else:
                out(f"Package: {n}\nVersion: {db.get(n, '1.0-labtui')}\n")
        return rc
    return 0


def shim_dpkg(ctx: _Ctx, args: list[str]) -> int:
    db = installed_packages(ctx.root, "apt")
    if ctx.name == "dpkg-query" or any(a in ("-s", "--status", "-l", "--list", "-W", "--show",
                                             "-L", "--listfiles", "--get-selections")
                                       for a in args):
        return _dpkg_query(ctx, args, db)
    if "--print-architecture" in args:
        out("amd64")
        return 0
    if any(a in ("-i", "--install", "-r", "--remove", "-P", "--purge") for a in args):
        refused = ctx.need_root(args, "dpkg: error: requested operation requires superuser "
                                "privilege", 2)
        if refused is not None:
            return refused
        files = [a for a in args if not a.startswith("-")]
        if any(a in ("-i", "--install") for a in args):
            names, versions = _apt_names(files)
            _update_packages(ctx.root, "apt", {n: versions.get(n, "1.0") for n in names})
            for n in names:
                out(f"Setting up {n} ({versions.get(n, '1.0')}) ...")
            ctx.log(f"{ctx.cmdline(args)} (simulated: installed {' '.join(names)})")
        else:
            _update_packages(ctx.root, "apt", remove=files)
            ctx.log(f"{ctx.cmdline(args)} (simulated: removed {' '.join(files)})")
        return 0
    ctx.log(f"{ctx.cmdline(args)} (simulated)")
    return 0


def _dpkg_query(ctx: _Ctx, args: list[str], db: dict[str, str]) -> int:
    fmt, mode, names = None, None, []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-f", "--showformat") and i + 1 < len(args):
            fmt = args[i + 1]
            i += 2
            continue
        if a.startswith("--showformat=") or a.startswith("-f="):
            fmt = a.split("=", 1)[1]
        elif a in ("-s", "--status"):
            mode = "s"
        elif a in ("-l", "--list"):
            mode = "l"
        elif a in ("-W", "--show"):
            mode = "W"
        elif a in ("-L", "--listfiles"):
            mode = "L"
        elif a == "--get-selections":
            mode = "sel"
        elif not a.startswith("-"):
            names.append(a)
        i += 1
    prog = "dpkg-query"
    if mode == "sel":
        for n in sorted(db):
            out(f"{n}\t\t\t\t\t\tinstall")
        return 0
    if mode == "l":
        out("Desired=Unknown/Install/Remove/Purge/Hold\n"
            "||/ Name           Version      Architecture Description\n"
            "+++-==============-============-============-=================================")
        rc = 0
        pats = names or ["*"]
        for p in pats:
            hits = [n for n in sorted(db) if fnmatch.fnmatchcase(n, p)]
            if not hits and names:
                err(f"{prog}: no packages found matching {p}")
                rc = 1
            for n in hits:
                out(f"ii  {n:<14} {db[n]:<12} amd64        (simulated by labtui)")
        return rc
    if mode == "W":
        rc = 0
        targets = names or sorted(db)
        for p in targets:
            hits = [n for n in sorted(db) if fnmatch.fnmatchcase(n, p)]
            if not hits:
                err(f"{prog}: no packages found matching {p}")
                rc = 1
            for n in hits:
                if fmt is None:
                    out(f"{n}\t{db[n]}")
                else:
                    text = (fmt.replace("${Package}", n).replace("${Version}", db[n])
                            .replace("${Status}", "install ok installed")
                            .replace("${db:Status-Abbrev}", "ii ")
                            .replace("${db:Status-Status}", "installed")
                            .replace("${Architecture}", "amd64"))
                    text = text.replace("\\n", "\n").replace("\\t", "\t")
                    sys.stdout.write(text)
        sys.stdout.flush()
        return rc
    if mode == "L":
        rc = 0
        for n in names:
            if n in db:
                out("/.")
            else:
                err(f"dpkg-query: package '{n}' is not installed")
                rc = 1
        return rc
    rc = 0
    if not names:
        err("dpkg-query: error: --status needs at least one package name argument")
        return 2
    for n in names:
        if n in db:
            out(f"Package: {n}\nStatus: install ok installed\nPriority: optional\n"
                f"Architecture: amd64\nVersion: {db[n]}\nDescription: {n} (simulated)\n")
        else:
            err(f"dpkg-query: package '{n}' is not installed and no information is "
                "available")
            rc = 1
    return rc


def shim_yum(ctx: _Ctx, args: list[str]) -> int:
    words = [a for a in args if not a.startswith("-")]
    sub = words[0] if words else ""
    names = words[1:]
    db = installed_packages(ctx.root, "rpm")
    if sub == "list":
        out("Installed Packages")
        for n, v in sorted(db.items()):
            out(f"{n}.x86_64    {v}    @labtui")
        return 0
    if sub in ("install", "remove", "erase", "update", "upgrade", "makecache", "clean",
               "groupinstall", "reinstall"):
        refused = ctx.need_root(args, "Error: This command has to be run with superuser "
                                "privileges (under the root user on most systems).")
        if refused is not None:
            return refused
    if sub in ("install", "reinstall", "groupinstall"):
        for n in names:
            if _missing(n):
                err(f"No match for argument: {n}\nError: Unable to find a match: {n}")
                ctx.log(f"{ctx.cmdline(args)} (simulated: failed, no package {n})")
                return 1
        new = [n for n in names if n not in db]
        for n in new:
            out(f"  Installing       : {n}-1.0-1.x86_64")
        out("Complete!" if new else "Nothing to do.\nComplete!")
        _update_packages(ctx.root, "rpm", {n: "1.0-1" for n in new})
        ctx.log(f"{ctx.cmdline(args)} (simulated: installed {' '.join(new) or 'nothing new'})")
        return 0
    if sub in ("remove", "erase"):
        _update_packages(ctx.root, "rpm", remove=names)
        out("Complete!")
        ctx.log(f"{ctx.cmdline(args)} (simulated: removed {' '.join(names)})")
        return 0
    out("Complete!" if sub else f"{ctx.name} (labtui sandbox simulation)")
    ctx.log(f"{ctx.cmdline(args)} (simulated)")
    return 0


def shim_rpm(ctx: _Ctx, args: list[str]) -> int:
    db = installed_packages(ctx.root, "rpm")
    names = [a for a in args if not a.startswith("-")]
    flags = "".join(a[1:] for a in args if a.startswith("-") and not a.startswith("--"))
    if "q" in flags:
        if "a" in flags:
            for n, v in sorted(db.items()):
                out(f"{n}-{v}.x86_64")
            return 0
        rc = 0
        for n in names:
            if n in db:
                out(f"{n}-{db[n]}.x86_64")
            else:
                out(f"package {n} is not installed")
                rc = 1
        return rc
    refused = ctx.need_root(args, "error: can't create transaction lock on "
                            "/var/lib/rpm/.rpm.lock (Permission denied)")
    if refused is not None:
        return refused
    ctx.log(f"{ctx.cmdline(args)} (simulated)")
    return 0


def shim_snap(ctx: _Ctx, args: list[str]) -> int:
    words = [a for a in args if not a.startswith("-")]
    sub = words[0] if words else ""
    db = installed_packages(ctx.root, "snap")
    if sub == "list":
        out("Name  Version  Rev  Tracking  Publisher  Notes")
        for n, v in sorted(db.items()):
            out(f"{n}  {v}  1  latest/stable  labtui  -")
        return 0
    if sub in ("install", "remove", "refresh"):
        refused = ctx.need_root(args, "error: access denied (try with sudo)")
        if refused is not None:
            return refused
    if sub == "install":
        _update_packages(ctx.root, "snap", {n: "1.0" for n in words[1:]})
        for n in words[1:]:
            out(f"{n} 1.0 from labtui installed")
    elif sub == "remove":
        _update_packages(ctx.root, "snap", remove=words[1:])
    ctx.log(f"{ctx.cmdline(args)} (simulated)")
    return 0


_PIP_OPTS_WITH_ARG = {"-r", "--requirement", "-c", "--constraint", "-i", "--index-url",
                      "--extra-index-url", "-f", "--find-links", "-t", "--target", "--prefix",
                      "--root", "--trusted-host", "--platform", "--python-version",
                      "--implementation", "--abi", "--src", "--log", "--cache-dir",
                      "--progress-bar", "--timeout", "--retries", "--proxy", "--cert",
                      "--client-cert", "--global-option", "--config-settings", "-C",
                      "--upgrade-strategy", "--only-binary", "--no-binary", "--report",
                      "--python"}


def _pip_reqs(args: list[str], cwd: str) -> list[tuple[str, str]]:
    reqs: list[tuple[str, str]] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-r", "--requirement") and i + 1 < len(args):
            path = os.path.join(cwd, args[i + 1])
            for line in _read_lines(Path(path)):
                line = line.split("#", 1)[0].strip()
                if line and not line.startswith("-"):
                    reqs.extend(_pip_reqs([line], cwd))
            i += 2
            continue
        if a.startswith("--requirement="):
            reqs.extend(_pip_reqs(["-r", a.split("=", 1)[1]], cwd))
        elif a in ("-e", "--editable") and i + 1 < len(args):
            target = args[i + 1].rstrip("/")
            reqs.append((os.path.basename(target) or target, "0.0.0+local"))
            i += 2
            continue
        elif a in _PIP_OPTS_WITH_ARG:
            i += 2
            continue
        elif not a.startswith("-"):
            m = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(.*)$", a)
            if a.startswith((".", "/")) or not m:
                reqs.append((os.path.basename(a.rstrip("/")) or a, "0.0.0+local"))
            else:
                spec = m.group(3).strip()
                ver = spec[2:].strip() if spec.startswith("==") else "1.0.0"
                reqs.append((m.group(1), ver.split(",")[0] or "1.0.0"))
        i += 1
    return reqs


def shim_pip(ctx: _Ctx, args: list[str]) -> int:
    words = [a for a in args if not a.startswith("-")]
    if not words and any(a in ("--version", "-V") for a in args):
        real = _real(ctx.name, ctx.shims) or _real("pip3", ctx.shims)
        if real:
            return _exec([real, "--version"])
        out("pip 24.0 (labtui sandbox)")
        return 0
    sub = words[0] if words else ""
    sub_args = args[args.index(sub) + 1:] if sub else []
    db = installed_packages(ctx.root, "pip")
    if sub == "install":
        reqs = _pip_reqs(sub_args, os.getcwd())
        if not reqs:
            err("ERROR: You must give at least one requirement to install (see \"pip help "
                "install\")")
            return 1
        for n, _v in reqs:
            if _missing(n):
                err(f"ERROR: Could not find a version that satisfies the requirement {n} "
                    "(from versions: none)\nERROR: No matching distribution found for " + n)
                ctx.log(f"{ctx.cmdline(args)} (simulated: failed, no package {n})")
                return 1
        for n, v in reqs:
            out(f"Collecting {n}=={v}" if v != "1.0.0" else f"Collecting {n}")
        _update_packages(ctx.root, "pip", dict(reqs))
        out("Successfully installed " + " ".join(f"{n}-{v}" for n, v in reqs))
        names = " ".join(n for n, _ in reqs)
        ctx.log(f"{ctx.cmdline(args)} (simulated: installed {names})")
        return 0
    if sub == "uninstall":
        names = [a for a in sub_args if not a.startswith("-")]
        lower = {k.lower(): k for k in db}
        for n in names:
            if n.lower() in lower:
                out(f"Found existing installation: {lower[n.lower()]}\n"
                    f"  Successfully uninstalled {lower[n.lower()]}")
            else:
                out(f"WARNING: Skipping {n} as it is not installed.")
        _update_packages(ctx.root, "pip", remove=names)
        ctx.log(f"{ctx.cmdline(args)} (simulated)")
        return 0
    if sub == "list":
        out("Package    Version\n---------- -------")
        for n, v in sorted(db.items()):
            out(f"{n} {v}")
        return 0
    if sub == "freeze":
        for n, v in sorted(db.items()):
            out(f"{n}=={v}")
        return 0
    if sub == "show":
        lower = {k.lower(): k for k in db}
        names = [a for a in sub_args if not a.startswith("-")]
        found = [lower[n.lower()] for n in names if n.lower() in lower]
        for n in found:
            out(f"Name: {n}\nVersion: {db[n]}\nSummary: (simulated by labtui)\n---")
        missing = [n for n in names if n.lower() not in lower]
        if missing:
            err("WARNING: Package(s) not found: " + ", ".join(missing))
            return 1
        return 0
    if sub in ("download", "wheel", "index", "search"):
        err(f"ERROR: pip {sub}: the labtui sandbox has no network")
        ctx.log(f"{ctx.cmdline(args)} (refused: no network)")
        return 1
    if sub in ("", "help") or "-h" in args or "--help" in args:
        out("Usage: pip <command> [options]  (labtui sandbox: install/uninstall are "
            "simulated)")
        return 0
    ctx.log(f"{ctx.cmdline(args)} (simulated)")
    return 0


# -------------------------------------------------------------------------------- services

_ACTIVE_BY_DEFAULT = {"ssh", "sshd", "cron", "cloud-init", "systemd-journald", "rsyslog"}
_SYSTEMCTL_PRIV = {"start", "stop", "restart", "reload", "try-restart", "reload-or-restart",
                   "try-reload-or-restart", "enable", "disable", "mask", "unmask",
                   "daemon-reload", "reboot", "poweroff", "halt", "kill", "reset-failed",
                   "set-default", "isolate", "edit", "preset", "link", "revert"}


def _units_file(root: Path) -> Path:
    return state_dir(root) / "services.json"


def _load_units(root: Path) -> dict[str, dict[str, bool]]:
    try:
        data = json.loads(_units_file(root).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _unit_state(units: dict[str, dict[str, bool]], name: str) -> dict[str, bool]:
    default = name in _ACTIVE_BY_DEFAULT
    return units.get(name, {"active": default, "enabled": default})


def _unit(name: str) -> str:
    return name[:-8] if name.endswith(".service") else name


def shim_systemctl(ctx: _Ctx, args: list[str], *, verb: str | None = None,
                   names: list[str] | None = None) -> int:
    flags = [a for a in args if a.startswith("-")]
    words = [a for a in args if not a.startswith("-")]
    if verb is None:
        verb = words[0] if words else "list-units"
        names = words[1:]
    names = [_unit(n) for n in names or []]
    quiet = "-q" in flags or "--quiet" in flags
    if verb in _SYSTEMCTL_PRIV and "--user" not in flags:
        refused = ctx.need_root(args, f"Failed to {verb} {' '.join(names)}: Access denied\n"
                                "See system logs and 'systemctl status' for details.", 1)
        if refused is not None:
            return refused
    if verb in ("reboot", "poweroff", "halt"):
        ctx.log(f"{ctx.cmdline(args)} (simulated: the sandbox machine keeps running)")
        return 0
    if verb in ("is-active", "is-enabled", "is-failed", "status", "show"):
        units = _load_units(ctx.root)
        rc = 0
        for n in names:
            st = _unit_state(units, n)
            if verb == "is-active":
                word = "active" if st["active"] else "inactive"
                rc = rc or (0 if st["active"] else 3)
            elif verb == "is-enabled":
                word = "enabled" if st["enabled"] else "disabled"
                rc = rc or (0 if st["enabled"] else 1)
            elif verb == "is-failed":
                word = "active" if st["active"] else "inactive"
                rc = 1
            elif verb == "show":
                word = (f"Id={n}.service\nActiveState={'active' if st['active'] else 'inactive'}"
                        f"\nUnitFileState={'enabled' if st['enabled'] else 'disabled'}")
            else:
                word = (f"● {n}.service (simulated by labtui)\n     Loaded: loaded "
                        f"({'enabled' if st['enabled'] else 'disabled'})\n     Active: "
                        f"{'active (running)' if st['active'] else 'inactive (dead)'}")
                rc = rc or (0 if st["active"] else 3)
            if not quiet:
                out(word)
        return rc
    if verb in ("start", "stop", "restart", "reload", "try-restart", "reload-or-restart",
                "try-reload-or-restart", "enable", "disable", "mask", "unmask", "kill"):
        now = "--now" in flags
        with _state_lock(ctx.root):
            units = _load_units(ctx.root)
            for n in names:
                st = dict(_unit_state(units, n))
                if verb in ("start", "restart", "reload-or-restart") or (
                        verb == "enable" and now):
                    st["active"] = True
                if verb in ("stop", "kill") or (verb == "disable" and now) or verb == "mask":
                    st["active"] = False
                if verb == "enable":
                    st["enabled"] = True
                if verb in ("disable", "mask"):
                    st["enabled"] = False
                units[n] = st
            _write_atomic(_units_file(ctx.root), json.dumps(units, indent=1, sort_keys=True))
        if verb == "enable" and not quiet:
            for n in names:
                out(f"Created symlink /etc/systemd/system/multi-user.target.wants/{n}.service"
                    f" → /usr/lib/systemd/system/{n}.service.")
    ctx.log(f"{ctx.cmdline(args)} (simulated)")
    return 0


def shim_service(ctx: _Ctx, args: list[str]) -> int:
    words = [a for a in args if not a.startswith("-")]
    if len(words) >= 2:
        ctx_name = ctx.name
        ctx.name = "service"
        try:
            verb = "is-active" if words[1] == "status" else words[1]
            return shim_systemctl(ctx, args, verb=verb, names=[words[0]])
        finally:
            ctx.name = ctx_name
    if "--status-all" in args:
        return 0
    err("Usage: service < option > | --status-all | [ service_name [ command | --full-restart ] ]")
    return 1


# -------------------------------------------------------------------------------- accounts


def _user_exists(root: Path, user: str) -> bool:
    if user == "root":
        return True
    return any(line.split(":", 1)[0] == user for line in _read_lines(root / "etc" / "passwd"))


def shim_chpasswd(ctx: _Ctx, args: list[str]) -> int:
    refused = ctx.need_root(args, "chpasswd: Permission denied.")
    if refused is not None:
        return refused
    encrypted = any(a in ("-e", "--encrypted") for a in args)
    rc, done = 0, []
    for n, raw in enumerate(sys.stdin.read().splitlines(), 1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        user, sep, password = line.partition(":")
        if not sep or not valid_user(user):
            err(f"chpasswd: line {n}: missing new password")
            rc = 1
            continue
        if not _user_exists(ctx.root, user):
            err(f"chpasswd: line {n}: user '{user}' does not exist")
            rc = 1
            continue
        set_password_hash(ctx.root, user, password if encrypted else hash_password(password))
        done.append(user)
    for user in done:
        ctx.log(f"chpasswd: password set for user {user}" + (" (pre-hashed)" if encrypted
                                                              else ""))
    if rc:
        err("chpasswd: error detected, changes ignored" if not done else "")
    return rc


def shim_passwd(ctx: _Ctx, args: list[str]) -> int:
    names = [a for a in args if not a.startswith("-")]
    flags = [a for a in args if a.startswith("-")]
    user = names[0] if names else ctx.user
    if not valid_user(user) or not _user_exists(ctx.root, user):
        err(f"passwd: user '{user}' does not exist")
        return 1
    if user != ctx.user and not ctx.is_root:
        err(f"passwd: You may not view or modify password information for {user}.")
        ctx.log(f"passwd {user} (refused: not root)")
        return 1
    field = _shadow_field(ctx.root, user) or "!"
    if any(f in ("-S", "--status") for f in flags):
        state = "L" if field.startswith("!") and len(field) > 1 else (
            "NP" if field in ("", "!", "*") else "P")
        out(f"{user} {state} (simulated)")
        return 0
    if any(f in ("-l", "--lock") for f in flags):
        if not field.startswith("!"):
            set_password_hash(ctx.root, user, "!" + field)
        ctx.log(f"passwd -l {user} (simulated: password locked)")
        out("passwd: password changed.")
        return 0
    if any(f in ("-u", "--unlock") for f in flags):
        if field.startswith("!") and len(field) > 1:
            set_password_hash(ctx.root, user, field[1:])
        ctx.log(f"passwd -u {user} (simulated: password unlocked)")
        out("passwd: password changed.")
        return 0
    if any(f in ("-d", "--delete") for f in flags):
        set_password_hash(ctx.root, user, "")
        ctx.log(f"passwd -d {user} (simulated: password deleted)")
        out("passwd: password changed.")
        return 0
    if any(f in ("-e", "--expire") for f in flags):
        ctx.log(f"passwd -e {user} (simulated: password expired)")
        out("passwd: password changed.")
        return 0
    if "--stdin" in flags:
        first = sys.stdin.readline().rstrip("\r\n")
        second = first
    else:
        sys.stderr.write("New password: ")
        sys.stderr.flush()
        first = sys.stdin.readline().rstrip("\r\n")
        sys.stderr.write("\nRetype new password: ")
        sys.stderr.flush()
        second = sys.stdin.readline().rstrip("\r\n")
        sys.stderr.write("\n")
    if not first:
        err("No password has been supplied.\npasswd: Authentication token manipulation error\n"
            "passwd: password unchanged")
        return 10
    if first != second:
        err("Sorry, passwords do not match.\npasswd: Authentication token manipulation error\n"
            "passwd: password unchanged")
        return 10
    set_password(ctx.root, user, first)
    ctx.log(f"passwd: password set for user {user}")
    out("passwd: password updated successfully")
    return 0


def shim_useradd(ctx: _Ctx, args: list[str]) -> int:
    refused = ctx.need_root(args, f"{ctx.name}: Permission denied.", 1)
    if refused is not None:
        return refused
    with_arg = {"-s", "--shell", "-G", "--groups", "-g", "--gid", "-u", "--uid", "-d",
                "--home-dir", "-c", "--comment", "-p", "--password", "-e", "--expiredate",
                "-k", "--skel", "--gecos", "--home", "--ingroup", "--firstuid"}
    user, shell, groups, i = None, "/bin/bash", "", 0
    while i < len(args):
        a = args[i]
        if a in with_arg and i + 1 < len(args):
            if a in ("-s", "--shell"):
                shell = args[i + 1]
            if a in ("-G", "--groups"):
                groups = args[i + 1]
            i += 2
            continue
        if not a.startswith("-"):
            user = a
        i += 1
    if not user or not valid_user(user):
        err(f"{ctx.name}: invalid user name '{user}'")
        return 3
    with _state_lock(ctx.root):
        created = _add_passwd_entry(ctx.root, user, shell)
    if not created:
        err(f"{ctx.name}: user '{user}' already exists")
        return 9 if ctx.name == "useradd" else 1
    if ctx.name == "adduser" or any(a in ("-m", "--create-home") for a in args):
        home_dir(ctx.root, user).mkdir(mode=0o700, parents=True, exist_ok=True)
    for g in filter(None, groups.split(",")):
        _add_to_group(ctx.root, user, g)
    shown = [("***" if args[j - 1] in ("-p", "--password") else a)
             for j, a in enumerate(args)]
    ctx.log(f"{shlex.join([ctx.name, *shown])} (simulated: user {user} created)")
    return 0


def _add_to_group(root: Path, user: str, group: str) -> None:
    with _state_lock(root):
        path = root / "etc" / "group"
        lines = _read_lines(path)
        out_lines, found = [], False
        for line in lines:
            p = line.split(":")
            if len(p) >= 4 and p[0] == group:
                found = True
                members = [m for m in p[3].split(",") if m]
                if user not in members:
                    members.append(user)
                p[3] = ",".join(members)
                line = ":".join(p)
            out_lines.append(line)
        if not found:
            gids = [int(p[2]) for p in (g.split(":") for g in lines) if len(p) > 2
                    and p[2].isdigit()]
            out_lines.append(f"{group}:x:{max(gids + [1999]) + 1}:{user}")
        _write_atomic(path, "\n".join(out_lines) + "\n")


def shim_usermod(ctx: _Ctx, args: list[str]) -> int:
    refused = ctx.need_root(args, "usermod: Permission denied.", 1)
    if refused is not None:
        return refused
    names = [a for j, a in enumerate(args) if not a.startswith("-")
             and not (j > 0 and args[j - 1] in ("-G", "--groups", "-g", "-s", "-d", "-l",
                                                 "-c", "-p", "-e", "-u", "--shell"))]
    user = names[-1] if names else ""
    if not _user_exists(ctx.root, user):
        err(f"usermod: user '{user}' does not exist")
        return 6
    for j, a in enumerate(args[:-1]):
        if a in ("-G", "--groups") or (a.startswith("-") and "G" in a and not
                                        a.startswith("--")):
            for g in filter(None, args[j + 1].split(",")):
                _add_to_group(ctx.root, user, g)
    ctx.log(f"{ctx.cmdline(args)} (simulated)")
    return 0


def shim_groupadd(ctx: _Ctx, args: list[str]) -> int:
    refused = ctx.need_root(args, "groupadd: Permission denied.", 10)
    if refused is not None:
        return refused
    names = [a for a in args if not a.startswith("-")]
    if names:
        with _state_lock(ctx.root):
            path = ctx.root / "etc" / "group"
            lines = _read_lines(path)
            if not any(g.split(":", 1)[0] == names[-1] for g in lines):
                gids = [int(p[2]) for p in (g.split(":") for g in lines)
                        if len(p) > 2 and p[2].isdigit()]
                lines.append(f"{names[-1]}:x:{max(gids + [1999]) + 1}:")
                _write_atomic(path, "\n".join(lines) + "\n")
    ctx.log(f"{ctx.cmdline(args)} (simulated)")
    return 0


def _hostname(root: Path) -> str:
    lines = _read_lines(root / "etc" / "hostname")
    return lines[0].strip() if lines else "localhost"


def shim_hostname(ctx: _Ctx, args: list[str]) -> int:
    words = [a for a in args if not a.startswith("-")]
    if ctx.name == "hostnamectl":
        if words[:1] == ["set-hostname"] and len(words) > 1:
            refused = ctx.need_root(args, "Could not set hostname: Access denied")
            if refused is not None:
                return refused
            _write_atomic(ctx.root / "etc" / "hostname", words[1] + "\n")
            ctx.log(f"{ctx.cmdline(args)} (simulated)")
            return 0
        if words[:1] == ["hostname"] or "--static" in args:
            out(_hostname(ctx.root))
            return 0
        out(f" Static hostname: {_hostname(ctx.root)}\n Operating System: Ubuntu 24.04 LTS "
            "(labtui sandbox)")
        return 0
    if words:
        refused = ctx.need_root(args, "hostname: you must be root to change the host name")
        if refused is not None:
            return refused
        _write_atomic(ctx.root / "etc" / "hostname", words[0] + "\n")
        ctx.log(f"{ctx.cmdline(args)} (simulated)")
        return 0
    if "-I" in args or "--all-ip-addresses" in args:
        out("127.0.0.1 ")
        return 0
    if "-i" in args:
        out("127.0.1.1")
        return 0
    name = _hostname(ctx.root)
    out(name.split(".")[0] if "-s" in args else name)
    return 0


def shim_whoami(ctx: _Ctx, args: list[str]) -> int:
    out(ctx.user)
    return 0


def shim_id(ctx: _Ctx, args: list[str]) -> int:
    names = [a for a in args if not a.startswith("-")]
    flags = "".join(a.lstrip("-") for a in args if a.startswith("-") and a != "--")
    user = names[0] if names else ctx.user
    if not _user_exists(ctx.root, user):
        err(f"id: '{user}': no such user")
        return 1
    uid = _uid_of(ctx.root, user)
    groups = [(uid, user)]
    for line in _read_lines(ctx.root / "etc" / "group"):
        p = line.split(":")
        if len(p) >= 4 and user in p[3].split(",") and p[2].isdigit():
            groups.append((int(p[2]), p[0]))
    if "u" in flags or "user" in flags:
        out(user if "n" in flags else str(uid))
    elif "G" in flags or "groups" in flags:
        out(" ".join(g if "n" in flags else str(i) for i, g in groups))
    elif "g" in flags or "group" in flags:
        out(user if "n" in flags else str(uid))
    else:
        out(f"uid={uid}({user}) gid={uid}({user}) groups="
            + ",".join(f"{i}({g})" for i, g in groups))
    return 0


# -------------------------------------------------------------------------------- network

_LOOPBACK_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*://)?(?:[^@/]*@)?"
                           r"(?:127(?:\.\d{1,3}){3}|localhost|\[::1\])(?::\d+)?(?:[/?#]|$)",
                           re.I)


def shim_fetch(ctx: _Ctx, args: list[str]) -> int:
    urls = [a for a in args if not a.startswith("-") and ("://" in a or re.match(
        r"^[\w.-]+\.[a-z]{2,}(?:[:/]|$)|^localhost|^127\.|^\[::1\]", a, re.I))]
    bad = [u for u in urls if not _LOOPBACK_URL.match(u)]
    if bad or not urls:
        if not urls and any(a in ("--version", "-V", "--help", "-h") for a in args):
            real = _real(ctx.name, ctx.shims)
            return _exec([real, *args]) if real else 0
        host = re.sub(r"^[a-z]+://", "", bad[0] if bad else "").split("/")[0] or "?"
        ctx.log(f"{ctx.cmdline(args)} (refused: the sandbox has no network)")
        if ctx.name == "curl":
            err(f"curl: (6) Could not resolve host: {host}")
            return 6
        err(f"wget: unable to resolve host address '{host}'")
        return 4
    real = _real(ctx.name, ctx.shims)
    if not real:
        err(f"{ctx.name}: command not found")
        return 127
    return _exec([real, *args])


# -------------------------------------------------------------------------------- misc


def shim_simulated(ctx: _Ctx, args: list[str]) -> int:
    if ctx.name in ("reboot", "shutdown", "poweroff", "halt"):
        refused = ctx.need_root(args, f"Failed to {ctx.name} system via logind: Access denied")
        if refused is not None:
            return refused
        if ctx.name == "shutdown" and "-c" in args:
            ctx.log(f"{ctx.cmdline(args)} (simulated)")
            return 0
        ctx.log(f"{ctx.cmdline(args)} (simulated: the sandbox machine keeps running)")
        return 0
    if ctx.name == "crontab" and "-l" in args:
        err(f"no crontab for {ctx.user}")
        return 1
    if ctx.name == "sysctl" and not any(a in ("-w", "--write", "-p", "--load", "--system")
                                         for a in args) and not any("=" in a for a in args):
        real = _real("sysctl", ctx.shims)
        if real:
            return _exec([real, *args])
    ctx.log(f"{ctx.cmdline(args)} (simulated: no effect in the sandbox)")
    return 0


SHIMS = {
    "sudo": shim_sudo, "su": shim_su, "bash": shim_shell, "sh": shim_shell,
    "apt": shim_apt, "apt-get": shim_apt, "apt-cache": shim_apt,
    "dpkg": shim_dpkg, "dpkg-query": shim_dpkg,
    "yum": shim_yum, "dnf": shim_yum, "rpm": shim_rpm, "snap": shim_snap,
    "pip": shim_pip, "pip3": shim_pip,
    "systemctl": shim_systemctl, "service": shim_service,
    "passwd": shim_passwd, "chpasswd": shim_chpasswd,
    "useradd": shim_useradd, "adduser": shim_useradd, "usermod": shim_usermod,
    "groupadd": shim_groupadd,
    "hostname": shim_hostname, "hostnamectl": shim_hostname,
    "whoami": shim_whoami, "id": shim_id,
    "curl": shim_fetch, "wget": shim_fetch,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        err("usage: confine.py <shim name> [args...] | --rewrite TEXT")
        return 2
    if argv[0] == "--rewrite":
        root = os.environ.get("LABTUI_INSTANCE_ROOT")
        text = argv[1] if len(argv) > 1 else ""
        sys.stdout.write(rewrite_command(text, root, os.environ.get("LABTUI_SHIMS")
                                         or SHIMS_DIR) if root else text)
        return 0
    name, args = os.path.basename(argv[0]), argv[1:]
    if name not in SHIM_NAMES:
        err(f"labtui: no shim named {name}")
        return 127
    ctx = _Ctx(name)
    if not os.environ.get("LABTUI_INSTANCE_ROOT"):
        err(f"{name}: labtui sandbox shim called outside a sandbox instance; refusing")
        return 126
    try:
        return SHIMS.get(name, shim_simulated)(ctx, args)
    except BrokenPipeError:
        return 141
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
