"""EC2 vCPU quotas per region: the quota (Service Quotas), what the account already uses
(counted from its running instances) and pending increase requests.

EMR clusters run on EC2 instances, so their nodes count against these same vCPU quotas;
on-demand and spot instances count against different ones.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from labtui.errors import AwsError
from labtui.model import (  # noqa: F401 - the names a quota is known by
    CLASSES,
    FALLBACK,
    NAMES,
    quota_class,
    quota_code,
)
from labtui.services.aws import Aws, translate_errors
from labtui.services.instance_types import vcpus


@dataclass(frozen=True)
class Quota:
    region: str
    code: str
    value: float
    usage: float
    source: str           # "Service Quotas", or why a default stands in
    pending: tuple[dict[str, Any], ...] = field(default=(), compare=False)

    @property
    def name(self) -> str:
        return NAMES.get(self.code, self.code)

    @property
    def headroom(self) -> float:
        return max(0.0, self.value - self.usage)

    @property
    def from_default(self) -> bool:
        return self.source != "Service Quotas"

    def to_json(self) -> dict[str, Any]:
        return {"type": "quota", "region": self.region, "code": self.code, "name": self.name,
                "value": self.value, "usage": self.usage, "headroom": self.headroom,
                "source": self.source,
                "pending": [{"id": r.get("Id"), "desired": r.get("DesiredValue"),
                             "status": r.get("Status")} for r in self.pending]}


def read_value(aws: Aws, region: str, code: str) -> tuple[float, str]:
    client = aws.client("service-quotas", region)
    try:
        with translate_errors(f"service-quotas GetServiceQuota {code} in {region}"):
            return float(client.get_service_quota(ServiceCode="ec2", QuotaCode=code)
                         ["Quota"]["Value"]), "Service Quotas"
    except AwsError as first:
        why = first.code or "unreadable"
    try:
        with translate_errors(f"service-quotas GetAWSDefaultServiceQuota {code}"):
            value = float(client.get_aws_default_service_quota(
                ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"])
        return value, f"AWS default ({why} reading the account's quota)"
    except AwsError:
        return FALLBACK.get(code, 0.0), f"AWS default for new accounts ({why})"


def usage(aws: Aws, region: str) -> dict[str, float]:
    """vCPUs in use per quota code: every pending or running instance of the account."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for reservation in aws.paginate("ec2", region, "describe_instances", "Reservations",
                                    Filters=[{"Name": "instance-state-name",
                                              "Values": ["pending", "running"]}]):
        for instance in reservation["Instances"]:
            market = "spot" if instance.get("InstanceLifecycle") == "spot" else "on-demand"
            counts[(instance["InstanceType"], market)] += 1
    if not counts:
        return {}
    sizes = vcpus(aws, region, {t for t, _ in counts})
    out: dict[str, float] = defaultdict(float)
    for (itype, market), n in counts.items():
        out[quota_code(itype, market)] += sizes[itype] * n
    return dict(out)


def headroom(aws: Aws, region: str, code: str) -> float:
    """vCPUs of quota ``code`` free in ``region`` now: the quota less what runs there."""
    value, _source = read_value(aws, region, code)
    return max(0.0, value - usage(aws, region).get(code, 0.0))


def pending_requests(aws: Aws, region: str, code: str) -> tuple[dict[str, Any], ...]:
    client = aws.client("service-quotas", region)
    try:
        with translate_errors(f"service-quotas change history {code} in {region}"):
            reply = client.list_requested_service_quota_change_history_by_quota(
                ServiceCode="ec2", QuotaCode=code)
    except AwsError:
        return ()
    return tuple(r for r in reply.get("RequestedQuotas", [])
                 if r.get("Status") in ("PENDING", "CASE_OPENED", "APPROVED"))


def read_quotas(aws: Aws, region: str, codes: Iterable[str]) -> dict[str, Quota]:
    used = usage(aws, region)
    out = {}
    for code in sorted(set(codes)):
        value, source = read_value(aws, region, code)
        out[code] = Quota(region, code, value, used.get(code, 0.0), source,
                          pending_requests(aws, region, code))
    return out


def request_increase(aws: Aws, region: str, code: str, desired: float) -> dict[str, Any]:
    with translate_errors(f"service-quotas RequestServiceQuotaIncrease {code} in {region}"):
        return aws.client("service-quotas", region).request_service_quota_increase(
            ServiceCode="ec2", QuotaCode=code, DesiredValue=float(desired))["RequestedQuota"]
