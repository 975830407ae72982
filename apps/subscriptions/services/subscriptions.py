"""Writes of subscriptions: create, change and cancel, with the price a plan gives for a unit count."""

from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.common import policy
from apps.common.validation import invalid
from apps.common.visibility import Caller
from apps.subscriptions import caches, selectors
from apps.subscriptions.models import Subscription, SubscriptionPlan, SubscriptionStatus
from apps.subscriptions.services.shared import forbidden, lock_user, model_fields
from realtime.errors import CONFLICT, ProtocolError

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

SUBSCRIBER_TYPES = policy.SUBSCRIBER_TYPES
MANAGE = "subscriptions.manage"
MAX_PRICE = Decimal("99999999.99")
CENT = Decimal("0.01")

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
    if plan.is_custom and not policy.sees_all(caller, MANAGE):
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
    policy.require(caller, MANAGE, CANNOT_SUBSCRIBE)
    target = data.get("userId")
    if not policy.sees_all(caller, MANAGE):
        if target is not None and str(target) != caller.user_id:
            raise forbidden(SUBSCRIBE_FOR_OTHERS)
        if data.get("currentPrice") is not None:
            raise forbidden(ADMIN_ONLY_FIELDS.format(fields="currentPrice"))
    start = data.get("startDate") or timezone.now().date()
    if data.get("endDate") is not None and data["endDate"] < start:
        raise invalid("endDate", END_BEFORE_START)
    with transaction.atomic():
        user = lock_user(target if target is not None else caller.user_id)
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
        caches.subscription_changed(sender=Subscription, instance=subscription)
    return subscription


def subscription_update(*, caller: Caller, subscription: Subscription, data: dict[str, Any]) -> Subscription:
    """Change the given fields. Owners: planId, unitCount, paymentFrequency, isAutoRenew of a current
    subscription; admins also status (not `cancelled`: use cancel), dates and currentPrice. A new plan or
    unit count recomputes the price unless an admin sends one."""
    admin_fields = sorted(name for name in SUBSCRIPTION_ADMIN_FIELDS if name in data)
    if admin_fields and not policy.sees_all(caller, MANAGE):
        raise forbidden(ADMIN_ONLY_FIELDS.format(fields=", ".join(admin_fields)))
    with transaction.atomic():
        lock_user(subscription.user_id)
        locked = Subscription.objects.select_for_update(of=("self",)).select_related("plan").get(pk=subscription.pk)
        if not policy.sees_all(caller, MANAGE) and locked.status not in selectors.CURRENT_STATUSES:
            raise ProtocolError(CONFLICT, NOT_CURRENT)
        changes = model_fields(data, SUBSCRIPTION_OWNER_FIELDS) | model_fields(data, SUBSCRIPTION_ADMIN_FIELDS)
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
            caches.subscription_changed(sender=Subscription, instance=locked)
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
        caches.subscription_changed(sender=Subscription, instance=locked)
    return locked
