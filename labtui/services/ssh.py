"""SSH client side (paramiko): pinned host keys, streamed exec, SFTP.

- :func:`connect` trusts exactly one host key — the one labtui generated for the machine and
  handed over in its user-data (:mod:`labtui.services.cloudinit`). Nothing is read from
  ``~/.ssh/known_hosts``, an unknown or different key is refused (RejectPolicy, never
  AutoAddPolicy), and transient banner/handshake resets are retried with backoff.
- :func:`run` streams stdout/stderr lines to a callback as they arrive and returns the exit
  status; :func:`put` / :func:`get` move files over SFTP.
- With ``loopback_only`` (set module-wide by the sandbox through :func:`set_loopback_only`,
  or per call) any host that is not a loopback address is refused before a socket is opened.

Passwords and private keys never appear in reprs, logs or exception messages.
"""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
import logging
import os
import posixpath
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import paramiko
from paramiko.common import cMSG_CHANNEL_REQUEST
from paramiko.message import Message

from labtui.errors import LabError

log = logging.getLogger(__name__)
WIRE_LOGGER = "labtui.services.ssh.wire"
# paramiko's transport logs a dropped connection as an ERROR; labtui raises SshError instead.
logging.getLogger(WIRE_LOGGER).setLevel(logging.CRITICAL)
if logging.getLogger("paramiko").level < logging.ERROR:
    # paramiko logs handshake hiccups at ERROR/WARNING with tracebacks; those would be
    # written over a terminal UI. labtui reports failures itself (SshError).
    logging.getLogger("paramiko").setLevel(logging.ERROR)

LOOPBACK_ONLY = False

LineCallback = Callable[[str, str], None]


class SshError(LabError):
    """An SSH operation failed; the message says what to do about it."""


class SshUnreachable(SshError):
    """No SSH server answered at the address (refused, or no answer in time): the machine
    may still be booting, or be stopped."""


def set_loopback_only(value: bool) -> None:
    """Refuse (SshError) every connection to a non-loopback host from now on (sandbox)."""
    global LOOPBACK_ONLY
    LOOPBACK_ONLY = bool(value)


@dataclass(frozen=True)
class SshTarget:
    """Where and how to log in. ``host_key`` is the pinned public key line
    ("ssh-ed25519 AAAA... [comment]")."""

    host: str
    port: int
    user: str
    host_key: str = field(repr=False)
    pkey: paramiko.PKey | None = field(default=None, repr=False, compare=False)
    password: str | None = field(default=None, repr=False, compare=False)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.user}@{self.address}"


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_public_key(line: str) -> paramiko.PKey:
    """A paramiko key from an OpenSSH public-key line ("type base64 [comment]")."""
    words = line.strip().split()
    if len(words) < 2:
        raise SshError("the pinned host key is not an OpenSSH public key line "
                       "('ssh-ed25519 AAAA...')")
    try:
        blob = base64.b64decode(words[1], validate=True)
        return paramiko.PKey.from_type_string(words[0], blob)
    except (binascii.Error, ValueError, paramiko.SSHException, paramiko.UnknownKeyType) as e:
        raise SshError(f"the pinned host key ({words[0]}) cannot be read: "
                       f"{type(e).__name__}") from None


def load_private_key(text: str, password: str | None = None) -> paramiko.PKey:
    """Load a private key (RSA PEM as EC2 returns by default, or OpenSSH ed25519/ecdsa)."""
    errors = []
    for cls in (paramiko.RSAKey, paramiko.Ed25519Key, paramiko.ECDSAKey):
        try:
            return cls.from_private_key(io.StringIO(text), password=password)
        except (paramiko.SSHException, ValueError, TypeError) as e:
            errors.append(f"{cls.__name__}: {type(e).__name__}")
    raise SshError("the private key cannot be read (" + "; ".join(errors) + ")")


def _host_key_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


_TRANSIENT = ("error reading ssh protocol banner", "connection reset", "eof",
              "negotiation failed", "broken pipe", "timed out", "no existing session")


def _transient(e: BaseException) -> bool:
    if isinstance(e, (ConnectionResetError, BrokenPipeError, EOFError, socket.timeout,
                      TimeoutError)):
        return True
    if isinstance(e, paramiko.SSHException) and not isinstance(
            e, (paramiko.AuthenticationException, paramiko.BadHostKeyException)):
        text = str(e).lower()
        return any(t in text for t in _TRANSIENT)
    return False


