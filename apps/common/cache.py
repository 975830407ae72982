"""Read-through caches of the seed's Redis keys, dropped after the transaction that changes their source commits.

Encoding of hashes (DESIGN.md): numbers as decimal strings, booleans `1`/`0`, nulls left
out; `decode_hash` turns them back with a field -> type map. Redis down: reads fall
through to PostgreSQL and writes are skipped, logged, never raised.
"""

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import redis
from django.db import transaction

from realtime.connections import get_redis, get_sync_redis

logger = logging.getLogger(__name__)


def encode_value(value: Any) -> str | None:
    """A hash field's string form, or None to leave the field out."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def encode_hash(mapping: dict[str, Any]) -> dict[str, str]:
    return {key: text for key, value in mapping.items() if (text := encode_value(value)) is not None}


def decode_hash(raw: dict[str, str], types: dict[str, type]) -> dict[str, Any]:
    """Typed values of a cached hash; fields absent from `raw` come back as None."""
    result: dict[str, Any] = {}
    for field, kind in types.items():
        text = raw.get(field)
        if text is None:
            result[field] = None
        elif kind is bool:
            result[field] = text == "1"
        elif kind is int:
            result[field] = int(text)
        elif kind is Decimal:
            result[field] = Decimal(text)
        else:
            result[field] = text
    return result


async def aread_hash(key: str, ttl: int, load: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, str]:
    """The cached hash at `key`, filled from `load()` (encoded) on a miss."""
    try:
        cached = await get_redis().hgetall(key)
    except redis.RedisError:
        logger.warning("cache read of %s failed; reading the source", key)
        return encode_hash(await load())
    if cached:
        return cached
    fresh = encode_hash(await load())
    if fresh:
        try:
            async with get_redis().pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.hset(key, mapping=fresh)
                pipe.expire(key, ttl)
                await pipe.execute()
        except redis.RedisError:
            logger.warning("cache write of %s failed", key)
    return fresh


async def aread_json(key: str, ttl: int, load: Callable[[], Awaitable[Any]]) -> Any:
    """The cached JSON string at `key`, filled from `load()` on a miss."""
    try:
        cached = await get_redis().get(key)
    except redis.RedisError:
        logger.warning("cache read of %s failed; reading the source", key)
        return await load()
    if cached is not None:
        return json.loads(cached)
    fresh = await load()
    try:
        await get_redis().set(key, json.dumps(fresh, default=str), ex=ttl)
    except redis.RedisError:
        logger.warning("cache write of %s failed", key)
    return fresh


async def aread_json_many(
    keys_by_id: dict[str, str], ttl: int, load: Callable[[list[str]], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    """`aread_json` for many ids at once: one MGET, then `load(missing ids)` and one pipelined fill.

    `keys_by_id` maps each id to its cache key; `load` must answer every id it is given.
    """
    ids = list(keys_by_id)
    if not ids:
        return {}
    try:
        cached = await get_redis().mget([keys_by_id[i] for i in ids])
    except redis.RedisError:
        logger.warning("cache read of %d keys failed; reading the source", len(ids))
        return dict(await load(ids))
    found = {i: json.loads(raw) for i, raw in zip(ids, cached) if raw is not None}
    missing = [i for i in ids if i not in found]
    if missing:
        fresh = await load(missing)
        try:
            async with get_redis().pipeline(transaction=False) as pipe:
                for i in missing:
                    pipe.set(keys_by_id[i], json.dumps(fresh[i], default=str), ex=ttl)
                await pipe.execute()
        except redis.RedisError:
            logger.warning("cache write of %d keys failed", len(missing))
        found.update((i, fresh[i]) for i in missing)
    return found


async def aread_json_list(key: str, ttl: int, load: Callable[[], Awaitable[list[Any]]]) -> list[Any]:
    """The cached Redis list of JSON strings at `key` (newest first), filled from `load()` on a miss.

    An empty list is cached as absent (Redis has no empty lists), so it is re-read each time.
    """
    try:
        cached = await get_redis().lrange(key, 0, -1)
    except redis.RedisError:
        logger.warning("cache read of %s failed; reading the source", key)
        return await load()
    if cached:
        return [json.loads(item) for item in cached]
    fresh = await load()
    if fresh:
        try:
            async with get_redis().pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.rpush(key, *(json.dumps(item, default=str) for item in fresh))
                pipe.expire(key, ttl)
                await pipe.execute()
        except redis.RedisError:
            logger.warning("cache write of %s failed", key)
    return fresh


def drop_now(keys: Iterable[str] = (), patterns: Iterable[str] = ()) -> None:
    """Delete keys, and keys matching glob patterns (SCAN, never KEYS); logs instead of raising."""
    keys, patterns = list(keys), list(patterns)
    try:
        client = get_sync_redis()
        if keys:
            client.delete(*keys)
        for pattern in patterns:
            batch: list[str] = []
            for key in client.scan_iter(match=pattern, count=500):
                batch.append(key)
                if len(batch) >= 500:
                    client.delete(*batch)
                    batch.clear()
            if batch:
                client.delete(*batch)
    except redis.RedisError:
        logger.error("Redis down: could not drop cache keys %s %s; they expire by TTL", keys[:5], patterns)


def drop_on_commit(keys: Iterable[str] = (), patterns: Iterable[str] = ()) -> None:
    """Drop the keys once the current transaction commits (at once outside a transaction).

    A read between the write and the commit may re-fill a key from the old data; dropping
    after commit guarantees that the first read after the commit sees the new data.
    """
    keys, patterns = list(keys), list(patterns)
    if keys or patterns:
        transaction.on_commit(lambda: drop_now(keys, patterns))
