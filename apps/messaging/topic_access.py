"""Who may subscribe to which topic, decided once per (user, topic) and cached in Redis.

The decision is made from PostgreSQL on a cache miss only; the socket hot path never
queries it. `user:access:{userId}` (hash of topic -> "1"/"0", TTL as the permissions
cache) is dropped, and every server process told to re-check that user's open
subscriptions, whenever a membership that feeds it changes (signals.py).
"""

import logging
from typing import Any

import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import Q, QuerySet

from apps.common.cache import afill, current_epoch, drop_now
from apps.leasing.models import Lease, LeaseStatus
from apps.messaging.models import Conversation, ConversationParticipant
from apps.properties.models import Property, Unit
from realtime import keys, topics
from realtime.codecs import pack_control
from realtime.connections import get_redis, get_sync_redis
from realtime.topics import Topic, Viewer

logger = logging.getLogger(__name__)

ACCESS_CHANGED = "access.changed"


def _property_staff(prefix: str, user_id: str) -> Q:
    return Q(**{f"{prefix}owner_id": user_id}) | Q(**{f"{prefix}manager_links__user_id": user_id})


def topic_allowed(viewer: Viewer, topic: Topic) -> bool:
    """The decision from PostgreSQL (see PROTOCOL.md's topic table); unknown ids are refused."""
    family, entity_id, uid = topic.family, topic.entity_id, viewer.user_id
    if family == topics.SYSTEM:
        return True
    if family == topics.NOTIFICATIONS:
        return entity_id == uid
    if entity_id is None:  # every other family names an entity
        return False
    if family == topics.CHAT:
        if viewer.is_admin:
            return Conversation.objects.filter(pk=entity_id).exists()
        return ConversationParticipant.objects.filter(conversation_id=entity_id, user_id=uid).exists()
    if family in (topics.MAINTENANCE, topics.PROPERTY):
        found: QuerySet[Any] = Property.objects.filter(pk=entity_id)
        return (found if viewer.is_admin else found.filter(_property_staff("", uid))).exists()
    if family == topics.UNIT:
        found = Unit.objects.filter(pk=entity_id)
        if viewer.is_admin:
            return found.exists()
        tenant = Q(leases__lease_status=LeaseStatus.ACTIVE, leases__tenant_links__tenant__user_id=uid)
        return found.filter(_property_staff("property__", uid) | tenant).exists()
    if family == topics.LEASE:
        found = Lease.objects.filter(pk=entity_id)
        if viewer.is_admin:
            return found.exists()
        tenant = Q(lease_status=LeaseStatus.ACTIVE, tenant_links__tenant__user_id=uid)
        return found.filter(_property_staff("unit__property__", uid) | tenant).exists()
    return False


class CachedTopicAuthorizer:
    """`realtime.topics.TopicAuthorizer` backed by PostgreSQL, cached per user in Redis."""

    async def allowed(self, viewer: Viewer, topic: Topic) -> bool:
        if topic.family == topics.SYSTEM:
            return True
        if topic.family == topics.NOTIFICATIONS:
            return topic.entity_id == viewer.user_id
        key = keys.user_topic_access(viewer.user_id)
        try:
            cached = await get_redis().hget(key, topic.name)
        except redis.RedisError:
            cached = None
        if cached is not None:
            return cached == "1"
        epoch = await current_epoch()
        decision = await sync_to_async(topic_allowed)(viewer, topic)
        # Not cached if a membership change's drop ran meanwhile: the decision may predate it.
        value = "1" if decision else "0"
        await afill(key, "field", [topic.name, value], settings.PERMISSIONS_CACHE_TTL_SECONDS, epoch)
        return decision


def topic_access_drop(*, user_ids: set[str]) -> None:
    """Forget the users' cached decisions and tell every process to re-check their subscriptions."""
    if not user_ids:
        return
    # drop_now also refuses a membership lookup racing this change (cache:epoch).
    drop_now([keys.user_topic_access(user_id) for user_id in user_ids]
             + [keys.user_conversations(user_id) for user_id in user_ids])
    try:
        client = get_sync_redis()
        for user_id in sorted(user_ids):
            client.publish(topics.CONTROL_CHANNEL, pack_control(ACCESS_CHANGED, userId=user_id))
    except redis.RedisError:
        logger.error("Redis down: processes not told to re-check the subscriptions of %s", sorted(user_ids))
