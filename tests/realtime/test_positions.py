"""Topic positions answered from what the process knows, on real Redis with a real pub/sub broker."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aredis
from django.conf import settings

from realtime import topics
from realtime.broker import RedisBroker
from realtime.events import normalize_external
from realtime.history import RedisHistory
from realtime.pipelined import tick_pipeline
from realtime.positions import Positions


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


class Process:
    """One process's broker, history and positions, with the runtime's wiring of `seen`."""

    def __init__(self, client: aredis.Redis) -> None:
        self.name = f"pms-test-{uuid.uuid4().hex}"
        self.history = RedisHistory(client)
        self.broker = RedisBroker(settings.REDIS_URL, self._on_message, client_name=self.name)
        self.positions = Positions(self.history, self.broker)
        self.dispatched: list[dict[str, Any]] = []

    def _on_message(self, channel: str, payload: bytes) -> None:
        frame = normalize_external(channel, payload)
        self.positions.seen(channel, frame)
        self.dispatched.append(frame)


@pytest.fixture
async def client() -> AsyncIterator[aredis.Redis]:
    redis_client = aredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    yield redis_client
    await redis_client.aclose()


@pytest.fixture
async def process(client: aredis.Redis) -> AsyncIterator[Process]:
    made = Process(client)
    await made.broker.start()
    yield made
    await made.broker.stop()


@pytest.fixture
def topic() -> str:
    return topics.chat_messages(str(uuid.uuid4()))


async def test_a_held_topic_is_answered_without_a_read_and_follows_the_events_dispatched(
    process: Process, topic: str
) -> None:
    assert await process.broker.subscribe(topic)
    first = await process.positions.position(topic)
    assert first == await process.history.position(topic)
    assert await process.positions.position(topic) == first
    assert process.positions.reads == 1

    sent = await process.history.publish(topic, "chat.message", {"n": 1})
    await wait_until(lambda: asyncio.sleep(0, len(process.dispatched) == 1))
    assert await process.positions.position(topic) == sent["offset"] == await process.history.position(topic)
    assert process.positions.reads == 1


async def test_a_released_topic_is_read_again(process: Process, topic: str) -> None:
    assert await process.broker.subscribe(topic)
    await process.positions.position(topic)
    process.positions.forget(topic)
    await process.broker.unsubscribe(topic)
    sent = await process.history.publish(topic, "chat.message", {"n": 1})  # published while not held
    assert await process.broker.subscribe(topic)
    assert await process.positions.position(topic) == sent["offset"]
    assert process.positions.reads == 2


async def test_nothing_is_learnt_or_trusted_across_a_reconnect(
    process: Process, client: aredis.Redis, topic: str
) -> None:
    assert await process.broker.subscribe(topic)
    await process.positions.position(topic)
    generation = process.broker.generation
    (killed,) = [c["id"] for c in await client.client_list() if c.get("name") == process.name]
    await client.execute_command("CLIENT", "KILL", "ID", killed)
    # Published while the pub/sub connection is down or just back: this process may never see it.
    sent = await process.history.publish(topic, "chat.message", {"n": 1})
    await wait_until(lambda: asyncio.sleep(0, process.broker.generation > generation and process.broker.connected))
    assert await process.positions.position(topic) == sent["offset"]
    assert process.positions.reads == 2


async def test_an_unconfirmed_subscription_teaches_nothing(topic: str, client: aredis.Redis) -> None:
    history = RedisHistory(client)
    broker = RedisBroker("redis://127.0.0.1:1/0", lambda ch, data: None, confirm_timeout=0.1, backoff_max=0.2)
    await broker.start()
    try:
        assert await broker.subscribe(topic) is False
        positions = Positions(history, broker)
        await positions.position(topic)
        await positions.position(topic)
        assert positions.reads == 2
    finally:
        await broker.stop()


async def test_positions_of_one_tick_are_read_in_one_round_trip(process: Process, client: aredis.Redis) -> None:
    names = [topics.notifications(str(uuid.uuid4())) for _ in range(50)]
    for name in names:
        assert await process.broker.subscribe(name)
    pipeline = tick_pipeline(client)
    flushes = pipeline.flushes
    offsets = await asyncio.gather(*(process.positions.position(name) for name in names))
    assert pipeline.flushes == flushes + 1  # every read of the tick in one pipelined round trip
    assert offsets == [await process.history.position(name) for name in names]
    assert process.positions.reads == 50
