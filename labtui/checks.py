"""Checks for single values in a course file. Each returns None when fine, else a message."""

from __future__ import annotations

import ipaddress
import re

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
)

STUDENT_PERMISSIONS = (
    "submit-steps",     # add steps to their own EMR cluster, read its logs
    "view-clusters",    # describe their own cluster and its steps
    "read-data",        # read the course's data bucket
    "write-scratch",    # read and write their own prefix of the scratch bucket
    "start-stop-own",   # start and stop their own machine (never launch new ones)
)

_SEAT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_COURSE_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
_EMAIL = re.compile(r"^[^@\s,;<>\"]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
_AMI_ID = re.compile(r"^ami-[0-9a-f]{8}(?:[0-9a-f]{9})?$")
_EMR_RELEASE = re.compile(r"^emr-\d+\.\d+\.\d+$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_VPC = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_SUBNET = re.compile(r"^subnet-[0-9a-f]{8,17}$")


def course_id(value: str) -> str | None:
    if _COURSE_ID.match(value):
        return None
    return (f"{value!r} must be 1-32 lowercase letters, digits and dashes (it goes into tags, "
            "key pair and bucket names)")


def seat_id(value: str) -> str | None:
    if _SEAT_ID.match(value):
        return None
    return f"{value!r} must be letters, digits, '.', '_' or '-' (at most 63), no spaces"


def email(value: str) -> str | None:
    return None if _EMAIL.match(value) else f"{value!r} is not an email address"


def instance_type(value: str) -> str | None:
    if _INSTANCE_TYPE.match(value):
        return None
    return f"{value!r} is not an EC2 instance type"


def ami(value: str) -> str | None:
    if value in AMI_ALIASES or _AMI_ID.match(value):
        return None
    aliases = ", ".join(AMI_ALIASES)
    return f"{value!r} is neither an AMI id (ami-0123456789abcdef0) nor one of {aliases}"


def emr_release(value: str) -> str | None:
    return None if _EMR_RELEASE.match(value) else f"{value!r} is not an EMR release label"


def bucket(value: str) -> str | None:
    if (_BUCKET.match(value) and ".." not in value and not value.startswith("xn--")
            and not re.match(r"^\d+\.\d+\.\d+\.\d+$", value)):
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
        return f"{value!r} is not a network in CIDR form ({exc})"
    return None


def vpc_id(value: str) -> str | None:
    return None if _VPC.match(value) else f"{value!r} is not a VPC id"


def subnet_id(value: str) -> str | None:
    return None if _SUBNET.match(value) else f"{value!r} is not a subnet id"


def file_mode(value: str) -> str | None:
    if re.match(r"^0?[0-7]{3}$", value):
        return None
    return f"{value!r} is not an octal file mode"
