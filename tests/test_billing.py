"""Billing alarms, topic and budget, through the real path: services/billing.py against the
sandbox emulator, asserting what AWS then holds."""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.stub import Stubber

from labtui.course import Course, load
from labtui.events import ListSink, LogLine, StepDone
from labtui.screens.quotas import billing_text
from labtui.services import billing, tags
from labtui.services.aws import Aws, AwsSettings

BILLING = """
[billing]
alarms_usd = {alarms}
notify = "{notify}"
{budget}
"""


def make_course(tmp_path: Path, alarms: str = "[25, 50]",
                budget: str = "monthly_budget_usd = 300", section: bool = True,
                course_id: str = "bill", notify: str = "prof@example.edu") -> Course:
    path = tmp_path / "course.toml"
    path.write_text(f"""
[course]
id = "{course_id}"
name = "Billing"
regions = ["eu-west-1"]
max_instances = 5

[[roster.students]]
id = "s01"
name = "Student 1"
email = "s1@example.edu"
{BILLING.format(alarms=alarms, budget=budget, notify=notify) if section else ""}
""")
    return load(path)


@pytest.fixture
def aws(sandbox) -> Aws:
    sandbox.reset()
    return Aws(AwsSettings(endpoint_url=sandbox.endpoint_url, sandbox=True))


def alarms_of(aws: Aws, course_id: str = "bill") -> dict[str, dict]:
    found = aws.client("cloudwatch", "us-east-1").describe_alarms(
        AlarmNamePrefix=f"labtui-{course_id}-billing-")["MetricAlarms"]
    return {a["AlarmName"]: a for a in found}


def budgets_of(aws: Aws) -> list[dict]:
    client = aws.client("budgets", "us-east-1")
    return client.describe_budgets(AccountId=account(aws)).get("Budgets", [])


def account(aws: Aws) -> str:
    return aws.client("sts").get_caller_identity()["Account"]


def writes(aws: Aws) -> list[str]:
    return sorted(op for op in aws.calls.snapshot()
                  if op.split(".", 1)[1].startswith(("Put", "Create", "Delete", "Subscribe",
                                                      "Unsubscribe", "Update")))


def test_ensure_creates_alarms_topic_subscription_and_budget(aws: Aws, tmp_path: Path) -> None:
    course = make_course(tmp_path)
    sink = ListSink()
    state = billing.ensure_billing(aws, course, sink)

    topic = "arn:aws:sns:us-east-1:123456789012:labtui-bill-billing"
    assert state == billing.BillingState(
        topic_arn=topic, alarms=("labtui-bill-billing-25usd", "labtui-bill-billing-50usd"),
        budget="labtui-bill", budget_limit_usd=300.0,
        # moto confirms an email subscription at once; AWS keeps it pending until the
        # instructor clicks the mail (see test_subscription_state_reads_pending).
        subscription="confirmed")

    alarms = alarms_of(aws)
    assert sorted(alarms) == ["labtui-bill-billing-25usd", "labtui-bill-billing-50usd"]
    for name, amount in (("labtui-bill-billing-25usd", 25.0), ("labtui-bill-billing-50usd", 50.0)):
        alarm = alarms[name]
        assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Billing", "EstimatedCharges")
        assert alarm["Dimensions"] == [{"Name": "Currency", "Value": "USD"}]
        assert (alarm["Statistic"], alarm["Period"], alarm["EvaluationPeriods"]) == (
            "Maximum", 21600, 1)
        assert alarm["Threshold"] == amount
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["AlarmActions"] == [topic]
        assert tags.as_dict(aws.client("cloudwatch").list_tags_for_resource(
            ResourceARN=alarm["AlarmArn"])["Tags"]) == {"labtui:course": "bill"}

    sns = aws.client("sns")
    assert tags.as_dict(sns.list_tags_for_resource(ResourceArn=topic)["Tags"]) == {
        "labtui:course": "bill"}
    subs = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subs] == [("email", "prof@example.edu")]

    [budget] = budgets_of(aws)
    assert budget["BudgetName"] == "labtui-bill"
    assert (budget["BudgetType"], budget["TimeUnit"]) == ("COST", "MONTHLY")
    assert float(budget["BudgetLimit"]["Amount"]) == 300.0
    assert budget["BudgetLimit"]["Unit"] == "USD"
    notes = aws.client("budgets").describe_notifications_for_budget(
        AccountId=account(aws), BudgetName="labtui-bill")["Notifications"]
    assert sorted((n["NotificationType"], n["Threshold"], n["ThresholdType"]) for n in notes) == [
        ("ACTUAL", 50.0, "PERCENTAGE"), ("ACTUAL", 80.0, "PERCENTAGE"),
        ("FORECASTED", 100.0, "PERCENTAGE")]

    texts = [e.text for e in sink.events if isinstance(e, LogLine)]
    assert any("Receive CloudWatch billing alerts" in t and "us-east-1" in t for t in texts)
    assert any("subscribed prof@example.edu" in t and "confirmation" in t for t in texts)
    assert isinstance(sink.events[-1], StepDone) and sink.events[-1].ok
    assert billing.billing_state(aws, course) == state


