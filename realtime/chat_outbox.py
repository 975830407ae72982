"""The one durable path of stored chat changes to Redis: exactly once each, delayed by an outage, never dropped.

Every stored change (`chat.message`, `chat.edited`, `chat.deleted`, `chat.read`) is announced
under a key that names it (`m:<id>`, `e:<id>:<updatedAt ms>`, `d:<id>`, `r:<reader>:<id>:<readAt ms>`).
The history script publishes a key once per epoch and answers a repeat with the first offset
(`RedisHistory.publish_many(event_keys=...)`), so a retry, a second process or a sweep can
never publish a change twice or under a second offset.

Happy path: the changes of one loop tick go out in one pipelined round trip and nothing more
is written to MongoDB: the offset lives in the history, and readers join it
(`RedisHistory.offsets_of`). When Redis fails, the change is kept in this process's backlog
(in order; later changes of the same topic queue behind it) and marked in its MongoDB
document (`pendingEvents`, `publishClaimUntil`: one bulk write per flush), so a restart or
another process publishes it (`ChatService.publish_pending`) should this one die. The
backlog is retried at once and then with backoff (50 ms doubling to 1 s) in batches of up to
`max_batch` per round trip: it drains as fast as Redis answers, not per housekeeping round.

Not covered: a process that dies between its insert and the publish round trip that follows
(about a millisecond) leaves that message stored but unannounced; its recipients see it in
history, not live.
"""

import asyncio
import contextlib
import itertools
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bson import ObjectId
from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError
from redis.exceptions import ResponseError

from realtime import metrics
from realtime.batching import Batcher

logger = logging.getLogger(__name__)

RETRY_INITIAL_SECONDS = 0.05
RETRY_MAX_SECONDS = 1.0


class KeyedPublisher(Protocol):
    """Publishes stored events exactly once per key (`realtime.history.RedisHistory`)."""

    async def publish_many(
        self, events: list[tuple[str, str, Any]], *, event_keys: list[str] | None = None
    ) -> "list[dict[str, Any] | Exception]":
        """One frame (with its `offset`) or exception per (topic, event, data), in order."""
        ...

    async def offsets_of(self, topic: str, event_keys: list[str]) -> list[str | None]:
        """The offset each key went out under in the topic's current epoch, or None."""
        ...


@dataclass(eq=False)
class Change:
    """One stored change to announce. `stored_data`: keep `data` in the marker (else it is rebuilt from the document)."""

    topic: str
    event: str
    data: dict[str, Any]
    key: str
    doc_id: ObjectId
    stored_data: bool = False

    def marker(self) -> dict[str, Any]:
        """Its entry in the document's `pendingEvents` map (keyed by `key`, which holds no dots)."""
        return {"e": self.event, "d": self.data if self.stored_data else None}


