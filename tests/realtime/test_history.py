"""Topic history on real Redis (DB 15): offsets, live publish, recovery, trimming and epoch loss."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
import redis.asyncio as aredis
from django.conf import settings

from realtime import keys, topics
from realtime.events import normalize_external
from realtime.history import RedisHistory, parse_offset


@pytest.fixture
async def redis_client() -> AsyncIterator[aredis.Redis]:
    client = aredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def history(redis_client: aredis.Redis) -> RedisHistory:
    return RedisHistory(redis_client)


@pytest.fixture
def topic() -> str:
    return topics.chat_messages(str(uuid.uuid4()))


class Subscriber:
    """A raw pub/sub listener on one channel, as another process (or service) would be."""

    def __init__(self, client: aredis.Redis, channel: str) -> None:
        self._client = client
        self._pubsub = client.pubsub()
        self._channel = channel

    async def __aenter__(self) -> "Subscriber":
        await self._pubsub.subscribe(self._channel)
        confirmation = await self._pubsub.get_message(timeout=1)
        assert confirmation is not None and confirmation["type"] == "subscribe"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._pubsub.aclose()
        await self._client.aclose()

    async def next_payload(self) -> bytes:
        message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
        assert message is not None, "nothing published within 1 s"
        data: bytes = message["data"]
        return data

    async def assert_silent(self) -> None:
        assert await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5) is None


def subscriber(channel: str) -> Subscriber:
    return Subscriber(aredis.Redis.from_url(settings.REDIS_URL), channel)


def order(offset: str) -> tuple[int, int]:
    parsed = parse_offset(offset)
    assert parsed is not None
    return parsed.ms, parsed.seq


async def test_publish_returns_the_frame_with_increasing_offsets(history: RedisHistory, topic: str) -> None:
    frames = [await history.publish(topic, "chat.message", {"id": str(i)}) for i in range(5)]
    assert [f["data"] for f in frames] == [{"id": str(i)} for i in range(5)]
    assert all(f["type"] == "event" and f["topic"] == topic and f["event"] == "chat.message" for f in frames)
    epochs = {parse_offset(f["offset"]).epoch for f in frames}  # type: ignore[union-attr]
    assert len(epochs) == 1
    assert [order(f["offset"]) for f in frames] == sorted(order(f["offset"]) for f in frames)
    assert len({f["offset"] for f in frames}) == 5


async def test_subscriber_receives_the_exact_frame_with_its_offset(history: RedisHistory, topic: str) -> None:
    async with subscriber(topic) as listener:
        sent = await history.publish(topic, "chat.message", {"id": "m1", "text": "héllo", "blob": b"\x00\x01"})
        payload = await listener.next_payload()
    assert msgpack.unpackb(payload, raw=False) == sent
    assert "offset" in sent
    assert normalize_external(topic, payload) == sent


async def test_since_position_before_returns_every_event_in_order(history: RedisHistory, topic: str) -> None:
    await history.publish(topic, "chat.message", {"id": "before"})
    start = await history.position(topic)
    sent = [await history.publish(topic, "chat.message", {"id": str(i)}) for i in range(4)]
    assert await history.since(topic, start) == (True, sent)
    assert await history.since(topic, sent[1]["offset"]) == (True, sent[2:])


async def test_since_the_last_offset_returns_nothing(history: RedisHistory, topic: str) -> None:
    sent = [await history.publish(topic, "chat.message", {"id": str(i)}) for i in range(3)]
    assert await history.since(topic, sent[-1]["offset"]) == (True, [])
    assert await history.position(topic) == sent[-1]["offset"]


async def test_position_of_an_empty_topic_is_a_valid_since(history: RedisHistory, topic: str) -> None:
    start = await history.position(topic)
    assert await history.position(topic) == start
    assert await history.since(topic, start) == (True, [])
    first = await history.publish(topic, "chat.message", {"id": "1"})
    assert await history.since(topic, start) == (True, [first])


async def test_trimming_past_the_bound_loses_early_offsets_only(redis_client: aredis.Redis, topic: str) -> None:
    history = RedisHistory(redis_client, max_events=5)
    start = await history.position(topic)
    sent = [await history.publish(topic, "chat.message", {"i": i}) for i in range(250)]
    held = await redis_client.xlen(keys.topic_history(topic))
    assert 5 <= held < 250  # MAXLEN ~ trims whole nodes, never below the bound
    assert await history.since(topic, start) == (False, [])
    assert await history.since(topic, sent[0]["offset"]) == (False, [])
    assert await history.since(topic, sent[-5]["offset"]) == (True, sent[-4:])
    # The oldest recoverable offset is exactly the predecessor of the first held entry.
    assert await history.since(topic, sent[-held - 1]["offset"]) == (True, sent[-held:])
    assert await history.since(topic, sent[-held - 2]["offset"]) == (False, [])


async def test_losing_the_epoch_fails_old_offsets(
    history: RedisHistory, redis_client: aredis.Redis, topic: str
) -> None:
    old_start = await history.position(topic)
    first = await history.publish(topic, "chat.message", {"id": "1"})
    await redis_client.delete(keys.topic_epoch(topic), keys.topic_history(topic))
    assert await history.since(topic, old_start) == (False, [])
    assert await history.since(topic, first["offset"]) == (False, [])
    new_start = await history.position(topic)
    assert parse_offset(new_start).epoch != parse_offset(old_start).epoch  # type: ignore[union-attr]
    again = await history.publish(topic, "chat.message", {"id": "2"})
    assert await history.since(topic, first["offset"]) == (False, [])
    assert await history.since(topic, new_start) == (True, [again])


async def test_new_epoch_drops_a_stale_stream(history: RedisHistory, redis_client: aredis.Redis, topic: str) -> None:
    await history.publish(topic, "chat.message", {"id": "old"})
    await redis_client.delete(keys.topic_epoch(topic))  # e.g. evicted alone
    start = await history.position(topic)
    assert parse_offset(start).stream_id == "0-0"  # type: ignore[union-attr]
    fresh = await history.publish(topic, "chat.message", {"id": "new"})
    assert await history.since(topic, start) == (True, [fresh])


async def test_stream_expiring_before_its_epoch_keeps_offsets_exact(
    history: RedisHistory, redis_client: aredis.Redis, topic: str
) -> None:
    sent = [await history.publish(topic, "chat.message", {"i": i}) for i in range(3)]
    await redis_client.delete(keys.topic_history(topic))  # the epoch hash lived on through `position`
    assert await history.since(topic, sent[-1]["offset"]) == (True, [])
    assert await history.since(topic, sent[0]["offset"]) == (False, [])
    later = await history.publish(topic, "chat.message", {"i": 3})
    assert order(later["offset"]) > order(sent[-1]["offset"])
    assert await history.since(topic, sent[-1]["offset"]) == (True, [later])
    assert await history.since(topic, sent[1]["offset"]) == (False, [])


@pytest.mark.parametrize(
    "offset",
    [
        "",
        "garbage",
        "0-0",
        "0123456789abcdef",
        "0123456789abcdef-1-0",  # well formed, unknown epoch
        "0123456789ABCDEF-0-0",
        "0123456789abcdef-x-0",
        "0123456789abcdef-1-0-1",
        "0123456789abcdef-1234567890123456-0",
    ],
)
async def test_malformed_or_unknown_offsets_are_not_recovered(history: RedisHistory, topic: str, offset: str) -> None:
    await history.publish(topic, "chat.message", {"id": "1"})
    assert await history.since(topic, offset) == (False, [])


async def test_an_offset_beyond_the_last_is_not_recovered(history: RedisHistory, topic: str) -> None:
    sent = await history.publish(topic, "chat.message", {"id": "1"})
    parsed = parse_offset(sent["offset"])
    assert parsed is not None
    assert await history.since(topic, f"{parsed.epoch}-{parsed.ms + 1}-0") == (False, [])
    assert await history.since(topic, 12345) == (False, [])  # type: ignore[arg-type]


def stream_id(offset: str) -> str:
    parsed = parse_offset(offset)
    assert parsed is not None
    return parsed.stream_id


async def test_an_offset_a_failover_lost_is_not_recovered_even_once_newer_events_follow(
    history: RedisHistory, redis_client: aredis.Redis, topic: str
) -> None:
    """A promoted replica may lack the newest entries a client already saw (replication is
    asynchronous; the script's XADD and HSET reach it together or not at all). Simulated here:
    the tail deleted and `last` set back to the newest entry the replica would hold."""
    held = await history.publish(topic, "chat.message", {"id": "1"})
    seen = await history.publish(topic, "chat.message", {"id": "2"})  # delivered live, then lost
    unseen = await history.publish(topic, "chat.message", {"id": "3"})  # lost before the client saw it
    await redis_client.xdel(keys.topic_history(topic), stream_id(seen["offset"]), stream_id(unseen["offset"]))
    await redis_client.hset(keys.topic_epoch(topic), "last", stream_id(held["offset"]))
    assert await history.since(topic, seen["offset"]) == (False, [])  # after `last`
    after = await history.publish(topic, "chat.message", {"id": "4"})  # the promoted master goes on
    assert order(after["offset"]) > order(unseen["offset"])
    # Its first entry after `seen` links back to `held`, not to `seen`: event 3 may be missing.
    assert await history.since(topic, seen["offset"]) == (False, [])
    assert await history.since_many([(topic, seen["offset"]), (topic, after["offset"])]) == [(False, []), (True, [])]
    # On the same master an older offset still recovers what follows it (a real promotion ends
    # the epoch instead: tests/realtime/test_history_failover.py).
    assert await history.since(topic, held["offset"]) == (True, [after])


async def test_ephemeral_publish_stores_nothing(history: RedisHistory, redis_client: aredis.Redis, topic: str) -> None:
    async with subscriber(topic) as listener:
        sent = await history.publish_ephemeral(topic, "chat.typing", {"userId": "u1"})
        payload = await listener.next_payload()
    received: dict[str, Any] = msgpack.unpackb(payload, raw=False)
    assert received == sent
    assert "offset" not in received and received["event"] == "chat.typing"
    assert await redis_client.exists(keys.topic_history(topic), keys.topic_epoch(topic)) == 0


async def test_both_keys_expire_within_the_max_age(redis_client: aredis.Redis, topic: str) -> None:
    history = RedisHistory(redis_client, max_age_seconds=60)
    await history.publish(topic, "chat.message", {"id": "1"})
    for key in (keys.topic_epoch(topic), keys.topic_history(topic)):
        assert 0 < await redis_client.pttl(key) <= 60_000


async def test_concurrent_publishes_get_distinct_ordered_offsets(history: RedisHistory, topic: str) -> None:
    start = await history.position(topic)
    sent = await asyncio.gather(*(history.publish(topic, "chat.message", {"i": i}) for i in range(20)))
    recovered, missed = await history.since(topic, start)
    assert recovered
    assert sorted(missed, key=lambda f: order(f["offset"])) == missed
    assert {f["offset"] for f in missed} == {f["offset"] for f in sent}


async def test_publish_many_is_one_round_trip_of_atomic_publishes_in_order(
    history: RedisHistory, topic: str, redis_client: aredis.Redis
) -> None:
    other = f"{topic}-other"
    frames = await history.publish_many([(topic, "e", {"n": 1}), (other, "e", {"n": 2}), (topic, "e", {"n": 3})])
    assert [f["data"]["n"] for f in frames] == [1, 2, 3]  # type: ignore[index]
    first, _, third = frames
    ok, missed = await history.since(topic, first["offset"])  # type: ignore[index]
    assert ok and [m["data"]["n"] for m in missed] == [3] and missed[0]["offset"] == third["offset"]  # type: ignore[index]
    assert await history.publish_many([]) == []


async def test_keyed_publish_goes_out_once_per_key_under_its_first_offset(
    history: RedisHistory, redis_client: aredis.Redis, topic: str
) -> None:
    async with Subscriber(aredis.Redis.from_url(settings.REDIS_URL), topic) as listener:
        [first] = await history.publish_many([(topic, "chat.message", {"id": "a"})], event_keys=["m:a"])
        assert isinstance(first, dict)
        await listener.next_payload()
        again, other = await history.publish_many(
            [(topic, "chat.message", {"id": "a"}), (topic, "chat.message", {"id": "b"})], event_keys=["m:a", "m:b"]
        )
        assert isinstance(again, dict) and isinstance(other, dict)
        assert again["offset"] == first["offset"] and other["offset"] != first["offset"]
        assert msgpack.unpackb(await listener.next_payload())["data"] == {"id": "b"}  # "a" was not sent again
        await listener.assert_silent()
    assert await redis_client.xlen(keys.topic_history(topic)) == 2
    assert await history.offsets_of(topic, ["m:a", "m:b", "m:never"]) == [first["offset"], other["offset"], None]


async def test_keyed_offsets_are_forgotten_with_the_epoch_and_bounded_by_the_history(
    redis_client: aredis.Redis, topic: str
) -> None:
    history = RedisHistory(redis_client, max_events=5)
    frames = await history.publish_many(
        [(topic, "chat.message", {"id": str(i)}) for i in range(30)], event_keys=[f"m:{i}" for i in range(30)]
    )
    assert all(isinstance(frame, dict) for frame in frames)
    offsets = [frame["offset"] for frame in frames if isinstance(frame, dict)]
    held = await redis_client.hlen(keys.topic_event_keys(topic))
    assert held <= 2 * 5 + 1  # rebuilt from the stream once it passes twice the history's size
    assert (await history.offsets_of(topic, ["m:29"])) == [offsets[-1]]
    await redis_client.delete(keys.topic_epoch(topic))  # the history is lost (a restart without data)
    assert await history.offsets_of(topic, ["m:29"]) == [None]
    [again] = await history.publish_many([(topic, "chat.message", {"id": "29"})], event_keys=["m:29"])
    assert isinstance(again, dict)
    assert parse_offset(again["offset"]).epoch != parse_offset(offsets[-1]).epoch  # type: ignore[union-attr]
