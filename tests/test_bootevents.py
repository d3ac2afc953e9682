"""Setup at boot (machines.setup_mode = "user-data") on the sandbox: each machine's own
cloud-init runs the boot robot, which reports every step to the course's SNS topic; `up`
follows the seats through the SQS queue (one seat's step fails, with its output's end in the
error), drains it, sets the seats' passwords over SSH afterwards (never in user-data); the
topic lets only the machines' role publish; a silent machine is failed with its console;
a rerun converges; `down` leaves no topic, queue or role. Also: a bad setup_mode is one
problem with its line, the robot signs as botocore does."""

from __future__ import annotations

import datetime
import importlib.machinery
import importlib.util
import json
import threading
from pathlib import Path

import pytest

from labtui import lifecycle, policy
from labtui.course import load
from labtui.events import SeatChanged
from labtui.model import Machine
from labtui.sandbox.container import runtime_problem
from labtui.services import bootevents, keys, machines, machinescripts, passwords, setup_state, ssh

from .courses import write_course
from .test_cli import run
from .test_setup import on_seat

sandboxed = pytest.mark.skipif(runtime_problem() is not None,
                               reason=f"no sandbox machines here: {runtime_problem()}")

# s02's first step fails (its seat is named in the step's environment); the others go on
SETUP = ['test "$LABTUI_SEAT" != s02 || { echo "fetching the s02 data set"; '
         'echo "s02: no such mirror: data.example.invalid" >&2; exit 3; }',
         'echo "after on $LABTUI_SEAT" >> ~/steps.log']


def boot_course(tmp_path: Path, mode: str = "user-data", login: str = "key",
                students: int = 3) -> Path:
    (tmp_path / "hello.txt").write_text("hello from the course\n")
    return write_course(tmp_path, "bt", students=students, machines=f"""
login = "{login}"
setup_mode = "{mode}"
setup = {json.dumps(SETUP)}

[[machines.files]]
source = "hello.txt"
dest = "~/notes/hello.txt"
mode = "0640"
""")


def load_robot(tmp_path: Path):
    """labtui-boot as the machine gets it (machinescripts.script: its shared part in)."""
    path = tmp_path / "labtui-boot"
    path.write_bytes(machinescripts.script("labtui-boot"))
    loader = importlib.machinery.SourceFileLoader("labtui_boot", str(path))
    spec = importlib.util.spec_from_loader("labtui_boot", loader)
    robot = importlib.util.module_from_spec(spec)
    loader.exec_module(robot)
    return robot


def test_a_bad_setup_mode_is_one_problem_with_its_line(tmp_path: Path) -> None:
    path = boot_course(tmp_path, mode="userdata")
    result = run("validate", str(path))
    assert result.returncode == 2
    line = next(i for i, text in enumerate(path.read_text().splitlines(), start=1)
                if text.startswith("setup_mode"))
    assert f"{path}:{line}: machines.setup_mode" in result.stderr
    assert "did you mean 'user-data'?" in result.stderr
    assert "1 problem" in result.stderr


