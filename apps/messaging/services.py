"""Writes of the messaging domain outside chat (chat itself lives in `realtime.chat`): system broadcasts,
conversations and their participants."""

import logging
import uuid
from typing import Any

import redis
from django.db import transaction
from django.db.models import Q, QuerySet

from apps.accounts.models import User
from apps.accounts.services import Principal
from apps.common.visibility import not_found, property_staff_q
from apps.leasing.models import LeaseStatus
from apps.messaging.models import Conversation, ConversationParticipant
from apps.messaging.selectors import access_conversation
from apps.messaging.topic_access import topic_access_drop
from apps.properties.models import Property
from realtime import connections, errors, topics
from realtime.errors import BAD_REQUEST, UNAVAILABLE, ProtocolError
from realtime.events import utc_now_iso
from realtime.history import RedisHistory

logger = logging.getLogger(__name__)

BROADCAST_EVENT = "broadcast"
PRIORITIES = ("low", "medium", "high")
DEFAULT_PRIORITY = "medium"
TITLE_MAX_LENGTH = 200
MESSAGE_MAX_LENGTH = 5000

BAD_PRIORITY = "priority must be one of: low, medium, high."
EMPTY_BROADCAST = "A broadcast needs a title (at most 200 characters) and a message (at most 5,000)."
BROADCAST_UNAVAILABLE = "Redis is unavailable; the broadcast was not sent. Retry shortly."


def _history() -> RedisHistory:
    config = connections.current_settings()
    return RedisHistory(
        connections.get_redis(),
        max_events=config.history_max_events,
        max_age_seconds=config.history_max_age_seconds,
    )


async def abroadcast_send(*, sender_id: str, title: str, message: str, priority: str = DEFAULT_PRIORITY) -> dict[str, Any]:
    """Publish a `broadcast` event on `system:broadcasts` to every connected user; returns the frame as sent.

    The event is stored in the topic's history first, so it carries an offset and a client
    that reconnects with `since` recovers it. Its data: `{id, title, message, priority,
    sentBy, sentAt}`; `sentAt` is also the frame's `ts`. Precondition: the caller checked
    that the sender is an admin. Raises `unavailable` when Redis is down; a timeout after
    Redis ran the publish cannot be told apart, so a retry may deliver twice (under a new id).
    """
    title, message = title.strip(), message.strip()
    if priority not in PRIORITIES:
        raise ProtocolError(BAD_REQUEST, BAD_PRIORITY)
    if not title or not message or len(title) > TITLE_MAX_LENGTH or len(message) > MESSAGE_MAX_LENGTH:
        raise ProtocolError(BAD_REQUEST, EMPTY_BROADCAST)
    sent_at = utc_now_iso()
    data = {
        "id": str(uuid.uuid4()),
        "title": title,
        "message": message,
        "priority": priority,
        "sentBy": str(sender_id),
        "sentAt": sent_at,
    }
    try:
        frame = await _history().publish(topics.SYSTEM_BROADCASTS, BROADCAST_EVENT, data, ts=sent_at)
    except redis.RedisError as exc:
        logger.warning("broadcast %s by %s not sent: Redis unavailable (%r)", data["id"], sender_id, exc)
        raise ProtocolError(UNAVAILABLE, BROADCAST_UNAVAILABLE) from exc
    logger.info("broadcast %s sent by %s at offset %s", data["id"], sender_id, frame["offset"])
    return frame


# --- conversations and participants ------------------------------------------------------
# Who may talk to whom: a tenant with the owner and managers of a property they lease
# (active lease); a landlord or manager with the owner, managers and active tenants of the
# properties they own or manage; an admin with anyone. The socket learns of membership
# changes through apps/messaging/signals.py (cached topic access dropped on commit).

MAX_PARTICIPANTS = 50
CONVERSATION_STARTERS = frozenset({"tenant", "landlord", "property_manager"})

CANNOT_START = "Your account type cannot start conversations."
NEED_SOMEONE_ELSE = "Name at least one participant other than yourself."
UNREACHABLE = "Some participants are not people you can message (a property you lease or manage links you)."
NOT_YOUR_PROPERTY = "Not one of the properties you lease or manage."
MANAGERS_ONLY = "Only the conversation's creator, its property's staff or an admin may change participants."
NOT_A_PARTICIPANT = "That user is not a participant of this conversation."


def topic_access_changed(*, user_ids: set[Any]) -> None:
    """Who may see what changed for these users: after the current transaction commits, drop their
    cached topic decisions and have every process re-check their sockets' subscriptions.

    Called by the services that change ownership, lease status or membership, with the old and
    the new users; nothing happens if the transaction rolls back.
    """
    ids = {str(user_id) for user_id in user_ids if user_id is not None}
    if ids:
        transaction.on_commit(lambda: topic_access_drop(user_ids=ids))


