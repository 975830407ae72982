"""Who is notified of what in maintenance (docs/notifications.md): the notices recorded in the write's
transaction (the notice outbox; their delivery is tested in tests/apps/events/test_notices.py)."""

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.events.models import NoticeOutbox
from apps.maintenance import notices
from apps.maintenance.models import MaintenanceRequest
from apps.properties.models import PropertyManager
from tests.apps.api_world import World
from tests.apps.maintenance.test_vendors_work_orders_api import make_vendor
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def recorded() -> list[tuple[str, str, str]]:
    """(user, type, priority) of each notice recorded so far, in order; the outbox is emptied."""
    rows = list(NoticeOutbox.objects.order_by("id"))
    NoticeOutbox.objects.all().delete()
    return [(row.user_id, row.document["type"], row.document["priority"]) for row in rows]


def test_a_filed_request_notifies_the_landlord_and_managers_but_not_the_filer(world: World, client: Client) -> None:
    second = make_user(user_type="property_manager")
    PropertyManager.objects.create(property=world.prop, user=second)
    body = {"unitId": str(world.unit.pk), "category": "plumbing", "description": "Leak", "priority": "emergency"}
    assert world.api(client, "tenant").post("/maintenance-requests", body).status_code == 201
    expected = {str(world.landlord.pk), str(world.manager.pk), str(second.pk)}
    got = recorded()
    assert {user for user, _, _ in got} == expected and len(got) == 3
    assert {(kind, priority) for _, kind, priority in got} == {(notices.NOTICE_REQUEST_CREATED, "high")}
    # Filed by the manager: the others hear of it, the manager does not.
    assert world.api(client, "manager").post("/maintenance-requests", body).status_code == 201
    assert {user for user, _, _ in recorded()} == expected - {str(world.manager.pk)}


def test_the_filing_tenant_hears_of_assignment_status_changes_and_completion(world: World, client: Client) -> None:
    body = {"unitId": str(world.unit.pk), "category": "plumbing", "description": "Leak"}
    filed = world.api(client, "tenant").post("/maintenance-requests", body).json()
    recorded()
    manager = world.api(client, "manager")
    tenant = str(world.tenant.pk)
    for status, kind in (
        ("assigned", notices.NOTICE_REQUEST_ASSIGNED),
        ("in_progress", notices.NOTICE_REQUEST_STATUS),
        ("completed", notices.NOTICE_REQUEST_COMPLETED),
    ):
        assert manager.patch(f"/maintenance-requests/{filed['id']}", {"status": status}).status_code == 200
        assert [(user, got) for user, got, _ in recorded()] == [(tenant, kind)]
    # No status change, no notice.
    assert manager.patch(f"/maintenance-requests/{filed['id']}", {"actualCost": "12.50"}).status_code == 200
    assert recorded() == []


def test_a_work_order_notifies_the_vendors_user_and_the_request_moves_to_assigned(world: World, client: Client) -> None:
    request = MaintenanceRequest.objects.create(
        unit=world.unit, tenant=world.tenant_record(world.tenant), category="plumbing", description="leak"
    )
    worker: User = make_user(user_type="property_manager")
    vendor = make_vendor(email=worker.email.upper())
    nobody = make_vendor(company_name="No account", email="nobody@example.com")
    manager = world.api(client, "manager")
    created = manager.post("/work-orders", {"requestId": str(request.pk), "vendorId": str(vendor.pk)})
    assert created.status_code == 201, created.content
    assert sorted((user, kind) for user, kind, _ in recorded()) == sorted(
        [(str(worker.pk), notices.NOTICE_WORK_ORDER_ASSIGNED), (str(world.tenant.pk), notices.NOTICE_REQUEST_ASSIGNED)]
    )
    order = created.json()["id"]
    assert manager.patch(f"/work-orders/{order}", {"vendorId": str(nobody.pk)}).status_code == 200
    assert recorded() == []  # a vendor with no user: nobody to tell
    assert manager.patch(f"/work-orders/{order}", {"vendorId": str(vendor.pk)}).status_code == 200
    assert [(user, kind) for user, kind, _ in recorded()] == [(str(worker.pk), notices.NOTICE_WORK_ORDER_ASSIGNED)]
