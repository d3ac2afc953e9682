"""The suite ends what it starts: after the last test, no process it started is left.

Every process the suite starts carries a marker in its environment (set here before the first
test; children inherit it) or descends from pytest itself. After the last fixture is torn
down, any such process still alive is named, ended by its PID and the run fails — a test or a
fixture forgot to stop it (as four sshd servers once outlived every run).
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

MARKER = "LABTUI_TEST_RUN"


def mark_session() -> str:
    token = uuid.uuid4().hex
    os.environ[MARKER] = token
    return token


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _marked(pid: int, token: str) -> bool:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{MARKER}={token}".encode() in env.split(b"\0")


def _descends(pid: int, root: int) -> bool:
    seen = 0
    while pid and pid != 1 and seen < 64:
        if pid == root:
            return True
        pid = _parent(pid) or 0
        seen += 1
    return False


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def left_behind(token: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live process this run started, but pytest itself."""
    me = os.getpid()
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        if not _alive(pid) or not (_marked(pid, token) or _descends(pid, me)):
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        out.append((pid, cmd.strip()[:200]))
    return sorted(out)


def end(pids: list[int], grace: float = 3.0) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
