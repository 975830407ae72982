"""The seed's DatabaseIntegrationService, for real: one data-access layer over PostgreSQL, MongoDB and Redis.

| seed method | here |
|---|---|
| queryRelationalData(query, params) | `query_relational_data(sql, params)`: one read-only statement |
| executeTransaction(operations) | `execute_transaction(operations)`: callables in one `transaction.atomic` |
| queryDocuments(collection, filter, options) | `query_documents(collection, filter, options)` |
| insertDocument(collection, document) | `insert_document(collection, document)` |
| getCachedData(key) / setCachedData(key, value, ttl) | `get_cached_data(key)` / `set_cached_data(key, value, ttl)` |
| getEntityWithDocuments(entityType, entityId) | `get_entity_with_documents(entity_type, entity_id)` |
| saveEntityWithDocuments(entityType, entity, docs) | `save_entity_with_documents(entity_type, entity_data, docs)` |
| invalidateCache(pattern) | `invalidate_cache(pattern)`: SCAN, never KEYS |
| refreshCache(entityType, entityId) | `refresh_cache(entity_type, entity_id)`: drops the entity's seed cache keys |

Server-side code only: nothing here checks who is asking (the endpoints do), and the SQL
of `query_relational_data` must come from the code base, never from a request.

Saving across two databases without a distributed transaction: PostgreSQL first, in its own
transaction; then MongoDB. If PostgreSQL fails, MongoDB is never touched. If MongoDB fails
after PostgreSQL committed, the layer compensates (deletes the row it created, or restores
the values it overwrote if nobody changed them since), removes any of the documents that
did land, and raises `unavailable` with a report of what it did.
"""

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import redis
from asgiref.sync import sync_to_async
from bson import ObjectId
from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import DatabaseError, IntegrityError, connection, models, transaction
from pymongo.errors import PyMongoError

from realtime import documents as mongo_collections
from realtime import errors, keys
from realtime.connections import current_settings, get_mongo, get_redis
from realtime.errors import ProtocolError

logger = logging.getLogger(__name__)

# Entity type -> model label. The four document types of `documents.documentType` share these names.
ENTITY_MODELS = {
    "property": "properties.Property",
    "unit": "properties.Unit",
    "tenant": "leasing.Tenant",
    "lease": "leasing.Lease",
    "maintenance": "maintenance.MaintenanceRequest",
    "application": "hud.HudApplication",
    "hud_form": "hud.HudForm",
    "transaction": "finance.Transaction",
}
DOCUMENT_TYPES = frozenset({"lease", "application", "maintenance", "hud_form"})
COLLECTIONS = frozenset(
    {
        mongo_collections.DOCUMENTS,
        mongo_collections.NOTIFICATIONS,
        mongo_collections.CHAT_MESSAGES,
        mongo_collections.USAGE_PATTERNS,
        mongo_collections.AI_TRAINING_DATA,
        mongo_collections.AI_MODELS,
    }
)
MAX_ROWS = 10_000
MAX_DOCUMENTS = 1_000
STATEMENT_TIMEOUT_MS = 30_000
SCAN_COUNT = 500
READ_ONLY_SQLSTATE = "25006"  # read_only_sql_transaction

ONE_STATEMENT = "query_relational_data runs one statement: no ';' (pass values as params)"
READ_ONLY = "query_relational_data is read-only: {error}"
UNKNOWN_ENTITY = "unknown entity type {entity_type!r}"
UNKNOWN_COLLECTION = "unknown collection {collection!r}"
UNKNOWN_FIELDS = "unknown fields for {entity_type}: {fields}"
UNSAFE_PATTERN = "refusing to invalidate {pattern!r}: a pattern must name more than wildcards"
POSTGRES_FAILED = "The {entity_type} was not saved: {reason}"
SAVE_COMPENSATED = "The documents could not be stored; the {entity_type} change was undone. Retry shortly."
CACHE_DOWN = "The cache (Redis) is unavailable."
MONGO_DOWN = "MongoDB is unavailable."