def connect(target: SshTarget, *, timeout: float = 10.0, attempts: int = 4,
            backoff: float = 0.3, sleep: Callable[[float], None] = time.sleep,
            loopback_only: bool | None = None,
            connect_timeout: float | None = None) -> paramiko.SSHClient:
    """Log in to ``target`` trusting only its pinned host key. Raises SshError
    (SshUnreachable when nothing listens there). With ``connect_timeout``, a TCP connect
    that gets no answer in that time is SshUnreachable at once, not retried."""
    only_lo = LOOPBACK_ONLY if loopback_only is None else loopback_only
    if only_lo and not is_loopback(target.host):
        raise SshError(f"refusing to connect to {target.address}: the sandbox only talks to "
                       "loopback (127.0.0.1/::1); the instance address was not resolved to a "
                       "local port")
    if target.pkey is None and target.password is None:
        raise SshError(f"no private key or password to log in to {target}")
    pinned = parse_public_key(target.host_key)
    last: BaseException | None = None
    for attempt in range(max(1, attempts)):
        client = paramiko.SSHClient()
        hk = client.get_host_keys()
        hk.clear()
        hk.add(_host_key_name(target.host, target.port), pinned.get_name(), pinned)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.set_log_channel(WIRE_LOGGER)
        try:
            try:
                sock = socket.create_connection((target.host, target.port),
                                                timeout=connect_timeout or timeout)
            except OSError as e:
                if connect_timeout is None or isinstance(e, ConnectionRefusedError):
                    raise
                raise SshUnreachable(f"no SSH server answers at {target.address} within "
                                     f"{connect_timeout:g} s: is the machine running?"
                                     ) from None
            # Small SSH packets both ways: without NODELAY, Nagle + delayed ACK add ~40 ms
            # to every exec round trip.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.connect(
                target.host, port=target.port, username=target.user, pkey=target.pkey,
                password=target.password, timeout=timeout, banner_timeout=timeout,
                auth_timeout=timeout, allow_agent=False, look_for_keys=False, sock=sock,
            )
            return client
        except paramiko.BadHostKeyException as e:
            client.close()
            raise SshError(
                f"host key of {target.address} does not match the pinned one (got "
                f"{e.key.get_name()} {e.key.fingerprint}, pinned {pinned.get_name()} "
                f"{pinned.fingerprint}): the address may now belong to another machine, or "
                "the machine was rebuilt; check the instance before trusting it") from None
        except paramiko.AuthenticationException:
            client.close()
            how = "key" if target.pkey is not None else "password"
            raise SshError(f"authentication ({how}) failed for {target}: check the user "
                           "name and the key pair / password of this machine") from None
        except paramiko.SSHException as e:
            client.close()
            if "not found in known_hosts" in str(e):
                raise SshError(
                    f"host key of {target.address} does not match the pinned one (the "
                    f"server offers no {pinned.get_name()} key): refusing to connect"
                ) from None
            if not _transient(e):
                raise SshError(f"SSH to {target.address} failed: {e}") from None
            last = e
        except (ConnectionRefusedError, paramiko.ssh_exception.NoValidConnectionsError):
            client.close()
            raise SshUnreachable(f"connection to {target.address} refused: is the machine "
                                 "running and is its SSH server up?") from None
        except OSError as e:
            client.close()
            if not _transient(e):
                raise SshError(f"cannot reach {target.address}: {e.strerror or e}") from None
            last = e
        except EOFError as e:
            client.close()
            last = e
        if attempt + 1 < attempts:
            sleep(backoff * (2 ** attempt))
    raise SshError(f"SSH handshake with {target.address} kept failing after {attempts} "
                   f"attempts ({type(last).__name__}: {last})")