def test_the_robot_signs_sns_requests_as_botocore_does(tmp_path: Path) -> None:
    """labtui-boot signs its Publish by hand (no AWS library on the machine): the same
    Authorization header botocore computes for the same request and moment."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    robot = load_robot(tmp_path)
    url = "https://sns.eu-west-1.amazonaws.com/"
    body = b"Action=Publish&Version=2010-03-31&Message=%7B%22a%22%3A1%7D"
    kind = "application/x-www-form-urlencoded; charset=utf-8"
    request = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": kind})
    SigV4Auth(Credentials("AKIDEXAMPLE", "secret", "session"), "sns",
              "eu-west-1").add_auth(request)
    stamp = datetime.datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ"
                                       ).replace(tzinfo=datetime.UTC)
    mine = robot.signed_headers("POST", url, "eu-west-1", ("AKIDEXAMPLE", "secret", "session"),
                                body, kind, stamp=stamp)
    assert mine["Authorization"] == request.headers["Authorization"]
    # what the robot sends of a step's output: credentials masked
    line = "aws_secret_access_key = abc123 key AKIAIOSFODNN7EXAMPLE token: zzz"
    assert robot.mask(line, ["abc"]) == "aws_secret_access_key = *** key *** token: ***"


def test_the_policies_let_only_the_machines_publish_and_only_the_topic_send() -> None:
    account = "123456789012"
    topic = f"arn:aws:sns:us-east-1:{account}:labtui-bt-boot"
    queue = f"arn:aws:sqs:us-east-1:{account}:labtui-bt-boot"
    role = f"arn:aws:iam::{account}:role/labtui/bt/labtui-bt-boot"
    document = bootevents.topic_policy(topic, [role])
    may_publish = bootevents.publish_policy(topic)
    everything = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["sns:*", "sqs:*"], "Resource": "*"}]}

    def publish(principal: str, policies: list) -> policy.Decision:
        return policy.decide(principal, policies, "sns:Publish", topic,
                             resource_policy=document, resource_owner=account)
    assert publish(role, [may_publish]).allowed
    # another course's machine role, and an admin, both holding sns:* themselves: denied
    other = f"arn:aws:iam::{account}:role/labtui/bt2/labtui-bt2-boot"
    assert publish(other, [everything]).explicit_deny
    assert publish(f"arn:aws:iam::{account}:user/instructor", [everything]).explicit_deny
    assert not publish("arn:aws:iam::999999999999:role/labtui/bt/labtui-bt-boot",
                       [everything]).allowed
    # the queue: a sender that is not SNS delivering for the topic is denied
    queue_doc = bootevents.queue_policy(queue, topic)
    user = f"arn:aws:iam::{account}:user/instructor"
    assert policy.decide(user, [everything], "sqs:SendMessage", queue,
                         resource_policy=queue_doc, resource_owner=account).explicit_deny
    assert policy.decide(user, [everything], "sqs:SendMessage", queue,
                         {"aws:SourceArn": f"{topic}-other"}, resource_policy=queue_doc,
                         resource_owner=account).explicit_deny


def queue_counts(ctx, channel) -> tuple[int, int]:
    attrs = ctx.aws.client("sqs", channel.region).get_queue_attributes(
        QueueUrl=channel.queue_url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    found = attrs["Attributes"]
    return (int(found["ApproximateNumberOfMessages"]),
            int(found["ApproximateNumberOfMessagesNotVisible"]))


@sandboxed
@pytest.mark.timeout(240)
def test_up_follows_the_boot_through_sqs_and_down_removes_it(ctx, tmp_path: Path) -> None:
    course = load(boot_course(tmp_path))
    result = lifecycle.up(ctx, course, setup_wait=90)
    assert sorted(result.set_up) == ["s01", "s03"]
    assert list(result.setup_failed) == ["s02"]
    error = result.setup_failed["s02"]
    assert error.startswith("setup step 1/2 failed at boot (exit 3): ")
    assert "s02: no such mirror: data.example.invalid" in error   # the step's log tail
    assert "rerun-setup COURSE s02" in error

    seats = {s.seat: s for s in lifecycle.status(ctx, course)}
    assert {seat: s.setup for seat, s in seats.items()} == {
        "s01": "done", "s02": "failed", "s03": "done"}
    assert seats["s02"].error == "setup step 1/2: exit 3"   # the tag: step and status only
    changed = [e for e in ctx.sink.events if isinstance(e, SeatChanged)]
    assert any(e.seat == "s02" and e.state == "setup failed" and "no such mirror" in e.detail
               for e in changed)
    assert any(e.seat == "s01" and e.state == "setup" and "setup step 2/2" in e.detail
               for e in changed)

    # everything read was deleted: the queue is empty
    channel = bootevents.ensure(ctx.aws, course, ctx.sink)
    assert queue_counts(ctx, channel) == (0, 0)

    # the steps ran at boot, as the login user; the seat logs say so, step by step; with
    # key login and nothing secret of the seat's, up made no SSH connection at all
    state = ctx.state.course("bt")
    one, two = (state.logs / "s01.log").read_text(), (state.logs / "s02.log").read_text()
    assert "== boot setup by user-data: 3 step(s)" in one and "boot setup done" in one
    assert "== setup 2/2: " in one and "== wait for boot to finish" not in one
    assert "fetching the s02 data set" in two and "no such mirror" in two
    assert "== setup 2/2" not in two
    assert on_seat(ctx, course, "s01", "cat steps.log; stat -c '%a %U' notes/hello.txt") == (
        0, "after on s01\n640 ubuntu")
    assert on_seat(ctx, course, "s02", "cat steps.log")[0] != 0
    # the student logs in with the seat's own key, which the user-data installed
    private, public = keys.seat_key(state, "s01")
    machine = lifecycle.seat_machine(ctx, course, "s01")
    assert public.split()[1] in machines.user_data(ctx.aws, machine.region,
                                                   machine.instance_id)
    host, port = seats["s01"].address.split(":")
    pinned = machines.KnownHosts(state).all()[machine.instance_id]
    ssh.connect(ssh.SshTarget(host, int(port), "ubuntu", pinned,
                              pkey=ssh.load_private_key(private)), timeout=10).close()

    # the topic's own policy, as AWS holds it: the machines' role may publish, another
    # identity with sns:* of its own may not
    sns = ctx.aws.client("sns", channel.region)
    stored = json.loads(sns.get_topic_attributes(TopicArn=channel.topic_arn)[
        "Attributes"]["Policy"])
    account = channel.topic_arn.split(":")[4]
    iam = ctx.aws.client("iam", "us-east-1")
    role = iam.get_role(RoleName="labtui-bt-boot")["Role"]
    attached = iam.list_attached_role_policies(RoleName="labtui-bt-boot")["AttachedPolicies"]
    held = [iam.get_policy_version(PolicyArn=p["PolicyArn"], VersionId=iam.get_policy(
        PolicyArn=p["PolicyArn"])["Policy"]["DefaultVersionId"])["PolicyVersion"]["Document"]
        for p in attached]
    assert policy.decide(role["Arn"], held, "sns:Publish", channel.topic_arn,
                         resource_policy=stored, resource_owner=account).allowed
    everything = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sns:*", "Resource": "*"}]}
    assert not policy.decide(f"arn:aws:iam::{account}:user/intruder", [everything],
                             "sns:Publish", channel.topic_arn, resource_policy=stored,
                             resource_owner=account).allowed
    # and the role may publish to that topic only (the sandbox decides its requests)
    assert not policy.decide(role["Arn"], held, "sns:Publish",
                             f"arn:aws:sns:us-east-1:{account}:labtui-other-billing").allowed

    # a rerun converges: nothing launched, one topic and queue, the failed seat tried over SSH
    again = lifecycle.up(ctx, course, setup_wait=30)
    assert again.launched == [] and sorted(again.set_up) == []
    assert list(again.setup_failed) == ["s02"]
    assert "setup step 1/2 failed (exit 3)" in again.setup_failed["s02"]
    assert [f.kind for f in bootevents.listed(ctx.aws, "us-east-1", "bt")] == ["topic", "queue"]

    # a machine that sends nothing within the deadline is failed with its console's end
    silent = lifecycle.seat_machine(ctx, course, "s03")
    follower = bootevents.Follower(ctx.aws, course, channel, state, ctx.sink,
                                   console=lambda m: lifecycle.console(ctx, m))
    why = follower.follow([silent], deadline=2)["s03"]
    assert why.startswith("no boot event within 2 s (its console ends: ")
    assert "labtui-boot" in why or "Cloud-init" in why or "cloud-init" in why
    assert machines.describe(ctx.aws, silent)["State"]["Name"] == "running"
    tags = {t["Key"]: t["Value"] for t in machines.describe(ctx.aws, silent)["Tags"]}
    assert tags[setup_state.SETUP] == "failed"

    # sweep sees them as the course's; down removes them (and the role), and proves it
    found = {(f.kind, f.id, f.course) for f in lifecycle.sweep(ctx, "us-east-1").scan.findings
             if f.kind.startswith(("sns", "sqs"))}
    assert found == {("sns-topic", "labtui-bt-boot", "bt"), ("sqs-queue", "labtui-bt-boot", "bt")}
    report = lifecycle.down(ctx, course)
    assert report.left == []
    assert bootevents.listed(ctx.aws, "us-east-1", "bt") == []
    assert report.removed.get("topics") == 1 and report.removed.get("queues") == 1
    assert not iam.list_roles(PathPrefix="/labtui/bt/")["Roles"]

    # left behind by a crash, a sweep deletes them too
    bootevents.ensure(ctx.aws, course, ctx.sink)
    swept = lifecycle.sweep(ctx, "us-east-1", delete=True)
    assert sorted(r.finding.kind for r in swept.removals if r.ok) == ["sns-topic", "sqs-queue"]
    assert swept.left == [] and bootevents.listed(ctx.aws, "us-east-1", "bt") == []
    assert lifecycle.down(ctx, course).left == []   # and down the role sweep leaves to it


def test_user_data_too_big_for_ec2_is_refused_with_the_fix(tmp_path: Path) -> None:
    import os

    from labtui.errors import InputError
    from labtui.state import StateDir

    path = boot_course(tmp_path)
    (tmp_path / "hello.txt").write_bytes(os.urandom(20000))   # incompressible
    course = load(path)
    state = StateDir.resolve(tmp_path / "state").ensure().course("bt")
    with pytest.raises(InputError, match="over EC2's 16384. Fix: smaller or fewer"):
        bootevents.check_size(course, state)
    (tmp_path / "hello.txt").write_bytes(os.urandom(2000))
    bootevents.check_size(course, state)


@sandboxed
@pytest.mark.timeout(180)
def test_a_seats_password_is_set_over_ssh_after_its_boot(ctx, tmp_path: Path) -> None:
    course = load(boot_course(tmp_path, login="password", students=1))
    result = lifecycle.up(ctx, course, setup_wait=90)
    assert result.set_up == ["s01"] and result.setup_failed == {}
    state = ctx.state.course("bt")
    log = (state.logs / "s01.log").read_text()
    assert log.index("boot setup done") < log.index("== wait for boot to finish") \
        < log.index("== set the seat password")
    assert "== packages, files and setup commands: done at boot (user-data)" in log
    # never in the user-data, nor in the log; the student logs in with it
    password = passwords.get(state, "s01")
    seat = lifecycle.status(ctx, course)[0]
    data = machines.user_data(ctx.aws, "us-east-1", seat.instance_id)
    assert password and password not in data and "labtui-boot" in data
    assert password not in log
    host, port = seat.address.split(":")
    pinned = machines.KnownHosts(state).all()[seat.instance_id]
    ssh.connect(ssh.SshTarget(host, int(port), "ubuntu", pinned, password=password),
                timeout=10).close()
    assert lifecycle.down(ctx, course).left == []


@sandboxed
def test_seats_own_roles_publish_to_the_topic_only(ctx, tmp_path: Path) -> None:
    """With [access] credentials = "instance-profile" the seats' own roles get the right to
    publish (no boot role is made); a rerun converges; what a seat's role publishes (signed
    with its metadata credentials, decided by the sandbox) reaches the queue, and it may
    publish nowhere else."""
    import boto3
    import botocore.exceptions

    from labtui.sandbox.imds import role_credentials
    from labtui.services import access

    path = boot_course(tmp_path)
    path.write_text(path.read_text() + '\n[access]\nusers = true\n'
                    'credentials = "instance-profile"\n')
    course = load(path)
    access.ensure(ctx.aws, course, ctx.state.course("bt"), ctx.sink)
    channel = bootevents.ensure(ctx.aws, course, ctx.sink)
    assert bootevents.ensure(ctx.aws, course, ctx.sink) == channel
    iam = ctx.aws.client("iam", "us-east-1")
    roles = sorted(r["RoleName"] for r in iam.list_roles(PathPrefix="/labtui/bt/")["Roles"])
    assert roles == ["labtui-bt-s01", "labtui-bt-s02", "labtui-bt-s03"]
    for role in roles:
        names = {p["PolicyName"] for p in iam.list_attached_role_policies(
            RoleName=role)["AttachedPolicies"]}
        assert "labtui-bt-boot" in names
    sns = ctx.aws.client("sns", channel.region)
    stored = json.loads(sns.get_topic_attributes(TopicArn=channel.topic_arn)[
        "Attributes"]["Policy"])
    account = channel.topic_arn.split(":")[4]
    assert stored["Statement"][0]["Principal"]["AWS"] == [
        f"arn:aws:iam::{account}:role/labtui/bt/{r}" for r in roles]
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=channel.topic_arn)["Subscriptions"]
    assert len(subscriptions) == 1

    creds = role_credentials(account, "labtui-bt-s01")
    seat = boto3.client("sns", region_name=channel.region,
                        endpoint_url=ctx.aws.settings.endpoint_url,
                        aws_access_key_id=creds["AccessKeyId"],
                        aws_secret_access_key=creds["SecretAccessKey"],
                        aws_session_token=creds["Token"])
    other = sns.create_topic(Name="labtui-bt-other")["TopicArn"]
    with pytest.raises(botocore.exceptions.ClientError, match="AuthorizationError|AccessDenied"):
        seat.publish(TopicArn=other, Message="{}")
    sns.delete_topic(TopicArn=other)

    # the follower: the last event first, the one before it a moment later (SQS does not
    # keep order), a duplicate, another instance's event and a stray message
    instance = "i-0123456789abcdef0"

    def send(seq: int, kind: str, where: str = instance, **more) -> dict:
        event = {"v": 1, "course": "bt", "seat": "s01", "instance": where, "seq": seq,
                 "event": kind, **more}
        seat.publish(TopicArn=channel.topic_arn, Message=json.dumps(event))
        return event
    last = send(2, "finished", total=0)
    messages = bootevents.receive(ctx.aws, channel, 5)
    assert [m.event for m in messages] == [last]   # raw delivery: the event as published
    assert bootevents.delete(ctx.aws, channel, [m.receipt for m in messages]) == []
    send(2, "finished", total=0)
    send(2, "finished", total=0)
    send(9, "boot", where="i-0fffffffffffffff0", total=0)
    sns.publish(TopicArn=channel.topic_arn, Message="not a boot event")
    later = threading.Timer(1.0, lambda: send(1, "boot", total=0))
    later.start()
    machine = Machine(instance, "s01", "us-east-1", "running", "t3.small", None, "")
    follower = bootevents.Follower(ctx.aws, course, channel, ctx.state.course("bt"),
                                   ctx.sink, console=lambda m: "", grace=8)
    try:
        assert follower.follow([machine], deadline=30) == {"s01": ""}
    finally:
        later.join()
    log = (ctx.state.course("bt").logs / "s01.log").read_text()
    assert log.count("== boot setup by user-data") == 1
    assert log.index("== boot setup by user-data") < log.index("boot setup done")
    assert log.count("boot setup done") == 1
    assert queue_counts(ctx, channel) == (0, 0)
    assert lifecycle.down(ctx, course).left == []
