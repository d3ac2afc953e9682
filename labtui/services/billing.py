"""Billing alarms and a budget, so the instructor is never surprised by a bill.

Everything lives in us-east-1: AWS publishes the ``AWS/Billing`` metric only there, and the
Budgets API is global (served from us-east-1). For a course ``<id>`` labtui keeps:

- an SNS topic ``labtui-<id>-billing`` with an email subscription to ``[billing] notify``;
- one CloudWatch alarm per amount in ``[billing] alarms_usd``, ``labtui-<id>-billing-<n>usd``,
  on ``EstimatedCharges`` (Currency=USD), publishing to the topic;
- with ``monthly_budget_usd``, a monthly COST budget ``labtui-<id>`` that mails the same
  address at 50% and 80% of actual spend and when the forecast passes 100%.

``ensure_billing`` converges AWS to the course file: a rerun with nothing changed makes no
Create/Put call. ``billing_state`` only reads. ``remove_billing`` removes all of it, reports
each failure and goes on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from labtui.course import Course
from labtui.errors import AwsError
from labtui.events import EventSink, LogLine, NullSink, Problem, StepDone
from labtui.services import tags
from labtui.services.aws import Aws, translate_errors

REGION = "us-east-1"  # AWS/Billing metrics exist only here; Budgets is served from here too

BILLING_ALERTS_REMINDER = (
    "Billing alarms only work when the account publishes billing metrics: as the account's "
    "root user or an administrator, open Billing and Cost Management > Billing preferences and "
    "enable \"Receive CloudWatch billing alerts\" (it cannot be turned off again). The metrics "
    "(AWS/Billing EstimatedCharges) then appear in us-east-1 within a few hours, updated about "
    "every 6 hours; labtui puts the alarms there whatever regions the course uses."
)

# Budget notifications: (type, percent of the monthly limit).
BUDGET_NOTIFICATIONS: tuple[tuple[str, float], ...] = (
    ("ACTUAL", 50.0), ("ACTUAL", 80.0), ("FORECASTED", 100.0))

CONFIRMED, PENDING, NONE = "confirmed", "pending", "none"


@dataclass(frozen=True)
class BillingState:
    """What exists in AWS for a course's billing guard."""

    topic_arn: str | None = None
    alarms: tuple[str, ...] = ()          # alarm names, by amount
    budget: str | None = None             # budget name
    budget_limit_usd: float | None = None
    subscription: str = NONE              # confirmed | pending | none (the notify address)
    firing: tuple[str, ...] = ()          # the alarms in ALARM now: the bill passed them
    # (alarm name, OK | ALARM | INSUFFICIENT_DATA) for each alarm, by amount
    alarm_states: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @property
    def empty(self) -> bool:
        return self.topic_arn is None and not self.alarms and self.budget is None


def reminder() -> str:
    """The text the UI shows next to billing alarms."""
    return BILLING_ALERTS_REMINDER


def topic_name(course_id: str) -> str:
    return f"labtui-{course_id}-billing"


def alarm_prefix(course_id: str) -> str:
    return f"labtui-{course_id}-billing-"


def alarm_name(course_id: str, amount: float) -> str:
    return f"{alarm_prefix(course_id)}{_amount(amount)}usd"


def budget_name(course_id: str) -> str:
    return f"labtui-{course_id}"


def _amount(value: float) -> str:
    """25.0 -> "25", 12.5 -> "12.5" (never "1e+06")."""
    return f"{value:f}".rstrip("0").rstrip(".")


def _is_course_alarm(course_id: str, name: str) -> bool:
    # The prefix alone would also match course "x-billing-y" when the course is "x".
    return re.fullmatch(re.escape(alarm_prefix(course_id)) + r"\d+(\.\d+)?usd", name) is not None


# ---- ensure ---------------------------------------------------------------------------------

