"""The tags labtui puts on everything it creates, and filters to find them again."""

from __future__ import annotations

from typing import Any

COURSE = "labtui:course"
SEAT = "labtui:seat"
ROLE = "labtui:role"


def tags(course_id: str, seat: str | None = None, **extra: str) -> list[dict[str, str]]:
    out = [{"Key": COURSE, "Value": course_id}]
    if seat is not None:
        out.append({"Key": SEAT, "Value": seat})
    out.extend({"Key": f"labtui:{k}", "Value": v} for k, v in extra.items())
    return out


def course_filter(course_id: str) -> list[dict[str, Any]]:
    return [{"Name": f"tag:{COURSE}", "Values": [course_id]}]


def as_dict(tag_list: list[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tag_list or []}
