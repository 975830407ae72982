"""Writes of the messaging domain outside chat (chat itself lives in `realtime.chat`): system broadcasts,
conversations and their participants."""

import logging
import uuid
from typing import Any, Final

import redis
from asgiref.sync import sync_to_async
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Q, QuerySet

from apps.accounts.models import User
from apps.accounts.services import Principal
from apps.common import policy
from apps.common.access import access_changed, register_access_deleted
from apps.common.validation import invalid
from apps.common.visibility import not_found, property_staff_q
from apps.leasing.models import LeaseStatus
from apps.messaging import chat_notices
from apps.messaging.models import Conversation, ConversationParticipant
from apps.messaging.selectors import access_conversation
from apps.properties.models import Property
from realtime import connections, errors, topics
from realtime.errors import BAD_REQUEST, UNAVAILABLE, ProtocolError
from realtime.events import utc_now_iso
from realtime.history import RedisHistory
from realtime.runtime import Realtime

logger = logging.getLogger(__name__)

BROADCAST_EVENT = "broadcast"
PRIORITIES = ("low", "medium", "high")
DEFAULT_PRIORITY: Final = "medium"
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


async def abroadcast_send(
    *, sender_id: str, title: str, message: str, priority: str = DEFAULT_PRIORITY
) -> dict[str, Any]:
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
# properties they own or manage; an admin with anyone. Every write of participants below
# calls `access_changed` with the users it added or removed: their cached topic access and
# conversation ids are dropped after the commit and their sockets re-checked.

MAX_PARTICIPANTS = 50
CHAT = "chat.use"

CANNOT_START = "Your account type cannot start conversations."
NEED_SOMEONE_ELSE = "Name at least one participant other than yourself."
UNREACHABLE = "Some participants are not people you can message (a property you lease or manage links you)."
NOT_YOUR_PROPERTY = "Not one of the properties you lease or manage."
MANAGERS_ONLY = "Only the conversation's creator, its property's staff or an admin may change participants."
NOT_A_PARTICIPANT = "That user is not a participant of this conversation."


def _linked_properties(caller: Principal) -> QuerySet[Property]:
    """Properties that link the caller to others: leased (active), owned or managed."""
    return Property.objects.filter(
        policy.property_staff_q(caller) | policy.active_lease_tenant_q(caller, "units__leases__")
    )


def _reachable(caller: Principal, property_id: Any = None) -> QuerySet[User]:
    """Active users the caller may put in a conversation (optionally: through one property only)."""
    users = User.objects.filter(is_active=True)
    if policy.sees_all(caller, CHAT):
        return users
    properties = _linked_properties(caller)
    if property_id is not None:
        properties = properties.filter(pk=property_id)
    linked = properties.values("pk")
    staff = Q(owned_properties__in=linked) | Q(managed_property_links__property__in=linked)
    if policy.scope_of(caller, "tenants.view") <= policy.Scope.OWN:
        # Whoever sees tenant records only as their own (tenants) reaches staff, not other tenants.
        return users.filter(staff)
    tenants = Q(
        tenant_profiles__lease_links__lease__unit__property__in=linked,
        tenant_profiles__lease_links__lease__lease_status=LeaseStatus.ACTIVE,
    )
    return users.filter(staff | tenants)


def _require_reachable(caller: Principal, user_ids: set[str], property_id: Any, field: str) -> None:
    if _reachable(caller, property_id).filter(pk__in=user_ids).values("pk").distinct().count() != len(user_ids):
        raise invalid(field, UNREACHABLE)


@transaction.atomic
def conversation_create(
    *, caller: Principal, participant_ids: list[Any], subject: str | None = None, property_id: Any = None
) -> Conversation:
    """Start a conversation of the caller and the named users (deduplicated; the caller is added)."""
    policy.require(caller, CHAT, CANNOT_START)
    others = {str(user_id) for user_id in participant_ids} - {caller.user_id}
    if not others:
        raise invalid("participants", NEED_SOMEONE_ELSE)
    if len(others) >= MAX_PARTICIPANTS:
        raise invalid("participants", f"At most {MAX_PARTICIPANTS} participants.")
    if property_id is not None:
        properties = Property.objects.all() if policy.sees_all(caller, CHAT) else _linked_properties(caller)
        if not properties.filter(pk=property_id).exists():
            raise invalid("propertyId", NOT_YOUR_PROPERTY)
    _require_reachable(caller, others, property_id, "participants")
    conversation = Conversation.objects.create(subject=subject, property_id=property_id, created_by_id=caller.user_id)
    members = [caller.user_id, *sorted(others)]
    for user_id in members:
        ConversationParticipant.objects.create(conversation=conversation, user_id=user_id)
    access_changed(user_ids=members)
    return conversation


