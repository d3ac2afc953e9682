"""Setup at boot (``machines.setup_mode = "user-data"``) and the events it sends back.

Each seat's machine carries, in its own cloud-init user-data, the boot robot
(``labtui/data/labtui-boot``) and the course's steps that are the same on every machine
(packages, files, setup commands: ``setup.course_plan``). The robot runs them once at first
boot and publishes, for each step, start and done or failed with the end of its output
(secrets masked), to the course's SNS topic ``labtui-<course>-boot``; an SQS queue of the
same name, subscribed with raw message delivery (the queue holds the robot's JSON as is, no
SNS envelope to unwrap), keeps the events until labtui reads them. Both live in the course's
first region and carry the course's tags.

Who may talk to whom:

- The machines publish with their instance role (IMDSv2 credentials, SigV4 by hand in the
  robot; no key on the machine, the instructor's never): ``labtui-<course>-boot`` (role and
  instance profile, its only right ``sns:Publish`` on that topic), or, when the course gives
  each seat its own role (``[access] credentials = "instance-profile"``), the seats' roles
  with the same policy attached.
- The topic's policy allows those roles to publish and denies every other principal
  (``aws:PrincipalArn``), the instructor included; the queue's allows only SNS sending on
  behalf of that topic (``aws:SourceArn``) and denies any other sender.

Per-seat secrets never travel in user-data (anyone allowed DescribeInstanceAttribute reads
it, and so can any process on the machine, from its metadata service): the password, the
seat's AWS keys, the notebook token and ``~/.mrjob.conf`` are set over SSH once the robot
says it is done (``setup.setup_seat(after_boot=True)``), and only when the course has any
(:func:`needs_ssh`). A seat's login key is public and goes in user-data
(``ssh_authorized_keys``), so a course with key login and none of those makes no SSH
connection at all to set up.

labtui drains the queue (long polling, then ``DeleteMessageBatch`` of what it read and
applied) and turns the events into the same SeatChanged events, ``labtui:setup`` tags and
seat log lines as setup over SSH. A machine that sends nothing within the boot deadline, or
stops reporting in the middle of a step for longer than a step may take, is failed with the
end of its console output. Events name the course, seat, instance and a sequence number:
one from another machine than the seat's own is dropped, a duplicate (SQS delivers at least
once) applied once.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from labtui.course import Course
from labtui.errors import AwsError
from labtui.events import EventSink, LogLine, Progress, SeatChanged, StepDone
from labtui.policy import profile_name, user_path, uses_profiles
from labtui.services import access, cloudinit, keys, machinescripts, setup_state, tags
from labtui.services.aws import Aws, translate_errors
from labtui.services.hostkeys import HostKey
from labtui.services.inventory import Machine
from labtui.services.machines import machine_user_data
from labtui.services.setup import Step, course_plan, guarded, seat_log
from labtui.state import CourseState

MODE_TAG = "labtui:setup-mode"     # on a seat's instance launched with the boot robot
MODE = "user-data"
ROLE = "boot"                      # the labtui:role tag of the topic, queue, role, policy
STEP_TIMEOUT = 900                 # the robot ends a step that runs longer
SILENCE = STEP_TIMEOUT + 120       # a seat quiet for longer in the middle of its steps fails
WAIT_MOST = 20                     # SQS long polling: at most 20 s per ReceiveMessage
RETENTION = 4 * 24 * 3600          # what the queue keeps for a labtui that is not running
VISIBILITY = 60                    # a message read and not deleted comes back after this
ORDER_GRACE = 15                   # how long a seat's last event waits for those before it
POLICY_ATTEMPTS = 6                # SetTopicAttributes while IAM makes a new role known
CONSOLE_LINES = 40
TAIL_IN_ERROR = 3


def name(course_id: str) -> str:
    """The topic's, the queue's, and (without per-seat roles) the machines' role's name."""
    return f"labtui-{course_id}-boot"


def region_of(course: Course) -> str:
    return course.regions[0]


def robot_script() -> bytes:
    return machinescripts.script("labtui-boot")


def enabled(course: Course) -> bool:
    return course.machines is not None and course.machines.setup_mode == MODE


def needs_ssh(course: Course) -> bool:
    """Whether a seat has steps of its own that hold a secret, set over SSH after boot."""
    cfg = course.machines
    return bool(cfg is not None and (
        cfg.login == "password" or (access.enabled(course) and not uses_profiles(course))
        or course.jupyter is not None or course.clusters is not None))


# ------------------------------------------------------------------------------ policies

def role_names(course: Course) -> list[str]:
    """The roles the seats' machines carry: each seat's own, or the course's boot role."""
    if uses_profiles(course):
        return sorted({profile_name(course, seat) or "" for seat in course.seats} - {""})
    return [name(course.id)]


