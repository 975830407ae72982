"""The chat service against the configured MongoDB (the nx-27017 stand-in, or mongod via PMS_MONGO_URL)."""

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from django.conf import settings
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from realtime import chat
from realtime import chat_schema as schema
from realtime.chat import ChatService
from realtime.documents import CHAT_MESSAGES
from realtime.errors import ProtocolError

TENANT, MANAGER, OTHER = "tenant-1", "manager-1", "someone-else"
PAIR = [TENANT, MANAGER]
FILE = {"fileName": "lease.pdf", "fileSize": 1024, "mimeType": "application/pdf", "url": "https://files.example/l.pdf"}
SEED_FIELDS = set(
    "_id conversationId senderId recipientId message attachments isRead readAt createdAt updatedAt "
    "isDeleted deletedAt".split()
)


class FakePublisher:
    """Records what it publishes; while `down`, raises as redis-py does when Redis is unreachable.

    Keyed events go out once per key, as `RedisHistory.publish_many(event_keys=...)` does
    (tests/realtime/test_history.py tests the real script).
    """

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.ephemeral: list[tuple[str, str, dict[str, Any]]] = []
        self.batches: list[int] = []
        self.keyed: dict[tuple[str, str], dict[str, Any]] = {}
        self.down = False

    async def publish(self, topic: str, event: str, data: dict[str, Any]) -> dict[str, Any]:
        if self.down:
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        frame = {
            "type": "event",
            "topic": topic,
            "offset": f"e1-{len(self.frames) + 1}",
            "event": event,
            "data": data,
            "ts": datetime.now(UTC).isoformat(),
        }
        self.frames.append(frame)
        return frame

    async def publish_many(
        self, events: list[tuple[str, str, Any]], *, event_keys: list[str] | None = None
    ) -> list[dict[str, Any] | Exception]:
        self.batches.append(len(events))
        outcomes: list[dict[str, Any] | Exception] = []
        for (topic, event, data), key in zip(events, event_keys or [""] * len(events), strict=True):
            try:
                if (topic, key) in self.keyed:
                    if self.down:
                        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
                    outcomes.append(self.keyed[topic, key])
                    continue
                frame = await self.publish(topic, event, data)
                outcomes.append(frame)
                if key:
                    self.keyed[topic, key] = frame
            except redis.ConnectionError as exc:
                outcomes.append(exc)
        return outcomes

    async def offsets_of(self, topic: str, event_keys: list[str]) -> list[str | None]:
        if self.down:
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        return [self.keyed[topic, key]["offset"] if (topic, key) in self.keyed else None for key in event_keys]

    async def publish_ephemeral(self, topic: str, event: str, data: dict[str, Any]) -> None:
        if self.down:
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        self.ephemeral.append((topic, event, data))

    def events(self, event: str = "chat.message") -> list[dict[str, Any]]:
        return [frame for frame in self.frames if frame["event"] == event]


class Clock:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def db() -> AsyncIterator["AsyncDatabase[Any]"]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(settings.MONGO_URL, serverSelectionTimeoutMS=3000, tz_aware=True)
    name = f"pms_test_chat_{uuid.uuid4().hex[:12]}"
    yield client[name]
    await client.drop_database(name)
    await client.close()


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def service(db: Any, publisher: FakePublisher, clock: Clock) -> AsyncIterator[ChatService]:
    service = ChatService(db, publisher, clock=clock)
    await service.ensure_indexes()
    yield service
    await service.aclose()


def conversation() -> str:
    return str(uuid.uuid4())


