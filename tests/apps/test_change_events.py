"""Change events: recorded by the services in the outbox with the change, published after commit, kept while Redis is down.

The writes go through the services the admin site uses (`*_admin_save` / `*_admin_delete`),
which take a model instance as the admin's form builds it; a bare ORM save records nothing.
"""

import asyncio
import datetime
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import msgpack
import pytest
import redis
import redis.asyncio as aredis
from django.conf import settings
from django.db import connection as db_connection
from django.db import connections as db_connections
from django.db import transaction

from apps.events.models import OutboxEvent
from apps.events.relay import outbox_relay
from apps.leasing import services as leasing_services
from apps.leasing.models import Lease
from apps.maintenance import services as maintenance_services
from apps.maintenance.models import MaintenanceRequest, Vendor, WorkOrder
from apps.properties import services as property_services
from apps.properties.models import Property, Unit
from realtime import connections, topics
from realtime.history import RedisHistory
from tests.factories import make_lease, make_property, make_unit, make_user

pytestmark = pytest.mark.django_db(transaction=True)

DEAD_REDIS = "redis://127.0.0.1:1/0"


class Listener:
    """A raw Redis subscriber of some topics (the Redis channel name is the topic)."""

    def __init__(self, *names: str) -> None:
        self._client = redis.Redis.from_url(settings.REDIS_URL)
        self._pubsub = self._client.pubsub()
        self._pubsub.subscribe(*names)
        confirmed = 0
        deadline = time.monotonic() + 3
        while confirmed < len(names) and time.monotonic() < deadline:
            message = self._pubsub.get_message(timeout=0.5)
            if message is not None and message["type"] == "subscribe":
                confirmed += 1
        assert confirmed == len(names), "subscriptions not confirmed"

    def next(self, timeout: float = 2.0) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self._pubsub.get_message(timeout=left)
            if message is not None and message["type"] == "message":
                frame: dict[str, Any] = msgpack.unpackb(message["data"], raw=False)
                return frame
        return None

    def take(self, count: int, timeout: float = 3.0) -> list[dict[str, Any]]:
        frames: list[dict[str, Any]] = []
        for _ in range(count):
            frame = self.next(timeout)
            assert frame is not None, f"got {len(frames)} of {count} events: {frames}"
            frames.append(frame)
        return frames

    def nothing(self, timeout: float = 0.3) -> bool:
        return self.next(timeout) is None

    def close(self) -> None:
        self._pubsub.close()
        self._client.close()


@pytest.fixture
def listen() -> Iterator[Any]:
    opened: list[Listener] = []

    def open_listener(*names: str) -> Listener:
        listener = Listener(*names)
        opened.append(listener)
        return listener

    yield open_listener
    for listener in opened:
        listener.close()


def _with_history(work: Any) -> Any:
    async def run() -> Any:
        client = aredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
        try:
            return await work(RedisHistory(client))
        finally:
            await client.aclose()

    return asyncio.run(run())


def position(topic: str) -> str:
    return str(_with_history(lambda history: history.position(topic)))


def since(topic: str, offset: str) -> list[dict[str, Any]]:
    recovered, missed = _with_history(lambda history: history.since(topic, offset))
    assert recovered is True
    return list(missed)


@pytest.fixture
def redis_down() -> Iterator[Any]:
    """Point the realtime core's Redis clients at a dead port; `restore()` (or the test's end) points them back."""
    original = connections.current_settings()

    def restore() -> None:
        connections.configure(original)

    connections.configure(replace(original, redis_url=DEAD_REDIS, redis_socket_timeout=0.3))
    yield restore
    restore()


@pytest.fixture
def world() -> dict[str, Any]:
    landlord = make_user(user_type="landlord")
    tenant = make_user(user_type="tenant")
    prop = make_property(owner=landlord)
    # Occupied, as its active lease makes it (a lease write would otherwise correct it, with an event of its own).
    unit = make_unit(property=prop, is_occupied=True, is_available=False)
    lease = make_lease(unit=unit, tenants=(tenant,))
    request = MaintenanceRequest.objects.create(unit=unit, category="plumbing", description="Leaking tap")
    vendor = Vendor.objects.create(company_name="Fixit", phone="555-0100", service_category="plumbing")
    order = WorkOrder.objects.create(request=request, vendor=vendor)
    return {
        "landlord": landlord,
        "property": prop,
        "unit": unit,
        "lease": lease,
        "request": request,
        "vendor": vendor,
        "order": order,
    }


