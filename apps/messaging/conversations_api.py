"""HTTP endpoints of conversations, chat history and notifications for apps that start cold.

The same services as the socket (`realtime.chat.ChatService`, `realtime.notifications.
NotificationService`, the participant directory), taken from this process's realtime core,
so a message posted here is stored once per `clientMessageId` and goes out live as
`chat.message` to every subscribed socket, exactly like `chat.send`.
"""

import asyncio
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from asgiref.sync import sync_to_async
from django.http import HttpRequest
from ninja import Query, Router, Schema, Status
from pydantic import Field, StringConstraints, model_validator

from apps.accounts.services import Principal
from apps.common.http import token_auth
from apps.common.pagination import PageParams
from apps.messaging import selectors, services
from apps.messaging.models import Conversation
from realtime import errors
from realtime.chat_schema import MAX_ATTACHMENTS, MAX_CLIENT_MESSAGE_ID_CHARS, MAX_MESSAGE_CHARS
from realtime.errors import ProtocolError
from realtime.runtime import Realtime, get_realtime

router = Router(tags=["messaging"], auth=token_auth)

ObjectIdStr = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{24}$")]

NOT_A_PARTICIPANT = services.CALLER_NOT_A_PARTICIPANT
CHAT_UNAVAILABLE = services.CHAT_UNAVAILABLE
NOTIFICATIONS_UNAVAILABLE = "Notifications are not available on this server."
EMPTY_MESSAGE = "A message needs text or at least one attachment."


def _caller(request: HttpRequest) -> Principal:
    return request.auth  # type: ignore[attr-defined]


def _chat(realtime: Realtime) -> Any:
    return services.chat_service(realtime)


# --- conversations -------------------------------------------------------------------------


class ParticipantOut(Schema):
    userId: UUID
    firstName: str
    lastName: str
    userType: str
    joinedAt: datetime | None
    lastReadMessageId: str | None
    lastReadAt: datetime | None


class LastMessageOut(Schema):
    id: str
    senderId: str
    message: str | None = Field(description="null when deleted")
    attachmentCount: int
    createdAt: str | None
    isDeleted: bool


class ConversationOut(Schema):
    id: UUID
    subject: str | None
    propertyId: UUID | None
    createdBy: UUID | None
    createdAt: datetime | None
    updatedAt: datetime | None
    participants: list[ParticipantOut]
    unreadCount: int = Field(
        description="Messages after my last-read position, sent by others, not deleted (at most 999)."
    )
    lastMessage: LastMessageOut | None = Field(
        None, description="The newest message (a deleted one as a tombstone); null when there is none."
    )


class ConversationPage(Schema):
    items: list[ConversationOut]
    count: int
    limit: int
    offset: int
    nextOffset: int | None


class ConversationIn(Schema):
    participants: list[UUID] = Field(min_length=1, max_length=services.MAX_PARTICIPANTS)
    subject: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)] | None = None
    propertyId: UUID | None = None


class ParticipantIn(Schema):
    userId: UUID


def _last_message_out(message: dict[str, Any] | None) -> dict[str, Any] | None:
    if message is None:
        return None
    return {
        "id": message["id"],
        "senderId": message["senderId"],
        "message": message["message"],
        "attachmentCount": len(message.get("attachments") or []),
        "createdAt": message["createdAt"],
        "isDeleted": message["isDeleted"],
    }


def _conversation_out(
    conversation: Conversation, unread: int, last_message: dict[str, Any] | None = None
) -> dict[str, Any]:
    participants = sorted(conversation.participants.all(), key=lambda p: (p.joined_at, str(p.pk)))
    return {
        "id": conversation.pk,
        "lastMessage": _last_message_out(last_message),
        "subject": conversation.subject,
        "propertyId": conversation.property_id,
        "createdBy": conversation.created_by_id,
        "createdAt": conversation.created_at,
        "updatedAt": conversation.updated_at,
        "unreadCount": unread,
        "participants": [
            {
                "userId": p.user_id,
                "firstName": p.user.first_name,
                "lastName": p.user.last_name,
                "userType": p.user.user_type,
                "joinedAt": p.joined_at,
                "lastReadMessageId": p.last_read_message_id,
                "lastReadAt": p.last_read_at,
            }
            for p in participants
        ],
    }


async def _with_unread(caller: Principal, conversations: list[Conversation]) -> list[dict[str, Any]]:
    """Each conversation in wire form with the caller's unread count (0 where they do not take part)
    and its newest message (the caller may read each one's history: they are listed for them)."""
    mine = {c.pk: c for c in conversations if any(str(p.user_id) == caller.user_id for p in c.participants.all())}
    counts, last = await asyncio.gather(
        selectors.aconversation_unread_counts(
            user_id=caller.user_id,
            positions={str(pk): c.my_last_read for pk, c in mine.items()},  # type: ignore[attr-defined]
        ),
        selectors.aconversation_last_messages(conversation_ids=[str(c.pk) for c in conversations]),
    )
    return [_conversation_out(c, counts.get(str(c.pk), 0), last.get(str(c.pk))) for c in conversations]


