"""The one place that makes boto3 sessions and clients.

Profile, region, endpoint override (the sandbox), adaptive retries and timeouts are set here
once; every client is cached per (service, region) and every API call is counted through
botocore's event hooks, so benchmarks and the status bar can show calls per refresh.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.exceptions
import botocore.parsers
from botocore.config import Config

from labtui.errors import AwsError

FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class AwsSettings:
    """Where AWS calls go. ``sandbox``: labtui's own emulator at ``endpoint_url`` (fake
    credentials, loopback). Otherwise ``endpoint_url`` (``--endpoint-url``, or boto3's own
    ``AWS_ENDPOINT_URL`` when it is None) sends every call to another AWS-compatible endpoint
    such as LocalStack, with the profile's credentials."""

    profile: str | None = None
    endpoint_url: str | None = None
    sandbox: bool = False

    @property
    def endpoint(self) -> str | None:
        """Where calls go when not to AWS itself."""
        return self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None


class CallCounter:
    """Counts API calls by ``service.Operation``; thread-safe."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, event_name: str = "", **_: Any) -> None:
        # event_name is "before-call.<service>.<Operation>"
        service, operation = event_name.split(".", 2)[1:]
        with self._lock:
            self._counts[f"{service}.{operation}"] += 1

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


class Aws:
    """A typed facade over boto3: cached clients, one retry policy, one call counter."""

    def __init__(self, settings: AwsSettings | None = None) -> None:
        self.settings = settings or AwsSettings()
        self.calls = CallCounter()
        self._config = Config(
            # An emulator (the sandbox, or one at --endpoint-url) is local: what it cannot
            # answer it will not answer on the eighth try either.
            retries={"mode": "adaptive", "max_attempts": 2 if self.local else 8},
            connect_timeout=5 if self.local else 10,
            read_timeout=30 if self.local else 60,
        )
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._session = self._make_session()

    @property
    def local(self) -> bool:
        """Calls go to an emulator, not to AWS."""
        return self.settings.sandbox or self.settings.endpoint is not None

    def _make_session(self) -> boto3.session.Session:
        if self.settings.sandbox:
            # A client made without these could reach real AWS; the sandbox never does.
            os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
            session = boto3.session.Session(region_name=DEFAULT_REGION, **FAKE_CREDENTIALS)
        else:
            try:
                session = boto3.session.Session(profile_name=self.settings.profile)
            except botocore.exceptions.ProfileNotFound as exc:
                raise AwsError(
                    f"AWS profile {self.settings.profile!r} is not configured. "
                    "Fix: run `aws configure --profile NAME` or set [aws] profile in the "
                    "course file to a profile listed by `aws configure list-profiles`.",
                    original=exc,
                ) from exc
        session.events.register("before-call.*.*", self.calls)
        return session

    def client(self, service: str, region: str = DEFAULT_REGION) -> Any:
        key = (service, region)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._session.client(
                    service,
                    region_name=region,
                    endpoint_url=self.settings.endpoint_url,
                    config=self._config,
                )
                self._clients[key] = client
            return client

    def paginate(self, service: str, region: str, operation: str, key: str,
                 **kwargs: Any) -> Iterator[Any]:
        """Yield every item under ``key`` across all pages of ``operation``."""
        paginator = self.client(service, region).get_paginator(operation)
        with translate_errors(f"{service}.{operation} in {region}"):
            for page in paginator.paginate(**kwargs):
                yield from page.get(key, [])


class translate_errors:
    """Context manager turning botocore failures into AwsError with what was being done."""

    def __init__(self, doing: str) -> None:
        self.doing = doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            return
        if isinstance(exc, botocore.exceptions.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            raise AwsError(f"{self.doing}: {code}: {error.get('Message', '')}".rstrip(": "),
                           operation=self.doing, code=code, original=exc) from exc
        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            raise AwsError(
                f"{self.doing}: no AWS credentials found. Fix: configure a profile "
                "(`aws configure`) and name it in [aws] profile, or run with --sandbox.",
                operation=self.doing, original=exc) from exc
        if isinstance(exc, botocore.parsers.ResponseParserError):
            # an answer that is not AWS's (an overloaded endpoint's HTML error page): a busy
            # service, tried again like a throttle (retries.transient), never printed raw
            raise AwsError(f"{self.doing}: the service's answer was not an AWS reply (an "
                           "internal error or an overloaded endpoint); try again",
                           operation=self.doing, code="InternalFailure",
                           original=exc) from exc
        if isinstance(exc, botocore.exceptions.BotoCoreError):
            raise AwsError(f"{self.doing}: {exc}", operation=self.doing,
                           original=exc) from exc
