"""The sandbox plays EMR where moto does not: real nodes, real bootstrap actions, real steps.

moto (5.2) keeps EMR clusters as records: every cluster lands in us-east-1 in server mode,
it is WAITING at once, its steps never advance, its bootstrap actions never run, its nodes
are untagged Windows-looking EC2 instances outside its subnet, its auto-termination policy
is dropped and terminating it leaves the nodes running. moto runs in the sandbox's process,
so :func:`install_moto_hooks` patches its EMR models and response class once, and
:class:`EmrPlayer` (one long-lived thread, plus one thread per live cluster) plays each
cluster as EMR does:

- **Region and nodes.** A cluster lives in the region its request was signed for (the
  credential scope of the Authorization header, as for every other service), its ARN names
  that region and ListClusters lists it there only. Its nodes are EC2 instances of that
  region in its Ec2SubnetId, with its Ec2KeyName, the EMR-managed security groups (plus the
  additional ones), its JobFlowRole's instance profile when one of that name exists, tagged
  as EMR tags them (the cluster's own tags, ``aws:elasticmapreduce:job-flow-id`` and
  ``aws:elasticmapreduce:instance-group-role``; AddTags/RemoveTags on the cluster reach the
  nodes), made under :data:`labtui.sandbox.machines.LAUNCH_LOCK` so the machine manager
  never boots one half made. Instance groups given as MasterInstanceType/InstanceCount get
  nodes too. Each node is a sandbox machine (``flavors.EMR_NODE``: login user ``hadoop``
  with passwordless sudo, the key pair's public key in its meta-data).
- **States.** STARTING until every node's machine has finished booting (cloud-init's
  /run/cloud-init/result.json exists on it), BOOTSTRAPPING while the bootstrap actions run,
  then RUNNING while a step runs and WAITING when none does; ReadyDateTime and EndDateTime
  are set when they happen. Instance groups and instances follow (PROVISIONING,
  BOOTSTRAPPING, RUNNING, then ENDED / TERMINATED).
- **Bootstrap actions** run on every node, in order, as real processes: the script is
  fetched from the emulator's S3 (or a ``file:`` path on the node), placed in
  /emr/instance-controller/lib/bootstrap-actions/<n>/ and run with its args as ``hadoop``
  (output in /emr/instance-controller/log/bootstrap-actions/<n>/). A non-zero exit (or a
  script that cannot be fetched) ends the cluster: TERMINATED_WITH_ERRORS, BOOTSTRAP_FAILURE,
  with EMR's message naming the node and the action.
- **Steps** run on the master one at a time, in order: PENDING, RUNNING, COMPLETED or
  FAILED (with Status.FailureDetails: Reason, Message — the last line the step wrote to
  stderr — and LogFile, the stderr.gz under the log URI). ``command-runner.jar`` runs its
  Args as a process, ``script-runner.jar`` fetches Args[0] from S3 and runs it with the rest;
  as ``hadoop`` in /home/hadoop with the environment an SSH session gets (/etc/environment:
  AWS_ENDPOINT_URL...). Any other jar FAILS: the sandbox runs no Java, and the step's stderr
  says so. ActionOnFailure is honoured (CONTINUE; CANCEL_AND_WAIT cancels the pending steps;
  TERMINATE_CLUSTER / TERMINATE_JOB_FLOW end the cluster with STEP_FAILURE, unless it is
  termination protected and kept alive). CancelSteps cancels pending steps and sends a
  running one SIGTERM (SEND_INTERRUPT) or kills it (TERMINATE_PROCESS). A step's live
  stdout and stderr are on the master in /mnt/var/log/hadoop/steps/<step-id>/, as on EMR.
- **Logs**, when the cluster has a LogUri: ``<LogUri>/<cluster-id>/steps/<step-id>/``
  {controller,stderr,stdout,syslog}.gz after each step and
  ``<LogUri>/<cluster-id>/node/<ec2-instance-id>/bootstrap-actions/<n>/``
  {controller,stderr,stdout}.gz after each bootstrap action (written through moto's S3).
- **Termination** (TerminateJobFlows, the last step of a cluster not kept alive, a step or
  bootstrap failure, idleness): TERMINATING at once, the running step and bootstrap
  processes killed and the pending steps CANCELLED, the nodes' EC2 instances terminated
  (their machines go), then TERMINATED or TERMINATED_WITH_ERRORS once no node's machine runs.
  Get/Put/RemoveAutoTerminationPolicy are served (moto lacks them; RunJobFlow's policy is
  kept): a cluster WAITING with no step for IdleTimeout seconds of :attr:`EmrPlayer.now`
  terminates (ALL_STEPS_COMPLETED, :data:`IDLE_MESSAGE`). SetKeepJobFlowAliveWhenNoSteps
  is served too.

A command runs on a node through ``guest/enter.py``: it joins the node's namespaces and
root, drops the capabilities of ``guest/launch.sh``'s bounding set before anything of the
machine runs, and becomes ``hadoop`` — a step can do no more than a process on the machine.
Every process is ended when its cluster terminates, when moto is reset, and when the
sandbox stops.

Not played: Hadoop, YARN, Spark, Hive or any Java (the applications are listed, not
installed); instance fleets (moto has none: such a cluster ends with VALIDATION_ERROR);
resizing (Add/ModifyInstanceGroups change moto's records, not the nodes); spot markets (a
SPOT group's nodes are spot instances, never interrupted, with no spot request); the
managed security groups of a cluster without Ec2SubnetId (moto makes them only in the
subnet's VPC: such nodes get the default VPC's default group); StepConcurrencyLevel above 1
(steps still run one at a time); step ExecutionRoleArn, security configurations and
Kerberos; the five-minute log uploads (logs are uploaded when a step or bootstrap action
ends); /emr/metricscollector/isbusy; clusters made through CloudFormation (kept as moto
keeps them). MasterPublicDnsName stays moto's fake name: clients reach the master by its
EC2 instance id (hosts.json), never by that name. Where the sandbox has no machines (not
root, not Linux) a cluster stays STARTING and its StateChangeReason says why.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from labtui.sandbox import flavors
from labtui.sandbox.container import GUEST
from labtui.sandbox.machines import LAUNCH_LOCK, MachineManager

log = logging.getLogger(__name__)

JOB_FLOW_TAG = "aws:elasticmapreduce:job-flow-id"
ROLE_TAG = "aws:elasticmapreduce:instance-group-role"
USER = flavors.EMR_NODE.user
STEP_LOGS = "/mnt/var/log/hadoop/steps"
STEP_WORK = "/mnt/var/lib/hadoop/steps"
BOOTSTRAP_LIB = "/emr/instance-controller/lib/bootstrap-actions"
BOOTSTRAP_LOGS = "/emr/instance-controller/log/bootstrap-actions"
IDLE_DEFAULT, IDLE_MIN, IDLE_MAX = 3600, 60, 604800
IDLE_CODE = "ALL_STEPS_COMPLETED"
IDLE_MESSAGE = "The cluster was idle for {seconds} seconds and its auto-termination policy " \
               "terminated it"
NO_JAVA = ("labtui sandbox: the sandbox runs no Java, so it cannot run the step's jar {jar}: "
           "only command-runner.jar (its Args run as a command) and script-runner.jar (Args[0] "
           "is a script in S3) steps run here")
BOOT_TIMEOUT = 600.0
LIVE = ("STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING")
FINAL = ("TERMINATED", "TERMINATED_WITH_ERRORS")
_CAPS = ("chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid",
         "setuid", "setpcap", "linux_immutable", "net_bind_service", "net_broadcast",
         "net_admin", "net_raw", "ipc_lock", "ipc_owner", "sys_module", "sys_rawio",
         "sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice",
         "sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write",
         "audit_control", "setfcap", "mac_override", "mac_admin", "syslog", "wake_alarm",
         "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore")

# Cluster and step state changes, made by moto's request threads (terminate, add steps,
# cancel) and by the player's threads; notified on every change.
_CHANGED = threading.Condition(threading.RLock())
_patch_lock = threading.Lock()


def dropped_capabilities() -> list[int]:
    """The numbers of the capabilities guest/launch.sh's final setpriv takes from a machine's
    bounding set (read from launch.sh itself, so the two never differ)."""
    text = (GUEST / "launch.sh").read_text()
    match = re.search(r"--bounding-set=(\S+)", text)
    if match is None:
        raise RuntimeError("guest/launch.sh has no --bounding-set")
    return [_CAPS.index(name.lstrip("-")) for name in match.group(1).split(",")]


def _utcnow() -> datetime:
    from moto.core.utils import utcnow

    return utcnow()


def _notify() -> None:
    with _CHANGED:
        _CHANGED.notify_all()


# ------------------------------------------------------------------------------ moto hooks


def install_moto_hooks() -> None:
    """Patch moto's EMR (once per process): see the module's docstring."""
    from moto.core.responses import ActionResult, BaseResponse, EmptyResult
    from moto.emr import models
    from moto.emr.exceptions import ValidationException
    from moto.emr.responses import ElasticMapReduceResponse as Response

    with _patch_lock:
        if getattr(Response, "_labtui_emr", False):
            return

        def get_region_from_url(self: Any, request: Any, full_url: str) -> str:
            for regex in Response.emr_region_regex:
                match = regex.search(self.parsed_url.netloc)
                if match:
                    return match.group(1)
            # the credential scope of the signature, as BaseResponse does for other services
            return BaseResponse.get_region_from_url(self, request, full_url)

        original_run_job_flow = Response.run_job_flow
        original_add_steps = Response.add_job_flow_steps

        def run_job_flow(self: Any) -> Any:
            idle = _idle_timeout(self._get_param("AutoTerminationPolicy"), ValidationException)
            with LAUNCH_LOCK:  # the machine manager sees the nodes only once they are made
                result = original_run_job_flow(self)
                made: Any = result.result
                cluster = self.backend.clusters[made["JobFlowId"]]
                _made(self.backend, cluster, idle)
            _notify()
            return result

        def add_job_flow_steps(self: Any) -> Any:
            cluster = self.backend.describe_cluster(self._get_param("JobFlowId"))
            if cluster.state not in LIVE:
                raise ValidationException("A job flow that is shutting down, terminated, or "
                                          "finished may not be modified.")
            result = original_add_steps(self)
            _notify()
            return result

        def get_auto_termination_policy(self: Any) -> Any:
            cluster = self.backend.describe_cluster(self._get_param("ClusterId"))
            idle = getattr(cluster, "_lt_idle", None)
            return ActionResult({"AutoTerminationPolicy": {"IdleTimeout": idle}}
                                if idle else {})

        def put_auto_termination_policy(self: Any) -> Any:
            cluster = self.backend.describe_cluster(self._get_param("ClusterId"))
            policy = self._get_param("AutoTerminationPolicy") or {}
            cluster._lt_idle = _idle_timeout(policy, ValidationException)
            _notify()
            return EmptyResult()

        def remove_auto_termination_policy(self: Any) -> Any:
            cluster = self.backend.describe_cluster(self._get_param("ClusterId"))
            cluster._lt_idle = None
            _notify()
            return EmptyResult()

        def set_keep_job_flow_alive_when_no_steps(self: Any) -> Any:
            keep = self._get_bool_param("KeepJobFlowAliveWhenNoSteps", False)
            for cid in self._get_param("JobFlowIds", []):
                self.backend.describe_cluster(cid).keep_job_flow_alive_when_no_steps = keep
            _notify()
            return EmptyResult()

        def cancel_steps(self: Any) -> Any:
            cluster = self.backend.describe_cluster(self._get_param("ClusterId"))
            option = self._get_param("StepCancellationOption") or "SEND_INTERRUPT"
            infos = [_cancel(cluster, str(sid), str(option))
                     for sid in self._get_param("StepIds", [])]
            _notify()
            return ActionResult({"CancelStepsInfoList": infos})

        _patch(Response, get_region_from_url=get_region_from_url, run_job_flow=run_job_flow,
               add_job_flow_steps=add_job_flow_steps,
               get_auto_termination_policy=get_auto_termination_policy,
               put_auto_termination_policy=put_auto_termination_policy,
               remove_auto_termination_policy=remove_auto_termination_policy,
               set_keep_job_flow_alive_when_no_steps=set_keep_job_flow_alive_when_no_steps,
               cancel_steps=cancel_steps)
        _patch_models(models)
        _patch(Response, _labtui_emr=True)


def _patch(owner: Any, **members: Any) -> None:
    """Set class members of moto's (its methods and properties, replaced in place)."""
    for name, value in members.items():
        setattr(owner, name, value)


