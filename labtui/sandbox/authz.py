"""The sandbox enforces students' IAM policies, as AWS does.

moto's own IAM enforcement treats any Condition as a Deny, which makes a student's policy
(attribute-based: ``elasticmapreduce:ResourceTag/labtui:seat``, ``s3:prefix``) useless.
The sandbox authorizes a request itself, with the evaluator that writes the course's
permissions table (``labtui.policy.decide``, PMapper's local policy simulation):

- A request signed with an access key of an IAM user in the emulator's IAM (a student's
  key) is evaluated against that user's policies (inline, attached managed policies'
  default version, and its groups' inline and attached ones) for the action the request
  performs on the resources it names, with the resources' tags as condition keys. Denied,
  it gets AWS's error (UnauthorizedOperation for EC2, AccessDenied for the other query
  services and for S3, AccessDeniedException for JSON services such as EMR) and never
  reaches moto.
- A request signed with the temporary key of an assumed role of the emulator's STS (the
  credentials a machine's metadata service hands out for its instance profile, or
  AssumeRole's) is decided the same way by the role's inline and attached policies.
- Any other key (the instructor's fake credentials) passes untouched, without its body
  being read.
- A key once seen as a student's (any IAM user's key the emulator has held, or one used)
  that no longer exists or is inactive (rotated, deleted, or the sandbox reset) is refused
  as AWS refuses an unknown key (InvalidClientTokenId and its per-protocol siblings): it
  never passes as the instructor.
- STS GetCallerIdentity is always allowed, as on AWS.

What the request does is read from the wire: the signature's credential scope (region,
service), the query protocol's ``Action``, the JSON protocol's ``X-Amz-Target``, the S3
REST method, path and sub-resource. Messages name the user, the action and the resource,
never a secret.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

log = logging.getLogger(__name__)

_V4 = re.compile(r"Credential=([^/\s,]+)/\d{8}/([^/\s,]+)/([^/\s,]+)/aws4_request")
_V2 = re.compile(r"^AWS ([^:\s]+):")
_INSTANCE = re.compile(r"InstanceId(\.\d+)?$")
# the IAM action prefix of a service whose signing name differs from it
_PREFIX = {"monitoring": "cloudwatch", "email": "ses"}
ROLES = True   # also decide requests signed with an assumed role's temporary key
BODY_MOST = 1 << 20   # a form, JSON or S3 delete request bigger than this is refused


@dataclass(frozen=True)
class Caller:
    """Who signed the request, as the signature says: key id, region, service."""

    key: str
    region: str
    service: str


@dataclass(frozen=True)
class Principal:
    """An IAM identity of the emulator and the identity policies it holds."""

    arn: str
    account: str
    policies: list[dict[str, Any]]
    active: bool = True
    tags: dict[str, str] = field(default_factory=dict)
    iam_arn: str = ""   # the user's or role's ARN, as the evaluator takes it (else arn)


@dataclass(frozen=True)
class Ask:
    """One question for IAM: may the principal do ``action`` on ``resource``?"""

    action: str
    resource: str
    context: dict[str, Any] = field(default_factory=dict)


class Refused(Exception):
    """The request cannot be authorized as it stands (say what it would have done)."""

    def __init__(self, action: str, resource: str = "*") -> None:
        super().__init__(action)
        self.ask = Ask(action, resource)


def caller_of(environ: dict[str, Any]) -> Caller | None:
    """The key, region and service of a signed request (header or presigned query)."""
    header = environ.get("HTTP_AUTHORIZATION", "")
    match = _V4.search(header)
    if match is None and "X-Amz-Credential" in environ.get("QUERY_STRING", ""):
        credential = dict(parse_qsl(environ["QUERY_STRING"])).get("X-Amz-Credential", "")
        match = _V4.search("Credential=" + credential)
    if match is not None:
        return Caller(*match.groups())
    old = _V2.match(header)  # SigV2: S3's header, or its presigned query
    key = old.group(1) if old else None
    if key is None and "AWSAccessKeyId=" in environ.get("QUERY_STRING", ""):
        key = dict(parse_qsl(environ["QUERY_STRING"])).get("AWSAccessKeyId")
    if not key:
        return None
    query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
    service = "query" if "Action" in query else "s3"
    return Caller(key, "us-east-1", service)


# ------------------------------------------------------------------ the emulator's IAM


def _items(mapping: Any) -> list[tuple[Any, Any]]:
    """A moto dict's items without creating anything (BackendDict.__getitem__ does)."""
    return list(dict.items(mapping)) if isinstance(mapping, dict) else []


