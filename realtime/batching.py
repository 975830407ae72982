"""Coalesce concurrent calls into one batched call: those of one event-loop tick, and those made while a flush runs.

MongoDB round trips dominate the chat path (and the stand-in server shares the CPU with
everything else), so concurrent `chat.send`s become one `insert_many` (DESIGN.md).

What a batch costs the stand-in (nx-27017; `python -m loadtests.bench.standin`, 2026-12-03,
docs/benchmarks.md "Chat: the MongoDB stand-in's share"): ~400 µs of its CPU per command
(its socket loop, a hop to a worker thread and back, a `sqlite_master` read) and ~210 µs per
document (copies, JSON, one autocommitted SQLite INSERT through seven indexes). One server
process's batches are small below saturation (1.2 documents at 300 msg/s: ~750 µs per
message) and large at it (70-370 documents, still ~220-240 µs each: the per-document work is
the wall). `InsertOnce`'s minimum interval between flushes (`min_interval`, off by default)
trades a few ms of latency for larger batches below saturation.
"""

import asyncio
import math
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

    At most `max_in_flight` flushes run at a time: items submitted while they run wait and
    go out together as the next batch the moment one finishes; with none running, the items
    of one loop tick go out at the end of that tick. So an idle batcher adds no delay, and a
    busy one makes fewer, larger batches instead of one small flush per tick (the round trips
    per item, and what the store spends per call, fall as the rate rises).

    With `min_interval` (seconds), a flush starts no sooner than that after the previous one
    started: items wait for it (at most `min_interval`), so at a high rate the batches grow to
    rate x interval; a full batch (`max_size`) and `aclose` go at once. An item submitted
    after a quiet spell longer than the interval still goes at the end of its tick.

    Every `submit` resolves exactly once: with its own outcome, or with the exception that
    failed the whole flush. A caller cancelled while waiting does not cancel the flush (its
    item may still be written), so callers must be idempotent on retry.
    """

    def __init__(
        self,
        flush: "FlushFunction[T, R]",
        *,
        max_size: int = 500,
        max_in_flight: int = 1,
        min_interval: float = 0.0,
    ) -> None:
        if max_size < 1 or max_in_flight < 1:
            raise ValueError("max_size and max_in_flight must be at least 1")
        if not min_interval >= 0:
            raise ValueError("min_interval must be at least 0")
        self._flush = flush
        self._max_size = max_size
        self._max_in_flight = max_in_flight
        self._min_interval = min_interval
        self._last_start = -math.inf
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._scheduled: asyncio.Handle | None = None
        # Strong references: the loop keeps only weak ones to tasks.
        self._tasks: set[asyncio.Task[None]] = set()
        self.flushes = 0

    async def submit(self, item: T) -> R:
        """Queue `item` for the next flush and wait for its outcome (re-raised if it is an exception)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self._max_size:
            self._start_flush()
        elif self._scheduled is None:
            self._schedule(loop)
        return await future

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        wait = self._last_start + self._min_interval - loop.time()
        if wait > 0:
            self._scheduled = loop.call_later(wait, self._start_flush)
        else:
            self._scheduled = loop.call_soon(self._start_flush)

    def _start_flush(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        loop = asyncio.get_running_loop()
        # Full batches first; what a running flush leaves waiting goes out when it finishes.
        while self._pending and len(self._tasks) < self._max_in_flight:
            batch, self._pending = self._pending[: self._max_size], self._pending[self._max_size :]
            self._last_start = loop.time()
            task = loop.create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._flushed)

    def _flushed(self, task: "asyncio.Task[None]") -> None:
        self._tasks.discard(task)
        if not self._pending or self._scheduled is not None:
            return
        loop = asyncio.get_running_loop()
        if len(self._pending) >= self._max_size or self._last_start + self._min_interval <= loop.time():
            self._start_flush()
        else:
            self._schedule(loop)

    async def _run(self, batch: list[tuple[T, "asyncio.Future[R]"]]) -> None:
        self.flushes += 1
        try:
            outcomes = await self._flush([item for item, _ in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"flush returned {len(outcomes)} outcomes for {len(batch)} items")
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # every waiter must hear about the failure
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # the caller was cancelled; its item was still flushed
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

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

    Flushes start at least `min_interval` seconds apart (0: none), see `Batcher`: a message
    waits at most that long.
    """

    def __init__(
        self,
        collection: "AsyncCollection[Any]",
        key: tuple[str, ...],
        *,
        max_size: int = 500,
        min_interval: float = 0.0,
    ) -> None:
        self._collection = collection
        self._key = key
        self._batcher: Batcher[dict[str, Any], tuple[dict[str, Any], bool]] = Batcher(
            self._flush, max_size=max_size, min_interval=min_interval
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
