"""Presence (online, away, offline; multi-device; query scope), maintenance workers, notifications over sockets."""

import asyncio
from typing import Any

import pytest
import redis
from asgiref.sync import sync_to_async

from realtime import keys, topics
from realtime.runtime import get_realtime
from tests.consumers.conftest import close_code, token_for
from tests.consumers.test_chat import next_event, request
from tests.factories import make_conversation

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def raw_redis(clean_redis: redis.Redis) -> redis.Redis:
    """A blocking client of the test Redis (a cluster client with PMS_TEST_REDIS_CLUSTER=1)."""
    return clean_redis


async def presence_of(socket: Any, user_id: str) -> dict[str, Any]:
    """The next `presence` event about `user_id` (others' are skipped)."""
    while True:
        event = await next_event(socket, "presence")
        if event["data"]["userId"] == user_id:
            return event


async def test_presence_online_across_devices_then_offline_told_to_the_conversation(
    connect, new_user, raw_redis
) -> None:
    tenant, manager = await new_user(), await new_user(user_type="property_manager")
    conversation = await sync_to_async(make_conversation)(participants=(tenant, manager))
    watcher = await connect(await token_for(manager))
    assert (await request(watcher, {"type": "subscribe", "topic": topics.chat_messages(str(conversation.pk))}))["ok"]

    phone = await connect(await token_for(tenant))
    # The watcher's own "online" may reach its conversation after the subscribe (presence is
    # announced just after the accept, off the connect path): only the tenant's events count here.
    online = await presence_of(watcher, str(tenant.pk))
    assert online["data"]["userId"] == str(tenant.pk) and online["data"]["status"] == "online"
    assert "offset" not in online
    assert raw_redis.hget(f"chat:presence:{tenant.pk}", "status") == "online"
    assert 0 < raw_redis.ttl(f"chat:presence:{tenant.pk}") <= 300

    laptop = await connect(await token_for(tenant))
    await phone.disconnect()
    answer = await request(watcher, {"type": "presence.query", "userIds": [str(tenant.pk)]})
    assert answer["data"][str(tenant.pk)]["status"] == "online"

    await laptop.disconnect()
    offline = await presence_of(watcher, str(tenant.pk))
    assert offline["data"]["status"] == "offline"
    answer = await request(watcher, {"type": "presence.query", "userIds": [str(tenant.pk)]})
    assert answer["data"][str(tenant.pk)]["status"] == "offline"


async def test_presence_query_leaves_out_strangers_and_rejects_bad_ids(connect, new_user) -> None:
    me, stranger = await new_user(), await new_user()
    socket = await connect(await token_for(me))
    await connect(await token_for(stranger))
    answer = await request(socket, {"type": "presence.query", "userIds": [str(stranger.pk), str(me.pk)]})
    assert set(answer["data"]) == {str(me.pk)}
    for bad in ["x", ["not-a-uuid"], [1], [str(me.pk)] * 201]:
        reply = await request(socket, {"type": "presence.query", "userIds": bad})
        assert reply["ok"] is False and reply["error"]["code"] == "bad_request"
    admin = await connect(await token_for(await new_user(user_type="admin")))
    answer = await request(admin, {"type": "presence.query", "userIds": [str(stranger.pk)]})
    assert answer["data"][str(stranger.pk)]["status"] == "online"


async def test_maintenance_staff_are_active_workers_while_connected(connect, new_user, raw_redis) -> None:
    worker = await new_user(roles=("maintenance_staff",))
    socket = await connect(await token_for(worker))
    for _ in range(50):  # presence is recorded just after the accept, off the connect path
        if str(worker.pk) in raw_redis.smembers("maintenance:active:workers"):
            break
        await asyncio.sleep(0.02)
    assert str(worker.pk) in raw_redis.smembers("maintenance:active:workers")
    assert 0 < raw_redis.ttl(keys.maintenance_worker(str(worker.pk))) <= 90
    await socket.disconnect()
    assert str(worker.pk) not in raw_redis.smembers("maintenance:active:workers")


async def test_notifications_live_and_read_from_another_device(connect, new_user, raw_redis) -> None:
    user = await new_user()
    phone, laptop = await connect(await token_for(user)), await connect(await token_for(user))
    topic = topics.notifications(str(user.pk))
    for socket in (phone, laptop):
        assert (await request(socket, {"type": "subscribe", "topic": topic}))["ok"]
    service = (await get_realtime()).notifications
    assert service is not None
    first = await service.notify(str(user.pk), type="maintenance", title="Plumber at 3", message="Door code 1234")
    await service.notify(str(user.pk), type="payment", title="Rent due", message="Due on the 1st")
    for socket in (phone, laptop):
        assert (await next_event(socket, "notification"))["data"]["id"] == first["id"]
    assert raw_redis.get(f"notifications:count:{user.pk}") == "2"

    reply = await request(laptop, {"type": "notifications.read", "ids": [first["id"]]})
    assert reply["data"] == {"unread": 1}
    told = await next_event(phone, "notification.read")
    assert told["data"]["ids"] == [first["id"]]
    assert (await request(phone, {"type": "notifications.read", "all": True}))["data"] == {"unread": 0}
    assert raw_redis.get(f"notifications:count:{user.pk}") == "0"


@pytest.mark.parametrize("frame", [{}, {"ids": "x"}, {"all": "yes"}, {"ids": [], "all": True}, {"ids": ["nope"]}])
async def test_bad_notification_reads_are_bad_requests(connect, new_user, frame: dict) -> None:
    socket = await connect(await token_for(await new_user()))
    reply = await request(socket, {"type": "notifications.read", **frame})
    assert reply["ok"] is False and reply["error"]["code"] == "bad_request"


async def test_expired_session_is_closed_4401_by_housekeeping(connect, new_user) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from apps.accounts.models import Session

    user = await new_user()
    token = await token_for(user)
    socket = await connect(token)
    realtime = await get_realtime()
    session = next(iter(realtime.sessions))
    object.__setattr__(session.identity, "expires_at", timezone.now() - timedelta(seconds=1))
    await sync_to_async(Session.objects.filter(pk=token.split(".")[0]).update)(expires_at=timezone.now())
    await realtime.housekeep()
    assert await close_code(socket) == 4401
