"""One sandbox machine as a Linux container: namespaces, an overlayfs layer, a real boot.

Runtime: ``unshare`` (util-linux) for new mount, PID, UTS and IPC namespaces with private
mount propagation, an overlayfs layer over the cached base image as the machine's disk,
``pivot_root`` into it (the host's root is detached, not merely hidden as with chroot), and
``setpriv`` to drop the capabilities that reach past the namespaces before the machine's own
init runs. It needs root on Linux. Not bubblewrap: it always sets no_new_privs, which breaks
sudo inside. Not a user namespace: a machine needs real users (root, the login user, apt's
_apt) and sudo between them. The network is the host's, so the machine's sshd listens on
its own loopback address.

The layer (``upper/``) outlives the container: stop keeps it (an EBS root survives a stop),
start boots it again, terminate deletes it. The console (everything the machine's init and
cloud-init print) is ``console.log`` beside it. A machine launched from an image the sandbox
captured (:mod:`labtui.sandbox.images`) has that image's read-only layers between its own
upper and the base image (``lowers``, top first; overlayfs' ``lowerdir=a:b:base``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

from labtui.state import write_private

GUEST = resources.files("labtui.sandbox") / "guest"


def runtime_problem() -> str | None:
    """Why this host cannot run sandbox machines, or None when it can."""
    if not Path("/proc/self/ns/pid").exists():
        return "sandbox machines are Linux containers; this system is not Linux"
    if os.geteuid() != 0:
        return ("sandbox machines are Linux containers and need root (namespaces, overlayfs, "
                "real users and sudo inside); run labtui as root, e.g. in a VM")
    for tool in ("unshare", "setpriv", "pivot_root", "mount"):
        if shutil.which(tool) is None:
            return f"`{tool}` is missing (apt-get install util-linux mount)"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "the kernel has no overlayfs (modprobe overlay)"
    return None


class Container:
    """The container of one instance; ``folder`` is the instance's folder in the sandbox."""

    def __init__(self, folder: Path, base: Path, lowers: tuple[Path, ...] = ()) -> None:
        self.folder = folder
        self.base = base
        self.lowers = tuple(lowers)
        for layer in (*self.lowers, base):
            if ":" in str(layer) or "," in str(layer):  # overlayfs' option separators
                raise ValueError(f"a layer path overlayfs cannot take: {layer}")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def console(self) -> Path:
        return self.folder / "console.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def boot(self, *, hostname: str, boot: dict[str, Any], user_data: bytes,
             meta_data: dict[str, Any], cloud_config: dict[str, Any]) -> None:
        """Start the machine. Returns at once; cloud-init and sshd come up inside."""
        if self.running:
            raise RuntimeError("already running")
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # the host's view: private
        for name in ("upper", "work", "merged", "boot", "seed"):
            (self.folder / name).mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.folder / "upper", 0o755)  # the machine's "/"
        # The work dir must be empty and on the upper's filesystem for every mount.
        shutil.rmtree(self.folder / "work", ignore_errors=True)
        (self.folder / "work").mkdir(mode=0o700)
        (self.folder / "boot" / "init.py").write_bytes((GUEST / "init.py").read_bytes())
        write_private(self.folder / "boot" / "boot.json", json.dumps(boot))
        write_private(self.folder / "seed" / "user-data", user_data)
        write_private(self.folder / "seed" / "meta-data", json.dumps(meta_data))
        # JSON is YAML: cloud-init reads both files as written.
        write_private(self.folder / "cloud.cfg", "#cloud-config\n" + json.dumps(cloud_config))
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LT_BASE": str(self.base),
               "LT_LAYER": str(self.folder), "LT_NAME": hostname}
        if self.lowers:
            env["LT_LOWER"] = ":".join(str(p) for p in (*self.lowers, self.base))
        console = open(self.console, "ab", opener=lambda p, f: os.open(p, f, 0o600))
        try:
            # setpriv --pdeathsig: the machine dies with the sandbox's launcher thread, so a
            # killed sandbox never leaves machines behind; --kill-child takes the init along.
            self._proc = subprocess.Popen(
                ["setpriv", "--pdeathsig", "KILL", "--", "unshare", "--mount", "--pid",
                 "--uts", "--ipc", "--fork", "--kill-child", "--propagation", "private",
                 "/bin/sh", str(GUEST / "launch.sh")],
                env=env, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True)
        finally:
            console.close()

    def init_pid(self) -> int | None:
        """The host's pid of the machine's init (the child of unshare)."""
        if not self.running:
            return None
        assert self._proc is not None
        try:
            children = Path(f"/proc/{self._proc.pid}/task/{self._proc.pid}/children").read_text()
        except OSError:
            return None
        words = children.split()
        return int(words[0]) if words else None

    def shutdown(self, grace: float = 6.0) -> None:
        """Like an OS shutdown: init ends every process; after ``grace`` s (0: at once),
        power off."""
        if self._proc is None:
            return
        pid = self.init_pid()
        if pid is not None and grace > 0:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            self._proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self._proc.kill()  # unshare's --kill-child takes the whole namespace along
            self._proc.wait(timeout=10)
        self._proc = None

    def exited(self) -> int | None:
        """The exit status when the machine stopped by itself, else None."""
        if self._proc is None:
            return None
        return self._proc.poll()

    def delete(self) -> None:
        self.shutdown()
        shutil.rmtree(self.folder, ignore_errors=True)

