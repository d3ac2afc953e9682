"""Host keys generated locally for each machine and pinned through cloud-init user-data.

One ``run_instances`` call launches a whole batch with one user-data, yet every machine must
get its own host key. So the user-data carries one ed25519 key per launch index (32-byte seed
and public key, 88 base64 characters each, well inside the 16 KB user-data limit for batches
of up to ``MAX_BATCH``) and a boot command that installs the key whose index matches the
instance's ``ami-launch-index`` before sshd starts. The seats of the batch, in launch-index
order, ride along too, so a machine whose seat tag was never written (a crash between launch
and tagging) can still be matched to its seat from AWS alone.

Trade-off, stated plainly: a machine can read its own user-data, and so the private host keys
of the other machines of its batch. Exploiting that needs a man-in-the-middle position on the
instructor's connection; it does not let a student log in anywhere.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

MAX_BATCH = 100
MARKER = "labtui"


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

    def encode(self) -> str:
        return base64.b64encode(self.seed + self.public).decode()

    @classmethod
    def decode(cls, text: str) -> HostKey:
        raw = base64.b64decode(text)
        if len(raw) != 64:
            raise ValueError("a host key entry must hold 64 bytes")
        return cls(raw[:32], raw[32:])


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _public_blob(public: bytes) -> bytes:
    return _string(b"ssh-ed25519") + _string(public)


def openssh_private(seed: bytes, public: bytes, comment: bytes = b"labtui") -> str:
    """The OpenSSH private key file for an ed25519 key, built without any crypto library
    (the same function runs on the machine at boot, where only Python's stdlib is sure)."""
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


# Runs on the machine at every boot (cloud-init bootcmd), before sshd starts: asks the
# instance metadata service (IMDSv2) for the launch index and the user-data, and installs
# the host key at that index.
BOOT_SCRIPT = r'''
import base64, json, os, struct, urllib.request
def _s(d): return struct.pack(">I", len(d)) + d
def key_file(seed, pub):
    blob = _s(b"ssh-ed25519") + _s(pub); chk = struct.pack(">I", 0x6C616274)
    p = chk + chk + _s(b"ssh-ed25519") + _s(pub) + _s(seed + pub) + _s(b"labtui")
    p += bytes(range(1, 1 + (-len(p) % 8)))
    b = (b"openssh-key-v1\0" + _s(b"none") + _s(b"none") + _s(b"") + struct.pack(">I", 1)
         + _s(blob) + _s(p))
    t = base64.b64encode(b).decode()
    return ("-----BEGIN OPENSSH PRIVATE KEY-----\n" + "\n".join(t[i:i+70] for i in
            range(0, len(t), 70)) + "\n-----END OPENSSH PRIVATE KEY-----\n",
            "ssh-ed25519 " + base64.b64encode(blob).decode() + " labtui\n")
md = "http://169.254.169.254/latest/"
tok = urllib.request.urlopen(urllib.request.Request(md + "api/token", method="PUT",
      headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}), timeout=5).read().decode()
def get(path):
    return urllib.request.urlopen(urllib.request.Request(md + path,
        headers={"X-aws-ec2-metadata-token": tok}), timeout=5).read().decode()
idx = int(get("meta-data/ami-launch-index"))
data = json.loads(get("user-data").split("\n", 1)[1])
raw = base64.b64decode(data["labtui"]["host_keys"][idx])
priv, pub = key_file(raw[:32], raw[32:])
for name in os.listdir("/etc/ssh"):
    if name.startswith("ssh_host_") and "_key" in name: os.remove("/etc/ssh/" + name)
fd = os.open("/etc/ssh/ssh_host_ed25519_key", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, priv.encode()); os.close(fd)
open("/etc/ssh/ssh_host_ed25519_key.pub", "w").write(pub)
'''


def batch_user_data(course_id: str, batch: str, seats: list[str],
                    keys: list[HostKey]) -> str:
    """cloud-init user-data for one launch batch; JSON is valid YAML, so cloud-init reads it."""
    if len(seats) != len(keys) or len(seats) > MAX_BATCH:
        raise ValueError("one host key per seat, at most MAX_BATCH seats per batch")
    encoded = [k.encode() for k in keys]
    config = {
        MARKER: {"course": course_id, "batch": batch, "seats": seats, "host_keys": encoded},
        "ssh_deletekeys": True,
        "ssh_genkeytypes": [],
        "write_files": [{"path": "/var/lib/labtui/pick_host_key.py", "permissions": "0700",
                         "content": BOOT_SCRIPT}],
        "bootcmd": [["python3", "/var/lib/labtui/pick_host_key.py"]],
    }
    return "#cloud-config\n" + json.dumps(config, separators=(",", ":"))


@dataclass(frozen=True)
class BatchInfo:
    course: str
    batch: str
    seats: tuple[str, ...]
    keys: tuple[HostKey, ...]

    def seat_of(self, launch_index: int) -> str | None:
        return self.seats[launch_index] if 0 <= launch_index < len(self.seats) else None

    def key_of(self, launch_index: int) -> HostKey | None:
        return self.keys[launch_index] if 0 <= launch_index < len(self.keys) else None


def parse_user_data(text: str | bytes | None) -> BatchInfo | None:
    """The labtui part of a machine's user-data, or None when it has none."""
    if not text:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    body = text.split("\n", 1)[1] if text.startswith("#cloud-config") else text
    try:
        info = json.loads(body)[MARKER]
        return BatchInfo(str(info["course"]), str(info["batch"]), tuple(info["seats"]),
                         tuple(HostKey.decode(k) for k in info["host_keys"]))
    except (ValueError, KeyError, TypeError):
        return None
