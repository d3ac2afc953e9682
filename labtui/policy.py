"""Students' IAM policies: written from the course, decided by a real IAM evaluator.

``seat_policy`` writes the identity policy of a seat's IAM user from the course's
``[access] permissions``: read the data bucket; read and write the seat's own prefix of the
scratch bucket; submit steps to, describe and read the logs of the EMR clusters tagged with
the seat (attribute-based: ``elasticmapreduce:ResourceTag/labtui:seat``); start and stop its
own machine (``aws:ResourceTag/labtui:seat``) when the course allows it; and an explicit
Deny on allocating anything, on IAM writes and on reading machines' user-data.

``decide`` evaluates identity policies the way IAM does (an explicit Deny wins, then an
Allow, else the implicit deny) with PMapper's local policy simulation (principalmapper):
wildcards, NotAction/NotResource, every condition operator, policy variables. The same
function answers ``labtui access`` (the table of what a seat may do) and the sandbox's
authorization of requests signed with a student's key.
"""

from __future__ import annotations

import collections
import collections.abc
import re
from dataclasses import dataclass
from typing import Any

from labtui.course import Course, Seat

SHARED_USER = "students"      # the one identity of access.identity = "shared"
ACCOUNT = "*"                 # in ARNs when the account is not known (labtui access)

# What a student must never do, whatever the course allows (explicit Deny).
DENIED = (
    "ec2:RunInstances", "ec2:RequestSpotInstances", "ec2:RequestSpotFleet", "ec2:CreateFleet",
    "ec2:ModifyInstanceAttribute", "ec2:DescribeInstanceAttribute",
    "elasticmapreduce:RunJobFlow",
    "iam:Add*", "iam:Attach*", "iam:Change*", "iam:Create*", "iam:Deactivate*",
    "iam:Delete*", "iam:Detach*", "iam:Enable*", "iam:PassRole", "iam:Put*", "iam:Remove*",
    "iam:Reset*", "iam:Set*", "iam:Tag*", "iam:Untag*", "iam:Update*", "iam:Upload*",
)
STEP_ACTIONS = ("elasticmapreduce:AddJobFlowSteps", "elasticmapreduce:CancelSteps")
VIEW_ACTIONS = (
    "elasticmapreduce:DescribeCluster", "elasticmapreduce:DescribeStep",
    "elasticmapreduce:ListSteps", "elasticmapreduce:ListInstanceGroups",
    "elasticmapreduce:ListInstances", "elasticmapreduce:ListBootstrapActions",
    "elasticmapreduce:ListInstanceFleets",
)
SCRATCH_ACTIONS = ("s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                   "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts")


def _compat() -> None:
    """principalmapper 1.1.5 imports Mapping from ``collections``, where Python 3.10
    removed the aliases of ``collections.abc``: give them back before importing it."""
    for name in ("Mapping", "MutableMapping"):
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))


def shared(course: Course) -> bool:
    """Whether the class shares one identity (``[access] identity = "shared"``)."""
    return course.access is not None and course.access.identity == "shared"


def identity_of(course: Course, seat: Seat | str) -> str:
    """The name part of the seat's IAM user (``students`` for a shared identity)."""
    if shared(course):
        return SHARED_USER
    return seat if isinstance(seat, str) else seat.id


def user_name(course: Course, seat: Seat | str) -> str:
    return f"labtui-{course.id}-{identity_of(course, seat)}"


def uses_profiles(course: Course) -> bool:
    """Whether seats get an instance profile (a role) instead of an IAM user's keys."""
    access = course.access
    return bool(access and access.users and access.credentials == "instance-profile")


def profile_name(course: Course, seat: Seat | str) -> str | None:
    """The instance profile (and role) of the seat's machine, when the course uses them."""
    return user_name(course, seat) if uses_profiles(course) else None


def iam_path(course_id: str) -> str:
    """The IAM path of a course's student users and their policies."""
    return f"/labtui/{course_id}/"


