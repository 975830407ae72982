"""Feature usage and page views per user and session, recorded without slowing requests.

The request path only adds to an in-process buffer (a dict update under a lock: no Redis,
no MongoDB). A flusher task per event loop writes the buffer to MongoDB `usage_patterns`
every `USAGE_FLUSH_SECONDS` (5 s), or sooner once `USAGE_BATCH_SIZE` (500) events wait.

One document per (userId, sessionId), shaped as the seed says. Its `_id` is derived from the
pair (the first 12 bytes of a SHA-256), so two processes can never create two documents for
one session. Each flush reads the documents it touches, merges the counts in Python and
replaces each document only if its revision (`rev`, our extension) is unchanged, retrying
on a conflict: correct with several server processes, and it needs only whole-document
writes (the nx-27017 stand-in mangles `$push` and positional `$inc`; measured).

A failed flush keeps the events buffered for the next one (bounded: past
`USAGE_MAX_PENDING_SESSIONS` sessions the oldest are dropped and counted in
`usage.dropped`). What is buffered when a process stops is lost: at most one period of counts.
"""

import asyncio
import hashlib
import logging
import threading
import weakref
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId
from django.conf import settings
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from apps.documents.stored import now, stored_time
from realtime import metrics
from realtime.connections import current_settings, get_mongo
from realtime.documents import USAGE_PATTERNS

logger = logging.getLogger(__name__)

MAX_LOGIN_HISTORY = 20
MAX_ACTIONS_PER_FEATURE = 20
MAX_CONFLICT_ROUNDS = 5

_Flusher = tuple["asyncio.Task[None]", asyncio.Event]  # a loop's flusher task and its wake-up event


@dataclass
class _FeatureUse:
    count: int = 0
    duration: float = 0.0
    last: datetime | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _SessionUsage:
    """What one session did since the last flush."""

    views: dict[str, list[Any]] = field(default_factory=dict)  # page -> [count, last viewed]
    features: dict[str, _FeatureUse] = field(default_factory=dict)
    logins: list[dict[str, Any]] = field(default_factory=list)
    events: int = 0

    def absorb(self, other: "_SessionUsage") -> None:
        """Add `other`'s events to these (used to put back what a failed flush took)."""
        for page, (count, last) in other.views.items():
            mine = self.views.setdefault(page, [0, last])
            mine[0] += count
            mine[1] = max(mine[1], last)
        for feature_id, use in other.features.items():
            current = self.features.setdefault(feature_id, _FeatureUse())
            current.count += use.count
            current.duration += use.duration
            current.last = max(filter(None, (current.last, use.last)), default=None)
            current.actions = (use.actions + current.actions)[-MAX_ACTIONS_PER_FEATURE:]
        self.logins = (other.logins + self.logins)[-MAX_LOGIN_HISTORY:]
        self.events += other.events


def pattern_id(user_id: str, session_id: str) -> ObjectId:
    """The `_id` of the (user, session) document: stable, so concurrent first writes collide on `_id`."""
    return ObjectId(hashlib.sha256(f"{user_id}:{session_id}".encode()).digest()[:12])


def _merged(
    doc: dict[str, Any] | None, user_id: str, session_id: str, usage: _SessionUsage, at: datetime
) -> dict[str, Any]:
    """The document after adding `usage` to `doc` (a new one when `doc` is None)."""
    base = doc or {
        "userId": user_id,
        "sessionId": session_id,
        "features": [],
        "pageViews": [],
        "loginHistory": [],
        "createdAt": at,
        "rev": 0,
    }
    views = [dict(view) for view in base.get("pageViews") or []]
    by_page = {view.get("page"): view for view in views}
    for page, (count, last) in usage.views.items():
        view = by_page.get(page)
        if view is None:
            view = {"page": page, "viewCount": 0, "lastViewed": last, "averageDuration": None}
            views.append(view)
            by_page[page] = view
        view["viewCount"] = int(view.get("viewCount") or 0) + count
        previous = stored_time(view.get("lastViewed"))
        view["lastViewed"] = max(previous, last) if previous else last
    features = [dict(item) for item in base.get("features") or []]
    by_feature = {item.get("featureId"): item for item in features}
    for feature_id, use in usage.features.items():
        item = by_feature.get(feature_id)
        if item is None:
            item = {"featureId": feature_id, "usageCount": 0, "lastUsed": use.last, "usageDuration": 0.0, "actions": []}
            features.append(item)
            by_feature[feature_id] = item
        item["usageCount"] = int(item.get("usageCount") or 0) + use.count
        item["usageDuration"] = float(item.get("usageDuration") or 0) + use.duration
        previous = stored_time(item.get("lastUsed"))
        item["lastUsed"] = max(filter(None, (previous, use.last)), default=None)
        item["actions"] = (list(item.get("actions") or []) + use.actions)[-MAX_ACTIONS_PER_FEATURE:]
    logins = (list(base.get("loginHistory") or []) + usage.logins)[-MAX_LOGIN_HISTORY:]
    return {
        **base,
        "userId": user_id,
        "sessionId": session_id,
        "pageViews": views,
        "features": features,
        "loginHistory": logins,
        "updatedAt": at,
        "rev": int(base.get("rev") or 0) + 1,
    }


