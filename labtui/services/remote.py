"""Reaching one seat's machine over SSH: its address through the seam, its pinned host key,
the course key, and paced handshakes."""

from __future__ import annotations

import socket
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import paramiko

from labtui.services import ssh
from labtui.services.aws import Aws
from labtui.services.endpoints import Resolver
from labtui.services.fanout import Pacer
from labtui.services.inventory import Machine
from labtui.services.machines import KnownHosts, describe, to_machine

PROBE_TIMEOUT = 2.0  # seconds a TCP connect to a machine's SSH port may take


@dataclass
class Remote:
    aws: Aws
    resolver: Resolver
    known: KnownHosts
    private_key: str = field(repr=False)
    user: str
    pacer: Pacer = field(default_factory=Pacer)
    sleep: Callable[[float], None] = time.sleep
    _pkey: paramiko.PKey | None = field(default=None, init=False, repr=False)
    _stopped: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _open: weakref.WeakSet = field(default_factory=weakref.WeakSet, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def stop(self) -> None:
        """Ctrl-C: no new connection or command from now on; the commands running are ended
        on their machines (:func:`ssh.end_commands`) and every connection is closed (the
        fan-out's workers then finish at once)."""
        self._stopped.set()
        with self._lock:
            clients = list(self._open)
        ssh.end_commands(clients)
        for client in clients:
            client.close()

    def _refuse_if_stopped(self, machine: Machine) -> None:
        if self._stopped.is_set():
            raise ssh.SshError(f"{machine.seat}: interrupted before it was reached")

    @property
    def pkey(self) -> paramiko.PKey:
        """The course key, parsed once for every connection of this fan-out."""
        if self._pkey is None:
            self._pkey = ssh.load_private_key(self.private_key)
        return self._pkey

    def address(self, machine: Machine, wait: float = 0.0) -> tuple[str, int]:
        """Wait until the machine has an address whose SSH port answers."""
        deadline = time.monotonic() + wait
        current = machine
        while True:
            self._refuse_if_stopped(machine)
            where = self.resolver.address(current.raw)
            if where is None and not self.resolver.loopback_only:
                current = to_machine(describe(self.aws, current), current.region, current.seat)
                where = self.resolver.address(current.raw)
            if where is not None and _port_open(where):
                return where
            if time.monotonic() >= deadline:
                state = "no address yet" if where is None else f"{where[0]}:{where[1]} refuses"
                raise ssh.SshError(f"{machine.seat}: SSH is not reachable ({state}) after "
                                   f"{wait:g} s. Fix: check the machine's console output; "
                                   "`labtui start` it if it is stopped")
            self.sleep(0.5)

    def target(self, machine: Machine, wait: float = 0.0) -> ssh.SshTarget:
        return self._target(machine, self.address(machine, wait))

    def _target(self, machine: Machine, where: tuple[str, int]) -> ssh.SshTarget:
        host_key = self.known.get(self.aws, machine)
        if host_key is None:
            raise ssh.SshError(f"{machine.seat}: no pinned host key for {machine.instance_id} "
                               "(it was not launched by labtui). Refusing to connect.")
        return ssh.SshTarget(where[0], where[1], self.user, host_key, pkey=self.pkey)

    def connect(self, machine: Machine, wait: float = 0.0,
                timeout: float = 15.0) -> paramiko.SSHClient:
        """Log in to the machine. With its address known, the first try is the login itself
        (a port probe first would cost every machine's sshd one more connection: 0.2-0.4 s
        of a 40-seat exec here); only when no SSH server answers does it wait up to ``wait``
        seconds for one, probing the port (and logging in again when the port answered but
        the login was refused, as while a booting machine's sshd restarts)."""
        self._refuse_if_stopped(machine)
        deadline = time.monotonic() + wait
        where = self.resolver.address(machine.raw)
        if where is not None:
            try:
                return self._login(self._target(machine, where), timeout,
                                   connect_timeout=PROBE_TIMEOUT if wait > 0 else None)
            except ssh.SshUnreachable:
                if wait <= 0:
                    raise
        while True:
            target = self.target(machine, max(0.0, deadline - time.monotonic()))
            try:
                return self._login(target, timeout)
            except ssh.SshUnreachable:
                # The port answered the probe, then refused the login: its sshd restarted
                # meanwhile (as on a booting machine). Again, within the wait.
                if time.monotonic() >= deadline:
                    raise
                self.sleep(0.5)

    def _login(self, target: ssh.SshTarget, timeout: float,
               connect_timeout: float | None = None) -> paramiko.SSHClient:
        with self.pacer.slot((target.host, target.port)):
            client = ssh.connect(target, timeout=timeout, connect_timeout=connect_timeout,
                                 loopback_only=self.resolver.loopback_only or None)
        with self._lock:
            self._open.add(client)
        if self._stopped.is_set():  # stopped while this one logged in
            client.close()
            raise ssh.SshError(f"interrupted while logging in to {target.address}")
        return client


def _port_open(where: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(where, timeout=PROBE_TIMEOUT):
            return True
    except OSError:
        return False