def _idle_timeout(policy: Any, error: Any) -> int | None:
    """RunJobFlow's / PutAutoTerminationPolicy's policy as seconds (None: no policy)."""
    if not policy:
        return None
    value = policy.get("IdleTimeout") if hasattr(policy, "get") else None
    seconds = IDLE_DEFAULT if value in (None, "") else int(value)
    if not IDLE_MIN <= seconds <= IDLE_MAX:
        raise error(f"The IdleTimeout {seconds} is not valid: it must be between {IDLE_MIN} "
                    f"and {IDLE_MAX} seconds.")
    return seconds


def _patch_models(models: Any) -> None:
    Cluster, Step, Group, Node = (models.Cluster, models.Step, models.InstanceGroup,
                                  models.Instance)
    Backend = models.ElasticMapReduceBackend
    original_add_tags, original_remove_tags = Cluster.add_tags, Cluster.remove_tags
    original_protection = Backend.set_termination_protection

    def run_bootstrap_actions(self: Any) -> None:
        """moto makes the cluster WAITING (or TERMINATED) at once: the player plays it."""

    def add_steps(self: Any, steps: list[dict[str, Any]]) -> list[Any]:
        added = [Step(state="PENDING", **step) for step in steps]
        with _CHANGED:
            self.steps.extend(added)
        return added

    def terminate(self: Any) -> None:  # TerminateJobFlows
        request_termination(self, "USER_REQUEST", "Terminated by user request", "TERMINATED")

    def add_tags(self: Any, tags: dict[str, str]) -> None:
        original_add_tags(self, tags)
        for node in _live_nodes(self):  # EMR propagates the cluster's tags to its nodes
            node.ec2_instance.add_tags(dict(tags))

    def remove_tags(self: Any, keys: list[str]) -> None:
        original_remove_tags(self, keys)
        for node in _live_nodes(self):
            with contextlib.suppress(Exception):
                node.ec2_instance.ec2_backend.delete_tags([node.ec2_instance.id],
                                                          dict.fromkeys(keys))

    def set_termination_protection(self: Any, job_flow_ids: list[str], value: bool) -> None:
        original_protection(self, job_flow_ids, value)
        for cid in job_flow_ids:  # EMR sets disableApiTermination on every node
            for node in _live_nodes(self.clusters[cid]):
                node.ec2_instance.disable_api_termination = bool(value)

    def cluster_status(self: Any) -> dict[str, Any]:
        reason = {k: v for k, v in (("Code", getattr(self, "_lt_code", None)),
                                    ("Message", getattr(self, "last_state_change_reason", None)))
                  if v}
        return {"State": self.state, "StateChangeReason": reason,
                "Timeline": {"CreationDateTime": self.creation_datetime,
                             "ReadyDateTime": self.ready_datetime,
                             "EndDateTime": self.end_datetime}}

    def step_status(self: Any) -> dict[str, Any]:
        status: dict[str, Any] = {
            "State": self.state, "StateChangeReason": {},
            "Timeline": {"CreationDateTime": self.creation_date_time,
                         "StartDateTime": self.start_date_time,
                         "EndDateTime": self.end_date_time}}
        failure = getattr(self, "_lt_failure", None)
        if failure:
            status["FailureDetails"] = failure
        return status

    def group_status(self: Any) -> dict[str, Any]:
        reason = {k: v for k, v in (("Code", getattr(self, "_lt_code", None)),
                                    ("Message", getattr(self, "_lt_message", None))) if v}
        return {"State": self.state, "StateChangeReason": reason,
                "Timeline": {"CreationDateTime": self.creation_date_time,
                             "ReadyDateTime": self.ready_date_time,
                             "EndDateTime": self.end_date_time}}

    def running_count(self: Any) -> int:
        return 0 if self.state in ("PROVISIONING", "ENDED", "TERMINATED") else self.num_instances

    def node_status(self: Any) -> dict[str, Any]:
        group = self.instance_group
        state = {"PROVISIONING": "PROVISIONING", "BOOTSTRAPPING": "BOOTSTRAPPING",
                 "ENDED": "TERMINATED", "TERMINATING": "RUNNING"}.get(group.state, group.state)
        reason = {"Code": "CLUSTER_TERMINATED", "Message": "Cluster was terminated."} \
            if state == "TERMINATED" else {}
        return {"State": state, "StateChangeReason": reason,
                "Timeline": {"CreationDateTime": group.creation_date_time,
                             "ReadyDateTime": group.ready_date_time,
                             "EndDateTime": group.end_date_time}}

    def start(self: Any) -> None:
        """moto starts a cluster's first step at once: the player starts steps."""

    _patch(Backend, run_instances=_run_nodes,
           set_termination_protection=set_termination_protection)
    _patch(Cluster, run_bootstrap_actions=run_bootstrap_actions, add_steps=add_steps,
           terminate=terminate, add_tags=add_tags, remove_tags=remove_tags,
           status=property(cluster_status))
    _patch(Step, start=start, status=property(step_status))
    _patch(Group, status=property(group_status),
           running_instance_count=property(running_count))
    _patch(Node, status=property(node_status))


