"""The end of a subscription's period: expiry, auto-renewal and the notices that go with them.

These are the daily job's writes (apps/subscriptions/jobs.py); no caller, since no person
asks for them. The period of a subscription is `start_date`..`end_date`, both inclusive;
one without `end_date` never ends. On `day` (the job's day, not necessarily today):

- a current (active or trial) subscription whose `end_date` is before `day` ends: with
  `is_auto_renew` it renews (status `active`, the next period of the same length starts the
  day after `end_date`, at the plan's current price for its unit count; a custom plan keeps
  the agreed price), otherwise, or when its plan is gone or inactive (or its end date is before its start
  date: no period to repeat), it becomes `expired`;
- a current subscription whose `end_date` is within `SUBSCRIPTION_EXPIRY_NOTICE_DAYS`
  after `day` gets one "expiring" notice per period (`subscription_expiry_notices`).

Each runs in its own transaction with the subscription's row locked and its status and
end date checked again under the lock, so two workers, or a rerun, do it once. The
`subscription:status` and `feature:access` caches of the owner are dropped after the
commit, and the owner's notices are created after the commit (`notify_on_commit`).
"""

import calendar
import logging
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from apps.events.notices import Notice, notify_on_commit
from apps.subscriptions import caches, selectors
from apps.subscriptions.models import Subscription, SubscriptionExpiryNotice, SubscriptionStatus
from apps.subscriptions.services.subscriptions import subscription_price
from realtime.errors import ProtocolError

logger = logging.getLogger(__name__)

EXPIRED = "expired"
RENEWED = "renewed"
NOTICE_EXPIRING = "subscription_expiring"
NOTICE_EXPIRED = "subscription_expired"
NOTICE_RENEWED = "subscription_renewed"
REFERENCE_TYPE = "subscription"


# Periods ----------------------------------------------------------------------------------


