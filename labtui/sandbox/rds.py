"""The sandbox's RDS: a real MariaDB server for every MySQL or MariaDB DB instance of moto.

moto runs in the same process (``ThreadedMotoServer``) and keeps DB instances as records;
:func:`install_moto_hooks` wraps its RDS backend so that, for engine ``mysql`` or
``mariadb``:

- CreateDBInstance answers at once with the instance ``creating`` while a MariaDB server is
  made for it in ``<sandbox folder>/rds/<db-instance-id>`` (``mariadb-install-db``, then
  ``mariadbd`` on a free port of 127.0.0.1, started with the options of the instance's DB
  parameter group that MariaDB knows: ``character_set_server``, ``collation_server`` ...);
  once it answers, the master user is made (``MasterUsername``/``MasterUserPassword``, all
  privileges WITH GRANT OPTION, from '%') and ``DBName`` created, the instance becomes
  ``available`` and its endpoint (DescribeDBInstances) is ``127.0.0.1`` and that port;
- DeleteDBInstance stops the server and deletes its folder; so do a reset of the sandbox
  (every record is forgotten) and its stop.

The servers are started from one long-lived thread: PR_SET_PDEATHSIG fires when the thread
that forked a process ends, and it is set on every server, so a killed sandbox leaves none
running. Where MariaDB is not installed (:func:`mariadb_problem`), DB instances stay moto's
records (endpoint and status as moto makes them) and the sandbox says why, once.

The master password reaches the server only on the client's stdin, never on a command line,
in a file or in a log.
"""

from __future__ import annotations

import contextlib
import ctypes
import getpass
import logging
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labtui.state import append_private, private_dir

log = logging.getLogger(__name__)
ENGINES = ("mysql", "mariadb")
LOOPBACK = "127.0.0.1"
READY_TIMEOUT = 120.0  # a bound, not an estimate: a server answers in about a second here
_SEARCH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin"])
_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
_patch_lock = threading.Lock()
# the servers of this process (moto's state is per process): the latest started wins
# the sandboxes serving in this process, the newest last: a private sandbox that starts and
# stops (a console's own) gives the RDS hooks back to the one that served before it
_serving: list[DatabaseServers] = []


def _current() -> DatabaseServers | None:
    return _serving[-1] if _serving else None
# Options the sandbox sets itself, or that would reach past the server's own folder: a
# parameter group's value for one of them is not passed on.
_RESERVED = frozenset({
    "basedir", "bind-address", "character-sets-dir", "datadir", "general-log-file",
    "init-file", "innodb-data-home-dir", "innodb-log-group-home-dir", "innodb-undo-directory",
    "lc-messages-dir", "log-basename", "log-bin", "log-bin-index", "log-error",
    "pid-file", "plugin-dir", "plugin-load", "plugin-load-add", "port", "relay-log",
    "relay-log-index", "secure-file-priv", "skip-grant-tables", "skip-networking",
    "slow-query-log-file", "socket", "tmpdir", "user", "aria-log-dir-path",
})


def _tool(name: str) -> str | None:
    return shutil.which(name, path=_SEARCH)


def mariadb_problem() -> str | None:
    """Why this host cannot play DB instances with MariaDB servers, or None when it can."""
    if not sys.platform.startswith("linux"):
        return "DB instances are played by MariaDB servers on Linux; this system is not Linux"
    missing = [name for name in ("mariadbd", "mariadb-install-db", "mariadb")
               if _tool(name) is None]
    if missing:
        return (f"MariaDB is not installed ({', '.join(missing)} missing). Fix: apt-get "
                "install mariadb-server (the sandbox runs its own servers; the system's "
                "service need not run)")
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


def _quote(text: str) -> str:
    """A MariaDB string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\0", "\\0") + "'"


def _die_with_parent() -> Callable[[], None]:
    """A preexec_fn: PR_SET_PDEATHSIG (SIGKILL), as the machines' `setpriv --pdeathsig`."""
    libc = ctypes.CDLL(None, use_errno=True)  # loaded here, not in the forked child
    prctl = libc.prctl

    def preexec() -> None:
        prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1: PR_SET_PDEATHSIG

    return preexec


_known: frozenset[str] | None = None


