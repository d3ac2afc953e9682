"""down: remove everything labtui created for a course, found by its tags, then prove it.

Region by region, in dependency order: EMR clusters (waited for), spot requests (cancelled
before their instances, or AWS relaunches persistent ones), instances (waited for; any that
did not reach terminated is reported, not counted), detached volumes, Elastic IPs, NAT
gateways (waited for), the network (subnets, route tables, internet gateway, VPC), security
groups, the key pair; the boot topic and queue (setup at boot) after the machines. Then the
account-wide part: IAM users (keys, login profiles, policies, groups), instance profiles and
roles tagged with the course; buckets only when asked, and a bucket holding results or
students' work only when asked twice.

Every describe and delete goes through the error translation and :func:`retrying`: a
throttled or briefly unavailable call (RequestLimitExceeded, Throttling, SlowDown, a 5xx, a
waiter that met one) is tried again with backoff after botocore's own retries gave up. A step
that still fails is reported (``report.failed``) and the next one runs, so one bad region or
kind never hides the rest.

No DependencyViolation loops: when a subnet, route table, internet gateway, group, key pair
or VPC will not go, :func:`blockers` finds what still uses it (network interfaces and what
owns them, NAT gateways, VPC endpoints, peering connections, instances of another course);
the course's own are removed or waited for, anything else stops the retries with a message
that names it. Retries are bounded, with backoff and an injectable sleep. Interrupted and run
again, ``down`` finishes: every step starts from what AWS still holds.

:func:`leftovers` is the verification pass: it lists what of the course is still there, and
why, or nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from labtui.errors import AwsError
from labtui.events import EventSink, LogLine, NullSink, Problem, Progress, StepDone
from labtui.policy import iam_path
from labtui.services import bootevents, tags
from labtui.services.aws import Aws
from labtui.services.keys import key_pair_name
from labtui.services.retries import retrying

LIVE = ["pending", "running", "stopping", "stopped", "shutting-down"]
CLUSTER_LIVE = ["STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING", "TERMINATING"]
RESULTS_TAG = "labtui:holds"   # "results" or "work": a bucket down keeps unless told twice
SPOT_LIVE = ["open", "active", "disabled"]
# The thing is gone already (a second run, or another laptop, got there first).
GONE = frozenset({
    "InvalidGroup.NotFound", "InvalidVpcID.NotFound", "InvalidSubnetID.NotFound",
    "NoSuchEntity", "InvalidInternetGatewayID.NotFound", "InvalidVolume.NotFound",
    "InvalidAllocationID.NotFound", "InvalidRouteTableID.NotFound", "NoSuchBucket",
    "InvalidKeyPair.NotFound", "InvalidNetworkInterfaceID.NotFound",
    "InvalidAssociationID.NotFound", "InvalidInstanceID.NotFound",
    "InvalidSpotInstanceRequestID.NotFound", "NatGatewayNotFound",
    "InvalidVpcPeeringConnectionID.NotFound", "NotFound",
    "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist",
})
IN_USE = frozenset({"DependencyViolation", "InvalidGroup.InUse", "ResourceInUse"})
T = TypeVar("T")


@dataclass
class DownReport:
    removed: dict[str, int] = field(default_factory=dict)   # kind -> count
    failed: list[str] = field(default_factory=list)        # "region kind id: why"
    left: list[Leftover] = field(default_factory=list)     # the verification pass
    kept: list[str] = field(default_factory=list)          # what down was told to keep

    def count(self, kind: str, n: int = 1) -> None:
        self.removed[kind] = self.removed.get(kind, 0) + n


@dataclass(frozen=True)
class Leftover:
    region: str
    kind: str
    id: str
    why: str

    def __str__(self) -> str:
        return f"{self.region} {self.kind} {self.id}: {self.why}"


@dataclass
class Teardown:
    """One course's teardown; ``keep`` are instance ids not to terminate (their seat's work
    could not be saved)."""

    aws: Aws
    course_id: str
    sink: EventSink = field(default_factory=NullSink)
    sleep: Callable[[float], None] = time.sleep
    attempts: int = 8
    keep: frozenset[str] = frozenset()
    report: DownReport = field(default_factory=DownReport)
    wait_config: Mapping[str, int] | None = None   # overrides every waiter's Delay/MaxAttempts
    final_snapshot: bool = True                    # a database leaves a final snapshot

    # ------------------------------------------------------------------ helpers

    @property
    def _course(self) -> list[dict[str, Any]]:
        return tags.course_filter(self.course_id)

    def _call(self, what: str, call: Callable[[], T]) -> T:
        return retrying(what, call, self.sleep)

    def _try(self, what: str, call: Callable[[], Any]) -> bool:
        try:
            self._call(what, call)
            return True
        except AwsError as exc:
            if exc.code in GONE:
                return True  # gone already (a second run, or another laptop, got there first)
            self._failed(what, exc)
            return False

    def _failed(self, what: str, exc: AwsError) -> None:
        where = f" ({exc.operation})" if exc.code and exc.operation not in ("", what) else ""
        self.report.failed.append(f"{what}: {exc.code or exc}{where}")
        self.sink.emit(Problem(f"{what} failed: {exc}",
                               fix="run `labtui down` again; `labtui sweep` lists what is left"))

    def _list(self, region: str, method: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
        return self._call(f"ec2.{method} in {region}", lambda: list(
            self.aws.paginate("ec2", region, method, key, **kwargs)))

    def _wait(self, region: str, service: str, waiter: str, what: str,
              default: dict[str, int], **kwargs: Any) -> bool:
        client = self.aws.client(service, region)
        config = dict(self.wait_config or default)
        if self.wait_config is None and self.aws.local:  # an emulator: ask every second
            config = {"Delay": 1, "MaxAttempts": default["Delay"] * default["MaxAttempts"]}
        return self._try(f"{region} wait for {what}", lambda: client.get_waiter(waiter).wait(
            WaiterConfig=config, **kwargs))

    def _each(self, what: str, ids: Sequence[str], call: Callable[[list[str]], Any]) -> set[str]:
        """``call`` on all ids at once; when AWS refuses that, on each one alone, so one
        that cannot go does not keep the others: the ids it went through for."""
        if len(ids) == 1:
            return set(ids) if self._try(f"{what} {ids[0]}", partial(call, list(ids))) else set()
        try:
            self._call(f"{what} ({len(ids)})", lambda: call(list(ids)))
            return set(ids)
        except AwsError:
            return {one for one in ids if self._try(f"{what} {one}", partial(call, [one]))}

    def _progress(self, kind: str, region: str, done: int, total: int) -> None:
        self.sink.emit(Progress(f"down {kind} {region}", done, total))

    # ------------------------------------------------------------------ per region

    def region(self, region: str) -> None:
        steps: list[tuple[str, Callable[[], None]]] = [
            ("clusters", partial(self.clusters, region)),
            ("machines", partial(self.instances, region)),
            ("databases", partial(self.databases, region)),
            ("boot events", partial(self.boot_events, region)),
            ("volumes", partial(self.volumes, region)),
            ("addresses", partial(self.addresses, region)),
            ("NAT gateways", partial(self.nat_gateways, region)),
            ("network", partial(self.networks, region)),
            ("security groups", partial(self.security_groups, region)),
            ("key pair", partial(self.key_pair, region)),
        ]
        stuck = False
        for index, (kind, step) in enumerate(steps):
            before = dict(self.report.removed)
            self.sink.emit(Progress(f"down {region}", index, len(steps)))
            if stuck and kind in ("network", "security groups"):
                self.report.failed.append(f"{region} {kind}: not tried, the machines of "
                                          "the course could not be listed or removed")
                continue
            try:
                step()
            except AwsError as exc:  # a listing failed for good: say so, do the rest
                self._failed(f"{region} {kind}", exc)
                stuck = stuck or kind in ("clusters", "machines")
            gone = {k: n - before.get(k, 0) for k, n in self.report.removed.items()
                    if n != before.get(k, 0)}
            if gone:
                self.sink.emit(LogLine(f"{region}: {kind}: removed " + ", ".join(
                    f"{n} {k}" for k, n in sorted(gone.items()))))
        self.sink.emit(Progress(f"down {region}", len(steps), len(steps)))

    def networks(self, region: str) -> None:
        for vpc in self._list(region, "describe_vpcs", "Vpcs", Filters=self._course):
            self.vpc(region, vpc["VpcId"])

    def clusters(self, region: str) -> None:
        emr = self.aws.client("emr", region)
        ids = []
        listed = self._call(f"emr.ListClusters in {region}", lambda: list(self.aws.paginate(
            "emr", region, "list_clusters", "Clusters", ClusterStates=CLUSTER_LIVE)))
        for summary in listed:
            cluster = self._call(f"emr.DescribeCluster {summary['Id']}", partial(
                emr.describe_cluster, ClusterId=summary["Id"]))["Cluster"]
            if tags.as_dict(cluster.get("Tags")).get(tags.COURSE) != self.course_id:
                continue
            arn = cluster.get("ClusterArn", "")
            if arn and f":{region}:" not in arn:
                continue  # moto lists one cluster under every region: keep its own
            ids.append(summary["Id"])
        if not ids:
            return
        if self._try(f"{region} terminate {len(ids)} cluster(s)",
                     lambda: emr.terminate_job_flows(JobFlowIds=ids)):
            for cid in ids:
                self._wait(region, "emr", "cluster_terminated", f"cluster {cid}",
                           {"Delay": 15, "MaxAttempts": 80}, ClusterId=cid)
            self.report.count("clusters", len(ids))
            self.sink.emit(LogLine(f"{region}: terminated {len(ids)} cluster(s)"))

    def instances(self, region: str) -> None:
        """Cancel the course's spot requests, then terminate its instances and wait; an
        instance that did not reach terminated is reported, not counted."""
        ec2 = self.aws.client("ec2", region)
        found = [i for r in self._list(region, "describe_instances", "Reservations",
                                       Filters=self._course + [
                                           {"Name": "instance-state-name", "Values": LIVE}])
                 for i in r["Instances"]]
        kept = [i["InstanceId"] for i in found if i["InstanceId"] in self.keep]
        self.report.kept.extend(f"{region} instance {iid}: its seat's work was not saved"
                                for iid in kept)
        ids = [i["InstanceId"] for i in found if i["InstanceId"] not in self.keep]
        # A persistent spot request launches its instance again once it is terminated:
        # cancel every one first (tagged, or named by one of the course's instances).
        requests = {s["SpotInstanceRequestId"]: s.get("InstanceId") for s in self._list(
            region, "describe_spot_instance_requests", "SpotInstanceRequests",
            Filters=self._course + [{"Name": "state", "Values": SPOT_LIVE}])}
        for instance in found:
            if instance.get("SpotInstanceRequestId"):
                requests.setdefault(instance["SpotInstanceRequestId"], instance["InstanceId"])
        cancel = [rid for rid, iid in requests.items() if iid not in self.keep]
        cancelled = self._each(f"{region} cancel spot request", cancel, lambda batch:
                               ec2.cancel_spot_instance_requests(SpotInstanceRequestIds=batch))
        if cancelled:
            self.report.count("spot requests", len(cancelled))
        held = {requests[rid]: rid for rid in cancel if rid not in cancelled and requests[rid]}
        for iid in (i for i in ids if i in held):
            self.report.failed.append(
                f"{region} instance {iid}: not terminated, its persistent spot request "
                f"{held[iid]} could not be cancelled (AWS would launch it again)")
        ids = [iid for iid in ids if iid not in held]
        if not ids:
            return
        self._progress("instances", region, 0, len(ids))
        asked = self._each(f"{region} terminate instance", ids,
                           lambda batch: ec2.terminate_instances(InstanceIds=batch))
        ids = [iid for iid in ids if iid in asked]
        if not ids:
            return
        self._wait(region, "ec2", "instance_terminated", f"{len(ids)} instance(s) to terminate",
                   {"Delay": 5, "MaxAttempts": 120}, InstanceIds=ids)
        states = self._states(region, ids)
        gone = [iid for iid in ids if states.get(iid, "terminated") == "terminated"]
        for iid in ids:
            if iid not in gone:
                self.report.failed.append(f"{region} instance {iid}: still {states[iid]} after "
                                          "the wait, not terminated")
        self.report.count("instances", len(gone))
        self._progress("instances", region, len(gone), len(ids))
        self.sink.emit(LogLine(f"{region}: terminated {len(gone)} instance(s)"))

    def databases(self, region: str) -> None:
        """The course's DB instances (a final snapshot each, unless told not to; deletion
        protection lifted: down means everything), then their subnet and parameter groups."""
        rds = self.aws.client("rds", region)
        found = [d for d in self._pages_in(region, "rds", "describe_db_instances",
                                           "DBInstances")
                 if tags.as_dict(d.get("TagList")).get(tags.COURSE) == self.course_id
                 and d.get("DBInstanceStatus") != "deleting"]
        for db in found:
            name = db["DBInstanceIdentifier"]
            if db.get("DeletionProtection"):
                self._try(f"{region} rds.ModifyDBInstance {name}", partial(
                    rds.modify_db_instance, DBInstanceIdentifier=name, DeletionProtection=False,
                    ApplyImmediately=True))
            snapshot = f"{name}-final-{time.strftime('%Y%m%d-%H%M%S')}"
            extra = ({"FinalDBSnapshotIdentifier": snapshot} if self.final_snapshot
                     else {"SkipFinalSnapshot": True})
            if self._try(f"{region} rds.DeleteDBInstance {name}", partial(
                    rds.delete_db_instance, DBInstanceIdentifier=name,
                    DeleteAutomatedBackups=True, **extra)):
                self._wait(region, "rds", "db_instance_deleted", f"database {name}",
                           {"Delay": 30, "MaxAttempts": 60}, DBInstanceIdentifier=name)
                self.report.count("databases")
                if self.final_snapshot:
                    self.report.kept.append(f"{region} DB snapshot {snapshot}: the final "
                                            f"snapshot of {name} (sweep lists it; `aws rds "
                                            "delete-db-snapshot` removes it)")
        own = f"labtui-{self.course_id}"
        for method, key, field_name, delete, kind in (
                ("describe_db_subnet_groups", "DBSubnetGroups", "DBSubnetGroupName",
                 "delete_db_subnet_group", "DB subnet groups"),
                ("describe_db_parameter_groups", "DBParameterGroups", "DBParameterGroupName",
                 "delete_db_parameter_group", "DB parameter groups")):
            for group in self._pages_in(region, "rds", method, key):
                if group[field_name] == own and self._try(
                        f"{region} rds.{delete} {own}",
                        partial(getattr(rds, delete), **{field_name: own})):
                    self.report.count(kind)

    def _pages_in(self, region: str, service: str, method: str, key: str) -> list[dict[str, Any]]:
        return self._call(f"{region} {service}.{method}", lambda: list(
            self.aws.paginate(service, region, method, key)))

    def _states(self, region: str, ids: Sequence[str]) -> dict[str, str]:
        """State of each instance that EC2 still lists (by filter: no error for one that is
        no longer listed, which has been terminated for a while)."""
        out: dict[str, str] = {}
        for start in range(0, len(ids), 100):
            chunk = list(ids[start:start + 100])
            for reservation in self._list(region, "describe_instances", "Reservations",
                                          Filters=[{"Name": "instance-id", "Values": chunk}]):
                for i in reservation["Instances"]:
                    out[i["InstanceId"]] = i["State"]["Name"]
        return out

    def boot_events(self, region: str) -> None:
        """The course's boot topic (its subscriptions first) and queue
        (setup_mode = "user-data"), after the machines that publish to it."""
        found = self._call(f"{region} list boot topics and queues",
                           partial(bootevents.listed, self.aws, region, self.course_id))
        for item in found:   # the topic before the queue it delivers to
            if self._try(f"{region} delete boot {item.kind} {item.name}",
                         partial(bootevents.remove, self.aws, region, item)):
                self.report.count(f"{item.kind}s")

    def volumes(self, region: str) -> None:
        ec2 = self.aws.client("ec2", region)
        for volume in self._list(region, "describe_volumes", "Volumes", Filters=self._course + [
                {"Name": "status", "Values": ["available"]}]):
            vid = volume["VolumeId"]
            if self._try(f"{region} delete volume {vid}",
                         partial(ec2.delete_volume, VolumeId=vid)):
                self.report.count("volumes")

    def addresses(self, region: str) -> None:
        ec2 = self.aws.client("ec2", region)
        found = self._call(f"ec2.DescribeAddresses in {region}", partial(
            ec2.describe_addresses, Filters=self._course))["Addresses"]
        for address in found:
            aid = address.get("AllocationId", "")
            if address.get("AssociationId"):
                self._try(f"{region} disassociate address {aid}", partial(
                    ec2.disassociate_address, AssociationId=address["AssociationId"]))
            if self._try(f"{region} release address {aid}",
                         partial(ec2.release_address, AllocationId=aid)):
                self.report.count("addresses")

    def nat_gateways(self, region: str, vpc_id: str | None = None) -> None:
        ec2 = self.aws.client("ec2", region)
        filters = [{"Name": "state", "Values": ["pending", "available", "failed"]}]
        filters += ([{"Name": "vpc-id", "Values": [vpc_id]}] if vpc_id else self._course)
        ids = [g["NatGatewayId"] for g in self._list(region, "describe_nat_gateways",
                                                      "NatGateways", Filter=filters)]
        for gid in ids:
            if self._try(f"{region} delete NAT gateway {gid}",
                         partial(ec2.delete_nat_gateway, NatGatewayId=gid)):
                self.report.count("NAT gateways")
        if ids:
            self._wait(region, "ec2", "nat_gateway_deleted", "NAT gateways",
                       {"Delay": 10, "MaxAttempts": 60}, NatGatewayIds=ids)

    def vpc(self, region: str, vpc_id: str) -> None:
        ec2 = self.aws.client("ec2", region)
        in_vpc = [{"Name": "vpc-id", "Values": [vpc_id]}]
        others = [i for r in self._list(region, "describe_instances", "Reservations",
                                        Filters=in_vpc + [{"Name": "instance-state-name",
                                                           "Values": LIVE}])
                  for i in r["Instances"] if i["InstanceId"] not in self.keep
                  and tags.as_dict(i.get("Tags")).get(tags.COURSE) != self.course_id]
        if others:  # a shared VPC: never take it from under somebody else's machines
            names = ", ".join(f"instance {i['InstanceId']} ("
                              + (f"course {course}" if (course := tags.as_dict(
                                  i.get("Tags")).get(tags.COURSE)) else "no labtui course")
                              + ")" for i in others[:5])
            self.report.failed.append(f"{region} delete VPC {vpc_id}: DependencyViolation: "
                                      f"in use by {names}")
            self.sink.emit(Problem(f"{region}: VPC {vpc_id} is shared and still used by "
                                   f"{names}; the course's own parts of it are gone",
                                   fix="remove those machines first if the VPC must go"))
            self.security_groups(region)
            return
        self.nat_gateways(region, vpc_id)
        if not self.peerings(region, vpc_id):
            return
        for endpoint in self._list(region, "describe_vpc_endpoints", "VpcEndpoints",
                                   Filters=in_vpc):
            eid = endpoint["VpcEndpointId"]
            if self._try(f"{region} delete VPC endpoint {eid}",
                         partial(ec2.delete_vpc_endpoints, VpcEndpointIds=[eid])):
                self.report.count("VPC endpoints")
        for subnet in self._list(region, "describe_subnets", "Subnets", Filters=in_vpc):
            sid = subnet["SubnetId"]
            if self._until_free(region, f"subnet {sid}", partial(ec2.delete_subnet,
                                                                   SubnetId=sid),
                                [{"Name": "subnet-id", "Values": [sid]}]):
                self.report.count("subnets")
        for table in self._list(region, "describe_route_tables", "RouteTables",
                                Filters=in_vpc):
            if any(a.get("Main") for a in table.get("Associations", [])):
                continue
            tid = table["RouteTableId"]
            for association in table.get("Associations", []):
                if association.get("RouteTableAssociationId"):
                    self._try(f"{region} disassociate route table {tid}", partial(
                        ec2.disassociate_route_table,
                        AssociationId=association["RouteTableAssociationId"]))
            if self._until_free(region, f"route table {tid}",
                                partial(ec2.delete_route_table, RouteTableId=tid), in_vpc):
                self.report.count("route tables")
        for gateway in self._list(region, "describe_internet_gateways", "InternetGateways",
                                  Filters=[{"Name": "attachment.vpc-id",
                                            "Values": [vpc_id]}]):
            gid = gateway["InternetGatewayId"]
            # "has some mapped public address(es)": the VPC's addresses go first, then it
            if self._until_free(region, f"internet gateway {gid}", partial(
                    ec2.detach_internet_gateway, InternetGatewayId=gid, VpcId=vpc_id), in_vpc,
                    doing="detach") and self._until_free(
                    region, f"internet gateway {gid}", partial(
                        ec2.delete_internet_gateway, InternetGatewayId=gid), in_vpc):
                self.report.count("internet gateways")
        self.security_groups(region, vpc_id)
        if self._until_free(region, f"VPC {vpc_id}", partial(ec2.delete_vpc, VpcId=vpc_id),
                            in_vpc):
            self.report.count("VPCs")
            self.sink.emit(LogLine(f"{region}: deleted VPC {vpc_id}"))

    def peerings(self, region: str, vpc_id: str) -> bool:
        """Delete the course's peering connections of the VPC; False (named) when another
        owner's peering holds it."""
        ec2 = self.aws.client("ec2", region)
        found: dict[str, dict[str, Any]] = {}
        for side in ("requester-vpc-info.vpc-id", "accepter-vpc-info.vpc-id"):
            for peering in self._list(region, "describe_vpc_peering_connections",
                                      "VpcPeeringConnections",
                                      Filters=[{"Name": side, "Values": [vpc_id]}]):
                if peering.get("Status", {}).get("Code") not in ("deleted", "rejected",
                                                                   "failed", "expired"):
                    found[peering["VpcPeeringConnectionId"]] = peering
        clear = True
        for pid, peering in found.items():
            course = tags.as_dict(peering.get("Tags")).get(tags.COURSE)
            if course == self.course_id:
                if self._try(f"{region} delete peering {pid}", partial(
                        ec2.delete_vpc_peering_connection, VpcPeeringConnectionId=pid)):
                    self.report.count("peering connections")
                continue
            clear = False
            who = f"course {course}" if course else "not labtui's"
            self.report.failed.append(f"{region} delete VPC {vpc_id}: DependencyViolation: "
                                      f"peering connection {pid} ({who})")
            self.sink.emit(Problem(f"{region}: VPC {vpc_id} is peered by {pid} ({who})",
                                   fix="delete that peering connection, then run down again"))
        return clear

    def security_groups(self, region: str, vpc_id: str | None = None) -> None:
        ec2 = self.aws.client("ec2", region)
        filters = [{"Name": "vpc-id", "Values": [vpc_id]}] if vpc_id else self._course
        for group in self._list(region, "describe_security_groups", "SecurityGroups",
                                Filters=filters):
            if group.get("GroupName") == "default":
                continue  # goes with its VPC
            labels = tags.as_dict(group.get("Tags"))
            if vpc_id is None and labels.get(tags.COURSE) != self.course_id:
                continue
            gid = group["GroupId"]
            if self._until_free(region, f"security group {gid}",
                                partial(ec2.delete_security_group, GroupId=gid),
                                [{"Name": "group-id", "Values": [gid]}]):
                self.report.count("security groups")

    def key_pair(self, region: str) -> None:
        ec2 = self.aws.client("ec2", region)
        name = key_pair_name(self.course_id)
        pairs = self._call(f"ec2.DescribeKeyPairs in {region}", partial(
            ec2.describe_key_pairs, Filters=[{"Name": "key-name", "Values": [name]}]))[
            "KeyPairs"]
        if pairs and self._until_free(region, f"key pair {name}", partial(
                ec2.delete_key_pair, KeyName=name), find=partial(self._key_users, region, name)):
            self.report.count("key pairs")

    def _key_users(self, region: str, name: str) -> list[Blocker]:
        """The live instances launched with the key pair: the course's are waited for."""
        out = []
        for reservation in self._list(region, "describe_instances", "Reservations", Filters=[
                {"Name": "key-name", "Values": [name]},
                {"Name": "instance-state-name", "Values": LIVE}]):
            for i in reservation["Instances"]:
                course = tags.as_dict(i.get("Tags")).get(tags.COURSE)
                ours = course == self.course_id and i["InstanceId"] not in self.keep
                who = f"course {course}" if course else "no labtui course"
                out.append(Blocker(region, "instance", i["InstanceId"],
                                   f"({who}, {i['State']['Name']}) uses it", ours))
        return out

    # ------------------------------------------------------------------ DependencyViolation

    def _until_free(self, region: str, what: str, call: Callable[[], Any],
                    eni_filters: list[dict[str, Any]] | None = None, *, doing: str = "delete",
                    find: Callable[[], list[Blocker]] | None = None) -> bool:
        """Delete (or detach), and on DependencyViolation find what depends on it (``find``,
        by default the network interfaces matching ``eni_filters``): the course's own
        dependents are removed or waited for; anything else stops the retries, named."""
        label = f"{region} {doing} {what}"
        if find is None:
            find = partial(blockers, self.aws, region, eni_filters or [], self.course_id,
                           self.keep, self.sleep)
        for attempt in range(self.attempts):
            try:
                self._call(label, call)
                return True
            except AwsError as exc:
                if exc.code in GONE:
                    return True
                if exc.code not in IN_USE:
                    self._failed(label, exc)
                    return False
                try:
                    found = find()
                except AwsError as why:
                    self._failed(f"{label}: {exc.code}; what uses it could not be listed", why)
                    return False
                foreign = [b for b in found if not b.ours]
                if foreign or attempt == self.attempts - 1:
                    names = "; ".join(str(b) for b in (foreign or found)) or str(exc)
                    self.report.failed.append(f"{label}: DependencyViolation: {names}")
                    self.sink.emit(Problem(
                        f"{region}: {what} is still in use: {names}",
                        fix="remove what uses it (it is not this course's)" if foreign
                        else "run `labtui down` again in a few minutes"))
                    return False
                for blocker in found:
                    blocker.remove(self)
                self.sleep(min(2 ** attempt, 20))
        return False

    # ------------------------------------------------------------------ account-wide

    def iam(self) -> None:
        iam = self.aws.client("iam", "us-east-1")
        for user in self._tagged_iam("list_users", "Users", "UserName", "user"):
            self._delete_user(iam, user)
        for profile in self._tagged_iam("list_instance_profiles", "InstanceProfiles",
                                        "InstanceProfileName", "profile"):
            roles = self._call(f"iam.GetInstanceProfile {profile}", partial(
                iam.get_instance_profile, InstanceProfileName=profile))["InstanceProfile"][
                "Roles"]
            for role in roles:
                self._try(f"iam remove role {role['RoleName']} from {profile}", partial(
                    iam.remove_role_from_instance_profile, InstanceProfileName=profile,
                    RoleName=role["RoleName"]))
            if self._try(f"iam delete instance profile {profile}", partial(
                    iam.delete_instance_profile, InstanceProfileName=profile)):
                self.report.count("instance profiles")
        for role in self._tagged_iam("list_roles", "Roles", "RoleName", "role"):
            self._strip_policies("role", role)
            if self._try(f"iam delete role {role}", partial(iam.delete_role, RoleName=role)):
                self.report.count("roles")
        for policy in self._pages("list_policies", "Policies", Scope="Local",
                                  PathPrefix=iam_path(self.course_id)):
            arn = policy["Arn"]
            for version in self._pages("list_policy_versions", "Versions", PolicyArn=arn):
                if not version["IsDefaultVersion"]:
                    self._try(f"iam delete version {version['VersionId']} of {arn}", partial(
                        iam.delete_policy_version, PolicyArn=arn,
                        VersionId=version["VersionId"]))
            if self._try(f"iam delete policy {arn}", partial(iam.delete_policy, PolicyArn=arn)):
                self.report.count("IAM policies")

    def _strip_policies(self, kind: str, name: str) -> None:
        """Detach the managed and delete the inline policies of a user or role."""
        iam = self.aws.client("iam", "us-east-1")
        who = {f"{kind.title()}Name": name}
        for policy in self._pages(f"list_attached_{kind}_policies", "AttachedPolicies", **who):
            self._try(f"iam detach {policy['PolicyArn']} from {name}", partial(
                getattr(iam, f"detach_{kind}_policy"), PolicyArn=policy["PolicyArn"], **who))
        for inline in self._pages(f"list_{kind}_policies", "PolicyNames", **who):
            self._try(f"iam delete policy {inline} of {name}", partial(
                getattr(iam, f"delete_{kind}_policy"), PolicyName=inline, **who))

    def _pages(self, method: str, key: str, **kwargs: Any) -> list[Any]:
        return self._call(f"iam.{method}", lambda: list(
            self.aws.paginate("iam", "us-east-1", method, key, **kwargs)))

    def _tagged_iam(self, method: str, key: str, name: str, read_tags: str) -> list[str]:
        """Names of the IAM items (users, roles, instance profiles) tagged with the course.
        Listing calls return no tags on AWS: each item's own call does."""
        iam = self.aws.client("iam", "us-east-1")
        getters = {
            "user": lambda n: iam.list_user_tags(UserName=n)["Tags"],
            "role": lambda n: iam.get_role(RoleName=n)["Role"].get("Tags", []),
            "profile": lambda n: iam.get_instance_profile(
                InstanceProfileName=n)["InstanceProfile"].get("Tags", []),
        }
        out = []
        for item in self._pages(method, key):
            labels = item.get("Tags")
            if labels is None:
                labels = self._call(f"iam tags of {item[name]}",
                                    partial(getters[read_tags], item[name]))
            if tags.as_dict(labels).get(tags.COURSE) == self.course_id:
                out.append(item[name])
        return out

    def _delete_user(self, iam: Any, user: str) -> None:
        for key in self._pages("list_access_keys", "AccessKeyMetadata", UserName=user):
            self._try(f"iam delete access key of {user}", partial(
                iam.delete_access_key, UserName=user, AccessKeyId=key["AccessKeyId"]))
        # NoSuchEntity (no console password) counts as gone
        self._try(f"iam delete login profile of {user}",
                  partial(iam.delete_login_profile, UserName=user))
        self._strip_policies("user", user)
        for group in self._pages("list_groups_for_user", "Groups", UserName=user):
            self._try(f"iam remove {user} from {group['GroupName']}", partial(
                iam.remove_user_from_group, UserName=user, GroupName=group["GroupName"]))
        if self._try(f"iam delete user {user}", partial(iam.delete_user, UserName=user)):
            self.report.count("IAM users")

    def buckets(self, delete: bool, delete_results: bool) -> None:
        s3 = self.aws.client("s3", "us-east-1")
        for name, labels in course_buckets(self.aws, self.course_id, self.sleep):
            holds = labels.get(RESULTS_TAG)
            if not delete or (holds and not delete_results):
                why = (f"holds {holds}: kept; deleting it takes --delete-buckets "
                       "--delete-results" if holds else "kept; add --delete-buckets to delete it")
                self.report.kept.append(f"bucket {name}: {why}")
                continue
            try:
                region = self._call(f"s3.GetBucketLocation {name}", partial(
                    _bucket_region, s3, name))
                client = self.aws.client("s3", region)
                versions = self._call(f"s3.ListObjectVersions {name}",
                                      partial(_versions, client, name))
            except AwsError as exc:
                self._failed(f"empty bucket {name}", exc)
                continue
            objects = 0
            for start in range(0, len(versions), 1000):  # delete_objects takes 1000 at most
                batch = versions[start:start + 1000]
                self._try(f"empty bucket {name}", partial(
                    client.delete_objects, Bucket=name, Delete={"Objects": batch}))
                objects += len(batch)
            if self._try(f"delete bucket {name}", partial(client.delete_bucket, Bucket=name)):
                self.report.count("buckets")
                self.sink.emit(LogLine(f"deleted bucket {name} ({objects} object(s))"))