def _document(text: Any) -> dict[str, Any] | None:
    if isinstance(text, dict):
        return text
    if not text:
        return None
    try:
        doc = json.loads(unquote(text) if str(text).lstrip().startswith("%") else text)
    except (TypeError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _managed(policies: Iterable[Any]) -> list[dict[str, Any]]:
    out = []
    for policy in policies:
        version = next((v for v in getattr(policy, "versions", []) if v.is_default), None)
        doc = _document(version.document if version is not None else policy.document)
        if doc is not None:
            out.append(doc)
    return out


def _user_policies(backend: Any, user: Any) -> list[dict[str, Any]]:
    docs = [d for d in (_document(t) for t in list(user.policies.values())) if d]
    docs += _managed(list(user.managed_policies.values()))
    for _, group in _items(getattr(backend, "groups", {})):
        if user in list(group.users):
            docs += [d for d in (_document(t) for t in list(group.policies.values())) if d]
            docs += _managed(list(group.managed_policies.values()))
    return docs


def find_user(key: str, seen: set[str] | None = None) -> Principal | None:
    """The IAM user (of any account) owning access key ``key``, with its policies; every
    user key met on the way is added to ``seen``."""
    from moto.iam.models import iam_backends

    for account, partitions in _items(iam_backends):
        for _, backend in _items(partitions):
            for _, user in _items(getattr(backend, "users", {})):
                keys = list(user.access_keys)
                if seen is not None:
                    seen.update(k.access_key_id for k in keys)
                found = next((k for k in keys if k.access_key_id == key), None)
                if found is None:
                    continue
                try:
                    tags = {t["Key"]: t["Value"] for t in
                            backend.tagger.list_tags_for_resource(user.arn)["Tags"]}
                except Exception:
                    tags = {}
                return Principal(f"arn:aws:iam::{account}:user{user.path}{user.name}",
                                 account, _user_policies(backend, user),
                                 found.status == "Active", tags)
    return None


def find_role_session(key: str) -> Principal | None:
    """The assumed role (of the emulator's STS: a machine's instance profile, AssumeRole)
    whose temporary key is ``key``, with its role's policies."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    for account, partitions in _items(sts_backends):
        for _, backend in _items(partitions):
            session = next((r for r in list(getattr(backend, "assumed_roles", []))
                            if r.access_key_id == key), None)
            if session is None:
                continue
            name = session.role_arn.rsplit("/", 1)[-1]
            iam_arn = session.role_arn
            role = next((r for _, iam in _items(dict.get(iam_backends, account))
                         for _, r in _items(getattr(iam, "roles", {}))
                         if r.arn == session.role_arn), None)
            docs: list[dict[str, Any]] = []
            if role is not None:
                docs = [d for d in (_document(t) for t in list(role.policies.values())) if d]
                docs += _managed(list(role.managed_policies.values()))
            return Principal(f"arn:aws:sts::{account}:assumed-role/{name}/"
                             f"{session.session_name}", account, docs, iam_arn=iam_arn)
    return None


# ------------------------------------------------------------------ what a request does


@dataclass
class Request:
    """The parts of a WSGI request that say what it does; the body read only on demand
    and always put back for moto."""

    environ: dict[str, Any]
    caller: Caller
    _body: bytes | None = None

    @property
    def method(self) -> str:
        return self.environ.get("REQUEST_METHOD", "GET").upper()

    def body(self) -> bytes:
        if self._body is None:
            length = int(self.environ.get("CONTENT_LENGTH") or 0)
            if length > BODY_MOST:
                raise Refused(f"{self.caller.service}:Unknown")
            self._body = self.environ["wsgi.input"].read(length) if length else b""
            self.environ["wsgi.input"] = io.BytesIO(self._body)  # moto reads it again
        return self._body

    def query(self) -> dict[str, str]:
        return dict(parse_qsl(self.environ.get("QUERY_STRING", ""), keep_blank_values=True))

    def params(self) -> dict[str, str]:
        """Query-protocol parameters: the query string's and the form body's."""
        out = self.query()
        if self.environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            out.update(parse_qsl(self.body().decode("utf-8", "replace"),
                                 keep_blank_values=True))
        return out

    def path(self) -> str:
        """The request's path, percent-decoded as UTF-8 (PATH_INFO is latin-1)."""
        raw = self.environ.get("RAW_URI") or self.environ.get("REQUEST_URI")
        if raw:
            return unquote(raw.split("?", 1)[0])
        return self.environ.get("PATH_INFO", "/").encode("latin-1").decode("utf-8", "replace")


def asks_of(request: Request, account: str) -> tuple[str, list[Ask]]:
    """The protocol of the request (for the shape of a refusal) and IAM's questions."""
    caller = request.caller
    target = request.environ.get("HTTP_X_AMZ_TARGET", "")
    prefix = _PREFIX.get(caller.service, caller.service)
    if target:
        return "json", _json_asks(request, prefix, target.rsplit(".", 1)[-1], account)
    if caller.service == "s3":
        return "s3", _s3_asks(request)
    params = request.params()
    action = params.get("Action")
    style = "ec2" if caller.service == "ec2" else "query"
    if not action:
        return style, [Ask(f"{prefix}:Unknown", "*")]
    if caller.service == "ec2":
        return style, _ec2_asks(params, action, caller.region, account)
    if caller.service == "iam":
        return style, [Ask(f"iam:{action}", _iam_resource(params, account))]
    if caller.service == "sts" and params.get("RoleArn"):
        return style, [Ask(f"sts:{action}", params["RoleArn"])]
    if caller.service == "sns" and (params.get("TopicArn") or params.get("TargetArn")):
        # a topic's actions are resource-level (a machine's role may publish to one topic)
        return style, [Ask(f"sns:{action}", params.get("TopicArn") or params["TargetArn"])]
    return style, [Ask(f"{prefix}:{action}", "*")]


def _ec2_asks(params: dict[str, str], action: str, region: str, account: str) -> list[Ask]:
    name = f"ec2:{action}"
    if action == "RunInstances":
        return [Ask(name, f"arn:aws:ec2:{region}:{account}:instance/*")]
    ids = [v for k, v in params.items() if _INSTANCE.match(k)]
    if not ids or (action.startswith("Describe") and action != "DescribeInstanceAttribute"):
        return [Ask(name, "*")]  # EC2's Describe calls have no resource-level permissions
    return [Ask(name, f"arn:aws:ec2:{region}:{account}:instance/{i}",
                _tag_keys(_ec2_tags(account, region, i), "aws", "ec2")) for i in ids]


def _iam_resource(params: dict[str, str], account: str) -> str:
    from moto.iam.models import iam_backends

    for param, kind, store in (("UserName", "user", "users"), ("RoleName", "role", "roles"),
                               ("GroupName", "group", "groups")):
        name = params.get(param)
        if not name:
            continue
        path = params.get("Path")
        if path is None:
            for _, backend in _items(dict.get(iam_backends, account)):
                found = next((o for _, o in _items(getattr(backend, store, {}))
                              if o.name == name), None)
                if found is not None:
                    path = found.path
        return f"arn:aws:iam::{account}:{kind}{path or '/'}{name}"
    return params.get("PolicyArn") or "*"


def _json_asks(request: Request, prefix: str, operation: str, account: str) -> list[Ask]:
    name = f"{prefix}:{operation}"
    if prefix != "elasticmapreduce":
        return [Ask(name, "*")]
    try:
        body = json.loads(request.body() or b"{}")
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    ids = [body[k] for k in ("ClusterId", "JobFlowId", "ResourceId") if body.get(k)]
    for k in ("JobFlowIds", "ResourceIds"):
        if isinstance(body.get(k), list):
            ids += body[k]
    region = request.caller.region
    if operation in ("ListClusters", "RunJobFlow") or not ids:
        return [Ask(name, "*")]
    return [Ask(name, f"arn:aws:elasticmapreduce:{region}:{account}:cluster/{i}",
                _tag_keys(_emr_tags(account, region, str(i)), "aws", "elasticmapreduce"))
            for i in ids]


def _tag_keys(tags: dict[str, str], *prefixes: str) -> dict[str, str]:
    return {f"{p}:ResourceTag/{k}": v for k, v in tags.items() for p in prefixes}


def _ec2_tags(account: str, region: str, instance: str) -> dict[str, str]:
    from moto.ec2.models import ec2_backends

    backend = dict.get(dict.get(ec2_backends, account) or {}, region)
    tags = dict.get(getattr(backend, "tags", {}), instance) if backend is not None else None
    return dict(tags or {})


def _emr_tags(account: str, region: str, cluster: str) -> dict[str, str]:
    from moto.emr.models import emr_backends

    backend = dict.get(dict.get(emr_backends, account) or {}, region)
    found = dict.get(getattr(backend, "clusters", {}), cluster) if backend is not None else None
    return dict(getattr(found, "_tags", {}) or {})


# -- S3 (REST: the method, the path /bucket/key and the sub-resource say the action)

# query parameters that are not a sub-resource
_S3_PLAIN = {
    "prefix", "delimiter", "max-keys", "marker", "list-type", "continuation-token",
    "start-after", "fetch-owner", "encoding-type", "versionId", "partNumber", "uploadId",
    "x-id", "key-marker", "upload-id-marker", "version-id-marker", "max-uploads",
    "max-parts", "part-number-marker", "expected-bucket-owner", "Expires", "Signature",
    "AWSAccessKeyId", "x-amz-security-token",
}
_S3_BUCKET = {
    ("GET", ""): "ListBucket", ("HEAD", ""): "ListBucket", ("PUT", ""): "CreateBucket",
    ("DELETE", ""): "DeleteBucket",
    ("GET", "location"): "GetBucketLocation", ("GET", "versions"): "ListBucketVersions",
    ("GET", "uploads"): "ListBucketMultipartUploads",
    ("GET", "tagging"): "GetBucketTagging", ("PUT", "tagging"): "PutBucketTagging",
    ("DELETE", "tagging"): "PutBucketTagging",
    ("GET", "policy"): "GetBucketPolicy", ("PUT", "policy"): "PutBucketPolicy",
    ("DELETE", "policy"): "DeleteBucketPolicy", ("GET", "policyStatus"): "GetBucketPolicyStatus",
    ("GET", "lifecycle"): "GetLifecycleConfiguration",
    ("PUT", "lifecycle"): "PutLifecycleConfiguration",
    ("DELETE", "lifecycle"): "PutLifecycleConfiguration",
    ("GET", "versioning"): "GetBucketVersioning", ("PUT", "versioning"): "PutBucketVersioning",
    ("GET", "acl"): "GetBucketAcl", ("PUT", "acl"): "PutBucketAcl",
    ("GET", "cors"): "GetBucketCORS", ("PUT", "cors"): "PutBucketCORS",
    ("DELETE", "cors"): "PutBucketCORS",
    ("GET", "encryption"): "GetEncryptionConfiguration",
    ("PUT", "encryption"): "PutEncryptionConfiguration",
    ("DELETE", "encryption"): "PutEncryptionConfiguration",
    ("GET", "website"): "GetBucketWebsite", ("PUT", "website"): "PutBucketWebsite",
    ("DELETE", "website"): "DeleteBucketWebsite",
    ("GET", "logging"): "GetBucketLogging", ("PUT", "logging"): "PutBucketLogging",
    ("GET", "notification"): "GetBucketNotification",
    ("PUT", "notification"): "PutBucketNotification",
    ("GET", "publicAccessBlock"): "GetBucketPublicAccessBlock",
    ("PUT", "publicAccessBlock"): "PutBucketPublicAccessBlock",
    ("DELETE", "publicAccessBlock"): "PutBucketPublicAccessBlock",
    ("GET", "ownershipControls"): "GetBucketOwnershipControls",
    ("PUT", "ownershipControls"): "PutBucketOwnershipControls",
    ("DELETE", "ownershipControls"): "PutBucketOwnershipControls",
    ("GET", "object-lock"): "GetBucketObjectLockConfiguration",
    ("PUT", "object-lock"): "PutBucketObjectLockConfiguration",
    ("GET", "replication"): "GetReplicationConfiguration",
    ("PUT", "replication"): "PutReplicationConfiguration",
    ("DELETE", "replication"): "PutReplicationConfiguration",
    ("GET", "requestPayment"): "GetBucketRequestPayment",
    ("PUT", "requestPayment"): "PutBucketRequestPayment",
    ("GET", "accelerate"): "GetAccelerateConfiguration",
    ("PUT", "accelerate"): "PutAccelerateConfiguration",
}
_S3_OBJECT = {
    ("GET", ""): "GetObject", ("HEAD", ""): "GetObject", ("PUT", ""): "PutObject",
    ("DELETE", ""): "DeleteObject",
    ("POST", "uploads"): "PutObject", ("POST", "restore"): "RestoreObject",
    ("POST", "select"): "GetObject",
    ("GET", "tagging"): "GetObjectTagging", ("PUT", "tagging"): "PutObjectTagging",
    ("DELETE", "tagging"): "DeleteObjectTagging",
    ("GET", "acl"): "GetObjectAcl", ("PUT", "acl"): "PutObjectAcl",
    ("GET", "attributes"): "GetObjectAttributes",
    ("GET", "retention"): "GetObjectRetention", ("PUT", "retention"): "PutObjectRetention",
    ("GET", "legal-hold"): "GetObjectLegalHold", ("PUT", "legal-hold"): "PutObjectLegalHold",
    ("GET", "torrent"): "GetObjectTorrent",
}


def _s3_asks(request: Request) -> list[Ask]:
    method = request.method
    query = request.query()
    bucket, _, key = request.path().lstrip("/").partition("/")
    subs = sorted(k for k in query if k not in _S3_PLAIN and not k.startswith(
        ("X-Amz-", "x-amz-", "response-")))
    sub = subs[0] if subs else ""
    if not bucket:
        if method in ("GET", "HEAD") and not sub:
            return [Ask("s3:ListAllMyBuckets", "*")]
        raise Refused(f"s3:{method.title()}{sub[:1].upper()}{sub[1:]}")
    bucket_arn = f"arn:aws:s3:::{bucket}"
    if not key:
        if method == "POST" and sub == "delete":
            return [Ask("s3:DeleteObject", f"{bucket_arn}/{k}") for k in _deleted(request)]
        action = _S3_BUCKET.get((method, sub))
        if action is None:
            raise Refused(f"s3:{method.title()}{sub[:1].upper()}{sub[1:]}", bucket_arn)
        context = {}
        if action in ("ListBucket", "ListBucketVersions"):
            context = {f"s3:{k}": query[k] for k in ("prefix", "delimiter", "max-keys")
                       if k in query}
        return [Ask(f"s3:{action}", bucket_arn, context)]
    object_arn = f"{bucket_arn}/{key}"
    if "uploadId" in query and not sub:
        action = {"GET": "ListMultipartUploadParts", "DELETE": "AbortMultipartUpload",
                  "PUT": "PutObject", "POST": "PutObject"}.get(method)
    else:
        action = _S3_OBJECT.get((method, sub))
        if action in ("GetObject", "DeleteObject") and "versionId" in query and not sub:
            action += "Version"
    if action is None:
        raise Refused(f"s3:{method.title()}{sub[:1].upper()}{sub[1:]}", object_arn)
    asks = [Ask(f"s3:{action}", object_arn)]
    source = request.environ.get("HTTP_X_AMZ_COPY_SOURCE")
    if method == "PUT" and source:
        path = unquote(source.split("?", 1)[0]).lstrip("/")
        asks.append(Ask("s3:GetObject", f"arn:aws:s3:::{path}"))
    return asks


def _deleted(request: Request) -> list[str]:
    """The keys a DeleteObjects request names."""
    try:
        root = ET.fromstring(request.body() or b"<Delete/>")
    except ET.ParseError:
        raise Refused("s3:DeleteObject") from None
    keys = [el.text or "" for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Key"]
    if not keys:
        raise Refused("s3:DeleteObject")
    return keys


# ------------------------------------------------------------------ refusals


def _message(principal: Principal, ask: Ask, explicit: bool) -> str:
    why = ("with an explicit deny in an identity-based policy" if explicit
           else f"because no identity-based policy allows the {ask.action} action")
    return (f"User: {principal.arn} is not authorized to perform: {ask.action} "
            f"on resource: {ask.resource} {why}")


def _xml(text: str) -> str:
    from xml.sax.saxutils import escape

    return escape(text)


_STATUS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}


def refusal(start_response: Callable[..., Any], style: str, code: str, message: str,
            status: int, head: bool = False) -> list[bytes]:
    """AWS's error reply for ``style`` (ec2, query, json, s3)."""
    rid = str(uuid.uuid4())
    if style == "json":
        content_type = "application/x-amz-json-1.1"
        body = json.dumps({"__type": code, "message": message}).encode()
    elif style == "ec2":
        content_type = "text/xml;charset=UTF-8"
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>"
                f"<Code>{code}</Code><Message>{_xml(message)}</Message></Error></Errors>"
                f"<RequestID>{rid}</RequestID></Response>").encode()
    elif style == "s3":
        content_type = "application/xml"
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>"
                f"<Message>{_xml(message)}</Message><RequestId>{rid}</RequestId>"
                f"</Error>").encode()
    else:
        content_type = "text/xml"
        body = (f"<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">"
                f"<Error><Type>Sender</Type><Code>{code}</Code>"
                f"<Message>{_xml(message)}</Message></Error>"
                f"<RequestId>{rid}</RequestId></ErrorResponse>").encode()
    headers = [("Content-Type", content_type), ("x-amzn-RequestId", rid)]
    if style == "s3":
        headers.append(("x-amz-request-id", rid))
    if head:
        body = b""
    headers.append(("Content-Length", str(len(body))))
    start_response(f"{status} {_STATUS.get(status, 'Forbidden')}", headers)
    return [body]


