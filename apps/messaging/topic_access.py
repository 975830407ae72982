"""Who may subscribe to which topic, decided once per (user, topic) and cached in Redis.

The decision is the access policy's (`apps/common/policy.py`: `TOPIC_PERMISSIONS` and
`visible_q`), made from PostgreSQL on a cache miss only, for the user's CURRENT type and
roles, loaded afresh with every such decision: what a socket saw at connect time is
never trusted (`Viewer.user_type` is ignored here). The socket hot path never queries
PostgreSQL: a cached decision is one HGET, sent with the other commands of its loop tick
(`realtime.pipelined.TickPipeline`), and the decisions missing from the cache in one tick
are made together, in one thread hop with one query for the users and one per topic family
(`topic_allowed_many`), and cached in one round trip. `user:access:{userId}` (hash of topic -> "1"/"0", TTL as the permissions
cache) is dropped, and every server process told to re-check that user's open
subscriptions, by the services that change a membership feeding it
(`apps.common.access.access_changed`) or the user's type, roles or active flag
(`apps.accounts.services.user_caches_drop`).
"""

import asyncio
import weakref
from collections.abc import Sequence
from typing import Any

import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import Q

from apps.accounts.selectors import actor_current, actors_current, session_expiries
from apps.common import policy
from apps.common.access import access_cache_keys
from apps.common.cache import afill_many, current_epoch, drop_now
from apps.common.policy import Subject
from apps.leasing.models import Lease
from apps.messaging.models import Conversation, ConversationParticipant
from apps.messaging.selectors import conversations_existing, participations
from apps.properties.models import Property, Unit
from realtime import keys, topics
from realtime.audit import Holding, Verdict
from realtime.coalesce import Coalescer
from realtime.connections import get_redis
from realtime.pipelined import tick_pipeline
from realtime.topics import Topic, Viewer

Request = tuple[str, Topic]  # (user id, topic)


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


def topic_allowed_many(requests: list[Request]) -> list[bool]:
    """`topic_allowed` for many (user, topic) at once, in order: the users loaded in one query
    (`actors_current`), the chat topics decided with one query per kind of check; the other
    families one by one (`topic_allowed_for`)."""
    actors = actors_current(user_ids=sorted({uid for uid, topic in requests if topic.family != topics.SYSTEM}))
    decisions: list[bool] = [False] * len(requests)
    chats: list[tuple[int, str, str, bool]] = []  # (index, user, conversation, sees every chat)
    for index, (uid, topic) in enumerate(requests):
        actor = actors.get(uid)
        if topic.family == topics.SYSTEM:
            decisions[index] = True
        elif actor is None:
            continue  # unknown or deactivated: nothing
        elif topic.family == topics.CHAT and topic.entity_id is not None:
            permission = policy.TOPIC_PERMISSIONS[topics.CHAT]
            if policy.sees_all(actor, permission):
                chats.append((index, uid, topic.entity_id, True))
            elif policy.allows(actor, permission):
                chats.append((index, uid, topic.entity_id, False))
        else:
            decisions[index] = topic_allowed_for(actor, topic)
    every = {cid for _, _, cid, sees_all in chats if sees_all}
    own = [(uid, cid) for _, uid, cid, sees_all in chats if not sees_all]
    existing = conversations_existing(conversation_ids=every)
    joined = participations(user_ids=[uid for uid, _ in own], conversation_ids=[cid for _, cid in own])
    for index, uid, cid, sees_all in chats:
        decisions[index] = cid in existing if sees_all else (uid, cid) in joined
    return decisions


class CachedTopicAuthorizer:
    """`realtime.topics.TopicAuthorizer` backed by the access policy, cached per user in Redis.

    A cached decision is dropped whenever anything it was made from changes (memberships,
    the user's type, roles or active flag), and a decision made while such a drop ran is
    not cached (the epoch guarding its key, apps/common/cache.py), so a cached "1" never outlives
    the access it records.
    Decisions missing from the cache are made together (`topic_allowed_many`): those of one
    loop tick, and those that arrive while a batch is being decided (`Coalescer`).
    """

    def __init__(self) -> None:
        self._batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Coalescer[Request, bool]] = (
            weakref.WeakKeyDictionary()
        )

    async def allowed(self, viewer: Viewer, topic: Topic) -> bool:
        if topic.family == topics.SYSTEM:
            return True
        if topic.family == topics.NOTIFICATIONS:
            return topic.entity_id == viewer.user_id
        key = keys.user_topic_access(viewer.user_id)
        try:
            cached = await tick_pipeline(get_redis()).execute("HGET", key, topic.name)
        except redis.RedisError:
            cached = None
        if cached is not None:
            return bool(cached == "1")
        loop = asyncio.get_running_loop()
        batcher = self._batchers.get(loop)
        if batcher is None:
            batcher = self._batchers[loop] = Coalescer(_decide_many)
        return await batcher.submit((viewer.user_id, topic))


async def _decide_many(requests: list[Request]) -> list[bool]:
    """Decide from PostgreSQL and cache the decisions (unless a drop ran since the epoch was read)."""
    epoch = await current_epoch(*{keys.user_topic_access(uid) for uid, _ in requests})
    decisions = await sync_to_async(topic_allowed_many)(requests)
    # One fill per user, all of its topics' fields at once (a socket asks for several together).
    fields: dict[str, list[str]] = {}
    for (uid, topic), decision in zip(requests, decisions, strict=True):
        fields.setdefault(uid, []).extend((topic.name, "1" if decision else "0"))
    fills = [(keys.user_topic_access(uid), "field", values) for uid, values in fields.items()]
    # Not cached if a membership change's drop ran meanwhile: a decision may predate it.
    await afill_many(fills, settings.PERMISSIONS_CACHE_TTL_SECONDS, epoch)
    return decisions


def audit_holdings(holdings: Sequence[Holding]) -> Verdict:
    """`realtime.audit.Auditor`'s check, from PostgreSQL alone: one query for the sessions, the
    batched policy decisions (`topic_allowed_many`) for each distinct (user, topic) of the live ones.

    It also drops what an outage may have left stale in Redis for what it found gone: the
    cached session of each revoked session (a new socket with its token is then checked in
    PostgreSQL) and the cached access of each user who lost a topic (so a `subscribe` right
    after the `unsubscribed` is decided afresh, not from a "1" whose drop Redis refused).
    """
    live = session_expiries(session_ids=[holding.session_id for holding in holdings])
    requests = list(
        dict.fromkeys(
            (holding.user_id, topic)
            for holding in holdings
            if holding.session_id in live
            for topic in holding.topics
            if topic.family != topics.SYSTEM
        )
    )
    decisions = topic_allowed_many(requests) if requests else []
    denied = frozenset(
        (uid, topic.name) for (uid, topic), allowed in zip(requests, decisions, strict=True) if not allowed
    )
    stale = [keys.user_session(h.session_id) for h in holdings if h.session_id not in live]
    stale += [key for uid in sorted({uid for uid, _ in denied}) for key in access_cache_keys(uid)]
    if stale:
        drop_now(stale)
    return Verdict(sessions=live, denied=denied)


class PolicyAuditor:
    """`realtime.audit.Auditor` backed by PostgreSQL and the access policy (no cache read)."""

    async def audit(self, holdings: Sequence[Holding]) -> Verdict:
        return await sync_to_async(audit_holdings)(holdings)