def user_path(course: Course) -> str:
    return iam_path(course.id)


def _statement(sid: str, actions: tuple[str, ...] | list[str], resources: list[str] | str,
               condition: dict[str, Any] | None = None, effect: str = "Allow") -> dict[str, Any]:
    out: dict[str, Any] = {"Sid": sid, "Effect": effect, "Action": list(actions),
                           "Resource": resources}
    if condition:
        out["Condition"] = condition
    return out


def _log_place(course: Course, key: str) -> tuple[str, str] | None:
    from labtui.services.clusters import log_uri

    uri = log_uri(course, key)
    if not uri or not uri.startswith("s3://"):
        return None
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix


def seat_policy(course: Course, seat: Seat | str, account: str = ACCOUNT) -> dict[str, Any]:
    """The identity policy of the seat's IAM user (of every seat's, when shared)."""
    access = course.access
    granted = set(access.permissions if access else ())
    one = shared(course)
    seat_id = seat if isinstance(seat, str) else seat.id
    seats = course.seats if one else (course.seat(seat_id),)
    storage = course.storage
    out: list[dict[str, Any]] = []
    if "read-data" in granted and storage and storage.data_bucket:
        data = storage.data_bucket
        out.append(_statement("ReadCourseData", ["s3:GetObject"], f"arn:aws:s3:::{data}/*"))
        out.append(_statement("ListCourseData", ["s3:ListBucket", "s3:GetBucketLocation"],
                              f"arn:aws:s3:::{data}"))
    if "write-scratch" in granted and storage and storage.scratch_bucket:
        scratch = storage.scratch_bucket
        prefixes = ["*"] if one else [seat_id]
        out.append(_statement("OwnScratch", SCRATCH_ACTIONS,
                              [f"arn:aws:s3:::{scratch}/{p}/*" for p in prefixes]))
        listing: dict[str, Any] = {} if one else {"StringLike": {"s3:prefix": [
            f"{seat_id}/*", f"{seat_id}/", seat_id]}}
        out.append(_statement("ListOwnScratch", ["s3:ListBucket"],
                              f"arn:aws:s3:::{scratch}", listing or None))
        out.append(_statement("LocateScratch", ["s3:GetBucketLocation"],
                              f"arn:aws:s3:::{scratch}"))
    keys = sorted({k for s in seats for k in course.clusters_of_seat(s)})
    if course.clusters is not None and keys and granted & {"submit-steps", "view-clusters"}:
        cluster_arn = f"arn:aws:elasticmapreduce:*:{account}:cluster/*"
        tagged = {"StringEquals": {"elasticmapreduce:ResourceTag/labtui:course": course.id}}
        if not one:
            tagged["StringEquals"]["elasticmapreduce:ResourceTag/labtui:seat"] = keys
        actions = list(VIEW_ACTIONS)
        if "submit-steps" in granted:
            actions = list(STEP_ACTIONS) + actions
        out.append(_statement("OwnCluster", actions, cluster_arn, tagged))
        # ListClusters has no resource-level permission: AWS needs it on "*"
        out.append(_statement("FindOwnCluster", ["elasticmapreduce:ListClusters"], "*"))
        places = [p for p in (_log_place(course, k) for k in keys) if p]
        if places:
            out.append(_statement("OwnClusterLogs", ["s3:GetObject"], [
                f"arn:aws:s3:::{b}/{p}*" for b, p in places]))
            for bucket in sorted({b for b, _ in places}):
                out.append(_statement(
                    f"ListOwnClusterLogs{len(out)}", ["s3:ListBucket"], f"arn:aws:s3:::{bucket}",
                    {"StringLike": {"s3:prefix": [f"{p}*" for b, p in places if b == bucket]}}))
    if "start-stop-own" in granted and course.machines is not None:
        condition = {"StringEquals": {"aws:ResourceTag/labtui:course": course.id}}
        if not one:
            condition["StringEquals"]["aws:ResourceTag/labtui:seat"] = seat_id
        out.append(_statement("StartStopOwnMachine", ["ec2:StartInstances", "ec2:StopInstances"],
                              f"arn:aws:ec2:*:{account}:instance/*", condition))
        out.append(_statement("SeeMachines", ["ec2:DescribeInstances",
                                              "ec2:DescribeInstanceStatus"], "*"))
    out.append(_statement("NeverAllocateOrChangeIdentities", DENIED, "*", effect="Deny"))
    return {"Version": "2012-10-17", "Statement": out}