def _may_manage(caller: Principal, conversation: Conversation) -> bool:
    if policy.sees_all(caller, CHAT) or str(conversation.created_by_id) == caller.user_id:
        return True
    return (
        conversation.property_id is not None
        and Property.objects.filter(property_staff_q(caller), pk=conversation.property_id).exists()
    )


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
    participant = ConversationParticipant.objects.create(conversation=conversation, user_id=user_id)
    access_changed(user_ids={user_id})
    return participant


@transaction.atomic
def conversation_participant_remove(*, caller: Principal, conversation_id: Any, user_id: Any) -> None:
    """Remove a participant (creator, property staff or admin); anyone may remove themselves."""
    conversation = access_conversation(caller=caller, conversation_id=conversation_id)
    if str(user_id) != caller.user_id and not _may_manage(caller, conversation):
        raise ProtocolError(errors.FORBIDDEN, MANAGERS_ONLY)
    deleted, _ = ConversationParticipant.objects.filter(conversation=conversation, user_id=user_id).delete()
    if not deleted:
        raise not_found()
    access_changed(user_ids={user_id})


# The admin site's writes (the site has checked that the caller is an admin).


@transaction.atomic
def conversation_admin_save(*, conversation: Conversation) -> Conversation:
    """Save the conversation as the admin's form built it (its participants are saved apart)."""
    conversation.save()
    return conversation


@transaction.atomic
def conversation_admin_delete(*, conversation: Conversation) -> None:
    """Delete the conversation; its participants cascade and lose access (`access_changed`)."""
    users = list(ConversationParticipant.objects.filter(conversation=conversation).values_list("user_id", flat=True))
    conversation.delete()
    access_changed(user_ids=users)


@transaction.atomic
def conversation_participant_admin_save(*, participant: ConversationParticipant) -> ConversationParticipant:
    """Save a participant row from the admin; the old and the new user are re-checked."""
    previous_user_id = None
    if not participant._state.adding:
        previous_user_id = (
            ConversationParticipant.objects.filter(pk=participant.pk).values_list("user_id", flat=True).first()
        )
    participant.save()
    access_changed(user_ids={previous_user_id, participant.user_id})
    return participant


@transaction.atomic
def conversation_participant_admin_delete(*, participant: ConversationParticipant) -> None:
    """Remove a participant row from the admin; the user loses access after the commit."""
    participant.delete()
    access_changed(user_ids={participant.user_id})


register_access_deleted(ConversationParticipant, lambda participant: {participant.user_id})


# --- chat: one workflow per command, called by the socket command and the HTTP endpoint alike --
# The socket (`consumers/commands/chat.py`) and HTTP (`conversations_api.py`) only parse and
# render; who may write and in what order the stores are written is decided here, once.

CALLER_NOT_A_PARTICIPANT = "You are not a participant of this conversation."
CHAT_UNAVAILABLE = "Chat is not available on this server."
READ_NOT_RECORDED = "The read position could not be stored; nothing was marked. Retry."
READ_PARTLY_RECORDED = (
    "The read could not be completed: your read position moved, the messages' read marks did not. Retry to complete it."
)


def chat_service(realtime: Realtime) -> Any:
    """This process's `realtime.chat.ChatService`; `unavailable` when the server runs without chat."""
    if realtime.chat is None:
        raise ProtocolError(UNAVAILABLE, CHAT_UNAVAILABLE)
    return realtime.chat


def _directory(realtime: Realtime) -> Any:
    if realtime.directory is not None:
        return realtime.directory
    from apps.messaging.directory import ParticipantDirectory

    return ParticipantDirectory()


async def aconversation_require_participant(*, realtime: Realtime, conversation_id: str, user_id: str) -> list[str]:
    """The conversation's participants if `user_id` is one of them; else `forbidden` (CALLER_NOT_A_PARTICIPANT).

    The one participant check of the chat writes (send, read, typing) on both edges. A
    conversation that does not exist answers the same `forbidden`, so ids cannot be probed; an
    admin who is not a participant is refused too (admins may read history, not write).
    Participants come from the directory (PostgreSQL behind a cache that every access change
    drops); `achat_read`'s write re-checks membership in PostgreSQL itself.
    """
    participants: list[str] = await _directory(realtime).participants(conversation_id)
    if user_id not in participants:
        raise ProtocolError(errors.FORBIDDEN, CALLER_NOT_A_PARTICIPANT)
    return participants


