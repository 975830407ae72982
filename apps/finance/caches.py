"""`transactions:recent:{userId}`: the 20 newest transactions the user may see, newest first.

A Redis list of JSON strings (the API's transaction shape), TTL 15 minutes, read through
by GET /transactions/recent and dropped after the commit of every change that alters
what a user would see there. The drops are exact, not `SCAN transactions:recent:*`:

- a transaction saved or deleted -> its audience: the users of the lease's tenants, the
  property's owner and managers, and every admin (before and after a move of lease or
  property). A SCAN of the whole keyspace on every payment would cost O(all keys) per
  write; the audience is a handful of keys, found with three indexed queries.
- a tenant added to or removed from a lease -> that tenant's user;
- a tenant record re-pointed to another user or deleted -> the users involved;
- a manager added to or removed from a property, an owner changed -> those users;
- a user saved with a possibly new user_type (admin or not) -> that user; a role given or taken
  -> that user (apps/accounts/services.py `user_caches_drop`).
The one coarse case: a cascade from a property or unit deletion that removes many
transactions drops the pattern once (SCAN, never KEYS), instead of one audience per row.
Receivers run on every ORM path (API, admin, shell); bulk `update()` bypasses them, so
code that moves transactions in bulk must call `recent_drop_for_users` itself.
"""

from collections.abc import Iterable
from typing import Any

from asgiref.sync import sync_to_async
from django.db.models import Model
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from apps.accounts.models import User
from apps.common import policy
from apps.common.cache import aread_json_list, drop_on_commit
from apps.common.visibility import Caller
from apps.finance.models import Transaction
from apps.finance.selectors import transaction_list_recent
from apps.leasing.models import LeaseTenant, Tenant
from apps.properties.models import Property, PropertyManager
from realtime import keys

RECENT_TTL_SECONDS = 15 * 60
RECENT_PATTERN = keys.transactions_recent("*")


async def arecent_transactions(*, caller: Caller) -> list[dict[str, Any]]:
    """The caller's recent transactions, from Redis when cached, else PostgreSQL (then cached).
    Redis down: answered from PostgreSQL."""
    return await aread_json_list(
        keys.transactions_recent(caller.user_id),
        RECENT_TTL_SECONDS,
        lambda: sync_to_async(transaction_list_recent)(caller=caller),
    )


def recent_drop_for_users(user_ids: Iterable[Any]) -> None:
    """Drop the users' recent-transactions lists once the current transaction commits."""
    drop_on_commit(keys=sorted({keys.transactions_recent(str(user_id)) for user_id in user_ids if user_id}))


def transaction_audience(*, lease_id: Any, property_id: Any) -> set[str]:
    """Users who may see a transaction of this lease and property (admins and accountants included)."""
    audience: set[str] = set()
    if lease_id is not None:
        audience.update(
            str(user_id)
            for user_id in Tenant.objects.filter(lease_links__lease_id=lease_id).values_list("user_id", flat=True)
        )
    if property_id is not None:
        owner = Property.objects.filter(pk=property_id).values_list("owner_id", flat=True).first()
        if owner is not None:
            audience.add(str(owner))
        audience.update(
            str(user_id)
            for user_id in PropertyManager.objects.filter(property_id=property_id).values_list("user_id", flat=True)
        )
    # Whoever sees every transaction (admins, the accountant role): from the policy's table.
    everyone = policy.holders_of_all_q(policy.VIEW_TRANSACTIONS)
    audience.update(str(pk) for pk in User.objects.filter(everyone).values_list("pk", flat=True).distinct())
    return audience


def _old_values(model: type[Model], instance: Model, fields: tuple[str, ...]) -> tuple[Any, ...] | None:
    """The stored values of `fields` before this save (None for an insert)."""
    if instance._state.adding or instance.pk is None:
        return None
    return model._default_manager.filter(pk=instance.pk).values_list(*fields).first()


# Transactions