def ensure_billing(aws: Aws, course: Course, sink: EventSink | None = None) -> BillingState:
    """Create or update the course's billing alarms, topic and budget; idempotent.

    Without a ``[billing]`` section nothing is touched. Thresholds dropped from the course file
    lose their alarm; a dropped ``monthly_budget_usd`` loses its budget.
    """
    sink = sink or NullSink()
    billing = course.billing
    if billing is None:
        sink.emit(LogLine("billing: the course file has no [billing] section; no alarms and no "
                          "budget set up", level="warning"))
        return BillingState()
    account, partition = _identity(aws)
    cid = course.id

    topic_arn: str | None = None
    subscription = NONE
    if billing.alarms_usd:
        sink.emit(LogLine(f"billing: {BILLING_ALERTS_REMINDER}"))
        topic_arn = _ensure_topic(aws, cid, account, partition, sink)
        if billing.notify:
            subscription = _ensure_subscription(aws, topic_arn, billing.notify, sink)
    alarms = _ensure_alarms(aws, cid, billing.alarms_usd, topic_arn, sink)
    if topic_arn is None:
        _delete_topic_if_any(aws, _topic_arn(cid, account, partition), sink)

    budget: str | None = None
    limit: float | None = None
    if billing.monthly_budget_usd is not None:
        budget = _ensure_budget(aws, cid, account, billing.monthly_budget_usd, billing.notify, sink)
        limit = billing.monthly_budget_usd
    elif _describe_budget(aws, account, budget_name(cid)) is not None:
        with translate_errors(f"delete budget {budget_name(cid)}"):
            aws.client("budgets", REGION).delete_budget(AccountId=account,
                                                        BudgetName=budget_name(cid))
        sink.emit(LogLine(f"billing: deleted budget {budget_name(cid)} "
                          "(no monthly_budget_usd in the course file)"))

    state = BillingState(topic_arn, alarms, budget, limit, subscription)
    parts = [f"{len(alarms)} alarm(s)"] + ([f"budget ${_amount(limit)}/month"] if limit else [])
    sink.emit(StepDone("billing", detail=", ".join(parts) + f" in {REGION}; "
                       + "needs billing alerts enabled in the account"))
    return state


def _identity(aws: Aws) -> tuple[str, str]:
    with translate_errors("sts.GetCallerIdentity (billing needs the account id)"):
        who = aws.client("sts", REGION).get_caller_identity()
    return str(who["Account"]), str(who["Arn"]).split(":")[1]


def _topic_arn(course_id: str, account: str, partition: str) -> str:
    return f"arn:{partition}:sns:{REGION}:{account}:{topic_name(course_id)}"


def _topic_exists(aws: Aws, arn: str) -> bool:
    try:
        with translate_errors(f"read SNS topic {arn}"):
            aws.client("sns", REGION).get_topic_attributes(TopicArn=arn)
        return True
    except AwsError as exc:
        if exc.code == "NotFound":
            return False
        raise


def _ensure_topic(aws: Aws, course_id: str, account: str, partition: str,
                  sink: EventSink) -> str:
    arn = _topic_arn(course_id, account, partition)
    if _topic_exists(aws, arn):
        return arn
    with translate_errors(f"create SNS topic {topic_name(course_id)} in {REGION}"):
        arn = aws.client("sns", REGION).create_topic(
            Name=topic_name(course_id), Tags=tags.tags(course_id))["TopicArn"]
    sink.emit(LogLine(f"billing: created SNS topic {topic_name(course_id)}"))
    return str(arn)


def _subscriptions(aws: Aws, topic_arn: str) -> list[dict[str, Any]]:
    return list(aws.paginate("sns", REGION, "list_subscriptions_by_topic", "Subscriptions",
                             TopicArn=topic_arn))


def _subscription_state(subscriptions: Iterable[dict[str, Any]], email: str) -> str:
    """AWS lists an unconfirmed subscription with SubscriptionArn "PendingConfirmation"."""
    states = {PENDING if s["SubscriptionArn"] == "PendingConfirmation" else CONFIRMED
              for s in subscriptions
              if s.get("Protocol") == "email" and s.get("Endpoint", "").lower() == email.lower()
              and s["SubscriptionArn"] != "Deleted"}
    return CONFIRMED if CONFIRMED in states else PENDING if states else NONE


