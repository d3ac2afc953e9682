"""Not a module: the text labtui puts at the ``#@machine_aws`` line of the scripts it ships
to machines (labtui-job, labtui-boot; ``services/machinescripts.py``), which import datetime,
hashlib, hmac, json, urllib and define ``environment(name)`` before it."""
# ruff: noqa: F821, UP017 (names the script defines; a machine's python may be older than 3.11)
import datetime
import hashlib
import hmac
import json
import urllib.parse
import urllib.request

# ---- from labtui/data/machine_aws.py (labtui puts it here when it ships this script) ----
# The machine's role credentials from its metadata service (IMDSv2) and AWS Signature
# Version 4, shared by labtui-job and labtui-boot; the script defines environment().

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def metadata(path, token=None, method="GET", headers=None):
    base = environment("AWS_EC2_METADATA_SERVICE_ENDPOINT") or "http://169.254.169.254/"
    request = urllib.request.Request(base.rstrip("/") + path, method=method,
                                     headers=dict(headers or {}))
    if token:
        request.add_header("X-aws-ec2-metadata-token", token)
    with OPENER.open(request, timeout=5) as answer:
        return answer.read().decode()


def imds_token(ttl=21600):
    return metadata("/latest/api/token", method="PUT",
                    headers={"X-aws-ec2-metadata-token-ttl-seconds": str(ttl)})


def credentials():
    token = imds_token()
    role = metadata("/latest/meta-data/iam/security-credentials/", token).split()[0]
    data = json.loads(metadata(f"/latest/meta-data/iam/security-credentials/{role}", token))
    return data["AccessKeyId"], data["SecretAccessKey"], data.get("Token")


def _hmac(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sign(method, url, region, creds, body, headers, service, stamp=None):
    """``headers`` plus host, x-amz-date, the session token and the SigV4 Authorization
    (AWS's documented algorithm), every header signed."""
    access_key, secret, session = creds
    stamp = stamp or datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = stamp.strftime("%Y%m%dT%H%M%SZ"), stamp.strftime("%Y%m%d")
    parts = urllib.parse.urlsplit(url)
    headers = {**headers, "host": parts.netloc, "x-amz-date": amz_date}
    if session:
        headers["x-amz-security-token"] = session
    names = ";".join(sorted(headers))
    canonical = "\n".join([method, parts.path or "/", parts.query,
                           "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)), names,
                           hashlib.sha256(body).hexdigest()])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), day), region), service),
                "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                                f"SignedHeaders={names}, Signature={signature}")
    return headers
# ---- end of labtui/data/machine_aws.py ----
