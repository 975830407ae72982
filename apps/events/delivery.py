"""Delivering the notice outbox: each committed `notice_outbox` row becomes exactly one notification.

A pass (`adeliver_pending`) claims the oldest unclaimed rows with one autocommit statement
(`FOR UPDATE SKIP LOCKED` inside a single `UPDATE ... RETURNING`, so no transaction is
held open while MongoDB or Redis answers, and two processes never take the same row),
then for each row, through the realtime core's `NotificationService.store_once`:
inserts the notification into MongoDB `notifications` under the row's `notification_id`,
moves `notifications:count:{userId}` by one only when that insert was new, publishes
`notification` on `notifications:{userId}`, and deletes the row.

Guarantees:
- Exactly once in MongoDB and in the count: the `_id` is fixed by the row, so a delivery
  repeated after a crash between the insert and the delete (or by a second process after
  the claim's lease ran out) finds the document and inserts nothing; it then drops the
  counter instead of moving it, and the next read recounts in MongoDB.
- Never lost: a row is deleted only after its notification is stored, counted and
  published. On a MongoDB or Redis failure the pass stops, the row and the rest of the
  batch are released at once (`attempts` + 1, `last_error` on the failed one) and wait
  for the next pass.
- The live event goes out at least once (a repeated delivery publishes again; clients
  deduplicate by `id`, PROTOCOL.md "Events and offsets").
- A notice whose `expiresAt` passed before it could be delivered is dropped, not stored.

Where it runs: in the server, the outbox relay task (`apps.events.relay.OutboxRelay`) runs a
pass after each of its outbox passes (woken by commits, and every `sweep_seconds`). In a
process without that task (the job worker, a management command) the commit's hook
delivers at once, after the commit (`apps.events.notices`); rows it could not deliver
are taken by the servers' sweeps. A claim whose deliverer died is free again after
`CLAIM_SECONDS`.
"""

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from bson import ObjectId
from django.db import DEFAULT_DB_ALIAS
from django.db import connections as db_connections
from django.db.models import F
from django.db.transaction import TransactionManagementError
from pymongo import AsyncMongoClient

from apps.events.models import NoticeOutbox
from realtime import connections, metrics, runtime
from realtime.history import RedisHistory
from realtime.notifications import NotificationService

logger = logging.getLogger(__name__)

T = TypeVar("T")
SyncRunner = Callable[[Callable[[], T]], Awaitable[T]]

DEFAULT_BATCH = 100
# A pass delivers at most this many rows; the next signal or sweep goes on.
MAX_ROWS_PER_PASS = 2_000
# How long a claim keeps other deliverers off a row (a deliverer that died mid-pass).
CLAIM_SECONDS = 60
_ERROR_CHARS = 1000


def document_of(row: NoticeOutbox) -> dict[str, Any] | None:
    """The MongoDB document a row stands for, or None when it expired before delivery."""
    fields = row.document
    expires = fields.get("expiresAt")
    expires_at = None if expires is None else datetime.fromisoformat(expires)
    if expires_at is not None and expires_at <= datetime.now(UTC):
        return None
    return {
        "_id": ObjectId(row.notification_id),
        "userId": row.user_id,
        "type": fields["type"],
        "title": fields["title"],
        "message": fields["message"],
        "referenceId": fields.get("referenceId"),
        "referenceType": fields.get("referenceType"),
        "isRead": False,
        "createdAt": datetime.fromisoformat(fields["createdAt"]),
        "expiresAt": expires_at,
        "priority": fields.get("priority", "medium"),
        "actions": list(fields.get("actions") or []),
    }


def claim(limit: int, using: str = DEFAULT_DB_ALIAS) -> list[NoticeOutbox]:
    """Claim up to `limit` deliverable rows (unclaimed or with a lapsed claim), oldest first.

    Precondition: outside any transaction (one autocommit statement; raises otherwise).
    """
    connection = db_connections[using]
    if connection.in_atomic_block:
        raise TransactionManagementError("notices are delivered outside any transaction")
    table = NoticeOutbox._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET claimed_until = now() + make_interval(secs => %s)"
            f" WHERE id IN (SELECT id FROM {table} WHERE claimed_until IS NULL OR claimed_until < now()"
            " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)"
            " RETURNING id, notification_id, user_id, document, created_at",
            [CLAIM_SECONDS, limit],
        )
        rows = cursor.fetchall()
    claimed = [
        NoticeOutbox(id=pk, notification_id=oid, user_id=user, document=_json(doc), created_at=created)
        for pk, oid, user, doc, created in rows
    ]
    claimed.sort(key=lambda row: row.id)
    return claimed