def add_months(day: date, months: int) -> date:
    """`day` moved by `months` calendar months, clamped to the last day of a shorter month (Jan 31 + 1 = Feb 28/29)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def period_months(start: date, end: date) -> int | None:
    """The number of whole calendar months `start`..`end` (inclusive) spans, or None when it is not whole months."""
    approx = (end.year - start.year) * 12 + end.month - start.month
    for months in (approx, approx + 1):
        if months >= 1 and add_months(start, months) - timedelta(days=1) == end:
            return months
    return None


def next_period(start: date, end: date) -> tuple[date, date]:
    """The period after `start`..`end`, of the same length: the same number of calendar months when the period is
    whole months (Jan 1..Jan 31 -> Feb 1..Feb 28), otherwise the same number of days."""
    following = end + timedelta(days=1)
    months = period_months(start, end)
    if months is not None:
        return following, add_months(following, months) - timedelta(days=1)
    return following, following + (end - start)


# The end of a period ---------------------------------------------------------------------


def _price_for_renewal(subscription: Subscription) -> Decimal | None:
    """The price of the next period, or None when the subscription cannot renew (no plan, inactive plan, a price
    beyond DECIMAL(10,2))."""
    plan = subscription.plan
    if plan is None or plan.is_active is False:
        return None
    if plan.is_custom:
        return subscription.current_price  # a custom plan's price is agreed per customer by an admin
    try:
        return subscription_price(plan=plan, unit_count=subscription.unit_count)
    except ProtocolError:
        return None


def subscription_period_end(*, subscription_id: Any, day: date) -> str | None:
    """End the period of a current subscription whose `end_date` is before `day`: renew it (auto-renewing,
    plan still available) until its period covers `day`, or expire it. Returns RENEWED, EXPIRED, or None when
    there was nothing to do (another worker did it, it is not current, or it has not ended by `day`)."""
    with transaction.atomic():
        subscription = (
            Subscription.objects.select_for_update(of=("self",))
            .select_related("plan")
            .filter(pk=subscription_id, status__in=selectors.CURRENT_STATUSES, end_date__lt=day)
            .first()
        )
        if subscription is None or subscription.end_date is None:
            return None
        price = _price_for_renewal(subscription) if subscription.is_auto_renew else None
        if price is None or subscription.end_date < subscription.start_date:  # no period to repeat: it ends
            subscription.status = SubscriptionStatus.EXPIRED
            outcome, notice = EXPIRED, _expired_notice(subscription)
        else:
            start, end = subscription.start_date, subscription.end_date
            while end < day:  # a worker down for several periods renews each of them, once
                start, end = next_period(start, end)
            subscription.start_date, subscription.end_date = start, end
            subscription.status = SubscriptionStatus.ACTIVE
            subscription.current_price = price
            outcome, notice = RENEWED, _renewed_notice(subscription)
        subscription.save()
        caches.subscription_changed(sender=Subscription, instance=subscription)
        if subscription.user_id is not None:
            notify_on_commit(notice)
    logger.info(
        "subscription %s of user %s %s on %s (period now %s..%s)",
        subscription.pk,
        subscription.user_id,
        outcome,
        day,
        subscription.start_date,
        subscription.end_date,
    )
    return outcome


def subscription_expiry_notice(*, subscription_id: Any, day: date) -> bool:
    """Tell the owner that the current period of a current subscription ends within the notice period after `day`;
    once per period. Returns whether this call sent it."""
    horizon = day + timedelta(days=settings.SUBSCRIPTION_EXPIRY_NOTICE_DAYS)
    with transaction.atomic():
        subscription = (
            Subscription.objects.select_for_update(of=("self",))
            .select_related("plan")
            .filter(
                pk=subscription_id,
                status__in=selectors.CURRENT_STATUSES,
                end_date__gte=day,
                end_date__lte=horizon,
                user__isnull=False,
            )
            .first()
        )
        if subscription is None or subscription.end_date is None:
            return False
        try:
            with transaction.atomic():  # a savepoint: the duplicate is an answer, not a failure
                SubscriptionExpiryNotice.objects.create(subscription=subscription, end_date=subscription.end_date)
        except IntegrityError:
            return False
        notify_on_commit(_expiring_notice(subscription, day=day))
    logger.info("subscription %s: expiry notice for %s sent on %s", subscription.pk, subscription.end_date, day)
    return True


# Notices ---------------------------------------------------------------------------------


def _plan_name(subscription: Subscription) -> str:
    return subscription.plan.plan_name if subscription.plan is not None else "your plan"


def _notice(subscription: Subscription, *, type: str, title: str, message: str, priority: str) -> Notice:
    return Notice(
        user_id=str(subscription.user_id),
        type=type,
        title=title,
        message=message,
        reference_id=str(subscription.pk),
        reference_type=REFERENCE_TYPE,
        priority=priority,
        actions=({"label": "View subscription", "url": f"/api/v1/subscriptions/{subscription.pk}", "type": "link"},),
    )


def _expiring_notice(subscription: Subscription, *, day: date) -> Notice:
    end = subscription.end_date
    assert end is not None  # the caller selected a subscription with an end date
    days = (end - day).days
    when = "today" if days == 0 else ("tomorrow" if days == 1 else f"in {days} days")
    if subscription.is_auto_renew and _price_for_renewal(subscription) is not None:
        title = "Your subscription renews soon"
        message = (
            f"Your {_plan_name(subscription)} subscription ends {when} ({end.isoformat()}) and renews automatically."
        )
    else:
        title = "Your subscription is expiring"
        message = (
            f"Your {_plan_name(subscription)} subscription ends {when} ({end.isoformat()}). "
            "Turn on auto-renewal or subscribe again to keep your features."
        )
    return _notice(subscription, type=NOTICE_EXPIRING, title=title, message=message, priority="medium")


def _expired_notice(subscription: Subscription) -> Notice:
    end = subscription.end_date.isoformat() if subscription.end_date else "its end date"
    return _notice(
        subscription,
        type=NOTICE_EXPIRED,
        title="Your subscription has expired",
        message=f"Your {_plan_name(subscription)} subscription ended on {end}. Subscribe again to keep your features.",
        priority="high",
    )


def _renewed_notice(subscription: Subscription) -> Notice:
    end = subscription.end_date.isoformat() if subscription.end_date else "-"
    return _notice(
        subscription,
        type=NOTICE_RENEWED,
        title="Your subscription was renewed",
        message=(
            f"Your {_plan_name(subscription)} subscription renewed for {subscription.start_date.isoformat()} to {end} "
            f"at {subscription.current_price}."
        ),
        priority="medium",
    )
