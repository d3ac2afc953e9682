"""Launch: one run_instances per seat with its own user-data and a derived ClientToken, and
the sandbox honouring ClientToken as EC2 does."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import boto3
import paramiko
import pytest
from botocore.exceptions import ClientError

from labtui import lifecycle
from labtui.course import load
from labtui.errors import InputError
from labtui.sandbox import flavors
from labtui.services import cloudinit, machines, tags
from labtui.services.ssh import load_private_key

from .courses import write_course
from .test_setup import on_seat

IMAGE = flavors.FLAVORS["ubuntu-24.04"].image_id  # a sandbox image




def course_file(tmp_path: Path, students: int = 3, machines_keys: str = "") -> Path:
    return write_course(tmp_path, "launch", students=students, machines=machines_keys)


def live_instances(ctx, region: str = "us-east-1") -> list[dict]:
    return machines.all_course_instances(ctx.aws, "launch", region)


def test_sandbox_run_instances_honours_client_token(sandbox, sandbox_state) -> None:
    ec2 = boto3.client("ec2", "us-east-1", endpoint_url=sandbox.endpoint_url)
    spec = dict(ImageId=IMAGE, MinCount=1, MaxCount=1, InstanceType="t3.small",
                UserData="#cloud-config\n{}")
    first = ec2.run_instances(ClientToken="seat-token-1", **spec)
    again = ec2.run_instances(ClientToken="seat-token-1", **spec)
    assert again["ReservationId"] == first["ReservationId"]
    assert [i["InstanceId"] for i in again["Instances"]] == [
        i["InstanceId"] for i in first["Instances"]]
    with pytest.raises(ClientError) as caught:
        ec2.run_instances(ClientToken="seat-token-1", **{**spec, "InstanceType": "t3.large"})
    assert caught.value.response["Error"]["Code"] == "IdempotentParameterMismatch"
    with pytest.raises(ClientError) as caught:
        ec2.run_instances(ClientToken="seat-token-1", **{**spec, "UserData": "other"})
    assert caught.value.response["Error"]["Code"] == "IdempotentParameterMismatch"
    # a token is per region; no token means no idempotency
    other = boto3.client("ec2", "eu-west-1", endpoint_url=sandbox.endpoint_url).run_instances(
        ClientToken="seat-token-1", **spec)
    assert other["Instances"][0]["InstanceId"] != first["Instances"][0]["InstanceId"]
    plain = [ec2.run_instances(**spec)["Instances"][0]["InstanceId"] for _ in range(2)]
    assert plain[0] != plain[1]
    reservations = ec2.describe_instances(Filters=[
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]
    assert sum(len(r["Instances"]) for r in reservations) == 3  # 1 (token) + 2 (no token)
    # a replay after termination answers with the terminated instance, as EC2 does
    instance_id = first["Instances"][0]["InstanceId"]
    ec2.terminate_instances(InstanceIds=[instance_id])
    late = ec2.run_instances(ClientToken="seat-token-1", **spec)["Instances"][0]
    assert late["InstanceId"] == instance_id and late["State"]["Name"] == "terminated"


def test_concurrent_calls_with_one_token_make_one_instance(sandbox, sandbox_state) -> None:
    ec2 = boto3.client("ec2", "us-east-1", endpoint_url=sandbox.endpoint_url)
    spec = dict(ImageId=IMAGE, MinCount=1, MaxCount=1, ClientToken="same")
    ids: list[str] = []
    threads = [threading.Thread(target=lambda: ids.append(
        ec2.run_instances(**spec)["Instances"][0]["InstanceId"])) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(ids) == 6 and len(set(ids)) == 1


def test_each_machine_user_data_holds_its_own_host_key_only(ctx, tmp_path: Path) -> None:
    course = load(course_file(tmp_path, students=3))  # login = "password" (the default)
    result = lifecycle.up(ctx, course, skip_setup=True)
    assert len(result.launched) == 3
    pins = machines.KnownHosts(ctx.state.course("launch")).all()
    texts = {m.instance_id: machines.user_data(ctx.aws, m.region, m.instance_id)
             for m in result.launched}
    privates = {}
    for instance_id, text in texts.items():
        assert text.startswith("#cloud-config\n")
        config = cloudinit.parse_user_data(text)
        assert config is not None  # JSON, so valid YAML for cloud-init
        assert set(config["ssh_keys"]) == {"ed25519_private", "ed25519_public"}
        assert config["ssh_deletekeys"] is True and config["ssh_genkeytypes"] == ["ed25519"]
        assert config["ssh_pwauth"] is True
        assert not {"labtui", "write_files", "bootcmd"} & set(config)
        assert "host_keys" not in text
        key = load_private_key(config["ssh_keys"]["ed25519_private"])
        assert isinstance(key, paramiko.Ed25519Key)
        assert f"{key.get_name()} {key.get_base64()}" == pins[instance_id] == (
            cloudinit.host_public(text))
        privates[instance_id] = config["ssh_keys"]["ed25519_private"]
    assert len(set(privates.values())) == 3
    for instance_id, text in texts.items():  # no machine holds another's private host key
        others = [json.dumps(p)[1:-1] for i, p in privates.items() if i != instance_id]
        assert json.dumps(privates[instance_id])[1:-1] in text
        assert not any(p in text for p in others) and text.count("PRIVATE KEY-----") == 2
    # a lost local pin is recovered from the instance's own user-data
    machine = result.launched[0]
    (ctx.state.course("launch").secrets / "known_hosts.json").unlink()
    assert machines.KnownHosts(ctx.state.course("launch")).get(ctx.aws, machine) == pins[
        machine.instance_id]


def test_key_login_course_keeps_password_login_off(ctx, tmp_path: Path) -> None:
    course = load(course_file(tmp_path, students=1, machines_keys='login = "key"'))
    [machine] = lifecycle.up(ctx, course, skip_setup=True).launched
    config = cloudinit.parse_user_data(machines.user_data(ctx.aws, machine.region,
                                                          machine.instance_id))
    assert config["ssh_pwauth"] is False


def test_seat_tags_are_there_the_moment_run_instances_returns(ctx, sandbox,
                                                              tmp_path: Path) -> None:
    course = load(course_file(tmp_path, students=2))
    probe = boto3.client("ec2", "us-east-1", endpoint_url=sandbox.endpoint_url)
    seen: dict[str, dict[str, str]] = {}
    requests: list[dict] = []

    def check(http_response=None, parsed=None, **_kwargs) -> None:
        for instance in (parsed or {}).get("Instances", []):
            iid = instance["InstanceId"]
            seen[iid] = tags.as_dict(probe.describe_instances(InstanceIds=[iid])[
                "Reservations"][0]["Instances"][0].get("Tags"))
            volumes = probe.describe_volumes(Filters=[
                {"Name": "attachment.instance-id", "Values": [iid]}])["Volumes"]
            seen[iid + "/volume"] = tags.as_dict(volumes[0].get("Tags"))

    events = ctx.aws.client("ec2", "us-east-1").meta.events
    events.register("after-call.ec2.RunInstances", check)
    events.register("provide-client-params.ec2.RunInstances",
                    lambda params, **_kwargs: requests.append(dict(params)))
    result = lifecycle.up(ctx, course, skip_setup=True)
    assert len(result.launched) == 2 and len(requests) == 2
    assert all(r["MinCount"] == r["MaxCount"] == 1 for r in requests)
    for machine in result.launched:
        for labels in (seen[machine.instance_id], seen[machine.instance_id + "/volume"]):
            assert labels[tags.COURSE] == "launch" and labels[tags.SEAT] == machine.seat
            assert labels["Name"] == f"labtui-launch-{machine.seat}"
            assert "labtui:batch" not in labels


def test_launch_runs_the_seats_calls_concurrently(ctx, tmp_path: Path) -> None:
    course = load(course_file(tmp_path, students=8))
    lock = threading.Lock()
    flight = {"now": 0, "most": 0}

    def before(**_kwargs) -> None:
        with lock:
            flight["now"] += 1
            flight["most"] = max(flight["most"], flight["now"])

    def after(**_kwargs) -> None:
        with lock:
            flight["now"] -= 1

    events = ctx.aws.client("ec2", "us-east-1").meta.events
    events.register("before-call.ec2.RunInstances", before)
    events.register("after-call.ec2.RunInstances", after)
    result = lifecycle.up(ctx, course, skip_setup=True)
    assert len(result.launched) == 8 and ctx.aws.calls.snapshot()["ec2.RunInstances"] == 8
    assert flight["most"] > 1
    progress = [e for e in ctx.sink.events if getattr(e, "task", "") == "launch"]
    assert [(p.done, p.total) for p in progress][-1] == (8, 8) and len(progress) == 9


def test_client_token_is_derived_from_course_seat_and_incarnation() -> None:
    token = machines.client_token("course", "s01", "first")
    assert token == machines.client_token("course", "s01", "first")
    assert len(token) <= 64 and token.isascii()
    others = {machines.client_token("course", "s02", "first"),
              machines.client_token("other", "s01", "first"),
              machines.client_token("course", "s01", "i-0123"),
              machines.client_token("course", "s01", "first", salt=1)}
    assert token not in others and len(others) == 4


def test_a_terminated_seat_gets_a_new_machine_under_a_new_token(
        ctx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    course = load(course_file(tmp_path, students=1))
    [first] = lifecycle.up(ctx, course, skip_setup=True).launched
    assert first.raw["ClientToken"] == machines.client_token("launch", "s01", "first")
    machines.terminate(ctx.aws, [first])
    [second] = lifecycle.up(ctx, course, skip_setup=True).launched
    assert second.instance_id != first.instance_id
    assert second.raw["ClientToken"] == machines.client_token("launch", "s01",
                                                              first.instance_id)
    # EC2 stops listing terminated machines after a while, yet remembers their tokens:
    # the old tokens are found spent (mismatch, or a terminated answer) and skipped
    machines.terminate(ctx.aws, [second])
    monkeypatch.setattr(machines, "incarnations", lambda *_args: {})
    [third] = lifecycle.up(ctx, course, skip_setup=True).launched
    assert third.instance_id not in {first.instance_id, second.instance_id}
    assert third.raw["ClientToken"] == machines.client_token("launch", "s01",
                                                             second.instance_id)
    assert [i["InstanceId"] for i in live_instances(ctx)] == [third.instance_id]


def test_an_error_other_than_capacity_stops_the_launch(ctx, tmp_path: Path) -> None:
    from labtui.errors import AwsError

    course = load(course_file(tmp_path, students=4))

    attempts: list[str] = []

    def refuse(params, **_kwargs) -> None:
        attempts.append(params["ClientToken"])
        raise ClientError({"Error": {"Code": "UnauthorizedOperation",
                                     "Message": "not allowed"}}, "RunInstances")

    ctx.aws.client("ec2", "us-east-1").meta.events.register(
        "before-parameter-build.ec2.RunInstances", refuse)
    with pytest.raises(AwsError, match="UnauthorizedOperation") as caught:
        lifecycle.up(ctx, course, skip_setup=True)
    assert caught.value.code == "UnauthorizedOperation"
    assert len(attempts) == 1  # the first seat found it out alone; the others never called
    assert live_instances(ctx) == []


# -- the image: its root device and its architecture ----------------------------------------

def run_requests(ctx, region: str = "us-east-1") -> list[dict]:
    """The parameters of every RunInstances call labtui makes in ``region``."""
    seen: list[dict] = []
    ctx.aws.client("ec2", region).meta.events.register(
        "provide-client-params.ec2.RunInstances",
        lambda params, **_kwargs: seen.append(dict(params)))
    return seen


def root_of(ctx, machine) -> tuple[str, list[tuple[str, int]]]:
    """(RootDeviceName, [(device, GiB)]) of a machine, as EC2 describes it."""
    ec2 = ctx.aws.client("ec2", machine.region)
    instance = ec2.describe_instances(InstanceIds=[machine.instance_id])["Reservations"][0][
        "Instances"][0]
    sizes = {v["VolumeId"]: v["Size"] for v in ec2.describe_volumes(Filters=[
        {"Name": "attachment.instance-id", "Values": [machine.instance_id]}])["Volumes"]}
    return instance["RootDeviceName"], sorted(
        (m["DeviceName"], sizes[m["Ebs"]["VolumeId"]]) for m in instance["BlockDeviceMappings"])


@pytest.mark.parametrize(("ami", "root"), [("debian-12", "/dev/xvda"),
                                           ("ubuntu-24.04", "/dev/sda1")])
def test_disk_gb_resizes_the_root_volume_named_by_the_image(ctx, tmp_path, ami, root) -> None:
    course = load(course_file(tmp_path, students=1,
                              machines_keys=f'ami = "{ami}"\ndisk_gb = 24\nlogin = "key"'))
    requests = run_requests(ctx)
    [machine] = lifecycle.up(ctx, course, skip_setup=True).launched
    image = ctx.aws.client("ec2", "us-east-1").describe_images(
        ImageIds=[requests[0]["ImageId"]])["Images"][0]
    assert image["RootDeviceName"] == root
    assert [m["DeviceName"] for m in requests[0]["BlockDeviceMappings"]] == [root]
    # one volume, the root, of the course's size: no empty second disk next to an 8 GiB root
    assert root_of(ctx, machine) == (root, [(root, 24)])


def test_an_arm64_instance_type_gets_the_arm64_image_and_boots(ctx, tmp_path) -> None:
    course = _course_with_type(tmp_path, "t4g.small")
    requests = run_requests(ctx)
    [machine] = lifecycle.up(ctx, course, skip_setup=True).launched
    ec2 = ctx.aws.client("ec2", "us-east-1")
    [image] = ec2.describe_images(ImageIds=[requests[0]["ImageId"]])["Images"]
    assert image["ImageId"] == flavors.ARM64["ubuntu-24.04"].image_id
    assert image["Architecture"] == "arm64"
    assert machine.raw["Architecture"] == "arm64" and machine.instance_type == "t4g.small"
    assert on_seat(ctx, course, "s01", "echo up")[0] == 0  # the sandbox plays it all the same


def _course_with_type(tmp_path: Path, instance_type: str, extra: str = ""):
    path = course_file(tmp_path, students=1, machines_keys='login = "key"\n' + extra)
    path.write_text(path.read_text().replace('instance_type = "t3.small"',
                                             f'instance_type = "{instance_type}"'))
    return load(path)


def test_an_image_of_another_architecture_is_refused_before_any_launch(ctx, tmp_path) -> None:
    arm_image = flavors.ARM64["debian-12"].image_id
    course = _course_with_type(tmp_path, "t3.small", f'ami = "{arm_image}"\nuser = "admin"')
    requests = run_requests(ctx)
    with pytest.raises(InputError, match="is an arm64 image.*t3.small runs x86_64") as caught:
        lifecycle.up(ctx, course, skip_setup=True)
    assert "Fix:" in str(caught.value)
    assert requests == [] and live_instances(ctx) == []


# -- quota refusals: the next region, within its headroom; the seats that fit still launch --

class Quota:
    """Refuse RunInstances in a region with ``code`` once ``allow`` calls were accepted, as
    AWS does when the region's vCPU quota is used up; counts calls per seat (ClientToken)."""

    def __init__(self, ctx, region: str, allow: int, code: str = "VcpuLimitExceeded") -> None:
        self.allow, self.code = allow, code
        self.accepted = 0
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()
        ctx.aws.client("ec2", region).meta.events.register(
            "before-parameter-build.ec2.RunInstances", self)

    def __call__(self, params, **_kwargs) -> None:
        with self._lock:
            token = params["ClientToken"]
            self.calls[token] = self.calls.get(token, 0) + 1
            if self.accepted < self.allow:
                self.accepted += 1
                return
        raise ClientError({"Error": {"Code": self.code, "Message": "You have requested more "
                                     "vCPU capacity than your current vCPU limit allows"}},
                          "RunInstances")


