"""Students' AWS identities: IAM users, their policy, their access keys.

One IAM user per seat (``[access] identity = "student"``) or one for the class
(``"shared"``), in the IAM path ``/labtui/<course>/``, tagged with the course and seat. Each
holds one customer-managed policy (``labtui.policy.seat_policy``; a managed policy may hold
6,144 characters, a user's inline policies only 2,048) and one access key. The secret of
that key is kept only in the instructor's state folder (0600) and on the seat's own machine
(``~/.aws/credentials``, 0600, written by setup). The instructor's credentials never leave
this machine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from labtui import policy
from labtui.course import Course, Seat
from labtui.errors import AwsError
from labtui.events import EventSink, LogLine
from labtui.policy import identity_of, seat_policy, shared, user_name, user_path, uses_profiles
from labtui.services import tags
from labtui.services.aws import Aws, translate_errors
from labtui.state import CourseState

IAM_REGION = "us-east-1"
POLICY_VERSIONS = 5   # IAM keeps at most five versions of a managed policy


@dataclass(frozen=True)
class Keys:
    """An access key of a student identity (the secret is never printed or logged)."""

    user: str
    access_key_id: str
    secret_access_key: str

    def __repr__(self) -> str:
        return f"Keys({self.user!r}, {self.access_key_id!r}, secret=…)"


def enabled(course: Course) -> bool:
    return course.access is not None and course.access.users


def identities(course: Course) -> dict[str, Seat | None]:
    """Identity name -> its seat (None for the class's shared identity)."""
    if shared(course):
        return {identity_of(course, ""): None}
    return {seat.id: seat for seat in course.seats}


def _secret_name(identity: str) -> str:
    return f"aws/{identity}.json"


def stored_keys(state: CourseState, course: Course, seat: str) -> Keys | None:
    """The seat's identity's keys as kept locally (0600), or None."""
    return _read(state, identity_of(course, seat))


def _store(state: CourseState, identity: str, keys: Keys) -> None:
    state.write_secret(_secret_name(identity), json.dumps({
        "user": keys.user, "access_key_id": keys.access_key_id,
        "secret_access_key": keys.secret_access_key}) + "\n")


def account_id(aws: Aws) -> str:
    with translate_errors("sts.GetCallerIdentity"):
        return aws.client("sts", IAM_REGION).get_caller_identity()["Account"]


def policy_arn(account: str, course: Course, identity: str) -> str:
    return f"arn:aws:iam::{account}:policy{user_path(course)}labtui-{course.id}-{identity}"


def ensure(aws: Aws, course: Course, state: CourseState, sink: EventSink) -> list[str]:
    """Every identity of the course exists with its current policy and one key whose
    secret is kept locally. Reruns converge. Returns the seats whose key is new (made now,
    e.g. from another computer whose state folder lacks the secret): their machines need it
    installed again."""
    iam = aws.client("iam", IAM_REGION)
    account = account_id(aws)
    out: dict[str, Keys] = {}
    before = {identity: _read(state, identity) for identity in identities(course)}
    for identity, seat in identities(course).items():
        name = user_name(course, seat or identity)
        labels = tags.tags(course.id, seat.id if seat else None)
        document = json.dumps(seat_policy(course, seat.id if seat else identity, account),
                              separators=(",", ":"))
        arn = ensure_managed_policy(iam, policy_arn(account, course, identity),
                             f"labtui-{course.id}-{identity}", course, document, labels)
        if uses_profiles(course):
            ensure_machine_role(iam, course, name, arn, labels)
            continue
        with translate_errors(f"iam.CreateUser {name}"):
            try:
                iam.get_user(UserName=name)
            except iam.exceptions.NoSuchEntityException:
                iam.create_user(UserName=name, Path=user_path(course), Tags=labels)
        with translate_errors(f"iam.AttachUserPolicy {name}"):
            attached = {p["PolicyArn"] for p in iam.list_attached_user_policies(
                UserName=name)["AttachedPolicies"]}
            if arn not in attached:
                iam.attach_user_policy(UserName=name, PolicyArn=arn)
        out[identity] = _ensure_key(iam, state, identity, name)
    count = len(identities(course))
    sink.emit(LogLine(f"{count} student identit{'y' if count == 1 else 'ies'} with their "
                      f"policy and {'machine role' if uses_profiles(course) else 'keys'} "
                      f"({user_path(course)})"))
    new = {identity for identity, keys in out.items() if keys != before.get(identity)}
    return [seat.id for seat in course.seats if identity_of(course, seat) in new]


def ta_identity(name: str) -> str:
    """The identity part of a teaching assistant's names (its secret: ``aws/ta-NAME.json``)."""
    return f"ta-{name}"


def stored_ta_keys(state: CourseState, name: str) -> Keys | None:
    """The teaching assistant's key as kept locally (0600), or None."""
    return _read(state, ta_identity(name))


def ensure_ta(aws: Aws, course: Course, state: CourseState, name: str,
              sink: EventSink) -> Keys:
    """A teaching assistant's IAM user (``labtui-<course>-ta-<NAME>``, in the course's path,
    tagged with the course and ``labtui:role = ta``) holding its read-only managed policy
    (``labtui.policy.ta_policy``), and its one access key, kept locally 0600. A rerun keeps
    the key (a new one when the secret is not kept here; the old one is deleted)."""
    iam = aws.client("iam", IAM_REGION)
    account = account_id(aws)
    identity = ta_identity(name)
    user = policy.ta_user_name(course.id, name)
    labels = tags.tags(course.id, role="ta")
    document = json.dumps(policy.ta_policy(course, account), separators=(",", ":"))
    arn = ensure_managed_policy(iam, f"arn:aws:iam::{account}:policy{user_path(course)}{user}",
                                user, course, document, labels)
    with translate_errors(f"iam.CreateUser {user}"):
        try:
            iam.get_user(UserName=user)
        except iam.exceptions.NoSuchEntityException:
            iam.create_user(UserName=user, Path=user_path(course), Tags=labels)
    with translate_errors(f"iam.AttachUserPolicy {user}"):
        attached = {p["PolicyArn"] for p in iam.list_attached_user_policies(
            UserName=user)["AttachedPolicies"]}
        if arn not in attached:
            iam.attach_user_policy(UserName=user, PolicyArn=arn)
    before = _read(state, identity)
    keys = _ensure_key(iam, state, identity, user)
    sink.emit(LogLine(f"teaching assistant {user} ({user_path(course)}) with its read-only "
                      f"policy; key {keys.access_key_id}"
                      + (" (new)" if keys != before else " (kept)")))
    return keys


def profile_file(profile: str, keys: Keys) -> str:
    """An AWS shared-credentials file with one profile."""
    return (f"[{profile}]\naws_access_key_id = {keys.access_key_id}\n"
            f"aws_secret_access_key = {keys.secret_access_key}\n")


EC2_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
    "Action": "sts:AssumeRole"}]})


