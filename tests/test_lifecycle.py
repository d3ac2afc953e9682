"""up / status / stop / start / down on the sandbox, through the real services."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from labtui import lifecycle
from labtui.context import open_context
from labtui.course import load
from labtui.errors import InputError
from labtui.events import ListSink
from labtui.sandbox import flavors
from labtui.services import cloudinit, machines, tags

from .courses import write_course

IMAGE = flavors.FLAVORS["ubuntu-24.04"].image_id  # a sandbox image


def small_course(tmp_path: Path, students: int = 3, max_instances: int = 10,
                 extra: str = "") -> Path:
    return write_course(tmp_path, "life", students=students, max_instances=max_instances,
                        regions=("us-east-1", "eu-west-1"), extra=extra)


def eventually(get, ok, timeout: float = 30.0):
    """The sandbox opens an SSH host a moment after an instance runs, as a real machine
    boots: poll like a user refreshing the screen."""
    deadline = time.monotonic() + timeout
    while True:
        value = get()
        if ok(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.1)




def test_up_status_and_second_up_creates_nothing(ctx, tmp_path: Path) -> None:
    course = load(small_course(tmp_path))
    result = lifecycle.up(ctx, course, skip_setup=True)
    assert sorted(m.seat for m in result.launched) == ["s01", "s02", "s03"]
    assert not result.failed
    ec2 = ctx.aws.client("ec2", "us-east-1")
    assert ctx.aws.calls.snapshot()["ec2.RunInstances"] == 3  # one per seat
    seats = lifecycle.status(ctx, course)
    assert [(s.seat, s.state, s.region, s.setup) for s in seats] == [
        ("s01", "running", "us-east-1", "pending"), ("s02", "running", "us-east-1", "pending"),
        ("s03", "running", "us-east-1", "pending")]
    seats = eventually(lambda: lifecycle.status(ctx, course),
                       lambda found: all(s.address for s in found))
    assert all(s.address and s.address.startswith("127.") for s in seats)
    assert len({s.address for s in seats}) == 3  # a loopback address of its own each

    ctx.aws.calls.reset()
    again = lifecycle.up(ctx, course, skip_setup=True)
    assert again.launched == [] and "ec2.RunInstances" not in ctx.aws.calls.snapshot()
    live = ec2.describe_instances(Filters=tags.course_filter("life") + [
        {"Name": "instance-state-name", "Values": ["running"]}])
    assert sum(len(r["Instances"]) for r in live["Reservations"]) == 3


def test_two_ups_at_once_make_one_machine_per_seat(sandbox_state, tmp_path: Path) -> None:
    """Two `labtui up` at the same moment (two threads, as two terminals would) send the
    same ClientToken per seat; EC2 (and the sandbox) makes one machine for it, and both runs
    pin the host key that machine's own user-data holds."""
    import threading

    from labtui.services import network

    course = load(small_course(tmp_path, students=4))
    contexts = [open_context(None, sandbox=True, state_dir=str(sandbox_state.root),
                             sink=ListSink()) for _ in range(2)]
    # the course's network exists (made on an earlier day): making it is not race-free yet
    network.ensure_network(contexts[0].aws, course, "us-east-1")
    # both runs have planned (found no machines) before either launches a first one
    launching = threading.Barrier(2, timeout=60)
    for context in contexts:
        waited: list[bool] = []

        def meet(waited: list[bool] = waited, **_kwargs) -> None:
            if not waited:
                waited.append(True)
                launching.wait()

        context.aws.client("ec2", "us-east-1").meta.events.register(
            "before-call.ec2.RunInstances", meet)
    results: list = [None, None]
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            results[index] = lifecycle.up(contexts[index], course, skip_setup=True)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, errors
        live = [i for region in course.regions
                for i in machines.all_course_instances(contexts[0].aws, "life", region)]
        seats = sorted(tags.as_dict(i["Tags"])[tags.SEAT] for i in live)
        assert seats == ["s01", "s02", "s03", "s04"]  # exactly one machine per seat
        assert all(not r.failed for r in results)
        for result in results:  # each run reports the seat's one machine, not a second
            assert sorted(m.instance_id for m in result.launched) == sorted(
                i["InstanceId"] for i in live)
        assert any("another labtui run launched" in getattr(e, "text", "")
                   for context in contexts for e in context.sink.events)
        pins = machines.KnownHosts(contexts[0].state.course("life")).all()
        for instance in live:
            text = machines.user_data(contexts[0].aws, "us-east-1", instance["InstanceId"])
            assert pins[instance["InstanceId"]] == cloudinit.host_public(text)
        assert lifecycle.up(contexts[0], course, skip_setup=True).launched == []
    finally:
        for context in contexts:
            context.close()


def test_max_instances_refuses_before_anything_is_created(ctx, tmp_path: Path) -> None:
    path = small_course(tmp_path, students=3, max_instances=3)
    course = load(path)
    # someone launched an extra course instance by hand: now 1 + 3 > 3
    ctx.aws.client("ec2", "eu-west-1").run_instances(
        ImageId=IMAGE, MinCount=1, MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags.tags("life")}])
    ctx.aws.calls.reset()
    with pytest.raises(InputError, match="max_instances is 3, the course has 1 instance"):
        lifecycle.up(ctx, course, skip_setup=True)
    assert not any(op.startswith("ec2.Create") or op == "ec2.RunInstances"
                   for op in ctx.aws.calls.snapshot())