def save(obj: Any) -> Any:
    """Write `obj` through its domain's service (the admin site's write path), which records its event."""
    if isinstance(obj, Property):
        return property_services.property_admin_save(prop=obj)
    if isinstance(obj, Unit):
        return property_services.unit_admin_save(unit=obj)
    if isinstance(obj, Lease):
        return leasing_services.lease_admin_save(lease=obj)
    if isinstance(obj, MaintenanceRequest):
        return maintenance_services.maintenance_request_admin_save(request=obj)
    if isinstance(obj, WorkOrder):
        return maintenance_services.work_order_admin_save(order=obj)
    raise TypeError(obj)


def delete(obj: Any) -> None:
    """Delete `obj` (and its cascade) through its domain's service, which records the deleted events."""
    if isinstance(obj, Property):
        property_services.property_admin_delete(prop=obj)
    elif isinstance(obj, Unit):
        property_services.unit_admin_delete(unit=obj)
    elif isinstance(obj, Lease):
        leasing_services.lease_admin_delete(lease=obj)
    elif isinstance(obj, MaintenanceRequest):
        maintenance_services.maintenance_request_admin_delete(request=obj)
    elif isinstance(obj, WorkOrder):
        maintenance_services.work_order_admin_delete(order=obj)
    else:
        raise TypeError(obj)


def assert_event(frame: dict[str, Any], topic: str, event: str) -> dict[str, Any]:
    assert frame["type"] == "event"
    assert frame["topic"] == topic
    assert frame["event"] == event
    assert frame["offset"], "stored events carry an offset"
    data: dict[str, Any] = frame["data"]
    return data


# --- each entity, created and changed ------------------------------------------------


def test_maintenance_request_created_and_updated(listen: Any, world: dict[str, Any]) -> None:
    prop, unit = world["property"], world["unit"]
    board = topics.maintenance_updates(str(prop.pk))
    listener = listen(board)

    request = save(
        MaintenanceRequest(
            unit=unit, category="electrical", description="Sparks", priority="high", estimated_cost=Decimal("120.50")
        )
    )
    data = assert_event(listener.next(), board, "maintenance.created")
    assert data["id"] == str(request.pk)
    assert data["unitId"] == str(unit.pk) and data["propertyId"] == str(prop.pk)
    assert data["status"] == "submitted" and data["priority"] == "high" and data["category"] == "electrical"
    assert data["estimatedCost"] == "120.50" and data["actualCost"] is None
    assert data["createdAt"].endswith("Z")

    request = MaintenanceRequest.objects.get(pk=request.pk)  # loaded fresh: no cached unit
    request.status = "in_progress"
    save(request)
    data = assert_event(listener.next(), board, "maintenance.updated")
    assert data["id"] == str(request.pk) and data["status"] == "in_progress" and data["propertyId"] == str(prop.pk)
    assert listener.nothing()
    assert not OutboxEvent.objects.exists()


def test_work_order_saved(listen: Any, world: dict[str, Any]) -> None:
    prop, request, vendor = world["property"], world["request"], world["vendor"]
    board = topics.maintenance_updates(str(prop.pk))
    listener = listen(board)

    order = save(WorkOrder(request=request, vendor=vendor, invoice_amount=Decimal("99.00")))
    data = assert_event(listener.next(), board, "workorder.updated")
    assert data["id"] == str(order.pk) and data["requestId"] == str(request.pk)
    assert data["propertyId"] == str(prop.pk) and data["vendorId"] == str(vendor.pk)
    assert data["status"] == "assigned" and data["invoiceAmount"] == "99.00"

    order = WorkOrder.objects.get(pk=order.pk)
    order.status = "scheduled"
    order.scheduled_date = datetime.date(2026, 3, 4)
    order.scheduled_time_start = datetime.time(9, 30)
    save(order)
    data = assert_event(listener.next(), board, "workorder.updated")
    assert data["status"] == "scheduled" and data["scheduledDate"] == "2026-03-04"
    assert data["scheduledTimeStart"] == "09:30:00"
    assert listener.nothing()


