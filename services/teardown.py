"""down: remove everything labtui created for a course, found by its tags, then prove it.

Region by region, in dependency order: EMR clusters (waited for), spot requests (cancelled
before their instances, or AWS relaunches persistent ones), instances (waited for; any that
did not reach terminated is reported, not counted), detached volumes, Elastic IPs, NAT
gateways (waited for), the network (subnets, route tables, internet gateway, VPC), security
groups, the key pair. Then the account-wide part: IAM users (keys, login profiles, policies,
groups), instance profiles and roles tagged with the course; buckets only when asked, and a
bucket holding results or students' work only when asked twice.

No DependencyViolation loops: when a subnet, group or VPC will not go, :func:`blockers` finds
what still uses it (network interfaces and what owns them, NAT gateways, VPC endpoints,
peering connections, instances of another course); the course's own are removed or waited
for, anything else stops the retries with a message that names it. Retries are bounded, with
backoff and an injectable sleep. Interrupted and run again, ``down`` finishes: every step
starts from what AWS still holds.

:func:`leftovers` is the verification pass: it lists what of the course is still there, and
why, or nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from labtui.errors import AwsError
from labtui.events import EventSink, LogLine, NullSink, Problem, Progress, StepDone
from labtui.services import tags
from labtui.services.aws import Aws, translate_errors
from labtui.services.keys import key_pair_name

LIVE = ["pending", "running", "stopping", "stopped", "shutting-down"]
CLUSTER_LIVE = ["STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING", "TERMINATING"]
RESULTS_TAG = "labtui:holds"   # "results" or "work": a bucket down keeps unless told twice


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

    # ------------------------------------------------------------------ helpers

    @property
    def _course(self) -> list[dict[str, Any]]:
        return tags.course_filter(self.course_id)

    def _try(self, what: str, call: Callable[[], Any]) -> bool:
        try:
            with translate_errors(what):
                call()
            return True
        except AwsError as exc:
            if exc.code in ("InvalidGroup.NotFound", "InvalidVpcID.NotFound",
                            "InvalidSubnetID.NotFound", "NoSuchEntity",
                            "InvalidInternetGatewayID.NotFound", "InvalidVolume.NotFound",
                            "InvalidAllocationID.NotFound", "InvalidRouteTableID.NotFound",
                            "NoSuchBucket"):
                return True  # gone already (a second run, or another laptop, got there first)
            self.report.failed.append(f"{what}: {exc.code or exc}")
            self.sink.emit(Problem(f"{what} failed: {exc}"))
            return False

    def _list(self, region: str, method: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
        with translate_errors(f"ec2.{method} in {region}"):
            return list(self.aws.paginate("ec2", region, method, key, **kwargs))

    def _progress(self, kind: str, region: str, done: int, total: int) -> None:
        self.sink.emit(Progress(f"down {kind} {region}", done, total))

    # ------------------------------------------------------------------ per region

    def region(self, region: str) -> None:
        steps: list[tuple[str, Callable[[], None]]] = [
            ("clusters", partial(self.clusters, region)),
            ("machines", partial(self.instances, region)),
            ("volumes", partial(self.volumes, region)),
            ("addresses", partial(self.addresses, region)),
            ("NAT gateways", partial(self.nat_gateways, region)),
            ("network", partial(self.networks, region)),
            ("security groups", partial(self.security_groups, region)),
            ("key pair", partial(self.key_pair, region)),
        ]
        for index, (kind, step) in enumerate(steps):
            before = dict(self.report.removed)
            self.sink.emit(Progress(f"down {region}", index, len(steps)))
            step()
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
        with translate_errors(f"emr.ListClusters in {region}"):
            listed = list(self.aws.paginate("emr", region, "list_clusters", "Clusters",
                                            ClusterStates=CLUSTER_LIVE))
        for summary in listed:
            with translate_errors(f"emr.DescribeCluster {summary['Id']}"):
                cluster = emr.describe_cluster(ClusterId=summary["Id"])["Cluster"]
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
                self._try(f"{region} wait for cluster {cid}", partial(
                    emr.get_waiter("cluster_terminated").wait, ClusterId=cid,
                    WaiterConfig={"Delay": 15, "MaxAttempts": 80}))
            self.report.count("clusters", len(ids))
            self.sink.emit(LogLine(f"{region}: terminated {len(ids)} cluster(s)"))

    def instances(self, region: str) -> None:
        ec2 = self.aws.client("ec2", region)
        spot = [s["SpotInstanceRequestId"] for s in self._list(
            region, "describe_spot_instance_requests", "SpotInstanceRequests",
            Filters=self._course + [{"Name": "state", "Values": ["open", "active",
                                                                  "disabled"]}])]
        if spot and self._try(f"{region} cancel {len(spot)} spot request(s)",
                              lambda: ec2.cancel_spot_instance_requests(
                                  SpotInstanceRequestIds=spot)):
            self.report.count("spot requests", len(spot))
        found = [i for r in self._list(region, "describe_instances", "Reservations",
                                       Filters=self._course + [
                                           {"Name": "instance-state-name", "Values": LIVE}])
                 for i in r["Instances"]]
        kept = [i["InstanceId"] for i in found if i["InstanceId"] in self.keep]
        self.report.kept.extend(f"{region} instance {iid}: its seat's work was not saved"
                                for iid in kept)
        ids = [i["InstanceId"] for i in found if i["InstanceId"] not in self.keep]
        if not ids:
            return
        self._progress("instances", region, 0, len(ids))
        if not self._try(f"{region} terminate {len(ids)} instance(s)",
                         lambda: ec2.terminate_instances(InstanceIds=ids)):
            return
        self._try(f"{region} wait for termination", lambda: ec2.get_waiter(
            "instance_terminated").wait(InstanceIds=ids,
                                        WaiterConfig={"Delay": 5, "MaxAttempts": 120}))
        states = {i["InstanceId"]: i["State"]["Name"] for r in self._list(
            region, "describe_instances", "Reservations", InstanceIds=ids)
            for i in r["Instances"]}
        gone = [iid for iid in ids if states.get(iid, "terminated") == "terminated"]
        for iid in ids:
            if iid not in gone:
                self.report.failed.append(f"{region} instance {iid}: still "
                                          f"{states.get(iid)} after the wait")
        self.report.count("instances", len(gone))
        self._progress("instances", region, len(gone), len(ids))
        self.sink.emit(LogLine(f"{region}: terminated {len(gone)} instance(s)"))

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
        with translate_errors(f"ec2.DescribeAddresses in {region}"):
            found = ec2.describe_addresses(Filters=self._course)["Addresses"]
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
            self._try(f"{region} wait for NAT gateways", lambda: ec2.get_waiter(
                "nat_gateway_deleted").wait(NatGatewayIds=ids,
                                            WaiterConfig={"Delay": 10, "MaxAttempts": 60}))

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
            if self._until_free(region, f"internet gateway {gid}", partial(
                    ec2.detach_internet_gateway, InternetGatewayId=gid, VpcId=vpc_id), in_vpc) \
                    and self._try(f"{region} delete internet gateway {gid}",
                                  partial(ec2.delete_internet_gateway, InternetGatewayId=gid)):
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
        with translate_errors(f"ec2.DescribeKeyPairs in {region}"):
            pairs = ec2.describe_key_pairs(Filters=[{"Name": "key-name",
                                                     "Values": [name]}])["KeyPairs"]
        if pairs and self._try(f"{region} delete key pair {name}",
                               lambda: ec2.delete_key_pair(KeyName=name)):
            self.report.count("key pairs")

    # ------------------------------------------------------------------ DependencyViolation

    def _until_free(self, region: str, what: str, call: Callable[[], Any],
                    eni_filters: list[dict[str, Any]]) -> bool:
        """Delete, and on DependencyViolation find what depends on it: the course's own
        dependents are removed or waited for; anything else stops the retries, named."""
        for attempt in range(self.attempts):
            try:
                with translate_errors(f"{region} delete {what}"):
                    call()
                return True
            except AwsError as exc:
                if exc.code not in ("DependencyViolation", "InvalidGroup.InUse",
                                    "ResourceInUse"):
                    return self._try(f"{region} delete {what}", partial(_raise, exc))
                found = blockers(self.aws, region, eni_filters, self.course_id, self.keep)
                foreign = [b for b in found if not b.ours]
                if foreign or attempt == self.attempts - 1:
                    names = "; ".join(str(b) for b in (foreign or found)) or str(exc)
                    self.report.failed.append(f"{region} delete {what}: "
                                              f"DependencyViolation: {names}")
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
            with translate_errors(f"iam.GetInstanceProfile {profile}"):
                roles = iam.get_instance_profile(InstanceProfileName=profile)[
                    "InstanceProfile"]["Roles"]
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
        with translate_errors(f"iam.{method}"):
            return list(self.aws.paginate("iam", "us-east-1", method, key, **kwargs))

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
                with translate_errors(f"iam tags of {item[name]}"):
                    labels = getters[read_tags](item[name])
            if tags.as_dict(labels).get(tags.COURSE) == self.course_id:
                out.append(item[name])
        return out

    def _delete_user(self, iam: Any, user: str) -> None:
        for key in self._pages("list_access_keys", "AccessKeyMetadata", UserName=user):
            self._try(f"iam delete access key of {user}", partial(
                iam.delete_access_key, UserName=user, AccessKeyId=key["AccessKeyId"]))
        try:
            with translate_errors(f"iam.GetLoginProfile {user}"):
                iam.get_login_profile(UserName=user)
            self._try(f"iam delete login profile of {user}",
                      partial(iam.delete_login_profile, UserName=user))
        except AwsError:
            pass  # no console password
        self._strip_policies("user", user)
        for group in self._pages("list_groups_for_user", "Groups", UserName=user):
            self._try(f"iam remove {user} from {group['GroupName']}", partial(
                iam.remove_user_from_group, UserName=user, GroupName=group["GroupName"]))
        if self._try(f"iam delete user {user}", partial(iam.delete_user, UserName=user)):
            self.report.count("IAM users")

    def buckets(self, delete: bool, delete_results: bool) -> None:
        s3 = self.aws.client("s3", "us-east-1")
        for name, labels in course_buckets(self.aws, self.course_id):
            holds = labels.get(RESULTS_TAG)
            if not delete or (holds and not delete_results):
                why = (f"holds {holds}: kept; deleting it takes --delete-buckets "
                       "--delete-results" if holds else "kept; add --delete-buckets to delete it")
                self.report.kept.append(f"bucket {name}: {why}")
                continue
            region = _bucket_region(s3, name)
            client = self.aws.client("s3", region)
            objects = 0
            for page in client.get_paginator("list_object_versions").paginate(Bucket=name):
                batch = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                         for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
                if batch:
                    self._try(f"empty bucket {name}", partial(
                        client.delete_objects, Bucket=name, Delete={"Objects": batch}))
                    objects += len(batch)
            if self._try(f"delete bucket {name}", partial(client.delete_bucket, Bucket=name)):
                self.report.count("buckets")
                self.sink.emit(LogLine(f"deleted bucket {name} ({objects} object(s))"))


def _raise(exc: Exception) -> None:
    raise exc


def _bucket_region(s3: Any, name: str) -> str:
    with translate_errors(f"s3.GetBucketLocation {name}"):
        where = s3.get_bucket_location(Bucket=name).get("LocationConstraint")
    return where or "us-east-1"


def course_buckets(aws: Aws, course_id: str) -> list[tuple[str, dict[str, str]]]:
    s3 = aws.client("s3", "us-east-1")
    with translate_errors("s3.ListBuckets"):
        names = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    out = []
    for name in names:
        try:
            with translate_errors(f"s3.GetBucketTagging {name}"):
                labels = tags.as_dict(s3.get_bucket_tagging(Bucket=name).get("TagSet"))
        except AwsError:
            continue  # no tags: not labtui's
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
             course_id: str, keep: frozenset[str] = frozenset()) -> list[Blocker]:
    """What uses a subnet/group/VPC: its network interfaces and their owners."""
    ec2 = aws.client("ec2", region)
    out = []
    with translate_errors(f"ec2.DescribeNetworkInterfaces in {region}"):
        interfaces = ec2.describe_network_interfaces(Filters=eni_filters)["NetworkInterfaces"]
    for eni in interfaces:
        eni_id = eni["NetworkInterfaceId"]
        owner = (eni.get("Attachment") or {}).get("InstanceId")
        if owner:
            labels = _instance_tags(ec2, owner)
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


def _instance_tags(ec2: Any, instance_id: str) -> dict[str, str]:
    try:
        with translate_errors(f"ec2.DescribeInstances {instance_id}"):
            reply = ec2.describe_instances(InstanceIds=[instance_id])
    except AwsError:
        return {}
    for reservation in reply["Reservations"]:
        for instance in reservation["Instances"]:
            return tags.as_dict(instance.get("Tags"))
    return {}


def _delete_eni(region: str, eni_id: str, teardown: Teardown) -> None:
    ec2 = teardown.aws.client("ec2", region)
    teardown._try(f"{region} delete network interface {eni_id}",
                  partial(ec2.delete_network_interface, NetworkInterfaceId=eni_id))


def course_regions(aws: Aws, course_id: str, regions: Iterable[str],
                   workers: int = 16) -> list[str]:
    """The regions (of those given) where anything carries the course's tag: instances,
    volumes, VPCs, spot requests, key pairs named for it."""
    from concurrent.futures import ThreadPoolExecutor

    course = tags.course_filter(course_id)

    def has_any(region: str) -> bool:
        ec2 = aws.client("ec2", region)
        try:
            with translate_errors(f"looking for {course_id} in {region}"):
                return bool(
                    ec2.describe_instances(Filters=course + [{"Name": "instance-state-name",
                                                              "Values": LIVE}],
                                           MaxResults=5)["Reservations"]
                    or ec2.describe_vpcs(Filters=course)["Vpcs"]
                    or ec2.describe_volumes(Filters=course, MaxResults=5)["Volumes"]
                    or ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [
                        key_pair_name(course_id)]}])["KeyPairs"])
        except AwsError:
            return False

    listed = list(dict.fromkeys(regions))
    with ThreadPoolExecutor(max_workers=min(workers, max(1, len(listed)))) as pool:
        found = list(pool.map(has_any, listed))
    return [r for r, yes in zip(listed, found, strict=True) if yes]


def down(aws: Aws, course_id: str, regions: Sequence[str], sink: EventSink | None = None,
         sleep: Callable[[float], None] = time.sleep, attempts: int = 8, *,
         keep: Iterable[str] = (), delete_buckets: bool = False,
         delete_results: bool = False) -> DownReport:
    job = Teardown(aws, course_id, sink or NullSink(), sleep, attempts, frozenset(keep))
    for index, region in enumerate(regions):
        job.sink.emit(Progress("down regions", index, len(regions)))
        job.region(region)
    job.sink.emit(Progress("down regions", len(regions), len(regions)))
    job.iam()
    job.buckets(delete_buckets, delete_results)
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(job.report.removed.items()))
    job.sink.emit(StepDone(f"down: removed {summary or 'nothing'}", ok=not job.report.failed,
                           detail="; ".join(job.report.failed)))
    return job.report


def leftovers(aws: Aws, course_id: str, regions: Sequence[str]) -> list[Leftover]:
    """The verification pass: what of the course is still there, and why."""
    course = tags.course_filter(course_id)
    out: list[Leftover] = []
    for region in regions:
        ec2 = aws.client("ec2", region)
        with translate_errors(f"verifying {region}"):
            for reservation in aws.paginate("ec2", region, "describe_instances",
                                            "Reservations", Filters=course + [
                                                {"Name": "instance-state-name",
                                                 "Values": LIVE}]):
                for i in reservation["Instances"]:
                    out.append(Leftover(region, "instance", i["InstanceId"],
                                        i["State"]["Name"]))
            for s in ec2.describe_spot_instance_requests(Filters=course + [
                    {"Name": "state", "Values": ["open", "active", "disabled"]}])[
                    "SpotInstanceRequests"]:
                out.append(Leftover(region, "spot request", s["SpotInstanceRequestId"],
                                    s["State"]))
            for v in ec2.describe_volumes(Filters=course)["Volumes"]:
                out.append(Leftover(region, "volume", v["VolumeId"], v["State"]))
            for a in ec2.describe_addresses(Filters=course)["Addresses"]:
                out.append(Leftover(region, "address", a.get("AllocationId", ""),
                                    "allocated"))
            for g in ec2.describe_nat_gateways(Filter=course)["NatGateways"]:
                if g["State"] != "deleted":
                    out.append(Leftover(region, "NAT gateway", g["NatGatewayId"], g["State"]))
            for vpc in ec2.describe_vpcs(Filters=course)["Vpcs"]:
                out.append(Leftover(region, "VPC", vpc["VpcId"], "exists"))
            for g in ec2.describe_security_groups(Filters=course)["SecurityGroups"]:
                out.append(Leftover(region, "security group", g["GroupId"], "exists"))
            name = key_pair_name(course_id)
            for _pair in ec2.describe_key_pairs(Filters=[{"Name": "key-name",
                                                          "Values": [name]}])["KeyPairs"]:
                out.append(Leftover(region, "key pair", name, "exists"))
            emr = aws.client("emr", region)
            for c in emr.list_clusters(ClusterStates=CLUSTER_LIVE)["Clusters"]:
                cluster = emr.describe_cluster(ClusterId=c["Id"])["Cluster"]
                arn = cluster.get("ClusterArn", "")
                if tags.as_dict(cluster.get("Tags")).get(tags.COURSE) == course_id and (
                        not arn or f":{region}:" in arn):
                    out.append(Leftover(region, "cluster", c["Id"], c["Status"]["State"]))
    return out
