"""`labtui serve`: the console in a browser, for teaching assistants.

The server runs as a real `labtui serve sample_course.toml --sandbox` process on 127.0.0.1,
attached to the session sandbox. An HTTP client checks the token (403 without it, the page
with it, the cookie after the first visit), and a real headless Chromium (Debian's package)
loads the page, shows the machines view, takes a screenshot and gets `u` refused: the
console it is served runs read-only. Chromium is driven by the DevTools protocol over a
websocket on loopback (aiohttp, which textual-serve brings); the terminal's text is read from
xterm.js's own buffer (it draws on a canvas, so the DOM holds no text). Every process started
here is ended by its PID in a finally.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from labtui.state import StateDir

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_course.toml"
CHROMIUM = shutil.which("chromium") or next(
    (p for p in ("/usr/bin/chromium",) if os.path.exists(p)), None)
# as the machine's notes say: no background networking, so Chromium reaches loopback only
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                  "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                  "--window-size=1280,800"]
# Before the page's scripts run: textual.js keeps its xterm.js Terminal in a closure; the
# first property its session object sets after the terminal (canvasAddon) hands it over.
HOOK = """
Object.defineProperty(Object.prototype, 'canvasAddon', {configurable: true,
  set(value) {
    Object.defineProperty(this, 'canvasAddon', {value, writable: true, configurable: true});
    window.__labtuiTerminal = this.terminal;
  }});
"""
SCREEN_TEXT = """(() => {
  const term = window.__labtuiTerminal;
  if (!term) return '';
  const buffer = term.buffer.active, rows = [];
  for (let i = 0; i < buffer.length; i++) rows.push(buffer.getLine(i).translateToString(true));
  return rows.join('\\n');
})()"""


def serve_env(state: StateDir) -> dict[str, str]:
    return {
        "LABTUI_STATE_DIR": str(state.root),
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "HOME": os.environ.get("HOME", "/root"),
        "LABTUI_TEST_RUN": os.environ.get("LABTUI_TEST_RUN", ""),
    }


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (from /proc), to end them by PID."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def end(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> None:
    """End ``proc`` and whatever it started, each by its PID."""
    below = descendants(proc.pid)
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    for pid in below:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Served:
    """`labtui serve` in a subprocess; its URL read from the first line of stdout."""

    def __init__(self, state: StateDir, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "labtui", "serve", str(SAMPLE), "--sandbox", "--port", "0",
             *extra], cwd=ROOT, env=serve_env(state), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.stderr: list[str] = []
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr or ()),
                         daemon=True).start()
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(self.proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(timeout=20)
        if not lines or not lines[0].startswith("http://127.0.0.1:"):
            end(self.proc)
            raise AssertionError(f"no URL on stdout: {lines!r}; stderr: {self.stderr!r}")
        self.url = lines[0].strip()
        self.base, _, self.token = self.url.partition("/?token=")
        deadline = time.monotonic() + 10  # stderr's line follows stdout's, on its own pipe
        while "Press Ctrl-C" not in "".join(self.stderr) and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> int:
        """Ctrl-C, as the instructor presses it; the exit status."""
        end(self.proc, signal.SIGINT)
        return self.proc.returncode


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, Any]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read().decode(), reply.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers


def test_serve_needs_its_token(sandbox_state: StateDir) -> None:
    served = Served(sandbox_state)
    try:
        assert len(served.token) >= 40
        # the URL is kept 0600 in the course's state folder, and stderr says where
        kept = sandbox_state.root / "courses" / "cloud101-demo" / "serve.url"
        assert kept.read_text().strip() == served.url
        assert kept.stat().st_mode & 0o777 == 0o600
        assert str(kept) in "".join(served.stderr) and "read-only" in "".join(served.stderr)

        for path in ("/", "/static/js/textual.js", "/ws", "/?token=wrong"):
            status, body, _ = get(served.base + path)
            assert status == 403, path
            assert "needs its token" in body
        status, page, headers = get(served.url)
        assert status == 200
        assert 'class="textual-terminal"' in page and "data-session-websocket-url" in page
        assert "Cloud Computing 101 (demo)" in page
        assert "googleapis" not in page  # the page asks nothing of any other host
        cookie = headers["Set-Cookie"]
        assert served.token in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        # after the first visit the cookie is the key: the page's script and styles load
        status, script, _ = get(served.base + "/static/js/textual.js",
                                {"Cookie": f"labtui_serve={served.token}"})
        assert status == 200 and "xterm" in script
    finally:
        code = served.stop()
    assert code == 0, served.stderr
    assert not kept.exists()  # a stopped server's token opens nothing; its file goes too


class DevTools:
    """A minimal Chrome DevTools protocol client over one page's websocket."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0
        self.errors: list[str] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        mine = self.next_id
        await self.ws.send_json({"id": mine, "method": method, "params": params})
        async for message in self.ws:
            data = json.loads(message.data)
            if data.get("id") == mine:
                if "error" in data:
                    raise AssertionError(f"{method}: {data['error']}")
                return data["result"]
            if data.get("method") == "Runtime.exceptionThrown":
                self.errors.append(json.dumps(data["params"]["exceptionDetails"])[:500])
        raise AssertionError(f"{method}: the browser closed its websocket")

    async def screen(self) -> str:
        result = await self.call("Runtime.evaluate", expression=SCREEN_TEXT, returnByValue=True)
        return result["result"].get("value") or ""

    async def wait_for(self, *texts: str, timeout: float = 25.0) -> str:
        deadline = time.monotonic() + timeout
        shown = ""
        while time.monotonic() < deadline:
            shown = await self.screen()
            if all(text in shown for text in texts):
                return shown
            await asyncio.sleep(0.3)
        raise AssertionError(f"{texts!r} not shown within {timeout} s; page errors "
                             f"{self.errors}; the terminal:\n{shown}")

    async def key(self, char: str) -> None:
        code = f"Key{char.upper()}"
        await self.call("Input.dispatchKeyEvent", type="keyDown", key=char, code=code,
                        text=char, windowsVirtualKeyCode=ord(char.upper()))
        await self.call("Input.dispatchKeyEvent", type="keyUp", key=char, code=code,
                        windowsVirtualKeyCode=ord(char.upper()))