def two_region_course(tmp_path: Path, students: int):
    return load(write_course(tmp_path, "launch", students=students,
                             regions=("us-east-1", "eu-west-1"), machines='login = "key"'))


def test_a_quota_refusal_moves_seats_to_the_next_region_not_the_next_zone(
        ctx, tmp_path) -> None:
    course = two_region_course(tmp_path, students=3)
    east = Quota(ctx, "us-east-1", allow=1)
    result = lifecycle.up(ctx, course, skip_setup=True)
    assert result.failed == {} and len(result.launched) == 3
    where = {m.seat: m.region for m in result.launched}
    assert where == {"s01": "us-east-1", "s02": "eu-west-1", "s03": "eu-west-1"}
    assert result.moved == {"s02": ("us-east-1", "eu-west-1"),
                            "s03": ("us-east-1", "eu-west-1")}
    # no seat asked us-east-1 twice: the quota is the region's, no other zone was tried (a
    # seat that starts after the refusal goes straight to eu-west-1)
    assert len(east.calls) >= 2 and max(east.calls.values()) == 1
    logs = [e.text for e in ctx.sink.events if type(e).__name__ == "LogLine"]
    assert any("VcpuLimitExceeded in us-east-1" in t and "next region" in t for t in logs)


def test_seats_that_move_must_fit_the_next_regions_headroom(ctx, sandbox, tmp_path) -> None:
    course = two_region_course(tmp_path, students=3)
    sandbox.quotas.set("eu-west-1", 2.0)  # one t3.small (2 vCPUs) fits there, not two
    Quota(ctx, "us-east-1", allow=1, code="InstanceLimitExceeded")
    west = run_requests(ctx, "eu-west-1")
    result = lifecycle.up(ctx, course, skip_setup=True)
    assert sorted(m.region for m in result.launched) == ["eu-west-1", "us-east-1"]
    assert len(west) == 1  # the seat that did not fit was never sent there
    [(seat, why)] = result.failed.items()
    assert seat in ("s02", "s03") and "InstanceLimitExceeded in us-east-1" in why
    assert "eu-west-1 has 0 vCPUs of On-Demand Standard vCPUs (L-1216C47A) free" in why
    [problem] = [e for e in ctx.sink.events if type(e).__name__ == "Problem"
                 and getattr(e, "seat", None) == seat]
    assert "labtui quota-request" in problem.fix


