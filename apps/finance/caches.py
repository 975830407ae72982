"""`transactions:recent:{userId}`: the 20 newest transactions the user may see, newest first.

A Redis list of JSON strings (the API's transaction shape), TTL 15 minutes, read through
by GET /transactions/recent and dropped after the commit of every change that alters
what a user would see there. The drops are exact, not `SCAN transactions:recent:*`:

- a transaction saved or deleted (`transaction_changed`) -> its audience: the users of the
  lease's tenants, the property's owner and managers, and every admin (before and after a
  move of lease or property). A SCAN of the whole keyspace on every payment would cost O(all keys) per
  write; the audience is a handful of keys, found with three indexed queries.
- a tenant added to or removed from a lease -> that tenant's user;
- a tenant record re-pointed to another user or deleted -> the users involved;
- a manager added to or removed from a property, an owner changed -> those users;
- a user saved with a possibly new user_type (admin or not) -> that user; a role given or taken
  -> that user (apps/accounts/services.py `user_caches_drop`).
The one coarse case: a cascade from a property or unit deletion that removes many
transactions drops the pattern once (SCAN, never KEYS), instead of one audience per row.
The drops are explicit: the finance services call `transaction_changed`; the membership
cases are the access layer's (`apps.common.access.access_changed` drops this list with the
topic decisions, and `apps.accounts.services.user_caches_drop` on a type or role change). A
bare ORM save, `update()` or shell write drops nothing (issue 10: no model signals): code
that writes transactions outside the services must call `transaction_changed` or
`recent_drop_for_users` itself.
"""

from collections.abc import Iterable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction as db_transaction

from apps.accounts.models import User
from apps.common import policy
from apps.common.cache import aread_json_list, drop_on_commit
from apps.common.visibility import Caller
from apps.events.outbox import register_deleted
from apps.finance.models import Transaction
from apps.finance.selectors import transaction_list_recent
from apps.leasing.models import Tenant
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


# Drops, called by the services (apps/finance/services.py) inside the writing transaction.


def transaction_changed(tx: Transaction, *, before: tuple[Any, Any] | None = None) -> None:
    """The transaction was created, changed or is being deleted in the current transaction: drop
    the lists of everyone who may see it, as it is and as it was (`before`: its lease and property
    before a change), after the commit."""
    audience = transaction_audience(lease_id=tx.lease_id, property_id=tx.property_id)
    if before is not None and before != (tx.lease_id, tx.property_id):
        audience |= transaction_audience(lease_id=before[0], property_id=before[1])
    recent_drop_for_users(audience)


def _deleted_in_a_cascade(tx: Transaction) -> None:
    """A property, unit or lease deleted through its service takes its transactions along: one
    pattern drop per database transaction (SCAN, never KEYS) instead of an audience per row."""
    connection = db_transaction.get_connection()
    pending = getattr(connection, "run_on_commit", None)
    if pending is not None and getattr(connection, "_recent_pattern_dropped_on", None) is pending:
        return
    drop_on_commit(patterns=[RECENT_PATTERN])
    connection._recent_pattern_dropped_on = pending


register_deleted(Transaction, _deleted_in_a_cascade)
