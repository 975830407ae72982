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

One module per store, and one for the operations that span two:

- `postgres.py`: read-only SQL and transactions;
- `mongo.py`: the seed's MongoDB collections;
- `redis_cache.py`: the seed's Redis caches (read, write, invalidate, refresh);
- `entities.py`: an entity's row with its documents, saved across PostgreSQL and MongoDB.

Everything is importable from here (`from apps.common import integration`).
"""

from apps.common.integration.entities import (
    DOCUMENT_TYPES,
    ENTITY_MODELS,
    POSTGRES_FAILED,
    SAVE_COMPENSATED,
    UNKNOWN_ENTITY,
    UNKNOWN_FIELDS,
    _save_row,  # the two halves of a save, driven directly by tests/apps/common/test_integration.py
    _undo_row,
    get_entity_with_documents,
    row_dict,
    save_entity_with_documents,
)
from apps.common.integration.mongo import (
    COLLECTIONS,
    MAX_DOCUMENTS,
    MONGO_DOWN,
    UNKNOWN_COLLECTION,
    insert_document,
    query_documents,
)
from apps.common.integration.postgres import (
    MAX_ROWS,
    ONE_STATEMENT,
    READ_ONLY,
    READ_ONLY_SQLSTATE,
    STATEMENT_TIMEOUT_MS,
    execute_transaction,
    query_relational_data,
)
from apps.common.integration.redis_cache import (
    CACHE_DOWN,
    SCAN_COUNT,
    UNSAFE_PATTERN,
    get_cached_data,
    invalidate_cache,
    refresh_cache,
    set_cached_data,
)

__all__ = [
    "CACHE_DOWN",
    "COLLECTIONS",
    "DOCUMENT_TYPES",
    "ENTITY_MODELS",
    "MAX_DOCUMENTS",
    "MAX_ROWS",
    "MONGO_DOWN",
    "ONE_STATEMENT",
    "POSTGRES_FAILED",
    "READ_ONLY",
    "READ_ONLY_SQLSTATE",
    "SAVE_COMPENSATED",
    "SCAN_COUNT",
    "STATEMENT_TIMEOUT_MS",
    "UNKNOWN_COLLECTION",
    "UNKNOWN_ENTITY",
    "UNKNOWN_FIELDS",
    "UNSAFE_PATTERN",
    "_save_row",
    "_undo_row",
    "execute_transaction",
    "get_cached_data",
    "get_entity_with_documents",
    "insert_document",
    "invalidate_cache",
    "query_documents",
    "query_relational_data",
    "refresh_cache",
    "row_dict",
    "save_entity_with_documents",
    "set_cached_data",
]
