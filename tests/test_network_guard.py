"""The hard network rule is enforced by the suite, not by good intentions: pytest-socket
lets tests reach 127.0.0.1 and ::1 only."""

from __future__ import annotations

import socket

import pytest
from pytest_socket import SocketConnectBlockedError

# pytest-socket warns as it blocks; here the block is the point.
pytestmark = pytest.mark.filterwarnings("ignore:A test tried to use socket")


def test_non_loopback_connect_is_blocked() -> None:
    # 192.0.2.1 is TEST-NET-1 (documentation only); the guard refuses before any packet.
    with pytest.raises(SocketConnectBlockedError):
        socket.create_connection(("192.0.2.1", 443), timeout=1)


def test_moto_style_instance_ip_is_blocked() -> None:
    # moto hands out real-looking addresses (54.214.x.x is an Amazon range): never dial them.
    with pytest.raises(SocketConnectBlockedError):
        socket.create_connection(("54.214.0.1", 22), timeout=1)


def test_loopback_is_allowed() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    try:
        with socket.create_connection(server.getsockname()[:2], timeout=1):
            pass
    finally:
        server.close()