def server_options() -> frozenset[str]:
    """The options this mariadbd accepts (its ``--verbose --help`` variables), dashed."""
    global _known
    if _known is None:
        names: set[str] = set()
        argv = [str(_tool("mariadbd")), "--no-defaults", "--verbose", "--help"]
        if os.geteuid() == 0:
            argv.append("--user=root")
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(argv, capture_output=True, text=True, env=_ENV,
                                 timeout=60).stdout
            table = out.split("\nVariables (--variable-name=value)", 1)[-1]
            for line in table.splitlines()[3:]:
                if line and not line.startswith(" "):
                    names.add(line.split()[0])
        _known = frozenset(names)
    return _known


def parameter_options(parameters: dict[str, Any]) -> tuple[list[str], list[str]]:
    """``--name=value`` for each parameter of a DB parameter group MariaDB accepts, and the
    names left out (unknown to MariaDB, set by the sandbox itself, or a formula of RDS's
    such as ``{DBInstanceClassMemory*3/4}``)."""
    known = server_options()
    options: list[str] = []
    skipped: list[str] = []
    for name in sorted(parameters):
        entry = parameters[name]
        # moto keeps a parameter as given (ParameterValue) or snake-cased (parameter_value)
        value = (entry.get("ParameterValue", entry.get("parameter_value"))
                 if hasattr(entry, "get") else None)
        dashed = name.replace("_", "-")
        if value is None:
            continue
        value = str(value)
        if (dashed not in known or dashed in _RESERVED or "{" in value
                or "\n" in value or "\0" in value):
            skipped.append(name)
            continue
        options.append(f"--{dashed}={value}")
    return options, skipped


@dataclass
class Server:
    """The MariaDB server of one DB instance."""

    key: tuple[str, str, str]  # account, region, DB instance id
    db: Any                    # moto's DBInstance
    folder: Path
    options: list[str]
    master_username: str | None = None
    master_password: str | None = field(default=None, repr=False)
    db_name: str | None = None
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    socket_dir: Path | None = None  # a short folder of its own when the folder's path is long
    cancelled: threading.Event = field(default_factory=threading.Event)
    ready: threading.Event = field(default_factory=threading.Event)
    failure: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def socket(self) -> Path:
        return (self.socket_dir or self.folder) / "mysqld.sock"

    @property
    def log_file(self) -> Path:
        return self.folder / "mariadbd.log"

    def note(self, text: str) -> None:
        with contextlib.suppress(OSError):
            append_private(self.folder / "sandbox.log", text.rstrip("\n") + "\n")


