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
from labtui.sandbox import flavors
from labtui.services import cloudinit, machines, tags
from labtui.services.ssh import load_private_key

from .courses import write_course

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
