"""Writing change events: into the outbox, inside the writer's transaction.

A service records its events with `ChangeEvent(...).send_on_commit()` (or
`send_event_on_commit`) inside the `transaction.atomic()` that makes its change: one
`event_outbox` row per topic, written by the same transaction, so a rolled-back or
compensated (deleted in the same transaction) change leaves no row and no event. After
the transaction commits, one `on_commit` hook per transaction only *signals* the
process's relay (`apps.events.relay`), which publishes from its own task; the committing
request never waits for Redis. Where no relay task runs in the process (a management
command, a script, a test without a server loop) the hook relays at once in the
committing thread instead, outside the transaction (which has committed).

The topic, event name and data are the protocol's (PROTOCOL.md "Values"); the data is
computed by the service from the row as written, so `QuerySet.update()`, `bulk_create()`
and raw SQL record nothing unless their service records it.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from django.db import DEFAULT_DB_ALIAS, router, transaction
from django.db.models import Model
from django.db.models.deletion import Collector

from apps.events import relay
from apps.events.models import OutboxEvent
from realtime.codecs import wire_value


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
    """Insert one outbox row in the current transaction and signal the relay after it commits."""
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
            relay.after_commit(using)

        hook = _hooks.setdefault(using, relay_after_commit)
    return hook


def _schedule_relay(using: str) -> None:
    """One relay signal per transaction, however many rows it wrote.

    Django only appends to a connection's pending `run_on_commit` list; committing, rolling
    back, or rolling back a savepoint replaces the list. So while the list we registered on
    is still the connection's, our hook is in it (O(1) per row, even for a transaction of
    thousands of saves). After a savepoint rollback the list is new and we register again
    (at worst a second signal, which finds nothing left).
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


# --- generic writers (the admin's cascades, the integration layer) ------------------------

SavedRecorder = Callable[[Any, bool, dict[str, Any]], None]
_saved_recorders: dict[type[Model], list[SavedRecorder]] = {}


def register_saved(model: type[Model], record: SavedRecorder) -> None:
    """`record(instance, created, previous)` records the event of a `model` row saved by a generic
    writer (`previous`: attribute name -> value before the save, for the columns it changed).

    A model may have several recorders (its events, its cache drops, an access re-check); they
    run in the order registered."""
    _saved_recorders.setdefault(model, []).append(record)


def record_saved(obj: Model, *, created: bool, previous: dict[str, Any] | None = None) -> None:
    """Record the change event of a row a generic writer saved, if its model has one.

    Precondition: inside the transaction that saved the row (or one that holds its lock).
    """
    for record in _saved_recorders.get(type(obj), ()):
        record(obj, created, previous or {})


_deleted_recorders: dict[type[Model], list[Callable[[Any], None]]] = {}


def register_deleted(model: type[Model], record: Callable[[Any], None]) -> None:
    """`record(instance)` records the event of `model`'s rows deleted by `delete_recording_events`.

    A domain's events module registers its models at import (its caches and access modules may
    add theirs: every recorder of the model runs, in the order registered); called only by that
    function (explicitly, from services), never by a model signal.
    """
    _deleted_recorders.setdefault(model, []).append(record)


def delete_recording_events(obj: Model) -> None:
    """Delete `obj` and everything that cascades with it, recording each deleted row's event.

    Precondition: inside the caller's `transaction.atomic()`. The events are recorded before
    the rows go (the recorders may read their parents), in that same transaction.
    """
    using = router.db_for_write(type(obj), instance=obj)
    collector = Collector(using=using)
    collector.collect([obj])
    for model, instances in list(collector.data.items()):
        for record in _deleted_recorders.get(model, ()):
            for instance in instances:
                record(instance)
    for qs in collector.fast_deletes:
        recorders = _deleted_recorders.get(qs.model, ())
        if recorders:
            for instance in qs:
                for record in recorders:
                    record(instance)
    collector.delete()
