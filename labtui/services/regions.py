"""Regions and their availability zones, as the account sees them."""

from __future__ import annotations

from dataclasses import dataclass

from labtui.services.aws import Aws, translate_errors


@dataclass(frozen=True)
class RegionInfo:
    name: str
    opt_in: str  # opt-in-not-required | opted-in | not-opted-in
    zones: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        return self.opt_in != "not-opted-in"


def list_regions(aws: Aws) -> dict[str, str]:
    """Every region the account knows, with its opt-in status."""
    with translate_errors("ec2.DescribeRegions"):
        reply = aws.client("ec2").describe_regions(AllRegions=True)
    return {r["RegionName"]: r.get("OptInStatus", "opt-in-not-required")
            for r in reply["Regions"]}


def zones(aws: Aws, region: str) -> tuple[str, ...]:
    with translate_errors(f"ec2.DescribeAvailabilityZones in {region}"):
        reply = aws.client("ec2", region).describe_availability_zones(
            Filters=[{"Name": "state", "Values": ["available"]}])
    return tuple(sorted(z["ZoneName"] for z in reply["AvailabilityZones"]))


def course_regions(aws: Aws, names: tuple[str, ...]) -> list[RegionInfo]:
    """The course's regions in its order of preference, each with its zones."""
    known = list_regions(aws)
    out = []
    for name in names:
        status = known.get(name, "not-opted-in")
        out.append(RegionInfo(name, status, zones(aws, name) if status != "not-opted-in" else ()))
    return out
