"""What the course already has on AWS, found from tags (AWS is the source of truth)."""

from __future__ import annotations

from labtui.model import LIVE_STATES, Inventory, Machine  # noqa: F401 - the types it fills
from labtui.services import tags
from labtui.services.aws import Aws


def machines(aws: Aws, course_id: str, regions: tuple[str, ...]) -> Inventory:
    """Every live seat machine of the course, one describe_instances pager per region.

    Only instances carrying the seat tag are seat machines: EMR nodes carry the course tag
    (EMR copies cluster tags to its nodes) but not ``labtui:seat`` on their own.
    """
    found = []
    for region in regions:
        filters = tags.course_filter(course_id) + [
            {"Name": "tag-key", "Values": [tags.SEAT]},
            {"Name": "instance-state-name", "Values": list(LIVE_STATES)},
        ]
        for reservation in aws.paginate("ec2", region, "describe_instances", "Reservations",
                                        Filters=filters):
            for instance in reservation["Instances"]:
                labels = tags.as_dict(instance.get("Tags"))
                if any(k.startswith("aws:elasticmapreduce") for k in labels):
                    continue
                found.append(Machine(
                    instance_id=instance["InstanceId"], seat=labels[tags.SEAT], region=region,
                    state=instance["State"]["Name"], instance_type=instance["InstanceType"],
                    public_ip=instance.get("PublicIpAddress"),
                    launched=str(instance.get("LaunchTime", "")), raw=instance))
    return Inventory(tuple(found))