def ensure_role_for_machines(aws: Aws, course: Course, name: str, document: dict[str, Any],
                             labels: list[dict[str, str]]) -> str:
    """A role of the course's machines (jobs' workers, seats booting with user-data) that
    holds exactly ``document``: its managed policy of the same name, in the course's IAM
    path, and the instance profile that carries the role (converges). Returns the policy's
    ARN; the role and the profile are called ``name``."""
    iam = aws.client("iam", IAM_REGION)
    arn = f"arn:aws:iam::{account_id(aws)}:policy{user_path(course)}{name}"
    policy = ensure_managed_policy(iam, arn, name, course,
                                   json.dumps(document, separators=(",", ":")), labels)
    ensure_machine_role(iam, course, name, policy, labels)
    return policy


def ensure_machine_role(iam: Any, course: Course, name: str, policy: str,
                    labels: list[dict[str, str]]) -> None:
    """The seat's machine role (trusted by EC2, holding the seat's policy) and the instance
    profile of the same name that carries it."""
    with translate_errors(f"iam.CreateRole {name}"):
        try:
            iam.get_role(RoleName=name)
        except iam.exceptions.NoSuchEntityException:
            iam.create_role(RoleName=name, Path=user_path(course),
                            AssumeRolePolicyDocument=EC2_TRUST, Tags=labels,
                            Description="labtui: a seat's machine role")
        attached = {p["PolicyArn"] for p in iam.list_attached_role_policies(
            RoleName=name)["AttachedPolicies"]}
        if policy not in attached:
            iam.attach_role_policy(RoleName=name, PolicyArn=policy)
    with translate_errors(f"iam.CreateInstanceProfile {name}"):
        try:
            profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        except iam.exceptions.NoSuchEntityException:
            profile = iam.create_instance_profile(InstanceProfileName=name,
                                                  Path=user_path(course),
                                                  Tags=labels)["InstanceProfile"]
        if not any(r["RoleName"] == name for r in profile.get("Roles", [])):
            iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)