def _invalid(field: str, reason: str) -> ProtocolError:
    return ProtocolError(errors.BAD_REQUEST, reason, http_status=422, fields=[{"field": field, "reason": reason}])


def _linked_properties(caller: Principal) -> QuerySet[Property]:
    """Properties that link the caller to others: leased (active) for tenants, owned or managed for staff."""
    if caller.user_type == "tenant":
        return Property.objects.filter(
            units__leases__lease_status=LeaseStatus.ACTIVE,
            units__leases__tenant_links__tenant__user_id=caller.user_id,
        )
    return Property.objects.filter(property_staff_q(caller))


def _reachable(caller: Principal, property_id: Any = None) -> QuerySet[User]:
    """Active users the caller may put in a conversation (optionally: through one property only)."""
    users = User.objects.filter(is_active=True)
    if caller.is_admin:
        return users
    properties = _linked_properties(caller)
    if property_id is not None:
        properties = properties.filter(pk=property_id)
    linked = properties.values("pk")
    staff = Q(owned_properties__in=linked) | Q(managed_property_links__property__in=linked)
    if caller.user_type == "tenant":
        return users.filter(staff)
    tenants = Q(
        tenant_profiles__lease_links__lease__unit__property__in=linked,
        tenant_profiles__lease_links__lease__lease_status=LeaseStatus.ACTIVE,
    )
    return users.filter(staff | tenants)


def _require_reachable(caller: Principal, user_ids: set[str], property_id: Any, field: str) -> None:
    if _reachable(caller, property_id).filter(pk__in=user_ids).values("pk").distinct().count() != len(user_ids):
        raise _invalid(field, UNREACHABLE)


@transaction.atomic
def conversation_create(
    *, caller: Principal, participant_ids: list[Any], subject: str | None = None, property_id: Any = None
) -> Conversation:
    """Start a conversation of the caller and the named users (deduplicated; the caller is added)."""
    if not (caller.is_admin or caller.user_type in CONVERSATION_STARTERS):
        raise ProtocolError(errors.FORBIDDEN, CANNOT_START)
    others = {str(user_id) for user_id in participant_ids} - {caller.user_id}
    if not others:
        raise _invalid("participants", NEED_SOMEONE_ELSE)
    if len(others) >= MAX_PARTICIPANTS:
        raise _invalid("participants", f"At most {MAX_PARTICIPANTS} participants.")
    if property_id is not None:
        properties = Property.objects.all() if caller.is_admin else _linked_properties(caller)
        if not properties.filter(pk=property_id).exists():
            raise _invalid("propertyId", NOT_YOUR_PROPERTY)
    _require_reachable(caller, others, property_id, "participants")
    conversation = Conversation.objects.create(subject=subject, property_id=property_id, created_by_id=caller.user_id)
    for user_id in [caller.user_id, *sorted(others)]:
        ConversationParticipant.objects.create(conversation=conversation, user_id=user_id)
    return conversation


def _may_manage(caller: Principal, conversation: Conversation) -> bool:
    if caller.is_admin or str(conversation.created_by_id) == caller.user_id:
        return True
    return conversation.property_id is not None and Property.objects.filter(
        property_staff_q(caller), pk=conversation.property_id
    ).exists()


@transaction.atomic
def conversation_participant_add(*, caller: Principal, conversation_id: Any, user_id: Any) -> ConversationParticipant:
    """Add someone the caller may message (creator, property staff or admin); adding twice is a no-op."""
    conversation = access_conversation(caller=caller, conversation_id=conversation_id)
    if not _may_manage(caller, conversation):
        raise ProtocolError(errors.FORBIDDEN, MANAGERS_ONLY)
    existing = ConversationParticipant.objects.filter(conversation=conversation, user_id=user_id).first()
    if existing is not None:
        return existing
    _require_reachable(caller, {str(user_id)}, None, "userId")
    return ConversationParticipant.objects.create(conversation=conversation, user_id=user_id)


@transaction.atomic
def conversation_participant_remove(*, caller: Principal, conversation_id: Any, user_id: Any) -> None:
    """Remove a participant (creator, property staff or admin); anyone may remove themselves."""
    conversation = access_conversation(caller=caller, conversation_id=conversation_id)
    if str(user_id) != caller.user_id and not _may_manage(caller, conversation):
        raise ProtocolError(errors.FORBIDDEN, MANAGERS_ONLY)
    deleted, _ = ConversationParticipant.objects.filter(conversation=conversation, user_id=user_id).delete()
    if not deleted:
        raise not_found()
