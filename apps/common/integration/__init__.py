"""What is left of the seed's DatabaseIntegrationService: the two operations that span PostgreSQL and
MongoDB, behind real endpoints (apps/documents/lease_documents.py).

| seed method | here | used by |
|---|---|---|
| getEntityWithDocuments(entityType, entityId) | `get_entity_with_documents(entity_type, entity_id)` | `GET /api/v1/leases/{id}/with-documents` |
| saveEntityWithDocuments(entityType, entity, docs) | `save_entity_with_documents(entity_type, entity_data, docs)`, crash-safe with `arecover_intents` | `POST /api/v1/leases/{id}/document-uploads`; recovery every housekeeping round |
| queryDocuments(collection, filter, options) | `query_documents(collection, filter, options)` | `get_entity_with_documents` |

The seed's other operations (queryRelationalData, executeTransaction, insertDocument,
getCachedData, setCachedData, invalidateCache, refreshCache) were generic wrappers no code
path used: every read and write goes through the apps' selectors and services (which check
who is asking, which these never did), each cache has its owner module with its own
invalidation (`apps/*/caches.py`, `apps/common/cache.py`), and a SQL runner or a pattern
invalidation open to any caller is a risk with no user. They were removed (issue 10);
the README says so.

Server-side code only: nothing here checks who is asking (the endpoints do).

- `mongo.py`: reads of the seed's MongoDB collections;
- `entities.py`: an entity's row with its documents, saved across PostgreSQL and MongoDB.
"""

from apps.common.integration.entities import (
    DOCUMENT_TYPES,
    ENTITY_MODELS,
    INTENT_GRACE,
    POSTGRES_FAILED,
    SAVE_COMPENSATED,
    SAVE_RECOVERED,
    UNKNOWN_ENTITY,
    UNKNOWN_FIELDS,
    _begin_save,  # the first half of a save, driven directly by tests/apps/common/test_integration.py
    _save_row,
    _undo_row,
    arecover_intents,
    get_entity_with_documents,
    row_dict,
    save_entity_with_documents,
)
from apps.common.integration.mongo import (
    COLLECTIONS,
    MAX_DOCUMENTS,
    MONGO_DOWN,
    UNKNOWN_COLLECTION,
    query_documents,
)

__all__ = [
    "COLLECTIONS",
    "DOCUMENT_TYPES",
    "ENTITY_MODELS",
    "INTENT_GRACE",
    "MAX_DOCUMENTS",
    "MONGO_DOWN",
    "POSTGRES_FAILED",
    "SAVE_COMPENSATED",
    "SAVE_RECOVERED",
    "UNKNOWN_COLLECTION",
    "UNKNOWN_ENTITY",
    "UNKNOWN_FIELDS",
    "_begin_save",
    "_save_row",
    "_undo_row",
    "arecover_intents",
    "get_entity_with_documents",
    "query_documents",
    "row_dict",
    "save_entity_with_documents",
]