def test_property_created_and_updated(listen: Any, world: dict[str, Any]) -> None:
    prop = Property.objects.get(pk=world["property"].pk)
    changes = topics.property_changes(str(prop.pk))
    listener = listen(changes)

    prop.property_name = "Elm Court"
    save(prop)
    data = assert_event(listener.next(), changes, "property.updated")
    assert data["id"] == str(prop.pk) and data["propertyName"] == "Elm Court"
    assert data["ownerId"] == str(world["landlord"].pk) and data["propertyType"] == "apartment"

    # A new property's first event is on its own topic.
    created = make_property(owner=world["landlord"])
    new_listener = listen(topics.property_changes(str(created.pk)))
    created.city = "Shelbyville"
    save(created)
    data = assert_event(new_listener.next(), topics.property_changes(str(created.pk)), "property.updated")
    assert data["city"] == "Shelbyville"
    assert listener.nothing()


def test_unit_created_and_updated_on_both_topics(listen: Any, world: dict[str, Any]) -> None:
    prop = world["property"]
    changes = topics.property_changes(str(prop.pk))
    listener = listen(changes)

    unit = save(
        Unit(
            property=prop,
            unit_number="N-1",
            bedrooms=2,
            bathrooms=Decimal("1.5"),
            square_footage=850,
            monthly_rent=Decimal("1500.00"),
        )
    )
    data = assert_event(listener.next(), changes, "unit.updated")
    assert data["id"] == str(unit.pk) and data["propertyId"] == str(prop.pk)
    assert data["monthlyRent"] == "1500.00" and data["bathrooms"] == "1.5" and data["bedrooms"] == 2

    own = topics.unit_changes(str(unit.pk))
    both = listen(changes, own)
    unit.is_available = False
    save(unit)
    frames = both.take(2)
    assert {f["topic"] for f in frames} == {changes, own}
    for frame in frames:
        data = assert_event(frame, frame["topic"], "unit.updated")
        assert data["isAvailable"] is False
    assert both.nothing()


def test_lease_created_and_updated(listen: Any, world: dict[str, Any]) -> None:
    unit = world["unit"]
    lease = Lease(
        unit=unit,
        start_date=datetime.date(2027, 1, 1),
        end_date=datetime.date(2027, 12, 31),
        monthly_rent=Decimal("1600.00"),
        security_deposit=Decimal("800.00"),
    )
    own = topics.lease_changes(str(lease.pk))  # the id is known before the insert
    listener = listen(own)
    save(lease)
    data = assert_event(listener.next(), own, "lease.updated")
    assert data["id"] == str(lease.pk) and data["unitId"] == str(unit.pk)
    assert data["startDate"] == "2027-01-01" and data["monthlyRent"] == "1600.00"
    assert data["leaseStatus"] == "draft" and data["securityDeposit"] == "800.00"

    lease = Lease.objects.get(pk=lease.pk)
    lease.lease_status = "active"
    save(lease)
    data = assert_event(listener.next(), own, "lease.updated")
    assert data["leaseStatus"] == "active"
    assert listener.nothing()


def test_deleted_entities_are_announced(listen: Any, world: dict[str, Any]) -> None:
    prop, unit, request, order = world["property"], world["unit"], world["request"], world["order"]
    board = topics.maintenance_updates(str(prop.pk))
    unit_topic = topics.unit_changes(str(unit.pk))
    listener = listen(board, unit_topic)

    delete(WorkOrder.objects.get(pk=order.pk))
    assert listener.next()["data"] == {"id": str(order.pk), "deleted": True}
    unit_id = str(unit.pk)
    delete(unit)  # cascades to the request (and the lease)
    frames = listener.take(2)
    by_topic = {f["topic"]: f for f in frames}
    assert by_topic[board]["event"] == "maintenance.updated"
    assert by_topic[board]["data"] == {"id": str(request.pk), "deleted": True}
    assert by_topic[unit_topic]["event"] == "unit.updated"
    assert by_topic[unit_topic]["data"] == {"id": unit_id, "deleted": True}


