"""What gap repair after a broker reconnect stands on: the broker tells its owner of every
(re)connect before reading it, retries promptly, and the history answers many topics at once."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aredis
from django.conf import settings

from realtime import keys, topics
from realtime.broker import RedisBroker
from realtime.history import RedisHistory


@pytest.fixture
async def redis_client() -> AsyncIterator[aredis.Redis]:
    client = aredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


def fresh_topic() -> str:
    return topics.chat_messages(str(uuid.uuid4()))


async def test_the_broker_reports_each_reconnect_with_its_channels_and_retries_within_half_a_second(
    redis_client: aredis.Redis,
) -> None:
    name = f"pms-test-{uuid.uuid4().hex}"
    broker = RedisBroker(settings.REDIS_URL, lambda channel, payload: None, client_name=name)
    assert broker._backoff_max == 0.5  # the resubscribe follows Redis's return at once (issue #15)
    connects: asyncio.Queue[frozenset[str]] = asyncio.Queue()
    broker.on_connected = connects.put_nowait
    await broker.start()
    try:
        assert await asyncio.wait_for(connects.get(), 5) == frozenset()
        channel = fresh_topic()
        assert await broker.subscribe(channel)
        [client] = [c for c in await redis_client.client_list(_type="pubsub") if c["name"] == name]
        await redis_client.execute_command("CLIENT", "KILL", "ID", client["id"])
        assert await asyncio.wait_for(connects.get(), 5) == frozenset({channel})
        await broker.barrier()  # the new connection's SUBSCRIBE has run
        assert await redis_client.publish(channel, b"x") == 1
    finally:
        await broker.stop()


async def test_since_many_answers_each_topic_as_since_does(redis_client: aredis.Redis) -> None:
    history = RedisHistory(redis_client, max_events=5)
    kept, trimmed, never = fresh_topic(), fresh_topic(), fresh_topic()
    start = await history.position(kept)
    sent = [await history.publish(kept, "chat.message", {"n": n}) for n in range(3)]
    old = (await history.publish(trimmed, "chat.message", {"n": 0}))["offset"]
    for n in range(40):  # far past max_events: the oldest entries go
        await history.publish(trimmed, "chat.message", {"n": n})
    answers = await history.since_many(
        [(kept, start), (kept, sent[1]["offset"]), (trimmed, old), (never, start), (kept, "not an offset")]
    )
    assert answers[0] == (True, sent)
    assert answers[1] == (True, sent[2:])
    assert answers[2] == (False, [])  # trimmed past it
    assert answers[3] == (False, [])  # an offset of another topic's epoch
    assert answers[4] == (False, [])
    assert answers[:4] == [
        await history.since(t, o) for t, o in [(kept, start), (kept, sent[1]["offset"]), (trimmed, old), (never, start)]
    ]


async def test_since_many_after_the_history_was_lost_answers_false(redis_client: aredis.Redis) -> None:
    history = RedisHistory(redis_client)
    topic = fresh_topic()
    offset = (await history.publish(topic, "chat.message", {"n": 1}))["offset"]
    await redis_client.delete(keys.topic_epoch(topic), keys.topic_history(topic))  # as an empty restart
    await history.publish(topic, "chat.message", {"n": 2})  # a new epoch begins
    assert await history.since_many([(topic, offset)]) == [(False, [])]
