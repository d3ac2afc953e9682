"""sweep: what is left in the account, in every region, and what it costs while it idles.

``scan`` looks in each region at once (a thread pool; the ``Aws`` facade caches one client per
service and region) for two things:

- **labtui's own**: anything carrying the ``labtui:course`` tag of any course — instances
  (any state but terminated), spot requests (open or active), volumes, snapshots and images
  owned by this account, Elastic IPs, NAT gateways (pending or available), security groups,
  VPCs, subnets, internet gateways, EMR clusters (not terminated), the boot topics and queues
  of setup at boot (``labtui-<course>-boot``) — and key pairs named ``labtui-*``
  (``services.keys.key_pair_name``; the course is the rest of the name unless a tag says
  otherwise).
- **untagged resources that bill while idle**: available (detached) volumes, open or active
  spot requests, Elastic IPs associated with nothing, NAT gateways, stopped instances (their
  volumes bill), EMR clusters WAITING with no pending or running step, images of this account
  no instance uses, and *orphaned* snapshots.

The snapshot rule (right on AWS, and quiet on the emulator): an untagged snapshot is reported
only when (1) its ``OwnerId`` is this account (asked once from STS; the owner-id filter is
sent to EC2 as well), (2) the volume it was taken from no longer exists in its region, and
(3) no image of this account refers to it (an image's snapshots are counted with the image).
Public and shared snapshots never match (1); AMI-backing snapshots never match (3). moto
ships ~1,200 default snapshots per region that claim to be "self" under ``OwnerIds=["self"]``
but carry other accounts' owner ids and all back moto's default images, so none is reported.

Nodes of an EMR cluster (instances tagged ``aws:elasticmapreduce:job-flow-id``) are not
findings of their own: the cluster is, and terminating it removes them. moto's emulator
files every EMR cluster under us-east-1 whichever regional endpoint created it, and lists it
under every region; clusters are keyed by id, reported once, in the region their ARN names
(the listing region when the ARN names none). On AWS the ARN's region is the cluster's own.

$/month is 730 hours of the resource as it idles now, from the dated table below (US East
list prices of ``PRICE_DATE``; the same everywhere: an estimate, not a bill) and, for
instances and EMR nodes, ``services.pricing.Prices`` (the Price List API or labtui's table).
A figure unknown to both is None ("?" on screen) and left out of totals.

``remove`` deletes findings region by region (regions in parallel), in dependency order:
clusters, spot requests (with the instance each launched), instances, boot topics and queues,
NAT gateways, addresses, volumes, images (deregistered, then their snapshots deleted),
snapshots, security groups, subnets, internet gateways, VPCs, key pairs. DependencyViolation
and VolumeInUse are retried a bounded number of times with backoff (an injectable sleep);
anything else is reported per item with the AWS error, and the rest goes on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from labtui.errors import AwsError
from labtui.events import EventSink, LogLine, NullSink, Problem, Progress
from labtui.services import bootevents, tags
from labtui.services.aws import Aws, translate_errors
from labtui.services.keys import key_pair_name
from labtui.services.pricing import Prices, table

HOURS_PER_MONTH = 730
PRICE_DATE = "2024-06-01"
# USD, us-east-1 list prices on PRICE_DATE. EBS per GB-month by volume type; snapshots per
# GB-month (standard tier); every public IPv4 address per hour (since February 2024, attached
# or not); NAT gateway per hour when prices.json has no figure for the region.
EBS_GB_MONTH = {"gp3": 0.08, "gp2": 0.10, "io1": 0.125, "io2": 0.125, "st1": 0.045,
                "sc1": 0.015, "standard": 0.05}
SNAPSHOT_GB_MONTH = 0.05
ADDRESS_HOUR = 0.005
NAT_HOUR = 0.045

UNTAGGED = "untagged"
KEY_PREFIX = key_pair_name("")           # "labtui-"
EMR_TAG = "aws:elasticmapreduce:job-flow-id"
LIVE_INSTANCE = ["pending", "running", "stopping", "stopped", "shutting-down"]
LIVE_CLUSTER = ["STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING"]
RETRIED = ("DependencyViolation", "VolumeInUse")

# Kinds, in the order they are deleted.
ORDER = ("emr-cluster", "spot-request", "instance", "db-instance", "db-snapshot",
         "db-subnet-group", "sns-topic", "sqs-queue", "nat-gateway", "address", "volume",
         "image", "snapshot", "security-group", "subnet", "internet-gateway", "vpc", "key-pair")
RDS_GB_MONTH, RDS_SNAPSHOT_GB_MONTH = 0.115, 0.095   # gp2 storage, snapshot storage (USD)


@dataclass(frozen=True)
class Finding:
    region: str
    kind: str
    id: str
    course: str                  # the labtui:course tag's value, or "untagged"
    age_s: float | None          # seconds since created (None when AWS does not say)
    monthly_usd: float | None    # None: no price known
    detail: str = ""
    how: str = ""                # how to delete it by hand (the AWS CLI command)
    # what deleting it also touches: an instance a spot request launched, a volume kept
    # after its instance, an image's snapshots, a NAT gateway's address allocations
    related: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """Unique in the account (a key pair's name repeats across regions)."""
        return f"{self.region}/{self.id}"

    @property
    def tagged(self) -> bool:
        return self.course != UNTAGGED

    def to_json(self) -> dict[str, Any]:
        return {"type": "finding", "region": self.region, "kind": self.kind, "id": self.id,
                "course": self.course, "age_s": None if self.age_s is None else
                round(self.age_s), "age": age_text(self.age_s),
                "monthly_usd": None if self.monthly_usd is None else
                round(self.monthly_usd, 2), "detail": self.detail, "delete": self.how}


@dataclass
class ScanResult:
    regions: list[str]
    findings: list[Finding] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)    # region -> why it is unread
    seconds: float = 0.0

    @property
    def monthly_usd(self) -> float:
        return total(self.findings)


