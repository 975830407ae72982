"""A message posted over HTTP reaches the sockets subscribed to the conversation, as `chat.send` does."""

import pytest
from asgiref.sync import sync_to_async

from realtime import topics
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
    assert receipt["data"] == {"conversationId": cid, "userId": str(world.manager.pk),
                               "messageId": sent.json()["id"], "readAt": read.json()["readAt"]}

    # And a socket's send is in the HTTP history, the same store.
    reply = await request(socket, {"type": "chat.send", "conversationId": cid, "message": "From the socket",
                                   "clientMessageId": "s-1"})
    history = (await tenant.get(f"/conversations/{cid}/messages")).json()["messages"]
    assert [m["id"] for m in history] == [sent.json()["id"], reply["data"]["id"]]