def test_moved_unit_is_announced_to_the_old_property_too(listen: Any, world: dict[str, Any]) -> None:
    old, unit = world["property"], Unit.objects.get(pk=world["unit"].pk)
    new = make_property(owner=world["landlord"])
    listener = listen(topics.property_changes(str(old.pk)), topics.property_changes(str(new.pk)))
    unit.property = new
    save(unit)
    frames = listener.take(2)
    assert {f["topic"] for f in frames} == {topics.property_changes(str(old.pk)), topics.property_changes(str(new.pk))}
    assert all(f["data"]["propertyId"] == str(new.pk) for f in frames)


# --- after commit, never for a rollback ------------------------------------------------


def test_nothing_is_published_before_the_transaction_commits(listen: Any, world: dict[str, Any]) -> None:
    prop, unit = world["property"], world["unit"]
    board = topics.maintenance_updates(str(prop.pk))
    listener = listen(board, topics.lease_changes(str(world["lease"].pk)))

    with transaction.atomic():
        request = save(MaintenanceRequest(unit=unit, category="hvac", description="No heat"))
        request.status = "assigned"
        save(request)
        lease = world["lease"]
        lease.is_signed = True
        save(lease)
        assert OutboxEvent.objects.count() == 3  # written with the change, in its transaction
        assert listener.nothing()
    frames = listener.take(3)
    assert [f["event"] for f in frames] == ["maintenance.created", "maintenance.updated", "lease.updated"]
    assert frames[1]["data"]["status"] == "assigned"
    assert not OutboxEvent.objects.exists()
    assert listener.nothing()


def test_a_rolled_back_change_publishes_nothing(listen: Any, world: dict[str, Any]) -> None:
    prop, unit = world["property"], world["unit"]
    listener = listen(topics.maintenance_updates(str(prop.pk)), topics.property_changes(str(prop.pk)))

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        save(MaintenanceRequest(unit=unit, category="hvac", description="No heat"))
        unit.is_occupied = True
        save(unit)
        raise Abort
    assert not OutboxEvent.objects.exists()
    assert listener.nothing(0.5)

    # A savepoint rolled back inside a committed transaction: only the outer change goes out.
    with transaction.atomic():
        prop.city = "Capital City"
        save(prop)
        try:
            with transaction.atomic():
                unit.is_occupied = True
                save(unit)
                raise Abort
        except Abort:
            pass
    frame = listener.next()
    assert frame is not None and frame["event"] == "property.updated" and frame["data"]["city"] == "Capital City"
    assert listener.nothing()
    assert not OutboxEvent.objects.exists()

    # The transaction's first event was in a savepoint that rolled back: a later one still goes out.
    with transaction.atomic():
        try:
            with transaction.atomic():
                unit.is_occupied = True
                save(unit)
                raise Abort
        except Abort:
            pass
        prop.city = "Ogdenville"
        save(prop)
    frame = listener.next()
    assert frame is not None and frame["event"] == "property.updated" and frame["data"]["city"] == "Ogdenville"
    assert listener.nothing()
    assert not OutboxEvent.objects.exists()


def test_one_relay_per_transaction_however_many_changes(listen: Any, world: dict[str, Any]) -> None:
    unit = world["unit"]
    listener = listen(topics.unit_changes(str(unit.pk)))
    with transaction.atomic():
        for n in range(5):
            unit.square_footage = 900 + n
            save(unit)
        hooks = [entry for entry in db_connection.run_on_commit if entry[1].__name__ == "relay_after_commit"]
        assert len(hooks) == 1
        assert OutboxEvent.objects.count() == 10
    assert [f["data"]["squareFootage"] for f in listener.take(5)] == [900, 901, 902, 903, 904]
    assert not OutboxEvent.objects.exists()


