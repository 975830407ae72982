"""Chat messages in MongoDB `chat_messages`: idempotent send, edit, soft delete, history, read marks.

Stored first, published second (PROTOCOL.md "Events and offsets"): a `chat.message` that could not
go out stays pending and goes out later (`publish_pending`, or a retried send): at least once.
Fields beyond the seed's: `clientMessageId` (idempotency key), `offset` (of the published
`chat.message`) and `publishClaimUntil` (epoch ms; present only while unpublished; an unexpired
claim names the process publishing it).
"""

import contextlib
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Protocol

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, ExecutionTimeout, PyMongoError, WriteError
from redis.exceptions import RedisError

from realtime import topics
from realtime.batching import Batcher, InsertOnce
from realtime.chat_schema import (
    BAD_BEFORE,
    BAD_CONVERSATION_ID,
    BAD_MESSAGE_ID,
    BAD_USER_ID,
    DEFAULT_HISTORY_LIMIT,
    MESSAGE_EMPTY,
    bad_request,
    event_data,
    iso,
    parse_attachments,
    parse_client_message_id,
    parse_limit,
    parse_object_id,
    parse_participants,
    parse_text,
    require_id,
    to_message,
)
from realtime.documents import CHAT_MESSAGES
from realtime.errors import CONFLICT, FORBIDDEN, NOT_FOUND, UNAVAILABLE, ProtocolError

logger = logging.getLogger(__name__)

# How long a process may take to publish a claimed event before another one takes over.
PUBLISH_CLAIM_MS = 30_000
IDEMPOTENCY_INDEX = "conversationId_1_senderId_1_clientMessageId_1"
PENDING_INDEX = "publishClaimUntil_1"

NOT_A_PARTICIPANT = "the sender is not a participant of this conversation"
MESSAGE_NOT_FOUND = "no such message"
NOT_IN_CONVERSATION = "no such message in this conversation"
ONLY_SENDER_EDITS = "only the sender may edit a message"
ONLY_SENDER_DELETES = "only the sender may delete a message"
MESSAGE_DELETED = "the message is deleted"
SEND_UNAVAILABLE = "the message store is unavailable; retry with the same clientMessageId"
STORE_UNAVAILABLE = "the message store is unavailable"
NOT_STORED = "the message could not be stored; retry with the same clientMessageId"
TYPING_UNAVAILABLE = "typing indicators are unavailable right now"

_NOT_TRUE = {"$nin": [True, 1]}  # nx-27017 reads a $set boolean back as 1, and its $ne misses absent fields


class Publisher(Protocol):
    """Fan-out to every server process; both methods raise (e.g. redis.ConnectionError) when Redis is down."""

    async def publish(self, topic: str, event: str, data: dict[str, Any]) -> dict[str, Any]:
        """Appends the event to the topic's history, publishes it, returns the frame (with its `offset`)."""
        ...

    async def publish_many(self, events: list[tuple[str, str, Any]]) -> "list[dict[str, Any] | Exception]":
        """`publish` for each (topic, event, data) at once; one frame or exception per event, in order."""
        ...

    async def publish_ephemeral(self, topic: str, event: str, data: dict[str, Any]) -> object:
        """Publishes an event that is never stored and carries no offset (what it returns is unused)."""
        ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


@contextlib.contextmanager
def _store_errors(message: str = STORE_UNAVAILABLE) -> Iterator[None]:
    """Turns "MongoDB cannot be reached" into the protocol's `unavailable`; other failures stay bugs."""
    try:
        yield
    except (ConnectionFailure, ExecutionTimeout) as exc:
        raise ProtocolError(UNAVAILABLE, message) from exc


