"""Hourly prices: from the AWS Price List API where the account reaches it, otherwise from
the dated table shipped with labtui (labtui/data/prices.json), whose date is shown."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from labtui.errors import AwsError
from labtui.services.aws import Aws, translate_errors

TABLE = Path(__file__).resolve().parent.parent / "data" / "prices.json"
API_REGION = "us-east-1"  # the Price List API answers from us-east-1 for every region


@cache
def table() -> dict[str, Any]:
    from importlib import resources

    try:
        text = resources.files("labtui").joinpath("data/prices.json").read_text("utf-8")
    except (FileNotFoundError, ModuleNotFoundError):
        text = TABLE.read_text(encoding="utf-8")
    return json.loads(text)


@dataclass(frozen=True)
class Price:
    usd: float | None   # per hour; None when no source knows it
    source: str


class Prices:
    """Per-(service, region, type) prices, asked once each."""

    def __init__(self, aws: Aws) -> None:
        self.aws = aws
        self._cache: dict[tuple[str, str, str], Price] = {}
        self._api_ok: bool | None = None
        self._lock = threading.Lock()

    @property
    def table_date(self) -> str:
        return str(table()["as_of"])

    def ec2(self, region: str, instance_type: str) -> Price:
        return self._price("AmazonEC2", "ec2", region, instance_type)

    def emr(self, region: str, instance_type: str) -> Price:
        return self._price("ElasticMapReduce", "emr", region, instance_type)

    def _price(self, service: str, section: str, region: str, itype: str) -> Price:
        key = (service, region, itype)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        price = self._from_api(service, region, itype) if self._api_ok is not False else None
        if price is None:
            usd = table().get(section, {}).get(region, {}).get(itype)
            price = Price(usd, f"price table of {self.table_date}" if usd is not None
                          else "no price known")
        with self._lock:
            self._cache[key] = price
        return price

    def _from_api(self, service: str, region: str, itype: str) -> Price | None:
        filters = [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in (
            ("instanceType", itype), ("regionCode", region))]
        if service == "AmazonEC2":
            filters += [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in (
                ("operatingSystem", "Linux"), ("tenancy", "Shared"),
                ("preInstalledSw", "NA"), ("capacitystatus", "Used"))]
        try:
            with translate_errors(f"pricing GetProducts {service} {itype} {region}"):
                reply = self.aws.client("pricing", API_REGION).get_products(
                    ServiceCode=service, Filters=filters, MaxResults=10)
        except AwsError:
            self._api_ok = False  # no access: use the table from now on
            return None
        self._api_ok = True
        for item in reply.get("PriceList", []):
            usd = _on_demand_usd(json.loads(item) if isinstance(item, str) else item)
            if usd is not None:
                return Price(usd, "AWS Price List API")
        return None


def _on_demand_usd(product: dict[str, Any]) -> float | None:
    for term in product.get("terms", {}).get("OnDemand", {}).values():
        for dimension in term.get("priceDimensions", {}).values():
            usd = dimension.get("pricePerUnit", {}).get("USD")
            if usd is not None and float(usd) > 0:
                return float(usd)
    return None