# A teaching assistant reads the course as the read-only console does, and changes nothing.
TA_READS = {
    "SeeMachinesAndNetwork": ("ec2:Describe*", "ec2:GetConsoleOutput"),
    "SeeQuotas": ("servicequotas:GetServiceQuota", "servicequotas:GetAWSDefaultServiceQuota",
                  "servicequotas:ListServiceQuotas", "servicequotas:ListAWSDefaultServiceQuotas",
                  "servicequotas:ListRequestedServiceQuotaChangeHistory",
                  "servicequotas:ListRequestedServiceQuotaChangeHistoryByQuota"),
    "SeePrices": ("pricing:GetProducts", "pricing:DescribeServices",
                  "pricing:GetAttributeValues"),
    "SeeAlarmsAndBudget": ("cloudwatch:DescribeAlarms", "cloudwatch:GetMetricData",
                           "cloudwatch:GetMetricStatistics", "cloudwatch:ListMetrics",
                           "budgets:ViewBudget", "sns:ListTopics", "sns:GetTopicAttributes",
                           "sns:ListSubscriptionsByTopic"),
    "SeeDatabase": ("rds:DescribeDBInstances", "rds:DescribeDBSnapshots",
                    "rds:DescribeDBSubnetGroups", "rds:DescribeDBParameterGroups",
                    "rds:DescribeDBParameters", "rds:ListTagsForResource"),
    "FindClusters": ("elasticmapreduce:ListClusters", "elasticmapreduce:ListReleaseLabels",
                     "elasticmapreduce:DescribeReleaseLabel"),
    "ListIdentitiesAndBuckets": ("iam:ListUsers", "iam:ListRoles", "iam:ListPolicies",
                                 "iam:ListInstanceProfiles", "s3:ListAllMyBuckets"),
    "WhoAmI": ("sts:GetCallerIdentity",),
}
CLUSTER_READS = ("elasticmapreduce:Describe*", "elasticmapreduce:List*",
                 "elasticmapreduce:View*")
IDENTITY_READS = ("iam:GetUser", "iam:ListUserTags", "iam:ListAttachedUserPolicies",
                  "iam:ListUserPolicies", "iam:GetRole", "iam:ListAttachedRolePolicies",
                  "iam:ListRolePolicies", "iam:GetInstanceProfile", "iam:GetPolicy",
                  "iam:GetPolicyVersion", "iam:ListPolicyVersions")
