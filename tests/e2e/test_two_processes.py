"""End-to-end: two real uvicorn processes (production flags) sharing Redis, PostgreSQL and MongoDB.

A chat message or an external publish reaches subscribers on both processes; `since`
recovers across processes; a retried `chat.send` is stored once wherever it lands; a
killed process's users go offline by expiry; SIGTERM closes sockets with 1012.
"""

import asyncio
import json
import signal
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aredis
from django.conf import settings
from pymongo import AsyncMongoClient

from realtime import topics
from tests.conftest import TEST_MONGO_DATABASE
from tests.e2e.conftest import (
    HOUSEKEEPING_SECONDS,
    PRESENCE_TTL_SECONDS,
    WAIT,
    Client,
    ClientFactory,
    ServerFactory,
    ServerProcess,
    alogin,
    kill,
)
from tests.factories import make_conversation, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Room:
    """Two processes, a tenant and a manager sharing one conversation."""

    a: ServerProcess
    b: ServerProcess
    tenant_id: str
    tenant_email: str
    manager_id: str
    manager_email: str
    cid: str

    @property
    def topic(self) -> str:
        return topics.chat_messages(self.cid)


@pytest.fixture
def room(start_servers: ServerFactory) -> Room:
    """Users and conversation committed (sync, in the test thread), then servers A and B up."""
    tenant = make_user()
    manager = make_user(user_type="property_manager")
    conversation = make_conversation(participants=(tenant, manager))
    a, b = start_servers(2)
    return Room(a, b, str(tenant.pk), tenant.email, str(manager.pk), manager.email, str(conversation.pk))


def send_frame(room: Room, text: str, client_message_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "chat.send",
        "conversationId": room.cid,
        "message": text,
        "clientMessageId": client_message_id or uuid.uuid4().hex,
    }


def as_event_data(reply: dict[str, Any]) -> dict[str, Any]:
    """A `chat.send` reply is the stored message plus the `offset` of its event; the event's data is the message."""
    return {key: value for key, value in reply.items() if key != "offset"}


def chat_message(message_id: str) -> Any:
    return lambda frame: frame["event"] == "chat.message" and frame["data"]["id"] == message_id


async def stored_count(conversation_id: str) -> int:
    client: AsyncMongoClient[Any] = AsyncMongoClient(settings.MONGO_URL, serverSelectionTimeoutMS=3000)
    try:
        return await client[TEST_MONGO_DATABASE]["chat_messages"].count_documents({"conversationId": conversation_id})
    finally:
        await client.close()


async def test_chat_send_through_one_process_reaches_subscribers_on_both_once(
    room: Room, open_client: ClientFactory
) -> None:
    tenant: Client = await open_client(room.a, await alogin(room.a, room.tenant_email), "json")
    manager: Client = await open_client(room.b, await alogin(room.a, room.manager_email), "msgpack")
    for client in (tenant, manager):
        await client.ok({"type": "subscribe", "topic": room.topic})

    message = await tenant.ok(send_frame(room, "The sink leaks"))
    assert message["senderId"] == room.tenant_id and message["recipientId"] == room.manager_id
    for client in (tenant, manager):
        event = await client.next_event(chat_message(message["id"]))
        assert event["topic"] == room.topic and event["data"] == as_event_data(message)
        assert event["offset"] == message["offset"]
    # And the other way round: B to A.
    answer = await manager.ok(send_frame(room, "On my way"))
    for client in (tenant, manager):
        event = await client.next_event(chat_message(answer["id"]))
        assert event["data"]["senderId"] == room.manager_id
    for client in (tenant, manager):
        await client.assert_no_more_stored_events()


async def test_external_publish_reaches_subscribers_on_both_processes(room: Room, open_client: ClientFactory) -> None:
    on_a: Client = await open_client(room.a, await alogin(room.a, room.tenant_email))
    on_b: Client = await open_client(room.b, await alogin(room.b, room.manager_email), "msgpack")
    for client in (on_a, on_b):
        await client.ok({"type": "subscribe", "topic": topics.SYSTEM_BROADCASTS})

    # Another service, `redis-cli PUBLISH system:broadcasts '{...}'` style: a plain JSON payload.
    nonce = uuid.uuid4().hex  # pub/sub ignores DB numbers: tell our broadcast from any other run's
    publisher = aredis.Redis.from_url(settings.REDIS_URL)
    try:
        receivers = await publisher.publish(
            topics.SYSTEM_BROADCASTS, json.dumps({"event": "broadcast", "data": {"text": "water off at 5", "n": nonce}})
        )
    finally:
        await publisher.aclose()
    assert receivers >= 2  # one Redis subscription per process, not per socket

    for client in (on_a, on_b):
        event = await client.next_event(lambda f: isinstance(f["data"], dict) and f["data"].get("n") == nonce)
        assert event["topic"] == topics.SYSTEM_BROADCASTS and event["event"] == "broadcast"
        assert event["data"] == {"text": "water off at 5", "n": nonce}
        assert "offset" not in event and event["ts"]


