"""Chat over the socket: send (idempotent), edit, delete, history, read receipts, typing."""

import asyncio
import uuid
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from pymongo import AsyncMongoClient

from apps.messaging.models import ConversationParticipant
from realtime import topics
from tests.consumers.conftest import token_for
from tests.factories import make_conversation

pytestmark = pytest.mark.django_db(transaction=True)


_unread: dict[int, list[dict[str, Any]]] = {}


async def request(socket, frame: dict[str, Any]) -> dict[str, Any]:
    """Send a command with a fresh ref; frames before its reply are kept for `next_event`."""
    ref = uuid.uuid4().hex[:8]
    await socket.send_json_to({**frame, "ref": ref})
    while True:
        reply = await socket.receive_json_from(timeout=3)
        if reply.get("type") == "reply" and reply.get("ref") == ref:
            return reply
        _unread.setdefault(id(socket), []).append(reply)


async def next_event(socket, name: str) -> dict[str, Any]:
    kept = _unread.setdefault(id(socket), [])
    for index, frame in enumerate(kept):
        if frame.get("type") == "event" and frame["event"] == name:
            return kept.pop(index)
    while True:
        frame = await socket.receive_json_from(timeout=3)
        if frame.get("type") == "event" and frame["event"] == name:
            return frame


async def stored_count(conversation_id: str) -> int:
    client: AsyncMongoClient[Any] = AsyncMongoClient(settings.MONGO_URL)
    try:
        return await client[settings.MONGO_DATABASE]["chat_messages"].count_documents(
            {"conversationId": conversation_id}
        )
    finally:
        await client.close()


async def settle(*sockets: Any) -> None:
    """Let the presence announcements of the sockets just opened go out, then drop them."""
    await asyncio.sleep(0.2)
    for socket in sockets:
        while not await socket.receive_nothing(timeout=0.05):
            frame = await socket.receive_json_from()
            assert frame.get("event") == "presence", frame
        _unread.get(id(socket), []).clear()


@pytest.fixture
async def room(connect, new_user):
    _unread.clear()
    tenant = await new_user()
    manager = await new_user(user_type="property_manager")
    conversation = await sync_to_async(make_conversation)(participants=(tenant, manager))
    cid = str(conversation.pk)
    tenant_socket = await connect(await token_for(tenant))
    manager_socket = await connect(await token_for(manager))
    for socket in (tenant_socket, manager_socket):
        assert (await request(socket, {"type": "subscribe", "topic": topics.chat_messages(cid)}))["ok"]
    await settle(tenant_socket, manager_socket)
    return {"cid": cid, "tenant": tenant, "manager": manager, "t": tenant_socket, "m": manager_socket}


async def test_send_is_stored_once_and_delivered_to_every_subscriber(room) -> None:
    send = {"type": "chat.send", "conversationId": room["cid"], "message": "The sink leaks", "clientMessageId": "c-1"}
    reply = await request(room["t"], send)
    assert reply["ok"] is True
    message = reply["data"]
    assert message["senderId"] == str(room["tenant"].pk) and message["recipientId"] == str(room["manager"].pk)
    assert message["message"] == "The sink leaks" and message["isRead"] is False and len(message["id"]) == 24
    for socket in (room["t"], room["m"]):
        event = await next_event(socket, "chat.message")
        assert event["data"]["id"] == message["id"] and event["offset"]
    retry = await request(room["t"], send)
    assert retry["data"]["id"] == message["id"]
    assert await room["m"].receive_nothing(timeout=0.4)
    assert await stored_count(room["cid"]) == 1


async def test_edit_and_delete_by_the_sender_only(room) -> None:
    sent = await request(
        room["t"], {"type": "chat.send", "conversationId": room["cid"], "message": "v1", "clientMessageId": "c-2"}
    )
    message_id = sent["data"]["id"]
    denied = await request(room["m"], {"type": "chat.edit", "messageId": message_id, "message": "hacked"})
    assert denied["ok"] is False and denied["error"]["code"] == "forbidden"
    edited = await request(room["t"], {"type": "chat.edit", "messageId": message_id, "message": "v2"})
    assert edited["ok"] and edited["data"]["message"] == "v2"
    assert (await next_event(room["m"], "chat.edited"))["data"]["message"] == "v2"
    assert (await request(room["m"], {"type": "chat.delete", "messageId": message_id}))["error"]["code"] == "forbidden"
    deleted_reply = await request(room["t"], {"type": "chat.delete", "messageId": message_id})
    assert deleted_reply["ok"] is True and deleted_reply["data"] == {}
    deleted = await next_event(room["m"], "chat.deleted")
    assert deleted["data"]["id"] == message_id
    history = await request(room["m"], {"type": "chat.history", "conversationId": room["cid"]})
    tombstone = next(m for m in history["data"]["messages"] if m["id"] == message_id)
    assert tombstone["isDeleted"] is True and not tombstone["message"] and tombstone["attachments"] == []


async def test_history_pages_oldest_first(room) -> None:
    ids = []
    for n in range(5):
        reply = await request(
            room["t"],
            {"type": "chat.send", "conversationId": room["cid"], "message": f"m{n}", "clientMessageId": f"h-{n}"},
        )
        ids.append(reply["data"]["id"])
    page = await request(room["m"], {"type": "chat.history", "conversationId": room["cid"], "limit": 2})
    assert [m["id"] for m in page["data"]["messages"]] == ids[3:] and page["data"]["hasMore"] is True
    older = await request(
        room["m"], {"type": "chat.history", "conversationId": room["cid"], "limit": 2, "before": ids[3]}
    )
    assert [m["id"] for m in older["data"]["messages"]] == ids[1:3]
    bad = await request(room["m"], {"type": "chat.history", "conversationId": room["cid"], "limit": 101})
    assert bad["error"]["code"] == "bad_request"