def _versions(client: Any, name: str) -> list[dict[str, str]]:
    return [{"Key": v["Key"], "VersionId": v["VersionId"]}
            for page in client.get_paginator("list_object_versions").paginate(Bucket=name)
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]


def _bucket_region(s3: Any, name: str) -> str:
    return s3.get_bucket_location(Bucket=name).get("LocationConstraint") or "us-east-1"


def course_buckets(aws: Aws, course_id: str, sleep: Callable[[float], None] = time.sleep
                   ) -> list[tuple[str, dict[str, str]]]:
    s3 = aws.client("s3", "us-east-1")
    names = [b["Name"] for b in retrying("s3.ListBuckets", s3.list_buckets, sleep).get(
        "Buckets", [])]
    out = []
    for name in names:
        try:
            labels = tags.as_dict(retrying(f"s3.GetBucketTagging {name}", partial(
                s3.get_bucket_tagging, Bucket=name), sleep).get("TagSet"))
        except AwsError:
            continue  # no tags (NoSuchTagSet), or not ours to read: not labtui's
        if labels.get(tags.COURSE) == course_id:
            out.append((name, labels))
    return out


@dataclass(frozen=True)
class Blocker:
    """Something that keeps a subnet, group or VPC from going."""

    region: str
    kind: str
    id: str
    detail: str
    ours: bool
    action: Callable[[Teardown], None] | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.kind} {self.id} {self.detail}".strip()

    def remove(self, teardown: Teardown) -> None:
        if self.action is not None:
            self.action(teardown)