async def test_reconnect_with_since_to_the_other_process_recovers_missed_messages_in_order(
    room: Room, open_client: ClientFactory
) -> None:
    tenant_token = await alogin(room.a, room.tenant_email)
    manager_token = await alogin(room.b, room.manager_email)
    first: Client = await open_client(room.a, tenant_token)
    await first.ok({"type": "subscribe", "topic": room.topic})
    manager_b: Client = await open_client(room.b, manager_token)
    seen = await manager_b.ok(send_frame(room, "before the tunnel"))
    last_offset = (await first.next_event(chat_message(seen["id"])))["offset"]
    await first.ws.close()

    sent = [await manager_b.ok(send_frame(room, f"missed {n}")) for n in range(3)]

    second: Client = await open_client(room.b, tenant_token)
    data = await second.ok({"type": "subscribe", "topic": room.topic, "since": last_offset})
    assert data["recovered"] is True
    assert [frame["data"]["id"] for frame in data["missed"]] == [message["id"] for message in sent]
    assert [frame["data"] for frame in data["missed"]] == [as_event_data(message) for message in sent]
    assert [frame["offset"] for frame in data["missed"]] == [message["offset"] for message in sent]
    assert all(frame["event"] == "chat.message" and frame["offset"] for frame in data["missed"])
    assert data["offset"] == data["missed"][-1]["offset"]

    # Live continues with no gap and no duplicate, from either process.
    manager_a: Client = await open_client(room.a, manager_token)
    live = await manager_a.ok(send_frame(room, "back online?"))
    event = await second.next_event(chat_message(live["id"]))
    assert event["offset"] not in {data["offset"], *(frame["offset"] for frame in data["missed"])}
    await second.assert_no_more_stored_events()


async def test_chat_send_retried_on_the_other_process_is_stored_and_published_once(
    room: Room, open_client: ClientFactory
) -> None:
    tenant_token = await alogin(room.a, room.tenant_email)
    manager: Client = await open_client(room.b, await alogin(room.b, room.manager_email))
    await manager.ok({"type": "subscribe", "topic": room.topic})
    frame = send_frame(room, "Is the plumber coming?", client_message_id="retry-1")

    on_a: Client = await open_client(room.a, tenant_token)
    first = await on_a.ok(frame)
    await on_a.ws.close()  # the phone lost its connection before it saw the event
    on_b: Client = await open_client(room.b, tenant_token)
    retry = await on_b.ok(frame)

    assert retry["id"] == first["id"] and retry == first
    await manager.next_event(chat_message(first["id"]))
    await manager.assert_no_more_stored_events()
    assert await stored_count(room.cid) == 1


async def test_killed_process_users_go_offline_by_expiry(room: Room, open_client: ClientFactory) -> None:
    tenant: Client = await open_client(room.a, await alogin(room.a, room.tenant_email))
    watcher: Client = await open_client(room.b, await alogin(room.b, room.manager_email))
    query = {"type": "presence.query", "userIds": [room.tenant_id]}
    assert (await watcher.ok(query))[room.tenant_id]["status"] == "online"
    assert tenant.ws.state.name == "OPEN"

    kill(room.a)  # SIGKILL: no close frames, no presence cleanup
    killed_at = time.monotonic()
    # Redis expires the registration after the TTL; the bound past it is generous (a shared,
    # busy machine), the poll returns as soon as the status turns.
    deadline = killed_at + PRESENCE_TTL_SECONDS + HOUSEKEEPING_SECONDS + 30
    status = "online"
    while time.monotonic() < deadline:
        status = (await watcher.ok(query))[room.tenant_id]["status"]
        if status == "offline":
            break
        await asyncio.sleep(0.2)
    assert status == "offline", f"still {status} {time.monotonic() - killed_at:.1f} s after the kill"
    # The surviving process kept its own user online all along (its heartbeats refresh the TTL).
    own = await watcher.ok({"type": "presence.query", "userIds": [room.manager_id]})
    assert own[room.manager_id]["status"] == "online"


@pytest.fixture
def lone_user(transactional_db: None) -> Any:
    return make_user()


async def test_sigterm_closes_sockets_with_1012_and_the_process_exits(
    lone_user: Any, start_servers: ServerFactory, open_client: ClientFactory
) -> None:
    user = lone_user
    (server,) = start_servers(1)
    client: Client = await open_client(server, await alogin(server, user.email))
    await client.ok({"type": "subscribe", "topic": topics.notifications(str(user.pk))})

    server.signal(signal.SIGTERM)
    assert await client.close_code() == 1012
    # uvicorn finishes its shutdown, then re-raises the signal: the exit status is "killed by SIGTERM".
    assert await asyncio.wait_for(asyncio.to_thread(server.process.wait), WAIT) in (0, -signal.SIGTERM)
    assert "Finished server process" in server.logs()