async def send(
    service: ChatService,
    conv: str,
    text: str = "hello",
    cmid: str | None = None,
    sender: str = TENANT,
    participants: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return await service.send(
        conversation_id=conv,
        sender_id=sender,
        participants=participants or PAIR,
        message=text,
        client_message_id=cmid or uuid.uuid4().hex,
        **extra,
    )


async def test_chat_send_stores_seed_fields_with_recipient_and_publishes_once(
    service: ChatService, db: Any, publisher: FakePublisher
) -> None:
    conv = conversation()
    reply = await send(service, conv, "  Is the heating fixed?  ", cmid="c-1", attachments=[FILE])
    stored = await db[CHAT_MESSAGES].find_one({"conversationId": conv})
    assert SEED_FIELDS <= set(stored)
    assert stored["recipientId"] == MANAGER and stored["message"] == "Is the heating fixed?"
    assert reply["id"] == str(stored["_id"]) and reply["recipientId"] == MANAGER and reply["attachments"] == [FILE]
    assert reply["isRead"] is False and reply["isDeleted"] is False and reply["readAt"] is None
    assert reply["createdAt"] == "2026-11-25T12:00:00.000Z" == reply["updatedAt"]
    [frame] = publisher.events()
    assert frame["topic"] == f"chat:messages:{conv}" and frame["data"]["id"] == reply["id"]
    # One write per send: the offset lives in the history, and reads join it.
    assert reply["offset"] == frame["offset"] and "offset" not in (await db[CHAT_MESSAGES].find_one())
    assert await service.get(message_id=reply["id"]) == reply


async def test_chat_send_with_same_client_message_id_stores_once(
    service: ChatService, db: Any, publisher: FakePublisher
) -> None:
    conv = conversation()
    first = await send(service, conv, "once", cmid="same")
    again = await send(service, conv, "twice?", cmid="same")
    assert again == first and again["message"] == "once"
    assert await db[CHAT_MESSAGES].count_documents({}) == 1 and len(publisher.events()) == 1


async def test_twenty_concurrent_sends_of_one_client_message_id_store_and_publish_once(
    service: ChatService, db: Any, publisher: FakePublisher
) -> None:
    conv = conversation()
    replies = await asyncio.gather(*(send(service, conv, f"try {i}", cmid="burst") for i in range(20)))
    assert len({r["id"] for r in replies}) == 1
    assert await db[CHAT_MESSAGES].count_documents({}) == 1 and len(publisher.events()) == 1


async def test_same_client_message_id_from_another_sender_or_conversation_is_new(service: ChatService, db: Any) -> None:
    conv = conversation()
    await send(service, conv, cmid="k")
    await send(service, conv, cmid="k", sender=MANAGER)
    group = await send(service, conversation(), cmid="k", participants=[TENANT, MANAGER, OTHER])
    assert await db[CHAT_MESSAGES].count_documents({}) == 3
    assert group["recipientId"] is None  # no single recipient in a group


async def test_concurrent_sends_use_one_insert_many(
    service: ChatService, db: Any, publisher: FakePublisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    collection = service._messages
    real, calls = collection.insert_many, []

    async def spy(documents: list[dict[str, Any]], **kwargs: Any) -> Any:
        calls.append((len(documents), kwargs))
        return await real(documents, **kwargs)

    monkeypatch.setattr(collection, "insert_many", spy)
    conv = conversation()
    await asyncio.gather(*(send(service, conv, f"m{i}") for i in range(25)))
    assert calls == [(25, {"ordered": False})]
    assert await db[CHAT_MESSAGES].count_documents({"conversationId": conv}) == 25
    assert publisher.batches == [25]  # and their events go out in one pipelined publish
    offsets = [frame["offset"] for frame in publisher.events()]
    assert len(set(offsets)) == 25


async def test_sends_whose_inserts_finish_out_of_order_are_published_and_answered_in_the_order_sent(
    db: Any, publisher: FakePublisher, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = ChatService(db, publisher, clock=clock, inserts_in_flight=3)
    await service.ensure_indexes()
    collection = service._messages
    real, first_may_finish, inserts = collection.insert_many, asyncio.Event(), []

    async def first_insert_is_slow(documents: list[dict[str, Any]], **kwargs: Any) -> Any:
        inserts.append(len(documents))
        result = await real(documents, **kwargs)
        if len(inserts) == 1:
            await first_may_finish.wait()
        return result

    monkeypatch.setattr(collection, "insert_many", first_insert_is_slow)
    conv, replies = conversation(), []

    async def send_in_turn(text: str) -> None:
        replies.append((text, await send(service, conv, text)))

    sends = []
    for i in range(3):  # three inserts in flight: each send in its own loop tick
        sends.append(asyncio.ensure_future(send_in_turn(f"m{i}")))
        await wait_for(lambda: len(inserts) == len(sends))
    sends.append(asyncio.ensure_future(send_in_turn("m3")))
    await asyncio.sleep(0.05)
    assert replies == [] and publisher.events() == []  # m1, m2 and m3 are stored but wait for m0
    first_may_finish.set()
    await asyncio.gather(*sends)
    assert [text for text, _ in replies] == ["m0", "m1", "m2", "m3"] and inserts == [1, 1, 1, 1]
    assert [frame["data"]["message"] for frame in publisher.events()] == ["m0", "m1", "m2", "m3"]
    assert [reply["offset"] for _, reply in replies] == [frame["offset"] for frame in publisher.events()]
    await service.aclose()


async def wait_for(condition: Any, timeout: float = 10.0) -> None:
    """Waits until `condition()` is true (checked every 10 ms), failing after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_publish_failure_keeps_message_and_publishes_it_once_redis_is_back(
    service: ChatService, db: Any, publisher: FakePublisher
) -> None:
    conv = conversation()
    publisher.down = True
    reply = await send(service, conv, "while redis is down")
    assert reply["offset"] is None and await db[CHAT_MESSAGES].count_documents({}) == 1
    marked = await db[CHAT_MESSAGES].find_one({})
    assert list(marked["pendingEvents"]) == [f"m:{reply['id']}"]  # survives this process
    assert await service.publish_pending() == 0  # claimed by this process, which retries it itself
    publisher.down = False
    await wait_for(lambda: service.announcer.backlog == 0)
    [frame] = publisher.events()
    assert frame["data"]["id"] == reply["id"]
    assert (await service.get(message_id=reply["id"]) or {})["offset"] == frame["offset"]
    # The backlog empties before the marker's removal is written (`Announcer.unmark`): wait for it.
    async with asyncio.timeout(10):
        while "pendingEvents" in (await db[CHAT_MESSAGES].find_one({})):
            await asyncio.sleep(0.01)
    assert await service.publish_pending() == 0


async def test_edit_delete_and_read_made_while_redis_is_down_are_published_in_order_once(
    service: ChatService, publisher: FakePublisher
) -> None:
    conv = conversation()
    sent = await send(service, conv, "first")
    publisher.down = True
    await service.edit(message_id=sent["id"], editor_id=TENANT, message="edited")
    await service.mark_read(conversation_id=conv, reader_id=MANAGER, message_id=sent["id"])
    await service.delete(message_id=sent["id"], deleter_id=TENANT)
    assert service.announcer.backlog == 3
    publisher.down = False
    await wait_for(lambda: service.announcer.backlog == 0)
    assert [f["event"] for f in publisher.frames] == ["chat.message", "chat.edited", "chat.read", "chat.deleted"]
    assert publisher.frames[1]["data"]["message"] == "edited"


async def test_publish_pending_publishes_what_a_dead_process_kept_oldest_first_and_once(
    db: Any, publisher: FakePublisher, service: ChatService, clock: Clock
) -> None:
    dead = ChatService(db, publisher, clock=clock)
    publisher.down = True
    ids = [(await send(dead, conversation(), f"m{i}"))["id"] for i in range(5)]
    await dead.aclose()  # the process dies: its retries stop, the markers stay
    publisher.down = False
    assert await service.publish_pending() == 0  # its claims have not expired yet
    clock.now += timedelta(milliseconds=chat.PUBLISH_CLAIM_MS + 1000)
    other_process = ChatService(db, publisher, clock=clock)  # the claims assume roughly synchronized clocks
    counts = await asyncio.gather(service.publish_pending(), other_process.publish_pending())
    assert sum(counts) == 5 and [f["data"]["id"] for f in publisher.events()] == ids
    assert await service.publish_pending() == 0 and len(publisher.events()) == 5


async def test_retried_send_of_a_pending_message_publishes_it(service: ChatService, publisher: FakePublisher) -> None:
    conv = conversation()
    publisher.down = True
    first = await send(service, conv, cmid="retry-me")
    publisher.down = False
    retry = await send(service, conv, cmid="retry-me")
    assert retry["id"] == first["id"] and retry["offset"] == publisher.events()[0]["offset"]
    assert await service.publish_pending() == 0
    await send(service, conv, cmid="retry-me")
    assert len(publisher.events()) == 1


async def test_a_retried_send_and_a_history_read_right_after_a_send_see_its_offset(
    service: ChatService, publisher: FakePublisher
) -> None:
    conv = conversation()
    sent = await send(service, conv, cmid="once")
    [page] = (await service.history(conversation_id=conv))["messages"]
    retry = await send(service, conv, cmid="once")
    assert sent["offset"] == page["offset"] == retry["offset"] == publisher.events()[0]["offset"]
    assert len(publisher.events()) == 1


async def test_mongodb_down_answers_unavailable_and_publishes_nothing(publisher: FakePublisher) -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:  # closed before use: nobody listens there
        url = f"mongodb://127.0.0.1:{sock.getsockname()[1]}/"
    client: AsyncMongoClient[Any] = AsyncMongoClient(url, serverSelectionTimeoutMS=200)
    with pytest.raises(ProtocolError) as caught:
        await send(ChatService(client["down"], publisher), conversation())
    await client.close()
    assert (caught.value.code, caught.value.message) == ("unavailable", chat.SEND_UNAVAILABLE)
    assert publisher.frames == []


def bad_send(**change: Any) -> dict[str, Any]:
    args = {
        "conversation_id": "c",
        "sender_id": TENANT,
        "participants": PAIR,
        "message": "hi",
        "client_message_id": "x",
        "attachments": None,
    }
    return args | change


def file(**change: Any) -> dict[str, Any]:
    return FILE | change


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (bad_send(message=""), schema.MESSAGE_EMPTY),
        (bad_send(message="   \n "), schema.MESSAGE_EMPTY),
        (bad_send(message=None), schema.MESSAGE_NOT_TEXT),
        (bad_send(message="x" * 10_001), schema.MESSAGE_TOO_LONG),
        (bad_send(client_message_id=""), schema.BAD_CLIENT_MESSAGE_ID),
        (bad_send(client_message_id="x" * 65), schema.BAD_CLIENT_MESSAGE_ID),
        (bad_send(client_message_id=7), schema.BAD_CLIENT_MESSAGE_ID),
        (bad_send(conversation_id=""), schema.BAD_CONVERSATION_ID),
        (bad_send(participants="tenant-1"), schema.BAD_PARTICIPANTS),
        (bad_send(participants=[MANAGER, OTHER]), ("forbidden", chat.NOT_A_PARTICIPANT)),
        (bad_send(attachments={"fileName": "a"}), schema.ATTACHMENTS_NOT_LIST),
        (bad_send(attachments=[FILE] * 11), schema.TOO_MANY_ATTACHMENTS),
        (bad_send(attachments=["a.pdf"]), schema.ATTACHMENT_NOT_OBJECT),
        (bad_send(attachments=[file(extra=1)]), schema.ATTACHMENT_FIELDS_WRONG),
        (bad_send(attachments=[file(fileName="")]), schema.BAD_FILE_NAME),
        (bad_send(attachments=[file(fileName="n" * 256)]), schema.BAD_FILE_NAME),
        (bad_send(attachments=[file(fileSize=-1)]), schema.BAD_FILE_SIZE),
        (bad_send(attachments=[file(fileSize=100 * 1024 * 1024 + 1)]), schema.BAD_FILE_SIZE),
        (bad_send(attachments=[file(fileSize="10")]), schema.BAD_FILE_SIZE),
        (bad_send(attachments=[file(fileSize=True)]), schema.BAD_FILE_SIZE),
        (bad_send(attachments=[file(mimeType="pdf")]), schema.BAD_MIME_TYPE),
        (bad_send(attachments=[file(url="javascript:alert(1)")]), schema.BAD_URL),
        (bad_send(attachments=[file(url="ftp://files.example/a")]), schema.BAD_URL),
        (bad_send(attachments=[file(url="https://" + "a" * 2048)]), schema.BAD_URL),
        (bad_send(attachments=[file(url="https://[::1/x")]), schema.BAD_URL),
    ],
)
async def test_chat_send_rejects_bad_input_and_writes_nothing(
    service: ChatService, db: Any, publisher: FakePublisher, args: dict[str, Any], expected: str | tuple[str, str]
) -> None:
    before = await db[CHAT_MESSAGES].count_documents({})
    with pytest.raises(ProtocolError) as caught:
        await service.send(**args)
    assert (caught.value.code, caught.value.message) == (
        expected if isinstance(expected, tuple) else ("bad_request", expected)
    )
    assert await db[CHAT_MESSAGES].count_documents({}) == before and publisher.frames == []


async def test_chat_send_with_attachments_only_is_accepted(service: ChatService) -> None:
    reply = await send(service, conversation(), "", attachments=[FILE, file(mimeType="text/plain; charset=utf-8")])
    assert reply["message"] == "" and len(reply["attachments"]) == 2


async def test_edit_by_sender_updates_and_publishes(
    service: ChatService, publisher: FakePublisher, clock: Clock
) -> None:
    sent = await send(service, conversation(), "helo")
    clock.now += timedelta(minutes=1)
    edited = await service.edit(message_id=sent["id"], editor_id=TENANT, message="hello")
    assert edited["message"] == "hello" and edited["updatedAt"] == "2026-11-25T12:01:00.000Z"
    assert edited["createdAt"] == sent["createdAt"]
    assert publisher.events("chat.edited")[0]["data"]["message"] == "hello"
    assert (await service.get(message_id=sent["id"]) or {})["message"] == "hello"


async def test_edit_and_delete_by_anyone_but_the_sender_are_forbidden(service: ChatService) -> None:
    sent = await send(service, conversation(), "mine")
    with pytest.raises(ProtocolError) as caught:
        await service.edit(message_id=sent["id"], editor_id=MANAGER, message="x")
    assert (caught.value.code, caught.value.message) == ("forbidden", chat.ONLY_SENDER_EDITS)
    with pytest.raises(ProtocolError) as caught:
        await service.delete(message_id=sent["id"], deleter_id=MANAGER)
    assert (caught.value.code, caught.value.message) == ("forbidden", chat.ONLY_SENDER_DELETES)
    assert (await service.get(message_id=sent["id"]) or {})["message"] == "mine"


async def test_edit_of_unknown_or_deleted_message(service: ChatService) -> None:
    sent = await send(service, conversation())
    await service.delete(message_id=sent["id"], deleter_id=TENANT)
    with pytest.raises(ProtocolError) as caught:
        await service.edit(message_id=sent["id"], editor_id=TENANT, message="back")
    assert (caught.value.code, caught.value.message) == ("conflict", chat.MESSAGE_DELETED)
    with pytest.raises(ProtocolError) as caught:
        await service.edit(message_id="0" * 24, editor_id=TENANT, message="x")
    assert caught.value.code == "not_found"
    with pytest.raises(ProtocolError) as caught:
        await service.delete(message_id="nope", deleter_id=TENANT)
    assert (caught.value.code, caught.value.message) == ("bad_request", schema.BAD_MESSAGE_ID)


async def test_delete_leaves_a_tombstone_and_is_idempotent(
    service: ChatService, db: Any, publisher: FakePublisher
) -> None:
    conv = conversation()
    sent = await send(service, conv, "secret", attachments=[FILE])
    assert await service.delete(message_id=sent["id"], deleter_id=TENANT) == {}
    assert await service.delete(message_id=sent["id"], deleter_id=TENANT) == {}
    [event] = publisher.events("chat.deleted")
    assert event["data"] == {"id": sent["id"], "conversationId": conv, "deletedAt": "2026-11-25T12:00:00.000Z"}
    [tombstone] = (await service.history(conversation_id=conv))["messages"]
    assert tombstone["isDeleted"] is True and tombstone["deletedAt"] == "2026-11-25T12:00:00.000Z"
    assert tombstone["message"] is None and tombstone["attachments"] == []
    stored = await db[CHAT_MESSAGES].find_one({})
    assert stored["message"] == "" and stored["attachments"] == []  # cleared in storage too


async def test_history_pages_oldest_first_with_before_and_has_more(service: ChatService) -> None:
    conv = conversation()
    ids = [(await send(service, conv, f"m{i}"))["id"] for i in range(7)]
    await send(service, conversation(), "elsewhere")
    page = await service.history(conversation_id=conv, limit=3)
    assert [m["id"] for m in page["messages"]] == ids[4:] and page["hasMore"] is True
    page = await service.history(conversation_id=conv, before=ids[4], limit=3)
    assert [m["id"] for m in page["messages"]] == ids[1:4] and page["hasMore"] is True
    page = await service.history(conversation_id=conv, before=ids[1], limit=3)
    assert [m["message"] for m in page["messages"]] == ["m0"] and page["hasMore"] is False
    page = await service.history(conversation_id=conv)
    assert len(page["messages"]) == 7 and page["hasMore"] is False
    assert await service.history(conversation_id=conversation()) == {"messages": [], "hasMore": False}


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        ({"limit": 0}, "bad_request", schema.BAD_LIMIT),
        ({"limit": 101}, "bad_request", schema.BAD_LIMIT),
        ({"limit": "5"}, "bad_request", schema.BAD_LIMIT),
        ({"limit": True}, "bad_request", schema.BAD_LIMIT),
        ({"before": "xyz"}, "bad_request", schema.BAD_BEFORE),
        ({"before": "f" * 24}, "not_found", chat.NOT_IN_CONVERSATION),
    ],
)
async def test_history_rejects_bad_paging(service: ChatService, args: dict[str, Any], code: str, expected: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        await service.history(conversation_id=conversation(), **args)
    assert (caught.value.code, caught.value.message) == (code, expected)


async def test_mark_read_marks_the_readers_messages_up_to_the_id(
    service: ChatService, db: Any, publisher: FakePublisher, clock: Clock
) -> None:
    conv = conversation()
    to_manager = [(await send(service, conv, f"t{i}"))["id"] for i in range(3)]
    from_manager = (await send(service, conv, "reply", sender=MANAGER))["id"]
    later = (await send(service, conv, "later"))["id"]
    clock.now += timedelta(seconds=5)
    result = await service.mark_read(conversation_id=conv, reader_id=MANAGER, message_id=from_manager)
    assert result == {"readAt": "2026-11-25T12:00:05.000Z", "lastReadMessageId": from_manager}
    read = {m["id"]: (m["isRead"], m["readAt"]) for m in (await service.history(conversation_id=conv))["messages"]}
    assert all(read[i] == (True, "2026-11-25T12:00:05.000Z") for i in to_manager)
    assert read[from_manager] == (False, None) and read[later] == (False, None)
    [event] = publisher.events("chat.read")
    assert event["data"] == {
        "conversationId": conv,
        "userId": MANAGER,
        "messageId": from_manager,
        "readAt": "2026-11-25T12:00:05.000Z",
    }
    clock.now += timedelta(seconds=5)  # marking again leaves the first readAt
    await service.mark_read(conversation_id=conv, reader_id=MANAGER, message_id=later)
    assert (await service.get(message_id=to_manager[0]) or {})["readAt"] == "2026-11-25T12:00:05.000Z"
    assert (await service.get(message_id=later) or {})["isRead"] is True


async def test_history_and_mark_read_refuse_a_message_of_another_conversation(service: ChatService) -> None:
    elsewhere, conv = (await send(service, conversation()))["id"], conversation()
    with pytest.raises(ProtocolError) as caught:
        await service.history(conversation_id=conv, before=elsewhere)
    assert (caught.value.code, caught.value.message) == ("not_found", chat.NOT_IN_CONVERSATION)
    with pytest.raises(ProtocolError) as caught:
        await service.mark_read(conversation_id=conv, reader_id=MANAGER, message_id=elsewhere)
    assert (caught.value.code, caught.value.message) == ("not_found", chat.NOT_IN_CONVERSATION)


async def test_typing_is_ephemeral_and_unavailable_without_redis(
    service: ChatService, publisher: FakePublisher
) -> None:
    conv = conversation()
    await service.typing(conversation_id=conv, user_id=TENANT)
    assert publisher.ephemeral == [(f"chat:messages:{conv}", "chat.typing", {"conversationId": conv, "userId": TENANT})]
    assert publisher.frames == []
    publisher.down = True
    with pytest.raises(ProtocolError) as caught:
        await service.typing(conversation_id=conv, user_id=TENANT)
    assert (caught.value.code, caught.value.message) == ("unavailable", chat.TYPING_UNAVAILABLE)


async def test_one_send_that_cannot_be_stored_fails_alone_and_its_batch_is_stored(
    service: ChatService, db: Any, publisher: FakePublisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The schema refuses such text at the edge (chat_schema.unicode_text); a document that slips
    # past it anyway (here: the attachment check switched off) must fail alone in its batch.
    monkeypatch.setattr(chat, "parse_attachments", lambda value: list(value or []))
    conv = conversation()
    bad = file(url="https://files.example/\ud800")  # BSON refuses it
    sends = [send(service, conv, f"m{i}") for i in range(9)]
    sends.insert(3, send(service, conv, "with a bad file", attachments=[bad]))
    outcomes = await asyncio.gather(*sends, return_exceptions=True)
    refused = outcomes.pop(3)
    assert isinstance(refused, ProtocolError)
    assert (refused.code, refused.message) == ("bad_request", schema.MESSAGE_NOT_ENCODABLE)
    assert all(isinstance(o, dict) and o["offset"] for o in outcomes)
    assert await db[CHAT_MESSAGES].count_documents({"conversationId": conv}) == 9 == len(publisher.events())
