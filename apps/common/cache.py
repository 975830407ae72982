"""Read-through caches of the seed's Redis keys, dropped after the transaction that changes their source commits.

A fill never caches data loaded before a drop of its key that already ran (the epochs below), so
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
import redis.cluster
from django.db import transaction
from redis.cluster import ClusterNode
from redis.crc import key_slot

from realtime import keys as key_names
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


# Every drop bumps the epoch guarding its keys (before deleting them). After a miss, a reader
# notes that epoch before loading from PostgreSQL and fills the key only if it is unchanged: a
# load that may have read the data as it was before a commit whose drop already ran is never
# cached. Hits stay one command. One Redis has one epoch (`cache:epoch`). A Redis Cluster has
# one per hash slot (`realtime.keys.cache_epoch_of_slot`), in that slot, so the fill script
# reads the epoch and writes the key in one slot; a pattern drop bumps all 16384.
EPOCH_KEY = key_names.CACHE_EPOCH
Epoch = dict[str, str]
"""The epochs a reader noted before loading: epoch key -> value (`current_epoch`)."""

_FILL = LuaScript("""
-- KEYS[1] = cache key, KEYS[2] = the epoch guarding it; ARGV[1] = epoch seen before loading, ARGV[2] = ttl,
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

# A pattern drop on a cluster: one call per master bumps the epochs of the slots it serves
# (keys of many slots of one node: Redis 7's `allow-cross-slot-keys`; undeclared, since a
# command's declared keys must share a slot). 16,384 INCRs through redis-py's cluster pipeline
# took 0.5 to 0.7 s on the local three-master cluster; these three calls 30 to 55 ms.
_BUMP_SLOTS = """#!lua flags=allow-cross-slot-keys
for _, key in ipairs(ARGV) do redis.call('INCR', key) end
return #ARGV"""


def epoch_key(client: object, key: str) -> str:
    """The epoch guarding cache key `key` on `client`'s Redis (a cluster: the one in its slot)."""
    return key_names.cache_epoch_of_slot(key_slot(key.encode())) if is_cluster(client) else EPOCH_KEY


async def current_epoch(*cache_keys: str) -> Epoch | None:
    """The epochs guarding `cache_keys`, read after a miss and before loading the source; give them
    to `afill` (a key whose epoch was not read here is not filled). None when Redis is down."""
    client = get_redis()
    names = sorted({epoch_key(client, key) for key in cache_keys})
    if not names:
        return {}
    try:
        # One MGET on one Redis; on a cluster one GET per slot, one round trip per master.
        values = await tick_pipeline(client).execute("MGET", *names)
    except redis.RedisError:
        return None
    return {name: str(value or "0") for name, value in zip(names, values, strict=True)}


def _fill_call(client: object, key: str, epoch: Epoch, ttl: int, kind: str, values: list[str]) -> Call | None:
    guard = epoch_key(client, key)
    seen = epoch.get(guard)
    return None if seen is None else ([key, guard], [seen, ttl, kind, *values])


async def _fill(fills: list[tuple[str, str, list[str]]], ttl: int, epoch: Epoch | None, what: str) -> None:
    if epoch is None or not fills:
        return
    client = get_redis()
    calls = [call for key, kind, values in fills if (call := _fill_call(client, key, epoch, ttl, kind, values))]
    try:
        for reply in await evalsha_many(client, _FILL, calls):
            if isinstance(reply, Exception):
                raise reply
    except redis.RedisError:
        logger.warning("cache write of %s failed", what)


async def afill(key: str, kind: str, values: list[str], ttl: int, epoch: Epoch | None) -> None:
    """Replace `key` (kind string, hash, list or set; hash values as field, value, ...; kind field
    adds fields to a hash) unless a drop of it ran since `epoch` (`current_epoch(key, ...)`) was
    read. Logs instead of raising."""
    await _fill([(key, kind, values)], ttl, epoch, key)


async def afill_many(fills: list[tuple[str, str, list[str]]], ttl: int, epoch: Epoch | None) -> None:
    """`afill` for many (key, kind, values) in one pipelined round trip. Logs instead of raising."""
    await _fill(fills, ttl, epoch, f"{len(fills)} keys")