def test_an_alarm_that_fires_is_shown_to_the_instructor(aws: Aws, tmp_path: Path) -> None:
    """CloudWatch puts an alarm in ALARM when the bill passes it (set here as CloudWatch
    would); labtui's billing state names it and the quotas view says it in red."""
    course = make_course(tmp_path)
    state = billing.ensure_billing(aws, course)
    assert state.firing == () and billing.billing_state(aws, course).firing == ()
    aws.client("cloudwatch").set_alarm_state(
        AlarmName="labtui-bill-billing-25usd", StateValue="ALARM",
        StateReason="estimated charges reached $25")
    now = billing.billing_state(aws, course)
    assert now.firing == ("labtui-bill-billing-25usd",)
    assert now.alarms == ("labtui-bill-billing-25usd", "labtui-bill-billing-50usd")
    text = billing_text(course, now, "")
    assert "ALARM: the estimated charges have passed $25." in text.plain
    assert any("red" in str(span.style) and "ALARM" in text.plain[span.start:span.end]
               for span in text.spans)


def test_rerun_changes_nothing_then_follows_the_course_file(aws: Aws, tmp_path: Path) -> None:
    billing.ensure_billing(aws, make_course(tmp_path))
    aws.calls.reset()
    again = billing.ensure_billing(aws, make_course(tmp_path))
    assert writes(aws) == []
    assert again.alarms == ("labtui-bill-billing-25usd", "labtui-bill-billing-50usd")
    assert len(budgets_of(aws)) == 1
    assert len(aws.client("sns").list_topics()["Topics"]) == 1
    assert len(aws.client("sns").list_subscriptions()["Subscriptions"]) == 1

    aws.calls.reset()
    changed = billing.ensure_billing(aws, make_course(tmp_path, alarms="[25, 100]"))
    assert changed.alarms == ("labtui-bill-billing-25usd", "labtui-bill-billing-100usd")
    assert sorted(alarms_of(aws)) == ["labtui-bill-billing-100usd", "labtui-bill-billing-25usd"]
    assert alarms_of(aws)["labtui-bill-billing-100usd"]["Threshold"] == 100.0
    assert writes(aws) == ["cloudwatch.DeleteAlarms", "cloudwatch.PutMetricAlarm"]
    assert aws.calls.snapshot()["cloudwatch.PutMetricAlarm"] == 1


def test_new_notify_address_replaces_the_old(aws: Aws, tmp_path: Path) -> None:
    state = billing.ensure_billing(aws, make_course(tmp_path))
    billing.ensure_billing(aws, make_course(tmp_path, notify="ta@example.edu"))
    subs = aws.client("sns").list_subscriptions_by_topic(TopicArn=state.topic_arn)
    assert [s["Endpoint"] for s in subs["Subscriptions"]] == ["ta@example.edu"]


def test_budget_limit_change_and_removal(aws: Aws, tmp_path: Path) -> None:
    billing.ensure_billing(aws, make_course(tmp_path))
    state = billing.ensure_billing(aws, make_course(tmp_path, budget="monthly_budget_usd = 450"))
    assert state.budget_limit_usd == 450.0
    [budget] = budgets_of(aws)
    assert float(budget["BudgetLimit"]["Amount"]) == 450.0
    notes = aws.client("budgets").describe_notifications_for_budget(
        AccountId=account(aws), BudgetName="labtui-bill")["Notifications"]
    assert len(notes) == 3

    state = billing.ensure_billing(aws, make_course(tmp_path, budget=""))
    assert state.budget is None and budgets_of(aws) == []
    assert len(state.alarms) == 2


