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
from labtui.events import EventSink, Progress
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


PART = 8 * 1024 * 1024   # boto3's multipart threshold and part size, used for the ETag too


def etag_of(path: Path, part: int = PART) -> str:
    """The ETag S3 gives ``path`` uploaded by boto3's transfer manager: the MD5 of the file
    (one part), else the MD5 of the parts' MD5s and ``-<parts>``."""
    digests = []
    with path.open("rb") as handle:
        while chunk := handle.read(part):
            digests.append(hashlib.md5(chunk, usedforsecurity=False))
    if len(digests) <= 1:
        return (digests[0] if digests else hashlib.md5(b"", usedforsecurity=False)).hexdigest()
    joined = hashlib.md5(b"".join(d.digest() for d in digests), usedforsecurity=False)
    return f"{joined.hexdigest()}-{len(digests)}"


def upload(aws: Aws, bucket: str, key: str, path: Path) -> bool:
    """Put a file unless the object there has its size and ETag; True when it was sent.
    Large files go in parts (boto3's transfer manager), never whole into memory."""
    from boto3.s3.transfer import TransferConfig

    s3 = aws.client("s3")
    with translate_errors(f"s3.PutObject s3://{bucket}/{key}"):
        try:
            head = s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _code(exc) not in ("404", "NoSuchKey", "NotFound"):
                raise
            head = {}
        if (head.get("ContentLength") == path.stat().st_size
                and head.get("ETag", "").strip('"') == etag_of(path)):
            return False
        s3.upload_file(str(path), bucket, key, Config=TransferConfig(
            multipart_threshold=PART, multipart_chunksize=PART))
    return True


def upload_folder(aws: Aws, bucket: str, folder: Path, sink: EventSink) -> tuple[int, int]:
    """Every file under ``folder`` to the same relative key in ``bucket`` (unchanged ones
    skipped), with progress; returns (sent, skipped)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    sent = 0
    for index, path in enumerate(files):
        sink.emit(Progress(f"upload to s3://{bucket}/", index, len(files)))
        sent += upload(aws, bucket, path.relative_to(folder).as_posix(), path)
    sink.emit(Progress(f"upload to s3://{bucket}/", len(files), len(files)))
    return sent, len(files) - sent
