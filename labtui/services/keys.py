"""The course's SSH key: generated locally (the private half never leaves the state folder,
0600) and imported as the same key pair in every region the course uses."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization

from labtui.errors import AwsError
from labtui.services import tags
from labtui.services.aws import Aws, translate_errors
from labtui.services.hostkeys import HostKey
from labtui.state import CourseState

KEY_FILE = "course_key"


def key_pair_name(course_id: str) -> str:
    return f"labtui-{course_id}"


def course_key(state: CourseState) -> tuple[str, str]:
    """(private key in OpenSSH format, public line), created once and kept 0600."""
    return _key(state, KEY_FILE)


def seat_key(state: CourseState, seat: str) -> tuple[str, str]:
    """A seat's own login key (login = "key"): the student gets the private half."""
    return _key(state, f"seat_keys/{seat}")


def _key(state: CourseState, name: str) -> tuple[str, str]:
    private = state.read_secret(name)
    if private is None:
        private = HostKey.generate().private_openssh()
        state.write_secret(name, private)
    loaded = serialization.load_ssh_private_key(private.encode(), password=None)
    public = loaded.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                              serialization.PublicFormat.OpenSSH).decode()
    return private, public


def ensure_key_pair(aws: Aws, region: str, course_id: str, public_key: str) -> str:
    """Import the course key into ``region`` unless a key pair with its name is there."""
    name = key_pair_name(course_id)
    ec2 = aws.client("ec2", region)
    with translate_errors(f"ec2.DescribeKeyPairs in {region}"):
        found = ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [name]}])
    if found["KeyPairs"]:
        return name
    try:
        with translate_errors(f"ec2.ImportKeyPair in {region}"):
            ec2.import_key_pair(KeyName=name, PublicKeyMaterial=public_key.encode(),
                                TagSpecifications=[{"ResourceType": "key-pair",
                                                    "Tags": tags.tags(course_id)}])
    except AwsError as exc:
        if exc.code != "InvalidKeyPair.Duplicate":  # another laptop won the race: fine
            raise
    return name