def blockers(aws: Aws, region: str, eni_filters: list[dict[str, Any]],
             course_id: str, keep: frozenset[str] = frozenset(),
             sleep: Callable[[float], None] = time.sleep) -> list[Blocker]:
    """What uses a subnet/group/VPC: its network interfaces and their owners."""
    ec2 = aws.client("ec2", region)
    out = []
    interfaces = retrying(f"ec2.DescribeNetworkInterfaces in {region}", partial(
        ec2.describe_network_interfaces, Filters=eni_filters), sleep)["NetworkInterfaces"]
    for eni in interfaces:
        eni_id = eni["NetworkInterfaceId"]
        owner = (eni.get("Attachment") or {}).get("InstanceId")
        if owner:
            labels = _instance_tags(ec2, owner, sleep)
            course = labels.get(tags.COURSE)
            ours = course == course_id and owner not in keep
            who = (f"course {course}" if course else "no labtui course") + (
                ", kept: its seat's work was not saved" if owner in keep else "")
            out.append(Blocker(region, "network interface", eni_id,
                               f"in use by instance {owner} ({who})", ours,
                               None))  # ours: terminating; wait for it
            continue
        if eni.get("Status") == "available":
            ours = tags.as_dict(eni.get("TagSet")).get(tags.COURSE) == course_id or \
                eni.get("RequesterManaged", False)
            out.append(Blocker(region, "network interface", eni_id, "detached", ours,
                               partial(_delete_eni, region, eni_id)))
        else:
            detail = eni.get("Description") or eni.get("InterfaceType") or "in use"
            out.append(Blocker(region, "network interface", eni_id, f"({detail})",
                               eni.get("RequesterManaged", False)))
    return out


