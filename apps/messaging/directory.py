"""`realtime.directory.Directory` for the sockets: memberships from PostgreSQL, cached in-process.

Participants and a user's conversations are read on chat commands and presence changes,
so they are cached per process for a short TTL and dropped at once when any process
announces an access change (the same control message that re-checks subscriptions).
"""

import time
from typing import Any

from asgiref.sync import sync_to_async
from django.db.models import Q

from apps.accounts.selectors import actor_current
from apps.common import policy
from apps.common.cache import aread_json_many
from apps.messaging.models import ConversationParticipant
from apps.messaging.selectors import conversation_ids_of
from apps.properties.models import Property
from realtime import keys
from realtime.topics import Viewer

CACHE_SECONDS = 60.0
CONVERSATIONS_REDIS_TTL = 3600


class _TtlCache:
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._items: dict[str, tuple[float, list[str]]] = {}
        self._pruned = time.monotonic()

    def get(self, key: str) -> list[str] | None:
        item = self._items.get(key)
        if item is None or item[0] < time.monotonic():
            return None
        return item[1]

    def put(self, key: str, value: list[str]) -> None:
        now = time.monotonic()
        if now - self._pruned > self.ttl:
            # Expired entries go once per TTL, so a process that saw many users stays bounded.
            self._pruned = now
            self._items = {k: item for k, item in self._items.items() if item[0] >= now}
        self._items[key] = (now + self.ttl, value)

    def clear(self) -> None:
        self._items.clear()


@sync_to_async
def _participants(conversation_id: str) -> list[str]:
    return [
        str(user_id)
        for user_id in ConversationParticipant.objects.filter(conversation_id=conversation_id)
        .order_by("joined_at")
        .values_list("user_id", flat=True)
    ]


@sync_to_async
def _conversations_of(user_ids: list[str]) -> dict[str, list[str]]:
    return conversation_ids_of(user_ids=user_ids)


def _properties_of(subject: policy.Subject) -> Any:
    """Properties that link the user to others: owned or managed, or leased (active)."""
    return Property.objects.filter(
        policy.property_staff_q(subject) | policy.active_lease_tenant_q(subject, "units__leases__")
    ).values("pk")


@sync_to_async
def _visible_users(viewer_id: str, user_ids: list[str]) -> set[str]:
    """The users among `user_ids` whose presence the viewer may see, for the viewer as they are NOW
    (the socket's connect-time user type is not trusted): everyone for holders of `users.view`
    over all users (admins, support); otherwise those they share a conversation or a property with."""
    actor = actor_current(user_id=viewer_id)
    if actor is None:
        return set()
    if policy.sees_all(actor, "users.view"):
        return set(user_ids)
    conversations = ConversationParticipant.objects.filter(user_id=viewer_id).values("conversation_id")
    via_chat = ConversationParticipant.objects.filter(
        conversation_id__in=conversations, user_id__in=user_ids
    ).values_list("user_id", flat=True)
    properties = _properties_of(actor)
    via_property = (
        Property.objects.filter(pk__in=properties)
        .filter(
            Q(owner_id__in=user_ids)
            | Q(manager_links__user_id__in=user_ids)
            | Q(units__leases__lease_status="active", units__leases__tenant_links__tenant__user_id__in=user_ids)
        )
        .values_list("owner_id", "manager_links__user_id", "units__leases__tenant_links__tenant__user_id")
    )
    wanted = set(user_ids)
    found = {str(user_id) for user_id in via_chat}
    for row in via_property:
        found |= {str(value) for value in row if value is not None and str(value) in wanted}
    return found & wanted


class ParticipantDirectory:
    """Memberships for the realtime core; `on_control` drops the cache on access changes."""

    def __init__(self, ttl: float = CACHE_SECONDS) -> None:
        self._participants = _TtlCache(ttl)
        self._conversations = _TtlCache(ttl)

    async def participants(self, conversation_id: str) -> list[str]:
        cached = self._participants.get(conversation_id)
        if cached is None:
            cached = await _participants(conversation_id)
            self._participants.put(conversation_id, cached)
        return cached

    async def conversations_of(self, user_id: str) -> list[str]:
        return (await self.conversations_of_many([user_id]))[user_id]

    async def conversations_of_many(self, user_ids: list[str]) -> dict[str, list[str]]:
        """In-process cache, then `user:conversations:{userId}` in Redis (one MGET), then one
        PostgreSQL query for the rest."""
        found: dict[str, list[str]] = {}
        missing: dict[str, str] = {}
        for user_id in user_ids:
            cached = self._conversations.get(user_id)
            if cached is None:
                missing[user_id] = keys.user_conversations(user_id)
            else:
                found[user_id] = cached
        if missing:
            loaded = await aread_json_many(missing, CONVERSATIONS_REDIS_TTL, _conversations_of)
            for user_id, conversation_ids in loaded.items():
                self._conversations.put(user_id, conversation_ids)
            found.update(loaded)
        return found

    async def visible_users(self, viewer: Viewer, user_ids: list[str]) -> set[str]:
        others = [user_id for user_id in user_ids if user_id != viewer.user_id]
        visible = await _visible_users(viewer.user_id, others) if others else set()
        return visible | ({viewer.user_id} & set(user_ids))

    async def on_control(self, kind: str, message: dict[str, Any]) -> None:
        if kind in ("access.changed", "permissions.changed"):
            self._participants.clear()
            self._conversations.clear()
