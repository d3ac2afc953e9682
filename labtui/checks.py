"""Checks for single values in a course file. Each returns None when fine, else a message."""

from __future__ import annotations

import difflib
import functools
import gzip
import importlib.util
import ipaddress
import json
import re
from importlib import resources
from pathlib import Path

# Commercial AWS regions (2026). describe_regions needs credentials and a network; validating
# a course file must not, so the names are listed here.
AWS_REGIONS = (
    "af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2",
    "ap-northeast-3", "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2",
    "ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "ap-southeast-6", "ap-southeast-7",
    "ca-central-1", "ca-west-1", "eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1",
    "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3", "il-central-1", "me-central-1",
    "me-south-1", "mx-central-1", "sa-east-1", "us-east-1", "us-east-2", "us-west-1",
    "us-west-2",
)

# Names the course file may use instead of an AMI id; resolved per region at launch time.
AMI_ALIASES = {
    "ubuntu-24.04": "ubuntu",
    "ubuntu-22.04": "ubuntu",
    "debian-12": "admin",
    "amazon-linux-2023": "ec2-user",
}

EMR_APPLICATIONS = (
    "Flink", "Ganglia", "HBase", "HCatalog", "Hadoop", "Hive", "Hue", "JupyterEnterpriseGateway",
    "JupyterHub", "Livy", "Oozie", "Phoenix", "Pig", "Presto", "Spark", "Sqoop", "Tez",
    "Trino", "Zeppelin", "ZooKeeper",
    # emr-4.x "sandbox" applications, as long-lived deployments still name them
    "Mahout", "Oozie-Sandbox", "Presto-Sandbox", "Sqoop-Sandbox", "Zeppelin-Sandbox",
)

STUDENT_PERMISSIONS = (
    "submit-steps",     # add steps to their own EMR cluster, read its logs
    "view-clusters",    # describe their own cluster and its steps
    "read-data",        # read the course's data bucket
    "write-scratch",    # read and write their own prefix of the scratch bucket
    "start-stop-own",   # start and stop their own machine (never launch new ones)
)

# Whole strings only (fullmatch): re.match(r"...$") would accept a trailing newline.
_SEAT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_COURSE_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")
_EMAIL = re.compile(r"[^@\s,;<>\"]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_INSTANCE_TYPE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9-]+")
_AMI_ID = re.compile(r"ami-[0-9a-f]{8}(?:[0-9a-f]{9})?")
_EMR_RELEASE = re.compile(r"emr-\d+\.\d+\.\d+")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4_LIKE = re.compile(r"\d+\.\d+\.\d+\.\d+")
_VPC = re.compile(r"vpc-[0-9a-f]{8,17}")
_SUBNET = re.compile(r"subnet-[0-9a-f]{8,17}")
_FILE_MODE = re.compile(r"0?[0-7]{3}")
# useradd's default NAME_REGEX, without the trailing '$' it allows for Samba machine accounts
_UNIX_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


def course_id(value: str) -> str | None:
    if _COURSE_ID.fullmatch(value):
        return None
    return (f"{value!r} must be 1-32 lowercase letters, digits and dashes (it goes into tags, "
            "key pair and bucket names)")


def seat_id(value: str) -> str | None:
    if _SEAT_ID.fullmatch(value):
        return None
    return f"{value!r} must be letters, digits, '.', '_' or '-' (at most 63), no spaces"


def email(value: str) -> str | None:
    return None if _EMAIL.fullmatch(value) else f"{value!r} is not an email address"


@functools.cache
def listed_instance_types() -> frozenset[str]:
    """The EC2 instance types of labtui/data/instance_types.txt."""
    text = resources.files("labtui").joinpath("data/instance_types.txt").read_text("utf-8")
    return frozenset(line.strip() for line in text.splitlines()
                     if line.strip()[:1] not in ("", "#"))