@dataclass(frozen=True)
class Removal:
    finding: Finding
    ok: bool
    error: str = ""


def total(findings: Iterable[Finding]) -> float:
    return sum(f.monthly_usd or 0.0 for f in findings)


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d"


# -- scanning ---------------------------------------------------------------------------------

def account_id(aws: Aws) -> str:
    with translate_errors("sts.GetCallerIdentity"):
        return str(aws.client("sts").get_caller_identity()["Account"])


def scan(aws: Aws, regions: Sequence[str], *, sink: EventSink | None = None,
         prices: Prices | None = None, on_region: Callable[[str, list[Finding]], None]
         | None = None, workers: int = 16) -> ScanResult:
    """Every finding in ``regions``, looked for in parallel. ``on_region(region, findings)``
    runs in the calling thread as each region's answer comes in."""
    sink = sink or NullSink()
    prices = prices or Prices(aws)
    started = time.monotonic()
    account = account_id(aws)
    clusters = _Claims()
    result = ScanResult(list(regions))
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(regions)))) as pool:
        futures = {pool.submit(_scan_region, aws, region, account, prices, clusters): region
                   for region in regions}
        for done, future in enumerate(as_completed(futures), start=1):
            region = futures[future]
            try:
                found = future.result()
            except AwsError as exc:
                result.failed[region] = str(exc)
                sink.emit(Problem(f"sweep: {region} could not be read: {exc}",
                                  fix="check the account's access to that region, or leave "
                                      "it out with --regions"))
                found = []
            result.findings.extend(found)
            sink.emit(Progress("sweep", done, len(futures), failed=len(result.failed)))
            if on_region is not None:
                on_region(region, found)
    result.findings.sort(key=lambda f: (f.region, ORDER.index(f.kind), f.id))
    result.seconds = time.monotonic() - started
    return result