def role_arns(course: Course, account: str) -> list[str]:
    return [f"arn:aws:iam::{account}:role{user_path(course)}{role}"
            for role in role_names(course)]


def publish_policy(topic_arn: str) -> dict[str, Any]:
    """The machines' right (an identity policy): publish to the course's topic, no more."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "PublishBootEvents", "Effect": "Allow", "Action": "sns:Publish",
        "Resource": topic_arn}]}


def topic_policy(topic_arn: str, roles: Iterable[str]) -> dict[str, Any]:
    """Only the course's machine roles publish; anyone else (any principal of any account,
    the instructor too) is denied."""
    arns = sorted(roles)
    return {"Version": "2012-10-17", "Id": "labtui-boot-topic", "Statement": [
        {"Sid": "CourseMachinesPublish", "Effect": "Allow", "Principal": {"AWS": arns},
         "Action": "sns:Publish", "Resource": topic_arn},
        {"Sid": "NoOneElsePublishes", "Effect": "Deny", "Principal": "*",
         "Action": "sns:Publish", "Resource": topic_arn,
         "Condition": {"ArnNotEquals": {"aws:PrincipalArn": arns}}}]}


def queue_policy(queue_arn: str, topic_arn: str) -> dict[str, Any]:
    """Only SNS, delivering for the course's topic, sends to the queue."""
    return {"Version": "2012-10-17", "Id": "labtui-boot-queue", "Statement": [
        {"Sid": "TopicDelivers", "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
         "Action": "sqs:SendMessage", "Resource": queue_arn,
         "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}}},
        {"Sid": "NoOtherSender", "Effect": "Deny", "Principal": "*",
         "Action": "sqs:SendMessage", "Resource": queue_arn,
         "Condition": {"ArnNotEquals": {"aws:SourceArn": topic_arn}}}]}


# ------------------------------------------------------------------------------ the channel

@dataclass(frozen=True)
class Channel:
    """The course's topic and queue."""

    region: str
    topic_arn: str
    queue_url: str
    queue_arn: str


def ensure(aws: Aws, course: Course, sink: EventSink,
           sleep: Callable[[float], None] = time.sleep) -> Channel:
    """The machines' publishing right, the topic, the queue and its subscription, each with
    its policy and tags (converges: a rerun changes only what differs). Seats' own roles
    (``credentials = "instance-profile"``) must exist already (``access.ensure``)."""
    region = region_of(course)
    account = access.account_id(aws)
    labels = tags.tags(course.id, role=ROLE)
    topic_name = name(course.id)
    topic_arn = f"arn:aws:sns:{region}:{account}:{topic_name}"
    iam = aws.client("iam", access.IAM_REGION)
    if uses_profiles(course):
        policy = access.ensure_managed_policy(
            iam, f"arn:aws:iam::{account}:policy{user_path(course)}{topic_name}", topic_name,
            course, json.dumps(publish_policy(topic_arn), separators=(",", ":")), labels)
        for role in role_names(course):
            with translate_errors(f"iam.AttachRolePolicy {topic_name} to {role}"):
                attached = {p["PolicyArn"] for p in iam.list_attached_role_policies(
                    RoleName=role)["AttachedPolicies"]}
                if policy not in attached:
                    iam.attach_role_policy(RoleName=role, PolicyArn=policy)
    else:
        access.ensure_role_for_machines(aws, course, topic_name, publish_policy(topic_arn),
                                        labels)
    sns = aws.client("sns", region)
    with translate_errors(f"sns.CreateTopic {topic_name} in {region}"):
        topic_arn = sns.create_topic(Name=topic_name, Tags=labels)["TopicArn"]
    document = json.dumps(topic_policy(topic_arn, role_arns(course, account)))
    for attempt in range(POLICY_ATTEMPTS):
        try:
            with translate_errors(f"sns.SetTopicAttributes Policy of {topic_name}"):
                sns.set_topic_attributes(TopicArn=topic_arn, AttributeName="Policy",
                                         AttributeValue=document)
            break
        except AwsError as exc:   # a role made seconds ago is not yet a valid principal
            if "Principal" not in str(exc) or attempt == POLICY_ATTEMPTS - 1:
                raise
            sleep(min(2 ** attempt, 15))
    queue_url, queue_arn = _ensure_queue(aws, region, topic_name, topic_arn, labels)
    _ensure_subscription(aws, region, topic_arn, queue_arn)
    sink.emit(StepDone(f"boot events: topic and queue {topic_name} in {region}"))
    return Channel(region, topic_arn, queue_url, queue_arn)


def _ensure_queue(aws: Aws, region: str, queue_name: str, topic_arn: str,
                  labels: list[dict[str, str]]) -> tuple[str, str]:
    sqs = aws.client("sqs", region)
    url = _queue_url(aws, region, queue_name)
    if url is None:
        with translate_errors(f"sqs.CreateQueue {queue_name} in {region}"):
            url = sqs.create_queue(QueueName=queue_name, tags=tags.as_dict(labels))["QueueUrl"]
    with translate_errors(f"sqs.GetQueueAttributes {queue_name}"):
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
    with translate_errors(f"sqs.SetQueueAttributes {queue_name}"):
        sqs.set_queue_attributes(QueueUrl=url, Attributes={
            "Policy": json.dumps(queue_policy(arn, topic_arn)),
            "MessageRetentionPeriod": str(RETENTION), "VisibilityTimeout": str(VISIBILITY),
            "ReceiveMessageWaitTimeSeconds": str(WAIT_MOST)})
    return url, arn


def _queue_url(aws: Aws, region: str, queue_name: str) -> str | None:
    try:
        with translate_errors(f"sqs.GetQueueUrl {queue_name} in {region}"):
            return aws.client("sqs", region).get_queue_url(QueueName=queue_name)["QueueUrl"]
    except AwsError as exc:
        if exc.code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            return None
        raise


def _ensure_subscription(aws: Aws, region: str, topic_arn: str, queue_arn: str) -> None:
    sns = aws.client("sns", region)
    found = [s for s in aws.paginate("sns", region, "list_subscriptions_by_topic",
                                     "Subscriptions", TopicArn=topic_arn)
             if s.get("Protocol") == "sqs" and s.get("Endpoint") == queue_arn]
    if not found:
        with translate_errors(f"sns.Subscribe {queue_arn} to {topic_arn}"):
            sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn,
                          Attributes={"RawMessageDelivery": "true"},
                          ReturnSubscriptionArn=True)
        return
    arn = found[0]["SubscriptionArn"]
    with translate_errors(f"sns.GetSubscriptionAttributes {arn}"):
        raw = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"].get(
            "RawMessageDelivery", "false")
        if raw != "true":
            sns.set_subscription_attributes(SubscriptionArn=arn,
                                            AttributeName="RawMessageDelivery",
                                            AttributeValue="true")


