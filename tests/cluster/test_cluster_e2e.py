"""End-to-end on a 3-shard Redis Cluster: two real uvicorn processes (production flags) on
`redis+cluster://...`, events by SPUBLISH/SSUBSCRIBE, recovery with `since` across processes,
and a master SIGKILLed mid-traffic: its replica is promoted, no acknowledged chat message is
lost (MongoDB has each), recovery from the old master's life answers `recovered: false`, and the
sockets work on (the one subscribed to the failed shard's topic after its 1012 and reconnect)."""

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from django.conf import settings
from pymongo import AsyncMongoClient
from redis.crc import key_slot

from pms.rediscluster import LocalCluster
from realtime import connections, topics
from tests.conftest import TEST_MONGO_DATABASE
from tests.e2e.conftest import Client, ClientFactory, ServerFactory, alogin
from tests.e2e.test_two_processes import Room, as_event_data, chat_message, send_frame
from tests.factories import make_conversation, make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


@pytest.fixture
def room(start_servers: ServerFactory, redis_cluster: LocalCluster) -> Room:
    tenant = make_user()
    manager = make_user(user_type="property_manager")
    conversation = make_conversation(participants=(tenant, manager))
    assert settings.REDIS_URL == redis_cluster.url
    a, b = start_servers(2)
    return Room(a, b, str(tenant.pk), tenant.email, str(manager.pk), manager.email, str(conversation.pk))


async def stored_ids(conversation_id: str) -> set[str]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(settings.MONGO_URL, serverSelectionTimeoutMS=3000)
    try:
        cursor = client[TEST_MONGO_DATABASE]["chat_messages"].find({"conversationId": conversation_id}, {"_id": 1})
        return {str(document["_id"]) async for document in cursor}
    finally:
        await client.close()


async def test_chat_and_external_spublish_reach_both_processes_and_since_recovers_across_them(
    room: Room, open_client: ClientFactory
) -> None:
    tenant_token = await alogin(room.a, room.tenant_email)
    tenant: Client = await open_client(room.a, tenant_token)
    manager: Client = await open_client(room.b, await alogin(room.b, room.manager_email), "msgpack")
    for client in (tenant, manager):
        await client.ok({"type": "subscribe", "topic": room.topic})
        await client.ok({"type": "subscribe", "topic": topics.SYSTEM_BROADCASTS})

    message = await tenant.ok(send_frame(room, "The sink leaks"))
    for client in (tenant, manager):
        event = await client.next_event(chat_message(message["id"]))
        assert event["data"] == as_event_data(message) and event["offset"] == message["offset"]

    # An external publisher on a cluster: SPUBLISH on the exact channel name.
    nonce = uuid.uuid4().hex
    publisher = connections.new_async_redis(settings.REDIS_URL)
    try:
        receivers = await publisher.spublish(
            topics.SYSTEM_BROADCASTS, json.dumps({"event": "broadcast", "data": {"n": nonce}})
        )
    finally:
        await publisher.aclose()
    assert receivers == 2  # one shard subscription per process, on the shard owning the channel
    for client in (tenant, manager):
        event = await client.next_event(lambda f: isinstance(f["data"], dict) and f["data"].get("n") == nonce)
        assert event["topic"] == topics.SYSTEM_BROADCASTS

    await tenant.ws.close()
    missed = [await manager.ok(send_frame(room, f"missed {n}")) for n in range(3)]
    again: Client = await open_client(room.b, tenant_token)
    data = await again.ok({"type": "subscribe", "topic": room.topic, "since": message["offset"]})
    assert data["recovered"] is True
    assert [frame["data"]["id"] for frame in data["missed"]] == [m["id"] for m in missed]
    live = await manager.ok(send_frame(room, "live again"))
    assert (await again.next_event(chat_message(live["id"])))["offset"] == live["offset"]


async def _send_acknowledged(client: Client, room: Room, text: str, deadline: float) -> dict[str, Any]:
    """`chat.send` until acknowledged (the same clientMessageId: stored once however often it is retried)."""
    frame = send_frame(room, text)
    while True:
        reply = await client.request(frame)
        if reply["ok"] is True:
            return dict(reply["data"])
        assert time.monotonic() < deadline, reply
        await asyncio.sleep(0.1)


async def test_a_master_killed_mid_traffic_loses_no_acknowledged_message_and_sockets_keep_working(
    room: Room, open_client: ClientFactory, redis_cluster: LocalCluster
) -> None:
    tenant_token = await alogin(room.a, room.tenant_email)
    tenant: Client = await open_client(room.a, tenant_token)
    manager: Client = await open_client(room.b, await alogin(room.b, room.manager_email))
    await tenant.ok({"type": "subscribe", "topic": room.topic})
    first = await manager.ok(send_frame(room, "before"))
    await tenant.next_event(chat_message(first["id"]))

    slot = key_slot(room.topic.encode())
    victim = redis_cluster.master_of_slot(slot)
    acknowledged: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30

    async def traffic() -> None:
        for n in range(40):
            acknowledged.append(await _send_acknowledged(manager, room, f"during {n}", deadline))

    sending = asyncio.create_task(traffic())
    while len(acknowledged) < 5:  # mid-traffic
        await asyncio.sleep(0.01)
    redis_cluster.kill(victim)
    killed_at = time.monotonic()
    promoted = redis_cluster.wait_failover(victim, slot)
    failover_seconds = time.monotonic() - killed_at
    await asyncio.wait_for(sending, timeout=40)
    assert promoted is not victim and failover_seconds < 20

    # MongoDB has every acknowledged message, once.
    ids = [m["id"] for m in [first, *acknowledged]]
    assert len(set(ids)) == len(ids)
    assert set(ids) <= await stored_ids(room.cid)

    # The promoted master cannot show what the old one handed out last (replication is
    # asynchronous), so the topic's epoch ended with the old master's life
    # (realtime/lua/history_life.lua). Process A's gap repair therefore closed the tenant's socket
    # 1012, as after any lost position; the manager's, subscribed to nothing, stayed open.
    assert await tenant.close_code() == 1012
    assert manager.ws.state.name == "OPEN"
    # The client does what it does after any 1012: reconnects with `since`, hears recovered: false
    # (it reloads the conversation from chat.history, where MongoDB has every message), and gets
    # new messages live again.
    tenant = await open_client(room.a, tenant_token)
    data = await tenant.ok({"type": "subscribe", "topic": room.topic, "since": first["offset"]})
    assert data["recovered"] is False and data["missed"] == []
    after = await manager.ok(send_frame(room, "after the failover"))
    assert (await tenant.next_event(chat_message(after["id"])))["data"]["id"] == after["id"]
    assert tenant.ws.state.name == "OPEN" and manager.ws.state.name == "OPEN"

    # Recovery from before the kill, on the other process too: honestly not.
    late: Client = await open_client(room.b, tenant_token)
    data = await late.ok({"type": "subscribe", "topic": room.topic, "since": first["offset"]})
    assert data["recovered"] is False and data["missed"] == []
    # From the new epoch's offsets, recovery is whole again.
    data = await late.ok({"type": "subscribe", "topic": room.topic, "since": after["offset"]})
    assert data["recovered"] is True
    redis_cluster.restart(victim)  # back as a replica, for the tests after this one
