"""`ShardedBroker` on a 3-shard cluster: SSUBSCRIBE per owning master, barriers on every shard
(also those holding no channel), and a new generation with every channel resubscribed when a
master is SIGKILLed and its replica promoted."""

import asyncio

from redis.crc import key_slot

from pms.rediscluster import LocalCluster
from realtime import topics
from realtime.broker import ShardedBroker, make_broker


async def _wait_for(condition: object, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def test_events_reach_subscribers_on_their_shard_and_barriers_cover_idle_shards(
    redis_cluster: LocalCluster,
) -> None:
    got: list[tuple[str, bytes]] = []
    broker = make_broker(redis_cluster.url, lambda channel, payload: got.append((channel, payload)))
    assert isinstance(broker, ShardedBroker)
    await broker.start()
    try:
        lonely = topics.chat_messages("00000000-0000-0000-0000-000000000001")
        assert await broker.subscribe(lonely)
        await asyncio.wait_for(broker.barrier(), 5)  # two masters hold no channel of ours
        many = [topics.notifications(f"00000000-0000-0000-0000-{n:012d}") for n in range(30)]
        assert all([await broker.subscribe(channel) for channel in many])
        assert len({key_slot(c.encode()) % 3 for c in many}) > 1
        for channel in [lonely, *many]:
            assert await broker.publish(channel, b"x") == 1
        await broker.barrier()
        assert sorted(channel for channel, _ in got) == sorted([lonely, *many])
        await broker.unsubscribe(lonely)
        assert await broker.publish(lonely, b"y") == 0
    finally:
        await broker.stop()


async def test_a_killed_master_starts_a_new_generation_with_every_channel_resubscribed(
    redis_cluster: LocalCluster,
) -> None:
    got: list[str] = []
    connected: list[frozenset[str]] = []
    broker = ShardedBroker(redis_cluster.url, lambda channel, payload: got.append(channel))
    broker.on_connected = connected.append
    await broker.start()
    channels = [topics.unit_changes(f"00000000-0000-0000-0000-{n:012d}") for n in range(12)]
    try:
        assert all([await broker.subscribe(channel) for channel in channels])
        generation = broker.generation
        slot = key_slot(channels[0].encode())
        victim = redis_cluster.master_of_slot(slot)
        redis_cluster.kill(victim)
        redis_cluster.wait_failover(victim, slot)
        await _wait_for(lambda: broker.generation > generation and broker.connected)
        assert connected[-1] == frozenset(channels)
        got.clear()
        for channel in channels:
            await broker.publish(channel, b"after")
        await broker.barrier()
        assert sorted(got) == sorted(channels)
    finally:
        await broker.stop()
        redis_cluster.restart(victim)