@functools.cache
def known_instance_types() -> frozenset[str]:
    """Every EC2 instance type labtui knows, offline: labtui/data/instance_types.txt, plus the
    list moto ships (it is newer when moto is)."""
    names = set(listed_instance_types())
    # moto (the sandbox's emulator, a dependency) is found, not imported: importing it takes
    # most of a second
    spec = importlib.util.find_spec("moto")
    if spec is not None and spec.origin:
        data = Path(spec.origin).parent / "ec2" / "resources" / "instance_types.json.gz"
        try:
            names |= set(json.loads(gzip.decompress(data.read_bytes())))
        except (OSError, ValueError):
            pass
    return frozenset(names)


def instance_type(value: str) -> tuple[str, str] | None:
    # moto's list (a few MB of JSON, 25 ms of every command's start) is read only for a
    # type labtui's own list lacks
    if _INSTANCE_TYPE.fullmatch(value) and (value in listed_instance_types()
                                            or value in known_instance_types()):
        return None
    close = difflib.get_close_matches(value.strip().lower(), sorted(known_instance_types()),
                                      n=1, cutoff=0.6)
    return (f"{value!r} is not an EC2 instance type",
            f"did you mean {close[0]!r}?" if close else
            'use an EC2 instance type such as "t3.medium" (aws ec2 describe-instance-types)')


def ami(value: str) -> str | None:
    if value == "baked":  # the course's own image, made by `labtui bake`
        return None
    problem = base_ami(value)
    return None if problem is None else problem + ', or "baked" (`labtui bake` makes it)'


def base_ami(value: str) -> str | None:
    if value in AMI_ALIASES or _AMI_ID.fullmatch(value):
        return None
    aliases = ", ".join(AMI_ALIASES)
    return f"{value!r} is neither an AMI id (ami-0123456789abcdef0) nor one of {aliases}"


def emr_release(value: str) -> str | None:
    return None if _EMR_RELEASE.fullmatch(value) else f"{value!r} is not an EMR release label"


def bucket(value: str) -> str | None:
    if (_BUCKET.fullmatch(value) and ".." not in value and not value.startswith("xn--")
            and not _IPV4_LIKE.fullmatch(value)):
        return None
    return (f"{value!r} is not a valid S3 bucket name (3-63 lowercase letters, digits, "
            "dots and dashes, starting and ending with a letter or digit)")


def s3_uri(value: str) -> str | None:
    if not value.startswith("s3://"):
        return f"{value!r} must start with s3://"
    name = value[5:].split("/", 1)[0]
    return bucket(name)


def cidr(value: str) -> str | None:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        return (f"{value!r} is not a network in CIDR form ({exc}). Fix: write it like "
                "203.0.113.0/24")
    return None


def vpc_id(value: str) -> str | None:
    return None if _VPC.fullmatch(value) else f"{value!r} is not a VPC id"


def subnet_id(value: str) -> str | None:
    return None if _SUBNET.fullmatch(value) else f"{value!r} is not a subnet id"


def file_mode(value: str) -> str | None:
    if _FILE_MODE.fullmatch(value):
        return None
    return f"{value!r} is not an octal file mode"


def unix_user(value: str) -> tuple[str, str] | None:
    """The login user: a name useradd accepts, and never root."""
    if value == "root":
        return ("'root' cannot be the login user (every student would be root on their "
                "machine)", 'use the image\'s own user, e.g. user = "ubuntu"')
    if _UNIX_USER.fullmatch(value):
        return None
    close = value.strip().lower()
    return (f"{value!r} is not a valid Unix user name",
            f"did you mean {close!r}?" if close != value and _UNIX_USER.fullmatch(close)
            and close != "root" else
            "use lowercase letters, digits, '_' and '-', starting with a letter or '_' (at "
            'most 32), e.g. user = "ubuntu"')


def package(value: str) -> tuple[str, str] | None:
    """A package for apt/dnf: one name (optionally =version or :arch), never an option."""
    if value.startswith("-"):
        return (f"{value!r} is not a package name (apt would read it as an option)",
                'write the package\'s name, e.g. packages = ["git", "python3-pip"]')
    if not value or any(c.isspace() or not c.isprintable() for c in value):
        return (f"{value!r} is not a package name (one name, no spaces)",
                'give each package as its own string, e.g. packages = ["git", "python3-pip"]')
    return None