# Whatever a policy above might allow, a teaching assistant never changes anything, never
# reads a machine's user-data (its host key) and never gets anyone's credentials.
TA_DENIED = (
    "ec2:Run*", "ec2:Terminate*", "ec2:Stop*", "ec2:Start*", "ec2:Reboot*", "ec2:Create*",
    "ec2:Delete*", "ec2:Modify*", "ec2:Request*", "ec2:Cancel*", "ec2:Associate*",
    "ec2:Disassociate*", "ec2:Attach*", "ec2:Detach*", "ec2:Authorize*", "ec2:Revoke*",
    "ec2:Allocate*", "ec2:Release*", "ec2:Replace*", "ec2:Import*", "ec2:Send*",
    "ec2:DescribeInstanceAttribute", "ec2:GetPasswordData",
    "elasticmapreduce:RunJobFlow", "elasticmapreduce:AddJobFlowSteps",
    "elasticmapreduce:CancelSteps", "elasticmapreduce:TerminateJobFlows",
    "elasticmapreduce:Add*", "elasticmapreduce:Create*", "elasticmapreduce:Delete*",
    "elasticmapreduce:Modify*", "elasticmapreduce:Put*", "elasticmapreduce:Remove*",
    "elasticmapreduce:Set*", "elasticmapreduce:Start*", "elasticmapreduce:Stop*",
    "elasticmapreduce:Update*", "elasticmapreduce:GetClusterSessionCredentials",
    "s3:Put*", "s3:Delete*", "s3:Abort*", "s3:Create*", "s3:Restore*", "s3:Replicate*",
    *DENIED[DENIED.index("iam:Add*"):],
    "rds:Add*", "rds:Create*", "rds:Delete*", "rds:Modify*", "rds:Reboot*", "rds:Start*",
    "rds:Stop*", "rds:Restore*", "rds:Remove*", "rds:Reset*", "rds:Promote*",
    "rds:Failover*", "rds:Copy*",
    "ssm:SendCommand", "ssm:StartSession", "ssm:Put*", "ssm:Delete*",
    "ec2-instance-connect:*", "sts:AssumeRole*", "sts:GetFederationToken",
    "cloudwatch:Put*", "cloudwatch:Delete*", "cloudwatch:Set*", "cloudwatch:Enable*",
    "cloudwatch:Disable*", "sns:Publish", "sns:Subscribe", "sns:Unsubscribe", "sns:Create*",
    "sns:Delete*", "sns:Set*", "budgets:Create*", "budgets:Delete*", "budgets:Modify*",
    "budgets:Update*", "budgets:Execute*", "servicequotas:Request*", "servicequotas:Put*",
    "servicequotas:Delete*", "servicequotas:Associate*", "servicequotas:Disassociate*",
    "ses:Send*",
)
TA_NAME = re.compile(r"[A-Za-z0-9_-]+")


def ta_user_name(course_id: str, name: str) -> str:
    """The IAM user (and policy) of a teaching assistant: ``labtui-<course>-ta-<NAME>``."""
    return f"labtui-{course_id}-ta-{name}"


def course_buckets(course: Course) -> list[str]:
    """Every bucket of the course: data, scratch, the clusters' (scripts, logs)."""
    from labtui.services.clusters import bucket_of

    storage = course.storage
    names = [storage.data_bucket if storage else None,
             storage.scratch_bucket if storage else None]
    if course.clusters is not None:
        names.append(bucket_of(course))
        names += [p[0] for p in (_log_place(course, k) for k in course.cluster_units) if p]
    return sorted({n for n in names if n})


def ta_policy(course: Course, account: str = ACCOUNT) -> dict[str, Any]:
    """The identity policy of a teaching assistant: read what the read-only console reads
    (machines, network, quotas, prices, alarms, budget, the database's state, the course's
    clusters with their steps and logs, its buckets and identities) and an explicit Deny on
    every change. The pipeline's connection (``s3://SCRATCH/labtui/``) stays unread."""
    out = [_statement(sid, actions, "*") for sid, actions in TA_READS.items()]
    out.append(_statement("SeeCourseClusters", CLUSTER_READS,
                          f"arn:aws:elasticmapreduce:*:{account}:cluster/*",
                          {"StringEquals": {
                              "elasticmapreduce:ResourceTag/labtui:course": course.id}}))
    buckets = course_buckets(course)
    if buckets:
        out.append(_statement("ReadCourseBuckets", ["s3:GetObject"],
                              [f"arn:aws:s3:::{b}/*" for b in buckets]))
        out.append(_statement("ListCourseBuckets", ["s3:ListBucket", "s3:GetBucketLocation",
                                                    "s3:GetBucketTagging"],
                              [f"arn:aws:s3:::{b}" for b in buckets]))
    prefix = f"labtui-{course.id}-"
    out.append(_statement("SeeCourseIdentities", IDENTITY_READS, [
        f"arn:aws:iam::{account}:user/*{prefix}*", f"arn:aws:iam::{account}:role/*{prefix}*",
        f"arn:aws:iam::{account}:instance-profile/*{prefix}*",
        f"arn:aws:iam::{account}:policy{iam_path(course.id)}*"]))
    out.append(_statement("NeverChangeAnything", TA_DENIED, "*", effect="Deny"))
    scratch = course.storage.scratch_bucket if course.storage else None
    if scratch:
        out.append(_statement("NeverReadThePipelinesConnection", ["s3:GetObject"],
                              f"arn:aws:s3:::{scratch}/labtui/*", effect="Deny"))
    return {"Version": "2012-10-17", "Statement": out}


