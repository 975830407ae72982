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
plan save (apps/subscriptions/admin.py). Plan saves are rare admin edits, so one SCAN per
save is cheap insurance.

The services (apps/subscriptions/services/, the admin's included) call the drops below in
the transaction that writes the row; they run after it commits (`drop_on_commit`), so the
first read after the commit refills from the new data. A bare ORM save, `update()` or shell
write drops nothing (issue 10: no model signals): such a key lags for its TTL.
"""

from typing import Any

from asgiref.sync import sync_to_async

from apps.common.cache import aread_hash, decode_hash, drop_on_commit
from apps.events.outbox import register_deleted
from apps.subscriptions import selectors
from apps.subscriptions.models import Subscription, SubscriptionPlan, UsageRecord
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


def subscription_changed(sender: Any, instance: Subscription, *, previous_user_id: Any = None) -> None:
    """The subscription was written (or is being deleted) in the current transaction: the user's
    status and, since plan or status may have changed, all of their feature access (and those of
    `previous_user_id`, a user it was moved from), after the commit. `sender` is the model, as its
    callers name it (`subscription_changed(sender=Subscription, instance=...)`)."""
    drop_on_commit(*_user_keys({instance.user_id, previous_user_id}))


def plan_saved(*, plan: SubscriptionPlan) -> None:
    """A plan changed (or is being deleted): planName of its current subscribers; every feature access
    (see the module docstring)."""
    subscribers = set(
        Subscription.objects.filter(plan_id=plan.pk, status__in=selectors.CURRENT_STATUSES)
        .values_list("user_id", flat=True)
        .distinct()
    )
    status_keys, _ = _user_keys(subscribers)
    drop_on_commit(status_keys, [keys.feature_access("*", "*")])


def plan_feature_changed(*, feature_id: Any) -> None:
    """A plan's row of this feature was written or deleted, or the feature itself is deleted: every
    user's access to it."""
    drop_on_commit(patterns=[keys.feature_access("*", str(feature_id))])


def usage_changed(*, user_id: Any, feature_id: Any, previous: tuple[Any, Any] | None = None) -> None:
    """currentUsage of the user's use of the feature (and of the (user, feature) the row had before a move)."""
    pairs = {(user_id, feature_id), previous or (None, None)}
    drop_on_commit(
        sorted({keys.feature_access(str(user), str(feature)) for user, feature in pairs if user and feature})
    )


# Rows deleted in a cascade through a service (`apps.events.outbox.delete_recording_events`: a
# user deleted by the admin takes their subscriptions and usage along).
register_deleted(Subscription, lambda subscription: subscription_changed(sender=Subscription, instance=subscription))
register_deleted(UsageRecord, lambda row: usage_changed(user_id=row.user_id, feature_id=row.feature_id))
