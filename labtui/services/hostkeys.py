"""ed25519 keys generated locally: every machine's SSH host key, the course key, seat keys.

A machine's host key reaches it in its own user-data only (``services/cloudinit.py``:
cloud-init's ``ssh_keys`` installs it), one user-data per machine, so no machine ever holds
another machine's private host key. labtui pins the public half on every connection.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class HostKey:
    seed: bytes    # the 32-byte ed25519 private seed
    public: bytes  # the 32-byte ed25519 public key

    @classmethod
    def generate(cls) -> HostKey:
        key = Ed25519PrivateKey.generate()
        seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw)
        return cls(seed, public)

    @property
    def public_line(self) -> str:
        """The public key as in known_hosts: ``ssh-ed25519 AAAA...``."""
        return "ssh-ed25519 " + base64.b64encode(_public_blob(self.public)).decode()

    def private_openssh(self) -> str:
        return openssh_private(self.seed, self.public)


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _public_blob(public: bytes) -> bytes:
    return _string(b"ssh-ed25519") + _string(public)


def openssh_private(seed: bytes, public: bytes, comment: bytes = b"labtui") -> str:
    """The OpenSSH private key file (unencrypted ``openssh-key-v1``) for an ed25519 key."""
    check = struct.pack(">I", 0x6C616274)  # any value, twice
    private = (check + check + _string(b"ssh-ed25519") + _string(public)
               + _string(seed + public) + _string(comment))
    private += bytes(range(1, 1 + (-len(private) % 8)))
    body = (b"openssh-key-v1\0" + _string(b"none") + _string(b"none") + _string(b"")
            + struct.pack(">I", 1) + _string(_public_blob(public)) + _string(private))
    text = base64.b64encode(body).decode()
    lines = [text[i:i + 70] for i in range(0, len(text), 70)]
    return ("-----BEGIN OPENSSH PRIVATE KEY-----\n" + "\n".join(lines)
            + "\n-----END OPENSSH PRIVATE KEY-----\n")
