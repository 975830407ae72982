"""User notifications raised by domain writes (any app): recorded in the write's transaction,
delivered exactly once after it commits.

A service calls `notify_on_commit(...)` inside its transaction: each notice becomes a
`notice_outbox` row written by that same transaction (so a rolled-back write notifies
nobody, and a committed one cannot lose its notices to a crash or an outage). After the
commit, `apps.events.delivery` stores each notice in MongoDB `notifications` under an id
fixed by its row, counts it in `notifications:count:{userId}` and publishes `notification`
on `notifications:{userId}`, then deletes the row; see that module for the guarantees
(exactly once in MongoDB and in the count, at least once on the topic).

Who delivers: in a server process, the outbox relay task (one signal per transaction,
like the change events); in a process without one (the job worker, a management command,
a script) the commit's hook delivers at once in the committing thread, after the commit,
never raising into it, and backs off for `INLINE_BACKOFF_SECONDS` after a failure; rows
left over are delivered by the servers' periodic sweep.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from asgiref.sync import async_to_sync
from bson import ObjectId
from django.db import DEFAULT_DB_ALIAS, transaction

from apps.events import delivery, relay
from apps.events.models import NoticeOutbox
from realtime import connections
from realtime.notifications import notification_document

logger = logging.getLogger(__name__)

# After a failed inline delivery, commits in this process skip theirs this long (the servers' sweeps go on).
INLINE_BACKOFF_SECONDS = 5.0


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
    """Record `notices` in the current transaction; each is delivered once it commits (see the module).

    Precondition: called from sync code (a service running in a thread), as the ORM requires,
    inside the transaction of the change (outside one, the rows commit at once). A notice
    with invalid fields raises `bad_request` (ProtocolError) here, in the caller's transaction.
    """
    if not notices:
        return
    NoticeOutbox.objects.using(using).bulk_create([_row(notice) for notice in notices])
    _schedule_delivery(using)


def _row(notice: Notice) -> NoticeOutbox:
    document = notification_document(
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
    oid = ObjectId()  # its time part is now: lists sort it where it belongs
    fields = {key: value for key, value in document.items() if key not in {"userId", "isRead"}}
    fields["createdAt"] = _iso(document["createdAt"])
    fields["expiresAt"] = None if document["expiresAt"] is None else _iso(document["expiresAt"])
    return NoticeOutbox(notification_id=str(oid), user_id=notice.user_id, document=fields)


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds")


_hooks: dict[str, Callable[[], None]] = {}


def _delivery_hook(using: str) -> Callable[[], None]:
    hook = _hooks.get(using)
    if hook is None:

        def deliver_after_commit() -> None:
            after_commit(using)

        hook = _hooks.setdefault(using, deliver_after_commit)
    return hook


def _schedule_delivery(using: str) -> None:
    """One delivery signal per transaction, however many notices it recorded (as `outbox._schedule_relay`)."""
    hook = _delivery_hook(using)
    connection = transaction.get_connection(using)
    if not connection.in_atomic_block:
        transaction.on_commit(hook, using=using, robust=True)  # autocommit: runs at once
        return
    pending = getattr(connection, "run_on_commit", None)
    if pending is not None and getattr(connection, "_notice_delivery_registered_on", None) is pending:
        return
    transaction.on_commit(hook, using=using, robust=True)
    connection._notice_delivery_registered_on = pending


def after_commit(using: str = DEFAULT_DB_ALIAS) -> None:
    """Run after a transaction that recorded notices: signal the relay task, or deliver here.

    Never raises into the committed request.
    """
    instance = relay.current()
    if instance is not None and instance.using == using and instance.wake():
        return
    if _inline_backing_off():
        return
    try:
        _, failed = deliver_pending(using=using)
    except Exception:
        logger.exception("notices: delivery after commit failed; rows stay for a later pass")
        failed = True
    _set_inline_backoff(failed)


def deliver_pending(*, using: str = DEFAULT_DB_ALIAS) -> tuple[int, bool]:
    """Deliver pending notices now, from sync code outside a transaction (a job worker, a command):
    (delivered, stopped on a failure). Raises only database errors."""
    result: tuple[int, bool] = async_to_sync(delivery.adeliver_pending)(using=using)
    return result


_backoff_lock = threading.Lock()
_inline_backoff: tuple[object, float] | None = None  # (the realtime settings in force, monotonic deadline)


def _inline_backing_off() -> bool:
    with _backoff_lock:
        backoff = _inline_backoff
    return backoff is not None and backoff[0] is connections.current_settings() and time.monotonic() < backoff[1]


def _set_inline_backoff(failed: bool) -> None:
    global _inline_backoff
    with _backoff_lock:
        _inline_backoff = (
            (connections.current_settings(), time.monotonic() + INLINE_BACKOFF_SECONDS) if failed else None
        )
