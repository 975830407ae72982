"""Events come from services only: the admin goes through them, a bare ORM save records nothing,
and a compensated cross-database save publishes nothing."""

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections as db_connections
from django.test import Client
from django.urls import reverse

from apps.common import integration
from apps.events.models import OutboxEvent
from apps.leasing.models import Lease
from apps.maintenance.models import MaintenanceRequest, Vendor, WorkOrder
from apps.properties.models import Property
from realtime import connections, topics
from realtime.errors import ProtocolError
from tests.apps.test_change_events import Listener
from tests.factories import make_lease, make_property, make_unit, make_user

pytestmark = pytest.mark.django_db(transaction=True)


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


# --- a bare ORM write is not a change event ------------------------------------------------


def test_a_bare_orm_save_or_update_records_no_event(listen: Any) -> None:
    """Behaviour change (issue 10): events leave from services; model signals no longer emit them."""
    prop = make_property(owner=make_user(user_type="landlord"))
    listener = listen(topics.property_changes(str(prop.pk)))
    prop.city = "Ogdenville"
    prop.save()
    Property.objects.filter(pk=prop.pk).update(city="North Haverbrook")
    assert not OutboxEvent.objects.exists()
    assert listener.nothing()


# --- the admin site writes through the services ------------------------------------------------


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(make_user(user_type="admin"))
    return client