@receiver(pre_save, sender=Transaction)
def _transaction_before_save(sender: type, instance: Transaction, raw: bool, **kwargs: Any) -> None:
    before = None if raw else _old_values(Transaction, instance, ("lease_id", "property_id"))
    instance._recent_before = before  # type: ignore[attr-defined]


@receiver(post_save, sender=Transaction)
def _transaction_saved(sender: type, instance: Transaction, raw: bool, **kwargs: Any) -> None:
    if raw:
        return
    audience = transaction_audience(lease_id=instance.lease_id, property_id=instance.property_id)
    before = getattr(instance, "_recent_before", None)
    if before is not None and before != (instance.lease_id, instance.property_id):
        audience |= transaction_audience(lease_id=before[0], property_id=before[1])
    recent_drop_for_users(audience)


@receiver(post_delete, sender=Transaction)
def _transaction_deleted(sender: type, instance: Transaction, origin: Any = None, **kwargs: Any) -> None:
    if origin is None or isinstance(origin, Transaction) or getattr(origin, "model", None) is Transaction:
        recent_drop_for_users(transaction_audience(lease_id=instance.lease_id, property_id=instance.property_id))
    elif not getattr(origin, "_recent_pattern_dropped", False):
        # A cascade (property or unit deleted): one pattern drop instead of an audience per row.
        origin._recent_pattern_dropped = True
        drop_on_commit(patterns=[RECENT_PATTERN])


# Who can see which transactions: lease tenants, tenant users, managers, owners, user types.


def _tenant_user(tenant_id: Any) -> Any:
    return Tenant.objects.filter(pk=tenant_id).values_list("user_id", flat=True).first()


@receiver(post_save, sender=LeaseTenant)
@receiver(post_delete, sender=LeaseTenant)
def _lease_tenant_changed(sender: type, instance: LeaseTenant, **kwargs: Any) -> None:
    if not kwargs.get("raw", False):
        recent_drop_for_users([_tenant_user(instance.tenant_id)])


@receiver(pre_save, sender=Tenant)
def _tenant_before_save(sender: type, instance: Tenant, raw: bool, **kwargs: Any) -> None:
    before = None if raw else _old_values(Tenant, instance, ("user_id",))
    instance._recent_before = before  # type: ignore[attr-defined]


@receiver(post_save, sender=Tenant)
def _tenant_saved(sender: type, instance: Tenant, raw: bool, **kwargs: Any) -> None:
    before = getattr(instance, "_recent_before", None)
    if not raw and before is not None and before[0] != instance.user_id:
        recent_drop_for_users([before[0], instance.user_id])


@receiver(post_delete, sender=Tenant)
def _tenant_deleted(sender: type, instance: Tenant, **kwargs: Any) -> None:
    recent_drop_for_users([instance.user_id])


@receiver(post_save, sender=PropertyManager)
@receiver(post_delete, sender=PropertyManager)
def _manager_changed(sender: type, instance: PropertyManager, **kwargs: Any) -> None:
    if not kwargs.get("raw", False):
        recent_drop_for_users([instance.user_id])


@receiver(pre_save, sender=Property)
def _property_before_save(
    sender: type, instance: Property, raw: bool, update_fields: Any = None, **kwargs: Any
) -> None:
    owner_may_change = not raw and (update_fields is None or "owner" in update_fields)
    before = _old_values(Property, instance, ("owner_id",)) if owner_may_change else None
    instance._recent_before = before  # type: ignore[attr-defined]


@receiver(post_save, sender=Property)
def _property_saved(sender: type, instance: Property, **kwargs: Any) -> None:
    before = getattr(instance, "_recent_before", None)
    if before is not None and before[0] != instance.owner_id:
        recent_drop_for_users([before[0], instance.owner_id])


@receiver(post_save, sender=User)
def _user_saved(sender: type, instance: User, raw: bool, update_fields: Any = None, **kwargs: Any) -> None:
    # Logins save only last_login; any other save may have changed user_type (admin sees all).
    if not raw and (update_fields is None or "user_type" in update_fields):
        recent_drop_for_users([instance.pk])