async def achat_send(
    *,
    realtime: Realtime,
    conversation_id: str,
    sender_id: str,
    message: Any,
    client_message_id: Any,
    attachments: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    """`chat.send` / `POST /conversations/{id}/messages`: stored once per clientMessageId, then published."""
    participants = await aconversation_require_participant(
        realtime=realtime, conversation_id=conversation_id, user_id=sender_id
    )
    stored: dict[str, Any] = await chat_service(realtime).send(
        conversation_id=conversation_id,
        sender_id=sender_id,
        participants=participants,
        message=message,
        client_message_id=client_message_id,
        attachments=attachments,
    )
    chat_notices.message_sent(realtime, conversation_id=conversation_id, participants=participants, message=stored)
    return stored


async def achat_typing(*, realtime: Realtime, conversation_id: str, user_id: str) -> None:
    """`chat.typing`: the ephemeral event, for participants only."""
    await aconversation_require_participant(realtime=realtime, conversation_id=conversation_id, user_id=user_id)
    await chat_service(realtime).typing(conversation_id=conversation_id, user_id=user_id)


Position = tuple[str | None, Any]


@sync_to_async
def _move_read_position(conversation_id: str, user_id: str, message_id: str, read_at: Any) -> Position:
    """Sets the participant's read position in one transaction; returns the one it replaced.

    Membership is checked by the write itself (the row is locked), so a participant removed
    since the cached check is refused here, before anything else is written.
    """
    try:
        with transaction.atomic():
            row = (
                ConversationParticipant.objects.select_for_update()
                .filter(conversation_id=conversation_id, user_id=user_id)
                .values_list("pk", "last_read_message_id", "last_read_at")
                .first()
            )
            if row is None:
                raise ProtocolError(errors.FORBIDDEN, CALLER_NOT_A_PARTICIPANT)
            ConversationParticipant.objects.filter(pk=row[0]).update(
                last_read_message_id=message_id, last_read_at=read_at
            )
    except (OperationalError, InterfaceError) as exc:
        raise ProtocolError(UNAVAILABLE, READ_NOT_RECORDED) from exc
    return row[1], row[2]


@sync_to_async
def _restore_read_position(conversation_id: str, user_id: str, moved_to: Position, previous: Position) -> None:
    """Undoes `_move_read_position` unless the position moved again meanwhile (another device)."""
    ConversationParticipant.objects.filter(
        conversation_id=conversation_id,
        user_id=user_id,
        last_read_message_id=moved_to[0],
        last_read_at=moved_to[1],
    ).update(last_read_message_id=previous[0], last_read_at=previous[1])


async def achat_read(*, realtime: Realtime, conversation_id: str, reader_id: str, message_id: str) -> dict[str, Any]:
    """`chat.read` / `POST /conversations/{id}/read`: the reader's position moves to `message_id`;
    returns `{readAt, lastReadMessageId}`.

    Order, so that an `unavailable` answer means nothing was changed and no one was told:
    1. the participant check, then the message must be in the conversation (`not_found`);
    2. PostgreSQL: the read position (the source of unread counts), membership re-checked;
    3. MongoDB: the per-message `isRead`/`readAt` of 1:1 conversations, with the same time;
       if that fails, the position of step 2 is put back and `unavailable` is raised;
    4. only then `chat.read` is announced, through the chat's durable path (a Redis outage delays it).
    If step 3 fails and step 2 cannot be undone either (PostgreSQL gone too), the answer says so
    (READ_PARTLY_RECORDED): a retry completes it.
    """
    await aconversation_require_participant(realtime=realtime, conversation_id=conversation_id, user_id=reader_id)
    chat = chat_service(realtime)
    oid = str(await chat.require_message(conversation_id=conversation_id, message_id=message_id))
    read_at = chat.read_time()
    previous = await _move_read_position(conversation_id, reader_id, oid, read_at)
    try:
        marked: dict[str, Any] = await chat.mark_read(
            conversation_id=conversation_id, reader_id=reader_id, message_id=oid, read_at=read_at, publish=False
        )
    except BaseException as exc:
        try:
            await _restore_read_position(conversation_id, reader_id, (oid, read_at), previous)
        except Exception:  # PostgreSQL gone too: the position stays ahead; a retry converges
            logger.warning("chat.read: position of %s in %s not restored", reader_id, conversation_id, exc_info=True)
            if isinstance(exc, Exception):  # say what was written, not "nothing"
                raise ProtocolError(UNAVAILABLE, READ_PARTLY_RECORDED) from exc
        raise
    await chat.publish_read(
        conversation_id=conversation_id, reader_id=reader_id, message_id=oid, read_at=marked["readAt"]
    )
    try:
        await chat_notices.aconversation_read(realtime, conversation_id=conversation_id, reader_id=reader_id)
    except (redis.RedisError, ProtocolError):  # the read is stored; the chat notification stays unread
        logger.warning("chat.read: chat notification of %s in %s not cleared", reader_id, conversation_id)
    return marked