def _instance_tags(ec2: Any, instance_id: str,
                   sleep: Callable[[float], None] = time.sleep) -> dict[str, str]:
    try:
        reply = retrying(f"ec2.DescribeInstances {instance_id}", partial(
            ec2.describe_instances, InstanceIds=[instance_id]), sleep)
    except AwsError as exc:
        if exc.code != "InvalidInstanceID.NotFound":
            raise  # not knowing whose it is must not make it somebody else's
        return {}
    for reservation in reply["Reservations"]:
        for instance in reservation["Instances"]:
            return tags.as_dict(instance.get("Tags"))
    return {}


def _delete_eni(region: str, eni_id: str, teardown: Teardown) -> None:
    ec2 = teardown.aws.client("ec2", region)
    teardown._try(f"{region} delete network interface {eni_id}",
                  partial(ec2.delete_network_interface, NetworkInterfaceId=eni_id))


def course_regions(aws: Aws, course_id: str, regions: Iterable[str], workers: int = 16,
                   sleep: Callable[[float], None] = time.sleep) -> list[str]:
    """The regions (of those given) where anything carries the course's tag: instances,
    spot requests, volumes, addresses, NAT gateways, VPCs, security groups, clusters, the
    key pair named for it. A region that could not be looked at (after the retries) is
    listed too: ``down`` tries it and says what failed, rather than skip it unseen."""
    from concurrent.futures import ThreadPoolExecutor

    def has_any(region: str) -> bool:
        try:
            return bool(region_leftovers(aws, course_id, region, sleep, first=True))
        except AwsError:
            return True

    listed = list(dict.fromkeys(regions))
    with ThreadPoolExecutor(max_workers=min(workers, max(1, len(listed)))) as pool:
        found = list(pool.map(has_any, listed))
    return [r for r, yes in zip(listed, found, strict=True) if yes]


