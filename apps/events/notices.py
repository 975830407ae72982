"""User notifications raised by domain writes (any app), created after the write's transaction commits.

A service calls `notify_on_commit(...)` inside its transaction; when (and only if) that
transaction commits, each notice is stored in MongoDB `notifications`, counted in
`notifications:count:{userId}` and published on `notifications:{userId}` by the realtime
core's `NotificationService`, the same service the socket and `/api/v1/notifications` use.
A rolled-back write notifies nobody.

Delivery is best effort after the commit: a MongoDB or Redis failure is logged, never
raised into the request whose change is already committed (the notification is then
missing; the invitation itself is still listed by `GET /api/v1/invitations`).
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import redis.asyncio as aredis
from asgiref.sync import async_to_sync
from django.db import DEFAULT_DB_ALIAS, transaction
from pymongo import AsyncMongoClient

from realtime import connections, runtime
from realtime.history import RedisHistory
from realtime.notifications import NotificationService

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notice:
    """One notification for one user, in the fields of MongoDB `notifications`."""

    user_id: str
    type: str
    title: str
    message: str
    reference_id: str | None = None
    reference_type: str | None = None
    priority: str = "medium"
    actions: tuple[dict[str, str], ...] = field(default_factory=tuple)
    expires_at: datetime | None = None


def notify_on_commit(*notices: Notice, using: str = DEFAULT_DB_ALIAS) -> None:
    """Deliver `notices` once the current transaction commits (at once outside a transaction).

    Precondition: called from sync code (a service running in a thread), as the ORM requires.
    """
    if notices:
        transaction.on_commit(partial(deliver, notices), using=using)


def deliver(notices: Sequence[Notice]) -> None:
    """Store and publish `notices` now; failures are logged, not raised."""
    try:
        async_to_sync(adeliver)(notices)
    except Exception:
        logger.exception("notifications %s not delivered", [(n.type, n.user_id) for n in notices])


async def adeliver(notices: Sequence[Notice]) -> list[dict[str, Any]]:
    """Store and publish `notices` through the running loop's realtime core, or, where this loop
    runs none (a management command, a worker, a test's sync client), through a notification
    service on clients of its own that are closed afterwards. Returns them in wire form."""
    core = runtime.current()
    if core is not None and core.notifications is not None:
        return [await _notify(core.notifications, notice) for notice in notices]
    # Not connections.get_redis()/get_mongo(): those are the loop's shared clients, which
    # this short-lived loop would leave open (and a long-lived one must not see closed).
    config = connections.current_settings()
    redis = aredis.Redis.from_url(config.redis_url, decode_responses=True)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        config.mongo_url,
        serverSelectionTimeoutMS=config.mongo_timeout_ms,
        connectTimeoutMS=config.mongo_timeout_ms,
        tz_aware=True,
    )
    try:
        history = RedisHistory(
            redis, max_events=config.history_max_events, max_age_seconds=config.history_max_age_seconds
        )
        service = NotificationService(mongo[config.mongo_database], redis, history)
        return [await _notify(service, notice) for notice in notices]
    finally:
        await redis.aclose()
        await mongo.close()


async def _notify(service: NotificationService, notice: Notice) -> dict[str, Any]:
    return await service.notify(
        notice.user_id,
        type=notice.type,
        title=notice.title,
        message=notice.message,
        reference_id=notice.reference_id,
        reference_type=notice.reference_type,
        priority=notice.priority,
        actions=list(notice.actions),
        expires_at=notice.expires_at,
    )
