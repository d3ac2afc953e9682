"""`labtui serve COURSE`: the console in a browser, for teaching assistants (textual-serve).

Each browser session is its own ``labtui --read-only COURSE`` process (``--read-only`` left
out only with ``--allow-actions``), run by textual-serve and drawn by xterm.js in the page.
The server binds 127.0.0.1 unless told otherwise and answers only requests that carry the
token: ``?token=…`` in the URL, or the cookie the first such visit sets (HttpOnly,
SameSite=Strict), so the page's scripts and its websocket need no token in their URLs. The URL
with the token is printed once on stdout and kept 0600 in the course's state folder as
``serve.url``. Ctrl-C (or SIGTERM) ends every session's process by its PID, then the server.

The page textual-serve writes asks Google for a font; labtui's copy of it does not, so a
browser that opens it reaches this server only.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import re
import secrets
import shlex
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

COOKIE = "labtui_serve"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
_REMOTE_FONT = re.compile(r'\s*<link\s+rel="stylesheet"\s+href="https://fonts\.googleapis\.com'
                          r'[^"]*"\s*/>')


def session_command(course: Path, *, read_only: bool, sandbox: bool, profile: str | None,
                    state_dir: str | None, endpoint_url: str | None = None,
                    region: str | None = None) -> list[str]:
    """The command each browser session runs: the console on the same course."""
    command = [sys.executable, "-m", "labtui", "open", str(course)]
    if read_only:
        command.append("--read-only")
    if sandbox:
        command.append("--sandbox")
    if profile:
        command += ["--profile", profile]
    if state_dir:
        command += ["--state-dir", str(Path(state_dir).resolve())]
    if endpoint_url:
        command += ["--endpoint-url", endpoint_url]
    if region:
        command += ["--region", region]
    return command


class _Session(AppService):
    """textual-serve's app process, known to the server by its PID so it can be ended."""

    def __init__(self, *args: Any, sessions: set[asyncio.subprocess.Process],
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sessions = sessions

    async def _open_app_process(self, width: int = 80, height: int = 24):
        process = await super()._open_app_process(width, height)
        self._sessions.add(process)
        return process


class ConsoleServer(Server):
    """textual-serve's server with a token on every request and sessions ended on exit."""

    def __init__(self, command: list[str], token: str, *, host: str, port: int,
                 title: str) -> None:
        # exec: the session's shell becomes the console, so its PID is the console's
        super().__init__("exec " + shlex.join(command), host=host, port=port, title=title)
        self.token = token
        self.sessions: set[asyncio.subprocess.Process] = set()

    async def on_startup(self, app: web.Application) -> None:
        """labtui prints its own line (with the token); no logo, no URL without it."""

    def authorized(self, request: web.Request) -> bool:
        given = request.query.get("token") or request.cookies.get(COOKIE) or ""
        return hmac.compare_digest(given.encode(), self.token.encode())

    @web.middleware
    async def guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not self.authorized(request):
            raise web.HTTPForbidden(text="labtui serve: this console needs its token. Fix: "
                                         "open the URL `labtui serve` printed (it ends in "
                                         "?token=...), or ask the instructor for it.\n")
        response = await handler(request)
        if isinstance(response, web.Response) and not response.prepared:
            if request.path == "/" and response.text:
                response.text = _REMOTE_FONT.sub("", response.text)
            response.headers["Cache-Control"] = "no-store"
            response.headers["Referrer-Policy"] = "no-referrer"  # the token stays here
            if request.query.get("token"):
                response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict",
                                    path="/")
        return response

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self.guard)
        return app

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """textual-serve's handler, with the session's process recorded (``_Session``)."""
        websocket = web.WebSocketResponse(heartbeat=15)
        width = to_int(request.query.get("width", "80"), 80)
        height = to_int(request.query.get("height", "24"), 24)
        service: AppService | None = None
        try:
            await websocket.prepare(request)
            service = _Session(self.command, write_bytes=websocket.send_bytes,
                               write_str=websocket.send_str, close=websocket.close,
                               download_manager=self.download_manager, debug=self.debug,
                               sessions=self.sessions)
            await service.start(width, height)
            try:
                await self._process_messages(websocket, service)
            finally:
                await service.stop()
        except asyncio.CancelledError:
            await websocket.close()
        finally:
            if service is not None:
                await service.stop()
        return websocket

    async def end_sessions(self, grace: float = 5.0) -> None:
        """End every session's console by its PID: SIGTERM, then SIGKILL after ``grace``."""
        running = [p for p in self.sessions if p.returncode is None]
        for process in running:
            try:
                os.kill(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in running:
            try:
                await asyncio.wait_for(process.wait(), grace)
            except TimeoutError:
                try:
                    os.kill(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                await process.wait()


def url_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):
        return socket.getfqdn()
    return f"[{host}]" if ":" in host else host


async def serve(server: ConsoleServer, announce: Any) -> None:
    """Serve until SIGINT or SIGTERM, then end the sessions and the server."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    app = await server._make_app()
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, server.host, server.port)
        await site.start()
        port = runner.addresses[0][1]
        server.port = port
        server.public_url = f"http://{url_host(server.host)}:{port}"
        announce(f"{server.public_url}/?token={server.token}")
        await stop.wait()
    finally:
        await server.end_sessions()
        await runner.cleanup()


def cmd_serve(args: Any) -> int:
    """The handler of `labtui serve` (see labtui/grammar.py)."""
    from labtui.course import load
    from labtui.errors import InputError
    from labtui.output import emit_json
    from labtui.state import StateDir, write_private

    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port} is not a TCP port. Fix: give 1-65535, or omit "
                         "it to take a free one")
    course = load(args.course)
    path = Path(args.course).resolve()
    command = session_command(path, read_only=not args.allow_actions, sandbox=args.sandbox,
                              profile=args.profile, state_dir=args.state_dir,
                              endpoint_url=args.endpoint_url, region=args.only_region)
    token = secrets.token_urlsafe(32)
    server = ConsoleServer(command, token, host=args.host, port=args.port,
                           title=f"labtui · {course.name}")
    keep = StateDir.resolve(args.state_dir).ensure().course(course.id).root / "serve.url"

    def announce(url: str) -> None:
        write_private(keep, url + "\n")
        mode = "actions allowed (--allow-actions)" if args.allow_actions else "read-only"
        if args.json:
            emit_json({"type": "serve", "url": url, "file": str(keep), "host": args.host,
                       "port": server.port, "read_only": not args.allow_actions,
                       "pid": os.getpid()})
        else:
            print(url, flush=True)
            print(f"labtui serve: the {course.name} console, {mode}, one session per browser "
                  f"tab; the URL (with its token: whoever has it sees the console) is also in "
                  f"{keep} (0600). Press Ctrl-C to stop.", file=sys.stderr, flush=True)
            if args.host not in LOOPBACK:
                print(f"warning: listening on {args.host}, beyond this computer, over plain "
                      "HTTP: the token crosses the network unencrypted. Fix: keep the default "
                      "127.0.0.1 and reach it by `ssh -L`", file=sys.stderr, flush=True)

    try:
        asyncio.run(serve(server, announce))
    except OSError as exc:
        raise InputError(f"cannot listen on {args.host}:{args.port} "
                         f"({exc.strerror or exc}). Fix: choose another --port") from None
    finally:
        keep.unlink(missing_ok=True)
    if not args.json:
        print("labtui serve: stopped.", file=sys.stderr)
    return 0