class _Claims:
    """Cluster ids already taken by one region's scan (moto lists a cluster everywhere)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def claim(self, key: str) -> bool:
        with self._lock:
            if key in self._seen:
                return False
            self._seen.add(key)
            return True


def _course(labels: dict[str, str]) -> str:
    return labels.get(tags.COURSE) or UNTAGGED


def _age(when: Any, now: datetime) -> float | None:
    if isinstance(when, str):
        try:
            when = datetime.fromisoformat(when.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(when, datetime):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (now - when).total_seconds())


def _volume_month(volume: dict[str, Any]) -> float:
    rate = EBS_GB_MONTH.get(str(volume.get("VolumeType", "gp2")), EBS_GB_MONTH["gp2"])
    return float(volume.get("Size", 0)) * rate


def _hourly(prices: Prices, region: str, itype: str) -> float | None:
    return prices.ec2(region, itype).usd


def _scan_region(aws: Aws, region: str, account: str, prices: Prices,
                 clusters: _Claims) -> list[Finding]:
    now = datetime.now(UTC)
    ec2 = aws.client("ec2", region)
    out: list[Finding] = []
    cli = f"aws --region {region}"

    def add(kind: str, rid: str, course: str, when: Any, monthly: float | None, detail: str,
            how: str, related: Iterable[str] = ()) -> None:
        out.append(Finding(region, kind, rid, course, _age(when, now), monthly, detail, how,
                           tuple(related)))

    instances = [i for r in aws.paginate(
        "ec2", region, "describe_instances", "Reservations",
        Filters=[{"Name": "instance-state-name", "Values": LIVE_INSTANCE}])
        for i in r["Instances"]]
    volumes = list(aws.paginate("ec2", region, "describe_volumes", "Volumes"))
    spots = list(aws.paginate("ec2", region, "describe_spot_instance_requests",
                              "SpotInstanceRequests",
                              Filters=[{"Name": "state", "Values": ["open", "active"]}]))
    images = list(aws.paginate("ec2", region, "describe_images", "Images", Owners=["self"]))
    snapshots = [s for s in aws.paginate(
        "ec2", region, "describe_snapshots", "Snapshots", OwnerIds=["self"],
        Filters=[{"Name": "owner-id", "Values": [account]}]) if s.get("OwnerId") == account]
    with translate_errors(f"ec2.DescribeAddresses in {region}"):
        addresses = ec2.describe_addresses()["Addresses"]
    nats = list(aws.paginate("ec2", region, "describe_nat_gateways", "NatGateways",
                             Filter=[{"Name": "state", "Values": ["pending", "available"]}]))
    tagged = [{"Name": "tag-key", "Values": [tags.COURSE]}]
    groups = list(aws.paginate("ec2", region, "describe_security_groups", "SecurityGroups",
                               Filters=tagged))
    vpcs = list(aws.paginate("ec2", region, "describe_vpcs", "Vpcs", Filters=tagged))
    subnets = list(aws.paginate("ec2", region, "describe_subnets", "Subnets", Filters=tagged))
    gateways = list(aws.paginate("ec2", region, "describe_internet_gateways",
                                 "InternetGateways", Filters=tagged))
    with translate_errors(f"ec2.DescribeKeyPairs in {region}"):
        pairs = ec2.describe_key_pairs()["KeyPairs"]

    volume_by_id = {v["VolumeId"]: v for v in volumes}
    by_instance: dict[str, list[dict[str, Any]]] = {}
    for volume in volumes:
        for attachment in volume.get("Attachments", []):
            by_instance.setdefault(attachment.get("InstanceId", ""), []).append(volume)
    reported_instances: set[str] = set()
    reported_volumes: set[str] = set()

    # Instances: labtui's in any live state; untagged ones only when stopped (their disks
    # bill). EMR nodes belong to their cluster.
    for instance in instances:
        labels = tags.as_dict(instance.get("Tags"))
        if EMR_TAG in labels:
            continue
        course = _course(labels)
        state = instance["State"]["Name"]
        if course == UNTAGGED and state != "stopped":
            continue
        iid = instance["InstanceId"]
        attached = by_instance.get(iid, [])
        disks = sum(_volume_month(v) for v in attached)
        itype = instance.get("InstanceType", "")
        hourly = _hourly(prices, region, itype) if state != "stopped" else 0.0
        monthly = None if hourly is None else hourly * HOURS_PER_MONTH + disks
        kept = [v["VolumeId"] for v in attached if course != UNTAGGED
                and tags.COURSE in tags.as_dict(v.get("Tags"))
                and not all(a.get("DeleteOnTermination") for a in v.get("Attachments", []))]
        reported_instances.add(iid)
        reported_volumes.update(v["VolumeId"] for v in attached)
        add("instance", iid, course, instance.get("LaunchTime"), monthly,
            f"{itype}, {state}, {len(attached)} volume(s) "
            f"{sum(int(v.get('Size', 0)) for v in attached)} GiB",
            f"{cli} ec2 terminate-instances --instance-ids {iid}", kept)

    for spot in spots:
        course = _course(tags.as_dict(spot.get("Tags")))
        sid = spot["SpotInstanceRequestId"]
        iid = spot.get("InstanceId") or ""
        itype = spot.get("LaunchSpecification", {}).get("InstanceType", "")
        monthly: float | None = 0.0
        if iid and iid not in reported_instances:
            hourly = _hourly(prices, region, itype) if itype else None
            monthly = None if hourly is None else hourly * HOURS_PER_MONTH
        detail = f"{spot.get('State')}, {spot.get('Type', 'one-time')}, {itype or '?'}" + (
            f", launched {iid}" if iid else "")
        how = f"{cli} ec2 cancel-spot-instance-requests --spot-instance-request-ids {sid}"
        if iid:
            how += f" && {cli} ec2 terminate-instances --instance-ids {iid}"
        add("spot-request", sid, course, spot.get("CreateTime"), monthly, detail, how,
            [iid] if iid else [])

    for nat in nats:
        course = _course(tags.as_dict(nat.get("Tags")))
        nid = nat["NatGatewayId"]
        hourly = table().get("nat_gateway", {}).get(region, NAT_HOUR)
        allocations = [a["AllocationId"] for a in nat.get("NatGatewayAddresses", [])
                       if a.get("AllocationId")] if course != UNTAGGED else []
        add("nat-gateway", nid, course, nat.get("CreateTime"), hourly * HOURS_PER_MONTH,
            f"{nat.get('State')}, in {nat.get('VpcId', '?')}",
            f"{cli} ec2 delete-nat-gateway --nat-gateway-id {nid}", allocations)

    for address in addresses:
        course = _course(tags.as_dict(address.get("Tags")))
        associated = bool(address.get("AssociationId") or address.get("InstanceId")
                          or address.get("NetworkInterfaceId"))
        if course == UNTAGGED and associated:
            continue
        aid = address.get("AllocationId") or address.get("PublicIp", "")
        what = "--allocation-id" if address.get("AllocationId") else "--public-ip"
        add("address", aid, course, None, ADDRESS_HOUR * HOURS_PER_MONTH,
            f"{address.get('PublicIp', '?')}, "
            + (f"associated with {address.get('InstanceId') or address.get('NetworkInterfaceId')}"
               if associated else "not associated"),
            f"{cli} ec2 release-address {what} {aid}")

    for volume in volumes:
        vid = volume["VolumeId"]
        course = _course(tags.as_dict(volume.get("Tags")))
        if vid in reported_volumes or (course == UNTAGGED and volume.get("State") !=
                                       "available"):
            continue
        add("volume", vid, course, volume.get("CreateTime"), _volume_month(volume),
            f"{volume.get('Size')} GiB {volume.get('VolumeType', '?')}, "
            f"{volume.get('State')}",
            f"{cli} ec2 delete-volume --volume-id {vid}")

    used_images = {i.get("ImageId") for i in instances}
    image_snapshots: set[str] = set()
    snapshot_size = {s["SnapshotId"]: int(s.get("VolumeSize", 0)) for s in snapshots}
    for image in images:
        own = [b["Ebs"]["SnapshotId"] for b in image.get("BlockDeviceMappings", [])
               if b.get("Ebs", {}).get("SnapshotId")]
        image_snapshots.update(own)
        course = _course(tags.as_dict(image.get("Tags")))
        mid = image["ImageId"]
        if course == UNTAGGED and mid in used_images:
            continue
        gib = sum(snapshot_size.get(s, 0) for s in own)
        add("image", mid, course, image.get("CreationDate"), gib * SNAPSHOT_GB_MONTH,
            f"{image.get('Name', '')}, {len(own)} snapshot(s) {gib} GiB"
            + (", in use" if mid in used_images else ", not used by any instance"),
            f"{cli} ec2 deregister-image --image-id {mid}"
            + "".join(f" && {cli} ec2 delete-snapshot --snapshot-id {s}" for s in own),
            [s for s in own if s in snapshot_size])

    for snapshot in snapshots:
        sid = snapshot["SnapshotId"]
        if sid in image_snapshots:
            continue                       # counted with (and deleted after) its image
        course = _course(tags.as_dict(snapshot.get("Tags")))
        orphan = snapshot.get("VolumeId") not in volume_by_id
        if course == UNTAGGED and not orphan:
            continue
        add("snapshot", sid, course, snapshot.get("StartTime"),
            int(snapshot.get("VolumeSize", 0)) * SNAPSHOT_GB_MONTH,
            f"{snapshot.get('VolumeSize')} GiB, from {snapshot.get('VolumeId', '?')}"
            + (" (gone)" if orphan else ""),
            f"{cli} ec2 delete-snapshot --snapshot-id {sid}")

    for group in groups:
        gid = group["GroupId"]
        add("security-group", gid, _course(tags.as_dict(group.get("Tags"))), None, 0.0,
            f"{group.get('GroupName', '')} in {group.get('VpcId', '?')}",
            f"{cli} ec2 delete-security-group --group-id {gid}")
    for subnet in subnets:
        sid = subnet["SubnetId"]
        add("subnet", sid, _course(tags.as_dict(subnet.get("Tags"))), None, 0.0,
            f"{subnet.get('CidrBlock', '')} in {subnet.get('VpcId', '?')}",
            f"{cli} ec2 delete-subnet --subnet-id {sid}")
    for gateway in gateways:
        gid = gateway["InternetGatewayId"]
        attached = [a["VpcId"] for a in gateway.get("Attachments", []) if a.get("VpcId")]
        add("internet-gateway", gid, _course(tags.as_dict(gateway.get("Tags"))), None, 0.0,
            f"attached to {', '.join(attached)}" if attached else "detached",
            "".join(f"{cli} ec2 detach-internet-gateway --internet-gateway-id {gid} "
                    f"--vpc-id {v} && " for v in attached)
            + f"{cli} ec2 delete-internet-gateway --internet-gateway-id {gid}", attached)
    for vpc in vpcs:
        vid = vpc["VpcId"]
        add("vpc", vid, _course(tags.as_dict(vpc.get("Tags"))), None, 0.0,
            vpc.get("CidrBlock", ""), f"{cli} ec2 delete-vpc --vpc-id {vid}")
    for pair in pairs:
        name = pair.get("KeyName", "")
        labels = tags.as_dict(pair.get("Tags"))
        if not name.startswith(KEY_PREFIX) and tags.COURSE not in labels:
            continue
        course = labels.get(tags.COURSE) or name.removeprefix(KEY_PREFIX) or UNTAGGED
        add("key-pair", name, course, pair.get("CreateTime"), 0.0,
            pair.get("KeyType", "key pair"), f"{cli} ec2 delete-key-pair --key-name {name}")

    out.extend(_clusters(aws, region, now, prices, clusters))
    out.extend(_databases(aws, region, now))
    out.extend(_boot_events(aws, region))
    return out


def _boot_events(aws: Aws, region: str) -> list[Finding]:
    """labtui's boot topics and queues (setup at boot): free while idle, but the course's."""
    cli = f"aws --region {region}"
    out = []
    for found in bootevents.listed(aws, region):
        course = found.course or found.name.removeprefix("labtui-").removesuffix("-boot")
        if found.kind == "topic":
            out.append(Finding(region, "sns-topic", found.name, course, None, 0.0,
                               "boot events topic (setup_mode = \"user-data\")",
                               f"{cli} sns delete-topic --topic-arn {found.ref}",
                               (found.ref,)))
        else:
            out.append(Finding(region, "sqs-queue", found.name, course, None, 0.0,
                               "boot events queue (setup_mode = \"user-data\")",
                               f"{cli} sqs delete-queue --queue-url {found.ref}",
                               (found.ref,)))
    return out


def _databases(aws: Aws, region: str, now: datetime) -> list[Finding]:
    """DB instances (any: they bill while idle) and manual DB snapshots; labtui's DB subnet
    groups (free, but they hold the course's subnets)."""
    cli = f"aws --region {region}"
    out = []
    for db in aws.paginate("rds", region, "describe_db_instances", "DBInstances"):
        if db.get("DBInstanceStatus") in ("deleting", "deleted"):
            continue
        name = db["DBInstanceIdentifier"]
        out.append(Finding(region, "db-instance", name, _course(tags.as_dict(db.get("TagList"))),
                           _age(db.get("InstanceCreateTime"), now),
                           db.get("AllocatedStorage", 0) * RDS_GB_MONTH,
                           f"{db.get('Engine')} {db.get('DBInstanceClass')}, "
                           f"{db.get('AllocatedStorage')} GB, {db.get('DBInstanceStatus')} "
                           "($/month: its storage; the instance's hours come on top)",
                           f"{cli} rds delete-db-instance --db-instance-identifier {name} "
                           "--skip-final-snapshot"))
    for snap in aws.paginate("rds", region, "describe_db_snapshots", "DBSnapshots",
                             SnapshotType="manual"):
        sid = snap["DBSnapshotIdentifier"]
        out.append(Finding(region, "db-snapshot", sid, _course(tags.as_dict(snap.get("TagList"))),
                           _age(snap.get("SnapshotCreateTime"), now),
                           snap.get("AllocatedStorage", 0) * RDS_SNAPSHOT_GB_MONTH,
                           f"of {snap.get('DBInstanceIdentifier')}, "
                           f"{snap.get('AllocatedStorage')} GB",
                           f"{cli} rds delete-db-snapshot --db-snapshot-identifier {sid}"))
    for group in aws.paginate("rds", region, "describe_db_subnet_groups", "DBSubnetGroups"):
        name = group["DBSubnetGroupName"]
        if name.startswith("labtui-"):
            out.append(Finding(region, "db-subnet-group", name, name.removeprefix("labtui-"),
                               None, 0.0, f"in {group.get('VpcId')}",
                               f"{cli} rds delete-db-subnet-group --db-subnet-group-name "
                               f"{name}"))
    return out


def _clusters(aws: Aws, region: str, now: datetime, prices: Prices,
              claims: _Claims) -> list[Finding]:
    out = []
    for summary in aws.paginate("emr", region, "list_clusters", "Clusters",
                                ClusterStates=LIVE_CLUSTER):
        cid = summary["Id"]
        if not claims.claim(cid):
            continue
        arn = str(summary.get("ClusterArn", ""))
        home = arn.split(":")[3] if arn.count(":") >= 5 and arn.split(":")[3] else region
        client = aws.client("emr", home)
        with translate_errors(f"emr.DescribeCluster {cid} in {home}"):
            cluster = client.describe_cluster(ClusterId=cid)["Cluster"]
        course = _course(tags.as_dict(cluster.get("Tags")))
        state = cluster["Status"]["State"]
        if course == UNTAGGED:
            if state != "WAITING":
                continue
            with translate_errors(f"emr.ListSteps {cid} in {home}"):
                busy = client.list_steps(ClusterId=cid,
                                         StepStates=["PENDING", "RUNNING"])["Steps"]
            if busy:
                continue
        monthly, nodes = _cluster_month(aws, client, home, cid, prices)
        out.append(Finding(
            home, "emr-cluster", cid, course,
            _age(cluster["Status"].get("Timeline", {}).get("CreationDateTime"), now),
            monthly, f"{cluster.get('Name', '')}, {state}, {nodes} node(s)",
            f"aws --region {home} emr terminate-clusters --cluster-ids {cid}"))
    return out


def _cluster_month(aws: Aws, client: Any, region: str, cid: str,
                   prices: Prices) -> tuple[float | None, int]:
    try:
        with translate_errors(f"emr.ListInstanceGroups {cid} in {region}"):
            groups = client.list_instance_groups(ClusterId=cid)["InstanceGroups"]
    except AwsError:
        return None, 0
    monthly: float | None = 0.0
    nodes = 0
    for group in groups:
        count = int(group.get("RunningInstanceCount", group.get("RequestedInstanceCount", 0)))
        nodes += count
        itype = group.get("InstanceType", "")
        ec2_price, emr_price = prices.ec2(region, itype).usd, prices.emr(region, itype).usd
        if ec2_price is None or monthly is None:
            monthly = None
            continue
        monthly += count * (ec2_price + (emr_price or 0.0)) * HOURS_PER_MONTH
    return monthly, nodes


# -- deleting -----------------------------------------------------------------------------------

def remove(aws: Aws, findings: Sequence[Finding], *, sink: EventSink | None = None,
           sleep: Callable[[float], None] = time.sleep, attempts: int = 8,
           workers: int = 8) -> list[Removal]:
    """Delete ``findings`` in dependency order within each region, regions in parallel;
    one Removal per finding (ok, or the AWS error)."""
    sink = sink or NullSink()
    by_region: dict[str, list[Finding]] = {}
    for finding in findings:
        by_region.setdefault(finding.region, []).append(finding)
    out: list[Removal] = []
    if not by_region:
        return out
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(by_region)))) as pool:
        futures = [pool.submit(_remove_region, aws, region, items, sink, sleep, attempts)
                   for region, items in by_region.items()]
        for future in as_completed(futures):
            out.extend(future.result())
    return out


