"""The Redis part of the integration layer: read and write the seed's cache keys, invalidate by pattern
(SCAN, never KEYS), and drop the keys that hold an entity's data."""

import json
import logging
import re
from typing import Any

import redis
from asgiref.sync import sync_to_async
from django.apps import apps
from django.core.exceptions import ValidationError

from apps.common.cache import adrop
from apps.common.integration.entities import ENTITY_MODELS, UNKNOWN_ENTITY
from realtime import errors, keys
from realtime.connections import get_redis
from realtime.errors import ProtocolError

logger = logging.getLogger(__name__)

SCAN_COUNT = 500

UNSAFE_PATTERN = "refusing to invalidate {pattern!r}: a pattern must name more than wildcards"
CACHE_DOWN = "The cache (Redis) is unavailable."


async def get_cached_data(key: str) -> Any:
    """The value at `key`: a JSON string decoded, a hash as a dict, a list (of JSON strings) decoded,
    a set as a sorted list; None when absent or when Redis is down (logged: a cache miss)."""
    client = get_redis()
    try:
        kind = await client.type(key)
        if kind == "string":
            raw = await client.get(key)
            return None if raw is None else _json_or_text(raw)
        if kind == "hash":
            return await client.hgetall(key)
        if kind == "list":
            return [_json_or_text(item) for item in await client.lrange(key, 0, -1)]
        if kind == "set":
            return sorted(await client.smembers(key))
        if kind == "zset":
            return await client.zrange(key, 0, -1)
        return None
    except redis.RedisError:
        logger.warning("integration: cache read of %s failed; treated as a miss", key)
        return None


def _json_or_text(raw: str | bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


async def set_cached_data(key: str, value: Any, ttl: int | None) -> bool:
    """Store `value` as a JSON string (TTL in seconds; None keeps it until dropped). False when Redis is down."""
    try:
        await get_redis().set(key, json.dumps(value, default=str), ex=ttl if ttl else None)
    except redis.RedisError:
        logger.warning("integration: cache write of %s failed", key)
        return False
    return True


def _is_unsafe(pattern: str) -> bool:
    return not pattern or not re.sub(r"[*?\[\]]", "", pattern).strip(":")


async def invalidate_cache(pattern: str) -> int:
    """Delete the keys matching a glob `pattern` with SCAN (never KEYS); returns how many were deleted.

    A pattern of wildcards only (`*`) is refused. Redis down raises unavailable: a silent
    failure here would leave stale data behind.
    """
    if _is_unsafe(pattern):
        raise ProtocolError(errors.BAD_REQUEST, UNSAFE_PATTERN.format(pattern=pattern))
    client = get_redis()
    deleted = 0
    batch: list[str] = []
    try:
        await adrop([])  # fills racing this invalidation are refused
        async for key in client.scan_iter(match=pattern, count=SCAN_COUNT):
            batch.append(key)
            if len(batch) >= SCAN_COUNT:
                deleted += await client.delete(*batch)
                batch.clear()
        if batch:
            deleted += await client.delete(*batch)
    except redis.RedisError as error:
        raise ProtocolError(errors.UNAVAILABLE, CACHE_DOWN) from error
    return deleted


def _cache_keys_of(entity_type: str, entity_id: str) -> tuple[list[str], list[str]]:
    """(keys, patterns) of the seed caches that hold data of the entity (sync: may read PostgreSQL)."""
    if entity_type == "property":
        return (
            [keys.property_details(entity_id), keys.unit_availability(entity_id), keys.maintenance_counts(entity_id)],
            [keys.search_properties("*"), keys.lookup_cities("*")],
        )
    if entity_type == "user":
        return (
            [keys.user_permissions(entity_id), keys.subscription_status(entity_id),
             keys.transactions_recent(entity_id)],
            [keys.feature_access(entity_id, "*")],
        )
    if entity_type == "amenity":
        return [keys.LOOKUP_AMENITIES], []
    if entity_type == "subscription":
        user_id = _value_of("subscriptions.Subscription", entity_id, "user_id")
        if user_id is None:
            return [], [keys.subscription_status("*"), keys.feature_access("*", "*")]
        return [keys.subscription_status(user_id)], [keys.feature_access(user_id, "*")]
    if entity_type == "transaction":
        return [], [keys.transactions_recent("*")]
    property_path = {
        "unit": "property_id",
        "lease": "unit__property_id",
        "maintenance": "unit__property_id",
    }.get(entity_type)
    if property_path is None:
        if entity_type in ENTITY_MODELS:
            return [], []
        raise ProtocolError(errors.BAD_REQUEST, UNKNOWN_ENTITY.format(entity_type=entity_type))
    property_id = _value_of(ENTITY_MODELS[entity_type], entity_id, property_path)
    found: list[str] = []
    if property_id is not None:
        if entity_type == "maintenance":
            found = [keys.maintenance_counts(property_id)]
        else:
            found = [keys.unit_availability(property_id), keys.property_details(property_id)]
    # A lease changes who sees which transactions.
    patterns = [keys.transactions_recent("*")] if entity_type == "lease" else []
    return found, patterns


def _value_of(label: str, entity_id: str, path: str) -> str | None:
    try:
        value = apps.get_model(label)._default_manager.filter(pk=entity_id).values_list(path, flat=True).first()
    except (ValidationError, ValueError):
        return None
    return None if value is None else str(value)


async def refresh_cache(entity_type: str, entity_id: Any) -> int:
    """Drop the seed cache keys holding the entity's data; the next read refills them. Returns keys deleted.

    property -> property:{id}, unit:availability:{id}, maintenance:counts:{id},
    search:properties:*, lookup:cities:*; unit -> its property's property:{id} and
    unit:availability:{id}; lease -> those, plus transactions:recent:*; maintenance ->
    maintenance:counts:{propertyId}; transaction -> transactions:recent:*; user ->
    user:permissions, subscription:status, transactions:recent, feature:access:{id}:*;
    subscription -> its user's subscription:status and feature:access; amenity -> lookup:amenities.
    """
    exact, patterns = await sync_to_async(_cache_keys_of)(entity_type, str(entity_id))
    deleted = 0
    if exact:
        try:
            deleted += await adrop(exact)
        except redis.RedisError as error:
            raise ProtocolError(errors.UNAVAILABLE, CACHE_DOWN) from error
    for pattern in patterns:
        deleted += await invalidate_cache(pattern)
    return deleted
