"""The instance metadata service of one sandbox machine (IMDSv2, as EC2 serves it).

Each running machine gets its own HTTP server on its own loopback address; the machine's
environment names it (``AWS_EC2_METADATA_SERVICE_ENDPOINT``), which the AWS SDKs and CLI
read. It answers from the emulator's live record of the instance: identity, launch index,
placement, user-data, and the credentials of its instance profile's role (made with the
emulator's STS, so ``sts get-caller-identity`` on the machine names the role).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN_TTL_MAX = 21600


class _Handler(BaseHTTPRequestHandler):
    server: MetadataServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args: Any) -> None:  # never to the terminal
        pass

    def _send(self, status: int, body: str, content_type: str = "text/plain") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.rstrip("/") != "/latest/api/token":
            return self._send(404, "Not Found")
        try:
            ttl = int(self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", ""))
        except ValueError:
            return self._send(400, "Bad Request")
        if not 1 <= ttl <= TOKEN_TTL_MAX:
            return self._send(400, "Bad Request")
        return self._send(200, self.server.new_token(ttl))

    def do_GET(self) -> None:  # noqa: N802
        token = self.headers.get("X-aws-ec2-metadata-token")
        if token is not None and not self.server.token_ok(token):
            return self._send(401, "Unauthorized")
        if token is None and self.server.tokens_required():
            return self._send(401, "Unauthorized")
        answer = self.server.lookup(self.path.split("?", 1)[0])
        if answer is None:
            return self._send(404, "Not Found")
        body, content_type = answer
        return self._send(200, body, content_type)


class MetadataServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: str, instance: Callable[[], Any],
                 credentials: Callable[[str], dict[str, Any] | None]) -> None:
        super().__init__((address, 0), _Handler)
        self.instance = instance          # the live moto Instance (or None once gone)
        self.credentials = credentials    # role name -> STS credentials
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True,
                                        name="labtui-sandbox-imds")

    @property
    def endpoint(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> MetadataServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.shutdown()
        self.server_close()

    def new_token(self, ttl: int) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = time.monotonic() + ttl
        return token

    def token_ok(self, token: str) -> bool:
        with self._lock:
            return self._tokens.get(token, 0) > time.monotonic()

    def tokens_required(self) -> bool:
        options = getattr(self.instance(), "metadata_options", None)
        return getattr(options, "http_tokens", "optional") == "required"

    def lookup(self, path: str) -> tuple[str, str] | None:
        inst = self.instance()
        if inst is None:
            return None
        if path.rstrip("/") == "/latest/user-data":
            from labtui.sandbox.machines import user_data_bytes

            data = user_data_bytes(inst)
            return (data.decode("utf-8", "replace"), "application/octet-stream") if data \
                else None
        tree = self._tree(inst)
        node: Any = tree
        for part in [p for p in path.split("/") if p]:
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        if isinstance(node, dict):
            return "\n".join(k + "/" if isinstance(v, dict) else k
                             for k, v in sorted(node.items())), "text/plain"
        return str(node), "application/json" if str(node).startswith("{") else "text/plain"

    def _tree(self, inst: Any) -> dict[str, Any]:
        zone = getattr(getattr(inst, "_placement", None), "zone", None) or (
            inst.region_name + "a")
        region = inst.region_name
        meta: dict[str, Any] = {
            "ami-id": inst.image_id, "ami-launch-index": str(inst.ami_launch_index),
            "instance-id": inst.id, "instance-type": inst.instance_type,
            "hostname": f"ip-{inst.private_ip.replace('.', '-')}.ec2.internal",
            "local-hostname": f"ip-{inst.private_ip.replace('.', '-')}.ec2.internal",
            "local-ipv4": inst.private_ip,
            "placement": {"availability-zone": zone, "region": region},
        }
        profile = _profile_of(inst)
        role = profile.roles[0].name if profile is not None and profile.roles else None
        if role:
            creds = self.credentials(role)
            if creds:
                meta["iam"] = {
                    "info": json.dumps({"Code": "Success", "InstanceProfileArn": profile.arn,
                                        "InstanceProfileId": profile.id}),
                    "security-credentials": {role: json.dumps(creds)}}
        document = json.dumps({
            "accountId": inst.owner_id, "architecture": "x86_64", "availabilityZone": zone,
            "imageId": inst.image_id, "instanceId": inst.id,
            "instanceType": inst.instance_type, "privateIp": inst.private_ip,
            "region": region, "version": "2017-09-30"})
        return {"latest": {"meta-data": meta, "dynamic": {
            "instance-identity": {"document": document}}}}


def _profile_of(inst: Any) -> Any:
    """The emulator's instance profile associated with the instance, if any."""
    associations = getattr(inst.ec2_backend, "iam_instance_profile_associations", {})
    association = associations.get(inst.id)
    return getattr(association, "iam_instance_profile", None)


def role_credentials(account: str, role: str) -> dict[str, Any] | None:
    """Temporary credentials of ``role`` from the emulator's STS (IMDS's JSON shape)."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    iam = iam_backends[account]["global"]
    found = next((r for r in iam.roles.values() if r.name == role), None)
    if found is None:
        return None
    assumed = sts_backends[account]["global"].assume_role(
        region_name="us-east-1", role_session_name="i-sandbox", role_arn=found.arn,
        policy=None, duration=3600, external_id=None)
    expires = datetime.now(UTC) + timedelta(hours=1)
    return {"Code": "Success", "LastUpdated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Type": "AWS-HMAC", "AccessKeyId": assumed.access_key_id,
            "SecretAccessKey": assumed.secret_access_key, "Token": assumed.session_token,
            "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}