def form_data(response: Any) -> dict[str, Any]:
    """The POST an admin change page would send unchanged: its form's and inline formsets' current values."""
    data: dict[str, Any] = {}

    def add(form: Any) -> None:
        for name in form.fields:
            value = form[name].value()
            key = form.add_prefix(name)
            if value is None or value is False:
                continue
            if value is True:
                data[key] = "on"
            elif isinstance(value, list | tuple):
                data[key] = [str(v) for v in value]
            else:
                data[key] = str(value)

    add(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        add(formset.management_form)
        for form in formset.initial_forms:
            add(form)
    return data


def test_admin_change_form_save_records_the_events_of_the_row_and_its_inline_rows(
    admin_client: Client, listen: Any
) -> None:
    prop = make_property(owner=make_user(user_type="landlord"))
    unit = make_unit(property=prop)
    listener = listen(topics.property_changes(str(prop.pk)), topics.unit_changes(str(unit.pk)))
    url = reverse("admin:properties_property_change", args=[prop.pk])
    data = form_data(admin_client.get(url))
    data["property_name"] = "Renamed by an admin"
    (rent,) = [key for key in data if key.endswith("-0-monthly_rent")]  # the unit's row of the inline
    data[rent] = "1777.00"
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content[:2000]
    frames = listener.take(3)
    assert not OutboxEvent.objects.exists()
    by_event: dict[str, list[dict[str, Any]]] = {}
    for frame in frames:
        by_event.setdefault(frame["event"], []).append(frame)
    assert [f["data"]["propertyName"] for f in by_event["property.updated"]] == ["Renamed by an admin"]
    assert {f["topic"] for f in by_event["unit.updated"]} == {
        topics.property_changes(str(prop.pk)),
        topics.unit_changes(str(unit.pk)),
    }
    assert all(f["data"]["monthlyRent"] == "1777.00" for f in by_event["unit.updated"])
    assert listener.nothing()


def test_admin_moving_a_unit_announces_it_on_both_properties(admin_client: Client, listen: Any) -> None:
    landlord = make_user(user_type="landlord")
    old, new = make_property(owner=landlord), make_property(owner=landlord)
    unit = make_unit(property=old)
    listener = listen(topics.property_changes(str(old.pk)), topics.property_changes(str(new.pk)))
    url = reverse("admin:properties_unit_change", args=[unit.pk])
    data = form_data(admin_client.get(url))
    data["property"] = str(new.pk)
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content[:2000]
    frames = listener.take(2)
    assert {f["topic"] for f in frames} == {topics.property_changes(str(old.pk)), topics.property_changes(str(new.pk))}
    assert all(f["event"] == "unit.updated" and f["data"]["propertyId"] == str(new.pk) for f in frames)


def test_admin_delete_action_announces_each_deleted_row(admin_client: Client, listen: Any) -> None:
    prop = make_property(owner=make_user(user_type="landlord"))
    unit = make_unit(property=prop)
    request = MaintenanceRequest.objects.create(unit=unit, category="plumbing", description="Leak")
    vendor = Vendor.objects.create(company_name="Fixit", phone="555-0100", service_category="plumbing")
    order = WorkOrder.objects.create(request=request, vendor=vendor)
    board = topics.maintenance_updates(str(prop.pk))
    listener = listen(board)
    response = admin_client.post(
        reverse("admin:maintenance_maintenancerequest_changelist"),
        {"action": "delete_selected", "_selected_action": [str(request.pk)], "post": "yes"},
    )
    assert response.status_code == 302
    frames = listener.take(2)
    assert {(f["event"], f["data"]["id"]) for f in frames} == {
        ("maintenance.updated", str(request.pk)),
        ("workorder.updated", str(order.pk)),
    }
    assert all(f["data"]["deleted"] is True for f in frames)
    assert not MaintenanceRequest.objects.filter(pk=request.pk).exists()


def test_admin_lease_status_change_records_lease_updated(admin_client: Client, listen: Any) -> None:
    prop = make_property(owner=make_user(user_type="landlord"))
    lease = make_lease(unit=make_unit(property=prop), tenants=(make_user(),), status="draft")
    listener = listen(topics.lease_changes(str(lease.pk)))
    url = reverse("admin:leasing_lease_change", args=[lease.pk])
    data = form_data(admin_client.get(url))
    data["lease_status"] = "active"
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content[:2000]
    frame = listener.next()
    assert frame is not None and frame["event"] == "lease.updated" and frame["data"]["leaseStatus"] == "active"


# --- saveEntityWithDocuments: no event for a compensated write ------------------------------------


@pytest.fixture
async def dead_mongo() -> AsyncIterator[None]:
    original = connections.current_settings()
    await connections.aclose_loop_clients()
    connections.configure(replace(original, mongo_url="mongodb://127.0.0.1:1/", mongo_timeout_ms=300))
    yield
    await connections.aclose_loop_clients()
    connections.configure(original)
    await sync_to_async(db_connections.close_all)()


def _property_data(owner: Any, pk: uuid.UUID) -> dict[str, Any]:
    return {
        "id": pk,
        "owner_id": owner.pk,
        "property_name": "Integration Court",
        "street_address": "5 Elm St",
        "city": "Peoria",
        "state": "IL",
        "zip_code": "61602",
        "property_type": "condo",
    }


async def test_a_compensated_save_entity_with_documents_publishes_nothing(dead_mongo: None) -> None:
    owner = await sync_to_async(make_user)(user_type="landlord")
    pk = uuid.uuid4()
    listener = await sync_to_async(Listener, thread_sensitive=False)(topics.property_changes(str(pk)))
    try:
        with pytest.raises(ProtocolError) as caught:
            await integration.save_entity_with_documents("property", _property_data(owner, pk), [{"fileName": "a.pdf"}])
        assert caught.value.data["report"]["compensation"] == "created row deleted"
        assert not await Property.objects.filter(pk=pk).aexists()
        assert not await OutboxEvent.objects.aexists()
        assert await sync_to_async(listener.nothing, thread_sensitive=False)(0.5)

        # An update compensated by restoring the previous values: nothing either.
        prop = await sync_to_async(make_property)(owner=owner)
        lease = await sync_to_async(make_lease)(unit=await sync_to_async(make_unit)(property=prop), tenants=())
        lease_listener = await sync_to_async(Listener, thread_sensitive=False)(topics.lease_changes(str(lease.pk)))
        try:
            with pytest.raises(ProtocolError):
                await integration.save_entity_with_documents(
                    "lease", {"id": lease.pk, "monthly_rent": "1999.00"}, [{"fileName": "addendum.pdf"}]
                )
            assert (await Lease.objects.aget(pk=lease.pk)).monthly_rent == Decimal("1450.00")
            assert not await OutboxEvent.objects.aexists()
            assert await sync_to_async(lease_listener.nothing, thread_sensitive=False)(0.5)
        finally:
            await sync_to_async(lease_listener.close, thread_sensitive=False)()
    finally:
        await sync_to_async(listener.close, thread_sensitive=False)()


async def test_a_completed_save_entity_with_documents_is_announced() -> None:
    owner = await sync_to_async(make_user)(user_type="landlord")
    pk = uuid.uuid4()
    listener = await sync_to_async(Listener, thread_sensitive=False)(topics.property_changes(str(pk)))
    try:
        saved = await integration.save_entity_with_documents(
            "property", _property_data(owner, pk), [{"fileName": "a.pdf"}]
        )
        assert saved["created"] is True
        frame = await sync_to_async(listener.next, thread_sensitive=False)(3.0)
        assert frame is not None and frame["event"] == "property.updated"
        assert frame["data"]["id"] == str(pk) and frame["data"]["propertyName"] == "Integration Court"
    finally:
        await sync_to_async(listener.close, thread_sensitive=False)()
        await connections.aclose_loop_clients()
        await sync_to_async(db_connections.close_all)()
