"""The subscriptions' daily job: subscriptions whose period ends expire or renew, and their owners are told
beforehand (the rules are in apps/subscriptions/services/periods.py)."""

import logging
from datetime import date, timedelta

from django.conf import settings

from apps.common.jobs import daily
from apps.subscriptions import selectors
from apps.subscriptions.services import periods

logger = logging.getLogger(__name__)


@daily("subscriptions.end")
def subscriptions_end(day: date) -> int:
    """On `day`: every current subscription whose `end_date` is before `day` renews or expires, and every one
    ending within `SUBSCRIPTION_EXPIRY_NOTICE_DAYS` of `day` has its owner told (once per period). Returns the
    number of subscriptions renewed or expired plus notices sent. Idempotent per day and catch-up safe: each
    subscription is handled in its own transaction under a row lock, with its state re-checked there."""
    ended = [
        outcome
        for pk in selectors.subscription_ids_ended_before(day=day)
        if (outcome := periods.subscription_period_end(subscription_id=pk, day=day)) is not None
    ]
    horizon = day + timedelta(days=settings.SUBSCRIPTION_EXPIRY_NOTICE_DAYS)
    noticed = sum(
        periods.subscription_expiry_notice(subscription_id=pk, day=day)
        for pk in selectors.subscription_ids_ending_between(first=day, last=horizon)
    )
    logger.info(
        "subscriptions.end %s: %d renewed, %d expired, %d expiry notices",
        day,
        ended.count(periods.RENEWED),
        ended.count(periods.EXPIRED),
        noticed,
    )
    return len(ended) + noticed
