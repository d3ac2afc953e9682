"""An embedded SSH server (paramiko server mode) that plays ONE sandbox instance.

It listens on 127.0.0.1 (random port), authenticates with public keys (and passwords when
the instance's own ``/etc/ssh/sshd_config`` enables them), and serves:

- ``exec``: ``bash -c <command>`` with the command text rewritten by
  :func:`labtui.sandbox.confine.rewrite_command`, cwd = the user's home inside the instance
  root, a clean environment (:func:`labtui.sandbox.confine.instance_env`) with the shims first
  on PATH. stdout/stderr are streamed as they come, stdin is forwarded, the exit status is
  sent (128+N for a signal). The command starts only after the exec reply went out (see
  ``_Transport``), so a fast command can never make the client see "Channel closed".
- ``pty-req`` + ``shell`` (an interactive bash in the home, command lines rewritten through a
  readline hook) or ``pty-req`` + ``exec``; ``shell`` without a pty reads a script on stdin.
- ``sftp``, confined to the instance root (``/`` is ``root/``, relative paths start at the
  home; ``..``, absolute paths and symlinks never leave the root).
- ``direct-tcpip`` to 127.0.0.1/localhost/::1 only (host loopback; for Jupyter tunnels).

A client that goes away mid-command gets its process group killed; closing the server kills
every process still running for the instance. One thread per connection and per channel.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import posixpath
import pty
import select
import signal
import socket
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import paramiko
from paramiko.common import MSG_CHANNEL_REQUEST
from paramiko.sftp import SFTP_FAILURE, SFTP_OK, SFTP_OP_UNSUPPORTED, SFTP_PERMISSION_DENIED

from labtui.sandbox import confine

log = logging.getLogger(__name__)
WIRE_LOGGER = "labtui.sandbox.sshd.wire"
# paramiko's server side logs every client that hangs up early as an ERROR with a traceback;
# in a terminal UI that is noise written over the screen.
logging.getLogger(WIRE_LOGGER).setLevel(logging.CRITICAL)
if logging.getLogger("paramiko").level < logging.ERROR:
    logging.getLogger("paramiko").setLevel(logging.ERROR)

LOOPBACK_NAMES = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1", "::1": "::1",
                  "ip6-localhost": "::1"}
AUTH_GRACE_SECONDS = 30.0


# -------------------------------------------------------------------------------- transport


def _handle_request_then_start(chan: paramiko.Channel, m: paramiko.Message) -> None:
    """paramiko's channel-request handler, then start what the request asked for.

    ``Channel._handle_request`` asks the ServerInterface and sends the reply (success or
    failure) before returning; running the command only now guarantees the client has its
    reply before any output, exit status or close of a fast command.
    """
    paramiko.Channel._handle_request(chan, m)
    server = chan.transport.server_object if chan.transport else None
    hook = getattr(server, "after_channel_request", None)
    if hook is not None:
        hook(chan)


class _Transport(paramiko.Transport):
    _channel_handler_table = dict(paramiko.Transport._channel_handler_table)
    _channel_handler_table[MSG_CHANNEL_REQUEST] = _handle_request_then_start


# -------------------------------------------------------------------------------- keys


def key_blob(line: str) -> bytes | None:
    """The binary key of an OpenSSH public-key line (options before the type are skipped)."""
    import base64
    import binascii

    words = line.strip().split()
    for i, w in enumerate(words[:-1]):
        if w.startswith(("ssh-", "ecdsa-", "sk-")):
            try:
                return base64.b64decode(words[i + 1], validate=True)
            except (binascii.Error, ValueError):
                return None
    return None


def load_private_key(text: str) -> paramiko.PKey:
    """Load a host private key (OpenSSH or PEM text) of any type paramiko knows."""
    import io

    errors = []
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError, TypeError) as e:
            errors.append(type(e).__name__)
    raise ValueError("not a usable private key (" + ", ".join(errors) + ")")


# -------------------------------------------------------------------------------- server


class InstanceSshd:
    """The SSH server of one sandbox instance.

    ``instance_dir`` holds ``root/`` and ``journal.log``. ``authorized_keys`` are OpenSSH
    public-key lines accepted for ANY user name (the EC2 key pair, cloud-config keys);
    ``root/home/<user>/.ssh/authorized_keys`` adds keys per user.
    """

    def __init__(self, instance_id: str, instance_dir: Path, host_keys: Iterable[paramiko.PKey],
                 authorized_keys: Iterable[str] = (), *, bind: str = "127.0.0.1",
                 shims_dir: Path = confine.SHIMS_DIR) -> None:
        if bind not in ("127.0.0.1", "::1"):
            raise ValueError("the sandbox SSH server listens on loopback only")
        self.instance_id = instance_id
        self.instance_dir = Path(instance_dir)
        self.root = self.instance_dir / "root"
        self.journal_path = self.instance_dir / "journal.log"
        self.host_keys = list(host_keys)
        if not self.host_keys:
            raise ValueError("an SSH server needs at least one host key")
        self._blobs = {b for b in (key_blob(k) for k in authorized_keys) if b}
        self.bind = bind
        self.shims_dir = Path(shims_dir)
        self.rcfile = self.instance_dir / ".labtui-bashrc"  # written by start()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._transports: set[paramiko.Transport] = set()
        self._procs: set[subprocess.Popen[bytes]] = set()
        self.port = 0

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> int:
        """Listen on a new random loopback port and serve in the background. Returns it."""
        family = socket.AF_INET6 if ":" in self.bind else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.bind, 0))
        sock.listen(128)
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._write_rcfile()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name=f"sshd-{self.instance_id}")
        self._thread.start()
        return self.port

    def close(self) -> None:
        """Stop listening, drop every connection, kill what still runs for this instance."""
        self._closing.set()
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        with self._lock:
            transports = list(self._transports)
            procs = list(self._procs)
        for t in transports:
            with contextlib.suppress(Exception):
                t.close()
        for p in procs:
            _kill_group(p)
        kill_instance_processes(self.root)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)

    @property
    def active_connections(self) -> int:
        with self._lock:
            return len(self._transports)

    def journal(self, text: str) -> None:
        with contextlib.suppress(OSError):
            confine.journal(self.journal_path, text, root=self.root)

    # ---------------------------------------------------------------- connections

    def _accept_loop(self) -> None:
        sock = self._sock
        while sock is not None and not self._closing.is_set():
            try:
                conn, _addr = sock.accept()
            except OSError:
                if self._closing.is_set():
                    return
                time.sleep(0.05)
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True,
                             name=f"sshd-{self.instance_id}-conn").start()

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t = _Transport(conn)
        t.set_log_channel(WIRE_LOGGER)
        for k in self.host_keys:
            t.add_server_key(k)
        t.set_subsystem_handler("sftp", _SFTPServer, ConfinedSFTP)
        server = _Session(self)
        with self._lock:
            if self._closing.is_set():
                t.close()
                return
            self._transports.add(t)
        try:
            try:
                t.start_server(server=server)
            except (paramiko.SSHException, EOFError, OSError):
                return
            started = time.monotonic()
            while t.is_active() and not self._closing.is_set():
                chan = t.accept(timeout=0.5)
                if chan is None:
                    if (not t.is_authenticated()
                            and time.monotonic() - started > AUTH_GRACE_SECONDS):
                        break
                    continue
                dest = server.forwards.pop(chan.get_id(), None)
                if dest is not None:
                    threading.Thread(target=_forward, args=(chan, dest), daemon=True,
                                     name="sshd-forward").start()
        finally:
            with self._lock:
                self._transports.discard(t)
            with contextlib.suppress(Exception):
                t.close()

    # ---------------------------------------------------------------- processes

    def env_for(self, user: str, term: str | None = None,
                extra: dict[str, str] | None = None) -> dict[str, str]:
        return confine.instance_env(self.root, user, self.journal_path, shims=self.shims_dir,
                                    term=term, extra=extra)

    def _write_rcfile(self) -> None:
        self.rcfile = Path(confine.interactive_rcfile(self.root, self.shims_dir,
                                                      folder=self.instance_dir))

    def track(self, proc: subprocess.Popen[bytes], add: bool) -> None:
        with self._lock:
            (self._procs.add if add else self._procs.discard)(proc)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the process group of a still-unreaped child (its pid cannot have been reused)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=1.0)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1.0)


def kill_instance_processes(root: Path) -> int:
    """Kill every process whose environment names this instance root (daemons included)."""
    marker = f"LABTUI_INSTANCE_ROOT={root}".encode()
    me = os.getpid()
    killed = 0
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return 0
    for pid in pids:
        if pid == me:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if marker + b"\0" in env or env.endswith(marker):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed


def _forward(chan: paramiko.Channel, dest: tuple[str, int]) -> None:
    try:
        sock = socket.create_connection(dest, timeout=5)
    except OSError:
        chan.close()
        return
    sock.settimeout(None)
    try:
        while True:
            r, _, _ = select.select([sock, chan], [], [], 1.0)
            if chan.closed or (not r and not chan.get_transport().is_active()):
                break
            if sock in r:
                data = sock.recv(65536)
                if not data:
                    break
                chan.sendall(data)
            if chan in r:
                data = chan.recv(65536)
                if not data:
                    break
                sock.sendall(data)
    except (OSError, EOFError, paramiko.SSHException):
        pass
    finally:
        with contextlib.suppress(OSError):
            sock.close()
        chan.close()


# -------------------------------------------------------------------------------- session


class _Session(paramiko.ServerInterface):
    """Per-connection server interface (authentication and channel requests)."""

    def __init__(self, sshd: InstanceSshd) -> None:
        self.sshd = sshd
        self.username: str | None = None
        self.forwards: dict[int, tuple[str, int]] = {}
        self._pending: dict[int, Callable[[], None]] = {}
        self._ptys: dict[int, dict[str, object]] = {}
        self._env: dict[int, dict[str, str]] = {}
        self._masters: dict[int, int] = {}
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- auth

    def get_allowed_auths(self, username: str) -> str:
        if confine.password_auth_enabled(self.sshd.root):
            return "publickey,password"
        return "publickey"

    def check_auth_none(self, username: str) -> int:
        return paramiko.AUTH_FAILED

    def _user_blobs(self, username: str) -> set[bytes]:
        path = confine.home_dir(self.sshd.root, username) / ".ssh" / "authorized_keys"
        blobs: set[bytes] = set()
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return blobs
        for line in text.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                b = key_blob(line)
                if b:
                    blobs.add(b)
        return blobs

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if not confine.valid_user(username):
            return paramiko.AUTH_FAILED
        blob = key.asbytes()
        if blob in self.sshd._blobs or blob in self._user_blobs(username):
            self._logged_in(username, "publickey")
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_auth_password(self, username: str, password: str) -> int:
        if not confine.valid_user(username):
            return paramiko.AUTH_FAILED
        root = self.sshd.root
        if confine.password_auth_enabled(root) and confine.check_password(root, username,
                                                                        password):
            self._logged_in(username, "password")
            return paramiko.AUTH_SUCCESSFUL
        self.sshd.journal(f"sshd: failed password for {username}")
        return paramiko.AUTH_FAILED

    def _logged_in(self, username: str, method: str) -> None:
        if self.username is None:
            confine.ensure_user(self.sshd.root, username)
            self.sshd.journal(f"sshd: accepted {method} for {username}")
        self.username = username

    # ---------------------------------------------------------------- channels

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_direct_tcpip_request(self, chanid: int, origin: tuple[str, int],
                                           destination: tuple[str, int]) -> int:
        host, port = destination
        target = LOOPBACK_NAMES.get(str(host).lower())
        if target is None or not 0 < int(port) < 65536:
            self.sshd.journal(f"sshd: refused port forwarding to {host}:{port}")
            return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        self.forwards[chanid] = (target, int(port))
        return paramiko.OPEN_SUCCEEDED

    def check_port_forward_request(self, address: str, port: int) -> bool:
        return False

    def check_global_request(self, kind: str, msg: paramiko.Message) -> bool:
        return False

    def check_channel_env_request(self, channel: paramiko.Channel, name: str,
                                  value: str) -> bool:
        name = name.decode() if isinstance(name, bytes) else name
        value = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if name == "LANG" or name.startswith("LC_"):
            self._env.setdefault(channel.get_id(), {})[name] = value
            return True
        return False

    def check_channel_pty_request(self, channel: paramiko.Channel, term: bytes, width: int,
                                  height: int, pixelwidth: int, pixelheight: int,
                                  modes: bytes) -> bool:
        t = term.decode("ascii", "replace") if isinstance(term, bytes) else str(term)
        self._ptys[channel.get_id()] = {"term": t or "xterm", "size": (height, width,
                                                                       pixelwidth, pixelheight)}
        return True

    def check_channel_window_change_request(self, channel: paramiko.Channel, width: int,
                                            height: int, pixelwidth: int,
                                            pixelheight: int) -> bool:
        info = self._ptys.get(channel.get_id())
        if info is None:
            return False
        info["size"] = (height, width, pixelwidth, pixelheight)
        fd = self._masters.get(channel.get_id())
        if fd is not None:
            with contextlib.suppress(OSError):
                _set_winsize(fd, info["size"])
        return True

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        if self.username is None:
            return False
        text = command.decode("utf-8", "surrogateescape") if isinstance(command, bytes) \
            else str(command)
        self._pending[channel.get_id()] = lambda: self._start(channel, text)
        return True

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        if self.username is None:
            return False
        self._pending[channel.get_id()] = lambda: self._start(channel, None)
        return True

    def check_channel_subsystem_request(self, channel: paramiko.Channel, name: str) -> bool:
        if self.username is None:
            return False
        return super().check_channel_subsystem_request(channel, name)

    def after_channel_request(self, channel: paramiko.Channel) -> None:
        start = self._pending.pop(channel.get_id(), None)
        if start is not None:
            start()

    # ---------------------------------------------------------------- processes

    def _start(self, chan: paramiko.Channel, command: str | None) -> None:
        threading.Thread(target=self._run, args=(chan, command), daemon=True,
                         name="sshd-exec").start()

    def _run(self, chan: paramiko.Channel, command: str | None) -> None:
        sshd = self.sshd
        user = self.username or "nobody"
        home = confine.ensure_user(sshd.root, user)
        pty_info = self._ptys.get(chan.get_id())
        term = str(pty_info["term"]) if pty_info else None
        env = sshd.env_for(user, term=term, extra=self._env.get(chan.get_id()))
        shell = "/bin/bash"
        if command is not None:
            argv = [shell, "-c", confine.rewrite_command(command, sshd.root, sshd.shims_dir)]
        elif pty_info:
            argv = [shell, "--rcfile", str(sshd.rcfile), "-i"]
        else:
            argv = [str(sshd.shims_dir / "bash")]  # a script on stdin, rewritten
        try:
            if pty_info:
                code = self._run_pty(chan, argv, env, home, pty_info)
            else:
                code = self._run_pipes(chan, argv, env, home)
        except Exception as e:  # never let a failure leave the client hanging
            log.debug("sandbox exec failed: %s", type(e).__name__)
            with contextlib.suppress(Exception):
                chan.sendall_stderr(f"labtui sandbox: could not run command: {e}\n".encode())
            code = 255
        if code is None:
            with contextlib.suppress(Exception):
                chan.close()
            return
        with contextlib.suppress(Exception):
            chan.send_exit_status(code)
        with contextlib.suppress(Exception):
            chan.shutdown_write()
        with contextlib.suppress(Exception):
            chan.close()

    def _wait(self, chan: paramiko.Channel, proc: subprocess.Popen[bytes]) -> bool:
        """Wait for the process; kill its group if the client goes away. True if it exited."""
        transport = chan.get_transport()
        while True:
            try:
                proc.wait(timeout=0.2)
                return True
            except subprocess.TimeoutExpired:
                pass
            if chan.closed or not transport.is_active() or self.sshd._closing.is_set():
                _kill_group(proc)
                return False

    def _run_pipes(self, chan: paramiko.Channel, argv: list[str], env: dict[str, str],
                   home: Path) -> int | None:
        proc = subprocess.Popen(argv, cwd=home, env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True, close_fds=True)
        self.sshd.track(proc, True)
        try:
            readers = [
                threading.Thread(target=_pump_out, args=(proc.stdout.fileno(), chan.sendall),
                                 daemon=True),
                threading.Thread(target=_pump_out,
                                 args=(proc.stderr.fileno(), chan.sendall_stderr), daemon=True),
            ]
            writer = threading.Thread(target=_pump_in, args=(chan, proc.stdin), daemon=True)
            for th in readers:
                th.start()
            writer.start()
            exited = self._wait(chan, proc)
            # Output still buffered in the pipes goes out before the exit status.
            for th in readers:
                while th.is_alive():
                    th.join(timeout=0.2)
                    if chan.closed or not chan.get_transport().is_active():
                        break
            for f in (proc.stdout, proc.stderr):
                with contextlib.suppress(OSError):
                    f.close()
            if not exited:
                return None
            return _status(proc.returncode)
        finally:
            self.sshd.track(proc, False)

    def _run_pty(self, chan: paramiko.Channel, argv: list[str], env: dict[str, str],
                 home: Path, info: dict[str, object]) -> int | None:
        master, slave = pty.openpty()
        try:
            _set_winsize(slave, info["size"])
            proc = subprocess.Popen(argv, cwd=home, env=env, stdin=slave, stdout=slave,
                                    stderr=slave, start_new_session=True, close_fds=True,
                                    preexec_fn=_acquire_ctty)
        except Exception:
            os.close(master)
            os.close(slave)
            raise
        os.close(slave)
        self._masters[chan.get_id()] = master
        self.sshd.track(proc, True)
        try:
            reader = threading.Thread(target=_pump_out, args=(master, chan.sendall),
                                      daemon=True)
            writer = threading.Thread(target=_pump_in_fd, args=(chan, master), daemon=True)
            reader.start()
            writer.start()
            exited = self._wait(chan, proc)
            reader.join(timeout=1.0)
            if not exited:
                return None
            return _status(proc.returncode)
        finally:
            self.sshd.track(proc, False)
            self._masters.pop(chan.get_id(), None)
            with contextlib.suppress(OSError):
                os.close(master)


def _status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _acquire_ctty() -> None:  # runs in the child between fork and exec
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _set_winsize(fd: int, size: object) -> None:
    rows, cols, xpix, ypix = size  # type: ignore[misc]
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, xpix, ypix))


def _pump_out(fd: int, send: Callable[[bytes], None]) -> None:
    dead = False
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError as e:
            if e.errno == errno.EINTR:
                continue
            return  # EIO: the pty's other side is gone
        if not data:
            return
        if dead:
            continue  # keep draining so the process never blocks on a full pipe
        try:
            send(data)
        except (OSError, EOFError, paramiko.SSHException):
            dead = True


def _pump_in(chan: paramiko.Channel, stdin) -> None:  # type: ignore[no-untyped-def]
    try:
        while True:
            data = chan.recv(65536)
            if not data:
                break
            stdin.write(data)
            stdin.flush()
    except (OSError, EOFError, ValueError, paramiko.SSHException):
        pass
    finally:
        with contextlib.suppress(OSError, ValueError):
            stdin.close()


def _pump_in_fd(chan: paramiko.Channel, fd: int) -> None:
    try:
        while True:
            data = chan.recv(65536)
            if not data:
                break
            os.write(fd, data)
    except (OSError, EOFError, paramiko.SSHException):
        pass


# -------------------------------------------------------------------------------- SFTP


def _sftp_errors(fn):  # type: ignore[no-untyped-def]
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return fn(*args, **kwargs)
        except PermissionError:
            return SFTP_PERMISSION_DENIED
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)
        except (ValueError, TypeError):
            return SFTP_OP_UNSUPPORTED

    return wrapper


class _SFTPServer(paramiko.SFTPServer):
    """paramiko's SFTP server, plus the exit status OpenSSH's sftp-server sends (scp checks)."""

    def start_subsystem(self, name, transport, channel):  # type: ignore[no-untyped-def]
        super().start_subsystem(name, transport, channel)
        with contextlib.suppress(Exception):
            channel.send_exit_status(0)


class _Handle(paramiko.SFTPHandle):
    def stat(self):  # type: ignore[no-untyped-def]
        try:
            f = getattr(self, "readfile", None) or self.writefile
            return paramiko.SFTPAttributes.from_stat(os.fstat(f.fileno()))
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)

    def chattr(self, attr):  # type: ignore[no-untyped-def]
        try:
            f = getattr(self, "readfile", None) or self.writefile
            _apply_attr(f.fileno(), attr)
            return SFTP_OK
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)


def _apply_attr(target: int | Path, attr: paramiko.SFTPAttributes) -> None:
    """Apply mode/size/times; never ownership (that would be a host change)."""
    if attr._flags & attr.FLAG_PERMISSIONS and attr.st_mode is not None:
        mode = attr.st_mode & 0o7777
        if isinstance(target, int):
            os.fchmod(target, mode)
        else:
            os.chmod(target, mode)
    if attr._flags & attr.FLAG_SIZE and attr.st_size is not None:
        os.truncate(target, attr.st_size)
    if attr._flags & attr.FLAG_AMTIME and attr.st_atime is not None:
        os.utime(target, (attr.st_atime, attr.st_mtime))


class ConfinedSFTP(paramiko.SFTPServerInterface):
    """SFTP on the instance root: "/" is root/, relative paths start at the user's home."""

    def __init__(self, server: _Session, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(server, *args, **kwargs)
        self.root = server.sshd.root
        self.user = server.username or "nobody"

    def _path(self, path: str | bytes, follow: bool = True) -> Path:
        if isinstance(path, bytes):
            path = path.decode("utf-8", "surrogateescape")
        return confine.confine_path(self.root, path, self.user, follow=follow)

    @_sftp_errors
    def list_folder(self, path):  # type: ignore[no-untyped-def]
        p = self._path(path)
        out = []
        for name in os.listdir(p):
            attr = paramiko.SFTPAttributes.from_stat(os.lstat(p / name))
            attr.filename = name
            out.append(attr)
        return out

    @_sftp_errors
    def stat(self, path):  # type: ignore[no-untyped-def]
        return paramiko.SFTPAttributes.from_stat(os.stat(self._path(path)))

    @_sftp_errors
    def lstat(self, path):  # type: ignore[no-untyped-def]
        return paramiko.SFTPAttributes.from_stat(os.lstat(self._path(path, follow=False)))

    @_sftp_errors
    def open(self, path, flags, attr):  # type: ignore[no-untyped-def]
        p = self._path(path)
        mode = 0o666
        if attr is not None and attr._flags & attr.FLAG_PERMISSIONS and attr.st_mode:
            mode = attr.st_mode & 0o7777
        fd = os.open(p, flags | getattr(os, "O_BINARY", 0), mode)
        if flags & os.O_CREAT and attr is not None:
            attr._flags &= ~attr.FLAG_PERMISSIONS  # already applied by open()
            with contextlib.suppress(OSError):
                _apply_attr(fd, attr)
        if flags & os.O_WRONLY:
            fstr = "ab" if flags & os.O_APPEND else "wb"
        elif flags & os.O_RDWR:
            fstr = "a+b" if flags & os.O_APPEND else "r+b"
        else:
            fstr = "rb"
        try:
            f = os.fdopen(fd, fstr)
        except OSError:
            os.close(fd)
            raise
        handle = _Handle(flags)
        handle.filename = str(p)
        handle.readfile = f
        handle.writefile = f
        return handle

    @_sftp_errors
    def remove(self, path):  # type: ignore[no-untyped-def]
        os.remove(self._path(path, follow=False))
        return SFTP_OK

    @_sftp_errors
    def rename(self, oldpath, newpath):  # type: ignore[no-untyped-def]
        new = self._path(newpath, follow=False)
        if new.exists():
            return SFTP_FAILURE
        os.rename(self._path(oldpath, follow=False), new)
        return SFTP_OK

    @_sftp_errors
    def posix_rename(self, oldpath, newpath):  # type: ignore[no-untyped-def]
        os.replace(self._path(oldpath, follow=False), self._path(newpath, follow=False))
        return SFTP_OK

    @_sftp_errors
    def mkdir(self, path, attr):  # type: ignore[no-untyped-def]
        p = self._path(path, follow=False)
        mode = 0o777
        if attr is not None and attr._flags & attr.FLAG_PERMISSIONS and attr.st_mode:
            mode = attr.st_mode & 0o7777
        os.mkdir(p, mode)
        return SFTP_OK

    @_sftp_errors
    def rmdir(self, path):  # type: ignore[no-untyped-def]
        os.rmdir(self._path(path, follow=False))
        return SFTP_OK

    @_sftp_errors
    def chattr(self, path, attr):  # type: ignore[no-untyped-def]
        _apply_attr(self._path(path), attr)
        return SFTP_OK

    def canonicalize(self, path):  # type: ignore[no-untyped-def]
        if isinstance(path, bytes):
            path = path.decode("utf-8", "surrogateescape")
        try:
            return confine.instance_path(self.root, self._path(path or "."))
        except OSError:  # e.g. a symlink pointing out: answer without resolving it
            absolute = path if path.startswith("/") else posixpath.join(
                confine.home_rel(self.user), path)
            return posixpath.normpath("/" + absolute.lstrip("/"))

    @_sftp_errors
    def readlink(self, path):  # type: ignore[no-untyped-def]
        target = os.readlink(self._path(path, follow=False))
        if target.startswith("/"):
            with contextlib.suppress(PermissionError):
                return confine.instance_path(self.root, target)
        return target

    @_sftp_errors
    def symlink(self, target_path, path):  # type: ignore[no-untyped-def]
        link = self._path(path, follow=False)
        if isinstance(target_path, bytes):
            target_path = target_path.decode("utf-8", "surrogateescape")
        # The target must resolve inside the root (as seen from the link's folder).
        if target_path.startswith("/"):
            target = str(self._path(target_path))
        else:
            rel = os.path.normpath(os.path.join(os.path.dirname(str(link)), target_path))
            confine.instance_path(self.root, os.path.realpath(rel))
            target = target_path
        os.symlink(target, link)
        return SFTP_OK
