"""Read-through cache fills on the 3-shard Redis Cluster: each fill guarded by the epoch of its
key's slot, so a fill that raced a drop (of its key, or of a pattern) is never cached."""

import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.crc import key_slot

from apps.common import cache
from loadtests.bench.scenarios import forget_access_decisions
from pms.rediscluster import LocalCluster
from realtime import connections, keys
from realtime.pipelined import round_trip


def _slot(key: str) -> int:
    return key_slot(key.encode())


def _in_distinct_slots(make: Callable[[str], str], count: int) -> list[str]:
    found: dict[int, str] = {}
    while len(found) < count:
        key = make(str(uuid.uuid4()))
        found.setdefault(_slot(key), key)
    return list(found.values())


def _racing(old: Any, *, drop_keys: Sequence[str] = (), patterns: Sequence[str] = ()) -> Callable[[], Awaitable[Any]]:
    """A load that read the data as it was before a commit whose drop runs while it loads."""

    async def load() -> Any:
        cache.drop_now(drop_keys, patterns)
        return old

    return load


def _constant(value: Any) -> Callable[[], Awaitable[Any]]:
    async def load() -> Any:
        return value

    return load


def test_every_slot_has_its_own_epoch_key_in_that_slot() -> None:
    names = [keys.cache_epoch_of_slot(slot) for slot in range(keys.CLUSTER_SLOTS)]
    assert [_slot(name) for name in names] == list(range(keys.CLUSTER_SLOTS))
    assert len(set(names)) == keys.CLUSTER_SLOTS


async def test_a_fill_racing_a_drop_of_its_key_is_not_cached_and_the_next_read_fills(
    redis_cluster: LocalCluster,
) -> None:
    redis = connections.get_redis()
    key = keys.property_details(str(uuid.uuid4()))
    assert await cache.aread_json(key, 60, _racing({"v": "old"}, drop_keys=[key])) == {"v": "old"}
    assert await redis.get(key) is None  # the stale load was not cached
    assert await redis.get(keys.cache_epoch_of_slot(_slot(key))) == "1"  # the drop bumped its slot's epoch
    assert await cache.aread_json(key, 60, _constant({"v": "new"})) == {"v": "new"}
    cached = await redis.get(key)
    assert cached is not None and json.loads(cached) == {"v": "new"} and 0 < await redis.ttl(key) <= 60
    assert await cache.aread_json(key, 60, _constant({"v": "ignored"})) == {"v": "new"}  # a hit


async def test_a_fill_racing_a_pattern_drop_is_refused_in_whatever_slot_it_lands(
    redis_cluster: LocalCluster,
) -> None:
    redis = connections.get_redis()
    searches = _in_distinct_slots(keys.search_properties, 6)
    for key in searches:
        assert await cache.aread_json(key, 60, _racing(["old"], patterns=["search:properties:*"])) == ["old"]
    assert await redis.exists(*searches) == 0
    slots = [0, 5461, 5462, 10922, 10923, 16383]  # both ends of each master's range
    [epochs] = await round_trip(redis, [("MGET", *[keys.cache_epoch_of_slot(slot) for slot in slots])])
    assert epochs == [str(len(searches))] * len(slots)  # every slot, by every pattern drop
    for key in searches:
        assert await cache.aread_json(key, 60, _constant(["new"])) == ["new"]
    assert await redis.exists(*searches) == len(searches)


async def test_access_decisions_of_many_users_fill_in_one_batch_except_the_one_dropped(
    redis_cluster: LocalCluster,
) -> None:
    redis = connections.get_redis()
    access = _in_distinct_slots(keys.user_topic_access, 4)
    epoch = await cache.current_epoch(*access)  # the authorizer reads these before deciding
    assert epoch is not None and len(epoch) == len(access)
    dropped = await cache.adrop([access[0]])  # e.g. a membership change of the first user committed meanwhile
    assert dropped == 0
    await cache.afill_many([(key, "field", ["chat:messages:1", "1"]) for key in access], 60, epoch)
    assert await redis.exists(access[0]) == 0
    assert [await redis.hgetall(key) for key in access[1:]] == [{"chat:messages:1": "1"}] * 3
    await cache.afill(access[0], "field", ["chat:messages:1", "0"], 60, await cache.current_epoch(access[0]))
    assert await redis.hgetall(access[0]) == {"chat:messages:1": "0"}
    # A key whose epoch the reader did not read is not filled.
    other = next(key for key in _in_distinct_slots(keys.user_topic_access, 5) if _slot(key) not in map(_slot, access))
    await cache.afill(other, "field", ["chat:messages:1", "1"], 60, epoch)
    assert await redis.exists(other) == 0


async def test_the_bench_forgets_cached_decisions_on_every_master(redis_cluster: LocalCluster) -> None:
    """The benchmark's sweep of `user:access:*` (loadtests/bench), now that a cluster holds decisions."""
    redis = connections.get_redis()
    access = _in_distinct_slots(keys.user_topic_access, 30)
    await cache.afill_many(
        [(key, "field", ["chat:messages:1", "1"]) for key in access], 60, await cache.current_epoch(*access)
    )
    assert await redis.exists(*access) == len(access)
    assert await forget_access_decisions(redis_cluster.url) == len(access)
    assert await redis.exists(*access) == 0