def run(client: paramiko.SSHClient, command: str, *, on_line: LineCallback | None = None,
        stdin: bytes | str | None = None, timeout: float | None = None,
        get_pty: bool = False) -> int:
    """Run ``command``; call ``on_line(stream, line)`` ("stdout"/"stderr", no newline) for
    each line as it arrives; return the exit status (-1 if the server sent none).

    stdin gets ``stdin`` (if any) and then EOF, so commands reading stdin never hang.
    ``timeout`` bounds the whole command (SshError after it; the command is ended on the
    machine: closing the channel alone would leave it running).
    """
    transport = client.get_transport()
    if transport is None or not transport.is_active():
        raise SshError("the SSH connection is closed; connect again")
    deadline = None if timeout is None else time.monotonic() + timeout
    running = _running(transport)
    chan = _start(transport, command, timeout, get_pty, running)
    try:
        if stdin is not None:
            chan.sendall(stdin.encode() if isinstance(stdin, str) else stdin)
        chan.shutdown_write()
        buffers = {"stdout": b"", "stderr": b""}

        def emit(name: str, data: bytes, final: bool = False) -> None:
            buf = buffers[name] + data
            *lines, rest = buf.split(b"\n")
            if final and rest:
                lines.append(rest)
                rest = b""
            buffers[name] = rest
            if on_line is not None:
                for raw in lines:
                    on_line(name, raw.rstrip(b"\r").decode("utf-8", "replace"))

        import select

        fd = chan.fileno()
        while True:
            got = False
            while chan.recv_ready():
                emit("stdout", chan.recv(65536))
                got = True
            while chan.recv_stderr_ready():
                emit("stderr", chan.recv_stderr(65536))
                got = True
            if chan.eof_received and not chan.recv_ready() and not chan.recv_stderr_ready():
                break
            if chan.closed and not got:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise _timed_out(chan, timeout)
            if not got:
                wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline -
                                                                 time.monotonic()))
                select.select([fd], [], [], wait)
                # the pipe behind fileno() stays set while data is pending; recv clears it
        emit("stdout", b"", final=True)
        emit("stderr", b"", final=True)
        while not chan.exit_status_ready():
            if deadline is not None and time.monotonic() > deadline:
                raise _timed_out(chan, timeout)
            if chan.closed and not chan.exit_status_ready():
                break
            chan.status_event.wait(0.2)
        return chan.exit_status if chan.exit_status_ready() else -1
    except (OSError, EOFError, paramiko.SSHException) as e:
        raise SshError(f"the SSH connection broke while the command ran: {e}") from None
    finally:
        with running.lock:
            running.channels.discard(chan)
        chan.close()


def _timed_out(chan: paramiko.Channel, timeout: float | None) -> SshError:
    _end([chan], END_GRACE)
    return SshError(f"command timed out after {timeout:g} s")


def _start(transport: paramiko.Transport, command: str, timeout: float | None,
           get_pty: bool, running: _Running, attempts: int = 2) -> paramiko.Channel:
    """Open a session and start ``command``. A server that refuses the exec request (or
    closes the channel before answering it) has not started the command, so asking once
    more on a new channel is safe; seen rarely with many connections setting up at once."""
    for attempt in range(attempts):
        try:
            chan = transport.open_session(timeout=timeout or 30.0)
            if get_pty:
                chan.get_pty()
            # The exec request and the record of it together: a command is either refused
            # here or known to end_commands, never started behind its back.
            with running.lock:
                if running.ended:
                    chan.close()
                    raise SshError("interrupted: no new command is started")
                chan.exec_command(command)
                running.channels.add(chan)
            return chan
        except (paramiko.SSHException, EOFError, OSError) as e:
            refused = "Channel closed" in str(e) and transport.is_active()
            if not refused or attempt == attempts - 1:
                raise SshError(f"could not start the command: {e}") from None
    raise AssertionError("unreachable")


# -- ending the commands a connection runs (Ctrl-C) ----------------------------------------
#
# Closing a connection does not end what it runs: without a terminal, OpenSSH leaves the
# command running when its client goes (measured: a `sleep 60` outlives the close). The
# SSH "signal" request (RFC 4254 6.9) does: OpenSSH (7.8 and later) answers it with
# killpg() on the session's process group, which sshd made for the command (setsid), so
# the step's children end with it.

END_GRACE = 0.8   # seconds an ended command has after TERM before KILL


@dataclass
class _Running:
    lock: threading.Lock = field(default_factory=threading.Lock)
    channels: set[paramiko.Channel] = field(default_factory=set)
    ended: bool = False


_RUNNING: weakref.WeakKeyDictionary[paramiko.Transport, _Running] = \
    weakref.WeakKeyDictionary()
_RUNNING_LOCK = threading.Lock()


def _running(transport: paramiko.Transport) -> _Running:
    with _RUNNING_LOCK:
        running = _RUNNING.get(transport)
        if running is None:
            running = _RUNNING[transport] = _Running()
        return running


def _signal(chan: paramiko.Channel, name: str) -> None:
    m = Message()
    m.add_byte(cMSG_CHANNEL_REQUEST)
    m.add_int(chan.remote_chanid)
    m.add_string("signal")
    m.add_boolean(False)
    m.add_string(name)
    try:
        chan.transport._send_user_message(m)  # as paramiko's own requests are sent
    except (OSError, EOFError, paramiko.SSHException):
        pass  # the connection is gone already; closing it is all that is left