# --- PostgreSQL ----------------------------------------------------------------------------


def _query_read_only(sql: str, params: Sequence[Any] | Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if ";" in sql.strip().rstrip(";"):
        raise ProtocolError(errors.BAD_REQUEST, ONE_STATEMENT)
    sql = sql.strip().rstrip(";")
    try:
        # A savepoint (or a transaction) made read-only by PostgreSQL itself, and always rolled
        # back at the end, so the read-only mode never leaks into an enclosing transaction.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION READ ONLY")
            cursor.execute(f"SET LOCAL statement_timeout = {int(STATEMENT_TIMEOUT_MS)}")
            cursor.execute(sql, params)
            columns = [column.name for column in cursor.description or ()]
            rows = cursor.fetchmany(MAX_ROWS) if columns else []
            transaction.set_rollback(True)
    except DatabaseError as error:
        if getattr(error.__cause__, "sqlstate", None) == READ_ONLY_SQLSTATE:
            raise ProtocolError(errors.BAD_REQUEST, READ_ONLY.format(error=error)) from error
        raise
    return [dict(zip(columns, row, strict=True)) for row in rows]


async def query_relational_data(
    sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Rows (column -> value) of one read-only SQL statement, at most MAX_ROWS.

    PostgreSQL enforces read-only (a write raises bad_request); `%s` / `%(name)s` placeholders.
    """
    return await sync_to_async(_query_read_only)(sql, params)


def _run_atomic(operations: Sequence[Callable[[], Any]]) -> list[Any]:
    with transaction.atomic():
        return [operation() for operation in operations]


async def execute_transaction(operations: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run the (sync, ORM) callables in order in one transaction; their results, or nothing at all on error."""
    return await sync_to_async(_run_atomic)(list(operations))


# --- MongoDB -------------------------------------------------------------------------------


def _collection(name: str) -> Any:
    if name not in COLLECTIONS:
        raise ProtocolError(errors.BAD_REQUEST, UNKNOWN_COLLECTION.format(collection=name))
    return get_mongo()[current_settings().mongo_database][name]


async def query_documents(
    collection: str, filter: Mapping[str, Any] | None = None, options: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Documents of one of the seed's collections.

    options: `projection`, `sort` ([(field, 1|-1)]), `skip`, `limit` (at most MAX_DOCUMENTS, the default).
    """
    options = dict(options or {})
    limit = min(int(options.get("limit") or MAX_DOCUMENTS), MAX_DOCUMENTS)
    cursor = _collection(collection).find(dict(filter or {}), options.get("projection"))
    if options.get("sort"):
        cursor = cursor.sort(list(options["sort"]))
    if options.get("skip"):
        cursor = cursor.skip(int(options["skip"]))
    try:
        return list(await cursor.limit(limit).to_list(length=limit))
    except PyMongoError as error:
        raise ProtocolError(errors.UNAVAILABLE, MONGO_DOWN) from error


async def insert_document(collection: str, document: Mapping[str, Any]) -> str:
    """Insert one document; returns its id as a string."""
    doc = dict(document)
    doc.setdefault("_id", ObjectId())
    try:
        await _collection(collection).insert_one(doc)
    except PyMongoError as error:
        raise ProtocolError(errors.UNAVAILABLE, MONGO_DOWN) from error
    return str(doc["_id"])


# --- Redis ---------------------------------------------------------------------------------


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


def _json_or_text(raw: str) -> Any:
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
            deleted += await get_redis().delete(*exact)
        except redis.RedisError as error:
            raise ProtocolError(errors.UNAVAILABLE, CACHE_DOWN) from error
    for pattern in patterns:
        deleted += await invalidate_cache(pattern)
    return deleted


# --- PostgreSQL and MongoDB together --------------------------------------------------------


def _model(entity_type: str) -> type[models.Model]:
    label = ENTITY_MODELS.get(entity_type)
    if label is None:
        raise ProtocolError(errors.BAD_REQUEST, UNKNOWN_ENTITY.format(entity_type=entity_type))
    return apps.get_model(label)


def row_dict(obj: models.Model) -> dict[str, Any]:
    """Every concrete column of the row by attribute name (`unit_id`, not `unit`)."""
    return {field.attname: getattr(obj, field.attname) for field in obj._meta.concrete_fields}


def _load_row(entity_type: str, entity_id: Any) -> dict[str, Any] | None:
    model = _model(entity_type)
    try:
        obj = model._default_manager.filter(pk=entity_id).first()
    except (ValidationError, ValueError):
        return None
    return None if obj is None else row_dict(obj)


async def get_entity_with_documents(entity_type: str, entity_id: Any) -> dict[str, Any] | None:
    """`{"entity": row, "documents": [...]}`: the row and the documents whose referenceId is its id; None if no row."""
    row = await sync_to_async(_load_row)(entity_type, entity_id)
    if row is None:
        return None
    query: dict[str, Any] = {"referenceId": str(entity_id)}
    if entity_type in DOCUMENT_TYPES:
        query = {"$and": [query, {"documentType": entity_type}]}
    documents = await query_documents(mongo_collections.DOCUMENTS, query, {"sort": [("uploadedAt", 1), ("_id", 1)]})
    return {"entity": row, "documents": documents}


def _field_names(model: type[models.Model], data: Mapping[str, Any], entity_type: str) -> dict[str, str]:
    """data key -> attname; bad_request for keys that are not columns."""
    names: dict[str, str] = {}
    unknown: list[str] = []
    for key in data:
        try:
            field = model._meta.get_field(key)
        except FieldDoesNotExist:
            field = next((f for f in model._meta.concrete_fields if f.attname == key), None)  # type: ignore[assignment]
        if field is None or not getattr(field, "concrete", False):
            unknown.append(key)
        else:
            names[key] = field.attname  # type: ignore[union-attr]
    if unknown:
        raise ProtocolError(errors.BAD_REQUEST, UNKNOWN_FIELDS.format(entity_type=entity_type, fields=sorted(unknown)))
    return names


def _save_row(entity_type: str, data: Mapping[str, Any]) -> tuple[Any, bool, dict[str, Any], dict[str, Any]]:
    """Create or update the row in one transaction; (pk, created, previous values, written values)."""
    model = _model(entity_type)
    names = _field_names(model, data, entity_type)
    pk_attname = model._meta.pk.attname  # type: ignore[union-attr]
    pk = next((data[key] for key, attname in names.items() if attname == pk_attname), None)
    changed = [attname for attname in names.values() if attname != pk_attname]
    try:
        with transaction.atomic():
            obj = model._default_manager.select_for_update().filter(pk=pk).first() if pk is not None else None
            created = obj is None
            previous: dict[str, Any] = {}
            if obj is None:
                obj = model(**{attname: data[key] for key, attname in names.items()})
            else:
                previous = {attname: getattr(obj, attname) for attname in changed}
                for key, attname in names.items():
                    setattr(obj, attname, data[key])
            obj.full_clean(validate_unique=False, validate_constraints=False)
            obj.save()
            obj.refresh_from_db()
    except ValidationError as error:
        fields = [{"field": field, "reason": "; ".join(reasons)} for field, reasons in error.message_dict.items()]
        raise ProtocolError(errors.BAD_REQUEST, POSTGRES_FAILED.format(entity_type=entity_type, reason="invalid"),
                            http_status=422, fields=fields) from error
    except IntegrityError as error:
        reason = "it conflicts with existing data"
        raise ProtocolError(errors.CONFLICT, POSTGRES_FAILED.format(entity_type=entity_type, reason=reason)) from error
    except DatabaseError as error:
        raise ProtocolError(errors.UNAVAILABLE, POSTGRES_FAILED.format(entity_type=entity_type,
                                                                        reason="PostgreSQL failed")) from error
    written = {attname: getattr(obj, attname) for attname in changed}
    return obj.pk, created, previous, written


def _undo_row(entity_type: str, pk: Any, created: bool, previous: dict[str, Any], written: dict[str, Any]) -> str:
    """Compensate a committed save; returns what was done (never raises: the caller reports it)."""
    model = _model(entity_type)
    try:
        with transaction.atomic():
            obj = model._default_manager.select_for_update().filter(pk=pk).first()
            if obj is None:
                return "nothing to undo: the row is gone"
            if created:
                obj.delete()
                return "created row deleted"
            if any(getattr(obj, attname) != value for attname, value in written.items()):
                return "not restored: the row was changed again meanwhile"
            for attname, value in previous.items():
                setattr(obj, attname, value)
            obj.save()
            return "previous values restored"
    except Exception as error:  # reported to the caller and logged loudly: manual repair needed
        logger.error("integration: could not undo the %s %s save", entity_type, pk, exc_info=True)
        return f"undo failed: {type(error).__name__}: {error}"


async def save_entity_with_documents(
    entity_type: str, entity_data: Mapping[str, Any], documents: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """Create (no or unknown primary key) or update the row, then insert its documents into MongoDB.

    Returns `{"entity": row, "documents": [...], "created": bool}`. Each document gets
    `referenceId` = the row's id (and `documentType` = entity_type for the four document
    types, `uploadedAt`, `isArchived` when missing). PostgreSQL fails: raised, MongoDB untouched.
    MongoDB fails: compensated as the module says, then `unavailable` with `report`.
    """
    pk, created, previous, written = await sync_to_async(_save_row)(entity_type, entity_data)
    docs: list[dict[str, Any]] = []
    for document in documents:
        doc = dict(document)
        doc["_id"] = doc.get("_id") or ObjectId()
        doc["referenceId"] = str(pk)
        if entity_type in DOCUMENT_TYPES:
            doc.setdefault("documentType", entity_type)
        doc.setdefault("uploadedAt", _now())
        doc.setdefault("isArchived", False)
        docs.append(doc)
    if docs:
        try:
            await _collection(mongo_collections.DOCUMENTS).insert_many(docs, ordered=True)
        except BaseException as error:
            report = await _compensate(entity_type, pk, created, previous, written, docs, error)
            if isinstance(error, PyMongoError):
                raise ProtocolError(errors.UNAVAILABLE, SAVE_COMPENSATED.format(entity_type=entity_type),
                                    report=report) from error
            raise
    row = await sync_to_async(_load_row)(entity_type, pk)
    return {"entity": row, "documents": docs, "created": created}


async def _compensate(entity_type: str, pk: Any, created: bool, previous: dict[str, Any],
                      written: dict[str, Any], docs: list[dict[str, Any]], error: BaseException) -> dict[str, Any]:
    ids = [doc["_id"] for doc in docs]
    try:
        removed = (await _collection(mongo_collections.DOCUMENTS).delete_many({"_id": {"$in": ids}})).deleted_count
        mongo_cleanup = f"{removed} partly inserted documents removed"
    except PyMongoError as cleanup_error:
        mongo_cleanup = f"could not check for partly inserted documents: {type(cleanup_error).__name__}"
    postgres = await sync_to_async(_undo_row)(entity_type, pk, created, previous, written)
    report = {
        "entityType": entity_type,
        "entityId": str(pk),
        "postgres": "created" if created else "updated",
        "mongo": f"failed: {type(error).__name__}",
        "mongoCleanup": mongo_cleanup,
        "compensation": postgres,
    }
    logger.warning("integration: save of %s %s compensated: %s", entity_type, pk, report)
    return report


def _now() -> datetime:
    """Now in UTC at the millisecond precision BSON dates hold."""
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
