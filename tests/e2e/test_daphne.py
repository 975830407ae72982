"""`daphne pms.asgi:application` works: HTTP login, header auth, subscribe, events in both codecs."""

from typing import Any

import pytest
import redis.asyncio as aredis
from django.conf import settings

from realtime import topics
from realtime.history import RedisHistory
from tests.e2e.conftest import Client, ClientFactory, ServerFactory, alogin
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def user(transactional_db: None) -> Any:
    return make_user()


@pytest.mark.parametrize("codec", ["json", "msgpack"])
async def test_daphne_serves_login_auth_subscribe_and_events(
    codec: str, user: Any, start_servers: ServerFactory, open_client: ClientFactory
) -> None:
    (server,) = start_servers(1, kind="daphne")
    token = await alogin(server, user.email)
    client: Client = await open_client(server, token, codec)
    await client.send({"type": "ping", "ref": 1})  # answered by a pong (ref echoed), not a reply
    assert await client.recv() == {"type": "pong", "ref": 1}

    topic = topics.notifications(str(user.pk))
    data = await client.ok({"type": "subscribe", "topic": topic})
    assert data["topic"] == topic and data["offset"]

    redis = aredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    try:
        sent = await RedisHistory(redis).publish(topic, "notification", {"title": "Rent due", "codec": codec})
    finally:
        await redis.aclose()
    event = await client.next_event(lambda frame: frame["topic"] == topic)
    assert event == sent
    await client.assert_no_more_stored_events(timeout=0.3)
