"""Chat messages in MongoDB `chat_messages`: idempotent send, edit, soft delete, history, read marks.

Stored first, published second (PROTOCOL.md "Events and offsets"), every change through the
one durable path of `realtime.chat_outbox`: exactly once under one offset, delayed (never
dropped) while Redis is down. One MongoDB write per batch of sends: the offset of a message
is not written back; it lives in the topic's history under the key `m:<id>` and reads join it.
Fields beyond the seed's: `clientMessageId` (idempotency key) and, only while a change is not
published yet, `pendingEvents` (its markers) and `publishClaimUntil` (epoch ms; an unexpired
claim names the process publishing it). Documents written before this design may carry an
`offset` field; it is read as it is.
"""

import contextlib
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Protocol

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, ExecutionTimeout, PyMongoError, WriteError
from redis.exceptions import RedisError

from realtime import topics
from realtime.batching import BadDocument, InsertOnce
from realtime.chat_outbox import Announcer, Change
from realtime.chat_schema import (
    BAD_BEFORE,
    BAD_CONVERSATION_ID,
    BAD_MESSAGE_ID,
    BAD_USER_ID,
    DEFAULT_HISTORY_LIMIT,
    MESSAGE_EMPTY,
    MESSAGE_NOT_ENCODABLE,
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
    """Fan-out to every server process; the methods raise (e.g. redis.ConnectionError) when Redis is down."""

    async def publish_many(
        self, events: list[tuple[str, str, Any]], *, event_keys: list[str] | None = None
    ) -> "list[dict[str, Any] | Exception]":
        """Stores and publishes each (topic, event, data), exactly once per key; one frame or exception each."""
        ...

    async def offsets_of(self, topic: str, event_keys: list[str]) -> list[str | None]:
        """The offset each keyed event went out under, or None (not published in the current epoch)."""
        ...

    async def publish_ephemeral(self, topic: str, event: str, data: dict[str, Any]) -> object:
        """Publishes an event that is never stored and carries no offset (what it returns is unused)."""
        ...


def message_key(message_id: object) -> str:
    """The history key of a message's `chat.message` event (its offset is the message's offset)."""
    return f"m:{message_id}"


# Changes of one message owed together go out as they were made: sent, edited, read, deleted.
_EVENT_ORDER = {"m": 0, "e": 1, "r": 2, "d": 3}


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


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
        inserts_in_flight: int = 1,
    ) -> None:
        self._messages = db[CHAT_MESSAGES]
        self._publisher = publisher
        self._clock = clock
        key = ("conversationId", "senderId", "clientMessageId")
        # Up to `inserts_in_flight` `insert_many`s at once (settings: PMS_MONGO_INSERTS_IN_FLIGHT); the
        # sends' outcomes come back in order, so the announcer publishes them in the order sent.
        self._inserter = InsertOnce(self._messages, key, max_size=batch_max_size, max_in_flight=inserts_in_flight)
        # Every change's event, one pipelined publish per loop tick; kept and retried when Redis fails.
        self.announcer = Announcer(
            publisher, self._messages, now_ms=self._now_ms, claim_ms=PUBLISH_CLAIM_MS, max_batch=batch_max_size
        )

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
        """Writes the sends and publishes already queued; call before closing the MongoDB client."""
        await self._inserter.aclose()
        await self.announcer.aclose()

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
        }
        with _store_errors(SEND_UNAVAILABLE):
            try:
                stored, _ = await self._inserter.insert(doc)
            except BadDocument as exc:
                raise bad_request(MESSAGE_NOT_ENCODABLE) from exc
            except WriteError as exc:
                raise ProtocolError(UNAVAILABLE, NOT_STORED) from exc
        # A repeat (retried send) announces too: the history answers with the first offset if
        # the event went out, and publishes it now if it did not (exactly once per message).
        change = self._message_change(stored)
        frame = await self.announcer.announce(change)
        # The reply is the event's data plus the offset (`to_message` of the stored document, built once).
        return change.data | {"offset": frame["offset"] if frame else stored.get("offset")}

    def _message_change(self, doc: dict[str, Any]) -> Change:
        return Change(
            topics.chat_messages(doc["conversationId"]),
            "chat.message",
            event_data(doc),
            message_key(doc["_id"]),
            doc["_id"],
        )

    async def _claim(self, doc: dict[str, Any]) -> bool:
        """Takes the right to publish a document's pending changes whose previous claim expired."""
        now_ms = self._now_ms()
        try:
            result = await self._messages.update_one(
                {"_id": doc["_id"], "publishClaimUntil": doc["publishClaimUntil"]},
                {"$set": {"publishClaimUntil": now_ms + PUBLISH_CLAIM_MS}},
            )
        except PyMongoError:
            logger.warning("chat: could not claim message %s for publishing", doc["_id"], exc_info=True)
            return False
        return result.modified_count == 1

    def _pending_changes(self, doc: dict[str, Any]) -> list[Change]:
        """The changes a marked document still owes, rebuilt from the document where they were not kept."""
        topic = topics.chat_messages(doc["conversationId"])
        markers = doc.get("pendingEvents")
        if markers is None:  # marked by the design before `pendingEvents`: its `chat.message`
            return [] if "offset" in doc else [self._message_change(doc)]
        changes = []
        for key, marker in sorted(markers.items(), key=lambda item: (_EVENT_ORDER.get(item[0][:1], 9), item[0])):
            data = marker.get("d") if marker.get("d") is not None else event_data(doc)
            changes.append(Change(topic, marker["e"], data, key, doc["_id"], marker.get("d") is not None))
        return changes

    async def publish_pending(self, *, limit: int = 500) -> int:
        """Publishes the changes marked pending whose claim expired (a process died, or a long outage); returns how many.

        Oldest first, in pages of `limit` until none is left or Redis fails. Each document is
        claimed first so concurrent sweeps (several processes) rarely both try; publishing is
        exactly once per change anyway (its key).
        """
        published = 0
        while True:
            with _store_errors():
                docs = (
                    await self._messages.find({"publishClaimUntil": {"$lte": self._now_ms()}})
                    .sort("_id", ASCENDING)
                    .limit(limit)
                    .to_list()
                )
            if not docs:
                return published
            changes = [change for doc in docs if await self._claim(doc) for change in self._pending_changes(doc)]
            results = await self.announcer.publish_now(changes)
            done = [
                change for change, result in zip(changes, results, strict=True) if not isinstance(result, Exception)
            ]
            await self.announcer.unmark(done)
            with _store_errors():  # documents left marked with nothing to publish
                await self.announcer.clear_unmarked([doc["_id"] for doc in docs])
            published += len(done)
            if len(done) < len(changes):  # Redis still refuses: retried with this process's backlog
                self.announcer.adopt([c for c, r in zip(changes, results, strict=True) if isinstance(r, Exception)])
                return published

    async def _with_offsets(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The documents with the offset of their `chat.message` joined from the history (None where unknown)."""
        by_topic: dict[str, list[int]] = {}
        for index, doc in enumerate(docs):
            by_topic.setdefault(topics.chat_messages(doc["conversationId"]), []).append(index)
        joined = list(docs)
        for topic, indexes in by_topic.items():
            try:
                offsets = await self._publisher.offsets_of(topic, [message_key(docs[i]["_id"]) for i in indexes])
            except (RedisError, OSError, TimeoutError):  # history readable without offsets while Redis is down
                logger.debug("chat: offsets of %s not joined", topic, exc_info=True)
                continue
            for index, offset in zip(indexes, offsets, strict=True):
                if offset is not None or "offset" not in docs[index]:
                    joined[index] = docs[index] | {"offset": offset}
        return joined

    async def get(self, *, message_id: str) -> dict[str, Any] | None:
        """The stored message (a tombstone if deleted), or None when there is no such id."""
        oid = parse_object_id(message_id, BAD_MESSAGE_ID)
        with _store_errors():
            doc = await self._messages.find_one({"_id": oid})
        return to_message((await self._with_offsets([doc]))[0]) if doc else None

    async def _find_own(self, message_id: str, actor_id: str, refusal: str) -> dict[str, Any]:
        oid = parse_object_id(message_id, BAD_MESSAGE_ID)
        with _store_errors():
            doc: dict[str, Any] | None = await self._messages.find_one({"_id": oid})
        if doc is None:
            raise ProtocolError(NOT_FOUND, MESSAGE_NOT_FOUND)
        if doc["senderId"] != actor_id:
            raise ProtocolError(FORBIDDEN, refusal)
        return doc

    async def _announce_change(self, change: Change) -> None:
        """Announces a stored change; if Redis refuses, it is kept and published later (never raised)."""
        await self.announcer.announce(change)

    async def edit(self, *, message_id: str, editor_id: str, message: str) -> dict[str, Any]:
        """Replaces the text of a live message (sender only) and publishes `chat.edited` with the message."""
        text = parse_text(message)
        doc = await self._find_own(message_id, editor_id, ONLY_SENDER_EDITS)
        if doc.get("isDeleted"):
            raise ProtocolError(CONFLICT, MESSAGE_DELETED)
        if not text and not doc.get("attachments"):
            raise bad_request(MESSAGE_EMPTY)
        now = self._now()
        with _store_errors():
            updated = await self._messages.find_one_and_update(
                {"_id": doc["_id"], "isDeleted": _NOT_TRUE},
                {"$set": {"message": text, "updatedAt": now}},
                return_document=ReturnDocument.AFTER,
            )
        if updated is None:
            raise ProtocolError(CONFLICT, MESSAGE_DELETED)
        topic = topics.chat_messages(updated["conversationId"])
        key = f"e:{updated['_id']}:{_ms(now)}"
        await self._announce_change(Change(topic, "chat.edited", event_data(updated), key, updated["_id"]))
        return to_message((await self._with_offsets([updated]))[0])

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
            topic = topics.chat_messages(doc["conversationId"])
            await self._announce_change(
                Change(topic, "chat.deleted", data, f"d:{doc['_id']}", doc["_id"], stored_data=True)
            )
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
        page = [to_message(doc) for doc in await self._with_offsets(list(reversed(docs[:limit])))]
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
        """Announces `chat.read` {conversationId, userId, messageId, readAt}; while Redis is down it is kept and sent later."""
        data = {"conversationId": conversation_id, "userId": reader_id, "messageId": message_id, "readAt": read_at}
        key = f"r:{reader_id}:{message_id}:{_ms(datetime.fromisoformat(read_at))}"
        change = Change(topics.chat_messages(conversation_id), "chat.read", data, key, ObjectId(message_id), True)
        await self._announce_change(change)

    async def typing(self, *, conversation_id: str, user_id: str) -> None:
        """Publishes the ephemeral `chat.typing` {conversationId, userId}; never stored."""
        require_id(conversation_id, BAD_CONVERSATION_ID)
        require_id(user_id, BAD_USER_ID)
        try:
            data = {"conversationId": conversation_id, "userId": user_id}
            await self._publisher.publish_ephemeral(topics.chat_messages(conversation_id), "chat.typing", data)
        except (RedisError, OSError, TimeoutError) as exc:
            raise ProtocolError(UNAVAILABLE, TYPING_UNAVAILABLE) from exc