def _remove_region(aws: Aws, region: str, findings: list[Finding], sink: EventSink,
                   sleep: Callable[[float], None], attempts: int) -> list[Removal]:
    out = []
    ec2 = aws.client("ec2", region)
    terminated: list[str] = []
    for finding in sorted(findings, key=lambda f: (ORDER.index(f.kind), f.id)):
        if finding.kind in ("nat-gateway", "address", "volume") and terminated:
            _wait(ec2, "instance_terminated", terminated, region, sink)  # disks let go
            terminated = []
        what = f"{region} {finding.kind} {finding.id}"
        try:
            for attempt in range(attempts):
                try:
                    with translate_errors(f"delete {what}"):
                        _delete(aws, ec2, finding, terminated)
                    break
                except AwsError as exc:
                    if exc.code not in RETRIED or attempt == attempts - 1:
                        raise
                    sleep(min(2 ** attempt, 15))
        except AwsError as exc:
            out.append(Removal(finding, False, str(exc)))
            sink.emit(Problem(f"sweep: could not delete {what}: {exc}"))
            continue
        out.append(Removal(finding, True))
        sink.emit(LogLine(f"sweep: deleted {what} ({finding.course})"))
    if terminated:
        _wait(ec2, "instance_terminated", terminated, region, sink)
    return out