def end_commands(clients: Iterable[paramiko.SSHClient], grace: float = END_GRACE) -> int:
    """End every command these connections run, and start no new one on them: TERM to each
    command's process group, KILL after ``grace`` seconds to those still running. Returns
    how many were running. The connections stay open (close them after)."""
    chans: list[paramiko.Channel] = []
    for client in clients:
        transport = client.get_transport()
        if transport is None:
            continue
        running = _running(transport)
        got = running.lock.acquire(timeout=grace)  # a command being started: its reply
        try:
            running.ended = True
            chans.extend(c for c in list(running.channels) if not c.closed)
        finally:
            if got:
                running.lock.release()
    _end(chans, grace)
    return len(chans)


def _end(chans: list[paramiko.Channel], grace: float) -> None:
    """TERM to the commands, then KILL to those that did not exit within ``grace``."""
    for chan in chans:
        _signal(chan, "TERM")
    deadline = time.monotonic() + grace
    for chan in chans:
        chan.status_event.wait(max(0.0, deadline - time.monotonic()))
    for chan in chans:
        if not chan.exit_status_ready():
            _signal(chan, "KILL")


def put(client: paramiko.SSHClient, source: str | os.PathLike[str] | bytes, remote_path: str,
        mode: int | None = None) -> None:
    """Upload a local file (path) or ``bytes`` to ``remote_path``; set ``mode`` if given."""
    try:
        sftp = client.open_sftp()
    except (paramiko.SSHException, EOFError, OSError) as e:
        raise SshError(f"SFTP is not available: {e}") from None
    try:
        if isinstance(source, bytes):
            with sftp.open(remote_path, "wb") as f:
                f.set_pipelined(True)
                f.write(source)
        else:
            sftp.put(os.fspath(source), remote_path)
        if mode is not None:
            sftp.chmod(remote_path, mode)
    except PermissionError:
        raise SshError(f"permission denied writing {remote_path} over SFTP") from None
    except FileNotFoundError:
        raise SshError(f"cannot write {remote_path}: the folder does not exist "
                       f"({posixpath.dirname(remote_path) or '.'})") from None
    except (OSError, paramiko.SSHException) as e:
        raise SshError(f"SFTP upload to {remote_path} failed: {e}") from None
    finally:
        sftp.close()


def get(client: paramiko.SSHClient, remote_path: str,
        local_path: str | os.PathLike[str] | None = None) -> bytes | None:
    """Download ``remote_path``: returned as bytes, or written to ``local_path`` (-> None)."""
    try:
        sftp = client.open_sftp()
    except (paramiko.SSHException, EOFError, OSError) as e:
        raise SshError(f"SFTP is not available: {e}") from None
    try:
        if local_path is not None:
            sftp.get(remote_path, os.fspath(local_path))
            return None
        with sftp.open(remote_path, "rb") as f:
            f.prefetch()
            return f.read()
    except PermissionError:
        raise SshError(f"permission denied reading {remote_path} over SFTP") from None
    except FileNotFoundError:
        raise SshError(f"{remote_path} does not exist on the machine") from None
    except (OSError, paramiko.SSHException) as e:
        raise SshError(f"SFTP download of {remote_path} failed: {e}") from None
    finally:
        sftp.close()


__all__ = ["SshError", "SshUnreachable", "SshTarget", "connect", "run", "put", "get",
           "set_loopback_only", "is_loopback", "parse_public_key", "load_private_key"]


PINNED_OPTIONS = ("-o", "StrictHostKeyChecking=yes", "-o", "GlobalKnownHostsFile=/dev/null",
                  "-o", "HostKeyAlgorithms=ssh-ed25519", "-o", "ForwardAgent=no",
                  "-o", "ForwardX11=no")


def openssh_argv(host: str, port: int, user: str, known_hosts: str,
                 identity: str | None = None) -> list[str]:
    """The OpenSSH command that logs in to ``user@host:port`` trusting only the host key in
    ``known_hosts`` (``host key`` on port 22, ``[host]:port key`` otherwise)."""
    argv = ["ssh"]
    if identity:
        argv += ["-i", identity, "-o", "IdentitiesOnly=yes"]
    if port != 22:
        argv += ["-p", str(port)]
    return argv + ["-o", f"UserKnownHostsFile={known_hosts}", *PINNED_OPTIONS,
                   f"{user}@{host}"]
