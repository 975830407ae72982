"""Writes of plans, features, subscriptions, usage and pricing recommendations.

Each write runs in one transaction and saves through the ORM (instance `save()`/`delete()`,
never bulk `update()`), so the receivers of `apps/subscriptions/caches.py` drop the
seed's caches after the commit. Callers check visibility first (`selectors.access_*`);
the services check what the caller may change.

Rules:
- plans and features: admins write, everyone authenticated reads;
- a landlord or property manager subscribes themselves to an active, non-custom plan;
  an admin subscribes any active landlord or property manager to any active plan;
- a user has at most one current (active or trial) subscription: a second one is a 409.
  Writes that could create one lock the user's row first (`FOR NO KEY UPDATE`), so two
  concurrent requests cannot both pass the check;
- `current_price` = max(minimum_price, price_per_unit * unit_count) of the plan (a
  missing price counts as 0), unless an admin sets it;
- feature usage counts in total (the seed has no billing period): a use is refused with
  403 when the caller's plan does not enable the feature and with 409 `conflict`
  ("usage limit reached") when `currentUsage` has reached `usageLimit`.
"""

from collections import Counter
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.common.visibility import Caller, not_found
from apps.subscriptions import selectors
from apps.subscriptions.models import (
    Feature,
    PlanFeature,
    PricingRecommendation,
    Subscription,
    SubscriptionPlan,
    SubscriptionStatus,
    UsageRecord,
)
from realtime.errors import BAD_REQUEST, CONFLICT, FORBIDDEN, ProtocolError

VALIDATION_FAILED = "The request is not valid."
ADMIN_ONLY = "Only an admin may do this."
ADMIN_ONLY_FIELDS = "Only an admin may set {fields}."
CANNOT_SUBSCRIBE = "Only landlords, property managers and admins create subscriptions."
SUBSCRIBE_FOR_OTHERS = "Only an admin may subscribe another user."
SUBSCRIBER_NOT_ELIGIBLE = "The subscriber must be an active landlord or property manager."
PLAN_NOT_AVAILABLE = "No active plan with this id."
CUSTOM_PLAN_ADMIN_ONLY = "Custom plans are assigned by an admin."
TOO_MANY_UNITS = "The plan allows at most {maximum} units."
PRICE_TOO_LARGE = "The resulting price does not fit DECIMAL(10,2)."
END_BEFORE_START = "endDate must not be before startDate."
ALREADY_SUBSCRIBED = "The user already has an active or trial subscription."
NOT_CURRENT = "Only an active or trial subscription can be changed by its owner."
ALREADY_CANCELLED = "The subscription is already cancelled."
CANNOT_CANCEL_EXPIRED = "An expired subscription cannot be cancelled."
UNKNOWN_FEATURES = "Unknown feature ids: {ids}."
DUPLICATE_FEATURES = "Each feature may appear once: {ids}."
FEATURE_NOT_ENABLED = "This feature is not enabled in your subscription."
USAGE_LIMIT_REACHED = "usage limit reached"
UNKNOWN_USER = "No such user."
ONLY_OWNER_APPLIES = "Only the user a recommendation was made for may apply it."
ALREADY_APPLIED = "The recommendation has already been applied."
RECOMMENDATION_EXPIRED = "The recommendation has expired."
NO_CURRENT_SUBSCRIPTION = "You have no active or trial subscription to switch."
RECOMMENDED_PLAN_UNAVAILABLE = "The recommended plan is no longer available."
TOO_MANY_UNITS_FOR_PLAN = "Your unit count exceeds the recommended plan's maximum of {maximum} units."

SUBSCRIBER_TYPES = frozenset({"landlord", "property_manager"})
MAX_PRICE = Decimal("99999999.99")
CENT = Decimal("0.01")

PLAN_FIELDS = {
    "planName": "plan_name",
    "planDescription": "plan_description",
    "pricePerUnit": "price_per_unit",
    "minimumPrice": "minimum_price",
    "maximumUnits": "maximum_units",
    "isCustom": "is_custom",
    "isActive": "is_active",
    "features": "features",
}
FEATURE_FIELDS = {
    "featureName": "feature_name",
    "featureDescription": "feature_description",
    "featureCategory": "feature_category",
}
SUBSCRIPTION_OWNER_FIELDS = {
    "unitCount": "unit_count",
    "paymentFrequency": "payment_frequency",
    "isAutoRenew": "is_auto_renew",
}
SUBSCRIPTION_ADMIN_FIELDS = {
    "status": "status",
    "startDate": "start_date",
    "endDate": "end_date",
    "currentPrice": "current_price",
}