def _json(value: Any) -> dict[str, Any]:
    """A jsonb column as read by a raw cursor (decoded by psycopg, or text)."""
    return dict(json.loads(value) if isinstance(value, str) else value)


def finish(ids: list[int], using: str = DEFAULT_DB_ALIAS) -> None:
    """Delete delivered rows."""
    if ids:
        NoticeOutbox.objects.using(using).filter(id__in=ids).delete()


def release(ids: list[int], failed: int | None, error: BaseException | None, using: str = DEFAULT_DB_ALIAS) -> None:
    """Give claimed rows back for the next pass; the `failed` one records its attempt and error."""
    if ids:
        NoticeOutbox.objects.using(using).filter(id__in=ids).update(claimed_until=None)
    if failed is not None:
        message = f"{type(error).__name__}: {error}"[:_ERROR_CHARS]
        NoticeOutbox.objects.using(using).filter(id=failed).update(attempts=F("attempts") + 1, last_error=message)


async def _run_in_thread(function: Callable[[], T]) -> T:
    return await sync_to_async(function)()


async def adeliver_rows(
    service: NotificationService,
    rows: list[NoticeOutbox],
    *,
    using: str = DEFAULT_DB_ALIAS,
    run_sync: SyncRunner[Any] = _run_in_thread,
) -> tuple[int, bool]:
    """Deliver claimed `rows` in order; (delivered, stopped on a failure). Finished rows (delivered,
    or expired and dropped) are deleted, the others released."""
    done: list[int] = []
    delivered = 0
    failure: tuple[int, BaseException] | None = None
    for index, row in enumerate(rows):
        try:
            document = document_of(row)
            if document is not None:
                _, inserted = await service.store_once(document)
                metrics.incr("notices.delivered" if inserted else "notices.redelivered")
                delivered += 1
            else:
                metrics.incr("notices.expired")
        except Exception as error:  # MongoDB, Redis, or a row that cannot be read: keep it for later
            failure = (index, error)
            break
        done.append(row.id)
    if done:
        await run_sync(lambda: finish(done, using))
    if failure is not None:
        at, cause = failure
        rest = [row.id for row in rows[at:]]
        logger.warning("notices: delivery failed (%s); %d notice(s) kept for a later pass", cause, len(rest))
        metrics.incr("notices.failures")
        failed_id = rows[at].id
        await run_sync(lambda: release(rest, failed_id, cause, using))
        return delivered, True
    return delivered, False


async def adeliver_pending(
    *,
    using: str = DEFAULT_DB_ALIAS,
    batch: int = DEFAULT_BATCH,
    run_sync: SyncRunner[Any] = _run_in_thread,
    service: NotificationService | None = None,
) -> tuple[int, bool]:
    """One delivery pass over the notice outbox; (delivered, stopped on a failure).

    `run_sync` runs the ORM calls (default: `sync_to_async`; the relay task passes its own
    thread). `service`: the notification service to deliver through (default: the running
    loop's realtime core's, else one on clients of its own, closed before returning).
    Raises only database errors.
    """
    if service is None:
        core = runtime.current()
        if core is not None and core.notifications is not None:
            service = core.notifications
    if service is not None:
        return await _drain(service, using, batch, run_sync)
    # Not connections.get_redis()/get_mongo(): those are the loop's shared clients, which a
    # short-lived loop (async_to_sync) would leave open.
    config = connections.current_settings()
    redis = connections.new_async_redis(
        config.redis_url,
        decode_responses=True,
        socket_timeout=config.redis_socket_timeout,
        socket_connect_timeout=config.redis_socket_timeout,
    )
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
        return await _drain(NotificationService(mongo[config.mongo_database], redis, history), using, batch, run_sync)
    finally:
        await redis.aclose()
        await mongo.close()


async def _drain(service: NotificationService, using: str, batch: int, run_sync: SyncRunner[Any]) -> tuple[int, bool]:
    delivered = 0
    while delivered < MAX_ROWS_PER_PASS:
        rows: list[NoticeOutbox] = await run_sync(lambda: claim(batch, using))
        if not rows:
            break
        count, failed = await adeliver_rows(service, rows, using=using, run_sync=run_sync)
        delivered += count
        if failed:
            return delivered, True
    return delivered, False
