"""Reads of plans, features, subscriptions, usage and pricing recommendations, through the caller's view.

Who sees what: plans, their features and the feature catalogue are visible to every
authenticated user; a subscription, a usage row or a pricing recommendation to its user
and to admins (anything else answers 404). Tenants hold no subscriptions: listing
subscriptions answers them 403.

"Current subscription" (DESIGN.md): the user's subscription whose status is `active` or
`trial`, the one with the latest `start_date` (then the newest row).
"""

from datetime import date
from typing import Any

from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from apps.common import policy
from apps.common.visibility import Caller, not_found
from apps.subscriptions.models import (
    Feature,
    PlanFeature,
    PricingRecommendation,
    Subscription,
    SubscriptionPlan,
    SubscriptionStatus,
    UsageRecord,
)

CURRENT_STATUSES = (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIAL)
TENANTS_HAVE_NO_SUBSCRIPTIONS = "Tenants have no subscriptions."


def owned_q(caller: Caller) -> Q:
    """Rows of the caller (holders of `subscriptions.view` over all, i.e. admins: every row)."""
    return Q() if policy.sees_all(caller, "subscriptions.view") else Q(user_id=caller.user_id)


# Plans and features ---------------------------------------------------------------------


def plan_list(*, is_active: bool | None = None, is_custom: bool | None = None) -> QuerySet[SubscriptionPlan]:
    rows = SubscriptionPlan.objects.all()
    if is_active is not None:
        rows = rows.filter(is_active=is_active)
    if is_custom is not None:
        rows = rows.filter(is_custom=is_custom)
    return rows.order_by("plan_name", "pk")


def plan_get(*, plan_id: Any) -> SubscriptionPlan:
    plan = SubscriptionPlan.objects.filter(pk=plan_id).first()
    if plan is None:
        raise not_found()
    return plan


def plan_feature_list(*, plan_id: Any) -> list[PlanFeature]:
    return list(
        PlanFeature.objects.filter(plan_id=plan_id)
        .select_related("feature")
        .order_by("feature__feature_name", "feature_id")
    )


def feature_list(*, category: str | None = None) -> QuerySet[Feature]:
    rows = Feature.objects.all()
    if category is not None:
        rows = rows.filter(feature_category__iexact=category)
    return rows.order_by("feature_name", "pk")


def feature_get(*, feature_id: Any) -> Feature:
    feature = Feature.objects.filter(pk=feature_id).first()
    if feature is None:
        raise not_found()
    return feature


# Subscriptions --------------------------------------------------------------------------


def subscription_current(*, user_id: Any) -> Subscription | None:
    """The user's current subscription (active or trial, latest start date), with its plan."""
    return (
        Subscription.objects.filter(user_id=user_id, status__in=CURRENT_STATUSES)
        .select_related("plan")
        .order_by("-start_date", "-created_at", "-pk")
        .first()
    )


def subscription_status(*, user_id: Any) -> dict[str, Any]:
    """`subscription:status:{userId}`: the seed's fields of the current subscription; {} when there is none."""
    current = subscription_current(user_id=user_id)
    if current is None:
        return {}
    return {
        "planId": current.plan_id,
        "planName": current.plan.plan_name if current.plan is not None else None,
        "status": current.status,
        "unitCount": current.unit_count,
        "startDate": current.start_date,
        "endDate": current.end_date,
        "isAutoRenew": current.is_auto_renew is not False,
    }


def subscription_list_visible(
    *,
    caller: Caller,
    user_id: Any = None,
    status: str | None = None,
    start_from: date | None = None,
    start_to: date | None = None,
    end_from: date | None = None,
    end_to: date | None = None,
) -> QuerySet[Subscription]:
    """The caller's subscriptions (admins: all), filtered along the seed's indexes, newest start first."""
    policy.require(caller, "subscriptions.view", TENANTS_HAVE_NO_SUBSCRIPTIONS)
    rows = Subscription.objects.filter(owned_q(caller))
    if user_id is not None:
        rows = rows.filter(user_id=user_id)
    if status is not None:
        rows = rows.filter(status=status)
    if start_from is not None:
        rows = rows.filter(start_date__gte=start_from)
    if start_to is not None:
        rows = rows.filter(start_date__lte=start_to)
    if end_from is not None:
        rows = rows.filter(end_date__gte=end_from)
    if end_to is not None:
        rows = rows.filter(end_date__lte=end_to)
    return rows.select_related("plan").order_by("-start_date", "-created_at", "pk")


