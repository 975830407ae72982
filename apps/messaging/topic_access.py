"""Who may subscribe to which topic, decided once per (user, topic) and cached in Redis.

The decision is the access policy's (`apps/common/policy.py`: `TOPIC_PERMISSIONS` and
`visible_q`), made from PostgreSQL on a cache miss only, for the user's CURRENT type and
roles, loaded afresh with every such decision: what a socket saw at connect time is
never trusted (`Viewer.user_type` is ignored here). The socket hot path never queries
PostgreSQL. `user:access:{userId}` (hash of topic -> "1"/"0", TTL as the permissions
cache) is dropped, and every server process told to re-check that user's open
subscriptions, by the services that change a membership feeding it
(`apps.common.access.access_changed`) or the user's type, roles or active flag
(`apps.accounts.services.user_caches_drop`).
"""

from typing import Any

import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import Q

from apps.accounts.selectors import actor_current
from apps.common import policy
from apps.common.cache import afill, current_epoch
from apps.common.policy import Subject
from apps.leasing.models import Lease
from apps.messaging.models import Conversation, ConversationParticipant
from apps.properties.models import Property, Unit
from realtime import keys, topics
from realtime.connections import get_redis
from realtime.topics import Topic, Viewer


def _visible(queryset: Any, subject: Subject, permission: str, *, property_path: str, own: Q | None) -> bool:
    q = policy.visible_q(subject, permission, property_path=property_path, own=own)
    return bool((queryset if q is None else queryset.filter(q)).exists())


def topic_allowed_for(subject: Subject, topic: Topic) -> bool:
    """The policy's decision for `subject` (see PROTOCOL.md's topic table); unknown ids are refused."""
    family, entity_id, uid = topic.family, topic.entity_id, subject.user_id
    if family == topics.SYSTEM:
        return True
    if family == topics.NOTIFICATIONS:
        return entity_id == uid
    permission = policy.TOPIC_PERMISSIONS.get(family)
    if permission is None or entity_id is None:  # every family but the broadcasts names an entity
        return False
    if family == topics.CHAT:
        if policy.sees_all(subject, permission):
            return Conversation.objects.filter(pk=entity_id).exists()
        return (
            policy.allows(subject, permission)
            and ConversationParticipant.objects.filter(conversation_id=entity_id, user_id=uid).exists()
        )
    if family in (topics.MAINTENANCE, topics.PROPERTY):
        # Property-wide streams are for the property's staff: a tenant's OWN scope sees none.
        return _visible(Property.objects.filter(pk=entity_id), subject, permission, property_path="", own=None)
    if family == topics.UNIT:
        tenant = policy.active_lease_tenant_q(subject, "leases__")
        return _visible(Unit.objects.filter(pk=entity_id), subject, permission, property_path="property__", own=tenant)
    if family == topics.LEASE:
        tenant = policy.active_lease_tenant_q(subject, "")
        return _visible(
            Lease.objects.filter(pk=entity_id), subject, permission, property_path="unit__property__", own=tenant
        )
    return False


def topic_allowed(viewer: Viewer, topic: Topic) -> bool:
    """The decision for the viewer's user as they are NOW in PostgreSQL (a deactivated user: none)."""
    if topic.family == topics.SYSTEM:
        return True
    actor = actor_current(user_id=viewer.user_id)
    return actor is not None and topic_allowed_for(actor, topic)


class CachedTopicAuthorizer:
    """`realtime.topics.TopicAuthorizer` backed by the access policy, cached per user in Redis.

    A cached decision is dropped whenever anything it was made from changes (memberships,
    the user's type, roles or active flag), and a decision made while such a drop ran is
    not cached (`cache:epoch`), so a cached "1" never outlives the access it records.
    """

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
