"""Coalesce concurrent calls into one batched call: those of one event-loop tick, and those made while flushes run.

MongoDB round trips dominate the chat path (and the stand-in server shares the CPU with
everything else), so concurrent `chat.send`s become one `insert_many` (DESIGN.md).

What a batch costs the stand-in (nx-27017; `python -m loadtests.bench.standin`, 2026-12-03,
docs/benchmarks.md "Chat: the MongoDB stand-in's share"): ~400 µs of its CPU per command
(its socket loop, a hop to a worker thread and back, a `sqlite_master` read) and ~210 µs per
document (copies, JSON, one autocommitted SQLite INSERT through seven indexes).

Several flushes in flight (`max_in_flight`, 1 by default): a store that runs commands in
parallel (a mongod) can then take the next batch while one is written. Against the stand-in,
whose inserts run one at a time under its lock and the GIL (~0.55 of a core at most), three in
flight showed no gain in five alternated runs at 2,000-2,800 msg/s (docs/benchmarks.md, "Chat:
inserts in flight"). Outcomes are handed out in the order the flushes started either way, so
what callers do next (publish, reply) keeps the order of their submits.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import bson
from bson.errors import BSONError
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, WriteError

DUPLICATE_KEY = 11000
NOT_WRITTEN = "the document was not written"

NOT_ENCODABLE = "the document cannot be encoded as BSON"

T = TypeVar("T")
R = TypeVar("R")

#: Flushes a batch; returns one outcome per item, in order: a result, or the exception for that item.
FlushFunction = Callable[[list[T]], Awaitable[Sequence["R | BaseException"]]]


class Batcher(Generic[T, R]):
    """Collects submitted items and flushes them together, at most `max_size` at once (group commit).

    At most `max_in_flight` flushes run at a time: items submitted while that many run wait
    and go out together as the next batch the moment one returns; below that, the items of
    one loop tick go out at the end of that tick. So an idle batcher adds no delay, and a
    busy one makes fewer, larger batches instead of one small flush per tick (the round trips
    per item, and what the store spends per call, fall as the rate rises).

    Order: flushes may finish in any order, but their outcomes are handed out in the order
    the flushes started (a flush that finished early waits for the ones before it), so an
    item's caller resumes after the callers of every item submitted before it.

    Every `submit` resolves exactly once: with its own outcome, or with the exception that
    failed the whole flush. A caller cancelled while waiting does not cancel the flush (its
    item may still be written), so callers must be idempotent on retry.
    """

    def __init__(self, flush: "FlushFunction[T, R]", *, max_size: int = 500, max_in_flight: int = 1) -> None:
        if max_size < 1 or max_in_flight < 1:
            raise ValueError("max_size and max_in_flight must be at least 1")
        self._flush = flush
        self._max_size = max_size
        self._max_in_flight = max_in_flight
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._scheduled: asyncio.Handle | None = None
        # Strong references: the loop keeps only weak ones to tasks.
        self._tasks: set[asyncio.Task[None]] = set()
        # Resolved once the newest flush has handed out its outcomes: the next one waits for it.
        self._handed_out: asyncio.Future[None] | None = None
        self._in_flight = 0
        self.flushes = 0

    async def submit(self, item: T) -> R:
        """Queue `item` for the next flush and wait for its outcome (re-raised if it is an exception)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self._max_size:
            self._start_flush()
        elif self._scheduled is None:
            self._scheduled = loop.call_soon(self._start_flush)
        return await future

    def _start_flush(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        loop = asyncio.get_running_loop()
        # Full batches first; what running flushes leave waiting goes out when one finishes.
        while self._pending and self._in_flight < self._max_in_flight:
            batch, self._pending = self._pending[: self._max_size], self._pending[self._max_size :]
            previous, self._handed_out = self._handed_out, loop.create_future()
            self._in_flight += 1
            task = loop.create_task(self._run(batch, previous, self._handed_out))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(
        self,
        batch: list[tuple[T, "asyncio.Future[R]"]],
        previous: "asyncio.Future[None] | None",
        handed_out: "asyncio.Future[None]",
    ) -> None:
        self.flushes += 1
        try:
            failure: Exception | None = None
            outcomes: Sequence[R | BaseException] = ()
            try:
                outcomes = await self._flush([item for item, _ in batch])
                if len(outcomes) != len(batch):
                    raise RuntimeError(f"flush returned {len(outcomes)} outcomes for {len(batch)} items")
            except Exception as exc:  # every waiter must hear about the failure
                failure = exc
            finally:
                self._in_flight -= 1
            # The store is free for the next batch while this one waits for its turn to hand out.
            if self._pending and self._scheduled is None:
                self._start_flush()
            if previous is not None:
                await previous
            for index, (_, future) in enumerate(batch):
                if future.done():  # the caller was cancelled; its item was still flushed
                    continue
                outcome = failure if failure is not None else outcomes[index]
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        finally:
            if not handed_out.done():
                handed_out.set_result(None)

    async def aclose(self) -> None:
        """Flush what is queued and wait for every running flush to finish."""
        self._start_flush()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


class BadDocument(WriteError):
    """This document (and only it) cannot be written: BSON cannot encode it (e.g. a lone surrogate in a string)."""


def _encodable(doc: dict[str, Any]) -> bool:
    try:
        bson.encode(doc)
    except (BSONError, UnicodeEncodeError, OverflowError):
        return False
    return True


class InsertOnce:
    """Inserts documents unique on `key` in batches: one `insert_many(ordered=False)` per flush.

    `insert(doc)` returns `(doc, True)` when this call stored it, or `(stored, False)` with
    the document already stored under the same key (the collection must have a unique
    index on `key`; the same key twice in one batch is sent once). MongoDB's connection
    errors reach every caller of the failed flush; a retry is safe. A document BSON cannot
    encode fails alone (`BadDocument`): the others of its batch are written.

    Up to `max_in_flight` `insert_many`s run at once (see `Batcher`); their outcomes are handed
    out in the order they were submitted.
    """

    def __init__(
        self,
        collection: "AsyncCollection[Any]",
        key: tuple[str, ...],
        *,
        max_size: int = 500,
        max_in_flight: int = 1,
    ) -> None:
        self._collection = collection
        self._key = key
        self._batcher: Batcher[dict[str, Any], tuple[dict[str, Any], bool]] = Batcher(
            self._flush, max_size=max_size, max_in_flight=max_in_flight
        )

    @property
    def flushes(self) -> int:
        return self._batcher.flushes

    async def insert(self, doc: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Stores `doc` unless its key is taken; see the class docstring for the outcome."""
        return await self._batcher.submit(doc)

    async def aclose(self) -> None:
        """Flushes what is queued."""
        await self._batcher.aclose()

    def _of(self, doc: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(doc.get(field) for field in self._key)

    async def _flush(self, docs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], bool] | BaseException]:
        outcomes: list[tuple[dict[str, Any], bool] | BaseException | None] = [None] * len(docs)
        first: dict[tuple[Any, ...], int] = {}
        taken: list[int] = []
        for index, doc in enumerate(docs):
            if self._of(doc) in first:
                taken.append(index)
            else:
                first[self._of(doc)] = index
        inserting = list(first.values())
        try:
            try:
                await self._collection.insert_many([docs[i] for i in inserting], ordered=False)
            except (BSONError, UnicodeEncodeError, OverflowError):
                # PyMongo encodes the batch before sending it: nothing was written. Refuse the
                # documents that cannot be encoded, write the others.
                bad = {i for i in inserting if not _encodable(docs[i])}
                if not bad:
                    raise
                for index in bad:
                    outcomes[index] = BadDocument(NOT_ENCODABLE)
                inserting = [i for i in inserting if i not in bad]
                if inserting:
                    await self._collection.insert_many([docs[i] for i in inserting], ordered=False)
        except BulkWriteError as exc:
            for error in exc.details.get("writeErrors", []):
                index = inserting[error["index"]]
                if error.get("code") == DUPLICATE_KEY:
                    taken.append(index)
                else:
                    outcomes[index] = WriteError(error.get("errmsg", "write failed"), error.get("code"), error)
        for index in inserting:
            if outcomes[index] is None and index not in taken:
                outcomes[index] = (docs[index], True)
        if taken:
            keys = {self._of(docs[i]) for i in taken}
            query = {"$or": [dict(zip(self._key, values, strict=True)) for values in keys]}
            found = {self._of(doc): doc async for doc in self._collection.find(query)}
            for index in taken:
                stored = found.get(self._of(docs[index]))
                # Absent only when the first of its key in this batch failed to write.
                outcomes[index] = (stored, False) if stored else WriteError(NOT_WRITTEN, None, None)
        return [outcome if outcome is not None else WriteError(NOT_WRITTEN, None, None) for outcome in outcomes]