def test_capacity_error_moves_seats_to_next_zone_then_region(ctx, tmp_path: Path) -> None:
    from botocore.exceptions import ClientError

    course = load(small_course(tmp_path, students=2))
    refused = []

    def no_capacity_in_us_east_1(params, **kwargs):
        subnet = params["NetworkInterfaces"][0]["SubnetId"]
        refused.append(subnet)
        raise ClientError({"Error": {"Code": "InsufficientInstanceCapacity",
                                     "Message": "no t3.small here"}}, "RunInstances")

    ctx.aws.client("ec2", "us-east-1").meta.events.register(
        "before-parameter-build.ec2.RunInstances", no_capacity_in_us_east_1)
    result = lifecycle.up(ctx, course, skip_setup=True)
    assert len(refused) == 3  # every zone of us-east-1 was tried
    assert {m.region for m in result.launched} == {"eu-west-1"}
    assert result.moved == {"s01": ("us-east-1", "eu-west-1"),
                            "s02": ("us-east-1", "eu-west-1")}
    assert any("moving 2 seat(s) from us-east-1 to eu-west-1" in getattr(e, "text", "")
               for e in ctx.sink.events)


def test_stop_start_and_down_leave_nothing(ctx, tmp_path: Path) -> None:
    course = load(small_course(tmp_path, students=2, extra='\n'))
    lifecycle.up(ctx, course, skip_setup=True)
    before = {s.seat: s.address for s in lifecycle.status(ctx, course)}
    stopped = lifecycle.stop(ctx, course, ["s01"])
    assert [m.seat for m in stopped] == ["s01"]
    states = {s.seat: (s.state, s.address) for s in lifecycle.status(ctx, course)}
    assert states["s01"] == ("stopped", None) and states["s02"][0] == "running"
    lifecycle.start(ctx, course)
    after = eventually(lambda: {s.seat: s.address for s in lifecycle.status(ctx, course)},
                       lambda found: found["s01"] and found["s01"] != before["s01"],
                       timeout=60)   # a loaded machine boots it again later, not wrongly
    assert after["s01"] and after["s01"] != before["s01"]  # a new address after a start
    report = lifecycle.down(ctx, course)
    assert report.failed == []
    assert report.removed["instances"] == 2 and report.removed["VPCs"] == 1
    ec2 = ctx.aws.client("ec2", "us-east-1")
    assert ec2.describe_vpcs(Filters=tags.course_filter("life"))["Vpcs"] == []
    assert ec2.describe_security_groups(Filters=tags.course_filter("life"))[
        "SecurityGroups"] == []
    assert ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": ["labtui-life"]}])[
        "KeyPairs"] == []
    assert all(s.state == "absent" for s in lifecycle.status(ctx, course))


def test_read_only_refuses_mutations(sandbox_state, tmp_path: Path) -> None:
    course = load(small_course(tmp_path))
    ctx = open_context(None, sandbox=True, state_dir=str(sandbox_state.root), read_only=True)
    try:
        with pytest.raises(InputError, match="up is refused: labtui runs read-only"):
            lifecycle.up(ctx, course, skip_setup=True)
    finally:
        ctx.close()


def test_spot_price_too_low_moves_seats_and_spot_options_are_sent(ctx, tmp_path: Path) -> None:
    from botocore.exceptions import ClientError

    path = small_course(tmp_path, students=3)
    path.write_text(path.read_text().replace(
        'instance_type = "t3.small"',
        'instance_type = "t3.small"\nmarket = "spot"\nmax_price = 0.0123'))
    course = load(path)
    seen = []

    def spot_market(params, **kwargs):
        seen.append(params["InstanceMarketOptions"])
        if params["NetworkInterfaces"][0]["SubnetId"] == first_subnet[0]:
            raise ClientError({"Error": {"Code": "SpotMaxPriceTooLow",
                                         "Message": "price below the spot price"}},
                              "RunInstances")

    from labtui.services import network

    first_subnet = [network.ensure_network(ctx.aws, course, "us-east-1").subnets[0][1]]
    ctx.aws.client("ec2", "us-east-1").meta.events.register(
        "before-parameter-build.ec2.RunInstances", spot_market)
    result = lifecycle.up(ctx, course, skip_setup=True)
    assert seen[0] == {"MarketType": "spot", "SpotOptions": {
        "SpotInstanceType": "persistent", "InstanceInterruptionBehavior": "stop",
        "MaxPrice": "0.0123"}}
    # the first seat found the first zone refusing; every seat went to the second zone
    assert {m.region for m in result.launched} == {"us-east-1"} and result.moved == {}
    assert len(seen) == 4 and not result.failed  # one refusal, then one call per seat
    assert any("SpotMaxPriceTooLow in us-east-1a" in getattr(e, "text", "")
               for e in ctx.sink.events)


def test_no_capacity_anywhere_names_each_seat(ctx, tmp_path: Path) -> None:
    from botocore.exceptions import ClientError

    course = load(small_course(tmp_path, students=2))

    def never(params, **kwargs):
        raise ClientError({"Error": {"Code": "InsufficientInstanceCapacity", "Message": "no"}},
                          "RunInstances")

    for region in course.regions:
        ctx.aws.client("ec2", region).meta.events.register(
            "before-parameter-build.ec2.RunInstances", never)
    result = lifecycle.up(ctx, course, skip_setup=True)
    assert sorted(result.failed) == ["s01", "s02"] and result.launched == []
    assert "no capacity in any zone of us-east-1, eu-west-1" in result.failed["s01"]