async def aread_hash(key: str, ttl: int, load: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, str]:
    """The cached hash at `key`, filled from `load()` (encoded) on a miss."""
    try:
        cached = await get_redis().hgetall(key)
    except redis.RedisError:
        logger.warning("cache read of %s failed; reading the source", key)
        return encode_hash(await load())
    if cached:
        return cast("dict[str, str]", cached)  # a fresh dict from the decoded client
    epoch = await current_epoch(key)
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
    epoch = await current_epoch(key)
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
        epoch = await current_epoch(*[keys_by_id[i] for i in missing])
        fresh = await load(missing)
        fills = [(keys_by_id[i], "string", [json.dumps(fresh[i], default=str)]) for i in missing]
        await _fill(fills, ttl, epoch, f"{len(missing)} keys")
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
    epoch = await current_epoch(key)
    fresh = await load()
    if fresh:
        await afill(key, "list", [json.dumps(item, default=str) for item in fresh], ttl, epoch)
    return fresh


def queue_drop(pipe: Any, client: object, cache_keys: Iterable[str]) -> int:
    """Queue on `pipe` (a pipeline of `client`) a drop of `cache_keys`: the epochs guarding them
    bumped first, then the keys deleted (one DEL on one Redis, one per key on a cluster, whose
    blocking pipeline takes no multi-key DEL). One Redis bumps `cache:epoch` even with no keys.
    Returns how many epoch bumps were queued (their replies come before the deletes').

    Atomic in a MULTI on one Redis. On a cluster (no MULTI across slots) each slot's commands
    still run in this order on its master, which is what the guarantee needs: a fill that ran
    before the INCR is deleted by the DEL, one after it is refused.
    """
    cache_keys = list(cache_keys)
    cluster = is_cluster(client)
    guards = sorted({epoch_key(client, key) for key in cache_keys}) if cluster else [EPOCH_KEY]
    for guard in guards:
        pipe.incr(guard)
    if cluster:
        for key in cache_keys:
            pipe.delete(key)
    elif cache_keys:
        pipe.delete(*cache_keys)
    return len(guards)


async def adrop(cache_keys: list[str]) -> int:
    """Delete `cache_keys` now and refuse fills racing the drop (async); returns how many existed. Raises RedisError."""
    client = get_redis()
    async with client.pipeline(transaction=not is_cluster(client)) as pipe:
        bumps = queue_drop(pipe, client, cache_keys)
        replies = await pipe.execute()
    return sum(int(reply) for reply in replies[bumps:])  # the DELs


def _bump_every_slot(client: redis.cluster.RedisCluster) -> None:
    """Bump the epoch of every slot of the cluster (a pattern drop's keys may be in any)."""
    by_node: dict[str, tuple[ClusterNode, list[str]]] = {}
    for slot in range(key_names.CLUSTER_SLOTS):
        node = client.nodes_manager.get_node_from_slot(slot)
        by_node.setdefault(node.name, (node, []))[1].append(key_names.cache_epoch_of_slot(slot))
    for node, guards in by_node.values():
        try:
            client.execute_command("EVAL", _BUMP_SLOTS, 0, *guards, target_nodes=node)
        except redis.ResponseError:
            # A slot moved since the map was read (a reshard or failover): slot by slot, routed.
            with client.pipeline(transaction=False) as pipe:
                for guard in guards:
                    pipe.incr(guard)
                pipe.execute()


def drop_now(keys: Iterable[str] = (), patterns: Iterable[str] = ()) -> None:
    """Delete keys, and keys matching glob patterns (SCAN, never KEYS); logs instead of raising."""
    keys, patterns = list(keys), list(patterns)
    try:
        client = get_sync_redis()
        with client.pipeline(transaction=not is_cluster(client)) as pipe:  # as in `adrop`
            queue_drop(pipe, client, keys)
            pipe.execute()
        if patterns and isinstance(client, redis.cluster.RedisCluster):
            _bump_every_slot(client)  # before the pattern deletes: a fill racing them is refused too
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