# what AWS answers a key it does not know, per protocol
_UNKNOWN_KEY = {
    "ec2": ("AuthFailure", 401, "AWS was not able to validate the provided access "
                                "credentials"),
    "json": ("UnrecognizedClientException", 400, "The security token included in the "
                                                  "request is invalid."),
    "s3": ("InvalidAccessKeyId", 403, "The AWS Access Key Id you provided does not exist "
                                      "in our records."),
    "query": ("InvalidClientTokenId", 403, "The security token included in the request "
                                           "is invalid."),
}


def _style(environ: dict[str, Any], caller: Caller) -> str:
    if environ.get("HTTP_X_AMZ_TARGET"):
        return "json"
    if caller.service in ("s3", "ec2"):
        return caller.service
    return "query"


class Authorizer:
    """Decides requests signed with a student's key or an assumed role's; the others pass
    (``None``)."""

    def __init__(self) -> None:
        self._students: set[str] = set()   # every key ever seen as a student's
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> list[bytes] | None:
        caller = caller_of(environ)
        if caller is None:
            return None
        seen: set[str] = set()
        principal = find_user(caller.key, seen)
        if principal is None and ROLES:
            principal = find_role_session(caller.key)
        with self._lock:
            self._students.update(seen)
            if principal is not None:
                self._students.add(caller.key)
            elif caller.key not in self._students:
                return None  # the instructor's key: untouched
        head = environ.get("REQUEST_METHOD", "").upper() == "HEAD"
        if principal is None or not principal.active:
            code, status, message = _UNKNOWN_KEY[_style(environ, caller)]
            return refusal(start_response, _style(environ, caller), code, message, status,
                           head)
        return self.decide(Request(environ, caller), principal, start_response, head)

    def decide(self, request: Request, principal: Principal,
               start_response: Callable[..., Any], head: bool) -> list[bytes] | None:
        from labtui.policy import decide

        style = _style(request.environ, request.caller)
        try:
            style, asks = asks_of(request, principal.account)
        except Refused as exc:
            asks, forced = [exc.ask], True
        except Exception as exc:  # never let a student's request through unread
            log.info("sandbox authz: cannot read a request: %s", type(exc).__name__)
            asks, forced = [Ask(f"{request.caller.service}:Unknown", "*")], True
        else:
            forced = False
        if not forced and [a.action for a in asks] == ["sts:GetCallerIdentity"]:
            return None
        for ask in asks:
            decision = None
            if not forced:
                try:
                    decision = decide(principal.iam_arn or principal.arn, principal.policies,
                                      ask.action, ask.resource, ask.context, principal.tags)
                except Exception as exc:  # a policy the evaluator cannot read: refused
                    log.info("sandbox authz: cannot decide %s: %s", ask.action,
                             type(exc).__name__)
            if decision is not None and decision.allowed:
                continue
            explicit = bool(decision and decision.explicit_deny)
            message = _message(principal, ask, explicit)
            if style == "ec2":
                return refusal(start_response, style, "UnauthorizedOperation",
                               "You are not authorized to perform this operation. " + message,
                               403)
            if style == "json":
                return refusal(start_response, style, "AccessDeniedException", message, 400)
            return refusal(start_response, style, "AccessDenied", message, 403,
                           head and style == "s3")
        return None