class Announcer:
    """Publishes `Change`s through one pipelined round trip per loop tick; keeps and retries what Redis refused."""

    def __init__(
        self,
        publisher: KeyedPublisher,
        collection: "AsyncCollection[Any]",
        *,
        now_ms: Callable[[], int],
        claim_ms: int,
        max_batch: int = 500,
        retry_initial: float = RETRY_INITIAL_SECONDS,
        retry_max: float = RETRY_MAX_SECONDS,
    ) -> None:
        self._publisher = publisher
        self._collection = collection
        self._now_ms = now_ms
        self._claim_ms = claim_ms
        self._max_batch = max_batch
        self._retry_initial, self._retry_max = retry_initial, retry_max
        self._batcher: Batcher[Change, dict[str, Any] | None] = Batcher(self._flush, max_size=max_batch)
        # Kept changes by key, oldest first; a key is kept once however often it is announced.
        self._backlog: dict[str, Change] = {}
        self._backlog_topics: Counter[str] = Counter()
        self._drainer: asyncio.Task[None] | None = None
        self._last_claim = 0

    @property
    def backlog(self) -> int:
        """Changes stored but not yet published by this process."""
        return len(self._backlog)

    async def announce(self, change: Change) -> dict[str, Any] | None:
        """The published frame (with its offset, the first one if the key went out before), or None: kept, pending."""
        return await self._batcher.submit(change)

    async def publish_now(self, changes: list[Change]) -> list[dict[str, Any] | Exception]:
        """Publishes in one round trip (no backlog); one frame or exception per change. Used by the sweep."""
        if not changes:
            return []
        try:
            return await self._publisher.publish_many(
                [(c.topic, c.event, c.data) for c in changes], event_keys=[c.key for c in changes]
            )
        except Exception as exc:  # the whole round trip failed (connection refused, timeout)
            return [exc] * len(changes)

    def adopt(self, changes: list[Change]) -> None:
        """Takes changes already marked in MongoDB (found by the sweep) into the backlog, retried until Redis takes them."""
        for change in changes:
            if change.key not in self._backlog:
                self._backlog[change.key] = change
                self._backlog_topics[change.topic] += 1
        if self._backlog and (self._drainer is None or self._drainer.done()):
            self._drainer = asyncio.get_running_loop().create_task(self._drain())

    async def unmark(self, changes: list[Change]) -> None:
        """Clears the MongoDB markers of published changes; a failure leaves them to the sweep (a no-op publish)."""
        if not changes:
            return
        try:
            await self._collection.bulk_write(
                [UpdateOne({"_id": c.doc_id}, {"$unset": {f"pendingEvents.{c.key}": ""}}) for c in changes],
                ordered=False,
            )
            await self.clear_unmarked(list({c.doc_id for c in changes}))
        except PyMongoError:
            logger.warning("chat: %d published changes still marked pending", len(changes), exc_info=True)

    async def clear_unmarked(self, doc_ids: list[ObjectId]) -> None:
        """Drops `pendingEvents` and the claim of those documents that owe nothing any more.

        Conditional on the claim read, so a change marked meanwhile (a new claim) keeps its marker.
        """
        owing = self._collection.find({"_id": {"$in": doc_ids}}, {"pendingEvents": 1, "publishClaimUntil": 1})
        done = [doc async for doc in owing if "publishClaimUntil" in doc and not doc.get("pendingEvents")]
        if done:
            await self._collection.bulk_write(
                [
                    UpdateOne(
                        {"_id": doc["_id"], "publishClaimUntil": doc["publishClaimUntil"]},
                        {"$unset": {"pendingEvents": "", "publishClaimUntil": ""}},
                    )
                    for doc in done
                ],
                ordered=False,
            )

    async def aclose(self) -> None:
        """Flushes what is queued; stops retrying (kept changes stay marked in MongoDB for the sweep)."""
        await self._batcher.aclose()
        if self._drainer is not None:
            self._drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drainer

    async def _flush(self, changes: list[Change]) -> list[dict[str, Any] | None]:
        fresh: dict[str, Change] = {}
        for change in changes:
            fresh.setdefault(change.key, change)
        # Changes of a topic with older kept ones go out behind them, in the same round trip.
        behind = any(self._backlog_topics[c.topic] for c in fresh.values())
        older = self._oldest() if behind else []
        batch = older + [c for c in fresh.values() if c.key not in {o.key for o in older}]
        results = await self.publish_now(batch)
        frames: dict[str, dict[str, Any]] = {}
        published: list[Change] = []
        keep: list[Change] = []
        for change, result in zip(batch, results, strict=True):
            if not isinstance(result, Exception):
                frames[change.key] = result
                if self._forget(change):
                    published.append(change)
            elif change.key not in self._backlog:
                logger.warning("chat: %s %s stored, not published yet: %r", change.event, change.key, result)
                keep.append(change)
        if published:
            await self.unmark(published)
        if keep:
            await self._keep(keep)
        return [frames.get(change.key) for change in changes]

    def _oldest(self) -> list[Change]:
        return list(itertools.islice(self._backlog.values(), self._max_batch))

    def _forget(self, change: Change) -> bool:
        """Drops a published change from the backlog; whether it was there."""
        if self._backlog.pop(change.key, None) is None:
            return False
        self._backlog_topics[change.topic] -= 1
        if self._backlog_topics[change.topic] <= 0:
            del self._backlog_topics[change.topic]
        return True

    async def _keep(self, changes: list[Change]) -> None:
        # Distinct claims per process, so `clear_unmarked` can tell a later marking apart.
        claim = self._last_claim = max(self._now_ms() + self._claim_ms, self._last_claim + 1)
        try:
            await self._collection.bulk_write(
                [
                    UpdateOne(
                        {"_id": c.doc_id},
                        {"$set": {f"pendingEvents.{c.key}": c.marker(), "publishClaimUntil": claim}},
                    )
                    for c in changes
                ],
                ordered=False,
            )
        except PyMongoError:  # kept in memory only: published when Redis is back unless this process dies first
            logger.warning("chat: %d unpublished changes could not be marked in MongoDB", len(changes), exc_info=True)
        metrics.incr("chat.publish.kept", len(changes))
        self.adopt(changes)

    async def _drain(self) -> None:
        delay = self._retry_initial
        while self._backlog:
            batch = self._oldest()
            results = await self.publish_now(batch)
            done: list[Change] = []
            for change, result in zip(batch, results, strict=True):
                if isinstance(result, ResponseError):  # refused by the script itself: a retry cannot help
                    logger.error("chat: %s %s refused by Redis: %r", change.event, change.key, result)
                    metrics.incr("chat.publish.refused")
                elif isinstance(result, Exception):
                    continue
                if self._forget(change):
                    done.append(change)
            if done:
                await self.unmark(done)
                metrics.incr("chat.publish.recovered", len(done))
                delay = self._retry_initial
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max)