@router.get("/conversations", response=ConversationPage)
async def conversation_list(request: HttpRequest, page: Query[PageParams]) -> dict[str, Any]:
    """My conversations, most recently changed first, each with my unread count and its newest message."""
    caller = _caller(request)

    def read() -> tuple[int, list[Conversation]]:
        conversations = selectors.conversation_list_for_user(user_id=caller.user_id)
        return conversations.count(), list(conversations[page.offset : page.offset + page.limit])

    count, rows = await sync_to_async(read)()
    following = page.offset + len(rows)
    return {
        "items": await _with_unread(caller, rows),
        "count": count,
        "limit": page.limit,
        "offset": page.offset,
        "nextOffset": following if following < count else None,
    }


@router.post("/conversations", response={201: ConversationOut})
async def conversation_create(request: HttpRequest, payload: ConversationIn) -> Status:
    """Start a conversation (a tenant: with the owner or managers of a property they lease)."""
    caller = _caller(request)

    def create() -> Conversation:
        created = services.conversation_create(
            caller=caller,
            participant_ids=payload.participants,
            subject=payload.subject,
            property_id=payload.propertyId,
        )
        return selectors.access_conversation(caller=caller, conversation_id=created.pk)

    conversation = await sync_to_async(create)()
    return Status(201, _conversation_out(conversation, 0))


async def _access(caller: Principal, conversation_id: UUID) -> Conversation:
    return await sync_to_async(selectors.access_conversation)(caller=caller, conversation_id=conversation_id)


@router.get("/conversations/{conversation_id}", response=ConversationOut)
async def conversation_get(request: HttpRequest, conversation_id: UUID) -> dict[str, Any]:
    caller = _caller(request)
    return (await _with_unread(caller, [await _access(caller, conversation_id)]))[0]


@router.get("/conversations/{conversation_id}/participants", response=list[ParticipantOut])
async def conversation_participant_list(request: HttpRequest, conversation_id: UUID) -> list[dict[str, Any]]:
    conversation = await _access(_caller(request), conversation_id)
    return _conversation_out(conversation, 0)["participants"]


@router.post("/conversations/{conversation_id}/participants", response={201: list[ParticipantOut]})
async def conversation_participant_add(request: HttpRequest, conversation_id: UUID, payload: ParticipantIn) -> Status:
    """Add a participant (the creator, the property's staff or an admin); returns the participants."""
    caller = _caller(request)

    def add() -> Conversation:
        services.conversation_participant_add(caller=caller, conversation_id=conversation_id, user_id=payload.userId)
        return selectors.access_conversation(caller=caller, conversation_id=conversation_id)

    return Status(201, _conversation_out(await sync_to_async(add)(), 0)["participants"])


@router.delete("/conversations/{conversation_id}/participants/{user_id}", response={204: None})
async def conversation_participant_remove(request: HttpRequest, conversation_id: UUID, user_id: UUID) -> Status:
    """Remove a participant (the creator, the property's staff or an admin; anyone may leave)."""
    await sync_to_async(services.conversation_participant_remove)(
        caller=_caller(request), conversation_id=conversation_id, user_id=user_id
    )
    return Status(204, None)


# --- messages ------------------------------------------------------------------------------


class AttachmentSchema(Schema):
    fileName: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    fileSize: int = Field(ge=0)
    mimeType: Annotated[str, StringConstraints(min_length=3, max_length=255)]
    url: Annotated[str, StringConstraints(min_length=1, max_length=2048)]


class MessageOut(Schema):
    id: str
    conversationId: str
    senderId: str
    recipientId: str | None
    message: str | None
    attachments: list[AttachmentSchema]
    isRead: bool
    readAt: str | None
    createdAt: str | None
    updatedAt: str | None
    isDeleted: bool
    deletedAt: str | None
    clientMessageId: str | None
    offset: str | None


class MessagePage(Schema):
    messages: list[MessageOut] = Field(description="Oldest first.")
    hasMore: bool


class MessageIn(Schema):
    message: Annotated[str, StringConstraints(max_length=MAX_MESSAGE_CHARS)] = ""
    clientMessageId: Annotated[str, StringConstraints(min_length=1, max_length=MAX_CLIENT_MESSAGE_ID_CHARS)]
    attachments: list[AttachmentSchema] | None = Field(None, max_length=MAX_ATTACHMENTS)

    @model_validator(mode="after")
    def _not_empty(self) -> "MessageIn":
        if not self.message.strip() and not self.attachments:
            raise ValueError(EMPTY_MESSAGE)
        return self