def _wait(ec2: Any, waiter: str, ids: list[str], region: str, sink: EventSink) -> None:
    try:
        with translate_errors(f"ec2 wait {waiter} in {region}"):
            if waiter == "nat_gateway_deleted":
                ec2.get_waiter(waiter).wait(NatGatewayIds=ids,
                                            WaiterConfig={"Delay": 10, "MaxAttempts": 60})
            else:
                ec2.get_waiter(waiter).wait(InstanceIds=ids,
                                            WaiterConfig={"Delay": 5, "MaxAttempts": 120})
    except AwsError as exc:  # the deletions that depend on it report their own errors
        sink.emit(LogLine(f"sweep: {exc}", level="warning"))


def _delete(aws: Aws, ec2: Any, finding: Finding, terminated: list[str]) -> None:
    kind, rid = finding.kind, finding.id
    if kind == "emr-cluster":
        emr = aws.client("emr", finding.region)
        emr.terminate_job_flows(JobFlowIds=[rid])
        delay = 1 if aws.local else 15  # an emulator answers at once: ask every second
        emr.get_waiter("cluster_terminated").wait(
            ClusterId=rid, WaiterConfig={"Delay": delay, "MaxAttempts": 1200 // delay})
    elif kind == "db-instance":
        rds = aws.client("rds", finding.region)
        rds.delete_db_instance(DBInstanceIdentifier=rid, SkipFinalSnapshot=True,
                               DeleteAutomatedBackups=True)
        delay = 1 if aws.local else 30
        rds.get_waiter("db_instance_deleted").wait(
            DBInstanceIdentifier=rid, WaiterConfig={"Delay": delay, "MaxAttempts": 1800 // delay})
    elif kind == "db-snapshot":
        aws.client("rds", finding.region).delete_db_snapshot(DBSnapshotIdentifier=rid)
    elif kind == "db-subnet-group":
        aws.client("rds", finding.region).delete_db_subnet_group(DBSubnetGroupName=rid)
    elif kind == "spot-request":
        ec2.cancel_spot_instance_requests(SpotInstanceRequestIds=[rid])
        if finding.related:
            ec2.terminate_instances(InstanceIds=list(finding.related))
            terminated.extend(finding.related)
    elif kind == "instance":
        ec2.terminate_instances(InstanceIds=[rid])
        if finding.related:            # tagged disks that outlive their instance
            ec2.get_waiter("instance_terminated").wait(
                InstanceIds=[rid], WaiterConfig={"Delay": 5, "MaxAttempts": 120})
            for vid in finding.related:
                ec2.delete_volume(VolumeId=vid)
        else:
            terminated.append(rid)
    elif kind == "nat-gateway":
        ec2.delete_nat_gateway(NatGatewayId=rid)
        if finding.related:            # labtui's NAT: its addresses would bill idle
            ec2.get_waiter("nat_gateway_deleted").wait(
                NatGatewayIds=[rid], WaiterConfig={"Delay": 10, "MaxAttempts": 60})
            for allocation in finding.related:
                ec2.release_address(AllocationId=allocation)
    elif kind == "address":
        if rid.startswith("eipalloc-"):
            reply = ec2.describe_addresses(AllocationIds=[rid])["Addresses"]
            for address in reply:
                if address.get("AssociationId"):
                    ec2.disassociate_address(AssociationId=address["AssociationId"])
            ec2.release_address(AllocationId=rid)
        else:
            ec2.release_address(PublicIp=rid)
    elif kind == "volume":
        ec2.delete_volume(VolumeId=rid)
    elif kind == "image":
        ec2.deregister_image(ImageId=rid)
        for sid in finding.related:
            ec2.delete_snapshot(SnapshotId=sid)
    elif kind == "snapshot":
        ec2.delete_snapshot(SnapshotId=rid)
    elif kind == "security-group":
        ec2.delete_security_group(GroupId=rid)
    elif kind == "subnet":
        ec2.delete_subnet(SubnetId=rid)
    elif kind == "internet-gateway":
        for vpc_id in finding.related:
            try:
                ec2.detach_internet_gateway(InternetGatewayId=rid, VpcId=vpc_id)
            except Exception as exc:  # noqa: BLE001 - already detached is fine
                if "Gateway.NotAttached" not in str(exc):
                    raise
        ec2.delete_internet_gateway(InternetGatewayId=rid)
    elif kind == "vpc":
        tables = ec2.describe_route_tables(
            Filters=[{"Name": "vpc-id", "Values": [rid]}])["RouteTables"]
        for route_table in tables:
            if not any(a.get("Main") for a in route_table.get("Associations", [])):
                ec2.delete_route_table(RouteTableId=route_table["RouteTableId"])
        ec2.delete_vpc(VpcId=rid)
    elif kind == "key-pair":
        ec2.delete_key_pair(KeyName=rid)
    elif kind in ("sns-topic", "sqs-queue"):
        bootevents.remove(aws, finding.region, bootevents.Found(
            "topic" if kind == "sns-topic" else "queue", rid, finding.related[0],
            finding.course))
    else:  # pragma: no cover - ORDER lists every kind
        raise ValueError(kind)
