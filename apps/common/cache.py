"""Read-through caches of the seed's Redis keys, dropped after the transaction that changes their source commits.

A fill never caches data loaded before a drop that already ran (see `EPOCH_KEY`), so
the first read after a commit sees the new data and no later read brings the old back.

Encoding of hashes (DESIGN.md): numbers as decimal strings, booleans `1`/`0`, nulls left
out; `decode_hash` turns them back with a field -> type map. Redis down: reads fall
through to PostgreSQL and writes are skipped, logged, never raised.
"""

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast

import redis
from django.db import transaction

from realtime.connections import get_redis, get_sync_redis, is_cluster
from realtime.pipelined import Call, LuaScript, evalsha_many, tick_pipeline

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


# Every drop bumps this counter (with the deletes, atomically). After a miss, a reader notes
# it before loading from PostgreSQL and fills the key only if it is unchanged: a load that may
# have read the data as it was before a commit whose drop already ran is never cached. Hits
# stay one command.
EPOCH_KEY = "cache:epoch"
_FILL = LuaScript("""
-- KEYS[1] = cache key, KEYS[2] = the epoch; ARGV[1] = epoch seen before loading, ARGV[2] = ttl,
-- ARGV[3] = kind: string, hash (replaced whole), field (fields added to the hash), list or set;
-- ARGV[4..] = the value (hash and field: field, value, ...).
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 0 end
if ARGV[3] == 'string' then
  redis.call('SET', KEYS[1], ARGV[4], 'EX', ARGV[2])
  return 1
end
if ARGV[3] ~= 'field' then redis.call('DEL', KEYS[1]) end
local commands = {list = 'RPUSH', set = 'SADD', hash = 'HSET', field = 'HSET'}
local command = commands[ARGV[3]]
for first = 4, #ARGV, 1000 do
  redis.call(command, KEYS[1], unpack(ARGV, first, math.min(first + 999, #ARGV)))
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
""")


async def current_epoch() -> str | None:
    """Read after a miss and before loading the source; give it to `afill`. None when Redis is down,
    and always on a Redis Cluster: the fill script must read the epoch and write the cache key
    atomically, which a cluster allows only within one slot, so there fills are off and every
    miss reads the source (correct, slower; a per-slot epoch would bring them back)."""
    if is_cluster(get_redis()):
        return None
    try:
        return str(await tick_pipeline(get_redis()).execute("GET", EPOCH_KEY) or "0")
    except redis.RedisError:
        return None


def _fill_call(key: str, epoch: str, ttl: int, kind: str, values: list[str]) -> Call:
    return [key, EPOCH_KEY], [epoch, ttl, kind, *values]


async def _fill(calls: list[Call], what: str) -> None:
    try:
        for reply in await evalsha_many(get_redis(), _FILL, calls):
            if isinstance(reply, Exception):
                raise reply
    except redis.RedisError:
        logger.warning("cache write of %s failed", what)


async def afill(key: str, kind: str, values: list[str], ttl: int, epoch: str | None) -> None:
    """Replace `key` (kind string, hash, list or set; hash values as field, value, ...; kind field
    adds fields to a hash) unless a drop ran since `epoch` was read. Logs instead of raising."""
    if epoch is not None:
        await _fill([_fill_call(key, epoch, ttl, kind, values)], key)


async def afill_many(fills: list[tuple[str, str, list[str]]], ttl: int, epoch: str | None) -> None:
    """`afill` for many (key, kind, values) in one pipelined round trip. Logs instead of raising."""
    if epoch is not None and fills:
        await _fill([_fill_call(key, epoch, ttl, kind, values) for key, kind, values in fills], f"{len(fills)} keys")


async def aread_hash(key: str, ttl: int, load: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, str]:
    """The cached hash at `key`, filled from `load()` (encoded) on a miss."""
    try:
        cached = await get_redis().hgetall(key)
    except redis.RedisError:
        logger.warning("cache read of %s failed; reading the source", key)
        return encode_hash(await load())
    if cached:
        return cast("dict[str, str]", cached)  # a fresh dict from the decoded client
    epoch = await current_epoch()
    fresh = encode_hash(await load())
    if fresh:
        await afill(key, "hash", [text for pair in fresh.items() for text in pair], ttl, epoch)
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
    epoch = await current_epoch()
    fresh = await load()
    await afill(key, "string", [json.dumps(fresh, default=str)], ttl, epoch)
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
        # With the other commands of the loop tick: a burst of lookups shares one round trip.
        cached = await tick_pipeline(get_redis()).execute("MGET", *[keys_by_id[i] for i in ids])
    except redis.RedisError:
        logger.warning("cache read of %d keys failed; reading the source", len(ids))
        return dict(await load(ids))
    found = {i: json.loads(raw) for i, raw in zip(ids, cached, strict=True) if raw is not None}
    missing = [i for i in ids if i not in found]
    if missing:
        epoch = await current_epoch()
        fresh = await load(missing)
        if epoch is not None:
            calls = [
                _fill_call(keys_by_id[i], epoch, ttl, "string", [json.dumps(fresh[i], default=str)]) for i in missing
            ]
            await _fill(calls, f"{len(missing)} keys")
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
    epoch = await current_epoch()
    fresh = await load()
    if fresh:
        await afill(key, "list", [json.dumps(item, default=str) for item in fresh], ttl, epoch)
    return fresh


async def adrop(keys: list[str]) -> int:
    """Delete `keys` now and refuse fills racing the drop (async); returns how many existed. Raises RedisError."""
    client = get_redis()
    # One MULTI on one Redis; a cluster cannot span slots in one, and needs none (no fills there).
    async with client.pipeline(transaction=not is_cluster(client)) as pipe:
        if keys:
            pipe.delete(*keys)
        pipe.incr(EPOCH_KEY)
        replies = await pipe.execute()
    return sum(int(reply) for reply in replies[:-1])  # the DELs (one per slot on a cluster), then INCR


def drop_now(keys: Iterable[str] = (), patterns: Iterable[str] = ()) -> None:
    """Delete keys, and keys matching glob patterns (SCAN, never KEYS); logs instead of raising."""
    keys, patterns = list(keys), list(patterns)
    try:
        client = get_sync_redis()
        with client.pipeline(transaction=not is_cluster(client)) as pipe:  # as in `adrop`
            for key in keys:  # one DEL each: the blocking cluster pipeline takes no multi-key DEL
                pipe.delete(key)
            pipe.incr(EPOCH_KEY)  # before the pattern deletes: a fill racing them is refused too
            pipe.execute()
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
