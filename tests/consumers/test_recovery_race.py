"""Recovery racing live delivery: an event in `missed` is never delivered again live (and none is lost).

`subscribe` with `since` registers the socket for live events (held back until the reply
is out), then reads the topic's history. An event stored and PUBLISHed just before that
read is in `missed`; its pub/sub copy reaches this process on another Redis connection and
may be handled by the broker's reader only after the reply went out and the held events
were released (a reader busy fanning out, as in a reconnect storm). That late copy must
not reach the socket a second time.
"""

import asyncio
import random
from typing import Any, cast

import pytest
from asgiref.sync import sync_to_async
from redis.asyncio.cluster import RedisCluster

from realtime import metrics, topics
from realtime.connections import get_redis, is_cluster
from realtime.history import RedisHistory, parse_offset
from realtime.runtime import get_realtime
from tests.consumers.conftest import token_for
from tests.factories import make_conversation

pytestmark = pytest.mark.django_db(transaction=True)


async def _conversation_topic(new_user: Any) -> tuple[str, str]:
    """A conversation topic and a token of an admin participant (as in the benchmark's storm)."""
    admin, tenant = await new_user(user_type="admin"), await new_user()
    conversation = await sync_to_async(make_conversation)(participants=(admin, tenant))
    return topics.chat_messages(str(conversation.pk)), await token_for(admin)


async def _subscribe(socket: Any, topic: str, ref: object, since: str | None = None) -> dict[str, Any]:
    """Sends `subscribe` and returns the reply's data (only presence announcements can precede it here)."""
    frame: dict[str, Any] = {"type": "subscribe", "ref": ref, "topic": topic}
    if since is not None:
        frame["since"] = since
    await socket.send_json_to(frame)
    reply = await _receive(socket, timeout=5)
    assert reply["type"] == "reply" and reply["ref"] == ref and reply["ok"] is True, reply
    return reply["data"]


async def _receive(socket: Any, timeout: float = 2) -> dict[str, Any]:
    """The next frame other than a presence announcement: the test's own sockets coming online
    are announced to the conversation whenever their batch of opens is written."""
    while True:
        frame: dict[str, Any] = await socket.receive_json_from(timeout=timeout)
        if frame.get("event") != "presence":
            return frame


async def _nothing_more(socket: Any, timeout: float) -> bool:
    """`receive_nothing`, letting presence announcements pass."""
    while not await socket.receive_nothing(timeout=timeout):
        if (await socket.receive_json_from(timeout=2)).get("event") != "presence":
            return False
    return True


class _LaggingReader:
    """Makes the broker's reader hand this topic's messages to the hub only when `catch_up()` is called.

    The broker's real Redis connection keeps receiving; only the reader's dispatch of
    messages on `topic` waits, like a reader that is behind. Installed on the live pub/sub
    connection the topic arrives on (on a cluster: the shard owning its slot); a broker
    barrier (a PING answered on it) flushes the read already in progress so the next one is gated.
    """

    def __init__(self, broker: Any, topic: str) -> None:
        self._broker = broker
        self._conn = broker.connection_for(topic)
        assert self._conn is not None, "the broker is not connected"
        self._channel = topic.encode()
        self._open = asyncio.Event()
        self._entered = asyncio.Event()
        self.waiting = 0
        self._original = self._conn.read_response

    async def _read_response(self, *args: Any, **kwargs: Any) -> Any:
        self._entered.set()
        response = await self._original(*args, **kwargs)
        # `message` from SUBSCRIBE, `smessage` from SSUBSCRIBE (a cluster shard).
        if (
            isinstance(response, list)
            and response[0] in (b"message", b"smessage")
            and response[1:2] == [self._channel]
            and not self._open.is_set()
        ):
            self.waiting += 1
            await self._open.wait()
        return response

    async def __aenter__(self) -> "_LaggingReader":
        self._conn.read_response = self._read_response
        await self._broker.barrier()  # completes the read in flight; the next one is ours
        await asyncio.wait_for(self._entered.wait(), 2)
        return self

    def catch_up(self) -> None:
        self._open.set()

    async def __aexit__(self, *exc: object) -> None:
        self._open.set()
        del self._conn.read_response


