"""Access invalidation: after a change of who may see what, forget the users' cached access and
have every process re-check their open subscriptions.

The decisions themselves are the policy's (`apps/common/policy.py`), made for sockets by
`apps/messaging/topic_access.py`; this module only invalidates them, so every domain
service can call it without importing `apps.messaging` (the house reads top-down).

Who calls `access_changed`: the service that writes a row deciding visibility, inside its
transaction, with the users whose access it may have changed (old and new):
- a property's owner (`apps/properties/services.py`), its managers (`property_manager_*`,
  and the admin's manager rows through `property_manager_admin_*`);
- a lease's status (`apps/leasing/services.py` `lease_*`) and its tenants
  (`lease_tenant_attach`, `lease_tenants_set`, `tenant_delete`, the admin's lease form);
- a conversation's participants (`apps/messaging/services.py` `conversation_*`);
- rows deleted in a cascade through `apps.events.outbox.delete_recording_events` (the
  membership models register there, see `register_access_deleted`).

A user's type, roles or active flag are handled by `apps.accounts.services.user_caches_drop`,
which drops these caches too. Nothing happens on a bare ORM save, `update()` or shell write:
model signals no longer carry this (issue 10); code that writes membership rows outside the
services must call `access_changed` itself.
"""

import logging
from collections.abc import Callable, Iterable
from typing import Any

import redis
from django.db import transaction
from django.db.models import Model

from apps.common.cache import drop_now
from apps.events.outbox import register_deleted
from realtime import keys, topics
from realtime.codecs import pack_control
from realtime.connections import get_sync_redis, publish_command

logger = logging.getLogger(__name__)

ACCESS_CHANGED = "access.changed"


def access_cache_keys(user_id: str) -> list[str]:
    """The user's caches whose content follows what they may see: topic decisions, conversation
    ids and the recent transactions list (its audience is the lease's tenants and the property's
    owner and managers)."""
    return [keys.user_topic_access(user_id), keys.user_conversations(user_id), keys.transactions_recent(user_id)]


def access_drop_now(*, user_ids: Iterable[Any]) -> None:
    """Forget the users' cached access now and tell every process (`access.changed` on the control
    channel) to re-check their sockets' subscriptions; Redis down: logged, the caches expire by TTL.

    Call it only after the change committed (`access_changed` does); a drop before the commit
    could be refilled from the old rows.
    """
    ids = sorted({str(user_id) for user_id in user_ids if user_id is not None})
    if not ids:
        return
    # drop_now also refuses a cache fill racing this change (the epochs guarding these keys).
    drop_now([key for user_id in ids for key in access_cache_keys(user_id)])
    try:
        client = get_sync_redis()
        for user_id in ids:
            client.execute_command(
                publish_command(client), topics.CONTROL_CHANNEL, pack_control(ACCESS_CHANGED, userId=user_id)
            )
    except redis.RedisError:
        logger.error("Redis down: processes not told to re-check the subscriptions of %s", ids)


def access_changed(*, user_ids: Iterable[Any]) -> None:
    """Who may see what changed for these users: once the current transaction commits, drop their
    cached access and re-check their open subscriptions (sockets that lost a topic get
    `unsubscribed`). Nothing happens if the transaction rolls back; outside a transaction, at once.
    """
    ids = {str(user_id) for user_id in user_ids if user_id is not None}
    if ids:
        transaction.on_commit(lambda: access_drop_now(user_ids=ids))


def register_access_deleted(model: type[Model], users_of: Callable[[Any], Iterable[Any]]) -> None:
    """A `model` row deleted in a cascade (`apps.events.outbox.delete_recording_events`, the
    services' delete of a property, unit, lease or tenant) changes the access of `users_of(row)`.

    Runs beside the model's other recorders (its change event, cache drops).
    """
    register_deleted(model, lambda row: access_changed(user_ids=users_of(row)))
