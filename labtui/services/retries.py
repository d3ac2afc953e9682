"""Calls that AWS throttles, tried again: the one retry rule of labtui's services.

botocore retries a throttled call a few times itself; :func:`retrying` goes on with its own
bounded backoff (an injectable sleep) while AWS still answers that it is busy
(RequestLimitExceeded, Throttling, SlowDown, a 5xx, a waiter that met one), and raises every
other error, translated, at once. A module of its own so that any service can use it without
importing teardown (which imports most of them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import botocore.exceptions

from labtui.errors import AwsError
from labtui.services.aws import translate_errors

RETRIES = 6                    # tries of one call that AWS throttles (after botocore's own)
# AWS answers these when it is busy, not when something is wrong: the call is tried again.
TRANSIENT = frozenset({
    "RequestLimitExceeded", "Throttling", "ThrottlingException", "ThrottledException",
    "RequestThrottled", "RequestThrottledException", "TooManyRequestsException", "SlowDown",
    "EC2ThrottledException", "PriorRequestNotComplete", "InternalError", "InternalFailure",
    "ServiceUnavailable", "Unavailable", "RequestTimeout", "RequestTimeoutException",
})
T = TypeVar("T")


def transient(exc: AwsError) -> bool:
    """Whether AWS refused the call for being busy (also inside a waiter), not for cause."""
    if exc.code in TRANSIENT:
        return True
    original = exc.original
    if isinstance(original, botocore.exceptions.WaiterError):
        last = original.last_response or {}
        return str((last.get("Error") or {}).get("Code", "")) in TRANSIENT
    return False


def retrying(what: str, call: Callable[[], T], sleep: Callable[[float], None] = time.sleep,
             attempts: int = RETRIES) -> T:
    """``call()`` under the error translation, tried again with backoff while AWS throttles
    it; any other error, or the last throttle, is raised as AwsError."""
    for attempt in range(attempts):
        try:
            with translate_errors(what):
                return call()
        except AwsError as exc:
            if not transient(exc) or attempt == attempts - 1:
                raise
            sleep(min(2 ** attempt, 20))
    raise AssertionError("unreachable")  # pragma: no cover