# ---------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Decision:
    allowed: bool
    explicit_deny: bool = False

    @property
    def word(self) -> str:
        return "allowed" if self.allowed else "denied"


def decide(principal_arn: str, policies: list[dict[str, Any]], action: str, resource: str,
           context: dict[str, Any] | None = None, tags: dict[str, str] | None = None, *,
           resource_policy: dict[str, Any] | None = None, resource_owner: str | None = None
           ) -> Decision:
    """Whether IAM allows ``action`` on ``resource`` to a principal holding ``policies``
    (identity policies: inline and attached), with ``context`` the request's condition
    keys (e.g. ``elasticmapreduce:ResourceTag/labtui:seat``, ``s3:prefix``), and the
    resource's own policy (an SNS topic's, a queue's) when given, owned by the account
    ``resource_owner``."""
    _compat()
    from principalmapper.common import Node, Policy
    from principalmapper.querying import local_policy_simulation as lps
    from principalmapper.querying import query_interface
    from principalmapper.util.case_insensitive_dict import CaseInsensitiveDict

    docs = [Policy(f"{principal_arn}#policy{i}", f"policy{i}", doc)
            for i, doc in enumerate(policies)]
    # a role's node needs a trust policy; which principals may assume it is not asked here
    trust = {"Version": "2012-10-17", "Statement": []} if ":role/" in principal_arn else None
    node = Node(principal_arn, "AIDALABTUISANDBOX", docs, [], trust, None, 1, False, False,
                None, False, dict(tags or {}))
    keys = CaseInsensitiveDict(dict(context or {}))
    allowed = query_interface.local_check_authorization_full(
        node, action, resource, keys, resource_policy,
        resource_owner if resource_policy is not None else None)
    if allowed:
        return Decision(True)
    full = CaseInsensitiveDict({**query_interface._infer_condition_keys(node, keys), **keys})
    denied = any(lps.policy_has_matching_statement(p, "Deny", action, resource, full)
                 for p in docs)
    if resource_policy is not None and not denied:
        denied = lps.resource_policy_authorization(
            node, resource_owner or "", resource_policy, action, resource, full) == \
            lps.ResourcePolicyEvalResult.DENY_MATCH
    return Decision(False, denied)


# ---------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Case:
    """One line of a seat's permissions table: an action on a resource, and IAM's answer."""

    what: str
    action: str
    resource: str
    context: dict[str, Any]
    decision: Decision

    def to_json(self) -> dict[str, Any]:
        return {"what": self.what, "action": self.action, "resource": self.resource,
                "allowed": self.decision.allowed,
                "explicit_deny": self.decision.explicit_deny}


