"""Regions, quotas and cost on the sandbox (which serves EC2 quotas and the Price List API
itself, as AWS does): the planner spills a class over regions within quota headroom,
refuses a class that fits nowhere, and prices a known plan as computed by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from labtui import lifecycle
from labtui.course import load
from labtui.errors import LabError
from labtui.services import quotas
from labtui.services.pricing import Prices

from .courses import CLUSTER, write_course
from .test_cli import json_lines, run

ON_DEMAND, SPOT = "L-1216C47A", "L-34B43A08"


def course_file(tmp_path: Path, students: int = 4, clusters: bool = True,
                budget: str = "") -> Path:
    return write_course(tmp_path, "quota", students=students, max_instances=100,
                        regions=("us-east-1", "eu-west-1", "sa-east-1"), course_extra=budget,
                        extra=CLUSTER if clusters else "")




def test_class_fits_in_the_first_region(ctx, tmp_path) -> None:
    plan = lifecycle.plan(ctx, load(course_file(tmp_path)))
    assert [(r.region, len(r.create), r.clusters) for r in plan.regions] == [
        ("us-east-1", 4, 4), ("eu-west-1", 0, 0), ("sa-east-1", 0, 0)]
    # per seat: t3.small (2) + master m5.xlarge (4) on-demand; 2 spot m5.xlarge (8)
    assert plan.regions[0].new_vcpus == {ON_DEMAND: 24, SPOT: 32}
    assert plan.unplaced == () and plan.shortfall == ()


def test_class_spills_into_the_second_and_third_regions(ctx, sandbox, tmp_path) -> None:
    sandbox.quotas.set("us-east-1", 12, ON_DEMAND)   # 2 seats x 6 on-demand vCPUs
    sandbox.quotas.set("eu-west-1", 7, ON_DEMAND)    # 1 seat
    plan = lifecycle.plan(ctx, load(course_file(tmp_path)))
    assert [(r.region, r.create) for r in plan.regions] == [
        ("us-east-1", ("s01", "s02")), ("eu-west-1", ("s03",)), ("sa-east-1", ("s04",))]
    assert plan.regions[1].headroom == {ON_DEMAND: 7, SPOT: 256}
    # and up launches them where the plan put them
    result = lifecycle.up(ctx, load(course_file(tmp_path)), skip_setup=True)
    assert sorted((m.seat, m.region) for m in result.launched) == [
        ("s01", "us-east-1"), ("s02", "us-east-1"), ("s03", "eu-west-1"),
        ("s04", "sa-east-1")]


def test_usage_counts_against_headroom(ctx, sandbox, tmp_path) -> None:
    sandbox.quotas.set("us-east-1", 10, ON_DEMAND)
    ctx.aws.client("ec2", "us-east-1").run_instances(
        ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="m5.xlarge")  # 4 vCPUs
    found = quotas.read_quotas(ctx.aws, "us-east-1", [ON_DEMAND])[ON_DEMAND]
    assert (found.value, found.usage, found.headroom) == (10, 4, 6)
    plan = lifecycle.plan(ctx, load(course_file(tmp_path, clusters=False)))
    assert len(plan.regions[0].create) == 3  # 6 free / 2 vCPUs per t3.small


def test_class_that_fits_nowhere_exits_1_naming_the_shortfall(sandbox, sandbox_state,
                                                              tmp_path) -> None:
    for region in ("us-east-1", "eu-west-1", "sa-east-1"):
        sandbox.quotas.set(region, 8, ON_DEMAND)   # one seat each (6), never two
    path = course_file(tmp_path, students=5)
    env = {"LABTUI_STATE_DIR": str(sandbox_state.root)}
    plan = run("plan", str(path), "--sandbox", env=env)
    assert plan.returncode == 1
    assert "2 seat(s) fit in no region (s04, s05)" in plan.stdout
    assert "10 more On-Demand Standard vCPUs (L-1216C47A) in us-east-1 (free there: 2)" in \
        plan.stdout
    up = run("up", str(path), "--sandbox", "--yes", env=env)
    assert up.returncode == 1 and "Nothing was created" in up.stderr
    assert "labtui quota-request" in up.stderr
    ec2 = __import__("boto3").client(
        "ec2", region_name="us-east-1", endpoint_url=sandbox.endpoint_url,
        aws_access_key_id="testing", aws_secret_access_key="testing")
    assert ec2.describe_instances()["Reservations"] == []
    assert ec2.describe_vpcs(Filters=[{"Name": "tag:labtui:course", "Values": ["quota"]}])[
        "Vpcs"] == []


def test_quota_request_is_recorded_and_listed(sandbox, sandbox_state, tmp_path) -> None:
    path = str(course_file(tmp_path))
    env = {"LABTUI_STATE_DIR": str(sandbox_state.root)}
    sandbox.quotas.set("eu-west-1", 16, ON_DEMAND)
    refused = run("quota-request", path, "eu-west-1", "--vcpus", "8", "--sandbox", "--yes",
                  env=env)
    assert refused.returncode == 2 and "not above the current quota (16" in refused.stderr
    asked = run("quota-request", path, "eu-west-1", "--vcpus", "64", "--sandbox", "--yes",
                "--json", env=env)
    assert asked.returncode == 0, asked.stderr
    [answer] = json_lines(asked.stdout)
    assert (answer["code"], answer["from"], answer["to"], answer["status"]) == (
        ON_DEMAND, 16, 64, "PENDING")
    listed = json_lines(run("quotas", path, "--sandbox", "--json", env=env).stdout)
    eu = [q for q in listed if q["region"] == "eu-west-1" and q["code"] == ON_DEMAND][0]
    assert eu["value"] == 16 and eu["pending"] == [
        {"id": answer["id"], "desired": 64.0, "status": "PENDING"}]


def test_unreadable_quota_falls_back_to_the_aws_default_and_says_so(ctx) -> None:
    def deny(**kwargs):
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}},
                          "GetServiceQuota")

    ctx.aws.client("service-quotas", "eu-west-1").meta.events.register(
        "before-call.service-quotas.GetServiceQuota", deny)
    found = quotas.read_quotas(ctx.aws, "eu-west-1", [ON_DEMAND])[ON_DEMAND]
    assert found.value == 5 and found.from_default
    assert found.source == "AWS default (AccessDeniedException reading the account's quota)"


def test_cost_of_a_known_plan_matches_the_hand_computation(ctx, tmp_path) -> None:
    plan = lifecycle.plan(ctx, load(course_file(tmp_path, budget="budget_usd = 20.0")))
    # us-east-1: 4 x t3.small 0.0208 + 4 clusters x (master m5.xlarge 0.192 on-demand
    # + 2 core spot at the 0.05 bid) + EMR surcharge 3 nodes x 0.048 per cluster
    by_hand = 4 * 0.0208 + 4 * (0.192 + 2 * 0.05) + 4 * 3 * 0.048
    assert plan.regions[0].hourly_usd == pytest.approx(by_hand)
    assert plan.hourly_usd == pytest.approx(by_hand)
    assert plan.daily_usd == pytest.approx(by_hand * 24)
    assert plan.over_budget  # 24 x 1.3272 = 31.85 > 20
    result_json = plan.summary_json()
    assert result_json["over_budget"] is True and result_json["unpriced"] == []


def test_price_list_api_then_the_dated_table(ctx) -> None:
    prices = Prices(ctx.aws)
    assert prices.ec2("us-east-1", "t3.small").source == "AWS Price List API"
    assert prices.ec2("us-east-1", "t3.small").usd == pytest.approx(0.0208)

    def deny(**kwargs):
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}},
                          "GetProducts")

    ctx.aws.client("pricing", "us-east-1").meta.events.register(
        "before-call.pricing.GetProducts", deny)
    offline = Prices(ctx.aws)
    price = offline.ec2("eu-west-1", "m5.xlarge")
    assert price.usd == pytest.approx(0.214)
    assert price.source == f"price table of {offline.table_date}"
    assert offline.ec2("eu-west-1", "z9.unknown").usd is None


def test_status_shows_cost_so_far_per_seat(ctx, tmp_path) -> None:
    course = load(course_file(tmp_path, students=2, clusters=False))
    lifecycle.up(ctx, course, skip_setup=True)
    seats = lifecycle.status(ctx, course)
    assert [s.hourly_usd for s in seats] == [pytest.approx(0.0208)] * 2
    # cost so far = the hourly price x the hours since the machine (re)started
    for seat in seats:
        launched = lifecycle.seat_machine(ctx, course, seat.seat).raw["LaunchTime"]
        hours = (datetime.now(UTC) - launched).total_seconds() / 3600
        assert seat.cost_usd == pytest.approx(0.0208 * hours, abs=0.0208 * 10 / 3600)
    stopped = lifecycle.seat_machine(ctx, course, "s01")
    lifecycle.machines.stop(ctx.aws, [stopped])
    assert {s.seat: s.cost_usd for s in lifecycle.status(ctx, course)}["s01"] == 0.0
    assert "cost_usd" in seats[0].to_json()


def test_up_refuses_when_nothing_fits(ctx, sandbox, tmp_path) -> None:
    for region in ("us-east-1", "eu-west-1", "sa-east-1"):
        sandbox.quotas.set(region, 0, ON_DEMAND)
    with pytest.raises(LabError, match="does not fit the vCPU quotas"):
        lifecycle.up(ctx, load(course_file(tmp_path, students=1)))


def test_up_creates_billing_alarms_and_down_removes_them(ctx, tmp_path) -> None:
    path = course_file(tmp_path, students=1, clusters=False)
    path.write_text(path.read_text() + '\n[billing]\nalarms_usd = [10, 40]\n'
                    'notify = "prof@example.edu"\nmonthly_budget_usd = 200\n')
    course = load(path)
    lifecycle.up(ctx, course, skip_setup=True)
    cloudwatch = ctx.aws.client("cloudwatch", "us-east-1")
    alarms = cloudwatch.describe_alarms(AlarmNamePrefix="labtui-quota-billing-")["MetricAlarms"]
    assert sorted(a["Threshold"] for a in alarms) == [10, 40]
    assert {a["MetricName"] for a in alarms} == {"EstimatedCharges"}
    budgets = ctx.aws.client("budgets", "us-east-1")
    account = ctx.aws.client("sts").get_caller_identity()["Account"]
    assert budgets.describe_budget(AccountId=account, BudgetName="labtui-quota")["Budget"][
        "BudgetLimit"]["Amount"] in ("200", "200.0")
    report = lifecycle.down(ctx, course)
    assert report.failed == []
    assert cloudwatch.describe_alarms(AlarmNamePrefix="labtui-quota-billing-")[
        "MetricAlarms"] == []
    assert budgets.describe_budgets(AccountId=account).get("Budgets", []) == []


def test_a_region_not_enabled_is_left_out_of_the_plan(ctx, sandbox, tmp_path) -> None:
    def eu_west_1_not_enabled(parsed, **kwargs):
        for region in parsed.get("Regions", []):
            if region["RegionName"] == "eu-west-1":
                region["OptInStatus"] = "not-opted-in"

    ctx.aws.client("ec2", "us-east-1").meta.events.register(
        "after-call.ec2.DescribeRegions", eu_west_1_not_enabled)
    sandbox.quotas.set("us-east-1", 12, ON_DEMAND)
    plan = lifecycle.plan(ctx, load(course_file(tmp_path)))
    assert [(r.region, r.create) for r in plan.regions] == [
        ("us-east-1", ("s01", "s02")), ("eu-west-1", ()), ("sa-east-1", ("s03", "s04"))]
    assert any("region eu-west-1 is not enabled" in getattr(e, "message", "")
               for e in ctx.sink.events)