def invalid(field: str, reason: str) -> ProtocolError:
    """A 422 in the same shape as a schema validation error."""
    return ProtocolError(
        BAD_REQUEST, VALIDATION_FAILED, http_status=422, fields=[{"field": f"body.payload.{field}", "reason": reason}]
    )


def forbidden(message: str) -> ProtocolError:
    return ProtocolError(FORBIDDEN, message)


def _admin_only(caller: Caller) -> None:
    if not caller.is_admin:
        raise forbidden(ADMIN_ONLY)


def _model_fields(data: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    return {names[key]: value for key, value in data.items() if key in names}


def _lock_user(user_id: Any) -> User | None:
    """The user's row, locked until commit: serializes writes of one user's subscription state."""
    return User.objects.select_for_update(no_key=True).filter(pk=user_id).first()


# Plans ----------------------------------------------------------------------------------


def plan_create(*, caller: Caller, data: dict[str, Any]) -> SubscriptionPlan:
    """A new plan (admins only); `data` uses the API's field names."""
    _admin_only(caller)
    plan = SubscriptionPlan(**_model_fields(data, PLAN_FIELDS))
    with transaction.atomic():
        plan.save()
    return plan


def plan_update(*, caller: Caller, plan_id: Any, data: dict[str, Any]) -> SubscriptionPlan:
    """Change the given fields (admins only). Existing subscriptions keep their price."""
    _admin_only(caller)
    with transaction.atomic():
        plan = SubscriptionPlan.objects.select_for_update().filter(pk=plan_id).first()
        if plan is None:
            raise not_found()
        changes = _model_fields(data, PLAN_FIELDS)
        for name, value in changes.items():
            setattr(plan, name, value)
        if changes:
            plan.save()
    return plan


def plan_deactivate(*, caller: Caller, plan_id: Any) -> SubscriptionPlan:
    """`is_active` false: no new subscriptions; existing ones and their history stay."""
    return plan_update(caller=caller, plan_id=plan_id, data={"isActive": False})


def plan_features_set(*, caller: Caller, plan_id: Any, rows: list[dict[str, Any]]) -> list[PlanFeature]:
    """Make the plan's `plan_features` exactly `rows` ({featureId, isEnabled, usageLimit}); admins only."""
    _admin_only(caller)
    wanted = {row["featureId"]: row for row in rows}
    twice = sorted(str(pk) for pk, n in Counter(row["featureId"] for row in rows).items() if n > 1)
    if twice:
        raise invalid("features", DUPLICATE_FEATURES.format(ids=", ".join(twice)))
    known = set(Feature.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    unknown = sorted(str(pk) for pk in set(wanted) - known)
    if unknown:
        raise invalid("features", UNKNOWN_FEATURES.format(ids=", ".join(unknown)))
    with transaction.atomic():
        plan = SubscriptionPlan.objects.select_for_update().filter(pk=plan_id).first()
        if plan is None:
            raise not_found()
        existing = {link.feature_id: link for link in PlanFeature.objects.filter(plan=plan)}
        for feature_id, link in existing.items():
            if feature_id not in wanted:
                link.delete()
        for feature_id, row in wanted.items():
            link = existing.get(feature_id) or PlanFeature(plan=plan, feature_id=feature_id)
            if link._state.adding or (link.is_enabled, link.usage_limit) != (row["isEnabled"], row["usageLimit"]):
                link.is_enabled, link.usage_limit = row["isEnabled"], row["usageLimit"]
                link.save()
    return selectors.plan_feature_list(plan_id=plan_id)


# Features -------------------------------------------------------------------------------


def feature_create(*, caller: Caller, data: dict[str, Any]) -> Feature:
    _admin_only(caller)
    feature = Feature(**_model_fields(data, FEATURE_FIELDS))
    with transaction.atomic():
        feature.save()
    return feature


def feature_update(*, caller: Caller, feature_id: Any, data: dict[str, Any]) -> Feature:
    _admin_only(caller)
    with transaction.atomic():
        feature = Feature.objects.select_for_update().filter(pk=feature_id).first()
        if feature is None:
            raise not_found()
        changes = _model_fields(data, FEATURE_FIELDS)
        for name, value in changes.items():
            setattr(feature, name, value)
        if changes:
            feature.save()
    return feature


def feature_delete(*, caller: Caller, feature_id: Any) -> None:
    """Delete a feature with its plan rows and usage history (the seed's ON DELETE CASCADE); admins only."""
    _admin_only(caller)
    with transaction.atomic():
        feature = Feature.objects.filter(pk=feature_id).first()
        if feature is None:
            raise not_found()
        feature.delete()


# Subscriptions --------------------------------------------------------------------------


def subscription_price(*, plan: SubscriptionPlan, unit_count: int, field: str = "unitCount") -> Decimal:
    """max(minimum_price, price_per_unit * unit_count), a missing price counting as 0."""
    per_units = (plan.price_per_unit or Decimal(0)) * unit_count
    price = max(plan.minimum_price or Decimal(0), per_units).quantize(CENT)
    if price > MAX_PRICE:
        raise invalid(field, PRICE_TOO_LARGE)
    return price


def _available_plan(*, caller: Caller, plan_id: Any) -> SubscriptionPlan:
    plan = SubscriptionPlan.objects.filter(pk=plan_id).first()
    if plan is None or plan.is_active is False:
        raise invalid("planId", PLAN_NOT_AVAILABLE)
    if plan.is_custom and not caller.is_admin:
        raise invalid("planId", CUSTOM_PLAN_ADMIN_ONLY)
    return plan


def _units_fit(plan: SubscriptionPlan, unit_count: int) -> None:
    if plan.maximum_units is not None and unit_count > plan.maximum_units:
        raise invalid("unitCount", TOO_MANY_UNITS.format(maximum=plan.maximum_units))


def _no_other_current(*, user_id: Any, except_id: Any = None) -> None:
    others = Subscription.objects.filter(user_id=user_id, status__in=selectors.CURRENT_STATUSES)
    if except_id is not None:
        others = others.exclude(pk=except_id)
    if others.exists():
        raise ProtocolError(CONFLICT, ALREADY_SUBSCRIBED)


def subscription_create(*, caller: Caller, data: dict[str, Any]) -> Subscription:
    """A new current subscription; `data` uses the API's field names (see the module rules)."""
    if not caller.is_admin and caller.user_type not in SUBSCRIBER_TYPES:
        raise forbidden(CANNOT_SUBSCRIBE)
    target = data.get("userId")
    if not caller.is_admin:
        if target is not None and str(target) != caller.user_id:
            raise forbidden(SUBSCRIBE_FOR_OTHERS)
        if data.get("currentPrice") is not None:
            raise forbidden(ADMIN_ONLY_FIELDS.format(fields="currentPrice"))
    start = data.get("startDate") or timezone.now().date()
    if data.get("endDate") is not None and data["endDate"] < start:
        raise invalid("endDate", END_BEFORE_START)
    with transaction.atomic():
        user = _lock_user(target if target is not None else caller.user_id)
        if user is None or not user.is_active or user.user_type not in SUBSCRIBER_TYPES:
            raise invalid("userId", SUBSCRIBER_NOT_ELIGIBLE)
        plan = _available_plan(caller=caller, plan_id=data["planId"])
        _units_fit(plan, data["unitCount"])
        price = data.get("currentPrice")
        if price is None:
            price = subscription_price(plan=plan, unit_count=data["unitCount"])
        _no_other_current(user_id=user.pk)
        subscription = Subscription(
            user=user,
            plan=plan,
            status=data.get("status") or SubscriptionStatus.ACTIVE,
            payment_frequency=data.get("paymentFrequency") or "monthly",
            unit_count=data["unitCount"],
            current_price=price,
            start_date=start,
            end_date=data.get("endDate"),
            is_auto_renew=data.get("isAutoRenew", True),
        )
        subscription.save()
    return subscription


def subscription_update(*, caller: Caller, subscription: Subscription, data: dict[str, Any]) -> Subscription:
    """Change the given fields. Owners: planId, unitCount, paymentFrequency, isAutoRenew of a current
    subscription; admins also status (not `cancelled`: use cancel), dates and currentPrice. A new plan or
    unit count recomputes the price unless an admin sends one."""
    admin_fields = sorted(name for name in SUBSCRIPTION_ADMIN_FIELDS if name in data)
    if admin_fields and not caller.is_admin:
        raise forbidden(ADMIN_ONLY_FIELDS.format(fields=", ".join(admin_fields)))
    with transaction.atomic():
        _lock_user(subscription.user_id)
        locked = Subscription.objects.select_for_update(of=("self",)).select_related("plan").get(pk=subscription.pk)
        if not caller.is_admin and locked.status not in selectors.CURRENT_STATUSES:
            raise ProtocolError(CONFLICT, NOT_CURRENT)
        changes = _model_fields(data, SUBSCRIPTION_OWNER_FIELDS) | _model_fields(data, SUBSCRIPTION_ADMIN_FIELDS)
        plan = locked.plan
        if "planId" in data and data["planId"] != locked.plan_id:
            plan = _available_plan(caller=caller, plan_id=data["planId"])
            changes["plan"] = plan
        unit_count = changes.get("unit_count", locked.unit_count)
        if plan is not None and ("plan" in changes or "unit_count" in changes):
            _units_fit(plan, unit_count)
            if "current_price" not in changes:
                changes["current_price"] = subscription_price(plan=plan, unit_count=unit_count)
        start, end = changes.get("start_date", locked.start_date), changes.get("end_date", locked.end_date)
        if end is not None and end < start:
            raise invalid("endDate", END_BEFORE_START)
        status = changes.get("status", locked.status)
        if status in selectors.CURRENT_STATUSES and locked.status not in selectors.CURRENT_STATUSES:
            _no_other_current(user_id=locked.user_id, except_id=locked.pk)
            changes |= {"cancelled_at": None, "cancellation_reason": None}  # reactivated: no longer cancelled
        for name, value in changes.items():
            setattr(locked, name, value)
        if changes:
            locked.save()
    return locked


def subscription_cancel(*, caller: Caller, subscription: Subscription, reason: str | None) -> Subscription:
    """Cancel a current subscription (its owner or an admin): status `cancelled`, `cancelled_at` now, the
    reason kept, auto-renewal off. `conflict` when it is already cancelled or expired."""
    with transaction.atomic():
        locked = Subscription.objects.select_for_update(of=("self",)).select_related("plan").get(pk=subscription.pk)
        if locked.status == SubscriptionStatus.CANCELLED:
            raise ProtocolError(CONFLICT, ALREADY_CANCELLED)
        if locked.status == SubscriptionStatus.EXPIRED:
            raise ProtocolError(CONFLICT, CANNOT_CANCEL_EXPIRED)
        locked.status = SubscriptionStatus.CANCELLED
        locked.cancelled_at = timezone.now()
        locked.cancellation_reason = reason
        locked.is_auto_renew = False
        locked.save()
    return locked


# Usage ----------------------------------------------------------------------------------


def usage_record(*, caller: Caller, feature_id: Any) -> dict[str, Any]:
    """Record one use of the feature by the caller (create or increment their usage_tracking row) and
    return their access after it. not_found for an unknown feature, forbidden when their plan does not
    enable it, conflict ("usage limit reached") when the limit is used up."""
    with transaction.atomic():
        if not Feature.objects.filter(pk=feature_id).exists():
            raise not_found()
        _lock_user(caller.user_id)  # one use at a time per user: the limit check cannot be raced
        access = selectors.feature_access(user_id=caller.user_id, feature_id=feature_id)
        if not access["isEnabled"]:
            raise forbidden(FEATURE_NOT_ENABLED)
        limit, used = access["usageLimit"], access["currentUsage"]
        if limit is not None and used >= limit:
            raise ProtocolError(CONFLICT, USAGE_LIMIT_REACHED, usageLimit=limit, currentUsage=used)
        now = timezone.now()
        row = (
            UsageRecord.objects.select_for_update()
            .filter(user_id=caller.user_id, feature_id=feature_id)
            .order_by("first_used_at", "pk")
            .first()
        )
        if row is None:
            row = UsageRecord(user_id=caller.user_id, feature_id=feature_id, usage_count=1,
                              first_used_at=now, last_used_at=now)
        else:
            row.usage_count = (row.usage_count or 0) + 1
            row.last_used_at = now
        row.save()
    return {**access, "currentUsage": used + 1, "lastChecked": now}


# Pricing recommendations ----------------------------------------------------------------


def recommendation_create(*, caller: Caller, data: dict[str, Any]) -> PricingRecommendation:
    """A recommendation for a user (admins only); `currentPlanId` defaults to their current subscription's."""
    _admin_only(caller)
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
        _lock_user(caller.user_id)
        locked = PricingRecommendation.objects.select_for_update().get(pk=recommendation.pk)
        if locked.is_applied:
            raise ProtocolError(CONFLICT, ALREADY_APPLIED)
        if locked.expires_at is not None and locked.expires_at <= now:
            raise ProtocolError(CONFLICT, RECOMMENDATION_EXPIRED)
        plan = SubscriptionPlan.objects.filter(pk=locked.recommended_plan_id).first()
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
        locked.is_applied = True
        locked.applied_at = now
        locked.save()
    return locked, subscription
