"""A message posted over HTTP reaches the sockets subscribed to the conversation, as `chat.send` does."""

import uuid

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from apps.messaging.models import ConversationParticipant
from realtime import errors, topics
from realtime.errors import ProtocolError
from realtime.runtime import get_realtime
from tests.apps.api_world import build_world
from tests.apps.messaging.http_chat import AsyncApi
from tests.consumers.conftest import token_for
from tests.consumers.test_chat import next_event, request, settle

pytestmark = pytest.mark.django_db(transaction=True)


async def test_http_send_and_read_go_out_live_to_subscribed_sockets(connect) -> None:
    world = await sync_to_async(build_world)()
    tenant, manager = await AsyncApi.login(world.tenant), await AsyncApi.login(world.manager)
    created = await tenant.post("/conversations", {"participants": [str(world.manager.pk)]})
    cid = created.json()["id"]
    socket = await connect(await token_for(world.manager))
    assert (await request(socket, {"type": "subscribe", "topic": topics.chat_messages(cid)}))["ok"]
    await settle(socket)

    sent = await tenant.post(f"/conversations/{cid}/messages", {"message": "Over HTTP", "clientMessageId": "h-1"})
    assert sent.status_code == 201, sent.content
    event = await next_event(socket, "chat.message")
    assert event["data"]["id"] == sent.json()["id"] and event["data"]["message"] == "Over HTTP"
    assert event["offset"] == sent.json()["offset"]

    retry = await tenant.post(f"/conversations/{cid}/messages", {"message": "Over HTTP", "clientMessageId": "h-1"})
    assert retry.json()["id"] == sent.json()["id"]
    assert await socket.receive_nothing(timeout=0.4)

    read = await manager.post(f"/conversations/{cid}/read", {"messageId": sent.json()["id"]})
    assert read.status_code == 200
    receipt = await next_event(socket, "chat.read")
    assert receipt["data"] == {
        "conversationId": cid,
        "userId": str(world.manager.pk),
        "messageId": sent.json()["id"],
        "readAt": read.json()["readAt"],
    }

    # And a socket's send is in the HTTP history, the same store.
    reply = await request(
        socket, {"type": "chat.send", "conversationId": cid, "message": "From the socket", "clientMessageId": "s-1"}
    )
    history = (await tenant.get(f"/conversations/{cid}/messages")).json()["messages"]
    assert [m["id"] for m in history] == [sent.json()["id"], reply["data"]["id"]]


# --- chat.read is one workflow (apps.messaging.services.achat_read) at both edges --------------


async def _read_both_ways(world, connect, who: str, cid: str, message_id: str) -> tuple[int, str]:
    """The HTTP status and the socket error code (or "ok") of the same read by `who`."""
    user = getattr(world, who)
    http = await (await AsyncApi.login(user)).post(f"/conversations/{cid}/read", {"messageId": message_id})
    socket = await connect(await token_for(user))
    reply = await request(socket, {"type": "chat.read", "conversationId": cid, "messageId": message_id})
    return http.status_code, ("ok" if reply["ok"] else reply["error"]["code"])


@pytest.mark.parametrize(
    ("who", "unknown_conversation", "expected"),
    [
        ("manager", False, (200, "ok")),
        ("admin", False, (403, "forbidden")),  # may read the history, not move a read position
        ("other_tenant", False, (403, "forbidden")),  # can see nothing of it
        ("landlord", False, (403, "forbidden")),  # owns the property, not in the conversation
        ("manager", True, (403, "forbidden")),  # no such conversation: same answer, ids cannot be probed
    ],
)
async def test_chat_read_answers_the_same_over_http_and_the_socket(
    connect, who: str, unknown_conversation: bool, expected: tuple[int, str]
) -> None:
    world = await sync_to_async(build_world)()
    tenant = await AsyncApi.login(world.tenant)
    cid = (await tenant.post("/conversations", {"participants": [str(world.manager.pk)]})).json()["id"]
    sent = await tenant.post(f"/conversations/{cid}/messages", {"message": "Hi", "clientMessageId": "r-1"})
    target = str(uuid.uuid4()) if unknown_conversation else cid
    assert await _read_both_ways(world, connect, who, target, sent.json()["id"]) == expected


