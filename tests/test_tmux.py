"""The console in a real terminal: `labtui --sandbox sample_course.toml` inside tmux.

The app runs in its own process (python -m labtui) on a private tmux server (its own socket),
attached to the session sandbox through LABTUI_STATE_DIR; keys go in with send-keys and the
screen comes back with capture-pane. The tmux server is always killed afterwards.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from labtui.state import StateDir

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_course.toml"
TMUX = shutil.which("tmux")

pytestmark = [
    pytest.mark.tmux,
    pytest.mark.skipif(TMUX is None, reason="tmux is not installed"),
]


class Tmux:
    def __init__(self) -> None:
        self.name = f"labtui-test-{uuid.uuid4().hex[:10]}"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert TMUX is not None
        return subprocess.run([TMUX, "-L", self.name, *args], capture_output=True, text=True,
                              check=check, timeout=10)

    def start(self, command: list[str], env: dict[str, str]) -> None:
        # -u: a tmux server started without a terminal may hand its panes COLUMNS=80 and
        # LINES=24, which would override the pane's real size; the app must ask the tty.
        line = " ".join(shlex.quote(part) for part in
                        ["env", "-u", "COLUMNS", "-u", "LINES",
                         *(f"{k}={v}" for k, v in env.items()), *command])
        # remain-on-exit would keep the pane after the app ends; we want the session gone.
        self.run("new-session", "-d", "-s", self.name, "-x", "120", "-y", "40", "-c", str(ROOT),
                 line)

    def screen(self) -> str:
        done = self.run("capture-pane", "-p", "-t", self.name, check=False)
        return done.stdout

    def alive(self) -> bool:
        return self.run("has-session", "-t", self.name, check=False).returncode == 0

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.name, *keys)

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        shown = ""
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"labtui ended before showing {text!r}:\n{shown}")
            shown = self.screen()
            if text in shown:
                return shown
            time.sleep(0.2)
        raise AssertionError(f"{text!r} did not appear within {timeout} s; the screen:\n{shown}")

    def kill(self) -> None:
        self.run("kill-session", "-t", self.name, check=False)
        self.run("kill-server", check=False)


def test_console_in_a_real_terminal(sandbox_state: StateDir) -> None:
    env = {
        "LABTUI_STATE_DIR": str(sandbox_state.root),
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "TERM": "xterm-256color", "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
    }
    tmux = Tmux()
    try:
        tmux.start([sys.executable, "-m", "labtui", "--sandbox", str(SAMPLE)], env)
        screen = tmux.wait_for("Machines")
        assert "Cloud Computing 101 (demo)" in screen
        # Connected to the session sandbox, and the machines view says there are none yet.
        screen = tmux.wait_for("No machines yet")
        assert "sandbox http://127.0.0.1:" in screen
        # Every seat is a row; / filters them, escape brings them back.
        screen = tmux.wait_for("running 0/6 (absent 6)")
        assert "ta01" in screen and "s05" in screen and "absent" in screen
        tmux.keys("/")
        tmux.wait_for("filter: words matching", timeout=10)  # as a user waits for the line
        tmux.keys("-l", "ta0")
        screen = tmux.wait_for('filter "ta0": 1 of 6 shown', timeout=10)
        assert "s05  " not in screen
        tmux.keys("Escape")
        screen = tmux.wait_for("running 0/6 (absent 6) · setup done 0, failed 0 · updated",
                               timeout=10)
        assert "s05" in screen
        # ? lists the keys of the machines view.
        tmux.keys("?")
        screen = tmux.wait_for("Keys", timeout=10)
        row = next((line for line in screen.splitlines()
                    if "Launch the missing machines" in line), "")
        assert re.search(r"\bu\s+Up\s", row), screen  # key, what it does, details
        tmux.keys("Escape")
        tmux.wait_for("No machines yet", timeout=10)

        tmux.keys("2")
        screen = tmux.wait_for("Ada Lovelace", timeout=10)
        assert "Katherine Johnson" in screen and "ada@example.edu" in screen

        tmux.keys("q")
        deadline = time.monotonic() + 10
        while tmux.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not tmux.alive(), f"labtui did not quit on q:\n{tmux.screen()}"
    finally:
        tmux.kill()
