"""The course's EMR clusters, found by tags (one per student, tagged with the seat)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from labtui.services import tags
from labtui.services.aws import Aws, translate_errors

LIVE = ["STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING"]


@dataclass(frozen=True)
class Cluster:
    cluster_id: str
    seat: str
    region: str
    state: str
    name: str


def seat_clusters(aws: Aws, course_id: str, regions: Iterable[str]) -> dict[str, Cluster]:
    """Live clusters carrying the course tag and a seat tag, by seat. Keyed by cluster id
    while collecting: the emulator may list one cluster under every region."""
    found: dict[str, Cluster] = {}
    for region in regions:
        emr = aws.client("emr", region)
        for summary in aws.paginate("emr", region, "list_clusters", "Clusters",
                                    ClusterStates=LIVE):
            if summary["Id"] in found:
                continue
            with translate_errors(f"emr.DescribeCluster {summary['Id']} in {region}"):
                cluster = emr.describe_cluster(ClusterId=summary["Id"])["Cluster"]
            labels = tags.as_dict(cluster.get("Tags"))
            if labels.get(tags.COURSE) != course_id or tags.SEAT not in labels:
                continue
            found[summary["Id"]] = Cluster(summary["Id"], labels[tags.SEAT], region,
                                           cluster["Status"]["State"], cluster["Name"])
    return {c.seat: c for c in found.values()}