# ------------------------------------------------------------------------ what a seat gets

def robot_step(step: Step) -> dict[str, Any]:
    """One step as the robot's config holds it: the command already under its marker."""
    if step.file is not None:
        return {"kind": "file", "name": step.name, "label": step.label,
                "dest": step.file.dest, "mode": step.file.mode,
                "content": base64.b64encode(step.file.source.read_bytes()).decode()}
    return {"kind": "command", "name": step.name, "label": step.label,
            "command": guarded(step.command, step.once) if step.once else step.command,
            "timeout": min(step.timeout, STEP_TIMEOUT)}


def robot_config(course: Course, seat: str, topic_arn: str) -> dict[str, Any]:
    cfg = course.machines
    assert cfg is not None
    steps = [robot_step(s) for s in course_plan(course, seat)]
    if profile_name(course, seat) and not needs_ssh(course):
        steps.append({"kind": "aws-config", "name": "write ~/.aws/config",
                      "label": "aws config"})
    return {"v": 1, "course": course.id, "seat": seat, "user": cfg.user, "topic": topic_arn,
            "steps": steps}


def seat_boot(course: Course, state: CourseState, channel: Channel,
              seat: str) -> cloudinit.SeatBoot:
    """What the seat's machine is launched with: the robot, the course's steps, the seat's
    public login key, the role it publishes with, the tag saying so."""
    cfg = course.machines
    assert cfg is not None
    public = (keys.seat_key(state, seat)[1],) if cfg.login == "key" else ()
    return cloudinit.SeatBoot(
        cloudinit.robot_config(robot_script(), robot_config(course, seat, channel.topic_arn)),
        public, None if uses_profiles(course) else name(course.id), ((MODE_TAG, MODE),))