class DatabaseServers:
    """Runs the MariaDB servers of the sandbox's DB instances (one per mysql/mariadb one)."""

    def __init__(self, sandbox_dir: Path, account_id: str = "123456789012",
                 say: Callable[[str], None] = lambda _line: None) -> None:
        self.root = Path(sandbox_dir) / "rds"
        self.account_id = account_id
        self.problem = mariadb_problem()
        self._say = say
        self._said = False
        self._servers: dict[tuple[str, str, str], Server] = {}
        self._lock = threading.RLock()
        self._jobs: queue.Queue[Server | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        install_moto_hooks()

    # ---------------------------------------------------------------- public

    def start(self) -> DatabaseServers:
        # folders of an earlier run belong to DB instances moto no longer knows
        if self.root.is_dir():
            for stale in self.root.iterdir():
                shutil.rmtree(stale, ignore_errors=True)
        self._stopping.clear()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, daemon=True,
                                            name="labtui-sandbox-rds")
            self._thread.start()
        if self in _serving:
            _serving.remove(self)
        _serving.append(self)
        return self

    def stop(self) -> None:
        """Stop every server and delete its folder; stop serving."""
        if self in _serving:
            _serving.remove(self)
        self._stopping.set()
        with self._lock:
            servers = list(self._servers.values())
            self._servers.clear()
        for server in servers:
            self._end(server)
        self._jobs.put(None)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        self._thread = None

    def sync(self) -> None:
        """Stop the servers of DB instances moto no longer holds (deleted, or reset)."""
        with self._lock:
            gone = [s for s in self._servers.values() if not self._held(s)]
            for server in gone:
                self._servers.pop(server.key, None)
        for server in gone:
            self._end(server)

    def server(self, region: str, db_instance_id: str) -> Server | None:
        with self._lock:
            return self._servers.get((self.account_id, region, db_instance_id.lower()))

    def pids(self) -> list[int]:
        """The pids of the servers running now."""
        with self._lock:
            procs = [s.proc for s in self._servers.values()]
        return [p.pid for p in procs if p is not None and p.poll() is None]

    # ---------------------------------------------------------------- moto's side

    def created(self, backend: Any, db: Any, kwargs: dict[str, Any]) -> None:
        """CreateDBInstance (under moto's request): make its server, in the background."""
        if str(getattr(db, "engine", "")).lower() not in ENGINES:
            return
        if self.problem:
            if not self._said:
                self._said = True
                line = f"sandbox: DB instances get no database server here: {self.problem}"
                log.warning("%s", line)
                with contextlib.suppress(Exception):
                    self._say(line)
            return
        key = (str(backend.account_id), str(backend.region_name),
               str(db.db_instance_identifier))  # lower case, as RDS keeps it
        options: list[str] = []
        skipped: list[str] = []
        charset = getattr(db, "character_set_name", None)
        if charset:
            options.append(f"--character-set-server={charset}")
        with contextlib.suppress(Exception):
            for group in db.db_parameter_groups():
                found, left = parameter_options(dict(group.parameters))
                options += found
                skipped += left
        with self._lock:
            earlier = self._servers.pop(key, None)  # a record forgotten since (a reset)
        if earlier is not None:
            self._end(earlier)
        with self._lock:
            folder = self.root / key[2]
            if any(s.folder == folder for s in self._servers.values()):
                folder = self.root / f"{key[2]}.{key[1]}"  # the same id in another region
            server = Server(key, db, folder, options,
                            master_username=kwargs.get("master_username"),
                            master_password=kwargs.get("master_user_password"),
                            db_name=kwargs.get("db_name"))
            self._servers[key] = server
        shutil.rmtree(folder, ignore_errors=True)
        private_dir(folder)
        if skipped:
            server.note("parameters not passed to MariaDB (unknown to it, set by the sandbox, "
                        "or an RDS formula): " + ", ".join(skipped))
        db.status = "creating"
        self._jobs.put(server)

    def deleted(self, backend: Any, db_instance_id: str) -> None:
        """DeleteDBInstance: its server stops and its folder goes, before the answer."""
        key = (str(backend.account_id), str(backend.region_name), db_instance_id.lower())
        with self._lock:
            server = self._servers.pop(key, None)
        if server is not None:
            self._end(server)

    def _held(self, server: Server) -> bool:
        from moto.rds.models import rds_backends

        account, region, iid = server.key
        # dict.get: never make moto create an account's or a region's backend
        regions = dict.get(rds_backends, account)
        backend = dict.get(regions, region) if regions is not None else None
        databases = getattr(backend, "databases", None) or {}
        # moto keys its records by the id as given; the record is what counts
        return databases.get(iid) is server.db or any(
            db is server.db for db in list(databases.values()))

    # ---------------------------------------------------------------- the thread

    def _loop(self) -> None:
        # Every server is started here: PR_SET_PDEATHSIG ties it to this thread.
        while not self._stopping.is_set():
            try:
                server = self._jobs.get(timeout=1.0)
            except queue.Empty:
                server = None
            if server is None:
                with contextlib.suppress(Exception):
                    self.sync()  # a reset from outside (moto-api/reset) ends them too
                continue
            try:
                self._make(server)
            except Exception as e:  # one broken server must not stop the others
                self._failed(server, f"{type(e).__name__}: {e}")
        with self._lock:
            servers = list(self._servers.values())
            self._servers.clear()
        for server in servers:
            self._end(server)

    def _launch(self, server: Server, argv: list[str], out: Path) -> subprocess.Popen[bytes]:
        with server.lock:
            if server.cancelled.is_set():
                raise _Cancelled
            output = open(out, "ab", opener=lambda p, f: os.open(p, f, 0o600))
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output,
                                        stderr=subprocess.STDOUT, env=_ENV, cwd=server.folder,
                                        start_new_session=True, close_fds=True,
                                        preexec_fn=_die_with_parent())
            finally:
                output.close()
            server.proc = proc
            return proc

    def _make(self, server: Server) -> None:
        try:
            self._install(server)
            for _attempt in range(3):  # the free port was taken in between: another one
                server.port = _free_port()
                proc = self._launch(server, self._server_argv(server), server.log_file)
                if self._wait_ready(server, proc):
                    break
                if "Bind on TCP/IP port" not in self._log_tail(server):
                    raise _Failed(self._log_tail(server) or "mariadbd exited")
            else:
                raise _Failed(self._log_tail(server) or "mariadbd did not start")
            self._setup(server)
        except _Cancelled:
            return
        except _Failed as e:
            self._failed(server, str(e))
            return
        if server.cancelled.is_set():
            return
        db = server.db
        db._labtui_address, db._labtui_port = LOOPBACK, server.port
        db.status = "available"
        server.ready.set()
        server.note(f"mariadbd serves {db.db_instance_identifier} on {LOOPBACK}:{server.port}")

    def _install(self, server: Server) -> None:
        data = server.folder / "data"
        argv = [str(_tool("mariadb-install-db")), "--no-defaults", f"--datadir={data}",
                "--auth-root-authentication-method=socket", "--skip-test-db",
                "--innodb-log-file-size=16M"]
        user = _os_user()
        argv.append("--user=root" if user == "root" else f"--auth-root-socket-user={user}")
        proc = self._launch(server, argv, server.folder / "install.log")
        try:
            status = proc.wait(timeout=READY_TIMEOUT)
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise _Failed("mariadb-install-db did not finish") from None
        if server.cancelled.is_set():
            raise _Cancelled
        if status != 0:
            raise _Failed(f"mariadb-install-db failed (exit {status}): "
                          + self._log_tail(server, server.folder / "install.log"))

    def _server_argv(self, server: Server) -> list[str]:
        if server.socket_dir is None and len(str(server.folder / "mysqld.sock")) > 100:
            # a socket's path holds 108 bytes at most: a short folder of its own then
            server.socket_dir = Path(tempfile.mkdtemp(prefix="labtui-rds-"))
        argv = [str(_tool("mariadbd")), "--no-defaults", f"--datadir={server.folder / 'data'}",
                f"--port={server.port}", f"--bind-address={LOOPBACK}",
                f"--socket={server.socket}", f"--pid-file={server.folder / 'mysqld.pid'}",
                "--skip-log-bin", "--innodb-log-file-size=16M"]
        if _os_user() == "root":
            argv.append("--user=root")
        return argv + server.options  # the parameter group's come last and win

    def _wait_ready(self, server: Server, proc: subprocess.Popen[bytes]) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if server.cancelled.is_set():
                raise _Cancelled
            if proc.poll() is not None:
                return False
            if server.socket.exists() and _answers(server.port):
                return True
            time.sleep(0.05)
        raise _Failed(f"mariadbd did not answer within {READY_TIMEOUT:.0f} s")

    def _setup(self, server: Server) -> None:
        """The master user and DBName, through the socket as the OS user; the password on
        the client's stdin only."""
        sql = ["SET SESSION sql_log_off = 1;"]  # not even a general log sees the password
        if server.master_username:
            user = f"{_quote(server.master_username)}@'%'"
            password = server.master_password or ""
            sql += [f"CREATE USER IF NOT EXISTS {user} IDENTIFIED BY {_quote(password)};",
                    f"GRANT ALL PRIVILEGES ON *.* TO {user} WITH GRANT OPTION;"]
        if server.db_name:
            name = server.db_name.replace("`", "``")
            sql.append(f"CREATE DATABASE IF NOT EXISTS `{name}`;")
        sql.append("FLUSH PRIVILEGES;")
        argv = [str(_tool("mariadb")), "--no-defaults", "--protocol=socket",
                f"--socket={server.socket}", "-u", _os_user(), "--batch",
                "--default-character-set=utf8mb4",
                "--connect-timeout=10"]
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if server.cancelled.is_set():
                raise _Cancelled
            try:
                done = subprocess.run(argv, input="\n".join(sql).encode(), capture_output=True,
                                      env=_ENV, timeout=60)
            except subprocess.TimeoutExpired:
                done = None
            if done is not None and done.returncode == 0:
                server.master_password = None  # held no longer than needed
                return
            if server.proc is None or server.proc.poll() is not None:
                raise _Failed("mariadbd exited: " + self._log_tail(server))
            if time.monotonic() > deadline:
                error = done.stderr.decode(errors="replace").strip() if done else "timed out"
                raise _Failed(f"the master user could not be made: {error}")
            time.sleep(0.2)

    def _failed(self, server: Server, reason: str) -> None:
        if server.cancelled.is_set():
            return
        server.failure = reason
        server.note(f"the server did not start: {reason}")
        log.info("sandbox: the DB instance %s has no server: %s", server.key[2], reason)
        server.master_password = None
        with contextlib.suppress(Exception):
            server.db.status = "failed"
        with server.lock:
            proc = server.proc
        if proc is not None:
            _kill(proc)

    def _log_tail(self, server: Server, path: Path | None = None) -> str:
        try:
            lines = (path or server.log_file).read_text(errors="replace").splitlines()
        except OSError:
            return ""
        errors = [line for line in lines if "[ERROR]" in line] or lines
        return " / ".join(line.strip() for line in errors[-3:])

    def _end(self, server: Server) -> None:
        """Stop the server now (its data is deleted with it) and delete its folder."""
        with server.lock:
            server.cancelled.set()
            proc = server.proc
        if proc is not None:
            _kill(proc)
        server.master_password = None
        shutil.rmtree(server.folder, ignore_errors=True)
        if server.socket_dir is not None:
            shutil.rmtree(server.socket_dir, ignore_errors=True)