class HistoryParams(Schema):
    before: ObjectIdStr | None = Field(None, description="A message id: the page ends just before it.")
    limit: int = Field(50, ge=1, le=100)


class ReadIn(Schema):
    messageId: ObjectIdStr


class ReadOut(Schema):
    readAt: str
    lastReadMessageId: str
    unreadCount: int


@router.get("/conversations/{conversation_id}/messages", response=MessagePage)
async def conversation_message_list(
    request: HttpRequest, conversation_id: UUID, params: Query[HistoryParams]
) -> dict[str, Any]:
    """A page of history (`ChatService.history`): newest page first time, then older with `before`."""
    await _access(_caller(request), conversation_id)
    chat = _chat(await get_realtime())
    page: dict[str, Any] = await chat.history(
        conversation_id=str(conversation_id), before=params.before, limit=params.limit
    )
    return page


@router.post("/conversations/{conversation_id}/messages", response={201: MessageOut})
async def conversation_message_send(request: HttpRequest, conversation_id: UUID, payload: MessageIn) -> Status:
    """Send as `chat.send` does: stored once per clientMessageId (a retry returns the same message) and
    published live as `chat.message`."""
    message = await services.achat_send(
        realtime=await get_realtime(),
        conversation_id=str(conversation_id),
        sender_id=_caller(request).user_id,
        message=payload.message,
        client_message_id=payload.clientMessageId,
        attachments=[a.model_dump() for a in payload.attachments] if payload.attachments is not None else None,
    )
    return Status(201, message)


@router.post("/conversations/{conversation_id}/read", response=ReadOut)
async def conversation_read(request: HttpRequest, conversation_id: UUID, payload: ReadIn) -> dict[str, Any]:
    """Mark read up to a message (as `chat.read`: publishes it live and stores my read position)."""
    caller = _caller(request)
    marked = await services.achat_read(
        realtime=await get_realtime(),
        conversation_id=str(conversation_id),
        reader_id=caller.user_id,
        message_id=payload.messageId,
    )
    counts = await selectors.aconversation_unread_counts(
        user_id=caller.user_id, positions={str(conversation_id): marked["lastReadMessageId"]}
    )
    return {**marked, "unreadCount": counts[str(conversation_id)]}


# --- notifications -------------------------------------------------------------------------


class NotificationAction(Schema):
    label: str | None
    url: str | None
    type: str | None


class NotificationOut(Schema):
    id: str
    userId: str
    type: str | None
    title: str | None
    message: str | None
    referenceId: str | None
    referenceType: str | None
    isRead: bool
    createdAt: str | None
    expiresAt: str | None
    priority: str
    actions: list[NotificationAction]


class NotificationPage(Schema):
    notifications: list[NotificationOut] = Field(description="Newest first.")
    hasMore: bool


class NotificationParams(Schema):
    unreadOnly: bool = False
    before: ObjectIdStr | None = Field(None, description="A notification id: the page ends just before it.")
    limit: int = Field(50, ge=1, le=100)


class NotificationReadIn(Schema):
    ids: list[ObjectIdStr] | None = Field(None, max_length=500)
    all: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> "NotificationReadIn":
        if (self.ids is None) == (not self.all):
            raise ValueError("give either ids or all: true")
        return self


class UnreadOut(Schema):
    unread: int


async def _notifications() -> Any:
    realtime = await get_realtime()
    if realtime.notifications is None:
        raise ProtocolError(errors.UNAVAILABLE, NOTIFICATIONS_UNAVAILABLE)
    return realtime.notifications


@router.get("/notifications", response=NotificationPage)
async def notification_list(request: HttpRequest, params: Query[NotificationParams]) -> dict[str, Any]:
    """My unexpired notifications, newest first."""
    service = await _notifications()
    return await service.list(
        _caller(request).user_id, unread_only=params.unreadOnly, before=params.before, limit=params.limit
    )


@router.post("/notifications/read", response=UnreadOut)
async def notification_mark_read(request: HttpRequest, payload: NotificationReadIn) -> dict[str, int]:
    """Mark some (`ids`) or all (`all: true`) of my notifications read; publishes `notification.read`."""
    service = await _notifications()
    unread = await service.mark_read(_caller(request).user_id, ids=payload.ids, all=payload.all)
    return {"unread": unread}


@router.get("/notifications/unread-count", response=UnreadOut)
async def notification_unread_count(request: HttpRequest) -> dict[str, int]:
    service = await _notifications()
    return {"unread": await service.unread_count(_caller(request).user_id)}