@pytest.mark.parametrize("first_local_subscriber", [True, False], ids=["first-subscriber", "topic-already-held"])
async def test_event_in_missed_is_not_delivered_again_when_its_live_copy_is_late(
    connect, new_user, first_local_subscriber: bool
) -> None:
    """Forces the interleaving: the event is stored and PUBLISHed after the socket joined live
    delivery but before the history read (so it is in `missed`), and the reader dispatches its
    pub/sub copy only after the reply went out and the held events were released."""
    topic, token = await _conversation_topic(new_user)
    publisher = RedisHistory(get_redis())
    realtime = await get_realtime()
    watcher = None
    if not first_local_subscriber:
        watcher = await connect(token)  # another local socket: the process already holds the topic
        await _subscribe(watcher, topic, "watch")
    since = (await publisher.publish(topic, "chat.message", {"n": 0}))["offset"]
    if watcher is not None:
        assert (await _receive(watcher))["offset"] == since
    before = [await publisher.publish(topic, "chat.message", {"n": n}) for n in (1, 2)]

    in_window: list[dict[str, Any]] = []
    typing: list[dict[str, Any]] = []
    history = realtime.history
    read_history = history.since

    async def publish_then_read(topic_: str, offset: str) -> tuple[bool, list[dict[str, Any]]]:
        (joining,) = realtime.sessions - others
        assert realtime.is_subscribed(joining, topic)  # live delivery is set up before the read
        in_window.append(await publisher.publish(topic, "chat.message", {"n": 3}))
        typing.append(await publisher.publish_ephemeral(topic, "chat.typing", {"n": "typing"}))
        return await read_history(topic_, offset)

    others = set(realtime.sessions)

    # A late copy is skipped per socket (its recovery window) or, when this socket's reply set
    # the process's position in the topic (the first local subscriber), by the process.
    def skipped_count() -> float:
        return metrics.value("recovery.late_duplicates_skipped") + metrics.value("recovery.repair_duplicates_skipped")

    skipped = skipped_count()
    socket = await connect(token)
    async with _LaggingReader(realtime.broker, topic) as reader:
        history.since = publish_then_read  # type: ignore[method-assign, assignment]
        try:
            data = await _subscribe(socket, topic, "rejoin", since=since)
        finally:
            del history.since
        assert data["recovered"] is True
        assert data["missed"] == before + in_window  # the window's event is recovered ...
        assert data["offset"] == in_window[0]["offset"]
        assert reader.waiting == 1  # ... and its live copy is still on its way
        reader.catch_up()
        after = await publisher.publish(topic, "chat.message", {"n": 4})
        # The late copy is skipped; the ephemeral event (never in `missed`) and the next
        # stored event come live: no duplicate, no gap.
        assert await _receive(socket) == typing[0]
        assert await _receive(socket) == after
        assert await _nothing_more(socket, 0.3)
    assert skipped_count() == skipped + 1
    assert topic not in realtime._recovering  # the window closed: the topic is back on the plain fan-out
    if watcher is not None:  # the other socket, not recovering, gets everything live
        got = [(await _receive(watcher))["data"]["n"] for _ in range(5)]
        assert got == [1, 2, 3, "typing", 4]


async def test_recovery_window_closes_without_another_event(connect, new_user) -> None:
    """Missed events stored before this process held the topic never come live, so nothing on
    the topic would end the socket's window: the broker barrier does, and the topic is back on
    the plain fan-out before anything else is published."""
    topic, token = await _conversation_topic(new_user)
    publisher = RedisHistory(get_redis())
    realtime = await get_realtime()
    since = await publisher.position(topic)
    missed = [await publisher.publish(topic, "chat.message", {"n": n}) for n in range(3)]
    socket = await connect(token)
    data = await _subscribe(socket, topic, "join", since=since)
    assert data["missed"] == missed and data["offset"] == missed[-1]["offset"]

    async def closed() -> None:
        while topic in realtime._recovering:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(closed(), 2)
    after = await publisher.publish(topic, "chat.message", {"n": 3})
    assert await _receive(socket) == after
    assert await _nothing_more(socket, 0.2)