def down(aws: Aws, course_id: str, regions: Sequence[str], sink: EventSink | None = None,
         sleep: Callable[[float], None] = time.sleep, attempts: int = 8, *,
         keep: Iterable[str] = (), delete_buckets: bool = False,
         delete_results: bool = False,
         wait_config: Mapping[str, int] | None = None,
         final_snapshot: bool = True) -> DownReport:
    job = Teardown(aws, course_id, sink or NullSink(), sleep, attempts, frozenset(keep),
                   wait_config=wait_config, final_snapshot=final_snapshot)
    for index, region in enumerate(regions):
        job.sink.emit(Progress("down regions", index, len(regions)))
        job.region(region)
    job.sink.emit(Progress("down regions", len(regions), len(regions)))
    for kind, step in (("IAM", job.iam),
                       ("buckets", partial(job.buckets, delete_buckets, delete_results))):
        try:
            step()
        except AwsError as exc:
            job._failed(kind, exc)
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(job.report.removed.items()))
    job.sink.emit(StepDone(f"down: removed {summary or 'nothing'}", ok=not job.report.failed,
                           detail="; ".join(job.report.failed)))
    return job.report


def leftovers(aws: Aws, course_id: str, regions: Sequence[str],
              sleep: Callable[[float], None] = time.sleep) -> list[Leftover]:
    """The verification pass: what of the course is still there, and why; a region that
    could not be looked at is one leftover saying so (never taken for an empty one)."""
    out: list[Leftover] = []
    for region in regions:
        try:
            out.extend(region_leftovers(aws, course_id, region, sleep))
        except AwsError as exc:
            out.append(Leftover(region, "region", region, f"could not be verified: {exc}"))
    try:
        out.extend(iam_leftovers(aws, course_id, sleep))
    except AwsError as exc:
        out.append(Leftover("global", "IAM", iam_path(course_id), f"could not be verified: {exc}"))
    return out