class _Cancelled(Exception):
    """The DB instance went while its server was being made."""


class _Failed(Exception):
    """The server could not be made: why."""


def _os_user() -> str:
    if os.geteuid() == 0:
        return "root"
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.geteuid())


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """End a process and its session (mariadb-install-db's bootstrap server too)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)


def install_moto_hooks() -> None:
    """Wrap moto's RDS backend (once per process): Create/DeleteDBInstance reach the running
    :class:`DatabaseServers`, and an instance with a server reports its address and port."""
    from moto.rds.models import DBInstance, RDSBackend

    with _patch_lock:
        if getattr(RDSBackend, "_labtui_hooks", False):
            return
        original_create, original_delete = RDSBackend.create_db_instance, \
            RDSBackend.delete_db_instance
        original_address = DBInstance.address.fget
        original_port = DBInstance.db_instance_port.fget

        def create_db_instance(self, db_kwargs):  # type: ignore[no-untyped-def]
            database = original_create(self, db_kwargs)
            servers = _current()
            if servers is not None:
                servers.created(self, database, db_kwargs)
            return database

        def delete_db_instance(self, db_instance_identifier, *args, **kwargs):  # type: ignore[no-untyped-def]  # noqa: E501
            database = original_delete(self, db_instance_identifier, *args, **kwargs)
            servers = _current()
            if servers is not None:
                servers.deleted(self, db_instance_identifier)
            return database

        def address(self):  # type: ignore[no-untyped-def]
            return getattr(self, "_labtui_address", None) or original_address(self)

        def port(self):  # type: ignore[no-untyped-def]
            return getattr(self, "_labtui_port", None) or original_port(self)

        def endpoint(self):  # type: ignore[no-untyped-def]
            return {"Address": self.address, "Port": self.db_instance_port}

        # moto knows no default version for mariadb (KeyError without EngineVersion): the
        # major version that plays it, as RDS offers it
        DBInstance.default_engine_versions.setdefault("mariadb", "10.11.10")
        RDSBackend.create_db_instance = create_db_instance
        RDSBackend.delete_db_instance = delete_db_instance
        DBInstance.address = property(address)
        DBInstance.db_instance_port = property(port)
        DBInstance.endpoint = property(endpoint)
        RDSBackend._labtui_hooks = True


def running_servers() -> list[int]:
    """The pids of this process's sandbox MariaDB servers (tests check none outlives)."""
    servers = _current()
    return servers.pids() if servers is not None else []