def launcher(course: Course, state: CourseState,
             channel: Channel) -> Callable[[str], cloudinit.SeatBoot]:
    return lambda seat: seat_boot(course, state, channel, seat)


def check_size(course: Course, state: CourseState) -> None:
    """InputError (with the fix) when a seat's user-data would pass EC2's limit, before
    anything is launched."""
    if not course.seats:
        return
    sample = Channel(region_of(course),
                     f"arn:aws:sns:{region_of(course)}:000000000000:{name(course.id)}", "", "")
    longest = max(course.seats, key=lambda s: len(s.id)).id
    machine_user_data(course, HostKey.generate(), seat_boot(course, state, sample, longest))


def is_booting(machine: Machine) -> bool:
    """A machine launched with the robot whose setup has not ended yet."""
    labels = tags.as_dict(machine.raw.get("Tags"))
    return (labels.get(MODE_TAG) == MODE
            and labels.get(setup_state.SETUP, "pending") in ("pending", "running"))


# ---------------------------------------------------------------------------- the events

@dataclass(frozen=True)
class Message:
    receipt: str
    event: dict[str, Any] | None     # None: not a boot event (dropped, and deleted)


def receive(aws: Aws, channel: Channel, wait: int) -> list[Message]:
    """One long poll of the queue (up to ``wait`` s, at most 20), then at once whatever else
    is there (up to 100 messages)."""
    sqs = aws.client("sqs", channel.region)
    out: list[Message] = []
    seconds = max(0, min(WAIT_MOST, wait))
    while len(out) < 100:
        with translate_errors(f"sqs.ReceiveMessage {channel.queue_url}"):
            got = sqs.receive_message(QueueUrl=channel.queue_url, MaxNumberOfMessages=10,
                                      WaitTimeSeconds=seconds,
                                      VisibilityTimeout=VISIBILITY).get("Messages", [])
        out.extend(Message(m["ReceiptHandle"], parse(m.get("Body", ""))) for m in got)
        if len(got) < 10:
            break
        seconds = 0
    return out


def parse(body: str) -> dict[str, Any] | None:
    """A boot event from a message body (raw delivery; an SNS envelope is unwrapped)."""
    try:
        data = json.loads(body)
        if isinstance(data, dict) and data.get("Type") == "Notification":
            data = json.loads(data.get("Message", ""))
    except (TypeError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("seq"), int):
        return None
    if not all(isinstance(data.get(k), str) for k in ("course", "seat", "instance", "event")):
        return None
    return data


def delete(aws: Aws, channel: Channel, receipts: list[str]) -> list[str]:
    """DeleteMessageBatch of what was read (10 at a time); the receipts that failed."""
    sqs = aws.client("sqs", channel.region)
    failed: list[str] = []
    for start in range(0, len(receipts), 10):
        batch = receipts[start:start + 10]
        with translate_errors(f"sqs.DeleteMessageBatch {channel.queue_url}"):
            answer = sqs.delete_message_batch(QueueUrl=channel.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(batch)])
        failed += [batch[int(f["Id"])] for f in answer.get("Failed", [])]
    return failed


def mask(text: str, secrets: Iterable[str]) -> str:
    for value in secrets:
        if value:
            text = text.replace(value, "***")
    return text


@dataclass
class _Seat:
    machine: Machine
    seen: set[int] = field(default_factory=set)
    heard: float | None = None      # when its last event came (clock)
    step: str = ""
    result: str | None = None       # None: going on; "": done at boot; else why it failed
    last: int = 0                   # the sequence number of its finished or failed event
    ending: Callable[[], None] | None = None   # decides it, once the events before are in
    ended_at: float = 0.0

    def complete(self) -> bool:
        return set(range(1, self.last + 1)) <= self.seen


