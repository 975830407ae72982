"""Read-through cache fills on real Redis: a fill that raced a drop is never cached."""

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis
from django.conf import settings

from apps.common.cache import (
    EPOCH_KEY,
    adrop,
    afill,
    aread_hash,
    aread_json,
    aread_json_list,
    aread_json_many,
    current_epoch,
    drop_now,
)


@pytest.fixture
def sync_redis() -> Any:
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    yield client
    client.close()


def new_key() -> str:
    return f"test:cache:{uuid.uuid4()}"


def racing(key: str, old: Any) -> Callable[[], Awaitable[Any]]:
    """A load that read the data as it was before a commit whose drop runs while it loads."""

    async def load() -> Any:
        drop_now([key])
        return old

    return load


def constant(value: Any) -> Callable[[], Awaitable[Any]]:
    async def load() -> Any:
        return value

    return load


async def test_json_fill_racing_a_drop_is_not_cached_and_the_next_read_fills(sync_redis: Any) -> None:
    key = new_key()
    assert await aread_json(key, 60, racing(key, {"v": "old"})) == {"v": "old"}  # the caller still gets its answer
    assert sync_redis.get(key) is None
    assert await aread_json(key, 60, constant({"v": "new"})) == {"v": "new"}
    assert json.loads(sync_redis.get(key)) == {"v": "new"} and 0 < sync_redis.ttl(key) <= 60
    assert await aread_json(key, 60, constant({"v": "ignored"})) == {"v": "new"}
    sync_redis.delete(key)


async def test_hash_and_list_fills_racing_a_drop_are_not_cached(sync_redis: Any) -> None:
    hash_key, list_key = new_key(), new_key()
    assert await aread_hash(hash_key, 60, racing(hash_key, {"n": 1, "flag": True})) == {"n": "1", "flag": "1"}
    assert await aread_json_list(list_key, 60, racing(list_key, [1, 2])) == [1, 2]
    assert not sync_redis.exists(hash_key, list_key)
    assert await aread_hash(hash_key, 60, constant({"n": 2, "gone": None})) == {"n": "2"}
    assert sync_redis.hgetall(hash_key) == {"n": "2"}
    many = list(range(2500))  # filled in chunks inside the script
    assert await aread_json_list(list_key, 60, constant(many)) == many
    assert [json.loads(item) for item in sync_redis.lrange(list_key, 0, -1)] == many
    assert await aread_json_list(list_key, 60, constant([])) == many
    sync_redis.delete(hash_key, list_key)


async def test_many_keys_fill_only_what_did_not_race(sync_redis: Any) -> None:
    keys = {"a": new_key(), "b": new_key()}

    async def load(ids: list[str]) -> dict[str, Any]:
        drop_now([keys["a"]])
        return {i: [i] for i in ids}

    assert await aread_json_many(keys, 60, load) == {"a": ["a"], "b": ["b"]}
    assert sync_redis.get(keys["a"]) is None and sync_redis.get(keys["b"]) is None  # one epoch for all keys

    async def fresh(ids: list[str]) -> dict[str, Any]:
        return {i: [i, "fresh"] for i in ids}

    assert await aread_json_many(keys, 60, fresh) == {"a": ["a", "fresh"], "b": ["b", "fresh"]}
    assert json.loads(sync_redis.get(keys["b"])) == ["b", "fresh"]
    sync_redis.delete(*keys.values())


async def test_a_hash_field_fill_keeps_the_other_fields_and_is_refused_after_a_drop(sync_redis: Any) -> None:
    key = new_key()
    await afill(key, "field", ["chat:messages:1", "1"], 60, await current_epoch(key))
    await afill(key, "field", ["chat:messages:2", "0"], 60, await current_epoch(key))
    assert sync_redis.hgetall(key) == {"chat:messages:1": "1", "chat:messages:2": "0"}
    epoch = await current_epoch(key)  # read after a miss, before deciding
    assert await adrop([key]) == 1  # e.g. a membership change committed meanwhile
    await afill(key, "field", ["chat:messages:3", "1"], 60, epoch)
    assert not sync_redis.exists(key)
    assert int(sync_redis.get(EPOCH_KEY)) >= 1
    await afill(key, "field", ["chat:messages:3", "1"], 60, None)  # Redis was down when reading: no fill
    assert not sync_redis.exists(key)
