"""EC2 ClientToken idempotency for the sandbox's moto, as AWS does it.

moto echoes RunInstances' ClientToken but ignores it: two calls with one token make two
sets of instances. AWS (``Run_Instance_Idempotency``): a repeated request with the same
token in the same region returns the first request's reservation (only the instances' state
may differ, terminated included), and the same token with any other parameter changed fails
with ``IdempotentParameterMismatch``; a token is per region.

moto runs in this process (``ThreadedMotoServer``), so :func:`install` wraps moto's
``run_instances`` response handler once per process: a request with a ClientToken is
fingerprinted (every parameter but ClientToken and DryRun) and looked up in a book kept on
that region's EC2 backend (so moto's reset forgets it with everything else). Requests with
one token are serialized by a per-token lock, so two concurrent calls never both create.
Failed calls (errors, DryRun) record nothing, as on AWS.

moto's own RunInstances is not safe to run twice at once: a subnet hands out its addresses
from one generator, and two launches in one subnet at the same moment met "generator already
executing" (an HTTP 500 with an HTML page; seen with 40 seats launched at once). moto's
backend ``run_instances`` (RunInstances, and the sandbox's EMR nodes) therefore runs under
its region's lock; AWS itself takes concurrent launches.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

_BOOK_ATTR = "_labtui_client_tokens"
_IGNORED = frozenset({"ClientToken", "DryRun"})
_PENDING_STATE = "RunInstances.Reservation.Instances.Instance.State"
_patch_lock = threading.Lock()
_token_locks: dict[tuple[str, ...], threading.Lock] = {}
_token_locks_guard = threading.Lock()
_region_locks: dict[tuple[str, ...], threading.Lock] = {}


@dataclass(frozen=True)
class _Entry:
    fingerprint: str
    reservation_id: str


def fingerprint(params: dict[str, Any]) -> str:
    """The request's parameters, minus the token and DryRun, in one canonical string."""
    kept = {k: v for k, v in params.items() if k not in _IGNORED}
    return json.dumps(kept, sort_keys=True, default=str, separators=(",", ":"))


def _lock_for(key: tuple[str, ...],
              table: dict[tuple[str, ...], threading.Lock] = _token_locks) -> threading.Lock:
    """The lock of ``key`` in ``table`` (a token's, or a region's launches), made once."""
    with _token_locks_guard:
        lock = table.get(key)
        if lock is None:
            lock = table[key] = threading.Lock()
        return lock


def _serialize_launches() -> None:
    """moto's backend run_instances, one at a time per account and region."""
    from moto.ec2.models.instances import InstanceBackend

    original = InstanceBackend.run_instances
    if getattr(original, "_labtui_serialized", False):
        return

    def run_instances(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _lock_for((str(self.account_id), str(self.region_name)), _region_locks):
            return original(self, *args, **kwargs)

    run_instances.__doc__ = original.__doc__
    run_instances._labtui_serialized = True  # type: ignore[attr-defined]
    InstanceBackend.run_instances = run_instances  # type: ignore[method-assign]


def install() -> None:
    """Make moto's RunInstances honour ClientToken (idempotent: once per process)."""
    from moto.core.responses import ActionResult
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.responses.instances import InstanceResponse

    with _patch_lock:
        _serialize_launches()
        if getattr(InstanceResponse, "_labtui_client_tokens", False):
            return
        original = InstanceResponse.run_instances

        def run_instances(self: Any) -> Any:
            token = self._get_param("ClientToken")
            if not token:  # no token, no idempotency (moto fills in "ABCDE" later)
                return original(self)
            backend = self.ec2_backend
            wanted = fingerprint(self._get_params())
            with _lock_for((self.current_account, self.region, str(token))):
                book: dict[str, _Entry] = backend.__dict__.setdefault(_BOOK_ATTR, {})
                entry = book.get(token)
                if entry is not None:
                    reservation = backend.reservations.get(entry.reservation_id)
                    if reservation is not None:
                        if entry.fingerprint != wanted:
                            raise EC2ClientError(
                                "IdempotentParameterMismatch",
                                "Arguments on this idempotent request are inconsistent with "
                                "arguments used in previous request(s).")
                        self.error_on_dryrun()
                        # moto reports every RunInstances instance as pending; a replay
                        # shows the instances' state now, as AWS does (terminated too).
                        self.RESPONSE_KEY_PATH_TO_TRANSFORMER = {
                            k: v for k, v in self.RESPONSE_KEY_PATH_TO_TRANSFORMER.items()
                            if k != _PENDING_STATE}
                        return ActionResult(reservation)
                result = original(self)
                reservation = getattr(result, "result", None)
                reservation_id = getattr(reservation, "id", None)
                if reservation_id:
                    book[token] = _Entry(wanted, reservation_id)
                return result

        run_instances.__doc__ = original.__doc__
        InstanceResponse.run_instances = run_instances
        InstanceResponse._labtui_client_tokens = True