async def test_event_held_and_recovered_in_the_same_window_is_delivered_once(connect, new_user) -> None:
    """The other side of the window: the event's live copy arrives while the reply is being
    built (held), and is also in `missed`; releasing the held events must skip it."""
    topic, token = await _conversation_topic(new_user)
    publisher = RedisHistory(get_redis())
    realtime = await get_realtime()
    watcher = await connect(token)
    await _subscribe(watcher, topic, "watch")
    since = (await publisher.publish(topic, "chat.message", {"n": 0}))["offset"]
    await _receive(watcher)

    history = realtime.history
    read_history = history.since
    published: list[dict[str, Any]] = []

    async def publish_wait_then_read(topic_: str, offset: str) -> tuple[bool, list[dict[str, Any]]]:
        published.append(await publisher.publish(topic, "chat.message", {"n": 1}))
        assert (await _receive(watcher)) == published[0]  # dispatched: held for the joiner
        return await read_history(topic_, offset)

    socket = await connect(token)
    history.since = publish_wait_then_read  # type: ignore[method-assign, assignment]
    try:
        data = await _subscribe(socket, topic, "rejoin", since=since)
    finally:
        del history.since
    assert data["missed"] == published and data["offset"] == published[0]["offset"]
    after = await publisher.publish(topic, "chat.message", {"n": 2})
    assert await _receive(socket) == after
    assert await _nothing_more(socket, 0.3)


def _key(offset: str) -> tuple[int, int]:
    parsed = parse_offset(offset)
    assert parsed is not None, offset
    return parsed.ms, parsed.seq


async def test_reconnect_storm_sees_every_offset_exactly_once_in_order(connect, new_user) -> None:
    """Load version of the benchmark's storm, small: sockets drop and come back with `since`
    over and over while several senders publish; each client's missed + live events, over all
    its reconnects, are exactly the published ones after its first position, in order."""
    topic, token = await _conversation_topic(new_user)
    publisher = RedisHistory(get_redis())
    rng = random.Random(20260504)
    clients, rounds, senders = 12, 6, 3
    stop = asyncio.Event()
    published: list[str] = []

    async def send(sender: int) -> None:
        n = 0
        while not stop.is_set():
            frame = await publisher.publish(topic, "chat.message", {"sender": sender, "n": n})
            published.append(frame["offset"])
            n += 1
            await asyncio.sleep(rng.random() * 0.004)

    watcher = await connect(token)  # keeps the topic's Redis subscription in the process between rounds
    start = (await _subscribe(watcher, topic, "watch"))["offset"]
    seen: list[list[str]] = [[] for _ in range(clients)]

    async def client(index: int) -> None:
        last = start
        for round_ in range(rounds):
            socket = await connect(token)
            data = await _subscribe(socket, topic, f"r{round_}", since=last)
            assert data["recovered"] is True, data
            got = [event["offset"] for event in data["missed"]]
            deadline = asyncio.get_running_loop().time() + rng.uniform(0.02, 0.12)
            while (left := deadline - asyncio.get_running_loop().time()) > 0:
                # (A receive that times out kills the application: poll instead.)
                if await socket.receive_nothing(timeout=min(left, 0.02), interval=0.002):
                    continue
                frame = await socket.receive_json_from(timeout=2)
                if frame.get("type") == "event" and "offset" in frame:
                    got.append(frame["offset"])
            await socket.disconnect()
            seen[index].extend(got)
            if seen[index]:
                last = seen[index][-1]
            await asyncio.sleep(rng.uniform(0, 0.01))

    senders_running = [asyncio.ensure_future(send(s)) for s in range(senders)]
    try:
        await asyncio.gather(*(client(i) for i in range(clients)))
    finally:
        stop.set()
        await asyncio.gather(*senders_running)

    # One last reconnect after the senders stopped collects the rest.
    for index in range(clients):
        socket = await connect(token)
        last = seen[index][-1] if seen[index] else start
        data = await _subscribe(socket, topic, "final", since=last)
        assert data["recovered"] is True
        seen[index].extend(event["offset"] for event in data["missed"])
        assert await _nothing_more(socket, 0.05)
        await socket.disconnect()

    expected = sorted(published, key=_key)
    assert len(expected) > 50
    for index, offsets in enumerate(seen):
        duplicates = sorted({o for o in offsets if offsets.count(o) > 1}, key=_key)
        assert not duplicates, f"client {index} got {len(duplicates)} offsets twice: {duplicates[:5]}"
        assert offsets == expected, f"client {index}: out of order or missing"