async def test_read_receipt_marks_updates_position_and_tells_the_sender(room) -> None:
    sent = await request(
        room["t"], {"type": "chat.send", "conversationId": room["cid"], "message": "ping", "clientMessageId": "r-1"}
    )
    read = await request(
        room["m"], {"type": "chat.read", "conversationId": room["cid"], "messageId": sent["data"]["id"]}
    )
    assert read["ok"] and read["data"]["readAt"]
    event = await next_event(room["t"], "chat.read")
    assert event["data"]["userId"] == str(room["manager"].pk) and event["data"]["messageId"] == sent["data"]["id"]
    participant = await sync_to_async(ConversationParticipant.objects.get)(
        conversation_id=room["cid"], user=room["manager"]
    )
    assert participant.last_read_message_id == sent["data"]["id"] and participant.last_read_at is not None
    history = await request(room["t"], {"type": "chat.history", "conversationId": room["cid"]})
    assert history["data"]["messages"][-1]["isRead"] is True


async def test_typing_is_ephemeral_and_replied_with_an_empty_map(room) -> None:
    reply = await request(room["t"], {"type": "chat.typing", "conversationId": room["cid"]})
    assert reply["ok"] is True and reply["data"] == {}
    event = await next_event(room["m"], "chat.typing")
    assert event["data"]["userId"] == str(room["tenant"].pk) and "offset" not in event


async def test_outsiders_are_forbidden_and_admins_may_only_read(room, connect, new_user) -> None:
    outsider = await connect(await token_for(await new_user()))
    send = {"type": "chat.send", "conversationId": room["cid"], "message": "hi", "clientMessageId": "x"}
    assert (await request(outsider, send))["error"]["code"] == "forbidden"
    assert (await request(outsider, {"type": "chat.history", "conversationId": room["cid"]}))["error"][
        "code"
    ] == "forbidden"
    admin = await connect(await token_for(await new_user(user_type="admin")))
    assert (await request(admin, {"type": "chat.history", "conversationId": room["cid"]}))["ok"] is True
    assert (await request(admin, send))["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    "frame",
    [
        {"message": "no id"},
        {"message": "", "clientMessageId": "e"},
        {"message": 5, "clientMessageId": "e"},
        {"message": "x" * 10_001, "clientMessageId": "e"},
        {"message": "x", "clientMessageId": "e", "attachments": "file"},
        {"message": "x", "clientMessageId": "e", "attachments": [{"fileName": "a.pdf"}]},
        {
            "message": "x",
            "clientMessageId": "e",
            "attachments": [
                {"fileName": "a.pdf", "fileSize": -1, "mimeType": "application/pdf", "url": "https://x/a.pdf"}
            ],
        },
    ],
)
async def test_bad_sends_write_nothing(room, frame: dict[str, Any]) -> None:
    reply = await request(room["t"], {"type": "chat.send", "conversationId": room["cid"], **frame})
    assert reply["ok"] is False and reply["error"]["code"] == "bad_request", reply
    assert await stored_count(room["cid"]) == 0
    assert await room["m"].receive_nothing(timeout=0.2)


async def test_attachments_are_stored_as_metadata(room) -> None:
    attachment = {
        "fileName": "lease.pdf",
        "fileSize": 1234,
        "mimeType": "application/pdf",
        "url": "https://files.example/lease.pdf",
    }
    reply = await request(
        room["t"],
        {
            "type": "chat.send",
            "conversationId": room["cid"],
            "message": "",
            "clientMessageId": "a-1",
            "attachments": [attachment],
        },
    )
    assert reply["ok"] and reply["data"]["attachments"] == [attachment]


async def test_unknown_message_is_not_found(room) -> None:
    for frame in (
        {"type": "chat.edit", "messageId": "0" * 24, "message": "x"},
        {"type": "chat.delete", "messageId": "0" * 24},
        {"type": "chat.read", "conversationId": room["cid"], "messageId": "0" * 24},
    ):
        reply = await request(room["t"], frame)
        assert reply["ok"] is False and reply["error"]["code"] == "not_found", reply


async def test_message_store_down_answers_unavailable_and_writes_nothing(connect, new_user, tune) -> None:
    tune(mongo_url="mongodb://127.0.0.1:1/", mongo_timeout_ms=300)
    tenant, manager = await new_user(), await new_user(user_type="property_manager")
    conversation = await sync_to_async(make_conversation)(participants=(tenant, manager))
    socket = await connect(await token_for(tenant))
    other = await connect(await token_for(manager))
    assert (await request(other, {"type": "subscribe", "topic": topics.chat_messages(str(conversation.pk))}))["ok"]
    reply = await request(
        socket,
        {"type": "chat.send", "conversationId": str(conversation.pk), "message": "hi", "clientMessageId": "down-1"},
    )
    assert reply["ok"] is False and reply["error"]["code"] == "unavailable", reply
    await socket.send_json_to({"type": "ping", "ref": "alive"})
    assert await socket.receive_json_from(timeout=2) == {"type": "pong", "ref": "alive"}
    while not await other.receive_nothing(timeout=0.3):
        frame = await other.receive_json_from()
        assert frame.get("event") == "presence", frame  # nothing but presence: no chat.message
    assert await stored_count(str(conversation.pk)) == 0
