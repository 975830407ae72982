"""The broker on a real Redis: one subscription per channel per process, raw publishers, unsubscribe, reconnect,
and a connection that stops answering (a frozen Redis) given up within its liveness bound."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis.asyncio as aredis
from django.conf import settings

from realtime import metrics, topics
from realtime.broker import MessageCallback, RedisBroker, make_broker

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


class FreezableProxy:
    """A TCP relay to the suite's Redis that can stop passing bytes with every connection kept open.

    To a client that is a frozen Redis (SIGSTOP): connects succeed, nothing is answered, and
    what was sent meanwhile arrives once it thaws. The Redis the other tests share is untouched.
    """

    def __init__(self, url: str) -> None:
        self._url = urlsplit(url)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[Any]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        """Listens on a free port; returns the Redis URL that goes through the relay."""
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return urlunsplit(self._url._replace(netloc=f"127.0.0.1:{port}"))

    def freeze(self) -> None:
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    async def stop(self) -> None:
        """Closes every connection; each relay then ends by itself (asyncio logs a cancelled one)."""
        assert self._server is not None
        self._server.close()
        self.thaw()
        for writer in self._writers:
            writer.close()
        await asyncio.wait_for(asyncio.gather(*self._relays, return_exceptions=True), 5)
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        self._writers.append(writer)
        upstream_reader, upstream_writer = await asyncio.open_connection(self._url.hostname, self._url.port)
        self._writers.append(upstream_writer)
        await asyncio.gather(self._pump(reader, upstream_writer), self._pump(upstream_reader, writer))

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                await self._flowing.wait()
                sink.write(data)
                await sink.drain()
        except OSError:
            pass
        finally:
            sink.close()


async def test_the_liveness_bound_stays_under_the_command_timeout() -> None:
    """A publisher gives up after `command_timeout`: every freeze that long must end the connection."""
    broker = make_broker("redis://127.0.0.1:1/0", lambda ch, data: None)
    tight = make_broker("redis://127.0.0.1:1/0", lambda ch, data: None, command_timeout=1.0)
    try:
        assert (broker._ping_interval, broker._pong_timeout) == (2.0, 2.0)
        assert tight._ping_interval + tight._pong_timeout < 1.0
    finally:
        await broker.stop()
        await tight.stop()
    with pytest.raises(ValueError, match="must stay under command_timeout"):
        RedisBroker("redis://127.0.0.1:1/0", lambda ch, data: None, command_timeout=5.0, ping_interval=15.0)
    with pytest.raises(ValueError, match="must stay under command_timeout"):
        RedisBroker("redis://127.0.0.1:1/0", lambda ch, data: None, command_timeout=2.0, pong_timeout=2.0)
    with pytest.raises(ValueError, match="positive"):
        RedisBroker("redis://127.0.0.1:1/0", lambda ch, data: None, pong_timeout=0)


async def test_a_connection_that_stops_answering_is_given_up_and_reconnected_when_redis_answers(
    raw: aredis.Redis,
) -> None:
    """Frozen, the connection stays open and silent: the reader gives it up within ping_interval +
    pong_timeout (default 2 s + 2 s), and `on_connected` follows as soon as Redis answers again."""
    proxy = FreezableProxy(settings.REDIS_URL)
    url = await proxy.start()
    name = f"pms-test-{uuid.uuid4().hex}"
    received: Received = asyncio.Queue()
    broker = RedisBroker(url, lambda channel, data: received.put_nowait((channel, data)), client_name=name)
    bound = broker._ping_interval + broker._pong_timeout
    connects: asyncio.Queue[frozenset[str]] = asyncio.Queue()
    broker.on_connected = connects.put_nowait
    loop = asyncio.get_running_loop()
    await broker.start()
    try:
        assert await asyncio.wait_for(connects.get(), 5) == frozenset()
        channel = fresh_channel()
        assert await broker.subscribe(channel)
        generation = broker.generation

        proxy.freeze()
        frozen_at = loop.time()
        async with asyncio.timeout(bound + 2.0):  # 2 s of slack: two busy cores shared with other suites
            while broker.connected:
                await asyncio.sleep(0.02)
        assert loop.time() - frozen_at >= broker._ping_interval  # no PING before the silence
        # Reconnecting cannot complete while it is frozen: the handshake waits for its answers.
        await asyncio.sleep(0.5)  # a window for a wrong early `on_connected`, not a wait for a condition
        assert connects.empty() and not broker.connected

        proxy.thaw()
        assert await asyncio.wait_for(connects.get(), 5) == frozenset({channel})
        assert broker.generation == generation + 1
        await broker.barrier()  # the new connection's SUBSCRIBE has run

        async def one_subscriber() -> bool:  # the old connection's goes once the relay passes its close on
            return await numsub(raw, channel) == 1

        await wait_until(one_subscriber)
        assert await raw.publish(channel, b"after the freeze") == 1
        assert await asyncio.wait_for(received.get(), 2) == (channel, b"after the freeze")
    finally:
        await broker.stop()
        await proxy.stop()