def _cases(course: Course, seat_id: str, account: str) -> list[tuple[str, str, str, dict]]:
    """The questions a seat's table answers: its own things, a classmate's, allocation."""
    other = next((s.id for s in course.seats if s.id != seat_id), None)
    storage = course.storage
    out: list[tuple[str, str, str, dict]] = []
    cluster = f"arn:aws:elasticmapreduce:{course.regions[0]}:{account}:cluster/j-EXAMPLE"
    if course.clusters is not None:
        own = course.clusters_of_seat(course.seat(seat_id))
        for key in own[:1]:
            tag = {"elasticmapreduce:ResourceTag/labtui:seat": key,
                   "elasticmapreduce:ResourceTag/labtui:course": course.id}
            out.append((f"add a step to its own cluster ({key})",
                        "elasticmapreduce:AddJobFlowSteps", cluster, tag))
            out.append((f"describe its own cluster ({key})",
                        "elasticmapreduce:DescribeCluster", cluster, tag))
        others = [k for s in course.seats if s.id != seat_id
                  for k in course.clusters_of_seat(s) if k not in own]
        if others:
            tag = {"elasticmapreduce:ResourceTag/labtui:seat": others[0],
                   "elasticmapreduce:ResourceTag/labtui:course": course.id}
            out.append((f"add a step to a classmate's cluster ({others[0]})",
                        "elasticmapreduce:AddJobFlowSteps", cluster, tag))
            out.append((f"terminate a classmate's cluster ({others[0]})",
                        "elasticmapreduce:TerminateJobFlows", cluster, tag))
        out.append(("list the clusters", "elasticmapreduce:ListClusters", "*", {}))
    out.append(("start a cluster of its own", "elasticmapreduce:RunJobFlow", "*", {}))
    instance = f"arn:aws:ec2:{course.regions[0]}:{account}:instance/i-EXAMPLE"
    out.append(("launch a machine", "ec2:RunInstances", instance, {}))
    out.append(("request a spot machine", "ec2:RequestSpotInstances", "*", {}))
    if course.machines is not None:
        mine = {"aws:ResourceTag/labtui:seat": seat_id,
                "aws:ResourceTag/labtui:course": course.id}
        out.append(("stop its own machine", "ec2:StopInstances", instance, mine))
        if other:
            theirs = {**mine, "aws:ResourceTag/labtui:seat": other}
            out.append((f"stop a classmate's machine ({other})", "ec2:StopInstances",
                        instance, theirs))
        out.append(("read a machine's user-data", "ec2:DescribeInstanceAttribute",
                    instance, mine))
    if storage and storage.data_bucket:
        data = storage.data_bucket
        out.append((f"read the course data (s3://{data}/)", "s3:GetObject",
                    f"arn:aws:s3:::{data}/lecture1.csv", {}))
        out.append((f"write to the course data (s3://{data}/)", "s3:PutObject",
                    f"arn:aws:s3:::{data}/lecture1.csv", {}))
    if storage and storage.scratch_bucket:
        scratch = storage.scratch_bucket
        out.append((f"write its own scratch (s3://{scratch}/{seat_id}/)", "s3:PutObject",
                    f"arn:aws:s3:::{scratch}/{seat_id}/out.txt", {}))
        out.append((f"list its own scratch (s3://{scratch}/{seat_id}/)", "s3:ListBucket",
                    f"arn:aws:s3:::{scratch}", {"s3:prefix": f"{seat_id}/"}))
        if other:
            out.append((f"write a classmate's scratch (s3://{scratch}/{other}/)",
                        "s3:PutObject", f"arn:aws:s3:::{scratch}/{other}/out.txt", {}))
            out.append((f"read a classmate's scratch (s3://{scratch}/{other}/)",
                        "s3:GetObject", f"arn:aws:s3:::{scratch}/{other}/out.txt", {}))
    out.append(("create an IAM user", "iam:CreateUser",
                f"arn:aws:iam::{account}:user/someone", {}))
    out.append(("create access keys", "iam:CreateAccessKey",
                f"arn:aws:iam::{account}:user/someone", {}))
    return out


def permissions_table(course: Course, seat_id: str, account: str = ACCOUNT) -> list[Case]:
    """What the seat's identity may and may not do, each line decided by ``decide``."""
    policy = seat_policy(course, seat_id, account)
    kind = "role" if uses_profiles(course) else "user"
    arn = f"arn:aws:iam::{account}:{kind}{user_path(course)}{user_name(course, seat_id)}"
    return [Case(what, action, resource, context,
                 decide(arn, [policy], action, resource, context))
            for what, action, resource, context in _cases(course, seat_id, account)]