class UsageRecorder:
    """The process's buffer of usage events and its flushers (one per event loop)."""

    def __init__(
        self,
        *,
        flush_seconds: float = 5.0,
        batch_size: int = 500,
        max_pending_sessions: int = 10_000,
        database: str | None = None,
    ) -> None:
        self.flush_seconds = flush_seconds
        self.batch_size = batch_size
        self.max_pending_sessions = max_pending_sessions
        self._database = database
        self._lock = threading.Lock()
        self._buffer: dict[tuple[str, str], _SessionUsage] = {}
        self._events = 0
        self._flushers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Flusher] = weakref.WeakKeyDictionary()

    # --- the request path: memory only -------------------------------------------------------

    def _usage(self, user_id: str, session_id: str) -> _SessionUsage:
        """The buffered usage of the session (caller holds the lock)."""
        key = (user_id, session_id)
        usage = self._buffer.get(key)
        if usage is None:
            if len(self._buffer) >= self.max_pending_sessions:
                oldest = next(iter(self._buffer))
                self._events -= self._buffer.pop(oldest).events
                metrics.incr("usage.dropped")
            usage = self._buffer[key] = _SessionUsage()
        usage.events += 1
        self._events += 1
        return usage

    def record_view(self, *, user_id: str, session_id: str, page: str, at: datetime | None = None) -> None:
        """Count one view of `page` (e.g. `GET /api/v1/properties/{property_id}`)."""
        moment = at or now()
        with self._lock:
            view = self._usage(user_id, session_id).views.setdefault(page, [0, moment])
            view[0] += 1
            view[1] = max(view[1], moment)

    def record_login(
        self,
        *,
        user_id: str,
        session_id: str,
        ip_address: str | None,
        user_agent: str | None,
        at: datetime | None = None,
    ) -> None:
        """Add a login to the session's `loginHistory` (the last MAX_LOGIN_HISTORY are kept)."""
        entry = {
            "timestamp": at or now(),
            "ipAddress": ip_address,
            "userAgent": (user_agent or "")[:500] or None,
            "duration": None,
        }
        with self._lock:
            usage = self._usage(user_id, session_id)
            usage.logins = [*usage.logins, entry][-MAX_LOGIN_HISTORY:]

    def record_feature(
        self,
        *,
        user_id: str,
        session_id: str,
        feature_id: str,
        action_type: str,
        duration_seconds: float | None = None,
        metadata: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> None:
        """Count one use of a feature, with its action (the last MAX_ACTIONS_PER_FEATURE are kept)."""
        moment = at or now()
        with self._lock:
            use = self._usage(user_id, session_id).features.setdefault(feature_id, _FeatureUse())
            use.count += 1
            use.duration += duration_seconds or 0.0
            use.last = max(filter(None, (use.last, moment)), default=moment)
            use.actions = [*use.actions, {"actionType": action_type, "timestamp": moment, "metadata": metadata or {}}][
                -MAX_ACTIONS_PER_FEATURE:
            ]

    def pending(self) -> int:
        """Events recorded and not yet written."""
        with self._lock:
            return self._events

    def ensure_flusher(self) -> None:
        """Start the running loop's periodic flusher if it has none; wake it when a batch is full.

        Call from async code only (the async middleware does, after the response is built).
        """
        loop = asyncio.get_running_loop()
        entry = self._flushers.get(loop)
        if entry is None or entry[0].done():
            wake = asyncio.Event()
            task = loop.create_task(self._run(wake), name="usage-patterns-flusher")
            entry = self._flushers[loop] = (task, wake)
        if self._events >= self.batch_size:
            entry[1].set()

    async def astop(self, *, flush: bool = True) -> None:
        """Stop the running loop's flusher, then flush what is buffered unless told not to (shutdown, tests)."""
        entry = self._flushers.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            entry[0].cancel()
            try:
                await entry[0]
            except asyncio.CancelledError:
                pass
        if flush:
            await self.aflush()

    async def _run(self, wake: asyncio.Event) -> None:
        while True:
            try:
                await asyncio.wait_for(wake.wait(), timeout=self.flush_seconds)
            except TimeoutError:
                pass
            wake.clear()
            try:
                await self.aflush()
            except asyncio.CancelledError:
                raise
            except Exception:
                metrics.incr("usage.flush_failed")
                logger.warning("usage patterns: flush failed; events kept for the next one", exc_info=True)

    # --- the flush: off the request path ---------------------------------------------------

    def _collection(self) -> "AsyncCollection[dict[str, Any]]":
        return get_mongo()[self._database or current_settings().mongo_database][USAGE_PATTERNS]

    def _take(self) -> dict[tuple[str, str], _SessionUsage]:
        with self._lock:
            batch, self._buffer, self._events = self._buffer, {}, 0
        return batch

    def _put_back(self, batch: dict[tuple[str, str], _SessionUsage]) -> None:
        with self._lock:
            for key, usage in batch.items():
                newer = self._buffer.pop(key, None)
                if newer is not None:
                    usage.absorb(newer)
                self._buffer[key] = usage
                self._events += usage.events

    async def aflush(self) -> int:
        """Write everything buffered to MongoDB; returns the number of sessions written.

        On failure (or cancellation) the sessions not yet written go back into the buffer and
        the error is raised.
        """
        batch = self._take()
        if not batch:
            return 0
        remaining = dict(batch)
        try:
            for _ in range(MAX_CONFLICT_ROUNDS):
                if not remaining:
                    break
                written = await self._write_round(remaining)
                for key in written:
                    del remaining[key]
            if remaining:
                metrics.incr("usage.conflicts_deferred", len(remaining))
                logger.warning("usage patterns: %d sessions kept changing; retried next flush", len(remaining))
                self._put_back(remaining)
            return len(batch) - len(remaining)
        except BaseException:
            self._put_back(remaining)
            raise

    async def _write_round(self, pending: dict[tuple[str, str], _SessionUsage]) -> list[tuple[str, str]]:
        """One read + conditional write per session, all at once; returns the sessions written."""
        collection = self._collection()
        ids = {key: pattern_id(*key) for key in pending}
        found = {doc["_id"]: doc async for doc in collection.find({"_id": {"$in": list(ids.values())}})}
        at = now()

        async def write(key: tuple[str, str]) -> bool:
            current = found.get(ids[key])
            doc = _merged(current, key[0], key[1], pending[key], at)
            doc["_id"] = ids[key]
            if current is None:
                try:
                    await collection.insert_one(doc)
                except DuplicateKeyError:
                    return False  # another process created it first: merge again next round
                return True
            result = await collection.replace_one({"_id": ids[key], "rev": current.get("rev")}, doc)
            return result.matched_count == 1

        outcomes = await asyncio.gather(*(write(key) for key in pending), return_exceptions=True)
        written: list[tuple[str, str]] = []
        failure: BaseException | None = None
        for key, outcome in zip(pending, outcomes, strict=True):
            if outcome is True:
                written.append(key)
            elif isinstance(outcome, BaseException):
                failure = failure or outcome
        if failure is not None:
            for key in written:
                del pending[key]
            raise failure
        return written


_recorder: UsageRecorder | None = None
_recorder_lock = threading.Lock()


def get_recorder() -> UsageRecorder:
    """The process's recorder, configured from settings on first use."""
    global _recorder
    with _recorder_lock:
        if _recorder is None:
            _recorder = UsageRecorder(
                flush_seconds=float(getattr(settings, "USAGE_FLUSH_SECONDS", 5.0)),
                batch_size=int(getattr(settings, "USAGE_BATCH_SIZE", 500)),
                max_pending_sessions=int(getattr(settings, "USAGE_MAX_PENDING_SESSIONS", 10_000)),
            )
        return _recorder
