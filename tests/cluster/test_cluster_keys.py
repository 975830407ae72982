"""Every multi-key Redis operation of the realtime core and the caches on a 3-shard Redis Cluster:
scripts, pipelines across users, MGET across slots, SCAN over every master; no CROSSSLOT error."""

import uuid

import pytest
from pymongo import AsyncMongoClient

from apps.common import cache
from pms.rediscluster import LocalCluster
from realtime import connections, keys, topics
from realtime.history import RedisHistory, publish_sync
from realtime.notifications import NotificationService
from realtime.pipelined import round_trip, tick_pipeline
from realtime.presence.redis import RedisPresence
from realtime.ratelimit import SlidingWindowLimiter
from realtime.workers import ActiveWorkers
from tests.conftest import TEST_MONGO_DATABASE


def _users(count: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(count)]


def test_the_cluster_has_three_masters_each_with_a_replica(redis_cluster: LocalCluster) -> None:
    assert len(redis_cluster.master_nodes()) == 3
    assert len(redis_cluster.nodes) == 6
    assert redis_cluster.url.startswith("redis+cluster://")


async def test_the_factory_hands_out_a_cluster_client_and_keys_spread_over_every_shard(
    redis_cluster: LocalCluster,
) -> None:
    client = connections.get_redis()
    assert connections.is_cluster(client)
    users = _users(60)
    await round_trip(client, [("SET", keys.user_session(user), user) for user in users])
    owners = {client.get_node_from_key(keys.user_session(user)).name for user in users}  # type: ignore[attr-defined]
    assert len(owners) == 3
    # MGET across slots (split per key) and an error in its place, in one batch.
    replies = await round_trip(
        client, [("MGET", *[keys.user_session(user) for user in users]), ("HGETALL", keys.user_session(users[0]))]
    )
    assert replies[0] == users
    assert isinstance(replies[1], Exception)  # WRONGTYPE stays in its command's place
    assert await tick_pipeline(client).execute("MGET", keys.user_session(users[1]), "missing") == [users[1], None]


async def test_cluster_clients_of_a_process_read_the_command_table_once(redis_cluster: LocalCluster) -> None:
    """A new client (a new loop, a short-lived one) reuses the process's table of the same cluster
    and decoding; it still finds every command's keys, and a table of bytes is never handed to a
    decoding client (COMMAND's nested values differ)."""
    url = redis_cluster.url
    clients = [connections.new_async_redis(url, decode_responses=decode) for decode in (True, True, False)]
    try:
        for client in clients:
            await client.initialize()
        tables = [client.commands_parser.commands for client in clients]  # type: ignore[attr-defined]
        assert tables[1] is tables[0] and tables[2] is not tables[0]
        key = f"table-test:{uuid.uuid4()}"
        assert await clients[1].hset(key, "f", "v") == 1
        assert await clients[2].hget(key, "f") == b"v"
        assert await clients[0].execute_command("SPUBLISH", key, "x") == 0
    finally:
        for client in clients:
            await client.aclose()


async def test_presence_scripts_and_query_across_users(redis_cluster: LocalCluster) -> None:
    presence = RedisPresence(connections.get_redis())
    users = _users(12)
    assert await presence.connect_many([(user, f"c-{user}") for user in users]) == [True] * len(users)
    assert await presence.touch_many([(user, f"c-{user}", True) for user in users])
    found = await presence.query(users)
    assert {user: info["status"] for user, info in found.items()} == dict.fromkeys(users, "online")
    assert await presence.disconnect_many([(user, f"c-{user}") for user in users]) == [True] * len(users)
    assert {info["status"] for info in (await presence.query(users)).values()} == {"offline"}


async def test_workers_join_sweep_and_members(redis_cluster: LocalCluster) -> None:
    workers = ActiveWorkers(connections.get_redis(), ttl_seconds=60)
    users = _users(5)
    for user in users:
        await workers.join(user)
    assert await workers.members() == set(users)
    await connections.get_redis().delete(keys.maintenance_worker(users[0]))  # its liveness key expired
    assert await workers.sweep() == [users[0]]
    await workers.leave(users[1])
    assert await workers.members() == set(users[2:])


async def test_rate_limit_scripts(redis_cluster: LocalCluster) -> None:
    limiter = SlidingWindowLimiter(connections.get_redis(), limit=2, window_seconds=60)
    for user in _users(6):
        key = keys.api_rate_limit(user, "GET /x")
        assert [(await limiter.hit(key)).allowed for _ in range(3)] == [True, True, False]


async def test_notification_counters_and_scan_over_every_master(redis_cluster: LocalCluster) -> None:
    mongo: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(connections.current_settings().mongo_url)
    redis = connections.get_redis()
    try:
        service = NotificationService(mongo[TEST_MONGO_DATABASE], redis, RedisHistory(redis))
        users = _users(9)
        assert [await service.unread_count(user) for user in users] == [0] * len(users)
        found = await service.resync_all()  # SCAN `notifications:count:*` on every master
        assert set(found) == set(users)
    finally:
        await mongo.close()


async def test_cache_drops_with_keys_and_patterns_over_every_master(redis_cluster: LocalCluster) -> None:
    redis = connections.get_redis()
    ids = _users(20)
    await round_trip(redis, [("SET", keys.search_properties(i), "hit") for i in ids])
    await round_trip(redis, [("SET", keys.property_details(i), "hit") for i in ids])
    assert await cache.adrop([keys.property_details(i) for i in ids[:10]]) == 10
    await cache.aread_json(keys.property_details(ids[0]), 60, _load)  # a miss reads the source and fills
    assert await redis.exists(keys.property_details(ids[0])) == 1
    cache.drop_now(keys=[keys.property_details(i) for i in ids], patterns=["search:properties:*"])
    assert await round_trip(redis, [("MGET", *[keys.search_properties(i) for i in ids])]) == [[None] * len(ids)]
    assert await redis.exists(*[keys.property_details(i) for i in ids]) == 0


async def _load() -> dict[str, str]:
    return {"name": "from the source"}


async def test_history_and_its_sync_twin_stay_in_the_topic_slot(redis_cluster: LocalCluster) -> None:
    redis = connections.get_redis()
    history = RedisHistory(redis)
    topic = topics.chat_messages(str(uuid.uuid4()))
    first = await history.publish(topic, "chat.message", {"n": 1})
    second = publish_sync(connections.get_sync_redis(), topic, "chat.message", {"n": 2})
    recovered, missed = await history.since(topic, first["offset"])
    assert recovered is True and [frame["offset"] for frame in missed] == [second["offset"]]
    slot = redis.keyslot(topic)  # type: ignore[attr-defined]
    assert redis.keyslot(keys.topic_history(topic)) == slot == redis.keyslot(keys.topic_epoch(topic))  # type: ignore[attr-defined]


@pytest.mark.parametrize("user", ["u1", "9f0c"])
def test_companion_keys_share_their_seed_key_slot(user: str) -> None:
    from redis.crc import key_slot

    assert key_slot(keys.chat_presence_connections(user).encode()) == key_slot(keys.chat_presence(user).encode())
    assert key_slot(keys.notifications_count_until(user).encode()) == key_slot(keys.notifications_count(user).encode())
    assert key_slot(keys.maintenance_worker(user).encode()) == key_slot(keys.MAINTENANCE_ACTIVE_WORKERS.encode())