@dataclass
class Follower:
    """Follows the seats' boot through the queue until each has finished or failed."""

    aws: Aws
    course: Course
    channel: Channel
    state: CourseState
    sink: EventSink
    console: Callable[[Machine], str]
    secrets_of: Callable[[str], list[str]] = lambda _seat: []
    clock: Callable[[], float] = time.monotonic
    silence: float = SILENCE
    grace: float = ORDER_GRACE

    def follow(self, machines: Iterable[Machine], deadline: float,
               cancelled: Callable[[], bool] = lambda: False) -> dict[str, str]:
        """Seat -> "" (its steps done at boot) or why it failed; every seat decided by the
        end. ``deadline``: seconds within which a machine must send its first event."""
        seats = {m.instance_id: _Seat(m) for m in machines}
        total = len(seats)
        started = self.clock()
        self.sink.emit(Progress("boot setup", 0, total))
        while any(s.result is None for s in seats.values()) and not cancelled():
            now = self.clock()
            for seat in seats.values():
                if seat.result is None and seat.ending is not None:
                    if now - seat.ended_at >= self.grace:
                        seat.ending()   # an event before its last never came: decided
                elif seat.result is None:
                    self._expire(seat, now, started, deadline)
            going = [s for s in seats.values() if s.result is None]
            if not going:
                break
            until = min((s.ended_at + self.grace if s.ending is not None
                         else started + deadline if s.heard is None
                         else s.heard + self.silence) for s in going) - now
            messages = receive(self.aws, self.channel, math.ceil(max(1.0, until)))
            events = sorted((m.event for m in messages if m.event is not None),
                            key=lambda e: (e["instance"], e["seq"]))
            for event in events:
                seat = seats.get(event["instance"])
                if (seat is None or event["course"] != self.course.id
                        or event["seat"] != seat.machine.seat or event["seq"] in seat.seen):
                    continue  # another machine's (or an older one's), or a duplicate
                seat.seen.add(event["seq"])
                seat.heard = self.clock()
                if seat.result is None:
                    self._apply(seat, event)
            for seat in seats.values():
                if seat.result is None and seat.ending is not None and seat.complete():
                    seat.ending()
            dropped = sum(1 for m in messages if m.event is None)
            if dropped:
                self.sink.emit(LogLine(f"boot events: {dropped} message(s) in "
                                       f"{name(self.course.id)} that are no boot event, "
                                       "deleted", level="warning"))
            left = delete(self.aws, self.channel, [m.receipt for m in messages])
            if left:
                self.sink.emit(LogLine(f"boot events: {len(left)} message(s) not deleted "
                                       "(they come back and are applied once)",
                                       level="warning"))
            done = sum(1 for s in seats.values() if s.result is not None)
            failed = sum(1 for s in seats.values() if s.result)
            self.sink.emit(Progress("boot setup", done, total, failed=failed))
        return {s.machine.seat: s.result or "" for s in seats.values() if s.result is not None}

    # ------------------------------------------------------------------ one seat

    def _log(self, seat: _Seat, text: str, level: str = "info") -> None:
        seat_log(self.state, seat.machine.seat, self.sink).line(
            mask(text, self.secrets_of(seat.machine.seat)), level)

    def _apply(self, seat: _Seat, event: dict[str, Any]) -> None:
        kind, machine = event["event"], seat.machine
        label = str(event.get("step") or "")
        if kind == "boot":
            setup_state.mark(self.aws, [machine], "running")
            self._log(seat, f"== boot setup by user-data: {event.get('total', '?')} step(s) "
                            f"on {machine.instance_id}")
            self.sink.emit(SeatChanged(machine.seat, "setup", "running at boot"))
        elif kind == "start":
            seat.step = label
            self._log(seat, f"== {event.get('name') or label}")
            self.sink.emit(SeatChanged(machine.seat, "setup",
                                       f"{label} ({event.get('index')}/{event.get('total')}) "
                                       "at boot"))
        elif kind == "done":
            for line in event.get("tail") or []:
                self._log(seat, str(line))
        elif kind == "failed":
            tail = [mask(str(line), self.secrets_of(machine.seat))
                    for line in event.get("tail") or []]
            for line in tail:
                self._log(seat, line, "warning")
            status = event.get("status")
            why = ("timed out" if event.get("timed_out")
                   else f"exit {status}" if isinstance(status, int) else "failed")
            self._log(seat, f"{label} failed at boot ({why})", "error")
            end = " / ".join(line.strip() for line in tail[-TAIL_IN_ERROR:] if line.strip())
            self._end(seat, event, lambda: self._fail(
                seat, f"{label}: {why}",
                f"{label} failed at boot ({why})" + (f": {end}" if end else "")))
        elif kind == "finished":
            self._end(seat, event, lambda: self._done(seat))

    def _end(self, seat: _Seat, event: dict[str, Any], ending: Callable[[], None]) -> None:
        """The seat's last event: it is decided once the events before it are in (SQS may
        hand them over in another order), or ``grace`` seconds later without them."""
        seat.last, seat.ending, seat.ended_at = event["seq"], ending, self.clock()

    def _done(self, seat: _Seat) -> None:
        self._log(seat, "boot setup done")
        seat.result = ""

    def _expire(self, seat: _Seat, now: float, started: float, deadline: float) -> None:
        if seat.heard is None and now - started >= deadline:
            what = f"no boot event within {deadline:g} s"
        elif seat.heard is not None and now - seat.heard >= self.silence:
            what = (f"no boot event for {self.silence:g} s"
                    + (f" during {seat.step}" if seat.step else ""))
        else:
            return
        lines = self._console_tail(seat)
        self._log(seat, f"{what}; the end of its console output:", "error")
        for line in lines:
            self._log(seat, line, "warning")
        end = " / ".join(line.strip() for line in lines[-TAIL_IN_ERROR:] if line.strip())
        self._fail(seat, what, f"{what} (its console ends: {end or 'nothing yet'})")

    def _console_tail(self, seat: _Seat) -> list[str]:
        try:
            text = self.console(seat.machine)
        except AwsError as exc:
            return [f"(its console output could not be read: {exc})"]
        return [mask(line, self.secrets_of(seat.machine.seat))
                for line in text.splitlines()[-CONSOLE_LINES:]]

    def _fail(self, seat: _Seat, reason: str, message: str) -> None:
        machine = seat.machine
        fix = (f" Fix: see the seat's log and `labtui console COURSE {machine.seat}`, then "
               f"`labtui rerun-setup COURSE {machine.seat}` (over SSH)")
        seat.result = message + "." + fix
        setup_state.mark(self.aws, [machine], "failed", reason)
        self.sink.emit(SeatChanged(machine.seat, "setup failed", seat.result))