async def _position(cid: str, user_id: object) -> tuple[str | None, object]:
    row = await sync_to_async(ConversationParticipant.objects.get)(conversation_id=cid, user_id=user_id)
    return row.last_read_message_id, row.last_read_at


async def test_chat_read_of_a_participant_removed_behind_the_cache_writes_nothing(connect) -> None:
    """The cached check passes, PostgreSQL (written first) refuses: no MongoDB mark, no event, on both edges."""
    world = await sync_to_async(build_world)()
    tenant, manager = await AsyncApi.login(world.tenant), await AsyncApi.login(world.manager)
    cid = (await tenant.post("/conversations", {"participants": [str(world.manager.pk)]})).json()["id"]
    message_id = (
        await tenant.post(f"/conversations/{cid}/messages", {"message": "Hi", "clientMessageId": "c-1"})
    ).json()["id"]
    reader = await connect(await token_for(world.manager))
    # The manager's membership is now in this process's directory cache ...
    assert (await request(reader, {"type": "chat.typing", "conversationId": cid}))["ok"]
    watcher = await connect(await token_for(world.tenant))
    assert (await request(watcher, {"type": "subscribe", "topic": topics.chat_messages(cid)}))["ok"]
    await settle(watcher, reader)

    def remove_without_signals() -> None:  # ... and leaves PostgreSQL with no access-change message
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM conversation_participants WHERE conversation_id = %s AND user_id = %s",
                [cid, str(world.manager.pk)],
            )

    await sync_to_async(remove_without_signals)()
    reply = await request(reader, {"type": "chat.read", "conversationId": cid, "messageId": message_id})
    assert reply["error"]["code"] == "forbidden"
    over_http = await manager.post(f"/conversations/{cid}/read", {"messageId": message_id})
    assert over_http.status_code == 403
    assert (await tenant.get(f"/conversations/{cid}/messages")).json()["messages"][0]["isRead"] is False
    assert await watcher.receive_nothing(timeout=0.4)


async def test_chat_read_that_fails_in_mongodb_puts_the_position_back_and_tells_no_one(connect, monkeypatch) -> None:
    """PostgreSQL is written first; when the MongoDB marks then fail, the position is restored,
    no `chat.read` goes out and both edges answer `unavailable`, so a retry starts from clean."""
    world = await sync_to_async(build_world)()
    tenant, manager = await AsyncApi.login(world.tenant), await AsyncApi.login(world.manager)
    cid = (await tenant.post("/conversations", {"participants": [str(world.manager.pk)]})).json()["id"]
    first, second = [
        (await tenant.post(f"/conversations/{cid}/messages", {"message": t, "clientMessageId": t})).json()["id"]
        for t in ("one", "two")
    ]
    assert (await manager.post(f"/conversations/{cid}/read", {"messageId": first})).status_code == 200
    before = await _position(cid, world.manager.pk)
    watcher = await connect(await token_for(world.tenant))
    assert (await request(watcher, {"type": "subscribe", "topic": topics.chat_messages(cid)}))["ok"]
    reader = await connect(await token_for(world.manager))
    await settle(watcher, reader)

    chat = (await get_realtime()).chat
    assert chat is not None

    async def mongo_fails(**kwargs: object) -> dict[str, object]:
        raise ProtocolError(errors.UNAVAILABLE, "the message store is unavailable")

    monkeypatch.setattr(chat, "mark_read", mongo_fails)
    over_http = await manager.post(f"/conversations/{cid}/read", {"messageId": second})
    assert over_http.status_code == 503 and over_http.json()["error"]["code"] == "unavailable"
    reply = await request(reader, {"type": "chat.read", "conversationId": cid, "messageId": second})
    assert reply["error"]["code"] == "unavailable"
    assert await _position(cid, world.manager.pk) == before
    assert await watcher.receive_nothing(timeout=0.4)

    monkeypatch.undo()  # the store is back: the retry goes through and is announced once
    assert (await request(reader, {"type": "chat.read", "conversationId": cid, "messageId": second}))["ok"]
    assert (await _position(cid, world.manager.pk))[0] == second
    assert (await next_event(watcher, "chat.read"))["data"]["messageId"] == second
