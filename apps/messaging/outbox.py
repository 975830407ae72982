"""Transactional outbox: model change events are written with the change and published after it commits.

Writing: `ChangeEvent(...).send_on_commit(using=...)` (or `send_event_on_commit`) inserts
one `event_outbox` row per topic in the caller's database transaction, so a rolled-back
change leaves no event, and arranges one relay attempt right after that transaction
commits (in autocommit mode: at once).

Relaying: `outbox_relay()` publishes pending rows in `id` order through the same Lua
script as `RedisHistory.publish` (offsets, recovery history), deletes each published row
and stops at the first Redis failure, leaving the rest with `attempts` and `last_error`:
a Redis outage delays events, it never loses them and never raises into the request
that made the change. Every server process also runs `aoutbox_relay` in each
housekeeping round (`pms.wiring.build_realtime`), which picks up whatever an outage left.

Order and uniqueness across processes: a relay pass holds a transaction-level advisory
lock (`pg_try_advisory_xact_lock`), so one pass at a time publishes, and locks its rows
`FOR UPDATE SKIP LOCKED`, so a row is never published by two passes. One pass at a time is
what keeps a topic's events in commit order: two passes working side by side could
publish a newer row of a topic while an older one is still in flight. A pass that finds
the lock taken returns at once; the holder looks again after releasing it, so a row
committed meanwhile is not left for the next round.

Delivery is at least once: if the connection drops after Redis ran the script, the row
stays and goes out again later. A save in autocommit mode (no `transaction.atomic`)
commits the change before `post_save` runs, so its outbox row is a second statement;
services wrap their writes in `transaction.atomic()` to make the pair atomic.
`QuerySet.update()`, `bulk_create()` and raw SQL send no model signals and so no events.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from channels.db import database_sync_to_async
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import F
from redis.exceptions import RedisError

from apps.messaging.models import OutboxEvent
from realtime import connections, metrics
from realtime.codecs import wire_value
from realtime.history import publish_sync

logger = logging.getLogger(__name__)

DEFAULT_RELAY_LIMIT = 500
# Rows published by one relay call at most (passes of `limit` rows); the next round goes on.
MAX_PASSES = 20
# After a failed attempt, commits skip their immediate relay this long (the periodic relay
# still runs), so an outage does not cost every write request a Redis timeout.
IMMEDIATE_BACKOFF_SECONDS = 5.0
# pg advisory lock key of the relay: "outbox" in ASCII.
RELAY_LOCK_KEY = 0x6F7574626F78
_ERROR_CHARS = 1000

_backoff_lock = threading.Lock()
_backoff: tuple[object, float] | None = None  # (the realtime settings in force, monotonic deadline)


def wire_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """A map of protocol values (PROTOCOL.md "Values"), storable as JSON: ids, decimals as strings,
    dates and times ISO 8601 (datetimes in UTC), JSON values and None as they are."""
    return {key: _wire(value) for key, value in fields.items()}


def _wire(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int | float | dict | list):
        return value
    return wire_value(value)


def deleted_data(pk: Any) -> dict[str, Any]:
    """The data of an event about a deleted entity."""
    return {"id": str(pk), "deleted": True}


@dataclass(frozen=True)
class ChangeEvent:
    """A change of one entity, announced on one or more topics; subclasses name the protocol event."""

    name: ClassVar[str]
    topics: tuple[str, ...]
    data: dict[str, Any]

    def send_on_commit(self, *, using: str = DEFAULT_DB_ALIAS) -> None:
        """Store the event in the outbox inside the current transaction; it is published after commit."""
        _store(using, [(topic, self.name, self.data) for topic in dict.fromkeys(self.topics)])


def send_event_on_commit(*, topic: str, event: str, data: dict[str, Any], using: str = DEFAULT_DB_ALIAS) -> None:
    """Insert one outbox row in the current transaction and arrange a relay attempt after it commits."""
    _store(using, [(topic, event, data)])


def _store(using: str, events: list[tuple[str, str, dict[str, Any]]]) -> None:
    # One INSERT for all topics of a change, so even without a transaction none goes out alone.
    OutboxEvent.objects.using(using).bulk_create(
        [OutboxEvent(topic=topic, event=event, data=data) for topic, event, data in events]
    )
    _schedule_relay(using)


_hooks: dict[str, Callable[[], None]] = {}


def _relay_hook(using: str) -> Callable[[], None]:
    hook = _hooks.get(using)
    if hook is None:

        def relay_after_commit() -> None:
            if _backing_off():
                return  # the periodic relay retries; a later commit after the backoff too
            try:
                outbox_relay(using=using)
            except Exception:  # never into the committed request
                logger.exception("outbox: relay after commit failed; rows stay for the periodic relay")

        hook = _hooks.setdefault(using, relay_after_commit)
    return hook


def _schedule_relay(using: str) -> None:
    """One relay per transaction, however many rows it wrote.

    Django only appends to a connection's pending `run_on_commit` list; committing, rolling
    back, or rolling back a savepoint replaces the list. So while the list we registered on
    is still the connection's, our hook is in it (O(1) per row, even for a transaction of
    thousands of saves). After a savepoint rollback the list is new and we register again
    (at worst a second relay call, which finds nothing left).
    """
    hook = _relay_hook(using)
    connection = transaction.get_connection(using)
    if not connection.in_atomic_block:
        transaction.on_commit(hook, using=using, robust=True)  # autocommit: runs at once
        return
    pending = getattr(connection, "run_on_commit", None)
    if pending is not None and getattr(connection, "_outbox_relay_registered_on", None) is pending:
        return
    transaction.on_commit(hook, using=using, robust=True)
    connection._outbox_relay_registered_on = pending


def _backing_off() -> bool:
    with _backoff_lock:
        return _backoff is not None and _backoff[0] is connections.current_settings() and time.monotonic() < _backoff[1]


def _set_backoff(failed: bool) -> None:
    global _backoff
    with _backoff_lock:
        if failed:
            _backoff = (connections.current_settings(), time.monotonic() + IMMEDIATE_BACKOFF_SECONDS)
        else:
            _backoff = None


def outbox_relay(limit: int = DEFAULT_RELAY_LIMIT, *, using: str = DEFAULT_DB_ALIAS) -> int:
    """Publish pending outbox rows in id order and delete them; returns how many were published.

    Returns 0 at once when another pass (any process) holds the relay lock. Stops at the
    first Redis failure, leaving that row and the later ones (attempts + 1, last_error).
    Raises only for database errors.
    """
    if limit < 1:
        raise ValueError("limit must be positive")
    published = 0
    stuck: set[int] = set()  # rows that failed for another reason than Redis: not retried in this call
    for _ in range(MAX_PASSES):
        outcome = _relay_pass(limit, using, stuck)
        published += outcome.published
        if not outcome.locked or outcome.redis_failed:
            break
        # The lock is released: a row committed while it was held (its own relay found the
        # lock taken) is visible now, so look again rather than leave it to the next round.
        if not OutboxEvent.objects.using(using).exclude(id__in=stuck).exists():
            break
    return published


@dataclass
class _Pass:
    locked: bool
    published: int = 0
    redis_failed: bool = False


def _relay_pass(limit: int, using: str, stuck: set[int]) -> _Pass:
    config = connections.current_settings()
    with transaction.atomic(using=using):
        connection = transaction.get_connection(using)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [RELAY_LOCK_KEY])
            (locked,) = cursor.fetchone()
        if not locked:
            return _Pass(locked=False)
        rows = list(
            OutboxEvent.objects.using(using)
            .select_for_update(skip_locked=True)
            .exclude(id__in=stuck)
            .order_by("id")[:limit]
        )
        if not rows:
            return _Pass(locked=True)
        client = connections.get_sync_redis()
        sent: list[int] = []
        failure: tuple[list[int], BaseException] | None = None
        for index, row in enumerate(rows):
            try:
                publish_sync(
                    client,
                    row.topic,
                    row.event,
                    row.data,
                    max_events=config.history_max_events,
                    max_age_seconds=config.history_max_age_seconds,
                )
            except RedisError as exc:
                failure = ([r.id for r in rows[index:]], exc)
                break
            except Exception as exc:
                # Not Redis: this row cannot go out as it is; keep it for a look, go on with the rest.
                logger.exception("outbox: event #%s (%s on %s) could not be published", row.id, row.event, row.topic)
                _record_failure(using, [row.id], exc)
                stuck.add(row.id)
                continue
            sent.append(row.id)
        if sent:
            OutboxEvent.objects.using(using).filter(id__in=sent).delete()
        if failure is not None:
            _record_failure(using, *failure)
    metrics.incr("outbox.published", len(sent))
    if failure is not None:
        metrics.incr("outbox.redis_failures")
        logger.warning(
            "outbox: Redis unavailable (%s); %d event(s) kept for a later relay", failure[1], len(failure[0])
        )
    _set_backoff(failure is not None)
    return _Pass(locked=True, published=len(sent), redis_failed=failure is not None)


def _record_failure(using: str, ids: list[int], exc: BaseException) -> None:
    error = f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]
    OutboxEvent.objects.using(using).filter(id__in=ids).update(attempts=F("attempts") + 1, last_error=error)


async def aoutbox_relay(limit: int = DEFAULT_RELAY_LIMIT) -> int:
    """`outbox_relay` for async code (the housekeeping round), on Django's sync thread."""
    published: int = await database_sync_to_async(outbox_relay)(limit)
    return published
