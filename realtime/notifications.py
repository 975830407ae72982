"""User notifications: stored in MongoDB `notifications`, counted in `notifications:count:{userId}`,
and pushed live on the topic `notifications:{userId}`.

The counter holds the user's unread, unexpired notifications, for every client alike
(socket or HTTP only). It is set from a MongoDB count when missing, with a TTL
(`count_ttl_seconds`, 10 minutes by default), and moved by INCR/DECR as notifications
arrive and are read. Beside it, `notifications:count-until:{userId}` holds when the
earliest counted notification expires: from that moment on (by the caller's clock) a read
drops both keys and recounts, so an expired notification leaves the count at once, not at
the next sweep. The TTL bounds how long any drift (a counter moved by a writer outside
this service, or a recount that raced a new notification) can last; the periodic resync
of socket users (`resync_all`) stays as a second net.
"""

import asyncio
import builtins
import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, cast

import redis.asyncio as aredis
from bson import ObjectId
from pymongo import DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError
from redis.exceptions import RedisError

from realtime import topics
from realtime.documents import NOTIFICATIONS
from realtime.errors import BAD_REQUEST, UNAVAILABLE, ProtocolError
from realtime.keys import (
    NOTIFICATIONS_COUNT_PATTERN,
    notifications_count,
    notifications_count_until,
    notifications_count_user,
)

logger = logging.getLogger(__name__)

EVENT_NOTIFICATION = "notification"
EVENT_READ = "notification.read"

PRIORITIES = ("low", "medium", "high")
ACTION_TYPES = ("link", "button", "api_call")
MAX_TYPE = 50
MAX_TITLE = 200
MAX_MESSAGE = 5_000
MAX_REFERENCE = 100
MAX_ACTIONS = 5
MAX_LABEL = 100
MAX_URL = 2_048
MAX_READ_IDS = 500
MAX_PAGE = 100
DEFAULT_PAGE = 50
RESYNC_CONCURRENCY = 8
COUNT_TTL_SECONDS = 600

BAD_USER = "userId must be a non-empty string"
BAD_TYPE = f"type must be a non-empty string of at most {MAX_TYPE} characters"
BAD_TITLE = f"title must be a non-empty string of at most {MAX_TITLE} characters"
BAD_MESSAGE = f"message must be a non-empty string of at most {MAX_MESSAGE:,} characters"
BAD_REFERENCE = f"referenceId and referenceType must be strings of at most {MAX_REFERENCE} characters"
BAD_PRIORITY = "priority must be low, medium or high"
BAD_ACTIONS = f"actions must be at most {MAX_ACTIONS} maps {{label, url, type: link|button|api_call}}"
BAD_EXPIRES = "expiresAt must be a timezone-aware time in the future"
BAD_READ_TARGET = "give either ids or all: true"
BAD_IDS = f"ids must be a list of at most {MAX_READ_IDS} notification ids (24 hex characters)"
BAD_UNREAD_ONLY = "unreadOnly must be a boolean"
BAD_BEFORE = "before must be a notification id (24 hex characters)"
BAD_LIMIT = f"limit must be an integer from 1 to {MAX_PAGE}"
MONGO_DOWN = "notifications are unavailable, try again"
REDIS_DOWN = "the unread counter is unavailable, try again"

_OBJECT_ID = re.compile(r"^[0-9a-fA-F]{24}$")
_LUA = Path(__file__).parent / "lua"


class NotificationPublisher(Protocol):
    """Stores an event in the topic's history and publishes it; returns the event as sent."""

    async def publish(self, topic: str, event: str, data: dict[str, Any]) -> dict[str, Any]: ...


def _bad(message: str) -> ProtocolError:
    return ProtocolError(BAD_REQUEST, message)


@contextmanager
def _mongo_errors() -> Iterator[None]:
    """Turn any MongoDB failure into `unavailable` (the caller may retry)."""
    try:
        yield
    except PyMongoError as error:
        raise ProtocolError(UNAVAILABLE, MONGO_DOWN) from error


@contextmanager
def _redis_errors() -> Iterator[None]:
    try:
        yield
    except RedisError as error:
        raise ProtocolError(UNAVAILABLE, REDIS_DOWN) from error