def iam_leftovers(aws: Aws, course_id: str,
                  sleep: Callable[[float], None] = time.sleep) -> list[Leftover]:
    """The course's student users and their policies still in IAM."""
    path = iam_path(course_id)

    def pages(method: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
        return retrying(f"verifying IAM: iam.{method}", lambda: list(
            aws.paginate("iam", "us-east-1", method, key, **kwargs)), sleep)
    return ([Leftover("global", "IAM user", u["UserName"], "exists")
             for u in pages("list_users", "Users", PathPrefix=path)]
            + [Leftover("global", "IAM role", r["RoleName"], "exists")
               for r in pages("list_roles", "Roles", PathPrefix=path)]
            + [Leftover("global", "instance profile", p["InstanceProfileName"], "exists")
               for p in pages("list_instance_profiles", "InstanceProfiles", PathPrefix=path)]
            + [Leftover("global", "IAM policy", p["PolicyName"], "exists")
               for p in pages("list_policies", "Policies", Scope="Local", PathPrefix=path)])


def region_leftovers(aws: Aws, course_id: str, region: str,
                     sleep: Callable[[float], None] = time.sleep, *,
                     first: bool = False) -> list[Leftover]:
    """What of the course ``region`` holds (``first``: stop at the first kind found);
    AwsError when a listing fails after the retries."""
    course = tags.course_filter(course_id)
    ec2 = aws.client("ec2", region)

    def pages(method: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
        return retrying(f"verifying {region}: ec2.{method}", lambda: list(
            aws.paginate("ec2", region, method, key, **kwargs)), sleep)

    def call(method: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
        return retrying(f"verifying {region}: ec2.{method}", partial(
            getattr(ec2, method), **kwargs), sleep)[key]

    def clusters() -> list[Leftover]:
        emr = aws.client("emr", region)
        found = []
        for c in retrying(f"verifying {region}: emr.ListClusters", lambda: list(aws.paginate(
                "emr", region, "list_clusters", "Clusters", ClusterStates=CLUSTER_LIVE)),
                sleep):
            cluster = retrying(f"verifying {region}: emr.DescribeCluster {c['Id']}", partial(
                emr.describe_cluster, ClusterId=c["Id"]), sleep)["Cluster"]
            arn = cluster.get("ClusterArn", "")
            if tags.as_dict(cluster.get("Tags")).get(tags.COURSE) == course_id and (
                    not arn or f":{region}:" in arn):
                found.append(Leftover(region, "cluster", c["Id"], c["Status"]["State"]))
        return found

    name = key_pair_name(course_id)
    kinds: list[Callable[[], list[Leftover]]] = [
        lambda: [Leftover(region, "instance", i["InstanceId"], i["State"]["Name"])
                 for r in pages("describe_instances", "Reservations", Filters=course + [
                     {"Name": "instance-state-name", "Values": LIVE}])
                 for i in r["Instances"]],
        lambda: [Leftover(region, "spot request", s["SpotInstanceRequestId"], s["State"])
                 for s in pages("describe_spot_instance_requests", "SpotInstanceRequests",
                                Filters=course + [{"Name": "state", "Values": SPOT_LIVE}])],
        lambda: [Leftover(region, "volume", v["VolumeId"], v["State"])
                 for v in pages("describe_volumes", "Volumes", Filters=course)],
        lambda: [Leftover(region, "address", a.get("AllocationId", ""), "allocated")
                 for a in call("describe_addresses", "Addresses", Filters=course)],
        lambda: [Leftover(region, "NAT gateway", g["NatGatewayId"], g["State"])
                 for g in pages("describe_nat_gateways", "NatGateways", Filter=course)
                 if g["State"] != "deleted"],
        lambda: [Leftover(region, "VPC", vpc["VpcId"], "exists")
                 for vpc in pages("describe_vpcs", "Vpcs", Filters=course)],
        lambda: [Leftover(region, "security group", g["GroupId"], "exists")
                 for g in pages("describe_security_groups", "SecurityGroups", Filters=course)],
        lambda: [Leftover(region, "key pair", name, "exists")
                 for _ in call("describe_key_pairs", "KeyPairs",
                               Filters=[{"Name": "key-name", "Values": [name]}])],
        clusters,
        lambda: [Leftover(region, f"boot {f.kind}", f.name, "exists")
                 for f in retrying(f"verifying {region}: boot topics and queues", partial(
                     bootevents.listed, aws, region, course_id), sleep)],
        lambda: [Leftover(region, "database", d["DBInstanceIdentifier"], d["DBInstanceStatus"])
                 for d in retrying(f"verifying {region}: rds.DescribeDBInstances", lambda: list(
                     aws.paginate("rds", region, "describe_db_instances", "DBInstances")), sleep)
                 if tags.as_dict(d.get("TagList")).get(tags.COURSE) == course_id],
    ]
    out: list[Leftover] = []
    for kind in kinds:
        out.extend(kind())
        if first and out:
            break
    return out