class ChatService:
    """The chat commands over one database and one publisher; one instance per event loop.

    Idempotency of `send` across batches relies on `ensure_indexes()` having run once.
    """

    def __init__(
        self,
        db: "AsyncDatabase[Any]",
        publisher: Publisher,
        *,
        clock: Callable[[], datetime] = _utcnow,
        batch_max_size: int = 500,
    ) -> None:
        self._messages = db[CHAT_MESSAGES]
        self._publisher = publisher
        self._clock = clock
        key = ("conversationId", "senderId", "clientMessageId")
        self._inserter = InsertOnce(self._messages, key, max_size=batch_max_size)
        # `chat.message` events of the sends stored in one flush: one pipelined publish.
        self._announcements: Batcher[tuple[str, str, Any], dict[str, Any]] = Batcher(
            publisher.publish_many, max_size=batch_max_size
        )
        # Offsets of published messages, written in one bulk_write per loop tick.
        self._offsets: Batcher[tuple[ObjectId, str], None] = Batcher(self._record_offsets, max_size=batch_max_size)

    def _now(self) -> datetime:
        """Now in UTC, cut to milliseconds as BSON stores it, so a reply equals a later read."""
        now = self._clock().astimezone(UTC)
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    def _now_ms(self) -> int:
        return int(self._clock().timestamp() * 1000)

    async def ensure_indexes(self) -> list[str]:
        """Creates (idempotently) the unique idempotency index and the pending-event index; returns their names."""
        with _store_errors():
            return await self._messages.create_indexes(
                [
                    IndexModel(
                        [("conversationId", ASCENDING), ("senderId", ASCENDING), ("clientMessageId", ASCENDING)],
                        name=IDEMPOTENCY_INDEX,
                        unique=True,
                        partialFilterExpression={"clientMessageId": {"$type": "string"}},
                    ),
                    IndexModel([("publishClaimUntil", ASCENDING)], name=PENDING_INDEX, sparse=True),
                ]
            )

    async def aclose(self) -> None:
        """Writes the sends and offsets already queued; call before closing the MongoDB client."""
        await self._inserter.aclose()
        await self._announcements.aclose()
        await self._offsets.aclose()

    async def _record_offsets(self, items: list[tuple[ObjectId, str]]) -> list[None]:
        await self._messages.bulk_write(
            [
                UpdateOne({"_id": oid}, {"$set": {"offset": offset}, "$unset": {"publishClaimUntil": ""}})
                for oid, offset in items
            ],
            ordered=False,
        )
        return [None] * len(items)

    async def _record_offset(self, oid: ObjectId, offset: str) -> None:
        try:
            await self._offsets.submit((oid, offset))
        except PyMongoError:  # at least once: after the claim expires it is published again
            logger.warning("chat: message %s published but its offset not recorded", oid, exc_info=True)

    async def send(
        self,
        *,
        conversation_id: str,
        sender_id: str,
        participants: list[str],
        message: str,
        client_message_id: str,
        attachments: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Stores the message once per (conversation, sender, clientMessageId) and returns the stored one.

        A repeat returns the first message and publishes nothing, unless its `chat.message`
        event never went out, in which case it goes out now. A Redis failure after storing
        still returns the message (`offset` None: pending). Precondition: the caller checked
        that `sender_id` may write to the conversation. Text is stored stripped.
        """
        require_id(conversation_id, BAD_CONVERSATION_ID)
        require_id(sender_id, BAD_USER_ID)
        members = parse_participants(participants)
        parse_client_message_id(client_message_id)
        files = parse_attachments(attachments)
        text = parse_text(message)
        if not text and not files:
            raise bad_request(MESSAGE_EMPTY)
        if sender_id not in members:
            raise ProtocolError(FORBIDDEN, NOT_A_PARTICIPANT)
        now = self._now()
        doc: dict[str, Any] = {
            "_id": ObjectId(),
            "conversationId": conversation_id,
            "senderId": sender_id,
            "recipientId": next(p for p in members if p != sender_id) if len(members) == 2 else None,
            "message": text,
            "attachments": files,
            "isRead": False,
            "readAt": None,
            "createdAt": now,
            "updatedAt": now,
            "isDeleted": False,
            "deletedAt": None,
            "clientMessageId": client_message_id,
            # Born claimed by this process, so no other process publishes it meanwhile.
            "publishClaimUntil": self._now_ms() + PUBLISH_CLAIM_MS,
        }
        with _store_errors(SEND_UNAVAILABLE):
            try:
                stored, created = await self._inserter.insert(doc)
            except WriteError as exc:
                raise ProtocolError(UNAVAILABLE, NOT_STORED) from exc
        if created or ("offset" not in stored and await self._claim(stored["_id"])):
            stored = await self._announce(stored)
        return to_message(stored)

    async def _claim(self, message_id: ObjectId) -> bool:
        """Takes the right to publish an unpublished message whose previous claim expired."""
        now_ms = self._now_ms()
        try:
            result = await self._messages.update_one(
                {"_id": message_id, "offset": {"$exists": False}, "publishClaimUntil": {"$lte": now_ms}},
                {"$set": {"publishClaimUntil": now_ms + PUBLISH_CLAIM_MS}},
            )
        except PyMongoError:
            logger.warning("chat: could not claim message %s for publishing", message_id, exc_info=True)
            return False
        return result.modified_count == 1

    async def _announce(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Publishes `chat.message` for a claimed document and records its offset; on failure it stays pending."""
        try:
            frame = await self._announcements.submit(
                (topics.chat_messages(doc["conversationId"]), "chat.message", event_data(doc))
            )
        except Exception:  # the message is stored: any publish failure leaves it pending, never fails the send
            logger.warning("chat: message %s stored but not published; kept pending", doc["_id"], exc_info=True)
            with contextlib.suppress(PyMongoError):  # else the claim simply expires
                await self._messages.update_one(
                    {"_id": doc["_id"], "offset": {"$exists": False}}, {"$set": {"publishClaimUntil": 0}}
                )
            return doc
        published = {k: v for k, v in doc.items() if k != "publishClaimUntil"} | {"offset": frame.get("offset")}
        # Batched with the other sends of this loop tick: one bulk_write, not one update each.
        await self._record_offset(doc["_id"], published["offset"])
        return published

    async def publish_pending(self, *, limit: int = 100) -> int:
        """Publishes up to `limit` stored messages whose event has not gone out, oldest first; returns how many.

        Each is claimed first, so concurrent callers (several server processes) publish it
        once. Stops at the first publish failure (Redis still down).
        """
        with _store_errors():
            docs = (
                await self._messages.find({"publishClaimUntil": {"$lte": self._now_ms()}})
                .sort("_id", ASCENDING)
                .limit(limit)
                .to_list()
            )
        published = 0
        for doc in docs:
            if "offset" in doc or not await self._claim(doc["_id"]):
                continue
            if "offset" not in await self._announce(doc):
                break
            published += 1
        return published

    async def get(self, *, message_id: str) -> dict[str, Any] | None:
        """The stored message (a tombstone if deleted), or None when there is no such id."""
        oid = parse_object_id(message_id, BAD_MESSAGE_ID)
        with _store_errors():
            doc = await self._messages.find_one({"_id": oid})
        return to_message(doc) if doc else None

    async def _find_own(self, message_id: str, actor_id: str, refusal: str) -> dict[str, Any]:
        oid = parse_object_id(message_id, BAD_MESSAGE_ID)
        with _store_errors():
            doc: dict[str, Any] | None = await self._messages.find_one({"_id": oid})
        if doc is None:
            raise ProtocolError(NOT_FOUND, MESSAGE_NOT_FOUND)
        if doc["senderId"] != actor_id:
            raise ProtocolError(FORBIDDEN, refusal)
        return doc

    async def _publish_change(self, conversation_id: str, event: str, data: dict[str, Any]) -> None:
        """Publishes after the change is stored; a failure is logged, the change stays visible in history."""
        try:
            await self._publisher.publish(topics.chat_messages(conversation_id), event, data)
        except Exception:  # stored already: the command succeeded, only the live event is missing
            logger.warning(
                "chat: %s for conversation %s stored but not published", event, conversation_id, exc_info=True
            )

    async def edit(self, *, message_id: str, editor_id: str, message: str) -> dict[str, Any]:
        """Replaces the text of a live message (sender only) and publishes `chat.edited` with the message."""
        text = parse_text(message)
        doc = await self._find_own(message_id, editor_id, ONLY_SENDER_EDITS)
        if doc.get("isDeleted"):
            raise ProtocolError(CONFLICT, MESSAGE_DELETED)
        if not text and not doc.get("attachments"):
            raise bad_request(MESSAGE_EMPTY)
        with _store_errors():
            updated = await self._messages.find_one_and_update(
                {"_id": doc["_id"], "isDeleted": _NOT_TRUE},
                {"$set": {"message": text, "updatedAt": self._now()}},
                return_document=ReturnDocument.AFTER,
            )
        if updated is None:
            raise ProtocolError(CONFLICT, MESSAGE_DELETED)
        await self._publish_change(updated["conversationId"], "chat.edited", event_data(updated))
        return to_message(updated)

    async def delete(self, *, message_id: str, deleter_id: str) -> dict[str, Any]:
        """Soft-deletes (sender only) and publishes `chat.deleted` {id, conversationId, deletedAt}; returns {}.

        The text and attachments are cleared in storage too (privacy: nothing to restore).
        Deleting a deleted message returns {} and publishes nothing.
        """
        doc = await self._find_own(message_id, deleter_id, ONLY_SENDER_DELETES)
        if doc.get("isDeleted"):
            return {}
        now = self._now()
        with _store_errors():
            updated = await self._messages.find_one_and_update(
                {"_id": doc["_id"], "isDeleted": _NOT_TRUE},
                {"$set": {"isDeleted": True, "deletedAt": now, "message": "", "attachments": []}},
                return_document=ReturnDocument.AFTER,
            )
        if updated is not None:
            data = {"id": str(doc["_id"]), "conversationId": doc["conversationId"], "deletedAt": iso(now)}
            await self._publish_change(doc["conversationId"], "chat.deleted", data)
        return {}

    async def history(
        self, *, conversation_id: str, before: str | None = None, limit: int = DEFAULT_HISTORY_LIMIT
    ) -> dict[str, Any]:
        """Up to `limit` messages older than `before` (newest page when None), oldest first, and whether more exist."""
        require_id(conversation_id, BAD_CONVERSATION_ID)
        parse_limit(limit)
        query: dict[str, Any] = {"conversationId": conversation_id}
        with _store_errors():
            if before is not None:
                anchor = parse_object_id(before, BAD_BEFORE)
                if await self._messages.find_one({"_id": anchor, "conversationId": conversation_id}) is None:
                    raise ProtocolError(NOT_FOUND, NOT_IN_CONVERSATION)
                query["_id"] = {"$lt": anchor}
            docs = await self._messages.find(query).sort("_id", DESCENDING).limit(limit + 1).to_list()
        page = [to_message(doc) for doc in reversed(docs[:limit])]
        return {"messages": page, "hasMore": len(docs) > limit}

    def read_time(self) -> datetime:
        """The time a read mark made now carries (UTC, milliseconds, as `mark_read` stores it)."""
        return self._now()

    async def mark_read(
        self,
        *,
        conversation_id: str,
        reader_id: str,
        message_id: str,
        read_at: datetime | None = None,
        publish: bool = True,
    ) -> dict[str, Any]:
        """Marks the reader's unread messages up to `message_id` read and publishes `chat.read`.

        Only messages addressed to the reader (`recipientId`, 1:1 conversations) change; in
        groups the caller keeps the reader's position from `lastReadMessageId`. `read_at`
        (default now) lets a caller that records the position elsewhere first use the same
        time; with `publish=False` the caller publishes (`publish_read`) once all is stored.
        Marking is idempotent: a message already read keeps its first `readAt`.
        """
        require_id(conversation_id, BAD_CONVERSATION_ID)
        require_id(reader_id, BAD_USER_ID)
        oid = await self.require_message(conversation_id=conversation_id, message_id=message_id)
        now = read_at if read_at is not None else self._now()
        with _store_errors():
            await self._messages.update_many(
                {
                    "conversationId": conversation_id,
                    "_id": {"$lte": oid},
                    "recipientId": reader_id,
                    "isRead": _NOT_TRUE,
                },
                {"$set": {"isRead": True, "readAt": now}},
            )
        read_at_iso = iso(now)
        assert read_at_iso is not None  # `now` is a time
        if publish:
            await self.publish_read(
                conversation_id=conversation_id, reader_id=reader_id, message_id=str(oid), read_at=read_at_iso
            )
        return {"readAt": read_at_iso, "lastReadMessageId": str(oid)}

    async def require_message(self, *, conversation_id: str, message_id: str) -> ObjectId:
        """The message's ObjectId if it is in the conversation; `not_found` otherwise (writes nothing)."""
        oid = parse_object_id(message_id, BAD_MESSAGE_ID)
        with _store_errors():
            if await self._messages.find_one({"_id": oid, "conversationId": conversation_id}, {"_id": 1}) is None:
                raise ProtocolError(NOT_FOUND, NOT_IN_CONVERSATION)
        return oid

    async def publish_read(self, *, conversation_id: str, reader_id: str, message_id: str, read_at: str) -> None:
        """Publishes `chat.read` {conversationId, userId, messageId, readAt}; a failure is logged, not raised."""
        data = {"conversationId": conversation_id, "userId": reader_id, "messageId": message_id, "readAt": read_at}
        await self._publish_change(conversation_id, "chat.read", data)

    async def typing(self, *, conversation_id: str, user_id: str) -> None:
        """Publishes the ephemeral `chat.typing` {conversationId, userId}; never stored."""
        require_id(conversation_id, BAD_CONVERSATION_ID)
        require_id(user_id, BAD_USER_ID)
        try:
            data = {"conversationId": conversation_id, "userId": user_id}
            await self._publisher.publish_ephemeral(topics.chat_messages(conversation_id), "chat.typing", data)
        except (RedisError, OSError, TimeoutError) as exc:
            raise ProtocolError(UNAVAILABLE, TYPING_UNAVAILABLE) from exc
