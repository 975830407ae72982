"""Writes of pricing recommendations: an admin makes one for a user, the user applies it to their subscription."""

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.common.validation import invalid
from apps.common.visibility import Caller
from apps.subscriptions import caches, selectors
from apps.subscriptions.models import PricingRecommendation, Subscription, SubscriptionPlan
from apps.subscriptions.services.shared import admin_only, forbidden, lock_user
from apps.subscriptions.services.subscriptions import PLAN_NOT_AVAILABLE, subscription_price
from realtime.errors import CONFLICT, ProtocolError

UNKNOWN_USER = "No such user."
ONLY_OWNER_APPLIES = "Only the user a recommendation was made for may apply it."
ALREADY_APPLIED = "The recommendation has already been applied."
RECOMMENDATION_EXPIRED = "The recommendation has expired."
NO_CURRENT_SUBSCRIPTION = "You have no active or trial subscription to switch."
RECOMMENDED_PLAN_UNAVAILABLE = "The recommended plan is no longer available."
TOO_MANY_UNITS_FOR_PLAN = "Your unit count exceeds the recommended plan's maximum of {maximum} units."


def recommendation_create(*, caller: Caller, data: dict[str, Any]) -> PricingRecommendation:
    """A recommendation for a user (admins only); `currentPlanId` defaults to their current subscription's."""
    admin_only(caller)
    with transaction.atomic():
        user = User.objects.filter(pk=data["userId"]).first()
        if user is None:
            raise invalid("userId", UNKNOWN_USER)
        recommended = SubscriptionPlan.objects.filter(pk=data["recommendedPlanId"]).first()
        if recommended is None:
            raise invalid("recommendedPlanId", PLAN_NOT_AVAILABLE)
        current_plan_id = data.get("currentPlanId")
        if current_plan_id is None:
            current = selectors.subscription_current(user_id=user.pk)
            current_plan_id = current.plan_id if current is not None else None
        elif not SubscriptionPlan.objects.filter(pk=current_plan_id).exists():
            raise invalid("currentPlanId", PLAN_NOT_AVAILABLE)
        recommendation = PricingRecommendation(
            user=user,
            current_plan_id=current_plan_id,
            recommended_plan=recommended,
            recommendation_reason=data.get("recommendationReason"),
            estimated_savings=data.get("estimatedSavings"),
            expires_at=data.get("expiresAt"),
        )
        recommendation.save()
    return recommendation


def recommendation_apply(
    *, caller: Caller, recommendation: PricingRecommendation, now: datetime | None = None
) -> tuple[PricingRecommendation, Subscription]:
    """Apply a recommendation (only its user): their current subscription moves to the recommended plan
    at that plan's price for its unit count. conflict when applied already, expired, without a current
    subscription, or when the plan is inactive or too small."""
    if str(recommendation.user_id) != caller.user_id:
        raise forbidden(ONLY_OWNER_APPLIES)
    now = now or timezone.now()
    with transaction.atomic():
        lock_user(caller.user_id)
        locked = PricingRecommendation.objects.select_for_update().get(pk=recommendation.pk)
        if locked.is_applied:
            raise ProtocolError(CONFLICT, ALREADY_APPLIED)
        if locked.expires_at is not None and locked.expires_at <= now:
            raise ProtocolError(CONFLICT, RECOMMENDATION_EXPIRED)
        plan = locked.recommended_plan
        if plan is None or plan.is_active is False:
            raise ProtocolError(CONFLICT, RECOMMENDED_PLAN_UNAVAILABLE)
        current = selectors.subscription_current(user_id=caller.user_id)
        if current is None:
            raise ProtocolError(CONFLICT, NO_CURRENT_SUBSCRIPTION)
        if plan.maximum_units is not None and current.unit_count > plan.maximum_units:
            raise ProtocolError(CONFLICT, TOO_MANY_UNITS_FOR_PLAN.format(maximum=plan.maximum_units))
        price = subscription_price(plan=plan, unit_count=current.unit_count)
        subscription = Subscription.objects.select_for_update().get(pk=current.pk)
        subscription.plan = plan
        subscription.current_price = price
        subscription.save()
        caches.subscription_changed(sender=Subscription, instance=subscription)
        locked.is_applied = True
        locked.applied_at = now
        locked.save()
    return locked, subscription
