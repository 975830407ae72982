"""Recovery with `since`, live continuation with no gap or duplicate, and losing access."""

import asyncio

import msgpack
import pytest
from asgiref.sync import sync_to_async

from realtime import topics
from realtime.connections import get_redis, publish_command
from realtime.history import RedisHistory
from tests.consumers.conftest import token_for
from tests.factories import make_conversation

pytestmark = pytest.mark.django_db(transaction=True)


async def subscribe(socket, topic: str, ref: object = "sub", since: str | None = None) -> dict:
    frame = {"type": "subscribe", "ref": ref, "topic": topic}
    if since is not None:
        frame["since"] = since
    await socket.send_json_to(frame)
    reply = await socket.receive_json_from(timeout=2)
    assert reply["type"] == "reply" and reply["ref"] == ref and reply["ok"] is True, reply
    return reply["data"]


async def test_reconnect_with_since_recovers_missed_events_in_order(connect, new_user) -> None:
    user = await new_user()
    topic = topics.notifications(str(user.pk))
    history = RedisHistory(get_redis())
    first = await connect(await token_for(user))
    position = (await subscribe(first, topic))["offset"]
    live = await history.publish(topic, "notification", {"n": 0})
    assert await first.receive_json_from(timeout=2) == live
    await first.disconnect()

    missed = [await history.publish(topic, "notification", {"n": n}) for n in range(1, 4)]
    second = await connect(await token_for(user))
    data = await subscribe(second, topic, since=live["offset"])
    assert data["recovered"] is True
    assert data["missed"] == missed
    assert data["offset"] == missed[-1]["offset"]

    after = await history.publish(topic, "notification", {"n": 4})
    assert await second.receive_json_from(timeout=2) == after
    assert await second.receive_nothing(timeout=0.3)

    # The offset before everything recovers all five, in order.
    third = await connect(await token_for(user))
    everything = await subscribe(third, topic, since=position)
    assert [e["data"]["n"] for e in everything["missed"]] == [0, 1, 2, 3, 4]


async def test_unknown_or_foreign_epoch_offset_is_not_recovered(connect, new_user) -> None:
    user = await new_user()
    socket = await connect(await token_for(user))
    topic = topics.notifications(str(user.pk))
    for since in ["0123456789abcdef-1-0", "garbage"]:
        await socket.send_json_to({"type": "unsubscribe", "topic": topic})
        data = await subscribe(socket, topic, since=since)
        assert data["recovered"] is False and data["missed"] == []
        assert data["offset"]


async def test_events_published_during_subscribe_arrive_once_after_the_reply(connect, new_user) -> None:
    user = await new_user()
    topic = topics.notifications(str(user.pk))
    history = RedisHistory(get_redis())
    socket = await connect(await token_for(user))
    start = (await subscribe(socket, topic))["offset"]
    await socket.send_json_to({"type": "unsubscribe", "ref": "u", "topic": topic})
    await socket.receive_json_from(timeout=2)

    async def publish_many() -> list[dict]:
        sent = []
        for n in range(30):
            sent.append(await history.publish(topic, "notification", {"n": n}))
            await asyncio.sleep(0)
        return sent

    publisher = asyncio.ensure_future(publish_many())
    await asyncio.sleep(0.005)
    await socket.send_json_to({"type": "subscribe", "ref": "again", "topic": topic, "since": start})
    sent = await publisher
    reply = await socket.receive_json_from(timeout=2)
    assert reply["ref"] == "again" and reply["data"]["recovered"] is True
    received = list(reply["data"]["missed"])
    while len(received) < 30:
        frame = await socket.receive_json_from(timeout=2)
        assert frame["type"] == "event"
        received.append(frame)
    assert [e["data"]["n"] for e in received] == list(range(30))
    assert received == sent
    assert await socket.receive_nothing(timeout=0.3)


async def test_msgpack_socket_gets_the_same_events_as_binary_frames(connect, new_user) -> None:
    user = await new_user()
    socket = await connect(await token_for(user), subprotocols=["pms.v1.msgpack"])
    topic = topics.notifications(str(user.pk))
    await socket.send_to(bytes_data=msgpack.packb({"type": "subscribe", "ref": 1, "topic": topic}))
    reply = msgpack.unpackb(await socket.receive_from(timeout=2))
    assert reply["ok"] is True
    sent = await RedisHistory(get_redis()).publish(topic, "notification", {"x": 1})
    assert msgpack.unpackb(await socket.receive_from(timeout=2)) == sent


