"""The sandbox's AWS endpoint: moto, plus what moto lacks and labtui needs.

moto answers EC2 Service Quotas with NoSuchResource and has no Price List API, so the
sandbox serves them itself, on the same endpoint and in the same wire format as AWS, so the
same client code (services/quotas.py, services/pricing.py) runs against both:

- Service Quotas for EC2 vCPU quotas: settable per region (``labtui sandbox --vcpu-quota
  eu-west-1=16``), read one by one or listed (ListServiceQuotas, paged as AWS pages it),
  increase requests recorded (PENDING, or APPROVED at once with
  ``--approve-quota-requests``), change history listed.
- The Price List API (GetProducts, paged) for EC2 and EMR, answering from labtui's dated
  price table.

Checked with the AWS CLI itself (tests/test_aws_conventions.py).

A request signed with a student's key is first authorized against that student's IAM
policies (``authz.py``); everything else goes to moto untouched.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from labtui.sandbox.authz import Authorizer

QUOTA_NAMES = {
    "L-1216C47A": "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances",
    "L-34B43A08": "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests",
    "L-DB2E81BA": "Running On-Demand G and VT instances",
    "L-3819A6DF": "All G and VT Spot Instance Requests",
    "L-417A185B": "Running On-Demand P instances",
    "L-7212CCBC": "All P Spot Instance Requests",
    "L-7295265B": "Running On-Demand X instances",
    "L-E3A00192": "All X Spot Instance Requests",
    "L-74FC7D96": "Running On-Demand F instances",
    "L-88CF9481": "All F Spot Instance Requests",
    "L-1945791B": "Running On-Demand Inf instances",
    "L-B5D1601B": "All Inf Spot Instance Requests",
}
SANDBOX_DEFAULT = 256.0   # what a sandbox region allows unless told otherwise
AWS_DEFAULT = 5.0         # what AWS gives a new account (get_aws_default_service_quota)
PRICES = Path(__file__).resolve().parent.parent / "data" / "prices.json"


class QuotaBook:
    """EC2 vCPU quotas per region and the increase requests made against them."""

    def __init__(self, approve: bool = False) -> None:
        self.approve = approve
        self._values: dict[tuple[str, str], float] = {}
        self._requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def set(self, region: str, value: float, code: str = "L-1216C47A") -> None:
        with self._lock:
            self._values[(region, code)] = float(value)

    def get(self, region: str, code: str) -> float:
        with self._lock:
            return self._values.get((region, code), SANDBOX_DEFAULT)

    def reset(self) -> None:
        with self._lock:
            self._values.clear()
            self._requests.clear()

    def request(self, region: str, code: str, desired: float) -> dict[str, Any]:
        with self._lock:
            entry = {
                "Id": uuid.uuid4().hex, "CaseId": "", "ServiceCode": "ec2",
                "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)",
                "QuotaCode": code, "QuotaName": QUOTA_NAMES[code], "DesiredValue": desired,
                "Status": "APPROVED" if self.approve else "PENDING",
                "Created": time.time(), "LastUpdated": time.time(), "Requester": "labtui",
                "QuotaArn": _arn(region, code), "GlobalQuota": False, "Unit": "None",
                "QuotaRequestedAtLevel": "ACCOUNT", "_region": region,
            }
            self._requests.append(entry)
            if self.approve:
                self._values[(region, code)] = float(desired)
            return _public(entry)

    def requests(self, region: str, code: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [_public(r) for r in self._requests
                    if r["_region"] == region and (code is None or r["QuotaCode"] == code)]


def _public(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if not k.startswith("_")}


def _arn(region: str, code: str) -> str:
    return f"arn:aws:servicequotas:{region}:123456789012:ec2/{code}"


def _quota(region: str, code: str, value: float) -> dict[str, Any]:
    return {"ServiceCode": "ec2", "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)",
            "QuotaArn": _arn(region, code), "QuotaCode": code, "QuotaName": QUOTA_NAMES[code],
            "Value": value, "Unit": "None", "Adjustable": True, "GlobalQuota": False}


class PriceBook:
    """GetProducts answers from the shipped price table, in the Price List format."""

    def __init__(self, path: Path = PRICES) -> None:
        self.table = json.loads(path.read_text(encoding="utf-8"))

    def products(self, service: str, filters: Iterable[dict[str, str]]) -> list[str]:
        wanted = {f["Field"]: f["Value"] for f in filters}
        section = {"AmazonEC2": "ec2", "ElasticMapReduce": "emr"}.get(service)
        if section is None:
            return []
        out = []
        for region, types in self.table.get(section, {}).items():
            if wanted.get("regionCode", region) != region:
                continue
            for itype, price in types.items():
                if wanted.get("instanceType", itype) != itype:
                    continue
                out.append(json.dumps(_product(service, region, itype, price)))
        return out


def _product(service: str, region: str, itype: str, price: float) -> dict[str, Any]:
    sku = uuid.uuid5(uuid.NAMESPACE_URL, f"{service}/{region}/{itype}").hex[:16].upper()
    term = f"{sku}.JRTCKXETXF"
    return {
        "product": {"sku": sku, "productFamily": "Compute Instance" if service == "AmazonEC2"
                    else "Elastic Map Reduce Instance",
                    "attributes": {"instanceType": itype, "regionCode": region,
                                   "operatingSystem": "Linux", "tenancy": "Shared",
                                   "preInstalledSw": "NA", "capacitystatus": "Used"}},
        "serviceCode": service,
        "terms": {"OnDemand": {term: {"priceDimensions": {f"{term}.6YS6EN2CT7": {
            "unit": "Hrs", "pricePerUnit": {"USD": f"{price:.10f}"},
            "description": f"${price} per {itype} hour (labtui sandbox price table)"}},
            "sku": sku, "offerTermCode": "JRTCKXETXF"}}},
        "publicationDate": "sandbox",
    }


_REGION = re.compile(r"Credential=[^/]+/\d+/([a-z0-9-]+)/")


class SandboxAws:
    """WSGI middleware in front of moto's app for the calls the sandbox serves itself."""

    def __init__(self, app: Callable[..., Any], quotas: QuotaBook, prices: PriceBook) -> None:
        self.app = app
        self.quotas = quotas
        self.prices = prices
        self.authz = Authorizer()  # students' keys: their IAM policies decide (authz.py)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        refused = self.authz(environ, start_response)
        if refused is not None:
            return refused
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith(("ServiceQuotasV20190624.", "AWSPriceListService.",
                              "AWSBudgetServiceGateway.UpdateBudget")):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            match = _REGION.search(environ.get("HTTP_AUTHORIZATION", ""))
            region = match.group(1) if match else "us-east-1"
            try:
                answer = self.answer(target.split(".", 1)[1], region, json.loads(body or b"{}"))
            except _Error as exc:
                return _reply(start_response, 400, {"__type": exc.code, "message": exc.message})
            if answer is not None:
                return _reply(start_response, 200, answer)
            environ["wsgi.input"] = io.BytesIO(body)  # not ours: moto reads it again
        return self.app(environ, start_response)

    def answer(self, operation: str, region: str, request: dict[str, Any]) -> Any:
        if operation == "UpdateBudget":
            return _update_budget(request)
        if operation == "GetProducts":
            products = self.prices.products(request.get("ServiceCode", ""),
                                            request.get("Filters", []))
            return {"FormatVersion": "aws_v1", **_page(products, request, "PriceList", 100)}
        if request.get("ServiceCode", "ec2") != "ec2":
            return None  # moto serves the vpc quotas
        code = str(request.get("QuotaCode", ""))
        if operation in ("ListServiceQuotas", "ListAWSDefaultServiceQuotas"):
            default = operation == "ListAWSDefaultServiceQuotas"
            every = [_quota(region, c, AWS_DEFAULT if default else self.quotas.get(region, c))
                     for c in sorted(QUOTA_NAMES)]
            return _page(every, request, "Quotas", 100)
        if operation == "ListRequestedServiceQuotaChangeHistory":
            return {"RequestedQuotas": self.quotas.requests(region)}
        if code not in QUOTA_NAMES:
            raise _Error("NoSuchResourceException", f"quota {code} is not known")
        if operation == "GetServiceQuota":
            return {"Quota": _quota(region, code, self.quotas.get(region, code))}
        if operation == "GetAWSDefaultServiceQuota":
            return {"Quota": _quota(region, code, AWS_DEFAULT)}
        if operation == "RequestServiceQuotaIncrease":
            return {"RequestedQuota": self.quotas.request(region, code,
                                                          float(request["DesiredValue"]))}
        if operation == "ListRequestedServiceQuotaChangeHistoryByQuota":
            return {"RequestedQuotas": self.quotas.requests(region, code)}
        return None