def _run_nodes(self: Any, cluster_id: str, instances: dict[str, Any], group: Any) -> None:
    """ElasticMapReduceBackend.run_instances: a group's nodes as EMR launches them."""
    from moto.emr.models import Instance as Node

    cluster = self.clusters[cluster_id]
    role = group.role
    if role == "MASTER":
        groups = [cluster.master_security_group, *(cluster.additional_master_security_groups
                                                   or [])]
    else:
        groups = [cluster.slave_security_group, *(cluster.additional_slave_security_groups
                                                  or [])]
    labels = {**dict(cluster._tags), JOB_FLOW_TAG: cluster.id, ROLE_TAG: role}
    ec2 = self.ec2_backend
    options: dict[str, Any] = {
        "instance_type": group.instance_type, "is_instance_type_default": False,
        "region_name": self.region_name, "key_name": cluster.ec2_key_name or None,
        "security_group_ids": [g for g in groups if g], "tags": {"instance": labels},
        "disable_api_termination": bool(cluster.termination_protected)}
    if cluster.ec2_subnet_id:
        options["subnet_id"] = cluster.ec2_subnet_id
    elif cluster.availability_zone:
        options["placement"] = cluster.availability_zone
    if str(getattr(group, "market", "")).upper() == "SPOT":  # InstanceLifecycle: spot
        options["instance_market_options"] = {"MarketType": "spot"}
    count = int(group.num_instances or instances.get("instance_count") or 0)
    if count <= 0:
        return
    reservation = ec2.run_instances(flavors.EMR_NODE.image_id, count, None, [], **options)
    profile = _instance_profile(self.account_id, cluster.role)
    for inst in reservation.instances:
        if profile:
            with contextlib.suppress(Exception):
                ec2.associate_iam_instance_profile(inst.id, iam_instance_profile_name=profile)
        cluster.add_instance(Node(ec2_instance=inst, instance_group=group))