async def test_external_publish_reaches_subscribers_live_without_offset(connect, new_user) -> None:
    """A publisher outside the server (PUBLISH, or SPUBLISH on a cluster) reaches the sockets as is."""
    user = await new_user()
    socket = await connect(await token_for(user))
    await subscribe(socket, topics.SYSTEM_BROADCASTS)
    redis = get_redis()

    async def publish(payload: str) -> None:
        await redis.execute_command(publish_command(redis), topics.SYSTEM_BROADCASTS, payload)

    await publish('{"event": "broadcast", "data": {"text": "maintenance at 5"}}')
    event = await socket.receive_json_from(timeout=2)
    assert event["event"] == "broadcast" and event["data"] == {"text": "maintenance at 5"}
    assert "offset" not in event
    await publish("plain words")
    event = await socket.receive_json_from(timeout=2)
    assert event["event"] == "message" and event["data"] == "plain words"


async def test_removed_participant_is_told_unsubscribed_and_gets_nothing_more(connect, new_user) -> None:
    # Through the service (issue 10): a bare ORM delete of the row no longer tells the sockets.
    from apps.accounts.services import asession_authenticate
    from apps.messaging.services import conversation_participant_remove

    tenant, manager = await new_user(), await new_user(user_type="property_manager")
    conversation = await sync_to_async(make_conversation)(participants=(tenant, manager))
    topic = topics.chat_messages(str(conversation.pk))
    token = await token_for(tenant)
    socket = await connect(token)
    await subscribe(socket, topic)

    await sync_to_async(conversation_participant_remove)(
        caller=await asession_authenticate(token),  # leaving on their own
        conversation_id=conversation.pk,
        user_id=tenant.pk,
    )
    # The tenant's own "online" may reach the conversation after the subscribe: presence is
    # written for each batch of opens, off the connect path (as in test_recovery_race.py).
    frame = await socket.receive_json_from(timeout=3)
    while frame.get("event") == "presence":
        frame = await socket.receive_json_from(timeout=3)
    assert frame == {"type": "unsubscribed", "topic": topic, "reason": "forbidden"}
    await RedisHistory(get_redis()).publish(topic, "chat.message", {"message": "secret"})
    assert await socket.receive_nothing(timeout=0.5)


async def test_last_subscriber_leaving_while_another_joins_keeps_the_redis_subscription(connect, new_user) -> None:
    """Socket B joins a topic and its SUBSCRIBE is out while Redis confirms; meanwhile the removal
    of the topic's last other local subscriber reaches `_release`. Its UNSUBSCRIBE must not
    follow B's SUBSCRIBE, or B would silently get nothing live."""
    from realtime.runtime import get_realtime

    user = await new_user()
    topic = topics.notifications(str(user.pk))
    leaving = await connect(await token_for(user))
    await subscribe(leaving, topic)
    realtime = await get_realtime()
    broker = realtime.broker
    original = broker.subscribe
    sent_subscribe = asyncio.Event()
    release = asyncio.Event()

    async def subscribe_then_wait(channel: str) -> bool:
        confirmed = await original(channel)  # SUBSCRIBE is out (and confirmed)
        sent_subscribe.set()
        await release.wait()  # ... but the join is not finished yet
        return confirmed

    joining = await connect(await token_for(user))
    leaving_session = next(
        s for s in realtime.sessions if s.identity.user_id == str(user.pk) and realtime.is_subscribed(s, topic)
    )
    realtime.hub.unsubscribe(topic, leaving_session.conn)  # the leaving socket is out of the hub ...
    broker.subscribe = subscribe_then_wait
    try:
        await joining.send_json_to({"type": "subscribe", "ref": "join", "topic": topic})
        await asyncio.wait_for(sent_subscribe.wait(), 2)
        await realtime._release(topic)  # ... and its removal releases the topic now
        release.set()
        reply = await joining.receive_json_from(timeout=2)
        assert reply["ref"] == "join" and reply["ok"] is True
    finally:
        broker.subscribe = original
    assert topic in broker.channels
    sent = await RedisHistory(get_redis()).publish(topic, "notification", {"still": "live"})
    assert await joining.receive_json_from(timeout=2) == sent
