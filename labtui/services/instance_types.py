"""vCPUs (and memory) per instance type, asked once per region and cached."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from labtui.errors import AwsError
from labtui.services.aws import Aws, translate_errors

_cache: dict[tuple[str, str], int] = {}
_lock = threading.Lock()


def vcpus(aws: Aws, region: str, types: Iterable[str]) -> dict[str, int]:
    """vCPUs of each type in ``region``; raises AwsError naming a type the region lacks."""
    wanted = sorted(set(types))
    with _lock:
        missing = [t for t in wanted if (region, t) not in _cache]
    if missing:
        try:
            with translate_errors(f"ec2.DescribeInstanceTypes in {region}"):
                reply = aws.client("ec2", region).describe_instance_types(InstanceTypes=missing)
        except AwsError as exc:
            if exc.code.startswith("InvalidInstanceType"):
                raise AwsError(
                    f"{region} does not offer instance type(s) {', '.join(missing)}. Fix: pick "
                    "a type the region offers (aws ec2 describe-instance-types).",
                    code=exc.code, original=exc) from exc
            raise
        with _lock:
            for item in reply["InstanceTypes"]:
                _cache[(region, item["InstanceType"])] = int(item["VCpuInfo"]["DefaultVCpus"])
    with _lock:
        absent = [t for t in wanted if (region, t) not in _cache]
        if absent:
            raise AwsError(f"{region} does not offer instance type(s) {', '.join(absent)}. "
                           "Fix: pick a type the region offers.")
        return {t: _cache[(region, t)] for t in wanted}
