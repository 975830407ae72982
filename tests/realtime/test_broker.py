"""The broker on a real Redis: one subscription per channel per process, raw publishers, unsubscribe, reconnect."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aredis
from django.conf import settings

from realtime import metrics, topics
from realtime.broker import MessageCallback, RedisBroker

Received = asyncio.Queue[tuple[str, bytes]]


class Process:
    """One server process as far as pub/sub goes: a broker and what it received."""

    def __init__(self, name: str, on_message: MessageCallback | None = None, **options: Any) -> None:
        self.name = name
        self.received: Received = asyncio.Queue()
        self.broker = RedisBroker(settings.REDIS_URL, on_message or self.record, client_name=name, **options)

    def record(self, channel: str, data: bytes) -> None:
        self.received.put_nowait((channel, data))

    async def next(self) -> tuple[str, bytes]:
        return await asyncio.wait_for(self.received.get(), 2)

    async def assert_nothing(self, seconds: float = 0.5) -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(self.received.get(), seconds)


@pytest.fixture
async def processes() -> AsyncIterator[Callable[..., Awaitable[Process]]]:
    started: list[Process] = []

    async def start(on_message: MessageCallback | None = None, **options: float) -> Process:
        process = Process(f"pms-test-{uuid.uuid4().hex}", on_message, **options)
        await process.broker.start()
        started.append(process)
        return process

    yield start
    for process in started:
        await process.broker.stop()


@pytest.fixture
async def raw() -> AsyncIterator[aredis.Redis]:
    client = aredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


def fresh_channel() -> str:
    return topics.chat_messages(str(uuid.uuid4()))


async def wait_until(check: Callable[[], Awaitable[bool]]) -> None:
    async def poll() -> None:
        while not await check():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), 2)


async def numsub(raw: aredis.Redis, channel: str) -> int:
    [(_, count)] = await raw.pubsub_numsub(channel)
    return int(count)


async def pubsub_client_id(raw: aredis.Redis, name: str) -> str | None:
    for client in await raw.client_list(_type="pubsub"):
        if client["name"] == name:
            return str(client["id"])
    return None


async def test_two_processes_each_receive_one_publish_exactly_once(processes, raw: aredis.Redis) -> None:
    a, b = await processes(), await processes()
    channel = fresh_channel()
    assert await a.broker.subscribe(channel)
    assert await b.broker.subscribe(channel)
    assert await numsub(raw, channel) == 2  # one Redis subscription per process

    payload = b"\x92\xa4chat\x00\xff binary msgpack-ish"
    assert await a.broker.publish(channel, payload) == 2

    assert await a.next() == (channel, payload)
    assert await b.next() == (channel, payload)
    await a.assert_nothing()
    assert b.received.empty()


async def test_a_raw_publish_from_another_service_reaches_every_process(processes, raw: aredis.Redis) -> None:
    a, b = await processes(), await processes()
    channel = fresh_channel()
    other = topics.CONTROL_CHANNEL + ":" + uuid.uuid4().hex
    for broker in (a.broker, b.broker):
        assert await broker.subscribe(channel)
    assert await a.broker.subscribe(other)

    assert await raw.publish(channel, '{"event":"broadcast","data":{"text":"hi"}}') == 2

    for process in (a, b):
        assert await process.next() == (channel, b'{"event":"broadcast","data":{"text":"hi"}}')
    await a.assert_nothing()


async def test_unsubscribe_stops_delivery(processes, raw: aredis.Redis) -> None:
    a, b = await processes(), await processes()
    channel = fresh_channel()
    assert await a.broker.subscribe(channel)
    assert await b.broker.subscribe(channel)

    await b.broker.unsubscribe(channel)
    assert channel not in b.broker.channels
    await a.broker.publish(channel, b"after")  # may race the UNSUBSCRIBE on the wire: still never delivered

    assert await a.next() == (channel, b"after")
    await b.assert_nothing()

    async def one_subscriber_left() -> bool:
        return await numsub(raw, channel) == 1

    await wait_until(one_subscriber_left)


async def test_reader_resubscribes_every_channel_after_its_connection_is_killed(processes, raw: aredis.Redis) -> None:
    reconnects = metrics.value("broker.reconnects")
    a = await processes()
    channels = [fresh_channel() for _ in range(3)]
    for channel in channels:
        assert await a.broker.subscribe(channel)
    old_id = await pubsub_client_id(raw, a.name)
    assert old_id is not None

    assert await raw.execute_command("CLIENT", "KILL", "ID", old_id) == 1

    async def resubscribed() -> bool:
        new_id = await pubsub_client_id(raw, a.name)
        counts = [await numsub(raw, channel) for channel in channels]
        return new_id not in (None, old_id) and counts == [1, 1, 1]

    await wait_until(resubscribed)
    for channel in channels:
        assert await raw.publish(channel, b"after reconnect") == 1
        assert await a.next() == (channel, b"after reconnect")
    await a.assert_nothing(0.2)
    assert metrics.value("broker.reconnects") > reconnects


async def test_publishes_keep_arriving_when_polled_across_a_kill(processes, raw: aredis.Redis) -> None:
    a = await processes()
    channel = fresh_channel()
    assert await a.broker.subscribe(channel)
    client_id = await pubsub_client_id(raw, a.name)
    await raw.execute_command("CLIENT", "KILL", "ID", client_id)

    async def delivered() -> bool:
        await raw.publish(channel, b"ping")
        try:
            return await asyncio.wait_for(a.received.get(), 0.1) == (channel, b"ping")
        except TimeoutError:
            return False

    await wait_until(delivered)


async def test_a_failing_callback_does_not_stop_the_reader(processes) -> None:
    seen: list[bytes] = []

    def callback(channel: str, data: bytes) -> None:
        seen.append(data)
        if data == b"boom":
            raise ValueError("handler bug")
        a.record(channel, data)

    a = await processes(callback)
    channel = fresh_channel()
    assert await a.broker.subscribe(channel)
    await a.broker.publish(channel, b"boom")
    await a.broker.publish(channel, b"fine")
    assert await a.next() == (channel, b"fine")
    assert seen == [b"boom", b"fine"]


async def test_an_idle_reader_pings_and_survives(processes) -> None:
    a = await processes(ping_interval=0.1)
    channel = fresh_channel()
    assert await a.broker.subscribe(channel)
    reconnects = metrics.value("broker.reconnects")
    await asyncio.sleep(0.5)  # five silent intervals: answered pings keep the connection
    assert a.broker.connected
    assert metrics.value("broker.reconnects") == reconnects
    await a.broker.publish(channel, b"still here")
    assert await a.next() == (channel, b"still here")


async def test_subscribe_without_redis_returns_false_and_keeps_the_channel() -> None:
    broker = RedisBroker("redis://127.0.0.1:1/0", lambda ch, data: None, confirm_timeout=0.2, backoff_max=0.2)
    await broker.start()
    try:
        channel = fresh_channel()
        assert await broker.subscribe(channel) is False
        assert channel in broker.channels
        assert not broker.connected
    finally:
        await broker.stop()


async def test_barrier_returns_after_every_message_published_before_it(processes, raw: aredis.Redis) -> None:
    a = await processes()
    channel = fresh_channel()
    assert await a.broker.subscribe(channel)
    padding = "x" * 1000  # megabytes on the wire: the reader needs many reads to get through them
    async with raw.pipeline(transaction=False) as pipe:
        for n in range(2000):
            pipe.publish(channel, f"{n} {padding}")
        await pipe.execute()
    await asyncio.wait_for(a.broker.barrier(), 5)
    assert a.received.qsize() == 2000  # all dispatched before the barrier's answer
    assert [a.received.get_nowait()[1] for _ in range(2000)] == [f"{n} {padding}".encode() for n in range(2000)]
    # Barriers one after another, and next to the reader's own pings, each return.
    await asyncio.wait_for(asyncio.gather(*(a.broker.barrier() for _ in range(5))), 2)


async def test_barrier_outside_subscribed_mode_and_without_redis_returns() -> None:
    idle = RedisBroker(settings.REDIS_URL, lambda ch, data: None, client_name=f"pms-test-{uuid.uuid4().hex}")
    down = RedisBroker("redis://127.0.0.1:1/0", lambda ch, data: None, confirm_timeout=0.2, backoff_max=0.2)
    await idle.start()
    await down.start()
    try:

        async def connected() -> bool:
            return idle.connected

        await wait_until(connected)
        await asyncio.wait_for(idle.barrier(), 2)  # no channel held: PING answers with its argument
        await asyncio.wait_for(down.barrier(), 0.5)  # no connection: nothing can still arrive
    finally:
        await idle.stop()
        await down.stop()