# ------------------------------------------------------------------ teardown and sweep

@dataclass(frozen=True)
class Found:
    """A boot topic or queue of a course, as AWS lists it."""

    kind: str          # "topic" | "queue"
    name: str
    ref: str           # the topic's ARN, the queue's URL
    course: str        # its labtui:course tag ("" when untagged)


def listed(aws: Aws, region: str, course_id: str | None = None) -> list[Found]:
    """The labtui boot topics and queues in ``region`` (of one course, or of any)."""
    wanted = name(course_id) if course_id else None
    out: list[Found] = []
    for topic in aws.paginate("sns", region, "list_topics", "Topics"):
        arn = topic["TopicArn"]
        topic_name = arn.rsplit(":", 1)[-1]
        if not _ours(topic_name, wanted):
            continue
        with translate_errors(f"sns.ListTagsForResource {arn}"):
            labels = tags.as_dict(aws.client("sns", region).list_tags_for_resource(
                ResourceArn=arn).get("Tags"))
        if course_id is None or labels.get(tags.COURSE) == course_id:
            out.append(Found("topic", topic_name, arn, labels.get(tags.COURSE, "")))
    sqs = aws.client("sqs", region)
    with translate_errors(f"sqs.ListQueues in {region}"):
        urls = [u for page in sqs.get_paginator("list_queues").paginate(
            QueueNamePrefix=wanted or "labtui-") for u in page.get("QueueUrls", [])]
    for url in urls:
        queue_name = url.rstrip("/").rsplit("/", 1)[-1]
        if not _ours(queue_name, wanted):
            continue
        with translate_errors(f"sqs.ListQueueTags {queue_name}"):
            labels = sqs.list_queue_tags(QueueUrl=url).get("Tags") or {}
        if course_id is None or labels.get(tags.COURSE) == course_id:
            out.append(Found("queue", queue_name, url, labels.get(tags.COURSE, "")))
    return out


def _ours(found: str, wanted: str | None) -> bool:
    if wanted is not None:
        return found == wanted
    return found.startswith("labtui-") and found.endswith("-boot") and len(found) > 12


def remove(aws: Aws, region: str, found: Found) -> None:
    """Delete a boot topic (its subscriptions first) or queue; AwsError if AWS refuses."""
    if found.kind == "topic":
        sns = aws.client("sns", region)
        for sub in aws.paginate("sns", region, "list_subscriptions_by_topic", "Subscriptions",
                                TopicArn=found.ref):
            arn = sub.get("SubscriptionArn", "")
            if arn.startswith("arn:"):
                with translate_errors(f"sns.Unsubscribe {arn}"):
                    sns.unsubscribe(SubscriptionArn=arn)
        with translate_errors(f"sns.DeleteTopic {found.ref}"):
            sns.delete_topic(TopicArn=found.ref)
    else:
        with translate_errors(f"sqs.DeleteQueue {found.ref}"):
            aws.client("sqs", region).delete_queue(QueueUrl=found.ref)