async def _kill(conn: Any) -> None:
    """CLIENT KILL of the pub/sub connection `conn`, sent to the Redis (the cluster node) it is on."""
    assert conn is not None, "the broker is not connected"
    host, port = conn._writer.get_extra_info("sockname")[:2]  # this end's address, as Redis lists it
    raw = get_redis()
    options: dict[str, Any] = {}
    if is_cluster(raw):
        options["target_nodes"] = cast(RedisCluster, raw).get_node(conn.host, conn.port)
    await raw.execute_command("CLIENT", "KILL", "ADDR", f"{host}:{port}", **options)


class _HeldReconnect:
    """Holds the broker's next reconnect until `release()`: Redis serves commands (history
    reads, publishes) while this process has no pub/sub connection, as in the moments after
    Redis comes back and before the broker's backoff ends."""

    def __init__(self, broker: Any) -> None:
        self._broker = broker
        self._open = asyncio.Event()
        self._connect = broker._connect

    async def _held_connect(self) -> Any:
        await self._open.wait()
        return await self._connect()

    async def __aenter__(self) -> "_HeldReconnect":
        self._broker._connect = self._held_connect
        return self

    def release(self) -> None:
        self._open.set()

    async def __aexit__(self, *exc: object) -> None:
        self._open.set()
        del self._broker._connect


async def test_gap_repair_after_a_reconnect_skips_what_a_socket_recovered_while_pubsub_was_down(
    connect, new_user
) -> None:
    """A socket that resubscribes with `since` while the process has no pub/sub connection gets
    the gap in `missed`; the gap repair on reconnect delivers the same events to the process's
    other sockets of the topic (which missed them), and must not deliver them to it again.
    Its recovery window cannot end by a broker barrier then (no connection: the barrier
    returns at once, proving nothing): only once the topic's position covers its floor."""
    topic, token = await _conversation_topic(new_user)
    publisher = RedisHistory(get_redis())
    realtime = await get_realtime()
    broker = realtime.broker
    staying = await connect(token)  # subscribed before the loss: its gap is repaired
    await _subscribe(staying, topic, "stay")
    first = await publisher.publish(topic, "chat.message", {"n": 1})
    assert await _receive(staying) == first  # the process's position in the topic: `first`
    async with _HeldReconnect(broker) as held:
        await _kill(broker.connection_for(topic))

        async def disconnected() -> None:
            while broker.connected:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(disconnected(), 5)
        gap = [await publisher.publish(topic, "chat.message", {"n": n}) for n in (2, 3)]  # no one hears them live
        rejoining = await connect(token)  # the topic is held: no SUBSCRIBE, straight to the history read
        data = await _subscribe(rejoining, topic, "rejoin", since=first["offset"])
        assert data["recovered"] is True and data["missed"] == gap

        async def floors_closed() -> None:
            while realtime._closing_floors:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(floors_closed(), 2)  # the barrier came back at once: no connection
        held.release()
        assert [await _receive(staying) for _ in gap] == gap  # repaired from history
    after = await publisher.publish(topic, "chat.message", {"n": 4})
    assert await _receive(staying) == after
    assert await _receive(rejoining) == after  # not the gap a second time
    assert await _nothing_more(rejoining, 0.3)
    assert topic not in realtime._recovering  # the repair's pass over the floor ended the window
