"""The seed's subscription caches: read through by the endpoints, dropped after the commit of any change.

| key | type | TTL | holds | dropped when |
|---|---|---|---|---|
| `subscription:status:{userId}` | hash | 1 h | planId, planName, status, unitCount, startDate, endDate, isAutoRenew of the user's current subscription | a subscription of the user changes (old and new user); a plan changes (its current subscribers) |
| `feature:access:{userId}:{featureId}` | hash | 15 min | isEnabled, usageLimit, currentUsage, lastChecked | the user's usage row of the feature changes (exact key); a subscription of the user changes (`feature:access:{userId}:*`); a plan's feature row or a feature changes (`feature:access:*:{featureId}`); a plan is saved (`feature:access:*`, see below) |

Hashes follow DESIGN.md (numbers as decimal strings, booleans `1`/`0`, nulls left out:
no `endDate` for an open-ended subscription, no `usageLimit` for unlimited use). A user
without a current subscription has no status hash (nothing is cached; the endpoint
answers 404). Patterns are dropped with SCAN (never KEYS) and only on rare writes
(subscriptions, plans, plan features); a recorded use drops one exact key.

A plan save drops every `feature:access:*` key once: the admin's plan page edits the
plan's `plan_features` with bulk `update()`/`bulk_create()` in the same transaction as the
plan save (apps/subscriptions/admin.py), which send no signals of their own. Plan saves
are rare admin edits, so one SCAN per save is cheap insurance.

The drops hang on post_save/post_delete, so every ORM path (API, admin, other apps,
shell) triggers them, and they run after the transaction commits (`drop_on_commit`), so
the first read after the commit refills from the new data.
"""

from typing import Any

from asgiref.sync import sync_to_async
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from apps.common.cache import aread_hash, decode_hash, drop_on_commit
from apps.subscriptions import selectors
from apps.subscriptions.models import Feature, PlanFeature, Subscription, SubscriptionPlan, UsageRecord
from realtime import keys

SUBSCRIPTION_STATUS_TTL = 60 * 60
FEATURE_ACCESS_TTL = 15 * 60

SUBSCRIPTION_STATUS_TYPES: dict[str, type] = {
    "planId": str,
    "planName": str,
    "status": str,
    "unitCount": int,
    "startDate": str,
    "endDate": str,
    "isAutoRenew": bool,
}
FEATURE_ACCESS_TYPES: dict[str, type] = {
    "isEnabled": bool,
    "usageLimit": int,
    "currentUsage": int,
    "lastChecked": str,
}


# Reads ---------------------------------------------------------------------------------


async def asubscription_status(*, user_id: Any) -> dict[str, Any] | None:
    """`subscription:status:{userId}`, typed; None when the user has no current subscription."""
    raw = await aread_hash(
        keys.subscription_status(str(user_id)),
        SUBSCRIPTION_STATUS_TTL,
        sync_to_async(lambda: selectors.subscription_status(user_id=user_id)),
    )
    return decode_hash(raw, SUBSCRIPTION_STATUS_TYPES) if raw else None


async def afeature_access(*, user_id: Any, feature_id: Any) -> dict[str, Any]:
    """`feature:access:{userId}:{featureId}`, typed; not_found for an unknown feature (checked on a miss;
    deleting a feature drops its keys)."""
    raw = await aread_hash(
        keys.feature_access(str(user_id), str(feature_id)),
        FEATURE_ACCESS_TTL,
        sync_to_async(lambda: selectors.feature_access(user_id=user_id, feature_id=feature_id)),
    )
    return decode_hash(raw, FEATURE_ACCESS_TYPES)


# Drops ---------------------------------------------------------------------------------


def _user_keys(user_ids: set[Any]) -> tuple[list[str], list[str]]:
    """Status keys and access patterns of these users."""
    found = sorted({str(pk) for pk in user_ids if pk is not None})
    return [keys.subscription_status(pk) for pk in found], [keys.feature_access(pk, "*") for pk in found]


@receiver(pre_save, sender=Subscription)
def remember_subscription_user(sender: type, instance: Subscription, raw: bool, using: str, **kwargs: Any) -> None:
    previous = None
    if not raw and not instance._state.adding:
        previous = Subscription.objects.using(using).filter(pk=instance.pk).values_list("user_id", flat=True).first()
    instance._cache_previous_user_id = previous  # type: ignore[attr-defined]


@receiver(post_save, sender=Subscription)
@receiver(post_delete, sender=Subscription)
def subscription_changed(sender: type, instance: Subscription, **kwargs: Any) -> None:
    """The user's status and, since plan or status may have changed, all of their feature access."""
    drop_on_commit(*_user_keys({instance.user_id, getattr(instance, "_cache_previous_user_id", None)}))


@receiver(post_save, sender=SubscriptionPlan)
def plan_saved(sender: type, instance: SubscriptionPlan, created: bool, **kwargs: Any) -> None:
    """planName of the plan's current subscribers; every feature access (see the module docstring)."""
    if created:
        return  # nobody is subscribed to a plan that did not exist
    subscribers = set(
        Subscription.objects.filter(plan_id=instance.pk, status__in=selectors.CURRENT_STATUSES)
        .values_list("user_id", flat=True)
        .distinct()
    )
    status_keys, _ = _user_keys(subscribers)
    drop_on_commit(status_keys, [keys.feature_access("*", "*")])


@receiver(post_save, sender=PlanFeature)
@receiver(post_delete, sender=PlanFeature)
def plan_feature_changed(sender: type, instance: PlanFeature, **kwargs: Any) -> None:
    drop_on_commit(patterns=[keys.feature_access("*", str(instance.feature_id))])


@receiver(post_delete, sender=Feature)
def feature_deleted(sender: type, instance: Feature, **kwargs: Any) -> None:
    drop_on_commit(patterns=[keys.feature_access("*", str(instance.pk))])


@receiver(pre_save, sender=UsageRecord)
def remember_usage_owner(sender: type, instance: UsageRecord, raw: bool, using: str, **kwargs: Any) -> None:
    previous = None
    if not raw and not instance._state.adding:
        previous = UsageRecord.objects.using(using).filter(pk=instance.pk).values_list("user_id", "feature_id").first()
    instance._cache_previous_owner = previous  # type: ignore[attr-defined]


@receiver(post_save, sender=UsageRecord)
@receiver(post_delete, sender=UsageRecord)
def usage_changed(sender: type, instance: UsageRecord, **kwargs: Any) -> None:
    """currentUsage of the row's user and feature (before and after a move)."""
    pairs = {(instance.user_id, instance.feature_id), getattr(instance, "_cache_previous_owner", None) or (None, None)}
    drop_on_commit(
        sorted({keys.feature_access(str(user), str(feature)) for user, feature in pairs if user and feature})
    )