def _now() -> datetime:
    """Now in UTC, truncated to the millisecond BSON dates hold, so what is returned is what is stored."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _ms(value: datetime) -> int:
    """Milliseconds since the epoch (the counter scripts' clock)."""
    return int(value.timestamp() * 1000)


def _utc(value: datetime) -> datetime:
    """A stored date as aware UTC (clients built without tz_aware return naive UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return _utc(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text(value: object, *, limit: int, message: str, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or len(value) > limit or (required and not value.strip()):
        raise _bad(message)
    return value


def _actions(actions: object) -> list[dict[str, str]]:
    if actions is None:
        return []
    if not isinstance(actions, list) or len(actions) > MAX_ACTIONS:
        raise _bad(BAD_ACTIONS)
    checked: list[dict[str, str]] = []
    for action in actions:
        if not isinstance(action, dict) or set(action) != {"label", "url", "type"}:
            raise _bad(BAD_ACTIONS)
        label = _text(action["label"], limit=MAX_LABEL, message=BAD_ACTIONS)
        url = _text(action["url"], limit=MAX_URL, message=BAD_ACTIONS)
        if action["type"] not in ACTION_TYPES or label is None or url is None:
            raise _bad(BAD_ACTIONS)
        checked.append({"label": label, "url": url, "type": action["type"]})
    return checked


def _object_id(value: object, message: str) -> ObjectId:
    if not isinstance(value, str) or not _OBJECT_ID.match(value):
        raise _bad(message)
    return ObjectId(value.lower())


def _unread(user_id: str, now: datetime) -> dict[str, Any]:
    """The user's unread, unexpired notifications (`expiresAt` null or missing means never)."""
    # An explicit $and, same meaning on mongod: the stand-in (nx-27017 0.8.1) ORs a sibling
    # `$or` with the other fields instead of ANDing it (measured: other users' rows matched).
    unexpired = {"$or": [{"expiresAt": None}, {"expiresAt": {"$gt": now}}]}
    return {"$and": [{"userId": user_id}, {"isRead": False}, unexpired]}


def _unexpired(document: dict[str, Any], now: datetime) -> bool:
    expires = document.get("expiresAt")
    return expires is None or _utc(expires) > now


def notification_wire(document: dict[str, Any]) -> dict[str, Any]:
    """A stored notification as the protocol sends it: `id` as 24 hex, times ISO 8601 UTC, a real boolean."""
    return {
        "id": str(document["_id"]),
        "userId": document["userId"],
        "type": document.get("type"),
        "title": document.get("title"),
        "message": document.get("message"),
        "referenceId": document.get("referenceId"),
        "referenceType": document.get("referenceType"),
        # The stand-in server reads a boolean written by $set back as 1 (DESIGN.md).
        "isRead": bool(document.get("isRead")),
        "createdAt": _iso(document.get("createdAt")),
        "expiresAt": _iso(document.get("expiresAt")),
        "priority": document.get("priority", "medium"),
        "actions": [
            {"label": action.get("label"), "url": action.get("url"), "type": action.get("type")}
            for action in document.get("actions") or []
        ],
    }


def notification_document(
    user_id: str,
    *,
    type: str,
    title: str,
    message: str,
    reference_id: str | None = None,
    reference_type: str | None = None,
    priority: str = "medium",
    actions: list[dict[str, str]] | None = None,
    expires_at: datetime | None = None,
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """A checked notification document in the seed's fields (no `_id`), unread, created at
    `created_at` (default now). Invalid input raises `bad_request`."""
    _text(user_id, limit=MAX_REFERENCE, message=BAD_USER)
    if priority not in PRIORITIES:
        raise _bad(BAD_PRIORITY)
    now = _now()
    created = now if created_at is None else _utc(created_at)
    document: dict[str, Any] = {
        "userId": user_id,
        "type": _text(type, limit=MAX_TYPE, message=BAD_TYPE),
        "title": _text(title, limit=MAX_TITLE, message=BAD_TITLE),
        "message": _text(message, limit=MAX_MESSAGE, message=BAD_MESSAGE),
        "referenceId": _text(reference_id, limit=MAX_REFERENCE, message=BAD_REFERENCE, required=False),
        "referenceType": _text(reference_type, limit=MAX_REFERENCE, message=BAD_REFERENCE, required=False),
        "isRead": False,
        "createdAt": created.replace(microsecond=created.microsecond // 1000 * 1000),
        "expiresAt": None,
        "priority": priority,
        "actions": _actions(actions),
    }
    if expires_at is not None:
        if not isinstance(expires_at, datetime) or expires_at.tzinfo is None or expires_at <= now:
            raise _bad(BAD_EXPIRES)
        expires_ms = expires_at.astimezone(UTC)
        document["expiresAt"] = expires_ms.replace(microsecond=expires_ms.microsecond // 1000 * 1000)
    return document


class NotificationService:
    """Creates, reads and counts notifications; every change is published to the user's other devices."""

    def __init__(
        self,
        db: "AsyncDatabase[dict[str, Any]]",
        redis: aredis.Redis,
        publisher: NotificationPublisher,
        *,
        count_ttl_seconds: int = COUNT_TTL_SECONDS,
    ) -> None:
        """`redis` must decode responses to str; `publisher` stores and publishes topic events;
        `count_ttl_seconds`: how long a counted value is trusted before it is counted again."""
        if count_ttl_seconds < 1:
            raise ValueError("count_ttl_seconds must be positive")
        self._count_ttl_ms = count_ttl_seconds * 1000
        self._collection: AsyncCollection[dict[str, Any]] = db[NOTIFICATIONS]
        self._db = db
        self._redis = redis
        self._publisher = publisher
        self._add = redis.register_script((_LUA / "notifications_count_add.lua").read_text())
        self._set = redis.register_script((_LUA / "notifications_count_set.lua").read_text())
        self._get = redis.register_script((_LUA / "notifications_count_get.lua").read_text())

    async def notify(
        self,
        user_id: str,
        *,
        type: str,
        title: str,
        message: str,
        reference_id: str | None = None,
        reference_type: str | None = None,
        priority: str = "medium",
        actions: list[dict[str, str]] | None = None,
        expires_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Store a notification, count it as unread and publish `notification`; returns it in wire form.

        Invalid input raises `bad_request` and writes nothing. Once stored, a Redis or publish
        failure is logged, not raised (a retry would duplicate it): the sweep fixes the counter
        and the client still finds the notification in its list.
        """
        document = notification_document(
            user_id,
            type=type,
            title=title,
            message=message,
            reference_id=reference_id,
            reference_type=reference_type,
            priority=priority,
            actions=actions,
            expires_at=expires_at,
        )
        with _mongo_errors():
            result = await self._collection.insert_one(document)
        document["_id"] = result.inserted_id
        notification = notification_wire(document)
        try:
            if await self._move(user_id, 1, document["expiresAt"]) is None:
                await self._set_from_count(user_id, expected="")
        except (RedisError, ProtocolError):
            logger.warning("unread counter of %s not moved; the next resync fixes it", user_id, exc_info=True)
        await self._publish(user_id, EVENT_NOTIFICATION, notification)
        return notification

    async def store_once(self, document: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
        """Store a checked document (`notification_document` plus a caller-chosen `_id`) at most
        once, count it, publish `notification`; returns (its wire form, newly stored).

        For a delivery that is retried until it succeeds (the notice outbox): a second call with
        the same `_id` stores nothing and counts nothing more. The counter is moved by one only
        when this call inserted the document; when it was already there (an earlier attempt
        stopped after the insert, before or after counting) the counter is dropped, so the next
        read recounts in MongoDB: exact either way. The event is published on every call that
        finds the document (at least once; clients deduplicate by `id`); none when it is gone
        (expired, deleted). Raises PyMongoError / RedisError (nothing is swallowed: the caller
        keeps its record and retries).
        """
        user_id = document["userId"]
        try:
            await self._collection.insert_one(dict(document))
            stored: dict[str, Any] | None = dict(document)
            inserted = True
        except DuplicateKeyError:
            stored = await self._collection.find_one({"_id": document["_id"]})
            inserted = False
        if inserted:
            if await self._move(user_id, 1, document.get("expiresAt")) is None:
                await self._set_from_count(user_id, expected="")
        else:
            await self._redis.delete(notifications_count(user_id), notifications_count_until(user_id))
        if stored is None:
            return None, inserted
        notification = notification_wire(stored)
        await self._publisher.publish(topics.notifications(user_id), EVENT_NOTIFICATION, notification)
        return notification, inserted

    async def _move(self, user_id: str, delta: int, expires_at: datetime | None = None) -> int | None:
        """Move the counter by `delta` if it holds a valid count; None when it must be recounted."""
        moved = await self._add(
            keys=[notifications_count(user_id), notifications_count_until(user_id)],
            args=[delta, _ms(_now()), "" if expires_at is None else _ms(_utc(expires_at))],
        )
        return None if moved is None else int(moved)

    async def mark_read(self, user_id: str, *, ids: list[str] | None = None, all: bool = False) -> int:
        """Mark the user's own unread, unexpired notifications read (the given ids, or all of them);
        publishes `notification.read` {ids, all, unread} when any changed. Returns the unread count.

        Idempotent: ids already read, expired, unknown or someone else's change nothing.
        """
        if not isinstance(all, bool) or (ids is None) == (not all):
            raise _bad(BAD_READ_TARGET)
        if ids is not None and (not isinstance(ids, builtins.list) or len(ids) > MAX_READ_IDS):
            raise _bad(BAD_IDS)
        wanted = builtins.list(dict.fromkeys(_object_id(value, BAD_IDS) for value in ids or ()))
        if ids is not None and not wanted:
            return await self.unread_count(user_id)
        now = _now()
        with _mongo_errors():
            if ids is None:
                found = [document["_id"] async for document in self._collection.find(_unread(user_id, now), {"_id": 1})]
            else:
                # Expiry is checked here, not in the query: the stand-in server answers nothing
                # for `_id` together with `$or` (measured with nx-27017 0.8.1).
                query = {"_id": {"$in": wanted}, "userId": user_id, "isRead": False}
                found = [
                    document["_id"]
                    async for document in self._collection.find(query, {"_id": 1, "expiresAt": 1})
                    if _unexpired(document, now)
                ]
            changed = 0
            if found:
                update = await self._collection.update_many(
                    {"_id": {"$in": found}, "userId": user_id, "isRead": False}, {"$set": {"isRead": True}}
                )
                changed = update.modified_count
        if not changed:
            return await self.unread_count(user_id)
        with _redis_errors():
            moved = await self._move(user_id, -changed)
        unread = moved if moved is not None else await self.unread_count(user_id)
        await self._publish(user_id, EVENT_READ, {"ids": [str(oid) for oid in found], "all": all, "unread": unread})
        return unread

    async def mark_read_about(self, user_id: str, *, type: str, reference_id: str) -> int:
        """Mark read the user's unread notifications of `type` about `reference_id` (a chat
        notification once its conversation is read); as `mark_read`. Returns the unread count."""
        query = {"$and": [{"userId": user_id}, {"isRead": False}, {"type": type}, {"referenceId": reference_id}]}
        with _mongo_errors():
            ids = [
                str(document["_id"]) async for document in self._collection.find(query, {"_id": 1}).limit(MAX_READ_IDS)
            ]
        if not ids:
            return await self.unread_count(user_id)
        return await self.mark_read(user_id, ids=ids)

    async def unread_count(self, user_id: str) -> int:
        """The unread, unexpired count from Redis; on a miss, counted in MongoDB and cached."""
        keys = [notifications_count(user_id), notifications_count_until(user_id)]
        with _redis_errors():
            cached = await self._get(keys=keys, args=[_ms(_now())])
        if cached is not None:
            return int(cached)
        with _redis_errors():
            # Missing, lapsed (dropped by the script) or corrupt: compare-and-set against what is there now.
            current = cast(str | None, await self._redis.get(notifications_count(user_id)))
        return await self._set_from_count(user_id, expected=current or "")

    async def resync(self, user_id: str) -> int:
        """Recount in MongoDB and set the counter; an INCR/DECR that raced the count wins (the next sweep recounts)."""
        with _redis_errors():
            before = cast(str | None, await self._redis.get(notifications_count(user_id)))
        return await self._set_from_count(user_id, expected=before or "")

    async def resync_all(self, user_ids: Iterable[str] | None = None) -> dict[str, int]:
        """Resync the given users, or every user with a counter (SCAN); returns each user's count."""
        if user_ids is None:
            with _redis_errors():
                keys = [key async for key in self._redis.scan_iter(match=NOTIFICATIONS_COUNT_PATTERN, count=500)]
            user_ids = [notifications_count_user(key) for key in keys]
        limit = asyncio.Semaphore(RESYNC_CONCURRENCY)

        async def one(user_id: str) -> tuple[str, int]:
            async with limit:
                return user_id, await self.resync(user_id)

        return dict(await asyncio.gather(*(one(user_id) for user_id in dict.fromkeys(user_ids))))

    async def _count(self, user_id: str) -> tuple[int, datetime | None]:
        """The unread, unexpired count and when the earliest of those notifications expires."""
        # The `count` command, not count_documents: the stand-in's aggregation (which
        # count_documents uses) compares dates wrongly (measured: expired documents counted),
        # and `count` with a query is exact on mongod outside sharded clusters.
        now = _now()
        with _mongo_errors():
            reply = await self._db.command("count", NOTIFICATIONS, query=_unread(user_id, now))
            earliest = None
            if int(reply["n"]):
                expiring = {"$and": [{"userId": user_id}, {"isRead": False}, {"expiresAt": {"$gt": now}}]}
                cursor = self._collection.find(expiring, {"expiresAt": 1}).sort("expiresAt", 1).limit(1)
                async for document in cursor:
                    earliest = _utc(document["expiresAt"])
        return int(reply["n"]), earliest

    async def _set_from_count(self, user_id: str, *, expected: str) -> int:
        """Set the counter from a MongoDB count unless it moved meanwhile (then take the moved value)."""
        keys = [notifications_count(user_id), notifications_count_until(user_id)]
        for _ in range(3):
            count, earliest = await self._count(user_id)
            until = "" if earliest is None else _ms(earliest)
            with _redis_errors():
                value = int(await self._set(keys=keys, args=[expected, count, until, self._count_ttl_ms]))
            if value >= 0:
                return value
            expected = ""  # a corrupt value raced in: drop it and count again
            with _redis_errors():
                await self._redis.delete(*keys)
        return (await self._count(user_id))[0]

    async def _publish(self, user_id: str, event: str, data: dict[str, Any]) -> None:
        try:
            await self._publisher.publish(topics.notifications(user_id), event, data)
        except Exception:
            # Already stored: the client finds it over HTTP; raising would make the caller retry and duplicate.
            logger.exception("event %s for user %s stored but not published", event, user_id)

    async def list(
        self, user_id: str, *, unread_only: bool = False, before: str | None = None, limit: int = DEFAULT_PAGE
    ) -> dict[str, Any]:
        """A page of the user's unexpired notifications, newest first, older than `before` (a notification
        id, which may have expired meanwhile): `{notifications, hasMore}`."""
        if not isinstance(unread_only, bool):
            raise _bad(BAD_UNREAD_ONLY)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
            raise _bad(BAD_LIMIT)
        query: dict[str, Any] = {"userId": user_id}
        if unread_only:
            query["isRead"] = False
        if before is not None:
            query["_id"] = {"$lt": _object_id(before, BAD_BEFORE)}
        now = _now()
        page: builtins.list[dict[str, Any]] = []
        with _mongo_errors():
            # Newest first by `_id` (its time part, then insertion order per process): a unique,
            # stable cursor that still works after the anchor expired. Expiry is checked here
            # because the stand-in answers nothing for `_id` with `$or` (nx-27017 0.8.1).
            cursor = self._collection.find(query).sort("_id", DESCENDING).batch_size(limit + 1)
            try:
                async for document in cursor:
                    if _unexpired(document, now):
                        page.append(document)
                        if len(page) > limit:
                            break
            finally:
                await cursor.close()
        return {"notifications": [notification_wire(d) for d in page[:limit]], "hasMore": len(page) > limit}
