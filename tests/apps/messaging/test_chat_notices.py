"""Chat notifications: a participant with no socket open gets one per conversation until they read it."""

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from pymongo import MongoClient

from apps.events.models import NoticeOutbox
from apps.messaging import chat_notices
from realtime import topics
from realtime.runtime import get_realtime
from tests.apps.api_world import World, build_world
from tests.apps.messaging.http_chat import AsyncApi
from tests.apps.messaging.test_conversations_api import send, start
from tests.consumers.conftest import connect, realtime_core, token_for  # noqa: F401  (fixtures)
from tests.consumers.test_chat import request

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("realtime_core")]


@pytest.fixture
async def world() -> World:
    return await sync_to_async(build_world)()


def chat_notifications(user: Any, conversation_id: str) -> list[dict[str, Any]]:
    client: MongoClient[dict[str, Any]] = MongoClient(settings.MONGO_URL)
    try:
        query = {"userId": str(user.pk), "type": chat_notices.NOTICE_CHAT, "referenceId": conversation_id}
        return list(client[settings.MONGO_DATABASE]["notifications"].find(query).sort("_id", 1))
    finally:
        client.close()


async def settled() -> None:
    """Every send so far was considered (the batch task of this loop) and its notices delivered: the
    relay task stores them after the commit, so wait (bounded) until the notice outbox is empty."""
    await chat_notices.noticer(await get_realtime()).drain()
    pending = NoticeOutbox.objects.all().aexists
    async with asyncio.timeout(15):
        while await pending():
            await asyncio.sleep(0.02)


async def test_an_offline_participant_gets_one_notification_per_conversation_until_read(world: World) -> None:
    tenant, manager = await AsyncApi.login(world.tenant), await AsyncApi.login(world.manager)
    cid = (await start(tenant, world.manager))["id"]
    sent = [(await send(tenant, cid, f"The sink leaks, take {i}")).json() for i in range(3)]
    await settled()
    [first] = await sync_to_async(chat_notifications)(world.manager, cid)
    assert first["message"] == "The sink leaks, take 0" and first["expiresAt"] is not None
    assert first["title"].startswith("New message from")
    assert first["actions"][0]["url"] == f"/api/v1/conversations/{cid}/messages"
    assert await sync_to_async(chat_notifications)(world.tenant, cid) == []  # never for one's own messages
    assert (await manager.get("/notifications/unread-count")).json() == {"unread": 1}

    # Reading the conversation reads its notification; the next message notifies again (once).
    assert (await manager.post(f"/conversations/{cid}/read", {"messageId": sent[-1]["id"]})).status_code == 200
    assert (await manager.get("/notifications/unread-count")).json() == {"unread": 0}
    await send(tenant, cid, "Still leaking")
    await send(tenant, cid, "Really")
    await settled()
    notified = await sync_to_async(chat_notifications)(world.manager, cid)
    assert [(n["message"], bool(n["isRead"])) for n in notified] == [
        ("The sink leaks, take 0", True),
        ("Still leaking", False),
    ]
    assert (await manager.get("/notifications/unread-count")).json() == {"unread": 1}


async def test_a_participant_with_a_socket_open_gets_none(world: World, connect: Any) -> None:  # noqa: F811
    socket = await connect(await token_for(world.manager))
    assert (await request(socket, {"type": "subscribe", "topic": topics.notifications(str(world.manager.pk))}))["ok"]
    # Presence is registered off the connect path (one round trip per batch of opens): wait until
    # it is written rather than assume a command's reply comes after it.
    realtime = await get_realtime()
    assert realtime.presence is not None
    opening = set(realtime._opening.values())
    if opening:
        await asyncio.wait(opening, timeout=10)
    assert (await realtime.presence.presence.query([str(world.manager.pk)]))[str(world.manager.pk)][
        "status"
    ] != "offline"
    tenant = await AsyncApi.login(world.tenant)
    cid = (await start(tenant, world.manager, world.landlord))["id"]
    await send(tenant, cid, "Hello both")
    await settled()
    assert await sync_to_async(chat_notifications)(world.manager, cid) == []
    assert len(await sync_to_async(chat_notifications)(world.landlord, cid)) == 1  # the landlord has no socket


async def test_a_recipient_with_a_socket_in_this_process_is_online_without_asking_redis(
    world: World,
    connect: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await connect(await token_for(world.manager))
    realtime = await get_realtime()
    assert realtime.presence is not None and realtime.has_socket(str(world.manager.pk))
    opening = set(realtime._opening.values())  # its presence registration (and announcement) first
    if opening:
        await asyncio.wait(opening, timeout=10)
    asked: list[list[str]] = []
    query = realtime.presence.presence.query

    async def counting_query(user_ids: list[str]) -> Any:
        asked.append(list(user_ids))
        return await query(user_ids)

    monkeypatch.setattr(realtime.presence.presence, "query", counting_query)
    tenant = await AsyncApi.login(world.tenant)
    cid = (await start(tenant, world.manager, world.landlord))["id"]
    await send(tenant, cid, "Hello both")
    await settled()
    assert asked == [[str(world.landlord.pk)]]  # the manager's socket here answered for them
    assert await sync_to_async(chat_notifications)(world.manager, cid) == []
    assert len(await sync_to_async(chat_notifications)(world.landlord, cid)) == 1
