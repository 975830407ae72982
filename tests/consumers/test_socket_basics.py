"""Handshake, authentication, ping and subscribe over the real consumer."""

import msgpack
import pytest

from realtime import topics
from realtime.connections import get_redis
from realtime.history import RedisHistory
from tests.consumers.conftest import token_for

pytestmark = pytest.mark.django_db(transaction=True)


async def test_header_auth_ping_and_live_notification(connect, new_user) -> None:
    user = await new_user()
    socket = await connect(await token_for(user))
    await socket.send_json_to({"type": "ping", "ref": 1})
    assert await socket.receive_json_from(timeout=2) == {"type": "pong", "ref": 1}

    topic = topics.notifications(str(user.pk))
    await socket.send_json_to({"type": "subscribe", "ref": "s", "topic": topic})
    reply = await socket.receive_json_from(timeout=2)
    assert reply["type"] == "reply" and reply["ref"] == "s" and reply["ok"] is True
    assert reply["data"]["topic"] == topic and reply["data"]["offset"]

    frame = await RedisHistory(get_redis()).publish(topic, "notification", {"title": "hello"})
    event = await socket.receive_json_from(timeout=2)
    assert event == frame


async def test_first_frame_auth_and_msgpack(connect, new_user) -> None:
    user = await new_user()
    socket = await connect(subprotocols=["pms.v1.msgpack"])
    await socket.send_to(bytes_data=msgpack.packb({"type": "auth", "ref": 9, "token": await token_for(user)}))
    reply = msgpack.unpackb(await socket.receive_from(timeout=2))
    assert reply == {"type": "reply", "ref": 9, "ok": True, "data": {"userId": str(user.pk), "userType": "tenant"}}


async def test_other_socket_paths_are_refused_at_the_handshake(realtime_core) -> None:
    from channels.testing import WebsocketCommunicator

    from pms.asgi import application

    communicator = WebsocketCommunicator(application, "/ws/other/")
    connected, _ = await communicator.connect(timeout=3)
    assert connected is False
