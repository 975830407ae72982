"""Writes of plans, plan features, features and feature usage (the endpoints of apps/subscriptions/catalog_api.py)."""

from collections import Counter
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.common.validation import invalid
from apps.common.visibility import Caller, not_found
from apps.subscriptions import caches, selectors
from apps.subscriptions.models import Feature, PlanFeature, SubscriptionPlan, UsageRecord
from apps.subscriptions.services.shared import admin_only, forbidden, lock_user, model_fields
from realtime.errors import CONFLICT, ProtocolError

UNKNOWN_FEATURES = "Unknown feature ids: {ids}."
DUPLICATE_FEATURES = "Each feature may appear once: {ids}."
FEATURE_NOT_ENABLED = "This feature is not enabled in your subscription."
USAGE_LIMIT_REACHED = "usage limit reached"

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


# Plans ----------------------------------------------------------------------------------


def plan_create(*, caller: Caller, data: dict[str, Any]) -> SubscriptionPlan:
    """A new plan (admins only); `data` uses the API's field names."""
    admin_only(caller)
    plan = SubscriptionPlan(**model_fields(data, PLAN_FIELDS))
    with transaction.atomic():
        plan.save()
    return plan


def plan_update(*, caller: Caller, plan_id: Any, data: dict[str, Any]) -> SubscriptionPlan:
    """Change the given fields (admins only). Existing subscriptions keep their price."""
    admin_only(caller)
    with transaction.atomic():
        plan = SubscriptionPlan.objects.select_for_update().filter(pk=plan_id).first()
        if plan is None:
            raise not_found()
        changes = model_fields(data, PLAN_FIELDS)
        for name, value in changes.items():
            setattr(plan, name, value)
        if changes:
            plan.save()
            caches.plan_saved(plan=plan)
    return plan


def plan_deactivate(*, caller: Caller, plan_id: Any) -> SubscriptionPlan:
    """`is_active` false: no new subscriptions; existing ones and their history stay."""
    return plan_update(caller=caller, plan_id=plan_id, data={"isActive": False})


def plan_features_set(*, caller: Caller, plan_id: Any, rows: list[dict[str, Any]]) -> list[PlanFeature]:
    """Make the plan's `plan_features` exactly `rows` ({featureId, isEnabled, usageLimit}); admins only."""
    admin_only(caller)
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
                caches.plan_feature_changed(feature_id=feature_id)
        for feature_id, row in wanted.items():
            link = existing.get(feature_id) or PlanFeature(plan=plan, feature_id=feature_id)
            if link._state.adding or (link.is_enabled, link.usage_limit) != (row["isEnabled"], row["usageLimit"]):
                link.is_enabled, link.usage_limit = row["isEnabled"], row["usageLimit"]
                link.save()
                caches.plan_feature_changed(feature_id=feature_id)
    return selectors.plan_feature_list(plan_id=plan_id)


# Features -------------------------------------------------------------------------------


def feature_create(*, caller: Caller, data: dict[str, Any]) -> Feature:
    admin_only(caller)
    feature = Feature(**model_fields(data, FEATURE_FIELDS))
    with transaction.atomic():
        feature.save()
    return feature


def feature_update(*, caller: Caller, feature_id: Any, data: dict[str, Any]) -> Feature:
    admin_only(caller)
    with transaction.atomic():
        feature = Feature.objects.select_for_update().filter(pk=feature_id).first()
        if feature is None:
            raise not_found()
        changes = model_fields(data, FEATURE_FIELDS)
        for name, value in changes.items():
            setattr(feature, name, value)
        if changes:
            feature.save()
    return feature


def feature_delete(*, caller: Caller, feature_id: Any) -> None:
    """Delete a feature with its plan rows and usage history (the seed's ON DELETE CASCADE); admins only."""
    admin_only(caller)
    with transaction.atomic():
        feature = Feature.objects.filter(pk=feature_id).first()
        if feature is None:
            raise not_found()
        feature.delete()
        caches.plan_feature_changed(feature_id=feature_id)


# Usage ----------------------------------------------------------------------------------


def usage_record(*, caller: Caller, feature_id: Any) -> dict[str, Any]:
    """Record one use of the feature by the caller (create or increment their usage_tracking row) and
    return their access after it. not_found for an unknown feature, forbidden when their plan does not
    enable it, conflict ("usage limit reached") when the limit is used up."""
    with transaction.atomic():
        if not Feature.objects.filter(pk=feature_id).exists():
            raise not_found()
        lock_user(caller.user_id)  # one use at a time per user: the limit check cannot be raced
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
            row = UsageRecord(
                user_id=caller.user_id, feature_id=feature_id, usage_count=1, first_used_at=now, last_used_at=now
            )
        else:
            row.usage_count = (row.usage_count or 0) + 1
            row.last_used_at = now
        row.save()
        caches.usage_changed(user_id=row.user_id, feature_id=row.feature_id)
    return {**access, "currentUsage": used + 1, "lastChecked": now}