def _instance_profile(account: str, name: str | None) -> str | None:
    """``name`` when an instance profile of that name exists (EMR's JobFlowRole)."""
    if not name:
        return None
    from moto.iam.models import iam_backends

    iam = dict.get(iam_backends, account)
    # moto keeps IAM under its partition ("aws"); dict.get never makes a backend
    backend = dict.get(iam, "aws") if iam is not None else None
    profiles = getattr(backend, "instance_profiles", {}) if backend is not None else {}
    return name if any(p.name == name for p in list(profiles.values())) else None


def _made(backend: Any, cluster: Any, idle: int | None) -> None:
    """After moto's RunJobFlow (under LAUNCH_LOCK): nodes for groups given by instance type
    and count, the groups' timelines, the zone of the subnet, the policy; then played."""
    if not cluster.ec2_instances:
        for group in sorted(cluster.instance_groups, key=lambda g: g.role != "MASTER"):
            backend.run_instances(cluster.id, {"instance_count": group.num_instances}, group)
    if cluster.ec2_subnet_id:
        with contextlib.suppress(Exception):
            subnet = backend.ec2_backend.get_subnet(cluster.ec2_subnet_id)
            cluster.availability_zone = subnet.availability_zone
    for group in cluster.instance_groups:
        group.state, group.ready_date_time = "PROVISIONING", None
    cluster._lt_idle = idle
    cluster.last_state_change_reason = None
    cluster._lt_played = True


def _live_nodes(cluster: Any) -> list[Any]:
    return [n for n in cluster.ec2_instances
            if getattr(n.ec2_instance, "state", None) not in ("terminated", "shutting-down")]


def _cancel(cluster: Any, step_id: str, option: str) -> dict[str, str]:
    with _CHANGED:
        step = next((s for s in cluster.steps if s.id == step_id), None)
        if step is None:
            return {"StepId": step_id, "Status": "FAILED",
                    "Reason": f"Step id '{step_id}' is not valid."}
        if step.state == "PENDING":
            step.state, step.end_date_time = "CANCELLED", _utcnow()
            return {"StepId": step_id, "Status": "SUBMITTED"}
        if step.state in ("RUNNING", "CANCEL_PENDING"):
            step.state, step._lt_cancel = "CANCEL_PENDING", option
            return {"StepId": step_id, "Status": "SUBMITTED"}
        return {"StepId": step_id, "Status": "FAILED",
                "Reason": f"Step {step_id} is {step.state} and cannot be cancelled."}


def request_termination(cluster: Any, code: str, message: str, final: str) -> None:
    """The cluster starts terminating (TERMINATING at once); the player ends its processes
    and nodes, then sets ``final``. The first reason given stays."""
    with _CHANGED:
        if cluster.state in FINAL or getattr(cluster, "_lt_terminate", None):
            return
        cluster._lt_terminate = final
        cluster.state = "TERMINATING"
        cluster._lt_code, cluster.last_state_change_reason = code, message
        if not getattr(cluster, "_lt_played", False):  # not the player's: as moto did
            cluster.state, cluster.end_datetime = final, _utcnow()
        _CHANGED.notify_all()


# ------------------------------------------------------------------------------ the player


class _Gone(Exception):
    """The cluster vanished (moto was reset) or the player stops."""


@dataclass
class _Node:
    instance: Any            # moto's EC2 instance
    role: str                # MASTER / CORE / TASK
    booted: bool = False
    prepared: bool = False

    @property
    def id(self) -> str:
        return str(self.instance.id)


@dataclass
class _Outcome:
    code: int
    stdout: bytes = b""
    stderr: bytes = b""
    seconds: float = 0.0
    cancelled: str | None = None


class EmrPlayer:
    """Plays the sandbox's EMR clusters on its machines (see the module's docstring).

    ``now`` is the clock idleness is measured with (seconds; ``time.monotonic`` unless a
    test gives another): a test advances it rather than waiting out an IdleTimeout.
    """

    def __init__(self, machines: MachineManager, account_id: str = "123456789012",
                 poll_interval: float = 0.25) -> None:
        self.machines = machines
        self.account_id = account_id
        self.poll_interval = poll_interval
        self.now: Callable[[], float] = time.monotonic
        self.caps = ",".join(str(c) for c in dropped_capabilities())
        self._runs: dict[str, _Run] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._passes = 0
        install_moto_hooks()

    def start(self) -> EmrPlayer:
        self._stop.clear()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, daemon=True,
                                            name="labtui-sandbox-emr")
            self._thread.start()
        return self

    def stop(self) -> None:
        """End every step and bootstrap process and every cluster thread (the clusters stay
        as they are in moto; their nodes go with the machines)."""
        self._stop.set()
        _notify()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        for run in list(self._runs.values()):
            run.end()
        self._runs.clear()

    def sync(self, timeout: float = 10.0) -> None:
        """Wait until the player has looked at every cluster from now."""
        target = self._passes + 2
        deadline = time.monotonic() + timeout
        while self._passes < target and time.monotonic() < deadline and \
                self._thread is not None and self._thread.is_alive():
            _notify()
            time.sleep(0.02)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._pass()
            except Exception as exc:  # keep playing; the next pass may succeed
                log.info("sandbox emr: pass failed: %s: %s", type(exc).__name__, exc)
            self._passes += 1
            with _CHANGED:
                _CHANGED.wait(self.poll_interval)

    def _pass(self) -> None:
        from moto.emr.models import emr_backends

        seen: dict[str, tuple[str, Any]] = {}
        account = dict.get(emr_backends, self.account_id)
        for region, backend in list(dict.items(account or {})):
            for cid, cluster in list(backend.clusters.items()):
                seen[cid] = (region, cluster)
        for cid, run in list(self._runs.items()):
            current = seen.get(cid)
            if current is None or current[1] is not run.cluster or run.finished:
                if current is None or current[1] is not run.cluster:
                    run.end()  # moto was reset: the cluster and its nodes are gone
                if not run.alive:
                    self._runs.pop(cid, None)
        for cid, (region, cluster) in seen.items():
            if cid in self._runs or not getattr(cluster, "_lt_played", False):
                continue
            if cluster.state in FINAL or getattr(cluster, "_lt_done", False):
                continue
            run = _Run(self, cluster, region)
            self._runs[cid] = run
            run.start()


