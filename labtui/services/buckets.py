"""The course's S3 buckets: created in the course's first region, private, encrypted, tagged.

A bucket is the course's when it carries the course tag. A name held by another account (or
another course of this one) is an error before anything is created; one that is the
course's already is left as it is, its settings put again (idempotent).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from labtui.errors import AwsError
from labtui.services import tags
from labtui.services.aws import Aws, translate_errors

PUBLIC_ACCESS_BLOCK = {"BlockPublicAcls": True, "IgnorePublicAcls": True,
                       "BlockPublicPolicy": True, "RestrictPublicBuckets": True}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def owner_course(aws: Aws, name: str) -> str | None:
    """The course tag of the bucket ``name`` when this account holds it ("" when untagged),
    None when no bucket has that name; AwsError when another account holds it."""
    s3 = aws.client("s3")
    try:
        s3.head_bucket(Bucket=name)
    except ClientError as exc:
        if _code(exc) in ("404", "NoSuchBucket", "NotFound"):
            return None
        if _code(exc) in ("403", "AccessDenied", "Forbidden"):
            raise AwsError(f"the bucket name {name!r} is taken by another AWS account. Fix: "
                           "choose another name in the course file (bucket names are "
                           "global)") from None
        raise
    try:
        found = s3.get_bucket_tagging(Bucket=name).get("TagSet")
    except ClientError as exc:
        if _code(exc) != "NoSuchTagSet":
            raise
        found = []
    return tags.as_dict(found).get(tags.COURSE, "")


def check_free(aws: Aws, course_id: str, names: list[str]) -> None:
    """Refuse, before anything is created, bucket names that are not free for the course."""
    for name in dict.fromkeys(names):
        with translate_errors(f"s3.HeadBucket {name}"):
            owner = owner_course(aws, name)
        if owner not in (None, course_id):
            whose = f"course {owner!r}" if owner else "something else of this account"
            raise AwsError(f"the bucket {name!r} belongs to {whose}. Fix: choose another "
                           "bucket name in the course file")


def ensure_bucket(aws: Aws, course_id: str, name: str, region: str, *,
                  expire_days: int | None = None, holds: str | None = None) -> bool:
    """The course's bucket ``name`` in ``region``: created when missing (True), then tagged,
    public access blocked, default encryption on and, with ``expire_days``, a lifecycle
    rule expiring its objects."""
    s3 = aws.client("s3", region)
    created = False
    with translate_errors(f"s3.CreateBucket {name} in {region}"):
        owner = owner_course(aws, name)
        if owner not in (None, course_id):
            raise AwsError(f"the bucket {name!r} belongs to "
                           f"{'course ' + repr(owner) if owner else 'this account, untagged'}. "
                           "Fix: choose another bucket name in the course file")
        if owner is None:
            args: dict[str, Any] = {"Bucket": name}
            if region != "us-east-1":  # us-east-1 takes no LocationConstraint
                args["CreateBucketConfiguration"] = {"LocationConstraint": region}
            s3.create_bucket(**args)
            created = True
        labels = tags.tags(course_id, **({"holds": holds} if holds else {}))
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": labels})
        s3.put_public_access_block(Bucket=name,
                                   PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK)
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
             "BucketKeyEnabled": True}]})
        if expire_days:
            s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={
                "Rules": [{"ID": "labtui-expire-scratch", "Status": "Enabled",
                           "Filter": {"Prefix": ""}, "Expiration": {"Days": expire_days},
                           "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]})
    return created


def upload(aws: Aws, bucket: str, key: str, path: Path) -> bool:
    """Put a file unless the object there has its size and MD5 (the ETag of a one-part
    upload); True when it was sent."""
    data = path.read_bytes()
    s3 = aws.client("s3")
    with translate_errors(f"s3.PutObject s3://{bucket}/{key}"):
        try:
            head = s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _code(exc) not in ("404", "NoSuchKey", "NotFound"):
                raise
            head = {}
        digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
        if head.get("ContentLength") == len(data) and head.get("ETag", "").strip('"') == digest:
            return False
        s3.put_object(Bucket=bucket, Key=key, Body=data)
    return True
