"""The MongoDB part of the integration layer: reads of the seed's collections (and no others)."""

from collections.abc import Mapping
from typing import Any

from pymongo.errors import PyMongoError

from realtime import documents as mongo_collections
from realtime import errors
from realtime.connections import current_settings, get_mongo
from realtime.errors import ProtocolError

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
MAX_DOCUMENTS = 1_000

UNKNOWN_COLLECTION = "unknown collection {collection!r}"
MONGO_DOWN = "MongoDB is unavailable."


def seed_collection(name: str) -> Any:
    """The collection `name` of the seed's database; bad_request for any other name."""
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
    cursor = seed_collection(collection).find(dict(filter or {}), options.get("projection"))
    if options.get("sort"):
        cursor = cursor.sort(list(options["sort"]))
    if options.get("skip"):
        cursor = cursor.skip(int(options["skip"]))
    try:
        return list(await cursor.limit(limit).to_list(length=limit))
    except PyMongoError as error:
        raise ProtocolError(errors.UNAVAILABLE, MONGO_DOWN) from error