class _Run:
    """One cluster's life, from STARTING to TERMINATED, in a thread of its own."""

    def __init__(self, player: EmrPlayer, cluster: Any, region: str) -> None:
        self.player = player
        self.cluster = cluster
        self.region = region
        self.nodes = [_Node(n.ec2_instance, n.instance_group.role)
                      for n in cluster.ec2_instances]
        self.nodes.sort(key=lambda n: n.role != "MASTER")
        self._ended = threading.Event()
        self._procs: dict[subprocess.Popen[bytes], int] = {}  # -> the thread running it
        self._aborting = threading.Event()
        self._procs_lock = threading.Lock()
        self._thread = threading.Thread(target=self._main, daemon=True,
                                        name=f"labtui-sandbox-emr-{cluster.id}")
        self.finished = False

    # ------------------------------------------------------------ thread

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def end(self) -> None:
        """Stop playing: every process of the cluster is ended now."""
        self._ended.set()
        self._kill_all()
        _notify()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=15)
            self._kill_all(wait=True)

    def _main(self) -> None:
        try:
            self._play()
        except _Gone:
            pass
        except _Terminating:
            self._terminate()
        except Exception as exc:  # a bug of the sandbox's, said as EMR says it
            log.warning("sandbox emr: %s failed: %s: %s", self.cluster.id,
                        type(exc).__name__, exc, exc_info=True)
            with contextlib.suppress(Exception):
                request_termination(self.cluster, "INTERNAL_ERROR",
                                    f"labtui sandbox: playing the cluster failed: "
                                    f"{type(exc).__name__}: {exc}", "TERMINATED_WITH_ERRORS")
                self._terminate()
        finally:
            self._kill_all()
            self.finished = True
            self.cluster._lt_done = True

    def _check(self) -> bool:
        """True when the cluster is to terminate; _Gone when the run is over."""
        if self._ended.is_set() or self.player._stop.is_set():
            raise _Gone()
        return bool(getattr(self.cluster, "_lt_terminate", None))

    def _wait(self, seconds: float) -> None:
        with _CHANGED:
            _CHANGED.wait(seconds)

    # ------------------------------------------------------------ the life of a cluster

    def _play(self) -> None:
        cluster = self.cluster
        if not self.nodes:
            request_termination(cluster, "VALIDATION_ERROR",
                                "labtui sandbox: the cluster has no instances to play (the "
                                "sandbox plays instance groups; instance fleets are not "
                                "played)", "TERMINATED_WITH_ERRORS")
            return self._terminate()
        if not self._boot():
            return self._terminate()
        self._set_state("BOOTSTRAPPING", "BOOTSTRAPPING")
        for node in self.nodes:
            self._prepare(node)
        if not self._bootstrap():
            return self._terminate()
        with _CHANGED:
            now = _utcnow()
            cluster.ready_datetime = now
            for group in cluster.instance_groups:
                group.state, group.ready_date_time = "RUNNING", now
            if cluster.state == "BOOTSTRAPPING":
                cluster.state = "WAITING"
        self._serve()
        self._terminate()

    def _set_state(self, state: str, groups: str) -> None:
        with _CHANGED:
            if self.cluster.state in LIVE:
                self.cluster.state = state
            for group in self.cluster.instance_groups:
                group.state = groups
            _CHANGED.notify_all()

    def _boot(self) -> bool:
        """STARTING until every node's machine has booted; False: terminate instead."""
        cluster = self.cluster
        deadline = time.monotonic() + BOOT_TIMEOUT
        while True:
            if self._check():
                return False
            problem = self.player.machines.problem
            if problem:
                with _CHANGED:
                    cluster.last_state_change_reason = (
                        f"labtui sandbox: the nodes get no machine here: {problem}")
                self._wait(1.0)
                continue
            for node in self.nodes:
                if node.booted:
                    continue
                if node.instance.state in ("terminated", "shutting-down", "stopped",
                                           "stopping"):
                    return self._node_lost(node)
                pid = self.player.machines.init_pid(node.id)
                if pid is not None and self._console_says_up(node) and self._run(pid, "root", [
                        "test", "-e", "/run/cloud-init/result.json"]).code == 0:
                    node.booted = True
            if all(n.booted for n in self.nodes):
                return True
            if time.monotonic() > deadline:
                late = [n.id for n in self.nodes if not n.booted]
                request_termination(cluster, "INSTANCE_FAILURE",
                                    f"labtui sandbox: the node(s) {', '.join(late)} did not "
                                    f"finish booting in {BOOT_TIMEOUT:.0f} seconds",
                                    "TERMINATED_WITH_ERRORS")
                return False
            self._wait(0.3)

    def _console_says_up(self, node: _Node) -> bool:
        """The machine's init has printed that its boot is over (cheap, read on the host);
        the machine's own cloud-init result is asked only then."""
        try:
            text = (self.player.machines.instance_dir(node.id) / "console.log").read_bytes()
        except OSError:
            return False
        return b"Reached target Multi-User System." in text

    def _node_lost(self, node: _Node) -> bool:
        who = "master node" if node.role == "MASTER" else f"{node.role.lower()} node {node.id}"
        request_termination(self.cluster, "INSTANCE_FAILURE",
                            f"The {who} was terminated by user.", "TERMINATED_WITH_ERRORS")
        return False

    def _pid(self, node: _Node) -> int:
        pid = self.player.machines.init_pid(node.id)
        if pid is None:
            if not self._check():
                self._node_lost(node)
            raise _Terminating()
        return pid

    def _prepare(self, node: _Node) -> None:
        """The folders EMR's instance controller keeps on every node."""
        if node.prepared:
            return
        folders = [STEP_LOGS, STEP_WORK, BOOTSTRAP_LIB, BOOTSTRAP_LOGS, "/emr/metricscollector"]
        done = self._run(self._pid(node), "root", [
            "sh", "-c", 'mkdir -p "$@" && chown hadoop:hadoop "$@"', "prepare", *folders])
        if done.code != 0:
            raise RuntimeError(f"preparing {node.id} failed: {_text(done.stderr)}")
        node.prepared = True

    # ------------------------------------------------------------ bootstrap actions

    def _bootstrap(self) -> bool:
        actions = list(self.cluster.bootstrap_actions)
        if not actions:
            return not self._check()
        failures: dict[str, tuple[int, str]] = {}
        threads = []
        for node in self.nodes:
            thread = threading.Thread(target=self._bootstrap_node, args=(node, actions,
                                                                          failures),
                                      daemon=True, name=f"labtui-sandbox-emr-ba-{node.id}")
            thread.start()
            threads.append(thread)
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.2)
                if self._check():
                    self._kill_all()
        if self._check():
            return False
        if failures:
            request_termination(self.cluster, "BOOTSTRAP_FAILURE",
                                self._bootstrap_message(failures), "TERMINATED_WITH_ERRORS")
            return False
        return True

    def _bootstrap_message(self, failures: dict[str, tuple[int, str]]) -> str:
        roles = {n.id: n.role for n in self.nodes}
        master = [(i, f) for i, f in failures.items() if roles.get(i) == "MASTER"]
        if master:
            iid, (number, what) = master[0]
            if what == "download":
                return (f"Master instance ({iid}) failed attempting to download bootstrap "
                        f"action {number} file from S3")
            return (f"On the master instance ({iid}), bootstrap action {number} returned a "
                    "non-zero return code")
        number = min(n for n, _ in failures.values())
        ids = sorted(i for i, (n, _) in failures.items() if n == number)
        if all(failures[i][1] == "download" for i in ids):
            return (f"{len(ids)} slave instance(s) (including {', '.join(ids[:2])}) failed "
                    f"attempting to download bootstrap action {number} file from S3")
        noun = "slave instance" if len(ids) == 1 else "slave instances"
        return (f"On {len(ids)} {noun} (including {' and '.join(ids[:2])}), bootstrap action "
                f"{number} returned a non-zero return code")

    def _bootstrap_node(self, node: _Node, actions: list[Any],
                        failures: dict[str, tuple[int, str]]) -> None:
        try:
            for number, action in enumerate(actions, 1):
                if failures or self._check():
                    return
                ok = self._bootstrap_action(node, number, action)
                if ok is not True:
                    if not self._aborting.is_set():  # not ended by another node's failure
                        failures[node.id] = (number, ok or "exit")
                        self._aborting.set()  # the other nodes' actions end: the cluster fails
                        self._kill_all(others_than=threading.get_ident())
                    return
        except (_Gone, _Terminating):
            return
        except Exception as exc:
            log.warning("sandbox emr: bootstrap on %s failed: %s", node.id, exc)
            failures[node.id] = (0, "exit")

    def _bootstrap_action(self, node: _Node, number: int, action: Any) -> bool | str:
        """Run one bootstrap action on one node: True, "download" or "exit"."""
        path, args = str(action.script_path or ""), [str(a) for a in action.args or []]
        pid = self._pid(node)
        logs, lib = f"{BOOTSTRAP_LOGS}/{number}", f"{BOOTSTRAP_LIB}/{number}"
        started = time.monotonic()
        when = _stamp()
        self._run(pid, USER, ["mkdir", "-p", logs, lib])
        if path.startswith("file:"):  # a script already on the node
            target = "/" + path[len("file:"):].lstrip("/")
            lines = [f"{when} INFO Running local file '{target}'"]
        else:
            lines = [f"{when} INFO Fetching file '{path}'"]
            script, why = self._fetch(path)
            if script is None:
                lines.append(f"{_stamp()} ERROR Failed to download {path}: {why}")
                self._put_node_file(pid, f"{logs}/stderr", (why + "\n").encode())
                self._bootstrap_logs(node, number, pid, logs, lines)
                return "download"
            target = f"{lib}/{_basename(path)}"
            self._put_node_file(pid, target, script, mode="755")
        command = [target, *args]
        lines.append(f"{_stamp()} INFO startExec '{shlex.join(command)}'")
        outcome = self._run_logged(pid, command, logs, cwd=lib)
        if outcome.code != 0 and self._aborting.is_set():
            return "killed"
        lines.append(f"{_stamp()} INFO Execution ended with ret val {outcome.code}")
        if outcome.code != 0:
            lines.append(f"{_stamp()} WARN Execution failed with code '{outcome.code}'")
        lines.append(f"{_stamp()} INFO total process run time: "
                     f"{int(time.monotonic() - started)} seconds")
        self._bootstrap_logs(node, number, pid, logs, lines)
        return True if outcome.code == 0 else "exit"

    def _bootstrap_logs(self, node: _Node, number: int, pid: int, logs: str,
                        lines: list[str]) -> None:
        controller = ("\n".join(lines) + "\n").encode()
        self._put_node_file(pid, f"{logs}/controller", controller)
        files = {"controller": controller, "stdout": self._read(pid, f"{logs}/stdout"),
                 "stderr": self._read(pid, f"{logs}/stderr")}
        self._upload(f"node/{node.id}/bootstrap-actions/{number}", files)

    # ------------------------------------------------------------ steps

    def _serve(self) -> None:
        """Run the pending steps one at a time; WAITING between; end when told or idle."""
        cluster = self.cluster
        idle_since: float | None = None
        while not self._check():
            if self.nodes[0].instance.state != "running":
                self._node_lost(self.nodes[0])
                return
            with _CHANGED:
                step = next((s for s in cluster.steps if s.state == "PENDING"), None)
                if step is not None:
                    step.state, step.start_date_time = "RUNNING", _utcnow()
                    cluster.state = "RUNNING"
            if step is not None:
                idle_since = None
                try:
                    self._step(step)
                except _Terminating:
                    return
                continue
            if not cluster.keep_job_flow_alive_when_no_steps:
                failed = any(s.state == "FAILED" for s in cluster.steps)
                request_termination(cluster, "ALL_STEPS_COMPLETED",
                                    "Steps completed with errors" if failed
                                    else "Steps completed", "TERMINATED")
                return
            with _CHANGED:
                if cluster.state == "RUNNING":
                    cluster.state = "WAITING"
            if idle_since is None:
                idle_since = self.player.now()
            timeout = getattr(cluster, "_lt_idle", None)
            if timeout and self.player.now() - idle_since >= timeout:
                request_termination(cluster, IDLE_CODE, IDLE_MESSAGE.format(seconds=timeout),
                                    "TERMINATED")
                return
            self._wait(self.player.poll_interval)

    def _step(self, step: Any) -> None:
        master = self.nodes[0]
        pid = self._pid(master)
        sid, jar = step.id, str(step.jar or "")
        args = [str(a) for a in step.args or []]
        logs, work = f"{STEP_LOGS}/{sid}", f"{STEP_WORK}/{sid}"
        started = time.monotonic()
        self._run(pid, "root", ["sh", "-c", 'mkdir -p "$@" && chown hadoop:hadoop "$@"',
                                "step", logs, work])
        lines = [f"{_stamp()} INFO Step created for {sid}: {step.name}",
                 f"{_stamp()} INFO Ensure step jar file {jar}"]
        command: list[str] | None = None
        if jar.endswith("command-runner.jar"):
            if args:
                command = args
            else:
                self._put_node_file(pid, f"{logs}/stderr",
                                    b"command-runner.jar: the step has no Args to run\n",
                                    append=True)
        elif jar.endswith("script-runner.jar"):
            script, why = self._fetch(args[0]) if args else (None, "the step has no Args: "
                                                             "Args[0] names the script")
            if script is None:
                self._put_node_file(pid, f"{logs}/stderr",
                                    f"script-runner.jar: cannot fetch {args[0] if args else ''}"
                                    f": {why}\n".encode(), append=True)
            else:
                target = f"{work}/{_basename(args[0])}"
                self._put_node_file(pid, target, script, mode="755")
                command = [target, *args[1:]]
        else:
            self._put_node_file(pid, f"{logs}/stderr", (NO_JAVA.format(jar=jar) + "\n").encode(),
                                append=True)
        if command is not None:
            lines += [f"{_stamp()} INFO startExec '{shlex.join(command)}'",
                      f"{_stamp()} INFO redirectOutput to {logs}/stdout",
                      f"{_stamp()} INFO redirectError to {logs}/stderr",
                      f"{_stamp()} INFO Working dir /home/{USER}",
                      f"{_stamp()} INFO ProcessRunner started child process as user {USER}"]
            outcome = self._run_logged(pid, command, logs, cancel=step)
            code = outcome.code
            if self._check():  # the cluster terminates: the step is cancelled with it
                raise _Terminating()
        else:
            outcome, code = _Outcome(1), 1
        seconds = int(time.monotonic() - started)
        if outcome.cancelled:
            lines.append(f"{_stamp()} INFO Step cancelled ({outcome.cancelled}) after "
                         f"{seconds} seconds")
        elif code == 0:
            lines.append(f"{_stamp()} INFO Step succeeded with exitCode 0 and took {seconds} "
                         "seconds")
        else:
            lines.append(f"{_stamp()} WARN Step failed with exitCode {code} and took "
                         f"{seconds} seconds")
        controller = ("\n".join(lines) + "\n").encode()
        syslog = (f"{_stamp()} INFO labtui sandbox: the step ran as a process on the master "
                  f"({master.id}) as user {USER}; no Hadoop or YARN job was submitted\n").encode()
        self._put_node_file(pid, f"{logs}/controller", controller)
        self._put_node_file(pid, f"{logs}/syslog", syslog)
        stderr = self._read(pid, f"{logs}/stderr")
        uploaded = self._upload(f"steps/{sid}", {
            "controller": controller, "stderr": stderr,
            "stdout": self._read(pid, f"{logs}/stdout"), "syslog": syslog})
        self._finish_step(step, outcome, code, stderr,
                          f"{uploaded}/stderr.gz" if uploaded else None)

    def _finish_step(self, step: Any, outcome: _Outcome, code: int, stderr: bytes,
                     log_file: str | None) -> None:
        cluster = self.cluster
        with _CHANGED:
            step.end_date_time = _utcnow()
            if outcome.cancelled or step.state == "CANCEL_PENDING":
                step.state = "CANCELLED"
                _CHANGED.notify_all()
                return
            if code == 0:
                step.state = "COMPLETED"
                _CHANGED.notify_all()
                return
            step.state = "FAILED"
            details = {"Reason": "Unknown Error.", "Message": _last_line(stderr) or (
                f"The step's command exited with status {code} and wrote nothing to stderr.")}
            if log_file:
                details["LogFile"] = log_file
            step._lt_failure = details
            action = str(step.action_on_failure or "TERMINATE_CLUSTER")
            if action in ("TERMINATE_CLUSTER", "TERMINATE_JOB_FLOW") and (
                    cluster.termination_protected and cluster.keep_job_flow_alive_when_no_steps):
                action = "CANCEL_AND_WAIT"  # protected and kept alive: EMR does not terminate
            if action in ("CANCEL_AND_WAIT", "TERMINATE_CLUSTER", "TERMINATE_JOB_FLOW"):
                for other in cluster.steps:
                    if other.state == "PENDING":
                        other.state, other.end_date_time = "CANCELLED", _utcnow()
            _CHANGED.notify_all()
        if action in ("TERMINATE_CLUSTER", "TERMINATE_JOB_FLOW"):
            request_termination(cluster, "STEP_FAILURE", "Shut down as step failed",
                                "TERMINATED_WITH_ERRORS")

    # ------------------------------------------------------------ termination

    def _terminate(self) -> None:
        """TERMINATING: processes ended, pending steps cancelled, nodes terminated; then the
        final state once no node's machine runs."""
        cluster = self.cluster
        if not getattr(cluster, "_lt_terminate", None):
            return
        self._kill_all()
        with _CHANGED:
            for step in cluster.steps:
                if step.state in ("PENDING", "RUNNING", "CANCEL_PENDING"):
                    step.state, step.end_date_time = "CANCELLED", _utcnow()
            for group in cluster.instance_groups:
                group.state = "TERMINATING"
        ids = []
        for node in self.nodes:
            inst = node.instance
            if inst.state not in ("terminated",):
                inst.disable_api_termination = False
                ids.append(inst.id)
        if ids:
            with contextlib.suppress(Exception):
                self.nodes[0].instance.ec2_backend.terminate_instances(ids)
        deadline = time.monotonic() + 60
        while any(self.player.machines.init_pid(n.id) is not None for n in self.nodes):
            if self._ended.is_set() or time.monotonic() > deadline:
                break
            self._wait(0.1)
        self.player.machines.sync(timeout=10)
        with _CHANGED:
            now = _utcnow()
            cluster.state = cluster._lt_terminate
            cluster.end_datetime = now
            for group in cluster.instance_groups:
                group.state, group.end_date_time = "ENDED", now
                group._lt_code, group._lt_message = "CLUSTER_TERMINATED", "Job flow terminated"
            _CHANGED.notify_all()

    # ------------------------------------------------------------ processes on a node

    def _spawn(self, pid: int, user: str, argv: list[str],
               stdin: bool = False) -> subprocess.Popen[bytes]:
        """``argv`` on the machine (guest/enter.py), in a process group of its own."""
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(GUEST / "enter.py"), str(pid), user,
             self.player.caps, "--", *argv],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True, close_fds=True,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})
        with self._procs_lock:
            self._procs[proc] = threading.get_ident()
        if self._ended.is_set():
            self._kill(proc)
        return proc

    def _run(self, pid: int, user: str, argv: list[str], stdin: bytes | None = None,
             cancel: Any = None) -> _Outcome:
        """Run ``argv`` on the machine whose init is ``pid``; killed when the cluster ends
        (or, with ``cancel`` a step, signalled when the step is cancelled)."""
        started = time.monotonic()
        proc = self._spawn(pid, user, argv, stdin is not None)
        signalled: str | None = None
        payload = stdin
        try:
            while True:
                try:
                    out, err = proc.communicate(payload, timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    payload = None
                if self._ended.is_set() or getattr(self.cluster, "_lt_terminate", None):
                    self._kill(proc)
                option = getattr(cancel, "_lt_cancel", None) if cancel is not None else None
                if option and not signalled:
                    signalled = option
                    if option == "TERMINATE_PROCESS":
                        self._kill(proc)
                    else:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(proc.pid, signal.SIGTERM)  # passed on to the command
        finally:
            with self._procs_lock:
                self._procs.pop(proc, None)
        return _Outcome(proc.returncode, out or b"", err or b"", time.monotonic() - started,
                        signalled)

    def _run_logged(self, pid: int, command: list[str], logs: str, cwd: str | None = None,
                    cancel: Any = None) -> _Outcome:
        """``command`` as hadoop, its output appended to ``logs``/stdout and stderr on the
        node (live, where EMR keeps them)."""
        script = 'd=$1; shift; cd "${0#cwd=}" 2>/dev/null || cd; ' \
                 'exec "$@" >>"$d/stdout" 2>>"$d/stderr" </dev/null'
        outcome = self._run(pid, USER, ["sh", "-c", script, f"cwd={cwd or ''}", logs,
                                        *command], cancel=cancel)
        if outcome.stderr and outcome.code in (125, 126, 127):  # could not enter or exec
            self._put_node_file(pid, f"{logs}/stderr", outcome.stderr, append=True)
        return outcome

    def _put_node_file(self, pid: int, path: str, data: bytes, mode: str | None = None,
                       append: bool = False) -> None:
        script = ('d=$(dirname "$1") && mkdir -p "$d" && cat ' + ('>>' if append else '>') +
                  ' "$1"' + (f' && chmod {mode} "$1"' if mode else ""))
        done = self._run(pid, USER, ["sh", "-c", script, "put", path], stdin=data)
        if done.code != 0 and not self._ended.is_set():
            log.info("sandbox emr: writing %s on the node failed: %s", path, _text(done.stderr))

    def _read(self, pid: int, path: str) -> bytes:
        done = self._run(pid, USER, ["sh", "-c", 'cat "$1" 2>/dev/null || true', "read", path])
        return done.stdout

    def _kill(self, proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def _kill_all(self, others_than: int | None = None, wait: bool = False) -> None:
        """Kill the cluster's processes (but those a thread ``others_than`` runs); their
        threads reap them (``wait``: here, once those threads are gone)."""
        with self._procs_lock:
            procs = [p for p, owner in self._procs.items() if owner != others_than]
        for proc in procs:
            self._kill(proc)
        for proc in procs if wait else []:
            with contextlib.suppress(Exception):
                proc.wait(timeout=5)

    # ------------------------------------------------------------ S3

    def _fetch(self, path: str) -> tuple[bytes | None, str]:
        """The script at ``path`` (s3://bucket/key) from the emulator's S3: (content, "") or
        (None, why)."""
        bucket, key = _s3_parts(path)
        if bucket is None:
            return None, (f"{path!r} is not an s3:// URI (the sandbox fetches bootstrap and "
                          "script-runner scripts from S3)")
        try:
            found = _s3(self.player.account_id).get_object(bucket, key)
        except Exception as exc:  # moto's MissingBucket and the like
            return None, f"{type(exc).__name__}: the bucket {bucket!r} cannot be read ({exc})"
        if found is None:
            return None, (f"NoSuchKey: The specified key does not exist (bucket {bucket!r}, "
                          f"key {key!r})")
        return bytes(found.value), ""

    def _upload(self, relative: str, files: dict[str, bytes]) -> str | None:
        """``files`` gzipped under <LogUri>/<cluster-id>/``relative``/; the folder's s3://
        URI, or None without a log URI (or when S3 refuses: logged)."""
        bucket, prefix = _s3_parts(str(self.cluster.log_uri or ""))
        if bucket is None:
            return None
        folder = f"{prefix.rstrip('/') + '/' if prefix else ''}{self.cluster.id}/{relative}"
        try:
            backend = _s3(self.player.account_id)
            for name, data in files.items():
                backend.put_object(bucket, f"{folder}/{name}.gz", gzip.compress(data))
        except Exception as exc:
            log.info("sandbox emr: cannot write logs to s3://%s/%s: %s", bucket, folder, exc)
            return None
        return f"s3://{bucket}/{folder}"


class _Terminating(Exception):
    """The cluster is terminating (or lost its node) while a step or action ran."""


def _s3(account: str) -> Any:
    from moto.s3.models import s3_backends

    return s3_backends[account]["aws"]


def _s3_parts(uri: str) -> tuple[str | None, str]:
    match = re.match(r"^s3[an]?://([^/]+)/?(.*)$", uri.strip())
    if not match:
        return None, ""
    return match.group(1), match.group(2)


def _basename(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return name if name and name not in (".", "..") else "script"


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace").strip()


def _last_line(data: bytes, limit: int = 1000) -> str:
    lines = [line.strip() for line in _text(data).splitlines() if line.strip()]
    return lines[-1][:limit] if lines else ""