def access_subscription(*, caller: Caller, subscription_id: Any) -> Subscription:
    """The subscription if it is the caller's (or the caller is an admin); not_found otherwise."""
    found = Subscription.objects.filter(owned_q(caller), pk=subscription_id).select_related("plan").first()
    if found is None:
        raise not_found()
    return found


# Feature access and usage ---------------------------------------------------------------


def usage_total(*, user_id: Any, feature_id: Any) -> int:
    """Sum of `usage_count` over the user's `usage_tracking` rows of the feature."""
    total = UsageRecord.objects.filter(user_id=user_id, feature_id=feature_id).aggregate(n=Sum("usage_count"))["n"]
    return int(total or 0)


def feature_access(*, user_id: Any, feature_id: Any) -> dict[str, Any]:
    """`feature:access:{userId}:{featureId}`: isEnabled and usageLimit from the plan of the user's current
    subscription (disabled without one, or when the plan lacks the feature), currentUsage from usage_tracking,
    lastChecked now. not_found for an unknown feature."""
    if not Feature.objects.filter(pk=feature_id).exists():
        raise not_found()
    current = subscription_current(user_id=user_id)
    link = None
    if current is not None and current.plan_id is not None:
        link = PlanFeature.objects.filter(plan_id=current.plan_id, feature_id=feature_id).first()
    return {
        "isEnabled": link is not None and link.is_enabled is not False,
        "usageLimit": link.usage_limit if link is not None else None,
        "currentUsage": usage_total(user_id=user_id, feature_id=feature_id),
        "lastChecked": timezone.now(),
    }


def usage_list_visible(*, caller: Caller, user_id: Any = None, feature_id: Any = None) -> QuerySet[UsageRecord]:
    """The caller's usage rows (admins: all), most recently used first."""
    rows = UsageRecord.objects.filter(owned_q(caller))
    if user_id is not None:
        rows = rows.filter(user_id=user_id)
    if feature_id is not None:
        rows = rows.filter(feature_id=feature_id)
    return rows.select_related("feature").order_by("-last_used_at", "pk")


# Pricing recommendations ----------------------------------------------------------------


def recommendation_list_visible(
    *, caller: Caller, user_id: Any = None, is_applied: bool | None = None
) -> QuerySet[PricingRecommendation]:
    """The caller's pricing recommendations (admins: all), newest first."""
    rows = PricingRecommendation.objects.filter(owned_q(caller))
    if user_id is not None:
        rows = rows.filter(user_id=user_id)
    if is_applied is not None:
        rows = rows.filter(is_applied=is_applied)
    return rows.order_by("-created_at", "pk")


def access_recommendation(*, caller: Caller, recommendation_id: Any) -> PricingRecommendation:
    """The recommendation if it is the caller's (or the caller is an admin); not_found otherwise."""
    found = PricingRecommendation.objects.filter(owned_q(caller), pk=recommendation_id).first()
    if found is None:
        raise not_found()
    return found


# The daily job's reads --------------------------------------------------------------------


def subscription_ids_ended_before(*, day: date) -> list[Any]:
    """Current subscriptions whose period ended before `day` (the job's candidates; each is re-checked under a lock)."""
    rows = Subscription.objects.filter(status__in=CURRENT_STATUSES, end_date__lt=day)
    return list(rows.order_by("end_date", "pk").values_list("pk", flat=True))


def subscription_ids_ending_between(*, first: date, last: date) -> list[Any]:
    """Current subscriptions whose `end_date` falls in `first`..`last` (inclusive) and that have an owner."""
    rows = Subscription.objects.filter(
        status__in=CURRENT_STATUSES, end_date__gte=first, end_date__lte=last, user__isnull=False
    )
    return list(rows.order_by("end_date", "pk").values_list("pk", flat=True))