def test_a_refused_seat_does_not_stop_the_seats_that_fit(ctx, tmp_path) -> None:
    course = load(course_file(tmp_path, students=4, machines_keys='login = "key"'))
    east = Quota(ctx, "us-east-1", allow=2)
    result = lifecycle.up(ctx, course, skip_setup=True)
    assert len(result.launched) == 2 and len(result.failed) == 2
    assert {m.seat for m in result.launched} | set(result.failed) == {"s01", "s02", "s03",
                                                                      "s04"}
    assert all("VcpuLimitExceeded in us-east-1" in why for why in result.failed.values())
    assert max(east.calls.values()) == 1  # no seat went round the zones
    assert len(live_instances(ctx)) == 2


def test_a_seat_moving_where_the_courses_ami_id_does_not_exist_is_named(ctx, tmp_path) -> None:
    image = flavors.FLAVORS["debian-12"].image_id
    ctx.aws.client("ec2", "eu-west-1").deregister_image(ImageId=image)  # AMI ids are regional
    path = write_course(tmp_path, "launch", students=2, regions=("us-east-1", "eu-west-1"),
                        machines=f'login = "key"\nami = "{image}"\nuser = "admin"')
    Quota(ctx, "us-east-1", allow=1)
    result = lifecycle.up(ctx, load(path), skip_setup=True)  # no error: s01 runs
    assert [m.seat for m in result.launched] == ["s01"]
    assert "image ami-0a11ab5a4d0e0d012 does not exist in eu-west-1" in result.failed["s02"]


