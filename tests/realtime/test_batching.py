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


async def test_batcher_with_flushes_in_flight_hands_out_outcomes_in_the_order_they_started() -> None:
    release_first = asyncio.Event()
    running: list[list[int]] = []
    most = 0

    async def flush(items: list[int]) -> list[int | BaseException]:
        nonlocal most
        running.append(items)
        most = max(most, len(running))
        if items[0] == 1:
            await release_first.wait()
        running.remove(items)
        return [item * 10 for item in items]

    resumed: list[int] = []

    async def send(item: int) -> None:
        resumed.append(await batcher.submit(item))

    batcher: Batcher[int, int] = Batcher(flush, max_in_flight=2)
    first = asyncio.ensure_future(send(1))
    await asyncio.sleep(0.01)  # the first flush runs and waits
    later = [asyncio.ensure_future(send(i)) for i in (2, 3)]
    await asyncio.sleep(0.01)  # the second flush ran and finished, but its outcomes wait for the first's
    assert running == [[1]] and resumed == [] and not any(task.done() for task in later)
    release_first.set()
    await asyncio.gather(first, *later)
    assert resumed == [10, 20, 30] and most == 2 and batcher.flushes == 2


async def test_batcher_runs_no_more_than_max_in_flight_and_a_failed_flush_fails_only_its_own_items() -> None:
    gates = {1: asyncio.Event(), 2: asyncio.Event()}
    started: list[list[int]] = []

    async def flush(items: list[int]) -> list[int | BaseException]:
        started.append(items)
        if items[0] in gates:
            await gates[items[0]].wait()
        if items[0] == 1:
            raise ConnectionError("store down")
        return list(items)

    batcher: Batcher[int, int] = Batcher(flush, max_in_flight=2)
    one = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0.01)
    two = asyncio.ensure_future(batcher.submit(2))
    await asyncio.sleep(0.01)
    rest = [asyncio.ensure_future(batcher.submit(i)) for i in (3, 4)]
    await asyncio.sleep(0.01)
    assert started == [[1], [2]]  # two in flight: 3 and 4 wait, together
    gates[2].set()
    await asyncio.sleep(0.01)
    assert started == [[1], [2], [3, 4]] and not two.done()  # 2 is written, but 1 comes first
    gates[1].set()
    results = await asyncio.gather(one, two, *rest, return_exceptions=True)
    assert isinstance(results[0], ConnectionError) and results[1:] == [2, 3, 4]


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
    inserter = InsertOnce(collection, ("group", "key"), max_in_flight=2)
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
