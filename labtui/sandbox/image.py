"""The base image of every sandbox machine: a real Debian stable root filesystem.

Built once with ``mmdebstrap`` (Debian's package) from the package sources the host is
configured for, kept in the user's cache folder (platformdirs) under a key made of
everything that goes into it (suite, packages, sources, apt options, this file's format
number), and reused after. Each machine is an overlayfs layer over it, so the image itself is
never written to. Debian stands in for every Debian-family AMI name (``ubuntu-*``,
``debian-12``); see :mod:`labtui.sandbox.flavors`.

The certificate authorities the host trusts locally (a proxy of its own in front of the
package mirrors) are trusted in the image too, when it is built: update-ca-certificates
rebuilds the whole bundle and took a second of CPU, a third of each machine's first boot,
when every machine ran it itself. A machine still runs it at boot when the host's CAs changed
since its image was built (guest/init.py), and the image's key holds them, so the next build
includes them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from labtui.errors import SandboxError

SUITE = "bookworm"
PACKAGES = (
    "openssh-server", "sudo", "python3", "python3-venv", "python3-pip", "cloud-init",
    "iproute2", "ca-certificates", "curl", "procps", "netbase", "less", "gnupg",
)
FORMAT = 2  # bump when the customize hooks below change
_APT_OPTION = re.compile(r"Acquire::(https?|ftp)::Proxy|Check-Valid-Until|Check-Date")
# What a fresh image must not carry: host keys made by openssh-server's postinst (every
# machine would share them) and a machine id.
_CUSTOMIZE = ('rm -f "$1"/etc/ssh/ssh_host_*_key "$1"/etc/ssh/ssh_host_*_key.pub && '
              ': > "$1"/etc/machine-id')
HOST_CAS = "usr/local/share/ca-certificates/labtui-host"   # in the image (guest/init.py too)

Progress = Callable[[str], None]


def cache_root() -> Path:
    explicit = os.environ.get("LABTUI_IMAGE_CACHE")
    if explicit:
        return Path(explicit)
    import platformdirs

    return Path(platformdirs.user_cache_dir("labtui")) / "images"


def _host_sources() -> list[Path]:
    """The host's apt sources when the host runs the image's suite (their mirrors and keys
    then fit); otherwise mmdebstrap's default mirror."""
    try:
        release = Path("/etc/os-release").read_text()
    except OSError:
        return []
    if f"VERSION_CODENAME={SUITE}" not in release:
        return []
    found = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    listed = Path("/etc/apt/sources.list")
    if listed.is_file() and any(line.strip().startswith("deb ")
                                for line in listed.read_text().splitlines()):
        found.insert(0, listed)
    return found


def host_ca_certs() -> dict[str, str]:
    """The certificate authorities the host trusts locally (update-ca-certificates' folder):
    where the host reaches its package mirrors through a proxy of its own, the machine must
    trust it too. By file name (as the machine keeps them in ``HOST_CAS``)."""
    folder = Path("/usr/local/share/ca-certificates")
    found: dict[str, str] = {}
    if folder.is_dir():
        for path in sorted(folder.rglob("*.crt")):
            with contextlib.suppress(OSError, UnicodeDecodeError):
                found[path.name] = path.read_text()
    return found


def _trust_hook(folder: Path) -> str:
    """The customize hook that trusts the CAs written to ``folder`` inside the image."""
    return (f'mkdir -p "$1"/{HOST_CAS} && cp -p {shlex.quote(str(folder))}/*.crt '
            f'"$1"/{HOST_CAS}/ && chmod 644 "$1"/{HOST_CAS}/*.crt && '
            'chroot "$1" update-ca-certificates >/dev/null')


def _host_apt_options() -> list[Path]:
    folder = Path("/etc/apt/apt.conf.d")
    if not folder.is_dir():
        return []
    return [p for p in sorted(folder.iterdir())
            if p.is_file() and _APT_OPTION.search(p.read_text(errors="replace"))]


class BaseImage:
    """The cached root filesystem; :meth:`ensure` builds it on first use."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or cache_root()
        self.sources = _host_sources()
        self.apt_options = _host_apt_options()
        self.ca_certs = host_ca_certs()

    @property
    def key(self) -> str:
        digest = hashlib.sha256()
        for part in (SUITE, ",".join(PACKAGES), str(FORMAT), _CUSTOMIZE):
            digest.update(part.encode() + b"\0")
        for path in self.sources + self.apt_options:
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        for name, text in sorted(self.ca_certs.items()):
            digest.update(b"ca\0" + name.encode() + b"\0" + text.encode() + b"\0")
        return f"debian-{SUITE}-{digest.hexdigest()[:12]}"

    @property
    def path(self) -> Path:
        return self.root / self.key / "rootfs"

    @property
    def ready(self) -> bool:
        return (self.root / self.key / "ready").exists()

    def ensure(self, progress: Progress = lambda _line: None) -> Path:
        """The image's root folder, built (with progress lines) when not yet cached."""
        if self.ready:
            return self.path
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time, other processes wait
            if not self.ready:
                self._build(progress)
        return self.path

    def _build(self, progress: Progress) -> None:
        tool = shutil.which("mmdebstrap")
        if tool is None:
            raise SandboxError("the sandbox's machines need Debian's mmdebstrap to build "
                               "their base image. Fix: apt-get install mmdebstrap")
        folder = self.root / self.key
        staging = self.root / f".{self.key}.{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        command = [tool, "--variant=minbase", "--include=" + ",".join(PACKAGES),
                   "--customize-hook=" + _CUSTOMIZE]
        if self.ca_certs:
            cas = staging / "host-cas"
            cas.mkdir()
            for name, text in self.ca_certs.items():
                (cas / name).write_text(text)
            command.append("--customize-hook=" + _trust_hook(cas))
        command += [f"--aptopt={p}" for p in self.apt_options]
        command += [SUITE, str(staging / "rootfs")] + [str(p) for p in self.sources]
        progress(f"building the sandbox's base image (Debian {SUITE}, "
                 f"{len(PACKAGES)} packages) into {folder}; this takes a minute, once")
        started = time.monotonic()
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True)
        assert proc.stderr is not None
        tail: list[str] = []
        for line in proc.stderr:
            line = line.rstrip()
            tail = (tail + [line])[-15:]
            if line.startswith("I: "):
                progress(f"image: {line[3:]}")
        if proc.wait() != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise SandboxError("building the sandbox's base image failed (mmdebstrap exit "
                               f"{proc.returncode}):\n" + "\n".join(tail)
                               + "\nFix: check that Debian's package mirror answers "
                               "(apt-get update), then try again")
        shutil.rmtree(staging / "host-cas", ignore_errors=True)
        (staging / "ready").write_text(f"built in {time.monotonic() - started:.1f} s\n")
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
        progress(f"base image ready in {time.monotonic() - started:.0f} s")