def command_lines(pid: int) -> list[list[str]]:
    lines = []
    for child in descendants(pid):
        try:
            raw = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        lines.append([part.decode() for part in raw.split(b"\0") if part])
    return lines


async def drive_browser(url: str, profile: Path, screenshot: Path,
                        server_pid: int) -> dict[str, Any]:
    import aiohttp

    assert CHROMIUM is not None
    browser = subprocess.Popen([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                "about:blank"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text().strip()):
            assert browser.poll() is None, "chromium ended at start"
            assert time.monotonic() < deadline, "chromium opened no DevTools port"
            await asyncio.sleep(0.1)
        port = port_file.read_text().split()[0]
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as reply:
                page = next(t for t in await reply.json() if t["type"] == "page")
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                tools = DevTools(ws)
                await tools.call("Runtime.enable")
                await tools.call("Page.enable")
                await tools.call("Page.addScriptToEvaluateOnNewDocument", source=HOOK)
                await tools.call("Page.navigate", url=url)
                machines = await tools.wait_for("Machines", "ta01", "s05",
                                                "running 0/6 (absent 6)")
                sessions = [line for line in command_lines(server_pid) if "open" in line]
                shot = await tools.call("Page.captureScreenshot", format="png")
                screenshot.write_bytes(base64.b64decode(shot["data"]))
                await tools.call("Runtime.evaluate", expression="window.__labtuiTerminal.focus()")
                await tools.key("u")  # up: launching machines, refused read-only
                refused = await tools.wait_for("refused (--read-only)", timeout=15)
                return {"machines": machines, "refused": refused, "sessions": sessions}
    finally:
        end(browser)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed "
                                             "(apt-get install chromium)")
def test_serve_in_a_real_browser(sandbox_state: StateDir, tmp_path: Path) -> None:
    served = Served(sandbox_state)
    screenshot = tmp_path / "console.png"
    try:
        profile = Path(tempfile.mkdtemp(dir=tmp_path, prefix="chromium-"))
        shown = asyncio.run(asyncio.wait_for(
            drive_browser(served.url, profile, screenshot, served.proc.pid), 50))
        # the browser's tab is one session: the console, read-only, on the same sandbox
        assert len(shown["sessions"]) == 1, shown["sessions"]
        assert "--read-only" in shown["sessions"][0] and "--sandbox" in shown["sessions"][0]
        machines = shown["machines"]
        assert "Cloud Computing 101 (demo)" in machines and "read-only" in machines
        for seat in ("ta01", "s01", "s02", "s03", "s04", "s05"):
            assert seat in machines
        # the refusal, and no confirmation came up: nothing was launched
        assert "up (launching machines): refused (--read-only)" in shown["refused"]
        assert "Launch" not in shown["refused"].split("Log")[0]
        data = screenshot.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    finally:
        code = served.stop()
    assert code == 0, served.stderr


def test_session_command_is_read_only_unless_allowed(tmp_path: Path) -> None:
    from labtui.serve import session_command

    course = tmp_path / "c.toml"
    default = session_command(course, read_only=True, sandbox=True, profile="ta",
                              state_dir=str(tmp_path), region="eu-west-1")
    assert default[1:5] == ["-m", "labtui", "open", str(course)]
    assert "--read-only" in default and "--sandbox" in default
    assert default[default.index("--profile") + 1] == "ta"
    assert default[default.index("--region") + 1] == "eu-west-1"
    allowed = session_command(course, read_only=False, sandbox=False, profile=None,
                              state_dir=None)
    assert "--read-only" not in allowed and "--sandbox" not in allowed


def test_serve_grammar() -> None:
    from labtui.grammar import build_parser

    args = build_parser().parse_args(["serve", "c.toml", "--port", "9000", "--sandbox"])
    assert (args.host, args.port, args.allow_actions) == ("127.0.0.1", 9000, False)
    assert args.handler == "labtui.serve:cmd_serve"


def test_ctrl_c_ends_the_sessions_still_open(sandbox_state: StateDir) -> None:
    """A tab still connected when the instructor presses Ctrl-C: its console is ended too."""
    import aiohttp

    served = Served(sandbox_state)
    sessions: list[int] = []

    async def connect_and_stop() -> int:
        jar = aiohttp.CookieJar(unsafe=True)  # an IP address keeps its cookie
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            async with http.get(served.url) as reply:
                assert reply.status == 200
            async with http.ws_connect(served.base + "/ws?width=100&height=30") as ws:
                await ws.receive(timeout=20)  # the console drew something
                sessions.extend(pid for pid in descendants(served.proc.pid)
                                if "--read-only" in Path(f"/proc/{pid}/cmdline").read_bytes()
                                .decode(errors="replace"))
                assert sessions, "no session process under the server"
                return await asyncio.to_thread(served.stop)

    try:
        code = asyncio.run(asyncio.wait_for(connect_and_stop(), 40))
    finally:
        end(served.proc)
    assert code == 0, served.stderr
    for pid in sessions:
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