def test_the_sandbox_takes_many_launches_at_once_in_one_subnet() -> None:
    """moto hands a subnet's addresses out from one generator; two launches at one moment
    once met "generator already executing" (an HTTP 500 page for a seat of a 40-seat up).
    The sandbox runs moto's launches one at a time per region. Driven on moto's backend in
    an account of its own (the sandbox's machines only follow the sandbox's account), with
    thread switches made as frequent as they go so the race shows when the lock is gone."""
    import sys

    from moto.ec2.models import ec2_backends

    from labtui.sandbox import idempotency

    idempotency.install()
    backend = ec2_backends["999900001111"]["us-east-1"]
    vpc = backend.create_vpc("10.9.0.0/16")
    subnet = backend.create_subnet(vpc.id, "10.9.0.0/20", availability_zone="us-east-1a")
    image = next(iter(backend.amis))
    errors: list[str] = []
    made: list[str] = []
    start = threading.Barrier(40)

    def launch() -> None:
        start.wait()
        try:
            for _ in range(5):
                reservation = backend.run_instances(
                    image, 1, None, [], subnet_id=subnet.id, instance_type="t3.small",
                    is_instance_type_default=False, tags={}, placement=None)
                made.extend(i.id for i in reservation.instances)
        except Exception as exc:  # noqa: BLE001 - the test reports what moto raised
            errors.append(f"{type(exc).__name__}: {exc}")

    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=launch) for _ in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        sys.setswitchinterval(before)
    assert errors == []
    assert len(set(made)) == 200
    addresses = [backend.get_instance(i).private_ip for i in made]
    assert len(set(addresses)) == 200