def _ensure_subscription(aws: Aws, topic_arn: str, email: str, sink: EventSink) -> str:
    subscriptions = _subscriptions(aws, topic_arn)
    for old in subscriptions:  # the notify address changed: stop mailing the old one
        arn = old["SubscriptionArn"]
        if old.get("Protocol") == "email" and old.get("Endpoint", "").lower() != email.lower() \
                and arn.startswith("arn:"):
            with translate_errors(f"unsubscribe {old.get('Endpoint')} from {topic_arn}"):
                aws.client("sns", REGION).unsubscribe(SubscriptionArn=arn)
            sink.emit(LogLine(f"billing: {old.get('Endpoint')} no longer gets billing alarms"))
    state = _subscription_state(subscriptions, email)
    if state == NONE:
        with translate_errors(f"subscribe {email} to {topic_arn}"):
            made = aws.client("sns", REGION).subscribe(TopicArn=topic_arn, Protocol="email",
                                                       Endpoint=email)
        # AWS answers "pending confirmation" for an email address until its owner confirms.
        state = CONFIRMED if str(made.get("SubscriptionArn", "")).startswith("arn:") \
            else PENDING
        sink.emit(LogLine(f"billing: subscribed {email} to the billing alarms; AWS mails it a "
                          "confirmation"))
    if state == PENDING:
        sink.emit(LogLine(f"billing: billing alarms reach {email} only after its owner clicks "
                          "\"Confirm subscription\" in the mail from AWS Notifications; until "
                          "then the subscription stays PendingConfirmation (it expires after 3 "
                          "days: rerun `up` to send a new one)", level="warning"))
    return state


def _alarm_spec(course_id: str, amount: float, topic_arn: str) -> dict[str, Any]:
    return {
        "AlarmName": alarm_name(course_id, amount),
        "AlarmDescription": f"labtui course {course_id}: estimated charges this month reached "
                            f"${_amount(amount)}",
        "ActionsEnabled": True,
        "AlarmActions": [topic_arn],
        "Namespace": "AWS/Billing",
        "MetricName": "EstimatedCharges",
        "Dimensions": [{"Name": "Currency", "Value": "USD"}],
        "Statistic": "Maximum",
        "Period": 21600,
        "EvaluationPeriods": 1,
        "Threshold": float(amount),
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "notBreaching",
    }


_COMPARED = ("AlarmActions", "Namespace", "MetricName", "Dimensions", "Statistic", "Period",
             "EvaluationPeriods", "Threshold", "ComparisonOperator", "TreatMissingData",
             "ActionsEnabled")


def _course_alarms(aws: Aws, course_id: str) -> list[dict[str, Any]]:
    return [a for a in aws.paginate("cloudwatch", REGION, "describe_alarms", "MetricAlarms",
                                    AlarmNamePrefix=alarm_prefix(course_id),
                                    AlarmTypes=["MetricAlarm"])
            if _is_course_alarm(course_id, a["AlarmName"])]


def _ensure_alarms(aws: Aws, course_id: str, amounts: Iterable[float], topic_arn: str | None,
                   sink: EventSink) -> tuple[str, ...]:
    """One alarm per amount (none without a topic); the course's other alarms are deleted."""
    existing = {a["AlarmName"]: a for a in _course_alarms(aws, course_id)}
    cloudwatch = aws.client("cloudwatch", REGION)
    wanted: list[str] = []
    for amount in sorted(set(amounts)) if topic_arn else ():
        spec = _alarm_spec(course_id, amount, topic_arn)
        name = spec["AlarmName"]
        wanted.append(name)
        now = existing.get(name)
        if now is not None and all(now.get(key) == spec[key] for key in _COMPARED):
            continue
        with translate_errors(f"put billing alarm {name} in {REGION}"):
            cloudwatch.put_metric_alarm(**spec, Tags=tags.tags(course_id))
        sink.emit(LogLine(f"billing: {'updated' if now else 'created'} alarm {name} "
                          f"(estimated charges >= ${_amount(amount)})"))
    stale = sorted(set(existing) - set(wanted))
    for start in range(0, len(stale), 100):  # DeleteAlarms takes at most 100 names
        batch = stale[start:start + 100]
        with translate_errors(f"delete billing alarms {', '.join(batch)}"):
            cloudwatch.delete_alarms(AlarmNames=batch)
        sink.emit(LogLine(f"billing: deleted alarm(s) no longer in the course file: "
                          f"{', '.join(batch)}"))
    return tuple(wanted)