def ensure_managed_policy(iam: Any, arn: str, name: str, course: Course, document: str,
                   labels: list[dict[str, str]]) -> str:
    with translate_errors(f"iam.CreatePolicy {name}"):
        try:
            policy = iam.get_policy(PolicyArn=arn)["Policy"]
        except iam.exceptions.NoSuchEntityException:
            return iam.create_policy(PolicyName=name, Path=user_path(course),
                                     PolicyDocument=document, Tags=labels,
                                     Description=f"labtui: what {name} may do")["Policy"]["Arn"]
        current = iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])
        stored = current["PolicyVersion"]["Document"]
        if isinstance(stored, str):
            from urllib.parse import unquote
            stored = json.loads(unquote(stored))
        if stored == json.loads(document):
            return arn
        versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
        if len(versions) >= POLICY_VERSIONS:
            oldest = min((v for v in versions if not v["IsDefaultVersion"]),
                         key=lambda v: v["CreateDate"])
            iam.delete_policy_version(PolicyArn=arn, VersionId=oldest["VersionId"])
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=document, SetAsDefault=True)
        return arn


def _ensure_key(iam: Any, state: CourseState, identity: str, name: str) -> Keys:
    """The key kept locally when AWS still has it; else a new one. Keys whose secret is not
    kept here can never be installed on a seat: they are deleted."""
    kept = _read(state, identity)
    with translate_errors(f"iam.ListAccessKeys {name}"):
        existing = [k["AccessKeyId"] for k in iam.list_access_keys(UserName=name)[
            "AccessKeyMetadata"]]
        for key_id in existing:
            if kept is None or key_id != kept.access_key_id:
                iam.delete_access_key(UserName=name, AccessKeyId=key_id)
        if kept is not None and kept.access_key_id in existing and kept.user == name:
            return kept
        return _new_key(iam, state, identity, name)


def _read(state: CourseState, identity: str) -> Keys | None:
    text = state.read_secret(_secret_name(identity))
    if not text:
        return None
    data = json.loads(text)
    return Keys(data["user"], data["access_key_id"], data["secret_access_key"])


def _new_key(iam: Any, state: CourseState, identity: str, name: str) -> Keys:
    made = iam.create_access_key(UserName=name)["AccessKey"]
    keys = Keys(name, made["AccessKeyId"], made["SecretAccessKey"])
    _store(state, identity, keys)
    return keys


def rotate(aws: Aws, course: Course, state: CourseState, seat: str) -> tuple[Keys, str | None]:
    """A new key for the seat's identity, kept locally; returns it and the old key's id
    (still valid until ``retire`` deletes it, once the machine has the new one)."""
    iam = aws.client("iam", IAM_REGION)
    identity = identity_of(course, seat)
    name = user_name(course, seat)
    old = _read(state, identity)
    with translate_errors(f"iam.CreateAccessKey {name}"):
        for meta in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]:
            if old is None or meta["AccessKeyId"] != old.access_key_id:
                # at most two keys per user: a stray one makes room for the new key
                iam.delete_access_key(UserName=name, AccessKeyId=meta["AccessKeyId"])
        return _new_key(iam, state, identity, name), old.access_key_id if old else None


def retire(aws: Aws, name: str, key_id: str) -> None:
    iam = aws.client("iam", IAM_REGION)
    with translate_errors(f"iam.DeleteAccessKey {name}"):
        try:
            iam.delete_access_key(UserName=name, AccessKeyId=key_id)
        except iam.exceptions.NoSuchEntityException:
            pass


def credentials_file(keys: Keys) -> str:
    return (f"[default]\naws_access_key_id = {keys.access_key_id}\n"
            f"aws_secret_access_key = {keys.secret_access_key}\n")


def config_file(region: str) -> str:
    return f"[default]\nregion = {region}\n"


def identity_names(aws: Aws, course: Course) -> set[str]:
    """The names of the course's IAM users (or machine roles) that exist now."""
    method, key, name = (("list_roles", "Roles", "RoleName") if uses_profiles(course)
                         else ("list_users", "Users", "UserName"))
    try:
        return {u[name] for u in aws.paginate("iam", IAM_REGION, method, key,
                                              PathPrefix=user_path(course))}
    except AwsError:
        return set()