class _Page:
    """The body of an answer that is not an AWS reply (an overloaded endpoint's page)."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_kwargs):
        yield self.body


def test_a_launch_answered_by_an_error_page_is_asked_again(
        ctx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """RunInstances answered with a 500 HTML page (what moto gave a 40-seat up) is a busy
    EC2: the seat is asked again under its client token and launches; nothing else stops,
    and no traceback reaches the instructor."""
    from botocore.awsrequest import AWSResponse

    monkeypatch.setattr(machines.time, "sleep", lambda _s: None)
    course = load(course_file(tmp_path, students=3))
    lock = threading.Lock()
    pages = {"left": 4, "sent": 0}

    def page(request, **_kwargs):
        with lock:
            if pages["left"] <= 0:
                return None
            pages["left"] -= 1
            pages["sent"] += 1
        return AWSResponse(request.url, 500, {"Content-Type": "text/html"}, _Page(
            b"<!doctype html>\n<title>500 Internal Server Error</title>\n<h1>Internal "
            b"Server Error</h1>\n"))

    events = ctx.aws.client("ec2", "us-east-1").meta.events
    events.register("before-send.ec2.RunInstances", page)
    try:
        result = lifecycle.up(ctx, course, skip_setup=True)
    finally:
        events.unregister("before-send.ec2.RunInstances", page)
    assert pages["sent"] == 4
    assert sorted(m.seat for m in result.launched) == ["s01", "s02", "s03"]
    assert len(live_instances(ctx)) == 3
    assert "Traceback" not in capsys.readouterr().err


def test_an_answer_that_is_not_an_aws_reply_is_an_aws_error() -> None:
    from botocore.parsers import ResponseParserError

    from labtui.errors import AwsError
    from labtui.services.aws import translate_errors
    from labtui.services.retries import transient

    with pytest.raises(AwsError) as caught:
        with translate_errors("ec2.RunInstances in us-east-1"):
            raise ResponseParserError("Unable to parse response: b'<!doctype html>...'")
    assert transient(caught.value)
    assert "<!doctype" not in str(caught.value)
    assert str(caught.value).startswith("ec2.RunInstances in us-east-1: ")