def _describe_budget(aws: Aws, account: str, name: str) -> dict[str, Any] | None:
    try:
        with translate_errors(f"read budget {name}"):
            return dict(aws.client("budgets", REGION).describe_budget(
                AccountId=account, BudgetName=name)["Budget"])
    except AwsError as exc:
        if exc.code == "NotFoundException":
            return None
        raise


def _notification(kind: str, percent: float) -> dict[str, Any]:
    return {"NotificationType": kind, "ComparisonOperator": "GREATER_THAN",
            "Threshold": percent, "ThresholdType": "PERCENTAGE"}


def _budget(course_id: str, limit: float) -> dict[str, Any]:
    return {"BudgetName": budget_name(course_id), "BudgetType": "COST", "TimeUnit": "MONTHLY",
            "BudgetLimit": {"Amount": _amount(limit), "Unit": "USD"}}


def _ensure_budget(aws: Aws, course_id: str, account: str, limit: float, email: str | None,
                   sink: EventSink) -> str:
    name = budget_name(course_id)
    budgets = aws.client("budgets", REGION)
    subscribers = [{"SubscriptionType": "EMAIL", "Address": email}] if email else []
    existing = _describe_budget(aws, account, name)
    if existing is not None and float(existing["BudgetLimit"]["Amount"]) != float(limit):
        old = existing["BudgetLimit"]["Amount"]
        new = {k: v for k, v in existing.items()
               if k in ("BudgetName", "BudgetType", "TimeUnit", "TimePeriod", "CostTypes",
                        "CostFilters")}
        new["BudgetLimit"] = {"Amount": _amount(limit), "Unit": "USD"}
        with translate_errors(f"update budget {name} limit to ${_amount(limit)}"):
            budgets.update_budget(AccountId=account, NewBudget=new)
            sink.emit(LogLine(f"billing: budget {name} limit ${old} -> ${_amount(limit)}"))
    if existing is None:
        with translate_errors(f"create budget {name} (${_amount(limit)}/month)"):
            budgets.create_budget(AccountId=account, Budget=_budget(course_id, limit),
                                  NotificationsWithSubscribers=[
                                      {"Notification": _notification(kind, pct),
                                       "Subscribers": subscribers}
                                      for kind, pct in BUDGET_NOTIFICATIONS] if email else [])
        sink.emit(LogLine(f"billing: created monthly budget {name} (${_amount(limit)})"
                          + (f", mails {email} at 50%, 80% and a 100% forecast" if email
                             else "; no notify address, so it mails no one")))
        return name
    if email:
        have = {(n["NotificationType"], float(n["Threshold"])) for n in aws.paginate(
            "budgets", REGION, "describe_notifications_for_budget", "Notifications",
            AccountId=account, BudgetName=name)}
        for kind, pct in BUDGET_NOTIFICATIONS:
            if (kind, pct) not in have:
                with translate_errors(f"add a {kind} {pct:g}% notification to budget {name}"):
                    budgets.create_notification(AccountId=account, BudgetName=name,
                                                Notification=_notification(kind, pct),
                                                Subscribers=subscribers)
                sink.emit(LogLine(f"billing: budget {name} now mails {email} at {kind} "
                                  f"{pct:g}%"))
    return name


def _delete_topic_if_any(aws: Aws, arn: str, sink: EventSink) -> None:
    if _topic_exists(aws, arn):
        with translate_errors(f"delete SNS topic {arn}"):
            aws.client("sns", REGION).delete_topic(TopicArn=arn)
        sink.emit(LogLine(f"billing: deleted SNS topic {arn} (no alarms in the course file)"))