# --- Redis down: delayed, not lost ---------------------------------------------------


def test_redis_down_keeps_the_event_until_a_relay_publishes_it_once(
    listen: Any, world: dict[str, Any], redis_down: Any
) -> None:
    prop, unit = world["property"], world["unit"]
    changes, own = topics.property_changes(str(prop.pk)), topics.unit_changes(str(unit.pk))
    start = position(changes)
    listener = listen(changes, own)

    unit.monthly_rent = Decimal("1999.00")
    save(unit)  # commits; the failed publish does not raise into the caller

    assert Unit.objects.get(pk=unit.pk).monthly_rent == Decimal("1999.00")
    rows = list(OutboxEvent.objects.order_by("id"))
    assert [(r.topic, r.event) for r in rows] == [(changes, "unit.updated"), (own, "unit.updated")]
    assert all(r.attempts == 1 and r.last_error for r in rows)
    assert outbox_relay() == 0  # still down: kept, attempts counted
    assert {r.attempts for r in OutboxEvent.objects.all()} == {2}
    assert listener.nothing()

    redis_down()  # Redis is back
    assert outbox_relay() == 2
    frames = listener.take(2)
    assert {f["topic"] for f in frames} == {changes, own}
    assert all(f["data"]["monthlyRent"] == "1999.00" for f in frames)
    assert not OutboxEvent.objects.exists()
    assert outbox_relay() == 0
    assert listener.nothing()
    # It entered the history: a reconnecting client recovers it.
    assert [f["data"]["id"] for f in since(changes, start)] == [str(unit.pk)]


def test_after_an_outage_the_next_commit_publishes_the_backlog_first(
    listen: Any, world: dict[str, Any], redis_down: Any
) -> None:
    unit = world["unit"]
    own = topics.unit_changes(str(unit.pk))
    listener = listen(own)
    for rent in ("1501.00", "1502.00"):
        unit.monthly_rent = Decimal(rent)
        save(unit)
    assert OutboxEvent.objects.count() == 4
    redis_down()  # Redis is back: the next commit relays everything, oldest first
    unit.monthly_rent = Decimal("1503.00")
    save(unit)
    frames = listener.take(3)
    assert [f["data"]["monthlyRent"] for f in frames] == ["1501.00", "1502.00", "1503.00"]
    assert not OutboxEvent.objects.exists()


# --- several relays at once ------------------------------------------------------------


def _in_threads(count: int, work: Any) -> list[Any]:
    barrier = threading.Barrier(count)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            results.append(work(index))
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)
        finally:
            db_connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    return results


def test_racing_relays_publish_each_row_once_in_order(listen: Any) -> None:
    topic = topics.property_changes("00000000-0000-4000-8000-000000000001")
    start = position(topic)
    # bulk_create sends no signals: the rows wait for a relay.
    OutboxEvent.objects.bulk_create(
        [OutboxEvent(topic=topic, event="property.updated", data={"n": n}) for n in range(120)]
    )
    results = _in_threads(2, lambda _: outbox_relay(limit=10))
    assert sum(results) == 120
    assert [f["data"]["n"] for f in since(topic, start)] == list(range(120))
    assert not OutboxEvent.objects.exists()


def test_concurrent_commits_leave_nothing_behind(world: dict[str, Any]) -> None:
    prop = world["property"]
    units = [make_unit(property=prop) for _ in range(4)]
    changes = topics.property_changes(str(prop.pk))
    start = position(changes)

    def update(index: int) -> None:
        unit = Unit.objects.get(pk=units[index].pk)
        for n in range(8):
            with transaction.atomic():
                unit.square_footage = 1000 + n
                save(unit)

    _in_threads(4, update)
    assert not OutboxEvent.objects.exists()
    frames = since(changes, start)
    assert len(frames) == 32
    for unit in units:
        mine = [f["data"]["squareFootage"] for f in frames if f["data"]["id"] == str(unit.pk)]
        assert mine == [1000 + n for n in range(8)]  # one unit's changes in commit order