def _page(items: list[Any], request: dict[str, Any], key: str, most: int) -> dict[str, Any]:
    """One page of ``items`` as AWS pages them: MaxResults and an opaque NextToken."""
    try:
        start = int(request.get("NextToken") or 0)
        size = max(1, min(int(request.get("MaxResults") or most), most))
    except (TypeError, ValueError):
        raise _Error("InvalidPaginationTokenException", "the NextToken is not valid") from None
    out: dict[str, Any] = {key: items[start:start + size]}
    if start + size < len(items):
        out["NextToken"] = str(start + size)
    return out


def _update_budget(request: dict[str, Any]) -> dict[str, Any]:
    """moto lacks UpdateBudget; change its stored budget in place, as AWS would."""
    from moto.budgets.models import budgets_backends

    account, new = request["AccountId"], request["NewBudget"]
    stored = budgets_backends[account]["aws"].budgets[account].get(new["BudgetName"])
    if stored is None:
        raise _Error("NotFoundException", f"Unable to update budget: {new['BudgetName']} - "
                     "the budget doesn't exist.")
    stored.budget.update(new)
    stored.budget["LastUpdatedTime"] = time.time()
    return {}


class _Error(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _reply(start_response: Callable[..., Any], status: int, body: Any) -> list[bytes]:
    data = json.dumps(body, default=str).encode()
    start_response(f"{status} {'OK' if status == 200 else 'Bad Request'}", [
        ("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(data)))])
    return [data]


# The AWS managed policies labtui attaches (the EMR roles, as `create-default-roles` does).
# moto can load all of its ~1,500 (MOTO_IAM_LOAD_MANAGED_POLICIES), but then every IAM
# backend it makes again after a reset parses and builds them all, which doubled the
# sandbox tests' time: the sandbox serves these few, parsed once.
MANAGED_POLICIES = ("AmazonElasticMapReduceRole", "AmazonElasticMapReduceforEC2Role")


def serve_managed_policies(names: tuple[str, ...] = MANAGED_POLICIES) -> None:
    """Make moto's IAM know these AWS managed policies (once per process)."""
    import json

    from moto.iam import models

    if getattr(models.IAMBackend, "_labtui_policies", False):
        return
    data = json.loads(models.aws_managed_policies_data)
    chosen = {name: data[name] for name in names}

    def init_aws_policies(self: Any) -> list[Any]:
        return [models.AWSManagedPolicy.from_data(name, self.account_id, self.region_name, d)
                for name, d in chosen.items()]
    models.IAMBackend._init_aws_policies = init_aws_policies
    models.IAMBackend._labtui_policies = True


def make_server_class():
    """moto's ThreadedMotoServer with the sandbox's middleware in front of its app."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    from labtui.sandbox import idempotency

    class LabMotoServer(ThreadedMotoServer):
        def __init__(self, *args: Any, quotas: QuotaBook, prices: PriceBook,
                     **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            idempotency.install()  # RunInstances honours ClientToken, as on AWS
            self.quotas = quotas
            self.prices = prices

        def _server_entry(self) -> None:
            app = SandboxAws(DomainDispatcherApplication(create_backend_app), self.quotas,
                             self.prices)
            self._server = make_server(self._ip_address, self._port, app, True)
            self._server_ready_event.set()
            self._server.serve_forever()

    return LabMotoServer