def test_remove_billing_leaves_nothing(aws: Aws, tmp_path: Path) -> None:
    billing.ensure_billing(aws, make_course(tmp_path))
    # Another course whose id starts like this one's alarm prefix is not touched.
    (tmp_path / "other").mkdir()
    other = billing.ensure_billing(aws, make_course(tmp_path / "other",
                                                    course_id="bill-billing-x", budget=""))
    sink = ListSink()
    assert billing.remove_billing(aws, "bill", sink) == []
    # describe_alarms by prefix also lists the other course's alarms; only those are left.
    assert sorted(alarms_of(aws)) == ["labtui-bill-billing-x-billing-25usd",
                                      "labtui-bill-billing-x-billing-50usd"] == list(other.alarms)
    assert budgets_of(aws) == []
    sns = aws.client("sns")
    assert [t["TopicArn"] for t in sns.list_topics()["Topics"]] == [other.topic_arn]
    assert [s["TopicArn"] for s in sns.list_subscriptions()["Subscriptions"]] == [
        other.topic_arn]
    assert billing.billing_state(aws, make_course(tmp_path)).empty
    assert isinstance(sink.events[-1], StepDone) and sink.events[-1].ok
    # Removing again finds nothing and fails nothing.
    assert billing.remove_billing(aws, "bill") == []


def test_remove_billing_reports_failures_and_goes_on(aws: Aws, tmp_path: Path) -> None:
    billing.ensure_billing(aws, make_course(tmp_path))
    cloudwatch = aws.client("cloudwatch")

    def refuse(**_: object) -> None:
        from botocore.exceptions import ClientError
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "DeleteAlarms")

    cloudwatch.meta.events.register("before-call.cloudwatch.DeleteAlarms", refuse)
    try:
        failed = billing.remove_billing(aws, "bill")
    finally:
        cloudwatch.meta.events.unregister("before-call.cloudwatch.DeleteAlarms", refuse)
    assert len(failed) == 1 and failed[0].startswith("delete billing alarms")
    assert failed[0].endswith(": AccessDenied")
    assert len(alarms_of(aws)) == 2          # what failed is still there
    assert budgets_of(aws) == []             # the rest went on
    assert aws.client("sns").list_topics()["Topics"] == []


def test_no_billing_section_does_nothing(aws: Aws, tmp_path: Path) -> None:
    sink = ListSink()
    state = billing.ensure_billing(aws, make_course(tmp_path, section=False), sink)
    assert state == billing.BillingState() and state.empty
    assert writes(aws) == [] and aws.calls.total == 0
    assert any(isinstance(e, LogLine) and "no [billing] section" in e.text for e in sink.events)


def test_subscription_state_reads_pending() -> None:
    """How AWS lists an unconfirmed email subscription (moto never shows this)."""
    topic = "arn:aws:sns:us-east-1:123456789012:labtui-bill-billing"
    pending = {"SubscriptionArn": "PendingConfirmation", "Protocol": "email",
               "Endpoint": "Prof@Example.edu", "TopicArn": topic}
    confirmed = dict(pending, SubscriptionArn=f"{topic}:0f1e", Endpoint="prof@example.edu")
    other = dict(confirmed, Endpoint="ta@example.edu")
    assert billing._subscription_state([pending], "prof@example.edu") == "pending"
    assert billing._subscription_state([pending, confirmed], "prof@example.edu") == "confirmed"
    assert billing._subscription_state([other], "prof@example.edu") == "none"


def test_names_and_reminder() -> None:
    assert billing.alarm_name("c", 25.0) == "labtui-c-billing-25usd"
    assert billing.alarm_name("c", 12.5) == "labtui-c-billing-12.5usd"
    assert billing.alarm_name("c", 1e6) == "labtui-c-billing-1000000usd"
    text = billing.reminder()
    assert "Receive CloudWatch billing alerts" in text and "us-east-1" in text


def test_limit_change_on_aws_uses_update_budget(tmp_path: Path) -> None:
    """moto has no UpdateBudget, so the real-AWS branch is checked with a Stubber (no network:
    the stubbed client answers before anything is sent)."""
    aws = Aws(AwsSettings())
    budgets = aws.client("budgets")
    limit = {"Amount": "300.0", "Unit": "USD"}
    existing = {"BudgetName": "labtui-bill", "BudgetType": "COST", "TimeUnit": "MONTHLY",
                "BudgetLimit": limit, "CalculatedSpend": {"ActualSpend": limit}}
    with Stubber(budgets) as stub:
        stub.add_response("describe_budget", {"Budget": existing},
                          {"AccountId": "123456789012", "BudgetName": "labtui-bill"})
        stub.add_response("update_budget", {}, {"AccountId": "123456789012", "NewBudget": {
            "BudgetName": "labtui-bill", "BudgetType": "COST", "TimeUnit": "MONTHLY",
            "BudgetLimit": {"Amount": "450", "Unit": "USD"}}})
        stub.add_response("describe_notifications_for_budget", {"Notifications": [
            billing._notification(kind, pct) for kind, pct in billing.BUDGET_NOTIFICATIONS]})
        name = billing._ensure_budget(aws, "bill", "123456789012", 450.0, "prof@example.edu",
                                      ListSink())
        stub.assert_no_pending_responses()
    assert name == "labtui-bill"