# ---- read ---------------------------------------------------------------------------------

def billing_state(aws: Aws, course: Course) -> BillingState:
    """What exists now for the course (read-only; for status and the TUI)."""
    account, partition = _identity(aws)
    found = _topic_arn(course.id, account, partition)
    arn = found if _topic_exists(aws, found) else None
    notify = course.billing.notify if course.billing else None
    subscription = NONE
    if arn and notify:
        subscription = _subscription_state(_subscriptions(aws, arn), notify)
    found_alarms = _course_alarms(aws, course.id)

    def by_amount(name: str) -> float:
        return float(name[len(alarm_prefix(course.id)):-3])

    alarms = tuple(sorted((a["AlarmName"] for a in found_alarms), key=by_amount))
    firing = tuple(sorted((a["AlarmName"] for a in found_alarms
                           if a.get("StateValue") == "ALARM"), key=by_amount))
    budget = _describe_budget(aws, account, budget_name(course.id))
    return BillingState(
        topic_arn=arn, alarms=alarms, budget=budget["BudgetName"] if budget else None,
        budget_limit_usd=float(budget["BudgetLimit"]["Amount"]) if budget else None,
        subscription=subscription, firing=firing,
        alarm_states=tuple((name, next(a.get("StateValue") or "UNKNOWN" for a in found_alarms
                                       if a["AlarmName"] == name)) for name in alarms))


# ---- remove -------------------------------------------------------------------------------

def remove_billing(aws: Aws, course_id: str, sink: EventSink | None = None) -> list[str]:
    """Delete the course's billing alarms, topic (with its subscriptions) and budget.

    Returns the failures as "what: why"; a failure never stops the rest.
    """
    sink = sink or NullSink()
    failed: list[str] = []

    def attempt(what: str, call: Callable[[], Any], ignore: tuple[str, ...] = ()) -> bool:
        try:
            with translate_errors(what):
                call()
            return True
        except AwsError as exc:
            if exc.code in ignore:
                return False
            failed.append(f"{what}: {exc.code or exc}")
            sink.emit(Problem(f"{what} failed: {exc}"))
            return False

    names: list[str] = []
    attempt(f"list billing alarms in {REGION}",
            lambda: names.extend(a["AlarmName"] for a in _course_alarms(aws, course_id)))
    cloudwatch = aws.client("cloudwatch", REGION)
    for start in range(0, len(names), 100):
        batch = names[start:start + 100]
        if attempt(f"delete billing alarms {', '.join(batch)}",
                   lambda batch=batch: cloudwatch.delete_alarms(AlarmNames=batch)):
            sink.emit(LogLine(f"billing: deleted {len(batch)} alarm(s)"))

    who: list[tuple[str, str]] = []
    if attempt("sts.GetCallerIdentity (billing needs the account id)",
               lambda: who.append(_identity(aws))):
        account, partition = who[0]
        arn = _topic_arn(course_id, account, partition)
        found: list[bool] = []
        attempt(f"read SNS topic {arn}", lambda: found.append(_topic_exists(aws, arn)))
        # DeleteTopic deletes the topic's subscriptions too (pending ones included).
        if found and found[0] and attempt(
                f"delete SNS topic {arn}",
                lambda: aws.client("sns", REGION).delete_topic(TopicArn=arn),
                ignore=("NotFound",)):
            sink.emit(LogLine(f"billing: deleted SNS topic {topic_name(course_id)}"))
        name = budget_name(course_id)
        if attempt(f"delete budget {name}",
                   lambda: aws.client("budgets", REGION).delete_budget(AccountId=account,
                                                                       BudgetName=name),
                   ignore=("NotFoundException",)):
            sink.emit(LogLine(f"billing: deleted budget {name}"))
    sink.emit(StepDone("billing removed", ok=not failed, detail="; ".join(failed)))
    return failed
