"""Batching: one flush per loop tick, one outcome per caller; InsertOnce on the configured MongoDB."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from bson import ObjectId
from django.conf import settings
from pymongo import AsyncMongoClient

from realtime.batching import BadDocument, Batcher, InsertOnce


async def test_batcher_gives_each_caller_its_outcome_and_splits_at_max_size() -> None:
    batches: list[list[int]] = []

    async def flush(items: list[int]) -> list[int | BaseException]:
        batches.append(items)
        return [ValueError(item) if item < 0 else item * 10 for item in items]

    batcher: Batcher[int, int] = Batcher(flush, max_size=4)
    results = await asyncio.gather(*(batcher.submit(i) for i in (1, 2, -3, 4, 5)), return_exceptions=True)
    assert results[:2] == [10, 20] and isinstance(results[2], ValueError) and results[3:] == [40, 50]
    assert batches == [[1, 2, -3, 4], [5]] and batcher.flushes == 2


async def test_batcher_fails_every_caller_when_the_flush_fails() -> None:
    async def flush(items: list[int]) -> list[int | BaseException]:
        raise ConnectionError("store down")

    batcher: Batcher[int, int] = Batcher(flush)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results)


async def test_batcher_flushes_even_when_a_caller_gave_up() -> None:
    flushed: list[int] = []

    async def flush(items: list[int]) -> Sequence[int | BaseException]:
        await asyncio.sleep(0.01)
        flushed.extend(items)
        return items

    batcher: Batcher[int, int] = Batcher(flush)
    impatient = asyncio.ensure_future(batcher.submit(1))
    patient = asyncio.ensure_future(batcher.submit(2))
    await asyncio.sleep(0)
    impatient.cancel()
    assert await patient == 2
    await batcher.aclose()
    assert flushed == [1, 2]


async def test_batcher_with_min_interval_gathers_what_arrives_meanwhile_into_one_batch() -> None:
    batches: list[list[int]] = []

    async def flush(items: list[int]) -> list[int | BaseException]:
        batches.append(items)
        return list(items)

    loop = asyncio.get_running_loop()
    batcher: Batcher[int, int] = Batcher(flush, min_interval=0.2)
    assert await batcher.submit(0) == 0  # nothing flushed lately: at the end of its tick
    started = loop.time()
    waiting = [asyncio.ensure_future(batcher.submit(i)) for i in (1, 2)]
    await asyncio.sleep(0.05)
    assert batches == [[0]] and not any(w.done() for w in waiting)
    waiting.append(asyncio.ensure_future(batcher.submit(3)))
    assert await asyncio.gather(*waiting) == [1, 2, 3]
    assert batches == [[0], [1, 2, 3]] and loop.time() - started >= 0.19
    await asyncio.sleep(0.25)  # a quiet spell longer than the interval: no wait
    quiet = loop.time()
    assert await batcher.submit(4) == 4 and loop.time() - quiet < 0.1


async def test_batcher_with_min_interval_sends_a_full_batch_and_a_closing_one_at_once() -> None:
    batches: list[list[int]] = []

    async def flush(items: list[int]) -> list[int | BaseException]:
        batches.append(items)
        return list(items)

    loop = asyncio.get_running_loop()
    batcher: Batcher[int, int] = Batcher(flush, max_size=3, min_interval=10.0)
    await batcher.submit(0)
    started = loop.time()
    assert await asyncio.gather(*(batcher.submit(i) for i in (1, 2, 3))) == [1, 2, 3]
    lone = asyncio.ensure_future(batcher.submit(4))
    await asyncio.sleep(0)
    await batcher.aclose()
    assert await lone == 4 and loop.time() - started < 1.0
    assert batches == [[0], [1, 2, 3], [4]]


@pytest.fixture
async def collection() -> AsyncIterator[Any]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(settings.MONGO_URL, serverSelectionTimeoutMS=3000)
    name = f"pms_test_batching_{uuid.uuid4().hex[:12]}"
    items = client[name]["items"]
    await items.create_index([("group", 1), ("key", 1)], unique=True)
    yield items
    await client.drop_database(name)
    await client.close()


async def test_insert_once_stores_new_keys_and_returns_the_stored_document_for_taken_ones(collection: Any) -> None:
    inserter = InsertOnce(collection, ("group", "key"), min_interval=0.05)
    (old, created) = await inserter.insert({"_id": ObjectId(), "group": "g", "key": "taken", "n": 0})
    assert created
    docs = [{"_id": ObjectId(), "group": "g", "key": key, "n": n} for n, key in enumerate(["a", "taken", "b", "a"], 1)]
    outcomes = await asyncio.gather(*(inserter.insert(doc) for doc in docs))
    assert [created for _, created in outcomes] == [True, False, True, False]
    assert outcomes[1][0]["_id"] == old["_id"] and outcomes[3][0]["_id"] == docs[0]["_id"]
    assert await collection.count_documents({}) == 3 and inserter.flushes == 2


async def test_a_document_that_cannot_be_encoded_fails_alone_and_the_rest_of_its_batch_is_stored(
    collection: Any,
) -> None:
    inserter = InsertOnce(collection, ("group", "key"))
    docs = [{"_id": ObjectId(), "group": "g", "key": f"k{i}", "text": f"fine {i}"} for i in range(9)]
    docs.insert(4, {"_id": ObjectId(), "group": "g", "key": "bad", "text": "lone \ud800 surrogate"})
    outcomes = await asyncio.gather(*(inserter.insert(doc) for doc in docs), return_exceptions=True)
    assert isinstance(outcomes[4], BadDocument)
    assert all(outcome == (doc, True) for i, (doc, outcome) in enumerate(zip(docs, outcomes, strict=True)) if i != 4)
    assert inserter.flushes == 1 and await collection.count_documents({}) == 9
