"""`ShardedBroker` on a 3-shard cluster: SSUBSCRIBE per owning master, barriers on every shard
(also those holding no channel), and a new generation with every channel resubscribed when a
master is SIGKILLed and its replica promoted, or frozen (SIGSTOP)."""

import asyncio
import signal

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


async def test_a_frozen_master_ends_the_generation_within_the_liveness_bound(redis_cluster: LocalCluster) -> None:
    """SIGSTOP keeps the master's connection open and silent: its shard's reader gives it up
    within ping_interval + pong_timeout, and every channel is resubscribed once the cluster answers."""
    connected: list[frozenset[str]] = []
    got: list[str] = []
    broker = ShardedBroker(redis_cluster.url, lambda channel, payload: got.append(channel))
    broker.on_connected = connected.append
    bound = broker._ping_interval + broker._pong_timeout
    await broker.start()
    channels = [topics.property_changes(f"00000000-0000-0000-0000-{n:012d}") for n in range(12)]
    loop = asyncio.get_running_loop()
    try:
        assert all([await broker.subscribe(channel) for channel in channels])
        generation = broker.generation
        victim = redis_cluster.master_of_slot(key_slot(channels[0].encode()))
        victim.process.send_signal(signal.SIGSTOP)
        try:
            frozen_at = loop.time()
            await _wait_for(lambda: not broker.connected, bound + 2.0)  # 2 s of slack on a loaded machine
            assert loop.time() - frozen_at >= broker._ping_interval
        finally:
            victim.process.send_signal(signal.SIGCONT)
        # Frozen past the cluster's 1 s node timeout, it may have been failed over meanwhile (then
        # it comes back as a replica, and a generation made before that ends on its SUNSUBSCRIBEs).
        await asyncio.to_thread(redis_cluster.wait_ok)
        masters = {node.address for node in await asyncio.to_thread(redis_cluster.master_nodes)}
        await _wait_for(lambda: broker.generation > generation and broker.connected and set(broker._shards) == masters)
        assert connected[-1] == frozenset(channels)
        await broker.barrier()
        got.clear()
        for channel in channels:
            await broker.publish(channel, b"after")
        await broker.barrier()
        assert sorted(got) == sorted(channels)
    finally:
        await broker.stop()
